//! Monitoring reads: latest positions, tracks, network scans and unknown frames, device
//! health, alert lists and states, and the snapshot, each decided per case.

use super::*;
use crate::http::error::JsonBody;

/// The latest position of every device, each with its time, accuracy and source.
#[utoipa::path(get, path = "/api/v1/positions/latest", tag = "monitoring", security(("staff_token" = [])),
    responses((status = 200, body = [PositionDto])))]
pub async fn positions_latest(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<PositionDto>>, ApiError> {
    let (visible, token) = position_scope(&s, &c, "latest positions").await?;
    Ok(Json(latest_positions(&s, &token, &visible).await?))
}

/// The people whose positions the caller may see, decided per case and per person, and the
/// token of those decisions.
pub(crate) async fn position_scope(
    s: &AppState,
    c: &Caller,
    details: &str,
) -> Result<(Vec<PersonId>, Authorized), ApiError> {
    let cases = s.store.list_cases().await?;
    let g = authz::grants(s, c).await?;
    let granted = authz::granted_cases(&g);
    let mut asks = Vec::new();
    let mut whose = Vec::new();
    for case in cases.iter().filter(|k| granted.contains(&k.id)) {
        // A victim's view of the offender needs the disclosure radius (the victim endpoint);
        // this listing never shows him to her.
        if c.principal.role != access::Role::Victim {
            asks.push((
                Action::ReadPosition,
                Resource {
                    case: Some(case.id),
                    ..Default::default()
                },
            ));
            whose.push(case.offender);
        }
        // Offenders are never asked about her: the answer would be "no" and the question
        // itself is not his to ask.
        if c.principal.role != access::Role::Offender {
            for p in &case.protected {
                asks.push((
                    Action::ReadVictimPosition,
                    Resource {
                        case: Some(case.id),
                        person: Some(*p),
                        ..Default::default()
                    },
                ));
                whose.push(*p);
            }
        }
    }
    if asks.is_empty() {
        // Nothing granted: decide without a case so the role's refusal is given and logged.
        authz::scope(s, c, Action::ReadPosition, details).await?;
        return Ok((Vec::new(), Authorized::nothing()));
    }
    let (decisions, token) = authz::decide(s, c, &asks, details).await?;
    let role_refused = decisions.iter().all(|d| {
        matches!(
            d,
            access::Decision::Deny {
                reason: access::DenyReason::RoleNotPermitted
            }
        )
    });
    if role_refused {
        // A judge with a case of her own still never sees positions.
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "your role may not do this",
        ));
    }
    let visible = decisions
        .iter()
        .zip(whose)
        .filter(|(d, _)| {
            matches!(
                d,
                access::Decision::Allow {
                    precision: Precision::Full,
                    ..
                }
            )
        })
        .map(|(_, p)| p)
        .collect();
    Ok((visible, token))
}

async fn latest_positions(
    s: &AppState,
    token: &Authorized,
    visible: &[PersonId],
) -> Result<Vec<PositionDto>, ApiError> {
    let devices = s.store.list_devices().await?;
    let people = s.store.list_people().await?;
    let fixes = s.store.latest_fixes(token).await?;
    Ok(fixes
        .into_iter()
        .filter(|f| {
            devices
                .iter()
                .find(|d| d.id == f.device_id)
                .and_then(|d| d.owner)
                .is_some_and(|o| visible.contains(&o))
        })
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
                network: None,
            }
        })
        .collect())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrackQuery {
    /// RFC 3339 start (inclusive).
    pub from: String,
    /// RFC 3339 end (exclusive).
    pub to: String,
    /// Why the history is read: one of `alert_response`, `investigation`, `court_request`,
    /// `supervision`, `evidence_export`, `data_subject_request` (required for staff).
    pub purpose_code: Option<String>,
    /// The purpose in a sentence, at least 10 characters (required for staff).
    pub purpose_text: Option<String>,
}

/// Decides (and audits) a read of a device's location history: `read_track` for the
/// offender's devices, `read_victim_track` for a protected person's, on the case of the
/// device's wearer, with the stated purpose. Returns the parsed window and the token of the
/// logged decision.
async fn authorize_history(
    s: &AppState,
    c: &Caller,
    id: i64,
    q: &TrackQuery,
    what: &str,
) -> Result<(UnixMicros, UnixMicros, store::Authorized), ApiError> {
    let from = parse_ts("from", &q.from)?;
    let to = parse_ts("to", &q.to)?;
    let device = s
        .store
        .list_devices()
        .await?
        .into_iter()
        .find(|d| d.id == DeviceId(id));
    let owner = device.and_then(|d| d.owner);
    let cases = s.store.list_cases().await?;
    // The case the device's wearer is a party of; a device outside every case has none, and
    // no one may read its history through these endpoints.
    let case = owner.and_then(|o| cases.iter().find(|k| authz::party(k, o)));
    let (action, person) = match (case, owner) {
        (Some(k), Some(o)) if k.offender != o => (Action::ReadVictimTrack, Some(o)),
        _ => (Action::ReadTrack, None),
    };
    let purpose = match (q.purpose_code.clone(), q.purpose_text.clone()) {
        (None, None) => None,
        (code, text) => Some(audit::Purpose {
            code: code.unwrap_or_default(),
            text: text.unwrap_or_default(),
        }),
    };
    let allowed = authz::check(
        s,
        c,
        action,
        Resource {
            case: case.map(|k| k.id),
            person,
            purpose,
            ..Default::default()
        },
        &format!("device {id}{what} from {} to {}", q.from, q.to),
    )
    .await?;
    Ok((from, to, allowed.token))
}

/// A device's network scans in a time window (at most 10,000, oldest first): the raw cell
/// towers and Wi-Fi access points it reported, with or without a fix (cell-only and Wi-Fi-only
/// reports, an SOS from indoors). They locate the wearer, so they are decided and audited
/// exactly like the track (location history, with a purpose).
#[utoipa::path(get, path = "/api/v1/devices/{id}/network-scans", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Device id"), TrackQuery),
    responses((status = 200, body = [NetworkScanDto]), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn network_scans(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    Query(q): Query<TrackQuery>,
) -> Result<Json<Vec<NetworkScanDto>>, ApiError> {
    let (from, to, token) = authorize_history(&s, &c, id, &q, " network scans").await?;
    let scans = s
        .store
        .network_scans(&token, DeviceId(id), from, to, 10_000)
        .await?;
    Ok(Json(scans.into_iter().map(Into::into).collect()))
}

/// A device's raw frames in a time window (at most 1,000, oldest first): frames it sent that
/// Bulwark acknowledged but could not decode, kept raw before the ack. They may hold a
/// position the decoder could not read, so they are decided and audited like the track.
#[utoipa::path(get, path = "/api/v1/devices/{id}/unknown-frames", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Device id"), TrackQuery),
    responses((status = 200, body = [UnknownFrameDto]), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn unknown_frames(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    Query(q): Query<TrackQuery>,
) -> Result<Json<Vec<UnknownFrameDto>>, ApiError> {
    let (from, to, token) = authorize_history(&s, &c, id, &q, " unknown frames").await?;
    let frames = s
        .store
        .unknown_frames(&token, DeviceId(id), from, to, 1_000)
        .await?;
    Ok(Json(
        frames
            .into_iter()
            .map(|f| UnknownFrameDto {
                id: f.id.unwrap_or_default(),
                device_id: f.device_id.0,
                protocol: f.protocol.to_string(),
                received_time: ts(f.received_time),
                bytes_hex: f.bytes.iter().map(|b| format!("{b:02x}")).collect(),
                note: f.note,
            })
            .collect(),
    ))
}

/// A device's fixes in a time window (at most 10,000).
#[utoipa::path(get, path = "/api/v1/devices/{id}/track", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Device id"), TrackQuery),
    responses((status = 200, body = [PositionDto]), (status = 422, body = ErrorBody)))]
pub async fn track(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    Query(q): Query<TrackQuery>,
) -> Result<Json<Vec<PositionDto>>, ApiError> {
    let (from, to, token) = authorize_history(&s, &c, id, &q, "").await?;
    let fixes = s
        .store
        .track(&token, DeviceId(id), from, to, 10_000)
        .await?;
    // The cell towers and access points reported in the same frames.
    let mut scans: std::collections::HashMap<FixId, store::NetworkScan> = s
        .store
        .network_scans_of_fixes(&token, fixes.iter().filter_map(|f| f.id).collect())
        .await?
        .into_iter()
        .filter_map(|n| Some((n.fix_id?, n)))
        .collect();
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
                network: f.id.and_then(|i| scans.remove(&i)).map(Into::into),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// RFC 3339 start (inclusive), compared with the time each report was received.
    pub from: String,
    /// RFC 3339 end (exclusive).
    pub to: String,
}

/// A device's health reports in a time window (at most 10,000, oldest first), each as the
/// device sent it: battery, charging, signal, satellites, body contact. Decided like the
/// device status of the case summary (`view_case` on the case of the device's wearer); in
/// the offender's own view, only his own devices. A device in no case: administrators only.
#[utoipa::path(get, path = "/api/v1/devices/{id}/health", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Device id"), HealthQuery),
    responses((status = 200, body = [DeviceHealthDto]), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn device_health_history(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    Query(q): Query<HealthQuery>,
) -> Result<Json<Vec<DeviceHealthDto>>, ApiError> {
    let from = parse_ts("from", &q.from)?;
    let to = parse_ts("to", &q.to)?;
    let owner = s
        .store
        .list_devices()
        .await?
        .into_iter()
        .find(|d| d.id == DeviceId(id))
        .and_then(|d| d.owner);
    let cases = s.store.list_cases().await?;
    let case = owner.and_then(|o| cases.iter().find(|k| authz::party(k, o)));
    let details = format!("device {id} health from {} to {}", q.from, q.to);
    let token = match case {
        Some(k) => {
            let allowed = authz::check(
                &s,
                &c,
                Action::ViewCase,
                Resource {
                    case: Some(k.id),
                    ..Default::default()
                },
                &details,
            )
            .await?;
            // The offender's view holds his own data only, never a protected person's device.
            if allowed.precision == Precision::OffenderView && owner != c.principal.person {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "you may read only your own devices",
                ));
            }
            allowed.token
        }
        None => authz::intake(&s, &c, None, &details).await?,
    };
    let reports = s
        .store
        .device_health_history(&token, DeviceId(id), from, to, 10_000)
        .await?;
    Ok(Json(reports.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Only alerts not yet resolved (default true).
    pub active: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "monitoring", security(("staff_token" = [])),
    params(AlertQuery), responses((status = 200, body = [AlertDto])))]
pub async fn list_alerts(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Vec<AlertDto>>, ApiError> {
    let (cases, token) = authz::scope_and_token(&s, &c, Action::ReadAlerts, "list alerts").await?;
    Ok(Json(
        scoped_alerts(&s, &c, &cases, token, q.active.unwrap_or(true)).await?,
    ))
}

/// Alerts of the allowed cases, plus, for monitoring officers, alerts outside any case
/// (see [`outside_any_case`]).
async fn scoped_alerts(
    s: &AppState,
    c: &Caller,
    allowed: &[CaseId],
    token: Authorized,
    active_only: bool,
) -> Result<Vec<AlertDto>, ApiError> {
    // Alerts in no case are shown under their own rule, decided (and logged) before they
    // are read.
    let unlinked = c.principal.role == access::Role::MonitoringOfficer
        && s.store
            .any_alert_outside_every_case(active_only, 500)
            .await?;
    let devices = s.store.list_devices().await?;
    let cases = s.store.list_cases().await?;
    let token = if unlinked {
        token.and(authz::unlinked_device_alert(s, c, Action::ReadAlerts, "list").await?)
    } else {
        token
    };
    let alerts = s.store.list_alerts(&token, active_only, 500).await?;
    Ok(alerts
        .into_iter()
        .filter(|a| match alert_case(a, &devices, &cases) {
            Some(k) => allowed.contains(&k),
            None => unlinked && outside_any_case(a),
        })
        .map(Into::into)
        .collect())
}

/// Moves an alert along its lifecycle. Dispatching to a police account grants it the case
/// until the alert is resolved plus a grace period. Resolving requires a `cause`. The state
/// change and its entry in the action log are written in one transaction.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/state", tag = "monitoring", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Alert id")), request_body = AlertStateChange,
    responses((status = 200, body = AlertDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_alert_state(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<AlertStateChange>,
) -> Result<Json<AlertDto>, ApiError> {
    let state: AlertState = parse_enum("state", &req.state)?;
    if state == AlertState::Raised {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "state: an alert cannot be set back to raised",
        ));
    }
    let cause = crate::alerts::lifecycle::resolution_cause(state, req.cause.as_deref())?;
    let note = crate::alerts::lifecycle::note(req.note)?;
    let (_, case, _) = crate::alerts::lifecycle::alert_for_handling(
        &s,
        &c,
        id,
        &match req.police_account_id {
            Some(p) => format!("alert {id} -> {} to police account {p}", req.state),
            None => format!("alert {id} -> {}", req.state),
        },
    )
    .await?;
    let t = s.clock.now();
    match (state, req.police_account_id, case) {
        (AlertState::Dispatched, Some(police), Some(case)) => {
            let account = s.store.account(access::AccountId(police)).await?;
            if account.as_ref().map(|a| a.role) != Some(access::Role::Police) {
                return Err(ApiError::new(
                    ErrorCode::InvalidReference,
                    "police_account_id: not a police account",
                ));
            }
            s.store
                .add_dispatch(
                    access::AccountId(police),
                    case,
                    AlertId(id),
                    t,
                    t.plus_secs(s.config.alerts.dispatch_open_s),
                )
                .await?;
        }
        (_, Some(_), _) => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "police_account_id: only with state `dispatched`",
            ));
        }
        (AlertState::Resolved, None, _) => {
            s.store
                .end_dispatches(AlertId(id), t.plus_secs(s.config.alerts.dispatch_grace_s))
                .await?;
        }
        _ => {}
    }
    let note = note.or(req.police_account_id.map(|p| format!("police account {p}")));
    let rec =
        crate::alerts::lifecycle::change_state(&s, &c, AlertId(id), state, t, cause, note).await?;
    let dto = AlertDto::from(rec);
    s.hub.publish(crate::live::LiveEvent::Alert(dto.clone()));
    Ok(Json(dto))
}

/// Everything the console's map needs at once: positions, active alerts, orders (with zones)
/// and cases.
#[utoipa::path(get, path = "/api/v1/snapshot", tag = "monitoring", security(("staff_token" = [])),
    responses((status = 200, body = Snapshot)))]
pub async fn snapshot(State(s): State<AppState>, c: Caller) -> Result<Json<Snapshot>, ApiError> {
    let (visible, positions_token) = position_scope(&s, &c, "snapshot").await?;
    let (alert_cases, alerts_token) =
        authz::scope_and_token(&s, &c, Action::ReadAlerts, "snapshot").await?;
    let order_cases = authz::scope_with_precision(&s, &c, Action::ReadOrders, "snapshot").await?;
    let view_cases = authz::scope(&s, &c, Action::ViewCase, "snapshot").await?;
    Ok(Json(Snapshot {
        server_time: ts(s.clock.now()),
        positions: latest_positions(&s, &positions_token, &visible).await?,
        alerts: scoped_alerts(&s, &c, &alert_cases, alerts_token, true).await?,
        orders: orders_with_schedules(&s, &order_cases).await?,
        cases: s
            .store
            .list_cases()
            .await?
            .into_iter()
            .filter(|k| view_cases.contains(&k.id))
            .map(Into::into)
            .collect(),
    }))
}
