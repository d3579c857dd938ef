//! Zone schedules in local time ("school zone on weekdays 08:00–17:00").
//!
//! Local time is UTC plus a fixed offset (`EngineConfig::utc_offset_s`; Korea is UTC+9 with no
//! daylight saving time, so a fixed offset is exact there).

use domain::UnixMicros;

/// One weekly window. `days` is a bit set, bit 0 = Monday … bit 6 = Sunday. A window whose end
/// is not after its start runs over midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleWindow {
    pub days: u8,
    pub start_min: u16,
    pub end_min: u16,
}

/// When a zone is in force. An empty schedule is never in force.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneSchedule {
    pub windows: Vec<ScheduleWindow>,
}

const MIN_PER_DAY: i64 = 1_440;

impl ZoneSchedule {
    /// Whether the zone is in force at `t` for local time `utc + offset_s`.
    pub fn active_at(&self, t: UnixMicros, offset_s: i32) -> bool {
        let local_min = (t.0.div_euclid(60_000_000)) + i64::from(offset_s) / 60;
        let day = local_min.div_euclid(MIN_PER_DAY);
        let minute = local_min.rem_euclid(MIN_PER_DAY);
        // 1970-01-01 was a Thursday (Monday = 0 → Thursday = 3).
        let weekday = (day + 3).rem_euclid(7) as u8;
        let yesterday = (weekday + 6) % 7;
        self.windows.iter().any(|w| {
            let (s, e) = (i64::from(w.start_min), i64::from(w.end_min));
            if s < e {
                w.days & (1 << weekday) != 0 && minute >= s && minute < e
            } else {
                (w.days & (1 << weekday) != 0 && minute >= s)
                    || (w.days & (1 << yesterday) != 0 && minute < e)
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn weekday_window_in_seoul_time() {
        // 2025-12-01 is a Monday. 00:00 UTC = 09:00 KST.
        let monday_0900_kst = UnixMicros::from_secs(1_764_547_200);
        let s = ZoneSchedule {
            windows: vec![ScheduleWindow {
                days: 0b001_1111,
                start_min: 8 * 60,
                end_min: 17 * 60,
            }],
        };
        assert!(s.active_at(monday_0900_kst, 9 * 3600));
        assert!(!s.active_at(monday_0900_kst.plus_secs(9 * 3600), 9 * 3600));
        // Saturday 09:00 KST.
        assert!(!s.active_at(monday_0900_kst.plus_secs(5 * 86_400), 9 * 3600));
        let night = ZoneSchedule {
            windows: vec![ScheduleWindow {
                days: 0b000_0001,
                start_min: 22 * 60,
                end_min: 6 * 60,
            }],
        };
        // Tuesday 02:00 KST belongs to Monday night's window.
        assert!(night.active_at(monday_0900_kst.plus_secs(17 * 3600), 9 * 3600));
        assert!(!night.active_at(monday_0900_kst.plus_secs(41 * 3600), 9 * 3600));
    }
}
