//! The court workflow end to end, with time as input.

use access::workflow::{PROVISIONAL_MAX_EXTENSIONS, PROVISIONAL_PERIOD_MAX_S};
use access::*;
use domain::{CaseId, OrderKind, PersonId, UnixMicros};

const DAY: i64 = 86_400;
const CASE: CaseId = CaseId(7);
const OFFENDER: PersonId = PersonId(3);

fn day(d: i64) -> UnixMicros {
    UnixMicros::from_secs(1_800_000_000 + d * DAY)
}

fn requested(kind: OrderKind, days: i64) -> Conditions {
    Conditions {
        kind,
        duration_s: days * DAY,
        no_approach_m: 100.0,
        no_contact_by_phone: true,
        electronic_monitoring: true,
    }
}

fn reminders() -> ReminderPolicy {
    ReminderPolicy {
        offsets_s: vec![DAY, 7 * DAY],
        recipients: vec![Recipient::Court, Recipient::Victim],
    }
}

/// Files, reviews and grants as requested: in force from day 1 for `days` days.
fn granted(kind: OrderKind, days: i64) -> Workflow {
    let (mut wf, _) = Workflow::file(
        CASE,
        OFFENDER,
        Petitioner::Victim,
        requested(kind, days),
        reminders(),
        day(0),
    );
    let ok = |r: Result<Vec<Effect>, WorkflowError>| r.unwrap_or_else(|e| panic!("{e}"));
    ok(wf.handle(Event::StartReview, day(0)));
    ok(wf.handle(
        Event::Grant {
            valid_from: day(1),
            conditions: requested(kind, days),
            reasons: String::new(),
        },
        day(1),
    ));
    wf
}

#[test]
fn petition_to_order_to_expiry_to_lapse() {
    let (mut wf, fx) = Workflow::file(
        CASE,
        OFFENDER,
        Petitioner::Police,
        requested(OrderKind::ProvisionalMeasure, 90),
        reminders(),
        day(0),
    );
    assert_eq!(
        fx,
        vec![
            Effect::NotifyCourt {
                notice: Notice::PetitionFiled
            },
            Effect::NotifyVictim {
                notice: Notice::PetitionFiled
            }
        ]
    );
    // A grant before review is refused and changes nothing.
    let early = wf.handle(
        Event::Grant {
            valid_from: day(0),
            conditions: requested(OrderKind::ProvisionalMeasure, 90),
            reasons: String::new(),
        },
        day(0),
    );
    assert!(matches!(
        early,
        Err(WorkflowError::InvalidTransition { .. })
    ));
    assert_eq!(wf.state, State::Filed);

    assert_eq!(
        wf.handle(Event::StartReview, day(0)),
        Ok(vec![Effect::NotifyVictim {
            notice: Notice::UnderReview
        }])
    );
    let fx = wf
        .handle(
            Event::Grant {
                valid_from: day(1),
                conditions: requested(OrderKind::ProvisionalMeasure, 90),
                reasons: String::new(),
            },
            day(1),
        )
        .unwrap_or_default();
    let v1 = wf
        .current()
        .cloned()
        .unwrap_or_else(|| panic!("no version"));
    assert_eq!(
        (v1.version, v1.valid_from, v1.valid_to),
        (1, day(1), day(91))
    );
    let granted = Notice::Granted { valid_to: day(91) };
    assert_eq!(
        fx,
        vec![
            Effect::IssueOrderVersion {
                case: CASE,
                version: v1.clone()
            },
            Effect::LinkDevices {
                offender: OFFENDER,
                case: CASE
            },
            Effect::NotifyVictim {
                notice: granted.clone()
            },
            Effect::NotifyOfficer { notice: granted },
            Effect::ScheduleReminder {
                at: day(84),
                to: Recipient::Court,
                version: 1
            },
            Effect::ScheduleReminder {
                at: day(84),
                to: Recipient::Victim,
                version: 1
            },
            Effect::ScheduleReminder {
                at: day(90),
                to: Recipient::Court,
                version: 1
            },
            Effect::ScheduleReminder {
                at: day(90),
                to: Recipient::Victim,
                version: 1
            },
            Effect::ScheduleLapseCheck { at: day(91) },
        ]
    );

    // The reminder fires.
    assert_eq!(
        wf.handle(
            Event::ReminderDue {
                to: Recipient::Victim,
                version: 1
            },
            day(84)
        ),
        Ok(vec![Effect::NotifyVictim {
            notice: Notice::ExpiresSoon { valid_to: day(91) }
        }])
    );
    // Ticks before the end do nothing; at the end the victim is told first, at once.
    assert_eq!(wf.handle(Event::Tick, day(90)), Ok(vec![]));
    let lapsed = Notice::Lapsed { at: day(91) };
    assert_eq!(
        wf.handle(Event::Tick, day(91)),
        Ok(vec![
            Effect::NotifyVictim {
                notice: lapsed.clone()
            },
            Effect::NotifyOfficer {
                notice: lapsed.clone()
            },
            Effect::NotifyCourt { notice: lapsed },
            Effect::EndMonitoring {
                offender: OFFENDER,
                case: CASE
            },
        ])
    );
    assert_eq!(wf.state, State::Lapsed);
    assert_eq!(wf.handle(Event::Tick, day(92)), Ok(vec![]), "told once");
    assert_eq!(
        wf.handle(
            Event::Extend {
                valid_to: day(150),
                reasons: "continued contact".into()
            },
            day(92)
        ),
        Err(WorkflowError::AlreadyLapsed)
    );
}

#[test]
fn extension_continues_without_a_gap() {
    let mut wf = granted(OrderKind::ProvisionalMeasure, 60);
    let fx = wf
        .handle(
            Event::Extend {
                valid_to: day(121),
                reasons: "messages continued".into(),
            },
            day(55),
        )
        .unwrap_or_default();
    let [v1, v2] = &wf.versions[..] else {
        panic!("expected two versions: {:?}", wf.versions);
    };
    assert_eq!(v2.valid_from, v1.valid_to, "no gap, no overlap");
    assert_eq!(v2.version, 2);
    assert_eq!(v1.valid_to, day(61), "version 1 is never edited");
    assert!(fx.contains(&Effect::CancelReminders { version: 1 }));
    assert!(fx.contains(&Effect::ScheduleLapseCheck { at: day(121) }));
    // Version 1's reminders and lapse check are stale now.
    assert_eq!(
        wf.handle(
            Event::ReminderDue {
                to: Recipient::Court,
                version: 1
            },
            day(60)
        ),
        Ok(vec![])
    );
    assert_eq!(wf.handle(Event::Tick, day(61)), Ok(vec![]));
    assert_eq!(wf.state, State::InForce);
    // Protection is continuous: at every instant exactly one version is in force.
    for t in [
        day(1),
        day(60),
        UnixMicros(day(61).0 - 1),
        day(61),
        day(120),
    ] {
        let n = wf
            .versions
            .iter()
            .filter(|v| v.valid_from <= t && t < v.valid_to)
            .count();
        assert_eq!(n, 1, "at {t:?}");
    }
    // An extension that does not extend is refused.
    assert_eq!(
        wf.handle(
            Event::Extend {
                valid_to: day(100),
                reasons: "x".into()
            },
            day(70)
        ),
        Err(WorkflowError::EmptyPeriod)
    );
}

#[test]
fn provisional_measure_is_at_most_nine_months() {
    let max_days = PROVISIONAL_PERIOD_MAX_S / DAY;
    // A first period longer than three months is refused.
    let (mut wf, _) = Workflow::file(
        CASE,
        OFFENDER,
        Petitioner::Prosecutor,
        requested(OrderKind::ProvisionalMeasure, max_days + 1),
        reminders(),
        day(0),
    );
    let _ = wf.handle(Event::StartReview, day(0));
    assert_eq!(
        wf.handle(
            Event::Grant {
                valid_from: day(1),
                conditions: requested(OrderKind::ProvisionalMeasure, max_days + 1),
                reasons: String::new(),
            },
            day(1)
        ),
        Err(WorkflowError::PeriodTooLong {
            max_s: PROVISIONAL_PERIOD_MAX_S,
            asked_s: (max_days + 1) * DAY
        })
    );

    let mut wf = granted(OrderKind::ProvisionalMeasure, max_days);
    let mut end = 1 + max_days;
    // An extension period longer than three months is refused too.
    assert!(matches!(
        wf.handle(
            Event::Extend {
                valid_to: day(end + max_days + 1),
                reasons: "r".into()
            },
            day(end - 1)
        ),
        Err(WorkflowError::PeriodTooLong { .. })
    ));
    for _ in 0..PROVISIONAL_MAX_EXTENSIONS {
        let r = wf.handle(
            Event::Extend {
                valid_to: day(end + max_days),
                reasons: "risk persists".into(),
            },
            day(end - 1),
        );
        assert!(r.is_ok(), "{r:?}");
        end += max_days;
    }
    assert_eq!(
        wf.handle(
            Event::Extend {
                valid_to: day(end + 30),
                reasons: "risk persists".into()
            },
            day(end - 1)
        ),
        Err(WorkflowError::TooManyExtensions)
    );
    let total =
        wf.versions.last().map(|v| v.valid_to.0).unwrap_or_default() - wf.versions[0].valid_from.0;
    assert!(total <= 3 * PROVISIONAL_PERIOD_MAX_S * UnixMicros::SECOND);
    assert_eq!(wf.versions.len(), 3);
}

#[test]
fn other_orders_may_run_longer_and_be_extended_again() {
    let mut wf = granted(OrderKind::RestrainingOrder, 365);
    let mut end = 366;
    for _ in 0..4 {
        assert!(
            wf.handle(
                Event::Extend {
                    valid_to: day(end + 365),
                    reasons: "renewed".into()
                },
                day(end - 1)
            )
            .is_ok()
        );
        end += 365;
    }
}

#[test]
fn decisions_need_reasons() {
    let (mut wf, _) = Workflow::file(
        CASE,
        OFFENDER,
        Petitioner::Victim,
        requested(OrderKind::ProvisionalMeasure, 90),
        reminders(),
        day(0),
    );
    let _ = wf.handle(Event::StartReview, day(0));
    assert_eq!(
        wf.handle(
            Event::Deny {
                reasons: "  ".into()
            },
            day(1)
        ),
        Err(WorkflowError::ReasonsRequired)
    );
    // Granting different conditions is a modification: reasons required, victim told so.
    let mut modified = requested(OrderKind::ProvisionalMeasure, 60);
    modified.electronic_monitoring = false;
    let grant = |reasons: &str| Event::Grant {
        valid_from: day(1),
        conditions: modified.clone(),
        reasons: reasons.into(),
    };
    assert_eq!(
        wf.handle(grant(""), day(1)),
        Err(WorkflowError::ReasonsRequired)
    );
    let fx = wf
        .handle(grant("no prior violence"), day(1))
        .unwrap_or_default();
    assert!(fx.contains(&Effect::NotifyVictim {
        notice: Notice::Modified {
            valid_to: day(61),
            reasons: "no prior violence".into()
        }
    }));

    let (mut denied, _) = Workflow::file(
        CASE,
        OFFENDER,
        Petitioner::Victim,
        requested(OrderKind::ProvisionalMeasure, 90),
        reminders(),
        day(0),
    );
    let fx = denied
        .handle(
            Event::Deny {
                reasons: "insufficient evidence".into(),
            },
            day(1),
        )
        .unwrap_or_default();
    assert_eq!(denied.state, State::Denied);
    assert_eq!(
        fx[0],
        Effect::NotifyVictim {
            notice: Notice::Denied {
                reasons: "insufficient evidence".into()
            }
        }
    );
}

#[test]
fn an_amendment_is_a_new_version_from_now_to_the_same_end_and_not_an_extension() {
    let mut wf = granted(OrderKind::ProvisionalMeasure, 60);
    let end = day(61);
    let mut wider = requested(OrderKind::ProvisionalMeasure, 60);
    wider.no_approach_m = 300.0;
    // Reasons are required; nothing changes without them.
    let before = wf.clone();
    assert_eq!(
        wf.handle(
            Event::Amend {
                conditions: wider.clone(),
                reasons: " ".into()
            },
            day(10)
        ),
        Err(WorkflowError::ReasonsRequired)
    );
    assert_eq!(wf, before);
    let fx = wf
        .handle(
            Event::Amend {
                conditions: wider,
                reasons: "she moved; the court widens the distance".into(),
            },
            day(10),
        )
        .unwrap();
    let v2 = wf.current().unwrap().clone();
    assert_eq!((v2.version, v2.valid_from, v2.valid_to), (2, day(10), end));
    assert_eq!(v2.conditions.no_approach_m, 300.0);
    assert_eq!(v2.conditions.duration_s, 51 * DAY);
    assert!(fx.contains(&Effect::CancelReminders { version: 1 }));
    assert!(fx.contains(&Effect::ScheduleLapseCheck { at: end }));
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::NotifyVictim {
            notice: Notice::Amended { .. }
        }
    )));
    assert_eq!(wf.extensions(), 0);
    // Two extensions are still allowed after an amendment.
    for (to, n) in [(day(100), 1), (day(140), 2)] {
        wf.handle(
            Event::Extend {
                valid_to: to,
                reasons: "continued risk".into(),
            },
            day(20),
        )
        .unwrap();
        assert_eq!(wf.extensions(), n);
    }
    assert_eq!(
        wf.handle(
            Event::Extend {
                valid_to: day(170),
                reasons: "continued risk".into(),
            },
            day(20),
        ),
        Err(WorkflowError::TooManyExtensions)
    );
}

#[test]
fn a_lapsed_order_cannot_be_amended() {
    let mut wf = granted(OrderKind::RestrainingOrder, 30);
    wf.handle(Event::Tick, day(40)).unwrap();
    assert_eq!(wf.state, State::Lapsed);
    assert_eq!(
        wf.handle(
            Event::Amend {
                conditions: requested(OrderKind::RestrainingOrder, 30),
                reasons: "too late".into()
            },
            day(41)
        ),
        Err(WorkflowError::AlreadyLapsed)
    );
}
