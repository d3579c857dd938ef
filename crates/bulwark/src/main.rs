//! `bulwark`: the one binary.
//!
//! - `bulwark serve` runs the server on the embedded store.
//! - `bulwark demo` runs the server on a fresh store, seeds cases in Seoul and moves simulated
//!   offenders and protected people through the real ingest doors.
//! - `bulwark simulate` drives many simulated trackers against a running server (load test).
//! - `bulwark audit verify --data-dir D` checks the access log's hash chain and signed
//!   checkpoints; exit code 1 on any problem.
//! - `bulwark evidence export` / `bulwark evidence verify` write and check a signed evidence
//!   bundle of one case.

mod bench;
mod demo;
mod simulate;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "bulwark",
    version,
    about = "Protective-order monitoring for stalking victims"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API, ingest doors, web apps) on the embedded store.
    Serve(ServeArgs),
    /// Run the server on a fresh store with simulated cases moving around Seoul.
    Demo(DemoArgs),
    /// Evaluate the engine against generated scenarios with ground truth (one table).
    Eval(EvalArgs),
    /// Load test: many simulated devices over a real protocol against a running server.
    Simulate(SimulateArgs),
    /// Benchmarks beside the alternatives (see docs/performance.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The access log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Evidence bundles for a court.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Location-data retention.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Print the HTTP API's OpenAPI document (what `GET /api/openapi.json` serves). The web
    /// apps' wire types are generated from its copy in `web/openapi.json`.
    Openapi,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Redis (appendfsync always, GEOADD + GEODIST) and PostgreSQL + PostGIS (a transaction
    /// per fix) under the same closed-loop load: durable fixes/s and ack latency.
    Alternatives(BenchAlternativesArgs),
    /// Fix-to-alert and SOS-to-alert latency on a console's live stream, idle and under
    /// background load at shares of the sustained rate.
    Latency(BenchLatencyArgs),
    /// Resident memory: empty, with idle cases, with devices reporting, with devices connected.
    Memory(BenchMemoryArgs),
    /// Many cases breached at the same moment: how fast their alerts reach a console.
    Burst(BenchBurstArgs),
    /// Past the sustainable rate: slower acks, the backlog alert, bounded memory, nothing
    /// acknowledged lost, and recovery.
    Overload(BenchOverloadArgs),
}

#[derive(Args)]
struct BenchBurstArgs {
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    #[arg(long, default_value_t = 10_000)]
    zones: usize,
    /// Cases whose offender comes within 33 m of his victim at the same moment.
    #[arg(long, default_value_t = 1000)]
    burst: usize,
}

#[derive(Args)]
struct BenchMemoryArgs {
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    #[arg(long, default_value_t = 10_000)]
    zones: usize,
    /// Devices that each report one fix.
    #[arg(long, default_value_t = 100_000)]
    reporting: usize,
    /// Devices held connected at once (bounded by `ulimit -n`).
    #[arg(long, default_value_t = 18_000)]
    connections: usize,
}

#[derive(Args)]
struct BenchOverloadArgs {
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    #[arg(long, default_value_t = 10_000)]
    zones: usize,
    /// Devices sending, each on its own connection.
    #[arg(long, default_value_t = 2000)]
    devices: usize,
    /// Offered load during the overload phase, in fixes/s (open loop: sent without waiting
    /// for acks).
    #[arg(long, default_value_t = 60_000.0)]
    rate: f64,
    /// Offered load before and after, in fixes/s.
    #[arg(long, default_value_t = 5_000.0)]
    calm_rate: f64,
    /// Seconds of each phase: calm, overload, calm.
    #[arg(long, value_delimiter = ',', default_value = "10,30,30")]
    phases: Vec<f64>,
}

#[derive(Args)]
struct BenchLatencyArgs {
    /// Cases loaded before the run.
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    /// How many of those cases' orders also have a home zone.
    #[arg(long, default_value_t = 10_000)]
    zones: usize,
    /// Devices carrying the background load.
    #[arg(long, default_value_t = 2000)]
    background_devices: usize,
    /// Connections for the calibration and pacing tasks for the background load.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Breach samples and SOS samples per phase.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Seconds of closed-loop calibration of the sustained rate.
    #[arg(long, default_value_t = 10.0)]
    calibrate: f64,
    /// Background load of each phase in percent of the sustained rate (0 = idle).
    #[arg(long, value_delimiter = ',', default_value = "0,50,90")]
    loads: Vec<u32>,
    /// Run on this many cluster nodes (PostgreSQL + NATS) instead of one embedded server.
    #[arg(long)]
    cluster_nodes: Option<usize>,
    /// The cluster's PostgreSQL (a fresh schema is created in it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    cluster_store: String,
    /// The cluster's NATS JetStream (a fresh namespace).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    cluster_nats: String,
}

#[derive(Args)]
struct BenchAlternativesArgs {
    /// Simulated devices, in offender/victim pairs.
    #[arg(long, default_value_t = 2000)]
    devices: usize,
    /// Connections driving them, closed-loop.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per leg.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// PostgreSQL server for the PostGIS leg (a scratch database is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    #[arg(long)]
    no_redis: bool,
    #[arg(long)]
    no_postgis: bool,
    /// Skip Bulwark's own leg.
    #[arg(long)]
    no_bulwark: bool,
    /// Cases loaded into Bulwark before its leg (each: two people, two devices, one order).
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    /// How many of those cases' orders also have a home zone.
    #[arg(long, default_value_t = 10_000)]
    zones: usize,
    /// Records per Teltonika packet in Bulwark's leg (1 to 255; more than 1 only with
    /// --no-redis --no-postgis): each round trip carries this many fixes.
    #[arg(long, default_value_t = 1)]
    records: usize,
}

/// Drives simulated devices; each fix counts as acknowledged only when its ack arrives.
#[derive(Args)]
struct SimulateArgs {
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    server: String,
    /// The server's HTTP port (device registration, native ingest).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Device port; defaults to the protocol's default port (5023, 5013, 5093, 5027, 5055).
    #[arg(long)]
    port: Option<u16>,
    #[arg(long, value_enum, default_value = "gt06")]
    protocol: simulate::SimProtocol,
    /// Simulated devices, each with its own connection.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Seconds between one device's fixes.
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Each device uploads a stored history instead of live fixes, as a tracker does after a
    /// coverage gap: device times in the past, one clock tick apart, so whole-second
    /// protocols may send faster than one fix per second (the way to saturate their doors).
    #[arg(long)]
    backfill: bool,
    /// The administrator token (`BULWARK_ADMIN_TOKEN`), to register the simulated devices.
    #[arg(long, env = "BULWARK_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// No progress bar (for logs and scripts).
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Delete the fixes the retention policy no longer allows keeping (one `purge` record in
    /// the access log per run).
    Purge {
        #[arg(long, env = "BULWARK_DATA_DIR")]
        data_dir: PathBuf,
        /// Days an offender's fixes are kept after his last order ends.
        #[arg(long, default_value_t = 365)]
        offender_days: i64,
        /// Hours a protected person's fixes are kept.
        #[arg(long, default_value_t = 72)]
        victim_hours: i64,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Write a signed bundle of one case's fixes, alerts, orders and access-log excerpt.
    Export {
        /// The server's data directory (holds the store and the signing key).
        #[arg(long, env = "BULWARK_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        case: i64,
        /// RFC 3339 start of the window (inclusive).
        #[arg(long)]
        from: String,
        /// RFC 3339 end of the window (exclusive).
        #[arg(long)]
        to: String,
        /// Why (written to the access log with the export), at least 10 characters.
        #[arg(long)]
        reason: String,
        /// An empty or new directory; evidence is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a bundle against the server's public key; exit code 1 on any problem.
    Verify {
        dir: PathBuf,
        /// The public key file from `bulwark audit public-key` (what a court holds).
        #[arg(
            long,
            required_unless_present = "data_dir",
            conflicts_with = "data_dir"
        )]
        public_key: Option<PathBuf>,
        /// Or the server's data directory (its signing key's public half is used).
        #[arg(long, env = "BULWARK_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn micros(what: &str, text: &str) -> Result<domain::UnixMicros> {
    let t: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("--{what}: not an RFC 3339 time: {text}"))?;
    Ok(domain::UnixMicros(t.as_microsecond()))
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain and the signed checkpoints; exit code 1 on any problem.
    Verify {
        /// The server's data directory (holds the store and the signing key).
        #[arg(long, env = "BULWARK_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Write the public half of the signing key as PEM (`public.pem`), which checks evidence
    /// bundles and checkpoints offline, with `bulwark evidence verify --public-key` or OpenSSL.
    PublicKey {
        #[arg(long, env = "BULWARK_DATA_DIR")]
        data_dir: PathBuf,
        /// The file to write (refused if it exists); without it the PEM goes to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Scenario evaluation; see docs/engine.md for what each figure means.
#[derive(Args)]
struct EvalArgs {
    /// Seed of the scenario generator; the same seed gives the same table.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Offender–victim pairs × days to simulate.
    #[arg(long, default_value_t = 1000)]
    pair_days: u64,
    /// GNSS noise, 1σ per axis, in metres.
    #[arg(long, default_value_t = 15.0)]
    sigma: f64,
    /// Share of GNSS fixes that are multipath outliers (100–500 m off).
    #[arg(long, default_value_t = 0.02)]
    outliers: f64,
    /// Share of fixes located by cell tower.
    #[arg(long, default_value_t = 0.02)]
    cell: f64,
    /// Normal reporting interval in seconds.
    #[arg(long, default_value_t = 60)]
    interval: u32,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Overrides applied on top of the config file; each also reads an environment variable.
#[derive(Args, Clone)]
struct ServeArgs {
    /// TOML configuration file (optional; defaults work without one).
    #[arg(long, env = "BULWARK_CONFIG")]
    config: Option<PathBuf>,
    /// Where the embedded store keeps its files.
    #[arg(long, env = "BULWARK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to bind the listeners to.
    #[arg(long, env = "BULWARK_BIND")]
    bind: Option<IpAddr>,
    /// HTTP port for the API, web apps and native ingest (0: any free port).
    #[arg(long, env = "BULWARK_HTTP_PORT")]
    http_port: Option<u16>,
    /// OsmAnd / Traccar Client port (0: any free port).
    #[arg(long, env = "BULWARK_OSMAND_PORT")]
    osmand_port: Option<u16>,
    /// The administrator token, the bootstrap credential (generated and printed if unset).
    #[arg(long, env = "BULWARK_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Bearer token of the metrics scraper (`/metrics`, `/healthz` details); the
    /// administrator token works too.
    #[arg(long, env = "BULWARK_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// The store: `postgres://…` (the cluster's source of truth); unset, the embedded SQLite
    /// store in the data directory.
    #[arg(long, env = "BULWARK_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Join a cluster on this NATS JetStream (`nats://host:4222`); needs `--store postgres://…`.
    #[arg(long, env = "BULWARK_CLUSTER")]
    cluster: Option<String>,
    /// This node's name in the cluster, unique among its nodes.
    #[arg(long, env = "BULWARK_NODE_ID")]
    node_id: Option<String>,
    /// Prefix of the cluster's streams and buckets on NATS (default `bulwark`).
    #[arg(long, env = "BULWARK_CLUSTER_NAMESPACE")]
    cluster_namespace: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    /// HTTP port for the demo (0: any free port).
    #[arg(long, default_value_t = 8080, env = "BULWARK_HTTP_PORT")]
    http_port: u16,
    /// Keep the demo's data here instead of in a temporary folder removed at exit.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// How long police keep a case after its dispatched alert is resolved, in seconds
    /// (`[alerts] dispatch_grace_s`; default 1800). The browser tests use 0 to see a
    /// dispatch end.
    #[arg(long)]
    dispatch_grace_s: Option<i64>,
}

fn load_config(args: &ServeArgs) -> Result<server::Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            server::Config::from_toml(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => server::Config::default(),
    };
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(b) = args.bind {
        config.bind = b;
    }
    if let Some(p) = args.http_port {
        config.http_port = p;
    }
    if let Some(p) = args.osmand_port {
        config.osmand_port = Some(p);
    }
    if let Some(t) = &args.admin_token {
        config.admin_token = Some(t.clone());
    }
    if let Some(t) = &args.metrics_token {
        config.metrics_token = Some(t.clone());
    }
    if let Some(u) = &args.store {
        config.store.url = Some(u.clone());
    }
    if let Some(u) = &args.cluster {
        config.cluster.url = Some(u.clone());
    }
    if let Some(n) = &args.node_id {
        config.cluster.node_id = Some(n.clone());
    }
    if let Some(n) = &args.cluster_namespace {
        config.cluster.namespace = n.clone();
    }
    Ok(config)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = load_config(&args)?;
            let generated = config.admin_token.is_none();
            let running = server::start(config).await?;
            println!("Bulwark listening on http://{}", running.http_addr);
            if let Some(a) = running.osmand_addr {
                println!("OsmAnd / Traccar Client door on {a}");
            }
            let mut devices: Vec<_> = running.device_addrs.iter().collect();
            devices.sort();
            for (p, a) in devices {
                let udp = running.device_udp_addrs.contains_key(p);
                println!(
                    "{p} tracker listener on {a}{}",
                    if udp { " (TCP and UDP)" } else { "" }
                );
            }
            if generated {
                println!(
                    "Administrator token (generated for this run; set BULWARK_ADMIN_TOKEN to fix it): {}",
                    running.admin_token
                );
            }
            wait_for_signal().await;
            println!("Shutting down: finishing requests and flushing the store…");
            running.shutdown().await;
        }
        Command::Demo(args) => {
            demo::run(
                args.http_port,
                args.data_dir,
                args.dispatch_grace_s,
                wait_for_signal(),
            )
            .await?
        }
        Command::Openapi => {
            println!("{}", openapi_json()?);
        }
        Command::Audit(AuditCommand::Verify { data_dir }) => {
            let report = server::audit_log::verify_data_dir(&data_dir)
                .await
                .with_context(|| format!("verifying the access log in {}", data_dir.display()))?;
            for line in report.lines() {
                println!("{line}");
            }
            if !report.ok() {
                std::process::exit(1);
            }
        }
        Command::Evidence(EvidenceCommand::Export {
            data_dir,
            case,
            from,
            to,
            reason,
            out,
        }) => {
            let window = (micros("from", &from)?, micros("to", &to)?);
            let now = domain::UnixMicros(jiff::Timestamp::now().as_microsecond());
            let digest = server::evidence::export(
                &data_dir,
                domain::CaseId(case),
                window,
                &reason,
                &out,
                now,
            )
            .await
            .context("exporting evidence")?;
            println!(
                "Wrote {} (manifest SHA-256 {})",
                out.display(),
                audit_hex(&digest)
            );
        }
        Command::Audit(AuditCommand::PublicKey { data_dir, out }) => {
            let key = server::audit_log::load_key(&data_dir)
                .with_context(|| format!("reading the signing key in {}", data_dir.display()))?;
            let pem = audit::public_key_pem(&key.verifying_key())?;
            match out {
                Some(path) => {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    f.write_all(pem.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("Wrote {}", path.display());
                }
                None => print!("{pem}"),
            }
        }
        Command::Evidence(EvidenceCommand::Verify {
            dir,
            public_key,
            data_dir,
        }) => {
            let report = match (public_key, data_dir) {
                (Some(file), _) => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let key = audit::verifying_key_from_bytes(&bytes)
                        .with_context(|| format!("{}", file.display()))?;
                    audit::verify_bundle(&dir, &key).map_err(anyhow::Error::from)
                }
                (None, Some(data_dir)) => {
                    server::evidence::verify(&dir, &data_dir).map_err(anyhow::Error::from)
                }
                (None, None) => anyhow::bail!("give --public-key FILE or --data-dir DIR"),
            }
            .context("verifying the bundle")?;
            for p in &report.problems {
                println!("{p}");
            }
            println!(
                "{} files verified: {}",
                report.files_ok.len(),
                if report.ok() { "OK" } else { "PROBLEMS FOUND" }
            );
            if !report.ok() {
                std::process::exit(1);
            }
        }
        Command::Retention(RetentionCommand::Purge {
            data_dir,
            offender_days,
            victim_hours,
            dry_run,
        }) => {
            let policy = server::retention::RetentionPolicy {
                offender_days_after_order_end: offender_days,
                victim_hours,
            };
            let now = domain::UnixMicros(jiff::Timestamp::now().as_microsecond());
            let result = server::retention::purge_data_dir(&data_dir, policy, now, dry_run).await;
            let summary = result.context("retention purge")?;
            println!(
                "{} parties, {} devices with purgeable windows, {} fixes {}",
                summary.people,
                summary.windows.len(),
                summary.deleted,
                if dry_run {
                    "(dry run: nothing deleted)"
                } else {
                    "deleted"
                }
            );
        }
        Command::Eval(a) => {
            let cfg = sim::EvalConfig {
                seed: a.seed,
                pair_days: a.pair_days,
                sigma_m: a.sigma,
                outlier_rate: a.outliers,
                cell_rate: a.cell,
                interval_s: a.interval,
                threads: a.threads,
                ..Default::default()
            };
            let report = tokio::task::spawn_blocking(move || sim::run(cfg)).await?;
            print!("{report}");
        }
        Command::Bench(BenchCommand::Alternatives(a)) => {
            if !(a.duration.is_finite() && a.duration > 0.0) {
                anyhow::bail!("--duration must be positive seconds");
            }
            let opts = bench::Options {
                devices: a.devices,
                clients: a.clients,
                duration: std::time::Duration::from_secs_f64(a.duration),
                postgres: a.postgres,
                no_redis: a.no_redis,
                no_postgis: a.no_postgis,
                records: a.records,
            };
            let first = if a.no_bulwark {
                None
            } else {
                println!("== Bulwark leg");
                let plan = bench::SeedPlan {
                    cases: a.cases,
                    zones: a.zones.min(a.cases),
                };
                Some(bench::bulwark_leg::run(&opts, plan).await?)
            };
            bench::run(opts, first).await?;
        }
        Command::Bench(BenchCommand::Latency(a)) => {
            if !(a.calibrate.is_finite() && a.calibrate > 0.0) {
                anyhow::bail!("--calibrate must be positive seconds");
            }
            bench::latency::run(bench::latency::LatencyOptions {
                plan: bench::SeedPlan {
                    cases: a.cases,
                    zones: a.zones.min(a.cases),
                },
                background_devices: a.background_devices,
                clients: a.clients,
                samples: a.samples,
                calibrate: std::time::Duration::from_secs_f64(a.calibrate),
                loads: a.loads,
                cluster: a.cluster_nodes.map(|nodes| bench::ClusterTarget {
                    pg: a.cluster_store,
                    nats: a.cluster_nats,
                    nodes,
                }),
            })
            .await?;
        }
        Command::Bench(BenchCommand::Burst(a)) => {
            bench::burst::run(bench::burst::BurstOptions {
                plan: bench::SeedPlan {
                    cases: a.cases,
                    zones: a.zones.min(a.cases),
                },
                burst: a.burst,
            })
            .await?;
        }
        Command::Bench(BenchCommand::Memory(a)) => {
            bench::memory::run(bench::memory::MemoryOptions {
                plan: bench::SeedPlan {
                    cases: a.cases,
                    zones: a.zones.min(a.cases),
                },
                reporting: a.reporting,
                connections: a.connections,
            })
            .await?;
        }
        Command::Bench(BenchCommand::Overload(a)) => {
            let [calm, over, after] = a.phases[..] else {
                anyhow::bail!("--phases takes three durations: calm,overload,calm");
            };
            if [calm, over, after, a.rate, a.calm_rate]
                .iter()
                .any(|v| !(v.is_finite() && *v > 0.0))
            {
                anyhow::bail!("--phases, --rate and --calm-rate must be positive");
            }
            bench::overload::run(bench::overload::OverloadOptions {
                plan: bench::SeedPlan {
                    cases: a.cases,
                    zones: a.zones.min(a.cases),
                },
                devices: a.devices,
                rate: a.rate,
                calm_rate: a.calm_rate,
                phases: [calm, over, after].map(std::time::Duration::from_secs_f64),
            })
            .await?;
        }
        Command::Simulate(a) => {
            if !(a.interval.is_finite()
                && a.interval > 0.0
                && a.duration.is_finite()
                && a.duration > 0.0)
            {
                anyhow::bail!("--interval and --duration must be positive seconds");
            }
            simulate::run(simulate::Options {
                server: a.server,
                http_port: a.http_port,
                port: a.port,
                protocol: a.protocol,
                devices: a.devices,
                interval: std::time::Duration::from_secs_f64(a.interval),
                duration: std::time::Duration::from_secs_f64(a.duration),
                backfill: a.backfill,
                token: a.token,
                progress: !a.quiet,
            })
            .await
            .map(drop)?;
        }
    }
    Ok(())
}

/// The OpenAPI document as pretty JSON, the form `web/openapi.json` is kept in.
fn openapi_json() -> Result<String> {
    serde_json::to_string_pretty(&server::openapi()).context("writing the OpenAPI document")
}

fn audit_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
