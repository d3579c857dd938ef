//! Log-in throttling as a pure state machine: after `max_failures` consecutive failures the
//! account is locked for `base_lock_s`, doubling with each further lockout up to
//! `max_lock_s`. A success clears the failure count but not the lockout history until a
//! quiet period has passed, so that an attacker who knows one password cannot reset the
//! back-off for guessing another factor.
//!
//! # Who is throttled: [`LoginGuard`]
//!
//! Locking an *account* after failures lets anyone lock any officer out of duty by typing
//! her username five times, and an account-only rule tells which usernames exist (unknown
//! ones were never locked). So the server throttles by two keys, never by account alone:
//!
//! - the **source address** (IPv6 by its /64): many failures from one place, whichever
//!   usernames they name, back that place off ([`LockoutPolicy::per_source`]);
//! - the **username at that source**: repeated failures for one username from one place back
//!   that pair off ([`LockoutPolicy::per_username_at_source`]).
//!
//! An officer who logs in from anywhere else is never refused because of someone else's
//! failures, and a username that exists is throttled exactly like one that does not: the keys
//! are strings, the account is not consulted. Time is always passed in.

use std::collections::HashMap;
use std::net::IpAddr;

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

impl LockoutPolicy {
    /// One source address: 20 failures → 1 min, doubling to 1 h; forgotten after 1 h quiet.
    /// Generous, because a control room's workstations may share one address.
    pub fn per_source() -> Self {
        LockoutPolicy {
            max_failures: 20,
            base_lock_s: 60,
            max_lock_s: 3_600,
            forget_after_s: 3_600,
        }
    }

    /// One username from one source: 5 failures → 30 s, doubling to 15 min; forgotten after
    /// 24 h quiet.
    pub fn per_username_at_source() -> Self {
        LockoutPolicy {
            max_failures: 5,
            base_lock_s: 30,
            max_lock_s: 15 * 60,
            forget_after_s: 24 * 3_600,
        }
    }
}

/// One throttle state; the store keeps it as three columns.
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

/// The source key of an address: IPv4 as is (also when mapped into IPv6), IPv6 by its /64,
/// which one subscriber usually holds whole.
pub fn source_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Keys kept at most, per map; beyond it quiet entries are dropped, then the oldest.
const MAX_KEYS: usize = 100_000;

/// The log-in throttle by source and by username at a source (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct LoginGuard {
    sources: HashMap<String, LoginThrottle>,
    pairs: HashMap<(String, String), LoginThrottle>,
}

/// The username part of a key: as typed, at most 64 characters (a longer one is no account).
fn username_key(username: &str) -> String {
    username.chars().take(64).collect()
}

impl LoginGuard {
    /// Whether `username` may try from `source` at `now`: the later lock of the two keys.
    /// Called before anything about the account is looked up or hashed.
    pub fn check(&self, source: &str, username: &str, now: UnixMicros) -> Attempt {
        let by_source = self.sources.get(source).map(|t| t.check(now));
        let by_pair = self
            .pairs
            .get(&(source.to_owned(), username_key(username)))
            .map(|t| t.check(now));
        let until = [by_source, by_pair]
            .into_iter()
            .flatten()
            .filter_map(|a| match a {
                Attempt::Locked { until } => Some(until),
                Attempt::Allowed => None,
            })
            .max();
        until.map_or(Attempt::Allowed, |until| Attempt::Locked { until })
    }

    /// Records a failed attempt (unknown username, wrong password or code, disabled account:
    /// all alike); returns the lock it caused, if any.
    pub fn record_failure(&mut self, source: &str, username: &str, now: UnixMicros) -> Attempt {
        prune(&mut self.sources, now);
        prune(&mut self.pairs, now);
        let a = self
            .sources
            .entry(source.to_owned())
            .or_default()
            .record_failure(&LockoutPolicy::per_source(), now);
        let b = self
            .pairs
            .entry((source.to_owned(), username_key(username)))
            .or_default()
            .record_failure(&LockoutPolicy::per_username_at_source(), now);
        match (a, b) {
            (Attempt::Locked { until: x }, Attempt::Locked { until: y }) => {
                Attempt::Locked { until: x.max(y) }
            }
            (l @ Attempt::Locked { .. }, _) | (_, l @ Attempt::Locked { .. }) => l,
            _ => Attempt::Allowed,
        }
    }

    /// Records a successful log-in: the pair's failures are cleared (its back-off history
    /// stays until quiet); the source's are not, so that one valid account does not reset a
    /// source that is guessing others.
    pub fn record_success(&mut self, source: &str, username: &str) {
        if let Some(t) = self
            .pairs
            .get_mut(&(source.to_owned(), username_key(username)))
        {
            t.record_success();
        }
    }

    /// Keys held (sources, pairs), for metrics and tests.
    pub fn len(&self) -> (usize, usize) {
        (self.sources.len(), self.pairs.len())
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.pairs.is_empty()
    }
}

/// Keeps a map under [`MAX_KEYS`]: entries quiet for an hour (no lock in force, no recent
/// failure) go first, then, if still full, the oldest failures.
fn prune<K: std::hash::Hash + Eq + Clone>(m: &mut HashMap<K, LoginThrottle>, now: UnixMicros) {
    if m.len() < MAX_KEYS {
        return;
    }
    let hour_ago = now.plus_secs(-3_600);
    m.retain(|_, t| {
        t.locked_until.is_some_and(|u| u > now) || t.last_failure.is_some_and(|f| f > hour_ago)
    });
    if m.len() >= MAX_KEYS {
        let mut times: Vec<_> = m.values().filter_map(|t| t.last_failure).collect();
        times.sort_unstable();
        let cut = times[times.len() / 2];
        m.retain(|_, t| t.last_failure.is_some_and(|f| f > cut));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn someone_elses_failures_never_refuse_an_officer_elsewhere() {
        let mut g = LoginGuard::default();
        let now = t(100);
        for i in 0..4 {
            assert_eq!(
                g.record_failure("10.0.0.66", "officer-kim", t(100 + i)),
                Attempt::Allowed
            );
        }
        let locked = g.record_failure("10.0.0.66", "officer-kim", t(104));
        assert_eq!(locked, Attempt::Locked { until: t(134) });
        assert_eq!(g.check("10.0.0.66", "officer-kim", t(110)), locked);
        // The officer at her own workstation is not refused, nor is another username there.
        assert_eq!(g.check("10.0.0.7", "officer-kim", now), Attempt::Allowed);
        assert_eq!(
            g.check("10.0.0.66", "officer-lee", t(110)),
            Attempt::Allowed
        );
        // The back-off doubles for the pair.
        for i in 0..4 {
            g.record_failure("10.0.0.66", "officer-kim", t(200 + i));
        }
        assert_eq!(
            g.record_failure("10.0.0.66", "officer-kim", t(204)),
            Attempt::Locked { until: t(264) }
        );
    }

    #[test]
    fn a_source_guessing_many_usernames_is_backed_off() {
        let mut g = LoginGuard::default();
        for i in 0..19 {
            assert_eq!(
                g.record_failure("2001:db8::1", &format!("user{i}"), t(i)),
                Attempt::Allowed
            );
        }
        assert_eq!(
            g.record_failure("2001:db8::1", "user19", t(19)),
            Attempt::Locked { until: t(79) }
        );
        assert_eq!(
            g.check("2001:db8::1", "anyone", t(20)),
            Attempt::Locked { until: t(79) }
        );
        g.record_success("2001:db8::1", "user3");
        assert_eq!(
            g.check("2001:db8::1", "anyone", t(21)),
            Attempt::Locked { until: t(79) },
            "one valid account does not clear the source"
        );
        assert_eq!(g.check("2001:db8::1", "anyone", t(79)), Attempt::Allowed);
    }

    #[test]
    fn source_keys_group_an_ipv6_subscriber_and_unmap_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(source_key(a), source_key(b));
        assert_eq!(source_key(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(source_key(mapped), "10.1.2.3");
    }

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
