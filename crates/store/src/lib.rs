//! Durable storage for Bulwark.
//!
//! The embedded backend is SQLite in WAL mode with `synchronous=FULL`. All writes go through
//! one dedicated writer thread that gathers whatever jobs are waiting into one transaction
//! (group commit): one fsync serves many devices. A job's caller is answered only after the
//! transaction that holds its rows has committed, which is what lets the ingest doors
//! acknowledge a fix only once it is durable.
//!
//! Reads use separate connections (WAL lets them run beside the writer) on blocking threads.
//!
//! **Durability guarantee**, step by step:
//! 1. A caller submits a write job and waits.
//! 2. The writer runs the job inside a savepoint of the current group transaction; a job that
//!    fails is rolled back alone and its caller gets the error.
//! 3. The writer commits the group. If the commit fails (disk full, IO error) every job in it
//!    gets the error and nothing of the group is visible.
//! 4. Only after a successful commit are callers answered `Ok` and committed fixes published to
//!    subscribers (the engine), in commit order.

mod alerting;
mod court;
mod lifecycle;
mod migrations;
mod outbox;
mod scans;
mod sqlite;
mod status;
mod unknown_frames;

pub use alerting::*;
pub use court::*;
pub use lifecycle::*;
pub use outbox::*;
pub use scans::*;
pub use sqlite::*;
pub use status::*;
pub use unknown_frames::*;

use thiserror::Error;

/// Storage errors. Constraint problems that a user caused are separated from internal failures
/// so the server can map them to 4xx vs 5xx.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid reference: {0}")]
    InvalidReference(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("the store is shut down")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
