//! The ingest doors over HTTP: Bulwark's native batch API and the OsmAnd / Traccar Client
//! protocol. Every door validates the whole request first (nothing is stored half-way), stores
//! durably, and only then answers the device.

mod health;
pub mod listeners;
pub use health::{HEALTH_REPEAT, HealthSeen};

use crate::AppState;
use crate::http::dto::{Batch, BatchResult, parse_enum, parse_ts};
use crate::http::error::parse_json;
use crate::http::error::{ApiError, ErrorBody, ErrorCode, body_error};
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
                crate::http::dto::ts(device_time)
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
                crate::http::dto::ts(raw.device_time),
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

/// The fastest a monitored person can plausibly move, in m/s: 100 m/s (360 km/h) is above
/// the fastest Korean train (KTX, 305 km/h ≈ 85 m/s) and below any decoding or spoofing jump
/// worth catching (12 km in 5 s is 2,400 m/s).
pub const MAX_PLAUSIBLE_SPEED_MPS: f64 = 100.0;

/// Flags (`integrity_suspect`, beside the fix, which is stored unchanged) every fix of
/// `device` in `fixes` that is an impossible jump both from the device's previous sound fix
/// and from its immediately previous fix, and returns one `spoofing` event
/// (`impossible_jump`) for staff if any was. Fixes are compared in device-time order.
///
/// Two references, so that a discontinuity is flagged once, not forever: after a fake point
/// the next real one is close to the last sound fix (not flagged); and when the device really
/// is elsewhere (a bad earlier fix, or a consistent stream of fakes), only the first fix of
/// the new place is flagged, the alert is raised, and the ones after it agree with it.
pub async fn flag_impossible_jumps(
    state: &AppState,
    protocol: Protocol,
    device: DeviceId,
    fixes: &mut [Fix],
    received: UnixMicros,
) -> Result<Option<DeviceEvent>, ApiError> {
    let mut order: Vec<usize> = (0..fixes.len())
        .filter(|&i| fixes.get(i).is_some_and(|f| f.device_id == device))
        .collect();
    order.sort_by_key(|&i| fixes.get(i).map(|f| f.device_time));
    let Some(first) = order.first().and_then(|&i| fixes.get(i)) else {
        return Ok(None);
    };
    let (mut sound, mut previous) = jump_references(state, device, first.device_time).await?;
    let mut jumped = None;
    for i in order {
        let Some(f) = fixes.get_mut(i) else { continue };
        let from = |r: &Option<Fix>| {
            r.as_ref()
                .is_some_and(|r| domain::impossible_jump(r, f, MAX_PLAUSIBLE_SPEED_MPS))
        };
        if from(&sound) && from(&previous) {
            f.flags = f.flags.with(FixFlags::INTEGRITY_SUSPECT);
            jumped.get_or_insert(f.device_time);
        } else if !f.flags.has(FixFlags::INTEGRITY_SUSPECT) {
            sound = Some(f.clone());
        }
        previous = Some(f.clone());
    }
    Ok(jumped.map(|t| {
        metrics::counter!("bulwark_spoofing_suspected_total", "protocol" => protocol.as_str(), "sign" => "impossible_jump").increment(1);
        // No coordinates in the log: the device may be her phone.
        tracing::warn!(protocol = protocol.as_str(), %device, "impossible jump between fixes; flagged integrity_suspect");
        spoofing_event(device, "impossible_jump", t, received)
    }))
}

/// The references of the impossible-jump check for fixes of `device` from `time` on: its
/// latest sound fix and its latest fix at or before `time`. From [`LastFixes`] when it can
/// answer, else from the store (loading the cache when the device's latest fix is before
/// `time`, the usual case).
async fn jump_references(
    state: &AppState,
    device: DeviceId,
    time: UnixMicros,
) -> Result<(Option<Fix>, Option<Fix>), ApiError> {
    let cache = &state.last_fixes;
    if let Some(refs) = cache.get(device, time) {
        return Ok(refs);
    }
    let version = cache.version(device);
    let end = UnixMicros(i64::MAX);
    // The server's own read: the references of the jump check, shown to no one.
    let own = store::Authorized::system("ingest: references of the impossible-jump check");
    let sound = state.store.last_fix_before(&own, device, end, true).await?;
    let latest = state
        .store
        .last_fix_before(&own, device, end, false)
        .await?;
    cache.load(device, version, sound.clone(), latest.clone());
    if latest.as_ref().is_none_or(|l| l.device_time < time) {
        return Ok((sound, latest));
    }
    // A late upload: the references are the fixes before it, not the latest ones.
    Ok((
        state
            .store
            .last_fix_before(&own, device, time, true)
            .await?,
        state
            .store
            .last_fix_before(&own, device, time, false)
            .await?,
    ))
}

/// Each device's latest fix and latest sound fix (not `integrity_suspect`) by device time, as
/// stored: the references of the impossible-jump check, kept in memory so that the check does
/// not read the store for every frame (it read it twice per frame, a blocking-pool round trip
/// each, before the fixes were even stored).
///
/// An entry is used only while it is complete: loaded from the store (the device's overall
/// latest fixes), and every fix stored since passed through [`LastFixes::stored`] (every door
/// stores through [`store_reports_with_scans`]). A per-device version, bumped by every store,
/// keeps a load that raced with a store from installing what it read. Only a fix strictly
/// newer than the cached latest one updates the entry; any other (a late upload, a second fix
/// in the same device time, which the store may flag on a comparison the cache does not
/// repeat) drops it, and the next check reads the store again. A fix not after the cached
/// latest one is checked against the store, as before. Retention may purge a cached fix: a
/// reference that old (72 h or more) can never make a jump impossible at 100 m/s, so the
/// outcome is the same.
#[derive(Default)]
pub struct LastFixes {
    devices: std::sync::Mutex<std::collections::HashMap<DeviceId, JumpRefs>>,
}

#[derive(Debug, Clone, Default)]
struct JumpRefs {
    version: u64,
    /// `None` when not loaded (or dropped): the store answers.
    refs: Option<(Option<Fix>, Option<Fix>)>,
}

impl LastFixes {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<DeviceId, JumpRefs>> {
        // The map holds copies of stored fixes: a poisoned lock's contents are still sound.
        self.devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// (latest sound, latest) for fixes after the cached latest one.
    fn get(&self, device: DeviceId, time: UnixMicros) -> Option<(Option<Fix>, Option<Fix>)> {
        let map = self.lock();
        let (sound, latest) = map.get(&device)?.refs.as_ref()?;
        match latest {
            Some(l) if l.device_time >= time => None,
            _ => Some((sound.clone(), latest.clone())),
        }
    }

    fn version(&self, device: DeviceId) -> u64 {
        self.lock().get(&device).map(|e| e.version).unwrap_or(0)
    }

    /// Installs what the store said, unless a store of this device happened since `version`.
    fn load(&self, device: DeviceId, version: u64, sound: Option<Fix>, latest: Option<Fix>) {
        let mut map = self.lock();
        let entry = map.entry(device).or_default();
        if entry.version == version {
            entry.refs = Some((sound, latest));
        }
    }

    /// Records fixes just stored (the new ones, with the flags they were stored with).
    pub fn stored(&self, fixes: &[Fix]) {
        let mut map = self.lock();
        for f in fixes {
            let entry = map.entry(f.device_id).or_default();
            entry.version += 1;
            let Some((sound, latest)) = entry.refs.as_mut() else {
                continue;
            };
            if latest
                .as_ref()
                .is_some_and(|l| f.device_time <= l.device_time)
            {
                entry.refs = None;
                continue;
            }
            *latest = Some(f.clone());
            if !f.flags.has(FixFlags::INTEGRITY_SUSPECT) {
                *sound = Some(f.clone());
            }
        }
    }

    /// Devices with an entry.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `spoofing` event of `device` with its sign (`impossible_jump`, `second_connection`).
pub fn spoofing_event(
    device: DeviceId,
    sign: &str,
    device_time: UnixMicros,
    received: UnixMicros,
) -> DeviceEvent {
    DeviceEvent {
        id: None,
        device_id: device,
        kind: DeviceEventKind::Spoofing,
        device_time,
        received_time: received,
        position: None,
        code: Some(sign.to_string()),
    }
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
    store_reports_with_scans(state, door, fixes, events, Vec::new(), Vec::new()).await
}

/// [`store_reports`] with the network scans and health reports of the same frames, in the
/// same transaction: one durable write per frame.
pub async fn store_reports_with_scans(
    state: &AppState,
    door: &'static str,
    fixes: Vec<Fix>,
    events: Vec<DeviceEvent>,
    scans: Vec<store::NewScan>,
    health: Vec<(DeviceId, store::DeviceHealth)>,
) -> Result<(Vec<FixOutcome>, Vec<bool>), ApiError> {
    let started = std::time::Instant::now();
    let n = fixes.len();
    if !scans.is_empty() {
        metrics::counter!("bulwark_network_scans_stored_total", "door" => door)
            .increment(scans.len() as u64);
    }
    let sent = fixes.clone();
    let health = state.health_seen.new_only(health);
    let remembered = health.clone();
    let (outcomes, events_new) = state
        .store
        .insert_reports_with_health(fixes, events, scans, health)
        .await?;
    state.health_seen.stored(&remembered);
    let new: Vec<Fix> = sent
        .into_iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, FixOutcome::Stored(_)))
        .map(|(f, _)| f)
        .collect();
    state.last_fixes.stored(&new);
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
/// rejects the request and nothing is stored. Resent fixes (same `seq`, or same time and position
/// when no `seq`) are acknowledged as duplicates and not stored twice. The response comes only after
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
    let received = state.clock.now();
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
            code: None,
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
    events.extend(
        flag_impossible_jumps(&state, Protocol::Native, device.id, &mut fixes, received).await?,
    );
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

/// Converts a decoded protocol fix into the form every door validates. `frame_suspect`: the
/// frame as a whole failed a length or checksum check.
pub fn raw_from_decoded(f: &protocols::DecodedFix, frame_suspect: bool) -> RawFix {
    let mut flags = FixFlags::default();
    if f.integrity_suspect || frame_suspect {
        flags = flags.with(FixFlags::INTEGRITY_SUSPECT);
    }
    if !f.gnss_valid {
        flags = flags.with(FixFlags::NO_GNSS_FIX);
    }
    RawFix {
        device_time: f.device_time,
        lat: f.position.lat(),
        lon: f.position.lon(),
        accuracy_m: f.accuracy_m,
        speed_mps: f.speed_mps,
        course_deg: f.course_deg,
        altitude_m: f.altitude_m,
        source: f.source,
        flags,
        // Not the protocol's frame serial: the store treats `seq` as unique per device forever,
        // and a GT06 serial is 16 bits that wrap and restart at every reboot, so new fixes
        // would be dropped as duplicates. A resent record repeats its device time, which is the
        // store's duplicate key when `seq` is absent.
        seq: None,
    }
}

/// The stored kind of a decoded device event, and the protocol's code for the kinds without
/// one of their own. Every alarm maps: SOS, tamper, removal, battery and power cut feed their
/// own rules; every other alarm (accident, tow, door, lock, temperature, geofence, jamming,
/// power off, fall, overspeed, vibration...) becomes a `device_alarm` carrying
/// `<protocol>:<name>`, so it reaches staff. Only "charger disconnected" is not an alarm
/// (the battery rule acts on "connected").
pub fn event_kind(
    protocol: Protocol,
    k: &protocols::EventKind,
) -> Option<(DeviceEventKind, Option<String>)> {
    use protocols::EventKind as K;
    let alarm = |name: &str| {
        Some((
            DeviceEventKind::DeviceAlarm,
            Some(format!(
                "{}:{}",
                protocol.as_str(),
                name.chars().take(64).collect::<String>()
            )),
        ))
    };
    let kind = match k {
        K::Sos => DeviceEventKind::Sos,
        K::Tamper => DeviceEventKind::Tamper,
        K::Removal => DeviceEventKind::Removal,
        K::LowBattery => DeviceEventKind::LowBattery,
        K::PowerCut => DeviceEventKind::PowerCut,
        K::Charging(true) => DeviceEventKind::Charging,
        K::Charging(false) => return None,
        K::PowerOff => return alarm("powerOff"),
        K::FallDown => return alarm("fallDown"),
        K::Vibration => return alarm("vibration"),
        K::Overspeed => return alarm("overspeed"),
        K::GeofenceEnter => return alarm("geofenceEnter"),
        K::GeofenceExit => return alarm("geofenceExit"),
        K::Jamming => return alarm("jamming"),
        K::Other(name) => return alarm(name),
    };
    Some((kind, None))
}

/// A decoded event as stored, or `None` for "charger disconnected". A device time the
/// server would refuse (clock unset, in the future) is replaced by the receipt time: an SOS
/// must not be lost to a wrong device clock.
pub fn event_from_decoded(
    state: &AppState,
    protocol: Protocol,
    device: DeviceId,
    e: &protocols::DeviceEvent,
    received: UnixMicros,
) -> Option<DeviceEvent> {
    let Some((kind, code)) = event_kind(protocol, &e.kind) else {
        metrics::counter!("bulwark_device_events_ignored_total", "protocol" => protocol.as_str())
            .increment(1);
        tracing::debug!(%device, kind = ?e.kind, "device event that is not an alarm");
        return None;
    };
    let device_time = match e.device_time {
        Some(t) if check_time(state, t, received, "event").is_ok() => t,
        _ => received,
    };
    tracing::info!(protocol = protocol.as_str(), %device, kind = %kind, code = ?code, suspect = e.integrity_suspect, "device event");
    Some(DeviceEvent {
        id: None,
        device_id: device,
        kind,
        device_time,
        received_time: received,
        position: e.position,
        code,
    })
}

/// Stores a frame the decoder recognised but could not turn into data, raw, durably: the
/// device may be acknowledged only after this returns (ARCHITECTURE.md, "nothing acknowledged
/// is lost"). Counted per protocol; the note is the decoder's and names no coordinate.
pub async fn store_unknown_frame(
    state: &AppState,
    protocol: Protocol,
    device: DeviceId,
    bytes: Vec<u8>,
    note: &str,
    received: UnixMicros,
) -> Result<i64, ApiError> {
    let len = bytes.len();
    let id = state
        .store
        .insert_unknown_frame(store::UnknownFrame {
            id: None,
            device_id: device,
            protocol,
            received_time: received,
            bytes,
            note: note.to_string(),
        })
        .await?;
    metrics::counter!("bulwark_unknown_frames_stored_total", "protocol" => protocol.as_str())
        .increment(1);
    tracing::info!(protocol = protocol.as_str(), %device, bytes = len, note, "frame not decoded; stored raw before the ack");
    Ok(id)
}

/// A decoded network scan as stored: its time is the device's when plausible (else the
/// receipt time), and it points at the fix of the same frame (same device time, or the only
/// fix) by index into `fixes`. `None` when it lists no cell and no access point.
pub fn scan_from_decoded(
    state: &AppState,
    device: DeviceId,
    n: &protocols::NetworkScan,
    fixes: &[protocols::DecodedFix],
    received: UnixMicros,
) -> Option<(store::NetworkScan, Option<usize>)> {
    if n.cells.is_empty() && n.wifi.is_empty() {
        return None;
    }
    let scan_time = match n.time {
        Some(t) if check_time(state, t, received, "network scan").is_ok() => t,
        _ => received,
    };
    let fix = fixes
        .iter()
        .position(|f| Some(f.device_time) == n.time)
        .or((fixes.len() == 1).then_some(0));
    Some((
        store::NetworkScan {
            id: None,
            device_id: device,
            scan_time,
            received_time: received,
            fix_id: None,
            cells: n.cells.clone(),
            wifi: n.wifi.clone(),
        },
        fix,
    ))
}

/// A decoded status as the health report to store (`None` when it says nothing).
pub fn health_of(
    status: &protocols::DeviceStatus,
    received: UnixMicros,
) -> Option<store::DeviceHealth> {
    if status.is_empty() {
        return None;
    }
    Some(store::DeviceHealth {
        reported_at: received,
        battery_percent: status.battery_percent,
        battery_volts: status.battery_volts,
        power_volts: status.power_volts,
        charging: status.charging,
        signal: status.signal,
        satellites: status.satellites.map(i64::from),
        heart_rate_bpm: status.heart_rate_bpm,
        body_temp_c: status.body_temp_c,
    })
}

/// Records a device's health report (battery, charging, signal, body contact) from a frame
/// that stored nothing else; a frame with fixes, events or scans stores its health with them
/// ([`store_reports_with_scans`]). Health is not evidence of a position, so a failure here is
/// logged and does not fail the report.
pub async fn record_health(
    state: &AppState,
    device: DeviceId,
    status: &protocols::DeviceStatus,
    received: UnixMicros,
) {
    let Some(health) = health_of(status, received) else {
        return;
    };
    if state.health_seen.repeats(device, &health) {
        return;
    }
    match state.store.record_device_health(device, health).await {
        Ok(()) => state.health_seen.stored(&[(device, health)]),
        Err(e) => tracing::warn!(%device, error = %e, "device health not recorded"),
    }
}

/// The password of an HTTP Basic `Authorization` header, or a `token` query parameter.
fn presented_secret(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    use base64::Engine as _;
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|up| up.split_once(':').map(|(_, p)| p.to_string()));
    basic.or_else(|| {
        uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        })
    })
}

fn app_protocol(app: protocols::http::App) -> (Protocol, &'static str) {
    use protocols::http::App;
    match app {
        App::OsmAnd => (Protocol::Osmand, "osmand"),
        App::OwnTracks => (Protocol::OwnTracks, "owntracks"),
        App::GpsLogger => (Protocol::GpsLogger, "gpslogger"),
        App::Overland => (Protocol::Overland, "overland"),
    }
}

/// One phone-app request: decode, identify and authenticate every device in it, validate the
/// whole request, store it durably, then answer what the app expects.
async fn phone_app(
    app: protocols::http::App,
    state: AppState,
    remote: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, ApiError> {
    let received = state.clock.now();
    let (protocol, door) = app_protocol(app);
    let body = body.map_err(body_error)?;
    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let req = protocols::http::HttpRequest {
        method: method.as_str(),
        path_and_query,
        headers: &header_list,
        body: &body,
        received,
    };
    let decoded = protocols::http::decode(app, &req).map_err(|e| {
        let code = match e {
            protocols::http::HttpDecodeError::TooLarge => ErrorCode::BodyTooLarge,
            _ => ErrorCode::InvalidField,
        };
        metrics::counter!("bulwark_ingest_rejected_total", "door" => door, "code" => code.spec().0)
            .increment(1);
        ApiError::new(code, e.to_string())
    })?;
    let secret = presented_secret(&headers, &uri);
    let mut statuses = Vec::new();
    let mut fixes = Vec::new();
    let mut events = Vec::new();
    let mut scans = Vec::new();
    let mut unknown = Vec::new();
    for msg in &decoded.messages {
        let id = msg.identity.clone().ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidField, "no device identity in the request")
        })?;
        // One answer for every refusal (unknown id, no token registered, missing or wrong
        // secret), so ids cannot be enumerated from outside; the logs tell them apart.
        let refused = || {
            ApiError::new(
                ErrorCode::Unauthorized,
                "device credentials missing or wrong, or the device is not registered \
                 (send the device token as the HTTP Basic password or `token`)",
            )
        };
        let device = match state
            .store
            .device_by_hardware_id(protocol, id.clone())
            .await?
        {
            Some((d, true)) => {
                let ok = match &secret {
                    Some(t) => state.store.device_token_matches(d.id, t.clone()).await?,
                    None => false,
                };
                if !ok {
                    metrics::counter!("bulwark_ingest_rejected_total", "door" => door, "code" => "bad_device_token").increment(1);
                    tracing::warn!(protocol = door, device = %d.id, remote = %remote.ip(), "device credentials missing or wrong; refused");
                    return Err(refused());
                }
                d
            }
            Some((d, false)) => {
                // Registered before the phone doors required a token: refused until an
                // administrator issues one (`POST /api/v1/devices/{id}/token`); until then
                // anyone knowing the id could post positions as her phone.
                metrics::counter!("bulwark_ingest_rejected_total", "door" => door, "code" => "device_token_required").increment(1);
                tracing::warn!(protocol = door, device = %d.id, remote = %remote.ip(), "phone registered without a device token: refused; an administrator must issue one with POST /api/v1/devices/{{id}}/token");
                return Err(refused());
            }
            None => {
                state
                    .store
                    .record_unknown_device(
                        protocol,
                        id.clone(),
                        Some(remote.ip().to_string()),
                        received,
                    )
                    .await?;
                tracing::warn!(protocol = door, hardware_id = %id, remote = %remote.ip(), "unknown device refused");
                return Err(refused());
            }
        };
        if let Some(status) = &msg.status {
            statuses.push((device.id, status.clone()));
        }
        if let Some(note) = &msg.unsupported {
            let raw = msg.raw.clone().unwrap_or_else(|| body.to_vec());
            unknown.push((device.id, raw, note.clone()));
        }
        let suspect = msg.integrity.is_suspect();
        let base = fixes.len();
        for f in &msg.fixes {
            let i = fixes.len();
            let raw = raw_from_decoded(f, suspect);
            fixes.push(validate(&state, device.id, raw, received, i)?);
        }
        if let Some((scan, fix)) = msg
            .network
            .as_ref()
            .and_then(|n| scan_from_decoded(&state, device.id, n, &msg.fixes, received))
        {
            scans.push(store::NewScan {
                scan,
                fix: fix.map(|i| base + i),
            });
        }
        events.extend(
            msg.events
                .iter()
                .filter_map(|e| event_from_decoded(&state, protocol, device.id, e, received)),
        );
    }
    let mut devices: Vec<DeviceId> = fixes.iter().map(|f| f.device_id).collect();
    devices.dedup();
    for d in devices {
        events.extend(flag_impossible_jumps(&state, protocol, d, &mut fixes, received).await?);
    }
    if !fixes.is_empty() || !events.is_empty() || !scans.is_empty() {
        let health = statuses
            .iter()
            .filter_map(|(device, status)| Some((*device, health_of(status, received)?)))
            .collect();
        store_reports_with_scans(&state, door, fixes, events, scans, health).await?;
    } else {
        for (device, status) in &statuses {
            record_health(&state, *device, status, received).await;
        }
    }
    // What the app will delete once answered but Bulwark could not decode: raw, first.
    for (device, raw, note) in unknown {
        store_unknown_frame(&state, protocol, device, raw, &note, received).await?;
    }
    let reply = decoded.reply;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, reply.body).into_response();
    if let Some(ct) = reply.content_type
        && let Ok(v) = axum::http::HeaderValue::from_str(ct)
    {
        resp.headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

macro_rules! app_door {
    ($name:ident, $app:ident, $path:literal, $what:literal, $($method:ident),+) => {
        #[doc = $what]
        #[utoipa::path(
            method($($method),+), path = $path, tag = "ingest",
            responses(
                (status = 200, description = "Durable; the body is what the app expects"),
                (status = 400, description = "Malformed request", body = ErrorBody),
                (status = 401, description = "Device credentials missing or wrong, or an unregistered device (recorded for an administrator): one answer, so ids cannot be enumerated", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 422, description = "Invalid values", body = ErrorBody),
            )
        )]
        pub async fn $name(
            State(state): State<AppState>,
            ConnectInfo(remote): ConnectInfo<SocketAddr>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<axum::response::Response, ApiError> {
            phone_app(protocols::http::App::$app, state, remote, method, uri, headers, body).await
        }
    };
}

app_door!(
    osmand,
    OsmAnd,
    "/ingest/osmand",
    "OsmAnd / Traccar Client: query-string form (GET or POST, or a form body) and the JSON form \
     of the newer Traccar Client. Also served on its own port (default 5055) at any path. \
     OsmAnd's own default (its `live_monitoring_url`) is a GET.",
    get,
    post
);
app_door!(
    owntracks,
    OwnTracks,
    "/ingest/owntracks",
    "OwnTracks (HTTP mode): JSON location messages; identity from `X-Limit-U`/`X-Limit-D` or \
     HTTP Basic; replies `[]`.",
    post
);
app_door!(
    gpslogger,
    GpsLogger,
    "/ingest/gpslogger",
    "GPSLogger custom URL: query string or form body (Content-Type may be missing). GPSLogger's \
     default method is GET (`PreferenceHelper.getCustomLoggingHTTPMethod`), its default URL \
     `…/log?lat=%LAT&longitude=%LON&time=%TIME&s=%SPD`; the device id comes from `id` (or \
     `device`, `aid`, `ser`) or, failing those, the HTTP Basic user name.",
    get,
    post
);
app_door!(
    overland,
    Overland,
    "/ingest/overland",
    "Overland: a GeoJSON batch of locations; replies `{\"result\":\"ok\"}` once durable.",
    post
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fix(device: i64, t_s: i64, flags: FixFlags) -> Fix {
        Fix {
            id: None,
            device_id: DeviceId(device),
            device_time: UnixMicros::from_secs(t_s),
            received_time: UnixMicros::from_secs(t_s),
            position: LatLon::new(37.5, 127.0).unwrap(),
            accuracy_m: None,
            speed_mps: None,
            course_deg: None,
            altitude_m: None,
            source: FixSource::Gnss,
            flags,
            seq: None,
        }
    }

    fn times(r: Option<(Option<Fix>, Option<Fix>)>) -> Option<(Option<i64>, Option<i64>)> {
        r.map(|(s, l)| {
            (
                s.map(|f| f.device_time.0 / UnixMicros::SECOND),
                l.map(|f| f.device_time.0 / UnixMicros::SECOND),
            )
        })
    }

    #[test]
    fn the_jump_cache_answers_only_while_it_holds_every_stored_fix() {
        let c = LastFixes::default();
        let d = DeviceId(1);
        // Nothing loaded: the store answers.
        assert_eq!(times(c.get(d, UnixMicros::from_secs(10))), None);
        // Stores of a device not loaded only bump its version.
        c.stored(&[fix(1, 5, FixFlags::default())]);
        assert_eq!(times(c.get(d, UnixMicros::from_secs(10))), None);
        let v = c.version(d);
        c.load(
            d,
            v,
            Some(fix(1, 5, FixFlags::default())),
            Some(fix(1, 5, FixFlags::default())),
        );
        assert_eq!(
            times(c.get(d, UnixMicros::from_secs(10))),
            Some((Some(5), Some(5)))
        );
        // Not after the latest cached fix (a late upload, the same second): the store answers.
        assert_eq!(times(c.get(d, UnixMicros::from_secs(5))), None);
        assert_eq!(times(c.get(d, UnixMicros::from_secs(4))), None);
        // A newer suspect fix moves only the latest; a newer sound one moves both.
        c.stored(&[fix(
            1,
            6,
            FixFlags::default().with(FixFlags::INTEGRITY_SUSPECT),
        )]);
        assert_eq!(
            times(c.get(d, UnixMicros::from_secs(10))),
            Some((Some(5), Some(6)))
        );
        c.stored(&[fix(1, 7, FixFlags::default())]);
        assert_eq!(
            times(c.get(d, UnixMicros::from_secs(10))),
            Some((Some(7), Some(7)))
        );
        // A stored fix not after the latest (late, or the same second) drops the entry.
        c.stored(&[fix(1, 7, FixFlags::default())]);
        assert_eq!(times(c.get(d, UnixMicros::from_secs(10))), None);
        // A load that raced with a store is not installed.
        let v = c.version(d);
        c.stored(&[fix(1, 8, FixFlags::default())]);
        c.load(d, v, None, Some(fix(1, 7, FixFlags::default())));
        assert_eq!(times(c.get(d, UnixMicros::from_secs(10))), None);
        // Other devices are separate.
        assert_eq!(times(c.get(DeviceId(2), UnixMicros::from_secs(10))), None);
        assert_eq!(c.len(), 1);
    }
}
