//! Tamper tests: each way of damaging a log is detected and named at the right seq.

use audit::{
    Actor, ActorKind, AuditAction, AuditChain, AuditEntry, AuditRecord, Checkpoint, Outcome,
    Problem, SigningKey, Subject, verify, verify_excerpt,
};
use domain::{CaseId, UnixMicros};
use proptest::prelude::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn entry(i: u64) -> AuditEntry {
    AuditEntry {
        actor: Actor {
            kind: ActorKind::Account,
            id: 7,
            role: "monitoring_officer".into(),
        },
        action: AuditAction::ReadTrack,
        subject: Subject {
            case: Some(CaseId(i as i64 % 3)),
            ..Subject::default()
        },
        purpose: None,
        outcome: Outcome::Allowed,
        details: format!("read {i}"),
    }
}

/// A log of `n` records with a checkpoint every 4 records.
fn signed_log(n: u64) -> (Vec<AuditRecord>, Vec<Checkpoint>) {
    let k = key(1);
    let mut chain = AuditChain::new();
    let mut records = Vec::new();
    let mut cps = Vec::new();
    for i in 0..n {
        let now = UnixMicros::from_secs(1_000 + i as i64);
        let r = chain.append(entry(i), now);
        if Checkpoint::due(r.seq, 4) {
            cps.push(Checkpoint::sign(&k, r.seq, r.hash, now));
        }
        records.push(r);
    }
    (records, cps)
}

/// Recomputes every hash from `from` (an index) on, as an attacker with database access
/// would after editing.
fn rechain(records: &mut [AuditRecord], from: usize) {
    for i in from..records.len() {
        if i > 0 {
            records[i].prev_hash = records[i - 1].hash;
        }
        records[i].hash = records[i].computed_hash();
    }
}

fn problems(records: &[AuditRecord], cps: &[Checkpoint], k: &SigningKey) -> Vec<Problem> {
    verify(records, cps, &k.verifying_key()).problems
}

#[test]
fn intact_log_verifies() {
    let (records, cps) = signed_log(10);
    let r = verify(&records, &cps, &key(1).verifying_key());
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records, 10);
    assert_eq!(r.checkpoints_valid, 2);
    assert_eq!(r.last_checkpoint_seq, Some(8));
    assert_eq!(r.unsigned_tail, 2);
    assert_eq!(r.head.map(|h| h.0), Some(10));
}

struct Case {
    name: &'static str,
    tamper: fn(&mut Vec<AuditRecord>, &mut Vec<Checkpoint>),
    /// The problems expected, in order.
    expect: Vec<Problem>,
    /// The first bad seq the report must name.
    first_bad: u64,
}

#[test]
fn tampering_is_detected_and_named() {
    use Problem::*;
    let cases = vec![
        Case {
            name: "change a field",
            tamper: |r, _| r[4].entry.details = "nothing to see".into(),
            expect: vec![ContentChanged { seq: 5 }],
            first_bad: 5,
        },
        Case {
            name: "change a field and recompute the rest of the chain",
            tamper: |r, _| {
                r[4].entry.actor.id = 99;
                rechain(r, 4);
            },
            expect: vec![CheckpointMismatch { seq: 8 }],
            first_bad: 8,
        },
        Case {
            name: "insert a record in the middle",
            tamper: |r, _| {
                let mut fake = r[4].clone();
                fake.entry.details = "planted".into();
                fake.hash = fake.computed_hash();
                r.insert(5, fake);
            },
            expect: vec![
                SeqOutOfOrder { after: 5, found: 5 },
                BrokenLink { seq: 5 },
                BrokenLink { seq: 6 },
            ],
            first_bad: 5,
        },
        Case {
            name: "delete a record in the middle",
            tamper: |r, _| {
                r.remove(5);
            },
            expect: vec![SeqOutOfOrder { after: 5, found: 7 }, BrokenLink { seq: 7 }],
            first_bad: 6,
        },
        Case {
            name: "delete a checkpointed record and renumber and rechain the rest",
            tamper: |r, _| {
                r.remove(3);
                for (i, rec) in r.iter_mut().enumerate() {
                    rec.seq = i as u64 + 1;
                }
                rechain(r, 3);
            },
            expect: vec![CheckpointMismatch { seq: 4 }, CheckpointMismatch { seq: 8 }],
            first_bad: 4,
        },
        Case {
            name: "delete at the end past a checkpoint",
            tamper: |r, _| r.truncate(6),
            expect: vec![Truncated {
                last_seq: Some(6),
                checkpoint_seq: 8,
            }],
            first_bad: 7,
        },
        Case {
            name: "delete everything",
            tamper: |r, _| r.clear(),
            expect: vec![
                Truncated {
                    last_seq: None,
                    checkpoint_seq: 4,
                },
                Truncated {
                    last_seq: None,
                    checkpoint_seq: 8,
                },
            ],
            first_bad: 1,
        },
        Case {
            name: "delete the start",
            tamper: |r, _| {
                r.remove(0);
            },
            expect: vec![BadStart { seq: 2 }],
            first_bad: 2,
        },
        Case {
            name: "reorder two records",
            tamper: |r, _| r.swap(2, 3),
            expect: vec![
                SeqOutOfOrder { after: 2, found: 4 },
                BrokenLink { seq: 4 },
                SeqOutOfOrder { after: 4, found: 3 },
                BrokenLink { seq: 3 },
                SeqOutOfOrder { after: 3, found: 5 },
                BrokenLink { seq: 5 },
            ],
            first_bad: 3,
        },
        Case {
            name: "forged checkpoint signature",
            tamper: |r, c| {
                r[9].entry.details = "rewritten".into();
                rechain(r, 9);
                c.push(Checkpoint::sign(&key(66), 10, r[9].hash, UnixMicros(0)));
            },
            expect: vec![CheckpointSignatureInvalid { seq: 10 }],
            first_bad: 10,
        },
        Case {
            name: "checkpoint with an edited hash",
            tamper: |_, c| c[0].hash[0] ^= 0x80,
            expect: vec![CheckpointSignatureInvalid { seq: 4 }],
            first_bad: 4,
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let (mut records, mut cps) = signed_log(10);
        (case.tamper)(&mut records, &mut cps);
        let report = verify(&records, &cps, &key(1).verifying_key());
        let first = report.first_bad().map(|p| p.seq());
        if report.problems != case.expect || first != Some(case.first_bad) {
            failures.push(format!(
                "{}: got {:?} first {:?}",
                case.name, report.problems, first
            ));
        }
        // Every problem has a human sentence for the report.
        for p in &report.problems {
            assert!(!p.to_string().is_empty());
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn truncation_after_the_last_checkpoint_needs_a_known_head() {
    let (records, cps) = signed_log(10);
    let vk = key(1).verifying_key();
    let head = (records[9].seq, records[9].hash);
    // Dropping the unsigned tail (records 9 and 10) leaves a log that is valid on its own...
    let mut r = verify(&records[..8], &cps, &vk);
    assert!(r.ok());
    assert_eq!(r.unsigned_tail, 0);
    // ...but not against the head the server knows.
    r.expect_head(head.0, head.1);
    assert_eq!(
        r.problems,
        vec![Problem::Truncated {
            last_seq: Some(8),
            checkpoint_seq: 10
        }]
    );
    // A tail rewritten with recomputed hashes is caught the same way.
    let mut rewritten = records.clone();
    rewritten[9].entry.details = "other".into();
    rewritten[9].hash = rewritten[9].computed_hash();
    let mut r = verify(&rewritten, &cps, &vk);
    assert!(r.ok());
    r.expect_head(head.0, head.1);
    assert_eq!(r.problems, vec![Problem::HeadMismatch { seq: 10 }]);
    // The intact log passes.
    let mut r = verify(&records, &cps, &vk);
    r.expect_head(head.0, head.1);
    assert!(r.ok());
}

#[test]
fn wrong_key_rejects_every_checkpoint() {
    let (records, cps) = signed_log(10);
    assert_eq!(
        problems(&records, &cps, &key(2)),
        vec![
            Problem::CheckpointSignatureInvalid { seq: 4 },
            Problem::CheckpointSignatureInvalid { seq: 8 }
        ]
    );
}

#[test]
fn excerpt_verifies_inside_its_range() {
    let (records, cps) = signed_log(12);
    let vk = key(1).verifying_key();
    let r = verify_excerpt(&records[5..10], &cps, &vk);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.last_checkpoint_seq, Some(8));
    let mut damaged = records[5..10].to_vec();
    damaged.remove(2);
    assert_eq!(
        verify_excerpt(&damaged, &cps, &vk).problems,
        vec![
            Problem::SeqOutOfOrder { after: 7, found: 9 },
            Problem::BrokenLink { seq: 9 },
            Problem::CheckpointRecordMissing { seq: 8 }
        ]
    );
}

/// The storage form of a whole log: each record's bytes with a length prefix, then the
/// checkpoints. Any backend's blob column looks like this to an attacker.
fn serialise(records: &[AuditRecord], cps: &[Checkpoint]) -> Vec<Vec<u8>> {
    records
        .iter()
        .map(AuditRecord::to_bytes)
        .chain(cps.iter().map(Checkpoint::to_bytes))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any single-byte change anywhere in the stored records or checkpoints is detected:
    /// either the bytes no longer decode, or verification reports a problem.
    #[test]
    fn any_single_byte_change_is_detected(
        n in 1u64..12,
        pick in any::<prop::sample::Index>(),
        offset in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (records, cps) = signed_log(n);
        let mut blobs = serialise(&records, &cps);
        let blob = pick.index(blobs.len());
        let at = offset.index(blobs[blob].len());
        blobs[blob][at] ^= xor;

        let (rec_blobs, cp_blobs) = blobs.split_at(records.len());
        let decoded: Result<Vec<AuditRecord>, _> =
            rec_blobs.iter().map(|b| AuditRecord::from_bytes(b)).collect();
        let cps2: Option<Vec<Checkpoint>> =
            cp_blobs.iter().map(|b| Checkpoint::from_bytes(b)).collect();
        if let (Ok(recs), Some(cps2)) = (decoded, cps2) {
            let report = verify(&recs, &cps2, &key(1).verifying_key());
            prop_assert!(!report.ok(), "undetected change in blob {} byte {}", blob, at);
        }
    }
}
