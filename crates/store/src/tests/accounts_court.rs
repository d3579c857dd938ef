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

/// A case of `offender` protecting a new person.
async fn new_case(store: &Store, offender: PersonId, reference: &str, now: UnixMicros) -> Case {
    let victim = store
        .create_person(PersonRole::Protected, "V".into(), now)
        .await
        .unwrap();
    store
        .create_case(reference.into(), offender, vec![victim.id], now)
        .await
        .unwrap()
}

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
        .alert_actions(&crate::Authorized::system("test"), AlertId(42))
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

fn fix(device: DeviceId, t: i64) -> Fix {
    Fix {
        id: None,
        device_id: device,
        device_time: UnixMicros::from_secs(t),
        received_time: UnixMicros::from_secs(t + 1),
        position: LatLon::new(37.5 + t as f64 * 1e-5, 127.0).unwrap(),
        accuracy_m: Some(8.0),
        speed_mps: None,
        course_deg: None,
        altitude_m: None,
        source: FixSource::Gnss,
        flags: FixFlags::default(),
        seq: Some(t),
    }
}

fn new_account(name: &str, role: Role, person: Option<PersonId>) -> NewAccount {
    NewAccount {
        username: name.into(),
        role,
        person,
        password_phc: "$argon2id$stub".into(),
        totp_secret: Some(vec![1, 2, 3]),
    }
}

async fn raise_alert(store: &Store, case: Option<CaseId>, at_s: i64) -> AlertRecord {
    store
        .apply_alert_change(AlertChange {
            order_id: None,
            case_id: case,
            rule: AlertRule::ZoneViolation,
            protected: Some(PersonId(at_s)),
            zone: None,
            kind: AlertChangeKind::Raised,
            severity: Severity::Critical,
            at: UnixMicros::from_secs(at_s),
            distance_m: Some(40.0),
            evidence: Vec::new(),
            summary: format!("raised at {at_s}"),
            device: None,
            details: AlertDetails::default(),
        })
        .await
        .unwrap()
}

on_both_backends!(
    accounts_assignments_and_dispatches_keep_their_rules,
    flavor = "current_thread"
);
async fn accounts_assignments_and_dispatches_keep_their_rules(place: Place) {
    let store = place.open();
    let t = UnixMicros::from_secs(100);
    let (offender, _) = setup(&store).await;
    let case = new_case(&store, offender.id, "C-1", t).await;
    // A person that does not exist is refused, and nothing is stored.
    let bad = store
        .create_account(new_account("ghost", Role::Victim, Some(PersonId(999))), t)
        .await;
    assert!(
        matches!(bad, Err(StoreError::InvalidReference(_))),
        "{bad:?}"
    );
    let b = store
        .create_account(new_account("b", Role::MonitoringOfficer, None), t)
        .await
        .unwrap();
    let a = store
        .create_account(new_account("a", Role::Offender, Some(offender.id)), t)
        .await
        .unwrap();
    assert_eq!(store.account(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.account_by_username("b".into()).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        store.account_by_username("ghost".into()).await.unwrap(),
        None
    );
    let listed = store.list_accounts().await.unwrap();
    assert_eq!(listed, vec![b.clone(), a.clone()], "by id");
    assert_eq!(
        store.login_throttle(b.id).await.unwrap(),
        LoginThrottle::default()
    );

    // Sessions: the idle clock only moves forward; disabling revokes them, once.
    let tok = access::SessionToken::from_bytes([5; 32]);
    let rec = SessionRecord::new(&tok, b.id, b.role, access::SessionPolicy::default(), t);
    store.insert_session(rec.clone()).await.unwrap();
    store
        .touch_session(tok.hash(), t.plus_secs(50))
        .await
        .unwrap();
    store
        .touch_session(tok.hash(), t.plus_secs(10))
        .await
        .unwrap();
    let s = store.session(tok.hash()).await.unwrap().unwrap();
    assert_eq!(s.last_used_at, t.plus_secs(50));
    assert_eq!(store.session([0; 32]).await.unwrap(), None);
    store.disable_account(b.id, t.plus_secs(60)).await.unwrap();
    store.disable_account(b.id, t.plus_secs(90)).await.unwrap();
    assert!(store.account(b.id).await.unwrap().unwrap().disabled);
    let s = store.session(tok.hash()).await.unwrap().unwrap();
    assert_eq!(s.revoked_at, Some(t.plus_secs(60)));
    assert!(matches!(
        store.disable_account(access::AccountId(999), t).await,
        Err(StoreError::InvalidReference(_))
    ));

    // Assignments: idempotent, references checked, listed by case.
    let case2 = new_case(&store, offender.id, "C-2", t).await;
    store.assign_case(b.id, case2.id, t).await.unwrap();
    store.assign_case(b.id, case.id, t).await.unwrap();
    store
        .assign_case(b.id, case.id, t.plus_secs(1))
        .await
        .unwrap();
    assert_eq!(
        store.assigned_cases(b.id).await.unwrap(),
        vec![case.id, case2.id]
    );
    assert!(matches!(
        store.assign_case(b.id, CaseId(999), t).await,
        Err(StoreError::InvalidReference(_))
    ));
    assert!(matches!(
        store.assign_case(access::AccountId(999), case.id, t).await,
        Err(StoreError::InvalidReference(_))
    ));
    assert!(store.assigned_cases(a.id).await.unwrap().is_empty());

    // Dispatches: a second dispatch of one alert moves the expiry; ending caps it.
    let alert = raise_alert(&store, Some(case.id), 200).await;
    let other = raise_alert(&store, Some(case2.id), 201).await;
    store
        .add_dispatch(a.id, case.id, alert.alert.id, t, t.plus_secs(100))
        .await
        .unwrap();
    store
        .add_dispatch(a.id, case.id, alert.alert.id, t, t.plus_secs(500))
        .await
        .unwrap();
    store
        .add_dispatch(a.id, case2.id, other.alert.id, t, t.plus_secs(300))
        .await
        .unwrap();
    let ds = |c: CaseId, s: i64| access::Dispatch {
        case: c,
        expires_at: t.plus_secs(s),
    };
    assert_eq!(
        store.dispatches(a.id).await.unwrap(),
        vec![ds(case.id, 500), ds(case2.id, 300)]
    );
    store
        .end_dispatches(alert.alert.id, t.plus_secs(200))
        .await
        .unwrap();
    store
        .end_dispatches(alert.alert.id, t.plus_secs(400))
        .await
        .unwrap();
    assert_eq!(
        store.dispatches(a.id).await.unwrap(),
        vec![ds(case.id, 200), ds(case2.id, 300)]
    );
    assert!(matches!(
        store
            .add_dispatch(access::AccountId(999), case.id, alert.alert.id, t, t)
            .await,
        Err(StoreError::InvalidReference(_))
    ));
    store.close();
}

on_both_backends!(
    the_action_log_keeps_each_step_with_the_alert_as_it_was,
    flavor = "current_thread"
);
async fn the_action_log_keeps_each_step_with_the_alert_as_it_was(place: Place) {
    let store = place.open();
    let (offender, _) = setup(&store).await;
    let case = new_case(&store, offender.id, "C", UnixMicros::from_secs(5)).await;
    let alert = raise_alert(&store, Some(case.id), 1_000).await;
    let act = |at_s: i64, action: &str| NewAlertAction {
        at: UnixMicros::from_secs(at_s),
        actor_account_id: 7,
        actor_role: "monitoring_officer".into(),
        action: action.into(),
        cause: Some("cause".into()),
        note: None,
    };
    let (before, after) = store
        .set_alert_state_logged(
            alert.alert.id,
            AlertState::Acknowledged,
            act(1_010, "acknowledge"),
        )
        .await
        .unwrap();
    assert_eq!(before.alert.state, AlertState::Raised);
    assert_eq!(after.alert.state, AlertState::Acknowledged);
    assert_eq!(after.alert.updated_at, UnixMicros::from_secs(1_010));
    let note = store
        .add_alert_action(alert.alert.id, act(1_005, "note"))
        .await
        .unwrap();
    assert_eq!(note.summary.as_deref(), Some("raised at 1000"));
    assert_eq!(note.min_distance_m, Some(40.0));
    assert_eq!(note.condition_active, Some(true));
    assert_eq!(note.cause.as_deref(), Some("cause"));
    // Oldest first by time, then by id.
    let log = store
        .alert_actions(&crate::Authorized::system("test"), alert.alert.id)
        .await
        .unwrap();
    assert_eq!(
        log.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        ["note", "acknowledge"]
    );
    assert_eq!(log[0], note);
    let later = raise_alert(&store, None, 3_000).await;
    let window = store
        .alerts_raised_between(UnixMicros::from_secs(0), UnixMicros::from_secs(2_000))
        .await
        .unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].0.alert.id, alert.alert.id);
    assert_eq!(window[0].1, log);
    let all = store
        .alerts_raised_between(UnixMicros::from_secs(0), UnixMicros::from_secs(3_001))
        .await
        .unwrap();
    assert_eq!(all[1].0.alert.id, later.alert.id);
    assert!(all[1].1.is_empty());
    assert_eq!(
        store.case_opened_at().await.unwrap(),
        vec![(case.id, UnixMicros::from_secs(5))]
    );
    store.close();
}

fn petition(case: CaseId) -> Petition {
    Petition {
        id: 0,
        case_id: case,
        kind: OrderKind::RestrainingOrder,
        petitioner: "victim".into(),
        petitioner_account_id: 3,
        no_approach_m: 100.0,
        duration_s: 86_400,
        no_contact_by_phone: true,
        electronic_monitoring: false,
        statement: "he waits outside".into(),
        state: "filed".into(),
        filed_at: UnixMicros::from_secs(10),
        updated_at: UnixMicros::from_secs(10),
        order_id: None,
    }
}

fn event(at_s: i64, name: &str) -> NewPetitionEvent {
    NewPetitionEvent {
        at: UnixMicros::from_secs(at_s),
        actor_account_id: Some(3),
        actor_role: "victim".into(),
        event: name.into(),
        reasons: None,
        details: Some(name.into()),
    }
}

fn notice(case: CaseId, key: &str) -> NewNotice {
    NewNotice {
        case_id: case,
        order_id: None,
        petition_id: None,
        recipient: "court".into(),
        person_id: None,
        kind: "filed".into(),
        valid_to: None,
        reasons: None,
        dedup_key: key.into(),
    }
}

on_both_backends!(
    a_petition_is_filed_with_its_history_and_granted_into_an_order,
    flavor = "current_thread"
);
async fn a_petition_is_filed_with_its_history_and_granted_into_an_order(place: Place) {
    let store = place.open();
    let (offender, _) = setup(&store).await;
    let case = new_case(&store, offender.id, "C", UnixMicros::from_secs(1)).await;
    assert!(matches!(
        store
            .file_petition(petition(CaseId(999)), event(10, "filed"), vec![])
            .await,
        Err(StoreError::InvalidReference(_))
    ));
    let (p, sent) = store
        .file_petition(
            petition(case.id),
            event(10, "filed"),
            vec![notice(case.id, "filed")],
        )
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].petition_id, Some(p.id));
    assert_eq!(store.petition(p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.petition(p.id + 100).await.unwrap(), None);
    assert_eq!(store.court_cases().await.unwrap(), vec![case.id]);

    // A grant creates the order with its zones and version 1, links the petition, and
    // sets a timer for the new order.
    let home = LatLon::new(37.5, 127.0).unwrap();
    let order = Order {
        id: OrderId(0),
        case_id: case.id,
        kind: OrderKind::RestrainingOrder,
        valid_from: UnixMicros::from_secs(20),
        valid_to: Some(UnixMicros::from_secs(86_420)),
        no_approach_m: 100.0,
        warning_m: 500.0,
        disclosure_radius_m: 600.0,
        zones: vec![Zone {
            id: ZoneId(0),
            kind: ZoneKind::Home,
            label: "home".into(),
            shape: ZoneShape::Circle {
                center: home,
                radius_m: 150.0,
            },
        }],
    };
    let version = OrderVersionRecord {
        order_id: OrderId(0),
        version: 1,
        valid_from: order.valid_from,
        valid_to: order.valid_to,
        kind: order.kind,
        no_approach_m: 100.0,
        warning_m: 500.0,
        disclosure_radius_m: 600.0,
        no_contact_by_phone: true,
        electronic_monitoring: false,
        zones: vec![],
        reasons: "granted".into(),
        issued_at: UnixMicros::from_secs(20),
        issued_by: Some(9),
    };
    let out = store
        .apply_court_step(CourtStep {
            at: UnixMicros::from_secs(20),
            petition: Some((p.id, "in_force".into())),
            event: Some(event(20, "granted")),
            new_order: Some(order),
            version: Some(version),
            notices: vec![notice(case.id, "granted")],
            timers: vec![NewTimer {
                order_id: None,
                at: UnixMicros::from_secs(80_000),
                kind: "reminder".into(),
                recipient: Some("victim".into()),
                version: 1,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let oid = out.order_id.unwrap();
    assert_eq!(out.zones.len(), 1);
    assert_eq!(out.notices[0].order_id, Some(oid));
    let granted = store.petition(p.id).await.unwrap().unwrap();
    assert_eq!(
        (granted.state.as_str(), granted.order_id, granted.updated_at),
        ("in_force", Some(oid), UnixMicros::from_secs(20))
    );
    assert_eq!(
        store.petition_for_order(oid).await.unwrap(),
        Some(granted.clone())
    );
    assert_eq!(store.list_petitions().await.unwrap(), vec![granted]);
    let history = store.petition_events(p.id).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["filed", "granted"]
    );
    let versions = store.order_versions(oid).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        versions[0].zones, out.zones,
        "the version keeps the zones it ordered"
    );
    assert!(versions[0].no_contact_by_phone);
    assert_eq!(store.order_lapsed_at(oid).await.unwrap(), None);
    assert!(matches!(
        store.order_lapsed_at(OrderId(999)).await,
        Err(StoreError::NotFound(_))
    ));
    let due = store
        .due_court_timers(UnixMicros::from_secs(80_000))
        .await
        .unwrap();
    assert_eq!(
        due.iter()
            .map(|t| (
                t.order_id,
                t.kind.as_str(),
                t.recipient.as_deref(),
                t.version
            ))
            .collect::<Vec<_>>(),
        [(oid, "reminder", Some("victim"), 1)]
    );
    // Cancelling the version's reminders takes the timer off the due list.
    store
        .apply_court_step(CourtStep {
            at: UnixMicros::from_secs(30),
            order_id: Some(oid),
            cancel_reminders_of: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        store
            .due_court_timers(UnixMicros::from_secs(90_000))
            .await
            .unwrap()
            .is_empty()
    );
    // A step for a petition that does not exist writes nothing.
    assert!(matches!(
        store
            .apply_court_step(CourtStep {
                at: UnixMicros::from_secs(40),
                petition: Some((p.id + 100, "denied".into())),
                notices: vec![notice(case.id, "denied")],
                ..Default::default()
            })
            .await,
        Err(StoreError::NotFound(_))
    ));
    let notices = store.list_notices(10).await.unwrap();
    assert_eq!(
        notices.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>(),
        ["filed", "filed"]
    );
    assert_eq!(store.list_notices(1).await.unwrap(), notices[1..]);
    store.close();
}

/// An order with one pending lapse check at 9,000 s; returns the order and the timer's id.
async fn order_with_a_due_timer(store: &Store) -> (OrderId, i64) {
    let now = UnixMicros::from_secs(1_000);
    let (offender, _) = setup(store).await;
    let case = new_case(store, offender.id, "C", now).await;
    let o = store
        .create_order(
            Order {
                id: OrderId(0),
                case_id: case.id,
                kind: OrderKind::RestrainingOrder,
                valid_from: now,
                valid_to: Some(UnixMicros::from_secs(9_000)),
                no_approach_m: 100.0,
                warning_m: 500.0,
                disclosure_radius_m: 600.0,
                zones: vec![],
            },
            now,
        )
        .await
        .unwrap();
    store
        .apply_court_step(CourtStep {
            at: now,
            order_id: Some(o.id),
            timers: vec![NewTimer {
                order_id: None,
                at: UnixMicros::from_secs(9_000),
                kind: "lapse_check".into(),
                recipient: None,
                version: 1,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let due = store
        .due_court_timers(UnixMicros::from_secs(9_000))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    (o.id, due[0].id)
}

/// The step that handles timer `id`: the lapse, with its notice.
fn lapse_step(order: OrderId, timer: i64, case: CaseId) -> CourtStep {
    CourtStep {
        at: UnixMicros::from_secs(9_001),
        order_id: Some(order),
        timers_done: vec![timer],
        lapsed: true,
        notices: vec![NewNotice {
            kind: "lapsed".into(),
            ..notice(case, &format!("timer-{timer}"))
        }],
        ..Default::default()
    }
}

on_both_backends!(
    a_timer_handled_already_refuses_its_step_and_writes_nothing,
    flavor = "current_thread"
);
async fn a_timer_handled_already_refuses_its_step_and_writes_nothing(place: Place) {
    let store = place.open();
    let (order, timer) = order_with_a_due_timer(&store).await;
    let case = store.list_orders().await.unwrap()[0].case_id;
    let out = store
        .apply_court_step(lapse_step(order, timer, case))
        .await
        .unwrap();
    assert_eq!(out.notices.len(), 1);
    // The same timer again (another node, or a run that overlapped): refused as a whole.
    let again = CourtStep {
        notices: vec![notice(case, "other")],
        ..lapse_step(order, timer, case)
    };
    assert!(matches!(
        store.apply_court_step(again).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_notices(10).await.unwrap().len(), 1);
    assert!(matches!(
        store
            .apply_court_step(lapse_step(order, timer + 100, case))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.close();
}

fn purge_entry() -> AuditEntry {
    AuditEntry {
        actor: Actor {
            kind: ActorKind::System,
            id: 0,
            role: "retention".into(),
        },
        action: AuditAction::Purge,
        subject: Subject::default(),
        purpose: None,
        outcome: Outcome::Allowed,
        details: "test".into(),
    }
}

/// The fixes deleted, as each purge record says.
fn deleted_in(records: &[AuditRecord]) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r.entry.action == AuditAction::Purge)
        .map(|r| {
            r.entry
                .details
                .rsplit("fixes deleted: ")
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

on_both_backends!(
    a_purge_deletes_its_windows_and_records_what_it_deleted,
    flavor = "current_thread"
);
async fn a_purge_deletes_its_windows_and_records_what_it_deleted(place: Place) {
    let store = place.open();
    let (_, d) = setup(&store).await;
    store
        .insert_fixes((1..=10).map(|t| fix(d.id, t * 100)).collect())
        .await
        .unwrap();
    let signer = AuditSigner {
        key: key(),
        every: 1,
        head_file: None,
    };
    // [0, 500) and [800, 900): fixes at 100..400 and 800.
    let n = store
        .purge_fixes(
            vec![(
                d.id,
                vec![
                    (UnixMicros(0), UnixMicros::from_secs(500)),
                    (UnixMicros::from_secs(800), UnixMicros::from_secs(900)),
                ],
            )],
            purge_entry(),
            UnixMicros::from_secs(2_000),
            Some(signer),
        )
        .await
        .unwrap();
    assert_eq!(n, 5);
    let left = store
        .track(
            &crate::Authorized::system("test"),
            d.id,
            UnixMicros(0),
            UnixMicros::from_secs(5_000),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        left.iter()
            .map(|f| f.device_time.0 / 1_000_000)
            .collect::<Vec<_>>(),
        [500, 600, 700, 900, 1_000]
    );
    let records = all(&store).await;
    assert_eq!(deleted_in(&records), [5]);
    assert!(records[0].entry.details.starts_with("test; "));
    let (cps, _) = store.audit_checkpoints().await.unwrap();
    assert_eq!(cps.len(), 1, "signed in the purge's transaction");
    assert!(audit::verify(&records, &cps, &key().verifying_key()).ok());
    store.close();
}

// ---- several nodes on one PostgreSQL ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_handling_one_due_timer_fire_it_once() {
    let Some(place) = Place::postgres("two_nodes_handling_one_due_timer_fire_it_once") else {
        return;
    };
    let (a, b) = (place.open(), place.open());
    let (order, timer) = order_with_a_due_timer(&a).await;
    let case = a.list_orders().await.unwrap()[0].case_id;
    // Both nodes saw the timer due and handle it at once.
    assert_eq!(
        b.due_court_timers(UnixMicros::from_secs(9_000))
            .await
            .unwrap()[0]
            .id,
        timer
    );
    let mut tasks = Vec::new();
    for (i, s) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let step = CourtStep {
                notices: vec![notice(case, &format!("node-{i}"))],
                ..lapse_step(order, timer, case)
            };
            s.apply_court_step(step).await
        }));
    }
    let mut fired = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(out) => {
                fired += 1;
                assert_eq!(out.notices.len(), 1);
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a claim failed otherwise: {e}"),
        }
    }
    assert_eq!(fired, 1, "the timer fires once across the nodes");
    assert_eq!(
        b.list_notices(10).await.unwrap().len(),
        1,
        "one node's notice"
    );
    assert!(
        a.due_court_timers(UnixMicros::from_secs(9_999))
            .await
            .unwrap()
            .is_empty()
    );
    a.close();
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_purging_at_once_neither_fail_nor_claim_the_same_rows() {
    let Some(place) =
        Place::postgres("two_nodes_purging_at_once_neither_fail_nor_claim_the_same_rows")
    else {
        return;
    };
    let (a, b) = (place.open(), place.open());
    let (_, d) = setup(&a).await;
    let mut expected = 0;
    for round in 0..8i64 {
        // 20 fixes in this round's window [round * 1000, round * 1000 + 200) s.
        let base = round * 1_000;
        a.insert_fixes((0..20).map(|i| fix(d.id, base + i * 10)).collect())
            .await
            .unwrap();
        expected += 20;
        let window = vec![(
            d.id,
            vec![(
                UnixMicros::from_secs(base),
                UnixMicros::from_secs(base + 200),
            )],
        )];
        // One node purges right behind a long access-log append in the same group (it holds
        // the chain), the other purges alone at the same moment (it would hold the rows).
        let (busy, alone) = if round % 2 == 0 {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        let w = window.clone();
        let first = tokio::spawn(async move {
            let log = busy.append_audit(
                (0..200).map(entry).collect(),
                UnixMicros::from_secs(1),
                None,
            );
            let purge = busy.purge_fixes(w, purge_entry(), UnixMicros::from_secs(9_000), None);
            let (log, purge) = tokio::join!(log, purge);
            log.unwrap();
            purge
        });
        let second = tokio::spawn(async move {
            alone
                .purge_fixes(window, purge_entry(), UnixMicros::from_secs(9_000), None)
                .await
        });
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(first.unwrap() + second.unwrap(), 20, "round {round}");
    }
    let records = all(&a).await;
    let claimed = deleted_in(&records);
    assert_eq!(claimed.len(), 16, "every purge recorded");
    assert_eq!(
        claimed.iter().sum::<u64>(),
        expected,
        "no deletion claimed twice"
    );
    assert_eq!(a.count_fixes().await.unwrap(), 0);
    assert!(audit::verify(&records, &[], &key().verifying_key()).ok());
    a.close();
    b.close();
}
