//! `bulwark simulate`: a load generator that drives many simulated devices over a real
//! protocol against a running server and measures stored throughput and ack latency.
//!
//! A fix counts as acknowledged only when the server's acknowledgement for it has arrived,
//! and the server sends that only once the fix is durable. An acknowledgement does not say
//! whether the fix was new or a resend the store recognised (both are acknowledged), so the
//! headline figure is rows stored, read from the server's own counters
//! (`bulwark_fixes_stored_total` and `bulwark_fixes_duplicate_total` for the door, before and
//! after the run), not acks.
//!
//! Each simulated device sends what a real one sends: distinct, increasing device times, at
//! most one fix per device-second on the protocols whose device time is whole seconds (GT06,
//! H02, Watch). A higher rate takes more devices, not faster ones.
//!
//! The generator must weigh less than what it measures: every device is a task on the one
//! shared runtime (no thread per device), with a connection and a few hundred bytes of state;
//! ack latencies go into one shared histogram (one per device cost 170 KiB each, 1 GB at
//! 5,000 devices).

pub(crate) mod frames;

use anyhow::{Context, Result, bail};
use frames::Report;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimProtocol {
    Gt06,
    H02,
    Watch,
    Teltonika,
    Osmand,
    Native,
}

impl SimProtocol {
    fn name(self) -> &'static str {
        match self {
            SimProtocol::Gt06 => "gt06",
            SimProtocol::H02 => "h02",
            SimProtocol::Watch => "watch",
            SimProtocol::Teltonika => "teltonika",
            SimProtocol::Osmand => "osmand",
            SimProtocol::Native => "native",
        }
    }

    /// The resolution of the device time the protocol carries: GT06, H02 and Watch frames
    /// carry whole seconds, Teltonika and OsmAnd milliseconds, the native door microseconds
    /// (1 ms is used).
    fn time_step_us(self) -> i64 {
        match self {
            SimProtocol::Gt06 | SimProtocol::H02 | SimProtocol::Watch => 1_000_000,
            SimProtocol::Teltonika | SimProtocol::Osmand | SimProtocol::Native => 1_000,
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            SimProtocol::Gt06 => Some(5023),
            SimProtocol::H02 => Some(5013),
            SimProtocol::Watch => Some(5093),
            SimProtocol::Teltonika => Some(5027),
            SimProtocol::Osmand => Some(5055),
            SimProtocol::Native => None,
        }
    }
}

/// What `bulwark simulate` was asked to do.
pub struct Options {
    pub server: String,
    pub http_port: u16,
    pub port: Option<u16>,
    pub protocol: SimProtocol,
    pub devices: usize,
    pub interval: Duration,
    pub duration: Duration,
    /// Upload a stored history (device times in the past, one tick apart) instead of live
    /// fixes: see [`backfill_start_us`].
    pub backfill: bool,
    pub token: String,
    pub progress: bool,
}

struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    connected: AtomicU64,
    /// Ack latencies of every device, in µs. One histogram for all: a lock held for one
    /// increment costs far less than a histogram per device.
    latencies: Mutex<Histogram<u64>>,
}

impl Counters {
    fn new() -> Result<Self> {
        Ok(Counters {
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            latencies: Mutex::new(histogram()?),
        })
    }

    fn record_latency(&self, us: u64) {
        if let Ok(mut h) = self.latencies.lock() {
            let _ = h.record(us.max(1));
        }
    }
}

/// The server's count of fixes one door stored and recognised as resends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DoorCounts {
    stored: u64,
    duplicate: u64,
}

/// Reads `bulwark_fixes_stored_total` and `bulwark_fixes_duplicate_total` for one door from
/// a Prometheus text exposition. A counter not yet exported counts as 0.
fn door_counts(metrics: &str, door: &str) -> DoorCounts {
    let label = format!("door=\"{door}\"");
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    DoorCounts {
        stored: value("bulwark_fixes_stored_total{"),
        duplicate: value("bulwark_fixes_duplicate_total{"),
    }
}

async fn fetch_door_counts(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    door: &str,
) -> Result<DoorCounts> {
    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(door_counts(&text, door))
}

/// The device time of a device's next fix: now, at the protocol's resolution, but always at
/// least one step after the previous one, so that no two fixes of a device share a device
/// time (a real device does not report twice in one of its clock's ticks).
fn next_device_time_us(now_us: i64, last_us: Option<i64>, step_us: i64) -> i64 {
    let t = now_us - now_us.rem_euclid(step_us);
    match last_us {
        Some(last) => t.max(last + step_us),
        None => t,
    }
}

/// Where a device's uploaded history starts: far enough back that one fix per tick for the
/// whole run, at one fix per `interval`, never reaches the present (a device does not report
/// from the future), plus an hour's margin.
fn backfill_start_us(now_us: i64, duration: Duration, interval: Duration, step_us: i64) -> i64 {
    let fixes = (duration.as_secs_f64() / interval.as_secs_f64().max(1e-6)).ceil() as i64 + 1;
    let back = fixes.saturating_mul(step_us).saturating_add(3_600_000_000);
    let t = now_us.saturating_sub(back);
    t - t.rem_euclid(step_us)
}

fn histogram() -> Result<Histogram<u64>> {
    // Microseconds, 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    /// Rows the server stored from this door during the run (`None`: its metrics could not
    /// be read); the figure that counts.
    pub stored: Option<u64>,
    /// Fixes the server acknowledged as resends of stored ones.
    pub duplicate: Option<u64>,
    pub elapsed_s: f64,
}

/// Runs the simulation, prints the summary and returns it.
pub async fn run(opts: Options) -> Result<Summary> {
    if opts.devices == 0 {
        bail!("--devices must be at least 1");
    }
    if opts.protocol.time_step_us() >= 1_000_000
        && opts.interval < Duration::from_secs(1)
        && !opts.backfill
    {
        bail!(
            "--interval {:.3} s: {} carries whole-second device times, so a real device sends at \
             most one fix per second; use more --devices for a higher rate, or --backfill (a \
             stored history uploaded after a coverage gap)",
            opts.interval.as_secs_f64(),
            opts.protocol.name()
        );
    }
    let run_id: u32 = rand::random::<u32>() % 100_000;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(opts.devices.min(2048))
        .build()?;
    let base = format!("http://{}:{}", opts.server, opts.http_port);
    let ids: Vec<String> = (0..opts.devices)
        .map(|i| hardware_id(opts.protocol, run_id, i))
        .collect();

    eprintln!(
        "registering {} {} devices at {base} …",
        opts.devices,
        opts.protocol.name()
    );
    register(&http, &base, &opts, &ids).await?;
    let door = opts.protocol.name();
    let before = fetch_door_counts(&http, &base, &opts.token, door).await;

    let counters = Arc::new(Counters::new()?);
    let bar = if opts.progress {
        let b = ProgressBar::new(opts.duration.as_secs());
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, id) in ids.into_iter().enumerate() {
        let ctx = DeviceCtx {
            index: i,
            id,
            opts: OptsView {
                server: opts.server.clone(),
                port: opts.port.or(opts.protocol.default_port()),
                base: base.clone(),
                protocol: opts.protocol,
                interval: opts.interval,
                devices: opts.devices,
                duration: opts.duration,
                backfill: opts.backfill,
            },
            http: http.clone(),
            counters: counters.clone(),
            deadline,
        };
        tasks.spawn(device(ctx));
    }

    let ticker = {
        let bar = bar.clone();
        let c = counters.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let el = started.elapsed().as_secs_f64().max(1e-3);
                let acked = c.acked.load(Ordering::Relaxed);
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!(
                    "connected {}  sent {}  acked {}  ({:.0}/s)  errors {}",
                    c.connected.load(Ordering::Relaxed),
                    c.sent.load(Ordering::Relaxed),
                    acked,
                    acked as f64 / el,
                    c.errors.load(Ordering::Relaxed)
                ));
            }
        })
    };

    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "simulated device stopped");
            }
            Err(e) => tracing::warn!(error = %e, "simulated device task failed"),
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    // Every ack has arrived, and the server counts a fix before it acks it.
    let after = fetch_door_counts(&http, &base, &opts.token, door).await;
    let sent = counters.sent.load(Ordering::Relaxed);
    let acked = counters.acked.load(Ordering::Relaxed);
    let all = counters
        .latencies
        .lock()
        .map(|h| h.clone())
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?;
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    println!("protocol      {}", opts.protocol.name());
    println!("devices       {}", opts.devices);
    println!(
        "interval      {:.1} s, duration {:.0} s (ran {elapsed:.1} s)",
        opts.interval.as_secs_f64(),
        opts.duration.as_secs_f64()
    );
    println!("fixes sent    {sent}");
    println!("acknowledged  {acked}");
    println!("errors        {}", counters.errors.load(Ordering::Relaxed));
    let mut summary = Summary {
        sent,
        acked,
        errors: counters.errors.load(Ordering::Relaxed),
        stored: None,
        duplicate: None,
        elapsed_s: elapsed,
    };
    match (before, after) {
        (Ok(b), Ok(a)) => {
            let stored = a.stored.saturating_sub(b.stored);
            let duplicate = a.duplicate.saturating_sub(b.duplicate);
            summary.stored = Some(stored);
            summary.duplicate = Some(duplicate);
            println!(
                "acked new     {stored} (rows stored, the server's bulwark_fixes_stored_total{{door=\"{door}\"}})"
            );
            println!(
                "acked dup     {duplicate} (resends recognised, bulwark_fixes_duplicate_total)"
            );
            println!("stored rate   {:.0} fixes/s", stored as f64 / elapsed);
            if stored + duplicate != acked {
                println!(
                    "note          the server counted {} fixes at this door and {acked} acks arrived \
                     here: another client used the door, or acks were lost with a connection",
                    stored + duplicate
                );
            }
        }
        (b, a) => {
            let e = b
                .err()
                .or(a.err())
                .map(|e| e.to_string())
                .unwrap_or_default();
            println!("rows stored   unknown: the server's /metrics could not be read ({e})");
        }
    }
    println!("acked rate    {:.0} acks/s", acked as f64 / elapsed);
    println!(
        "ack latency   p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(0.50),
        ms(0.90),
        ms(0.99),
        all.max() as f64 / 1000.0
    );
    Ok(summary)
}

/// A hardware id in the format the protocol uses, unique per run and device.
fn hardware_id(p: SimProtocol, run: u32, i: usize) -> String {
    match p {
        // 15-digit IMEIs: 86 + run (5) + device (8).
        SimProtocol::Gt06 | SimProtocol::Teltonika | SimProtocol::Native | SimProtocol::Osmand => {
            format!("86{run:05}{i:08}")
        }
        // H02 and Watch ids are 10 digits.
        SimProtocol::H02 | SimProtocol::Watch => format!("{:02}{i:08}", run % 100),
    }
}

fn device_token(id: &str) -> String {
    format!("sim-device-token-{id}")
}

async fn register(
    http: &reqwest::Client,
    base: &str,
    opts: &Options,
    ids: &[String],
) -> Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let body = serde_json::json!({
            "kind": "tracker",
            "protocol": opts.protocol.name(),
            "hardware_id": id,
            // The HTTP doors require a device token.
            "token": matches!(opts.protocol, SimProtocol::Native | SimProtocol::Osmand).then(|| device_token(id)),
        });
        let req = http
            .post(format!("{base}/api/v1/devices"))
            .bearer_auth(&opts.token)
            .json(&body);
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let r = req.send().await?;
            // 409: registered by an earlier run with the same id; usable as is.
            if !(r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT) {
                bail!("registering a device: {} {}", r.status(), r.text().await?);
            }
            Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

struct OptsView {
    server: String,
    port: Option<u16>,
    base: String,
    protocol: SimProtocol,
    interval: Duration,
    devices: usize,
    duration: Duration,
    backfill: bool,
}

struct DeviceCtx {
    index: usize,
    id: String,
    opts: OptsView,
    http: reqwest::Client,
    counters: Arc<Counters>,
    deadline: Instant,
}

/// A slow random walk around Seoul, one per device.
struct Walk {
    lat: f64,
    lon: f64,
    course: f64,
}

impl Walk {
    fn new(i: usize) -> Self {
        let a = (i as f64) * 2.399_963; // golden angle: devices spread evenly
        let r = 0.05 * ((i % 1000) as f64 / 1000.0).sqrt();
        Walk {
            lat: 37.5665 + r * a.sin(),
            lon: 126.978 + r * a.cos(),
            course: (a.to_degrees()).rem_euclid(360.0),
        }
    }

    fn step(&mut self, secs: f64, time: jiff::Timestamp) -> Report {
        self.course = (self.course + rand::random::<f64>() * 40.0 - 20.0).rem_euclid(360.0);
        let d = 1.4 * secs / 111_195.0; // walking pace
        self.lat += d * self.course.to_radians().cos();
        self.lon += d * self.course.to_radians().sin() / self.lat.to_radians().cos();
        Report {
            time,
            lat: self.lat,
            lon: self.lon,
            speed_kmh: 5.0,
            course_deg: self.course,
        }
    }
}

async fn device(ctx: DeviceCtx) -> Result<()> {
    // Spread the devices' first reports over one interval, as real fleets are spread.
    let offset = ctx
        .opts
        .interval
        .mul_f64(ctx.index as f64 / ctx.opts.devices as f64);
    tokio::time::sleep(offset).await;
    let mut walk = Walk::new(ctx.index);
    let mut conn = match ctx.opts.protocol {
        SimProtocol::Osmand | SimProtocol::Native => None,
        _ => Some(connect(&ctx).await?),
    };
    ctx.counters.connected.fetch_add(1, Ordering::Relaxed);
    let mut tick = tokio::time::interval(ctx.opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serial: u16 = 2;
    let mut seq: i64 = 0;
    let mut buf = Vec::new();
    let step_us = ctx.opts.protocol.time_step_us();
    let mut last_time_us = ctx.opts.backfill.then(|| {
        backfill_start_us(
            jiff::Timestamp::now().as_microsecond(),
            ctx.opts.duration,
            ctx.opts.interval,
            step_us,
        )
    });
    loop {
        tick.tick().await;
        if Instant::now() >= ctx.deadline {
            break;
        }
        let t = match (ctx.opts.backfill, last_time_us) {
            (true, Some(last)) => last + step_us,
            _ => next_device_time_us(
                jiff::Timestamp::now().as_microsecond(),
                last_time_us,
                step_us,
            ),
        };
        last_time_us = Some(t);
        let time = jiff::Timestamp::from_microsecond(t).context("device time out of range")?;
        let r = walk.step(ctx.opts.interval.as_secs_f64(), time);
        seq += 1;
        serial = serial.wrapping_add(1);
        ctx.counters.sent.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        let ok = match (&mut conn, ctx.opts.protocol) {
            (Some(s), p) => {
                let frame = match p {
                    SimProtocol::Gt06 => frames::gt06_location(&r, serial),
                    SimProtocol::H02 => frames::h02_location(&ctx.id, &r),
                    SimProtocol::Watch => frames::watch_location(&ctx.id, &r),
                    _ => frames::teltonika_location(&r),
                };
                s.write_all(&frame).await?;
                read_ack(s, p, &mut buf).await?;
                true
            }
            (None, SimProtocol::Osmand) => {
                let port = ctx.opts.port.unwrap_or(5055);
                let resp = ctx
                    .http
                    .get(format!("http://{}:{port}/", ctx.opts.server))
                    .query(&[
                        ("id", ctx.id.as_str()),
                        ("token", &device_token(&ctx.id)),
                        ("lat", &format!("{:.6}", r.lat)),
                        ("lon", &format!("{:.6}", r.lon)),
                        ("timestamp", &r.time.as_millisecond().to_string()),
                        ("accuracy", "10"),
                    ])
                    .send()
                    .await?;
                resp.status().is_success()
            }
            (None, _) => {
                let body = serde_json::json!({"fixes": [{
                    "seq": seq, "time": r.time.to_string(), "lat": r.lat, "lon": r.lon, "accuracy_m": 10.0
                }]});
                let resp = ctx
                    .http
                    .post(format!("{}/api/v1/ingest/batch", ctx.opts.base))
                    .bearer_auth(device_token(&ctx.id))
                    .json(&body)
                    .send()
                    .await?;
                resp.status().is_success()
            }
        };
        if ok {
            ctx.counters.acked.fetch_add(1, Ordering::Relaxed);
            ctx.counters.record_latency(t0.elapsed().as_micros() as u64);
        } else {
            ctx.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

async fn connect(ctx: &DeviceCtx) -> Result<TcpStream> {
    let port = ctx.opts.port.context("no port for this protocol")?;
    let mut s = TcpStream::connect((ctx.opts.server.as_str(), port))
        .await
        .with_context(|| format!("connecting to {}:{port}", ctx.opts.server))?;
    s.set_nodelay(true)?;
    let mut buf = Vec::new();
    match ctx.opts.protocol {
        SimProtocol::Gt06 => {
            s.write_all(&frames::gt06_login(&ctx.id, 1)).await?;
            read_ack(&mut s, SimProtocol::Gt06, &mut buf).await?;
        }
        SimProtocol::Teltonika => {
            s.write_all(&frames::teltonika_imei(&ctx.id)).await?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await?;
            if b[0] != 1 {
                bail!("server refused IMEI {}", ctx.id);
            }
        }
        _ => {}
    }
    Ok(s)
}

/// Reads one acknowledgement; bytes after it (a command) stay in `buf` for the next call.
async fn read_ack(s: &mut TcpStream, p: SimProtocol, buf: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 512];
    loop {
        let end = match p {
            SimProtocol::Gt06 => (buf.len() >= 10).then_some(10),
            SimProtocol::Teltonika => (buf.len() >= 4).then_some(4),
            SimProtocol::H02 => buf.iter().position(|&b| b == b'#').map(|i| i + 1),
            SimProtocol::Watch => buf.iter().position(|&b| b == b']').map(|i| i + 1),
            _ => Some(0),
        };
        if let Some(end) = end {
            buf.drain(..end);
            return Ok(());
        }
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut chunk))
            .await
            .context("no acknowledgement within 60 s")??;
        if n == 0 {
            bail!("server closed the connection");
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn device_times_are_distinct_and_increasing_at_the_protocols_resolution() {
        // Called faster than the clock ticks (three times in one second, and with the clock
        // stepping back), a whole-second device still moves one second each time.
        let s = 1_000_000;
        let now = 1_780_000_000_250_000;
        let a = next_device_time_us(now, None, s);
        let b = next_device_time_us(now + 100_000, Some(a), s);
        let c = next_device_time_us(now - 5_000_000, Some(b), s);
        let d = next_device_time_us(now + 10_000_000, Some(c), s);
        assert_eq!(
            [a, b, c, d],
            [
                1_780_000_000_000_000,
                1_780_000_001_000_000,
                1_780_000_002_000_000,
                1_780_000_010_000_000
            ]
        );
        // Millisecond protocols keep milliseconds.
        let m = next_device_time_us(now + 1_234, Some(now), 1_000);
        assert_eq!(m, now + 1_000);
    }

    #[test]
    fn a_backfill_history_stays_in_the_past_at_the_protocols_resolution() {
        let now = 1_780_000_000_123_456;
        // 20 s at one fix per millisecond: 20,000 one-second ticks, all before now.
        let start = backfill_start_us(
            now,
            Duration::from_secs(20),
            Duration::from_millis(1),
            1_000_000,
        );
        assert_eq!(start.rem_euclid(1_000_000), 0);
        let last = start + 20_001 * 1_000_000;
        assert!(last < now, "{start} {last} {now}");
        assert!(now - start < 20_002 * 1_000_000 + 3_700_000_000);
    }

    #[test]
    fn whole_second_protocols_refuse_more_than_one_fix_per_device_second() {
        let opts = |protocol, interval_ms| Options {
            server: "127.0.0.1".into(),
            http_port: 1,
            port: Some(1),
            protocol,
            devices: 1,
            interval: Duration::from_millis(interval_ms),
            duration: Duration::from_secs(1),
            backfill: false,
            token: String::new(),
            progress: false,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for p in [SimProtocol::Gt06, SimProtocol::H02, SimProtocol::Watch] {
            let err = rt.block_on(run(opts(p, 100))).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains("whole-second")),
                "{p:?}: {err:?}"
            );
        }
    }

    /// Against a real server on real sockets: what the summary calls stored is what the store
    /// holds, every ack was a new fix (distinct device seconds), and each device's device times
    /// increase by at least a second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_counts_the_rows_the_server_stored() {
        let dir = tempfile::tempdir().unwrap();
        let token = "simulate-test-staff-token-0123456789";
        let running = server::start(server::Config {
            data_dir: dir.path().to_path_buf(),
            bind: [127, 0, 0, 1].into(),
            http_port: 0,
            osmand_port: Some(0),
            admin_token: Some(token.into()),
            devices: server::config::DeviceListeners::ephemeral(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut total = 0;
        // Live at one fix per second, and a stored history uploaded ten fixes a second.
        for (p, proto, interval_ms, backfill) in [
            (SimProtocol::Gt06, domain::Protocol::Gt06, 1_000, false),
            (SimProtocol::H02, domain::Protocol::H02, 1_000, false),
            (SimProtocol::Gt06, domain::Protocol::Gt06, 100, true),
        ] {
            let s = run(Options {
                server: "127.0.0.1".into(),
                http_port: running.http_addr.port(),
                port: Some(running.device_addrs[&proto].port()),
                protocol: p,
                devices: 4,
                interval: Duration::from_millis(interval_ms),
                duration: Duration::from_millis(3_500),
                backfill,
                token: token.into(),
                progress: false,
            })
            .await
            .unwrap();
            total += s.acked as i64;
            assert!(s.acked >= 8, "{p:?}: {s:?}");
            assert_eq!(
                (s.stored, s.duplicate, s.errors),
                (Some(s.acked), Some(0), 0),
                "{p:?}"
            );
        }
        assert_eq!(running.store.count_fixes().await.unwrap(), total);
        for f in running
            .store
            .latest_fixes(&store::Authorized::system("simulation summary"))
            .await
            .unwrap()
        {
            let track = running
                .store
                .track(
                    &store::Authorized::system("simulate: the report reads back what was stored"),
                    f.device_id,
                    domain::UnixMicros(0),
                    domain::UnixMicros(i64::MAX),
                    100,
                )
                .await
                .unwrap();
            assert!(
                track
                    .windows(2)
                    .all(|w| w[1].device_time.0 - w[0].device_time.0 >= 1_000_000),
                "{track:?}"
            );
            assert!(
                track.iter().all(|f| f.device_time <= f.received_time),
                "no fix from the future: {track:?}"
            );
        }
        running.shutdown().await;
    }

    #[test]
    fn door_counts_are_read_from_the_servers_exposition() {
        let text = "# TYPE bulwark_fixes_stored_total counter\n\
            bulwark_fixes_stored_total{door=\"gt06\"} 600\n\
            bulwark_fixes_stored_total{door=\"gt06x\"} 7\n\
            bulwark_fixes_duplicate_total{door=\"gt06\"} 98561\n\
            bulwark_fixes_stored_total{door=\"native\"} 5\n";
        assert_eq!(
            door_counts(text, "gt06"),
            DoorCounts {
                stored: 600,
                duplicate: 98_561
            }
        );
        assert_eq!(door_counts(text, "h02"), DoorCounts::default());
    }
}
