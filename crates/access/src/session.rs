//! Opaque, revocable session tokens.
//!
//! A token is 32 random bytes, given to the client once as 64 hex characters. The store keeps
//! only its SHA-256 ([`SessionRecord::token_hash`]), so a leaked database does not yield
//! working sessions. Validity is pure logic over the stored record and `now`: absolute
//! expiry, idle timeout and revocation.

use domain::UnixMicros;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::authz::{AccountId, Role};

/// Token lifetimes. Staff consoles and victim apps differ, so the server picks per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Absolute lifetime from log-in, in seconds.
    pub max_age_s: i64,
    /// Ends the session after this long without use, in seconds.
    pub idle_timeout_s: i64,
}

impl Default for SessionPolicy {
    /// 12 h absolute, 30 min idle: one control-centre shift.
    fn default() -> Self {
        SessionPolicy {
            max_age_s: 12 * 3_600,
            idle_timeout_s: 30 * 60,
        }
    }
}

/// The secret the client holds. Not `Debug`/`Display` so that it cannot be logged by
/// accident; [`SessionToken::expose`] is the one way out.
pub struct SessionToken([u8; 32]);

impl SessionToken {
    /// A new token from the operating system's random source.
    pub fn generate() -> Result<Self, SessionError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| SessionError::Random(e.to_string()))?;
        Ok(SessionToken(b))
    }

    pub fn from_bytes(b: [u8; 32]) -> Self {
        SessionToken(b)
    }

    /// The text given to the client (64 lower-case hex characters).
    pub fn expose(&self) -> String {
        audit::to_hex(&self.0)
    }

    /// What the store keeps.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }

    /// Parses the client's text back. Any malformed token is simply invalid.
    pub fn parse(text: &str) -> Result<Self, SessionError> {
        let b = audit::from_hex(text.trim()).map_err(|_| SessionError::Malformed)?;
        let b: [u8; 32] = b.try_into().map_err(|_| SessionError::Malformed)?;
        Ok(SessionToken(b))
    }
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the token: the store's lookup key.
    pub token_hash: [u8; 32],
    pub account: AccountId,
    pub role: Role,
    pub created_at: UnixMicros,
    pub last_used_at: UnixMicros,
    pub expires_at: UnixMicros,
    pub idle_timeout_s: i64,
    pub revoked_at: Option<UnixMicros>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error("malformed session token")]
    Malformed,
    #[error("session expired")]
    Expired,
    #[error("session ended after inactivity")]
    Idle,
    #[error("session revoked")]
    Revoked,
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

impl SessionRecord {
    /// Starts a session for a token just issued.
    pub fn new(
        token: &SessionToken,
        account: AccountId,
        role: Role,
        policy: SessionPolicy,
        now: UnixMicros,
    ) -> Self {
        SessionRecord {
            token_hash: token.hash(),
            account,
            role,
            created_at: now,
            last_used_at: now,
            expires_at: now.plus_secs(policy.max_age_s),
            idle_timeout_s: policy.idle_timeout_s,
            revoked_at: None,
        }
    }

    /// Whether the session may be used at `now`.
    pub fn check(&self, now: UnixMicros) -> Result<(), SessionError> {
        if self.revoked_at.is_some_and(|r| r <= now) {
            return Err(SessionError::Revoked);
        }
        if now >= self.expires_at {
            return Err(SessionError::Expired);
        }
        if now >= self.last_used_at.plus_secs(self.idle_timeout_s) {
            return Err(SessionError::Idle);
        }
        Ok(())
    }

    /// Checks and records use; the server writes `last_used_at` back (coarsely, e.g. once a
    /// minute, to spare the database).
    pub fn touch(&mut self, now: UnixMicros) -> Result<(), SessionError> {
        self.check(now)?;
        self.last_used_at = self.last_used_at.max(now);
        Ok(())
    }

    /// Revokes (log-out, password change, account disabled). Idempotent: the first time
    /// stands.
    pub fn revoke(&mut self, now: UnixMicros) {
        self.revoked_at.get_or_insert(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> UnixMicros {
        UnixMicros::from_secs(s)
    }

    #[test]
    fn token_round_trip_and_hash() {
        let tok = SessionToken::generate().unwrap_or_else(|_| SessionToken::from_bytes([1; 32]));
        let text = tok.expose();
        assert_eq!(text.len(), 64);
        let back = SessionToken::parse(&text).unwrap_or_else(|_| SessionToken::from_bytes([0; 32]));
        assert_eq!(back.hash(), tok.hash());
        assert_ne!(
            tok.hash()[..],
            audit::from_hex(&text).unwrap_or_default()[..]
        );
        assert!(matches!(
            SessionToken::parse("abc"),
            Err(SessionError::Malformed)
        ));
        assert!(matches!(
            SessionToken::parse(&"0".repeat(62)),
            Err(SessionError::Malformed)
        ));
    }

    #[test]
    fn expiry_idle_and_revocation() {
        let policy = SessionPolicy {
            max_age_s: 100,
            idle_timeout_s: 30,
        };
        let tok = SessionToken::from_bytes([7; 32]);
        let mut s = SessionRecord::new(&tok, AccountId(1), Role::Police, policy, t(0));
        let cases: &[(i64, Result<(), SessionError>)] = &[
            (10, Ok(())),
            (35, Ok(())),
            (64, Ok(())),
            (92, Ok(())),
            (100, Err(SessionError::Expired)),
        ];
        for (at, expect) in cases {
            assert_eq!(&s.touch(t(*at)), expect, "at {at}");
        }
        let mut idle = SessionRecord::new(&tok, AccountId(1), Role::Police, policy, t(0));
        assert_eq!(idle.touch(t(30)), Err(SessionError::Idle));
        s = SessionRecord::new(&tok, AccountId(1), Role::Police, policy, t(0));
        s.revoke(t(5));
        s.revoke(t(9));
        assert_eq!(s.revoked_at, Some(t(5)));
        assert_eq!(s.check(t(6)), Err(SessionError::Revoked));
    }
}
