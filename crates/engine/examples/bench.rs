//! Engine throughput and memory per case.
//!
//! `cargo run --release -p engine --example bench -- [cases] [rounds] [near]`
//!
//! With `near`, every offender is placed 150–450 m from his protected person (all cases in
//! the warning tier: the slow path), instead of 5–20 km away (idle: the common path).
//!
//! Builds a roster of `cases` orders (one offender and one protected person each, one device
//! each, people 5–20 km apart as most are most of the time), feeds one warm-up fix per device,
//! then `rounds` rounds of one fix per device (60 s apart, a few metres of noise) on one
//! thread, and prints fixes per second and resident memory per case. Resident memory is read
//! from /proc/self/statm (Linux); it includes the roster the engine holds.

use domain::{
    CaseId, DeviceId, DeviceKind, Fix, FixFlags, FixId, FixSource, LatLon, Order, OrderId,
    OrderKind, PersonId, UnixMicros,
};
use engine::{Engine, EngineConfig, Input, MonitoredOrder, Output, Roster};
use std::time::Instant;

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A tiny deterministic generator (SplitMix64) so the bench needs no dependencies.
struct Rng(u64);
impl Rng {
    fn f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let cases = args.first().copied().unwrap_or(100_000) as i64;
    let rounds = args.get(1).copied().unwrap_or(20) as i64;
    let near = std::env::args().any(|a| a == "near");
    let mut rng = Rng(42);
    let seoul = LatLon::new(37.5665, 126.9780).expect("valid");

    let rss0 = rss_bytes().unwrap_or(0);
    let mut roster = Roster::default();
    let mut positions: Vec<(DeviceId, LatLon)> = Vec::with_capacity(2 * cases as usize);
    for i in 0..cases {
        let (off, vic) = (PersonId(2 * i + 1), PersonId(2 * i + 2));
        let (d_off, d_vic) = (DeviceId(2 * i + 1), DeviceId(2 * i + 2));
        roster
            .devices
            .insert(d_off, (off, DeviceKind::AnkleMonitor));
        roster.devices.insert(d_vic, (vic, DeviceKind::VictimPhone));
        roster.orders.push(MonitoredOrder {
            order: Order {
                id: OrderId(i + 1),
                case_id: CaseId(i + 1),
                kind: OrderKind::ProvisionalMeasure,
                valid_from: UnixMicros(0),
                valid_to: None,
                no_approach_m: 100.0,
                warning_m: 500.0,
                disclosure_radius_m: 600.0,
                zones: vec![],
            },
            offender: off,
            protected: vec![vic],
        });
        let v = seoul.destination(rng.f64() * 360.0, rng.f64() * 20_000.0);
        let o = if near {
            v.destination(rng.f64() * 360.0, 150.0 + rng.f64() * 300.0)
        } else {
            v.destination(rng.f64() * 360.0, 5_000.0 + rng.f64() * 15_000.0)
        };
        positions.push((d_off, o));
        positions.push((d_vic, v));
    }
    let rss_roster = rss_bytes().unwrap_or(0);
    let t0 = 1_767_571_200i64;
    let mut engine = Engine::new(EngineConfig::default());
    engine.handle(Input::Roster(roster), UnixMicros::from_secs(t0));
    let mut id = 0i64;
    let mut fix = |dev: DeviceId, pos: LatLon, t: i64| {
        id += 1;
        Fix {
            id: Some(FixId(id)),
            device_id: dev,
            device_time: UnixMicros::from_secs(t),
            received_time: UnixMicros::from_secs(t),
            position: pos,
            accuracy_m: Some(12.0),
            speed_mps: None,
            course_deg: None,
            altitude_m: None,
            source: FixSource::Gnss,
            flags: FixFlags::default(),
            seq: None,
        }
    };
    let mut warmup_outputs = 0usize;
    for (d, p) in &positions {
        warmup_outputs += engine
            .handle(
                Input::Fix(fix(*d, *p, t0 + 1)),
                UnixMicros::from_secs(t0 + 1),
            )
            .len();
    }
    let rss1 = rss_bytes().unwrap_or(0);
    let mut outputs = 0usize;
    let mut n = 0u64;
    let start = Instant::now();
    for r in 1..=rounds {
        let t = t0 + 1 + 60 * r;
        let now = UnixMicros::from_secs(t);
        let jitter = (r % 7) as f64 * 1e-5;
        for (d, p) in &positions {
            let pos = LatLon::new(p.lat() + jitter, p.lon()).unwrap_or(*p);
            let out: Vec<Output> = engine.handle(Input::Fix(fix(*d, pos, t)), now);
            outputs += out.len();
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let tick_start = Instant::now();
    engine.handle(Input::Tick, UnixMicros::from_secs(t0 + 60 * (rounds + 1)));
    let tick = tick_start.elapsed().as_secs_f64();
    println!(
        "cases: {cases} (2 people, 2 devices each, {}), fixes: {n} on 1 thread",
        if near {
            "offender 150–450 m from her"
        } else {
            "5–20 km apart"
        }
    );
    println!(
        "throughput: {:.0} fixes/s/core ({:.2} µs per fix, incl. building each Fix); outputs: {warmup_outputs} in warm-up, {outputs} measured",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
    println!("one Tick over all cases: {:.1} ms", tick * 1e3);
    let roster_b = rss_roster.saturating_sub(rss0) as f64;
    let engine_b = rss1.saturating_sub(rss_roster) as f64;
    println!(
        "resident memory per case: engine state {:.0} B (tracks, indexes, episode state; {:.1} MiB total) + the roster it holds {:.0} B (orders, devices; built by the shell; includes this bench's position list, 64 B)",
        engine_b / cases as f64,
        engine_b / 1_048_576.0,
        roster_b / cases as f64,
    );
}
