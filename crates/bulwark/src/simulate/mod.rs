//! `bulwark simulate`: a load generator that drives many simulated devices over a real
//! protocol against a running server and measures acknowledged throughput and ack latency.
//!
//! A fix counts as acknowledged only when the server's acknowledgement for it has arrived,
//! and the server sends that only once the fix is durable, so the rate measured is the rate of
//! durable ingest, not of bytes written.

mod frames;

use anyhow::{Context, Result, bail};
use frames::Report;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    pub token: String,
    pub progress: bool,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    connected: AtomicU64,
}

struct DeviceResult {
    latencies: Histogram<u64>,
}

fn histogram() -> Result<Histogram<u64>> {
    // Microseconds, 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")
}

/// Runs the simulation and prints the summary.
pub async fn run(opts: Options) -> Result<()> {
    if opts.devices == 0 {
        bail!("--devices must be at least 1");
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

    let counters = Arc::new(Counters::default());
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

    let mut all = histogram()?;
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(r)) => {
                let _ = all.add(&r.latencies);
            }
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
    let sent = counters.sent.load(Ordering::Relaxed);
    let acked = counters.acked.load(Ordering::Relaxed);
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
    println!("acked rate    {:.0} fixes/s", acked as f64 / elapsed);
    println!(
        "ack latency   p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(0.50),
        ms(0.90),
        ms(0.99),
        all.max() as f64 / 1000.0
    );
    Ok(())
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

    fn step(&mut self, secs: f64) -> Report {
        self.course = (self.course + rand::random::<f64>() * 40.0 - 20.0).rem_euclid(360.0);
        let d = 1.4 * secs / 111_195.0; // walking pace
        self.lat += d * self.course.to_radians().cos();
        self.lon += d * self.course.to_radians().sin() / self.lat.to_radians().cos();
        Report {
            time: jiff::Timestamp::now(),
            lat: self.lat,
            lon: self.lon,
            speed_kmh: 5.0,
            course_deg: self.course,
        }
    }
}

async fn device(ctx: DeviceCtx) -> Result<DeviceResult> {
    let mut lat = histogram()?;
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
    loop {
        tick.tick().await;
        if Instant::now() >= ctx.deadline {
            break;
        }
        let r = walk.step(ctx.opts.interval.as_secs_f64());
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
            let _ = lat.record((t0.elapsed().as_micros() as u64).max(1));
        } else {
            ctx.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(DeviceResult { latencies: lat })
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
