//! The SQLite backend: one writer thread with group commit, pooled readers.

use crate::migrations::{EVIDENCE_TABLE_MIGRATION, MIGRATIONS};
use crate::{Result, StoreError};
use domain::*;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::mpsc;

pub(crate) use crate::writer::AfterCommit;
use crate::writer::{GroupBackend, QUEUE, WriteJob, writer_loop};

pub(crate) mod accounts;
pub(crate) mod alerts;
pub(crate) mod fixes;
pub(crate) mod orders;
pub(crate) mod registry;
pub(crate) use accounts::IndexedColumns;
pub use accounts::{Account, AuditRowError, AuditSigner, NewAccount, write_head_file};
pub use alerts::{AlertChange, AlertChangeKind, AlertDetails, AlertRecord, Opened, SYSTEM_ACTOR};
pub(crate) use alerts::{apply_alert_change_notifying_tx, escalate_due_alerts_tx, load_alert};
pub use fixes::{Committed, FixOutcome, SAME_TIME_JUMP_M};
pub(crate) use fixes::{SameTime, same_time_verdict};
pub(crate) use orders::{shape_from_text, shape_to_text};
pub use registry::{DeviceRecord, UnknownDevice, token_hash};

/// A handle to the store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) backend: Backend,
    pub(crate) writer: Mutex<Option<Writer>>,
    pub(crate) writer_thread: Mutex<Option<JoinHandle<()>>>,
    pub(crate) committed: Mutex<Vec<mpsc::UnboundedSender<Committed>>>,
    /// Set by the writer when its last group failed for want of storage (disk full, I/O
    /// error, lost server), cleared by the next group that commits cleanly; `/healthz`
    /// reports it.
    pub(crate) writes_failing: Arc<crate::writer::StorageHealth>,
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

/// The writer's own settings, tuned for ingest at saturation (`docs/performance.md`).
///
/// **Durability moves out of `COMMIT`.** The writer commits with `synchronous = OFF` (SQLite
/// writes the group's WAL frames and returns without waiting for the disk) and a syncer thread
/// makes them durable with one `fdatasync` of the WAL file before any job of the group is
/// answered ([`WalSync`], `writer.rs`). While one group's frames reach the disk the writer
/// already runs the next group; a sync covers every group committed before it. What a
/// caller is told is unchanged: answered only after its write is on disk.
///
/// **Checkpoints keep their own syncs.** SQLite's automatic checkpoint would run on this
/// connection with `synchronous = OFF` (copying frames into the database without syncing it,
/// after which the WAL may be overwritten): it is turned off, and the writer checkpoints
/// between groups with `synchronous = FULL` for the checkpoint alone
/// ([`SqliteWriter::between_groups`]): the WAL is synced before its frames are copied and the
/// database after, before SQLite lets the WAL be reused.
///
/// - A 64 MiB page cache (SQLite's default is 2 MiB), so the index pages a burst of fixes
///   touches are not read back from the OS on every insert.
/// - A checkpoint every [`CHECKPOINT_FRAMES`] WAL frames instead of 1,000: a device's index
///   pages, rewritten by every commit that touches the device, are copied into the database
///   once per checkpoint, so a longer interval copies each hot page once for many commits.
///   `journal_size_limit` truncates the WAL back after it is reused.
fn tune_writer(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "cache_size", -65_536)?;
    // Each job's savepoint journal stays in memory: by default one that outgrows 64 KiB (a
    // packet of many records) spills into a temporary file created for it.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    // Replaces SQLite's automatic checkpoint (which `wal_autocheckpoint` installs as the WAL
    // hook) with a count of the WAL's frames for `between_groups`.
    conn.wal_hook(Some(count_wal_frames));
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    Ok(())
}

/// WAL frames after which the writer checkpoints (16 MiB of 4 KiB pages).
const CHECKPOINT_FRAMES: i32 = 4_096;
/// The WAL file is truncated back to this size once it is reused.
const JOURNAL_SIZE_LIMIT: i64 = 32 * 1024 * 1024;

thread_local! {
    /// Frames in the WAL after the last commit on this thread's connection (the writer's).
    static WAL_FRAMES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

fn count_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(frames));
    Ok(())
}

/// Makes the writer's commits durable: `fdatasync` of the WAL file. Linux syncs a file's
/// pages whichever descriptor wrote them, so the syncer opens the WAL itself; opened per
/// sync, so that a WAL SQLite removed and created again is never missed.
struct WalSync(PathBuf);

impl crate::writer::DurableSync for WalSync {
    fn sync(&mut self) -> Result<()> {
        std::fs::File::open(&self.0)?.sync_data()?;
        Ok(())
    }
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
    check_schema_version(version, MIGRATIONS.len())?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        if i + 1 == EVIDENCE_TABLE_MIGRATION {
            evidence_arrays_parse(conn)?;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = i + 1, "applied schema migration");
    }
    Ok(())
}

/// A database whose schema is newer than this build knows is refused at open: running on it
/// would write rows the newer version does not expect.
pub(crate) fn check_schema_version(found: i64, known: usize) -> Result<()> {
    if found > known as i64 {
        return Err(StoreError::SchemaTooNew {
            found,
            known: known as i64,
        });
    }
    Ok(())
}

/// Every `alerts.evidence` array must parse before migration 14 moves them into their own
/// table: a row that does not is reported, never reset to empty.
fn evidence_arrays_parse(conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare("SELECT id, evidence FROM alerts ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get("id")?;
        let evidence: String = r.get("evidence")?;
        serde_json::from_str::<Vec<i64>>(&evidence)
            .map_err(|e| StoreError::Corrupt(format!("alert {id} evidence {evidence:?}: {e}")))?;
    }
    Ok(())
}

/// The SQLite side of group commit: the writer thread's own connection and its WAL file.
struct SqliteWriter {
    conn: Connection,
    wal: PathBuf,
}

impl SqliteWriter {
    /// Checkpoints with `synchronous = FULL` for the checkpoint alone (see [`tune_writer`]).
    fn checkpoint(&mut self) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        // Back to OFF even when the checkpoint failed: the syncer still makes every commit
        // durable, and a checkpoint is tried again after the next group.
        self.conn.pragma_update(None, "synchronous", "OFF")?;
        done?;
        Ok(())
    }
}

impl Drop for SqliteWriter {
    fn drop(&mut self) {
        // The connection's last checkpoint on close must sync like any other.
        let _ = self.conn.pragma_update(None, "synchronous", "FULL");
    }
}

impl GroupBackend for SqliteWriter {
    type Conn = Connection;

    fn connection(&mut self) -> Result<&mut Connection> {
        Ok(&mut self.conn)
    }

    fn deferred_sync(&mut self) -> Option<Box<dyn crate::writer::DurableSync>> {
        Some(Box::new(WalSync(self.wal.clone())))
    }

    fn between_groups(&mut self) {
        if WAL_FRAMES.with(|f| f.get()) < CHECKPOINT_FRAMES {
            return;
        }
        match self.checkpoint() {
            Ok(()) => WAL_FRAMES.with(|f| f.set(0)),
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint failed; tried again after the next group")
            }
        }
    }

    fn execute(conn: &mut Connection, sql: &str) -> Result<()> {
        // Prepared once per connection, not parsed per job (parsing the savepoint statements
        // was a tenth of the writer's time at saturation, docs/performance.md).
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

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
}

/// The writer's queue, typed by the backend's connection.
pub(crate) enum Writer {
    Sqlite(mpsc::Sender<Box<dyn WriteJob<Connection>>>),
    Postgres(mpsc::Sender<Box<dyn WriteJob<postgres::Client>>>),
}

impl Writer {
    fn capacity(&self) -> usize {
        match self {
            Writer::Sqlite(s) => s.capacity(),
            Writer::Postgres(s) => s.capacity(),
        }
    }
}

/// Which backend a store runs on, with what its readers need.
pub(crate) enum Backend {
    Sqlite {
        path: PathBuf,
        readers: Mutex<Vec<Connection>>,
    },
    /// Boxed: it holds the parsed connection settings, much larger than SQLite's path.
    Postgres(Box<crate::postgres::Readers>),
}

/// What a PostgreSQL store answers for an operation that has only a SQLite body so far.
fn not_yet_on_postgres() -> StoreError {
    StoreError::Unsupported(
        "this operation is not implemented on the PostgreSQL backend yet (SQLite only)".into(),
    )
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
        tune_writer(&conn)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob<Connection>>>(QUEUE);
        let writes_failing = Arc::new(crate::writer::StorageHealth::default());
        let flag = writes_failing.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(SqliteWriter { conn, wal }, rx, flag))?;
        Ok(Store {
            inner: Arc::new(Inner {
                backend: Backend::Sqlite {
                    path,
                    readers: Mutex::new(Vec::new()),
                },
                writer: Mutex::new(Some(Writer::Sqlite(tx))),
                writer_thread: Mutex::new(Some(handle)),
                committed: Mutex::new(Vec::new()),
                writes_failing,
            }),
        })
    }

    /// Whether the writer's last group failed for want of storage (disk full, I/O error):
    /// nothing is being acknowledged until a group commits again.
    pub fn writes_failing(&self) -> bool {
        self.inner.writes_failing.failing()
    }

    /// The SQLite database file; empty for a PostgreSQL store (it has no file here).
    pub fn path(&self) -> &Path {
        match &self.inner.backend {
            Backend::Sqlite { path, .. } => path,
            Backend::Postgres(_) => Path::new(""),
        }
    }

    /// Whether this store runs on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres(_))
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

    /// Runs `f` as one job of the SQLite writer's next group (see `writer.rs`).
    pub(crate) async fn write<T, F>(&self, f: F, after_commit: Option<AfterCommit<T>>) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let sender = match self.inner.writer.lock().ok().as_deref() {
            Some(Some(Writer::Sqlite(s))) => Some(s.clone()),
            Some(Some(Writer::Postgres(_))) => return Err(not_yet_on_postgres()),
            _ => None,
        };
        crate::writer::submit(sender, move |c: &mut Connection| f(c), after_commit).await
    }

    /// A read of one device's rows: refused unless `auth` covers the device, then run on
    /// whichever backend is open (`pg` on PostgreSQL, `lite` on SQLite).
    pub(crate) async fn read_device<T, P, L>(
        &self,
        auth: &crate::Authorized,
        device: domain::DeviceId,
        pg: P,
        lite: L,
    ) -> Result<T>
    where
        T: Send + 'static,
        P: FnOnce(&mut postgres::Client) -> Result<T> + Send + 'static,
        L: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        auth.require_device(self, device).await?;
        if self.is_postgres() {
            self.pg_read(pg).await
        } else {
            self.read(lite).await
        }
    }

    /// Runs `f` on a SQLite reader connection on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if self.is_postgres() {
            return Err(not_yet_on_postgres());
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let Backend::Sqlite { path, readers } = &inner.backend else {
                return Err(not_yet_on_postgres());
            };
            let mark = |e: StoreError| {
                if SqliteWriter::storage_failure(&e) {
                    inner.writes_failing.failed_now();
                }
                e
            };
            let conn = match readers.lock().ok().and_then(|mut r| r.pop()) {
                Some(c) => c,
                None => open_connection(path).map_err(mark)?,
            };
            let out = f(&conn).map_err(mark);
            if let Ok(mut r) = readers.lock()
                // Kept up to 32: beyond the old 8, concurrent readers opened (and threw
                // away) a connection per read, re-parsing the schema each time.
                && r.len() < 32
            {
                r.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
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

#[cfg(test)]
mod tests;
