//! The durable outbox for webhooks, and alert escalation.
//!
//! A webhook delivery is recorded in the same transaction as the alert change that causes it
//! (the transactional-outbox pattern): an alert can never be stored without its deliveries, or
//! a delivery queued for an alert that was rolled back. A worker in the server sends due rows,
//! marks them delivered on a 2xx, and backs off otherwise. Every row has an idempotency key
//! (`alert-<id>-<event>`), sent with each attempt, so a receiver that saw an attempt whose
//! answer was lost can recognise the retry.

use crate::columns::Columns;
use crate::sqlite::Opened;
use crate::{AlertChange, AlertRecord, Result, Store};
use domain::{AlertId, Severity, UnixMicros};
use rusqlite::{Connection, params};

/// One queued webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub endpoint: String,
    /// `alert.raised` or `alert.escalated`.
    pub event: String,
    pub alert_id: AlertId,
    /// The dispatch task a `dispatch.police` delivery belongs to.
    pub task_id: Option<i64>,
    pub idempotency_key: String,
    pub attempts: i64,
}

pub(crate) fn item_from_row<R: Columns>(r: &R) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: r.col("id")?,
        endpoint: r.col("endpoint")?,
        event: r.col("event")?,
        alert_id: AlertId(r.col("alert_id")?),
        idempotency_key: r.col("idempotency_key")?,
        attempts: r.col("attempts")?,
        task_id: r.col("task_id")?,
    })
}

/// Who hears of an alert change beyond the live stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertNotify {
    /// Webhooks for `alert.raised`.
    pub raised: Vec<String>,
    /// Webhooks for `alert.reopened`.
    pub reopened: Vec<String>,
    /// A closed alert whose condition returns within this many seconds is reopened instead
    /// of opening a new one (`None`: never).
    pub reopen_within_s: Option<i64>,
    /// Queue Web Push messages for the people of the alert's case.
    pub push: bool,
    /// Cluster mode: the lease the writing node holds on the alert's partition. The write
    /// happens only if no newer token has been claimed for that partition (see [`Fence`]).
    pub fence: Option<Fence>,
}

/// A partition's fencing token: the revision at which a node took the partition's lease,
/// larger for every new owner. The store keeps the largest token claimed per partition and
/// refuses, inside the writing transaction, an alert change carrying an older one
/// ([`crate::StoreError::Fenced`]), so a deposed node's delayed write (a retry after a
/// pause, a slow disk) cannot land after its successor has started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub partition: u32,
    pub token: u64,
}

impl Fence {
    fn token_i64(&self) -> Result<i64> {
        i64::try_from(self.token).map_err(|_| {
            crate::StoreError::Conflict(format!("fencing token {} out of range", self.token))
        })
    }
}

/// The statement both backends run: records `token` for the partition unless a larger one is
/// there; a row comes back only if the token was accepted.
pub(crate) const CLAIM_FENCE_SQLITE: &str = "INSERT INTO partition_fences (part, token) VALUES (?1, ?2)
     ON CONFLICT (part) DO UPDATE SET token = excluded.token WHERE partition_fences.token <= excluded.token
     RETURNING token";

pub(crate) fn fenced(f: &Fence) -> crate::StoreError {
    crate::StoreError::Fenced(format!(
        "partition {} has a newer owner than token {}; alert change left to it",
        f.partition, f.token
    ))
}

/// Claims `f` in this transaction (SQLite): `Ok(false)` when a newer token is recorded.
pub(crate) fn claim_fence_tx(conn: &Connection, f: &Fence) -> Result<bool> {
    let mut stmt = conn.prepare_cached(CLAIM_FENCE_SQLITE)?;
    let mut rows = stmt.query(params![f.partition, f.token_i64()?])?;
    Ok(rows.next()?.is_some())
}

/// Seconds after which an unacknowledged alert escalates, per severity (`None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EscalationPolicy {
    pub critical_s: Option<i64>,
    pub warning_s: Option<i64>,
    pub info_s: Option<i64>,
}

impl EscalationPolicy {
    pub(crate) fn after_s(&self, s: Severity) -> Option<i64> {
        match s {
            Severity::Critical => self.critical_s,
            Severity::Warning => self.warning_s,
            Severity::Info => self.info_s,
        }
    }
}

/// Queues one delivery; a second row with the same endpoint and key is ignored.
pub(crate) fn enqueue_keyed(
    conn: &Connection,
    endpoint: &str,
    event: &str,
    alert: AlertId,
    task: Option<i64>,
    key: &str,
    now: UnixMicros,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox (endpoint, event, alert_id, task_id, idempotency_key, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?;
    stmt.execute(params![endpoint, event, alert.0, task, key, now.0])?;
    Ok(())
}

impl Store {
    /// Claims the fencing tokens of partitions just taken over, in one transaction, before
    /// the new owner writes anything for them: from its commit on, an older owner's alert
    /// write for these partitions is refused. Answers, per fence, whether it was accepted
    /// (`false`: a newer token is already recorded, so this lease is itself outdated).
    pub async fn claim_fences(&self, fences: Vec<Fence>) -> Result<Vec<bool>> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        fences
                            .iter()
                            .map(|f| crate::postgres::outbox::claim_fence_tx(c, f))
                            .collect()
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| fences.iter().map(|f| claim_fence_tx(conn, f)).collect(),
            None,
        )
        .await
    }

    /// Applies an engine signal like [`Store::apply_alert_change`], reopening a recently
    /// closed alert of the same episode key when `notify.reopen_within_s` allows, and queues
    /// in the same transaction `alert.raised` (a new alert) or `alert.reopened` for the
    /// webhooks, and Web Push messages for the people of the case.
    pub async fn apply_alert_change_notifying(
        &self,
        change: AlertChange,
        notify: AlertNotify,
    ) -> Result<(AlertRecord, Opened)> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::episode::apply_alert_change_notifying(c, &change, &notify),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| crate::sqlite::apply_alert_change_notifying_tx(conn, &change, &notify),
            None,
        )
        .await
    }

    /// Escalates every alert still `raised` (nobody acknowledged it) past its severity's
    /// deadline: raises its escalation level and queues `alert.escalated` for `endpoints`.
    /// Driven by the clock, so it survives restarts: the deadline is computed from the stored
    /// `raised_at`, not from a timer in memory.
    pub async fn escalate_due_alerts(
        &self,
        policy: EscalationPolicy,
        endpoints: Vec<String>,
        now: UnixMicros,
    ) -> Result<Vec<AlertRecord>> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::episode::escalate_due_alerts(c, policy, &endpoints, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| crate::sqlite::escalate_due_alerts_tx(conn, policy, &endpoints, now),
            None,
        )
        .await
    }

    /// Deliveries due at `now`, oldest first. On PostgreSQL (several nodes) the answer is a
    /// claim: the rows are leased to this caller for `OUTBOX_LEASE_S` (600 s) or until
    /// [`Store::outbox_delivered`] / [`Store::outbox_failed`], so each node gets different ones.
    pub async fn due_outbox(&self, now: UnixMicros, limit: usize) -> Result<Vec<OutboxItem>> {
        if self.is_postgres() {
            // Several nodes share the outbox: answering is claiming (see postgres/outbox.rs).
            return self
                .pg_write(
                    move |c| crate::postgres::outbox::due_outbox(c, now, limit),
                    None,
                )
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, endpoint, event, alert_id, idempotency_key, attempts, task_id FROM outbox
                 WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now.0, limit as i64], |r| Ok(item_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Records a successful delivery.
    pub async fn outbox_delivered(&self, id: i64, now: UnixMicros) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::outbox::outbox_delivered(c, id, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                    params![id, now.0],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    /// Records a failed attempt: retry at `next_attempt_at`, or give up (`None`).
    pub async fn outbox_failed(
        &self,
        id: i64,
        error: String,
        next_attempt_at: Option<UnixMicros>,
        now: UnixMicros,
    ) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::outbox::outbox_failed(c, id, &error, next_attempt_at, now)
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                match next_attempt_at {
                    Some(t) => conn.execute(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
                        params![id, error, t.0],
                    )?,
                    None => conn.execute(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, dead_at = ?3 WHERE id = ?1",
                        params![id, error, now.0],
                    )?,
                };
                Ok(())
            },
            None,
        )
        .await
    }

    /// Deliveries not yet made (waiting or retrying), for health reporting.
    pub async fn outbox_pending(&self) -> Result<i64> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::outbox::outbox_pending).await;
        }
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }
}
