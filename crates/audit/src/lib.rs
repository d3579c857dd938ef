//! Bulwark's tamper-evident access log and signed evidence bundles.
//!
//! # Overview
//!
//! Every read of location data, every change to a case, order or account and every log-in is
//! written as an [`AuditRecord`]. Records form a hash chain: each one stores the hash of the
//! record before it, and its own hash is
//! `SHA-256(prev_hash || canonical_encoding(record))` (see [`record`] for the encoding).
//! Changing, inserting, deleting or reordering a record breaks the chain at that point.
//!
//! A chain alone does not stop someone who can rewrite the whole log from recomputing every
//! hash, so every N records (or on demand) the server signs a [`Checkpoint`] — `(seq, hash,
//! time)` — with an Ed25519 key that the database does not hold. [`verify()`] walks records and
//! checkpoints and names the first bad sequence number and why. Records after the last
//! checkpoint are protected only by the chain; the report says how many there are
//! ([`VerifyReport::unsigned_tail`]) so that operators know what a checkpoint would add.
//!
//! An evidence bundle ([`bundle`]) is a directory of open-format files (CSV, JSON, JSON Lines)
//! with a signed manifest, so that a court can check it offline years later without Bulwark.
//!
//! # API Boundary
//!
//! This crate does no storage and reads no clock. The store appends and loads records in any
//! backend (a row per record, or [`AuditRecord::to_bytes`] as a blob); the server passes
//! `now`. Only [`bundle::write_bundle`] and [`bundle::verify_bundle`] touch the file system;
//! both are thin wrappers over pure functions on in-memory files.

pub mod bundle;
pub mod checkpoint;
mod hex;
pub mod record;
pub mod verify;

pub use bundle::{
    AlertHandling, BundleAlert, BundleError, BundleFix, BundleInput, BundleOrder, BundleProblem,
    BundleReport, build_bundle, verify_bundle, verify_bundle_files, write_bundle,
};
pub use checkpoint::{
    Checkpoint, KeyError, SigningKey, VerifyingKey, generate_signing_key, public_key_pem,
    signing_key_from_bytes, verifying_key_from_bytes,
};
pub use hex::{HexError, from_hex, to_hex};
pub use record::{
    Actor, ActorKind, AuditAction, AuditChain, AuditEntry, AuditRecord, ChainLink, DecodeError,
    GENESIS_HASH, Hash32, Outcome, Purpose, RecordFormat, Subject, chain_hash_v2,
};
pub use verify::{Problem, VerifyReport, verify, verify_excerpt, verify_sparse_excerpt};
