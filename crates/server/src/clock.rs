//! The server's one clock. Every part of the server that needs the time (ingest's receipt
//! times, the pipeline's engine inputs, sessions, the access log, the court scheduler, the
//! retention job, the outbox) reads it from [`AppState::clock`](crate::AppState), never from
//! the system directly, so a test can move the whole server forward in time. The engine does
//! not read it: the pipeline hands the time to `Engine::handle` as an input.

use domain::UnixMicros;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The wall clock plus an offset that tests advance (a month of court time passes in a test
/// without waiting for it), or, for unit tests, a fixed instant plus that offset. Clones share
/// one offset: advancing any clone advances the server's clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system's clock; `Some(t)`: stands still at `t` (microseconds).
    fixed_us: Option<i64>,
    offset_us: Arc<AtomicI64>,
}

impl Clock {
    /// The system's wall clock (what `serve` uses).
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands at `t` until advanced (unit tests).
    pub fn fixed(t: UnixMicros) -> Self {
        Clock {
            fixed_us: Some(t.0),
            offset_us: Arc::default(),
        }
    }

    /// The current time.
    pub fn now(&self) -> UnixMicros {
        let base = self
            .fixed_us
            .unwrap_or_else(|| jiff::Timestamp::now().as_microsecond());
        UnixMicros(base.saturating_add(self.offset_us.load(Ordering::Relaxed)))
    }

    /// Moves this clock (and every clone of it) forward by `secs` (tests).
    pub fn advance(&self, secs: i64) {
        self.offset_us
            .fetch_add(secs.saturating_mul(UnixMicros::SECOND), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stands_still_until_advanced_and_clones_share_the_advance() {
        let c = Clock::fixed(UnixMicros(1_000_000));
        assert_eq!(c.now(), UnixMicros(1_000_000));
        assert_eq!(c.now(), UnixMicros(1_000_000));
        let clone = c.clone();
        clone.advance(60);
        assert_eq!(c.now(), UnixMicros(61_000_000));
        assert_eq!(clone.now(), UnixMicros(61_000_000));
    }

    #[test]
    fn the_system_clock_is_moved_by_the_offset() {
        let c = Clock::system();
        let before = c.now();
        c.advance(86_400);
        assert!(c.now().0 >= before.0 + 86_400 * UnixMicros::SECOND);
    }
}
