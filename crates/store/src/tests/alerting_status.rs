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
    let all = store.device_health().await.unwrap();
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
        .device_health_history(d.id, UnixMicros(0), UnixMicros::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(hist, vec![first, later]);
    let window = store
        .device_health_history(
            d.id,
            UnixMicros::from_secs(15),
            UnixMicros::from_secs(30),
            100,
        )
        .await
        .unwrap();
    assert_eq!(window, vec![later], "[from, to) selects by receipt time");
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
        cells: vec![ScanCell {
            mcc: 450,
            mnc: 5,
            lac: 8_000,
            cell_id: 123_456_789,
            rssi: Some(-71),
        }],
        wifi: vec![ScanWifi {
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
        .network_scans(d, UnixMicros(0), UnixMicros::from_secs(1_000), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "the resent frame's scan is stored once");
    let fix_id = store
        .track(d, UnixMicros(0), UnixMicros::from_secs(1_000), 10)
        .await
        .unwrap()[0]
        .id
        .unwrap();
    assert_eq!(all[0].fix_id, Some(fix_id));
    assert_eq!(all[0].cells, scan(d, 100).cells);
    assert_eq!(all[0].wifi, scan(d, 100).wifi);
    assert_eq!(all[1].fix_id, None);
    let with_fix = store.network_scans_of_fixes(vec![fix_id]).await.unwrap();
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
    let n = match store
        .purge_fixes(
            vec![(d, vec![(UnixMicros(0), UnixMicros::from_secs(160))])],
            entry,
            UnixMicros::from_secs(300),
            None,
        )
        .await
    {
        // The retention purge on PostgreSQL is part A's (branch pga): until it is merged the
        // rest of this test runs on SQLite only.
        Err(StoreError::Unsupported(e)) if store.is_postgres() => {
            eprintln!("NOT YET: the purge half on PostgreSQL waits for part A: {e}");
            return;
        }
        other => other.unwrap(),
    };
    assert_eq!(n, 1);
    let left = store
        .network_scans(d, UnixMicros(0), UnixMicros::from_secs(1_000), 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].scan_time, UnixMicros::from_secs(200));
    let health = store
        .device_health_history(d, UnixMicros(0), UnixMicros::from_secs(1_000), 10)
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
