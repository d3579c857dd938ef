//! The rules: distance tiers between offender and protected person, static zones, boundary
//! grazing, staleness, device silence and device events — and the episode machine that turns
//! each into one alert that is raised once, updated, and cleared with hysteresis.
//!
//! Decisions use uncertainty: the distance between two *estimates* (see `track`) with a 1σ
//! uncertainty σ. A breach is **confirmed** when `d + z·σ ≤ radius`, **possible** when
//! `d − z·σ ≤ radius`. Leaving needs `d − z·σ > radius + margin` for the hold time.

use crate::fast::FastMap;
use crate::people::People;
use crate::roster::{MonitoredOrder, Roster};
use crate::schedule::ZoneSchedule;
use crate::track::{FixLite, Track, Update, reasoning_accuracy_m};
use crate::{DeviceAlert, DeviceCommand, DeviceEventKind, EngineConfig, Output};
use domain::{
    AlertRule, DeviceId, Fix, FixFlags, FixId, LatLon, OrderId, PersonId, Severity, UnixMicros,
    ZoneId, ZoneShape,
};
use std::collections::HashMap;

/// Identifies one alert episode: one rule, one order, and the person or zone it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub order_id: OrderId,
    pub rule: AlertRule,
    pub protected: Option<PersonId>,
    pub zone: Option<ZoneId>,
}

/// How an episode changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A new episode: raise an alert.
    Raised,
    /// The episode goes on and got worse (closer, or confirmed); update the alert's evidence.
    Updated,
    /// The condition has been clear for the hold time.
    Cleared,
}

/// How sure the engine is of the condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Certainty {
    /// Inside the radius with at least the configured confidence (default 90 %), or a
    /// condition that is not about positions (an event, a timer).
    Confirmed,
    /// The positions are too uncertain to confirm or exclude it (cell fixes, a stale phone,
    /// integrity-suspect fixes).
    Possible,
}

/// One change to one alert, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSignal {
    pub key: AlertKey,
    pub transition: Transition,
    pub severity: Severity,
    pub at: UnixMicros,
    /// Estimated distance (m): offender–protected person, or into a zone (negative = inside).
    pub distance_m: Option<f64>,
    /// The fixes that caused this transition.
    pub evidence: Vec<FixId>,
    pub summary: String,
    pub certainty: Certainty,
    /// Found from fixes or events that arrived late (buffered uploads, out of order): a
    /// "late-detected violation", not a live one.
    pub late: bool,
    /// 1σ uncertainty of `distance_m`.
    pub uncertainty_m: Option<f64>,
    /// Rate at which the distance shrinks (m/s; negative = moving apart).
    pub closing_speed_mps: Option<f64>,
    /// The offender moves toward the protected person (within 45°) at walking pace or faster.
    pub heading_toward: Option<bool>,
    /// Seconds until the no-approach distance is reached at the current closing speed.
    pub time_to_contact_s: Option<f64>,
    /// For SOS: the protected person's last known position (see `position_age_s`).
    pub position: Option<LatLon>,
    /// Age of `position` in seconds at `at`.
    pub position_age_s: Option<f64>,
}

/// An optional time in 8 bytes (`Option<UnixMicros>` takes 16): per-case state is kept small
/// because an idle case should cost well under a kilobyte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OptTime(i64);

impl Default for OptTime {
    fn default() -> Self {
        OptTime::NONE
    }
}

impl OptTime {
    const NONE: OptTime = OptTime(i64::MIN);

    fn get(self) -> Option<UnixMicros> {
        (self.0 != i64::MIN).then_some(UnixMicros(self.0))
    }

    fn get_or_insert(&mut self, t: UnixMicros) -> UnixMicros {
        if self.0 == i64::MIN {
            self.0 = t.0;
        }
        UnixMicros(self.0)
    }

    fn is_some_and(self, f: impl FnOnce(UnixMicros) -> bool) -> bool {
        self.get().is_some_and(f)
    }

    fn is_none(self) -> bool {
        self.0 == i64::MIN
    }
}

#[derive(Debug, Clone)]
struct Episode {
    certainty: Certainty,
    min_d: f32,
    severity: Severity,
    /// When the condition was first seen clear (with margin); none while it holds.
    clear_since: OptTime,
}

impl Episode {
    fn new(certainty: Certainty, d: f64, severity: Severity) -> Self {
        Episode {
            certainty,
            min_d: d as f32,
            severity,
            clear_since: OptTime::NONE,
        }
    }
}

/// One distance tier (or zone) for one pair.
#[derive(Debug, Clone, Default)]
struct Level {
    streak: u8,
    /// The offender's fix time when the current streak began: a doubtful breach is confirmed
    /// only by a *different* offender fix (a victim fix arriving does not re-confirm the same
    /// offender outlier).
    streak_o: OptTime,
    prev_evidence: [i64; 2],
    possible_since: OptTime,
    ep: Option<Episode>,
}

#[derive(Debug, Clone, Default)]
struct Graze {
    disarmed: bool,
    /// The latest approach has not (yet) turned into a breach.
    last_open: bool,
    band_since: OptTime,
    approaches: Vec<(UnixMicros, i64)>,
    ep: Option<Episode>,
}

#[derive(Debug, Clone)]
struct PairState {
    person: PersonId,
    last_seen: (UnixMicros, UnixMicros),
    degraded: Option<Episode>,
    /// Distance-rule state, allocated only while the two are anywhere near each other (or an
    /// episode is open): most pairs, most of the time, are kilometres apart.
    hot: Option<Box<HotPair>>,
}

#[derive(Debug, Clone, Default)]
struct HotPair {
    viol: Level,
    warn: Level,
    notice: Level,
    graze: Graze,
    pursuit: bool,
}

impl HotPair {
    fn idle(&self) -> bool {
        let level_idle = |l: &Level| l.ep.is_none() && l.streak == 0 && l.possible_since.is_none();
        level_idle(&self.viol)
            && level_idle(&self.warn)
            && level_idle(&self.notice)
            && self.graze.ep.is_none()
            && self.graze.approaches.is_empty()
            && self.graze.band_since.is_none()
            && !self.pursuit
    }
}

#[derive(Debug, Clone)]
struct ZoneState {
    zone: ZoneId,
    last_seen: UnixMicros,
    level: Level,
}

#[derive(Debug, Clone)]
struct CaseState {
    order_id: OrderId,
    /// When the engine first saw the order (silence is counted from here at the latest).
    since: UnixMicros,
    pairs: Vec<PairState>,
    zones: Vec<ZoneState>,
    offline: Option<Episode>,
    no_fix: Option<Episode>,
    /// SOS, tamper and battery episodes.
    events: Vec<(AlertKey, Episode)>,
}

/// The engine's state: roster indexes, one track per person, one case state per order.
#[derive(Debug, Default)]
pub(crate) struct State {
    roster: Roster,
    people: People,
    cases: Vec<CaseState>,
    schedules: FastMap<ZoneId, ZoneSchedule>,
}

/// What one evaluation sees of a pair.
#[derive(Debug, Clone, Copy)]
struct View {
    d: f64,
    sigma: f64,
    evidence: [i64; 2],
    surprise: bool,
    /// The offender is moving: his estimate may lag a turn or a stop, so a violation needs
    /// a second opinion.
    moving: bool,
    suspect: bool,
    closing: Option<f64>,
    toward: Option<bool>,
    /// Device time of the evaluation.
    t: UnixMicros,
    /// Device time of the offender's estimate.
    t_o: UnixMicros,
}

impl View {
    /// A breach found late (a fix that arrived after later ones): the distance at that device
    /// time, with no motion or approach to judge.
    fn late(d: f64, sigma: f64, evidence: [i64; 2], t: UnixMicros, t_o: UnixMicros) -> View {
        View {
            d,
            sigma,
            evidence,
            surprise: false,
            moving: false,
            suspect: false,
            closing: None,
            toward: None,
            t,
            t_o,
        }
    }
}

/// Context shared by one evaluation.
struct Ctx<'a> {
    cfg: &'a EngineConfig,
    now: UnixMicros,
    late: bool,
}

impl State {
    pub(crate) fn case_count(&self) -> usize {
        self.cases.len()
    }

    pub(crate) fn set_schedules(&mut self, s: Vec<(ZoneId, ZoneSchedule)>) {
        self.schedules = s.into_iter().collect();
    }

    pub(crate) fn set_roster(
        &mut self,
        cfg: &EngineConfig,
        roster: Roster,
        now: UnixMicros,
        out: &mut Vec<Output>,
    ) {
        let mut old: HashMap<OrderId, CaseState> = std::mem::take(&mut self.cases)
            .into_iter()
            .map(|c| (c.order_id, c))
            .collect();
        self.people.rebuild(&roster);
        self.cases.reserve_exact(roster.orders.len());
        for mo in &roster.orders {
            let prev = old.remove(&mo.order.id);
            self.cases.push(CaseState::new(mo, prev, now));
        }
        // Orders that left the roster: their open episodes end (SOS and tamper stay open for
        // an operator to resolve).
        let mut gone: Vec<CaseState> = old.into_values().collect();
        gone.sort_by_key(|c| c.order_id);
        let ctx = Ctx {
            cfg,
            now,
            late: false,
        };
        for mut c in gone {
            c.close_all(&ctx, out, "order no longer monitored");
        }
        self.roster = roster;
        self.evaluate_all(cfg, now, out);
    }

    pub(crate) fn evaluate_all(
        &mut self,
        cfg: &EngineConfig,
        now: UnixMicros,
        out: &mut Vec<Output>,
    ) {
        let ctx = Ctx {
            cfg,
            now,
            late: false,
        };
        for i in 0..self.cases.len() {
            self.evaluate_case(&ctx, i, out);
        }
    }

    pub(crate) fn on_fix(
        &mut self,
        cfg: &EngineConfig,
        fix: &Fix,
        now: UnixMicros,
        out: &mut Vec<Output>,
    ) {
        let Some(person) = self.people.owner_of(fix.device_id) else {
            return;
        };
        let device_time = plausible_device_time(fix.device_time, fix.received_time);
        let lite = FixLite {
            id: fix.id.map_or(i64::MIN, |f| f.0),
            t: device_time,
            pos: fix.position,
            acc_m: reasoning_accuracy_m(fix) as f32,
            flags: fix.flags,
        };
        let Some(slot) = self.people.track_slot(person) else {
            return;
        };
        let update = match slot {
            Some(tr) => tr.update(cfg, lite, fix.received_time),
            None => {
                *slot = Some(Track::new(lite, fix.received_time));
                Update::Accepted
            }
        };
        if update == Update::Duplicate {
            return;
        }
        let late = fix.flags.has(FixFlags::LATE) || now.secs_since(device_time) > cfg.late_after_s;
        let ctx = Ctx { cfg, now, late };
        // Indices are copied out so the case states can be borrowed mutably.
        let mut buf = [0u32; 8];
        let mut n = 0;
        let mut extra: Vec<u32> = Vec::new();
        for o in self.people.orders(person) {
            if n < buf.len() {
                buf[n] = o;
                n += 1;
            } else {
                extra.push(o);
            }
        }
        for &i in buf[..n].iter().chain(&extra) {
            if update == Update::OutOfOrder {
                self.out_of_order(&ctx, i as usize, person, lite, out);
            }
            self.evaluate_case(&ctx, i as usize, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_event(
        &mut self,
        cfg: &EngineConfig,
        device: DeviceId,
        (event, code): (DeviceEventKind, Option<&str>),
        device_time: UnixMicros,
        received_time: UnixMicros,
        now: UnixMicros,
        out: &mut Vec<Output>,
    ) {
        let person = self.people.owner_of(device);
        let device_time = plausible_device_time(device_time, received_time);
        let late = now.secs_since(device_time) > cfg.late_after_s;
        if let Some(Some(tr)) = person.and_then(|p| self.people.track_slot(p)) {
            tr.last_received = tr.last_received.max(received_time);
        }
        let (rule, severity, what) = match event {
            DeviceEventKind::Sos => (AlertRule::Sos, Severity::Critical, "SOS pressed"),
            DeviceEventKind::Tamper => (AlertRule::Tamper, Severity::Critical, "tamper"),
            DeviceEventKind::Removal => (AlertRule::Tamper, Severity::Critical, "device removed"),
            DeviceEventKind::LowBattery => {
                (AlertRule::DeviceBattery, Severity::Warning, "low battery")
            }
            DeviceEventKind::PowerCut => {
                (AlertRule::DeviceBattery, Severity::Critical, "power cut")
            }
            DeviceEventKind::Charging => (AlertRule::DeviceBattery, Severity::Info, "charging"),
            DeviceEventKind::DeviceAlarm => (
                AlertRule::DeviceAlarm,
                Severity::Warning,
                code.unwrap_or("device alarm"),
            ),
            DeviceEventKind::Spoofing => (
                AlertRule::DeviceSpoofing,
                Severity::Critical,
                code.unwrap_or("possible spoofing"),
            ),
        };
        let what = match event {
            DeviceEventKind::DeviceAlarm => format!("device alarm {what}"),
            DeviceEventKind::Spoofing => format!("possible spoofing ({what})"),
            _ => what.to_string(),
        };
        let orders: Vec<u32> = person
            .map(|p| {
                self.people
                    .orders(p)
                    .filter(|&i| self.roster.orders[i as usize].order.in_force(now))
                    .collect()
            })
            .unwrap_or_default();
        if orders.is_empty() {
            if event != DeviceEventKind::Charging {
                out.push(Output::DeviceAlert(DeviceAlert {
                    device,
                    person,
                    rule,
                    severity,
                    at: now,
                    late,
                    summary: format!("{what} on device {device} (no order in force)"),
                }));
            }
            return;
        }
        let Some(person) = person else { return };
        for i in orders {
            let i = i as usize;
            let mo = &self.roster.orders[i];
            let is_protected = mo.protected.contains(&person);
            if event == DeviceEventKind::Sos && !is_protected {
                // An offender's device has no SOS role; staff still see it.
                out.push(Output::DeviceAlert(DeviceAlert {
                    device,
                    person: Some(person),
                    rule,
                    severity: Severity::Warning,
                    at: now,
                    late,
                    summary: format!("SOS from offender device {device}"),
                }));
                continue;
            }
            let key = AlertKey {
                order_id: mo.order.id,
                rule,
                protected: is_protected.then_some(person),
                zone: None,
            };
            // Position for the alert: the protected person's last known one, said to be so.
            let (position, age, dist, evidence) = self.event_position(cfg, mo, person, now);
            let case = &mut self.cases[i];
            let slot = case.events.iter().position(|(k, _)| *k == key);
            let mut signal = |transition, summary: String, sev| {
                out.push(Output::Alert(AlertSignal {
                    key,
                    transition,
                    severity: sev,
                    at: now,
                    distance_m: dist,
                    evidence: evidence.clone(),
                    summary,
                    certainty: Certainty::Confirmed,
                    late,
                    uncertainty_m: None,
                    closing_speed_mps: None,
                    heading_toward: None,
                    time_to_contact_s: None,
                    position,
                    position_age_s: age,
                }))
            };
            let where_ = match (position, age) {
                (Some(_), Some(a)) => format!("; last known position {a:.0} s old"),
                _ => "; no position known".to_string(),
            };
            match (event, slot) {
                (DeviceEventKind::Charging, Some(s)) => {
                    case.events.remove(s);
                    signal(
                        Transition::Cleared,
                        format!("device {device} charging"),
                        Severity::Info,
                    );
                }
                (DeviceEventKind::Charging, None) => {}
                (_, None) => {
                    case.events
                        .push((key, Episode::new(Certainty::Confirmed, 0.0, severity)));
                    signal(
                        Transition::Raised,
                        format!("{what} on device {device}{where_}"),
                        severity,
                    );
                }
                (_, Some(s)) => {
                    // Tamper and SOS never clear themselves; a repeat updates the alert.
                    let ep = &mut case.events[s].1;
                    if severity > ep.severity || matches!(rule, AlertRule::Sos | AlertRule::Tamper)
                    {
                        ep.severity = ep.severity.max(severity);
                        let sev = ep.severity;
                        signal(
                            Transition::Updated,
                            format!("{what} again on device {device}{where_}"),
                            sev,
                        );
                    }
                }
            }
        }
        // A device that speaks is not offline.
        let ctx = Ctx { cfg, now, late };
        let orders: Vec<u32> = self.people.orders(person).collect();
        {
            for i in orders {
                self.evaluate_case(&ctx, i as usize, out);
            }
        }
    }

    /// For event alerts: the protected person's last known position and its age, the distance
    /// to the offender if both are known, and the fixes that say so.
    #[allow(clippy::type_complexity)]
    fn event_position(
        &self,
        cfg: &EngineConfig,
        mo: &MonitoredOrder,
        person: PersonId,
        now: UnixMicros,
    ) -> (Option<LatLon>, Option<f64>, Option<f64>, Vec<FixId>) {
        let subject = self.people.track(person);
        let offender = self.people.track(mo.offender);
        let mut evidence = Vec::new();
        let pos = subject.map(|t| {
            let e = t.estimate_at(cfg, now, 0.0);
            if let Some(id) = fix_id(t.last_id) {
                evidence.push(id);
            }
            (e.pos, now.secs_since(t.t).max(0.0))
        });
        let dist = match (pos, offender, person == mo.offender) {
            (Some((p, _)), Some(o), false) => {
                if let Some(id) = fix_id(o.last_id) {
                    evidence.push(id);
                }
                Some(o.estimate_at(cfg, now, 0.0).pos.distance_m(&p))
            }
            _ => None,
        };
        (pos.map(|p| p.0), pos.map(|p| p.1), dist, evidence)
    }

    /// A fix older than its track's estimate: judged alone against the other party's fix
    /// nearest in time. Only a confirmed breach counts, and it is reported as late.
    fn out_of_order(
        &mut self,
        ctx: &Ctx,
        i: usize,
        person: PersonId,
        fix: FixLite,
        out: &mut Vec<Output>,
    ) {
        if fix.flags.has(FixFlags::INTEGRITY_SUSPECT) || fix.flags.has(FixFlags::NO_GNSS_FIX) {
            return;
        }
        let mo = &self.roster.orders[i];
        if !mo.order.in_force(fix.t) {
            return;
        }
        let cfg = ctx.cfg;
        // Judged alone, a fix needs stronger evidence (99 %) and must agree with the same
        // person's fixes around it: a multipath outlier arriving late must not raise anything.
        let z = cfg.confidence_z.max(2.33);
        let consistent = self
            .people
            .track(person)
            .and_then(|t| t.fix_near(fix.t, cfg.position_grace_s))
            .is_some_and(|n| {
                let dt = fix.t.secs_since(n.t).abs();
                n.pos.distance_m(&fix.pos)
                    <= 2.0 * (f64::from(n.acc_m) + f64::from(fix.acc_m)) + 3.0 * dt
            });
        if !consistent {
            return;
        }
        let case = &mut self.cases[i];
        let late_ctx = Ctx {
            cfg,
            now: ctx.now,
            late: true,
        };
        for pair in &mut case.pairs {
            let (o_fix, v_fix) = if person == mo.offender {
                // Her fix from then; or, if she has stayed put since before then, her
                // latest one.
                let Some(v) = self.people.track(pair.person).and_then(|t| {
                    t.fix_near(fix.t, cfg.position_grace_s)
                        .or_else(|| t.last_accepted().filter(|_| fix.t >= t.still_since))
                        .or_else(|| {
                            t.stay_at(fix.t).map(|pos| FixLite {
                                id: i64::MIN,
                                t: fix.t,
                                pos,
                                acc_m: (crate::track::STILL_RADIUS_M / 2.0) as f32,
                                flags: FixFlags::default(),
                            })
                        })
                }) else {
                    continue;
                };
                (fix, v)
            } else if person == pair.person {
                let Some(o) = self
                    .people
                    .track(mo.offender)
                    .and_then(|t| t.fix_near(fix.t, cfg.position_grace_s))
                else {
                    continue;
                };
                (o, fix)
            } else {
                continue;
            };
            let d = o_fix.pos.distance_m(&v_fix.pos);
            let u = f64::from(o_fix.acc_m).hypot(f64::from(v_fix.acc_m));
            let hot = pair.hot.get_or_insert_with(Box::default);
            if d + z * u <= mo.order.no_approach_m && hot.viol.ep.is_none() {
                let key = AlertKey {
                    order_id: mo.order.id,
                    rule: AlertRule::ProximityViolation,
                    protected: Some(pair.person),
                    zone: None,
                };
                hot.viol.ep = Some(Episode::new(Certainty::Confirmed, d, Severity::Critical));
                let view = View::late(d, u, [o_fix.id, v_fix.id], fix.t, o_fix.t);
                raise_late(
                    &late_ctx,
                    out,
                    key,
                    &view,
                    format!(
                        "late-detected violation: offender {d:.0} m ±{u:.0} m from protected person at device time {} (limit {:.0} m)",
                        fix.t.as_secs_f64() as i64,
                        mo.order.no_approach_m
                    ),
                );
            }
        }
        if person == mo.offender {
            for (zs, zone) in case.zones.iter_mut().zip(&mo.order.zones) {
                let active = self
                    .schedules
                    .get(&zone.id)
                    .is_none_or(|s| s.active_at(fix.t, cfg.utc_offset_s));
                let d = distance_into_zone(&fix.pos, &zone.shape);
                let u = f64::from(fix.acc_m);
                if active && d + z * u <= 0.0 && zs.level.ep.is_none() {
                    zs.level.ep = Some(Episode::new(Certainty::Confirmed, d, Severity::Critical));
                    let key = AlertKey {
                        order_id: mo.order.id,
                        rule: AlertRule::ZoneViolation,
                        protected: None,
                        zone: Some(zone.id),
                    };
                    let view = View::late(d, u, [fix.id, i64::MIN], fix.t, fix.t);
                    raise_late(
                        &late_ctx,
                        out,
                        key,
                        &view,
                        format!("late-detected zone violation in {:?}", zone.label),
                    );
                }
            }
        }
    }

    fn evaluate_case(&mut self, ctx: &Ctx, i: usize, out: &mut Vec<Output>) {
        let mo = &self.roster.orders[i];
        if !mo.order.in_force(ctx.now) {
            // Protection ends: say so rather than leave alerts hanging.
            self.cases[i].close_all(ctx, out, "order not in force");
            return;
        }
        let cfg = ctx.cfg;
        let case = &mut self.cases[i];
        let offender = self.people.track(mo.offender);
        let order_id = mo.order.id;

        // Offender silent, or reporting without a GNSS fix.
        let heard = offender.map_or(case.since, |t| t.last_received.max(case.since));
        let silent_s = ctx.now.secs_since(heard);
        timer_episode(
            ctx,
            out,
            &mut case.offline,
            AlertKey {
                order_id,
                rule: AlertRule::DeviceOffline,
                protected: None,
                zone: None,
            },
            silent_s > cfg.offender_offline_after_s,
            || format!("offender's devices silent for {silent_s:.0} s"),
            "offender's device reporting again",
            offender.map(|t| t.last_id),
        );
        let no_fix_s =
            offender.map_or(0.0, |t| ctx.now.secs_since(t.last_good_fix.max(case.since)));
        timer_episode(
            ctx,
            out,
            &mut case.no_fix,
            AlertKey {
                order_id,
                rule: AlertRule::DeviceNoFix,
                protected: None,
                zone: None,
            },
            silent_s <= cfg.offender_offline_after_s
                && no_fix_s > cfg.offender_no_fix_after_s
                && offender.is_some_and(|t| !t.last_arrival_good),
            || format!("offender's device reports without a GNSS fix for {no_fix_s:.0} s"),
            "offender's device has a GNSS fix again",
            offender.map(|t| t.last_id),
        );

        for pair in &mut case.pairs {
            let victim = self.people.track(pair.person);
            let key = |rule| AlertKey {
                order_id,
                rule,
                protected: Some(pair.person),
                zone: None,
            };
            // Protection degraded: the protected person's phone went quiet.
            let v_heard = victim.map_or(case.since, |t| t.last_received.max(case.since));
            let v_silent = ctx.now.secs_since(v_heard);
            timer_episode(
                ctx,
                out,
                &mut pair.degraded,
                key(AlertRule::ProtectionDegraded),
                v_silent > cfg.victim_stale_after_s,
                || {
                    format!(
                        "protected person's device silent for {v_silent:.0} s; using registered places and last known position"
                    )
                },
                "protected person's device reporting again",
                victim.map(|t| t.last_id),
            );

            let view = pair_view(cfg, offender, victim, ctx.now, ctx.late);
            let new_info = match (offender, victim) {
                (Some(o), Some(v)) => {
                    let seen = (o.t, v.t);
                    let new = seen != pair.last_seen;
                    pair.last_seen = seen;
                    new
                }
                _ => false,
            };
            let r = mo.order.no_approach_m;
            let ttc = view.and_then(|v| time_to_contact(&v, r));
            let fast = view.is_some_and(|v| {
                v.toward == Some(true)
                    && ttc.is_some_and(|t| t <= cfg.ttc_warn_s)
                    && v.d <= cfg.notice_m.max(mo.order.warning_m)
            });
            // Far apart with nothing open: no distance rule can fire; skip the work and the
            // memory.
            let reach = cfg.notice_m.max(mo.order.warning_m) + 2.0 * cfg.clear_margin_m;
            let near = view.is_some_and(|v| v.d - cfg.confidence_z * v.sigma <= reach);
            if pair.hot.is_none() && !near {
                continue;
            }
            let hot = pair.hot.get_or_insert_with(Box::default);
            let was_open = hot.viol.ep.is_some();
            step_level(
                ctx,
                out,
                &mut hot.viol,
                key(AlertRule::ProximityViolation),
                Severity::Critical,
                r,
                true,
                false,
                view.as_ref(),
                new_info,
                ttc,
                |v, c| {
                    format!(
                        "{}offender {:.0} m ±{:.0} m from protected person (limit {r:.0} m){}",
                        if c == Certainty::Possible {
                            "possible breach: "
                        } else {
                            ""
                        },
                        v.d,
                        v.sigma,
                        approach_text(v, ttc)
                    )
                },
            );
            let warn_m = mo.order.warning_m;
            step_level(
                ctx,
                out,
                &mut hot.warn,
                key(AlertRule::ProximityWarning),
                Severity::Warning,
                warn_m,
                false,
                fast,
                view.as_ref(),
                new_info,
                ttc,
                |v, _| {
                    format!(
                        "offender {:.0} m ±{:.0} m from protected person (warning at {warn_m:.0} m){}",
                        v.d,
                        v.sigma,
                        approach_text(v, ttc)
                    )
                },
            );
            if cfg.notice_m > 0.0 {
                let notice_m = cfg.notice_m;
                step_level(
                    ctx,
                    out,
                    &mut hot.notice,
                    key(AlertRule::ProximityNotice),
                    Severity::Info,
                    notice_m,
                    false,
                    false,
                    view.as_ref(),
                    new_info,
                    ttc,
                    |v, _| {
                        format!(
                            "offender within {notice_m:.0} m of protected person ({:.0} m ±{:.0} m){}",
                            v.d,
                            v.sigma,
                            approach_text(v, ttc)
                        )
                    },
                );
            }
            graze_step(
                ctx,
                out,
                &mut hot.graze,
                key(AlertRule::BoundaryGrazing),
                r,
                was_open || hot.viol.ep.is_some(),
                view.as_ref(),
                new_info,
            );

            // Pursuit mode: faster reporting from every device involved while warned.
            let want = hot.warn.ep.is_some() || hot.viol.ep.is_some();
            if want != hot.pursuit {
                hot.pursuit = want;
                let secs = if want {
                    cfg.pursuit_interval_s
                } else {
                    cfg.normal_interval_s
                };
                for p in [mo.offender, pair.person] {
                    for d in self.people.devices(p) {
                        out.push(Output::DeviceCommand {
                            device: d,
                            command: DeviceCommand::ReportingInterval(secs),
                        });
                    }
                }
            }
            if !near && hot.idle() {
                pair.hot = None;
            }
        }

        for (zs, zone) in case.zones.iter_mut().zip(&mo.order.zones) {
            let active = self
                .schedules
                .get(&zone.id)
                .is_none_or(|s| s.active_at(ctx.now, cfg.utc_offset_s));
            let view = offender.and_then(|o| {
                if ctx.now.secs_since(o.t) > cfg.stale_after_s {
                    return None;
                }
                let e = o.estimate_at(cfg, o.t, cfg.offender_drift_mps);
                // Inactive by schedule: treated as far outside, so an open episode clears.
                let d = if active {
                    distance_into_zone(&e.pos, &zone.shape)
                } else {
                    f64::INFINITY
                };
                Some(View {
                    d,
                    sigma: e.sigma_m,
                    evidence: [o.last_id, i64::MIN],
                    surprise: o.surprise,
                    moving: o.speed_mps() > cfg.moving_mps,
                    suspect: o.suspect,
                    closing: None,
                    toward: None,
                    t: o.t,
                    t_o: o.t,
                })
            });
            let new_info = offender.is_some_and(|o| o.t != zs.last_seen);
            if let Some(o) = offender {
                zs.last_seen = o.t;
            }
            let label = &zone.label;
            step_level(
                ctx,
                out,
                &mut zs.level,
                AlertKey {
                    order_id,
                    rule: AlertRule::ZoneViolation,
                    protected: None,
                    zone: Some(zone.id),
                },
                Severity::Critical,
                0.0,
                true,
                false,
                view.as_ref(),
                new_info,
                None,
                |v, c| {
                    format!(
                        "{}offender inside zone {label:?} ({:.0} m ±{:.0} m from its edge)",
                        if c == Certainty::Possible {
                            "possibly "
                        } else {
                            ""
                        },
                        -v.d,
                        v.sigma
                    )
                },
            );
        }
    }
}

impl CaseState {
    /// Ends every open position and timer episode of the case with a `Cleared`.
    fn close_all(&mut self, ctx: &Ctx, out: &mut Vec<Output>, why: &str) {
        let order_id = self.order_id;
        let mut clear = |ep: &mut Option<Episode>, rule, protected, zone| {
            if let Some(e) = ep.take() {
                emit(
                    ctx,
                    out,
                    AlertKey {
                        order_id,
                        rule,
                        protected,
                        zone,
                    },
                    Transition::Cleared,
                    e.severity,
                    e.certainty,
                    None,
                    &[],
                    why.to_string(),
                    None,
                );
            }
        };
        clear(&mut self.offline, AlertRule::DeviceOffline, None, None);
        clear(&mut self.no_fix, AlertRule::DeviceNoFix, None, None);
        for pair in &mut self.pairs {
            let p = Some(pair.person);
            clear(&mut pair.degraded, AlertRule::ProtectionDegraded, p, None);
            if let Some(hot) = pair.hot.as_mut() {
                clear(&mut hot.viol.ep, AlertRule::ProximityViolation, p, None);
                clear(&mut hot.warn.ep, AlertRule::ProximityWarning, p, None);
                clear(&mut hot.notice.ep, AlertRule::ProximityNotice, p, None);
                clear(&mut hot.graze.ep, AlertRule::BoundaryGrazing, p, None);
            }
            pair.hot = None;
        }
        for z in &mut self.zones {
            clear(
                &mut z.level.ep,
                AlertRule::ZoneViolation,
                None,
                Some(z.zone),
            );
            z.level = Level::default();
        }
    }

    fn new(mo: &MonitoredOrder, prev: Option<CaseState>, now: UnixMicros) -> Self {
        let mut prev = prev;
        let mut take_pair = |p: PersonId| {
            prev.as_mut()
                .and_then(|c| {
                    c.pairs
                        .iter()
                        .position(|x| x.person == p)
                        .map(|i| c.pairs.swap_remove(i))
                })
                .unwrap_or(PairState {
                    person: p,
                    last_seen: (UnixMicros(i64::MIN), UnixMicros(i64::MIN)),
                    degraded: None,
                    hot: None,
                })
        };
        let pairs = mo.protected.iter().map(|p| take_pair(*p)).collect();
        let zones = mo
            .order
            .zones
            .iter()
            .map(|z| {
                prev.as_mut()
                    .and_then(|c| {
                        c.zones
                            .iter()
                            .position(|x| x.zone == z.id)
                            .map(|i| c.zones.swap_remove(i))
                    })
                    .unwrap_or(ZoneState {
                        zone: z.id,
                        last_seen: UnixMicros(i64::MIN),
                        level: Level::default(),
                    })
            })
            .collect();
        match prev {
            Some(p) => CaseState {
                order_id: mo.order.id,
                since: p.since,
                pairs,
                zones,
                offline: p.offline,
                no_fix: p.no_fix,
                events: p.events,
            },
            None => CaseState {
                order_id: mo.order.id,
                since: now,
                pairs,
                zones,
                offline: None,
                no_fix: None,
                events: Vec::new(),
            },
        }
    }
}

/// The device's time, unless it is implausible (more than 10 min ahead of receipt, or more than
/// 30 days behind: a wrong clock, a GPS week roll-over); then the receipt time. The raw fix
/// keeps what the device said; this only orders it. Also keeps all time arithmetic far from
/// overflow whatever a device sends.
fn plausible_device_time(device: UnixMicros, received: UnixMicros) -> UnixMicros {
    const AHEAD: i64 = 600 * UnixMicros::SECOND;
    const BEHIND: i64 = 30 * 86_400 * UnixMicros::SECOND;
    match received.0.checked_sub(device.0) {
        Some(d) if (-AHEAD..=BEHIND).contains(&d) => device,
        _ => received,
    }
}

fn fix_id(id: i64) -> Option<FixId> {
    (id != i64::MIN).then_some(FixId(id))
}

fn evidence_of(sets: &[[i64; 2]]) -> Vec<FixId> {
    let mut v: Vec<FixId> = Vec::with_capacity(4);
    for id in sets.iter().flatten().filter_map(|&i| fix_id(i)) {
        if !v.contains(&id) {
            v.push(id);
        }
    }
    v
}

/// The distance between the offender's and the protected person's estimates, at the later of
/// their two fix times, with the uncertainty of both.
fn pair_view(
    cfg: &EngineConfig,
    offender: Option<&Track>,
    victim: Option<&Track>,
    now: UnixMicros,
    late: bool,
) -> Option<View> {
    let (o, v) = (offender?, victim?);
    // Old positions are no current positions — except while a late upload is being replayed,
    // when the question is where both were at that time.
    if now.secs_since(o.t) > cfg.stale_after_s && !late {
        return None;
    }
    // A victim silent for hours gives no useful position at all.
    let max_age = (cfg.victim_stale_after_s * 4.0).max(cfg.stale_after_s);
    if now.secs_since(v.t) > max_age && !late {
        return None;
    }
    let grace = cfg.position_grace_s;
    // One party's estimate is far older than the other's (a late batch): compare with the
    // other's raw fix from that time, if there is one.
    let at_fix = |h: crate::track::FixLite| crate::track::Estimate {
        pos: h.pos,
        vel: (0.0, 0.0),
        sigma_m: f64::from(h.acc_m),
    };
    let (t, eo, ev) = if v.t.secs_since(o.t) > grace {
        match v.fix_near(o.t, grace) {
            Some(h) => (
                o.t,
                o.estimate_at(cfg, o.t, cfg.offender_drift_mps),
                at_fix(h),
            ),
            // She has stayed put since before then: she was where she is now.
            None if o.t >= v.still_since => {
                let mut e = v.estimate_at(cfg, v.t, 0.0);
                e.sigma_m += crate::track::STILL_RADIUS_M / 2.0;
                (o.t, o.estimate_at(cfg, o.t, cfg.offender_drift_mps), e)
            }
            // She was staying somewhere else then (home, before she went out).
            None if v.stay_at(o.t).is_some() => {
                let pos = v
                    .stay_at(o.t)
                    .unwrap_or_else(|| v.estimate_at(cfg, v.t, 0.0).pos);
                let e = crate::track::Estimate {
                    pos,
                    vel: (0.0, 0.0),
                    sigma_m: crate::track::STILL_RADIUS_M / 2.0,
                };
                (o.t, o.estimate_at(cfg, o.t, cfg.offender_drift_mps), e)
            }
            None => {
                let t = o.t.max(v.t);
                (
                    t,
                    o.estimate_at(cfg, t, cfg.offender_drift_mps),
                    v.estimate_at(cfg, t, cfg.victim_drift_mps),
                )
            }
        }
    } else if o.t.secs_since(v.t) > grace {
        match o.fix_near(v.t, grace) {
            Some(h) => (
                v.t,
                at_fix(h),
                v.estimate_at(cfg, v.t, cfg.victim_drift_mps),
            ),
            None => {
                let t = o.t.max(v.t);
                (
                    t,
                    o.estimate_at(cfg, t, cfg.offender_drift_mps),
                    v.estimate_at(cfg, t, cfg.victim_drift_mps),
                )
            }
        }
    } else {
        let t = o.t.max(v.t);
        (
            t,
            o.estimate_at(cfg, t, cfg.offender_drift_mps),
            v.estimate_at(cfg, t, cfg.victim_drift_mps),
        )
    };
    let d = eo.pos.distance_m(&ev.pos);
    let sigma = eo.sigma_m.hypot(ev.sigma_m);
    let (closing, toward) = if d > 1.0 {
        let (ue, un) = eo.pos.local_en_m(&ev.pos);
        let (ue, un) = (ue / d, un / d);
        let rel = ((eo.vel.0 - ev.vel.0) * ue + (eo.vel.1 - ev.vel.1) * un).clamp(-100.0, 100.0);
        let speed = eo.vel.0.hypot(eo.vel.1);
        let toward = speed >= 0.7 && (eo.vel.0 * ue + eo.vel.1 * un) / speed >= 0.707;
        (Some(rel), Some(toward))
    } else {
        (None, None)
    };
    Some(View {
        d,
        sigma,
        evidence: [o.last_id, v.last_id],
        surprise: o.surprise || v.surprise,
        moving: o.speed_mps() > cfg.moving_mps,
        suspect: o.suspect || v.suspect,
        closing,
        toward,
        t,
        t_o: o.t,
    })
}

fn time_to_contact(v: &View, radius: f64) -> Option<f64> {
    let c = v.closing?;
    if c < 0.3 {
        return None;
    }
    Some(((v.d - radius).max(0.0) / c).min(86_400.0))
}

fn approach_text(v: &View, ttc: Option<f64>) -> String {
    match (v.closing, v.toward, ttc) {
        (Some(c), Some(true), Some(t)) if c > 0.3 => {
            format!("; moving toward her at {c:.1} m/s, contact in ~{t:.0} s")
        }
        (Some(c), _, _) if c > 0.3 => format!("; closing at {c:.1} m/s"),
        _ => String::new(),
    }
}

/// Raises a confirmed, critical alert for a breach found late.
fn raise_late(ctx: &Ctx, out: &mut Vec<Output>, key: AlertKey, view: &View, summary: String) {
    emit(
        ctx,
        out,
        key,
        Transition::Raised,
        Severity::Critical,
        Certainty::Confirmed,
        Some(view),
        &evidence_of(&[view.evidence]),
        summary,
        None,
    );
}

#[allow(clippy::too_many_arguments)]
fn emit(
    ctx: &Ctx,
    out: &mut Vec<Output>,
    key: AlertKey,
    transition: Transition,
    severity: Severity,
    certainty: Certainty,
    view: Option<&View>,
    evidence: &[FixId],
    summary: String,
    ttc: Option<f64>,
) {
    out.push(Output::Alert(AlertSignal {
        key,
        transition,
        severity,
        at: ctx.now,
        distance_m: view.map(|v| v.d).filter(|d| d.is_finite()),
        evidence: evidence.to_vec(),
        summary,
        certainty,
        late: ctx.late,
        uncertainty_m: view.map(|v| v.sigma),
        closing_speed_mps: view.and_then(|v| v.closing),
        heading_toward: view.and_then(|v| v.toward),
        time_to_contact_s: ttc,
        position: None,
        position_age_s: None,
    }));
}

/// A condition driven by a timer (silence, staleness): raised while `active`, cleared when not.
#[allow(clippy::too_many_arguments)]
fn timer_episode(
    ctx: &Ctx,
    out: &mut Vec<Output>,
    ep: &mut Option<Episode>,
    key: AlertKey,
    active: bool,
    raise_summary: impl FnOnce() -> String,
    clear_summary: &str,
    last_fix: Option<i64>,
) {
    let evidence = || evidence_of(&[[last_fix.unwrap_or(i64::MIN), i64::MIN]]);
    let timer_ctx = Ctx {
        cfg: ctx.cfg,
        now: ctx.now,
        late: false,
    };
    match (ep.is_some(), active) {
        (false, true) => {
            *ep = Some(Episode::new(Certainty::Confirmed, 0.0, Severity::Warning));
            emit(
                &timer_ctx,
                out,
                key,
                Transition::Raised,
                Severity::Warning,
                Certainty::Confirmed,
                None,
                &evidence(),
                raise_summary(),
                None,
            );
        }
        (true, false) => {
            *ep = None;
            emit(
                &timer_ctx,
                out,
                key,
                Transition::Cleared,
                Severity::Warning,
                Certainty::Confirmed,
                None,
                &evidence(),
                clear_summary.to_string(),
                None,
            );
        }
        _ => {}
    }
}

/// Advances one distance level. `confirm`: the level needs a confirmed breach (violations);
/// otherwise the estimate inside the radius suffices (warning tiers). `extra_hit`: raise
/// regardless of the distance (a fast approach for the warning tier).
#[allow(clippy::too_many_arguments)]
fn step_level(
    ctx: &Ctx,
    out: &mut Vec<Output>,
    level: &mut Level,
    key: AlertKey,
    severity: Severity,
    radius: f64,
    confirm: bool,
    extra_hit: bool,
    view: Option<&View>,
    new_info: bool,
    ttc: Option<f64>,
    summary: impl Fn(&View, Certainty) -> String,
) {
    let cfg = ctx.cfg;
    let z = cfg.confidence_z;
    let Some(v) = view else {
        // Unknown distance: an open episode closes only after a long hold.
        if let Some(ep) = &mut level.ep {
            let since = ep.clear_since.get_or_insert(ctx.now);
            if ctx.now.secs_since(since) >= cfg.clear_hold_s.max(cfg.stale_after_s) {
                let min = ep.min_d;
                level.ep = None;
                level.streak = 0;
                level.streak_o = OptTime::NONE;
                emit(
                    ctx,
                    out,
                    key,
                    Transition::Cleared,
                    severity,
                    Certainty::Possible,
                    None,
                    &[],
                    format!(
                        "no current position for {:.0} s (closest {min:.0} m)",
                        cfg.clear_hold_s.max(cfg.stale_after_s)
                    ),
                    None,
                );
            }
        }
        return;
    };
    let certain = v.d + z * v.sigma <= radius && !v.suspect;
    let possible = v.d - z * v.sigma <= radius;
    // Tiers below a violation take the estimate itself, unless it is too vague to mean much.
    let hit = extra_hit
        || if confirm {
            certain
        } else {
            v.d + z * v.sigma <= radius || (v.d <= radius && v.sigma <= radius / 2.0)
        };
    if new_info {
        if hit {
            level.streak = level.streak.saturating_add(1);
            level.streak_o.get_or_insert(v.t_o);
        } else {
            level.streak = 0;
            level.streak_o = OptTime::NONE;
        }
    }
    // One evaluation suffices only when nothing about it is doubtful; otherwise the breach
    // must hold over `confirm_fixes` evaluations including a second offender fix.
    // Warning tiers are cheap and take one evaluation. A violation is never confirmed while
    // either party's latest fix surprised its filter (an outlier persists in the estimate
    // until that party's next fix), and a moving offender needs a second fix of his own.
    let second_offender_fix = level.streak_o.is_some_and(|t| t != v.t_o);
    let confirmed_now = hit
        && (!confirm
            || (!v.surprise
                && (!v.moving || (level.streak >= cfg.confirm_fixes && second_offender_fix))));
    if confirm {
        if v.d <= radius && possible && !certain {
            level.possible_since.get_or_insert(v.t);
        } else if !possible || certain {
            level.possible_since = OptTime::NONE;
        }
    }
    let evidence = || {
        if level.streak >= 2 {
            evidence_of(&[level.prev_evidence, v.evidence])
        } else {
            evidence_of(&[v.evidence])
        }
    };
    let cert_of = |c: bool| {
        if c {
            Certainty::Confirmed
        } else {
            Certainty::Possible
        }
    };
    match &mut level.ep {
        None => {
            let possible_long = confirm
                && new_info
                && level
                    .possible_since
                    .is_some_and(|s| v.t.secs_since(s) >= cfg.possible_hold_s);
            if new_info && confirmed_now {
                let c = if confirm {
                    Certainty::Confirmed
                } else {
                    cert_of(certain)
                };
                let ev = evidence();
                level.ep = Some(Episode::new(c, v.d, severity));
                emit(
                    ctx,
                    out,
                    key,
                    Transition::Raised,
                    severity,
                    c,
                    Some(v),
                    &ev,
                    summary(v, c),
                    ttc,
                );
            } else if possible_long {
                let ev = evidence();
                let sev = if severity == Severity::Critical {
                    Severity::Warning
                } else {
                    severity
                };
                level.ep = Some(Episode::new(Certainty::Possible, v.d, sev));
                emit(
                    ctx,
                    out,
                    key,
                    Transition::Raised,
                    sev,
                    Certainty::Possible,
                    Some(v),
                    &ev,
                    summary(v, Certainty::Possible),
                    ttc,
                );
            }
        }
        Some(ep) => {
            let outside = if confirm {
                v.d - z * v.sigma > radius + cfg.clear_margin_m
            } else {
                v.d > radius + cfg.clear_margin_m && !extra_hit
            };
            if outside {
                let since = ep.clear_since.get_or_insert(ctx.now);
                if ctx.now.secs_since(since) >= cfg.clear_hold_s {
                    let min = ep.min_d;
                    let sev = ep.severity;
                    let c = ep.certainty;
                    level.ep = None;
                    level.streak = 0;
                    level.streak_o = OptTime::NONE;
                    emit(
                        ctx,
                        out,
                        key,
                        Transition::Cleared,
                        sev,
                        c,
                        Some(v),
                        &evidence_of(&[v.evidence]),
                        format!(
                            "condition clear for {:.0} s (closest {min:.0} m)",
                            cfg.clear_hold_s
                        ),
                        ttc,
                    );
                }
            } else {
                ep.clear_since = OptTime::NONE;
                if new_info
                    && confirm
                    && certain
                    && confirmed_now
                    && ep.certainty == Certainty::Possible
                {
                    ep.certainty = Certainty::Confirmed;
                    ep.severity = severity;
                    ep.min_d = ep.min_d.min(v.d as f32);
                    let ev = evidence();
                    emit(
                        ctx,
                        out,
                        key,
                        Transition::Updated,
                        severity,
                        Certainty::Confirmed,
                        Some(v),
                        &ev,
                        summary(v, Certainty::Confirmed),
                        ttc,
                    );
                } else if new_info && hit && v.d < f64::from(ep.min_d) - 10.0 {
                    ep.min_d = v.d as f32;
                    let (sev, c) = (ep.severity, ep.certainty);
                    emit(
                        ctx,
                        out,
                        key,
                        Transition::Updated,
                        sev,
                        c,
                        Some(v),
                        &evidence_of(&[v.evidence]),
                        summary(v, c),
                        ttc,
                    );
                }
            }
        }
    }
    if new_info {
        level.prev_evidence = v.evidence;
    }
}

/// Counts approaches into the band just outside the no-approach distance, and time spent
/// there; a pattern (repeated approaches, or loitering) raises one alert with every approach
/// as evidence.
#[allow(clippy::too_many_arguments)]
fn graze_step(
    ctx: &Ctx,
    out: &mut Vec<Output>,
    g: &mut Graze,
    key: AlertKey,
    radius: f64,
    in_violation: bool,
    view: Option<&View>,
    new_info: bool,
) {
    let cfg = ctx.cfg;
    let mut newly = false;
    if in_violation {
        // An approach that became a breach is a violation, not grazing.
        if g.last_open {
            g.approaches.pop();
            g.last_open = false;
        }
        g.band_since = OptTime::NONE;
        g.disarmed = true;
    } else if let (Some(v), true) = (view, new_info) {
        let in_band = v.d <= radius + cfg.graze_band_m;
        if in_band && !g.disarmed {
            g.approaches.push((v.t, v.evidence[0]));
            g.disarmed = true;
            g.last_open = true;
            newly = true;
        }
        if !in_band && v.d > radius + cfg.graze_band_m + cfg.clear_margin_m {
            g.disarmed = false;
            g.last_open = false;
        }
        // Loitering is counted in a wider band: hours spent watching her door from across
        // the street are a pattern even if he never comes within the grazing band.
        if v.d <= radius + cfg.loiter_band_m {
            g.band_since.get_or_insert(v.t);
        } else {
            g.band_since = OptTime::NONE;
        }
    }
    let t_ref = view.map_or(ctx.now, |v| v.t);
    g.approaches
        .retain(|(t, _)| t_ref.secs_since(*t) <= cfg.graze_window_s);
    let loiter = g
        .band_since
        .is_some_and(|s| t_ref.secs_since(s) >= cfg.loiter_s);
    let pattern = g.approaches.len() >= cfg.graze_count as usize || loiter;
    let evidence = || {
        let mut ids: Vec<FixId> = g
            .approaches
            .iter()
            .filter_map(|(_, id)| fix_id(*id))
            .collect();
        if let Some(v) = view {
            for id in evidence_of(&[v.evidence]) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids.truncate(64);
        ids
    };
    let summary = |what: &str| {
        format!(
            "{what}: {} approaches to within {:.0} m of the {radius:.0} m limit in {:.0} h{}",
            g.approaches.len(),
            cfg.graze_band_m,
            cfg.graze_window_s / 3600.0,
            if loiter {
                ", loitering just outside"
            } else {
                ""
            }
        )
    };
    match &g.ep {
        None if pattern && view.is_some() => {
            let ev = evidence();
            let s = summary("boundary grazing");
            g.ep = Some(Episode::new(Certainty::Confirmed, 0.0, Severity::Warning));
            emit(
                ctx,
                out,
                key,
                Transition::Raised,
                Severity::Warning,
                Certainty::Confirmed,
                view,
                &ev,
                s,
                None,
            );
        }
        Some(_) if newly => {
            let ev = evidence();
            let s = summary("boundary grazing continues");
            emit(
                ctx,
                out,
                key,
                Transition::Updated,
                Severity::Warning,
                Certainty::Confirmed,
                view,
                &ev,
                s,
                None,
            );
        }
        Some(_) if g.approaches.is_empty() && g.band_since.is_none() => {
            g.ep = None;
            let s = summary("no approaches");
            emit(
                ctx,
                out,
                key,
                Transition::Cleared,
                Severity::Warning,
                Certainty::Confirmed,
                view,
                &[],
                s,
                None,
            );
        }
        _ => {}
    }
}

/// Signed distance from a point to a zone's edge, expressed so that "inside" is `<= 0`:
/// negative means inside by that many metres.
pub fn distance_into_zone(p: &LatLon, shape: &ZoneShape) -> f64 {
    match shape {
        ZoneShape::Circle { center, radius_m } => p.distance_m(center) - radius_m,
        ZoneShape::Polygon { ring } => {
            let pts: Vec<(f64, f64)> = ring.iter().map(|v| p.local_en_m(v)).collect();
            let inside = point_in_polygon((0.0, 0.0), &pts);
            let edge = distance_to_ring((0.0, 0.0), &pts);
            if inside { -edge } else { edge }
        }
    }
}

fn point_in_polygon(p: (f64, f64), ring: &[(f64, f64)]) -> bool {
    let mut inside = false;
    let n = ring.len();
    for i in 0..n {
        let (xi, yi) = ring[i];
        let (xj, yj) = ring[(i + n - 1) % n];
        if (yi > p.1) != (yj > p.1) && p.0 < (xj - xi) * (p.1 - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

fn distance_to_ring(p: (f64, f64), ring: &[(f64, f64)]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| segment_distance(p, ring[i], ring[(i + 1) % n]))
        .fold(f64::INFINITY, f64::min)
}

fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

#[cfg(test)]
mod tests;
