//! The protected person's alerts and notification settings.
//!
//! - `GET /api/v1/me/alerts`: the alerts of her own case, each with its class (`danger`,
//!   `technical`, `test`; see [`crate::alerts::push::class_of`]), kind (the rule), state, severity and
//!   times, plus server-wide alerts that degrade her protection (the server behind on
//!   ingest). Never a position, distance or direction: what she may learn of where he is
//!   goes only through `GET /api/v1/me/case`, inside her disclosure radius.
//! - `GET/PUT /api/v1/me/settings`: `{"silent": bool}`. Silent: no sound or vibration on her
//!   phone (the offender may be near enough to hear it), and Web Push messages marked silent.
//! - `POST /api/v1/me/alerts/test`: a test alert (class `test`), stored already resolved
//!   with cause `test`, so that she can check that notifications reach her phone.

use crate::AppState;
use crate::alerts::push::class_of;
use crate::http::dto::ts;
use crate::http::error::{ApiError, ErrorBody, ErrorCode, body_error, parse_json};
use crate::privacy::auth::{BOOTSTRAP_ADMIN, Caller};
use crate::privacy::authz;
use crate::privacy::authz::alert_case;
use access::{Action, Resource, Role};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use domain::{AlertRule, AlertState, CaseId, PersonId, Severity};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

type Body = Result<Bytes, BytesRejection>;

/// One alert as the protected person sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct VictimAlertDto {
    pub id: i64,
    /// `danger`, `technical` or `test`.
    pub class: &'static str,
    /// The rule, e.g. `proximity_violation`, `device_offline`.
    pub kind: String,
    /// `raised`, `acknowledged`, `dispatched` or `resolved`.
    pub state: String,
    pub raised_at: String,
    pub updated_at: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// No sound or vibration; Web Push messages are sent as silent notifications.
    pub silent: bool,
}

/// Her own case, decided (and logged) by `authz::check` for `action`.
async fn own_case(
    s: &AppState,
    c: &Caller,
    action: Action,
    details: &str,
) -> Result<(CaseId, PersonId, store::Authorized), ApiError> {
    let g = authz::grants(s, c).await?;
    let mine = match (c.principal.role, c.principal.person) {
        (Role::Victim, Some(p)) => g.protected_in.first().map(|k| (*k, p)),
        _ => None,
    };
    let resource = Resource {
        case: mine.map(|(k, _)| k),
        ..Default::default()
    };
    // Without a case of her own the one decision refuses (and logs) it.
    let allowed = authz::check(s, c, action, resource, details).await?;
    let (case, me) =
        mine.ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "no case of your own"))?;
    Ok((case, me, allowed.token))
}

/// The alerts of the caller's own case (protected persons only), newest first.
#[utoipa::path(get, path = "/api/v1/me/alerts", tag = "access", security(("staff_token" = [])),
    responses((status = 200, body = [VictimAlertDto]), (status = 403, body = ErrorBody)))]
pub async fn my_alerts(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<VictimAlertDto>>, ApiError> {
    let (case, me, token) = own_case(&s, &c, Action::ReadAlerts, "me/alerts").await?;
    let devices = s.store.list_devices().await?;
    let cases = s.store.list_cases().await?;
    let alerts = s.store.list_alerts(&token, false, 500).await?;
    Ok(Json(
        alerts
            .into_iter()
            .filter(|a| {
                // Her case's alerts, but not those about another person the same order
                // protects: their situation is theirs.
                (alert_case(a, &devices, &cases) == Some(case)
                    && a.protected.is_none_or(|p| p == me))
                    || (a.alert.rule == AlertRule::IngestBacklog && a.condition_active)
            })
            .map(|a| VictimAlertDto {
                id: a.alert.id.0,
                class: class_of(a.alert.rule),
                kind: a.alert.rule.as_str().into(),
                state: a.alert.state.as_str().into(),
                raised_at: ts(a.alert.raised_at),
                updated_at: ts(a.alert.updated_at),
                severity: a.alert.severity.as_str().into(),
            })
            .collect(),
    ))
}

/// Sends a test alert to the caller's own devices (Web Push), recorded in her case's alert
/// log as already resolved with cause `test`.
#[utoipa::path(post, path = "/api/v1/me/alerts/test", tag = "access", security(("staff_token" = [])),
    responses((status = 201, body = VictimAlertDto), (status = 403, body = ErrorBody)))]
pub async fn test_alert(
    State(s): State<AppState>,
    c: Caller,
) -> Result<(StatusCode, Json<VictimAlertDto>), ApiError> {
    let (case, person, _) = own_case(&s, &c, Action::ReadAlerts, "me/alerts/test").await?;
    let t = s.clock.now();
    let change = store::AlertChange {
        order_id: None,
        case_id: Some(case),
        rule: AlertRule::Test,
        protected: Some(person),
        zone: None,
        kind: store::AlertChangeKind::Raised,
        severity: Severity::Info,
        at: t,
        distance_m: None,
        evidence: Vec::new(),
        summary: "test alert started by the protected person".into(),
        device: None,
        details: Default::default(),
    };
    let (record, _) = s
        .store
        .apply_alert_change_notifying(
            change.clone(),
            store::AlertNotify {
                push: true,
                ..Default::default()
            },
        )
        .await?;
    let id = record.alert.id;
    s.store
        .apply_alert_change(store::AlertChange {
            kind: store::AlertChangeKind::Cleared,
            ..change
        })
        .await?;
    let (_, after) = s
        .store
        .set_alert_state_logged(
            id,
            AlertState::Resolved,
            store::NewAlertAction {
                at: t,
                actor_account_id: c.principal.account.0,
                actor_role: c.principal.role.as_str().into(),
                action: "resolve".into(),
                cause: Some("test".into()),
                note: Some("test alert".into()),
            },
        )
        .await?;
    let dto = crate::http::dto::AlertDto::from(after.clone());
    s.hub.publish(crate::live::LiveEvent::Alert(dto));
    Ok((
        StatusCode::CREATED,
        Json(VictimAlertDto {
            id: id.0,
            class: class_of(after.alert.rule),
            kind: after.alert.rule.as_str().into(),
            state: after.alert.state.as_str().into(),
            raised_at: ts(after.alert.raised_at),
            updated_at: ts(after.alert.updated_at),
            severity: after.alert.severity.as_str().into(),
        }),
    ))
}

fn own_account(c: &Caller) -> Result<access::AccountId, ApiError> {
    if c.principal.account == BOOTSTRAP_ADMIN {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "the bootstrap token has no account settings",
        ));
    }
    Ok(c.principal.account)
}

/// The caller's notification settings.
#[utoipa::path(get, path = "/api/v1/me/settings", tag = "access", security(("staff_token" = [])),
    responses((status = 200, body = Settings), (status = 403, body = ErrorBody)))]
pub async fn get_settings(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Settings>, ApiError> {
    let account = own_account(&c)?;
    Ok(Json(Settings {
        silent: s.store.silent(account).await?,
    }))
}

/// Changes the caller's notification settings.
#[utoipa::path(put, path = "/api/v1/me/settings", tag = "access", security(("staff_token" = [])),
    request_body = Settings,
    responses((status = 200, body = Settings), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_settings(
    State(s): State<AppState>,
    c: Caller,
    body: Body,
) -> Result<Json<Settings>, ApiError> {
    let account = own_account(&c)?;
    let req: Settings = parse_json(&body.map_err(body_error)?)?;
    s.store
        .set_silent(account, req.silent, s.clock.now())
        .await?;
    Ok(Json(Settings {
        silent: s.store.silent(account).await?,
    }))
}
