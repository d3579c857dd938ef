//! Setup: people, devices (and their tokens), cases and orders registered and listed; the
//! registry lists filtered to the cases the caller may view.

use super::*;
use crate::http::error::JsonBody;

#[utoipa::path(post, path = "/api/v1/people", tag = "setup", request_body = NewPerson,
    security(("staff_token" = [])),
    responses((status = 201, body = PersonDto), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_person(
    State(s): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<NewPerson>,
) -> Result<(StatusCode, Json<PersonDto>), ApiError> {
    authz::intake(&s, &c, None, "create person").await?;
    let role: PersonRole = parse_enum("role", &req.role)?;
    if req.display_name.trim().is_empty() || req.display_name.len() > 200 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "display_name: 1 to 200 characters",
        ));
    }
    let p = s
        .store
        .create_person(role, req.display_name, s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

#[utoipa::path(get, path = "/api/v1/people", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, body = [PersonDto])))]
pub async fn list_people(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<PersonDto>>, ApiError> {
    let visible = registry_scope(&s, &c).await?;
    Ok(Json(
        s.store
            .list_people()
            .await?
            .into_iter()
            .filter(|p| visible.person(p.id))
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/devices", tag = "setup", request_body = NewDevice,
    security(("staff_token" = [])),
    responses((status = 201, body = DeviceDto), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_device(
    State(s): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<NewDevice>,
) -> Result<(StatusCode, Json<DeviceDto>), ApiError> {
    authz::intake(&s, &c, None, "register device").await?;
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
    if req.token.is_none() && token_required(protocol) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "token: required for native devices and the phone doors (OsmAnd, OwnTracks, GPSLogger, Overland)",
        ));
    }
    let model = req.model.map(|m| m.trim().to_string());
    if let Some(m) = &model
        && (m.is_empty()
            || m.len() > 40
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "model: 1 to 40 letters, digits, `-` or `_`",
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
            s.clock.now(),
        )
        .await?;
    if model.is_some() {
        s.store.set_device_model(d.id, model.clone()).await?;
    }
    s.pipeline.sync_roster().await;
    Ok((StatusCode::CREATED, Json(DeviceDto { model, ..d.into() })))
}

/// Whether devices of `protocol` must have a token: the HTTP doors authenticate nothing else
/// (tracker sockets identify by IMEI; see `docs/protocols.md` on spoofing).
fn token_required(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::Native
            | Protocol::Osmand
            | Protocol::OwnTracks
            | Protocol::GpsLogger
            | Protocol::Overland
    )
}

/// Issues (or replaces) a device's token: the migration path for phones registered before the
/// phone doors required one (they are refused until then). Administrator only, like intake.
#[utoipa::path(post, path = "/api/v1/devices/{id}/token", tag = "setup", request_body = NewDeviceToken,
    security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Device id")),
    responses((status = 204, description = "Token set"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_device_token(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<NewDeviceToken>,
) -> Result<StatusCode, ApiError> {
    authz::intake(&s, &c, None, &format!("issue token for device {id}")).await?;
    if req.token.len() < 16 || req.token.len() > 200 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "token: 16 to 200 characters",
        ));
    }
    if !s.store.set_device_token(DeviceId(id), req.token).await? {
        return Err(ApiError::new(ErrorCode::NotFound, "no such device"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, body = [DeviceDto])))]
pub async fn list_devices(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<DeviceDto>>, ApiError> {
    let visible = registry_scope(&s, &c).await?;
    let health: std::collections::HashMap<DeviceId, store::DeviceHealth> = s
        .store
        .device_health(&visible.token)
        .await?
        .into_iter()
        .collect();
    let mut models: std::collections::HashMap<DeviceId, String> =
        s.store.device_models().await?.into_iter().collect();
    Ok(Json(
        s.store
            .list_devices()
            .await?
            .into_iter()
            .filter(|d| d.owner.is_some_and(|o| visible.person(o)))
            .map(|d| {
                let h = health.get(&d.id).copied();
                DeviceDto {
                    health: h.map(Into::into),
                    model: models.remove(&d.id),
                    ..DeviceDto::from(d)
                }
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/devices/unknown", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, description = "Devices that tried to connect unregistered", body = [UnknownDeviceDto])))]
pub async fn list_unknown_devices(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<UnknownDeviceDto>>, ApiError> {
    // Unregistered devices belong to no case yet: registry work for administrators.
    authz::intake(&s, &c, None, "list unknown devices").await?;
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
    c: Caller,
    JsonBody(req): JsonBody<NewCase>,
) -> Result<(StatusCode, Json<CaseDto>), ApiError> {
    authz::intake(&s, &c, None, "create case").await?;
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
            s.clock.now(),
        )
        .await?;
    s.pipeline.sync_roster().await;
    Ok((StatusCode::CREATED, Json(c.into())))
}

#[utoipa::path(get, path = "/api/v1/cases", tag = "setup", security(("staff_token" = [])),
    responses((status = 200, body = [CaseDto])))]
pub async fn list_cases(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<CaseDto>>, ApiError> {
    let visible = registry_scope(&s, &c).await?;
    Ok(Json(
        s.store
            .list_cases()
            .await?
            .into_iter()
            .filter(|k| visible.case(k.id))
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/orders", tag = "setup", request_body = NewOrder,
    security(("staff_token" = [])),
    responses((status = 201, body = OrderDto), (status = 422, body = ErrorBody)))]
pub async fn create_order(
    State(s): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<NewOrder>,
) -> Result<(StatusCode, Json<OrderDto>), ApiError> {
    let (order, schedules) = req.into_domain()?;
    authz::check(
        &s,
        &c,
        Action::ChangeCase,
        Resource {
            case: Some(order.case_id),
            ..Default::default()
        },
        "register order",
    )
    .await?;
    let o = s.store.create_order(order, s.clock.now()).await?;
    for (zone, schedule) in o.zones.iter().zip(&schedules) {
        if let Some(w) = schedule {
            let text = serde_json::to_string(w).map_err(ApiError::internal)?;
            s.store.set_zone_schedule(zone.id, Some(text)).await?;
        }
    }
    crate::court::schedule_direct_order(&s, &o).await?;
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
    c: Caller,
) -> Result<Json<Vec<OrderDto>>, ApiError> {
    let cases = authz::scope_with_precision(&s, &c, Action::ReadOrders, "list orders").await?;
    Ok(Json(orders_with_schedules(&s, &cases).await?))
}

/// Orders of the given cases, with their zones' schedules filled in. A case allowed only at
/// the offender's precision gets its orders without zones: their geometry and labels are
/// her home, work and school (issue 17), as in his view of the order's versions.
pub async fn orders_with_schedules(
    s: &AppState,
    cases: &[(CaseId, Precision)],
) -> Result<Vec<OrderDto>, ApiError> {
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
        .filter_map(|mut o| {
            let (_, precision) = cases.iter().find(|(c, _)| *c == o.case_id)?;
            if *precision != Precision::Full {
                o.zones.clear();
            }
            Some(OrderDto::from(o))
        })
        .collect();
    for z in orders.iter_mut().flat_map(|o| o.zones.iter_mut()) {
        z.schedule = schedules.get(&z.id).cloned();
    }
    Ok(orders)
}

/// What registry lists show the caller: everything to administrators (people, devices and
/// cases, never positions), otherwise the parties of the cases they may view.
struct RegistryScope {
    all: bool,
    cases: Vec<CaseId>,
    people: Vec<PersonId>,
    /// The token of the decision, for the registry's case-data reads (device health).
    token: Authorized,
}

impl RegistryScope {
    fn case(&self, id: CaseId) -> bool {
        self.all || self.cases.contains(&id)
    }
    fn person(&self, id: PersonId) -> bool {
        self.all || self.people.contains(&id)
    }
}

async fn registry_scope(s: &AppState, c: &Caller) -> Result<RegistryScope, ApiError> {
    if c.principal.role == access::Role::Administrator {
        let token = authz::registry(s, c, "registry list").await?;
        return Ok(RegistryScope {
            all: true,
            cases: Vec::new(),
            people: Vec::new(),
            token,
        });
    }
    let (cases, token) = authz::scope_and_token(s, c, Action::ViewCase, "registry list").await?;
    let people = match (c.principal.role, c.principal.person) {
        // Nothing about her reaches him, not even her name in a list.
        (access::Role::Offender, Some(me)) => vec![me],
        _ => s
            .store
            .list_cases()
            .await?
            .into_iter()
            .filter(|k| cases.contains(&k.id))
            .flat_map(|k| std::iter::once(k.offender).chain(k.protected))
            .collect(),
    };
    Ok(RegistryScope {
        all: false,
        cases,
        people,
        token,
    })
}
