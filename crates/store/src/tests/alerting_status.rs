//! Conformance tests of part B's areas: device health (`status.rs`), network scans
//! (`scans.rs`), the outbox and escalation (`outbox.rs`), dispatch tasks, notification
//! settings and push subscriptions (`alerting.rs`); each runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests state their expectations with unwrap.

use crate::conformance::{Place, on_both_backends};
use crate::*;
use audit::{Actor, ActorKind, AuditAction, AuditEntry, Outcome, Subject};
use domain::*;

on_both_backends!(
    reports_merge_and_keep_the_last_known_values,
    flavor = "current_thread"
);
async fn reports_merge_and_keep_the_last_known_values(place: Place) {
    let store = place.open();
    let now = UnixMicros::from_secs(10);
    let d = store
        .create_device(
            DeviceKind::AnkleMonitor,
            Protocol::Gt06,
            "1".into(),
            None,
            None,
            now,
        )
        .await
        .unwrap();
    let first = DeviceHealth {
        reported_at: now,
        battery_percent: Some(80.0),
        signal: Some(20.0),
        ..Default::default()
    };
    store.record_device_health(d.id, first).await.unwrap();
    let later = DeviceHealth {
        reported_at: UnixMicros::from_secs(20),
        battery_percent: Some(60.0),
        charging: Some(false),
        ..Default::default()
    };
    store.record_device_health(d.id, later).await.unwrap();
    let all = store
        .device_health(&crate::Authorized::system("test"))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let h = all[0].1;
    assert_eq!(h.battery_percent, Some(60.0));
    assert_eq!(
        h.signal,
        Some(20.0),
        "a report without signal keeps the last known one"
    );
    assert_eq!(h.charging, Some(false));
    assert_eq!(h.reported_at, UnixMicros::from_secs(20));
    // The history keeps both reports as sent: the second one has no signal.
    let hist = store
        .device_health_history(
            &crate::Authorized::system("test"),
            d.id,
            UnixMicros(0),
            UnixMicros::from_secs(30),
            100,
        )
        .await
        .unwrap();
    assert_eq!(hist, vec![first, later]);
    let window = store
        .device_health_history(
            &crate::Authorized::system("test"),
            d.id,
            UnixMicros::from_secs(15),
            UnixMicros::from_secs(30),
            100,
        )
        .await
        .unwrap();
    assert_eq!(window, vec![later], "[from, to) selects by receipt time");
}

on_both_backends!(
    a_frames_health_is_stored_with_its_fix_in_one_write,
    flavor = "current_thread"
);
/// A tracker frame's fix and its status are one write: both are there after it, and a write
/// that fails (an unknown device) leaves neither.
async fn a_frames_health_is_stored_with_its_fix_in_one_write(place: Place) {
    let store = place.open();
    let d = store
        .create_device(
            DeviceKind::AnkleMonitor,
            Protocol::Teltonika,
            "1".into(),
            None,
            None,
            UnixMicros::from_secs(1),
        )
        .await
        .unwrap()
        .id;
    let health = DeviceHealth {
        reported_at: UnixMicros::from_secs(101),
        battery_percent: Some(42.0),
        satellites: Some(9),
        ..Default::default()
    };
    let (outcomes, _) = store
        .insert_reports_with_health(vec![fix(d, 100)], Vec::new(), Vec::new(), vec![(d, health)])
        .await
        .unwrap();
    assert!(
        matches!(outcomes[..], [FixOutcome::Stored(_)]),
        "{outcomes:?}"
    );
    let system = crate::Authorized::system("test");
    let window = (UnixMicros(0), UnixMicros(i64::MAX));
    let hist = store
        .device_health_history(&system, d, window.0, window.1, 10)
        .await
        .unwrap();
    assert_eq!(hist, vec![health]);
    let latest = store.device_health(&system).await.unwrap();
    assert_eq!(latest, vec![(d, health)]);
    // A frame whose fix cannot be stored takes its health report down with it.
    let unknown = DeviceId(d.0 + 1000);
    let r = store
        .insert_reports_with_health(
            vec![fix(unknown, 200)],
            Vec::new(),
            Vec::new(),
            vec![(
                d,
                DeviceHealth {
                    reported_at: UnixMicros::from_secs(201),
                    ..health
                },
            )],
        )
        .await;
    assert!(matches!(r, Err(StoreError::InvalidReference(_))), "{r:?}");
    let hist = store
        .device_health_history(&system, d, window.0, window.1, 10)
        .await
        .unwrap();
    assert_eq!(
        hist.len(),
        1,
        "the failed frame's health was not kept: {hist:?}"
    );
}

fn fix(device: DeviceId, secs: i64) -> Fix {
    Fix {
        id: None,
        device_id: device,
        device_time: UnixMicros::from_secs(secs),
        received_time: UnixMicros::from_secs(secs + 1),
        position: LatLon::new(37.5, 127.0).unwrap(),
        accuracy_m: None,
        speed_mps: None,
        course_deg: None,
        altitude_m: None,
        source: FixSource::Gnss,
        flags: FixFlags::default(),
        seq: None,
    }
}

fn scan(device: DeviceId, secs: i64) -> NetworkScan {
    NetworkScan {
        id: None,
        device_id: device,
        scan_time: UnixMicros::from_secs(secs),
        received_time: UnixMicros::from_secs(secs + 1),
        fix_id: None,
        cells: vec![CellTower {
            mcc: 450,
            mnc: 5,
            lac: 8_000,
            cell_id: 123_456_789,
            rssi: Some(-71),
        }],
        wifi: vec![WifiAccessPoint {
            mac: "aa:bb:cc:dd:ee:ff".into(),
            rssi: None,
        }],
    }
}

on_both_backends!(
    scans_are_stored_with_their_fix_once_and_purged_with_it,
    flavor = "current_thread"
);
async fn scans_are_stored_with_their_fix_once_and_purged_with_it(place: Place) {
    let store = place.open();
    let d = store
        .create_device(
            DeviceKind::AnkleMonitor,
            Protocol::Gt06,
            "1".into(),
            None,
            None,
            UnixMicros::from_secs(1),
        )
        .await
        .unwrap()
        .id;
    // A frame with a fix and its cell, resent once; and a cell-only report.
    for _ in 0..2 {
        store
            .insert_reports_with_scans(
                vec![fix(d, 100)],
                Vec::new(),
                vec![NewScan {
                    scan: scan(d, 100),
                    fix: Some(0),
                }],
            )
            .await
            .unwrap();
    }
    store
        .insert_reports_with_scans(
            Vec::new(),
            Vec::new(),
            vec![NewScan {
                scan: scan(d, 200),
                fix: None,
            }],
        )
        .await
        .unwrap();
    let all = store
        .network_scans(
            &crate::Authorized::system("test"),
            d,
            UnixMicros(0),
            UnixMicros::from_secs(1_000),
            10,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "the resent frame's scan is stored once");
    let fix_id = store
        .track(
            &crate::Authorized::system("test"),
            d,
            UnixMicros(0),
            UnixMicros::from_secs(1_000),
            10,
        )
        .await
        .unwrap()[0]
        .id
        .unwrap();
    assert_eq!(all[0].fix_id, Some(fix_id));
    assert_eq!(all[0].cells, scan(d, 100).cells);
    assert_eq!(all[0].wifi, scan(d, 100).wifi);
    assert_eq!(all[1].fix_id, None);
    let with_fix = store
        .network_scans_of_fixes(&crate::Authorized::system("test"), vec![fix_id])
        .await
        .unwrap();
    assert_eq!(with_fix.len(), 1);
    assert_eq!(with_fix[0].scan_time, UnixMicros::from_secs(100));

    store
        .record_device_health(
            d,
            DeviceHealth {
                reported_at: UnixMicros::from_secs(150),
                battery_percent: Some(40.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Retention: purging [0, 160) takes the fix, its scan and the health report; the
    // later cell-only scan stays.
    let entry = AuditEntry {
        actor: Actor {
            kind: ActorKind::System,
            id: 0,
            role: "system".into(),
        },
        action: AuditAction::Purge,
        subject: Subject::default(),
        purpose: None,
        outcome: Outcome::Allowed,
        details: "test".into(),
    };
    let n = store
        .purge_fixes(
            vec![(d, vec![(UnixMicros(0), UnixMicros::from_secs(160))])],
            entry,
            UnixMicros::from_secs(300),
            None,
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let left = store
        .network_scans(
            &crate::Authorized::system("test"),
            d,
            UnixMicros(0),
            UnixMicros::from_secs(1_000),
            10,
        )
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].scan_time, UnixMicros::from_secs(200));
    let health = store
        .device_health_history(
            &crate::Authorized::system("test"),
            d,
            UnixMicros(0),
            UnixMicros::from_secs(1_000),
            10,
        )
        .await
        .unwrap();
    assert!(health.is_empty());
}

on_both_backends!(device_models_are_set_and_cleared, flavor = "current_thread");
async fn device_models_are_set_and_cleared(place: Place) {
    let store = place.open();
    let now = UnixMicros::from_secs(1);
    let mut ids = Vec::new();
    for hw in ["a", "b"] {
        let d = store
            .create_device(
                DeviceKind::AnkleMonitor,
                Protocol::Gt06,
                hw.into(),
                None,
                None,
                now,
            )
            .await
            .unwrap();
        ids.push(d.id);
    }
    assert_eq!(store.device_model(ids[0]).await.unwrap(), None);
    store
        .set_device_model(ids[0], Some("LW4G-4B".into()))
        .await
        .unwrap();
    store
        .set_device_model(ids[1], Some("NT20".into()))
        .await
        .unwrap();
    assert_eq!(
        store.device_model(ids[0]).await.unwrap().as_deref(),
        Some("LW4G-4B")
    );
    store.set_device_model(ids[1], None).await.unwrap();
    assert_eq!(
        store.device_models().await.unwrap(),
        vec![(ids[0], "LW4G-4B".to_string())]
    );
    assert_eq!(store.device_model(DeviceId(9_999)).await.unwrap(), None);
}

on_both_backends!(
    a_condition_that_returns_within_the_window_reopens_its_alert,
    flavor = "current_thread"
);
async fn a_condition_that_returns_within_the_window_reopens_its_alert(place: Place) {
    let store = place.open();
    let change = |kind, at_s: i64| AlertChange {
        order_id: None,
        case_id: None,
        rule: AlertRule::ZoneViolation,
        protected: Some(PersonId(2)),
        zone: None,
        kind,
        severity: Severity::Critical,
        at: UnixMicros::from_secs(at_s),
        distance_m: None,
        evidence: Vec::new(),
        summary: format!("at {at_s}"),
        device: None,
        details: AlertDetails::default(),
    };
    let notify = |window: Option<i64>| AlertNotify {
        reopen_within_s: window,
        push: true,
        ..Default::default()
    };
    let apply = |kind, at_s, window| {
        let store = store.clone();
        async move {
            store
                .apply_alert_change_notifying(change(kind, at_s), notify(window))
                .await
                .unwrap()
        }
    };
    let (a, opened) = apply(AlertChangeKind::Raised, 1_000, Some(600)).await;
    assert_eq!(opened, Opened::New);
    store
        .set_alert_state(
            a.alert.id,
            AlertState::Acknowledged,
            UnixMicros::from_secs(1_010),
        )
        .await
        .unwrap();
    apply(AlertChangeKind::Cleared, 1_100, Some(600)).await;
    store
        .set_alert_state(
            a.alert.id,
            AlertState::Resolved,
            UnixMicros::from_secs(1_200),
        )
        .await
        .unwrap();
    // Back 500 s after it cleared (window 600 s): the same alert, raised again, logged.
    let (b, opened) = apply(AlertChangeKind::Raised, 1_600, Some(600)).await;
    assert_eq!((b.alert.id, opened), (a.alert.id, Opened::Reopened));
    assert_eq!(b.alert.state, AlertState::Raised);
    assert!(b.condition_active);
    assert_eq!(b.cleared_at, None);
    let log = store
        .alert_actions(&crate::Authorized::system("test"), a.alert.id)
        .await
        .unwrap();
    let last = log.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor_role.as_str(), last.at),
        ("reopened", "system", UnixMicros::from_secs(1_600))
    );
    // Its escalation deadline restarts from the reopening, not from the first raise.
    let policy = EscalationPolicy {
        critical_s: Some(60),
        ..Default::default()
    };
    assert!(
        store
            .escalate_due_alerts(policy, Vec::new(), UnixMicros::from_secs(1_650))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .escalate_due_alerts(policy, Vec::new(), UnixMicros::from_secs(1_661))
            .await
            .unwrap()
            .len(),
        1
    );
    // Cleared again and back 601 s later: outside the window, a new alert.
    apply(AlertChangeKind::Cleared, 2_000, Some(600)).await;
    let (c, opened) = apply(AlertChangeKind::Raised, 2_601, Some(600)).await;
    assert_eq!(opened, Opened::New);
    assert_ne!(c.alert.id, a.alert.id);
    // Without a window nothing reopens.
    apply(AlertChangeKind::Cleared, 2_700, None).await;
    let (d, opened) = apply(AlertChangeKind::Raised, 2_701, None).await;
    assert_eq!(opened, Opened::New);
    assert_ne!(d.alert.id, c.alert.id);
}

fn raise(at_s: i64, protected: i64) -> AlertChange {
    AlertChange {
        order_id: None,
        case_id: None,
        rule: AlertRule::ZoneViolation,
        protected: Some(PersonId(protected)),
        zone: None,
        kind: AlertChangeKind::Raised,
        severity: Severity::Critical,
        at: UnixMicros::from_secs(at_s),
        distance_m: None,
        evidence: Vec::new(),
        summary: format!("at {at_s}"),
        device: None,
        details: AlertDetails::default(),
    }
}

fn webhooks(urls: &[&str]) -> AlertNotify {
    AlertNotify {
        raised: urls.iter().map(|u| u.to_string()).collect(),
        ..Default::default()
    }
}

on_both_backends!(
    webhook_deliveries_are_queued_once_retried_and_given_up,
    flavor = "current_thread"
);
async fn webhook_deliveries_are_queued_once_retried_and_given_up(place: Place) {
    let store = place.open();
    let t = UnixMicros::from_secs;
    let (a, opened) = store
        .apply_alert_change_notifying(raise(1_000, 2), webhooks(&["https://a", "https://b"]))
        .await
        .unwrap();
    assert_eq!(opened, Opened::New);
    // The same condition again updates the alert and queues nothing.
    let mut again = raise(1_005, 2);
    again.kind = AlertChangeKind::Updated;
    let (_, opened) = store
        .apply_alert_change_notifying(again, webhooks(&["https://a", "https://b"]))
        .await
        .unwrap();
    assert_eq!(opened, Opened::No);
    assert_eq!(store.outbox_pending().await.unwrap(), 2);
    assert!(
        store.due_outbox(t(999), 10).await.unwrap().is_empty(),
        "not due yet"
    );
    let due = store.due_outbox(t(1_000), 10).await.unwrap();
    let key = format!("alert-{}-alert.raised", a.alert.id);
    assert_eq!(
        due.iter()
            .map(|i| (
                i.endpoint.as_str(),
                i.event.as_str(),
                i.idempotency_key.as_str(),
                i.attempts,
                i.task_id,
                i.alert_id
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                "https://a",
                "alert.raised",
                key.as_str(),
                0,
                None,
                a.alert.id
            ),
            (
                "https://b",
                "alert.raised",
                key.as_str(),
                0,
                None,
                a.alert.id
            ),
        ]
    );
    assert!(due[0].id < due[1].id, "oldest first");
    store
        .outbox_failed(due[0].id, "503".into(), Some(t(1_060)), t(1_001))
        .await
        .unwrap();
    store.outbox_delivered(due[1].id, t(1_001)).await.unwrap();
    assert_eq!(store.outbox_pending().await.unwrap(), 1);
    assert!(
        store.due_outbox(t(1_030), 10).await.unwrap().is_empty(),
        "backing off"
    );
    let retry = store.due_outbox(t(1_060), 10).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!((retry[0].id, retry[0].attempts), (due[0].id, 1));
    store
        .outbox_failed(retry[0].id, "gone".into(), None, t(1_061))
        .await
        .unwrap();
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
    assert!(
        store.due_outbox(t(9_999), 10).await.unwrap().is_empty(),
        "given up"
    );

    // Escalation: past the critical deadline, once, with its own delivery.
    let policy = EscalationPolicy {
        critical_s: Some(60),
        ..Default::default()
    };
    let hooks = vec!["https://e".to_string()];
    assert!(
        store
            .escalate_due_alerts(policy, hooks.clone(), t(1_059))
            .await
            .unwrap()
            .is_empty()
    );
    let up = store
        .escalate_due_alerts(policy, hooks.clone(), t(1_061))
        .await
        .unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!((up[0].alert.id, up[0].escalation_level), (a.alert.id, 1));
    assert!(
        store
            .escalate_due_alerts(policy, hooks.clone(), t(1_100))
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.due_outbox(t(1_061), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].event.as_str(), due[0].idempotency_key.clone()),
        (
            "alert.escalated",
            format!("alert-{}-alert.escalated", a.alert.id)
        )
    );
    // An acknowledged alert does not escalate.
    let (b, _) = store
        .apply_alert_change_notifying(raise(2_000, 3), AlertNotify::default())
        .await
        .unwrap();
    store
        .set_alert_state(b.alert.id, AlertState::Acknowledged, t(2_001))
        .await
        .unwrap();
    assert!(
        store
            .escalate_due_alerts(policy, hooks, t(3_000))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Several nodes on one PostgreSQL: each due delivery goes to exactly one of them, a claim
/// whose node went away is taken again after its lease, and an alert escalates once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_claim_each_delivery_once_and_escalate_once() {
    let Some(place) = Place::postgres("two_nodes_claim_each_delivery_once_and_escalate_once")
    else {
        return;
    };
    let (one, two) = (place.open(), place.open());
    let t = UnixMicros::from_secs;
    const ALERTS: i64 = 30;
    for i in 0..ALERTS {
        one.apply_alert_change_notifying(
            raise(1_000, 100 + i),
            webhooks(&["https://a", "https://b"]),
        )
        .await
        .unwrap();
    }
    let drain = |store: Store| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let due = store.due_outbox(t(1_000), 7).await.unwrap();
                if due.is_empty() {
                    return got;
                }
                for item in due {
                    store.outbox_delivered(item.id, t(1_001)).await.unwrap();
                    got.push(item.id);
                }
            }
        })
    };
    let (a, b) = (drain(one.clone()), drain(two.clone()));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all: Vec<i64> = a.iter().chain(b.iter()).copied().collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(
        before,
        all.len(),
        "a delivery was claimed twice: {a:?} {b:?}"
    );
    assert_eq!(all.len() as i64, 2 * ALERTS);
    assert_eq!(one.outbox_pending().await.unwrap(), 0);

    // A node claims and dies: the other gets nothing while the lease holds, then the row.
    one.apply_alert_change_notifying(raise(5_000, 999), webhooks(&["https://c"]))
        .await
        .unwrap();
    let claimed = one.due_outbox(t(5_000), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(two.due_outbox(t(5_001), 10).await.unwrap().is_empty());
    let lease = crate::postgres::outbox::OUTBOX_LEASE_S;
    let again = two.due_outbox(t(5_000 + lease), 10).await.unwrap();
    assert_eq!(
        again.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![claimed[0].id]
    );

    // Both escalate together: every alert once, one `alert.escalated` delivery each.
    let policy = EscalationPolicy {
        critical_s: Some(60),
        ..Default::default()
    };
    let esc = |store: Store| {
        tokio::spawn(async move {
            store
                .escalate_due_alerts(policy, vec!["https://e".into()], t(10_000))
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.alert.id)
                .collect::<Vec<_>>()
        })
    };
    let (x, y) = (esc(one.clone()), esc(two.clone()));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    let mut ids: Vec<AlertId> = x.iter().chain(y.iter()).copied().collect();
    ids.sort_unstable_by_key(|i| i.0);
    let n = ids.len();
    ids.dedup();
    assert_eq!(n, ids.len(), "an alert escalated twice: {x:?} {y:?}");
    assert_eq!(n as i64, ALERTS + 1);
    let escalated = one.due_outbox(t(10_000), 1_000).await.unwrap();
    assert_eq!(
        escalated
            .iter()
            .filter(|i| i.event == "alert.escalated")
            .count() as i64,
        ALERTS + 1
    );
    one.close();
    two.close();
}

on_both_backends!(
    a_dispatch_is_one_transaction_and_push_reaches_the_case,
    flavor = "current_thread"
);
async fn a_dispatch_is_one_transaction_and_push_reaches_the_case(place: Place) {
    use access::Role;
    let store = place.open();
    let t = UnixMicros::from_secs;
    let offender = store
        .create_person(PersonRole::Offender, "O".into(), t(1))
        .await
        .unwrap();
    let victim = store
        .create_person(PersonRole::Protected, "V".into(), t(1))
        .await
        .unwrap();
    let case = store
        .create_case("C-1".into(), offender.id, vec![victim.id], t(1))
        .await
        .unwrap();
    let account = |name: &str, role: Role, person: Option<PersonId>| NewAccount {
        username: name.into(),
        role,
        person,
        password_phc: "x".into(),
        totp_secret: None,
    };
    let officer = store
        .create_account(account("officer", Role::MonitoringOfficer, None), t(1))
        .await
        .unwrap();
    let police = store
        .create_account(account("police", Role::Police, None), t(1))
        .await
        .unwrap();
    let victim_acc = store
        .create_account(account("victim", Role::Victim, Some(victim.id)), t(1))
        .await
        .unwrap();
    store.assign_case(officer.id, case.id, t(1)).await.unwrap();

    // Settings and subscriptions.
    assert!(
        !store.silent(victim_acc.id).await.unwrap(),
        "not silent by default"
    );
    store.set_silent(victim_acc.id, true, t(2)).await.unwrap();
    assert!(store.silent(victim_acc.id).await.unwrap());
    let err = store
        .set_silent(access::AccountId(9_999), true, t(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidReference(_)), "{err}");
    let first = store
        .add_push_subscription(
            officer.id,
            "https://push/1".into(),
            "k".into(),
            "a".into(),
            t(2),
        )
        .await
        .unwrap();
    // The same endpoint again (another sign-in in that browser): one row, new owner and keys.
    let sub = store
        .add_push_subscription(
            victim_acc.id,
            "https://push/1".into(),
            "k2".into(),
            "a2".into(),
            t(3),
        )
        .await
        .unwrap();
    assert_eq!(sub.id, first.id);
    assert_eq!(
        store.push_subscription(sub.id).await.unwrap(),
        Some(sub.clone())
    );
    let officer_sub = store
        .add_push_subscription(
            officer.id,
            "https://push/2".into(),
            "k".into(),
            "a".into(),
            t(3),
        )
        .await
        .unwrap();
    assert_eq!(store.push_subscription(9_999).await.unwrap(), None);

    // An alert of the case reaches the victim's and the assigned officer's subscriptions.
    let mut change = raise(10, victim.id.0);
    change.case_id = Some(case.id);
    let notify = AlertNotify {
        push: true,
        ..Default::default()
    };
    let (alert, _) = store
        .apply_alert_change_notifying(change, notify)
        .await
        .unwrap();
    let due = store.due_outbox(t(10), 10).await.unwrap();
    let mut endpoints: Vec<&str> = due.iter().map(|i| i.endpoint.as_str()).collect();
    endpoints.sort_unstable();
    let (v, o) = (
        format!("push:{}", sub.id),
        format!("push:{}", officer_sub.id),
    );
    let mut want = vec![v.as_str(), o.as_str()];
    want.sort_unstable();
    assert_eq!(endpoints, want);

    // Dispatch: the officer's task, the police grant and tasks, one action row each way.
    let d = NewDispatch {
        alert: alert.alert.id,
        case: case.id,
        at: t(20),
        officer: officer.id,
        offender: offender.id,
        police: Some((police.id, t(3_600))),
        protected: vec![victim.id],
        actor_role: "monitoring_officer".into(),
        police_webhooks: vec!["https://police".into()],
    };
    let (tasks, after) = store.dispatch(d.clone()).await.unwrap();
    assert_eq!(after.alert.state, AlertState::Dispatched);
    assert_eq!(
        tasks
            .iter()
            .map(|t| (t.kind.as_str(), t.assignee, t.target, t.state.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (TASK_OFFICER_TO_OFFENDER, officer.id, offender.id, "open"),
            (TASK_POLICE_TO_VICTIM, police.id, victim.id, "open"),
        ]
    );
    let (again, _) = store.dispatch(d.clone()).await.unwrap();
    assert_eq!(
        again.iter().map(|t| t.id).collect::<Vec<_>>(),
        tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        "a second dispatch reuses the open tasks"
    );
    let police_hooks: Vec<_> = store
        .due_outbox(t(20), 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.event == "dispatch.police")
        .collect();
    assert_eq!(police_hooks.len(), 1, "one police delivery per task");
    assert_eq!(police_hooks[0].task_id, Some(tasks[1].id));
    let actions: Vec<String> = store
        .alert_actions(&crate::Authorized::system("test"), alert.alert.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.as_str() == "police_dispatched_to_victim")
            .count(),
        2
    );
    assert_eq!(store.dispatches(police.id).await.unwrap().len(), 1);
    // Not a police account: refused, nothing of that dispatch stored.
    let err = store
        .dispatch(NewDispatch {
            police: Some((victim_acc.id, t(3_600))),
            ..d
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidReference(_)), "{err}");
    assert_eq!(store.tasks_of(victim_acc.id).await.unwrap(), Vec::new());

    // Tasks.
    assert_eq!(
        store.tasks_of(police.id).await.unwrap(),
        vec![tasks[1].clone()]
    );
    let moved = store
        .set_task_state(tasks[1].id, "en_route".into(), t(30))
        .await
        .unwrap();
    assert_eq!(
        (moved.state.as_str(), moved.updated_at),
        ("en_route", t(30))
    );
    assert_eq!(store.task(tasks[1].id).await.unwrap(), moved);
    let err = store.task(9_999).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let err = store
        .set_task_state(9_999, "done".into(), t(30))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    // Removing a subscription gives up what is still queued for it; only its owner may.
    assert!(
        !store
            .remove_push_subscription(Some(officer.id), "https://push/1".into(), t(40))
            .await
            .unwrap()
    );
    let pending = store.outbox_pending().await.unwrap();
    assert!(
        store
            .remove_push_subscription(Some(victim_acc.id), "https://push/1".into(), t(40))
            .await
            .unwrap()
    );
    assert_eq!(store.outbox_pending().await.unwrap(), pending - 1);
    assert_eq!(store.push_subscription(sub.id).await.unwrap(), None);
    assert!(
        !store
            .remove_push_subscription(None, "https://push/1".into(), t(41))
            .await
            .unwrap()
    );
}

on_both_backends!(
    a_numbered_batch_is_stored_in_order_and_its_resends_recognised,
    flavor = "current_thread"
);
async fn a_numbered_batch_is_stored_in_order_and_its_resends_recognised(place: Place) {
    let store = place.open();
    let now = UnixMicros::from_secs(1);
    let d = store
        .create_device(
            DeviceKind::AnkleMonitor,
            Protocol::Native,
            "n".into(),
            None,
            None,
            now,
        )
        .await
        .unwrap()
        .id;
    let numbered = |secs: i64, seq: i64| Fix {
        seq: Some(seq),
        accuracy_m: Some(5.0),
        ..fix(d, secs)
    };
    let first = store
        .insert_fixes(vec![numbered(10, 1), numbered(11, 2)])
        .await
        .unwrap();
    let ids: Vec<FixId> = first.iter().map(|o| o.id()).collect();
    assert!(matches!(
        first[..],
        [FixOutcome::Stored(_), FixOutcome::Stored(_)]
    ));
    assert!(ids[0].0 < ids[1].0, "ids in the call's order");
    // A resend of 2, a new 3, 3 again within the call, and a new 4.
    let second = store
        .insert_fixes(vec![
            numbered(11, 2),
            numbered(12, 3),
            numbered(12, 3),
            numbered(13, 4),
        ])
        .await
        .unwrap();
    assert_eq!(second[0], FixOutcome::Duplicate(ids[1]));
    let FixOutcome::Stored(three) = second[1] else {
        panic!("{second:?}")
    };
    assert_eq!(second[2], FixOutcome::Duplicate(three));
    let FixOutcome::Stored(four) = second[3] else {
        panic!("{second:?}")
    };
    assert!(three.0 < four.0);
    let track = store
        .track(
            &crate::Authorized::system("test"),
            d,
            UnixMicros(0),
            UnixMicros::from_secs(100),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        track
            .iter()
            .map(|f| (f.seq, f.accuracy_m))
            .collect::<Vec<_>>(),
        vec![
            (Some(1), Some(5.0)),
            (Some(2), Some(5.0)),
            (Some(3), Some(5.0)),
            (Some(4), Some(5.0))
        ]
    );
    // A numbered batch with an unknown device stores nothing.
    let err = store
        .insert_fixes(vec![
            numbered(20, 5),
            Fix {
                seq: Some(1),
                ..fix(DeviceId(9_999), 20)
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidReference(_)), "{err}");
    assert_eq!(store.count_fixes().await.unwrap(), 4);
}

on_both_backends!(
    an_alert_write_with_an_outdated_fencing_token_is_refused,
    flavor = "current_thread"
);
async fn an_alert_write_with_an_outdated_fencing_token_is_refused(place: Place) {
    let store = place.open();
    let change = |protected: i64, at_s: i64| AlertChange {
        order_id: None,
        case_id: None,
        rule: AlertRule::ZoneViolation,
        protected: Some(PersonId(protected)),
        zone: None,
        kind: AlertChangeKind::Raised,
        severity: Severity::Critical,
        at: UnixMicros::from_secs(at_s),
        distance_m: None,
        evidence: Vec::new(),
        summary: format!("person {protected} at {at_s}"),
        device: None,
        details: AlertDetails::default(),
    };
    let fence = |partition: u32, token: u64| AlertNotify {
        raised: vec!["http://127.0.0.1:9/hook".into()],
        fence: Some(Fence { partition, token }),
        ..Default::default()
    };
    let stored = |store: Store| async move {
        store
            .alerts_raised_between(UnixMicros(0), UnixMicros::from_secs(10_000))
            .await
            .unwrap()
            .len()
    };
    // The first owner of partition 3 (token 5) writes.
    store
        .apply_alert_change_notifying(change(1, 100), fence(3, 5))
        .await
        .unwrap();
    // A successor takes partition 3 over with token 7 and claims it before writing.
    assert_eq!(
        store
            .claim_fences(vec![Fence {
                partition: 3,
                token: 7
            }])
            .await
            .unwrap(),
        vec![true]
    );
    // The deposed owner's delayed write is refused, and nothing of it is stored: no alert,
    // no webhook delivery.
    let err = store
        .apply_alert_change_notifying(change(2, 110), fence(3, 5))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced(_)), "{err}");
    assert_eq!(stored(store.clone()).await, 1);
    // The successor writes with its own token; a later one (9) outdates it in turn.
    store
        .apply_alert_change_notifying(change(3, 120), fence(3, 7))
        .await
        .unwrap();
    store
        .apply_alert_change_notifying(change(4, 130), fence(3, 9))
        .await
        .unwrap();
    assert!(matches!(
        store
            .apply_alert_change_notifying(change(5, 140), fence(3, 7))
            .await,
        Err(StoreError::Fenced(_))
    ));
    // Partitions are fenced apart; a write without a fence (a lone server, a system alert)
    // is not fenced at all.
    store
        .apply_alert_change_notifying(change(6, 150), fence(4, 1))
        .await
        .unwrap();
    store
        .apply_alert_change_notifying(change(7, 160), AlertNotify::default())
        .await
        .unwrap();
    assert_eq!(stored(store.clone()).await, 5);
    // Claims answer per partition: 7 is outdated on 3, the holder's own 9 is accepted again.
    assert_eq!(
        store
            .claim_fences(vec![
                Fence {
                    partition: 3,
                    token: 7
                },
                Fence {
                    partition: 3,
                    token: 9
                },
                Fence {
                    partition: 4,
                    token: 2
                },
            ])
            .await
            .unwrap(),
        vec![false, true, true]
    );
    // Refused writes queued no deliveries: one per stored alert with a webhook (4 fenced
    // writes stored, the unfenced one has no webhook). Asked once: on PostgreSQL answering
    // claims the rows.
    let due = store
        .due_outbox(UnixMicros::from_secs(10_000), 100)
        .await
        .unwrap();
    assert_eq!(due.len(), 4);
}
