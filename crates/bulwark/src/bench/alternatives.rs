//! The Redis and PostGIS legs of `bulwark bench alternatives` (see the module overview).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use tokio::process::{Child, Command};

/// What the bench was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated devices (an even number: offender/victim pairs).
    pub devices: usize,
    /// Connections driving them.
    pub clients: usize,
    /// How long each leg runs.
    pub duration: Duration,
    /// The PostgreSQL server to create the scratch database on.
    pub postgres: String,
    /// Skip the Redis leg.
    pub no_redis: bool,
    /// Skip the PostGIS leg.
    pub no_postgis: bool,
    /// Records per Teltonika packet in Bulwark's leg (a tracker's "records per packet"): each
    /// round trip carries this many fixes, acknowledged together.
    pub records: usize,
}

/// One leg's figures.
#[derive(Debug, Clone)]
pub struct LegResult {
    pub name: &'static str,
    pub durable: u64,
    pub elapsed: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// How the count was checked against what the server holds.
    pub checked: String,
}

impl LegResult {
    pub fn rate(&self) -> f64 {
        self.durable as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The position of `device`'s `k`-th fix: the two of a pair ~2.7 km apart in Seoul (beyond the
/// engine's 2 km proximity notice, as most pairs are most of the time), drifting by up to
/// ~55 m.
pub(crate) fn position(device: usize, k: u64) -> (f64, f64) {
    let pair = (device / 2) as f64;
    let base_lat = 37.45 + (pair * 0.000_37) % 0.2;
    let base_lon = 126.85 + (pair * 0.000_53) % 0.3;
    let side = if device.is_multiple_of(2) { 1.0 } else { -1.0 };
    let drift = (k as f64 * 0.7 + device as f64).sin() * 0.000_5;
    (base_lat + side * 0.012 + drift, base_lon + drift)
}

fn partner(device: usize) -> usize {
    device ^ 1
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram")
}

/// Runs each closed-loop client until the deadline and merges their latencies.
pub(crate) async fn drive<C, F, Fut>(
    clients: Vec<C>,
    devices: usize,
    duration: Duration,
    one_fix: F,
) -> Result<(u64, Duration, Histogram<u64>)>
where
    C: Send + 'static,
    F: Fn(C, usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<C>> + Send,
{
    let n = clients.len().max(1);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut conn) in clients.into_iter().enumerate() {
        let one_fix = one_fix.clone();
        tasks.spawn(async move {
            let mut h = histogram()?;
            let mine: Vec<usize> = (c..devices).step_by(n).collect();
            let mut count = 0u64;
            let mut k = 0u64;
            'outer: loop {
                for &device in &mine {
                    if Instant::now() >= deadline {
                        break 'outer;
                    }
                    let sent = Instant::now();
                    conn = one_fix(conn, device, k).await?;
                    h.record(sent.elapsed().as_micros().max(1) as u64)?;
                    count += 1;
                }
                k += 1;
            }
            anyhow::Ok((count, h))
        });
    }
    let mut total = 0;
    let mut all = histogram()?;
    while let Some(done) = tasks.join_next().await {
        let (count, h) = done.context("client task")??;
        total += count;
        all.add(h)?;
    }
    Ok((total, start.elapsed(), all))
}

pub(crate) fn leg(
    name: &'static str,
    durable: u64,
    elapsed: Duration,
    h: &Histogram<u64>,
    checked: String,
) -> LegResult {
    LegResult {
        name,
        durable,
        elapsed,
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
        checked,
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A child process killed when dropped, so a failed leg leaves nothing running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

pub async fn redis_leg(opts: &Options) -> Result<LegResult> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting redis-server (apt-get install redis-server)")?;
    let _guard = Guard(child);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(c) = client.get_multiplexed_async_connection().await {
            ready = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(mut check) = ready else {
        bail!("redis-server on port {port} did not come up");
    };
    let appendfsync: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(&mut check)
        .await?;
    if appendfsync.get(1).map(String::as_str) != Some("always") {
        bail!("redis is not running with appendfsync always: {appendfsync:?}");
    }
    let mut conns = Vec::new();
    for _ in 0..opts.clients {
        // One connection per client: each client waits for its own durable reply.
        conns.push(client.get_multiplexed_async_connection().await?);
    }
    let within = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let w = within.clone();
    let (durable, elapsed, h) = drive(
        conns,
        opts.devices,
        opts.duration,
        move |mut c, device, k| {
            let w = w.clone();
            async move {
                let (lat, lon) = position(device, k);
                let (added, dist): (i64, Option<f64>) = redis::pipe()
                    .cmd("GEOADD")
                    .arg("bench:pos")
                    .arg(lon)
                    .arg(lat)
                    .arg(device)
                    .cmd("GEODIST")
                    .arg("bench:pos")
                    .arg(device)
                    .arg(partner(device))
                    .arg("m")
                    .query_async(&mut c)
                    .await?;
                let _ = added;
                if dist.is_some_and(|d| d <= 100.0) {
                    w.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(c)
            }
        },
    )
    .await?;
    let members: i64 = redis::cmd("ZCARD")
        .arg("bench:pos")
        .query_async(&mut check)
        .await?;
    let checked = format!("{members} devices hold a latest position (Redis keeps no history)");
    Ok(leg(
        "Redis GEOADD+GEODIST, appendfsync always",
        durable,
        elapsed,
        &h,
        checked,
    ))
}

pub async fn postgis_leg(opts: &Options) -> Result<Option<LegResult>> {
    let (admin, conn) = tokio_postgres::connect(&opts.postgres, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", opts.postgres))?;
    tokio::spawn(conn);
    let db = format!("bulwark_bench_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let result = postgis_in(opts, &db).await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
    result
}

fn with_database(url: &str, db: &str) -> Result<tokio_postgres::Config> {
    let mut cfg: tokio_postgres::Config = url.parse().context("PostgreSQL URL")?;
    cfg.dbname(db);
    Ok(cfg)
}

async fn postgis_in(opts: &Options, db: &str) -> Result<Option<LegResult>> {
    let cfg = with_database(&opts.postgres, db)?;
    let (setup, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    if let Err(e) = setup.batch_execute("CREATE EXTENSION postgis").await {
        println!(
            "SKIPPED: PostGIS leg: the extension is not installed ({e}); \
             apt-get install postgresql-15-postgis-3"
        );
        return Ok(None);
    }
    let sync: String = setup
        .query_one("SHOW synchronous_commit", &[])
        .await?
        .get(0);
    if sync != "on" {
        bail!("synchronous_commit is {sync}, not on");
    }
    setup
        .batch_execute(
            "CREATE TABLE fixes (id bigserial PRIMARY KEY, device_id int NOT NULL,
                 device_time bigint NOT NULL, geom geography(Point, 4326) NOT NULL,
                 UNIQUE (device_id, device_time));
             CREATE TABLE latest (device_id int PRIMARY KEY, device_time bigint NOT NULL,
                 geom geography(Point, 4326) NOT NULL);
             CREATE INDEX latest_geom ON latest USING gist (geom);",
        )
        .await?;
    let mut conns = Vec::new();
    for _ in 0..opts.clients {
        let (c, conn) = cfg.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let insert = c
            .prepare(
                "INSERT INTO fixes (device_id, device_time, geom)
                 VALUES ($1, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography)",
            )
            .await?;
        let near = c
            .prepare(
                "SELECT ST_DWithin(geom, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, 100)
                 FROM latest WHERE device_id = $1",
            )
            .await?;
        let upsert = c
            .prepare(
                "INSERT INTO latest (device_id, device_time, geom)
                 VALUES ($1, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography)
                 ON CONFLICT (device_id) DO UPDATE
                 SET device_time = EXCLUDED.device_time, geom = EXCLUDED.geom",
            )
            .await?;
        conns.push(Arc::new((c, insert, near, upsert)));
    }
    let (durable, elapsed, h) = drive(
        conns,
        opts.devices,
        opts.duration,
        |c, device, k| async move {
            let (client, insert, near, upsert) = &*c;
            let (lat, lon) = position(device, k);
            let dev = device as i32;
            let t = k as i64;
            let other = partner(device) as i32;
            let fix_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&dev, &t, &lon, &lat];
            let near_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&other, &lon, &lat];
            client.batch_execute("BEGIN").await?;
            let (_, _, _) = tokio::try_join!(
                client.execute(insert, &fix_params),
                client.query_opt(near, &near_params),
                client.execute(upsert, &fix_params),
            )?;
            client.batch_execute("COMMIT").await?;
            Ok(c)
        },
    )
    .await?;
    let stored: i64 = setup
        .query_one("SELECT count(*) FROM fixes", &[])
        .await?
        .get(0);
    if stored as u64 != durable {
        bail!("PostGIS counted {durable} commits but holds {stored} fixes");
    }
    let checked = format!("{stored} fixes stored = commits counted");
    Ok(Some(leg(
        "PostgreSQL+PostGIS, one transaction per fix",
        durable,
        elapsed,
        &h,
        checked,
    )))
}

fn print_table(results: &[LegResult], opts: &Options) {
    println!(
        "\n{} devices, {} connections, {:?} per leg, same machine; durable = acknowledged after fsync",
        opts.devices, opts.clients, opts.duration
    );
    println!(
        "| system | durable fixes/s | ack p50 ms | ack p99 ms | max ms | check |\n| --- | ---: | ---: | ---: | ---: | --- |"
    );
    for r in results {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.1} | {} |",
            r.name,
            r.rate(),
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            r.max_us as f64 / 1000.0,
            r.checked
        );
    }
    if results
        .first()
        .is_some_and(|r| r.name.starts_with("Bulwark"))
    {
        println!(
            "\nPer fix Bulwark does more than either alternative: it decodes and CRC-checks a \
             tracker frame, validates the fix (coordinates, device time, future limit), checks \
             it for an impossible jump, stores the full fix as history (not only the latest \
             position) with dedup on resend, acknowledges only after fsync, then evaluates it \
             in the engine against every order of its owner (distance to each protected person \
             and every zone, hold times, alert episodes) and publishes it to the live stream. \
             Redis keeps only the latest position and one distance; PostGIS stores the fix and \
             tests one distance."
        );
    }
    if results.len() > 1 {
        let base = &results[0];
        for r in &results[1..] {
            println!(
                "{} / {}: {:.2}×",
                base.name,
                r.name,
                base.rate() / r.rate().max(1e-9)
            );
        }
    }
}

/// Runs the legs asked for and prints their table. `first` (Bulwark's own leg, run by the
/// caller) heads the table so ratios read as Bulwark against each alternative.
pub async fn run(opts: Options, first: Option<LegResult>) -> Result<Vec<LegResult>> {
    if opts.devices < 2 || opts.clients == 0 {
        bail!("--devices must be at least 2 and --clients at least 1");
    }
    if opts.records != 1 && !(opts.no_redis && opts.no_postgis) {
        bail!("--records applies to Bulwark's leg alone: add --no-redis --no-postgis");
    }
    let mut results: Vec<LegResult> = first.into_iter().collect();
    if !opts.no_redis {
        println!("== Redis leg");
        results.push(redis_leg(&opts).await?);
    }
    if !opts.no_postgis {
        println!("== PostGIS leg");
        if let Some(r) = postgis_leg(&opts).await? {
            results.push(r);
        }
    }
    print_table(&results, &opts);
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_partners_and_positions_are_in_seoul() {
        assert_eq!(partner(0), 1);
        assert_eq!(partner(7), 6);
        for d in 0..1000 {
            let (lat, lon) = position(d, 3);
            assert!((37.4..37.7).contains(&lat), "{lat}");
            assert!((126.8..127.2).contains(&lon), "{lon}");
        }
    }
}
