//! Roles and the one authorisation decision.
//!
//! # Overview
//!
//! [`authorize`] is the only place that decides whether a person may do something. The
//! server calls it for every request that touches case data, with the facts it loaded for
//! that person ([`Grants`]) and the time; the answer says whether to go on, at what
//! precision to answer, and what to write to the audit log ([`AuditNeed`]). It does no IO,
//! so the whole matrix of role × action × relation is tested (see `tests/matrix.rs` and
//! `docs/privacy.md`).
//!
//! # Architecture Invariant
//!
//! Offender-facing decisions never depend on where the protected person is. The only input
//! derived from her position is [`Resource::offender_proximity`], and the offender's rules
//! ([`offender_rules`]) are a function that does not receive the [`Resource`] at all, only
//! the action and whether the case is his. A test checks that varying the proximity never
//! changes an offender's decision.

use audit::{Actor, ActorKind, AuditAction, AuditEntry, Outcome, Purpose, Subject};
use domain::{CaseId, PersonId, UnixMicros};

/// An account: the store assigns the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

domain::str_enum!(
    /// The role an account acts in.
    Role {
        /// Manages accounts and roles; sees no case data (separation of duties).
        Administrator = "administrator",
        /// Probation / control-centre staff; sees the cases assigned to them.
        MonitoringOfficer = "monitoring_officer",
        /// Sees a case only while an alert is dispatched to them, or by break-glass.
        Police = "police",
        /// Handles petitions and orders for the court.
        CourtClerk = "court_clerk",
        /// Decides petitions and issues orders.
        Judge = "judge",
        /// The protected person.
        Victim = "victim",
        /// The person an order restrains.
        Offender = "offender",
        /// Reads the access log; never positions.
        Auditor = "auditor",
    }
);

domain::str_enum!(
    /// Everything a person can ask to do. Location data has its own actions so that each
    /// can carry its own rule.
    Action {
        /// Case summary: parties, order status, device status. No positions.
        ViewCase = "view_case",
        /// The offender's current position.
        ReadPosition = "read_position",
        /// The offender's location history.
        ReadTrack = "read_track",
        /// A protected person's current position.
        ReadVictimPosition = "read_victim_position",
        /// A protected person's location history.
        ReadVictimTrack = "read_victim_track",
        /// The live stream of a case (positions and alerts as they happen).
        LiveStream = "live_stream",
        ReadAlerts = "read_alerts",
        /// Acknowledge, dispatch, resolve or annotate an alert.
        HandleAlert = "handle_alert",
        /// Write an evidence bundle.
        ExportEvidence = "export_evidence",
        /// Create or edit a case, link or unlink devices.
        ChangeCase = "change_case",
        ReadOrders = "read_orders",
        /// Issue a new order version.
        ChangeOrder = "change_order",
        FilePetition = "file_petition",
        /// Move a petition through review (clerk's work).
        ReviewPetition = "review_petition",
        /// Grant, modify or deny a petition.
        DecidePetition = "decide_petition",
        ReadAuditLog = "read_audit_log",
        /// Create accounts, change roles, assignments and credentials.
        ChangeAccess = "change_access",
        /// Petitions of a case and their history (the petitioner's statement included).
        ReadPetitions = "read_petitions",
        /// Send a report from one's own phone through the app: a position (location
        /// sharing) or a silent SOS. Only for the protected person, for her own person.
        SendOwnReport = "send_own_report",
    }
);

impl Action {
    /// The audit action a record of this action carries.
    pub fn audit_action(self) -> AuditAction {
        match self {
            Action::ViewCase => AuditAction::ReadCase,
            Action::ReadPosition => AuditAction::ReadPosition,
            Action::ReadTrack => AuditAction::ReadTrack,
            Action::ReadVictimPosition => AuditAction::ReadVictimPosition,
            Action::ReadVictimTrack => AuditAction::ReadVictimTrack,
            Action::LiveStream => AuditAction::LiveStream,
            Action::ReadAlerts => AuditAction::ReadAlerts,
            Action::HandleAlert => AuditAction::HandleAlert,
            Action::ExportEvidence => AuditAction::Export,
            Action::ChangeCase => AuditAction::ChangeCase,
            Action::ReadOrders => AuditAction::ReadCase,
            Action::ChangeOrder => AuditAction::ChangeOrder,
            Action::FilePetition => AuditAction::FilePetition,
            Action::ReviewPetition => AuditAction::ReviewPetition,
            Action::DecidePetition => AuditAction::DecidePetition,
            Action::ReadAuditLog => AuditAction::ReadAudit,
            Action::ChangeAccess => AuditAction::ChangeAccess,
            Action::ReadPetitions => AuditAction::ReadCase,
            Action::SendOwnReport => AuditAction::OwnReport,
        }
    }

    /// Whether the action reveals where someone is or was.
    pub fn is_location_data(self) -> bool {
        matches!(
            self,
            Action::ReadPosition
                | Action::ReadTrack
                | Action::ReadVictimPosition
                | Action::ReadVictimTrack
                | Action::LiveStream
                | Action::ExportEvidence
        )
    }

    /// Location history: staff must state a purpose (insider misuse is lookups without one).
    pub fn needs_purpose(self) -> bool {
        matches!(
            self,
            Action::ReadTrack | Action::ReadVictimTrack | Action::ExportEvidence
        )
    }

    /// Reads that break-glass may open (never changes, exports or the audit log).
    fn break_glass_may_open(self) -> bool {
        matches!(
            self,
            Action::ViewCase
                | Action::ReadPosition
                | Action::ReadTrack
                | Action::ReadVictimPosition
                | Action::ReadVictimTrack
                | Action::LiveStream
                | Action::ReadAlerts
                | Action::ReadOrders
        )
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    pub role: Role,
    /// The person the account belongs to, for victims and offenders.
    pub person: Option<PersonId>,
}

/// A time-limited grant to a police officer: an alert of `case` was dispatched to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub case: CaseId,
    /// The grant ends here (e.g. the alert's resolution plus a grace period). Exclusive.
    pub expires_at: UnixMicros,
}

/// The facts about a principal that the server loads from the store before deciding. Only
/// the field that belongs to the principal's role is consulted, so a stray assignment on
/// the wrong kind of account grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants {
    /// Monitoring officers: cases assigned to them.
    pub assigned_cases: Vec<CaseId>,
    /// Police: alerts dispatched to them.
    pub dispatches: Vec<Dispatch>,
    /// Court clerks and judges: cases whose petitions or orders they handle.
    pub court_cases: Vec<CaseId>,
    /// Victims: cases in which they are the protected person.
    pub protected_in: Vec<CaseId>,
    /// Offenders: cases in which they are the offender.
    pub offender_in: Vec<CaseId>,
}

/// Where the offender is relative to the asking victim's disclosure radius. The caller
/// computes it from both positions; it is consulted only for victim principals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffenderProximity {
    /// Inside the order's disclosure radius: she may see position, heading and distance.
    WithinDisclosureRadius,
    /// Outside: she may learn only "not nearby".
    Outside,
}

/// What is touched, and the facts the caller states about this access.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    /// The case, for case-scoped actions (`None` for petitions that open a new case and for
    /// system-wide actions).
    pub case: Option<CaseId>,
    /// The protected person whose position is read (victim-position actions).
    pub person: Option<PersonId>,
    /// Why (required for location history read by staff).
    pub purpose: Option<Purpose>,
    /// A break-glass reason: a police officer or monitoring officer without a grant opens
    /// the case anyway in an emergency. Allowed, logged and flagged for review.
    pub break_glass: Option<String>,
    /// Victim requests only: where the offender is relative to her disclosure radius.
    pub offender_proximity: Option<OffenderProximity>,
}

/// At what precision to answer an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Everything the action covers.
    Full,
    /// Victim view with the offender inside her disclosure radius: his position, direction
    /// and distance, each with its age and accuracy.
    WithinDisclosure,
    /// Victim view with the offender outside her radius: "not nearby" only — no position,
    /// no distance, no direction.
    NotNearby,
    /// Offender's own view: obligations and his own data, nothing about the protected
    /// person (no zone labels or geometry beyond what the court told him, no distances).
    OffenderView,
}

/// What the server must write to the audit log for an allowed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNeed {
    pub action: AuditAction,
    pub purpose: Option<Purpose>,
    /// Flag for a reviewer (break-glass access).
    pub review: bool,
    pub break_glass_reason: Option<String>,
}

/// Why a request was refused. Shown to the user as a code; the details go to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The role never may do this.
    RoleNotPermitted,
    /// The role may, but not for this case (not assigned, no live dispatch, not a party).
    NotYourCase,
    /// Location history needs a valid purpose code and a sentence.
    PurposeRequired,
    /// Break-glass needs a stated reason of at least [`MIN_REASON_CHARS`] characters.
    ReasonRequired,
    /// A victim's view of the offender needs the proximity input; without it the answer
    /// would have to guess, and "not nearby" when he is near is worse than no answer.
    ProximityUnknown,
    /// A victim may read only her own position, not another protected person's.
    NotYourPerson,
    /// The request names no case but the action needs one.
    NoCase,
}

/// The one authorisation decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        audit: Option<AuditNeed>,
        precision: Precision,
    },
    Deny {
        reason: DenyReason,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// Purpose codes staff choose from; the text says the rest.
pub const PURPOSE_CODES: &[&str] = &[
    "alert_response",
    "investigation",
    "court_request",
    "supervision",
    "evidence_export",
    "data_subject_request",
];

/// A purpose or break-glass sentence shorter than this is refused: "x" is not a reason.
pub const MIN_REASON_CHARS: usize = 10;

fn reason_ok(text: &str) -> bool {
    text.trim().chars().count() >= MIN_REASON_CHARS
}

/// Whether a purpose is one of [`PURPOSE_CODES`] with a real sentence.
pub fn purpose_ok(p: &Purpose) -> bool {
    PURPOSE_CODES.contains(&p.code.as_str()) && reason_ok(&p.text)
}

/// How the principal relates to the case in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Own,
    Other,
    NoCase,
}

fn relation(p: &Principal, case: Option<CaseId>, g: &Grants, now: UnixMicros) -> Relation {
    let Some(case) = case else {
        return Relation::NoCase;
    };
    let own = match p.role {
        Role::MonitoringOfficer => g.assigned_cases.contains(&case),
        Role::Police => g
            .dispatches
            .iter()
            .any(|d| d.case == case && now < d.expires_at),
        Role::CourtClerk | Role::Judge => g.court_cases.contains(&case),
        Role::Victim => g.protected_in.contains(&case),
        Role::Offender => g.offender_in.contains(&case),
        Role::Administrator | Role::Auditor => false,
    };
    if own { Relation::Own } else { Relation::Other }
}

fn deny(reason: DenyReason) -> Decision {
    Decision::Deny { reason }
}

fn allow_audited(action: Action, purpose: Option<Purpose>) -> Decision {
    Decision::Allow {
        audit: Some(AuditNeed {
            action: action.audit_action(),
            purpose,
            review: false,
            break_glass_reason: None,
        }),
        precision: Precision::Full,
    }
}

/// Decides whether `principal` may do `action` on `resource` at `now`.
///
/// Rules (the full table is in `docs/privacy.md`):
/// - monitoring officers: their assigned cases; history and exports need a purpose;
/// - police: a case only while an alert of it is dispatched to them (until
///   [`Dispatch::expires_at`]), or by break-glass with a reason (reads only, flagged for
///   review); history needs a purpose; they may file petitions for any case;
/// - court clerks and judges: petitions and orders of the cases they handle; only judges
///   decide petitions and issue orders; no location data;
/// - victims: their own case; the offender's position only within the disclosure radius,
///   otherwise "not nearby"; their own position and history; file petitions;
/// - offenders: their own case summary, obligations and own position, in offender view;
/// - auditors: the access log, never positions; administrators: accounts, never case data.
///
/// Every allowed staff request carries an [`AuditNeed`]; so does a victim's view of the
/// offender. A victim's or offender's view of their own data does not.
pub fn authorize(
    principal: &Principal,
    action: Action,
    resource: &Resource,
    grants: &Grants,
    now: UnixMicros,
) -> Decision {
    let rel = relation(principal, resource.case, grants, now);
    match principal.role {
        Role::Administrator => match action {
            Action::ChangeAccess => allow_audited(action, None),
            _ => deny(DenyReason::RoleNotPermitted),
        },
        Role::Auditor => match action {
            Action::ReadAuditLog => allow_audited(action, None),
            _ => deny(DenyReason::RoleNotPermitted),
        },
        Role::MonitoringOfficer | Role::Police => {
            responder_rules(principal.role, action, resource, rel)
        }
        Role::CourtClerk | Role::Judge => court_rules(principal.role, action, rel),
        Role::Victim => victim_rules(principal, action, resource, rel),
        // The offender's rules see only the action and the relation: nothing derived from
        // the protected person's position can reach them.
        Role::Offender => offender_rules(action, rel == Relation::Own),
    }
}

fn responder_rules(role: Role, action: Action, r: &Resource, rel: Relation) -> Decision {
    let police = role == Role::Police;
    let permitted = match action {
        Action::ViewCase
        | Action::ReadPosition
        | Action::ReadTrack
        | Action::ReadVictimPosition
        | Action::ReadVictimTrack
        | Action::LiveStream
        | Action::ReadAlerts
        | Action::HandleAlert
        | Action::ExportEvidence
        | Action::ReadOrders
        | Action::ReadPetitions => true,
        Action::ChangeCase => !police,
        // Police may petition for any victim (Stalking Punishment Act); the case need not be
        // theirs, or exist yet.
        Action::FilePetition if police => return allow_audited(action, None),
        Action::FilePetition
        | Action::ChangeOrder
        | Action::ReviewPetition
        | Action::DecidePetition
        | Action::ReadAuditLog
        | Action::ChangeAccess
        | Action::SendOwnReport => false,
    };
    if !permitted {
        return deny(DenyReason::RoleNotPermitted);
    }
    let purpose = if action.needs_purpose() {
        match &r.purpose {
            Some(p) if purpose_ok(p) => Some(p.clone()),
            _ => return deny(DenyReason::PurposeRequired),
        }
    } else {
        r.purpose.clone()
    };
    match rel {
        Relation::Own => allow_audited(action, purpose),
        Relation::NoCase => deny(DenyReason::NoCase),
        Relation::Other => match &r.break_glass {
            None => deny(DenyReason::NotYourCase),
            Some(_) if !action.break_glass_may_open() => deny(DenyReason::NotYourCase),
            Some(reason) if !reason_ok(reason) => deny(DenyReason::ReasonRequired),
            Some(reason) => Decision::Allow {
                audit: Some(AuditNeed {
                    action: action.audit_action(),
                    purpose,
                    review: true,
                    break_glass_reason: Some(reason.trim().to_owned()),
                }),
                precision: Precision::Full,
            },
        },
    }
}

fn court_rules(role: Role, action: Action, rel: Relation) -> Decision {
    let permitted = match action {
        Action::ViewCase | Action::ReadOrders | Action::ReadPetitions | Action::ReviewPetition => {
            true
        }
        Action::DecidePetition | Action::ChangeOrder => role == Role::Judge,
        _ => false,
    };
    if !permitted {
        return deny(DenyReason::RoleNotPermitted);
    }
    match rel {
        Relation::Own => allow_audited(action, None),
        Relation::Other => deny(DenyReason::NotYourCase),
        Relation::NoCase => deny(DenyReason::NoCase),
    }
}

fn victim_rules(p: &Principal, action: Action, r: &Resource, rel: Relation) -> Decision {
    let permitted = matches!(
        action,
        Action::ViewCase
            | Action::ReadPosition
            | Action::LiveStream
            | Action::ReadVictimPosition
            | Action::ReadVictimTrack
            | Action::ReadAlerts
            | Action::ReadOrders
            | Action::FilePetition
            | Action::ReadPetitions
            | Action::ReadAuditLog
            | Action::SendOwnReport
    );
    if !permitted {
        return deny(DenyReason::RoleNotPermitted);
    }
    match rel {
        Relation::Own => {}
        // A victim may petition before any case exists (from April 2027).
        Relation::NoCase if action == Action::FilePetition => {
            return allow_audited(action, None);
        }
        // Her phone reports and her SOS do not need a case: an SOS from a phone in no case
        // still reaches the monitoring officers.
        Relation::NoCase if action == Action::SendOwnReport => {
            return own_report(p, r);
        }
        Relation::NoCase => return deny(DenyReason::NoCase),
        Relation::Other => return deny(DenyReason::NotYourCase),
    }
    let own_view = Decision::Allow {
        audit: None,
        precision: Precision::Full,
    };
    match action {
        Action::ReadPosition | Action::LiveStream => {
            let precision = match r.offender_proximity {
                Some(OffenderProximity::WithinDisclosureRadius) => Precision::WithinDisclosure,
                Some(OffenderProximity::Outside) => Precision::NotNearby,
                None => return deny(DenyReason::ProximityUnknown),
            };
            // Disclosing the offender's position is logged: it is his location data.
            Decision::Allow {
                audit: Some(AuditNeed {
                    action: action.audit_action(),
                    purpose: None,
                    review: false,
                    break_glass_reason: None,
                }),
                precision,
            }
        }
        Action::ReadVictimPosition | Action::ReadVictimTrack => {
            if r.person.is_some() && r.person == p.person {
                own_view
            } else {
                deny(DenyReason::NotYourPerson)
            }
        }
        Action::FilePetition => allow_audited(action, None),
        Action::SendOwnReport => own_report(p, r),
        // `ReadAuditLog` on her own case: who viewed her data (the server shows only the
        // records of her case, and not her own reads).
        _ => own_view,
    }
}

/// A report from her own phone: only for her own person.
fn own_report(p: &Principal, r: &Resource) -> Decision {
    if r.person.is_some() && r.person == p.person {
        Decision::Allow {
            audit: None,
            precision: Precision::Full,
        }
    } else {
        deny(DenyReason::NotYourPerson)
    }
}

/// The offender's rules. Deliberately takes no [`Resource`]: nothing that depends on the
/// protected person's position can be an input here.
pub fn offender_rules(action: Action, own_case: bool) -> Decision {
    let precision = match action {
        Action::ViewCase | Action::ReadOrders => Precision::OffenderView,
        // Who viewed his data: in offender view, the server shows only staff reads of his
        // own position and track, nothing that concerns her (see `me.rs`).
        Action::ReadAuditLog => Precision::OffenderView,
        // His own position and history reveal nothing about her.
        Action::ReadPosition | Action::ReadTrack => Precision::Full,
        // Alerts and the live stream would tell him when he is near her: never.
        _ => return deny(DenyReason::RoleNotPermitted),
    };
    if own_case {
        Decision::Allow {
            audit: None,
            precision,
        }
    } else {
        deny(DenyReason::NotYourCase)
    }
}

/// The audit record to write for a decision, if any: every allowed request with an
/// [`AuditNeed`], and every denied request by staff or for location data (repeated denials
/// are what misuse looks like). `details` is the caller's (e.g. the time range read).
pub fn audit_entry(
    principal: &Principal,
    action: Action,
    resource: &Resource,
    decision: &Decision,
    details: String,
) -> Option<AuditEntry> {
    let actor = Actor {
        kind: ActorKind::Account,
        id: principal.account.0,
        role: principal.role.as_str().to_owned(),
    };
    let subject = Subject {
        case: resource.case,
        person: resource.person,
        device: None,
    };
    match decision {
        Decision::Allow {
            audit: Some(need), ..
        } => {
            let details = match &need.break_glass_reason {
                Some(r) => format!("break_glass: {r}; {details}"),
                None => details,
            };
            Some(AuditEntry {
                actor,
                action: if need.review {
                    AuditAction::BreakGlass
                } else {
                    need.action
                },
                subject,
                purpose: need.purpose.clone(),
                outcome: Outcome::Allowed,
                details: if need.review {
                    format!("{}; {details}", action.as_str())
                } else {
                    details
                },
            })
        }
        Decision::Allow { audit: None, .. } => None,
        Decision::Deny { reason } => {
            let staff = !matches!(principal.role, Role::Victim | Role::Offender);
            (staff || action.is_location_data()).then(|| AuditEntry {
                actor,
                action: action.audit_action(),
                subject,
                purpose: resource.purpose.clone(),
                outcome: Outcome::Denied,
                details: format!("{reason:?}; {details}"),
            })
        }
    }
}

/// Who may dispatch an alert (send people out), on top of `handle_alert` on its case: only
/// monitoring officers. Police are dispatched, they do not dispatch; dual dispatch gives the
/// dispatching officer the task to the offender and a police account the task to the victim.
pub fn may_dispatch(role: Role) -> bool {
    role == Role::MonitoringOfficer
}

/// Who may hold a police → victim task (and with it the victim's position while the
/// dispatch lasts): police accounts only.
pub fn may_be_dispatched(role: Role) -> bool {
    role == Role::Police
}

#[cfg(test)]
mod dispatch_tests {
    use super::*;

    #[test]
    fn only_officers_dispatch_and_only_police_are_dispatched() {
        for &r in Role::ALL {
            assert_eq!(may_dispatch(r), r == Role::MonitoringOfficer, "{r}");
            assert_eq!(may_be_dispatched(r), r == Role::Police, "{r}");
        }
    }
}
