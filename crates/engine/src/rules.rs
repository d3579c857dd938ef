//! The rules: proximity between offender and protected person, and static zones.

use crate::roster::{MonitoredOrder, Roster};
use crate::{EngineConfig, Output};
use domain::{
    AlertRule, DeviceId, Fix, FixId, LatLon, OrderId, PersonId, Severity, UnixMicros, ZoneId,
    ZoneShape,
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
    /// The episode goes on and got worse (closer); update the alert's evidence.
    Updated,
    /// The condition has been clear for the hold time.
    Cleared,
}

/// One change to one alert, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSignal {
    pub key: AlertKey,
    pub transition: Transition,
    pub severity: Severity,
    pub at: UnixMicros,
    pub distance_m: Option<f64>,
    /// The fixes that caused this transition.
    pub evidence: Vec<FixId>,
    pub summary: String,
}

#[derive(Debug, Clone)]
struct Episode {
    min_distance_m: f64,
    /// When the condition was first seen clear (with margin); `None` while it holds.
    clear_since: Option<UnixMicros>,
}

#[derive(Debug, Default)]
pub(crate) struct Episodes {
    open: HashMap<AlertKey, Episode>,
}

impl Episodes {
    pub(crate) fn retain_orders(&mut self, keep: impl Fn(OrderId) -> bool) {
        self.open.retain(|k, _| keep(k.order_id));
    }
}

/// The freshest non-stale fix among a person's devices.
fn current_fix<'a>(
    config: &EngineConfig,
    roster: &Roster,
    latest: &'a HashMap<DeviceId, Fix>,
    person: PersonId,
    now: UnixMicros,
) -> Option<&'a Fix> {
    roster
        .devices_of(person)
        .filter_map(|d| latest.get(&d))
        .filter(|f| now.secs_since(f.device_time) <= config.stale_after_s)
        .max_by_key(|f| f.device_time)
}

pub(crate) fn evaluate_order(
    config: &EngineConfig,
    mo: &MonitoredOrder,
    roster: &Roster,
    latest: &HashMap<DeviceId, Fix>,
    episodes: &mut Episodes,
    now: UnixMicros,
    out: &mut Vec<Output>,
) {
    if !mo.order.in_force(now) {
        return;
    }
    let offender_fix = current_fix(config, roster, latest, mo.offender, now);

    for &person in &mo.protected {
        let victim_fix = current_fix(config, roster, latest, person, now);
        let (distance, evidence) = match (offender_fix, victim_fix) {
            (Some(o), Some(v)) => (
                Some(o.position.distance_m(&v.position)),
                [o.id, v.id].into_iter().flatten().collect(),
            ),
            _ => (None, Vec::new()),
        };
        for (rule, radius, severity) in [
            (
                AlertRule::ProximityViolation,
                mo.order.no_approach_m,
                Severity::Critical,
            ),
            (
                AlertRule::ProximityWarning,
                mo.order.warning_m,
                Severity::Warning,
            ),
        ] {
            let key = AlertKey {
                order_id: mo.order.id,
                rule,
                protected: Some(person),
                zone: None,
            };
            step(
                config,
                episodes,
                key,
                severity,
                distance,
                radius,
                &evidence,
                now,
                out,
                |d| format!("offender {d:.0} m from protected person (limit {radius:.0} m)"),
            );
        }
    }

    for zone in &mo.order.zones {
        let (distance, evidence) = match offender_fix {
            Some(o) => (
                Some(distance_into_zone(&o.position, &zone.shape)),
                o.id.into_iter().collect(),
            ),
            None => (None, Vec::new()),
        };
        let key = AlertKey {
            order_id: mo.order.id,
            rule: AlertRule::ZoneViolation,
            protected: None,
            zone: Some(zone.id),
        };
        let label = zone.label.clone();
        step(
            config,
            episodes,
            key,
            Severity::Critical,
            distance,
            0.0,
            &evidence,
            now,
            out,
            |d| format!("offender inside zone {label:?} ({d:.0} m from its edge)"),
        );
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

/// Advances one episode given the latest distance (None: unknown).
#[allow(clippy::too_many_arguments)]
fn step(
    config: &EngineConfig,
    episodes: &mut Episodes,
    key: AlertKey,
    severity: Severity,
    distance: Option<f64>,
    radius: f64,
    evidence: &[FixId],
    now: UnixMicros,
    out: &mut Vec<Output>,
    summary: impl Fn(f64) -> String,
) {
    let signal = |transition, d: Option<f64>, summary: String| {
        Output::Alert(AlertSignal {
            key,
            transition,
            severity,
            at: now,
            distance_m: d,
            evidence: evidence.to_vec(),
            summary,
        })
    };
    match (episodes.open.get_mut(&key), distance) {
        (None, Some(d)) if d <= radius => {
            episodes.open.insert(
                key,
                Episode {
                    min_distance_m: d,
                    clear_since: None,
                },
            );
            out.push(signal(Transition::Raised, Some(d), summary(d)));
        }
        (None, _) => {}
        (Some(ep), Some(d)) if d <= radius + config.clear_margin_m => {
            ep.clear_since = None;
            if d < ep.min_distance_m {
                ep.min_distance_m = d;
                out.push(signal(Transition::Updated, Some(d), summary(d)));
            }
        }
        (Some(ep), d) => {
            // Clear (with margin) or unknown: hold before closing the episode. An unknown
            // distance never closes an episode by itself sooner than a clear one would.
            let since = *ep.clear_since.get_or_insert(now);
            if now.secs_since(since) >= config.clear_hold_s {
                let min = ep.min_distance_m;
                episodes.open.remove(&key);
                out.push(signal(
                    Transition::Cleared,
                    d,
                    format!(
                        "condition clear for {:.0} s (closest {min:.0} m)",
                        config.clear_hold_s
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
