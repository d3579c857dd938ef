//! The court's endpoints: petitions filed, reviewed and decided, order versions issued and
//! listed, notices read. Each step goes through the pure workflow (see the folder's docs).

use super::*;
use crate::http::error::JsonBody;

/// Files a petition: a victim for her own case, the police for any case.
#[utoipa::path(post, path = "/api/v1/petitions", tag = "court", request_body = NewPetitionDto,
    security(("staff_token" = [])),
    responses((status = 201, body = PetitionDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn file_petition(
    State(s): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<NewPetitionDto>,
) -> Result<(StatusCode, Json<PetitionDto>), ApiError> {
    let case_id = CaseId(req.case_id);
    authz::check(
        &s,
        &c,
        Action::FilePetition,
        case_resource(case_id),
        "file petition",
    )
    .await?;
    let case = case_of(&s, case_id).await?;
    let kind: OrderKind = crate::http::dto::parse_enum("kind", &req.kind)?;
    let requested = conditions_in(kind, &req.requested)?;
    let statement = req.statement.trim().to_owned();
    if statement.is_empty() || statement.chars().count() > 10_000 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "statement: 1 to 10000 characters",
        ));
    }
    let petitioner = match c.principal.role {
        Role::Victim => Petitioner::Victim,
        _ => Petitioner::Police,
    };
    let now = s.clock.now();
    let (wf, effects) = Workflow::file(
        case.id,
        case.offender,
        petitioner,
        requested.clone(),
        reminder_policy(&s),
        now,
    );
    let (step, _) = step_from(
        effects,
        now,
        StepContext {
            case: &case,
            petition: None,
            order: None,
            key: "filed".into(),
            warning_m: 0.0,
            disclosure_radius_m: 0.0,
            zones: Vec::new(),
            issued_by: None,
            new_order: None,
        },
    );
    let petition = Petition {
        id: 0,
        case_id: case.id,
        kind,
        petitioner: petitioner_name(petitioner).into(),
        petitioner_account_id: c.principal.account.0,
        no_approach_m: requested.no_approach_m,
        duration_s: requested.duration_s,
        no_contact_by_phone: requested.no_contact_by_phone,
        electronic_monitoring: requested.electronic_monitoring,
        statement,
        state: state_name(wf.state).into(),
        filed_at: now,
        updated_at: now,
        order_id: None,
    };
    let (p, notices) = s
        .store
        .file_petition(petition, event_row(&c, now, "filed", None), step.notices)
        .await?;
    announce(&s, &notices);
    Ok((StatusCode::CREATED, Json(with_events(&s, p.id).await?)))
}

/// Petitions of the cases the caller may read petitions of.
#[utoipa::path(get, path = "/api/v1/petitions", tag = "court", security(("staff_token" = [])),
    responses((status = 200, body = [PetitionDto]), (status = 403, body = ErrorBody)))]
pub async fn list_petitions(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<PetitionDto>>, ApiError> {
    let cases = authz::scope(&s, &c, Action::ReadPetitions, "list petitions").await?;
    Ok(Json(
        s.store
            .list_petitions()
            .await?
            .iter()
            .filter(|p| cases.contains(&p.case_id))
            .map(|p| petition_dto(p, None))
            .collect(),
    ))
}

/// One petition with its history.
#[utoipa::path(get, path = "/api/v1/petitions/{id}", tag = "court", security(("staff_token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = PetitionDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_petition(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
) -> Result<Json<PetitionDto>, ApiError> {
    authorized_petition(&s, &c, id, Action::ReadPetitions, &format!("petition {id}")).await?;
    Ok(Json(with_events(&s, id).await?))
}

/// The clerk starts the review.
#[utoipa::path(post, path = "/api/v1/petitions/{id}/review", tag = "court", security(("staff_token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = PetitionDto), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn review_petition(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
) -> Result<Json<PetitionDto>, ApiError> {
    let p = authorized_petition(
        &s,
        &c,
        id,
        Action::ReviewPetition,
        &format!("petition {id}"),
    )
    .await?;
    let case = case_of(&s, p.case_id).await?;
    let mut wf = petition_workflow(&s, &p, &case).await?;
    let now = s.clock.now();
    let effects = wf.handle(Event::StartReview, now).map_err(workflow_error)?;
    let (mut step, _) = step_from(
        effects,
        now,
        StepContext {
            case: &case,
            petition: Some(id),
            order: None,
            key: format!("petition-{id}:review"),
            warning_m: 0.0,
            disclosure_radius_m: 0.0,
            zones: Vec::new(),
            issued_by: None,
            new_order: None,
        },
    );
    step.petition = Some((id, state_name(wf.state).into()));
    step.event = Some(event_row(&c, now, "review_started", None));
    let out = s.store.apply_court_step(step).await?;
    announce(&s, &out.notices);
    Ok(Json(with_events(&s, id).await?))
}

/// The judge grants, modifies or denies. A grant issues version 1 of an order in force now,
/// which the engine applies to every device the offender wears before this answers.
#[utoipa::path(post, path = "/api/v1/petitions/{id}/decision", tag = "court", request_body = DecisionDto,
    security(("staff_token" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = PetitionDto), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn decide_petition(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<DecisionDto>,
) -> Result<Json<PetitionDto>, ApiError> {
    let p = authorized_petition(
        &s,
        &c,
        id,
        Action::DecidePetition,
        &format!("petition {id}: {}", req.decision),
    )
    .await?;
    let case = case_of(&s, p.case_id).await?;
    let mut wf = petition_workflow(&s, &p, &case).await?;
    let now = s.clock.now();
    let reasons = req.reasons.trim().to_owned();
    let (event, name) = match req.decision.as_str() {
        "deny" => (
            Event::Deny {
                reasons: reasons.clone(),
            },
            "denied",
        ),
        "grant" | "modify" => {
            let conditions = match (&req.conditions, req.decision.as_str()) {
                (Some(cd), _) => conditions_in(p.kind, cd)?,
                (None, "modify") => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidField,
                        "conditions: required to modify",
                    ));
                }
                (None, _) => requested_of(&p),
            };
            if req.decision == "modify" && reasons.is_empty() {
                return Err(workflow_error(WorkflowError::ReasonsRequired));
            }
            let name = if conditions == requested_of(&p) {
                "granted"
            } else {
                "modified"
            };
            (
                Event::Grant {
                    valid_from: now,
                    conditions,
                    reasons: reasons.clone(),
                },
                name,
            )
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("decision: one of grant, modify, deny (got {other:?})"),
            ));
        }
    };
    let effects = wf.handle(event, now).map_err(workflow_error)?;
    // A grant: the order row the engine reads, validated like any order.
    let (new_order, schedules, warning_m, disclosure_radius_m) = match wf.current() {
        Some(v) if v.version == 1 && wf.state == WfState::InForce => {
            let na = v.conditions.no_approach_m;
            let warning_m = req.warning_m.unwrap_or((na * 5.0).max(500.0));
            let disclosure_radius_m = req.disclosure_radius_m.unwrap_or(warning_m + 100.0);
            let (order, schedules) = NewOrder {
                case_id: case.id.0,
                kind: v.conditions.kind.to_string(),
                valid_from: v.valid_from.0.to_string(),
                valid_to: None,
                no_approach_m: na,
                warning_m,
                disclosure_radius_m,
                zones: req.zones,
            }
            .into_domain_at(v.valid_from, Some(v.valid_to))?;
            (Some(order), schedules, warning_m, disclosure_radius_m)
        }
        _ => (None, Vec::new(), 0.0, 0.0),
    };
    let (mut step, roster) = step_from(
        effects,
        now,
        StepContext {
            case: &case,
            petition: Some(id),
            order: None,
            key: format!("petition-{id}:decision"),
            warning_m,
            disclosure_radius_m,
            zones: Vec::new(),
            issued_by: Some(c.principal.account.0),
            new_order,
        },
    );
    step.petition = Some((id, state_name(wf.state).into()));
    step.event = Some(event_row(&c, now, name, Some(reasons)));
    let out = s.store.apply_court_step(step).await?;
    announce(&s, &out.notices);
    for (zone, schedule) in out.zones.iter().zip(schedules) {
        if let Some(w) = schedule {
            let text = serde_json::to_string(&w).map_err(ApiError::internal)?;
            s.store.set_zone_schedule(zone.id, Some(text)).await?;
        }
    }
    if roster {
        s.pipeline.sync_roster().await;
    }
    Ok(Json(with_events(&s, id).await?))
}

async fn order_case(s: &AppState, order: OrderId) -> Result<domain::Order, ApiError> {
    s.store
        .list_orders()
        .await?
        .into_iter()
        .find(|o| o.id == order)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("order {order}")))
}

/// An order's versions, oldest first, with the one in force marked.
#[utoipa::path(get, path = "/api/v1/orders/{id}/versions", tag = "court", security(("staff_token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = [OrderVersionDto]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_versions(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<OrderVersionDto>>, ApiError> {
    let order = order_case(&s, OrderId(id)).await?;
    let allowed = authz::check(
        &s,
        &c,
        Action::ReadOrders,
        case_resource(order.case_id),
        &format!("order {id} versions"),
    )
    .await?;
    let offender_view = allowed.precision == Precision::OffenderView;
    let versions = s.store.order_versions(order.id).await?;
    let current = in_force_version(&versions, s.clock.now());
    Ok(Json(
        versions
            .into_iter()
            .map(|v| {
                let f = Some(v.version) == current;
                version_dto(v, f, offender_view)
            })
            .collect(),
    ))
}

/// Issues a new version: an extension (`extend_days`, from the current end: no gap) or an
/// amendment (conditions and/or zones, from now to the current end). Reasons are required.
#[utoipa::path(post, path = "/api/v1/orders/{id}/versions", tag = "court", request_body = NewVersionDto,
    security(("staff_token" = [])), params(("id" = i64, Path)),
    responses((status = 201, body = OrderVersionDto), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_version(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<NewVersionDto>,
) -> Result<(StatusCode, Json<OrderVersionDto>), ApiError> {
    let order = order_case(&s, OrderId(id)).await?;
    // Redrawing the zones the order names (her new home, her workplace) is the case officer's
    // work, as registering the order is: a zones-only amendment by a monitoring officer is a
    // change of the case. Distances, conditions and duration stay the court's.
    let zones_only = req.zones.is_some()
        && req.extend_days.is_none()
        && req.no_approach_m.is_none()
        && req.warning_m.is_none()
        && req.disclosure_radius_m.is_none()
        && req.no_contact_by_phone.is_none()
        && req.electronic_monitoring.is_none();
    let action = if zones_only && c.principal.role == access::Role::MonitoringOfficer {
        Action::ChangeCase
    } else {
        Action::ChangeOrder
    };
    authz::check(
        &s,
        &c,
        action,
        case_resource(order.case_id),
        &format!("order {id} new version"),
    )
    .await?;
    let (mut wf, petition, case, versions) = order_workflow(&s, order.id).await?;
    let last = versions
        .last()
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("order {id} has no version")))?;
    let amends = req.zones.is_some()
        || req.no_approach_m.is_some()
        || req.warning_m.is_some()
        || req.disclosure_radius_m.is_some()
        || req.no_contact_by_phone.is_some()
        || req.electronic_monitoring.is_some();
    let now = s.clock.now();
    let reasons = req.reasons.trim().to_owned();
    let (event, name, warning_m, disclosure_radius_m, zones, schedules) =
        match (req.extend_days, amends) {
            (Some(days), false) => {
                if !(1..=3_650).contains(&days) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidField,
                        "extend_days: 1 to 3650",
                    ));
                }
                let Some(end) = last.valid_to else {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        "the order has no end to extend",
                    ));
                };
                (
                    Event::Extend {
                        valid_to: end.plus_secs(days * DAY_S),
                        reasons: reasons.clone(),
                    },
                    "extended",
                    last.warning_m,
                    last.disclosure_radius_m,
                    last.zones.clone(),
                    Vec::new(),
                )
            }
            (None, true) => {
                let na = req.no_approach_m.unwrap_or(last.no_approach_m);
                let warning_m = req.warning_m.unwrap_or(last.warning_m.max(na));
                let disclosure = req.disclosure_radius_m.unwrap_or(last.disclosure_radius_m);
                // Validated like any order (distances, zone shapes, schedules).
                let (checked, schedules) = NewOrder {
                    case_id: case.id.0,
                    kind: last.kind.to_string(),
                    valid_from: String::new(),
                    valid_to: None,
                    no_approach_m: na,
                    warning_m,
                    disclosure_radius_m: disclosure,
                    zones: req.zones.clone().unwrap_or_default(),
                }
                .into_domain_at(now, last.valid_to)?;
                let conditions = Conditions {
                    kind: last.kind,
                    duration_s: 0,
                    no_approach_m: na,
                    no_contact_by_phone: req
                        .no_contact_by_phone
                        .unwrap_or(last.no_contact_by_phone),
                    electronic_monitoring: req
                        .electronic_monitoring
                        .unwrap_or(last.electronic_monitoring),
                };
                let zones = if req.zones.is_some() {
                    checked.zones
                } else {
                    last.zones.clone()
                };
                (
                    Event::Amend {
                        conditions,
                        reasons: reasons.clone(),
                    },
                    "amended",
                    warning_m,
                    disclosure,
                    zones,
                    schedules,
                )
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    "either extend_days, or new conditions and/or zones",
                ));
            }
        };
    let effects = wf.handle(event, now).map_err(workflow_error)?;
    let version = wf.current().map_or(0, |v| v.version);
    let (mut step, roster) = step_from(
        effects,
        now,
        StepContext {
            case: &case,
            petition: petition.as_ref().map(|p| p.id),
            order: Some(order.id),
            key: format!("order-{id}:v{version}"),
            warning_m,
            disclosure_radius_m,
            zones,
            issued_by: Some(c.principal.account.0),
            new_order: None,
        },
    );
    if name == "amended" {
        step.replace_conditions = true;
        step.replace_zones = req.zones.is_some();
    }
    if let Some(p) = &petition {
        step.petition = Some((p.id, state_name(wf.state).into()));
        step.event = Some(NewPetitionEvent {
            details: Some(format!("order {id} version {version}")),
            ..event_row(&c, now, name, Some(reasons))
        });
    }
    let out = s.store.apply_court_step(step).await?;
    announce(&s, &out.notices);
    if req.zones.is_some() {
        for (zone, schedule) in out.zones.iter().zip(schedules) {
            if let Some(w) = schedule {
                let text = serde_json::to_string(&w).map_err(ApiError::internal)?;
                s.store.set_zone_schedule(zone.id, Some(text)).await?;
            }
        }
    }
    if roster {
        s.pipeline.sync_roster().await;
    }
    let versions = s.store.order_versions(order.id).await?;
    let current = in_force_version(&versions, now);
    let v = versions
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| ApiError::internal("the new version was not stored"))?;
    let f = Some(v.version) == current;
    Ok((StatusCode::CREATED, Json(version_dto(v, f, false))))
}

/// Schedules the reminders and the lapse check of an order registered directly
/// (`POST /api/v1/orders`), under the same rules as a granted one.
pub(crate) async fn schedule_direct_order(
    s: &AppState,
    order: &domain::Order,
) -> Result<(), ApiError> {
    let Some(valid_to) = order.valid_to else {
        return Ok(()); // open-ended: nothing ends, nothing to remind of
    };
    let case = case_of(s, order.case_id).await?;
    let wf = Workflow {
        case: case.id,
        offender: case.offender,
        petitioner: Petitioner::Police,
        requested: Conditions {
            kind: order.kind,
            duration_s: 0,
            no_approach_m: order.no_approach_m,
            no_contact_by_phone: false,
            electronic_monitoring: false,
        },
        filed_at: s.clock.now(),
        state: WfState::InForce,
        versions: Vec::new(),
        reminders: reminder_policy(s),
    };
    let now = s.clock.now();
    let mut step = CourtStep {
        at: now,
        order_id: Some(order.id),
        ..Default::default()
    };
    for e in wf.schedule(1, valid_to, now) {
        step.timers.extend(timer_for(&e, 1));
    }
    s.store.apply_court_step(step).await?;
    Ok(())
}

/// The caller's own notices (victims and offenders).
#[utoipa::path(get, path = "/api/v1/me/notices", tag = "court", security(("staff_token" = [])),
    responses((status = 200, body = [NoticeDto]), (status = 403, body = ErrorBody)))]
pub async fn my_notices(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<NoticeDto>>, ApiError> {
    let person = match (c.principal.role, c.principal.person) {
        (Role::Victim | Role::Offender, Some(p)) => p,
        _ => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "notices addressed to a person: victims and offenders (staff: /api/v1/notices)",
            ));
        }
    };
    let recipient = if c.principal.role == Role::Victim {
        "victim"
    } else {
        "offender"
    };
    Ok(Json(
        s.store
            .list_notices(10_000)
            .await?
            .into_iter()
            .filter(|n| n.person_id == Some(person) && n.recipient == recipient)
            .map(notice_dto)
            .collect(),
    ))
}

/// Notices for staff: officers see those to the officer of their cases, court staff those
/// to the court.
#[utoipa::path(get, path = "/api/v1/notices", tag = "court", security(("staff_token" = [])),
    responses((status = 200, body = [NoticeDto]), (status = 403, body = ErrorBody)))]
pub async fn staff_notices(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<NoticeDto>>, ApiError> {
    let recipient = match c.principal.role {
        Role::MonitoringOfficer | Role::Police => "officer",
        Role::CourtClerk | Role::Judge => "court",
        _ => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "staff notices are for officers and the court (victims and offenders: /api/v1/me/notices)",
            ));
        }
    };
    let cases = authz::scope(&s, &c, Action::ReadOrders, "notices").await?;
    Ok(Json(
        s.store
            .list_notices(10_000)
            .await?
            .into_iter()
            .filter(|n| n.recipient == recipient && cases.contains(&n.case_id))
            .map(notice_dto)
            .collect(),
    ))
}
