//! Password hashing with Argon2id (the `argon2` crate's defaults: m = 19 MiB, t = 2, p = 1,
//! the OWASP minimum) stored as PHC strings, so parameters can be raised later and old
//! hashes still verify.
//!
//! Hashing takes tens of milliseconds of CPU by design: the server runs it in
//! `spawn_blocking`, never on an async worker.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use thiserror::Error;

/// Passwords shorter than this are refused (NIST SP 800-63B: at least 8).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer inputs are refused so that a megabyte "password" cannot pin a CPU.
pub const MAX_PASSWORD_BYTES: usize = 1_024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("password must be at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("stored password hash is not a valid PHC string: {0}")]
    BadHash(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// Hashes a new password with a fresh random 16-byte salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    hash_password_with_salt(password, &salt)
}

/// Hashes with a given salt (for tests and for callers that supply their own randomness).
pub fn hash_password_with_salt(password: &str, salt: &[u8; 16]) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::encode_b64(salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` matches the stored PHC string. A wrong password is `Ok(false)`; only
/// a corrupt stored hash is an error.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::Hashing(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash_password("correct horse battery").unwrap_or_default();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(verify_password("correct horse battery", &phc), Ok(true));
        assert_eq!(verify_password("correct horse batterx", &phc), Ok(false));
        // Fresh salt each time.
        assert_ne!(
            hash_password("correct horse battery").unwrap_or_default(),
            phc
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort));
        assert_eq!(
            hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong)
        );
        assert!(matches!(
            verify_password("whatever1", "not a phc"),
            Err(PasswordError::BadHash(_))
        ));
    }
}
