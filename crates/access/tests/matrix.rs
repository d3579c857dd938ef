//! The authorisation matrix: every role × every action × own/other case, checked against the
//! table below (kept identical to the one in docs/privacy.md).

use access::authz::offender_rules;
use access::*;
use audit::{AuditAction, Outcome, Purpose};
use domain::{CaseId, PersonId, UnixMicros};

/// Legend:
/// `A` allowed, audited; `P` allowed, audited, only with a purpose (denied without);
/// `a` allowed, own data, not audited; `W` victim view of the offender: audited, precision
/// by proximity (within radius: position; outside: "not nearby"; unknown: denied);
/// `O` offender view; `-` denied.
///
/// Columns, in `Action::ALL` order:
/// view_case read_position read_track read_victim_position read_victim_track live_stream
/// read_alerts handle_alert export_evidence change_case read_orders change_order
/// file_petition review_petition decide_petition read_audit_log change_access read_petitions
/// send_own_report
const EXPECTED: &str = "
administrator      own  - - - - - - - - - - - - - - - - A - -
administrator      other- - - - - - - - - - - - - - - - A - -
monitoring_officer own  A A P A P A A A P A A - - - - - - A -
monitoring_officer other- - - - - - - - - - - - - - - - - - -
police             own  A A P A P A A A P - A - A - - - - A -
police             other- - - - - - - - - - - - A - - - - - -
court_clerk        own  A - - - - - - - - - A - - A - - - A -
court_clerk        other- - - - - - - - - - - - - - - - - - -
judge              own  A - - - - - - - - - A A - A A - - A -
judge              other- - - - - - - - - - - - - - - - - - -
victim             own  a W - a a W a - - - a - A - - a - a a
victim             other- - - - - - - - - - - - - - - - - - -
offender           own  O a a - - - - - - - O - - - - O - - -
offender           other- - - - - - - - - - - - - - - - - - -
auditor            own  - - - - - - - - - - - - - - - A - - -
auditor            other- - - - - - - - - - - - - - - A - - -
";

const NOW: UnixMicros = UnixMicros(1_800_000_000_000_000);
const OWN: CaseId = CaseId(1);
const OTHER: CaseId = CaseId(2);
const VICTIM: PersonId = PersonId(20);
const OFFENDER: PersonId = PersonId(10);

fn purpose() -> Purpose {
    Purpose {
        code: "alert_response".into(),
        text: "proximity alert 4411 check".into(),
    }
}

fn principal(role: Role) -> (Principal, Grants) {
    let mut g = Grants::default();
    let mut person = None;
    match role {
        Role::MonitoringOfficer => g.assigned_cases = vec![OWN],
        Role::Police => {
            g.dispatches = vec![Dispatch {
                case: OWN,
                expires_at: NOW.plus_secs(3_600),
            }]
        }
        Role::CourtClerk | Role::Judge => g.court_cases = vec![OWN],
        Role::Victim => {
            g.protected_in = vec![OWN];
            person = Some(VICTIM);
        }
        Role::Offender => {
            g.offender_in = vec![OWN];
            person = Some(OFFENDER);
        }
        Role::Administrator | Role::Auditor => {}
    }
    (
        Principal {
            account: AccountId(100),
            role,
            person,
        },
        g,
    )
}

fn resource(case: CaseId) -> Resource {
    Resource {
        case: Some(case),
        person: Some(VICTIM),
        purpose: Some(purpose()),
        break_glass: None,
        offender_proximity: Some(OffenderProximity::WithinDisclosureRadius),
    }
}

fn code(p: &Principal, g: &Grants, action: Action, case: CaseId) -> char {
    let r = resource(case);
    let d = authorize(p, action, &r, g, NOW);
    match d {
        Decision::Deny { .. } => '-',
        Decision::Allow {
            audit: Some(_),
            precision: Precision::Full,
        } => {
            let without = Resource {
                purpose: None,
                ..r.clone()
            };
            match authorize(p, action, &without, g, NOW) {
                Decision::Deny {
                    reason: DenyReason::PurposeRequired,
                } => 'P',
                Decision::Allow { .. } => 'A',
                other => panic!("{p:?} {action:?}: purpose changed the answer to {other:?}"),
            }
        }
        Decision::Allow {
            audit: None,
            precision: Precision::Full,
        } => 'a',
        Decision::Allow {
            audit: Some(_),
            precision: Precision::WithinDisclosure,
        } => {
            let outside = Resource {
                offender_proximity: Some(OffenderProximity::Outside),
                ..r.clone()
            };
            let unknown = Resource {
                offender_proximity: None,
                ..r.clone()
            };
            assert!(matches!(
                authorize(p, action, &outside, g, NOW),
                Decision::Allow {
                    precision: Precision::NotNearby,
                    ..
                }
            ));
            assert_eq!(
                authorize(p, action, &unknown, g, NOW),
                Decision::Deny {
                    reason: DenyReason::ProximityUnknown
                }
            );
            'W'
        }
        Decision::Allow {
            audit: None,
            precision: Precision::OffenderView,
        } => 'O',
        other => panic!("{p:?} {action:?}: unclassified decision {other:?}"),
    }
}

fn actual_table() -> String {
    let mut out = String::from("\n");
    for &role in Role::ALL {
        let (p, g) = principal(role);
        for (label, case) in [("own  ", OWN), ("other", OTHER)] {
            let codes: Vec<String> = Action::ALL
                .iter()
                .map(|&a| code(&p, &g, a, case).to_string())
                .collect();
            out.push_str(&format!(
                "{:<19}{label}{}\n",
                role.as_str(),
                codes.join(" ")
            ));
        }
    }
    out
}

#[test]
fn matrix_matches_the_documented_table() {
    let actual = actual_table();
    assert_eq!(actual, EXPECTED, "actual table:{actual}");
}

#[test]
fn the_documented_table_matches_the_test() {
    // docs/privacy.md carries the same table; keep them from drifting apart.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/privacy.md"
    ))
    .unwrap_or_default();
    for line in EXPECTED.lines().filter(|l| !l.is_empty()) {
        let (role, rest) = line.split_at(19);
        let (rel, codes) = rest.split_at(5);
        let md = format!(
            "| {} | {} | {} |",
            role.trim(),
            rel.trim(),
            codes.split(' ').collect::<Vec<_>>().join(" | ")
        );
        assert!(doc.contains(&md), "docs/privacy.md lacks the row {md}");
    }
}

#[test]
fn staff_access_to_location_data_is_always_audited() {
    for &role in Role::ALL {
        if matches!(role, Role::Victim | Role::Offender) {
            continue;
        }
        let (p, g) = principal(role);
        for &a in Action::ALL {
            for case in [OWN, OTHER] {
                if let Decision::Allow { audit, .. } = authorize(&p, a, &resource(case), &g, NOW) {
                    assert!(audit.is_some(), "{role} {a} unaudited");
                }
            }
        }
    }
}

#[test]
fn offender_decisions_never_depend_on_the_victims_position() {
    let (p, g) = principal(Role::Offender);
    let proximities = [
        None,
        Some(OffenderProximity::WithinDisclosureRadius),
        Some(OffenderProximity::Outside),
    ];
    for &a in Action::ALL {
        for case in [OWN, OTHER] {
            let answers: Vec<Decision> = proximities
                .iter()
                .map(|&prox| {
                    let r = Resource {
                        offender_proximity: prox,
                        ..resource(case)
                    };
                    authorize(&p, a, &r, &g, NOW)
                })
                .collect();
            assert!(answers.windows(2).all(|w| w[0] == w[1]), "{a}: {answers:?}");
            // And the decision is exactly the resource-free offender rule.
            assert_eq!(answers[0], offender_rules(a, case == OWN));
        }
    }
}

#[test]
fn police_grant_ends_with_the_dispatch() {
    let (p, g) = principal(Role::Police);
    let r = resource(OWN);
    assert!(authorize(&p, Action::ReadPosition, &r, &g, NOW.plus_secs(3_599)).is_allowed());
    assert_eq!(
        authorize(&p, Action::ReadPosition, &r, &g, NOW.plus_secs(3_600)),
        Decision::Deny {
            reason: DenyReason::NotYourCase
        }
    );
}

#[test]
fn break_glass_opens_reads_only_with_a_reason_and_is_flagged() {
    for role in [Role::Police, Role::MonitoringOfficer] {
        let (p, g) = principal(role);
        let bg = |reason: &str, purpose: Option<Purpose>| Resource {
            break_glass: Some(reason.into()),
            purpose,
            ..resource(OTHER)
        };
        let reason = "SOS call from victim, assigned officer unreachable";
        let d = authorize(&p, Action::ReadPosition, &bg(reason, None), &g, NOW);
        let Decision::Allow {
            audit: Some(need), ..
        } = &d
        else {
            panic!("{role}: break-glass refused: {d:?}");
        };
        assert!(need.review);
        assert_eq!(need.break_glass_reason.as_deref(), Some(reason));
        let entry = audit_entry(
            &p,
            Action::ReadPosition,
            &bg(reason, None),
            &d,
            String::new(),
        );
        assert_eq!(entry.map(|e| e.action), Some(AuditAction::BreakGlass));

        // Police may never change a case; an officer may, but not by break-glass.
        let change_case = if role == Role::Police {
            DenyReason::RoleNotPermitted
        } else {
            DenyReason::NotYourCase
        };
        let cases: &[(Action, &str, Option<Purpose>, DenyReason)] = &[
            (
                Action::ReadPosition,
                "urgent",
                None,
                DenyReason::ReasonRequired,
            ),
            (Action::ReadTrack, reason, None, DenyReason::PurposeRequired),
            (Action::ChangeCase, reason, None, change_case),
            (
                Action::ExportEvidence,
                reason,
                Some(purpose()),
                DenyReason::NotYourCase,
            ),
            (Action::HandleAlert, reason, None, DenyReason::NotYourCase),
        ];
        for (action, reason, purpose, expect) in cases {
            let d = authorize(&p, *action, &bg(reason, purpose.clone()), &g, NOW);
            assert_eq!(d, Decision::Deny { reason: *expect }, "{role} {action}");
        }
    }
}

#[test]
fn purposes_must_be_real() {
    let (p, g) = principal(Role::MonitoringOfficer);
    for (code, text, ok) in [
        ("alert_response", "proximity alert 4411 check", true),
        ("alert_response", "x", false),
        ("alert_response", "          ", false),
        ("curiosity", "just looking at where he is", false),
    ] {
        let r = Resource {
            purpose: Some(Purpose {
                code: code.into(),
                text: text.into(),
            }),
            ..resource(OWN)
        };
        assert_eq!(
            authorize(&p, Action::ReadTrack, &r, &g, NOW).is_allowed(),
            ok,
            "{code} {text:?}"
        );
    }
}

#[test]
fn victims_read_only_their_own_position() {
    let (p, mut g) = principal(Role::Victim);
    let other_person = Resource {
        person: Some(PersonId(21)),
        ..resource(OWN)
    };
    assert_eq!(
        authorize(&p, Action::ReadVictimPosition, &other_person, &g, NOW),
        Decision::Deny {
            reason: DenyReason::NotYourPerson
        }
    );
    // A victim may petition before any case exists.
    let new_case = Resource {
        case: None,
        ..resource(OWN)
    };
    assert!(authorize(&p, Action::FilePetition, &new_case, &g, NOW).is_allowed());
    // Her phone reports (location sharing, SOS) need no case, but only for her own person.
    assert!(authorize(&p, Action::SendOwnReport, &new_case, &g, NOW).is_allowed());
    assert_eq!(
        authorize(&p, Action::SendOwnReport, &other_person, &g, NOW),
        Decision::Deny {
            reason: DenyReason::NotYourPerson
        }
    );
    // Who viewed her data: her own case only, never the whole log.
    assert!(!authorize(&p, Action::ReadAuditLog, &new_case, &g, NOW).is_allowed());
    // A grant on the wrong kind of account grants nothing.
    g.assigned_cases = vec![OTHER];
    assert!(!authorize(&p, Action::ViewCase, &resource(OTHER), &g, NOW).is_allowed());
}

#[test]
fn denials_by_staff_are_logged() {
    let (p, g) = principal(Role::MonitoringOfficer);
    let r = resource(OTHER);
    let d = authorize(&p, Action::ReadTrack, &r, &g, NOW);
    let e = audit_entry(&p, Action::ReadTrack, &r, &d, "range 0..1".into());
    let e = e.unwrap_or_else(|| panic!("no audit entry for a denial"));
    assert_eq!(e.outcome, Outcome::Denied);
    assert_eq!(e.action, AuditAction::ReadTrack);
    assert_eq!(e.actor.role, "monitoring_officer");
    assert_eq!(e.subject.case, Some(OTHER));
    // A victim's own view is not logged; her view of the offender is.
    let (v, vg) = principal(Role::Victim);
    let own = resource(OWN);
    let d = authorize(&v, Action::ReadVictimTrack, &own, &vg, NOW);
    assert_eq!(
        audit_entry(&v, Action::ReadVictimTrack, &own, &d, String::new()),
        None
    );
    let d = authorize(&v, Action::ReadPosition, &own, &vg, NOW);
    assert!(audit_entry(&v, Action::ReadPosition, &own, &d, String::new()).is_some());
}
