//! `bulwark bench overload`: offered load past the sustainable rate, open loop.
//!
//! Every device has its own Teltonika connection with a sender that writes fixes at its
//! share of the offered rate without waiting for acks, and a reader that matches each ack
//! with the oldest unacknowledged send. Three phases: calm (`--calm-rate`), overload
//! (`--rate`), calm again. Each second the bench prints what was offered and acknowledged,
//! the ack latency of that second, the server's engine and store queues, whether the
//! ingest-backlog alert is raised, and the server's RSS. At the end the senders stop, every
//! outstanding ack is awaited, the server is stopped and the rows in its store are counted:
//! every acknowledged fix must be there.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::bulwark_leg::{connect_all, count_rows, wait_evaluated};
use super::harness::{self, SeedPlan, ServeExtras, Server, metric};

#[derive(Debug, Clone)]
pub struct OverloadOptions {
    pub plan: SeedPlan,
    pub devices: usize,
    pub rate: f64,
    pub calm_rate: f64,
    pub phases: [Duration; 3],
}

struct Shared {
    /// Offered rate in fixes/s, as f64 bits.
    rate: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    stop: AtomicU64,
    /// Ack latencies of the current second.
    second: Mutex<Histogram<u64>>,
    /// Ack latencies of the whole run.
    all: Mutex<Histogram<u64>>,
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("histogram")
}

impl Shared {
    fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }
    fn set_rate(&self, r: f64) {
        self.rate.store(r.to_bits(), Ordering::Relaxed);
    }
    fn record(&self, us: u64) {
        for h in [&self.second, &self.all] {
            if let Ok(mut h) = h.lock() {
                let _ = h.record(us.max(1));
            }
        }
    }
}

async fn device(
    d: usize,
    stream: tokio::net::TcpStream,
    devices: usize,
    shared: Arc<Shared>,
) -> Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let pending: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let p = pending.clone();
    let sh = shared.clone();
    let sender_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = sender_done.clone();
    let reader = tokio::spawn(async move {
        // `read` (unlike `read_exact`) is cancel-safe, so the timeout never loses bytes.
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut done_at: Option<Instant> = None;
        loop {
            while let Some(head) = buf.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok()) {
                let n = u32::from_be_bytes(head);
                buf.drain(..4);
                if n != 1 {
                    bail!("device {d}: ack for {n} records");
                }
                let sent = p.lock().ok().and_then(|mut q| q.pop_front());
                if let Some(sent) = sent {
                    sh.record(sent.elapsed().as_micros() as u64);
                }
                sh.acked.fetch_add(1, Ordering::Relaxed);
            }
            // The sender has stopped and everything it sent is acknowledged.
            if done.load(Ordering::Acquire) && p.lock().map(|q| q.is_empty()).unwrap_or(true) {
                return anyhow::Ok(());
            }
            if done.load(Ordering::Acquire) {
                let since = *done_at.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(300) {
                    bail!("device {d}: acks still missing 300 s after the last send");
                }
            }
            match tokio::time::timeout(Duration::from_millis(500), rd.read(&mut chunk)).await {
                Err(_) => continue,
                Ok(Ok(0)) => bail!("device {d}: server closed the connection"),
                Ok(Ok(n)) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    });
    let mut k = 0u64;
    let mut last = 0i64;
    let mut next = tokio::time::Instant::now()
        + Duration::from_secs_f64(rand::random::<f64>() * devices as f64 / shared.rate().max(1.0));
    while shared.stop.load(Ordering::Relaxed) == 0 {
        let every = Duration::from_secs_f64(devices as f64 / shared.rate().max(1.0));
        next += every;
        let now = tokio::time::Instant::now();
        if next < now {
            // Behind (the socket would not take more): do not burst to catch up.
            next = now;
        }
        tokio::time::sleep_until(next).await;
        let frame = harness::teltonika_fix(d, k, harness::next_ms(&mut last))?;
        if let Ok(mut q) = pending.lock() {
            q.push_back(Instant::now());
        }
        wr.write_all(&frame).await?;
        shared.sent.fetch_add(1, Ordering::Relaxed);
        k += 1;
    }
    sender_done.store(true, Ordering::Release);
    reader.await.context("reader task")??;
    Ok(())
}

pub async fn run(o: OverloadOptions) -> Result<()> {
    if o.devices > 2 * o.plan.cases || o.devices == 0 {
        bail!("--devices must be between 1 and 2 × --cases");
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    eprintln!(
        "  seeding {} cases ({} with a zone) …",
        o.plan.cases, o.plan.zones
    );
    let (_, took) = harness::seed(&data, o.plan).await?;
    eprintln!("  seeded in {:.1} s", took.as_secs_f64());
    let server = Server::start(&data, &ServeExtras::default()).await?;
    let conns = connect_all(server.teltonika, 0..o.devices).await?;
    let shared = Arc::new(Shared {
        rate: AtomicU64::new(o.calm_rate.to_bits()),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        stop: AtomicU64::new(0),
        second: Mutex::new(histogram()?),
        all: Mutex::new(histogram()?),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (d, s) in conns {
        tasks.spawn(device(d, s, o.devices, shared.clone()));
    }
    println!(
        "| t s | phase | offered/s | sent/s | acked/s | ack p50 ms | ack p99 ms | engine queue | store queue | backlog alert | RSS MiB |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
    );
    let started = Instant::now();
    let ends = [
        o.phases[0],
        o.phases[0] + o.phases[1],
        o.phases[0] + o.phases[1] + o.phases[2],
    ];
    let (mut last_sent, mut last_acked) = (0u64, 0u64);
    let mut max_rss = 0u64;
    let mut raised_seen = false;
    let mut t = 0u64;
    loop {
        t += 1;
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            started + Duration::from_secs(t),
        ))
        .await;
        let el = started.elapsed();
        let phase = if el < ends[0] {
            "calm"
        } else if el < ends[1] {
            "overload"
        } else {
            "recovery"
        };
        let sent = shared.sent.load(Ordering::Relaxed);
        let acked = shared.acked.load(Ordering::Relaxed);
        let (p50, p99) = match shared.second.lock() {
            Ok(mut h) => {
                let v = (
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                );
                h.reset();
                v
            }
            Err(_) => (0.0, 0.0),
        };
        let m = server.metrics().await.unwrap_or_default();
        let backlog = metric(&m, "bulwark_ingest_backlog", "") >= 1.0;
        raised_seen |= backlog;
        let (rss, _) = server.rss_kib()?;
        max_rss = max_rss.max(rss);
        println!(
            "| {t} | {phase} | {:.0} | {} | {} | {p50:.1} | {p99:.1} | {:.0} | {:.0} | {} | {} |",
            shared.rate(),
            sent - last_sent,
            acked - last_acked,
            metric(&m, "bulwark_engine_queue", ""),
            metric(&m, "bulwark_store_queue", ""),
            if backlog { "RAISED" } else { "-" },
            rss / 1024
        );
        (last_sent, last_acked) = (sent, acked);
        if el >= ends[2] {
            break;
        }
        shared.set_rate(if el + Duration::from_secs(1) >= ends[0] && el < ends[1] {
            o.rate
        } else {
            o.calm_rate
        });
    }
    shared.stop.store(1, Ordering::Relaxed);
    let drain = Instant::now();
    while let Some(done) = tasks.join_next().await {
        done.context("device task")??;
    }
    let sent = shared.sent.load(Ordering::Relaxed);
    let acked = shared.acked.load(Ordering::Relaxed);
    eprintln!(
        "  senders stopped; outstanding acks arrived within {:.1} s",
        drain.elapsed().as_secs_f64()
    );
    let m = server.metrics().await?;
    let stored = metric(&m, "bulwark_fixes_stored_total", "door=\"teltonika\"") as u64;
    let dup = metric(&m, "bulwark_fixes_duplicate_total", "door=\"teltonika\"") as u64;
    let raised = metric(&m, "bulwark_alerts_raised_total", "rule=\"ingest_backlog\"") as u64;
    wait_evaluated(&server, stored).await?;
    let (_, hwm) = server.rss_kib()?;
    let data_dir = server.data_dir.clone();
    server.stop().await?;
    let rows = count_rows(&data_dir).await?;
    let all = shared
        .all
        .lock()
        .map(|h| h.clone())
        .map_err(|_| anyhow::anyhow!("histogram poisoned"))?;
    println!(
        "\nsent {sent}, acknowledged {acked}, stored {stored} (+{dup} duplicates), rows in the \
         store after stop {rows}; ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over the run",
        all.value_at_quantile(0.5) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        all.max() as f64 / 1000.0
    );
    println!(
        "backlog alert raised {raised} time(s) (seen in a sample: {raised_seen}); server RSS \
         peak {} MiB (max sampled {} MiB)",
        hwm / 1024,
        max_rss / 1024
    );
    if (rows as u64) < acked {
        bail!("LOST: {acked} fixes acknowledged but only {rows} rows stored");
    }
    if sent != acked {
        bail!("{sent} sent but {acked} acknowledged after the drain");
    }
    println!("nothing acknowledged was lost: {acked} acks ≤ {rows} rows");
    Ok(())
}
