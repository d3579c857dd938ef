//! Accounts, log-in throttle, sessions, case assignments, police dispatches and the
//! retention purge on PostgreSQL, with the SQLite bodies' rules (`sqlite/accounts.rs`):
//! the same errors, the same orderings, the same idempotence.
//!
//! Several nodes: every write is one job of the writer's group transaction. Two nodes
//! purging at once are serialised by the access log's chain lock, taken before the first
//! delete: the second purge then finds the rows gone and records what it deleted itself
//! (none), so neither fails on a deadlock and no deletion is claimed twice.

use crate::sqlite::accounts::account_from_row;
use crate::sqlite::accounts::session_from_row;
use crate::sqlite::{Account, AuditSigner, NewAccount};
use crate::{Result, StoreError};
use access::{AccountId, LoginThrottle, SessionRecord};
use audit::{AuditEntry, Checkpoint};
use domain::{CaseId, DeviceId, UnixMicros};
use postgres::{Client, Row};

pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE accounts (
        id BIGSERIAL PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        person_id BIGINT REFERENCES people(id),
        password_phc TEXT NOT NULL,
        totp_secret BYTEA,
        totp_last_step BIGINT,
        created_at BIGINT NOT NULL,
        disabled_at BIGINT
    );
    CREATE TABLE login_throttle (
        account_id BIGINT PRIMARY KEY REFERENCES accounts(id),
        failures BIGINT NOT NULL,
        lockouts BIGINT NOT NULL,
        locked_until BIGINT,
        last_failure BIGINT
    );
    CREATE TABLE sessions (
        token_hash BYTEA PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        role TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        idle_timeout_s BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE INDEX sessions_account ON sessions(account_id);
    CREATE TABLE assignments (
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        case_id BIGINT NOT NULL REFERENCES cases(id),
        created_at BIGINT NOT NULL,
        PRIMARY KEY (account_id, case_id)
    );
    CREATE TABLE dispatches (
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        case_id BIGINT NOT NULL REFERENCES cases(id),
        alert_id BIGINT NOT NULL REFERENCES alerts(id),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (account_id, alert_id)
    );
    CREATE INDEX dispatches_alert ON dispatches(alert_id);
"#;

const ACCOUNT_COLS: &str =
    "id, username, role, person_id, password_phc, totp_secret, totp_last_step, disabled_at";

/// `InvalidReference` unless `table` has a row `id` (as `sqlite::ensure_exists` says it).
pub(crate) fn ensure_exists(c: &mut Client, table: &str, id: i64, what: &str) -> Result<()> {
    c.query_opt(&format!("SELECT id FROM {table} WHERE id = $1"), &[&id])?
        .map(|_| ())
        .ok_or_else(|| StoreError::InvalidReference(format!("{what} {id} does not exist")))
}

fn count(r: &Row, col: &str) -> Result<u32> {
    let v: i64 = r.try_get(col)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("login_throttle.{col} = {v}")))
}

// ---- accounts --------------------------------------------------------------------------

pub(crate) fn create_account(c: &mut Client, a: NewAccount, now: UnixMicros) -> Result<Account> {
    if let Some(p) = a.person {
        ensure_exists(c, "people", p.0, "person")?;
    }
    if c.query_opt("SELECT 1 FROM accounts WHERE username = $1", &[&a.username])?
        .is_some()
    {
        return Err(StoreError::Conflict(format!(
            "username {:?} is taken",
            a.username
        )));
    }
    let r = c.query_one(
        "INSERT INTO accounts (username, role, person_id, password_phc, totp_secret, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        &[
            &a.username,
            &a.role.as_str(),
            &a.person.map(|p| p.0),
            &a.password_phc,
            &a.totp_secret,
            &now.0,
        ],
    )?;
    Ok(Account {
        id: AccountId(r.try_get("id")?),
        username: a.username,
        role: a.role,
        person: a.person,
        password_phc: a.password_phc,
        totp_secret: a.totp_secret,
        totp_last_step: None,
        disabled: false,
    })
}

pub(crate) fn account_by_username(c: &mut Client, username: &str) -> Result<Option<Account>> {
    c.query_opt(
        &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE username = $1"),
        &[&username],
    )?
    .as_ref()
    .map(account_from_row)
    .transpose()
}

pub(crate) fn account(c: &mut Client, id: AccountId) -> Result<Option<Account>> {
    c.query_opt(
        &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1"),
        &[&id.0],
    )?
    .as_ref()
    .map(account_from_row)
    .transpose()
}

pub(crate) fn list_accounts(c: &mut Client) -> Result<Vec<Account>> {
    c.query(
        &format!("SELECT {ACCOUNT_COLS} FROM accounts ORDER BY id"),
        &[],
    )?
    .iter()
    .map(account_from_row)
    .collect()
}

pub(crate) fn use_totp_step(c: &mut Client, id: AccountId, step: i64) -> Result<bool> {
    let n = c.execute(
        "UPDATE accounts SET totp_last_step = $2
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        &[&id.0, &step],
    )?;
    Ok(n == 1)
}

pub(crate) fn disable_account(c: &mut Client, id: AccountId, now: UnixMicros) -> Result<()> {
    ensure_exists(c, "accounts", id.0, "account")?;
    c.execute(
        "UPDATE accounts SET disabled_at = COALESCE(disabled_at, $2) WHERE id = $1",
        &[&id.0, &now.0],
    )?;
    c.execute(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE account_id = $1",
        &[&id.0, &now.0],
    )?;
    Ok(())
}

// ---- log-in throttle -------------------------------------------------------------------

pub(crate) fn login_throttle(c: &mut Client, id: AccountId) -> Result<LoginThrottle> {
    let row = c.query_opt(
        "SELECT failures, lockouts, locked_until, last_failure FROM login_throttle WHERE account_id = $1",
        &[&id.0],
    )?;
    match row {
        None => Ok(LoginThrottle::default()),
        Some(r) => Ok(LoginThrottle {
            failures: count(&r, "failures")?,
            lockouts: count(&r, "lockouts")?,
            locked_until: r.try_get::<_, Option<i64>>("locked_until")?.map(UnixMicros),
            last_failure: r.try_get::<_, Option<i64>>("last_failure")?.map(UnixMicros),
        }),
    }
}

pub(crate) fn save_login_throttle(c: &mut Client, id: AccountId, t: LoginThrottle) -> Result<()> {
    c.execute(
        "INSERT INTO login_throttle (account_id, failures, lockouts, locked_until, last_failure)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id) DO UPDATE SET failures = EXCLUDED.failures,
            lockouts = EXCLUDED.lockouts, locked_until = EXCLUDED.locked_until,
            last_failure = EXCLUDED.last_failure",
        &[
            &id.0,
            &i64::from(t.failures),
            &i64::from(t.lockouts),
            &t.locked_until.map(|u| u.0),
            &t.last_failure.map(|u| u.0),
        ],
    )?;
    Ok(())
}

// ---- sessions --------------------------------------------------------------------------

pub(crate) fn insert_session(c: &mut Client, s: SessionRecord) -> Result<()> {
    c.execute(
        "INSERT INTO sessions (token_hash, account_id, role, created_at, last_used_at, expires_at, idle_timeout_s, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &s.token_hash.as_slice(),
            &s.account.0,
            &s.role.as_str(),
            &s.created_at.0,
            &s.last_used_at.0,
            &s.expires_at.0,
            &s.idle_timeout_s,
            &s.revoked_at.map(|r| r.0),
        ],
    )?;
    Ok(())
}

pub(crate) fn session(c: &mut Client, token_hash: [u8; 32]) -> Result<Option<SessionRecord>> {
    c.query_opt(
        "SELECT token_hash, account_id, role, created_at, last_used_at, expires_at, idle_timeout_s, revoked_at
         FROM sessions WHERE token_hash = $1",
        &[&token_hash.as_slice()],
    )?
    .as_ref()
    .map(session_from_row)
    .transpose()
}

pub(crate) fn touch_session(c: &mut Client, token_hash: [u8; 32], now: UnixMicros) -> Result<()> {
    c.execute(
        "UPDATE sessions SET last_used_at = GREATEST(last_used_at, $2) WHERE token_hash = $1",
        &[&token_hash.as_slice(), &now.0],
    )?;
    Ok(())
}

pub(crate) fn revoke_session(c: &mut Client, token_hash: [u8; 32], now: UnixMicros) -> Result<()> {
    c.execute(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE token_hash = $1",
        &[&token_hash.as_slice(), &now.0],
    )?;
    Ok(())
}

// ---- assignments and dispatches --------------------------------------------------------

pub(crate) fn assign_case(
    c: &mut Client,
    account: AccountId,
    case: CaseId,
    now: UnixMicros,
) -> Result<()> {
    ensure_exists(c, "accounts", account.0, "account")?;
    ensure_exists(c, "cases", case.0, "case")?;
    c.execute(
        "INSERT INTO assignments (account_id, case_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        &[&account.0, &case.0, &now.0],
    )?;
    Ok(())
}

pub(crate) fn assigned_cases(c: &mut Client, account: AccountId) -> Result<Vec<CaseId>> {
    c.query(
        "SELECT case_id FROM assignments WHERE account_id = $1 ORDER BY case_id",
        &[&account.0],
    )?
    .iter()
    .map(|r| Ok(CaseId(r.try_get("case_id")?)))
    .collect()
}

pub(crate) fn add_dispatch(
    c: &mut Client,
    account: AccountId,
    case: CaseId,
    alert: domain::AlertId,
    now: UnixMicros,
    expires_at: UnixMicros,
) -> Result<()> {
    ensure_exists(c, "accounts", account.0, "account")?;
    c.execute(
        "INSERT INTO dispatches (account_id, case_id, alert_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id, alert_id) DO UPDATE SET case_id = EXCLUDED.case_id,
            created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
        &[&account.0, &case.0, &alert.0, &now.0, &expires_at.0],
    )?;
    Ok(())
}

pub(crate) fn end_dispatches(
    c: &mut Client,
    alert: domain::AlertId,
    expires_at: UnixMicros,
) -> Result<()> {
    c.execute(
        "UPDATE dispatches SET expires_at = LEAST(expires_at, $2) WHERE alert_id = $1",
        &[&alert.0, &expires_at.0],
    )?;
    Ok(())
}

pub(crate) fn dispatches(c: &mut Client, account: AccountId) -> Result<Vec<access::Dispatch>> {
    c.query(
        "SELECT case_id, expires_at FROM dispatches WHERE account_id = $1 ORDER BY case_id",
        &[&account.0],
    )?
    .iter()
    .map(|r| {
        Ok(access::Dispatch {
            case: CaseId(r.try_get("case_id")?),
            expires_at: UnixMicros(r.try_get("expires_at")?),
        })
    })
    .collect()
}

// ---- retention purge -------------------------------------------------------------------

/// The purge of `Store::purge_fixes`: deletes each device's fixes (and the scans, health
/// reports and raw frames) of its windows and appends `entry` with the counts, in the job's
/// transaction.
pub(crate) fn purge_fixes(
    c: &mut Client,
    windows: &[(DeviceId, Vec<(UnixMicros, UnixMicros)>)],
    mut entry: AuditEntry,
    now: UnixMicros,
    signer: Option<&AuditSigner>,
) -> Result<(u64, Option<Checkpoint>)> {
    // The chain lock first, before any row lock: purges of several nodes run one after the
    // other instead of deadlocking on each other's rows and the chain.
    super::audit::lock_chain(c)?;
    let (mut deleted, mut health, mut scans) = (0u64, 0u64, 0u64);
    for (device, ws) in windows {
        for (from, to) in ws {
            scans += c.execute(
                "DELETE FROM network_scans WHERE device_id = $1 AND ((scan_time >= $2 AND scan_time < $3)
                 OR fix_id IN (SELECT id FROM fixes WHERE device_id = $1 AND device_time >= $2 AND device_time < $3))",
                &[&device.0, &from.0, &to.0],
            )?;
            health += c.execute(
                "DELETE FROM device_health_history WHERE device_id = $1 AND reported_at >= $2 AND reported_at < $3",
                &[&device.0, &from.0, &to.0],
            )?;
            c.execute(
                "DELETE FROM unknown_frames WHERE device_id = $1 AND received_time >= $2 AND received_time < $3",
                &[&device.0, &from.0, &to.0],
            )?;
            deleted += c.execute(
                "DELETE FROM fixes WHERE device_id = $1 AND device_time >= $2 AND device_time < $3",
                &[&device.0, &from.0, &to.0],
            )?;
        }
    }
    entry.details = format!(
        "{}; health reports deleted: {health}; network scans deleted: {scans}; fixes deleted: {deleted}",
        entry.details
    );
    let (_, signed) = super::audit::append_tx(c, vec![entry], now, signer)?;
    Ok((deleted, signed))
}
