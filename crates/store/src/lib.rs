//! Durable storage for Bulwark: one API ([`Store`]), two backends.
//!
//! The embedded default is SQLite in WAL mode, each commit made durable by an `fdatasync` of
//! the WAL before anyone is answered ([`Store::open`]; the sync runs on its own thread while
//! the writer commits the next group, see `tune_writer` in `sqlite.rs`); the
//! cluster's is PostgreSQL with `synchronous_commit = on` ([`Store::open_url`], see
//! `postgres/mod.rs` for what it covers so far). On both, all writes go through one dedicated
//! writer thread (`writer.rs`, written once) that gathers whatever jobs are waiting into one
//! transaction (group commit): one fsync serves many devices. A job's caller is answered only after the
//! transaction that holds its rows has committed, which is what lets the ingest doors
//! acknowledge a fix only once it is durable.
//!
//! Reads use separate connections (WAL, or PostgreSQL sessions) on blocking threads.
//!
//! **Durability guarantee**, step by step:
//! 1. A caller submits a write job and waits.
//! 2. The writer runs the job inside a savepoint of the current group transaction; a job that
//!    fails is rolled back alone and its caller gets the error.
//! 3. The writer commits the group. If the commit fails (disk full, IO error) every job in it
//!    gets the error and nothing of the group is visible.
//! 4. Only once the commit is durable are callers answered `Ok` and committed fixes published
//!    to subscribers (the engine), in commit order. On PostgreSQL that is when `COMMIT`
//!    returns. On SQLite the commit returns once its WAL frames are written; the syncer
//!    thread then syncs the WAL (one sync for every group committed meanwhile) and answers
//!    them. A sync that fails answers those groups' jobs with the error (nothing of them is
//!    acknowledged, and a resend is answered from the row as a duplicate), yet publishes
//!    their fixes, which are visible in the store from the commit on.

mod alerting;
mod authorized;
mod columns;
#[cfg(test)]
mod conformance;
mod court;
mod episode;
mod lifecycle;
mod migrations;
mod outbox;
mod postgres;
mod scans;
mod sqlite;
mod status;
#[cfg(test)]
mod tests;
mod unknown_frames;
mod writer;

// The storage API, named item by item: a new public type is a decision, not an accident of a
// glob re-export.
pub use alerting::{
    NewDispatch, PushSubscription, TASK_OFFICER_TO_OFFENDER, TASK_POLICE_TO_VICTIM, TASK_STATES,
    Task,
};
pub use authorized::Authorized;
pub use court::{
    CourtStep, CourtTimer, NewNotice, NewPetitionEvent, NewTimer, NoticeRecord, OrderVersionRecord,
    Petition, PetitionEvent, StepOutcome,
};
pub use lifecycle::{AlertAction, NewAlertAction};
pub use outbox::{AlertNotify, EscalationPolicy, Fence, OutboxItem};
pub use scans::{NetworkScan, NewScan};
pub use sqlite::{
    Account, AlertChange, AlertChangeKind, AlertDetails, AlertRecord, AuditRowError, AuditSigner,
    Committed, DeviceRecord, FixOutcome, NewAccount, Opened, SAME_TIME_JUMP_M, SYSTEM_ACTOR, Store,
    UnknownDevice, token_hash, write_head_file,
};
pub use status::DeviceHealth;
pub use unknown_frames::{MAX_UNKNOWN_FRAME, UnknownFrame};

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
    #[error("postgresql error: {}", pg_message(.0))]
    Postgres(::postgres::Error),
    /// The database cannot be reached (PostgreSQL down or restarting): nothing was stored.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// An operation the chosen backend does not have yet.
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(
        "the database's schema is version {found}, newer than this build knows ({known}); run the newer Bulwark or restore a matching backup"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store is shut down")]
    Closed,
    /// A case-data read whose [`Authorized`] token does not cover what it reads (a bug of
    /// the caller: it was allowed one case and reads another).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// An alert write whose partition fencing token is older than the partition's latest:
    /// another node has taken the partition over since (cluster mode). Nothing was written.
    #[error("fenced: {0}")]
    Fenced(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The server's own words for a PostgreSQL error (the driver's `Display` says only "db
/// error"): severity, message and SQLSTATE, or the connection error and its cause.
/// A PostgreSQL error is [`StoreError::Unavailable`] when the server, not the statement,
/// failed: the connection is gone (no SQLSTATE, or closed), the server refuses connections
/// or is shutting down (class 57, operator intervention: `57P01` admin shutdown, `57P03`
/// cannot connect now), or the connection broke (class 08). A device or user told
/// "unavailable" retries later; every other error is a statement's own failure.
impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        let outage = match e.as_db_error() {
            // Without SQLSTATE: the socket failed (an I/O cause), the session closed, or
            // connecting failed; a column that does not convert is a bug, not an outage.
            None => {
                e.is_closed()
                    || std::error::Error::source(&e)
                        .is_some_and(|c| c.downcast_ref::<std::io::Error>().is_some())
                    || e.to_string().starts_with("error connecting")
            }
            Some(db) => {
                let code = db.code().code();
                code.starts_with("57") || code.starts_with("08")
            }
        };
        if outage || e.is_closed() {
            StoreError::Unavailable(pg_message(&e))
        } else {
            StoreError::Postgres(e)
        }
    }
}

fn pg_message(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}
