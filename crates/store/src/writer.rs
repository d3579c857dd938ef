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

/// The writer thread's loop: until the queue is closed and drained, one group at a time.
pub(crate) fn writer_loop<B: GroupBackend>(
    mut backend: B,
    mut rx: mpsc::Receiver<Box<dyn WriteJob<B::Conn>>>,
    writes_failing: Arc<AtomicBool>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let healthy = run_group(&mut backend, group);
        writes_failing.store(!healthy, Ordering::Relaxed);
    }
    tracing::info!("store writer stopped: queue closed and drained");
}

/// A job of the group with its own outcome, before the group's commit.
type Ran<C> = (Box<dyn WriteJob<C>>, Result<()>);

/// Runs one group in one transaction; `false` when the storage failed (the group's jobs, or
/// some of them, were refused for it).
fn run_group<B: GroupBackend>(backend: &mut B, group: Vec<Box<dyn WriteJob<B::Conn>>>) -> bool {
    let began = backend
        .connection()
        .and_then(|conn| B::execute(conn, "BEGIN").map(|()| conn));
    let conn = match began {
        Ok(conn) => conn,
        Err(e) => {
            let msg = e.to_string();
            tracing::error!(error = %msg, jobs = group.len(), "group could not begin; nothing acknowledged");
            for job in group {
                job.finish(Err(StoreError::Unavailable(format!("begin failed: {msg}"))));
            }
            backend.connection_failed();
            return false;
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
            for (job, res) in done {
                job.finish(res);
            }
            !jobs_failed_for_storage
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = done.len(), "group commit failed; nothing acknowledged");
            // Leave no half-open transaction behind (SQLite keeps one open after a failed
            // COMMIT); on a lost connection this fails too, which changes nothing.
            let _ = B::execute(conn, "ROLLBACK");
            let msg = e.to_string();
            for (job, _) in done {
                job.finish(Err(StoreError::Corrupt(format!("commit failed: {msg}"))));
            }
            backend.connection_failed();
            false
        }
    }
}
