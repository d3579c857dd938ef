//! Dual dispatch: on a violation the monitoring officer goes to the offender and the police
//! to the victim, at the same time (the Korean practice since 2026-07-06).
//!
//! `POST /api/v1/alerts/{id}/dispatch` is an officer's decision, not automatic: alerts that
//! turn out to be GPS drift are common (alert fatigue), and sending police to a victim's
//! door, with her position, on every raw signal would spread her location far more than the
//! danger requires. The officer confirms, then one transaction creates the officer's task to
//! the offender, the police account's time-limited grant and its task to each protected
//! person, the alert's `dispatched` state with one action row per direction, and the police
//! webhook delivery (`dispatch.police`, through the outbox).
//!
//! # Privacy
//!
//! A task carries a position only for its assignee, and only while `authz::check` allows it:
//! the officer reads the offender's position (`read_position`), the police account the
//! victim's (`read_victim_position`, which for police holds only while the dispatch grant is
//! valid). Before the dispatch there is no task; after the grant ends the task stays in the
//! list without a position; another case's task is not theirs.

use crate::AppState;
use crate::http::dto::{AlertDto, ts};
use crate::http::error::{ApiError, ErrorBody, ErrorCode, JsonBody};
use crate::privacy::auth::Caller;
use crate::privacy::authz;
use access::{AccountId, Action, Precision, Resource};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::{AlertId, AlertState, Fix, UnixMicros};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchRequest {
    /// The police account sent to the protected person(s). Without it only the officer's
    /// task to the offender is created.
    pub police_account_id: Option<i64>,
}

/// A position with what it takes to judge it: time, accuracy and source.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskPosition {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    /// `gnss`, `wifi`, `cell` or `unknown`.
    pub source: String,
    pub device_time: String,
    pub received_time: String,
    /// Seconds between the device time and the answer.
    pub age_s: f64,
    pub device_id: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskTarget {
    pub person_id: i64,
    /// `offender` or `protected`.
    pub role: &'static str,
    /// The target's latest position; `null` when there is none, or when the caller may not
    /// see it now (not the assignee, or the dispatch grant ended).
    pub position: Option<TaskPosition>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskDto {
    pub id: i64,
    pub alert_id: i64,
    pub case_id: i64,
    /// `officer_to_offender` or `police_to_victim`.
    pub kind: String,
    pub assignee_account_id: i64,
    /// `open`, `en_route`, `on_scene`, `done` or `cancelled`.
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
    pub target: TaskTarget,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DispatchResponse {
    pub alert: AlertDto,
    pub tasks: Vec<TaskDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStateChange {
    /// `open`, `en_route`, `on_scene`, `done` or `cancelled`.
    pub state: String,
}

/// A police account an officer may name in a dispatch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoliceUnitDto {
    pub account_id: i64,
    pub username: String,
}

/// The active police accounts, for the dispatch dialog (monitoring officers only: whoever may
/// dispatch). Names and ids only; no case, no position.
#[utoipa::path(get, path = "/api/v1/police-units", tag = "monitoring", security(("staff_token" = [])),
    responses((status = 200, body = [PoliceUnitDto]), (status = 403, body = ErrorBody)))]
pub async fn police_units(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<PoliceUnitDto>>, ApiError> {
    authz::dispatch_roster(&s, &c, "list police units").await?;
    let mut units: Vec<PoliceUnitDto> = s
        .store
        .list_accounts()
        .await?
        .into_iter()
        .filter(|a| access::may_be_dispatched(a.role) && !a.disabled)
        .map(|a| PoliceUnitDto {
            account_id: a.id.0,
            username: a.username,
        })
        .collect();
    units.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(Json(units))
}

pub(crate) fn task_position(f: &Fix, at: UnixMicros) -> TaskPosition {
    TaskPosition {
        lat: f.position.lat(),
        lon: f.position.lon(),
        accuracy_m: f.accuracy_m,
        source: f.source.to_string(),
        device_time: ts(f.device_time),
        received_time: ts(f.received_time),
        age_s: (at.0 - f.device_time.0).max(0) as f64 / 1e6,
        device_id: f.device_id.0,
    }
}

/// A task as `c` may see it: the target's position only for the assignee, and only when
/// `authz::check` allows it now (audited like any position read).
async fn render(s: &AppState, c: &Caller, t: store::Task) -> Result<TaskDto, ApiError> {
    let to_victim = t.kind == store::TASK_POLICE_TO_VICTIM;
    let mut position = None;
    if t.assignee == c.principal.account {
        let (action, person) = if to_victim {
            (Action::ReadVictimPosition, Some(t.target))
        } else {
            (Action::ReadPosition, None)
        };
        let resource = Resource {
            case: Some(t.case_id),
            person,
            ..Default::default()
        };
        let details = format!("task {} ({})", t.id, t.kind);
        match authz::check(s, c, action, resource, &details).await {
            Ok(authz::Allowed {
                precision: Precision::Full,
                token,
            }) => {
                position = s
                    .store
                    .latest_fix_of_person(&token, t.target)
                    .await?
                    .map(|f| task_position(&f, s.clock.now()));
            }
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::Forbidden => {}
            Err(e) => return Err(e),
        }
    }
    Ok(TaskDto {
        id: t.id,
        alert_id: t.alert_id.0,
        case_id: t.case_id.0,
        kind: t.kind,
        assignee_account_id: t.assignee.0,
        state: t.state,
        created_at: ts(t.created_at),
        updated_at: ts(t.updated_at),
        target: TaskTarget {
            person_id: t.target.0,
            role: if to_victim { "protected" } else { "offender" },
            position,
        },
    })
}

/// Dual dispatch of an alert: the caller (a monitoring officer handling the alert's case)
/// goes to the offender; `police_account_id`, if given, goes to the protected person(s) and
/// is granted the case until the alert is resolved plus a grace period. The police webhook
/// (`dispatch.police`) gets the dispatch through the outbox.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/dispatch", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Alert id")), request_body = DispatchRequest,
    responses((status = 201, body = DispatchResponse), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn dispatch(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<DispatchRequest>,
) -> Result<(StatusCode, Json<DispatchResponse>), ApiError> {
    let details = match req.police_account_id {
        Some(p) => format!("alert {id} dual dispatch with police account {p}"),
        None => format!("alert {id} dispatch to the offender"),
    };
    let (alert, case, _) =
        crate::alerts::lifecycle::alert_for_handling(&s, &c, id, &details).await?;
    if !access::may_dispatch(c.principal.role) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only a monitoring officer dispatches",
        ));
    }
    let (Some(alert), Some(case_id)) = (alert, case) else {
        return Err(ApiError::new(
            ErrorCode::InvalidReference,
            "this alert belongs to no case: there is no offender or victim to send anyone to",
        ));
    };
    if alert.alert.state == AlertState::Resolved {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the alert is resolved; nothing to dispatch",
        ));
    }
    let case = s
        .store
        .list_cases()
        .await?
        .into_iter()
        .find(|k| k.id == case_id)
        .ok_or_else(|| ApiError::internal("alert case vanished"))?;
    let t = s.clock.now();
    if let Some(p) = req.police_account_id {
        let account = s.store.account(AccountId(p)).await?;
        if !account
            .as_ref()
            .is_some_and(|a| access::may_be_dispatched(a.role) && !a.disabled)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidReference,
                "police_account_id: not an active police account",
            ));
        }
    }
    let (tasks, record) = s
        .store
        .dispatch(store::NewDispatch {
            alert: AlertId(id),
            case: case_id,
            at: t,
            officer: c.principal.account,
            offender: case.offender,
            police: req
                .police_account_id
                .map(|p| (AccountId(p), t.plus_secs(s.config.alerts.dispatch_open_s))),
            protected: case.protected.clone(),
            actor_role: c.principal.role.as_str().into(),
            police_webhooks: s.config.webhooks_for("dispatch.police"),
        })
        .await?;
    metrics::counter!("bulwark_dispatches_total", "police" => if req.police_account_id.is_some() { "yes" } else { "no" })
        .increment(1);
    let dto = AlertDto::from(record);
    s.hub.publish(crate::live::LiveEvent::Alert(dto.clone()));
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(render(&s, &c, task).await?);
    }
    Ok((
        StatusCode::CREATED,
        Json(DispatchResponse {
            alert: dto,
            tasks: out,
        }),
    ))
}

/// The caller's own tasks, newest first, each with its target's latest position while the
/// caller may see it.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "monitoring", security(("staff_token" = [])),
    responses((status = 200, body = [TaskDto])))]
pub async fn my_tasks(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<TaskDto>>, ApiError> {
    let tasks = s.store.tasks_of(c.principal.account).await?;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(render(&s, &c, t).await?);
    }
    Ok(Json(out))
}

/// Moves one of the caller's tasks (`en_route`, `on_scene`, `done`, …). Needs `handle_alert`
/// on the case: for police, only while the dispatch grant lasts. The step is written to the
/// alert's action log.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/state", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Task id")), request_body = TaskStateChange,
    responses((status = 200, body = TaskDto), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_task_state(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<TaskStateChange>,
) -> Result<Json<TaskDto>, ApiError> {
    if !store::TASK_STATES.contains(&req.state.as_str()) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!(
                "state: unknown `{}` (one of {})",
                req.state,
                store::TASK_STATES.join(", ")
            ),
        ));
    }
    // Someone else's task does not exist for the caller.
    let task = match s.store.task(id).await {
        Ok(t) if t.assignee == c.principal.account => t,
        Ok(_) | Err(store::StoreError::NotFound(_)) => {
            return Err(ApiError::new(ErrorCode::NotFound, format!("task {id}")));
        }
        Err(e) => return Err(e.into()),
    };
    authz::check(
        &s,
        &c,
        Action::HandleAlert,
        Resource {
            case: Some(task.case_id),
            ..Default::default()
        },
        &format!("task {id} -> {}", req.state),
    )
    .await?;
    let t = s.clock.now();
    let updated = s.store.set_task_state(id, req.state.clone(), t).await?;
    s.store
        .add_alert_action(
            task.alert_id,
            store::NewAlertAction {
                at: t,
                actor_account_id: c.principal.account.0,
                actor_role: c.principal.role.as_str().into(),
                action: "task_state".into(),
                cause: None,
                note: Some(format!("{} task {id}: {}", task.kind, req.state)),
            },
        )
        .await?;
    Ok(Json(render(&s, &c, updated).await?))
}
