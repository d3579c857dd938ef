//! The conformance tests of accounts, sessions, the log-in throttle, assignments,
//! dispatches, the access log, the retention purge, the court workflow and the alert action
//! log: each body runs on SQLite and on PostgreSQL (`on_both_backends!`). Below them, what
//! only several nodes on one PostgreSQL can show: a court timer fires once, two purges at
//! once neither fail nor claim the same rows.
#![allow(clippy::unwrap_used)] // Tests state their expectations with unwrap.

use crate::conformance::{Place, on_both_backends};
use crate::*;
use access::{LoginThrottle, Role, SessionRecord};
use audit::{
    Actor, ActorKind, AuditAction, AuditEntry, AuditRecord, Checkpoint, Outcome, SigningKey,
    Subject,
};
use domain::*;
use std::path::Path;
use std::sync::Arc;

async fn setup(store: &Store) -> (Person, Device) {
    let now = UnixMicros::from_secs(1);
    let p = store
        .create_person(PersonRole::Offender, "O".into(), now)
        .await
        .unwrap();
    let d = store
        .create_device(
            DeviceKind::AnkleMonitor,
            Protocol::Native,
            "imei-1".into(),
            Some(p.id),
            Some("secret".into()),
            now,
        )
        .await
        .unwrap();
    (p, d)
}

fn entry(i: i64) -> AuditEntry {
    AuditEntry {
        actor: Actor {
            kind: ActorKind::Account,
            id: i,
            role: "monitoring_officer".into(),
        },
        action: AuditAction::ReadPosition,
        subject: Subject {
            case: Some(CaseId(1)),
            person: None,
            device: None,
        },
        purpose: None,
        outcome: Outcome::Allowed,
        details: format!("read {i}"),
    }
}

fn key() -> Arc<SigningKey> {
    Arc::new(SigningKey::from_bytes(&[9; 32]))
}

async fn all(store: &Store) -> Vec<AuditRecord> {
    store
        .audit_records(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.unwrap())
        .collect()
}

on_both_backends!(
    the_access_log_chains_across_jobs_and_restarts_and_checkpoints_when_due,
    flavor = "current_thread"
);
async fn the_access_log_chains_across_jobs_and_restarts_and_checkpoints_when_due(place: Place) {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head.json");
    let signer = AuditSigner {
        key: key(),
        every: 3,
        head_file: Some(head.clone()),
    };
    let store = place.open();
    let t = UnixMicros::from_secs(10);
    let first = store
        .append_audit(vec![entry(1), entry(2)], t, Some(signer.clone()))
        .await
        .unwrap();
    assert_eq!(first.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    store.close();

    // A fresh process resumes the chain from the last stored record.
    let store = place.open();
    let next = store
        .append_audit(vec![entry(3), entry(4)], t, Some(signer.clone()))
        .await
        .unwrap();
    assert_eq!(next[0].seq, 3);
    assert_eq!(next[0].prev_hash, first[1].hash);
    let (cps, bad) = store.audit_checkpoints().await.unwrap();
    assert_eq!(
        (cps.iter().map(|c| c.seq).collect::<Vec<_>>(), bad),
        (vec![3], 0)
    );
    let in_file = |head: &Path| {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(head).unwrap()).unwrap();
        Checkpoint::from_json(&v).unwrap()
    };
    assert_eq!(in_file(&head), cps[0], "anchored outside the database");
    // On demand at the head, once; the file follows.
    assert!(
        store
            .checkpoint_audit(signer.clone(), t)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .checkpoint_audit(signer.clone(), t)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(in_file(&head).seq, 4);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&head).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let records = all(&store).await;
    let (cps, _) = store.audit_checkpoints().await.unwrap();
    let report = audit::verify(&records, &cps, &key().verifying_key());
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.unsigned_tail, 0);
    store.close();
}

on_both_backends!(sessions_and_throttle_round_trip, flavor = "current_thread");
async fn sessions_and_throttle_round_trip(place: Place) {
    let store = place.open();
    let t = UnixMicros::from_secs(100);
    let a = store
        .create_account(
            NewAccount {
                username: "kim".into(),
                role: Role::Police,
                person: None,
                password_phc: "$argon2id$stub".into(),
                totp_secret: None,
            },
            t,
        )
        .await
        .unwrap();
    let dup = store
        .create_account(
            NewAccount {
                username: "kim".into(),
                role: Role::Auditor,
                person: None,
                password_phc: "x".into(),
                totp_secret: None,
            },
            t,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let tok = access::SessionToken::from_bytes([3; 32]);
    let rec = SessionRecord::new(&tok, a.id, a.role, access::SessionPolicy::default(), t);
    store.insert_session(rec.clone()).await.unwrap();
    assert_eq!(store.session(tok.hash()).await.unwrap(), Some(rec.clone()));
    store
        .revoke_session(tok.hash(), t.plus_secs(5))
        .await
        .unwrap();
    store
        .revoke_session(tok.hash(), t.plus_secs(9))
        .await
        .unwrap();
    let revoked = store.session(tok.hash()).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t.plus_secs(5)));

    let mut th = LoginThrottle::default();
    th.record_failure(&access::LockoutPolicy::default(), t);
    store.save_login_throttle(a.id, th).await.unwrap();
    assert_eq!(store.login_throttle(a.id).await.unwrap(), th);
    assert!(store.use_totp_step(a.id, 7).await.unwrap());
    assert!(
        !store.use_totp_step(a.id, 7).await.unwrap(),
        "a step is used once"
    );
    store.close();
}

on_both_backends!(
    unknown_alert_is_not_found_and_nothing_is_logged,
    flavor = "multi_thread"
);
async fn unknown_alert_is_not_found_and_nothing_is_logged(place: Place) {
    let store = place.open();
    let a = NewAlertAction {
        at: UnixMicros(1),
        actor_account_id: 7,
        actor_role: "monitoring_officer".into(),
        action: "acknowledge".into(),
        cause: None,
        note: None,
    };
    let r = store
        .set_alert_state_logged(AlertId(42), AlertState::Acknowledged, a.clone())
        .await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    let r = store.add_alert_action(AlertId(42), a).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    let log = store
        .alert_actions(AlertId(42))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(log.is_empty());
    store.close();
}

on_both_backends!(
    a_court_step_is_one_transaction_and_a_notice_is_written_once,
    flavor = "current_thread"
);
async fn a_court_step_is_one_transaction_and_a_notice_is_written_once(place: Place) {
    let store = place.open();
    let now = UnixMicros::from_secs(1_000);
    let (offender, _) = setup(&store).await;
    let victim = store
        .create_person(PersonRole::Protected, "V".into(), now)
        .await
        .unwrap();
    let case = store
        .create_case("C".into(), offender.id, vec![victim.id], now)
        .await
        .unwrap();
    // A directly registered order has version 1.
    let direct = Order {
        id: OrderId(0),
        case_id: case.id,
        kind: OrderKind::RestrainingOrder,
        valid_from: now,
        valid_to: Some(UnixMicros::from_secs(5_000)),
        no_approach_m: 100.0,
        warning_m: 500.0,
        disclosure_radius_m: 600.0,
        zones: vec![],
    };
    let o = store.create_order(direct.clone(), now).await.unwrap();
    let v = store.order_versions(o.id).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].version, v[0].valid_to), (1, direct.valid_to));

    let notice = |key: &str| crate::NewNotice {
        case_id: case.id,
        order_id: None,
        petition_id: None,
        recipient: "victim".into(),
        person_id: Some(victim.id),
        kind: "extended".into(),
        valid_to: None,
        reasons: None,
        dedup_key: key.into(),
    };
    let version = |n: u32, to: i64| crate::OrderVersionRecord {
        order_id: o.id,
        version: n,
        valid_from: UnixMicros::from_secs(5_000),
        valid_to: Some(UnixMicros::from_secs(to)),
        kind: OrderKind::RestrainingOrder,
        no_approach_m: 100.0,
        warning_m: 500.0,
        disclosure_radius_m: 600.0,
        no_contact_by_phone: false,
        electronic_monitoring: false,
        zones: vec![],
        reasons: "more time".into(),
        issued_at: now,
        issued_by: Some(1),
    };
    let step = crate::CourtStep {
        at: now,
        order_id: Some(o.id),
        version: Some(version(2, 9_000)),
        notices: vec![notice("k1")],
        timers: vec![crate::NewTimer {
            order_id: None,
            at: UnixMicros::from_secs(9_000),
            kind: "lapse_check".into(),
            recipient: None,
            version: 2,
        }],
        ..Default::default()
    };
    let out = store.apply_court_step(step.clone()).await.unwrap();
    assert_eq!(out.notices.len(), 1);
    // The projection follows the newest version; version 1 is unchanged.
    let listed = store.list_orders().await.unwrap();
    assert_eq!(listed[0].valid_to, Some(UnixMicros::from_secs(9_000)));
    let v = store.order_versions(o.id).await.unwrap();
    assert_eq!(v[0].valid_to, direct.valid_to);
    // A second version 2 is refused, and the whole step with it (no notice, no timer).
    let again = crate::CourtStep {
        notices: vec![notice("k2")],
        ..step
    };
    assert!(matches!(
        store.apply_court_step(again).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_notices(100).await.unwrap().len(), 1);
    // A notice with a key already used is not written again.
    let dup = crate::CourtStep {
        at: now,
        notices: vec![notice("k1")],
        ..Default::default()
    };
    assert!(
        store
            .apply_court_step(dup)
            .await
            .unwrap()
            .notices
            .is_empty()
    );
    // Timers come due with time and are done once.
    assert!(
        store
            .due_court_timers(UnixMicros::from_secs(8_999))
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .due_court_timers(UnixMicros::from_secs(9_000))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    store
        .apply_court_step(crate::CourtStep {
            at: now,
            timers_done: vec![due[0].id],
            order_id: Some(o.id),
            lapsed: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        store
            .due_court_timers(UnixMicros::from_secs(9_999))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.order_lapsed_at(o.id).await.unwrap(), Some(now));
    assert_eq!(store.court_cases().await.unwrap(), vec![case.id]);
}
