//! `bulwark bench memory`: the server's resident memory with many cases and devices.
//!
//! Steps, each measured from `/proc/<pid>/status` of the `bulwark serve` child:
//! 1. an empty data directory (the fixed cost: runtime, web apps, store);
//! 2. `--cases` idle cases (two people, two devices and one order each; `--zones` with a home
//!    zone), nothing reported yet;
//! 3. `--reporting` devices each report one fix over Teltonika (connect, fix, close, in
//!    batches), so the engine holds a position and state for each;
//! 4. `--connections` of them stay connected at once (each with its own socket on both
//!    sides, from loopback sources 127.0.0.1–127.0.0.250).
//!
//! The open-file limit caps step 4: a process here may hold at most `ulimit -Hn` sockets
//! (20,000 in the container this was measured in, which cannot raise it), so the cost of a
//! connection is measured at that many and the figure for 100,000 is projected from it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;

use super::bulwark_leg::{connect_all, wait_evaluated};
use super::harness::{self, SeedPlan, ServeExtras, Server, metric};

#[derive(Debug, Clone)]
pub struct MemoryOptions {
    pub plan: SeedPlan,
    pub reporting: usize,
    pub connections: usize,
}

async fn settle_rss(server: &Server) -> Result<u64> {
    // Let allocations from the last step finish (the engine, the writer) before reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(server.rss_kib()?.0)
}

fn kib(v: u64) -> String {
    format!("{:.1} MiB", v as f64 / 1024.0)
}

pub async fn run(o: MemoryOptions) -> Result<()> {
    if o.reporting > 2 * o.plan.cases || o.connections > o.reporting {
        bail!("--reporting ≤ 2 × --cases and --connections ≤ --reporting");
    }
    let dir = tempfile::tempdir()?;

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty)?;
    harness::seed(&empty.join("data"), SeedPlan { cases: 0, zones: 0 }).await?;
    let server = Server::start(&empty.join("data"), &ServeExtras::default()).await?;
    let rss_empty = settle_rss(&server).await?;
    server.stop().await?;
    println!("empty server: RSS {}", kib(rss_empty));

    let full = dir.path().join("full");
    std::fs::create_dir_all(&full)?;
    eprintln!(
        "  seeding {} cases ({} with a zone) …",
        o.plan.cases, o.plan.zones
    );
    let (_, took) = harness::seed(&full.join("data"), o.plan).await?;
    eprintln!("  seeded in {:.1} s", took.as_secs_f64());
    let server = Server::start(&full.join("data"), &ServeExtras::default()).await?;
    let rss_cases = settle_rss(&server).await?;
    println!(
        "{} idle cases ({} devices registered, {} zones): RSS {}",
        o.plan.cases,
        2 * o.plan.cases,
        o.plan.zones,
        kib(rss_cases)
    );

    // Every reporting device sends one fix, in batches that fit the open-file limit.
    const BATCH: usize = 5_000;
    let mut start = 0;
    while start < o.reporting {
        let end = (start + BATCH).min(o.reporting);
        let mut conns = connect_all(server.teltonika, start..end).await?;
        for (d, s) in conns.iter_mut() {
            let mut t = 0;
            s.write_all(&harness::teltonika_fix(*d, 0, harness::next_ms(&mut t))?)
                .await?;
        }
        for (_, s) in conns.iter_mut() {
            harness::read_teltonika_ack(s, 1).await?;
        }
        drop(conns);
        start = end;
    }
    let stored = metric(&server.metrics().await?, "bulwark_fixes_stored_total", "") as u64;
    wait_evaluated(&server, stored).await?;
    let rss_reported = settle_rss(&server).await?;
    println!(
        "{} devices reported one fix each (engine state for each): RSS {}",
        o.reporting,
        kib(rss_reported)
    );

    let held = connect_all(server.teltonika, 0..o.connections)
        .await
        .context("holding connections (raise `ulimit -n`, or lower --connections)")?;
    let m = server.metrics().await?;
    let open = metric(&m, "bulwark_device_connections", "") as u64;
    let rss_connected = settle_rss(&server).await?;
    let (_, hwm) = server.rss_kib()?;
    println!(
        "{} devices connected at once (server counts {open}): RSS {} (peak {})",
        held.len(),
        kib(rss_connected),
        kib(hwm)
    );
    let per_conn = rss_connected.saturating_sub(rss_reported) as f64 / held.len().max(1) as f64;
    let per_case = rss_cases.saturating_sub(rss_empty) as f64 / o.plan.cases.max(1) as f64;
    let per_device_state =
        rss_reported.saturating_sub(rss_cases) as f64 / o.reporting.max(1) as f64;
    let projected = rss_reported as f64 + per_conn * 100_000.0;
    println!("\n| step | RSS | per unit |\n| --- | ---: | ---: |");
    println!("| empty server | {} | |", kib(rss_empty));
    println!(
        "| + {} idle cases | {} | {:.2} KiB per case (2 people, 2 devices, 1 order) |",
        o.plan.cases,
        kib(rss_cases),
        per_case
    );
    println!(
        "| + {} devices with one fix each | {} | {:.2} KiB per device (engine state) |",
        o.reporting,
        kib(rss_reported),
        per_device_state
    );
    println!(
        "| + {} connected at once | {} | {:.2} KiB per connection |",
        held.len(),
        kib(rss_connected),
        per_conn
    );
    println!(
        "projected with 100,000 connected: {} = {:.2} KiB per device-and-case in total, \
         {:.2} KiB above the empty server (goal < 2 KiB)",
        kib(projected as u64),
        projected / 100_000.0,
        (projected - rss_empty as f64) / 100_000.0
    );
    drop(held);
    server.stop().await?;
    Ok(())
}
