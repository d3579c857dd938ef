//! Ground truth for one pair-day: where the offender and the protected person really are every
//! `STEP_S` seconds, when their devices can report, and what they press or break.
//!
//! Movement follows a street grid (blocks of `BLOCK_M` metres): walking at 3–6 km/h, driving at
//! 25–50 km/h, subway rides with no signal at all. Positions are local east/north metres around
//! the protected person's home.

use crate::rng::Rng;
use engine::DeviceEventKind;

/// Truth time step (s).
pub const STEP_S: f64 = 5.0;
/// Steps in one day.
pub const DAY_STEPS: usize = (86_400.0 / STEP_S) as usize;
/// Street grid spacing (m).
pub const BLOCK_M: f64 = 100.0;

pub type P = (f64, f64);

/// Whether a device can report at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Ok,
    /// No position and no link (underground, phone off): nothing is produced.
    Dark,
    /// Position taken, link down (indoors, basement): fixes are buffered and uploaded late.
    Buffered,
}

/// The scenario families the harness mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    ApproachHome,
    DriveApproach,
    Following,
    ChancePassing,
    Loitering,
    Grazing,
    DropoutApproach,
    VictimStale,
    TamperApproach,
    Sos,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::ApproachHome,
        Family::DriveApproach,
        Family::Following,
        Family::ChancePassing,
        Family::Loitering,
        Family::Grazing,
        Family::DropoutApproach,
        Family::VictimStale,
        Family::TamperApproach,
        Family::Sos,
    ];
    /// Relative weights in the mix.
    const WEIGHTS: [u32; 10] = [20, 8, 12, 15, 10, 10, 7, 8, 5, 5];

    pub fn name(self) -> &'static str {
        match self {
            Family::ApproachHome => "approach home (walk)",
            Family::DriveApproach => "approach home (drive)",
            Family::Following => "following",
            Family::ChancePassing => "chance passing",
            Family::Loitering => "loitering outside",
            Family::Grazing => "boundary grazing",
            Family::DropoutApproach => "approach w/ dropout",
            Family::VictimStale => "victim phone stale",
            Family::TamperApproach => "tamper then approach",
            Family::Sos => "SOS",
        }
    }

    /// Walking approaches, where early-warning lead time is measured.
    pub fn walking_approach(self) -> bool {
        matches!(
            self,
            Family::ApproachHome | Family::Following | Family::TamperApproach
        )
    }

    fn pick(rng: &mut Rng) -> Family {
        let total: u32 = Self::WEIGHTS.iter().sum();
        let mut x = rng.below(total as usize) as u32;
        for (f, w) in Self::ALL.iter().zip(Self::WEIGHTS) {
            if x < w {
                return *f;
            }
            x -= w;
        }
        Family::ApproachHome
    }
}

/// Who an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Offender,
    Victim,
}

/// One pair-day of ground truth.
#[derive(Debug, Clone)]
pub struct DayTruth {
    pub family: Family,
    pub offender: Vec<P>,
    pub victim: Vec<P>,
    pub offender_sig: Vec<Sig>,
    pub victim_sig: Vec<Sig>,
    pub events: Vec<(usize, Who, DeviceEventKind)>,
    /// The victim's home, registered as a zone (radius in metres) where the family uses one.
    pub home_zone: Option<(P, f64)>,
    /// Steps where the victim's phone is silent on purpose (stale family).
    pub victim_stale: Option<(usize, usize)>,
}

/// Builds a path step by step.
struct Path {
    pos: P,
    steps: Vec<P>,
    sig: Vec<Sig>,
}

impl Path {
    fn new(start: P) -> Self {
        Path {
            pos: start,
            steps: Vec::with_capacity(DAY_STEPS),
            sig: Vec::with_capacity(DAY_STEPS),
        }
    }

    fn push(&mut self, s: Sig) {
        if self.steps.len() < DAY_STEPS {
            self.steps.push(self.pos);
            self.sig.push(s);
        }
    }

    fn stay(&mut self, secs: f64) {
        for _ in 0..(secs / STEP_S) as usize {
            self.push(Sig::Ok);
        }
    }

    fn stay_until(&mut self, step: usize) {
        while self.steps.len() < step.min(DAY_STEPS) {
            self.push(Sig::Ok);
        }
    }

    /// Small random movement around the current point, within `radius` metres.
    fn wander(&mut self, secs: f64, radius: f64, rng: &mut Rng) {
        let c = self.pos;
        for _ in 0..(secs / STEP_S) as usize {
            let (dx, dy) = (rng.normal() * 2.0, rng.normal() * 2.0);
            let mut p = (self.pos.0 + dx, self.pos.1 + dy);
            let (ox, oy) = (p.0 - c.0, p.1 - c.1);
            let r = ox.hypot(oy);
            if r > radius {
                p = (c.0 + ox * radius / r, c.1 + oy * radius / r);
            }
            self.pos = p;
            self.push(Sig::Ok);
        }
    }

    /// Along the street grid: east–west first, then north–south.
    fn walk_to(&mut self, target: P, speed: f64, sig: Sig) {
        let step = speed * STEP_S;
        for axis in 0..2 {
            loop {
                let (cur, goal) = if axis == 0 {
                    (self.pos.0, target.0)
                } else {
                    (self.pos.1, target.1)
                };
                let d = goal - cur;
                if d.abs() < 1e-6 || self.steps.len() >= DAY_STEPS {
                    break;
                }
                let mv = d.signum() * d.abs().min(step);
                if axis == 0 {
                    self.pos.0 += mv;
                } else {
                    self.pos.1 += mv;
                }
                self.push(sig);
            }
        }
    }

    /// Straight toward `target` (across a square or a car park).
    fn line_to(&mut self, target: P, speed: f64) {
        let step = speed * STEP_S;
        loop {
            let (dx, dy) = (target.0 - self.pos.0, target.1 - self.pos.1);
            let d = dx.hypot(dy);
            if d < 1e-6 || self.steps.len() >= DAY_STEPS {
                break;
            }
            let k = d.min(step) / d;
            self.pos = (self.pos.0 + dx * k, self.pos.1 + dy * k);
            self.push(Sig::Ok);
        }
    }

    /// A subway ride: no signal while underground; reappears at `target`.
    fn subway_to(&mut self, target: P, secs: f64) {
        let n = (secs / STEP_S).max(1.0) as usize;
        let from = self.pos;
        for i in 1..=n {
            let f = i as f64 / n as f64;
            self.pos = (
                from.0 + (target.0 - from.0) * f,
                from.1 + (target.1 - from.1) * f,
            );
            self.push(Sig::Dark);
        }
    }

    fn finish(mut self) -> (Vec<P>, Vec<Sig>) {
        self.stay_until(DAY_STEPS);
        (self.steps, self.sig)
    }
}

fn walk_speed(rng: &mut Rng) -> f64 {
    rng.range(3.0, 6.0) / 3.6
}

/// A point on the street grid at about `dist` metres from `c` in a random direction.
fn grid_point_near(c: P, dist: f64, rng: &mut Rng) -> P {
    let a = rng.range(0.0, std::f64::consts::TAU);
    let p = (c.0 + dist * a.cos(), c.1 + dist * a.sin());
    // Snap one coordinate to a street.
    if rng.chance(0.5) {
        ((p.0 / BLOCK_M).round() * BLOCK_M, p.1)
    } else {
        (p.0, (p.1 / BLOCK_M).round() * BLOCK_M)
    }
}

/// A point at exactly `dist` metres from `c` (straight line) in a random direction.
fn point_at(c: P, dist: f64, rng: &mut Rng) -> P {
    let a = rng.range(0.0, std::f64::consts::TAU);
    (c.0 + dist * a.cos(), c.1 + dist * a.sin())
}

/// Generates the truth for pair-day `day` of run `seed`.
pub fn generate(seed: u64, day: u64) -> DayTruth {
    let mut rng = Rng::derive(seed, day);
    let family = Family::pick(&mut rng);
    generate_family(family, &mut rng)
}

pub fn generate_family(family: Family, rng: &mut Rng) -> DayTruth {
    let home: P = (5.0, 5.0);
    let off_home = point_at(home, rng.range(5_000.0, 8_000.0), rng);
    let start = (rng.range(8.0, 14.0) * 3600.0 / STEP_S) as usize;
    let mut o = Path::new(off_home);
    let mut v = Path::new(home);
    let mut events = Vec::new();
    let mut home_zone = None;
    let mut victim_stale = None;

    // The offender gets to the scene by subway (about 8 min without signal), then walks.
    let go_to = |o: &mut Path, p: P, rng: &mut Rng| {
        o.stay_until(start);
        let station = grid_point_near(p, rng.range(200.0, 400.0), rng);
        o.subway_to(station, 480.0);
        o.walk_to(p, walk_speed(rng), Sig::Ok);
    };
    let go_home = |o: &mut Path, rng: &mut Rng| {
        o.subway_to(off_home, 480.0);
        let _ = rng;
    };

    match family {
        Family::ApproachHome | Family::TamperApproach | Family::DropoutApproach => {
            let from = grid_point_near(home, rng.range(1_500.0, 2_500.0), rng);
            go_to(&mut o, from, rng);
            if family == Family::TamperApproach {
                events.push((o.steps.len(), Who::Offender, DeviceEventKind::Tamper));
            }
            let door = point_at(home, rng.range(10.0, 60.0), rng);
            let speed = walk_speed(rng);
            if family == Family::DropoutApproach {
                // Walks to 400 m in the open, then the rest through an underground passage
                // and a basement: fixes are buffered until he comes back up.
                let near = point_at(home, 400.0, rng);
                o.walk_to(near, speed, Sig::Ok);
                o.walk_to(door, speed, Sig::Buffered);
                let stay = rng.range(180.0, 900.0);
                for _ in 0..(stay / STEP_S) as usize {
                    o.push(Sig::Buffered);
                }
            } else {
                o.walk_to(door, speed, Sig::Ok);
                o.wander(rng.range(180.0, 1_200.0), 10.0, rng);
            }
            let away = grid_point_near(home, rng.range(1_500.0, 2_000.0), rng);
            o.walk_to(away, speed, Sig::Ok);
            go_home(&mut o, rng);
        }
        Family::DriveApproach => {
            let from = grid_point_near(home, rng.range(3_000.0, 5_000.0), rng);
            o.stay_until(start);
            o.walk_to(from, rng.range(25.0, 50.0) / 3.6, Sig::Ok);
            let park = point_at(home, rng.range(30.0, 80.0), rng);
            o.walk_to(park, rng.range(25.0, 50.0) / 3.6, Sig::Ok);
            o.wander(rng.range(300.0, 900.0), 5.0, rng);
            o.walk_to(from, rng.range(25.0, 50.0) / 3.6, Sig::Ok);
            o.walk_to(off_home, rng.range(25.0, 50.0) / 3.6, Sig::Ok);
        }
        Family::Following => {
            // She walks to a shop and back; he follows on her route, closing from ~400 m to
            // 30–80 m behind her.
            v.stay_until(start + 200);
            let shop = grid_point_near(home, rng.range(1_200.0, 2_000.0), rng);
            let vs = walk_speed(rng);
            v.walk_to(shop, vs, Sig::Ok);
            v.wander(600.0, 10.0, rng);
            v.walk_to(home, vs, Sig::Ok);
            let (vp, _) = std::mem::replace(&mut v, Path::new(home)).finish();
            v = Path::new(home);
            for p in &vp {
                v.pos = *p;
                v.push(Sig::Ok);
            }
            let behind_far = 400.0 / vs / STEP_S;
            let behind_near = rng.range(30.0, 80.0) / vs / STEP_S;
            let close_over = rng.range(300.0, 600.0) / STEP_S;
            let follow_for = rng.range(600.0, 1_500.0) / STEP_S;
            let s0 = start + 200;
            let begin = s0 + behind_far as usize;
            go_to(&mut o, vp[s0], rng);
            o.stay_until(begin);
            let end = begin + (close_over + follow_for) as usize;
            for i in begin..end.min(DAY_STEPS) {
                let k = (i - begin) as f64;
                let lag = if k < close_over {
                    behind_far + (behind_near - behind_far) * k / close_over
                } else {
                    behind_near
                };
                let j = i.saturating_sub(lag as usize);
                o.pos = vp[j];
                o.push(Sig::Ok);
            }
            let away = grid_point_near(o.pos, 1_500.0, rng);
            o.walk_to(away, walk_speed(rng), Sig::Ok);
            go_home(&mut o, rng);
        }
        Family::ChancePassing => {
            // Both walk straight streets that cross; he passes the crossing within ±4 min of her.
            let cross = (
                (rng.range(-5.0, 5.0)).round() * BLOCK_M,
                (rng.range(-5.0, 5.0)).round() * BLOCK_M,
            );
            let vs = walk_speed(rng);
            let os = walk_speed(rng);
            let vt = start + (1_200.0 / STEP_S) as usize;
            v.stay_until(vt - (800.0 / vs / STEP_S) as usize);
            v.walk_to((cross.0 - 800.0, home.1), vs, Sig::Ok);
            v.walk_to((cross.0 - 800.0, cross.1), vs, Sig::Ok);
            v.walk_to((cross.0 + 800.0, cross.1), vs, Sig::Ok);
            v.stay(600.0);
            v.walk_to(home, vs, Sig::Ok);
            let ot = (vt as f64 + rng.range(-240.0, 240.0) / STEP_S) as usize;
            let o_from = (cross.0, cross.1 - 800.0);
            go_to(&mut o, o_from, rng);
            o.stay_until(ot.saturating_sub((800.0 / os / STEP_S) as usize));
            o.walk_to((cross.0, cross.1 + 800.0), os, Sig::Ok);
            go_home(&mut o, rng);
        }
        Family::Loitering => {
            // Comes in along a straight line and stays 140–220 m from her door for 1–4 h.
            let a = rng.range(0.0, std::f64::consts::TAU);
            let r = rng.range(140.0, 220.0);
            let spot = (home.0 + r * a.cos(), home.1 + r * a.sin());
            let base = (home.0 + 700.0 * a.cos(), home.1 + 700.0 * a.sin());
            go_to(&mut o, base, rng);
            o.line_to(spot, walk_speed(rng));
            o.wander(rng.range(3_600.0, 4.0 * 3_600.0), 15.0, rng);
            o.line_to(base, walk_speed(rng));
            go_home(&mut o, rng);
        }
        Family::Grazing => {
            // 4–6 approaches straight in to 120–160 m, a few minutes there, back out to
            // 600–900 m for 10–30 min.
            let a = rng.range(0.0, std::f64::consts::TAU);
            let rb = rng.range(600.0, 900.0);
            let base = (home.0 + rb * a.cos(), home.1 + rb * a.sin());
            go_to(&mut o, base, rng);
            let n = 4 + rng.below(3);
            for _ in 0..n {
                let b = a + rng.range(-0.3, 0.3);
                let r = rng.range(120.0, 160.0);
                let edge = (home.0 + r * b.cos(), home.1 + r * b.sin());
                let s = walk_speed(rng);
                o.line_to(edge, s);
                o.wander(rng.range(60.0, 180.0), 5.0, rng);
                o.line_to(base, s);
                o.wander(rng.range(600.0, 1_800.0), 10.0, rng);
            }
            go_home(&mut o, rng);
        }
        Family::VictimStale => {
            // Her phone goes quiet at home for 1–3 h (battery saver); half the time he comes
            // to her door meanwhile. Her home is a registered zone.
            home_zone = Some((home, 100.0));
            let s0 = start;
            let s1 = s0 + (rng.range(3_600.0, 3.0 * 3_600.0) / STEP_S) as usize;
            victim_stale = Some((s0, s1));
            if rng.chance(0.5) {
                let from = grid_point_near(home, 1_500.0, rng);
                o.stay_until(s0 + (1_800.0 / STEP_S) as usize);
                let station = grid_point_near(from, 300.0, rng);
                o.subway_to(station, 480.0);
                o.walk_to(from, walk_speed(rng), Sig::Ok);
                let door = point_at(home, rng.range(10.0, 50.0), rng);
                o.walk_to(door, walk_speed(rng), Sig::Ok);
                o.wander(rng.range(300.0, 900.0), 10.0, rng);
                o.walk_to(from, walk_speed(rng), Sig::Ok);
                go_home(&mut o, rng);
            }
        }
        Family::Sos => {
            let at = start + rng.below(3_600 / STEP_S as usize);
            events.push((at, Who::Victim, DeviceEventKind::Sos));
            if rng.chance(0.5) {
                // Her phone had been quiet for 20–40 min before she pressed SOS.
                let quiet = (rng.range(1_200.0, 2_400.0) / STEP_S) as usize;
                victim_stale = Some((at.saturating_sub(quiet), at));
            }
        }
    }
    let (mut victim, mut victim_sig) = v.finish();
    let (offender, offender_sig) = o.finish();
    victim.truncate(DAY_STEPS);
    victim_sig.truncate(DAY_STEPS);
    if let Some((a, b)) = victim_stale {
        for s in &mut victim_sig[a.min(DAY_STEPS)..b.min(DAY_STEPS)] {
            *s = Sig::Dark;
        }
    }
    DayTruth {
        family,
        offender,
        victim,
        offender_sig,
        victim_sig,
        events,
        home_zone,
        victim_stale,
    }
}
