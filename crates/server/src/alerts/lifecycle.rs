//! The alert lifecycle: the action log (acknowledge, calls, dispatches, notes, resolve with a
//! cause), each step timestamped and attributed to the caller, and measures computed from it.
//!
//! Every endpoint here asks [`crate::privacy::authz`] for `handle_alert` on the alert's case, like
//! `POST /api/v1/alerts/{id}/state`: the log is part of handling the alert.

use crate::AppState;
use crate::http::dto::*;
use crate::http::error::{ApiError, ErrorBody, ErrorCode, JsonBody};
use crate::privacy::auth::Caller;
use crate::privacy::authz;
use crate::privacy::authz::alert_case;
use access::{Action, Resource};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use domain::*;
use serde::Deserialize;
use store::Authorized;
use utoipa::IntoParams;

/// The longest note kept in the log.
const NOTE_MAX: usize = 2_000;
/// Case-days below which the console shows no per-case-day rate (7: a week of one case).
const RATE_MIN_CASE_DAYS: f64 = 7.0;

/// The measures window when `from` is not given (30 days before `to`).
const DEFAULT_WINDOW_S: i64 = 30 * 86_400;
const DAY_US: f64 = 86_400.0 * 1e6;

/// The cause of a state change: required with `resolved`, refused otherwise.
pub(crate) fn resolution_cause(
    state: AlertState,
    cause: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match (state, cause) {
        (AlertState::Resolved, None) => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!(
                "cause: required when resolving ({})",
                RESOLUTION_CAUSES.join(", ")
            ),
        )),
        (AlertState::Resolved, Some(c)) if RESOLUTION_CAUSES.contains(&c) => Ok(Some(c.into())),
        (AlertState::Resolved, Some(c)) => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!(
                "cause: unknown `{c}` (one of {})",
                RESOLUTION_CAUSES.join(", ")
            ),
        )),
        (_, Some(_)) => Err(ApiError::new(
            ErrorCode::InvalidField,
            "cause: only with state `resolved`",
        )),
        (_, None) => Ok(None),
    }
}

pub(crate) fn note(note: Option<String>) -> Result<Option<String>, ApiError> {
    match note {
        Some(n) if n.len() > NOTE_MAX => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("note: at most {NOTE_MAX} bytes"),
        )),
        Some(n) if n.trim().is_empty() => Ok(None),
        n => Ok(n),
    }
}

/// Looks an alert up and asks for `handle_alert` on its case. An unknown alert id is decided
/// as "no case" (refused and logged), so that probing ids does not tell a caller which alerts
/// exist.
pub(crate) async fn alert_for_handling(
    s: &AppState,
    c: &Caller,
    id: i64,
    details: &str,
) -> Result<(Option<store::AlertRecord>, Option<CaseId>, Authorized), ApiError> {
    let alert = match s.store.alert(AlertId(id)).await {
        Ok(a) => Some(a),
        Err(store::StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let devices = s.store.list_devices().await?;
    let cases = s.store.list_cases().await?;
    let case = alert.as_ref().and_then(|a| alert_case(a, &devices, &cases));
    if alert
        .as_ref()
        .is_some_and(crate::privacy::authz::outside_any_case)
        && case.is_none()
    {
        let token = authz::unlinked_device_alert(s, c, Action::HandleAlert, details).await?;
        return Ok((alert, None, token));
    }
    let allowed = authz::check(
        s,
        c,
        Action::HandleAlert,
        Resource {
            case,
            ..Default::default()
        },
        details,
    )
    .await?;
    Ok((alert, case, allowed.token))
}

fn new_action(
    c: &Caller,
    at: UnixMicros,
    action: &str,
    cause: Option<String>,
    note: Option<String>,
) -> store::NewAlertAction {
    store::NewAlertAction {
        at,
        actor_account_id: c.principal.account.0,
        actor_role: c.principal.role.as_str().into(),
        action: action.into(),
        cause,
        note,
    }
}

/// Writes a state change and its action row in one transaction, and records the metrics.
pub(crate) async fn change_state(
    s: &AppState,
    c: &Caller,
    id: AlertId,
    state: AlertState,
    t: UnixMicros,
    cause: Option<String>,
    note: Option<String>,
) -> Result<store::AlertRecord, ApiError> {
    let action = match state {
        AlertState::Raised => "raise",
        AlertState::Acknowledged => "acknowledge",
        AlertState::Dispatched => "dispatch",
        AlertState::Resolved => "resolve",
    };
    let (before, after) = s
        .store
        .set_alert_state_logged(id, state, new_action(c, t, action, cause.clone(), note))
        .await?;
    if state == AlertState::Acknowledged && before.alert.state == AlertState::Raised {
        metrics::histogram!("bulwark_alert_time_to_ack_seconds")
            .record((t.0 - before.alert.raised_at.0).max(0) as f64 / 1e6);
    }
    if state == AlertState::Resolved
        && before.alert.state != AlertState::Resolved
        && let Some(cause) = cause
    {
        metrics::counter!("bulwark_alerts_resolved_total", "cause" => cause).increment(1);
    }
    Ok(after)
}

/// Records a step taken on an alert that does not change its state: a call, a dispatch in
/// the field, a note.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/actions", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Alert id")), request_body = AlertActionRequest,
    responses((status = 201, body = AlertActionDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_action(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<AlertActionRequest>,
) -> Result<(StatusCode, Json<AlertActionDto>), ApiError> {
    if !ALERT_ACTIONS.contains(&req.action.as_str()) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!(
                "action: unknown `{}` (one of {})",
                req.action,
                ALERT_ACTIONS.join(", ")
            ),
        ));
    }
    let note = note(req.note)?;
    if req.action == "note" && note.is_none() {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "note: required with action `note`",
        ));
    }
    alert_for_handling(&s, &c, id, &format!("alert {id} action {}", req.action)).await?;
    let a = s
        .store
        .add_alert_action(
            AlertId(id),
            new_action(&c, s.clock.now(), &req.action, None, note),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(a.into())))
}

/// The action log of an alert, oldest first, with who took each step.
#[utoipa::path(get, path = "/api/v1/alerts/{id}/history", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Alert id")),
    responses((status = 200, body = [AlertActionDto]), (status = 403, body = ErrorBody)))]
pub async fn history(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<AlertActionDto>>, ApiError> {
    let (_, _, token) = alert_for_handling(&s, &c, id, &format!("alert {id} history")).await?;
    let log = s.store.alert_actions(&token, AlertId(id)).await?;
    Ok(Json(log.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeasuresQuery {
    /// RFC 3339 start of the window (default: 30 days before `to`).
    pub from: Option<String>,
    /// RFC 3339 end of the window (default: now).
    pub to: Option<String>,
}

/// How alerts raised in the window were handled, over the cases the caller handles alerts
/// for: alerts per rule and per case-day, time to acknowledge and to dispatch, resolution
/// causes and the false-alarm share.
#[utoipa::path(get, path = "/api/v1/alerts/measures", tag = "monitoring", security(("staff_token" = [])),
    params(MeasuresQuery),
    responses((status = 200, body = AlertMeasures), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn measures(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<MeasuresQuery>,
) -> Result<Json<AlertMeasures>, ApiError> {
    let to = match &q.to {
        Some(t) => parse_ts("to", t)?,
        None => s.clock.now(),
    };
    let from = match &q.from {
        Some(t) => parse_ts("from", t)?,
        None => to.plus_secs(-DEFAULT_WINDOW_S),
    };
    if from.0 >= to.0 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "from: must be before `to`",
        ));
    }
    let allowed = authz::scope(&s, &c, Action::HandleAlert, "alert measures").await?;
    let devices = s.store.list_devices().await?;
    let cases = s.store.list_cases().await?;
    let open_days: Vec<f64> = s
        .store
        .case_opened_at()
        .await?
        .into_iter()
        .filter(|(k, _)| allowed.contains(k))
        .map(|(_, opened)| (to.0 - from.0.max(opened.0)).max(0) as f64 / DAY_US)
        .filter(|d| *d > 0.0)
        .collect();
    let case_days: f64 = open_days.iter().sum();
    let raised = s.store.alerts_raised_between(from, to).await?;
    let mut m = AlertMeasures {
        from: ts(from),
        to: ts(to),
        alerts: 0,
        per_rule: Default::default(),
        case_days,
        alerts_per_case_day: None,
        window_days: (to.0 - from.0) as f64 / DAY_US,
        cases: open_days.len(),
        rate_min_case_days: RATE_MIN_CASE_DAYS,
        time_to_ack_s: Percentiles::of(Vec::new()),
        time_to_dispatch_s: Percentiles::of(Vec::new()),
        resolved: 0,
        per_cause: Default::default(),
        false_alarm_share: None,
    };
    let (mut ack, mut dispatch) = (Vec::new(), Vec::new());
    let mut false_alarms = 0usize;
    for (a, log) in raised {
        if !alert_case(&a, &devices, &cases).is_some_and(|k| allowed.contains(&k)) {
            continue;
        }
        m.alerts += 1;
        *m.per_rule.entry(a.alert.rule.as_str().into()).or_default() += 1;
        let since = |t: UnixMicros| (t.0 - a.alert.raised_at.0).max(0) as f64 / 1e6;
        if let Some(x) = log.iter().find(|x| x.action == "acknowledge") {
            ack.push(since(x.at));
        }
        if let Some(x) = log
            .iter()
            .find(|x| DISPATCH_ACTIONS.contains(&x.action.as_str()))
        {
            dispatch.push(since(x.at));
        }
        if a.alert.state == AlertState::Resolved
            && let Some(cause) = log
                .iter()
                .rev()
                .find(|x| x.action == "resolve")
                .and_then(|x| x.cause.clone())
        {
            m.resolved += 1;
            if FALSE_ALARM_CAUSES.contains(&cause.as_str()) {
                false_alarms += 1;
            }
            *m.per_cause.entry(cause).or_default() += 1;
        }
    }
    m.alerts_per_case_day = (case_days > 0.0).then(|| m.alerts as f64 / case_days);
    m.false_alarm_share = (m.resolved > 0).then(|| false_alarms as f64 / m.resolved as f64);
    m.time_to_ack_s = Percentiles::of(ack);
    m.time_to_dispatch_s = Percentiles::of(dispatch);
    Ok(Json(m))
}
