use super::*;
use crate::conformance::{Place, on_both_backends};

fn fix(device: DeviceId, t: i64, seq: Option<i64>) -> Fix {
    Fix {
        id: None,
        device_id: device,
        device_time: UnixMicros::from_secs(t),
        received_time: UnixMicros::from_secs(t + 1),
        position: LatLon::new(37.5 + t as f64 * 1e-5, 127.0).unwrap(),
        accuracy_m: Some(8.0),
        speed_mps: Some(1.2),
        course_deg: Some(90.0),
        altitude_m: None,
        source: FixSource::Gnss,
        flags: FixFlags::default(),
        seq,
    }
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

on_both_backends!(
    fixes_survive_reopen_and_resends_are_not_stored_twice,
    flavor = "current_thread"
);
async fn fixes_survive_reopen_and_resends_are_not_stored_twice(place: Place) {
    let device;
    {
        let store = place.open();
        let (_, d) = setup(&store).await;
        device = d.id;
        let out = store
            .insert_fixes(vec![
                fix(d.id, 10, Some(1)),
                fix(d.id, 20, Some(2)),
                fix(d.id, 30, None),
            ])
            .await
            .unwrap();
        assert!(out.iter().all(|o| matches!(o, FixOutcome::Stored(_))));
        store.close();
    }
    let store = place.open();
    assert_eq!(store.count_fixes().await.unwrap(), 3);
    // The same batch again: every fix is recognised as a duplicate, with its original id.
    let again = store
        .insert_fixes(vec![
            fix(device, 10, Some(1)),
            fix(device, 20, Some(2)),
            fix(device, 30, None),
        ])
        .await
        .unwrap();
    assert!(
        again.iter().all(|o| matches!(o, FixOutcome::Duplicate(_))),
        "{again:?}"
    );
    assert_eq!(store.count_fixes().await.unwrap(), 3);
    let latest = store
        .latest_fixes(&crate::Authorized::system("test"))
        .await
        .unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].device_time, UnixMicros::from_secs(30));
}

on_both_backends!(
    a_batch_with_an_unknown_device_stores_nothing,
    flavor = "current_thread"
);
async fn a_batch_with_an_unknown_device_stores_nothing(place: Place) {
    let store = place.open();
    let (_, d) = setup(&store).await;
    let err = store
        .insert_fixes(vec![fix(d.id, 10, None), fix(DeviceId(999), 11, None)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidReference(_)), "{err}");
    assert_eq!(store.count_fixes().await.unwrap(), 0);
}

on_both_backends!(
    committed_fixes_are_published_once_with_ids_in_commit_order,
    flavor = "current_thread"
);
async fn committed_fixes_are_published_once_with_ids_in_commit_order(place: Place) {
    let store = place.open();
    let mut sub = store.subscribe_committed();
    let (_, d) = setup(&store).await;
    let a = store.insert_fixes(vec![fix(d.id, 1, None)]).await.unwrap();
    store.insert_fixes(vec![fix(d.id, 1, None)]).await.unwrap(); // duplicate: not published
    let b = store.insert_fixes(vec![fix(d.id, 2, None)]).await.unwrap();
    let first = sub.recv().await.unwrap();
    let second = sub.recv().await.unwrap();
    assert_eq!(first.fixes[0].id, Some(a[0].id()));
    assert_eq!(second.fixes[0].id, Some(b[0].id()));
    assert!(sub.try_recv().is_err());
}

on_both_backends!(
    a_fix_at_a_stored_device_time_elsewhere_is_kept_and_a_far_one_flagged,
    flavor = "current_thread"
);
async fn a_fix_at_a_stored_device_time_elsewhere_is_kept_and_a_far_one_flagged(place: Place) {
    let store = place.open();
    let mut sub = store.subscribe_committed();
    let (_, d) = setup(&store).await;
    let first = fix(d.id, 100, None);
    // 20 m north in the same device second: a sub-second burst, kept as it is.
    let mut burst = first.clone();
    burst.position = first.position.destination(0.0, 20.0);
    // 5 km away in the same device second: not where the wearer can be; kept, flagged.
    let mut far = first.clone();
    far.position = first.position.destination(90.0, 5_000.0);
    let out = store
        .insert_fixes(vec![first.clone(), burst.clone(), far.clone()])
        .await
        .unwrap();
    assert!(
        out.iter().all(|o| matches!(o, FixOutcome::Stored(_))),
        "{out:?}"
    );
    assert!(
        out[0].id() < out[1].id() && out[1].id() < out[2].id(),
        "receipt order"
    );
    // Each resent: recognised by its position, with its own original id.
    let again = store
        .insert_fixes(vec![far.clone(), first.clone(), burst.clone()])
        .await
        .unwrap();
    assert_eq!(
        again,
        vec![
            FixOutcome::Duplicate(out[2].id()),
            FixOutcome::Duplicate(out[0].id()),
            FixOutcome::Duplicate(out[1].id()),
        ]
    );
    assert_eq!(store.count_fixes().await.unwrap(), 3);
    let track = store
        .track(
            &crate::Authorized::system("test"),
            d.id,
            UnixMicros::from_secs(0),
            UnixMicros::from_secs(1_000),
            10,
        )
        .await
        .unwrap();
    let suspect: Vec<bool> = track
        .iter()
        .map(|f| f.flags.has(FixFlags::INTEGRITY_SUSPECT))
        .collect();
    assert_eq!(suspect, vec![false, false, true], "{track:?}");
    // The engine gets the flag too: the published fixes are the stored ones.
    let published = sub.recv().await.unwrap().fixes;
    assert_eq!(published, track);
    assert!(sub.try_recv().is_err(), "resends are not published");
}

on_both_backends!(
    concurrent_writers_are_group_committed_without_loss,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn concurrent_writers_are_group_committed_without_loss(place: Place) {
    let store = place.open();
    let (_, d) = setup(&store).await;
    let mut tasks = Vec::new();
    for i in 0..200i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.insert_fixes(vec![fix(d.id, 1000 + i, Some(i))]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.count_fixes().await.unwrap(), 200);
}

on_both_backends!(
    alerts_deduplicate_by_key_and_clear,
    flavor = "current_thread"
);
async fn alerts_deduplicate_by_key_and_clear(place: Place) {
    let store = place.open();
    let change = |kind, d: f64| AlertChange {
        order_id: None,
        case_id: None,
        rule: AlertRule::ProximityViolation,
        protected: Some(PersonId(2)),
        zone: None,
        kind,
        severity: Severity::Critical,
        at: UnixMicros::from_secs(5),
        distance_m: Some(d),
        evidence: vec![FixId(d as i64)],
        summary: format!("{d}"),
        device: None,
        details: AlertDetails::default(),
    };
    let a = store
        .apply_alert_change(change(AlertChangeKind::Raised, 80.0))
        .await
        .unwrap();
    // A second "raised" for the same key (e.g. after a restart) updates the same alert.
    let b = store
        .apply_alert_change(change(AlertChangeKind::Raised, 60.0))
        .await
        .unwrap();
    assert_eq!(a.alert.id, b.alert.id);
    assert_eq!(b.alert.min_distance_m, Some(60.0));
    assert_eq!(b.alert.evidence, vec![FixId(80), FixId(60)]);
    let c = store
        .apply_alert_change(change(AlertChangeKind::Cleared, 300.0))
        .await
        .unwrap();
    assert!(!c.condition_active);
    // The condition cleared but nobody resolved it: the alert is still listed as active.
    assert_eq!(
        store
            .list_alerts(&crate::Authorized::system("test"), true, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let r = store
        .set_alert_state(a.alert.id, AlertState::Resolved, UnixMicros::from_secs(9))
        .await
        .unwrap();
    assert_eq!(r.alert.state, AlertState::Resolved);
    assert!(
        store
            .list_alerts(&crate::Authorized::system("test"), true, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A new episode opens a new alert.
    let d = store
        .apply_alert_change(change(AlertChangeKind::Raised, 90.0))
        .await
        .unwrap();
    assert_ne!(d.alert.id, a.alert.id);
}

on_both_backends!(
    orders_round_trip_with_zones_and_references_are_checked,
    flavor = "current_thread"
);
async fn orders_round_trip_with_zones_and_references_are_checked(place: Place) {
    let store = place.open();
    let now = UnixMicros::from_secs(1);
    let o = store
        .create_person(PersonRole::Offender, "O".into(), now)
        .await
        .unwrap();
    let v = store
        .create_person(PersonRole::Protected, "V".into(), now)
        .await
        .unwrap();
    assert!(matches!(
        store.create_case("X".into(), v.id, vec![o.id], now).await,
        Err(StoreError::InvalidReference(_))
    ));
    let case = store
        .create_case("2026-A-1".into(), o.id, vec![v.id], now)
        .await
        .unwrap();
    let p = LatLon::new(37.5, 127.0).unwrap();
    let order = Order {
        id: OrderId(0),
        case_id: case.id,
        kind: OrderKind::ProvisionalMeasure,
        valid_from: now,
        valid_to: Some(UnixMicros::from_secs(100)),
        no_approach_m: 100.0,
        warning_m: 500.0,
        disclosure_radius_m: 600.0,
        zones: vec![
            Zone {
                id: ZoneId(0),
                kind: ZoneKind::Home,
                label: "home".into(),
                shape: ZoneShape::Circle {
                    center: p,
                    radius_m: 150.0,
                },
            },
            Zone {
                id: ZoneId(0),
                kind: ZoneKind::Work,
                label: "work".into(),
                shape: ZoneShape::Polygon {
                    ring: vec![p, p.destination(0.0, 100.0), p.destination(90.0, 100.0)],
                },
            },
        ],
    };
    let stored = store.create_order(order.clone(), now).await.unwrap();
    let listed = store.list_orders().await.unwrap();
    assert_eq!(listed, vec![stored.clone()]);
    assert_eq!(listed[0].zones[1].shape, order.zones[1].shape);
    assert_eq!(store.list_cases().await.unwrap(), vec![case]);
}

on_both_backends!(device_tokens_and_unknown_devices, flavor = "current_thread");
async fn device_tokens_and_unknown_devices(place: Place) {
    let store = place.open();
    let (_, d) = setup(&store).await;
    assert_eq!(
        store
            .device_by_token("secret".into())
            .await
            .unwrap()
            .map(|x| x.id),
        Some(d.id)
    );
    assert!(
        store
            .device_by_token("wrong".into())
            .await
            .unwrap()
            .is_none()
    );
    let now = UnixMicros::from_secs(3);
    store
        .record_unknown_device(Protocol::Gt06, "123".into(), Some("127.0.0.1".into()), now)
        .await
        .unwrap();
    store
        .record_unknown_device(Protocol::Gt06, "123".into(), None, now)
        .await
        .unwrap();
    let u = store.list_unknown_devices().await.unwrap();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].attempts, 2);
    // Registering it clears it from the list; a second registration conflicts.
    store
        .create_device(
            DeviceKind::Tracker,
            Protocol::Gt06,
            "123".into(),
            None,
            None,
            now,
        )
        .await
        .unwrap();
    assert!(store.list_unknown_devices().await.unwrap().is_empty());
    assert!(matches!(
        store
            .create_device(
                DeviceKind::Tracker,
                Protocol::Gt06,
                "123".into(),
                None,
                None,
                now
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
}

on_both_backends!(
    events_are_stored_once_and_published_with_fixes,
    flavor = "current_thread"
);
async fn events_are_stored_once_and_published_with_fixes(place: Place) {
    let store = place.open();
    let mut sub = store.subscribe_committed();
    let (_, d) = setup(&store).await;
    let sos = DeviceEvent {
        id: None,
        device_id: d.id,
        kind: DeviceEventKind::Sos,
        device_time: UnixMicros::from_secs(50),
        received_time: UnixMicros::from_secs(51),
        position: None,
        code: None,
    };
    let (f, e) = store
        .insert_reports(vec![fix(d.id, 50, None)], vec![sos.clone()])
        .await
        .unwrap();
    assert_eq!((f.len(), e), (1, vec![true]));
    let c = sub.recv().await.unwrap();
    assert_eq!((c.fixes.len(), c.events.len()), (1, 1));
    assert_eq!(c.events[0].kind, DeviceEventKind::Sos);
    let (_, e) = store.insert_reports(vec![], vec![sos]).await.unwrap();
    assert_eq!(e, vec![false], "a resent SOS is recognised");
    assert!(sub.try_recv().is_err());
    assert_eq!(
        store
            .events_received_since(UnixMicros(0))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "current_thread")]
async fn orders_stored_before_versioning_get_their_version_1_with_zones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
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
    let home = LatLon::new(37.5, 127.0).unwrap();
    let order = Order {
        id: OrderId(0),
        case_id: case.id,
        kind: OrderKind::ElectronicMonitoring,
        valid_from: now,
        valid_to: None,
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
    let stored = store.create_order(order, now).await.unwrap();
    store.close();
    // A database from before versioning: the schema of migrations 1-7 only, holding the
    // same people, case, order and zone rows.
    let old = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(old.path().join("bulwark.db")).unwrap();
    for m in &crate::migrations::MIGRATIONS[..7] {
        conn.execute_batch(m).unwrap();
    }
    conn.execute(
        "ATTACH DATABASE ?1 AS new",
        [dir.path().join("bulwark.db").to_str().unwrap()],
    )
    .unwrap();
    conn.execute_batch(
        "INSERT INTO people SELECT id, role, display_name, created_at FROM new.people;
         INSERT INTO cases SELECT id, reference, offender_id, created_at FROM new.cases;
         INSERT INTO case_protected SELECT case_id, person_id FROM new.case_protected;
         INSERT INTO orders SELECT id, case_id, kind, valid_from, valid_to, no_approach_m,
             warning_m, disclosure_radius_m, created_at FROM new.orders;
         INSERT INTO zones SELECT id, order_id, kind, label, shape, schedule FROM new.zones;
         DETACH DATABASE new;
         PRAGMA user_version = 7;",
    )
    .unwrap();
    drop(conn);
    let store = Store::open(old.path()).unwrap();
    let v = store.order_versions(stored.id).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].version, 1);
    assert_eq!(v[0].valid_to, None);
    assert!(v[0].electronic_monitoring);
    assert_eq!(v[0].zones, stored.zones);
}

on_both_backends!(
    the_latest_fix_of_a_person_spans_their_devices_and_breaks_ties_by_store_order,
    flavor = "current_thread"
);
async fn the_latest_fix_of_a_person_spans_their_devices_and_breaks_ties_by_store_order(
    place: Place,
) {
    let store = place.open();
    let (p, ankle) = setup(&store).await;
    assert!(
        store
            .latest_fix_of_person(&crate::Authorized::system("test"), p.id)
            .await
            .unwrap()
            .is_none()
    );
    let watch = store
        .create_device(
            DeviceKind::Smartwatch,
            Protocol::Watch,
            "watch-1".into(),
            Some(p.id),
            None,
            UnixMicros::from_secs(1),
        )
        .await
        .unwrap();
    let other = store
        .create_person(PersonRole::Protected, "V".into(), UnixMicros::from_secs(1))
        .await
        .unwrap();
    let hers = store
        .create_device(
            DeviceKind::VictimPhone,
            Protocol::Osmand,
            "phone-1".into(),
            Some(other.id),
            None,
            UnixMicros::from_secs(1),
        )
        .await
        .unwrap();
    store
        .insert_fixes(vec![fix(ankle.id, 10, Some(1)), fix(ankle.id, 30, Some(2))])
        .await
        .unwrap();
    store
        .insert_fixes(vec![fix(watch.id, 20, None)])
        .await
        .unwrap();
    // Someone else's newer fix is not his.
    store
        .insert_fixes(vec![fix(hers.id, 50, None)])
        .await
        .unwrap();
    let latest = store
        .latest_fix_of_person(&crate::Authorized::system("test"), p.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.device_id, latest.device_time),
        (ankle.id, UnixMicros::from_secs(30))
    );
    // The same device time again (another seq): the one stored later wins.
    let again = store
        .insert_fixes(vec![fix(ankle.id, 30, Some(3))])
        .await
        .unwrap();
    let latest = store
        .latest_fix_of_person(&crate::Authorized::system("test"), p.id)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(again[0], crate::FixOutcome::Stored(_)));
    assert_eq!(latest.id, Some(again[0].id()));
    assert_eq!(
        store
            .latest_fix_of_person(&crate::Authorized::system("test"), other.id)
            .await
            .unwrap()
            .unwrap()
            .device_id,
        hers.id
    );
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test(flavor = "current_thread")]
async fn the_data_directory_is_0700_and_the_database_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir).unwrap();
    setup(&store).await;
    let db = dir.join("bulwark.db");
    let wal = dir.join("bulwark.db-wal");
    let shm = dir.join("bulwark.db-shm");
    assert!(wal.exists() && shm.exists(), "WAL mode writes both files");
    assert_eq!(mode(&dir), 0o700);
    for f in [&db, &wal, &shm] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    store.close();

    // A directory and files left wider by an older version are narrowed at the next open.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in [&db, &wal, &shm] {
        if f.exists() {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let store = Store::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    for f in [&db, &wal, &shm] {
        if f.exists() {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
    assert_eq!(store.list_people().await.unwrap().len(), 1, "data kept");
    store.close();
}

/// A database in `dir` with the first `version` migrations applied, as an older build left it.
fn database_at_version(dir: &std::path::Path, version: usize) -> rusqlite::Connection {
    let mut conn = rusqlite::Connection::open(dir.join("bulwark.db")).unwrap();
    for (i, sql) in crate::migrations::MIGRATIONS
        .iter()
        .enumerate()
        .take(version)
    {
        let tx = conn.transaction().unwrap();
        tx.execute_batch(sql).unwrap();
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .unwrap();
        tx.commit().unwrap();
    }
    conn
}

/// Builds a database at schema version 13 (before alert evidence had its own table) with one
/// alert whose evidence column holds `evidence`.
fn database_at_version_13(dir: &std::path::Path, evidence: &str) {
    let conn = database_at_version(dir, 13);
    conn.execute(
        "INSERT INTO alerts (rule, severity, state, condition_active, raised_at, updated_at, summary, evidence)
         VALUES ('sos', 'critical', 'raised', 1, 1, 1, 's', ?1)",
        [evidence],
    )
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn alert_evidence_moves_to_its_own_table_in_order() {
    let dir = tempfile::tempdir().unwrap();
    database_at_version_13(dir.path(), "[80,60,70]");
    let store = Store::open(dir.path()).unwrap();
    let alerts = store
        .list_alerts(&crate::Authorized::system("test"), false, 10)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].alert.evidence,
        vec![FixId(80), FixId(60), FixId(70)]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn alert_evidence_that_does_not_parse_is_an_error_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    database_at_version_13(dir.path(), "[80, oops");
    let err = Store::open(dir.path())
        .err()
        .expect("a corrupt row must refuse the migration");
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains("alert 1")),
        "{err}"
    );
    // Nothing was migrated: the database is still at version 13 with its row as it was.
    let conn = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 13);
    let ev: String = conn
        .query_row("SELECT evidence FROM alerts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ev, "[80, oops");
}

#[tokio::test(flavor = "current_thread")]
async fn a_schema_newer_than_this_build_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let newer = crate::migrations::MIGRATIONS.len() as i64 + 1;
    conn.pragma_update(None, "user_version", newer).unwrap();
    drop(conn);
    let err = Store::open(dir.path())
        .err()
        .expect("a newer schema must be refused");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, .. } if found == newer),
        "{err}"
    );
}

on_both_backends!(
    a_failing_job_fails_alone_and_its_neighbours_commit,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn a_failing_job_fails_alone_and_its_neighbours_commit(place: Place) {
    let store = place.open();
    let (_, d) = setup(&store).await;
    // Submitted together, so the writer takes many of them into one group; whichever group
    // the bad one lands in, it is rolled back to its savepoint and nothing else is.
    let mut tasks = Vec::new();
    for i in 0..60i64 {
        let s = store.clone();
        let device = if i == 30 { DeviceId(9_999) } else { d.id };
        tasks.push(tokio::spawn(async move {
            s.insert_fixes(vec![fix(device, 2_000 + i, Some(i))]).await
        }));
    }
    let mut failed = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if let Err(e) = t.await.unwrap() {
            assert!(matches!(e, StoreError::InvalidReference(_)), "{e}");
            failed.push(i);
        }
    }
    assert_eq!(failed, vec![30]);
    assert_eq!(store.count_fixes().await.unwrap(), 59);
}

/// The query plan of `sql`, one detail a line.
fn plan(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>("detail"))
        .unwrap();
    rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "current_thread")]
async fn a_devices_fixes_are_read_through_the_one_device_time_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (_, d) = setup(&store).await;
    store
        .insert_fixes((0..50).map(|t| fix(d.id, t, None)).collect())
        .await
        .unwrap();
    store.close();
    let conn = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'fixes'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        ["fixes_device_seq", "fixes_device_time_key"],
        "one device-time index, one sequence index"
    );
    for (what, sql, n) in [
        ("same second", fixes::SAME_TIME_SQL, 2),
        ("latest before", fixes::LAST_FIX_BEFORE_SQL, 3),
        ("track", fixes::TRACK_SQL, 4),
    ] {
        let p = plan(&conn, sql, rusqlite::params_from_iter((0..n).map(|_| 1i64)));
        assert!(
            p.contains("SEARCH fixes USING INDEX fixes_device_time_key (device_id=?"),
            "{what}: {p}"
        );
        assert!(!p.contains("SCAN fixes"), "{what} scans the table: {p}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_device_time_index_refuses_a_seqless_copy_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (_, d) = setup(&store).await;
    store.close();
    let conn = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let insert = |seq: Option<i64>, lat: f64| {
        conn.execute(
            "INSERT INTO fixes (device_id, device_time, received_time, lat, lon, source, flags, seq)
             VALUES (?1, 10, 11, ?2, 127.0, 'gnss', 0, ?3)",
            params![d.id.0, lat, seq],
        )
    };
    insert(None, 37.5).unwrap();
    let copy = insert(None, 37.5).expect_err("a seq-less copy must be refused");
    assert!(
        matches!(&copy, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation),
        "{copy}"
    );
    // Elsewhere at the same second: a fix of its own (the same-second rule flags it).
    insert(None, 37.6).unwrap();
    // With sequence numbers, at the same second and place as the seq-less one: kept.
    insert(Some(0), 37.5).unwrap();
    insert(Some(1), 37.5).unwrap();
    // The same sequence number twice: refused by the sequence index.
    insert(Some(1), 37.7).expect_err("a repeated sequence number must be refused");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM fixes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
}

/// Builds a database at schema version 15 (two device-time indexes over the fixes) holding
/// seq-less and numbered fixes of one device.
fn database_at_version_15(dir: &std::path::Path) {
    let conn = database_at_version(dir, 15);
    conn.execute(
        "INSERT INTO devices (id, kind, protocol, hardware_id, created_at) VALUES (1, 'ankle_monitor', 'native', 'imei-1', 1)",
        [],
    )
    .unwrap();
    for (t, seq) in [(10, None), (11, None), (10, Some(0)), (12, Some(1))] {
        conn.execute(
            "INSERT INTO fixes (device_id, device_time, received_time, lat, lon, source, flags, seq)
             VALUES (1, ?1, ?1, 37.5, 127.0, 'gnss', 0, ?2)",
            params![t, seq],
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn fixes_stored_under_two_indexes_keep_their_rows_and_resends_under_one() {
    let dir = tempfile::tempdir().unwrap();
    database_at_version_15(dir.path());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.count_fixes().await.unwrap(), 4, "every row kept");
    // A resend of the stored seq-less fix at second 10 is recognised, not stored again.
    let mut again = fix(DeviceId(1), 0, None);
    again.device_time = UnixMicros(10);
    again.position = LatLon::new(37.5, 127.0).unwrap();
    let out = store.insert_fixes(vec![again]).await.unwrap();
    assert!(matches!(out[0], FixOutcome::Duplicate(FixId(1))), "{out:?}");
    assert_eq!(store.count_fixes().await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_checkpoints_and_reuses_the_wal_with_automatic_checkpoints_off() {
    // The writer commits with `synchronous = OFF` and SQLite's automatic checkpoint replaced
    // by its own (`tune_writer`): without `between_groups` the WAL would only grow.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (_, d) = setup(&store).await;
    let wal = dir.path().join("bulwark.db-wal");
    let mut largest = 0u64;
    // One fix a commit dirties several pages: well over `CHECKPOINT_FRAMES` frames in all.
    let jobs = 3 * CHECKPOINT_FRAMES as i64;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..jobs {
        let s = store.clone();
        tasks.spawn(async move { s.insert_fixes(vec![fix(d.id, t, None)]).await.unwrap() });
        if tasks.len() >= 4 {
            tasks.join_next().await.unwrap().unwrap();
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    assert_eq!(store.count_fixes().await.unwrap(), jobs);
    // Frames of 4 KiB pages plus their 24-byte headers: the WAL never held much more than
    // one checkpoint's worth (and a group's), though far more frames were written.
    let bound = (CHECKPOINT_FRAMES as u64 + 512) * (4096 + 24) + 32;
    assert!(
        largest > 0 && largest <= bound,
        "WAL reached {largest} bytes, bound {bound}"
    );
    store.close();
    let conn = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM fixes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, jobs, "every fix is in the database after close");
}
