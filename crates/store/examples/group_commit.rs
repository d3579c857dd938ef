//! Durable ingest throughput of the store's group commit, on SQLite and on PostgreSQL: many
//! concurrent callers (like many devices' connections) each storing one fix at a time, every
//! call answered only after its group committed.
//!
//! `cargo run --release -p store --example group_commit -- [callers] [fixes] [postgres-url] [batch]`
//! (defaults 200, 20000, `postgres://postgres@127.0.0.1:5432/test`, 1 fix per call; the PostgreSQL run uses a
//! schema of its own and drops it). A figure, not a test: nothing here asserts a speed.
#![allow(clippy::unwrap_used)] // A measurement tool: a failure should stop it loudly.

use domain::*;
use std::time::Instant;
use store::Store;

fn fix(device: DeviceId, i: i64) -> Fix {
    Fix {
        id: None,
        device_id: device,
        device_time: UnixMicros::from_secs(1_000 + i),
        received_time: UnixMicros::from_secs(1_001 + i),
        position: LatLon::new(37.5 + (i % 1000) as f64 * 1e-5, 127.0).unwrap(),
        accuracy_m: Some(8.0),
        speed_mps: None,
        course_deg: None,
        altitude_m: None,
        source: FixSource::Gnss,
        flags: FixFlags::default(),
        seq: Some(i),
    }
}

async fn run(name: &str, store: Store, callers: i64, fixes: i64, batch: i64) {
    let now = UnixMicros::from_secs(1);
    let p = store
        .create_person(PersonRole::Offender, "O".into(), now)
        .await
        .unwrap();
    let mut devices = Vec::new();
    for c in 0..callers {
        let d = store
            .create_device(
                DeviceKind::Tracker,
                Protocol::Gt06,
                format!("bench-{c}"),
                Some(p.id),
                None,
                now,
            )
            .await
            .unwrap();
        devices.push(d.id);
    }
    let per = fixes / callers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for d in devices {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (0..per).step_by(batch as usize) {
                let call = (i..(i + batch).min(per)).map(|j| fix(d, j)).collect();
                s.insert_fixes(call).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let stored = store.count_fixes().await.unwrap();
    println!(
        "{name:>10}: {stored} fixes from {callers} callers ({batch} per call) in {secs:.2} s = {:.0} durable fixes/s",
        stored as f64 / secs
    );
    store.close();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let callers: i64 = args.get(1).map(|a| a.parse().unwrap()).unwrap_or(200);
    let fixes: i64 = args.get(2).map(|a| a.parse().unwrap()).unwrap_or(20_000);
    let url = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let batch: i64 = args.get(4).map(|a| a.parse().unwrap()).unwrap_or(1).max(1);

    let dir = tempfile::tempdir().unwrap();
    run(
        "sqlite",
        Store::open(dir.path()).unwrap(),
        callers,
        fixes,
        batch,
    )
    .await;

    let schema = format!("bench_{}", std::process::id());
    let (u, s) = (url.clone(), schema.clone());
    let admin = move |sql: String| {
        let u = u.clone();
        std::thread::spawn(move || {
            let mut c = u.parse::<postgres::Config>()?.connect(postgres::NoTls)?;
            c.batch_execute(&sql)
        })
        .join()
        .unwrap()
    };
    if let Err(e) = admin(format!("CREATE SCHEMA {s}")) {
        println!("postgresql: SKIPPED, {url} not reachable: {e}");
        return;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = Store::open_url(&format!("{url}{sep}options=-csearch_path%3D{schema}")).unwrap();
    run("postgresql", store, callers, fixes, batch).await;
    admin(format!("DROP SCHEMA {schema} CASCADE")).unwrap();
}
