//! The SQLite backend: one writer thread with group commit, pooled readers.

use crate::migrations::MIGRATIONS;
use crate::{Result, StoreError};
use domain::*;
use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

mod accounts;
pub use accounts::{Account, AuditRowError, AuditSigner, NewAccount, write_head_file};

/// How many queued jobs one group transaction takes at most.
const MAX_GROUP: usize = 512;
/// Capacity of the writer's queue; callers wait (backpressure) beyond it.
const QUEUE: usize = 4096;

/// A job for the writer thread.
trait WriteJob: Send {
    /// Runs inside a savepoint of the group transaction.
    fn run(&mut self, conn: &Connection) -> Result<()>;
    /// Called once the group's fate is known: `Ok` only after a successful commit.
    fn finish(self: Box<Self>, outcome: Result<()>);
}

/// Runs after a successful commit, before the caller is answered.
pub(crate) type AfterCommit<T> = Box<dyn FnOnce(&T) + Send>;

struct TypedJob<T, F> {
    f: Option<F>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T>>,
    /// Runs after a successful commit, before the caller is answered.
    after_commit: Option<AfterCommit<T>>,
}

impl<T: Send, F: FnOnce(&Connection) -> Result<T> + Send> WriteJob for TypedJob<T, F> {
    fn run(&mut self, conn: &Connection) -> Result<()> {
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

/// What one commit made durable, as published to subscribers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Committed {
    pub fixes: Vec<Fix>,
    pub events: Vec<DeviceEvent>,
}

/// Outcome of storing one fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixOutcome {
    /// Newly stored with this id.
    Stored(FixId),
    /// Already stored earlier (same device and sequence number; without one, same device,
    /// device time and position): the resend is acknowledged but nothing is stored or
    /// evaluated twice.
    Duplicate(FixId),
}

impl FixOutcome {
    pub fn id(self) -> FixId {
        match self {
            FixOutcome::Stored(id) | FixOutcome::Duplicate(id) => id,
        }
    }
}

/// What the engine and the live stream need about a device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    pub device: Device,
    pub created_at: UnixMicros,
}

/// A device that tried to connect but is not registered.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownDevice {
    pub protocol: String,
    pub hardware_id: String,
    pub first_seen: UnixMicros,
    pub last_seen: UnixMicros,
    pub attempts: i64,
    pub last_remote: Option<String>,
}

/// The change an engine signal makes to the alerts table.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    pub order_id: Option<OrderId>,
    pub case_id: Option<CaseId>,
    pub rule: AlertRule,
    pub protected: Option<PersonId>,
    pub zone: Option<ZoneId>,
    pub kind: AlertChangeKind,
    pub severity: Severity,
    pub at: UnixMicros,
    pub distance_m: Option<f64>,
    pub evidence: Vec<FixId>,
    pub summary: String,
    /// For device alerts (SOS, tamper…): the device; part of the episode key.
    pub device: Option<DeviceId>,
    pub details: AlertDetails,
}

/// What the engine knew when it raised or updated an alert.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AlertDetails {
    /// Found from late (buffered) data: a late-detected violation, not a live one.
    pub late: bool,
    /// The positions were too uncertain to confirm the condition.
    pub possible: bool,
    pub closing_speed_mps: Option<f64>,
    pub time_to_contact_s: Option<f64>,
    pub heading_toward: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChangeKind {
    Raised,
    Updated,
    Cleared,
}

/// An alert with whether its condition still holds.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub alert: Alert,
    pub protected: Option<PersonId>,
    pub zone: Option<ZoneId>,
    pub device: Option<DeviceId>,
    pub condition_active: bool,
    pub cleared_at: Option<UnixMicros>,
    pub details: AlertDetails,
    /// 0, or 1 once escalated for lack of acknowledgement.
    pub escalation_level: i64,
    /// The summary and distance it was raised with (`None` for alerts stored before they
    /// were kept); `alert.summary` is the latest.
    pub raise_summary: Option<String>,
    pub raise_distance_m: Option<f64>,
}

/// A handle to the store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Box<dyn WriteJob>>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    committed: Mutex<Vec<mpsc::UnboundedSender<Committed>>>,
    /// Set by the writer when its last group failed for want of storage (disk full, I/O
    /// error), cleared by the next group that commits cleanly; `/healthz` reports it.
    writes_failing: Arc<AtomicBool>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk (not just in the OS cache) before the writer answers, so an
    // acknowledged fix survives power loss, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The writer uses more than rusqlite's default 16 cached statements per job mix.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Creates the data directory (0700) and the database file (0600) before SQLite opens it, and
/// narrows the modes of ones that exist. SQLite creates `-wal` and `-shm` with the database
/// file's mode, so they are 0600 too; existing ones are narrowed here as well.
#[cfg(unix)]
fn secure_files(dir: &Path, db: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // Create the file empty with 0600 if absent (SQLite treats an empty file as a new
    // database); never truncate an existing one.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn secure_files(dir: &Path, _db: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = i + 1, "applied schema migration");
    }
    Ok(())
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn WriteJob>>,
    writes_failing: Arc<AtomicBool>,
) {
    let mut conn = conn;
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let healthy = run_group(&mut conn, group);
        writes_failing.store(!healthy, Ordering::Relaxed);
    }
    tracing::info!("store writer stopped: queue closed and drained");
}

/// A failure of the storage itself (full disk, I/O error), not of one job's data.
fn storage_failure(e: &StoreError) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        StoreError::Io(_) => true,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            C::DiskFull | C::SystemIoFailure | C::CannotOpen | C::ReadOnly | C::DatabaseCorrupt
        ),
        _ => false,
    }
}

/// Runs one group in one transaction; `false` when the storage failed (the group's jobs, or
/// some of them, were refused for it).
fn run_group(conn: &mut Connection, group: Vec<Box<dyn WriteJob>>) -> bool {
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let msg = e.to_string();
            for job in group {
                job.finish(Err(StoreError::Corrupt(format!("begin failed: {msg}"))));
            }
            return false;
        }
    };
    let mut done: Vec<(Box<dyn WriteJob>, Result<()>)> = Vec::with_capacity(group.len());
    for mut job in group {
        let res = (|| -> Result<()> {
            // Prepared once per connection, not parsed per job (parsing these two statements
            // was a tenth of the writer's time at saturation).
            tx.prepare_cached("SAVEPOINT job")?.execute([])?;
            match job.run(&tx) {
                Ok(()) => {
                    tx.prepare_cached("RELEASE job")?.execute([])?;
                    Ok(())
                }
                Err(e) => {
                    tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                    Err(e)
                }
            }
        })();
        done.push((job, res));
    }
    let jobs_failed_for_storage = done
        .iter()
        .any(|(_, r)| r.as_ref().err().is_some_and(storage_failure));
    match tx.commit() {
        Ok(()) => {
            metrics_commit(done.len());
            for (job, res) in done {
                job.finish(res);
            }
            !jobs_failed_for_storage
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = done.len(), "group commit failed; nothing acknowledged");
            let msg = e.to_string();
            for (job, _) in done {
                job.finish(Err(StoreError::Corrupt(format!("commit failed: {msg}"))));
            }
            false
        }
    }
}

fn metrics_commit(_jobs: usize) {
    // Metrics are recorded by the server around store calls; the store stays free of a
    // metrics dependency.
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, applies migrations and starts the writer.
    ///
    /// The directory is made 0700 and the database with its `-wal` and `-shm` files 0600
    /// (also when they already exist with wider modes): they hold victims' positions.
    pub fn open(dir: &Path) -> Result<Store> {
        let path = dir.join("bulwark.db");
        secure_files(dir, &path)?;
        let mut conn = open_connection(&path)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>(QUEUE);
        let writes_failing = Arc::new(AtomicBool::new(false));
        let flag = writes_failing.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, flag))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(handle)),
                readers: Mutex::new(Vec::new()),
                committed: Mutex::new(Vec::new()),
                writes_failing,
            }),
        })
    }

    /// Whether the writer's last group failed for want of storage (disk full, I/O error):
    /// nothing is being acknowledged until a group commits again.
    pub fn writes_failing(&self) -> bool {
        self.inner.writes_failing.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Number of write jobs waiting for the writer (a backlog indicator).
    pub fn write_queue_len(&self) -> usize {
        self.inner
            .writer
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|s| QUEUE - s.capacity()))
            .unwrap_or(0)
    }

    /// Receives every batch of newly stored fixes and events, in commit order, after it is
    /// durable. Resends recognised as duplicates are not published again.
    pub fn subscribe_committed(&self) -> mpsc::UnboundedReceiver<Committed> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.inner.committed.lock() {
            subs.push(tx);
        }
        rx
    }

    /// Stops accepting writes, lets the writer drain its queue and commit, and waits for it.
    pub fn close(&self) {
        if let Ok(mut w) = self.inner.writer.lock() {
            w.take();
        }
        let handle = self
            .inner
            .writer_thread
            .lock()
            .ok()
            .and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        // Every commit has been published; closing the subscriptions tells consumers (the
        // engine pipeline) that no more fixes will come.
        if let Ok(mut subs) = self.inner.committed.lock() {
            subs.clear();
        }
    }

    pub(crate) async fn write<T, F>(&self, f: F, after_commit: Option<AfterCommit<T>>) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let sender = self
            .inner
            .writer
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(TypedJob {
            f: Some(f),
            out: None,
            reply,
            after_commit,
        });
        sender.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.lock().ok().and_then(|mut r| r.pop()) {
                Some(c) => c,
                None => open_connection(&inner.path)?,
            };
            let out = f(&conn);
            // Kept up to 32: beyond the old 8, concurrent readers opened (and threw away) a
            // connection per read, re-parsing the schema each time.
            if let Ok(mut r) = inner.readers.lock()
                && r.len() < 32
            {
                r.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
    }

    // ---- fixes -------------------------------------------------------------------------

    /// Stores fixes durably. Each result says whether the fix was new or a resend.
    /// All-or-nothing: either every fix of the call is committed or none is.
    pub async fn insert_fixes(&self, fixes: Vec<Fix>) -> Result<Vec<FixOutcome>> {
        Ok(self.insert_reports(fixes, Vec::new()).await?.0)
    }

    /// Stores fixes and device events durably in one transaction, all or nothing. For events,
    /// `true` means newly stored and `false` a resend already stored.
    pub async fn insert_reports(
        &self,
        fixes: Vec<Fix>,
        events: Vec<DeviceEvent>,
    ) -> Result<(Vec<FixOutcome>, Vec<bool>)> {
        self.insert_reports_with_scans(fixes, events, Vec::new())
            .await
    }

    /// [`Store::insert_reports`] with the network scans of the same frames, in the same
    /// transaction (a scan points at the fix of its frame).
    pub async fn insert_reports_with_scans(
        &self,
        fixes: Vec<Fix>,
        events: Vec<DeviceEvent>,
        scans: Vec<crate::NewScan>,
    ) -> Result<(Vec<FixOutcome>, Vec<bool>)> {
        let subscribers: Vec<_> = self
            .inner
            .committed
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let events_for_publish = events.clone();
        // The fixes as stored (ids, and the flags the store may add), then the events' ids.
        type Out = (Vec<FixOutcome>, Vec<Fix>, Vec<(bool, i64)>);
        let hook: Box<dyn FnOnce(&Out) + Send> = Box::new(move |(outcomes, stored, event_ids)| {
            let fixes: Vec<Fix> = stored
                .iter()
                .zip(outcomes.iter())
                .filter(|(_, o)| matches!(o, FixOutcome::Stored(_)))
                .map(|(f, _)| f.clone())
                .collect();
            let events: Vec<DeviceEvent> = events_for_publish
                .into_iter()
                .zip(event_ids.iter())
                .filter_map(|(mut e, (new, id))| {
                    e.id = Some(*id);
                    new.then_some(e)
                })
                .collect();
            if !fixes.is_empty() || !events.is_empty() {
                let c = Committed { fixes, events };
                for s in &subscribers {
                    let _ = s.send(c.clone());
                }
            }
        });
        let (fo, _, eo) = self
            .write(
                move |conn| {
                    let mut fixes = fixes;
                    let f = insert_fixes_tx(conn, &mut fixes)?;
                    let e = insert_events_tx(conn, &events)?;
                    if !scans.is_empty() {
                        let ids: Vec<FixId> = f.iter().map(|o| o.id()).collect();
                        crate::scans::insert_scans_tx(conn, &scans, &ids)?;
                    }
                    Ok((f, fixes, e))
                },
                Some(hook),
            )
            .await?;
        Ok((fo, eo.into_iter().map(|(new, _)| new).collect()))
    }

    /// Device events received at or after `since`, in store order.
    pub async fn events_received_since(&self, since: UnixMicros) -> Result<Vec<DeviceEvent>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, device_id, kind, device_time, received_time, lat, lon, code FROM device_events
                 WHERE received_time >= ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([since.0], event_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// The latest fix (by device time) of every device.
    pub async fn latest_fixes(&self) -> Result<Vec<Fix>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT f.* FROM fixes f JOIN (SELECT device_id, MAX(device_time) t FROM fixes GROUP BY device_id) m
                 ON f.device_id = m.device_id AND f.device_time = m.t ORDER BY f.device_id, f.id",
            )?;
            let rows = stmt.query_map([], fix_from_row)?;
            let mut out: Vec<Fix> = Vec::new();
            for r in rows {
                let f = r??;
                // Two fixes with the same device time (different seq): keep the later stored.
                if out.last().is_some_and(|l| l.device_id == f.device_id) {
                    out.pop();
                }
                out.push(f);
            }
            Ok(out)
        })
        .await
    }

    /// The latest fix (by device time, then store order) of any device `person` owns. One
    /// indexed lookup per device: the victim app asks for this every few seconds.
    pub async fn latest_fix_of_person(&self, person: PersonId) -> Result<Option<Fix>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT f.* FROM devices d
                 JOIN fixes f ON f.id = (SELECT x.id FROM fixes x WHERE x.device_id = d.id
                                         ORDER BY x.device_time DESC, x.id DESC LIMIT 1)
                 WHERE d.owner_id = ?1
                 ORDER BY f.device_time DESC, f.id DESC LIMIT 1",
            )?;
            let mut rows = stmt.query_map([person.0], fix_from_row)?;
            match rows.next() {
                Some(r) => Ok(Some(r??)),
                None => Ok(None),
            }
        })
        .await
    }

    /// The device's latest fix at or before `time` (by device time), only among those not
    /// flagged `integrity_suspect` when `sound_only`: the references an impossible-jump check
    /// compares a new fix with.
    pub async fn last_fix_before(
        &self,
        device: DeviceId,
        time: UnixMicros,
        sound_only: bool,
    ) -> Result<Option<Fix>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM fixes WHERE device_id = ?1 AND device_time <= ?2 AND (flags & ?3) = 0
                 ORDER BY device_time DESC, id DESC LIMIT 1",
            )?;
            let mut rows = stmt.query_map(
                params![
                    device.0,
                    time.0,
                    if sound_only {
                        i64::from(FixFlags::INTEGRITY_SUSPECT)
                    } else {
                        0
                    }
                ],
                fix_from_row,
            )?;
            match rows.next() {
                Some(r) => Ok(Some(r??)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Fixes received at or after `since`, in store order (for rebuilding engine state).
    pub async fn fixes_received_since(&self, since: UnixMicros) -> Result<Vec<Fix>> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare("SELECT * FROM fixes WHERE received_time >= ?1 ORDER BY id")?;
            let rows = stmt.query_map([since.0], fix_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// A device's fixes in `[from, to)` by device time, oldest first, at most `limit`.
    pub async fn track(
        &self,
        device: DeviceId,
        from: UnixMicros,
        to: UnixMicros,
        limit: usize,
    ) -> Result<Vec<Fix>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT * FROM fixes WHERE device_id = ?1 AND device_time >= ?2 AND device_time < ?3
                 ORDER BY device_time, id LIMIT ?4",
            )?;
            let rows =
                stmt.query_map(params![device.0, from.0, to.0, limit as i64], fix_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    pub async fn count_fixes(&self) -> Result<i64> {
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM fixes", [], |r| r.get(0))?))
            .await
    }

    // ---- people, devices, cases, orders -------------------------------------------------

    pub async fn create_person(
        &self,
        role: PersonRole,
        display_name: String,
        now: UnixMicros,
    ) -> Result<Person> {
        self.write(
            move |conn| {
                conn.execute(
                    "INSERT INTO people (role, display_name, created_at) VALUES (?1, ?2, ?3)",
                    params![role.as_str(), display_name, now.0],
                )?;
                Ok(Person {
                    id: PersonId(conn.last_insert_rowid()),
                    role,
                    display_name,
                })
            },
            None,
        )
        .await
    }

    pub async fn list_people(&self) -> Result<Vec<Person>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, role, display_name FROM people ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            rows.map(|r| {
                let (id, role, name) = r?;
                Ok(Person {
                    id: PersonId(id),
                    role: parse_col(&role)?,
                    display_name: name,
                })
            })
            .collect()
        })
        .await
    }

    /// Sets (or replaces) a device's token, stored only as its SHA-256: the migration path for
    /// phones registered before the phone doors required one. `false` when no such device.
    pub async fn set_device_token(&self, device: DeviceId, token: String) -> Result<bool> {
        self.write(
            move |conn| {
                let res = conn.execute(
                    "UPDATE devices SET token_sha256 = ?2 WHERE id = ?1",
                    params![device.0, token_hash(&token)],
                );
                match res {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        Err(StoreError::Conflict("that token is already in use".into()))
                    }
                    other => Ok(other? == 1),
                }
            },
            None,
        )
        .await
    }

    /// Registers a device. `token` (if any) is stored only as its SHA-256.
    pub async fn create_device(
        &self,
        kind: DeviceKind,
        protocol: Protocol,
        hardware_id: String,
        owner: Option<PersonId>,
        token: Option<String>,
        now: UnixMicros,
    ) -> Result<Device> {
        self.write(
            move |conn| {
                if let Some(o) = owner {
                    ensure_exists(conn, "people", o.0, "owner person")?;
                }
                let hash = token.map(|t| token_hash(&t));
                let res = conn.execute(
                    "INSERT INTO devices (kind, protocol, hardware_id, owner_id, token_sha256, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![kind.as_str(), protocol.as_str(), hardware_id, owner.map(|o| o.0), hash, now.0],
                );
                match res {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        return Err(StoreError::Conflict(format!(
                            "a {protocol} device with hardware id {hardware_id:?} (or that token) is already registered"
                        )));
                    }
                    other => {
                        other?;
                    }
                }
                // Registering clears the device from the unknown list.
                conn.execute(
                    "DELETE FROM unknown_devices WHERE protocol = ?1 AND hardware_id = ?2",
                    params![protocol.as_str(), hardware_id],
                )?;
                Ok(Device {
                    id: DeviceId(conn.last_insert_rowid()),
                    kind,
                    protocol,
                    hardware_id,
                    owner,
                })
            },
            None,
        )
        .await
    }

    pub async fn list_devices(&self) -> Result<Vec<Device>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, kind, protocol, hardware_id, owner_id FROM devices ORDER BY id",
            )?;
            let rows = stmt.query_map([], device_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Finds a device by the SHA-256 of its token.
    pub async fn device_by_token(&self, token: String) -> Result<Option<Device>> {
        self.read(move |conn| {
            let hash = token_hash(&token);
            conn.query_row(
                "SELECT id, kind, protocol, hardware_id, owner_id FROM devices WHERE token_sha256 = ?1",
                [hash],
                device_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    /// Finds a device by protocol and hardware identifier (IMEI, OsmAnd id).
    pub async fn device_by_hardware_id(
        &self,
        protocol: Protocol,
        hardware_id: String,
    ) -> Result<Option<(Device, bool)>> {
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT id, kind, protocol, hardware_id, owner_id, token_sha256 IS NOT NULL FROM devices
                     WHERE protocol = ?1 AND hardware_id = ?2",
                    params![protocol.as_str(), hardware_id],
                    |r| Ok((device_from_row(r)?, r.get::<_, bool>(5)?)),
                )
                .optional()?;
            match row {
                Some((d, has_token)) => Ok(Some((d?, has_token))),
                None => Ok(None),
            }
        })
        .await
    }

    /// Checks a device token against the stored hash.
    pub async fn device_token_matches(&self, device: DeviceId, token: String) -> Result<bool> {
        self.read(move |conn| {
            let stored: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT token_sha256 FROM devices WHERE id = ?1",
                    [device.0],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            Ok(stored.is_some_and(|s| s == token_hash(&token)))
        })
        .await
    }

    /// Records a connection attempt by an unregistered device, for an administrator to review.
    pub async fn record_unknown_device(
        &self,
        protocol: Protocol,
        hardware_id: String,
        remote: Option<String>,
        now: UnixMicros,
    ) -> Result<()> {
        let hardware_id: String = hardware_id.chars().take(64).collect();
        self.write(
            move |conn| {
                conn.execute(
                    "INSERT INTO unknown_devices (protocol, hardware_id, first_seen, last_seen, attempts, last_remote)
                     VALUES (?1, ?2, ?3, ?3, 1, ?4)
                     ON CONFLICT (protocol, hardware_id) DO UPDATE SET last_seen = ?3, attempts = attempts + 1, last_remote = ?4",
                    params![protocol.as_str(), hardware_id, now.0, remote],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    pub async fn list_unknown_devices(&self) -> Result<Vec<UnknownDevice>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT protocol, hardware_id, first_seen, last_seen, attempts, last_remote
                 FROM unknown_devices ORDER BY last_seen DESC LIMIT 1000",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(UnknownDevice {
                    protocol: r.get(0)?,
                    hardware_id: r.get(1)?,
                    first_seen: UnixMicros(r.get(2)?),
                    last_seen: UnixMicros(r.get(3)?),
                    attempts: r.get(4)?,
                    last_remote: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn create_case(
        &self,
        reference: String,
        offender: PersonId,
        protected: Vec<PersonId>,
        now: UnixMicros,
    ) -> Result<Case> {
        self.write(
            move |conn| {
                let role = person_role(conn, offender)?;
                if role != PersonRole::Offender {
                    return Err(StoreError::InvalidReference(format!(
                        "person {offender} is not an offender"
                    )));
                }
                if protected.is_empty() {
                    return Err(StoreError::InvalidReference(
                        "a case protects at least one person".into(),
                    ));
                }
                for p in &protected {
                    if person_role(conn, *p)? != PersonRole::Protected {
                        return Err(StoreError::InvalidReference(format!(
                            "person {p} is not a protected person"
                        )));
                    }
                }
                conn.execute(
                    "INSERT INTO cases (reference, offender_id, created_at) VALUES (?1, ?2, ?3)",
                    params![reference, offender.0, now.0],
                )?;
                let id = CaseId(conn.last_insert_rowid());
                for p in &protected {
                    conn.execute(
                        "INSERT OR IGNORE INTO case_protected (case_id, person_id) VALUES (?1, ?2)",
                        params![id.0, p.0],
                    )?;
                }
                let mut protected = protected;
                protected.sort();
                protected.dedup();
                Ok(Case {
                    id,
                    reference,
                    offender,
                    protected,
                })
            },
            None,
        )
        .await
    }

    pub async fn list_cases(&self) -> Result<Vec<Case>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT id, reference, offender_id FROM cases ORDER BY id")?;
            let cases: Vec<(i64, String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let mut pstmt = conn.prepare(
                "SELECT person_id FROM case_protected WHERE case_id = ?1 ORDER BY person_id",
            )?;
            cases
                .into_iter()
                .map(|(id, reference, offender)| {
                    let protected = pstmt
                        .query_map([id], |r| Ok(PersonId(r.get(0)?)))?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Case {
                        id: CaseId(id),
                        reference,
                        offender: PersonId(offender),
                        protected,
                    })
                })
                .collect()
        })
        .await
    }

    /// Stores an order with its zones (ids in `order` and its zones are ignored and assigned).
    pub async fn create_order(&self, order: Order, now: UnixMicros) -> Result<Order> {
        self.write(
            move |conn| {
                ensure_exists(conn, "cases", order.case_id.0, "case")?;
                conn.execute(
                    "INSERT INTO orders (case_id, kind, valid_from, valid_to, no_approach_m, warning_m, disclosure_radius_m, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        order.case_id.0,
                        order.kind.as_str(),
                        order.valid_from.0,
                        order.valid_to.map(|t| t.0),
                        order.no_approach_m,
                        order.warning_m,
                        order.disclosure_radius_m,
                        now.0
                    ],
                )?;
                let id = OrderId(conn.last_insert_rowid());
                let mut zones = Vec::with_capacity(order.zones.len());
                for z in order.zones {
                    conn.execute(
                        "INSERT INTO zones (order_id, kind, label, shape) VALUES (?1, ?2, ?3, ?4)",
                        params![id.0, z.kind.as_str(), z.label, shape_to_text(&z.shape)],
                    )?;
                    zones.push(Zone {
                        id: ZoneId(conn.last_insert_rowid()),
                        ..z
                    });
                }
                // Registered directly (setup, demo): its first version says so.
                crate::court::insert_version(
                    conn,
                    &crate::court::OrderVersionRecord {
                        order_id: id,
                        version: 1,
                        valid_from: order.valid_from,
                        valid_to: order.valid_to,
                        kind: order.kind,
                        no_approach_m: order.no_approach_m,
                        warning_m: order.warning_m,
                        disclosure_radius_m: order.disclosure_radius_m,
                        no_contact_by_phone: false,
                        electronic_monitoring: order.kind == OrderKind::ElectronicMonitoring,
                        zones: zones.clone(),
                        reasons: "registered directly".into(),
                        issued_at: now,
                        issued_by: None,
                    },
                )?;
                Ok(Order { id, zones, ..order })
            },
            None,
        )
        .await
    }

    /// Sets (or with `None` removes) a zone's schedule, stored as the server's JSON text.
    pub async fn set_zone_schedule(&self, zone: ZoneId, schedule: Option<String>) -> Result<()> {
        self.write(
            move |conn| {
                let n = conn.execute(
                    "UPDATE zones SET schedule = ?2 WHERE id = ?1",
                    params![zone.0, schedule],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("zone {zone}")));
                }
                Ok(())
            },
            None,
        )
        .await
    }

    /// Every zone that has a schedule, with its JSON text.
    pub async fn zone_schedules(&self) -> Result<Vec<(ZoneId, String)>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, schedule FROM zones WHERE schedule IS NOT NULL ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((ZoneId(r.get(0)?), r.get::<_, String>(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn list_orders(&self) -> Result<Vec<Order>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, case_id, kind, valid_from, valid_to, no_approach_m, warning_m, disclosure_radius_m
                 FROM orders ORDER BY id",
            )?;
            let mut orders: Vec<Order> = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, f64>(5)?,
                        r.get::<_, f64>(6)?,
                        r.get::<_, f64>(7)?,
                    ))
                })?
                .map(|r| {
                    let (id, case_id, kind, from, to, na, w, d) = r?;
                    Ok(Order {
                        id: OrderId(id),
                        case_id: CaseId(case_id),
                        kind: parse_col(&kind)?,
                        valid_from: UnixMicros(from),
                        valid_to: to.map(UnixMicros),
                        no_approach_m: na,
                        warning_m: w,
                        disclosure_radius_m: d,
                        zones: Vec::new(),
                    })
                })
                .collect::<Result<_>>()?;
            let mut zstmt =
                conn.prepare("SELECT id, order_id, kind, label, shape FROM zones ORDER BY id")?;
            let zones = zstmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            for z in zones {
                let (id, order_id, kind, label, shape) = z?;
                if let Some(o) = orders.iter_mut().find(|o| o.id.0 == order_id) {
                    o.zones.push(Zone {
                        id: ZoneId(id),
                        kind: parse_col(&kind)?,
                        label,
                        shape: shape_from_text(&shape)?,
                    });
                }
            }
            Ok(orders)
        })
        .await
    }

    // ---- alerts -------------------------------------------------------------------------

    /// Applies an engine signal. A `Raised` for a key whose alert is still active updates that
    /// alert instead of opening a second one, so a restart that replays recent fixes does not
    /// double-count an episode.
    pub async fn apply_alert_change(&self, change: AlertChange) -> Result<AlertRecord> {
        self.write(
            move |conn| apply_alert_change_tx(conn, &change, None).map(|(r, _)| r),
            None,
        )
        .await
    }

    /// Moves an alert along its lifecycle (acknowledge, dispatch, resolve) without an entry in
    /// the action log; the HTTP API uses [`Store::set_alert_state_logged`].
    pub async fn set_alert_state(
        &self,
        id: AlertId,
        state: AlertState,
        now: UnixMicros,
    ) -> Result<AlertRecord> {
        self.write(
            move |conn| {
                let n = conn.execute(
                    "UPDATE alerts SET state = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id.0, state.as_str(), now.0],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("alert {id}")));
                }
                load_alert(conn, id)
            },
            None,
        )
        .await
    }

    /// One alert, or `NotFound`.
    pub async fn alert(&self, id: AlertId) -> Result<AlertRecord> {
        self.read(move |conn| load_alert(conn, id)).await
    }

    /// Alerts, newest first; `active_only` keeps those not yet resolved.
    pub async fn list_alerts(&self, active_only: bool, limit: usize) -> Result<Vec<AlertRecord>> {
        self.read(move |conn| {
            let sql = if active_only {
                "SELECT * FROM alerts WHERE state != 'resolved' ORDER BY updated_at DESC, id DESC LIMIT ?1"
            } else {
                "SELECT * FROM alerts ORDER BY updated_at DESC, id DESC LIMIT ?1"
            };
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map([limit as i64], alert_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Some(h) = self.writer_thread.lock().ok().and_then(|mut h| h.take()) {
            let _ = h.join();
        }
    }
}

/// SHA-256 of a device token; tokens themselves are never stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn insert_events_tx(conn: &Connection, events: &[DeviceEvent]) -> Result<Vec<(bool, i64)>> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO device_events (device_id, kind, device_time, received_time, lat, lon, code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let n = match insert.execute(params![
            e.device_id.0,
            e.kind.as_str(),
            e.device_time.0,
            e.received_time.0,
            e.position.map(|p| p.lat()),
            e.position.map(|p| p.lon()),
            e.code.as_deref().unwrap_or(""),
        ]) {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
            {
                return Err(StoreError::InvalidReference(format!(
                    "device {} is not registered",
                    e.device_id
                )));
            }
            other => other?,
        };
        if n == 1 {
            out.push((true, conn.last_insert_rowid()));
        } else {
            let id: i64 = conn.query_row(
                "SELECT id FROM device_events WHERE device_id = ?1 AND kind = ?2 AND device_time = ?3 AND code = ?4",
                params![e.device_id.0, e.kind.as_str(), e.device_time.0, e.code.as_deref().unwrap_or("")],
                |r| r.get(0),
            )?;
            out.push((false, id));
        }
    }
    Ok(out)
}

fn event_from_row(r: &Row) -> rusqlite::Result<Result<DeviceEvent>> {
    let id: i64 = r.get(0)?;
    let device_id: i64 = r.get(1)?;
    let kind: String = r.get(2)?;
    let device_time: i64 = r.get(3)?;
    let received_time: i64 = r.get(4)?;
    let lat: Option<f64> = r.get(5)?;
    let lon: Option<f64> = r.get(6)?;
    let code: Option<String> = r
        .get::<_, String>(7)
        .map(|c| Some(c).filter(|c| !c.is_empty()))?;
    Ok((|| {
        let position = match (lat, lon) {
            (Some(a), Some(b)) => Some(
                LatLon::new(a, b).map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?,
            ),
            _ => None,
        };
        Ok(DeviceEvent {
            id: Some(id),
            device_id: DeviceId(device_id),
            kind: parse_col(&kind)?,
            device_time: UnixMicros(device_time),
            received_time: UnixMicros(received_time),
            position,
            code,
        })
    })())
}

/// Two fixes of one device with the same device time and no sequence number that lie farther
/// apart than this (plus both reported accuracies) cannot both be true: nobody moves that far
/// within the one second a whole-second device time spans (200 km/h is 56 m/s). The later one
/// is stored flagged `integrity_suspect` (a cloned identity or a forged frame).
pub const SAME_TIME_JUMP_M: f64 = 100.0;

/// Stores each fix, or recognises it as a resend (see `ARCHITECTURE.md`, "Nothing is stored
/// twice"): same device and `seq`; or, without `seq`, same device, device time and position.
/// A fix at the device time of a stored one but elsewhere is a new fix: kept, in receipt
/// order (its id), and flagged `integrity_suspect` if it lies implausibly far from it
/// ([`SAME_TIME_JUMP_M`]). Sets `id`, and that flag where it applies, on the fixes stored.
fn insert_fixes_tx(conn: &Connection, fixes: &mut [Fix]) -> Result<Vec<FixOutcome>> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO fixes (device_id, device_time, received_time, lat, lon, accuracy_m, speed_mps,
         course_deg, altitude_m, source, flags, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut same_time = conn.prepare_cached(
        "SELECT id, lat, lon, accuracy_m FROM fixes
         WHERE device_id = ?1 AND device_time = ?2 AND seq IS NULL",
    )?;
    let mut out = Vec::with_capacity(fixes.len());
    for f in fixes.iter_mut() {
        if f.seq.is_none() {
            let stored: Vec<(i64, f64, f64, Option<f64>)> = same_time
                .query_map(params![f.device_id.0, f.device_time.0], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let (lat, lon) = (f.position.lat(), f.position.lon());
            if let Some((id, ..)) = stored.iter().find(|s| s.1 == lat && s.2 == lon) {
                out.push(FixOutcome::Duplicate(FixId(*id)));
                continue;
            }
            let own_acc = f.accuracy_m.unwrap_or(0.0).max(0.0);
            let implausible = stored.iter().any(|&(_, a, b, acc)| {
                LatLon::new(a, b).is_ok_and(|p| {
                    p.distance_m(&f.position)
                        > SAME_TIME_JUMP_M + own_acc + acc.unwrap_or(0.0).max(0.0)
                })
            });
            if implausible {
                f.flags = f.flags.with(FixFlags::INTEGRITY_SUSPECT);
            }
        }
        let n = insert.execute(params![
            f.device_id.0,
            f.device_time.0,
            f.received_time.0,
            f.position.lat(),
            f.position.lon(),
            f.accuracy_m,
            f.speed_mps,
            f.course_deg,
            f.altitude_m,
            f.source.as_str(),
            f.flags.0,
            f.seq
        ]);
        let n = match n {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
            {
                return Err(StoreError::InvalidReference(format!(
                    "device {} is not registered",
                    f.device_id
                )));
            }
            other => other?,
        };
        if n == 1 {
            let id = FixId(conn.last_insert_rowid());
            f.id = Some(id);
            out.push(FixOutcome::Stored(id));
        } else {
            // Refused by a unique index: the sequence number's (a seq-less resend was found
            // above, so the position index cannot refuse it within this one writer).
            let existing: i64 = match f.seq {
                Some(seq) => conn.query_row(
                    "SELECT id FROM fixes WHERE device_id = ?1 AND seq = ?2",
                    params![f.device_id.0, seq],
                    |r| r.get(0),
                )?,
                None => conn.query_row(
                    "SELECT id FROM fixes WHERE device_id = ?1 AND device_time = ?2 AND seq IS NULL
                     AND lat = ?3 AND lon = ?4",
                    params![
                        f.device_id.0,
                        f.device_time.0,
                        f.position.lat(),
                        f.position.lon()
                    ],
                    |r| r.get(0),
                )?,
            };
            out.push(FixOutcome::Duplicate(FixId(existing)));
        }
    }
    Ok(out)
}

/// What an alert change did to the alert's episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new alert row.
    New,
    /// A closed alert (resolved, or its condition cleared) whose condition returned within
    /// the reopen window: back to `raised`, with a `reopened` row in its action log.
    Reopened,
    /// An update of an open alert, or a clear.
    No,
}

/// The account id and role of steps the server takes by itself (a reopen).
pub const SYSTEM_ACTOR: (i64, &str) = (0, "system");

pub(crate) fn apply_alert_change_tx(
    conn: &Connection,
    c: &AlertChange,
    reopen_within_s: Option<i64>,
) -> Result<(AlertRecord, Opened)> {
    let mut opened = Opened::No;
    let mut active: Option<i64> = conn
        .query_row(
            "SELECT id FROM alerts WHERE condition_active = 1 AND order_id IS ?1 AND rule = ?2
             AND protected_id IS ?3 AND zone_id IS ?4 AND device_id IS ?5 ORDER BY id DESC LIMIT 1",
            params![
                c.order_id.map(|o| o.0),
                c.rule.as_str(),
                c.protected.map(|p| p.0),
                c.zone.map(|z| z.0),
                c.device.map(|d| d.0)
            ],
            |r| r.get(0),
        )
        .optional()?;
    // Reopen: the condition of the latest closed alert of this episode key came back within
    // the window (time is the signal's, not the clock's). The same alert goes back to
    // `raised`, its escalation deadline restarts, and the step is logged.
    if active.is_none()
        && c.kind != AlertChangeKind::Cleared
        && let Some(within) = reopen_within_s
    {
        let previous: Option<(i64, Option<i64>)> = conn
            .query_row(
                "SELECT id, cleared_at FROM alerts WHERE condition_active = 0 AND order_id IS ?1 AND rule = ?2
                 AND protected_id IS ?3 AND zone_id IS ?4 AND device_id IS ?5 ORDER BY id DESC LIMIT 1",
                params![
                    c.order_id.map(|o| o.0),
                    c.rule.as_str(),
                    c.protected.map(|p| p.0),
                    c.zone.map(|z| z.0),
                    c.device.map(|d| d.0)
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((id, Some(cleared))) = previous
            && c.at.0 >= cleared
            && c.at.0 - cleared <= within.saturating_mul(UnixMicros::SECOND)
        {
            conn.execute(
                "UPDATE alerts SET condition_active = 1, cleared_at = NULL, state = 'raised',
                 reopened_at = ?2, escalation_level = 0, escalated_at = NULL WHERE id = ?1",
                params![id, c.at.0],
            )?;
            crate::lifecycle::insert_action(
                conn,
                AlertId(id),
                &crate::NewAlertAction {
                    at: c.at,
                    actor_account_id: SYSTEM_ACTOR.0,
                    actor_role: SYSTEM_ACTOR.1.into(),
                    action: "reopened".into(),
                    cause: None,
                    note: Some(format!(
                        "condition returned {} s after it cleared",
                        (c.at.0 - cleared) / UnixMicros::SECOND
                    )),
                },
            )?;
            active = Some(id);
            opened = Opened::Reopened;
        }
    }
    let evidence = serde_json::to_string(&c.evidence.iter().map(|f| f.0).collect::<Vec<_>>())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let id = match (active, c.kind) {
        (None, AlertChangeKind::Raised | AlertChangeKind::Updated) => {
            conn.execute(
                "INSERT INTO alerts (order_id, case_id, rule, protected_id, zone_id, severity, state, condition_active,
                 raised_at, updated_at, summary, min_distance_m, evidence, device_id, late, possible,
                 closing_speed_mps, time_to_contact_s, heading_toward, raise_summary, raise_distance_m)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'raised', 1, ?7, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?8, ?9)",
                params![
                    c.order_id.map(|o| o.0),
                    c.case_id.map(|o| o.0),
                    c.rule.as_str(),
                    c.protected.map(|p| p.0),
                    c.zone.map(|z| z.0),
                    c.severity.as_str(),
                    c.at.0,
                    c.summary,
                    c.distance_m,
                    evidence,
                    c.device.map(|d| d.0),
                    c.details.late,
                    c.details.possible,
                    c.details.closing_speed_mps,
                    c.details.time_to_contact_s,
                    c.details.heading_toward
                ],
            )?;
            opened = Opened::New;
            conn.last_insert_rowid()
        }
        (Some(id), AlertChangeKind::Raised | AlertChangeKind::Updated) => {
            // Merge evidence, keep the closest distance; a resolved alert whose condition is
            // still active is reopened (its condition returned).
            let (old_evidence, old_min, state): (String, Option<f64>, String) = conn.query_row(
                "SELECT evidence, min_distance_m, state FROM alerts WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            if state == AlertState::Resolved.as_str() && opened == Opened::No {
                // Resolved by a person while the condition still held: it is back.
                crate::lifecycle::insert_action(
                    conn,
                    AlertId(id),
                    &crate::NewAlertAction {
                        at: c.at,
                        actor_account_id: SYSTEM_ACTOR.0,
                        actor_role: SYSTEM_ACTOR.1.into(),
                        action: "reopened".into(),
                        cause: None,
                        note: Some("condition still holds after it was resolved".into()),
                    },
                )?;
                conn.execute(
                    "UPDATE alerts SET reopened_at = ?2, escalation_level = 0, escalated_at = NULL WHERE id = ?1",
                    params![id, c.at.0],
                )?;
                opened = Opened::Reopened;
            }
            let mut ev: Vec<i64> = serde_json::from_str(&old_evidence).unwrap_or_default();
            for f in &c.evidence {
                if !ev.contains(&f.0) {
                    ev.push(f.0);
                }
            }
            let ev = serde_json::to_string(&ev).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let min = match (old_min, c.distance_m) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            conn.execute(
                "UPDATE alerts SET updated_at = ?2, summary = ?3, min_distance_m = ?4, evidence = ?5,
                 possible = ?6, closing_speed_mps = ?7, time_to_contact_s = ?8, heading_toward = ?9,
                 severity = ?10, state = CASE WHEN state = 'resolved' THEN 'raised' ELSE state END WHERE id = ?1",
                params![
                    id,
                    c.at.0,
                    c.summary,
                    min,
                    ev,
                    c.details.possible,
                    c.details.closing_speed_mps,
                    c.details.time_to_contact_s,
                    c.details.heading_toward,
                    c.severity.as_str()
                ],
            )?;
            id
        }
        (Some(id), AlertChangeKind::Cleared) => {
            conn.execute(
                "UPDATE alerts SET condition_active = 0, cleared_at = ?2, updated_at = ?2 WHERE id = ?1",
                params![id, c.at.0],
            )?;
            id
        }
        (None, AlertChangeKind::Cleared) => {
            return Err(StoreError::NotFound(format!(
                "no active {} alert to clear",
                c.rule
            )));
        }
    };
    Ok((load_alert(conn, AlertId(id))?, opened))
}

pub(crate) fn load_alert(conn: &Connection, id: AlertId) -> Result<AlertRecord> {
    conn.query_row("SELECT * FROM alerts WHERE id = ?1", [id.0], alert_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?
}

fn alert_from_row(r: &Row) -> rusqlite::Result<Result<AlertRecord>> {
    let rule: String = r.get("rule")?;
    let severity: String = r.get("severity")?;
    let state: String = r.get("state")?;
    let evidence: String = r.get("evidence")?;
    let order_id: Option<i64> = r.get("order_id")?;
    let case_id: Option<i64> = r.get("case_id")?;
    let protected: Option<i64> = r.get("protected_id")?;
    let zone: Option<i64> = r.get("zone_id")?;
    let id: i64 = r.get("id")?;
    let raised_at: i64 = r.get("raised_at")?;
    let updated_at: i64 = r.get("updated_at")?;
    let cleared_at: Option<i64> = r.get("cleared_at")?;
    let summary: String = r.get("summary")?;
    let min_distance_m: Option<f64> = r.get("min_distance_m")?;
    let active: bool = r.get("condition_active")?;
    let device: Option<i64> = r.get("device_id")?;
    let escalation_level: i64 = r.get("escalation_level")?;
    let raise_summary: Option<String> = r.get("raise_summary")?;
    let raise_distance_m: Option<f64> = r.get("raise_distance_m")?;
    let details = AlertDetails {
        late: r.get("late")?,
        possible: r.get("possible")?,
        closing_speed_mps: r.get("closing_speed_mps")?,
        time_to_contact_s: r.get("time_to_contact_s")?,
        heading_toward: r.get("heading_toward")?,
    };
    Ok((|| {
        let ev: Vec<i64> = serde_json::from_str(&evidence)
            .map_err(|e| StoreError::Corrupt(format!("alert {id} evidence: {e}")))?;
        Ok(AlertRecord {
            alert: Alert {
                id: AlertId(id),
                order_id: order_id.map(OrderId),
                case_id: case_id.map(CaseId),
                rule: parse_col(&rule)?,
                severity: parse_col(&severity)?,
                state: parse_col(&state)?,
                raised_at: UnixMicros(raised_at),
                updated_at: UnixMicros(updated_at),
                summary,
                min_distance_m,
                evidence: ev.into_iter().map(FixId).collect(),
            },
            protected: protected.map(PersonId),
            zone: zone.map(ZoneId),
            device: device.map(DeviceId),
            condition_active: active,
            details,
            escalation_level,
            cleared_at: cleared_at.map(UnixMicros),
            raise_summary,
            raise_distance_m,
        })
    })())
}

pub(crate) fn parse_col<T: std::str::FromStr<Err = UnknownValue>>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|e: UnknownValue| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn ensure_exists(conn: &Connection, table: &str, id: i64, what: &str) -> Result<()> {
    let found: Option<i64> = conn
        .query_row(
            &format!("SELECT id FROM {table} WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )
        .optional()?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::InvalidReference(format!("{what} {id} does not exist")))
}

fn person_role(conn: &Connection, p: PersonId) -> Result<PersonRole> {
    let role: Option<String> = conn
        .query_row("SELECT role FROM people WHERE id = ?1", [p.0], |r| r.get(0))
        .optional()?;
    match role {
        Some(r) => parse_col(&r),
        None => Err(StoreError::InvalidReference(format!(
            "person {p} does not exist"
        ))),
    }
}

fn device_from_row(r: &Row) -> rusqlite::Result<Result<Device>> {
    let id: i64 = r.get(0)?;
    let kind: String = r.get(1)?;
    let protocol: String = r.get(2)?;
    let hardware_id: String = r.get(3)?;
    let owner: Option<i64> = r.get(4)?;
    Ok((|| {
        Ok(Device {
            id: DeviceId(id),
            kind: parse_col(&kind)?,
            protocol: parse_col(&protocol)?,
            hardware_id,
            owner: owner.map(PersonId),
        })
    })())
}

fn fix_from_row(r: &Row) -> rusqlite::Result<Result<Fix>> {
    let lat: f64 = r.get("lat")?;
    let lon: f64 = r.get("lon")?;
    let source: String = r.get("source")?;
    let id: i64 = r.get("id")?;
    let device_id: i64 = r.get("device_id")?;
    let device_time: i64 = r.get("device_time")?;
    let received_time: i64 = r.get("received_time")?;
    let accuracy_m: Option<f64> = r.get("accuracy_m")?;
    let speed_mps: Option<f64> = r.get("speed_mps")?;
    let course_deg: Option<f64> = r.get("course_deg")?;
    let altitude_m: Option<f64> = r.get("altitude_m")?;
    let flags: u32 = r.get("flags")?;
    let seq: Option<i64> = r.get("seq")?;
    Ok((|| {
        Ok(Fix {
            id: Some(FixId(id)),
            device_id: DeviceId(device_id),
            device_time: UnixMicros(device_time),
            received_time: UnixMicros(received_time),
            position: LatLon::new(lat, lon)
                .map_err(|e| StoreError::Corrupt(format!("fix {id}: {e}")))?,
            accuracy_m,
            speed_mps,
            course_deg,
            altitude_m,
            source: parse_col(&source)?,
            flags: FixFlags(flags),
            seq,
        })
    })())
}

/// Zone geometry as a small JSON document: `{"circle":[lat,lon,radius_m]}` or
/// `{"polygon":[[lat,lon],...]}`.
pub(crate) fn shape_to_text(s: &ZoneShape) -> String {
    match s {
        ZoneShape::Circle { center, radius_m } => {
            serde_json::json!({"circle": [center.lat(), center.lon(), radius_m]}).to_string()
        }
        ZoneShape::Polygon { ring } => serde_json::json!({
            "polygon": ring.iter().map(|p| [p.lat(), p.lon()]).collect::<Vec<_>>()
        })
        .to_string(),
    }
}

pub(crate) fn shape_from_text(s: &str) -> Result<ZoneShape> {
    let bad = |m: &str| StoreError::Corrupt(format!("zone shape {s:?}: {m}"));
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| bad(&e.to_string()))?;
    let num = |v: &serde_json::Value| v.as_f64().ok_or_else(|| bad("not a number"));
    if let Some(c) = v.get("circle").and_then(|c| c.as_array()) {
        let (lat, lon, r) = match c.as_slice() {
            [a, b, c] => (num(a)?, num(b)?, num(c)?),
            _ => return Err(bad("circle needs 3 numbers")),
        };
        return Ok(ZoneShape::Circle {
            center: LatLon::new(lat, lon).map_err(|e| bad(&e.to_string()))?,
            radius_m: r,
        });
    }
    if let Some(p) = v.get("polygon").and_then(|c| c.as_array()) {
        let ring = p
            .iter()
            .map(|pt| match pt.as_array().map(|a| a.as_slice()) {
                Some([a, b]) => LatLon::new(num(a)?, num(b)?).map_err(|e| bad(&e.to_string())),
                _ => Err(bad("vertex needs 2 numbers")),
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(ZoneShape::Polygon { ring });
    }
    Err(bad("unknown shape"))
}

#[cfg(test)]
mod tests;
