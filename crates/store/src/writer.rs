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
    /// What makes a committed group durable when `COMMIT` itself does not. `None` (the
    /// default): `COMMIT` returns only once the group is durable (PostgreSQL). SQLite's writer
    /// commits without waiting for the disk and hands each group to a syncer thread, which
    /// makes the WAL durable before any of the group's callers is answered, while the writer
    /// already runs the next group (see [`DurableSync`]).
    fn deferred_sync(&mut self) -> Option<Box<dyn DurableSync>> {
        None
    }
    /// Called between groups (SQLite: a checkpoint when one is due).
    fn between_groups(&mut self) {}
}

/// Makes everything committed so far durable (SQLite: `fdatasync` of the WAL file).
pub(crate) trait DurableSync: Send + 'static {
    fn sync(&mut self) -> Result<()>;
}

/// Committed groups waiting for the syncer, at most: beyond it the writer waits, so the jobs
/// held between commit and answer stay bounded (`MAX_GROUP` each).
const SYNC_QUEUE: usize = 2;

/// A job for the writer.
pub(crate) trait WriteJob<C>: Send {
    /// Runs inside a savepoint of the group transaction.
    fn run(&mut self, conn: &mut C) -> Result<()>;
    /// Called once the group's fate is known: `Ok` only after a successful commit.
    fn finish(self: Box<Self>, outcome: Result<()>);
    /// The group committed (its rows are visible) but could not be made durable: the caller
    /// gets `error` and must not count on the write, yet the after-commit hook runs, because
    /// what is visible is what a resend will be answered from (a resent fix is recognised as
    /// stored and not published again, so it is published now).
    fn finish_visible(self: Box<Self>, error: StoreError);
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

    fn finish_visible(self: Box<Self>, error: StoreError) {
        let this = *self;
        if let (Some(hook), Some(out)) = (this.after_commit, this.out.as_ref()) {
            hook(out);
        }
        let _ = this.reply.send(Err(error));
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

/// A committed group waiting to be durable (on its way to the syncer): each job with its own outcome, and whether
/// any job failed for want of storage.
struct Pending<C> {
    jobs: Vec<Ran<C>>,
    storage_failed: bool,
}

/// The writer thread's loop: until the queue is closed and drained, one group at a time. With
/// a deferred sync, a syncer thread answers each committed group once it is durable; it
/// finishes every group handed to it before the writer returns.
pub(crate) fn writer_loop<B: GroupBackend>(
    mut backend: B,
    mut rx: mpsc::Receiver<Box<dyn WriteJob<B::Conn>>>,
    health: Arc<StorageHealth>,
) {
    let syncer = match backend.deferred_sync() {
        Some(sync) => {
            let (tx, srx) = std::sync::mpsc::sync_channel::<Pending<B::Conn>>(SYNC_QUEUE);
            let health = health.clone();
            match std::thread::Builder::new()
                .name("store-syncer".into())
                .spawn(move || syncer_loop(sync, srx, &health))
            {
                Ok(handle) => Some((tx, handle)),
                Err(e) => {
                    // Without a syncer nothing could be answered: refuse every job rather
                    // than acknowledge one that is not durable.
                    tracing::error!(error = %e, "store syncer thread could not start; refusing writes");
                    while let Some(job) = rx.blocking_recv() {
                        job.finish(Err(StoreError::Unavailable(format!(
                            "store syncer could not start: {e}"
                        ))));
                    }
                    return;
                }
            }
        }
        None => None,
    };
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Some(committed) = run_group(&mut backend, group, &health) {
            match &syncer {
                Some((tx, _)) => {
                    if let Err(std::sync::mpsc::SendError(c)) = tx.send(committed) {
                        for (job, _) in c.jobs {
                            job.finish_visible(StoreError::Unavailable(
                                "store syncer stopped".into(),
                            ));
                        }
                    }
                }
                None => answer(committed, &health),
            }
        }
        backend.between_groups();
    }
    if let Some((tx, handle)) = syncer {
        drop(tx);
        let _ = handle.join();
    }
    tracing::info!("store writer stopped: queue closed and drained");
}

/// Answers a durable group's jobs, each with its own outcome.
fn answer<C>(committed: Pending<C>, health: &StorageHealth) {
    health.group_done(!committed.storage_failed);
    for (job, res) in committed.jobs {
        job.finish(res);
    }
}

/// The syncer thread: takes every committed group waiting, makes them durable with one sync,
/// then answers them in commit order. A failed sync answers every job of those groups with
/// the error (the device keeps its fix and resends it; the resend is recognised as stored).
fn syncer_loop<C>(
    mut sync: Box<dyn DurableSync>,
    rx: std::sync::mpsc::Receiver<Pending<C>>,
    health: &StorageHealth,
) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        while let Ok(more) = rx.try_recv() {
            groups.push(more);
        }
        match sync.sync() {
            Ok(()) => {
                for g in groups {
                    answer(g, health);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let jobs: usize = groups.iter().map(|g| g.jobs.len()).sum();
                tracing::error!(error = %msg, jobs, "committed groups could not be made durable; nothing of them acknowledged");
                health.group_done(false);
                for g in groups {
                    for (job, _) in g.jobs {
                        job.finish_visible(StoreError::Io(std::io::Error::other(format!(
                            "sync failed: {msg}"
                        ))));
                    }
                }
            }
        }
    }
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

/// Runs one group in one transaction. A group that committed is returned, to be answered
/// once durable; a group that could not begin or commit is answered here with the error.
/// Whether the storage failed (the group's jobs, or some of them, were refused for it) is
/// recorded in `health` *before* any caller is answered, so that a device refused for a full
/// disk never finds `/healthz` still saying `ok`.
fn run_group<B: GroupBackend>(
    backend: &mut B,
    group: Vec<Box<dyn WriteJob<B::Conn>>>,
    health: &StorageHealth,
) -> Option<Pending<B::Conn>> {
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
            return None;
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
    let storage_failed = done
        .iter()
        .any(|(_, r)| r.as_ref().err().is_some_and(B::storage_failure));
    match B::execute(conn, "COMMIT") {
        Ok(()) => Some(Pending {
            jobs: done,
            storage_failed,
        }),
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
            None
        }
    }
}

#[cfg(test)]
mod failing_tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A backend whose statements do nothing and whose commits are made durable by `sync`.
    struct Deferred {
        conn: (),
        sync: Option<Box<dyn DurableSync>>,
    }

    impl GroupBackend for Deferred {
        type Conn = ();
        fn connection(&mut self) -> Result<&mut ()> {
            Ok(&mut self.conn)
        }
        fn execute(_: &mut (), _: &str) -> Result<()> {
            Ok(())
        }
        fn storage_failure(e: &StoreError) -> bool {
            matches!(e, StoreError::Io(_))
        }
        fn deferred_sync(&mut self) -> Option<Box<dyn DurableSync>> {
            self.sync.take()
        }
    }

    /// Counts its syncs; fails them when `fail`.
    struct Counting {
        syncs: Arc<AtomicUsize>,
        fail: bool,
    }

    impl DurableSync for Counting {
        fn sync(&mut self) -> Result<()> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(StoreError::Io(std::io::Error::other("EIO")));
            }
            Ok(())
        }
    }

    /// A running writer: its queue, its thread, the sync count and the storage health.
    type Started = (
        mpsc::Sender<Box<dyn WriteJob<()>>>,
        std::thread::JoinHandle<()>,
        Arc<AtomicUsize>,
        Arc<StorageHealth>,
    );

    /// Starts a writer with a deferred sync.
    fn start(fail: bool) -> Started {
        let syncs = Arc::new(AtomicUsize::new(0));
        let backend = Deferred {
            conn: (),
            sync: Some(Box::new(Counting {
                syncs: syncs.clone(),
                fail,
            })),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let health = Arc::new(StorageHealth::default());
        let h = health.clone();
        let thread = std::thread::spawn(move || writer_loop(backend, rx, h));
        (tx, thread, syncs, health)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_group_is_answered_and_published_only_after_its_sync() {
        let (tx, thread, syncs, health) = start(false);
        let mut calls = Vec::new();
        for i in 0..20u32 {
            let syncs = syncs.clone();
            // The hook runs before the caller is answered: it sees the sync already done.
            let hook: AfterCommit<u32> = Box::new(move |_| {
                assert!(
                    syncs.load(Ordering::SeqCst) > 0,
                    "published before any sync"
                );
            });
            calls.push(tokio::spawn(submit(
                Some(tx.clone()),
                move |_: &mut ()| Ok(i),
                Some(hook),
            )));
        }
        for (i, c) in calls.into_iter().enumerate() {
            assert_eq!(c.await.unwrap().unwrap(), i as u32);
        }
        assert!(syncs.load(Ordering::SeqCst) >= 1);
        assert!(!health.failing());
        drop(tx);
        thread.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_answers_the_error_yet_publishes_what_is_visible() {
        let (tx, thread, syncs, health) = start(true);
        let published = Arc::new(AtomicBool::new(false));
        let p = published.clone();
        let hook: AfterCommit<()> = Box::new(move |_| p.store(true, Ordering::SeqCst));
        let out = submit(Some(tx.clone()), |_: &mut ()| Ok(()), Some(hook)).await;
        assert!(
            matches!(out, Err(StoreError::Io(ref e)) if e.to_string().contains("sync failed")),
            "{out:?}"
        );
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        // A resend will be answered from the visible row as a duplicate and not published
        // again, so the committed write is published now.
        assert!(published.load(Ordering::SeqCst));
        assert!(health.failing(), "/healthz must say the storage is failing");
        drop(tx);
        thread.join().unwrap();
    }

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
