//! The ingest doors over HTTP: Bulwark's native batch API and the OsmAnd / Traccar Client
//! protocol. Every door validates the whole request first (nothing is stored half-way), stores
//! durably, and only then answers the device.

use crate::AppState;
use crate::dto::{Batch, BatchResult, parse_enum, parse_ts};
use crate::error::parse_json;
use crate::error::{ApiError, ErrorBody, ErrorCode, body_error};
use crate::pipeline::now;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use domain::*;
use std::net::SocketAddr;
use store::FixOutcome;

/// A fix as a door decoded it, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFix {
    pub device_time: UnixMicros,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub course_deg: Option<f64>,
    pub altitude_m: Option<f64>,
    pub source: FixSource,
    pub flags: FixFlags,
    pub seq: Option<i64>,
}

/// 2000-01-01T00:00:00Z: older device times are a reset clock (GPS week rollover), not data.
const EARLIEST_US: i64 = 946_684_800_000_000;

/// Refuses device times in the future (beyond the allowed skew) or before 2000.
pub fn check_time(
    state: &AppState,
    device_time: UnixMicros,
    received: UnixMicros,
    field: &str,
) -> Result<(), ApiError> {
    let max_future_s = state.config.ingest.max_future_s;
    if device_time.0 > received.0 + max_future_s * UnixMicros::SECOND {
        return Err(ApiError::new(
            ErrorCode::TimestampInFuture,
            format!(
                "{field}: {} is more than {max_future_s} s ahead of the server clock",
                crate::dto::ts(device_time)
            ),
        ));
    }
    if device_time.0 < EARLIEST_US {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{field}: before 2000-01-01 (device clock not set)"),
        ));
    }
    Ok(())
}

/// Validates one decoded fix. `index` names it in error messages.
pub fn validate(
    state: &AppState,
    device: DeviceId,
    raw: RawFix,
    received: UnixMicros,
    index: usize,
) -> Result<Fix, ApiError> {
    let field = |name: &str| format!("fixes[{index}].{name}");
    let position = LatLon::new(raw.lat, raw.lon).map_err(|e| {
        ApiError::new(
            ErrorCode::CoordinatesOutOfRange,
            format!("{}: {e}", field("lat/lon")),
        )
    })?;
    let limits = &state.config.ingest;
    if raw.device_time.0 > received.0 + limits.max_future_s * UnixMicros::SECOND {
        return Err(ApiError::new(
            ErrorCode::TimestampInFuture,
            format!(
                "{}: {} is more than {} s ahead of the server clock",
                field("time"),
                crate::dto::ts(raw.device_time),
                limits.max_future_s
            ),
        ));
    }
    if raw.device_time.0 < EARLIEST_US {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!(
                "{}: before 2000-01-01 (device clock not set)",
                field("time")
            ),
        ));
    }
    let check = |name: &str, v: Option<f64>, lo: f64, hi: f64| -> Result<Option<f64>, ApiError> {
        match v {
            Some(x) if !(x.is_finite() && (lo..=hi).contains(&x)) => Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("{}: {x} is not in [{lo}, {hi}]", field(name)),
            )),
            other => Ok(other),
        }
    };
    let accuracy_m = check("accuracy_m", raw.accuracy_m, 0.0, 100_000.0)?;
    // 350 m/s: faster than any ground vehicle; anything above is a decoding error.
    let speed_mps = check("speed_mps", raw.speed_mps, 0.0, 350.0)?;
    let course_deg = check("course_deg", raw.course_deg, 0.0, 360.0)?.map(|c| c % 360.0);
    let altitude_m = check("altitude_m", raw.altitude_m, -12_262.0, 18_000.0)?;
    let mut flags = raw.flags;
    if received.0 - raw.device_time.0 > limits.late_after_s * UnixMicros::SECOND {
        flags = flags.with(FixFlags::LATE);
    }
    Ok(Fix {
        id: None,
        device_id: device,
        device_time: raw.device_time,
        received_time: received,
        position,
        accuracy_m,
        speed_mps,
        course_deg,
        altitude_m,
        source: raw.source,
        flags,
        seq: raw.seq,
    })
}

/// Stores validated fixes durably and records door metrics.
pub async fn store_fixes(
    state: &AppState,
    door: &'static str,
    fixes: Vec<Fix>,
) -> Result<Vec<FixOutcome>, ApiError> {
    Ok(store_reports(state, door, fixes, Vec::new()).await?.0)
}

/// Stores validated fixes and events durably, in one transaction, and records door metrics.
pub async fn store_reports(
    state: &AppState,
    door: &'static str,
    fixes: Vec<Fix>,
    events: Vec<DeviceEvent>,
) -> Result<(Vec<FixOutcome>, Vec<bool>), ApiError> {
    let started = std::time::Instant::now();
    let n = fixes.len();
    let (outcomes, events_new) = state.store.insert_reports(fixes, events).await?;
    metrics::counter!("bulwark_events_stored_total", "door" => door)
        .increment(events_new.iter().filter(|x| **x).count() as u64);

    let dup = outcomes
        .iter()
        .filter(|o| matches!(o, FixOutcome::Duplicate(_)))
        .count();
    metrics::counter!("bulwark_fixes_stored_total", "door" => door).increment((n - dup) as u64);
    metrics::counter!("bulwark_fixes_duplicate_total", "door" => door).increment(dup as u64);
    metrics::histogram!("bulwark_ingest_durable_seconds", "door" => door)
        .record(started.elapsed().as_secs_f64());
    Ok((outcomes, events_new))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Native batch ingest.
///
/// The device authenticates with its token. The batch is validated as a whole: one bad fix
/// rejects the request and nothing is stored. Resent fixes (same `seq`, or same time when no
/// `seq`) are acknowledged as duplicates and not stored twice. The response comes only after
/// the fixes are durable.
#[utoipa::path(
    post, path = "/api/v1/ingest/batch", tag = "ingest",
    request_body = Batch,
    security(("device_token" = [])),
    responses(
        (status = 200, description = "All fixes durable", body = BatchResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown device token", body = ErrorBody),
        (status = 413, description = "Body or batch too large", body = ErrorBody),
        (status = 422, description = "A fix is invalid (coordinates, time, field ranges)", body = ErrorBody),
    )
)]
pub async fn native_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<BatchResult>, ApiError> {
    let received = now();
    let token = bearer(&headers).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "missing `Authorization: Bearer <device token>`",
        )
    })?;
    let device = state
        .store
        .device_by_token(token.to_string())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown device token"))?;
    let body = body.map_err(body_error)?;
    let batch: Batch = parse_json(&body)?;
    let max = state.config.ingest.max_batch_fixes;
    if batch.fixes.len() + batch.events.len() > max {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "{} fixes and events in one batch; at most {max}",
                batch.fixes.len() + batch.events.len()
            ),
        ));
    }
    if batch.fixes.is_empty() && batch.events.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidField, "fixes: empty batch"));
    }
    let mut events = Vec::with_capacity(batch.events.len());
    for (i, e) in batch.events.into_iter().enumerate() {
        let device_time = parse_ts(&format!("events[{i}].time"), &e.time)?;
        check_time(&state, device_time, received, &format!("events[{i}].time"))?;
        let position = match (e.lat, e.lon) {
            (Some(lat), Some(lon)) => Some(LatLon::new(lat, lon).map_err(|err| {
                ApiError::new(
                    ErrorCode::CoordinatesOutOfRange,
                    format!("events[{i}]: {err}"),
                )
            })?),
            (None, None) => None,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    format!("events[{i}]: lat and lon go together"),
                ));
            }
        };
        events.push(DeviceEvent {
            id: None,
            device_id: device.id,
            kind: parse_enum(&format!("events[{i}].kind"), &e.kind)?,
            device_time,
            received_time: received,
            position,
        });
    }
    let mut fixes = Vec::with_capacity(batch.fixes.len());
    for (i, f) in batch.fixes.into_iter().enumerate() {
        let source = match &f.source {
            Some(s) => parse_enum(&format!("fixes[{i}].source"), s)?,
            None => FixSource::Gnss,
        };
        let raw = RawFix {
            device_time: parse_ts(&format!("fixes[{i}].time"), &f.time)?,
            lat: f.lat,
            lon: f.lon,
            accuracy_m: f.accuracy_m,
            speed_mps: f.speed_mps,
            course_deg: f.course_deg,
            altitude_m: f.altitude_m,
            source,
            flags: FixFlags::default(),
            seq: f.seq,
        };
        fixes.push(validate(&state, device.id, raw, received, i)?);
    }
    let (outcomes, events_new) = store_reports(&state, "native", fixes, events).await?;
    let duplicates = outcomes
        .iter()
        .filter(|o| matches!(o, FixOutcome::Duplicate(_)))
        .count();
    Ok(axum::Json(BatchResult {
        stored: outcomes.len() - duplicates,
        duplicates,
        fix_ids: outcomes.iter().map(|o| o.id().0).collect(),
        events_stored: events_new.iter().filter(|n| **n).count(),
    }))
}

/// OsmAnd / Traccar Client.
///
/// Query-string form (`?id=..&lat=..&lon=..&timestamp=..`, GET or POST, or the same as a form
/// body) and the JSON form of the newer Traccar Client (`Content-Type: application/json`).
/// Answers `200` with an empty body once the fix is durable; an unregistered id is refused
/// (`404 unknown_device`) and recorded for an administrator.
#[utoipa::path(
    post, path = "/ingest/osmand", tag = "ingest",
    params(
        ("id" = Option<String>, Query, description = "Device identifier (or `deviceid`)"),
        ("lat" = Option<f64>, Query, description = "Latitude"),
        ("lon" = Option<f64>, Query, description = "Longitude"),
        ("timestamp" = Option<String>, Query, description = "Unix seconds, milliseconds, or ISO 8601"),
        ("speed" = Option<f64>, Query, description = "Knots"),
        ("bearing" = Option<f64>, Query, description = "Degrees"),
        ("accuracy" = Option<f64>, Query, description = "Metres"),
    ),
    responses(
        (status = 200, description = "Fix durable"),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 404, description = "Unregistered device", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody),
    )
)]
pub async fn osmand(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let received = now();
    let body = body.map_err(body_error)?;
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let report = if json {
        crate::osmand::parse_json(&body)?
    } else {
        let query = uri.query().unwrap_or("");
        let text = if query.is_empty() && method == Method::POST {
            std::str::from_utf8(&body)
                .map_err(|_| ApiError::new(ErrorCode::InvalidField, "form body is not UTF-8"))?
        } else {
            query
        };
        crate::osmand::parse_query(text, received)?
    };
    let device = match state
        .store
        .device_by_hardware_id(Protocol::Osmand, report.id.clone())
        .await?
    {
        Some((d, _)) => d,
        None => {
            state
                .store
                .record_unknown_device(
                    Protocol::Osmand,
                    report.id.clone(),
                    Some(remote.ip().to_string()),
                    received,
                )
                .await?;
            tracing::warn!(protocol = "osmand", hardware_id = %report.id, remote = %remote.ip(), "unknown device refused");
            return Err(ApiError::new(
                ErrorCode::UnknownDevice,
                "this device is not registered; an administrator must register it",
            ));
        }
    };
    let Some(raw) = report.fix else {
        // A report without coordinates (battery or cell data only) is accepted and has nothing
        // to store as a position.
        return Ok(StatusCode::OK);
    };
    let fix = validate(&state, device.id, raw, received, 0)?;
    store_fixes(&state, "osmand", vec![fix]).await?;
    Ok(StatusCode::OK)
}
