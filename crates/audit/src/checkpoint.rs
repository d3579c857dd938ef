//! Signed checkpoints and the Ed25519 key helpers.
//!
//! A checkpoint says "the record with sequence number `seq` had chain hash `hash`, signed at
//! `time`". Because the chain hash covers every earlier record, one checkpoint fixes the whole
//! log up to `seq`. The signing key lives in a file the server reads at start-up (not in the
//! database), so someone who can rewrite the database cannot forge checkpoints.
//!
//! The signed message is `"BWCKPT1\0" || seq (u64 BE) || hash (32 bytes) || time (i64 BE)`;
//! the domain-separation prefix keeps a checkpoint signature from ever being valid as a
//! bundle-manifest signature made with the same key, and vice versa.

use domain::UnixMicros;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use thiserror::Error;

use crate::hex::{HexError, from_hex_array, to_hex};
use crate::record::Hash32;

const CHECKPOINT_DOMAIN: &[u8; 8] = b"BWCKPT1\0";

/// A signed statement of the chain head at `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: Hash32,
    pub time: UnixMicros,
    /// Ed25519 signature over [`Checkpoint::message`].
    pub signature: [u8; 64],
}

/// Key material that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("an Ed25519 {what} key is 32 bytes, got {got}")]
    Length { what: &'static str, got: usize },
    #[error("the bytes are not a valid Ed25519 public key")]
    InvalidPublicKey,
    #[error("not an Ed25519 public key in PEM (SubjectPublicKeyInfo): {0}")]
    Pem(String),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("invalid hex: {0}")]
    Hex(#[from] HexError),
}

/// Generates a new signing key from the operating system's random source. The server writes
/// `key.to_bytes()` to its key file (mode 0600) once and loads it with
/// [`signing_key_from_bytes`] afterwards.
pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Loads a signing key from its 32 secret bytes (the key file's content), or from 64 hex
/// characters with optional surrounding whitespace, so that the key file may be either.
pub fn signing_key_from_bytes(bytes: &[u8]) -> Result<SigningKey, KeyError> {
    let secret: [u8; 32] = key_bytes("signing", bytes)?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Loads a public key from 32 bytes, 64 hex characters, or a PEM `PUBLIC KEY` block (the
/// `public.pem` that `bulwark audit public-key` writes and OpenSSL reads).
pub fn verifying_key_from_bytes(bytes: &[u8]) -> Result<VerifyingKey, KeyError> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.trim_start().starts_with("-----BEGIN")
    {
        return VerifyingKey::from_public_key_pem(text.trim())
            .map_err(|e| KeyError::Pem(e.to_string()));
    }
    let public: [u8; 32] = key_bytes("public", bytes)?;
    VerifyingKey::from_bytes(&public).map_err(|_| KeyError::InvalidPublicKey)
}

/// The public key as a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo, RFC 8410), the form
/// `openssl pkeyutl -verify -pubin -inkey public.pem` takes. An evidence bundle is checked
/// offline against this file, handed to the court apart from the bundle.
pub fn public_key_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Pem(e.to_string()))
}

fn key_bytes(what: &'static str, bytes: &[u8]) -> Result<[u8; 32], KeyError> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Ok(raw);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if text.trim().len() == 64 => Ok(from_hex_array(text.trim())?),
        _ => Err(KeyError::Length {
            what,
            got: bytes.len(),
        }),
    }
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn message(seq: u64, hash: &Hash32, time: UnixMicros) -> Vec<u8> {
        let mut m = Vec::with_capacity(8 + 8 + 32 + 8);
        m.extend_from_slice(CHECKPOINT_DOMAIN);
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        m.extend_from_slice(&time.0.to_be_bytes());
        m
    }

    /// Signs the chain head `(seq, hash)` at `time`.
    pub fn sign(key: &SigningKey, seq: u64, hash: Hash32, time: UnixMicros) -> Self {
        let signature = key.sign(&Self::message(seq, &hash, time)).to_bytes();
        Checkpoint {
            seq,
            hash,
            time,
            signature,
        }
    }

    /// Whether the signature is valid for `key`. Uses strict verification so that a
    /// malleated signature is not accepted as a second valid form.
    pub fn signature_valid(&self, key: &VerifyingKey) -> bool {
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&Self::message(self.seq, &self.hash, self.time), &sig)
            .is_ok()
    }

    /// Whether a checkpoint is due after appending record `seq`, for a policy of one
    /// checkpoint every `every` records (`every == 0` disables periodic checkpoints).
    pub fn due(seq: u64, every: u64) -> bool {
        every != 0 && seq.is_multiple_of(every)
    }

    /// Storage form: `seq (u64 BE) || hash || time (i64 BE) || signature`, 112 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(112);
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.hash);
        b.extend_from_slice(&self.time.0.to_be_bytes());
        b.extend_from_slice(&self.signature);
        b
    }

    /// Reads [`Checkpoint::to_bytes`] back; `None` unless exactly 112 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 112 {
            return None;
        }
        Some(Checkpoint {
            seq: u64::from_be_bytes(b[0..8].try_into().ok()?),
            hash: b[8..40].try_into().ok()?,
            time: UnixMicros(i64::from_be_bytes(b[40..48].try_into().ok()?)),
            signature: b[48..112].try_into().ok()?,
        })
    }

    /// The JSON form used in evidence bundles.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "hash": to_hex(&self.hash),
            "time_us": self.time.0,
            "signature": to_hex(&self.signature),
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        Some(Checkpoint {
            seq: v.get("seq")?.as_u64()?,
            hash: from_hex_array(v.get("hash")?.as_str()?).ok()?,
            time: UnixMicros(v.get("time_us")?.as_i64()?),
            signature: from_hex_array(v.get("signature")?.as_str()?).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn public_key_pem_round_trips_and_is_what_openssl_reads() {
        let public = key(3).verifying_key();
        let pem = public_key_pem(&public).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        assert_eq!(verifying_key_from_bytes(pem.as_bytes()).unwrap(), public);
        // RFC 8410: SubjectPublicKeyInfo for Ed25519 is 12 fixed bytes and then the key.
        assert_eq!(pem.lines().nth(1).unwrap().len(), 60);
        let broken = pem.replace("MCow", "MCox");
        assert!(matches!(
            verifying_key_from_bytes(broken.as_bytes()),
            Err(KeyError::Pem(_))
        ));
    }

    #[test]
    fn sign_verify_and_reject() {
        let c = Checkpoint::sign(&key(1), 7, [9; 32], UnixMicros(5));
        assert!(c.signature_valid(&key(1).verifying_key()));
        assert!(!c.signature_valid(&key(2).verifying_key()));
        for mutate in [
            |c: &mut Checkpoint| c.seq += 1,
            |c: &mut Checkpoint| c.hash[0] ^= 1,
            |c: &mut Checkpoint| c.time.0 += 1,
            |c: &mut Checkpoint| c.signature[10] ^= 1,
        ] {
            let mut bad = c.clone();
            mutate(&mut bad);
            assert!(!bad.signature_valid(&key(1).verifying_key()));
        }
        assert_eq!(Checkpoint::from_bytes(&c.to_bytes()), Some(c.clone()));
        assert_eq!(Checkpoint::from_json(&c.to_json()), Some(c));
    }

    #[test]
    fn key_loading() {
        let k = generate_signing_key().expect("os random");
        let raw = k.to_bytes();
        assert_eq!(signing_key_from_bytes(&raw).map(|k| k.to_bytes()), Ok(raw));
        let hex = format!("{}\n", to_hex(&raw));
        assert_eq!(
            signing_key_from_bytes(hex.as_bytes()).map(|k| k.to_bytes()),
            Ok(raw)
        );
        let public = k.verifying_key().to_bytes();
        assert_eq!(
            verifying_key_from_bytes(&public).map(|k| k.to_bytes()),
            Ok(public)
        );
        assert_eq!(
            signing_key_from_bytes(&[1, 2, 3]).map(|k| k.to_bytes()),
            Err(KeyError::Length {
                what: "signing",
                got: 3
            })
        );
    }

    #[test]
    fn due_every_n() {
        let due: Vec<u64> = (1..=10).filter(|s| Checkpoint::due(*s, 4)).collect();
        assert_eq!(due, vec![4, 8]);
        assert!(!Checkpoint::due(4, 0));
    }
}
