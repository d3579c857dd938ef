//! The parties' own view of their case: `GET /api/v1/me/case`.
//!
//! A protected person sees her orders and the offender only inside her disclosure radius
//! (position, distance and direction, each with its age and accuracy); outside it she sees
//! `"not_nearby"`, and `"unknown"` when either position is missing or stale ("not nearby"
//! when he is near would be worse than no answer).
//!
//! # Architecture Invariant
//!
//! An offender's answer is never a function of where she is. [`offender_view`] does not
//! receive, load or compute anything about the protected person's position: it reads his
//! orders (without zones or the disclosure radius: those describe her life) and his own
//! latest fix. `crates/server/tests/access.rs` checks that his answer is byte-identical
//! wherever she goes.

use crate::AppState;
use crate::auth::Caller;
use crate::authz;
use crate::dto::ts;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::pipeline::now;
use access::{Action, OffenderProximity, Precision, Resource, Role};
use axum::Json;
use axum::extract::State;
use domain::{Case, Fix, PersonId, UnixMicros};
use serde_json::{Value, json};

/// The caller's own case, shaped for their role.
#[utoipa::path(get, path = "/api/v1/me/case", tag = "access", security(("staff_token" = [])),
    responses((status = 200, description = "Victim view (offender position only inside the disclosure radius) or offender view (obligations and his own position)", body = Object),
        (status = 403, body = ErrorBody)))]
pub async fn my_case(State(s): State<AppState>, c: Caller) -> Result<Json<Value>, ApiError> {
    let g = authz::grants(&s, &c).await?;
    let (own, person) = match (c.principal.role, c.principal.person) {
        (Role::Victim, Some(p)) => (g.protected_in.first().copied(), p),
        (Role::Offender, Some(p)) => (g.offender_in.first().copied(), p),
        _ => (None, PersonId(0)),
    };
    let cases = s.store.list_cases().await?;
    let Some(case) = own.and_then(|id| cases.into_iter().find(|k| k.id == id)) else {
        // No case of her or his own: let the one decision refuse it (and log it).
        authz::check(&s, &c, Action::ViewCase, Resource::default(), "me/case").await?;
        return Err(ApiError::internal("allowed a case view without a case"));
    };
    let resource = Resource {
        case: Some(case.id),
        ..Default::default()
    };
    authz::check(&s, &c, Action::ViewCase, resource, "me/case").await?;
    if c.principal.role == Role::Offender {
        return offender_view(&s, &c, &case, person).await.map(Json);
    }
    victim_view(&s, &c, &case, person).await.map(Json)
}

/// The latest fix of any device `person` wears.
async fn latest_of(s: &AppState, person: PersonId) -> Result<Option<Fix>, ApiError> {
    let devices = s.store.list_devices().await?;
    let mine: Vec<_> = devices
        .iter()
        .filter(|d| d.owner == Some(person))
        .map(|d| d.id)
        .collect();
    Ok(s.store
        .latest_fixes()
        .await?
        .into_iter()
        .filter(|f| mine.contains(&f.device_id))
        .max_by_key(|f| f.device_time))
}

fn fresh(f: Option<Fix>, now: UnixMicros, stale_after_s: f64) -> Option<Fix> {
    f.filter(|f| ((now.0 - f.device_time.0) as f64) / 1e6 <= stale_after_s)
}

/// The offender's view: his obligations and his own position. Takes no input about her.
async fn offender_view(
    s: &AppState,
    c: &Caller,
    case: &Case,
    me: PersonId,
) -> Result<Value, ApiError> {
    let resource = Resource {
        case: Some(case.id),
        ..Default::default()
    };
    let orders = s.store.list_orders().await?;
    let obligations: Vec<Value> = orders
        .iter()
        .filter(|o| o.case_id == case.id)
        .map(|o| {
            json!({
                "order_id": o.id.0,
                "kind": o.kind.to_string(),
                "valid_from": ts(o.valid_from),
                "valid_to": o.valid_to.map(ts),
                "no_approach_m": o.no_approach_m,
            })
        })
        .collect();
    let position = match authz::check(s, c, Action::ReadPosition, resource, "me/case").await {
        Ok(Precision::Full) => latest_of(s, me).await?.map(|f| {
            json!({
                "lat": f.position.lat(), "lon": f.position.lon(), "accuracy_m": f.accuracy_m,
                "device_time": ts(f.device_time), "received_time": ts(f.received_time),
            })
        }),
        Ok(_) => None,
        Err(e) if e.code == ErrorCode::Forbidden => None,
        Err(e) => return Err(e),
    };
    Ok(json!({"case_id": case.id.0, "obligations": obligations, "own_position": position}))
}

/// The protected person's view: her orders, and the offender at the precision her
/// disclosure radius allows.
async fn victim_view(
    s: &AppState,
    c: &Caller,
    case: &Case,
    me: PersonId,
) -> Result<Value, ApiError> {
    let t = now();
    let stale = s.config.engine.stale_after_s;
    let orders: Vec<_> = s
        .store
        .list_orders()
        .await?
        .into_iter()
        .filter(|o| o.case_id == case.id)
        .collect();
    let radius = orders
        .iter()
        .filter(|o| o.in_force(t))
        .map(|o| o.disclosure_radius_m)
        .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))));
    let hers = fresh(latest_of(s, me).await?, t, stale);
    let his = fresh(latest_of(s, case.offender).await?, t, stale);
    let proximity = match (&hers, &his, radius) {
        (Some(h), Some(o), Some(r)) => Some(if h.position.distance_m(&o.position) <= r {
            OffenderProximity::WithinDisclosureRadius
        } else {
            OffenderProximity::Outside
        }),
        _ => None,
    };
    let resource = Resource {
        case: Some(case.id),
        offender_proximity: proximity,
        ..Default::default()
    };
    let offender = match authz::check(s, c, Action::ReadPosition, resource, "me/case").await {
        Ok(Precision::WithinDisclosure) => match (&hers, &his) {
            (Some(h), Some(o)) => json!({
                "lat": o.position.lat(), "lon": o.position.lon(),
                "accuracy_m": o.accuracy_m, "device_time": ts(o.device_time),
                "distance_m": h.position.distance_m(&o.position),
                "bearing_deg": h.position.bearing_deg(&o.position),
                "course_deg": o.course_deg, "speed_mps": o.speed_mps,
            }),
            _ => json!("unknown"),
        },
        Ok(_) => json!("not_nearby"),
        Err(e) if e.code == ErrorCode::Forbidden => json!("unknown"),
        // The audit record could not be written: answer nothing.
        Err(e) => return Err(e),
    };
    let orders: Vec<Value> = orders
        .into_iter()
        .map(|o| serde_json::to_value(crate::dto::OrderDto::from(o)).unwrap_or(Value::Null))
        .collect();
    Ok(json!({"case_id": case.id.0, "orders": orders, "offender": offender}))
}
