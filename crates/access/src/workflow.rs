//! The court workflow for one petition, as a pure state machine.
//!
//! # Overview
//!
//! ```text
//! filed ──StartReview──▶ under_review ──Grant──▶ in_force ──(valid_to passes, Tick)──▶ lapsed
//!   │                        │   (conditions as requested: granted;         ▲
//!   │                        │    otherwise modified, reasons required)     │
//!   └────────Deny────────────┴──Deny (reasons required)──▶ denied    Extend ┘ (new version)
//!                                                              Amend ┘ (new version)
//! ```
//!
//! Order versions are never edited: a grant issues version 1, each extension a new version
//! whose `valid_from` is exactly the previous `valid_to`, so protection continues without a
//! gap or an overlap (validity is half-open). A provisional measure (잠정조치) runs at most
//! 3 months per period and may be extended at most twice: 9 months in all (Stalking
//! Punishment Act; domain brief). A lapsed measure is not extended; a new petition is.
//! An amendment (new conditions or zones while in force) is a new version from `now` to the
//! current end; it supersedes the earlier versions from then on and is not an extension.
//! The version in force at `t` is the highest-numbered one with `valid_from <= t < valid_to`.
//!
//! [`Workflow::handle`] takes an event and `now` and returns [`Effect`]s for the server to
//! carry out: issue the version, link the offender's devices (every device he already
//! wears: the Namyangju lesson), schedule reminders to the court, the officer and the victim
//! before expiry, and tell the victim at once when protection ends.

use domain::{CaseId, OrderKind, PersonId, UnixMicros};
use thiserror::Error;

/// The longest provisional-measure period, in seconds: 92 days, the longest three
/// consecutive calendar months (Jul–Sep, Dec–Feb in a leap year is shorter). The server may
/// check the exact calendar months in Korean time before submitting the event.
pub const PROVISIONAL_PERIOD_MAX_S: i64 = 92 * 86_400;
/// A provisional measure may be extended at most twice.
pub const PROVISIONAL_MAX_EXTENSIONS: u32 = 2;

/// Who filed the petition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Petitioner {
    /// From April 2027 victims may petition directly.
    Victim,
    Police,
    Prosecutor,
}

/// The conditions requested or ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    pub kind: OrderKind,
    /// Length of the (first) period, in seconds.
    pub duration_s: i64,
    pub no_approach_m: f64,
    pub no_contact_by_phone: bool,
    pub electronic_monitoring: bool,
}

/// One immutable order version.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderVersion {
    pub version: u32,
    pub valid_from: UnixMicros,
    pub valid_to: UnixMicros,
    pub conditions: Conditions,
    pub reasons: String,
    pub issued_at: UnixMicros,
}

/// Where the petition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Filed,
    UnderReview,
    Denied,
    InForce,
    Lapsed,
}

/// Who is reminded or told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    Court,
    Officer,
    Victim,
}

/// What happened, as told to people.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    PetitionFiled,
    UnderReview,
    Granted {
        valid_to: UnixMicros,
    },
    /// Granted with conditions other than those requested.
    Modified {
        valid_to: UnixMicros,
        reasons: String,
    },
    Denied {
        reasons: String,
    },
    Extended {
        valid_to: UnixMicros,
    },
    /// The conditions changed while in force (a new version from now).
    Amended {
        valid_to: UnixMicros,
        reasons: String,
    },
    ExpiresSoon {
        valid_to: UnixMicros,
    },
    /// Protection has ended. The victim is told at once, never by silence.
    Lapsed {
        at: UnixMicros,
    },
}

/// What the server must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    NotifyVictim {
        notice: Notice,
    },
    NotifyOfficer {
        notice: Notice,
    },
    NotifyCourt {
        notice: Notice,
    },
    /// Store a new order version (never update an old one).
    IssueOrderVersion {
        case: CaseId,
        version: OrderVersion,
    },
    /// Link every device the offender wears or carries to this case's order.
    LinkDevices {
        offender: PersonId,
        case: CaseId,
    },
    /// Stop monitoring this case's order (devices stay registered; other orders unaffected).
    EndMonitoring {
        offender: PersonId,
        case: CaseId,
    },
    /// Deliver [`Event::ReminderDue`] at `at`.
    ScheduleReminder {
        at: UnixMicros,
        to: Recipient,
        version: u32,
    },
    /// Drop pending reminders of a superseded version.
    CancelReminders {
        version: u32,
    },
    /// Deliver [`Event::Tick`] at `at` (the version's end), so the lapse is noticed on time.
    ScheduleLapseCheck {
        at: UnixMicros,
    },
}

/// Inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    StartReview,
    /// The court grants; if `conditions` differ from those requested it is a modification
    /// and `reasons` must say why.
    Grant {
        valid_from: UnixMicros,
        conditions: Conditions,
        reasons: String,
    },
    Deny {
        reasons: String,
    },
    /// A new version from the current end to `valid_to`.
    Extend {
        valid_to: UnixMicros,
        reasons: String,
    },
    /// The court changes the conditions while the order is in force: a new version from
    /// `now` to the current end. Reasons are required.
    Amend {
        conditions: Conditions,
        reasons: String,
    },
    /// A scheduled reminder fired.
    ReminderDue {
        to: Recipient,
        version: u32,
    },
    /// Time passed (lapse check).
    Tick,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum WorkflowError {
    #[error("{event} is not possible while the petition is {state:?}")]
    InvalidTransition { state: State, event: &'static str },
    #[error("a denial or modification needs the court's reasons")]
    ReasonsRequired,
    #[error("a provisional-measure period may last at most {max_s} s, asked {asked_s} s")]
    PeriodTooLong { max_s: i64, asked_s: i64 },
    #[error("a provisional measure may be extended at most {PROVISIONAL_MAX_EXTENSIONS} times")]
    TooManyExtensions,
    #[error("the period must end after it starts")]
    EmptyPeriod,
    #[error("the measure has lapsed; protection needs a new petition")]
    AlreadyLapsed,
}

/// Reminder timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderPolicy {
    /// Seconds before `valid_to` at which to remind.
    pub offsets_s: Vec<i64>,
    pub recipients: Vec<Recipient>,
}

impl Default for ReminderPolicy {
    /// 14 days, 3 days and 1 day before expiry, to the court, the officer and the victim.
    fn default() -> Self {
        ReminderPolicy {
            offsets_s: vec![14 * 86_400, 3 * 86_400, 86_400],
            recipients: vec![Recipient::Court, Recipient::Officer, Recipient::Victim],
        }
    }
}

/// One petition and the order versions it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub case: CaseId,
    pub offender: PersonId,
    pub petitioner: Petitioner,
    pub requested: Conditions,
    pub filed_at: UnixMicros,
    pub state: State,
    pub versions: Vec<OrderVersion>,
    pub reminders: ReminderPolicy,
}

fn event_name(e: &Event) -> &'static str {
    match e {
        Event::StartReview => "start_review",
        Event::Grant { .. } => "grant",
        Event::Deny { .. } => "deny",
        Event::Extend { .. } => "extend",
        Event::Amend { .. } => "amend",
        Event::ReminderDue { .. } => "reminder_due",
        Event::Tick => "tick",
    }
}

fn reasons_ok(r: &str) -> bool {
    !r.trim().is_empty()
}

impl Workflow {
    /// Files a petition.
    pub fn file(
        case: CaseId,
        offender: PersonId,
        petitioner: Petitioner,
        requested: Conditions,
        reminders: ReminderPolicy,
        now: UnixMicros,
    ) -> (Self, Vec<Effect>) {
        let wf = Workflow {
            case,
            offender,
            petitioner,
            requested,
            filed_at: now,
            state: State::Filed,
            versions: Vec::new(),
            reminders,
        };
        let effects = vec![
            Effect::NotifyCourt {
                notice: Notice::PetitionFiled,
            },
            Effect::NotifyVictim {
                notice: Notice::PetitionFiled,
            },
        ];
        (wf, effects)
    }

    /// The version in force or last in force.
    pub fn current(&self) -> Option<&OrderVersion> {
        self.versions.last()
    }

    /// Handles one event at `now`. On error nothing changes.
    pub fn handle(&mut self, event: Event, now: UnixMicros) -> Result<Vec<Effect>, WorkflowError> {
        let invalid = |state, e: &Event| WorkflowError::InvalidTransition {
            state,
            event: event_name(e),
        };
        match (self.state, event) {
            (State::Filed, Event::StartReview) => {
                self.state = State::UnderReview;
                Ok(vec![Effect::NotifyVictim {
                    notice: Notice::UnderReview,
                }])
            }
            (State::Filed | State::UnderReview, Event::Deny { reasons }) => {
                if !reasons_ok(&reasons) {
                    return Err(WorkflowError::ReasonsRequired);
                }
                self.state = State::Denied;
                Ok(vec![
                    Effect::NotifyVictim {
                        notice: Notice::Denied {
                            reasons: reasons.clone(),
                        },
                    },
                    Effect::NotifyOfficer {
                        notice: Notice::Denied { reasons },
                    },
                ])
            }
            (
                State::UnderReview,
                Event::Grant {
                    valid_from,
                    conditions,
                    reasons,
                },
            ) => self.grant(valid_from, conditions, reasons, now),
            (State::InForce, Event::Extend { valid_to, reasons }) => {
                self.extend(valid_to, reasons, now)
            }
            (
                State::InForce,
                Event::Amend {
                    conditions,
                    reasons,
                },
            ) => self.amend(conditions, reasons, now),
            (State::Lapsed, Event::Extend { .. } | Event::Amend { .. }) => {
                Err(WorkflowError::AlreadyLapsed)
            }
            (State::InForce, Event::ReminderDue { to, version }) => {
                // A reminder for a superseded version is stale: the extension rescheduled.
                match self.current() {
                    Some(v) if v.version == version && now < v.valid_to => {
                        let notice = Notice::ExpiresSoon {
                            valid_to: v.valid_to,
                        };
                        Ok(vec![notify(to, notice)])
                    }
                    _ => Ok(vec![]),
                }
            }
            (_, Event::ReminderDue { .. }) => Ok(vec![]),
            (State::InForce, Event::Tick) => Ok(self.check_lapse(now)),
            (_, Event::Tick) => Ok(vec![]),
            (state, e) => Err(invalid(state, &e)),
        }
    }

    fn grant(
        &mut self,
        valid_from: UnixMicros,
        conditions: Conditions,
        reasons: String,
        now: UnixMicros,
    ) -> Result<Vec<Effect>, WorkflowError> {
        let modified = conditions != self.requested;
        if modified && !reasons_ok(&reasons) {
            return Err(WorkflowError::ReasonsRequired);
        }
        check_period(&conditions, conditions.duration_s)?;
        let valid_to = valid_from.plus_secs(conditions.duration_s);
        let version = OrderVersion {
            version: 1,
            valid_from,
            valid_to,
            conditions,
            reasons: reasons.clone(),
            issued_at: now,
        };
        self.state = State::InForce;
        self.versions.push(version.clone());
        let notice = if modified {
            Notice::Modified { valid_to, reasons }
        } else {
            Notice::Granted { valid_to }
        };
        let mut fx = vec![
            Effect::IssueOrderVersion {
                case: self.case,
                version,
            },
            Effect::LinkDevices {
                offender: self.offender,
                case: self.case,
            },
            Effect::NotifyVictim {
                notice: notice.clone(),
            },
            Effect::NotifyOfficer { notice },
        ];
        fx.extend(self.schedule(1, valid_to, now));
        Ok(fx)
    }

    /// The version in force, for a change of it (`event`) with its reasons. An order that
    /// has already ended cannot be changed, even if the lapse check has not run yet; nothing
    /// changes here and the scheduled Tick reports the lapse.
    fn in_force_for(
        &self,
        event: &'static str,
        reasons: &str,
        now: UnixMicros,
    ) -> Result<OrderVersion, WorkflowError> {
        let Some(cur) = self.current().cloned() else {
            return Err(WorkflowError::InvalidTransition {
                state: self.state,
                event,
            });
        };
        if now >= cur.valid_to {
            return Err(WorkflowError::AlreadyLapsed);
        }
        if !reasons_ok(reasons) {
            return Err(WorkflowError::ReasonsRequired);
        }
        Ok(cur)
    }

    fn extend(
        &mut self,
        valid_to: UnixMicros,
        reasons: String,
        now: UnixMicros,
    ) -> Result<Vec<Effect>, WorkflowError> {
        let cur = self.in_force_for("extend", &reasons, now)?;
        if valid_to <= cur.valid_to {
            return Err(WorkflowError::EmptyPeriod);
        }
        let extensions = self.extensions();
        if cur.conditions.kind == OrderKind::ProvisionalMeasure
            && extensions >= PROVISIONAL_MAX_EXTENSIONS
        {
            return Err(WorkflowError::TooManyExtensions);
        }
        let period_s = valid_to.0.saturating_sub(cur.valid_to.0) / UnixMicros::SECOND;
        check_period(&cur.conditions, period_s)?;
        let version = OrderVersion {
            version: cur.version.saturating_add(1),
            // Continues exactly where the last version ends: no gap, no overlap.
            valid_from: cur.valid_to,
            valid_to,
            conditions: Conditions {
                duration_s: period_s,
                ..cur.conditions.clone()
            },
            reasons,
            issued_at: now,
        };
        self.versions.push(version.clone());
        let notice = Notice::Extended { valid_to };
        let mut fx = vec![
            Effect::IssueOrderVersion {
                case: self.case,
                version: version.clone(),
            },
            Effect::CancelReminders {
                version: cur.version,
            },
            Effect::NotifyVictim {
                notice: notice.clone(),
            },
            Effect::NotifyOfficer { notice },
        ];
        fx.extend(self.schedule(version.version, valid_to, now));
        Ok(fx)
    }

    /// How many versions extended the end (amendments keep it, so they do not count).
    pub fn extensions(&self) -> u32 {
        let n = self
            .versions
            .windows(2)
            .filter(|w| w[1].valid_to > w[0].valid_to)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn amend(
        &mut self,
        conditions: Conditions,
        reasons: String,
        now: UnixMicros,
    ) -> Result<Vec<Effect>, WorkflowError> {
        let cur = self.in_force_for("amend", &reasons, now)?;
        let period_s = cur.valid_to.0.saturating_sub(now.0) / UnixMicros::SECOND;
        if period_s <= 0 {
            return Err(WorkflowError::EmptyPeriod);
        }
        let version = OrderVersion {
            version: cur.version.saturating_add(1),
            valid_from: now,
            valid_to: cur.valid_to,
            conditions: Conditions {
                // The kind of measure is the court's original decision; an amendment changes
                // the conditions within it.
                kind: cur.conditions.kind,
                duration_s: period_s,
                ..conditions
            },
            reasons: reasons.clone(),
            issued_at: now,
        };
        self.versions.push(version.clone());
        let notice = Notice::Amended {
            valid_to: cur.valid_to,
            reasons,
        };
        let mut fx = vec![
            Effect::IssueOrderVersion {
                case: self.case,
                version: version.clone(),
            },
            Effect::CancelReminders {
                version: cur.version,
            },
            Effect::NotifyVictim {
                notice: notice.clone(),
            },
            Effect::NotifyOfficer { notice },
        ];
        fx.extend(self.schedule(version.version, cur.valid_to, now));
        Ok(fx)
    }

    /// The reminders (earliest first) and the lapse check for a version ending at `valid_to`;
    /// reminders already in the past are left out. Public for orders registered outside a
    /// petition, which get the same reminders.
    pub fn schedule(&self, version: u32, valid_to: UnixMicros, now: UnixMicros) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut offsets = self.reminders.offsets_s.clone();
        // Earliest reminder first, so effects read in time order.
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        offsets.dedup();
        for off in offsets {
            let at = valid_to.plus_secs(off.saturating_neg());
            if at <= now {
                continue; // a reminder in the past is noise; the next one still comes
            }
            for &to in &self.reminders.recipients {
                fx.push(Effect::ScheduleReminder { at, to, version });
            }
        }
        fx.push(Effect::ScheduleLapseCheck { at: valid_to });
        fx
    }

    fn check_lapse(&mut self, now: UnixMicros) -> Vec<Effect> {
        let Some(cur) = self.current() else {
            return vec![];
        };
        if now < cur.valid_to {
            return vec![];
        }
        let at = cur.valid_to;
        self.state = State::Lapsed;
        let notice = Notice::Lapsed { at };
        vec![
            // The victim first: she must never learn from silence that she is unprotected.
            Effect::NotifyVictim {
                notice: notice.clone(),
            },
            Effect::NotifyOfficer {
                notice: notice.clone(),
            },
            Effect::NotifyCourt { notice },
            Effect::EndMonitoring {
                offender: self.offender,
                case: self.case,
            },
        ]
    }
}

fn notify(to: Recipient, notice: Notice) -> Effect {
    match to {
        Recipient::Court => Effect::NotifyCourt { notice },
        Recipient::Officer => Effect::NotifyOfficer { notice },
        Recipient::Victim => Effect::NotifyVictim { notice },
    }
}

fn check_period(c: &Conditions, period_s: i64) -> Result<(), WorkflowError> {
    if period_s <= 0 {
        return Err(WorkflowError::EmptyPeriod);
    }
    if c.kind == OrderKind::ProvisionalMeasure && period_s > PROVISIONAL_PERIOD_MAX_S {
        return Err(WorkflowError::PeriodTooLong {
            max_s: PROVISIONAL_PERIOD_MAX_S,
            asked_s: period_s,
        });
    }
    Ok(())
}
