//! Group commit, written once for both backends.
//!
//! One writer (a dedicated thread) takes whatever jobs are waiting, up to [`MAX_GROUP`], and
//! runs them in one transaction, each inside its own savepoint: a job that fails is rolled
//! back alone and its caller gets the error; if `COMMIT` fails, every job of the group gets
//! the error and nothing of it is visible. Callers are answered only after the commit (the
//! numbered guarantee in `lib.rs`). The backends differ only in what a connection is, how a
//! statement is sent and which errors mean the storage itself failed ([`GroupBackend`]).

use crate::{Result, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How many queued jobs one group transaction takes at most.
pub(crate) const MAX_GROUP: usize = 512;
/// Capacity of the writer's queue; callers wait (backpressure) beyond it.
pub(crate) const QUEUE: usize = 4096;

/// What the group-commit loop needs from a backend.
pub(crate) trait GroupBackend: Send + 'static {
    /// What a job's body runs its statements on.
    type Conn;
    /// The connection for the next group. PostgreSQL reconnects here after the server went
    /// away; when it cannot, the group's jobs get this error and nothing is acknowledged.
    fn connection(&mut self) -> Result<&mut Self::Conn>;
    /// Runs statements without results (`BEGIN`, `SAVEPOINT job`, `COMMIT`).
    fn execute(conn: &mut Self::Conn, sql: &str) -> Result<()>;
    /// A failure of the storage itself (full disk, I/O error, lost server), not of one job's
    /// data: `/healthz` reports it while it lasts.
    fn storage_failure(e: &StoreError) -> bool;
    /// Called after `BEGIN` or `COMMIT` failed: the connection may be unusable.
    fn connection_failed(&mut self) {}
}

/// A job for the writer.
pub(crate) trait WriteJob<C>: Send {
    /// Runs inside a savepoint of the group transaction.
    fn run(&mut self, conn: &mut C) -> Result<()>;
    /// Called once the group's fate is known: `Ok` only after a successful commit.
    fn finish(self: Box<Self>, outcome: Result<()>);
}

/// Runs after a successful commit, before the caller is answered.
pub(crate) type AfterCommit<T> = Box<dyn FnOnce(&T) + Send>;

pub(crate) struct TypedJob<T, F> {
    f: Option<F>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T>>,
    /// Runs after a successful commit, before the caller is answered.
    after_commit: Option<AfterCommit<T>>,
}

impl<C, T: Send, F: FnOnce(&mut C) -> Result<T> + Send> WriteJob<C> for TypedJob<T, F> {
    fn run(&mut self, conn: &mut C) -> Result<()> {
        let f = self.f.take().ok_or(StoreError::Closed)?;
        self.out = Some(f(conn)?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<()>) {
        let this = *self;
        let result = match (outcome, this.out) {
            (Ok(()), Some(out)) => {
                if let Some(hook) = this.after_commit {
                    hook(&out);
                }
                Ok(out)
            }
            (Ok(()), None) => Err(StoreError::Closed),
            (Err(e), _) => Err(e),
        };
        // The caller may have gone away (client disconnected); that is not an error here.
        let _ = this.reply.send(result);
    }
}

/// Queues `f` for the writer behind `sender` and waits for the group's outcome.
pub(crate) async fn submit<C, T, F>(
    sender: Option<mpsc::Sender<Box<dyn WriteJob<C>>>>,
    f: F,
    after_commit: Option<AfterCommit<T>>,
) -> Result<T>
where
    C: 'static,
    T: Send + 'static,
    F: FnOnce(&mut C) -> Result<T> + Send + 'static,
{
    let sender = sender.ok_or(StoreError::Closed)?;
    let (reply, rx) = oneshot::channel();
    let job: Box<dyn WriteJob<C>> = Box::new(TypedJob {
        f: Some(f),
        out: None,
        reply,
        after_commit,
    });
    sender.send(job).await.map_err(|_| StoreError::Closed)?;
    rx.await.map_err(|_| StoreError::Closed)?
}

/// How long after the last group (or read) that failed for want of storage the store still
/// says `writes_failing`, however many clean groups commit meanwhile. On a full disk small writes
/// (an alert, a session) often still fit in pages the WAL holds while a batch of fixes does
/// not, so without a hold the flag flapped between failing and fine from one group to the
/// next, and `/healthz` said `ok` right after a device's fix was refused.
pub(crate) const FAILING_HOLD: Duration = Duration::from_secs(3);

/// Whether the store still counts as failing: `healthy` is the last group's outcome,
/// `last_failure` when a group or a read last failed for want of storage.
pub(crate) fn still_failing(healthy: bool, last_failure: Option<Instant>, now: Instant) -> bool {
    !healthy || last_failure.is_some_and(|t| now.saturating_duration_since(t) < FAILING_HOLD)
}

/// Whether the store is failing for want of storage, as the writer and the readers saw it.
#[derive(Default)]
pub(crate) struct StorageHealth {
    last_group_failed: AtomicBool,
    last_failure: std::sync::Mutex<Option<Instant>>,
}

impl StorageHealth {
    /// A group's outcome (`healthy`: it did not fail for want of storage).
    pub(crate) fn group_done(&self, healthy: bool) {
        self.last_group_failed.store(!healthy, Ordering::Relaxed);
        if !healthy {
            self.failed_now();
        }
    }

    /// A storage failure seen outside the writer (a read that could not open or read the
    /// database on a full disk, which fails a device's request as surely as a write).
    pub(crate) fn failed_now(&self) {
        if let Ok(mut t) = self.last_failure.lock() {
            *t = Some(Instant::now());
        }
    }

    pub(crate) fn failing(&self) -> bool {
        let last = self.last_failure.lock().ok().and_then(|t| *t);
        still_failing(
            !self.last_group_failed.load(Ordering::Relaxed),
            last,
            Instant::now(),
        )
    }
}

/// The writer thread's loop: until the queue is closed and drained, one group at a time.
pub(crate) fn writer_loop<B: GroupBackend>(
    mut backend: B,
    mut rx: mpsc::Receiver<Box<dyn WriteJob<B::Conn>>>,
    health: Arc<StorageHealth>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        run_group(&mut backend, group, &health);
    }
    tracing::info!("store writer stopped: queue closed and drained");
}

/// What each job of a group whose `COMMIT` failed is told: a lost database connection stays
/// [`StoreError::Unavailable`] (the doors answer 503, "retry later"); anything else is the
/// commit's own failure.
fn commit_failure(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("commit failed: {m}")),
        other => StoreError::Corrupt(format!("commit failed: {other}")),
    }
}

/// A job of the group with its own outcome, before the group's commit.
type Ran<C> = (Box<dyn WriteJob<C>>, Result<()>);

/// Runs one group in one transaction and records in `health` whether the storage failed (the
/// group's jobs, or some of them, were refused for it) *before* any caller is answered, so
/// that a device refused for a full disk never finds `/healthz` still saying `ok`.
fn run_group<B: GroupBackend>(
    backend: &mut B,
    group: Vec<Box<dyn WriteJob<B::Conn>>>,
    health: &StorageHealth,
) {
    let began = backend
        .connection()
        .and_then(|conn| B::execute(conn, "BEGIN").map(|()| conn));
    let conn = match began {
        Ok(conn) => conn,
        Err(e) => {
            let msg = e.to_string();
            tracing::error!(error = %msg, jobs = group.len(), "group could not begin; nothing acknowledged");
            health.group_done(false);
            for job in group {
                job.finish(Err(StoreError::Unavailable(format!("begin failed: {msg}"))));
            }
            backend.connection_failed();
            return;
        }
    };
    let mut done: Vec<Ran<B::Conn>> = Vec::with_capacity(group.len());
    for mut job in group {
        let res = (|| -> Result<()> {
            B::execute(conn, "SAVEPOINT job")?;
            match job.run(conn) {
                Ok(()) => {
                    B::execute(conn, "RELEASE SAVEPOINT job")?;
                    Ok(())
                }
                Err(e) => {
                    B::execute(conn, "ROLLBACK TO SAVEPOINT job")?;
                    B::execute(conn, "RELEASE SAVEPOINT job")?;
                    Err(e)
                }
            }
        })();
        done.push((job, res));
    }
    let jobs_failed_for_storage = done
        .iter()
        .any(|(_, r)| r.as_ref().err().is_some_and(B::storage_failure));
    match B::execute(conn, "COMMIT") {
        Ok(()) => {
            health.group_done(!jobs_failed_for_storage);
            for (job, res) in done {
                job.finish(res);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = done.len(), "group commit failed; nothing acknowledged");
            // Leave no half-open transaction behind (SQLite keeps one open after a failed
            // COMMIT); on a lost connection this fails too, which changes nothing.
            let _ = B::execute(conn, "ROLLBACK");
            health.group_done(false);
            for (job, _) in done {
                job.finish(Err(commit_failure(&e)));
            }
            backend.connection_failed();
        }
    }
}

#[cfg(test)]
mod failing_tests {
    use super::*;

    #[test]
    fn a_commit_lost_with_the_connection_is_unavailable_not_corrupt() {
        // Seen in CI: PostgreSQL stopped between a group's jobs and its COMMIT; the native
        // door answered 500 instead of 503.
        let lost = commit_failure(&StoreError::Unavailable("connection closed".into()));
        assert!(
            matches!(&lost, StoreError::Unavailable(m) if m.contains("connection closed")),
            "{lost}"
        );
        let other = commit_failure(&StoreError::Conflict("x".into()));
        assert!(matches!(other, StoreError::Corrupt(_)), "{other}");
    }

    #[test]
    fn a_storage_failure_is_reported_until_a_clean_group_commits_after_the_hold() {
        let t0 = Instant::now();
        assert!(!still_failing(true, None, t0), "never failed");
        assert!(still_failing(false, Some(t0), t0), "the failing group");
        // A small write that still fits commits cleanly right after: still failing.
        let soon = t0 + Duration::from_millis(100);
        assert!(still_failing(true, Some(t0), soon));
        assert!(still_failing(
            true,
            Some(t0),
            t0 + FAILING_HOLD - Duration::from_millis(1)
        ));
        // A clean group after the hold clears it.
        assert!(!still_failing(true, Some(t0), t0 + FAILING_HOLD));
    }
}
