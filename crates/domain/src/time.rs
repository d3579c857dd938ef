//! Time as integer microseconds since the Unix epoch (UTC).
//!
//! The engine never reads a clock: every "now" is passed in as a `UnixMicros`.

/// Microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UnixMicros(pub i64);

impl UnixMicros {
    pub const SECOND: i64 = 1_000_000;

    pub fn from_secs(s: i64) -> Self {
        UnixMicros(s.saturating_mul(Self::SECOND))
    }

    pub fn from_millis(ms: i64) -> Self {
        UnixMicros(ms.saturating_mul(1_000))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / Self::SECOND as f64
    }

    pub fn as_millis(self) -> i64 {
        self.0 / 1_000
    }

    pub fn plus_secs(self, s: i64) -> Self {
        UnixMicros(self.0.saturating_add(s.saturating_mul(Self::SECOND)))
    }

    /// Seconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn secs_since(self, earlier: UnixMicros) -> f64 {
        (self.0 - earlier.0) as f64 / Self::SECOND as f64
    }
}
