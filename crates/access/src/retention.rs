//! Retention as pure logic: which fixes must be kept and which must be purged at `now`.
//!
//! # Policy
//!
//! - Offender fixes are kept while the order is in force and for
//!   `offender_days_after_order_end` days after protection ends; then purged.
//! - Protected-person fixes are kept for `victim_hours` hours after they were taken: long
//!   enough to explain an alert, short enough that the system is not a record of where she
//!   lives her life.
//! - Fixes of either party inside an incident window (an alert episode with margins, a
//!   court's preservation request) are held as evidence and never purged by this policy;
//!   the window is released by a person, not by time.
//!
//! The store asks [`plan`] for a case and a party, purges the `purge` windows in one
//! transaction, and writes one `purge` audit record with the report's numbers.

use domain::{PersonRole, UnixMicros};

/// Retention periods. Defaults are placeholders to be set by the operator's legal basis
/// (the December 2025 guidelines bound them; their figures are not in the domain brief).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub offender_days_after_order_end: i64,
    pub victim_hours: i64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            offender_days_after_order_end: 365,
            victim_hours: 72,
        }
    }
}

/// A half-open time window `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub from: UnixMicros,
    pub to: UnixMicros,
}

impl Window {
    pub fn new(from: UnixMicros, to: UnixMicros) -> Self {
        Window { from, to }
    }

    pub fn contains(&self, t: UnixMicros) -> bool {
        self.from <= t && t < self.to
    }

    fn is_empty(&self) -> bool {
        self.to <= self.from
    }
}

/// Why something is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// The offender's order is in force (or has no end yet).
    OrderInForce,
    /// Still inside the retention period.
    WithinRetention,
    /// Inside an incident window: held as evidence.
    Incident,
}

/// The verdict for one fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep(KeepReason),
    Purge,
}

/// What to keep and what to purge within a range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Windows whose fixes must be purged now, sorted, disjoint.
    pub purge: Vec<Window>,
    /// The rest of the range, with the reason, sorted, disjoint.
    pub keep: Vec<(Window, KeepReason)>,
    /// When the next part of the range becomes purgeable (`None`: nothing will by time alone).
    pub next_purge_at: Option<UnixMicros>,
}

/// The facts about one party's fixes in one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSubject<'a> {
    pub party: PersonRole,
    /// When protection ended (the last order version's end, or revocation); `None` while an
    /// order is in force or open-ended.
    pub protection_end: Option<UnixMicros>,
    /// Incident windows held as evidence.
    pub incidents: &'a [Window],
}

/// The time before which fixes are purgeable at `now`, if any, and why the rest is kept.
fn cutoff(
    policy: &RetentionPolicy,
    s: &RetentionSubject<'_>,
    now: UnixMicros,
) -> (Option<UnixMicros>, KeepReason, Option<UnixMicros>) {
    match s.party {
        PersonRole::Offender => match s.protection_end {
            None => (None, KeepReason::OrderInForce, None),
            Some(end) => {
                let release =
                    end.plus_secs(policy.offender_days_after_order_end.saturating_mul(86_400));
                if now >= release {
                    (
                        Some(UnixMicros(i64::MAX)),
                        KeepReason::WithinRetention,
                        None,
                    )
                } else {
                    (None, KeepReason::WithinRetention, Some(release))
                }
            }
        },
        PersonRole::Protected => {
            let hours = policy.victim_hours.saturating_mul(3_600);
            (
                Some(now.plus_secs(hours.saturating_neg())),
                KeepReason::WithinRetention,
                None,
            )
        }
    }
}

/// The verdict for one fix taken at `fix_time`.
pub fn decide_fix(
    policy: &RetentionPolicy,
    s: &RetentionSubject<'_>,
    fix_time: UnixMicros,
    now: UnixMicros,
) -> Verdict {
    if s.incidents.iter().any(|w| w.contains(fix_time)) {
        return Verdict::Keep(KeepReason::Incident);
    }
    match cutoff(policy, s, now) {
        (Some(c), _, _) if fix_time < c => Verdict::Purge,
        (_, reason, _) => Verdict::Keep(reason),
    }
}

/// Plans retention for the fixes of one party within `range` at `now`.
pub fn plan(
    policy: &RetentionPolicy,
    s: &RetentionSubject<'_>,
    range: Window,
    now: UnixMicros,
) -> RetentionReport {
    let mut report = RetentionReport::default();
    if range.is_empty() {
        return report;
    }
    // Incident windows clipped to the range, merged.
    let mut held: Vec<Window> = s
        .incidents
        .iter()
        .map(|w| Window::new(w.from.max(range.from), w.to.min(range.to)))
        .filter(|w| !w.is_empty())
        .collect();
    held.sort();
    let mut merged: Vec<Window> = Vec::new();
    for w in held {
        match merged.last_mut() {
            Some(last) if w.from <= last.to => last.to = last.to.max(w.to),
            _ => merged.push(w),
        }
    }

    let (cut, reason, release) = cutoff(policy, s, now);
    let purgeable_to = cut.map_or(range.from, |c| c.clamp(range.from, range.to));

    // Walk the range: incident windows are kept; the gaps are purged before the cutoff and
    // kept after it.
    let mut pieces: Vec<(Window, Option<KeepReason>)> = Vec::new();
    let mut at = range.from;
    let gap = |from: UnixMicros, to: UnixMicros, pieces: &mut Vec<(Window, Option<KeepReason>)>| {
        let p = purgeable_to.clamp(from, to);
        pieces.push((Window::new(from, p), None));
        pieces.push((Window::new(p, to), Some(reason)));
    };
    for w in &merged {
        gap(at, w.from, &mut pieces);
        pieces.push((*w, Some(KeepReason::Incident)));
        at = w.to;
    }
    gap(at, range.to, &mut pieces);

    for (w, keep) in pieces.into_iter().filter(|(w, _)| !w.is_empty()) {
        match keep {
            None => report.purge.push(w),
            Some(r) => report.keep.push((w, r)),
        }
    }
    report.next_purge_at = match s.party {
        PersonRole::Offender => release,
        PersonRole::Protected => report
            .keep
            .iter()
            .find(|(_, r)| *r == KeepReason::WithinRetention)
            .map(|(w, _)| w.from.plus_secs(policy.victim_hours.saturating_mul(3_600))),
    };
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(hours: i64) -> UnixMicros {
        UnixMicros::from_secs(hours * 3_600)
    }

    fn w(a: i64, b: i64) -> Window {
        Window::new(h(a), h(b))
    }

    const POLICY: RetentionPolicy = RetentionPolicy {
        offender_days_after_order_end: 10,
        victim_hours: 72,
    };

    #[test]
    fn victim_fixes_age_out_except_incidents() {
        let incidents = [w(20, 22), w(21, 25), w(90, 95)];
        let s = RetentionSubject {
            party: PersonRole::Protected,
            protection_end: None,
            incidents: &incidents,
        };
        // now = hour 100: fixes before hour 28 are purgeable.
        let r = plan(&POLICY, &s, w(0, 100), h(100));
        assert_eq!(r.purge, vec![w(0, 20), w(25, 28)]);
        assert_eq!(
            r.keep,
            vec![
                (w(20, 25), KeepReason::Incident),
                (w(28, 90), KeepReason::WithinRetention),
                (w(90, 95), KeepReason::Incident),
                (w(95, 100), KeepReason::WithinRetention),
            ]
        );
        assert_eq!(r.next_purge_at, Some(h(100)));
        let cases = [
            (h(10), Verdict::Purge),
            (h(21), Verdict::Keep(KeepReason::Incident)),
            (h(27), Verdict::Purge),
            (h(28), Verdict::Keep(KeepReason::WithinRetention)),
        ];
        for (t, v) in cases {
            assert_eq!(decide_fix(&POLICY, &s, t, h(100)), v, "{t:?}");
        }
    }

    #[test]
    fn offender_fixes_kept_until_days_after_order_end() {
        let incidents = [w(5, 6)];
        let mut s = RetentionSubject {
            party: PersonRole::Offender,
            protection_end: None,
            incidents: &incidents,
        };
        let r = plan(&POLICY, &s, w(0, 48), h(10_000));
        assert!(r.purge.is_empty(), "order in force: keep all");
        assert_eq!(r.keep[0], (w(0, 5), KeepReason::OrderInForce));

        s.protection_end = Some(h(48));
        let release = h(48 + 240);
        let before = plan(&POLICY, &s, w(0, 48), h(48 + 239));
        assert!(before.purge.is_empty());
        assert_eq!(before.next_purge_at, Some(release));
        let after = plan(&POLICY, &s, w(0, 48), release);
        assert_eq!(after.purge, vec![w(0, 5), w(6, 48)]);
        assert_eq!(after.keep, vec![(w(5, 6), KeepReason::Incident)]);
        assert_eq!(decide_fix(&POLICY, &s, h(47), release), Verdict::Purge);
        assert_eq!(
            decide_fix(&POLICY, &s, h(5), release),
            Verdict::Keep(KeepReason::Incident)
        );
    }

    #[test]
    fn plan_partitions_the_range() {
        // Whatever the inputs, purge ∪ keep tiles the range exactly, with no overlap.
        let incidents = [w(3, 9), w(40, 41), w(-5, 1), w(60, 200)];
        for party in [PersonRole::Offender, PersonRole::Protected] {
            for end in [None, Some(h(0)), Some(h(50))] {
                for now in [0, 30, 80, 500, 100_000] {
                    let s = RetentionSubject {
                        party,
                        protection_end: end,
                        incidents: &incidents,
                    };
                    let r = plan(&POLICY, &s, w(0, 100), h(now));
                    let mut all: Vec<Window> = r.purge.clone();
                    all.extend(r.keep.iter().map(|(w, _)| *w));
                    all.sort();
                    assert_eq!(all.first().map(|w| w.from), Some(h(0)));
                    assert_eq!(all.last().map(|w| w.to), Some(h(100)));
                    for pair in all.windows(2) {
                        assert_eq!(pair[0].to, pair[1].from);
                    }
                }
            }
        }
    }
}
