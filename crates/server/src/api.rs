//! Staff endpoints: set up people, devices, cases and orders; read positions and alerts.
//!
//! Until accounts and roles exist (issue 5), every endpoint here requires the administrator
//! bearer token. All reads of location data go through `positions_latest`, `track` and the
//! live stream, the points where access control and the audit log will sit.

use crate::AppState;
use crate::auth::Staff;
use crate::dto::*;
use crate::error::{ApiError, ErrorBody, ErrorCode, body_error, parse_json};
use crate::pipeline::now;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use domain::*;
use serde::Deserialize;
use utoipa::IntoParams;

type Body = Result<Bytes, BytesRejection>;

#[utoipa::path(post, path = "/api/v1/people", tag = "setup", request_body = NewPerson,
    security(("staff_token" = [])),
    responses((status = 201, body = PersonDto), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_person(
    State(s): State<AppState>,
    _staff: Staff,
    body: Body,
) -> Result<(StatusCode, Json<PersonDto>), ApiError> {
    let req: NewPerson = parse_json(&body.map_err(body_error)?)?;
    let role: PersonRole = parse_enum("role", &req.role)?;
    if req.display_name.trim().is_empty() || req.display_name.len() > 200 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "display_name: 1 to 200 characters",
        ));
    }
    let p = s.store.create_person(role, req.display_name, now()).await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

#[utoipa::path(get, path = "/api/v1/people", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, body = [PersonDto])))]
pub async fn list_people(
    State(s): State<AppState>,
    _staff: Staff,
) -> Result<Json<Vec<PersonDto>>, ApiError> {
    Ok(Json(
        s.store
            .list_people()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/devices", tag = "setup", request_body = NewDevice,
    security(("staff_token" = [])),
    responses((status = 201, body = DeviceDto), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_device(
    State(s): State<AppState>,
    _staff: Staff,
    body: Body,
) -> Result<(StatusCode, Json<DeviceDto>), ApiError> {
    let req: NewDevice = parse_json(&body.map_err(body_error)?)?;
    let kind: DeviceKind = parse_enum("kind", &req.kind)?;
    let protocol: Protocol = parse_enum("protocol", &req.protocol)?;
    let hw = req.hardware_id.trim().to_string();
    if hw.is_empty() || hw.len() > 64 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "hardware_id: 1 to 64 characters",
        ));
    }
    if let Some(t) = &req.token
        && t.len() < 16
    {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "token: at least 16 characters",
        ));
    }
    if protocol == Protocol::Native && req.token.is_none() {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "token: required for native devices",
        ));
    }
    let d = s
        .store
        .create_device(
            kind,
            protocol,
            hw,
            req.owner_id.map(PersonId),
            req.token,
            now(),
        )
        .await?;
    s.pipeline.sync_roster().await;
    Ok((StatusCode::CREATED, Json(d.into())))
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, body = [DeviceDto])))]
pub async fn list_devices(
    State(s): State<AppState>,
    _staff: Staff,
) -> Result<Json<Vec<DeviceDto>>, ApiError> {
    Ok(Json(
        s.store
            .list_devices()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/devices/unknown", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, description = "Devices that tried to connect unregistered", body = [UnknownDeviceDto])))]
pub async fn list_unknown_devices(
    State(s): State<AppState>,
    _staff: Staff,
) -> Result<Json<Vec<UnknownDeviceDto>>, ApiError> {
    Ok(Json(
        s.store
            .list_unknown_devices()
            .await?
            .into_iter()
            .map(|u| UnknownDeviceDto {
                protocol: u.protocol,
                hardware_id: u.hardware_id,
                first_seen: ts(u.first_seen),
                last_seen: ts(u.last_seen),
                attempts: u.attempts,
                last_remote: u.last_remote,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/cases", tag = "setup", request_body = NewCase,
    security(("staff_token" = [])),
    responses((status = 201, body = CaseDto), (status = 422, body = ErrorBody)))]
pub async fn create_case(
    State(s): State<AppState>,
    _staff: Staff,
    body: Body,
) -> Result<(StatusCode, Json<CaseDto>), ApiError> {
    let req: NewCase = parse_json(&body.map_err(body_error)?)?;
    if req.reference.trim().is_empty() || req.reference.len() > 100 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "reference: 1 to 100 characters",
        ));
    }
    let c = s
        .store
        .create_case(
            req.reference,
            PersonId(req.offender_id),
            req.protected_ids.into_iter().map(PersonId).collect(),
            now(),
        )
        .await?;
    s.pipeline.sync_roster().await;
    Ok((StatusCode::CREATED, Json(c.into())))
}

#[utoipa::path(get, path = "/api/v1/cases", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, body = [CaseDto])))]
pub async fn list_cases(
    State(s): State<AppState>,
    _staff: Staff,
) -> Result<Json<Vec<CaseDto>>, ApiError> {
    Ok(Json(
        s.store
            .list_cases()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/orders", tag = "setup", request_body = NewOrder,
    security(("staff_token" = [])),
    responses((status = 201, body = OrderDto), (status = 422, body = ErrorBody)))]
pub async fn create_order(
    State(s): State<AppState>,
    _staff: Staff,
    body: Body,
) -> Result<(StatusCode, Json<OrderDto>), ApiError> {
    let req: NewOrder = parse_json(&body.map_err(body_error)?)?;
    let (order, schedules) = req.into_domain()?;
    let o = s.store.create_order(order, now()).await?;
    for (zone, schedule) in o.zones.iter().zip(&schedules) {
        if let Some(w) = schedule {
            let text = serde_json::to_string(w).map_err(ApiError::internal)?;
            s.store.set_zone_schedule(zone.id, Some(text)).await?;
        }
    }
    s.pipeline.sync_roster().await;
    let mut dto = OrderDto::from(o);
    for (z, schedule) in dto.zones.iter_mut().zip(schedules) {
        z.schedule = schedule;
    }
    Ok((StatusCode::CREATED, Json(dto)))
}

#[utoipa::path(get, path = "/api/v1/orders", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, body = [OrderDto])))]
pub async fn list_orders(
    State(s): State<AppState>,
    _staff: Staff,
) -> Result<Json<Vec<OrderDto>>, ApiError> {
    Ok(Json(orders_with_schedules(&s).await?))
}

/// Orders with their zones' schedules filled in.
pub async fn orders_with_schedules(s: &AppState) -> Result<Vec<OrderDto>, ApiError> {
    let schedules: std::collections::HashMap<i64, Vec<ScheduleWindowDto>> = s
        .store
        .zone_schedules()
        .await?
        .into_iter()
        .filter_map(|(id, text)| Some((id.0, serde_json::from_str(&text).ok()?)))
        .collect();
    let mut orders: Vec<OrderDto> = s
        .store
        .list_orders()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    for z in orders.iter_mut().flat_map(|o| o.zones.iter_mut()) {
        z.schedule = schedules.get(&z.id).cloned();
    }
    Ok(orders)
}

/// The latest position of every device, each with its time, accuracy and source.
#[utoipa::path(get, path = "/api/v1/positions/latest", tag = "monitoring", security(("staff_token" = [])),
    responses((status = 200, body = [PositionDto])))]
pub async fn positions_latest(
    State(s): State<AppState>,
    _staff: Staff,
) -> Result<Json<Vec<PositionDto>>, ApiError> {
    Ok(Json(latest_positions(&s).await?))
}

async fn latest_positions(s: &AppState) -> Result<Vec<PositionDto>, ApiError> {
    let devices = s.store.list_devices().await?;
    let people = s.store.list_people().await?;
    let fixes = s.store.latest_fixes().await?;
    Ok(fixes
        .into_iter()
        .map(|f| {
            let d = devices.iter().find(|d| d.id == f.device_id);
            let owner = d.and_then(|d| d.owner);
            PositionDto {
                fix_id: f.id.map(|i| i.0).unwrap_or_default(),
                device_id: f.device_id.0,
                device_kind: d.map(|d| d.kind.to_string()),
                person_id: owner.map(|p| p.0),
                role: owner
                    .and_then(|o| people.iter().find(|p| p.id == o))
                    .map(|p| p.role.to_string()),
                lat: f.position.lat(),
                lon: f.position.lon(),
                accuracy_m: f.accuracy_m,
                speed_mps: f.speed_mps,
                course_deg: f.course_deg,
                source: f.source.to_string(),
                device_time: ts(f.device_time),
                received_time: ts(f.received_time),
                flags: flag_names(f.flags),
            }
        })
        .collect())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TrackQuery {
    /// RFC 3339 start (inclusive).
    pub from: String,
    /// RFC 3339 end (exclusive).
    pub to: String,
}

/// A device's fixes in a time window (at most 10,000).
#[utoipa::path(get, path = "/api/v1/devices/{id}/track", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Device id"), TrackQuery),
    responses((status = 200, body = [PositionDto]), (status = 422, body = ErrorBody)))]
pub async fn track(
    State(s): State<AppState>,
    _staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<TrackQuery>,
) -> Result<Json<Vec<PositionDto>>, ApiError> {
    let from = parse_ts("from", &q.from)?;
    let to = parse_ts("to", &q.to)?;
    let fixes = s.store.track(DeviceId(id), from, to, 10_000).await?;
    Ok(Json(
        fixes
            .into_iter()
            .map(|f| PositionDto {
                fix_id: f.id.map(|i| i.0).unwrap_or_default(),
                device_id: f.device_id.0,
                device_kind: None,
                person_id: None,
                role: None,
                lat: f.position.lat(),
                lon: f.position.lon(),
                accuracy_m: f.accuracy_m,
                speed_mps: f.speed_mps,
                course_deg: f.course_deg,
                source: f.source.to_string(),
                device_time: ts(f.device_time),
                received_time: ts(f.received_time),
                flags: flag_names(f.flags),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AlertQuery {
    /// Only alerts not yet resolved (default true).
    pub active: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "monitoring", security(("staff_token" = [])),
    params(AlertQuery), responses((status = 200, body = [AlertDto])))]
pub async fn list_alerts(
    State(s): State<AppState>,
    _staff: Staff,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Vec<AlertDto>>, ApiError> {
    let alerts = s.store.list_alerts(q.active.unwrap_or(true), 500).await?;
    Ok(Json(alerts.into_iter().map(Into::into).collect()))
}

/// Moves an alert along its lifecycle.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/state", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Alert id")), request_body = AlertStateChange,
    responses((status = 200, body = AlertDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_alert_state(
    State(s): State<AppState>,
    _staff: Staff,
    Path(id): Path<i64>,
    body: Body,
) -> Result<Json<AlertDto>, ApiError> {
    let req: AlertStateChange = parse_json(&body.map_err(body_error)?)?;
    let state: AlertState = parse_enum("state", &req.state)?;
    if state == AlertState::Raised {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "state: an alert cannot be set back to raised",
        ));
    }
    let rec = s.store.set_alert_state(AlertId(id), state, now()).await?;
    let dto = AlertDto::from(rec);
    s.hub.publish(crate::live::LiveEvent::Alert(dto.clone()));
    Ok(Json(dto))
}

/// Everything the console's map needs at once: positions, active alerts, orders (with zones)
/// and cases.
#[utoipa::path(get, path = "/api/v1/snapshot", tag = "monitoring", security(("staff_token" = [])),
    responses((status = 200, body = Snapshot)))]
pub async fn snapshot(
    State(s): State<AppState>,
    _staff: Staff,
) -> Result<Json<Snapshot>, ApiError> {
    Ok(Json(Snapshot {
        server_time: ts(now()),
        positions: latest_positions(&s).await?,
        alerts: s
            .store
            .list_alerts(true, 500)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        orders: orders_with_schedules(&s).await?,
        cases: s
            .store
            .list_cases()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}
