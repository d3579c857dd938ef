//! Bulwark's own leg of `bulwark bench alternatives`: the same devices, positions and
//! closed-loop concurrency as the Redis and PostGIS legs, against a `bulwark serve` child on a
//! fresh data directory seeded with `cases` cases (`zones` of them with a home zone).
//!
//! Each client owns the Teltonika connections of its devices (a tracker's connection carries
//! one device) and has one fix in flight at a time, as a Redis or PostgreSQL client has one
//! round trip in flight: the same concurrency. A fix counts when its Teltonika ack arrives,
//! which the server sends only after the fix is durable. Afterwards the run checks that the
//! acks equal the rows the server counted as stored, waits until the engine has evaluated
//! every stored fix, stops the server and counts the rows in the store itself.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::alternatives::{LegResult, Options, drive, leg};
use super::harness::{self, SeedPlan, ServeExtras, Server, metric};

/// Connects devices `0..devices` to `server`, 200 at a time, spreading them over loopback
/// source addresses 127.0.0.1–127.0.0.250 (each address has its own ~28,000 ephemeral ports).
pub async fn connect_all(
    server: std::net::SocketAddr,
    devices: std::ops::Range<usize>,
) -> Result<Vec<(usize, TcpStream)>> {
    let mut out = Vec::with_capacity(devices.len());
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = devices.start;
    while next < devices.end || !tasks.is_empty() {
        while next < devices.end && tasks.len() < 200 {
            let d = next;
            let source = std::net::IpAddr::from([127, 0, 0, 1 + (d % 250) as u8]);
            tasks.spawn(async move { (d, harness::connect_teltonika(server, source, d).await) });
            next += 1;
        }
        if let Some(done) = tasks.join_next().await {
            let (d, s) = done.context("connect task")?;
            out.push((d, s?));
        }
    }
    out.sort_by_key(|(d, _)| *d);
    Ok(out)
}

/// The fixes the server counted for the Teltonika door: (stored, duplicate).
async fn door_counts(server: &Server) -> Result<(u64, u64)> {
    let m = server.metrics().await?;
    let label = "door=\"teltonika\"";
    Ok((
        metric(&m, "bulwark_fixes_stored_total", label) as u64,
        metric(&m, "bulwark_fixes_duplicate_total", label) as u64,
    ))
}

/// Waits until the engine has evaluated `stored` fixes (`bulwark_fixes_evaluated_total`).
/// Returns how long that took after the last ack.
pub async fn wait_evaluated(server: &Server, stored: u64) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let m = server.metrics().await?;
        let evaluated = metric(&m, "bulwark_fixes_evaluated_total", "") as u64;
        if evaluated >= stored {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the engine evaluated {evaluated} of {stored} stored fixes within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Counts the rows in a stopped server's store.
pub async fn count_rows(dir: &std::path::Path) -> Result<i64> {
    let dir = dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || store::Store::open(&dir)).await??;
    let n = store.count_fixes().await?;
    tokio::task::spawn_blocking(move || store.close()).await?;
    Ok(n)
}

pub async fn run(opts: &Options, plan: SeedPlan) -> Result<LegResult> {
    if opts.devices < 2 || opts.clients == 0 || !(1..=255).contains(&opts.records) {
        bail!("--devices must be at least 2, --clients at least 1, --records 1 to 255");
    }
    if opts.devices > 2 * plan.cases {
        bail!(
            "--devices {} needs at least {} --cases",
            opts.devices,
            opts.devices / 2
        );
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    eprintln!(
        "  seeding {} cases ({} with a zone) …",
        plan.cases, plan.zones
    );
    let (_, took) = harness::seed(&data, plan).await?;
    eprintln!("  seeded in {:.1} s", took.as_secs_f64());
    let server = Server::start(&data, &ServeExtras::default()).await?;
    let conns = connect_all(server.teltonika, 0..opts.devices).await?;
    let n = opts.clients.max(1);
    // Client c owns devices c, c + n, c + 2n, …: the same split as `drive` makes.
    let mut per_client: Vec<Vec<(TcpStream, i64)>> = (0..n).map(|_| Vec::new()).collect();
    for (d, s) in conns {
        if let Some(v) = per_client.get_mut(d % n) {
            v.push((s, 0));
        }
    }
    let (before_stored, before_dup) = door_counts(&server).await?;
    let records = opts.records;
    let (frames, elapsed, h) = drive(
        per_client,
        opts.devices,
        opts.duration,
        move |mut conns: Vec<(TcpStream, i64)>, device, k| async move {
            let (s, last) = conns
                .get_mut(device / n)
                .context("device outside its client")?;
            let frame = harness::teltonika_fixes(device, k, records, last)?;
            s.write_all(&frame).await?;
            harness::read_teltonika_ack(s, records as u32).await?;
            Ok(conns)
        },
    )
    .await?;
    // Each acknowledged packet made all its records durable.
    let durable = frames * records as u64;
    let (stored, dup) = door_counts(&server).await?;
    let (stored, dup) = (stored - before_stored, dup - before_dup);
    if stored + dup != durable {
        bail!("{durable} acks arrived but the server counted {stored} stored + {dup} duplicates");
    }
    let drained = wait_evaluated(&server, stored).await?;
    let (rss, hwm) = server.rss_kib()?;
    let data_dir = server.data_dir.clone();
    server.stop().await?;
    let rows = count_rows(&data_dir).await?;
    if rows as u64 != stored {
        bail!("the server counted {stored} stored fixes but its store holds {rows}");
    }
    let checked = format!(
        "{durable} acks = {rows} rows in the store after stop ({dup} duplicates); all evaluated \
         {:.2} s after the last ack; server RSS {} MiB (peak {} MiB)",
        drained.as_secs_f64(),
        rss / 1024,
        hwm / 1024
    );
    Ok(leg(
        if records == 1 {
            "Bulwark (Teltonika TCP, durable ack, evaluated)"
        } else {
            "Bulwark (Teltonika TCP, several records a packet, durable ack, evaluated)"
        },
        durable,
        elapsed,
        &h,
        checked,
    ))
}
