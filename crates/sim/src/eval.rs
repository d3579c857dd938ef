//! The evaluation harness: simulated pair-days through the real engine, scored against ground
//! truth, beside a naive baseline (raw distance below the radius) fed the very same fixes.
//!
//! Each pair-day is a full 24 h simulated in `STEP_S` steps (no compression): one scenario
//! family in an active window, the rest of the day both people at their homes 5–8 km apart with
//! their devices reporting normally. Devices report every 60 s, or 15 s when the engine asks for
//! pursuit mode; fixes arrive after a 1–3 s network delay.

use crate::rng::Rng;
use crate::scenario::{self, DAY_STEPS, DayTruth, Family, P, STEP_S, Sig, Who};
use domain::{
    AlertRule, CaseId, DeviceId, DeviceKind, Fix, FixFlags, FixId, FixSource, LatLon, Order,
    OrderId, OrderKind, PersonId, UnixMicros, Zone, ZoneId, ZoneKind, ZoneShape,
};
use engine::{
    DeviceCommand, Engine, EngineConfig, Input, MonitoredOrder, Output, Roster, Transition,
};
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    pub seed: u64,
    pub pair_days: u64,
    /// GNSS noise, 1σ per axis (m).
    pub sigma_m: f64,
    /// Share of GNSS fixes that are multipath outliers 100–500 m off.
    pub outlier_rate: f64,
    /// Share of fixes located by cell tower (300–2,000 m accuracy).
    pub cell_rate: f64,
    pub duplicate_rate: f64,
    /// Share of fixes delayed 5–90 s (so they arrive out of order).
    pub reorder_rate: f64,
    /// Share of fixes flagged integrity-suspect (and up to 1 km off).
    pub suspect_rate: f64,
    /// Random link dropouts per device per day (fixes buffered, uploaded late in a batch).
    pub dropouts_per_day: f64,
    /// Device clocks are off by up to this many seconds (each device a constant offset).
    pub clock_skew_s: f64,
    pub no_approach_m: f64,
    pub warning_m: f64,
    pub interval_s: u32,
    pub threads: usize,
    pub engine: EngineConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            seed: 1,
            pair_days: 1_000,
            sigma_m: 15.0,
            outlier_rate: 0.02,
            cell_rate: 0.02,
            duplicate_rate: 0.01,
            reorder_rate: 0.02,
            suspect_rate: 0.005,
            dropouts_per_day: 1.0,
            clock_skew_s: 10.0,
            no_approach_m: 100.0,
            warning_m: 500.0,
            interval_s: 60,
            threads: 2,
            engine: EngineConfig::default(),
        }
    }
}

const OFFENDER: PersonId = PersonId(1);
const VICTIM: PersonId = PersonId(2);
const ANKLE: DeviceId = DeviceId(10);
const PHONE: DeviceId = DeviceId(20);
const ORIGIN: (f64, f64) = (37.5665, 126.9780);
/// 2026-01-05T00:00:00Z; each pair-day starts one day later.
const EPOCH_S: i64 = 1_767_571_200;

fn to_latlon(p: P) -> LatLon {
    let lat = ORIGIN.0 + p.1 / 111_194.93;
    let lon = ORIGIN.1 + p.0 / (111_194.93 * ORIGIN.0.to_radians().cos());
    LatLon::new(lat, lon)
        .unwrap_or_else(|_| LatLon::new(ORIGIN.0, ORIGIN.1).unwrap_or_else(|_| unreachable!()))
}

/// A breach of the no-approach distance in the truth.
#[derive(Debug, Clone)]
struct TruthEpisode {
    start: i64,
    end: i64,
    /// Arrival time of the first fix taken inside the episode.
    first_fix_arrival: Option<i64>,
    qualifying: bool,
}

/// Per-day results.
#[derive(Debug, Clone, Default)]
struct DayResult {
    family: Option<Family>,
    fixes: u64,
    truth: u64,
    qualifying: u64,
    detected: u64,
    late_detected: u64,
    delays: Vec<f64>,
    late_delays: Vec<f64>,
    alerts_per_ep: Vec<u32>,
    false_alarms: u64,
    false_possible: u64,
    leads: Vec<f64>,
    naive_detected: u64,
    naive_delays: Vec<f64>,
    naive_alerts_per_ep: Vec<u32>,
    naive_false: u64,
    naive_leads: Vec<f64>,
    pattern_expected: bool,
    pattern_raised: bool,
    sos_delay: Option<f64>,
    tamper_delay: Option<f64>,
    degraded_expected: bool,
    degraded_raised: bool,
    other_alerts: BTreeMap<AlertRule, u64>,
    commands: u64,
}

/// The whole run's results.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub config: EvalConfig,
    pub families: BTreeMap<&'static str, u64>,
    /// Per family: pair-days, qualifying episodes, detected, false alarms, naive false alarms.
    pub per_family: BTreeMap<Family, [u64; 5]>,
    pub fixes: u64,
    pub truth_episodes: u64,
    pub qualifying: u64,
    pub engine: Side,
    pub naive: Side,
    pub late_detected: u64,
    pub late_median_delay_s: Option<f64>,
    pub false_possible: u64,
    pub pattern: (u64, u64),
    /// Pair-days of other families where a grazing/loitering pattern was raised.
    pub pattern_elsewhere: u64,
    pub sos: (u64, Option<f64>),
    pub tamper: (u64, Option<f64>),
    pub degraded: (u64, u64),
    pub other_alerts: BTreeMap<AlertRule, u64>,
    pub commands: u64,
    pub wall_s: f64,
}

/// One detector's scores.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub detected: u64,
    pub recall: f64,
    pub median_delay_s: Option<f64>,
    pub p90_delay_s: Option<f64>,
    pub false_alarms: u64,
    pub false_per_pair_day: f64,
    pub alerts_per_episode: f64,
    pub exactly_one: f64,
    pub median_lead_s: Option<f64>,
    pub leads: u64,
}

fn median(v: &mut [f64]) -> Option<f64> {
    pct(v, 0.5)
}

fn pct(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    Some(v[i])
}

/// Runs the evaluation.
pub fn run(cfg: EvalConfig) -> EvalReport {
    let started = std::time::Instant::now();
    let threads = cfg.threads.max(1) as u64;
    let results: Vec<DayResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let cfg = &cfg;
                s.spawn(move || {
                    // Debugging aid: BULWARK_EVAL_ONLY=<day> simulates that pair-day alone.
                    let only: Option<u64> = std::env::var("BULWARK_EVAL_ONLY")
                        .ok()
                        .and_then(|v| v.parse().ok());
                    (0..cfg.pair_days)
                        .filter(|d| d % threads == k && only.is_none_or(|o| o == *d))
                        .map(|d| simulate_day(cfg, d))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut rep = EvalReport {
        config: cfg.clone(),
        families: BTreeMap::new(),
        per_family: BTreeMap::new(),
        fixes: 0,
        truth_episodes: 0,
        qualifying: 0,
        engine: Side::default(),
        naive: Side::default(),
        late_detected: 0,
        late_median_delay_s: None,
        false_possible: 0,
        pattern: (0, 0),
        pattern_elsewhere: 0,
        sos: (0, None),
        tamper: (0, None),
        degraded: (0, 0),
        other_alerts: BTreeMap::new(),
        commands: 0,
        wall_s: 0.0,
    };
    let (mut delays, mut late_delays, mut leads, mut n_delays, mut n_leads) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut ape, mut n_ape): (Vec<u32>, Vec<u32>) = (vec![], vec![]);
    let (mut sos, mut tamper) = (vec![], vec![]);
    for r in &results {
        if let Some(f) = r.family {
            *rep.families.entry(f.name()).or_default() += 1;
            let row = rep.per_family.entry(f).or_default();
            row[0] += 1;
            row[1] += r.qualifying;
            row[2] += r.detected;
            row[3] += r.false_alarms;
            row[4] += r.naive_false;
        }
        rep.fixes += r.fixes;
        rep.truth_episodes += r.truth;
        rep.qualifying += r.qualifying;
        rep.engine.detected += r.detected;
        rep.late_detected += r.late_detected;
        rep.engine.false_alarms += r.false_alarms;
        rep.false_possible += r.false_possible;
        rep.naive.detected += r.naive_detected;
        rep.naive.false_alarms += r.naive_false;
        delays.extend(&r.delays);
        late_delays.extend(&r.late_delays);
        leads.extend(&r.leads);
        n_delays.extend(&r.naive_delays);
        n_leads.extend(&r.naive_leads);
        ape.extend(&r.alerts_per_ep);
        n_ape.extend(&r.naive_alerts_per_ep);
        if r.pattern_expected {
            rep.pattern.1 += 1;
            rep.pattern.0 += u64::from(r.pattern_raised);
        } else {
            rep.pattern_elsewhere += u64::from(r.pattern_raised);
        }
        if r.degraded_expected {
            rep.degraded.1 += 1;
            rep.degraded.0 += u64::from(r.degraded_raised);
        }
        if let Some(d) = r.sos_delay {
            sos.push(d);
        }
        if let Some(d) = r.tamper_delay {
            tamper.push(d);
        }
        for (k, v) in &r.other_alerts {
            *rep.other_alerts.entry(*k).or_default() += v;
        }
        rep.commands += r.commands;
    }
    let days = cfg.pair_days.max(1) as f64;
    let q = rep.qualifying.max(1) as f64;
    for (side, delays, leads, ape) in [
        (&mut rep.engine, &mut delays, &mut leads, &ape),
        (&mut rep.naive, &mut n_delays, &mut n_leads, &n_ape),
    ] {
        side.recall = side.detected as f64 / q;
        side.median_delay_s = median(delays);
        side.p90_delay_s = pct(delays, 0.9);
        side.false_per_pair_day = side.false_alarms as f64 / days;
        side.alerts_per_episode = if ape.is_empty() {
            0.0
        } else {
            ape.iter().map(|&x| f64::from(x)).sum::<f64>() / ape.len() as f64
        };
        side.exactly_one = if ape.is_empty() {
            0.0
        } else {
            ape.iter().filter(|&&x| x == 1).count() as f64 / ape.len() as f64
        };
        side.leads = leads.len() as u64;
        side.median_lead_s = median(leads);
    }
    rep.late_median_delay_s = median(&mut late_delays);
    rep.sos = (sos.len() as u64, median(&mut sos));
    rep.tamper = (tamper.len() as u64, median(&mut tamper));
    rep.wall_s = started.elapsed().as_secs_f64();
    rep
}

/// A fix on its way to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    arrival_us: i64,
    seq: u64,
    item: Item,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Fix(Box<FixEq>),
    Event(DeviceId, engine::DeviceEventKind, i64),
}

/// `Fix` wrapped for the heap (ordering is by arrival and sequence only).
#[derive(Debug, Clone)]
struct FixEq(Fix);
impl PartialEq for FixEq {
    fn eq(&self, o: &Self) -> bool {
        self.0.id == o.0.id
    }
}
impl Eq for FixEq {}

impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Min-heap by (arrival, seq).
        (o.arrival_us, o.seq).cmp(&(self.arrival_us, self.seq))
    }
}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

struct DeviceSim {
    id: DeviceId,
    who: Who,
    interval_s: f64,
    next_fix_s: f64,
    skew_us: i64,
    seq: i64,
    buffer: Vec<Fix>,
    /// Arrival time of the last batch upload (live fixes queue behind it).
    flushed_until: i64,
    /// Random link dropouts: (start step, end step).
    dropouts: Vec<(usize, usize)>,
    /// Device dead after tamper? Not modelled: it keeps reporting from the pocket.
    silent_from: Option<usize>,
}

fn roster(truth: &DayTruth, cfg: &EvalConfig, day_start: i64) -> Roster {
    let mut r = Roster::default();
    r.devices
        .insert(ANKLE, (OFFENDER, DeviceKind::AnkleMonitor));
    r.devices.insert(PHONE, (VICTIM, DeviceKind::VictimPhone));
    let zones = truth
        .home_zone
        .map(|(c, radius)| Zone {
            id: ZoneId(1),
            kind: ZoneKind::Home,
            label: "home".into(),
            shape: ZoneShape::Circle {
                center: to_latlon(c),
                radius_m: radius,
            },
        })
        .into_iter()
        .collect();
    r.orders.push(MonitoredOrder {
        order: Order {
            id: OrderId(1),
            case_id: CaseId(1),
            kind: OrderKind::ProvisionalMeasure,
            valid_from: UnixMicros::from_secs(day_start - 86_400),
            valid_to: None,
            no_approach_m: cfg.no_approach_m,
            warning_m: cfg.warning_m,
            disclosure_radius_m: 600.0,
            zones,
        },
        offender: OFFENDER,
        protected: vec![VICTIM],
    });
    r
}

/// Breach intervals of the truth, merged across gaps shorter than the engine's hold so that one
/// visit is one episode.
fn truth_episodes(truth: &DayTruth, cfg: &EvalConfig, day_start: i64) -> Vec<TruthEpisode> {
    let r = cfg.no_approach_m;
    let mut eps: Vec<TruthEpisode> = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    let gap = (cfg.engine.clear_hold_s + 60.0) / STEP_S;
    for i in 0..DAY_STEPS {
        let (o, v) = (truth.offender[i], truth.victim[i]);
        let inside = (o.0 - v.0).hypot(o.1 - v.1) < r;
        if inside {
            cur = match cur {
                Some((a, b)) if (i - b) as f64 <= gap => Some((a, i)),
                Some((a, b)) => {
                    eps.push(mk_ep(a, b, day_start, cfg));
                    Some((i, i))
                }
                None => Some((i, i)),
            };
        }
    }
    if let Some((a, b)) = cur {
        eps.push(mk_ep(a, b, day_start, cfg));
    }
    eps
}

fn mk_ep(a: usize, b: usize, day_start: i64, cfg: &EvalConfig) -> TruthEpisode {
    let start = (day_start as f64 * 1e6 + a as f64 * STEP_S * 1e6) as i64;
    let end = (day_start as f64 * 1e6 + (b + 1) as f64 * STEP_S * 1e6) as i64;
    TruthEpisode {
        start,
        end,
        first_fix_arrival: None,
        qualifying: (end - start) as f64 / 1e6 >= 2.0 * f64::from(cfg.interval_s),
    }
}

/// The naive baseline: the latest raw fix of each party by arrival, an alert on every crossing
/// below the radius.
#[derive(Default)]
struct Naive {
    o: Option<LatLon>,
    v: Option<LatLon>,
    inside: bool,
    warn_inside: bool,
    raises: Vec<i64>,
    exits: Vec<i64>,
    warns: Vec<i64>,
}

impl Naive {
    fn on_fix(&mut self, who: Who, p: LatLon, now: i64, r: f64, w: f64) {
        match who {
            Who::Offender => self.o = Some(p),
            Who::Victim => self.v = Some(p),
        }
        if let (Some(o), Some(v)) = (self.o, self.v) {
            let d = o.distance_m(&v);
            let inside = d < r;
            if inside && !self.inside {
                self.raises.push(now);
            }
            if !inside && self.inside {
                self.exits.push(now);
            }
            self.inside = inside;
            let wi = d < w;
            if wi && !self.warn_inside {
                self.warns.push(now);
            }
            self.warn_inside = wi;
        }
    }
}

fn simulate_day(cfg: &EvalConfig, day: u64) -> DayResult {
    let truth = scenario::generate(cfg.seed, day);
    let mut rng = Rng::derive(cfg.seed ^ 0x005E_ED0F_F1C5, day);
    let day_start = EPOCH_S + day as i64 * 86_400;
    let us = |step: f64| day_start * 1_000_000 + (step * STEP_S * 1e6) as i64;
    let mut engine = Engine::new(cfg.engine.clone());
    let mut res = DayResult {
        family: Some(truth.family),
        ..Default::default()
    };
    let mut outputs: Vec<(i64, Output)> = Vec::new();
    for o in engine.handle(
        Input::Roster(roster(&truth, cfg, day_start)),
        UnixMicros(us(0.0)),
    ) {
        outputs.push((us(0.0), o));
    }
    let mut devices: Vec<DeviceSim> = [(ANKLE, Who::Offender), (PHONE, Who::Victim)]
        .into_iter()
        .map(|(id, who)| {
            let mut dropouts = Vec::new();
            let n = (cfg.dropouts_per_day + rng.range(-0.5, 0.5))
                .round()
                .max(0.0) as usize;
            for _ in 0..n {
                let a = rng.below(DAY_STEPS);
                let len = (rng.range(300.0, 1_200.0) / STEP_S) as usize;
                dropouts.push((a, (a + len).min(DAY_STEPS)));
            }
            DeviceSim {
                id,
                who,
                interval_s: f64::from(cfg.interval_s),
                next_fix_s: rng.range(0.0, f64::from(cfg.interval_s)),
                skew_us: (rng.range(-cfg.clock_skew_s, cfg.clock_skew_s) * 1e6) as i64,
                seq: 0,
                buffer: Vec::new(),
                flushed_until: 0,
                dropouts,
                silent_from: None,
            }
        })
        .collect();
    let mut eps = truth_episodes(&truth, cfg, day_start);
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut fix_id = day as i64 * 1_000_000;
    let mut naive = Naive::default();
    let tick_every = (30.0 / STEP_S) as usize;
    // Arrival time of each fix id and whether it was taken inside a truth episode.
    let mut arrivals: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    let mut event_arrivals: Vec<(engine::DeviceEventKind, i64)> = Vec::new();

    for step in 0..DAY_STEPS {
        let t_s = step as f64 * STEP_S;
        let now_us = us(step as f64);
        // Device events at this step.
        for &(s, who, kind) in &truth.events {
            if s == step {
                let dev = if who == Who::Offender { ANKLE } else { PHONE };
                seq += 1;
                heap.push(Pending {
                    arrival_us: now_us + 1_000_000,
                    seq,
                    item: Item::Event(dev, kind, now_us),
                });
            }
        }
        for dev in &mut devices {
            let (pos, sig) = match dev.who {
                Who::Offender => (truth.offender[step], truth.offender_sig[step]),
                Who::Victim => (truth.victim[step], truth.victim_sig[step]),
            };
            let link_down =
                dev.dropouts.iter().any(|&(a, b)| step >= a && step < b) || sig == Sig::Buffered;
            // Flush the buffer when the link is back.
            if !link_down && sig == Sig::Ok && !dev.buffer.is_empty() {
                let batch_at = now_us + 2_000_000;
                dev.flushed_until = batch_at;
                for mut f in dev.buffer.drain(..) {
                    f.received_time = UnixMicros(batch_at);
                    f.flags = f.flags.with(FixFlags::LATE);
                    seq += 1;
                    heap.push(Pending {
                        arrival_us: batch_at,
                        seq,
                        item: Item::Fix(Box::new(FixEq(f))),
                    });
                }
            }
            if t_s < dev.next_fix_s || dev.silent_from.is_some_and(|s| step >= s) {
                continue;
            }
            dev.next_fix_s = t_s + dev.interval_s;
            if sig == Sig::Dark {
                continue;
            }
            fix_id += 1;
            dev.seq += 1;
            let (f, delay_s) = observe(cfg, &mut rng, dev, pos, now_us, fix_id);
            res.fixes += 1;
            if link_down {
                dev.buffer.push(f);
                continue;
            }
            // A batch and the live fix share the device's connection: the batch goes first.
            let arrival = (now_us + (delay_s * 1e6) as i64).max(dev.flushed_until + 1);
            let dup = rng.chance(cfg.duplicate_rate);
            seq += 1;
            let mut f = f;
            f.received_time = UnixMicros(arrival);
            heap.push(Pending {
                arrival_us: arrival,
                seq,
                item: Item::Fix(Box::new(FixEq(f.clone()))),
            });
            if dup {
                seq += 1;
                let later = arrival + (rng.range(1.0, 10.0) * 1e6) as i64;
                f.received_time = UnixMicros(later);
                heap.push(Pending {
                    arrival_us: later,
                    seq,
                    item: Item::Fix(Box::new(FixEq(f))),
                });
            }
        }
        // Deliver everything that has arrived by the end of this step.
        let horizon = now_us + (STEP_S * 1e6) as i64;
        while heap.peek().is_some_and(|p| p.arrival_us < horizon) {
            let Some(p) = heap.pop() else { break };
            let now = UnixMicros(p.arrival_us);
            let out = match p.item {
                Item::Fix(f) => {
                    let f = f.0;
                    let who = if f.device_id == ANKLE {
                        Who::Offender
                    } else {
                        Who::Victim
                    };
                    if let Some(id) = f.id {
                        arrivals.entry(id.0).or_insert(p.arrival_us);
                    }
                    // The fix's true time (device time less the clock skew).
                    let skew = devices
                        .iter()
                        .find(|d| d.id == f.device_id)
                        .map_or(0, |d| d.skew_us);
                    let true_t = f.device_time.0 - skew;
                    for ep in &mut eps {
                        if true_t >= ep.start && true_t < ep.end && ep.first_fix_arrival.is_none() {
                            ep.first_fix_arrival = Some(p.arrival_us);
                        }
                    }
                    // The baseline skips cell fixes (as any tracker would) and uses the rest raw.
                    if f.source != FixSource::Cell {
                        naive.on_fix(
                            who,
                            f.position,
                            p.arrival_us,
                            cfg.no_approach_m,
                            cfg.warning_m,
                        );
                    }
                    engine.handle(Input::Fix(f), now)
                }
                Item::Event(dev, kind, t) => {
                    event_arrivals.push((kind, p.arrival_us));
                    engine.handle(
                        Input::DeviceEvent {
                            device: dev,
                            event: kind,
                            device_time: UnixMicros(t),
                            received_time: now,
                            code: None,
                        },
                        now,
                    )
                }
            };
            for o in out {
                if let Output::DeviceCommand {
                    device,
                    command: DeviceCommand::ReportingInterval(secs),
                } = &o
                {
                    res.commands += 1;
                    if let Some(d) = devices.iter_mut().find(|d| d.id == *device) {
                        d.interval_s = f64::from(*secs);
                        d.next_fix_s = d.next_fix_s.min(t_s + f64::from(*secs));
                    }
                }
                outputs.push((p.arrival_us, o));
            }
        }
        if step % tick_every == 0 {
            for o in engine.handle(Input::Tick, UnixMicros(now_us)) {
                outputs.push((now_us, o));
            }
        }
    }
    let _ = arrivals;
    if std::env::var("BULWARK_EVAL_TRACE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        == Some(day)
    {
        trace(&truth, &outputs, day_start);
    }
    score(
        cfg,
        day,
        &truth,
        &eps,
        &outputs,
        &naive,
        &event_arrivals,
        &mut res,
    );
    res
}

/// Prints a day's truth distance and alerts, for debugging the harness or the engine.
fn trace(truth: &DayTruth, outputs: &[(i64, Output)], day_start: i64) {
    let mut k = 0;
    for step in 0..DAY_STEPS {
        let t = day_start * 1_000_000 + (step as f64 * STEP_S * 1e6) as i64;
        let (o, v) = (truth.offender[step], truth.victim[step]);
        let d = (o.0 - v.0).hypot(o.1 - v.1);
        if d < 700.0 && step % 3 == 0 {
            eprintln!(
                "{:>6} true {:6.0} m  sig {:?}/{:?}",
                step * 5,
                d,
                truth.offender_sig[step],
                truth.victim_sig[step]
            );
        }
        while k < outputs.len() && outputs[k].0 < t + 5_000_000 {
            if let Output::Alert(a) = &outputs[k].1 {
                eprintln!(
                    "{:>6}   {:?} {:?} d {:?} ±{:?} {:?} late {} {}",
                    (outputs[k].0 / 1_000_000 - day_start),
                    a.key.rule,
                    a.transition,
                    a.distance_m.map(|x| x.round()),
                    a.uncertainty_m.map(|x| x.round()),
                    a.certainty,
                    a.late,
                    a.summary
                );
            }
            k += 1;
        }
    }
}

fn observe(
    cfg: &EvalConfig,
    rng: &mut Rng,
    dev: &DeviceSim,
    pos: P,
    now_us: i64,
    id: i64,
) -> (Fix, f64) {
    let mut flags = FixFlags::default();
    let (mut p, acc, source) = if rng.chance(cfg.cell_rate) {
        let acc = rng.range(300.0, 2_000.0);
        (
            (
                pos.0 + rng.normal() * acc / 2.0,
                pos.1 + rng.normal() * acc / 2.0,
            ),
            acc,
            FixSource::Cell,
        )
    } else {
        let s = cfg.sigma_m;
        let acc = (s * rng.range(0.8, 1.5)).round().max(3.0);
        let mut p = (pos.0 + rng.normal() * s, pos.1 + rng.normal() * s);
        if rng.chance(cfg.outlier_rate) {
            let a = rng.range(0.0, std::f64::consts::TAU);
            let d = rng.range(100.0, 500.0);
            p = (p.0 + d * a.cos(), p.1 + d * a.sin());
        }
        (p, acc, FixSource::Gnss)
    };
    if rng.chance(cfg.suspect_rate) {
        flags = flags.with(FixFlags::INTEGRITY_SUSPECT);
        let a = rng.range(0.0, std::f64::consts::TAU);
        let d = rng.range(0.0, 1_000.0);
        p = (p.0 + d * a.cos(), p.1 + d * a.sin());
    }
    let delay = if rng.chance(cfg.reorder_rate) {
        rng.range(5.0, 90.0)
    } else {
        rng.range(1.0, 3.0)
    };
    let fix = Fix {
        id: Some(FixId(id)),
        device_id: dev.id,
        device_time: UnixMicros(now_us + dev.skew_us),
        received_time: UnixMicros(now_us),
        position: to_latlon(p),
        accuracy_m: Some(acc),
        speed_mps: None,
        course_deg: None,
        altitude_m: None,
        source,
        flags,
        seq: Some(dev.seq),
    };
    (fix, delay)
}

#[allow(clippy::too_many_arguments)]
fn score(
    cfg: &EvalConfig,
    day: u64,
    truth: &DayTruth,
    eps: &[TruthEpisode],
    outputs: &[(i64, Output)],
    naive: &Naive,
    events: &[(engine::DeviceEventKind, i64)],
    res: &mut DayResult,
) {
    let before = 120 * 1_000_000;
    let after = 600 * 1_000_000;
    // An alert belongs to the breach it falls in (or just before); failing that, to the last
    // breach that ended less than `after` ago (late uploads).
    // Late-detected alerts come when the buffered upload does, which may be long after.
    let attribute = |t: i64, late: bool| {
        let after = if late { 4 * 3_600 * 1_000_000 } else { after };
        eps.iter()
            .rposition(|e| t >= e.start - before && t <= e.end)
            .or_else(|| eps.iter().rposition(|e| t > e.end && t <= e.end + after))
    };
    let mut per_ep = vec![0u32; eps.len()];
    let mut first = vec![None::<(i64, bool)>; eps.len()];
    // Warning intervals (raised, cleared), and violation intervals per rule.
    let mut warns: Vec<(i64, i64)> = Vec::new();
    let mut viol: Vec<(AlertRule, i64, i64)> = Vec::new();
    for (at, o) in outputs {
        match o {
            Output::Alert(a) => {
                let rule = a.key.rule;
                if matches!(
                    rule,
                    AlertRule::ProximityViolation | AlertRule::ZoneViolation
                ) && a.transition == Transition::Raised
                {
                    viol.push((rule, *at, i64::MAX));
                }
                match (rule, a.transition) {
                    (
                        AlertRule::ProximityViolation | AlertRule::ZoneViolation,
                        Transition::Raised,
                    ) => match attribute(*at, a.late) {
                        Some(i) => {
                            per_ep[i] += 1;
                            if first[i].is_none() {
                                first[i] = Some((*at, a.late));
                            }
                        }
                        None => {
                            if std::env::var_os("BULWARK_EVAL_DEBUG").is_some() {
                                eprintln!(
                                    "false alarm: day {day} {:?} at {} s: {}",
                                    truth.family,
                                    at / 1_000_000 % 86_400,
                                    a.summary
                                );
                            }
                            if a.certainty == engine::Certainty::Possible {
                                res.false_possible += 1;
                            } else {
                                res.false_alarms += 1;
                            }
                        }
                    },
                    (
                        AlertRule::ProximityViolation | AlertRule::ZoneViolation,
                        Transition::Cleared,
                    ) => {
                        if let Some(v) = viol.iter_mut().rev().find(|v| v.0 == rule) {
                            v.2 = *at;
                        }
                    }
                    (AlertRule::ProximityWarning, Transition::Raised) => {
                        warns.push((*at, i64::MAX));
                    }
                    (AlertRule::ProximityWarning, Transition::Cleared) => {
                        if let Some(w) = warns.last_mut() {
                            w.1 = *at;
                        }
                    }
                    (AlertRule::BoundaryGrazing, Transition::Raised) => {
                        res.pattern_raised = true;
                        if std::env::var_os("BULWARK_EVAL_DEBUG").is_some() {
                            eprintln!("pattern: day {day} {:?}: {}", truth.family, a.summary);
                        }
                    }
                    (AlertRule::ProtectionDegraded, Transition::Raised) => {
                        res.degraded_raised = true;
                        *res.other_alerts.entry(rule).or_default() += 1;
                    }
                    (AlertRule::Sos, Transition::Raised) => {
                        if let Some((_, t)) = events
                            .iter()
                            .find(|(k, _)| *k == engine::DeviceEventKind::Sos)
                        {
                            res.sos_delay = Some((at - t) as f64 / 1e6);
                        }
                    }
                    (AlertRule::Tamper, Transition::Raised) => {
                        if let Some((_, t)) = events
                            .iter()
                            .find(|(k, _)| *k == engine::DeviceEventKind::Tamper)
                        {
                            res.tamper_delay = Some((at - t) as f64 / 1e6);
                        }
                    }
                    (_, Transition::Raised) => *res.other_alerts.entry(rule).or_default() += 1,
                    _ => {}
                }
            }
            Output::DeviceAlert(_) | Output::DeviceCommand { .. } => {}
        }
    }
    res.pattern_expected = matches!(truth.family, Family::Loitering | Family::Grazing);
    res.degraded_expected = truth
        .victim_stale
        .is_some_and(|(a, b)| (b - a) as f64 * STEP_S > cfg.engine.victim_stale_after_s + 60.0);
    // A breach that begins while an alert from an earlier one is still open is covered by it:
    // the operator already has that alert in front of them.
    for (i, e) in eps.iter().enumerate() {
        if first[i].is_none() && viol.iter().any(|v| v.1 <= e.start && v.2 >= e.start) {
            first[i] = Some((e.start, false));
            per_ep[i] = per_ep[i].max(1);
        }
    }
    let mut n_per_ep = vec![0u32; eps.len()];
    let mut n_first = vec![None::<i64>; eps.len()];
    for &t in &naive.raises {
        match attribute(t, false) {
            Some(i) => {
                n_per_ep[i] += 1;
                if n_first[i].is_none() {
                    n_first[i] = Some(t);
                }
            }
            None => res.naive_false += 1,
        }
    }
    for (i, e) in eps.iter().enumerate() {
        if n_first[i].is_none() {
            let open =
                naive.raises.iter().enumerate().any(|(k, &a)| {
                    a <= e.start && naive.exits.get(k).is_none_or(|&x| x >= e.start)
                });
            if open {
                n_first[i] = Some(e.start);
                n_per_ep[i] = n_per_ep[i].max(1);
            }
        }
    }
    for (i, e) in eps.iter().enumerate() {
        res.truth += 1;
        if !e.qualifying {
            continue;
        }
        res.qualifying += 1;
        let base = e.first_fix_arrival.unwrap_or(e.start);
        if per_ep[i] > 1 && std::env::var_os("BULWARK_EVAL_DEBUG").is_some() {
            eprintln!(
                "{} alerts: day {day} {:?} start {} s into day, {} s long",
                per_ep[i],
                truth.family,
                (e.start / 1_000_000) % 86_400,
                (e.end - e.start) / 1_000_000
            );
        }
        if let Some((t, late)) = first[i] {
            res.detected += 1;
            res.alerts_per_ep.push(per_ep[i]);
            if late {
                res.late_detected += 1;
                res.late_delays.push((t - base) as f64 / 1e6);
            } else {
                res.delays.push(((t - base) as f64 / 1e6).max(0.0));
            }
        }
        if first[i].is_none() && std::env::var_os("BULWARK_EVAL_DEBUG").is_some() {
            eprintln!(
                "missed: day {day} {:?} start {} s into day, {} s long, first fix after {:?} s",
                truth.family,
                (e.start / 1_000_000) % 86_400,
                (e.end - e.start) / 1_000_000,
                e.first_fix_arrival.map(|a| (a - e.start) / 1_000_000)
            );
        }
        if let Some(t) = n_first[i] {
            res.naive_detected += 1;
            res.naive_alerts_per_ep.push(n_per_ep[i]);
            res.naive_delays.push(((t - base) as f64 / 1e6).max(0.0));
        }
        if truth.family.walking_approach() {
            // Lead: how long before the breach began the warning episode in force was raised.
            let lead = warns
                .iter()
                .filter(|(a, _)| *a <= e.start + after)
                .find(|(a, b)| *a <= e.start && *b >= e.start)
                .map_or_else(
                    || {
                        warns
                            .iter()
                            .find(|(a, _)| *a >= e.start)
                            .map_or(f64::NEG_INFINITY, |(a, _)| -((a - e.start) as f64) / 1e6)
                    },
                    |(a, _)| (e.start - a) as f64 / 1e6,
                );
            if lead.is_finite() {
                res.leads.push(lead);
            }
            let nlead = naive
                .warns
                .iter()
                .rev()
                .find(|a| **a <= e.start)
                .map(|a| (e.start - a) as f64 / 1e6);
            if let Some(l) = nlead {
                res.naive_leads.push(l);
            }
        }
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let opt = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.0} s"));
        writeln!(
            f,
            "Bulwark engine evaluation — seed {}, {} pair-days, σ {} m, outliers {:.1} %, cell {:.1} %, dup {:.1} %, reorder {:.1} %, suspect {:.1} %, {} dropouts/device/day, skew ±{} s, interval {} s",
            c.seed,
            c.pair_days,
            c.sigma_m,
            c.outlier_rate * 100.0,
            c.cell_rate * 100.0,
            c.duplicate_rate * 100.0,
            c.reorder_rate * 100.0,
            c.suspect_rate * 100.0,
            c.dropouts_per_day,
            c.clock_skew_s,
            c.interval_s
        )?;
        writeln!(
            f,
            "{} fixes; {} true breach episodes, {} lasting ≥ 2 fix intervals ({} s); {:.1} s wall",
            self.fixes,
            self.truth_episodes,
            self.qualifying,
            2 * c.interval_s,
            self.wall_s
        )?;
        let fam: Vec<String> = self
            .families
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "families: {}", fam.join(", "))?;
        writeln!(f)?;
        writeln!(
            f,
            "| metric | engine | naive (raw distance < radius) | target |"
        )?;
        writeln!(f, "| --- | --- | --- | --- |")?;
        let (e, n) = (&self.engine, &self.naive);
        writeln!(
            f,
            "| recall (breaches ≥ 2 intervals) | {:.1} % ({}/{}) | {:.1} % ({}/{}) | 100 % |",
            e.recall * 100.0,
            e.detected,
            self.qualifying,
            n.recall * 100.0,
            n.detected,
            self.qualifying
        )?;
        writeln!(
            f,
            "| median / p90 detection delay after first breaching fix arrives (live) | {} / {} | {} / {} | ≤ {} s |",
            opt(e.median_delay_s),
            opt(e.p90_delay_s),
            opt(n.median_delay_s),
            opt(n.p90_delay_s),
            c.interval_s
        )?;
        writeln!(
            f,
            "| false-alarm violation episodes per pair-day | {:.4} ({}) | {:.4} ({}) | ≤ 0.01 |",
            e.false_per_pair_day, e.false_alarms, n.false_per_pair_day, n.false_alarms
        )?;
        writeln!(
            f,
            "| alerts per detected episode (share with exactly one) | {:.3} ({:.1} %) | {:.3} ({:.1} %) | 1 |",
            e.alerts_per_episode,
            e.exactly_one * 100.0,
            n.alerts_per_episode,
            n.exactly_one * 100.0
        )?;
        writeln!(
            f,
            "| median early-warning lead, walking approaches ({} / {}) | {} | {} | ≥ 60 s |",
            e.leads,
            n.leads,
            opt(e.median_lead_s),
            opt(n.median_lead_s)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| family | pair-days | breaches ≥ 2 intervals | detected | false alarms | naive false alarms |"
        )?;
        writeln!(f, "| --- | --- | --- | --- | --- | --- |")?;
        for (fam, r) in &self.per_family {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} |",
                fam.name(),
                r[0],
                r[1],
                r[2],
                r[3],
                r[4]
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "late-detected (buffered uploads): {} episodes, median delay {}; unattributed \"possible\" violations: {}",
            self.late_detected,
            opt(self.late_median_delay_s),
            self.false_possible
        )?;
        writeln!(
            f,
            "grazing/loitering pattern raised: {}/{} (on {} other pair-days); protection degraded raised: {}/{}; SOS alerts {} (median {} after receipt); tamper alerts {} (median {})",
            self.pattern.0,
            self.pattern.1,
            self.pattern_elsewhere,
            self.degraded.0,
            self.degraded.1,
            self.sos.0,
            opt(self.sos.1),
            self.tamper.0,
            opt(self.tamper.1)
        )?;
        let other: Vec<String> = self
            .other_alerts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            f,
            "other alerts raised: {}; reporting-interval commands: {}",
            other.join(", "),
            self.commands
        )
    }
}
