//! Evidence bundles: a round trip, and every kind of damage detected and named.

use std::path::Path;

use audit::bundle::{AlertHandling, BundleFix, BundleProblem as P};
use audit::{
    Actor, ActorKind, AuditAction, AuditChain, AuditEntry, BundleAlert, BundleInput, BundleOrder,
    Checkpoint, Outcome, SigningKey, Subject, verify_bundle, write_bundle,
};
use domain::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn input() -> BundleInput {
    let t0 = UnixMicros::from_secs(1_782_259_200);
    let fix = |i: i64, party: PersonRole| BundleFix {
        party,
        fix: Fix {
            id: Some(FixId(i)),
            device_id: DeviceId(if party == PersonRole::Offender { 1 } else { 2 }),
            device_time: t0.plus_secs(i * 60),
            received_time: t0.plus_secs(i * 60 + 2),
            position: LatLon::new(37.5 + i as f64 * 1e-4, 127.0).unwrap_or_else(|_| unreachable!()),
            accuracy_m: Some(8.5),
            speed_mps: None,
            course_deg: Some(90.0),
            altitude_m: None,
            source: FixSource::Gnss,
            flags: FixFlags::default(),
            seq: Some(i),
        },
    };
    let mut chain = AuditChain::new();
    let k = key(1);
    let mut audit = Vec::new();
    let mut checkpoints = Vec::new();
    for i in 0..6 {
        let r = chain.append(
            AuditEntry {
                actor: Actor {
                    kind: ActorKind::Account,
                    id: 12,
                    role: "monitoring_officer".into(),
                },
                action: AuditAction::ReadTrack,
                subject: Subject {
                    case: Some(CaseId(3)),
                    ..Subject::default()
                },
                purpose: Some(audit::Purpose {
                    code: "evidence".into(),
                    text: "breach on 24 June".into(),
                }),
                outcome: Outcome::Allowed,
                details: String::new(),
            },
            t0.plus_secs(i),
        );
        if r.seq.is_multiple_of(3) {
            checkpoints.push(Checkpoint::sign(&k, r.seq, r.hash, r.time));
        }
        audit.push(r);
    }
    let order = Order {
        id: OrderId(5),
        case_id: CaseId(3),
        kind: OrderKind::ProvisionalMeasure,
        valid_from: t0,
        valid_to: Some(t0.plus_secs(90 * 86_400)),
        no_approach_m: 100.0,
        warning_m: 2_000.0,
        disclosure_radius_m: 600.0,
        zones: vec![Zone {
            id: ZoneId(1),
            kind: ZoneKind::Home,
            label: "victim home, 12 Secret-ro".into(),
            shape: ZoneShape::Circle {
                center: LatLon::new(37.51, 127.01).unwrap_or_else(|_| unreachable!()),
                radius_m: 200.0,
            },
        }],
    };
    BundleInput {
        case: CaseId(3),
        case_reference: "2026-Zi-123".into(),
        window: (t0, t0.plus_secs(3_600)),
        fixes: vec![
            fix(1, PersonRole::Offender),
            fix(2, PersonRole::Offender),
            fix(3, PersonRole::Protected),
        ],
        alerts: vec![BundleAlert {
            alert: Alert {
                id: AlertId(9),
                order_id: Some(OrderId(5)),
                case_id: Some(CaseId(3)),
                rule: AlertRule::ProximityViolation,
                severity: Severity::Critical,
                state: AlertState::Resolved,
                raised_at: t0.plus_secs(120),
                updated_at: t0.plus_secs(900),
                summary: "offender within 80 m".into(),
                min_distance_m: Some(80.0),
                evidence: vec![FixId(2)],
            },
            handling: vec![AlertHandling {
                at: t0.plus_secs(130),
                actor: "monitoring_officer#12".into(),
                action: "dispatched".into(),
                note: "police 112 informed".into(),
            }],
        }],
        orders: vec![BundleOrder {
            version: 1,
            order,
            issued_at: t0,
            reasons: "repeated following".into(),
        }],
        audit,
        audit_links: Vec::new(),
        checkpoints,
        created_at: t0.plus_secs(7_200),
    }
}

/// A log where every other record is about another case: the bundle of case 3 carries
/// those as links only, and the chain still verifies up to the checkpoints.
#[test]
fn a_sparse_excerpt_proves_the_chain_without_other_cases_records() {
    let mut base = input();
    let t0 = base.window.0;
    let k = key(1);
    let mut chain = AuditChain::new();
    let (mut mine, mut links, mut checkpoints) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..9 {
        let case = if i % 2 == 0 { 3 } else { 4 };
        let r = chain.append(
            AuditEntry {
                actor: Actor {
                    kind: ActorKind::Account,
                    id: 12,
                    role: "monitoring_officer".into(),
                },
                action: AuditAction::ReadPosition,
                subject: Subject {
                    case: Some(CaseId(case)),
                    ..Subject::default()
                },
                purpose: None,
                outcome: Outcome::Allowed,
                details: format!("secret of case {case}, read {i}"),
            },
            t0.plus_secs(i),
        );
        if r.seq.is_multiple_of(4) || r.seq == 9 {
            checkpoints.push(Checkpoint::sign(&k, r.seq, r.hash, r.time));
        }
        if case == 3 {
            mine.push(r);
        } else {
            links.push(r.link());
        }
    }
    base.audit = mine;
    base.audit_links = links.clone();
    base.checkpoints = checkpoints;
    let files = audit::bundle::build_bundle(&base, &k).unwrap();
    for (name, bytes) in &files {
        assert!(
            !String::from_utf8_lossy(bytes).contains("secret of case 4"),
            "{name} discloses another case"
        );
    }
    let report = audit::bundle::verify_bundle_files(&files, &k.verifying_key());
    assert!(report.ok(), "{:?}", report.problems);

    // A link whose digest does not give its hash, and a missing link, are caught.
    let mut bad = base.clone();
    bad.audit_links[1].content_sha256 = Some([7; 32]);
    let files = audit::bundle::build_bundle(&bad, &k).unwrap();
    let report = audit::bundle::verify_bundle_files(&files, &k.verifying_key());
    assert!(
        report
            .problems
            .contains(&P::AuditChain(audit::Problem::ContentChanged {
                seq: links[1].seq
            })),
        "{:?}",
        report.problems
    );
    let mut gap = base.clone();
    gap.audit_links.remove(2);
    let files = audit::bundle::build_bundle(&gap, &k).unwrap();
    let report = audit::bundle::verify_bundle_files(&files, &k.verifying_key());
    assert!(
        !report.ok(),
        "a left-out record without its link breaks the chain"
    );
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let dir = tmp.path().join("bundle");
    write_bundle(&dir, &input(), &key(1)).unwrap_or_else(|e| panic!("write: {e}"));
    (tmp, dir)
}

fn problems(dir: &Path, k: &SigningKey) -> Vec<P> {
    verify_bundle(dir, &k.verifying_key())
        .unwrap_or_else(|e| panic!("verify: {e}"))
        .problems
}

#[test]
fn round_trip() {
    let (_tmp, dir) = fresh();
    let report = verify_bundle(&dir, &key(1).verifying_key()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(
        report.files_ok,
        [
            "README.txt",
            "alerts.json",
            "audit-links.jsonl",
            "audit.jsonl",
            "checkpoints.json",
            "fixes.csv",
            "orders.json"
        ]
    );
    let csv = std::fs::read_to_string(dir.join("fixes.csv")).unwrap_or_default();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.contains(",offender,1,1782259260000000,2026-06-24T00:01:00.000000Z,"));
    let orders = std::fs::read_to_string(dir.join("orders.json")).unwrap_or_default();
    assert!(!orders.contains("Secret"), "zone labels must not leak");
    assert!(!orders.contains("37.51"), "zone geometry must not leak");
    // Evidence is never overwritten.
    assert!(matches!(
        write_bundle(&dir, &input(), &key(1)),
        Err(audit::BundleError::NotEmpty(_))
    ));
}

#[test]
fn damage_is_detected_and_named() {
    type Tamper = fn(&Path);
    let cases: Vec<(&str, Tamper, Vec<P>)> = vec![
        (
            "a fix row edited, same size",
            |d| edit(d, "fixes.csv", |s| s.replacen("37.5001", "37.5009", 1)),
            vec![P::HashMismatch("fixes.csv".into())],
        ),
        (
            "an alert note appended",
            |d| edit(d, "alerts.json", |s| s + " "),
            vec![P::SizeMismatch {
                name: "alerts.json".into(),
                manifest: 623,
                actual: 624,
            }],
        ),
        (
            "a file deleted",
            |d| rm(d, "orders.json"),
            vec![P::MissingFile("orders.json".into())],
        ),
        (
            "a file added",
            |d| put(d, "notes.txt", "he was never there"),
            vec![P::ExtraFile("notes.txt".into())],
        ),
        (
            "a directory added",
            |d| {
                let _ = std::fs::create_dir(d.join("more"));
            },
            vec![P::ExtraFile("more".into())],
        ),
        (
            "the manifest edited to match an edited file",
            |d| {
                edit(d, "manifest.json", |s| {
                    s.replace("2026-Zi-123", "2026-Zi-999")
                });
            },
            vec![P::SignatureInvalid],
        ),
        (
            "the signature removed",
            |d| rm(d, "manifest.sig"),
            vec![P::MissingSignature],
        ),
        (
            "the signature garbled",
            |d| put(d, "manifest.sig", "not hex"),
            vec![P::SignatureMalformed],
        ),
        (
            "the manifest removed",
            |d| rm(d, "manifest.json"),
            vec![
                P::MissingManifest,
                P::ExtraFile("README.txt".into()),
                P::ExtraFile("alerts.json".into()),
                P::ExtraFile("audit-links.jsonl".into()),
                P::ExtraFile("audit.jsonl".into()),
                P::ExtraFile("checkpoints.json".into()),
                P::ExtraFile("fixes.csv".into()),
                P::ExtraFile("orders.json".into()),
            ],
        ),
        (
            "an audit line deleted",
            |d| {
                edit(d, "audit.jsonl", |s| {
                    let mut lines: Vec<&str> = s.lines().collect();
                    lines.remove(1);
                    lines.join("\n") + "\n"
                })
            },
            vec![
                P::SizeMismatch {
                    name: "audit.jsonl".into(),
                    manifest: 2604,
                    actual: 2170,
                },
                P::AuditChain(audit::Problem::SeqOutOfOrder { after: 1, found: 3 }),
                P::AuditChain(audit::Problem::BrokenLink { seq: 3 }),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, tamper, expect) in cases {
        let (_tmp, dir) = fresh();
        tamper(&dir);
        let got = problems(&dir, &key(1));
        if got != expect {
            failures.push(format!("{name}: got {got:?}"));
        }
        for p in &got {
            assert!(!p.to_string().is_empty());
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn wrong_key_is_detected() {
    let (_tmp, dir) = fresh();
    assert_eq!(
        problems(&dir, &key(2)),
        vec![
            P::SignatureInvalid,
            P::AuditChain(audit::Problem::CheckpointSignatureInvalid { seq: 3 }),
            P::AuditChain(audit::Problem::CheckpointSignatureInvalid { seq: 6 }),
        ]
    );
}

fn edit(dir: &Path, name: &str, f: impl FnOnce(String) -> String) {
    let s = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    put(dir, name, &f(s));
}

fn put(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

fn rm(dir: &Path, name: &str) {
    std::fs::remove_file(dir.join(name)).unwrap_or_else(|e| panic!("rm {name}: {e}"));
}
