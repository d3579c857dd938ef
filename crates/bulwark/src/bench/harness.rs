//! A Bulwark server for the benches: a fresh data directory seeded through the store API
//! (fast: the writer's group commit takes hundreds of inserts per fsync), then `bulwark serve`
//! started as a child process on free ports, so the benches measure a separate process whose
//! memory can be read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use domain::{
    CaseId, LatLon, Order, OrderId, OrderKind, PersonRole, Protocol, UnixMicros, Zone, ZoneId,
    ZoneKind, ZoneShape,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::alternatives::position;

/// What to load before serving.
#[derive(Debug, Clone, Copy)]
pub struct SeedPlan {
    /// Cases, each an offender and a protected person with one device each and one order.
    pub cases: usize,
    /// Cases whose order also has a home zone (a 200 m circle around the protected person).
    pub zones: usize,
}

/// The IMEI of bench device `d` (the offender of case `d / 2` when even, its protected person
/// when odd): 15 digits.
pub fn imei(d: usize) -> String {
    format!("35{d:013}")
}

fn now() -> UnixMicros {
    UnixMicros(jiff::Timestamp::now().as_microsecond())
}

fn ll(lat: f64, lon: f64) -> Result<LatLon> {
    LatLon::new(lat, lon).map_err(|e| anyhow::anyhow!("bench position {lat},{lon}: {e}"))
}

/// The ids one seeded case got.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededCase {
    pub case: i64,
    pub offender_device: i64,
}

async fn seed_case(store: store::Store, i: usize, with_zone: bool) -> Result<(usize, SeededCase)> {
    let t = now();
    let off = store
        .create_person(PersonRole::Offender, format!("bench offender {i}"), t)
        .await?;
    let prot = store
        .create_person(PersonRole::Protected, format!("bench protected {i}"), t)
        .await?;
    let off_dev = store
        .create_device(
            domain::DeviceKind::AnkleMonitor,
            Protocol::Teltonika,
            imei(2 * i),
            Some(off.id),
            None,
            t,
        )
        .await?;
    store
        .create_device(
            domain::DeviceKind::VictimPhone,
            Protocol::Teltonika,
            imei(2 * i + 1),
            Some(prot.id),
            None,
            t,
        )
        .await?;
    let case = store
        .create_case(format!("BENCH-{i:06}"), off.id, vec![prot.id], t)
        .await?;
    let mut zones = Vec::new();
    if with_zone {
        let (lat, lon) = position(2 * i + 1, 0);
        zones.push(Zone {
            id: ZoneId(0),
            kind: ZoneKind::Home,
            label: format!("home {i}"),
            shape: ZoneShape::Circle {
                center: ll(lat, lon)?,
                radius_m: 200.0,
            },
        });
    }
    store
        .create_order(
            Order {
                id: OrderId(0),
                case_id: CaseId(case.id.0),
                kind: OrderKind::RestrainingOrder,
                valid_from: UnixMicros(t.0 - 86_400_000_000),
                valid_to: Some(UnixMicros(t.0 + 90 * 86_400_000_000)),
                // Pairs are ~2.7 km apart: no alert until a bench moves one closer.
                no_approach_m: 100.0,
                warning_m: 300.0,
                disclosure_radius_m: 300.0,
                zones,
            },
            t,
        )
        .await?;
    Ok((
        i,
        SeededCase {
            case: case.id.0,
            offender_device: off_dev.id.0,
        },
    ))
}

/// Seeds `plan` into a fresh store in `dir` and closes it. Returns each case's ids (index:
/// case number) and how long it took.
pub async fn seed(dir: &Path, plan: SeedPlan) -> Result<(Vec<SeededCase>, Duration)> {
    let store = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || store::Store::open(&dir)).await??
    };
    seed_store(store, plan).await
}

/// Seeds `plan` into `store` (either backend) and closes it.
pub async fn seed_store(
    store: store::Store,
    plan: SeedPlan,
) -> Result<(Vec<SeededCase>, Duration)> {
    let mut ids = vec![SeededCase::default(); plan.cases];
    let started = Instant::now();
    // Enough jobs in flight that each group commit takes hundreds of them.
    const IN_FLIGHT: usize = 2_000;
    let mut next = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while next < plan.cases || !tasks.is_empty() {
        while next < plan.cases && tasks.len() < IN_FLIGHT {
            tasks.spawn(seed_case(store.clone(), next, next < plan.zones));
            next += 1;
        }
        if let Some(done) = tasks.join_next().await {
            let (i, c) = done.context("seeding task")??;
            if let Some(slot) = ids.get_mut(i) {
                *slot = c;
            }
        }
        if next % 20_000 == 0 && tasks.len() == IN_FLIGHT {
            eprintln!("  seeded {next} cases …");
        }
    }
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.close()).await?;
    Ok((ids, started.elapsed()))
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A `bulwark serve` child process; killed if dropped without [`Server::stop`].
pub struct Server {
    child: Option<Child>,
    pub http: String,
    pub teltonika: std::net::SocketAddr,
    pub data_dir: PathBuf,
    pub token: String,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

/// Extra `[alerts]` settings for the overload bench; extra `serve` arguments for a cluster
/// node (`--store`, `--cluster`, `--node-id`, `--cluster-namespace`).
#[derive(Debug, Clone, Default)]
pub struct ServeExtras {
    pub alerts_toml: String,
    pub args: Vec<String>,
}

/// Where a cluster bench runs: PostgreSQL (a fresh schema is made in it), NATS (a fresh
/// namespace) and how many nodes.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    pub pg: String,
    pub nats: String,
    pub nodes: usize,
}

/// Seeds `plan` into a fresh schema of `t.pg` and starts `t.nodes` cluster nodes on it (data
/// directories under `root`, node 1's signing and VAPID keys copied to the others, as
/// docs/cluster.md asks of an operator); returns once every node holds a share of the
/// partitions and together they hold all of them.
pub async fn start_cluster(
    root: &Path,
    t: &ClusterTarget,
    plan: SeedPlan,
) -> Result<(Vec<Server>, Vec<SeededCase>, Duration)> {
    if t.nodes == 0 {
        bail!("--cluster-nodes must be at least 1");
    }
    let tag = format!(
        "{}_{}",
        jiff::Timestamp::now().as_second(),
        std::process::id()
    );
    let schema = format!("bulwark_bench_{tag}");
    let (client, conn) = tokio_postgres::connect(&t.pg, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", t.pg))?;
    let conn_task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .context("creating the bench schema")?;
    drop(client);
    conn_task.abort();
    let sep = if t.pg.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-csearch_path%3D{schema}", t.pg);
    eprintln!("  PostgreSQL schema {schema}, NATS namespace bench{tag}");
    let store = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || store::Store::open_url(&url)).await??
    };
    let (ids, took) = seed_store(store, plan).await?;
    let mut servers = Vec::with_capacity(t.nodes);
    for i in 1..=t.nodes {
        let data = root.join(format!("node{i}"));
        std::fs::create_dir_all(&data)?;
        if let Some(first) = servers.first() {
            let first: &Server = first;
            for key in ["audit-signing.key", "vapid-private.key"] {
                std::fs::copy(first.data_dir.join(key), data.join(key))
                    .with_context(|| format!("copying {key} to node {i}"))?;
            }
        }
        let extras = ServeExtras {
            alerts_toml: String::new(),
            args: [
                "--store",
                &url,
                "--cluster",
                &t.nats,
                "--node-id",
                &format!("bench-n{i}"),
                "--cluster-namespace",
                &format!("bench{tag}"),
            ]
            .map(String::from)
            .to_vec(),
        };
        servers.push(Server::start(&data, &extras).await?);
    }
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let mut shares = Vec::new();
        for s in &servers {
            let h: serde_json::Value = http
                .get(format!("{}/healthz", s.http))
                .bearer_auth(&s.token)
                .send()
                .await?
                .json()
                .await?;
            shares.push(
                h["cluster"]["partitions_owned"]
                    .as_array()
                    .map_or(0, |a| a.len()),
            );
        }
        let total: usize = shares.iter().sum();
        let fair = 64usize.div_ceil(t.nodes);
        if shares.iter().all(|n| *n > 0 && *n <= fair) && total == 64 {
            eprintln!(
                "  {} nodes hold the 64 partitions as {shares:?} after {:.1} s",
                t.nodes,
                started.elapsed().as_secs_f64()
            );
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the cluster's partitions did not settle within 120 s: {shares:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((servers, ids, took))
}

impl Server {
    /// Starts `bulwark serve` on `data_dir` and waits until `/healthz` answers.
    pub async fn start(data_dir: &Path, extras: &ServeExtras) -> Result<Server> {
        let http_port = free_port()?;
        let tel_port = free_port()?;
        let token = format!("bench-{:016x}", rand::random::<u64>());
        let config = format!(
            "data_dir = {dir:?}\nbind = \"127.0.0.1\"\nhttp_port = {http_port}\nosmand_port = 0\n\
             admin_token = {token:?}\n\n[devices]\ngt06_port = 0\nh02_port = 0\nwatch_port = 0\n\
             teltonika_port = {tel_port}\nidle_timeout_s = 3600\nmax_connections_per_ip = 1000000\n\
             max_connections = 1000000\n\n[alerts]\n{alerts}\n",
            dir = data_dir.display().to_string(),
            alerts = extras.alerts_toml,
        );
        let parent = data_dir.parent().unwrap_or(data_dir);
        // One server: `bench-server.*`; cluster nodes: `node<i>-server.*`.
        let name = match data_dir.file_name().and_then(|n| n.to_str()) {
            Some("data") | None => "bench-server".to_string(),
            Some(n) => format!("{n}-server"),
        };
        let config_path = parent.join(format!("{name}.toml"));
        std::fs::write(&config_path, config)?;
        let log = parent.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)?;
        let exe = std::env::current_exe().context("locating the bulwark binary")?;
        let child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(&extras.args)
            .env("RUST_LOG", "warn")
            .env_remove("BULWARK_ADMIN_TOKEN")
            .env_remove("BULWARK_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .context("starting bulwark serve")?;
        let mut server = Server {
            child: Some(child),
            http: format!("http://127.0.0.1:{http_port}"),
            teltonika: std::net::SocketAddr::from(([127, 0, 0, 1], tel_port)),
            data_dir: data_dir.to_path_buf(),
            token,
            log,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(c) = server.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "bulwark serve exited ({status}) during start; see {}",
                    server.log.display()
                );
            }
            if let Ok(r) = http.get(format!("{}/healthz", server.http)).send().await
                && r.status().is_success()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("bulwark serve did not answer /healthz within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "  server up in {:.1} s (pid {})",
            started.elapsed().as_secs_f64(),
            server.pid().unwrap_or(0)
        );
        Ok(server)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// The server's resident set size and its peak, in KiB, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> Result<(u64, u64)> {
        let pid = self.pid().context("server not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find(|l| l.starts_with(name))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        Ok((
            field("VmRSS:").context("no VmRSS")?,
            field("VmHWM:").context("no VmHWM")?,
        ))
    }

    pub async fn metrics(&self) -> Result<String> {
        // The figures are for the scraper or an administrator (docs/privacy.md).
        Ok(reqwest::Client::new()
            .get(format!("{}/metrics", self.http))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// Graceful stop (SIGTERM: finish requests, flush the store), waiting up to 120 s.
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await?;
        }
        match tokio::time::timeout(Duration::from_secs(120), child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("bulwark serve exited with {status}");
                }
                Ok(())
            }
            Err(_) => {
                let _ = child.start_kill();
                bail!("bulwark serve did not stop within 120 s of SIGTERM")
            }
        }
    }
}

/// The sum of one Prometheus metric's samples whose line contains `label` (all if empty).
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| label.is_empty() || l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Connects Teltonika device `d` from loopback source address `source` (port chosen by the
/// kernel) and sends its IMEI; the server answers 1 once it knows the device.
pub async fn connect_teltonika(
    server: std::net::SocketAddr,
    source: std::net::IpAddr,
    d: usize,
) -> Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    let mut s = socket
        .connect(server)
        .await
        .with_context(|| format!("connecting device {d} to {server}"))?;
    s.set_nodelay(true)?;
    s.write_all(&crate::simulate::frames::teltonika_imei(&imei(d)))
        .await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    if b[0] != 1 {
        bail!("server refused IMEI {}", imei(d));
    }
    Ok(s)
}

/// One Teltonika fix of device `d` (its `k`-th: the shared bench position) at `time_ms`.
pub fn teltonika_fix(d: usize, k: u64, time_ms: i64) -> Result<Vec<u8>> {
    let (lat, lon) = position(d, k);
    teltonika_at(lat, lon, time_ms, 0)
}

/// `device`'s fixes `k * n .. k * n + n` as one Teltonika packet of `n` records, one
/// millisecond apart after `last`.
pub fn teltonika_fixes(d: usize, k: u64, n: usize, last: &mut i64) -> Result<Vec<u8>> {
    let reports = (0..n as u64)
        .map(|i| {
            let (lat, lon) = position(d, k * n as u64 + i);
            report_at(lat, lon, next_ms(last))
        })
        .collect::<Result<Vec<_>>>()?;
    crate::simulate::frames::teltonika_records(&reports, 0)
}

/// The bench's report at a place and time (walking pace, heading north).
fn report_at(lat: f64, lon: f64, time_ms: i64) -> Result<crate::simulate::frames::Report> {
    let time = jiff::Timestamp::from_millisecond(time_ms).context("device time")?;
    Ok(crate::simulate::frames::Report {
        time,
        lat,
        lon,
        speed_kmh: 3.0,
        course_deg: 0.0,
    })
}

/// A Teltonika record at a given place and time; priority 2 is a panic button (SOS).
pub fn teltonika_at(lat: f64, lon: f64, time_ms: i64, priority: u8) -> Result<Vec<u8>> {
    Ok(crate::simulate::frames::teltonika_record(
        &report_at(lat, lon, time_ms)?,
        priority,
    ))
}

/// Reads one Teltonika acknowledgement (the number of records accepted, 4 bytes) and checks it.
pub async fn read_teltonika_ack(s: &mut TcpStream, records: u32) -> Result<()> {
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(120), s.read_exact(&mut ack))
        .await
        .context("no acknowledgement within 120 s")??;
    let n = u32::from_be_bytes(ack);
    if n != records {
        bail!("server acknowledged {n} records, {records} sent");
    }
    Ok(())
}

/// The device time for a device's next fix: now in ms, strictly after its previous one.
pub fn next_ms(last: &mut i64) -> i64 {
    let t = jiff::Timestamp::now().as_millisecond().max(*last + 1);
    *last = t;
    t
}
