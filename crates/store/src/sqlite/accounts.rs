//! Accounts, sessions, log-in throttling, case assignments and the access log.
//!
//! The decisions (who may log in, whether a session is valid, who may read what) are made in
//! `crates/access`; this module only keeps their state. The access log is appended on the
//! writer thread: each append job reads the chain head from the table inside the same
//! transaction, so the sequence order is the commit order, and a job or group that rolls
//! back leaves no gap in the chain (the next job simply resumes from what is committed).

use super::{AfterCommit, Store};
use crate::columns::Columns;
use crate::{Result, StoreError};
use access::{AccountId, LoginThrottle, Role, SessionRecord};
use audit::{AuditChain, AuditEntry, AuditRecord, Checkpoint, SigningKey};
use domain::{CaseId, PersonId, UnixMicros};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A stored account. The password is kept only as an Argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub username: String,
    pub role: Role,
    /// The person a victim or offender account belongs to.
    pub person: Option<PersonId>,
    pub password_phc: String,
    /// RFC 6238 secret, for staff who enrolled a second factor.
    pub totp_secret: Option<Vec<u8>>,
    /// The last TOTP step accepted (a code is never accepted twice).
    pub totp_last_step: Option<i64>,
    pub disabled: bool,
}

/// A new account to store.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub role: Role,
    pub person: Option<PersonId>,
    pub password_phc: String,
    pub totp_secret: Option<Vec<u8>>,
}

/// How the access log is signed: every `every` records, with `key` (held in a file outside
/// the database, so a database writer cannot forge checkpoints).
#[derive(Clone)]
pub struct AuditSigner {
    pub key: Arc<SigningKey>,
    pub every: u64,
    /// Where each newly signed checkpoint (and the one at the head at shutdown) is also
    /// written, after its transaction committed: the chain head anchored outside the
    /// database, so that deleting the newest records together with their checkpoints in the
    /// database is still caught (issue 17). `None`: the database only (tests).
    pub head_file: Option<PathBuf>,
}

/// Writes `cp` to `path` (JSON, mode 0600) through a temporary file and a rename, so a
/// crash leaves the old or the new checkpoint, never half of one. A checkpoint older than
/// the one already there is not written (two processes appending to one database).
pub fn write_head_file(path: &Path, cp: &Checkpoint) -> std::io::Result<()> {
    use std::io::Write;
    if let Ok(old) = std::fs::read(path)
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&old)
        && Checkpoint::from_json(&v).is_some_and(|old| old.seq > cp.seq)
    {
        return Ok(());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(cp.to_json().to_string().as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The after-commit step that anchors a newly signed checkpoint outside the database.
pub(crate) fn anchor_after_commit<T: 'static>(
    signer: Option<&AuditSigner>,
    checkpoint: fn(&T) -> Option<&Checkpoint>,
) -> Option<AfterCommit<T>> {
    let path = signer?.head_file.clone()?;
    Some(Box::new(move |out: &T| {
        if let Some(cp) = checkpoint(out)
            && let Err(e) = write_head_file(&path, cp)
        {
            tracing::error!(error = %e, path = %path.display(), seq = cp.seq,
                "could not write the access-log head file");
        }
    }))
}

const ACCOUNT_COLS: &str =
    "id, username, role, person_id, password_phc, totp_secret, totp_last_step, disabled_at";

pub(crate) fn account_from_row<R: Columns>(r: &R) -> Result<Account> {
    let role: String = r.col("role")?;
    let role =
        Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?;
    Ok(Account {
        id: AccountId(r.col("id")?),
        username: r.col("username")?,
        role,
        person: r.col::<Option<i64>>("person_id")?.map(domain::PersonId),
        password_phc: r.col("password_phc")?,
        totp_secret: r.col("totp_secret")?,
        totp_last_step: r.col("totp_last_step")?,
        disabled: r.col::<Option<i64>>("disabled_at")?.is_some(),
    })
}

pub(crate) fn session_from_row<R: Columns>(r: &R) -> Result<SessionRecord> {
    let hash: Vec<u8> = r.col("token_hash")?;
    let role: String = r.col("role")?;
    let (Ok(token_hash), Some(role)) = (<[u8; 32]>::try_from(hash.as_slice()), Role::parse(&role))
    else {
        return Err(StoreError::Corrupt("bad session row".into()));
    };
    Ok(SessionRecord {
        token_hash,
        account: AccountId(r.col("account_id")?),
        role,
        created_at: UnixMicros(r.col("created_at")?),
        last_used_at: UnixMicros(r.col("last_used_at")?),
        expires_at: UnixMicros(r.col("expires_at")?),
        idle_timeout_s: r.col("idle_timeout_s")?,
        revoked_at: r.col::<Option<i64>>("revoked_at")?.map(UnixMicros),
    })
}

/// Why a stored access-log row cannot be trusted as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditRowError {
    /// The record blob does not decode.
    Undecodable(String),
    /// An indexed column says something the hashed record does not: names the column, and
    /// carries the record so that verification can go on along the chain.
    ColumnsDisagree {
        column: &'static str,
        record: Box<AuditRecord>,
    },
}

impl std::fmt::Display for AuditRowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditRowError::Undecodable(e) => write!(f, "the stored record does not decode: {e}"),
            AuditRowError::ColumnsDisagree { column, .. } => write!(
                f,
                "the indexed column {column} disagrees with the hashed record (edited outside Bulwark)"
            ),
        }
    }
}

/// The copies of record fields kept in their own columns for indexed queries.
pub(crate) struct IndexedColumns {
    pub(crate) seq: i64,
    pub(crate) time: i64,
    pub(crate) actor_id: i64,
    pub(crate) action: String,
    pub(crate) case_id: Option<i64>,
}

impl IndexedColumns {
    pub(crate) fn check(
        &self,
        rec: AuditRecord,
    ) -> std::result::Result<AuditRecord, AuditRowError> {
        let e = &rec.entry;
        let wrong = [
            ("seq", self.seq != rec.seq as i64),
            ("time", self.time != rec.time.0),
            ("actor_id", self.actor_id != e.actor.id),
            ("action", self.action != e.action.as_str()),
            ("case_id", self.case_id != e.subject.case.map(|c| c.0)),
        ];
        match wrong.iter().find(|(_, bad)| *bad) {
            Some(&(column, _)) => Err(AuditRowError::ColumnsDisagree {
                column,
                record: Box::new(rec),
            }),
            None => Ok(rec),
        }
    }
}

/// The last committed record, from which the chain continues.
fn chain_head(conn: &Connection) -> Result<AuditChain> {
    let last: Option<Vec<u8>> = conn
        .query_row(
            "SELECT record FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match last {
        None => Ok(AuditChain::new()),
        Some(b) => {
            let rec = AuditRecord::from_bytes(&b)
                .map_err(|e| StoreError::Corrupt(format!("last audit record: {e}")))?;
            Ok(AuditChain::resume(&rec))
        }
    }
}

fn insert_checkpoint(conn: &Connection, cp: &Checkpoint) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO audit_checkpoints (seq, checkpoint) VALUES (?1, ?2)",
        params![cp.seq as i64, cp.to_bytes()],
    )?;
    Ok(())
}

/// Appends `entries`; returns them as stored and the newest checkpoint signed on the way.
fn append_tx(
    conn: &Connection,
    entries: Vec<AuditEntry>,
    now: UnixMicros,
    signer: Option<&AuditSigner>,
) -> Result<(Vec<AuditRecord>, Option<Checkpoint>)> {
    let mut chain = chain_head(conn)?;
    let mut out = Vec::with_capacity(entries.len());
    let mut signed = None;
    for entry in entries {
        let rec = chain.append(entry, now);
        conn.execute(
            "INSERT INTO audit_log (seq, time, actor_id, action, case_id, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                rec.seq as i64,
                rec.time.0,
                rec.entry.actor.id,
                rec.entry.action.as_str(),
                rec.entry.subject.case.map(|c| c.0),
                rec.to_bytes()
            ],
        )?;
        if let Some(s) = signer.filter(|s| Checkpoint::due(rec.seq, s.every)) {
            let cp = Checkpoint::sign(&s.key, rec.seq, rec.hash, now);
            insert_checkpoint(conn, &cp)?;
            signed = Some(cp);
        }
        out.push(rec);
    }
    Ok((out, signed))
}

impl Store {
    // ---- accounts ----------------------------------------------------------------------

    pub async fn create_account(&self, a: NewAccount, now: UnixMicros) -> Result<Account> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::create_account(c, a, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                if let Some(p) = a.person {
                    super::ensure_exists(conn, "people", p.0, "person")?;
                }
                let taken: bool = conn
                    .query_row(
                        "SELECT 1 FROM accounts WHERE username = ?1",
                        [&a.username],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if taken {
                    return Err(StoreError::Conflict(format!(
                        "username {:?} is taken",
                        a.username
                    )));
                }
                conn.execute(
                    "INSERT INTO accounts (username, role, person_id, password_phc, totp_secret, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        a.username,
                        a.role.as_str(),
                        a.person.map(|p| p.0),
                        a.password_phc,
                        a.totp_secret,
                        now.0
                    ],
                )?;
                Ok(Account {
                    id: AccountId(conn.last_insert_rowid()),
                    username: a.username,
                    role: a.role,
                    person: a.person,
                    password_phc: a.password_phc,
                    totp_secret: a.totp_secret,
                    totp_last_step: None,
                    disabled: false,
                })
            },
            None,
        )
        .await
    }

    pub async fn account_by_username(&self, username: String) -> Result<Option<Account>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::accounts::account_by_username(c, &username))
                .await;
        }
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE username = ?1"),
                [username],
                |r| Ok(account_from_row(r)),
            )
            .optional()?
            .transpose()
        })
        .await
    }

    pub async fn account(&self, id: AccountId) -> Result<Option<Account>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::accounts::account(c, id))
                .await;
        }
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?1"),
                [id.0],
                |r| Ok(account_from_row(r)),
            )
            .optional()?
            .transpose()
        })
        .await
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::accounts::list_accounts).await;
        }
        self.read(|conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {ACCOUNT_COLS} FROM accounts ORDER BY id"))?;
            let rows = stmt.query_map([], |r| Ok(account_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Records the TOTP step just accepted; refuses (returns false) a step not greater than
    /// the stored one, so two concurrent log-ins cannot both use one code.
    pub async fn use_totp_step(&self, id: AccountId, step: i64) -> Result<bool> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::use_totp_step(c, id, step),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                let n = conn.execute(
                    "UPDATE accounts SET totp_last_step = ?2
                     WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                    params![id.0, step],
                )?;
                Ok(n == 1)
            },
            None,
        )
        .await
    }

    /// Disables an account and revokes all its sessions at once (idempotent: the first
    /// time stays).
    pub async fn disable_account(&self, id: AccountId, now: UnixMicros) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::disable_account(c, id, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                super::ensure_exists(conn, "accounts", id.0, "account")?;
                conn.execute(
                    "UPDATE accounts SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1",
                    params![id.0, now.0],
                )?;
                conn.execute(
                    "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2) WHERE account_id = ?1",
                    params![id.0, now.0],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    // ---- log-in throttle ---------------------------------------------------------------

    pub async fn login_throttle(&self, id: AccountId) -> Result<LoginThrottle> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::accounts::login_throttle(c, id))
                .await;
        }
        self.read(move |conn| {
            let t = conn
                .query_row(
                    "SELECT failures, lockouts, locked_until, last_failure FROM login_throttle WHERE account_id = ?1",
                    [id.0],
                    |r| {
                        Ok(LoginThrottle {
                            failures: r.get("failures")?,
                            lockouts: r.get("lockouts")?,
                            locked_until: r.get::<_, Option<i64>>("locked_until")?.map(UnixMicros),
                            last_failure: r.get::<_, Option<i64>>("last_failure")?.map(UnixMicros),
                        })
                    },
                )
                .optional()?;
            Ok(t.unwrap_or_default())
        })
        .await
    }

    pub async fn save_login_throttle(&self, id: AccountId, t: LoginThrottle) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::save_login_throttle(c, id, t),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO login_throttle (account_id, failures, lockouts, locked_until, last_failure)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        id.0,
                        t.failures,
                        t.lockouts,
                        t.locked_until.map(|u| u.0),
                        t.last_failure.map(|u| u.0)
                    ],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    // ---- sessions ----------------------------------------------------------------------

    pub async fn insert_session(&self, s: SessionRecord) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::insert_session(c, s),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "INSERT INTO sessions (token_hash, account_id, role, created_at, last_used_at, expires_at, idle_timeout_s, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        s.token_hash.to_vec(),
                        s.account.0,
                        s.role.as_str(),
                        s.created_at.0,
                        s.last_used_at.0,
                        s.expires_at.0,
                        s.idle_timeout_s,
                        s.revoked_at.map(|r| r.0)
                    ],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    pub async fn session(&self, token_hash: [u8; 32]) -> Result<Option<SessionRecord>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::accounts::session(c, token_hash))
                .await;
        }
        self.read(move |conn| {
            conn.query_row(
                "SELECT token_hash, account_id, role, created_at, last_used_at, expires_at, idle_timeout_s, revoked_at
                 FROM sessions WHERE token_hash = ?1",
                [token_hash.to_vec()],
                |r| Ok(session_from_row(r)),
            )
            .optional()?
            .transpose()
        })
        .await
    }

    /// Moves the idle clock forward (never back).
    pub async fn touch_session(&self, token_hash: [u8; 32], now: UnixMicros) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::touch_session(c, token_hash, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "UPDATE sessions SET last_used_at = MAX(last_used_at, ?2) WHERE token_hash = ?1",
                    params![token_hash.to_vec(), now.0],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    /// Revokes a session; revoking twice keeps the first time.
    pub async fn revoke_session(&self, token_hash: [u8; 32], now: UnixMicros) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::revoke_session(c, token_hash, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2) WHERE token_hash = ?1",
                    params![token_hash.to_vec(), now.0],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    // ---- assignments -------------------------------------------------------------------

    /// Assigns a case to a monitoring officer (idempotent).
    pub async fn assign_case(
        &self,
        account: AccountId,
        case: CaseId,
        now: UnixMicros,
    ) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::assign_case(c, account, case, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                super::ensure_exists(conn, "accounts", account.0, "account")?;
                super::ensure_exists(conn, "cases", case.0, "case")?;
                conn.execute(
                    "INSERT OR IGNORE INTO assignments (account_id, case_id, created_at) VALUES (?1, ?2, ?3)",
                    params![account.0, case.0, now.0],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    pub async fn assigned_cases(&self, account: AccountId) -> Result<Vec<CaseId>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::accounts::assigned_cases(c, account))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT case_id FROM assignments WHERE account_id = ?1 ORDER BY case_id",
            )?;
            let rows = stmt.query_map([account.0], |r| Ok(CaseId(r.get(0)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    // ---- police dispatches -------------------------------------------------------------

    /// Grants a police account an alert's case until `expires_at` (a second dispatch of the
    /// same alert to the same account moves the expiry).
    pub async fn add_dispatch(
        &self,
        account: AccountId,
        case: CaseId,
        alert: domain::AlertId,
        now: UnixMicros,
        expires_at: UnixMicros,
    ) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::accounts::add_dispatch(
                            c, account, case, alert, now, expires_at,
                        )
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                super::ensure_exists(conn, "accounts", account.0, "account")?;
                conn.execute(
                    "INSERT OR REPLACE INTO dispatches (account_id, case_id, alert_id, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![account.0, case.0, alert.0, now.0, expires_at.0],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    /// Ends every dispatch of an alert at `expires_at` at the latest (the alert resolved).
    pub async fn end_dispatches(
        &self,
        alert: domain::AlertId,
        expires_at: UnixMicros,
    ) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::accounts::end_dispatches(c, alert, expires_at),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "UPDATE dispatches SET expires_at = MIN(expires_at, ?2) WHERE alert_id = ?1",
                    params![alert.0, expires_at.0],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    /// A police account's dispatches, expired ones included (the decision checks expiry).
    pub async fn dispatches(&self, account: AccountId) -> Result<Vec<access::Dispatch>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::accounts::dispatches(c, account))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT case_id, expires_at FROM dispatches WHERE account_id = ?1 ORDER BY case_id",
            )?;
            let rows = stmt.query_map([account.0], |r| {
                Ok(access::Dispatch {
                    case: CaseId(r.get("case_id")?),
                    expires_at: UnixMicros(r.get("expires_at")?),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    // ---- access log --------------------------------------------------------------------

    /// Appends entries to the access log in one job and answers only once they are durable.
    /// Signs a checkpoint whenever one falls due.
    pub async fn append_audit(
        &self,
        entries: Vec<AuditEntry>,
        now: UnixMicros,
        signer: Option<AuditSigner>,
    ) -> Result<Vec<AuditRecord>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let anchor = anchor_after_commit(
            signer.as_ref(),
            |(_, cp): &(Vec<AuditRecord>, Option<Checkpoint>)| cp.as_ref(),
        );
        let (records, _) = if self.is_postgres() {
            self.pg_write(
                move |c| crate::postgres::audit::append_tx(c, entries, now, signer.as_ref()),
                anchor,
            )
            .await?
        } else {
            self.write(
                move |conn| append_tx(conn, entries, now, signer.as_ref()),
                anchor,
            )
            .await?
        };
        Ok(records)
    }

    /// Signs a checkpoint at the current head unless one exists there (e.g. at shutdown), and
    /// writes the checkpoint at the head (new or not) to the signer's head file. Returns the
    /// new checkpoint, if one was signed.
    pub async fn checkpoint_audit(
        &self,
        signer: AuditSigner,
        now: UnixMicros,
    ) -> Result<Option<Checkpoint>> {
        let anchor = anchor_after_commit(
            Some(&signer),
            |(_, head): &(Option<Checkpoint>, Option<Checkpoint>)| head.as_ref(),
        );
        if self.is_postgres() {
            let (new, _) = self
                .pg_write(
                    move |c| crate::postgres::audit::checkpoint_tx(c, &signer, now),
                    anchor,
                )
                .await?;
            return Ok(new);
        }
        let (new, _) = self
            .write(
                move |conn| {
                    let (seq, hash) = chain_head(conn)?.head();
                    if seq == 0 {
                        return Ok((None, None));
                    }
                    let existing: Option<Vec<u8>> = conn
                        .query_row(
                            "SELECT checkpoint FROM audit_checkpoints WHERE seq = ?1",
                            [seq as i64],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(cp) = existing.as_deref().and_then(Checkpoint::from_bytes) {
                        return Ok((None, Some(cp)));
                    }
                    let cp = Checkpoint::sign(&signer.key, seq, hash, now);
                    insert_checkpoint(conn, &cp)?;
                    Ok((Some(cp.clone()), Some(cp)))
                },
                anchor,
            )
            .await?;
        Ok(new)
    }

    /// Deletes each device's fixes whose device time falls in one of its `[from, to)`
    /// windows, with the device's network scans and health reports of the same windows, and,
    /// in the same transaction, appends `entry` to the access log with the
    /// number deleted added to its details: a purge is never unrecorded, and a record never
    /// claims a purge that did not commit. Returns the number of fixes deleted.
    pub async fn purge_fixes(
        &self,
        windows: Vec<(domain::DeviceId, Vec<(UnixMicros, UnixMicros)>)>,
        mut entry: AuditEntry,
        now: UnixMicros,
        signer: Option<AuditSigner>,
    ) -> Result<u64> {
        let anchor = anchor_after_commit(signer.as_ref(), |(_, cp): &(u64, Option<Checkpoint>)| {
            cp.as_ref()
        });
        if self.is_postgres() {
            let (deleted, _) = self
                .pg_write(
                    move |c| {
                        crate::postgres::accounts::purge_fixes(
                            c,
                            &windows,
                            entry,
                            now,
                            signer.as_ref(),
                        )
                    },
                    anchor,
                )
                .await?;
            return Ok(deleted);
        }
        let (deleted, _) = self.write(
            move |conn| {
                let (mut deleted, mut health, mut scans) = (0u64, 0u64, 0u64);
                for (device, ws) in &windows {
                    for (from, to) in ws {
                        // What came with the fixes goes with them: the scans of the window
                        // (and any pointing at a fix being deleted), the health reports.
                        scans += conn.execute(
                            "DELETE FROM network_scans WHERE device_id = ?1 AND ((scan_time >= ?2 AND scan_time < ?3)
                             OR fix_id IN (SELECT id FROM fixes WHERE device_id = ?1 AND device_time >= ?2 AND device_time < ?3))",
                            params![device.0, from.0, to.0],
                        )? as u64;
                        health += conn.execute(
                            "DELETE FROM device_health_history WHERE device_id = ?1 AND reported_at >= ?2 AND reported_at < ?3",
                            params![device.0, from.0, to.0],
                        )? as u64;
                        // Raw frames may hold a position the decoder could not read.
                        conn.execute(
                            "DELETE FROM unknown_frames WHERE device_id = ?1 AND received_time >= ?2 AND received_time < ?3",
                            params![device.0, from.0, to.0],
                        )?;
                        deleted += conn.execute(
                            "DELETE FROM fixes WHERE device_id = ?1 AND device_time >= ?2 AND device_time < ?3",
                            params![device.0, from.0, to.0],
                        )? as u64;
                    }
                }
                entry.details = format!(
                    "{}; health reports deleted: {health}; network scans deleted: {scans}; fixes deleted: {deleted}",
                    entry.details
                );
                let (_, signed) = append_tx(conn, vec![entry], now, signer.as_ref())?;
                Ok((deleted, signed))
            },
            anchor,
        )
        .await?;
        Ok(deleted)
    }

    /// Records with `seq > after`, in order, at most `limit`. A row that no longer decodes,
    /// or whose indexed columns (`seq`, `time`, `actor_id`, `action`, `case_id`) disagree
    /// with its hashed record, is returned as an [`AuditRowError`] with its seq, so
    /// verification can report it: the views filter on those columns, so an edit of a column
    /// alone would hide a record from them while the chain still verified.
    pub async fn audit_records(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, std::result::Result<AuditRecord, AuditRowError>)>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::audit::audit_records(c, after, limit))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT seq, time, actor_id, action, case_id, record FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
                let seq: i64 = r.get("seq")?;
                let columns = IndexedColumns {
                    seq,
                    time: r.get("time")?,
                    actor_id: r.get("actor_id")?,
                    action: r.get("action")?,
                    case_id: r.get("case_id")?,
                };
                let blob: Vec<u8> = r.get("record")?;
                let rec = AuditRecord::from_bytes(&blob)
                    .map_err(|e| AuditRowError::Undecodable(e.to_string()))
                    .and_then(|rec| columns.check(rec));
                Ok((seq as u64, rec))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The newest `limit` records about `case` (its `case_id` column), newest first, leaving
    /// out those by account `except_actor` (a person's own reads of her case). Rows that no
    /// longer decode are skipped: this serves a person's "who viewed my data", not
    /// verification.
    pub async fn audit_records_of_case(
        &self,
        auth: &crate::Authorized,
        case: domain::CaseId,
        except_actor: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        auth.require_case(case)?;
        if self.is_postgres() {
            return self
                .pg_read(move |c| {
                    crate::postgres::audit::audit_records_of_case(c, case, except_actor, limit)
                })
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT record FROM audit_log WHERE case_id = ?1 AND actor_id != ?2 ORDER BY seq DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![case.0, except_actor, limit as i64], |r| {
                r.get::<_, Vec<u8>>(0)
            })?;
            let mut out = Vec::new();
            for blob in rows {
                if let Ok(rec) = AuditRecord::from_bytes(&blob?) {
                    out.push(rec);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Every checkpoint, in order. Rows that do not decode are skipped and counted.
    pub async fn audit_checkpoints(&self) -> Result<(Vec<Checkpoint>, usize)> {
        if self.is_postgres() {
            return self
                .pg_read(crate::postgres::audit::audit_checkpoints)
                .await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT checkpoint FROM audit_checkpoints ORDER BY seq")?;
            let blobs = stmt
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let total = blobs.len();
            let cps: Vec<Checkpoint> = blobs
                .iter()
                .filter_map(|b| Checkpoint::from_bytes(b))
                .collect();
            let bad = total - cps.len();
            Ok((cps, bad))
        })
        .await
    }
}
