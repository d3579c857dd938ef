//! The PostgreSQL backend: the same [`Store`] API, the same group commit (`writer.rs`), the
//! same rules; only the SQL of each table owner differs.
//!
//! Driver: the `postgres` crate, the blocking facade of `tokio-postgres` by the same authors
//! (same protocol code, same types). Blocking because the writer is a dedicated thread that
//! runs the group-commit loop written once for both backends, and readers run on blocking
//! threads as SQLite's do; an async driver would have forced a second, async copy of that
//! loop. A `postgres::Client` must not be used or dropped on an async worker thread (it
//! blocks on its own runtime), so every use is on the writer thread or in `spawn_blocking`,
//! and pooled readers are dropped on a thread of their own ([`PooledClient`]).
//!
//! Guarantees (the numbered ones in `lib.rs` hold as on SQLite):
//! - every session runs with `synchronous_commit = on`: `COMMIT` returns only once the WAL
//!   record is flushed, so a caller is answered only after its rows are durable;
//! - after the server went away the writer reconnects before its next group; while it
//!   cannot, every job gets [`StoreError::Unavailable`] and nothing is acknowledged;
//! - migrations are versioned in `bulwark_schema` and applied under an advisory lock, so
//!   several nodes starting together migrate once; a newer schema is refused at open.

pub(crate) mod accounts;
pub(crate) mod alerting;
pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod court;
pub(crate) mod fixes;
pub(crate) mod lifecycle;
mod migrations;
pub(crate) mod orders;
pub(crate) mod outbox;
pub(crate) mod registry;
pub(crate) mod scans;
pub(crate) mod status;
pub(crate) mod unknown_frames;

use crate::sqlite::{Backend, Inner, Writer};
use crate::writer::{AfterCommit, GroupBackend, QUEUE, WriteJob, writer_loop};
use crate::{Result, Store, StoreError};
use postgres::{Client, Config, NoTls, Statement};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a connection attempt may take before the store says the server is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections kept for reuse.
const POOLED_READERS: usize = 8;

/// A reader connection, dropped on a thread of its own: dropping a `postgres::Client` blocks
/// on the driver's runtime, which must not happen on an async worker thread.
pub(crate) struct PooledClient(Option<Client>);

impl Drop for PooledClient {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("store-pg-close".into())
                .spawn(move || drop(c));
        }
    }
}

/// What a PostgreSQL store's readers need: where to connect and the pooled connections.
pub(crate) struct Readers {
    config: Config,
    pool: Mutex<Vec<PooledClient>>,
}

fn unavailable(config: &Config, e: &postgres::Error) -> StoreError {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    StoreError::Unavailable(format!(
        "cannot reach PostgreSQL at {}: {e}",
        hosts.join(",")
    ))
}

/// Connects one session with the settings every Bulwark session runs with.
fn connect(config: &Config) -> Result<Client> {
    let mut client = config.connect(NoTls).map_err(|e| unavailable(config, &e))?;
    client
        .batch_execute("SET synchronous_commit = on; SET TIME ZONE 'UTC'")
        .map_err(|e| unavailable(config, &e))?;
    Ok(client)
}

thread_local! {
    /// The writer session's prepared statements, keyed by their SQL. Set only on the writer
    /// thread, and emptied whenever its session is replaced (a statement belongs to the
    /// session that prepared it); every other thread has none and prepares as it goes.
    static SESSION_STATEMENTS: RefCell<Option<HashMap<&'static str, Statement>>> =
        const { RefCell::new(None) };
}

/// Called on the writer thread when its session starts (or is lost): from now on
/// [`prepared`] keeps the statements of this session.
fn new_writer_session() {
    SESSION_STATEMENTS.with(|s| *s.borrow_mut() = Some(HashMap::new()));
}

/// `sql` prepared once per writer session (one round trip the first time, none after); on
/// any other thread, prepared afresh.
pub(crate) fn prepared(c: &mut Client, sql: &'static str) -> Result<Statement> {
    let cached = SESSION_STATEMENTS.with(|s| s.borrow().as_ref().and_then(|m| m.get(sql).cloned()));
    if let Some(stmt) = cached {
        return Ok(stmt);
    }
    let stmt = c.prepare(sql)?;
    SESSION_STATEMENTS.with(|s| {
        if let Some(m) = s.borrow_mut().as_mut() {
            m.insert(sql, stmt.clone());
        }
    });
    Ok(stmt)
}

/// The PostgreSQL side of group commit: the writer's session, replaced after it is lost.
struct PgWriter {
    config: Config,
    client: Option<Client>,
}

impl GroupBackend for PgWriter {
    type Conn = Client;

    fn connection(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            new_writer_session();
            let client = connect(&self.config)?;
            tracing::info!("store writer reconnected to PostgreSQL");
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no PostgreSQL session".into()))
    }

    fn execute(conn: &mut Client, sql: &str) -> Result<()> {
        Ok(conn.batch_execute(sql)?)
    }

    fn storage_failure(e: &StoreError) -> bool {
        match e {
            StoreError::Unavailable(_) | StoreError::Io(_) => true,
            // No SQLSTATE: the connection, not the statement, failed.
            StoreError::Postgres(p) => p.as_db_error().is_none() || p.is_closed(),
            _ => false,
        }
    }

    fn connection_failed(&mut self) {
        // The driver notices a dead socket only when it next uses it, so `is_closed` may
        // still say no: after a failed BEGIN or COMMIT the session is not trusted again.
        self.client = None;
        new_writer_session();
    }
}

impl Store {
    /// Opens a store on PostgreSQL (`postgres://user@host:port/db`, options such as
    /// `?options=-csearch_path%3Dschema` allowed), applies migrations and starts the writer.
    ///
    /// Unreachable server: [`StoreError::Unavailable`] within a few seconds, not a hang.
    /// A schema from a newer Bulwark: [`StoreError::SchemaTooNew`].
    pub fn open_url(url: &str) -> Result<Store> {
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::InvalidReference(format!("not a PostgreSQL URL ({e})")))?;
        if config.get_application_name().is_none() {
            config.application_name("bulwark");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob<Client>>>(QUEUE);
        let writes_failing = Arc::new(crate::writer::StorageHealth::default());
        let flag = writes_failing.clone();
        let (opened_tx, opened_rx) = std::sync::mpsc::channel::<Result<()>>();
        let writer_config = config.clone();
        // The session is opened and migrated on the writer thread itself: the driver blocks,
        // and `open_url` may be called from async code.
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let client = connect(&writer_config).and_then(|mut c| {
                    migrations::migrate(&mut c)?;
                    Ok(c)
                });
                match client {
                    Ok(c) => {
                        new_writer_session();
                        let _ = opened_tx.send(Ok(()));
                        let backend = PgWriter {
                            config: writer_config,
                            client: Some(c),
                        };
                        writer_loop(backend, rx, flag);
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            })?;
        opened_rx
            .recv()
            .map_err(|_| StoreError::Unavailable("the store writer did not start".into()))??;
        Ok(Store {
            inner: Arc::new(Inner {
                backend: Backend::Postgres(Box::new(Readers {
                    config,
                    pool: Mutex::new(Vec::new()),
                })),
                writer: Mutex::new(Some(Writer::Postgres(tx))),
                writer_thread: Mutex::new(Some(handle)),
                committed: Mutex::new(Vec::new()),
                writes_failing,
            }),
        })
    }

    /// Runs `f` as one job of the PostgreSQL writer's next group (see `writer.rs`).
    pub(crate) async fn pg_write<T, F>(
        &self,
        f: F,
        after_commit: Option<AfterCommit<T>>,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Client) -> Result<T> + Send + 'static,
    {
        let sender = match self.inner.writer.lock().ok().as_deref() {
            Some(Some(Writer::Postgres(s))) => Some(s.clone()),
            Some(Some(Writer::Sqlite(_))) => {
                return Err(StoreError::Unsupported(
                    "a PostgreSQL job on a SQLite store".into(),
                ));
            }
            _ => None,
        };
        crate::writer::submit(sender, f, after_commit).await
    }

    /// Runs `f` on a pooled PostgreSQL session on a blocking thread (its own transaction per
    /// statement: reads see what has committed).
    pub(crate) async fn pg_read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Client) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let Backend::Postgres(readers) = &inner.backend else {
                return Err(StoreError::Unsupported(
                    "a PostgreSQL read on a SQLite store".into(),
                ));
            };
            let pooled = readers.pool.lock().ok().and_then(|mut p| p.pop());
            let mut client = match pooled.and_then(|mut p| p.0.take()) {
                Some(c) if !c.is_closed() => c,
                _ => connect(&readers.config)?,
            };
            let out = f(&mut client);
            if !client.is_closed()
                && let Ok(mut p) = readers.pool.lock()
                && p.len() < POOLED_READERS
            {
                p.push(PooledClient(Some(client)));
            }
            out
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
    }
}

/// The SQLSTATE of a statement's error, if the server sent one.
pub(crate) fn sqlstate(e: &postgres::Error) -> Option<&postgres::error::SqlState> {
    e.code()
}

#[cfg(test)]
mod tests;
