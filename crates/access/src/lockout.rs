//! Log-in throttling as a pure state machine: after `max_failures` consecutive failures the
//! account is locked for `base_lock_s`, doubling with each further lockout up to
//! `max_lock_s`. A success clears the failure count but not the lockout history until a
//! quiet period has passed, so that an attacker who knows one password cannot reset the
//! back-off for guessing another factor.
//!
//! The server keeps one [`LoginThrottle`] per account (and may keep one per source address);
//! time is always passed in.

use domain::UnixMicros;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub base_lock_s: i64,
    pub max_lock_s: i64,
    /// After this long with no failure, the lockout history is forgotten.
    pub forget_after_s: i64,
}

impl Default for LockoutPolicy {
    /// 5 failures → 15 min, then 30, 60 … capped at 24 h; history forgotten after 24 h quiet.
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            base_lock_s: 15 * 60,
            max_lock_s: 24 * 3_600,
            forget_after_s: 24 * 3_600,
        }
    }
}

/// One account's throttle state; the store keeps it as three columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginThrottle {
    pub failures: u32,
    pub lockouts: u32,
    pub locked_until: Option<UnixMicros>,
    pub last_failure: Option<UnixMicros>,
}

/// The answer to "may this account try to log in now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    Locked { until: UnixMicros },
}

impl LoginThrottle {
    /// Whether an attempt may be made at `now`. Called before checking the password, so a
    /// locked account does not even pay for the hash.
    pub fn check(&self, now: UnixMicros) -> Attempt {
        match self.locked_until {
            Some(until) if now < until => Attempt::Locked { until },
            _ => Attempt::Allowed,
        }
    }

    /// Records a failed attempt; returns the lock it caused, if any.
    pub fn record_failure(&mut self, policy: &LockoutPolicy, now: UnixMicros) -> Attempt {
        if let Attempt::Locked { until } = self.check(now) {
            return Attempt::Locked { until };
        }
        // Quiet time counts from the later of the last failure and the end of the last lock,
        // so a long lock does not itself wipe the history it is part of.
        let quiet_since = self.last_failure.max(self.locked_until);
        if quiet_since.is_some_and(|t| now >= t.plus_secs(policy.forget_after_s)) {
            self.lockouts = 0;
            self.failures = 0;
        }
        self.last_failure = Some(now);
        self.failures = self.failures.saturating_add(1);
        if self.failures < policy.max_failures {
            return Attempt::Allowed;
        }
        let factor = 1i64.checked_shl(self.lockouts.min(32)).unwrap_or(i64::MAX);
        let secs = policy
            .base_lock_s
            .saturating_mul(factor)
            .min(policy.max_lock_s);
        let until = now.plus_secs(secs);
        self.lockouts = self.lockouts.saturating_add(1);
        self.failures = 0;
        self.locked_until = Some(until);
        Attempt::Locked { until }
    }

    /// Records a successful log-in.
    pub fn record_success(&mut self) {
        self.failures = 0;
        self.locked_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> UnixMicros {
        UnixMicros::from_secs(s)
    }

    #[test]
    fn five_failures_lock_with_exponential_backoff() {
        let p = LockoutPolicy::default();
        let mut th = LoginThrottle::default();
        for i in 0..4 {
            assert_eq!(th.record_failure(&p, t(i)), Attempt::Allowed);
        }
        assert_eq!(
            th.record_failure(&p, t(4)),
            Attempt::Locked { until: t(4 + 900) }
        );
        assert_eq!(th.check(t(903)), Attempt::Locked { until: t(904) });
        // Failures while locked do not extend or count.
        assert_eq!(
            th.record_failure(&p, t(500)),
            Attempt::Locked { until: t(904) }
        );
        assert_eq!(th.check(t(904)), Attempt::Allowed);
        let mut now = 904;
        let mut expect = [1_800, 3_600, 7_200, 14_400, 28_800, 57_600, 86_400, 86_400].iter();
        for _ in 0..8 {
            for _ in 0..4 {
                th.record_failure(&p, t(now));
            }
            let lock = expect.next().copied().unwrap_or_default();
            assert_eq!(
                th.record_failure(&p, t(now)),
                Attempt::Locked {
                    until: t(now + lock)
                }
            );
            now += lock;
        }
    }

    #[test]
    fn success_clears_failures_but_history_needs_quiet() {
        let p = LockoutPolicy::default();
        let mut th = LoginThrottle::default();
        for i in 0..5 {
            th.record_failure(&p, t(i));
        }
        th.record_success();
        assert_eq!(th.check(t(10)), Attempt::Allowed);
        for i in 0..5 {
            th.record_failure(&p, t(1_000 + i));
        }
        assert_eq!(
            th.locked_until,
            Some(t(1_004 + 1_800)),
            "second lockout doubles"
        );
        // A day later with no failures the history is forgotten.
        let later = 1_004 + 1_800 + 86_400;
        for i in 0..5 {
            th.record_failure(&p, t(later + i));
        }
        assert_eq!(th.locked_until, Some(t(later + 4 + 900)));
    }
}
