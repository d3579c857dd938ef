//! `bulwark bench latency`: fix-to-alert and SOS-to-alert latency, from the moment the
//! bench writes the frame that carries a breach (or an SOS) to a Teltonika socket until the
//! alert arrives on a monitoring officer's live stream (`/api/v1/live`, Server-Sent Events),
//! idle and with background load at chosen shares of the sustained rate.
//!
//! The server is a `bulwark serve` child on a fresh data directory seeded like the
//! alternatives bench (`--cases`, `--zones`). The sustained rate is measured first in the
//! same run (closed loop over the background devices, as `bench alternatives` does), then
//! each phase paces the background devices at its share of it. Every sample uses its own
//! case, assigned to the officer, so each breach raises a new alert (no episode is already
//! open): the protected person's phone reports her position, then the offender's monitor
//! reports a fix 33 m from her; the clock starts just before that frame is written. SOS
//! samples send a panic-priority record from another case's monitor.
//!
//! In cluster mode (`--cluster-nodes N`, with `--cluster-store postgres://…` and
//! `--cluster-nats nats://…`) a breach travels: node 1's door, the commit in PostgreSQL,
//! node 1's publish to JetStream, the owning node's engine, the alert's commit, that node's
//! hub, the live fan-out, the last node's stream.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::alternatives::position;
use super::bulwark_leg::connect_all;
use super::harness::{self, SeedPlan, SeededCase, ServeExtras, Server};

#[derive(Debug, Clone)]
pub struct LatencyOptions {
    pub plan: SeedPlan,
    /// Devices carrying the background load (offender/victim pairs of the first cases).
    pub background_devices: usize,
    /// Closed-loop connections for the calibration, and pacing tasks for the load.
    pub clients: usize,
    /// Breach and SOS samples per phase.
    pub samples: usize,
    /// Seconds of closed-loop calibration.
    pub calibrate: Duration,
    /// Background load of each phase, in percent of the calibrated rate (0: idle).
    pub loads: Vec<u32>,
    /// Run on a cluster of `bulwark serve --store … --cluster …` nodes instead of one
    /// embedded server: the samples' devices talk to node 1, the officer's live stream is
    /// on the last node, the background devices are spread over all of them.
    pub cluster: Option<harness::ClusterTarget>,
}

/// An alert as it arrived on the live stream.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) case: Option<i64>,
    pub(crate) device: Option<i64>,
    pub(crate) rule: String,
    pub(crate) at: Instant,
}

/// A background client: its devices' connections and where each is in its track.
struct BgClient {
    conns: Vec<(usize, TcpStream, i64)>,
    k: u64,
    next: usize,
}

impl BgClient {
    async fn one_fix(&mut self) -> Result<()> {
        let len = self.conns.len().max(1);
        let Some((d, s, last)) = self.conns.get_mut(self.next % len) else {
            bail!("background client without devices");
        };
        let frame = harness::teltonika_fix(*d, self.k, harness::next_ms(last))?;
        s.write_all(&frame).await?;
        harness::read_teltonika_ack(s, 1).await?;
        self.next += 1;
        if self.next.is_multiple_of(len) {
            self.k += 1;
        }
        Ok(())
    }
}

/// Runs every client until `stop` (closed loop when `rate` is `None`, else paced to `rate`
/// fixes/s in total); returns the clients and the fixes acknowledged.
async fn background(
    clients: Vec<BgClient>,
    rate: Option<f64>,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinSet<Result<(BgClient, u64)>>> {
    let n = clients.len().max(1) as f64;
    let mut set = tokio::task::JoinSet::new();
    for mut c in clients {
        let mut stop = stop.clone();
        let every = rate.map(|r| Duration::from_secs_f64(n / r.max(1.0)));
        set.spawn(async move {
            let mut count = 0u64;
            let mut next = tokio::time::Instant::now();
            while !*stop.borrow() {
                if let Some(every) = every {
                    next += every;
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = stop.changed() => break,
                    }
                }
                c.one_fix().await?;
                count += 1;
            }
            anyhow::Ok((c, count))
        });
    }
    Ok(set)
}

async fn collect(
    mut set: tokio::task::JoinSet<Result<(BgClient, u64)>>,
) -> Result<(Vec<BgClient>, u64)> {
    let mut clients = Vec::new();
    let mut total = 0;
    while let Some(done) = set.join_next().await {
        let (c, n) = done.context("background task")??;
        clients.push(c);
        total += n;
    }
    Ok((clients, total))
}

/// Reads the officer's live stream and forwards every alert event.
async fn read_stream(mut resp: reqwest::Response, tx: mpsc::UnboundedSender<Arrival>) {
    let mut buf = String::new();
    let mut event = String::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let at = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:")
                && event == "alert"
                && let Ok(v) = serde_json::from_str::<Value>(d.trim())
            {
                let _ = tx.send(Arrival {
                    case: v["case_id"].as_i64(),
                    device: v["device_id"].as_i64(),
                    rule: v["rule"].as_str().unwrap_or_default().to_string(),
                    at,
                });
            } else if line.is_empty() {
                event.clear();
            }
        }
    }
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Result<Value> {
    let r = http
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status}: {v}");
    }
    Ok(v)
}

/// Creates a monitoring officer assigned to `cases` through `server`, logs in and opens the
/// live stream on `live` (the same server, or another node of the cluster).
pub(crate) async fn officer_stream(
    server: &Server,
    live: &Server,
    cases: &[i64],
) -> Result<mpsc::UnboundedReceiver<Arrival>> {
    let http = reqwest::Client::new();
    let password = format!("bench-officer-{:016x}", rand::random::<u64>());
    let account = post(
        &http,
        format!("{}/api/v1/accounts", server.http),
        &server.token,
        json!({"username": "bench-officer", "password": password, "role": "monitoring_officer"}),
    )
    .await?;
    let id = account["account"]["id"]
        .as_i64()
        .context("account response without id")?;
    for c in cases {
        post(
            &http,
            format!("{}/api/v1/accounts/{id}/assignments", server.http),
            &server.token,
            json!({"case_id": c}),
        )
        .await?;
    }
    let login = post(
        &http,
        format!("{}/api/v1/auth/login", server.http),
        "",
        json!({"username": "bench-officer", "password": password}),
    )
    .await?;
    let token = login["token"]
        .as_str()
        .context("login response without token")?
        .to_string();
    let resp = http
        .get(format!("{}/api/v1/live", live.http))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(read_stream(resp, tx));
    Ok(rx)
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram")
}

/// Waits for the first alert matching `wanted`; others (earlier samples' updates) are dropped.
async fn wait_alert(
    rx: &mut mpsc::UnboundedReceiver<Arrival>,
    wanted: impl Fn(&Arrival) -> bool,
) -> Option<Arrival> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(a)) if wanted(&a) => return Some(a),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

struct Sampled {
    h: Histogram<u64>,
    missing: usize,
    rules: std::collections::BTreeMap<String, usize>,
}

impl Sampled {
    fn new() -> Result<Self> {
        Ok(Sampled {
            h: histogram()?,
            missing: 0,
            rules: Default::default(),
        })
    }

    fn add(&mut self, sent: Instant, a: Option<Arrival>) -> Result<()> {
        match a {
            Some(a) => {
                self.h
                    .record(a.at.saturating_duration_since(sent).as_micros().max(1) as u64)?;
                *self.rules.entry(a.rule).or_default() += 1;
            }
            None => self.missing += 1,
        }
        Ok(())
    }
}

async fn breach_sample(
    server: &Server,
    rx: &mut mpsc::UnboundedReceiver<Arrival>,
    i: usize,
    case: SeededCase,
    out: &mut Sampled,
) -> Result<()> {
    let src = std::net::IpAddr::from([127, 0, 0, 251]);
    let mut victim = harness::connect_teltonika(server.teltonika, src, 2 * i + 1).await?;
    let mut offender = harness::connect_teltonika(server.teltonika, src, 2 * i).await?;
    let (lat, lon) = position(2 * i + 1, 0);
    let mut t = 0i64;
    victim
        .write_all(&harness::teltonika_at(
            lat,
            lon,
            harness::next_ms(&mut t),
            0,
        )?)
        .await?;
    harness::read_teltonika_ack(&mut victim, 1).await?;
    // The victim's fix is evaluated before the offender's: commits reach the engine in order.
    let frame = harness::teltonika_at(lat + 0.0003, lon, harness::next_ms(&mut t), 0)?;
    let sent = Instant::now();
    offender.write_all(&frame).await?;
    let arrived = wait_alert(rx, |a| a.case == Some(case.case)).await;
    out.add(sent, arrived)?;
    harness::read_teltonika_ack(&mut offender, 1).await?;
    Ok(())
}

async fn sos_sample(
    server: &Server,
    rx: &mut mpsc::UnboundedReceiver<Arrival>,
    i: usize,
    case: SeededCase,
    out: &mut Sampled,
) -> Result<()> {
    let src = std::net::IpAddr::from([127, 0, 0, 252]);
    let mut offender = harness::connect_teltonika(server.teltonika, src, 2 * i).await?;
    let (lat, lon) = position(2 * i, 0);
    let mut t = 0i64;
    let frame = harness::teltonika_at(lat, lon, harness::next_ms(&mut t), 2)?;
    let sent = Instant::now();
    offender.write_all(&frame).await?;
    let arrived = wait_alert(rx, |a| {
        a.device == Some(case.offender_device) || a.case == Some(case.case)
    })
    .await;
    out.add(sent, arrived)?;
    harness::read_teltonika_ack(&mut offender, 1).await?;
    Ok(())
}

fn row(load: &str, bg: f64, kind: &str, s: &Sampled) -> String {
    let ms = |q: f64| s.h.value_at_quantile(q) as f64 / 1000.0;
    let rules: Vec<String> = s.rules.iter().map(|(r, n)| format!("{r} {n}")).collect();
    format!(
        "| {load} | {bg:.0} | {kind} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
        s.h.len(),
        ms(0.5),
        ms(0.99),
        s.h.max() as f64 / 1000.0,
        s.missing,
        rules.join(", ")
    )
}

pub async fn run(o: LatencyOptions) -> Result<()> {
    let phases = o.loads.len();
    let bg_cases = o.background_devices.div_ceil(2);
    let needed = bg_cases + 2 * o.samples * phases;
    if needed > o.plan.cases {
        bail!(
            "{} background devices and {} samples × 2 kinds × {phases} phases need {needed} cases; \
             --cases is {}",
            o.background_devices,
            o.samples,
            o.plan.cases
        );
    }
    if o.background_devices < 2 || o.clients == 0 || o.samples == 0 {
        bail!("--background-devices ≥ 2, --clients ≥ 1 and --samples ≥ 1");
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    eprintln!(
        "  seeding {} cases ({} with a zone) …",
        o.plan.cases, o.plan.zones
    );
    let (mut servers, ids, took) = match &o.cluster {
        None => {
            let (ids, took) = harness::seed(&data, o.plan).await?;
            (
                vec![Server::start(&data, &ServeExtras::default()).await?],
                ids,
                took,
            )
        }
        Some(t) => harness::start_cluster(dir.path(), t, o.plan).await?,
    };
    eprintln!("  seeded in {:.1} s", took.as_secs_f64());
    let sample_cases: Vec<i64> = ids
        .get(bg_cases..needed)
        .context("sample cases")?
        .iter()
        .map(|c| c.case)
        .collect();
    let server = servers.remove(0);
    let live = servers.last().unwrap_or(&server);
    let mut rx = officer_stream(&server, live, &sample_cases).await?;
    // The background devices in one contiguous share per node.
    let nodes: Vec<&Server> = std::iter::once(&server).chain(servers.iter()).collect();
    let share = o.background_devices.div_ceil(nodes.len());
    let mut conns = Vec::new();
    for (j, node) in nodes.iter().enumerate() {
        let from = (j * share).min(o.background_devices);
        let to = ((j + 1) * share).min(o.background_devices);
        conns.extend(connect_all(node.teltonika, from..to).await?);
    }
    let n = o.clients.min(conns.len()).max(1);
    let mut clients: Vec<BgClient> = (0..n)
        .map(|_| BgClient {
            conns: Vec::new(),
            k: 0,
            next: 0,
        })
        .collect();
    for (d, s) in conns {
        if let Some(c) = clients.get_mut(d % n) {
            c.conns.push((d, s, 0));
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let set = background(clients, None, stop_rx).await?;
    tokio::time::sleep(o.calibrate).await;
    let _ = stop_tx.send(true);
    let (mut clients, calibrated) = collect(set).await?;
    let sustained = calibrated as f64 / started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "calibration: {calibrated} fixes in {:.1} s closed loop over {} devices, {n} connections: \
         {sustained:.0} fixes/s sustained",
        started.elapsed().as_secs_f64(),
        o.background_devices
    );
    // Let the engine catch up before the first phase.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut rows = Vec::new();
    let mut next_case = bg_cases;
    for &pct in &o.loads {
        let (stop_tx, stop_rx) = watch::channel(false);
        let rate = sustained * f64::from(pct) / 100.0;
        let started = Instant::now();
        let set = if pct > 0 {
            let set = background(clients, Some(rate), stop_rx).await?;
            clients = Vec::new();
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some(set)
        } else {
            None
        };
        let mut breach = Sampled::new()?;
        let mut sos = Sampled::new()?;
        for _ in 0..o.samples {
            let c = *ids.get(next_case).context("case")?;
            breach_sample(&server, &mut rx, next_case, c, &mut breach).await?;
            next_case += 1;
        }
        for _ in 0..o.samples {
            let c = *ids.get(next_case).context("case")?;
            sos_sample(&server, &mut rx, next_case, c, &mut sos).await?;
            next_case += 1;
        }
        let mut bg = 0.0;
        if let Some(set) = set {
            let _ = stop_tx.send(true);
            let (back, count) = collect(set).await?;
            clients = back;
            bg = count as f64 / started.elapsed().as_secs_f64().max(1e-9);
        }
        let load = if pct == 0 {
            "idle".to_string()
        } else {
            format!("{pct} % ({rate:.0}/s asked)")
        };
        println!("{}", row(&load, bg, "breach → alert", &breach));
        println!("{}", row(&load, bg, "SOS → alert", &sos));
        rows.push(row(&load, bg, "breach → alert", &breach));
        rows.push(row(&load, bg, "SOS → alert", &sos));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (rss, hwm) = server.rss_kib()?;
    drop(clients);
    server.stop().await?;
    for s in servers {
        s.stop().await?;
    }
    let shape = match &o.cluster {
        None => "one embedded server".to_string(),
        Some(t) => format!(
            "{} cluster nodes on PostgreSQL and NATS (samples' devices on node 1, the console on node {})",
            t.nodes, t.nodes
        ),
    };
    println!(
        "\n{shape}: {} cases ({} zones), sustained {sustained:.0} fixes/s; node 1 RSS {} MiB (peak {} MiB)",
        o.plan.cases,
        o.plan.zones,
        rss / 1024,
        hwm / 1024
    );
    println!(
        "| background load | achieved fixes/s | path | samples | p50 ms | p99 ms | max ms | missing | first alert rule |\n\
         | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
