//! Conformance tests of part B's areas: device health (`status.rs`), network scans
//! (`scans.rs`), the outbox and escalation (`outbox.rs`), dispatch tasks, notification
//! settings and push subscriptions (`alerting.rs`); each runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests state their expectations with unwrap.

use crate::conformance::{Place, on_both_backends};
use crate::*;
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
