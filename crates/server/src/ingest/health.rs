//! Which health reports are stored: a report that repeats the device's last stored one within
//! [`HEALTH_REPEAT`] says nothing new and is not stored again.
//!
//! A tracker sends its status (battery, signal, satellites…) with every record, most of the
//! time unchanged. Storing each one cost a history row and an update of the device's latest
//! row per frame: two b-tree pages of their own in every commit, about a third of the store
//! writer's pages at saturation (`docs/performance.md`). What is kept: every change, as
//! reported, and at least one report a minute from a device whose values do not change, so
//! the latest row's `reported_at` is at most [`HEALTH_REPEAT`] behind the device's last report.

use domain::{DeviceId, UnixMicros};
use std::collections::HashMap;
use std::sync::Mutex;
use store::DeviceHealth;

/// How long a report identical to the last stored one is not stored again.
pub const HEALTH_REPEAT: UnixMicros = UnixMicros(60_000_000);

/// The last stored health report of each device, as a fingerprint of its values and its time
/// (16 bytes a device: the memory bench counts every byte per device). In memory: a restart
/// stores the first report of each device again, which is harmless.
#[derive(Default)]
pub struct HealthSeen(Mutex<HashMap<DeviceId, Seen>>);

/// A stored report's values, fingerprinted, and when it was received.
#[derive(Clone, Copy)]
pub struct Seen {
    values: u64,
    at: UnixMicros,
}

/// A fingerprint of a report's values (the time aside): equal for equal values. Two different
/// reports share one with a chance of 2⁻⁶⁴, and then the second is stored a minute late.
fn fingerprint(h: &DeviceHealth) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut s = std::collections::hash_map::DefaultHasher::new();
    let bits = |v: Option<f64>| v.map(f64::to_bits);
    (
        bits(h.battery_percent),
        bits(h.battery_volts),
        bits(h.power_volts),
        h.charging,
        bits(h.signal),
        h.satellites,
        bits(h.heart_rate_bpm),
        bits(h.body_temp_c),
    )
        .hash(&mut s);
    s.finish()
}

impl HealthSeen {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Seen>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `h` repeats `device`'s last stored report: the same values, received no
    /// earlier than it and less than [`HEALTH_REPEAT`] after it.
    pub fn repeats(&self, device: DeviceId, h: &DeviceHealth) -> bool {
        self.lock().get(&device).is_some_and(|last| {
            last.values == fingerprint(h)
                && h.reported_at.0 >= last.at.0
                && h.reported_at.0 - last.at.0 < HEALTH_REPEAT.0
        })
    }

    /// The reports that say something new (see [`HealthSeen::repeats`]).
    pub fn new_only(
        &self,
        reports: Vec<(DeviceId, DeviceHealth)>,
    ) -> Vec<(DeviceId, DeviceHealth)> {
        reports
            .into_iter()
            .filter(|(d, h)| !self.repeats(*d, h))
            .collect()
    }

    /// Remembers reports once they are durable.
    pub fn stored(&self, reports: &[(DeviceId, DeviceHealth)]) {
        let mut seen = self.lock();
        for (d, h) in reports {
            let newer = seen.get(d).is_none_or(|last| h.reported_at.0 >= last.at.0);
            if newer {
                seen.insert(
                    *d,
                    Seen {
                        values: fingerprint(h),
                        at: h.reported_at,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(at_s: i64, battery: f64, satellites: i64) -> DeviceHealth {
        DeviceHealth {
            reported_at: UnixMicros(at_s * 1_000_000),
            battery_percent: Some(battery),
            battery_volts: None,
            power_volts: None,
            charging: Some(false),
            signal: Some(20.0),
            satellites: Some(satellites),
            heart_rate_bpm: None,
            body_temp_c: None,
        }
    }

    #[test]
    fn a_repeated_report_is_stored_once_a_minute_and_every_change_at_once() {
        let seen = HealthSeen::default();
        let d = DeviceId(7);
        let first = vec![(d, report(100, 80.0, 9))];
        assert_eq!(seen.new_only(first.clone()).len(), 1, "nothing seen yet");
        seen.stored(&first);
        // The same values a second later, and 59 s later: nothing new.
        assert!(seen.repeats(d, &report(101, 80.0, 9)));
        assert!(seen.repeats(d, &report(159, 80.0, 9)));
        // A minute after the stored one: stored again, so `reported_at` keeps up.
        assert!(!seen.repeats(d, &report(160, 80.0, 9)));
        // Any change is stored at once: battery, or the satellites in view.
        assert!(!seen.repeats(d, &report(101, 79.0, 9)));
        assert!(!seen.repeats(d, &report(101, 80.0, 8)));
        // A value no longer reported is a change too.
        let silent = DeviceHealth {
            charging: None,
            ..report(101, 80.0, 9)
        };
        assert!(!seen.repeats(d, &silent));
        // A report older than the stored one (a resent backlog) is stored as it came.
        assert!(!seen.repeats(d, &report(99, 80.0, 9)));
        // Another device is its own.
        assert!(!seen.repeats(DeviceId(8), &report(101, 80.0, 9)));
        // An older report stored late does not move the remembered one back.
        seen.stored(&[(d, report(50, 80.0, 9))]);
        assert!(seen.repeats(d, &report(101, 80.0, 9)));
    }
}
