//! `bulwark bench burst`: many cases breached at the same moment, as when a shared event puts
//! many offenders near their victims at once, or a node takes over a partition with a queue of
//! fixes. Measures how fast the alerts reach a console's live stream, each durable first.
//!
//! Seeds `--cases` cases, opens a monitoring officer's live stream over the first `--burst`
//! of them, sends each of those victims one fix (acknowledged, evaluated), then sends every
//! offender one fix about 33 m from his victim, all at once, each on its own connection. The
//! clock starts before the first offender frame is written; each case's first alert on the
//! stream stops its own clock. Printed: the time until the last alert, alerts per second, and
//! p50 / p99 / max per alert. A case whose alert does not arrive within 120 s counts as
//! missing and fails the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;

use super::alternatives::position;
use super::bulwark_leg::connect_all;
use super::harness::{self, SeedPlan, ServeExtras, Server};
use super::latency::officer_stream;

pub struct BurstOptions {
    pub plan: SeedPlan,
    /// Cases breached at once.
    pub burst: usize,
}

pub async fn run(o: BurstOptions) -> Result<()> {
    if o.burst == 0 || o.burst > o.plan.cases {
        bail!("--burst must be between 1 and --cases ({})", o.plan.cases);
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    eprintln!(
        "  seeding {} cases ({} with a zone) …",
        o.plan.cases, o.plan.zones
    );
    let (ids, took) = harness::seed(&data, o.plan).await?;
    eprintln!("  seeded in {:.1} s", took.as_secs_f64());
    let server = Server::start(&data, &ServeExtras::default()).await?;
    let cases: Vec<i64> = ids
        .get(..o.burst)
        .context("burst cases")?
        .iter()
        .map(|c| c.case)
        .collect();
    let mut rx = officer_stream(&server, &server, &cases).await?;
    let conns = connect_all(server.teltonika, 0..2 * o.burst).await?;
    let (victims, offenders): (Vec<_>, Vec<_>) = conns.into_iter().partition(|(d, _)| d % 2 == 1);
    // Each victim's fix first, acknowledged, then time for the engine to evaluate them.
    let mut tasks = tokio::task::JoinSet::new();
    for (d, mut s) in victims {
        tasks.spawn(async move {
            let (lat, lon) = position(d, 0);
            s.write_all(&harness::teltonika_at(
                lat,
                lon,
                harness::next_ms(&mut 0),
                0,
            )?)
            .await?;
            harness::read_teltonika_ack(&mut s, 1).await?;
            anyhow::Ok(s)
        });
    }
    let mut kept = Vec::new();
    while let Some(done) = tasks.join_next().await {
        kept.push(done.context("victim task")??);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    while rx.try_recv().is_ok() {}

    let frames: Vec<_> = offenders
        .into_iter()
        .map(|(d, s)| {
            let (lat, lon) = position(d + 1, 0);
            Ok((
                s,
                harness::teltonika_at(lat + 0.0003, lon, harness::next_ms(&mut 0), 0)?,
            ))
        })
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (mut s, frame) in frames {
        tasks.spawn(async move {
            s.write_all(&frame).await?;
            harness::read_teltonika_ack(&mut s, 1).await?;
            anyhow::Ok(s)
        });
    }
    let mut first: BTreeMap<i64, Duration> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let wanted: std::collections::BTreeSet<i64> = cases.iter().copied().collect();
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    while first.len() < cases.len() {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(a)) => {
                if let Some(c) = a.case.filter(|c| wanted.contains(c))
                    && !first.contains_key(&c)
                {
                    first.insert(c, a.at.duration_since(started));
                    *rules.entry(a.rule).or_default() += 1;
                }
            }
            _ => break,
        }
    }
    while let Some(done) = tasks.join_next().await {
        kept.push(done.context("offender task")??);
    }
    let missing = cases.len() - first.len();
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram")?;
    for d in first.values() {
        h.record(d.as_micros().max(1) as u64)?;
    }
    let last = first.values().max().copied().unwrap_or_default();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let rules: Vec<String> = rules.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!(
        "| cases | breached at once | alerts | last alert s | alerts/s | p50 ms | p99 ms | max ms | missing | first alert |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    println!(
        "| {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {missing} | {} |",
        o.plan.cases,
        o.burst,
        first.len(),
        last.as_secs_f64(),
        first.len() as f64 / last.as_secs_f64().max(1e-9),
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0,
        rules.join(", ")
    );
    drop(kept);
    server.stop().await?;
    if missing > 0 {
        bail!(
            "{missing} of {} cases raised no alert within 120 s",
            cases.len()
        );
    }
    Ok(())
}
