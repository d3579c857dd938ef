//! The outbox and escalation on PostgreSQL, shared by several nodes.
//!
//! Deliveries are queued in the transaction of the alert change that causes them, one row per
//! endpoint and idempotency key (`ON CONFLICT DO NOTHING`), as on SQLite. Several nodes run
//! the delivery worker against one database, so [`due_outbox`] does not only read: it claims
//! the due rows it answers with `FOR UPDATE SKIP LOCKED` and a lease (`claimed_until`), in a
//! job of the writer. Another node's claim skips them until the lease ends; a delivered or
//! failed attempt ends it at once, and a node that crashed mid-delivery leaves a lease that
//! simply expires, after which the row is claimed again (the receiver recognises the retry
//! by its idempotency key). Escalation claims each due alert the same way, so two nodes
//! escalating together escalate (and queue `alert.escalated`) once.

use crate::outbox::{OutboxItem, item_from_row};
use crate::{Result, StoreError};
use domain::{AlertId, UnixMicros};
use postgres::Client;

/// 11: the largest fencing token claimed per partition (cluster mode, see
/// [`crate::Fence`]).
pub(crate) const FENCE_MIGRATION: &str = r#"
    CREATE TABLE partition_fences (
        part BIGINT PRIMARY KEY,
        token BIGINT NOT NULL
    );
"#;

/// Claims `f` in this transaction: `Ok(false)` when a newer token is recorded. The upsert
/// takes the partition's row lock, so alert writes of one partition are serialised with the
/// successor's claim: either the old write commits before the claim, or it sees the claim.
pub(crate) fn claim_fence_tx(c: &mut Client, f: &crate::Fence) -> Result<bool> {
    let token = i64::try_from(f.token)
        .map_err(|_| StoreError::Conflict(format!("fencing token {} out of range", f.token)))?;
    let row = c.query_opt(
        "INSERT INTO partition_fences (part, token) VALUES ($1, $2)
         ON CONFLICT (part) DO UPDATE SET token = EXCLUDED.token
         WHERE partition_fences.token <= EXCLUDED.token
         RETURNING token",
        &[&i64::from(f.partition), &token],
    )?;
    Ok(row.is_some())
}

/// How long a claimed delivery is left to the node that claimed it before another may.
pub(crate) const OUTBOX_LEASE_S: i64 = 600;

/// Dispatch tasks, notification settings, push subscriptions (`alerting.rs`) and the outbox.
/// The account columns carry no foreign key here: `accounts` is created by the accounts
/// migration (part A); the writes check the account exists, as on SQLite.
pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE tasks (
        id BIGSERIAL PRIMARY KEY,
        alert_id BIGINT NOT NULL REFERENCES alerts(id),
        case_id BIGINT NOT NULL REFERENCES cases(id),
        kind TEXT NOT NULL,
        assignee_account_id BIGINT NOT NULL,
        target_person_id BIGINT NOT NULL REFERENCES people(id),
        state TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (alert_id, kind, assignee_account_id, target_person_id)
    );
    CREATE INDEX tasks_assignee ON tasks(assignee_account_id, id);
    CREATE TABLE account_settings (
        account_id BIGINT PRIMARY KEY,
        silent BOOLEAN NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE push_subscriptions (
        id BIGSERIAL PRIMARY KEY,
        account_id BIGINT NOT NULL,
        endpoint TEXT NOT NULL UNIQUE,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        endpoint TEXT NOT NULL,
        event TEXT NOT NULL,
        alert_id BIGINT NOT NULL REFERENCES alerts(id),
        task_id BIGINT REFERENCES tasks(id),
        idempotency_key TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        delivered_at BIGINT,
        dead_at BIGINT,
        last_error TEXT,
        claimed_until BIGINT,
        UNIQUE (endpoint, idempotency_key)
    );
    CREATE INDEX outbox_due ON outbox(next_attempt_at, id) WHERE delivered_at IS NULL AND dead_at IS NULL;
"#;

/// Queues one delivery; a second row with the same endpoint and key is ignored.
pub(crate) fn enqueue_keyed(
    c: &mut Client,
    endpoint: &str,
    event: &str,
    alert: AlertId,
    task: Option<i64>,
    key: &str,
    now: UnixMicros,
) -> Result<()> {
    c.execute(
        "INSERT INTO outbox (endpoint, event, alert_id, task_id, idempotency_key, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
        &[&endpoint, &event, &alert.0, &task, &key, &now.0],
    )?;
    Ok(())
}

/// Claims up to `limit` due deliveries for [`OUTBOX_LEASE_S`], oldest first.
pub(crate) fn due_outbox(c: &mut Client, now: UnixMicros, limit: usize) -> Result<Vec<OutboxItem>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let until = now.0.saturating_add(OUTBOX_LEASE_S * UnixMicros::SECOND);
    let rows = c.query(
        "UPDATE outbox SET claimed_until = $3 WHERE id IN (
             SELECT id FROM outbox
             WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1
               AND (claimed_until IS NULL OR claimed_until <= $1)
             ORDER BY next_attempt_at, id LIMIT $2
             FOR UPDATE SKIP LOCKED)
         RETURNING id, endpoint, event, alert_id, idempotency_key, attempts, task_id, next_attempt_at",
        &[&now.0, &limit, &until],
    )?;
    let mut items = rows
        .iter()
        .map(|r| Ok((r.try_get::<_, i64>("next_attempt_at")?, item_from_row(r)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    // `RETURNING` keeps no order: the claim's own.
    items.sort_by_key(|(at, item)| (*at, item.id));
    Ok(items.into_iter().map(|(_, item)| item).collect())
}

pub(crate) fn outbox_delivered(c: &mut Client, id: i64, now: UnixMicros) -> Result<()> {
    c.execute(
        "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL,
         claimed_until = NULL WHERE id = $1",
        &[&id, &now.0],
    )?;
    Ok(())
}

pub(crate) fn outbox_failed(
    c: &mut Client,
    id: i64,
    error: &str,
    next_attempt_at: Option<UnixMicros>,
    now: UnixMicros,
) -> Result<()> {
    match next_attempt_at {
        Some(t) => c.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,
             claimed_until = NULL WHERE id = $1",
            &[&id, &error, &t.0],
        )?,
        None => c.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, dead_at = $3,
             claimed_until = NULL WHERE id = $1",
            &[&id, &error, &now.0],
        )?,
    };
    Ok(())
}

pub(crate) fn outbox_pending(c: &mut Client) -> Result<i64> {
    Ok(c.query_one(
        "SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        &[],
    )?
    .try_get("n")?)
}
