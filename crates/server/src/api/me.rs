//! The parties' own view of their case (`GET /api/v1/me/case`), who viewed their data
//! (`GET /api/v1/me/access-log`), and the victim app's own reports: her browser's position
//! (`POST /api/v1/me/location`) and a silent SOS (`POST /api/v1/me/sos`), stored as reports of
//! the phone she owns through the same validation and durable store as the device doors.
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
//! latest fix. `crates/server/tests/it/access.rs` checks that his answer is byte-identical
//! wherever she goes.

use crate::AppState;
use crate::alerts::push::class_of;
use crate::http::dto::{
    AccessLogEntry, OwnFix, OwnFixStored, OwnSos, OwnSosStored, parse_enum, parse_ts, ts,
};
use crate::http::error::{ApiError, ErrorBody, ErrorCode, body_error, parse_json};
use crate::ingest::{self, RawFix};
use crate::privacy::auth::Caller;
use crate::privacy::authz;
use access::{Action, OffenderProximity, Precision, Resource, Role};
use audit::{ActorKind, AuditAction};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use domain::{
    AlertRule, AlertState, Case, CaseId, Device, DeviceEvent, DeviceEventKind, DeviceKind, Fix,
    FixFlags, FixSource, PersonId, Severity, UnixMicros,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

/// The caller's own case, shaped for their role.
#[utoipa::path(get, path = "/api/v1/me/case", tag = "access", security(("staff_token" = [])),
    responses((status = 200, description = "Victim view (offender position only inside the disclosure radius; `status`: safe, in_area, approaching, violation or degraded, with `status_reasons`; her own last position; the orders' expiry) or offender view (obligations and his own position)", body = Object),
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
    let view = authz::check(&s, &c, Action::ViewCase, resource, "me/case").await?;
    if c.principal.role == Role::Offender {
        return offender_view(&s, &c, &case, person).await.map(Json);
    }
    victim_view(&s, &c, &case, person, &view.token)
        .await
        .map(Json)
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
        Ok(authz::Allowed {
            precision: Precision::Full,
            token,
        }) => s.store.latest_fix_of_person(&token, me).await?.map(|f| {
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
/// `view`: the token of her allowed view of her case, which the proximity input (both
/// positions, read before the decision on the offender's) is read with.
async fn victim_view(
    s: &AppState,
    c: &Caller,
    case: &Case,
    me: PersonId,
    view: &store::Authorized,
) -> Result<Value, ApiError> {
    let t = s.clock.now();
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
    let hers = fresh(s.store.latest_fix_of_person(view, me).await?, t, stale);
    let his_latest = s.store.latest_fix_of_person(view, case.offender).await?;
    let his_time = his_latest.as_ref().map(|f| f.device_time);
    let his = fresh(his_latest, t, stale);
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
    let mut within = None;
    let offender = match authz::check(s, c, Action::ReadPosition, resource, "me/case").await {
        Ok(authz::Allowed {
            precision: Precision::WithinDisclosure,
            ..
        }) => match (&hers, &his) {
            (Some(h), Some(o)) => {
                within = Some(true);
                json!({
                "lat": o.position.lat(), "lon": o.position.lon(),
                "accuracy_m": o.accuracy_m, "device_time": ts(o.device_time),
                "distance_m": h.position.distance_m(&o.position),
                "bearing_deg": h.position.bearing_deg(&o.position),
                "course_deg": o.course_deg, "speed_mps": o.speed_mps,
                "received_time": ts(o.received_time), "source": o.source.to_string(),
                })
            }
            _ => json!("unknown"),
        },
        Ok(_) => {
            within = Some(false);
            json!("not_nearby")
        }
        Err(e) if e.code == ErrorCode::Forbidden => json!("unknown"),
        // The audit record could not be written: answer nothing.
        Err(e) => return Err(e),
    };
    // Her own last position (any age, with its age), so the app can show the state of her
    // own reporting. Her own data: decided like any read of a protected person's position.
    let own = Resource {
        case: Some(case.id),
        person: Some(me),
        ..Default::default()
    };
    let own = authz::check(s, c, Action::ReadVictimPosition, own, "me/case").await?;
    let own_position = s
        .store
        .latest_fix_of_person(&own.token, me)
        .await?
        .map(|f| {
            let age_s = ((t.0 - f.device_time.0) as f64 / 1e6).max(0.0);
            json!({
                "lat": f.position.lat(), "lon": f.position.lon(), "accuracy_m": f.accuracy_m,
                "device_time": ts(f.device_time), "received_time": ts(f.received_time),
                "source": f.source.to_string(), "age_s": age_s, "stale": age_s > stale,
            })
        });
    let own_device = own_device(s, me).await?;
    // Her case's open alerts, for the status banner (her own case: not logged).
    let resource = Resource {
        case: Some(case.id),
        ..Default::default()
    };
    let alerts_token = authz::check(s, c, Action::ReadAlerts, resource, "me/case")
        .await?
        .token;
    let devices = s.store.list_devices().await?;
    let cases = s.store.list_cases().await?;
    // Her case's alerts (not those about another person the same order protects), newest
    // raised first.
    let mut mine: Vec<store::AlertRecord> = s
        .store
        .list_alerts(&alerts_token, false, 500)
        .await?
        .into_iter()
        .filter(|a| {
            crate::privacy::authz::alert_case(a, &devices, &cases) == Some(case.id)
                && a.protected.is_none_or(|p| p == me)
        })
        .collect();
    mine.sort_by_key(|a| std::cmp::Reverse((a.alert.raised_at, a.alert.id)));
    let active: Vec<&store::AlertRecord> = mine
        .iter()
        .filter(|a| a.alert.state != AlertState::Resolved)
        .collect();
    // What holds now: a condition about where he is counts only while his position is fresh;
    // otherwise it is what was true when his device last reported, and goes to `earlier`.
    // The engine holds a condition for `clear_hold_s` after it ends (against flapping); the
    // banner's "now" is what his latest position shows, so a hold his latest fix contradicts
    // is no longer the danger now (the alert stays open for the officer).
    let contradicted = |a: &store::AlertRecord| {
        let order = orders.iter().find(|o| Some(o.id) == a.alert.order_id);
        let apart = match (&hers, &his) {
            (Some(h), Some(o)) => Some(h.position.distance_m(&o.position)),
            _ => None,
        };
        match (a.alert.rule, order, apart) {
            (AlertRule::ProximityViolation, Some(o), Some(d)) => d > o.no_approach_m,
            (AlertRule::ProximityWarning, Some(o), Some(d)) => {
                d > o.warning_m && a.details.heading_toward != Some(true)
            }
            (AlertRule::ProximityNotice, _, _) => within == Some(false),
            (AlertRule::ZoneViolation, Some(o), _) => match (&his, a.zone) {
                (Some(f), Some(z)) => o
                    .zones
                    .iter()
                    .find(|zone| zone.id == z)
                    .is_some_and(|zone| engine::distance_into_zone(&f.position, &zone.shape) > 0.0),
                _ => false,
            },
            _ => false,
        }
    };
    let holds_now = |a: &store::AlertRecord| {
        a.alert.state != AlertState::Resolved
            && a.condition_active
            && (!POSITION_RULES.contains(&a.alert.rule) || (his.is_some() && !contradicted(a)))
    };
    let conditions: Vec<(AlertRule, Severity)> = mine
        .iter()
        .filter(|a| holds_now(a))
        .map(|a| (a.alert.rule, a.alert.severity))
        .collect();
    let zone_label = |a: &store::AlertRecord| {
        a.zone.and_then(|z| {
            orders
                .iter()
                .flat_map(|o| o.zones.iter())
                .find(|zone| zone.id == z)
                .map(|zone| zone.label.clone())
        })
    };
    let current: Vec<Value> = mine
        .iter()
        .filter(|a| holds_now(a) && class_of(a.alert.rule) == "danger")
        .map(|a| json!({"rule": a.alert.rule.as_str(), "since": ts(a.alert.raised_at), "zone": zone_label(a)}))
        .collect();
    let earlier: Vec<Value> = mine
        .iter()
        .filter(|a| {
            !holds_now(a)
                && class_of(a.alert.rule) == "danger"
                && t.0 - a.alert.raised_at.0 <= EARLIER_WINDOW_US
        })
        .take(EARLIER_MAX)
        .map(|a| {
            let open = a.condition_active && a.alert.state != AlertState::Resolved;
            let ended = a.cleared_at.or((a.alert.state == AlertState::Resolved).then_some(a.alert.updated_at));
            json!({
                "alert_id": a.alert.id.0, "rule": a.alert.rule.as_str(), "state": a.alert.state.as_str(),
                "raised_at": ts(a.alert.raised_at), "ended_at": ended.map(ts),
                // Still open, but its condition is no longer known to hold (his position is old).
                "last_known": open && his.is_none(),
                // His latest position no longer shows it; the engine still watches it for a
                // while before it clears.
                "still_watched": open && his.is_some(),
                "zone": zone_label(a),
            })
        })
        .collect();
    let in_force: Vec<_> = orders.iter().filter(|o| o.in_force(t)).collect();
    let (status, reasons) = victim_status(&StatusInput {
        conditions: &conditions,
        within_radius: within,
        order_in_force: !in_force.is_empty(),
        own_fresh: hers.is_some(),
        offender_fresh: his.is_some(),
        own_device: own_device.is_some(),
    });
    // The order ends when the last one in force ends (never, if one is open-ended).
    let expires_at = if in_force.is_empty() || in_force.iter().any(|o| o.valid_to.is_none()) {
        None
    } else {
        in_force.iter().filter_map(|o| o.valid_to).max().map(ts)
    };
    let sos = active
        .iter()
        .filter(|a| a.alert.rule == AlertRule::Sos && a.alert.state != AlertState::Resolved)
        .max_by_key(|a| a.alert.raised_at)
        .map(|a| {
            json!({"alert_id": a.alert.id.0, "state": a.alert.state.to_string(),
                   "raised_at": ts(a.alert.raised_at), "updated_at": ts(a.alert.updated_at)})
        });
    let orders: Vec<Value> = orders
        .into_iter()
        .map(|o| serde_json::to_value(crate::http::dto::OrderDto::from(o)).unwrap_or(Value::Null))
        .collect();
    Ok(json!({
        "case_id": case.id.0, "orders": orders, "offender": offender,
        "status": status, "status_reasons": reasons,
        "expires_at": expires_at, "own_position": own_position,
        "own_device": own_device.map(|d| json!({"id": d.id.0, "kind": d.kind.to_string()})),
        "sos": sos, "server_time": ts(t), "stale_after_s": stale,
        "now": {
            "as_of": his_time.map(ts),
            "age_s": his_time.map(|d| ((t.0 - d.0) as f64 / 1e6).max(0.0)),
            "fresh": his.is_some(),
            "conditions": current,
        },
        "earlier": earlier,
    }))
}

/// Rules whose condition is a fact about where the offender is: they hold "now" only while
/// his latest position is fresh.
const POSITION_RULES: [AlertRule; 5] = [
    AlertRule::ProximityViolation,
    AlertRule::ProximityWarning,
    AlertRule::ProximityNotice,
    AlertRule::ZoneViolation,
    AlertRule::BoundaryGrazing,
];
/// How far back the banner's "earlier" list goes (24 h, in microseconds) and how many it
/// shows.
const EARLIER_WINDOW_US: i64 = 24 * 3_600 * 1_000_000;
const EARLIER_MAX: usize = 10;

/// What the victim's status banner is derived from.
pub struct StatusInput<'a> {
    /// Rules (and severity) of her case's alerts whose condition still holds.
    pub conditions: &'a [(AlertRule, Severity)],
    /// Whether the offender is inside her disclosure radius (`None`: unknown).
    pub within_radius: Option<bool>,
    pub order_in_force: bool,
    /// Her phone's latest position is not stale.
    pub own_fresh: bool,
    /// His latest position is not stale.
    pub offender_fresh: bool,
    /// She has a phone the system knows.
    pub own_device: bool,
}

/// The banner: `violation` (no-approach distance or an exclusion zone breached), `approaching`
/// (inside the warning distance, or grazing the boundary), `degraded` (protection cannot be
/// trusted: her phone or his device is stale, silent, tampered or without a fix, or no order
/// is in force), `in_area` (inside her disclosure radius, or the notice distance), else `safe`.
/// The more urgent wins; the reasons list everything that applies.
pub fn victim_status(i: &StatusInput<'_>) -> (&'static str, Vec<&'static str>) {
    let has = |rules: &[AlertRule]| i.conditions.iter().any(|(r, _)| rules.contains(r));
    let mut reasons = Vec::new();
    let violation = has(&[AlertRule::ProximityViolation, AlertRule::ZoneViolation]);
    if has(&[AlertRule::ProximityViolation]) {
        reasons.push("proximity_violation");
    }
    if has(&[AlertRule::ZoneViolation]) {
        reasons.push("zone_violation");
    }
    let approaching = has(&[AlertRule::ProximityWarning, AlertRule::BoundaryGrazing]);
    if has(&[AlertRule::ProximityWarning]) {
        reasons.push("proximity_warning");
    }
    if has(&[AlertRule::BoundaryGrazing]) {
        reasons.push("boundary_grazing");
    }
    let mut degraded = false;
    let mut degrade = |why: &'static str| {
        degraded = true;
        reasons.push(why);
    };
    if !i.order_in_force {
        degrade("no_order_in_force");
    }
    if !i.own_device {
        degrade("no_own_device");
    } else if !i.own_fresh {
        degrade("own_position_stale");
    }
    if !i.offender_fresh {
        degrade("offender_position_unknown");
    }
    for (rule, why) in [
        (AlertRule::DeviceOffline, "device_offline"),
        (AlertRule::Tamper, "tamper"),
        (AlertRule::DeviceNoFix, "device_no_fix"),
        (AlertRule::ProtectionDegraded, "protection_degraded"),
    ] {
        if has(&[rule]) {
            degrade(why);
        }
    }
    if i.conditions
        .iter()
        .any(|(r, s)| *r == AlertRule::DeviceBattery && *s == Severity::Critical)
    {
        degrade("device_battery");
    }
    let in_area = i.within_radius == Some(true) || has(&[AlertRule::ProximityNotice]);
    if in_area {
        reasons.push("in_area");
    }
    let status = if violation {
        "violation"
    } else if approaching {
        "approaching"
    } else if degraded {
        "degraded"
    } else if in_area {
        "in_area"
    } else {
        "safe"
    };
    (status, reasons)
}

/// The device the protected person reports as from the app: her phone, else her
/// smartwatch, else any device she owns (lowest id first).
async fn own_device(s: &AppState, person: PersonId) -> Result<Option<Device>, ApiError> {
    let rank = |k: DeviceKind| match k {
        DeviceKind::VictimPhone => 0,
        DeviceKind::Smartwatch => 1,
        _ => 2,
    };
    Ok(s.store
        .list_devices()
        .await?
        .into_iter()
        .filter(|d| d.owner == Some(person))
        .min_by_key(|d| (rank(d.kind), d.id.0)))
}

/// Decides an own report (her position, her SOS) and returns her device.
async fn own_report(s: &AppState, c: &Caller, details: &str) -> Result<Device, ApiError> {
    let g = authz::grants(s, c).await?;
    let resource = Resource {
        case: g.protected_in.first().copied(),
        person: c.principal.person,
        ..Default::default()
    };
    authz::check(s, c, Action::SendOwnReport, resource, details).await?;
    let person = c
        .principal
        .person
        .ok_or_else(|| ApiError::internal("allowed an own report without a person"))?;
    own_device(s, person).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NoOwnDevice,
            "no phone is registered for you; ask your monitoring officer to register one",
        )
    })
}

/// Validates a browser fix exactly like a device door's.
fn own_fix(
    s: &AppState,
    device: &Device,
    f: OwnFix,
    received: UnixMicros,
) -> Result<Fix, ApiError> {
    let source = match &f.source {
        Some(x) => parse_enum("source", x)?,
        None => FixSource::Unknown,
    };
    let raw = RawFix {
        device_time: parse_ts("time", &f.time)?,
        lat: f.lat,
        lon: f.lon,
        accuracy_m: Some(f.accuracy_m),
        speed_mps: f.speed_mps,
        course_deg: f.course_deg,
        altitude_m: None,
        source,
        flags: FixFlags::default(),
        seq: None,
    };
    ingest::validate(s, device.id, raw, received, 0)
}

/// Her browser's position (Geolocation API), stored as a fix of her phone.
///
/// The same validation and durable store as the device doors: answered only after the fix
/// is durable, with its id and receipt time (the app's "last sent"). A resend of the same
/// fix (same time) is stored once.
#[utoipa::path(post, path = "/api/v1/me/location", tag = "access", security(("staff_token" = [])),
    request_body = OwnFix,
    responses((status = 200, description = "Stored durably", body = OwnFixStored),
        (status = 403, body = ErrorBody),
        (status = 409, description = "She owns no device to report as (`no_own_device`)", body = ErrorBody),
        (status = 422, description = "Invalid coordinates, time or field ranges", body = ErrorBody)))]
pub async fn my_location(
    State(s): State<AppState>,
    c: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OwnFixStored>, ApiError> {
    let received = s.clock.now();
    let device = own_report(&s, &c, "me/location").await?;
    let req: OwnFix = parse_json(&body.map_err(body_error)?)?;
    let fix = own_fix(&s, &device, req, received)?;
    let device_time = fix.device_time;
    let out = ingest::store_fixes(&s, "app", vec![fix]).await?;
    let first = out
        .first()
        .copied()
        .ok_or_else(|| ApiError::internal("store answered no outcome"))?;
    Ok(Json(OwnFixStored {
        fix_id: first.id().0,
        device_id: device.id.0,
        duplicate: matches!(first, store::FixOutcome::Duplicate(_)),
        device_time: ts(device_time),
        received_time: ts(received),
    }))
}

/// A silent SOS from the app, stored as an SOS event of her phone.
///
/// The engine raises the SOS alert exactly as for a device's SOS button, with or without a
/// position. Answered only after the event is durable. An SOS is never refused for its
/// attachment: a position that fails validation is left out (and said so), the SOS is stored.
#[utoipa::path(post, path = "/api/v1/me/sos", tag = "access", security(("staff_token" = [])),
    request_body = OwnSos,
    responses((status = 200, description = "The SOS is durable", body = OwnSosStored),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "She owns no device to report as (`no_own_device`)", body = ErrorBody)))]
pub async fn my_sos(
    State(s): State<AppState>,
    c: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OwnSosStored>, ApiError> {
    let received = s.clock.now();
    let device = own_report(&s, &c, "me/sos").await?;
    let bytes = body.map_err(body_error)?;
    let req: OwnSos = if bytes.iter().all(u8::is_ascii_whitespace) {
        OwnSos::default()
    } else {
        parse_json(&bytes)?
    };
    // An implausible press time (unset clock, far future) is replaced by the receipt time.
    let device_time = match req.time.as_deref().map(|t| parse_ts("time", t)) {
        Some(Ok(t)) if ingest::check_time(&s, t, received, "time").is_ok() => t,
        _ => received,
    };
    let (fixes, position_ignored) = match req.position {
        Some(p) => match own_fix(&s, &device, p, received) {
            Ok(f) => (vec![f], None),
            Err(e) => (Vec::new(), Some(e.message)),
        },
        None => (Vec::new(), None),
    };
    let event = DeviceEvent {
        id: None,
        device_id: device.id,
        kind: DeviceEventKind::Sos,
        device_time,
        received_time: received,
        position: fixes.first().map(|f| f.position),
        code: None,
    };
    let (outcomes, _) = ingest::store_reports(&s, "app", fixes, vec![event]).await?;
    metrics::counter!("bulwark_app_sos_total").increment(1);
    Ok(Json(OwnSosStored {
        device_id: device.id.0,
        received_time: ts(received),
        fix_id: outcomes.first().map(|o| o.id().0),
        position_ignored,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessLogQuery {
    /// At most this many records, newest first (default 200, at most 1,000).
    pub limit: Option<usize>,
}

/// Who viewed my data: the access-log records of the caller's own case.
///
/// A protected person sees every staff and system record of her case (reads of his and her
/// position, tracks, exports, break-glass), with the reader's role, username and purpose;
/// never her own reads and never another case's records. An offender sees only staff reads of
/// his own position and track, with the purpose code but not its text (which may be about
/// her): nothing that concerns the protected person.
#[utoipa::path(get, path = "/api/v1/me/access-log", tag = "access", security(("staff_token" = [])),
    params(AccessLogQuery),
    responses((status = 200, body = Vec<AccessLogEntry>), (status = 403, body = ErrorBody)))]
pub async fn my_access_log(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<AccessLogQuery>,
) -> Result<Json<Vec<AccessLogEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(200).clamp(1, 1_000);
    let g = authz::grants(&s, &c).await?;
    let (case, person): (Option<CaseId>, Option<PersonId>) =
        match (c.principal.role, c.principal.person) {
            (Role::Victim, Some(p)) => (g.protected_in.first().copied(), Some(p)),
            (Role::Offender, Some(p)) => (g.offender_in.first().copied(), Some(p)),
            _ => (None, None),
        };
    let (Some(case), Some(person)) = (case, person) else {
        // Not a party of any case (staff use the auditor's log): let the one decision refuse
        // a case view without a case (and log it).
        authz::check(
            &s,
            &c,
            Action::ViewCase,
            Resource::default(),
            "me/access-log",
        )
        .await?;
        return Err(ApiError::internal("allowed a case view without a case"));
    };
    let resource = Resource {
        case: Some(case),
        person: Some(person),
        ..Default::default()
    };
    let allowed = authz::check(&s, &c, Action::ReadAuditLog, resource, "me/access-log").await?;
    let offender_view = allowed.precision == Precision::OffenderView;
    let names: std::collections::HashMap<i64, String> = s
        .store
        .list_accounts()
        .await?
        .into_iter()
        .map(|a| (a.id.0, a.username))
        .collect();
    let records = s
        .store
        .audit_records_of_case(
            &allowed.token,
            case,
            c.principal.account.0,
            (limit * 4).min(5_000),
        )
        .await?;
    let out = records
        .into_iter()
        .filter(|r| r.entry.subject.case == Some(case))
        .filter(|r| {
            let e = &r.entry;
            let own = e.actor.kind == ActorKind::Account && e.actor.id == c.principal.account.0;
            // The parties' own records are not "who viewed": neither hers nor his.
            let party = matches!(e.actor.role.as_str(), "victim" | "offender");
            if own || party {
                return false;
            }
            if offender_view {
                matches!(e.action, AuditAction::ReadPosition | AuditAction::ReadTrack)
                    && e.subject.person.is_none_or(|p| p == person)
            } else {
                true
            }
        })
        .take(limit)
        .map(|r| {
            let e = r.entry;
            let actor_name = match e.actor.kind {
                ActorKind::Account => names.get(&e.actor.id).cloned(),
                ActorKind::System => Some("system".to_owned()),
                ActorKind::Device => None,
            };
            let purpose = e.purpose;
            AccessLogEntry {
                time: ts(r.time),
                actor_role: e.actor.role,
                actor_name,
                action: e.action.to_string(),
                outcome: e.outcome.to_string(),
                purpose_code: purpose.as_ref().map(|p| p.code.clone()),
                purpose_text: if offender_view {
                    None
                } else {
                    purpose.map(|p| p.text)
                },
            }
        })
        .collect();
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(conditions: &[(AlertRule, Severity)]) -> StatusInput<'_> {
        StatusInput {
            conditions,
            within_radius: Some(false),
            order_in_force: true,
            own_fresh: true,
            offender_fresh: true,
            own_device: true,
        }
    }

    #[test]
    fn the_more_urgent_status_wins_and_every_reason_is_listed() {
        assert_eq!(victim_status(&input(&[])), ("safe", vec![]));
        let inside = StatusInput {
            within_radius: Some(true),
            ..input(&[])
        };
        assert_eq!(victim_status(&inside).0, "in_area");
        let warn = [(AlertRule::ProximityWarning, Severity::Warning)];
        assert_eq!(victim_status(&input(&warn)).0, "approaching");
        let both = [
            (AlertRule::ProximityWarning, Severity::Warning),
            (AlertRule::ZoneViolation, Severity::Critical),
            (AlertRule::Tamper, Severity::Critical),
        ];
        let (status, reasons) = victim_status(&input(&both));
        assert_eq!(status, "violation");
        assert_eq!(reasons, ["zone_violation", "proximity_warning", "tamper"]);
    }

    #[test]
    fn stale_or_missing_positions_degrade_protection_never_show_safe() {
        let stale_her = StatusInput {
            own_fresh: false,
            within_radius: None,
            ..input(&[])
        };
        assert_eq!(
            victim_status(&stale_her),
            ("degraded", vec!["own_position_stale"])
        );
        let his_silent = StatusInput {
            offender_fresh: false,
            within_radius: None,
            ..input(&[(AlertRule::DeviceOffline, Severity::Critical)])
        };
        assert_eq!(
            victim_status(&his_silent),
            (
                "degraded",
                vec!["offender_position_unknown", "device_offline"]
            )
        );
        let no_phone = StatusInput {
            own_device: false,
            own_fresh: false,
            ..input(&[])
        };
        assert_eq!(
            victim_status(&no_phone),
            ("degraded", vec!["no_own_device"])
        );
        let low = [(AlertRule::DeviceBattery, Severity::Warning)];
        assert_eq!(victim_status(&input(&low)).0, "safe");
        let no_order = StatusInput {
            order_in_force: false,
            ..input(&[])
        };
        assert_eq!(victim_status(&no_order).0, "degraded");
    }
}
