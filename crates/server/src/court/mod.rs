//! Petitions, the court workflow, versioned orders and notices over HTTP.
//!
//! Every step is decided by the pure [`access::Workflow`]: a handler (or the scheduler)
//! rebuilds the petition's workflow from the store, hands it the event and the time, and
//! turns the effects into one [`store::CourtStep`] that is written in one transaction (state,
//! history row, order version, notices, timers). A grant issues version 1 of an order into
//! the table the engine reads; the engine links every device the offender wears by owner, so
//! a device registered before the order is covered; the roster is synced before answering.
//!
//! Orders are versioned and never edited: an extension starts exactly where the last version
//! ends; an amendment (conditions, zones) runs from now to the current end. The `orders`
//! row is the engine's projection of the newest version.
//!
//! The scheduler ([`scheduler::spawn_scheduler`]) fires the workflow's timers (reminders before expiry,
//! lapse checks) with the server's clock (`AppState::clock`) as input. A timer is marked done in the
//! same transaction as the notices it causes, and notices are unique per dedup key, so each
//! notice is sent once, across restarts too.
//!
//! Who may: victims file for their own case, police for any case (`file_petition`); court
//! clerks review and judges decide (`review_petition`, `decide_petition`); judges issue
//! versions (`change_order`); petitions are read under `read_petitions`. Court staff handle
//! every case with a petition or an order (the court's queue, `authz::grants`).

use crate::AppState;
use crate::http::dto::{NewOrder, NoticeDto, OrderDto, ZoneDto, ts};
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::privacy::auth::Caller;
use crate::privacy::authz;
use access::{
    Action, Conditions, Effect, Event, Notice, OrderVersion, Petitioner, Precision, Recipient,
    ReminderPolicy, Resource, Role, State as WfState, Workflow, WorkflowError,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::{Case, CaseId, OrderId, OrderKind, UnixMicros};
use serde::{Deserialize, Serialize};
use store::{CourtStep, NewNotice, NewPetitionEvent, NewTimer, OrderVersionRecord, Petition};
use tokio::sync::watch;
use utoipa::ToSchema;

mod handlers;
mod scheduler;

// The router names the handlers and `start` the scheduler as `court::…`.
pub use handlers::*;
pub use scheduler::*;

const DAY_S: i64 = 86_400;

// ---- wire shapes ---------------------------------------------------------------------------

/// Conditions asked for or ordered.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionsDto {
    #[schema(example = 100.0)]
    pub no_approach_m: f64,
    /// Length of the (first) period in days; a provisional measure at most 92.
    #[schema(example = 60)]
    pub duration_days: i64,
    #[serde(default)]
    pub no_contact_by_phone: bool,
    #[serde(default)]
    pub electronic_monitoring: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPetitionDto {
    pub case_id: i64,
    /// `provisional_measure`, `restraining_order` or `electronic_monitoring`.
    #[schema(example = "provisional_measure")]
    pub kind: String,
    pub requested: ConditionsDto,
    pub statement: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PetitionEventDto {
    pub at: String,
    pub actor_account_id: Option<i64>,
    pub actor_role: String,
    /// `filed`, `review_started`, `granted`, `modified`, `denied`, `lapsed`, `extended`,
    /// `amended`.
    pub event: String,
    pub reasons: Option<String>,
    pub details: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PetitionDto {
    pub id: i64,
    pub case_id: i64,
    pub kind: String,
    /// `filed`, `under_review`, `denied`, `in_force`, `lapsed`.
    pub state: String,
    /// `victim`, `police` or `prosecutor`.
    pub petitioner: String,
    pub petitioner_account_id: i64,
    pub requested: ConditionsDto,
    pub statement: String,
    pub filed_at: String,
    pub updated_at: String,
    /// The order the grant issued.
    pub order_id: Option<i64>,
    /// The history, oldest first (`GET /api/v1/petitions/{id}` and the step answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<PetitionEventDto>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionDto {
    /// `grant`, `modify` or `deny`.
    pub decision: String,
    /// The conditions ordered (`modify`: required; `grant`: the requested ones if absent).
    pub conditions: Option<ConditionsDto>,
    /// Required for `modify` and `deny`.
    #[serde(default)]
    pub reasons: String,
    /// Warning distance; default max(5 × no_approach_m, 500).
    pub warning_m: Option<f64>,
    /// Disclosure radius for the victim's view; default warning_m + 100.
    pub disclosure_radius_m: Option<f64>,
    /// Exclusion zones, as in `POST /api/v1/orders`.
    #[serde(default)]
    pub zones: Vec<ZoneDto>,
}

/// A new order version: an extension (`extend_days`) or an amendment (any of the others).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersionDto {
    /// Extend by this many days from the current end (no gap).
    pub extend_days: Option<i64>,
    /// Replace the zones (same shape as `POST /api/v1/orders`).
    pub zones: Option<Vec<ZoneDto>>,
    pub no_approach_m: Option<f64>,
    pub warning_m: Option<f64>,
    pub disclosure_radius_m: Option<f64>,
    pub no_contact_by_phone: Option<bool>,
    pub electronic_monitoring: Option<bool>,
    pub reasons: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderVersionDto {
    pub order_id: i64,
    pub version: u32,
    pub valid_from: String,
    pub valid_to: Option<String>,
    /// Whether this is the version in force now (the newest one whose period holds now).
    pub in_force: bool,
    pub kind: String,
    pub no_approach_m: f64,
    /// Absent in the offender's view (with zones and reasons: they describe her life).
    pub warning_m: Option<f64>,
    pub disclosure_radius_m: Option<f64>,
    pub no_contact_by_phone: bool,
    pub electronic_monitoring: bool,
    pub zones: Vec<ZoneDto>,
    pub reasons: Option<String>,
    pub issued_at: String,
    pub issued_by: Option<i64>,
}

// ---- conversions ---------------------------------------------------------------------------

fn state_name(s: WfState) -> &'static str {
    match s {
        WfState::Filed => "filed",
        WfState::UnderReview => "under_review",
        WfState::Denied => "denied",
        WfState::InForce => "in_force",
        WfState::Lapsed => "lapsed",
    }
}

fn parse_state(s: &str) -> Result<WfState, ApiError> {
    Ok(match s {
        "filed" => WfState::Filed,
        "under_review" => WfState::UnderReview,
        "denied" => WfState::Denied,
        "in_force" => WfState::InForce,
        "lapsed" => WfState::Lapsed,
        other => return Err(ApiError::internal(format!("stored petition state {other}"))),
    })
}

fn petitioner_name(p: Petitioner) -> &'static str {
    match p {
        Petitioner::Victim => "victim",
        Petitioner::Police => "police",
        Petitioner::Prosecutor => "prosecutor",
    }
}

fn parse_petitioner(s: &str) -> Petitioner {
    match s {
        "victim" => Petitioner::Victim,
        "prosecutor" => Petitioner::Prosecutor,
        _ => Petitioner::Police,
    }
}

/// The timer a scheduling effect sets (`None` for any other effect); a lapse check is
/// tagged with `lapse_version`.
fn timer_for(e: &Effect, lapse_version: u32) -> Option<NewTimer> {
    match *e {
        Effect::ScheduleReminder { at, to, version } => Some(NewTimer {
            order_id: None,
            at,
            kind: "reminder".into(),
            recipient: Some(recipient_name(to).into()),
            version,
        }),
        Effect::ScheduleLapseCheck { at } => Some(NewTimer {
            order_id: None,
            at,
            kind: "lapse_check".into(),
            recipient: None,
            version: lapse_version,
        }),
        _ => None,
    }
}

fn recipient_name(r: Recipient) -> &'static str {
    match r {
        Recipient::Court => "court",
        Recipient::Officer => "officer",
        Recipient::Victim => "victim",
    }
}

fn parse_recipient(s: &str) -> Recipient {
    match s {
        "court" => Recipient::Court,
        "officer" => Recipient::Officer,
        _ => Recipient::Victim,
    }
}

/// The notice's kind, end and reasons; whether the offender is told too (his obligations
/// changed; never the reasons, which may describe her).
fn notice_parts(n: &Notice) -> (&'static str, Option<UnixMicros>, Option<String>, bool) {
    match n {
        Notice::PetitionFiled => ("petition_filed", None, None, false),
        Notice::UnderReview => ("under_review", None, None, false),
        Notice::Granted { valid_to } => ("granted", Some(*valid_to), None, true),
        Notice::Modified { valid_to, reasons } => {
            ("modified", Some(*valid_to), Some(reasons.clone()), true)
        }
        Notice::Denied { reasons } => ("denied", None, Some(reasons.clone()), false),
        Notice::Extended { valid_to } => ("extended", Some(*valid_to), None, true),
        Notice::Amended { valid_to, reasons } => {
            ("amended", Some(*valid_to), Some(reasons.clone()), true)
        }
        Notice::ExpiresSoon { valid_to } => ("expires_soon", Some(*valid_to), None, false),
        Notice::Lapsed { at } => ("lapsed", Some(*at), None, true),
    }
}

fn conditions_in(kind: OrderKind, c: &ConditionsDto) -> Result<Conditions, ApiError> {
    if !(c.no_approach_m.is_finite() && c.no_approach_m > 0.0 && c.no_approach_m <= 50_000.0) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "no_approach_m: a positive number of metres up to 50000",
        ));
    }
    if !(1..=3_650).contains(&c.duration_days) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "duration_days: 1 to 3650",
        ));
    }
    let duration_s = c.duration_days * DAY_S;
    if kind == OrderKind::ProvisionalMeasure
        && duration_s > access::workflow::PROVISIONAL_PERIOD_MAX_S
    {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "duration_days: a provisional measure lasts at most 92 days per period",
        ));
    }
    Ok(Conditions {
        kind,
        duration_s,
        no_approach_m: c.no_approach_m,
        no_contact_by_phone: c.no_contact_by_phone,
        electronic_monitoring: c.electronic_monitoring,
    })
}

fn conditions_out(c: &Conditions) -> ConditionsDto {
    ConditionsDto {
        no_approach_m: c.no_approach_m,
        duration_days: c.duration_s / DAY_S,
        no_contact_by_phone: c.no_contact_by_phone,
        electronic_monitoring: c.electronic_monitoring,
    }
}

fn workflow_error(e: WorkflowError) -> ApiError {
    let code = match e {
        WorkflowError::InvalidTransition { .. }
        | WorkflowError::AlreadyLapsed
        | WorkflowError::TooManyExtensions => ErrorCode::Conflict,
        WorkflowError::ReasonsRequired
        | WorkflowError::PeriodTooLong { .. }
        | WorkflowError::EmptyPeriod => ErrorCode::InvalidField,
    };
    ApiError::new(code, e.to_string())
}

fn requested_of(p: &Petition) -> Conditions {
    Conditions {
        kind: p.kind,
        duration_s: p.duration_s,
        no_approach_m: p.no_approach_m,
        no_contact_by_phone: p.no_contact_by_phone,
        electronic_monitoring: p.electronic_monitoring,
    }
}

fn petition_dto(p: &Petition, events: Option<Vec<store::PetitionEvent>>) -> PetitionDto {
    PetitionDto {
        id: p.id,
        case_id: p.case_id.0,
        kind: p.kind.to_string(),
        state: p.state.clone(),
        petitioner: p.petitioner.clone(),
        petitioner_account_id: p.petitioner_account_id,
        requested: conditions_out(&requested_of(p)),
        statement: p.statement.clone(),
        filed_at: ts(p.filed_at),
        updated_at: ts(p.updated_at),
        order_id: p.order_id.map(|o| o.0),
        events: events.map(|es| {
            es.into_iter()
                .map(|e| PetitionEventDto {
                    at: ts(e.at),
                    actor_account_id: e.actor_account_id,
                    actor_role: e.actor_role,
                    event: e.event,
                    reasons: e.reasons,
                    details: e.details,
                })
                .collect()
        }),
    }
}

fn notice_dto(n: store::NoticeRecord) -> NoticeDto {
    NoticeDto {
        id: n.id,
        case_id: n.case_id.0,
        order_id: n.order_id.map(|o| o.0),
        petition_id: n.petition_id,
        recipient: n.recipient,
        kind: n.kind,
        valid_to: n.valid_to.map(ts),
        reasons: n.reasons,
        created_at: ts(n.created_at),
    }
}

/// The newest version whose period holds `now`.
fn in_force_version(versions: &[OrderVersionRecord], now: UnixMicros) -> Option<u32> {
    versions
        .iter()
        .rev()
        .find(|v| v.valid_from <= now && v.valid_to.is_none_or(|to| now < to))
        .map(|v| v.version)
}

fn version_dto(v: OrderVersionRecord, in_force: bool, offender_view: bool) -> OrderVersionDto {
    let zones = if offender_view {
        Vec::new()
    } else {
        OrderDto::from(domain::Order {
            id: v.order_id,
            case_id: CaseId(0),
            kind: v.kind,
            valid_from: v.valid_from,
            valid_to: v.valid_to,
            no_approach_m: v.no_approach_m,
            warning_m: v.warning_m,
            disclosure_radius_m: v.disclosure_radius_m,
            zones: v.zones.clone(),
        })
        .zones
    };
    OrderVersionDto {
        order_id: v.order_id.0,
        version: v.version,
        valid_from: ts(v.valid_from),
        valid_to: v.valid_to.map(ts),
        in_force,
        kind: v.kind.to_string(),
        no_approach_m: v.no_approach_m,
        warning_m: (!offender_view).then_some(v.warning_m),
        disclosure_radius_m: (!offender_view).then_some(v.disclosure_radius_m),
        no_contact_by_phone: v.no_contact_by_phone,
        electronic_monitoring: v.electronic_monitoring,
        zones,
        reasons: (!offender_view).then_some(v.reasons),
        issued_at: ts(v.issued_at),
        issued_by: v.issued_by,
    }
}

/// The end the workflow sees for an open-ended order (registered directly): far enough to
/// never come, near enough to keep its arithmetic. Never stored.
const OPEN_END: UnixMicros = UnixMicros(i64::MAX / 2);

/// Whether a time belongs to an open end (nothing is scheduled there).
fn open_ended(t: UnixMicros) -> bool {
    t >= OPEN_END.plus_secs(-1_000 * 365 * DAY_S)
}

fn wf_version(v: &OrderVersionRecord) -> OrderVersion {
    let valid_to = v.valid_to.unwrap_or(OPEN_END);
    OrderVersion {
        version: v.version,
        valid_from: v.valid_from,
        valid_to,
        conditions: Conditions {
            kind: v.kind,
            duration_s: valid_to.0.saturating_sub(v.valid_from.0) / UnixMicros::SECOND,
            no_approach_m: v.no_approach_m,
            no_contact_by_phone: v.no_contact_by_phone,
            electronic_monitoring: v.electronic_monitoring,
        },
        reasons: v.reasons.clone(),
        issued_at: v.issued_at,
    }
}

pub(crate) fn reminder_policy(s: &AppState) -> ReminderPolicy {
    ReminderPolicy {
        offsets_s: s.config.court.reminder_offsets_s.clone(),
        ..ReminderPolicy::default()
    }
}

async fn case_of(s: &AppState, id: CaseId) -> Result<Case, ApiError> {
    s.store
        .list_cases()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidReference,
                format!("case {id} does not exist"),
            )
        })
}

/// A petition's workflow as stored: the petition, and the versions of its order.
async fn petition_workflow(s: &AppState, p: &Petition, case: &Case) -> Result<Workflow, ApiError> {
    let versions = match p.order_id {
        Some(o) => s.store.order_versions(o).await?,
        None => Vec::new(),
    };
    Ok(Workflow {
        case: case.id,
        offender: case.offender,
        petitioner: parse_petitioner(&p.petitioner),
        requested: requested_of(p),
        filed_at: p.filed_at,
        state: parse_state(&p.state)?,
        versions: versions.iter().map(wf_version).collect(),
        reminders: reminder_policy(s),
    })
}

/// An order's workflow: its petition's, or for an order registered directly, one in force
/// (or lapsed) with its versions, under the same rules.
async fn order_workflow(
    s: &AppState,
    order: OrderId,
) -> Result<(Workflow, Option<Petition>, Case, Vec<OrderVersionRecord>), ApiError> {
    let orders = s.store.list_orders().await?;
    let o = orders
        .iter()
        .find(|o| o.id == order)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("order {order}")))?;
    let case = case_of(s, o.case_id).await?;
    let versions = s.store.order_versions(order).await?;
    if let Some(p) = s.store.petition_for_order(order).await? {
        let wf = petition_workflow(s, &p, &case).await?;
        return Ok((wf, Some(p), case, versions));
    }
    let first = versions
        .first()
        .ok_or_else(|| ApiError::internal(format!("order {order} has no version")))?;
    let lapsed = s.store.order_lapsed_at(order).await?.is_some();
    let wf = Workflow {
        case: case.id,
        offender: case.offender,
        petitioner: Petitioner::Police,
        requested: wf_version(first).conditions,
        filed_at: first.issued_at,
        state: if lapsed {
            WfState::Lapsed
        } else {
            WfState::InForce
        },
        versions: versions.iter().map(wf_version).collect(),
        reminders: reminder_policy(s),
    };
    Ok((wf, None, case, versions))
}

/// What a step needs beyond the effects.
struct StepContext<'a> {
    case: &'a Case,
    petition: Option<i64>,
    order: Option<OrderId>,
    /// Prefix of the notices' dedup keys: unique per step.
    key: String,
    /// For a version: the values the workflow does not carry.
    warning_m: f64,
    disclosure_radius_m: f64,
    zones: Vec<domain::Zone>,
    issued_by: Option<i64>,
    /// A grant: the order row to create (zones included).
    new_order: Option<domain::Order>,
}

fn step_from(effects: Vec<Effect>, at: UnixMicros, cx: StepContext<'_>) -> (CourtStep, bool) {
    let mut step = CourtStep {
        at,
        order_id: cx.order,
        new_order: cx.new_order,
        ..Default::default()
    };
    let mut roster = false;
    let mut notices = Vec::new();
    let mut latest_version = None;
    for e in effects {
        match e {
            Effect::NotifyVictim { notice } => {
                let (kind, valid_to, reasons, offender_too) = notice_parts(&notice);
                for p in &cx.case.protected {
                    notices.push(("victim", Some(*p), kind, valid_to, reasons.clone()));
                }
                if offender_too {
                    notices.push(("offender", Some(cx.case.offender), kind, valid_to, None));
                }
            }
            Effect::NotifyOfficer { notice } => {
                let (kind, valid_to, reasons, _) = notice_parts(&notice);
                notices.push(("officer", None, kind, valid_to, reasons));
            }
            Effect::NotifyCourt { notice } => {
                let (kind, valid_to, reasons, _) = notice_parts(&notice);
                notices.push(("court", None, kind, valid_to, reasons));
            }
            Effect::IssueOrderVersion { version, .. } => {
                latest_version = Some(version.version);
                step.version = Some(OrderVersionRecord {
                    order_id: cx.order.unwrap_or(OrderId(0)),
                    version: version.version,
                    valid_from: version.valid_from,
                    valid_to: (!open_ended(version.valid_to)).then_some(version.valid_to),
                    kind: version.conditions.kind,
                    no_approach_m: version.conditions.no_approach_m,
                    warning_m: cx.warning_m,
                    disclosure_radius_m: cx.disclosure_radius_m,
                    no_contact_by_phone: version.conditions.no_contact_by_phone,
                    electronic_monitoring: version.conditions.electronic_monitoring,
                    zones: cx.zones.clone(),
                    reasons: version.reasons,
                    issued_at: version.issued_at,
                    issued_by: cx.issued_by,
                });
                roster = true;
            }
            // The engine looks devices up by owner: every device he wears, including those
            // registered before the order, is covered once the roster is synced.
            Effect::LinkDevices { .. } => roster = true,
            Effect::EndMonitoring { .. } => {
                step.lapsed = true;
                roster = true;
            }
            Effect::ScheduleReminder { at, .. } | Effect::ScheduleLapseCheck { at }
                if open_ended(at) => {}
            Effect::CancelReminders { version } => step.cancel_reminders_of = Some(version),
            e @ (Effect::ScheduleReminder { .. } | Effect::ScheduleLapseCheck { .. }) => {
                step.timers
                    .extend(timer_for(&e, latest_version.unwrap_or(0)));
            }
        }
    }
    step.notices = notices
        .into_iter()
        .map(|(recipient, person, kind, valid_to, reasons)| NewNotice {
            case_id: cx.case.id,
            order_id: cx.order,
            petition_id: cx.petition,
            recipient: recipient.into(),
            person_id: person,
            kind: kind.into(),
            valid_to,
            reasons,
            dedup_key: format!(
                "{}:{kind}:{recipient}:{}",
                cx.key,
                person.map_or("-".to_owned(), |p| p.0.to_string())
            ),
        })
        .collect();
    (step, roster)
}

fn event_row(c: &Caller, at: UnixMicros, event: &str, reasons: Option<String>) -> NewPetitionEvent {
    NewPetitionEvent {
        at,
        actor_account_id: Some(c.principal.account.0),
        actor_role: c.principal.role.as_str().into(),
        event: event.into(),
        reasons: reasons.filter(|r| !r.trim().is_empty()),
        details: None,
    }
}

/// Counts the notices just written and pushes them on the live stream (to their recipients).
fn announce(s: &AppState, notices: &[store::NoticeRecord]) {
    for n in notices {
        metrics::counter!("bulwark_notices_total", "kind" => n.kind.clone(), "recipient" => n.recipient.clone())
            .increment(1);
        s.hub
            .publish(crate::live::LiveEvent::Notice(crate::live::NoticeEvent {
                notice: notice_dto(n.clone()),
                person_id: n.person_id.map(|p| p.0),
            }));
    }
}

fn case_resource(case: CaseId) -> Resource {
    Resource {
        case: Some(case),
        ..Default::default()
    }
}

async fn load_petition(s: &AppState, id: i64) -> Result<Petition, ApiError> {
    s.store
        .petition(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("petition {id}")))
}

/// A petition, once the caller's access to its case for `action` is decided and logged.
async fn authorized_petition(
    s: &AppState,
    c: &Caller,
    id: i64,
    action: Action,
    details: &str,
) -> Result<Petition, ApiError> {
    let p = load_petition(s, id).await?;
    authz::check(s, c, action, case_resource(p.case_id), details).await?;
    Ok(p)
}

async fn with_events(s: &AppState, id: i64) -> Result<PetitionDto, ApiError> {
    let p = load_petition(s, id).await?;
    let events = s.store.petition_events(id).await?;
    Ok(petition_dto(&p, Some(events)))
}
