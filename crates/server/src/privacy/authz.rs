//! The one door to case data: every handler that reads or changes case data asks here.
//!
//! [`check`] and [`check_many`] load the caller's grants from the store, ask
//! [`access::authorize`] (the only place that decides), and append the audit records the
//! decision needs to the access log through the store's writer. They return only after
//! those records are durable, so a read is never answered without its audit record: if the
//! log cannot be written, the request fails.
//!
//! # Architecture Invariant
//!
//! Every read of location data passes through this module, which writes the audit record
//! before the data is returned. The compiler holds handlers to it: the store's case-data
//! reads take a [`store::Authorized`], and the only way to one is [`store::Store::authorize`],
//! which appends the access-log records — called here, in [`append`]. [`check`] returns it in
//! [`Allowed`]; a handler that skips the decision has no token to read with.

use crate::AppState;
use crate::http::error::{ApiError, ErrorCode};
use crate::privacy::auth::Caller;
use access::{Action, Decision, DenyReason, Grants, Precision, Resource, Role};
use audit::{Actor, ActorKind, AuditAction, AuditEntry, Outcome, Subject};
use domain::{Case, CaseId};
use store::Authorized;

/// An allowed decision: the precision to answer at, and the token the store's case-data
/// reads take (its access-log record is durable).
#[derive(Debug, Clone)]
pub struct Allowed {
    pub precision: Precision,
    pub token: Authorized,
}

/// The facts [`access::authorize`] needs about the caller.
pub async fn grants(s: &AppState, c: &Caller) -> Result<Grants, ApiError> {
    let p = &c.principal;
    let mut g = Grants::default();
    match p.role {
        Role::MonitoringOfficer => g.assigned_cases = s.store.assigned_cases(p.account).await?,
        Role::Victim | Role::Offender => {
            if let Some(person) = p.person {
                for case in s.store.list_cases().await? {
                    if case.offender == person {
                        g.offender_in.push(case.id);
                    }
                    if case.protected.contains(&person) {
                        g.protected_in.push(case.id);
                    }
                }
            }
        }
        Role::Police => g.dispatches = s.store.dispatches(p.account).await?,
        // One assignments table serves officers and the court; only the field of the role is
        // consulted by the decision.
        // The court's queue: every case with a petition or an order, and any assigned.
        Role::CourtClerk | Role::Judge => {
            let mut cases = s.store.assigned_cases(p.account).await?;
            cases.extend(s.store.court_cases().await?);
            cases.sort();
            cases.dedup();
            g.court_cases = cases;
        }
        Role::Administrator | Role::Auditor => {}
    }
    Ok(g)
}

/// The cases the caller's grants cover, whatever the action.
pub fn granted_cases(g: &Grants) -> Vec<CaseId> {
    // Expired dispatches are listed too; the decision refuses them (it owns the clock rule).
    let mut v: Vec<CaseId> = g
        .assigned_cases
        .iter()
        .chain(&g.court_cases)
        .chain(&g.protected_in)
        .chain(&g.offender_in)
        .copied()
        .chain(g.dispatches.iter().map(|d| d.case))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn forbidden(reason: DenyReason) -> ApiError {
    let msg = match reason {
        DenyReason::RoleNotPermitted => "your role may not do this",
        DenyReason::NotYourCase => "this case is not assigned to you",
        DenyReason::PurposeRequired => {
            "location history needs `purpose_code` (one of access::PURPOSE_CODES) and a `purpose_text` of at least 10 characters"
        }
        DenyReason::ReasonRequired => "break-glass needs a reason of at least 10 characters",
        DenyReason::ProximityUnknown => "the offender's distance is unknown",
        DenyReason::NotYourPerson => "you may read only your own position",
        DenyReason::NoCase => "this needs a case you are assigned to",
    };
    ApiError::new(ErrorCode::Forbidden, msg)
}

/// Decides a batch of requests made by one HTTP call, writes every audit record they need
/// in one durable append, and returns the decisions in order.
pub async fn check_many(
    s: &AppState,
    c: &Caller,
    asks: &[(Action, Resource)],
    details: &str,
) -> Result<Vec<Decision>, ApiError> {
    Ok(decide(s, c, asks, details).await?.0)
}

/// As [`check_many`], with the token of the allowed decisions.
pub async fn decide(
    s: &AppState,
    c: &Caller,
    asks: &[(Action, Resource)],
    details: &str,
) -> Result<(Vec<Decision>, Authorized), ApiError> {
    let g = grants(s, c).await?;
    let t = s.clock.now();
    let mut decisions = Vec::with_capacity(asks.len());
    let mut entries = Vec::new();
    let mut unlogged = Vec::new();
    for (action, resource) in asks {
        let d = access::authorize(&c.principal, *action, resource, &g, t);
        match access::audit_entry(&c.principal, *action, resource, &d, details.into()) {
            Some(e) => entries.push(e),
            None if matches!(d, Decision::Allow { .. }) => unlogged.push(resource.case),
            None => {}
        }
        decisions.push(d);
    }
    let token = authorize(s, entries, &unlogged).await?;
    Ok((decisions, token))
}

/// Decides one request; `Ok(Allowed)` (the precision and the token of the store's
/// case-data reads) when allowed, `forbidden` otherwise. The audit record is durable when
/// this returns.
pub async fn check(
    s: &AppState,
    c: &Caller,
    action: Action,
    resource: Resource,
    details: &str,
) -> Result<Allowed, ApiError> {
    let (d, token) = decide(s, c, &[(action, resource)], details).await?;
    match d.into_iter().next() {
        Some(Decision::Allow { precision, .. }) => Ok(Allowed { precision, token }),
        Some(Decision::Deny { reason }) => Err(forbidden(reason)),
        None => Err(ApiError::internal("no decision")),
    }
}

/// The cases whose data `action` may be read by the caller, at full precision, for a
/// listing endpoint. Every case considered is decided (and audited) separately. With no
/// case granted at all, the answer is a refusal when the role may never do this (an
/// administrator or auditor asking for positions), and an empty list otherwise (an officer
/// with no assignment yet).
pub async fn scope(
    s: &AppState,
    c: &Caller,
    action: Action,
    details: &str,
) -> Result<Vec<CaseId>, ApiError> {
    Ok(scope_and_token(s, c, action, details).await?.0)
}

/// As [`scope`], with the token of the store's case-data reads for those cases.
pub async fn scope_and_token(
    s: &AppState,
    c: &Caller,
    action: Action,
    details: &str,
) -> Result<(Vec<CaseId>, Authorized), ApiError> {
    let (cases, token) = scope_decided(s, c, action, details).await?;
    Ok((cases.into_iter().map(|(case, _)| case).collect(), token))
}

/// As [`scope`], with the precision each case was allowed at, so that a listing can shape
/// each case's part (the offender's view of an order carries no zones).
pub async fn scope_with_precision(
    s: &AppState,
    c: &Caller,
    action: Action,
    details: &str,
) -> Result<Vec<(CaseId, Precision)>, ApiError> {
    Ok(scope_decided(s, c, action, details).await?.0)
}

async fn scope_decided(
    s: &AppState,
    c: &Caller,
    action: Action,
    details: &str,
) -> Result<(Vec<(CaseId, Precision)>, Authorized), ApiError> {
    let g = grants(s, c).await?;
    let cases = granted_cases(&g);
    if cases.is_empty() {
        // Decide on "no case" so that the refusal is the role's, and is logged.
        let d = check_many(s, c, &[(action, Resource::default())], details).await?;
        return match d.first() {
            Some(Decision::Deny {
                reason: reason @ (DenyReason::RoleNotPermitted | DenyReason::PurposeRequired),
            }) => Err(forbidden(*reason)),
            _ => Ok((Vec::new(), Authorized::nothing())),
        };
    }
    let asks: Vec<_> = cases
        .iter()
        .map(|c| {
            (
                action,
                Resource {
                    case: Some(*c),
                    ..Default::default()
                },
            )
        })
        .collect();
    let (d, token) = decide(s, c, &asks, details).await?;
    let role_refused = d.iter().all(|d| {
        matches!(
            d,
            Decision::Deny {
                reason: DenyReason::RoleNotPermitted
            }
        )
    });
    if role_refused {
        return Err(forbidden(DenyReason::RoleNotPermitted));
    }
    let scoped = cases
        .into_iter()
        .zip(d)
        .filter_map(|(case, d)| match d {
            Decision::Allow {
                precision: p @ (Precision::Full | Precision::OffenderView),
                ..
            } => Some((case, p)),
            _ => None,
        })
        .collect();
    Ok((scoped, token))
}

/// Alerts from a device that belongs to no case (a tamper or an SOS from a device whose
/// owner has no case, or no owner yet) are the second rule outside the matrix: there is no
/// case to be assigned to, and such an alert must still reach a person. Every monitoring
/// officer may see and handle them; they carry no victim's location. Logged like any read or
/// handling.
pub async fn unlinked_device_alert(
    s: &AppState,
    c: &Caller,
    action: access::Action,
    details: &str,
) -> Result<Authorized, ApiError> {
    let logged = if action == access::Action::HandleAlert {
        AuditAction::HandleAlert
    } else {
        AuditAction::ReadAlerts
    };
    let details = format!("device alert outside any case; {details}");
    let allowed = c.principal.role == Role::MonitoringOfficer;
    outside_matrix(s, c, allowed, logged, None, details, &[]).await
}

/// The list of police units a monitoring officer may send (for the dispatch dialog) is the
/// third rule outside the matrix: it names accounts, not a case, and carries no location.
/// Whoever may dispatch (`access::may_dispatch`) may read it; logged as `handle_alert`.
pub async fn dispatch_roster(s: &AppState, c: &Caller, details: &str) -> Result<(), ApiError> {
    let allowed = access::may_dispatch(c.principal.role);
    let details = format!("dispatch roster; {details}");
    outside_matrix(s, c, allowed, AuditAction::HandleAlert, None, details, &[])
        .await
        .map(drop)
}

/// Case intake (registering people, devices and cases) is the one rule outside the matrix:
/// a case does not exist yet, so there is nothing to be assigned to. It is the
/// administrator's registry work and involves no location data; it is logged as
/// `change_case` like any other change.
pub async fn intake(
    s: &AppState,
    c: &Caller,
    case: Option<CaseId>,
    details: &str,
) -> Result<Authorized, ApiError> {
    let details = format!("intake; {details}");
    outside_matrix(
        s,
        c,
        c.principal.role == Role::Administrator,
        AuditAction::ChangeCase,
        case,
        details,
        &[],
    )
    .await
}

/// The administrator's registry listings (people, devices with their latest health, cases;
/// never positions) are intake work over every case: one record, as [`intake`], and the
/// token covers every case (and data in no case), which is what that one decision allows.
pub async fn registry(s: &AppState, c: &Caller, details: &str) -> Result<Authorized, ApiError> {
    let every: Vec<Option<CaseId>> = s
        .store
        .list_cases()
        .await?
        .iter()
        .map(|k| Some(k.id))
        .chain(std::iter::once(None))
        .collect();
    outside_matrix(
        s,
        c,
        c.principal.role == Role::Administrator,
        AuditAction::ChangeCase,
        None,
        format!("intake; {details}"),
        &every,
    )
    .await
}

/// A rule outside the matrix: `allowed` says whether the caller's role may (decided by the
/// caller from the role alone), and the decision is logged (allowed or denied) before
/// anything happens. `covers`: the cases the decision allows beyond its record's own.
async fn outside_matrix(
    s: &AppState,
    c: &Caller,
    allowed: bool,
    action: AuditAction,
    case: Option<CaseId>,
    details: String,
    covers: &[Option<CaseId>],
) -> Result<Authorized, ApiError> {
    let entry = AuditEntry {
        actor: actor(c),
        action,
        subject: Subject {
            case,
            person: None,
            device: None,
        },
        purpose: None,
        outcome: if allowed {
            Outcome::Allowed
        } else {
            Outcome::Denied
        },
        details,
    };
    let token = authorize(s, vec![entry], if allowed { covers } else { &[] }).await?;
    if allowed {
        Ok(token)
    } else {
        Err(forbidden(DenyReason::RoleNotPermitted))
    }
}

/// The caller as the access log names them.
pub fn actor(c: &Caller) -> Actor {
    Actor {
        kind: ActorKind::Account,
        id: c.principal.account.0,
        role: c.principal.role.as_str().to_owned(),
    }
}

/// Appends to the access log and waits until the records are durable; the token of what
/// the records allowed (the only path in the server to a request's [`Authorized`]).
pub async fn append(s: &AppState, entries: Vec<AuditEntry>) -> Result<Authorized, ApiError> {
    authorize(s, entries, &[]).await
}

/// [`append`], the token also covering `unlogged`: allowed requests the rules do not log.
async fn authorize(
    s: &AppState,
    entries: Vec<AuditEntry>,
    unlogged: &[Option<CaseId>],
) -> Result<Authorized, ApiError> {
    let (token, _) = s
        .store
        .authorize(
            entries,
            unlogged,
            s.clock.now(),
            Some(s.audit_signer.clone()),
        )
        .await?;
    Ok(token)
}

/// Whether `person` is a party of `case`.
pub fn party(case: &Case, person: domain::PersonId) -> bool {
    case.offender == person || case.protected.contains(&person)
}

/// The case an alert belongs to: its own, or for a device alert (SOS, tamper) the case the
/// device's wearer is a party of.
pub(crate) fn alert_case(
    a: &store::AlertRecord,
    devices: &[domain::Device],
    cases: &[Case],
) -> Option<CaseId> {
    a.alert.case_id.or_else(|| {
        let owner = devices.iter().find(|d| Some(d.id) == a.device)?.owner?;
        cases.iter().find(|k| party(k, owner)).map(|k| k.id)
    })
}

/// Alerts that belong to no case and still must reach a person: device alerts from a device
/// in no case, and system alerts (the server behind on ingest). Every monitoring officer sees
/// and handles them (`authz::unlinked_device_alert`); they carry no one's position.
pub(crate) fn outside_any_case(a: &store::AlertRecord) -> bool {
    a.device.is_some() || a.alert.rule == domain::AlertRule::IngestBacklog
}
