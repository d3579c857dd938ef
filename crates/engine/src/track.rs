//! Per-person tracks: the raw fixes a person's devices sent, and a filtered estimate beside them.
//!
//! The estimate is a constant-velocity Kalman filter in a local east/north plane (metres),
//! with the same 2×2 covariance for both axes (fixes have isotropic accuracy). It gives a
//! position, a velocity and a 1σ uncertainty that grows with time since the last fix. Raw fixes
//! are never changed: the filter only produces new values beside them.
//!
//! Outliers: a fix the filter cannot explain (innovation beyond `outlier_gate_sigma`, or an
//! implied speed beyond `max_speed_mps`) is not fed to the filter. If the *next* fix agrees
//! with it rather than with the prediction, the person really moved (a car, a subway) and the
//! track restarts from the two agreeing fixes.

use crate::EngineConfig;
use domain::{FixFlags, FixSource, LatLon, UnixMicros};

/// A compact copy of the parts of a fix the rules need (40 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FixLite {
    /// `FixId` or `i64::MIN` when the fix was not stored.
    pub id: i64,
    pub t: UnixMicros,
    pub pos: LatLon,
    /// Accuracy the rules reason with (1σ per axis, metres).
    pub acc_m: f32,
    pub flags: FixFlags,
}

/// How one fix changed the track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Update {
    /// Fed to the filter.
    Accepted,
    /// Newer than the estimate but not believable (outlier or impossible jump): kept aside.
    Rejected,
    /// Older than the estimate: the filter cannot take it; the rules judge it on its own.
    OutOfOrder,
    /// The same device time as a fix already seen (a resend): ignored.
    Duplicate,
}

const HISTORY: usize = 3;

/// Radius within which a person counts as staying put (m).
pub(crate) const STILL_RADIUS_M: f64 = 40.0;

/// A stay this long (s) is remembered after the person moves on.
const PREV_STAY_S: f64 = 300.0;

/// Engine-internal flag on a history entry: the filter rejected it (outlier). Outside the
/// range of `FixFlags` the protocols set.
const REJECTED: u32 = 1 << 30;

/// One person's track.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    anchor: LatLon,
    /// Device time of the estimate.
    pub t: UnixMicros,
    e: f64,
    n: f64,
    ve: f64,
    vn: f64,
    /// Per-axis covariance: position, position×velocity, velocity.
    pp: f64,
    pv: f64,
    vv: f64,
    /// The most recent raw fixes by device time (a ring), for late and out-of-order fixes.
    history: [Option<FixLite>; HISTORY],
    head: u8,
    /// Id of the last fix fed to the filter (`i64::MIN`: none stored).
    pub last_id: i64,
    /// The last accepted fix was flagged integrity-suspect.
    pub suspect: bool,
    /// The last accepted fix was a surprise to the filter (beyond 3σ): it needs a second
    /// opinion before it may confirm anything.
    pub surprise: bool,
    /// Server time of the last fix or device event from any of the person's devices.
    pub last_received: UnixMicros,
    /// Device time of the last fix with a real GNSS (or Wi-Fi) position.
    pub last_good_fix: UnixMicros,
    /// Since when the person has stayed within `STILL_RADIUS_M` of `still_pos` (device time):
    /// where she was during a gap is then known even without fixes from it.
    pub still_since: UnixMicros,
    still_pos: LatLon,
    still_out: u8,
    /// The last stay of at least `PREV_STAY_S` before the current one: where, from, until.
    /// A late upload of his approach to her home is judged against it after she has left.
    prev_stay: Option<(LatLon, UnixMicros, UnixMicros)>,
    /// The most recently received fix had a real position (buffered uploads of good fixes
    /// with old device times must not look like "no fix").
    pub last_arrival_good: bool,
}

/// An estimate at a point in time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Estimate {
    pub pos: LatLon,
    /// East, north velocity in m/s.
    pub vel: (f64, f64),
    /// 1σ per-axis position uncertainty in metres.
    pub sigma_m: f64,
}

/// The accuracy the rules reason with for one fix: the reported one, a source default, and
/// inflated for integrity-suspect fixes so that they cannot alone confirm a breach.
pub(crate) fn reasoning_accuracy_m(fix: &domain::Fix) -> f64 {
    let mut acc = fix.effective_accuracy_m();
    if fix.source == FixSource::Cell {
        acc = acc.max(300.0);
    }
    if fix.flags.has(FixFlags::INTEGRITY_SUSPECT) {
        acc = (acc * 3.0).max(150.0);
    }
    if fix.flags.has(FixFlags::NO_GNSS_FIX) {
        acc = acc.max(500.0);
    }
    acc.min(50_000.0)
}

impl Track {
    pub fn new(fix: FixLite, received: UnixMicros) -> Self {
        let a = f64::from(fix.acc_m);
        let mut t = Track {
            anchor: fix.pos,
            t: fix.t,
            e: 0.0,
            n: 0.0,
            ve: 0.0,
            vn: 0.0,
            pp: a * a,
            pv: 0.0,
            // Unknown velocity: up to walking/driving speeds.
            vv: 25.0,
            history: [None; HISTORY],
            head: 0,
            last_id: fix.id,
            suspect: fix.flags.has(FixFlags::INTEGRITY_SUSPECT),
            surprise: false,
            last_received: received,
            last_arrival_good: good(&fix),
            still_since: fix.t,
            still_pos: fix.pos,
            still_out: 0,
            prev_stay: None,
            last_good_fix: if good(&fix) {
                fix.t
            } else {
                UnixMicros(i64::MIN)
            },
        };
        t.push_history(fix);
        t
    }

    fn push_history(&mut self, fix: FixLite) {
        let i = usize::from(self.head) % HISTORY;
        self.history[i] = Some(fix);
        self.head = ((i + 1) % HISTORY) as u8;
    }

    /// The newest rejected fix since the last accepted one: waiting for a second opinion.
    fn pending(&self) -> Option<FixLite> {
        self.history
            .iter()
            .flatten()
            .max_by_key(|f| f.t)
            .filter(|f| f.flags.has(REJECTED) && f.t > self.t)
            .copied()
    }

    /// Where the person was at `t` if they were staying put then (the current stay or the
    /// previous long one), known to within `STILL_RADIUS_M`.
    pub fn stay_at(&self, t: UnixMicros) -> Option<LatLon> {
        if t >= self.still_since {
            return Some(self.still_pos);
        }
        self.prev_stay
            .filter(|(_, from, until)| t >= *from && t <= *until)
            .map(|(p, _, _)| p)
    }

    /// The newest fix the filter accepted.
    pub fn last_accepted(&self) -> Option<FixLite> {
        self.history
            .iter()
            .flatten()
            .filter(|f| !f.flags.has(REJECTED))
            .max_by_key(|f| f.t)
            .copied()
    }

    /// The raw fix closest in device time to `t`, within `window_s`.
    pub fn fix_near(&self, t: UnixMicros, window_s: f64) -> Option<FixLite> {
        self.history
            .iter()
            .flatten()
            .filter(|f| !f.flags.has(REJECTED) && t.secs_since(f.t).abs() <= window_s)
            .min_by_key(|f| (t.0 - f.t.0).unsigned_abs())
            .copied()
    }

    /// Offers one fix to the track.
    pub fn update(&mut self, cfg: &EngineConfig, fix: FixLite, received: UnixMicros) -> Update {
        self.last_received = self.last_received.max(received);
        self.last_arrival_good = good(&fix);
        if fix.t == self.t || self.history.iter().flatten().any(|h| h.t == fix.t) {
            return Update::Duplicate;
        }
        if fix.t < self.t {
            if good(&fix) {
                self.last_good_fix = self.last_good_fix.max(fix.t);
            }
            return Update::OutOfOrder;
        }
        if good(&fix) {
            self.last_good_fix = self.last_good_fix.max(fix.t);
        }
        if fix.flags.has(FixFlags::NO_GNSS_FIX) {
            // A repeated last-known position says nothing new about where the person is.
            return Update::Rejected;
        }
        let dt = fix.t.secs_since(self.t).max(0.0);
        let (me, mn) = self.local(&fix.pos);
        let (mut pe, mut pn) = (self.e + self.ve * dt, self.n + self.vn * dt);
        let (mut pp, mut pv, mut vv) = self.predicted_cov(cfg, dt);
        let r = f64::from(fix.acc_m).powi(2);
        let mut innov = ((me - pe).powi(2) + (mn - pn).powi(2)).sqrt();
        // People stop, turn and start: when the fix is far from the constant-velocity
        // prediction but nearer to "stayed where he was", take that as a manoeuvre — forget the
        // velocity and widen the prediction by how far it could have carried him.
        let stop_innov = ((me - self.e).powi(2) + (mn - self.n).powi(2)).sqrt();
        let speed2 = self.ve.powi(2) + self.vn.powi(2);
        let pp_stop = pp + speed2 * dt * dt;
        let mut surprise_sigma = 2.0;
        if innov > 3.0 * (pp + r).sqrt()
            && stop_innov / (pp_stop + r).sqrt() < innov / (pp + r).sqrt()
        {
            surprise_sigma = 1.5;
            pe = self.e;
            pn = self.n;
            pp = pp_stop;
            pv = 0.0;
            vv = speed2 + 1.0;
            innov = stop_innov;
        }
        let s = pp + r;
        // Physically impossible relative to the last accepted position (beyond what both
        // accuracies explain), or far outside what the filter expects.
        let slack = 3.0 * (f64::from(fix.acc_m) + self.pp.max(0.0).sqrt());
        let impossible = innov - slack > cfg.max_speed_mps * dt;
        let gated = innov > cfg.outlier_gate_sigma * s.sqrt() && innov > 3.0 * f64::from(fix.acc_m);
        if impossible || gated {
            // Does it agree with an earlier rejected fix? Then the person moved: restart.
            if let Some(p) = self.pending() {
                let pdt = fix.t.secs_since(p.t).max(0.0);
                let d = p.pos.distance_m(&fix.pos);
                // Both far from the prediction and close to each other: the person moved.
                // (Two multipath outliers in a row scatter around the truth instead.)
                let agree = d
                    <= cfg.max_speed_mps.min(40.0) * pdt
                        + 3.0 * (f64::from(p.acc_m) + f64::from(fix.acc_m))
                    && d <= 0.5 * innov;
                if agree && pdt > 0.0 {
                    let mut fresh = Track::new(p, self.last_received);
                    fresh.history = self.history;
                    fresh.head = self.head;
                    fresh.last_good_fix = self.last_good_fix;
                    *self = fresh;
                    return self.update(cfg, fix, received);
                }
            }
            self.push_history(FixLite {
                flags: fix.flags.with(REJECTED),
                ..fix
            });
            return Update::Rejected;
        }
        if surprise_sigma < 2.0 {
            // Manoeuvre: the old velocity no longer holds.
            self.ve = 0.0;
            self.vn = 0.0;
        }
        // Kalman update, per axis with a scalar gain pair.
        let k_p = pp / s;
        let k_v = pv / s;
        self.e = pe + k_p * (me - pe);
        self.n = pn + k_p * (mn - pn);
        self.ve += k_v * (me - pe);
        self.vn += k_v * (mn - pn);
        self.pp = (1.0 - k_p) * pp;
        self.pv = (1.0 - k_p) * pv;
        self.vv = vv - k_v * pv;
        self.t = fix.t;
        self.last_id = fix.id;
        self.suspect = fix.flags.has(FixFlags::INTEGRITY_SUSPECT);
        self.surprise = innov > surprise_sigma * s.sqrt();
        self.push_history(fix);
        let here = self.to_latlon(self.e, self.n);
        // Two estimates in a row outside the radius: she moved (one could be an outlier).
        if here.distance_m(&self.still_pos) > STILL_RADIUS_M {
            self.still_out = self.still_out.saturating_add(1);
            if self.still_out >= 2 {
                if fix.t.secs_since(self.still_since) >= PREV_STAY_S {
                    self.prev_stay = Some((self.still_pos, self.still_since, fix.t));
                }
                self.still_pos = here;
                self.still_since = fix.t;
                self.still_out = 0;
            }
        } else {
            self.still_out = 0;
        }
        // Re-anchor when far from the anchor so the flat projection stays accurate.
        if self.e.abs() > 20_000.0 || self.n.abs() > 20_000.0 {
            let pos = self.to_latlon(self.e, self.n);
            self.anchor = pos;
            self.e = 0.0;
            self.n = 0.0;
        }
        Update::Accepted
    }

    fn predicted_cov(&self, cfg: &EngineConfig, dt: f64) -> (f64, f64, f64) {
        let q = cfg.accel_noise;
        let pp = self.pp + 2.0 * dt * self.pv + dt * dt * self.vv + q * dt.powi(3) / 3.0;
        let pv = self.pv + dt * self.vv + q * dt * dt / 2.0;
        // Velocity can never be known better than walking-pace noise, nor worse than a car.
        let vv = (self.vv + q * dt).min(900.0);
        (pp, pv, vv)
    }

    /// The estimate at time `t`. Positions are not extrapolated (people stop and turn); instead
    /// the uncertainty grows by `drift_mps` for every second beyond `grace_s` since the last
    /// fix — a phone that reported within its normal interval is taken as current.
    pub fn estimate_at(&self, cfg: &EngineConfig, t: UnixMicros, drift_mps: f64) -> Estimate {
        let age = t.secs_since(self.t).max(0.0);
        let extra = drift_mps * (age - cfg.position_grace_s).max(0.0);
        // The filter's own σ assumes its motion model; a moving person turns and stops, so
        // add what `motion_sigma_s` seconds of travel at the estimated speed could be off.
        let speed2 = self.ve.powi(2) + self.vn.powi(2);
        let model = speed2 * cfg.motion_sigma_s.powi(2);
        let sigma = ((self.pp.max(0.0) + model).sqrt() + extra).min(50_000.0);
        Estimate {
            pos: self.to_latlon(self.e, self.n),
            vel: (self.ve, self.vn),
            sigma_m: sigma,
        }
    }

    /// Estimated speed (m/s).
    pub fn speed_mps(&self) -> f64 {
        self.ve.hypot(self.vn)
    }

    fn local(&self, p: &LatLon) -> (f64, f64) {
        self.anchor.local_en_m(p)
    }

    /// Inverse of `LatLon::local_en_m` around the anchor (equirectangular; exact inverse of
    /// the projection the filter works in, and cheap: no trigonometry but one cosine).
    fn to_latlon(&self, e: f64, n: f64) -> LatLon {
        let r = domain::geo::EARTH_RADIUS_M;
        let lat = self.anchor.lat() + (n / r).to_degrees();
        let coslat = self.anchor.lat().to_radians().cos().max(1e-6);
        let lon = self.anchor.lon() + (e / (r * coslat)).to_degrees();
        LatLon::new(lat, lon).unwrap_or(self.anchor)
    }
}

fn good(f: &FixLite) -> bool {
    !f.flags.has(FixFlags::NO_GNSS_FIX) && f.acc_m <= 200.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lite(t: i64, pos: LatLon, acc: f32) -> FixLite {
        FixLite {
            id: t,
            t: UnixMicros::from_secs(t),
            pos,
            acc_m: acc,
            flags: FixFlags::default(),
        }
    }

    #[test]
    fn stationary_fixes_shrink_uncertainty_and_outlier_is_rejected() {
        let cfg = EngineConfig::default();
        let home = LatLon::new(37.5, 127.0).unwrap();
        let mut tr = Track::new(lite(0, home, 15.0), UnixMicros(0));
        for i in 1..10 {
            let p = home.destination(f64::from(i * 40), 10.0);
            assert_eq!(
                tr.update(&cfg, lite(i64::from(i) * 60, p, 15.0), UnixMicros(0)),
                Update::Accepted
            );
        }
        let est = tr.estimate_at(&cfg, UnixMicros::from_secs(540), 0.0);
        assert!(est.sigma_m < 15.0, "{}", est.sigma_m);
        assert!(est.pos.distance_m(&home) < 15.0);
        let out = home.destination(0.0, 400.0);
        assert_eq!(
            tr.update(&cfg, lite(600, out, 15.0), UnixMicros(0)),
            Update::Rejected
        );
        // A second fix agreeing with the "outlier": the person really moved.
        assert_eq!(
            tr.update(
                &cfg,
                lite(660, out.destination(0.0, 20.0), 15.0),
                UnixMicros(0)
            ),
            Update::Accepted
        );
        let est = tr.estimate_at(&cfg, UnixMicros::from_secs(660), 0.0);
        assert!(est.pos.distance_m(&out) < 60.0);
    }
}
