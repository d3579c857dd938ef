//! Alerts on SQLite, keyed by episode: raise, update, clear and reopen, with their evidence
//! in `alert_evidence`.

use super::*;
use crate::columns::Columns;

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
    crate::episode::apply_alert_change(&mut SqliteEpisode(conn), c, reopen_within_s)
}

/// [`crate::episode::apply_alert_change_notifying`] on SQLite.
pub(crate) fn apply_alert_change_notifying_tx(
    conn: &Connection,
    c: &AlertChange,
    notify: &crate::AlertNotify,
) -> Result<(AlertRecord, Opened)> {
    crate::episode::apply_alert_change_notifying(&mut SqliteEpisode(conn), c, notify)
}

/// [`crate::episode::escalate_due_alerts`] on SQLite.
pub(crate) fn escalate_due_alerts_tx(
    conn: &Connection,
    policy: crate::EscalationPolicy,
    endpoints: &[String],
    now: UnixMicros,
) -> Result<Vec<AlertRecord>> {
    crate::episode::escalate_due_alerts(&mut SqliteEpisode(conn), policy, endpoints, now)
}

/// An alert change's statements on SQLite.
struct SqliteEpisode<'a>(&'a Connection);

const EPISODE: &str = "order_id IS ?1 AND rule = ?2 AND protected_id IS ?3 AND zone_id IS ?4
     AND device_id IS ?5";

fn episode_key(c: &AlertChange) -> [rusqlite::types::Value; 5] {
    use rusqlite::types::Value;
    let opt = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    [
        opt(c.order_id.map(|o| o.0)),
        Value::Text(c.rule.as_str().into()),
        opt(c.protected.map(|p| p.0)),
        opt(c.zone.map(|z| z.0)),
        opt(c.device.map(|d| d.0)),
    ]
}

impl crate::episode::EpisodeStatements for SqliteEpisode<'_> {
    fn lock_episode(&mut self, _: &AlertChange) -> Result<()> {
        // One writer: the transaction is the lock.
        Ok(())
    }

    fn open_alert(&mut self, c: &AlertChange) -> Result<Option<i64>> {
        Ok(self
            .0
            .query_row(
                &format!(
                    "SELECT id FROM alerts WHERE condition_active = 1 AND {EPISODE} ORDER BY id DESC LIMIT 1"
                ),
                rusqlite::params_from_iter(episode_key(c)),
                |r| r.get(0),
            )
            .optional()?)
    }

    fn latest_closed(&mut self, c: &AlertChange) -> Result<Option<(i64, Option<i64>)>> {
        Ok(self
            .0
            .query_row(
                &format!(
                    "SELECT id, cleared_at FROM alerts WHERE condition_active = 0 AND {EPISODE} ORDER BY id DESC LIMIT 1"
                ),
                rusqlite::params_from_iter(episode_key(c)),
                |r| Ok((r.get("id")?, r.get("cleared_at")?)),
            )
            .optional()?)
    }

    fn reopen_closed(&mut self, id: i64, at: UnixMicros) -> Result<()> {
        self.0.execute(
            "UPDATE alerts SET condition_active = 1, cleared_at = NULL, state = 'raised',
             reopened_at = ?2, escalation_level = 0, escalated_at = NULL WHERE id = ?1",
            params![id, at.0],
        )?;
        Ok(())
    }

    fn restart_escalation(&mut self, id: i64, at: UnixMicros) -> Result<()> {
        self.0.execute(
            "UPDATE alerts SET reopened_at = ?2, escalation_level = 0, escalated_at = NULL WHERE id = ?1",
            params![id, at.0],
        )?;
        Ok(())
    }

    fn log_action(&mut self, id: i64, a: &crate::NewAlertAction) -> Result<()> {
        crate::lifecycle::insert_action(self.0, AlertId(id), a).map(drop)
    }

    fn insert_alert(&mut self, c: &AlertChange) -> Result<i64> {
        self.0.execute(
            "INSERT INTO alerts (order_id, case_id, rule, protected_id, zone_id, severity, state, condition_active,
             raised_at, updated_at, summary, min_distance_m, device_id, late, possible,
             closing_speed_mps, time_to_contact_s, heading_toward, raise_summary, raise_distance_m)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'raised', 1, ?7, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?8, ?9)",
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
                c.device.map(|d| d.0),
                c.details.late,
                c.details.possible,
                c.details.closing_speed_mps,
                c.details.time_to_contact_s,
                c.details.heading_toward
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    fn distance_and_state(&mut self, id: i64) -> Result<(Option<f64>, String)> {
        Ok(self.0.query_row(
            "SELECT min_distance_m, state FROM alerts WHERE id = ?1",
            [id],
            |r| Ok((r.get("min_distance_m")?, r.get("state")?)),
        )?)
    }

    fn add_evidence(&mut self, id: i64, fixes: &[FixId]) -> Result<()> {
        add_evidence(self.0, id, fixes)
    }

    fn update_alert(&mut self, id: i64, c: &AlertChange, min: Option<f64>) -> Result<()> {
        self.0.execute(
            "UPDATE alerts SET updated_at = ?2, summary = ?3, min_distance_m = ?4,
             possible = ?5, closing_speed_mps = ?6, time_to_contact_s = ?7, heading_toward = ?8,
             severity = ?9, state = CASE WHEN state = 'resolved' THEN 'raised' ELSE state END WHERE id = ?1",
            params![
                id,
                c.at.0,
                c.summary,
                min,
                c.details.possible,
                c.details.closing_speed_mps,
                c.details.time_to_contact_s,
                c.details.heading_toward,
                c.severity.as_str()
            ],
        )?;
        Ok(())
    }

    fn clear_alert(&mut self, id: i64, at: UnixMicros) -> Result<()> {
        self.0.execute(
            "UPDATE alerts SET condition_active = 0, cleared_at = ?2, updated_at = ?2 WHERE id = ?1",
            params![id, at.0],
        )?;
        Ok(())
    }

    fn load_alert(&mut self, id: AlertId) -> Result<AlertRecord> {
        load_alert(self.0, id)
    }

    fn unescalated(&mut self) -> Result<Vec<(i64, String, i64)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, severity, COALESCE(reopened_at, raised_at) AS since FROM alerts
             WHERE state = ?1 AND escalation_level = 0 ORDER BY id",
        )?;
        let rows = stmt.query_map([AlertState::Raised.as_str()], |r| {
            Ok((r.get("id")?, r.get("severity")?, r.get("since")?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn claim_escalation(&mut self, id: i64, at: UnixMicros) -> Result<bool> {
        // One writer: the alert found at level 0 is still there.
        let n = self.0.execute(
            "UPDATE alerts SET escalation_level = 1, escalated_at = ?2, updated_at = ?2
             WHERE id = ?1 AND escalation_level = 0",
            params![id, at.0],
        )?;
        Ok(n > 0)
    }

    fn claim_fence(&mut self, f: &crate::Fence) -> Result<bool> {
        crate::outbox::claim_fence_tx(self.0, f)
    }

    fn enqueue(
        &mut self,
        endpoint: &str,
        event: &str,
        alert: AlertId,
        key: &str,
        at: UnixMicros,
    ) -> Result<()> {
        crate::outbox::enqueue_keyed(self.0, endpoint, event, alert, None, key, at)
    }

    fn enqueue_push(
        &mut self,
        alert: AlertId,
        event: &str,
        key: &str,
        at: UnixMicros,
    ) -> Result<()> {
        crate::alerting::enqueue_push(self.0, alert, event, key, at).map(drop)
    }
}

pub(crate) fn load_alert(conn: &Connection, id: AlertId) -> Result<AlertRecord> {
    let mut rec = conn
        .query_row("SELECT * FROM alerts WHERE id = ?1", [id.0], |r| {
            Ok(alert_from_row(r))
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))??;
    rec.alert.evidence = evidence_of(conn, id)?;
    Ok(rec)
}

/// Appends the fixes not yet among the alert's evidence, after the ones it has, in the order
/// given.
pub(crate) fn add_evidence(conn: &Connection, alert: i64, fixes: &[FixId]) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO alert_evidence (alert_id, position, fix_id)
         VALUES (?1, (SELECT IFNULL(MAX(position) + 1, 0) FROM alert_evidence WHERE alert_id = ?1), ?2)",
    )?;
    for f in fixes {
        insert.execute(params![alert, f.0])?;
    }
    Ok(())
}

/// An alert's evidence, in the order it was named.
pub(crate) fn evidence_of(conn: &Connection, alert: AlertId) -> Result<Vec<FixId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT fix_id FROM alert_evidence WHERE alert_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([alert.0], |r| r.get::<_, i64>("fix_id"))?;
    Ok(rows
        .map(|r| r.map(FixId))
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn alert_from_row<R: Columns>(r: &R) -> Result<AlertRecord> {
    Ok(AlertRecord {
        alert: Alert {
            id: AlertId(r.col("id")?),
            order_id: r.col::<Option<i64>>("order_id")?.map(OrderId),
            case_id: r.col::<Option<i64>>("case_id")?.map(CaseId),
            rule: parse_col(&r.col::<String>("rule")?)?,
            severity: parse_col(&r.col::<String>("severity")?)?,
            state: parse_col(&r.col::<String>("state")?)?,
            raised_at: UnixMicros(r.col("raised_at")?),
            updated_at: UnixMicros(r.col("updated_at")?),
            summary: r.col("summary")?,
            min_distance_m: r.col("min_distance_m")?,
            // Filled from `alert_evidence` by the caller.
            evidence: Vec::new(),
        },
        protected: r.col::<Option<i64>>("protected_id")?.map(PersonId),
        zone: r.col::<Option<i64>>("zone_id")?.map(ZoneId),
        device: r.col::<Option<i64>>("device_id")?.map(DeviceId),
        condition_active: r.col("condition_active")?,
        cleared_at: r.col::<Option<i64>>("cleared_at")?.map(UnixMicros),
        details: AlertDetails {
            late: r.col("late")?,
            possible: r.col("possible")?,
            closing_speed_mps: r.col("closing_speed_mps")?,
            time_to_contact_s: r.col("time_to_contact_s")?,
            heading_toward: r.col("heading_toward")?,
        },
        escalation_level: r.col("escalation_level")?,
        raise_summary: r.col("raise_summary")?,
        raise_distance_m: r.col("raise_distance_m")?,
    })
}

impl Store {
    // ---- alerts -------------------------------------------------------------------------

    /// Applies an engine signal. A `Raised` for a key whose alert is still active updates that
    /// alert instead of opening a second one, so a restart that replays recent fixes does not
    /// double-count an episode.
    pub async fn apply_alert_change(&self, change: AlertChange) -> Result<AlertRecord> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::alerts::apply_alert_change_tx(c, &change, None)
                            .map(|(r, _)| r)
                    },
                    None,
                )
                .await;
        }
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
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::alerts::set_alert_state(c, id, state, now),
                    None,
                )
                .await;
        }
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
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::alerts::load_alert(c, id))
                .await;
        }
        self.read(move |conn| load_alert(conn, id)).await
    }

    /// Alerts, newest first; `active_only` keeps those not yet resolved. Of the `limit`
    /// newest, those `auth` covers (see [`crate::Authorized`]).
    pub async fn list_alerts(
        &self,
        auth: &crate::Authorized,
        active_only: bool,
        limit: usize,
    ) -> Result<Vec<AlertRecord>> {
        let cover = auth.coverage(self).await?;
        let mut out = self.newest_alerts(active_only, limit).await?;
        out.retain(|a| cover.alert(a));
        Ok(out)
    }

    /// Whether one of the `limit` newest alerts belongs to no case: a device alert from a
    /// device whose wearer is in no case (or that has no wearer), or a system alert (the
    /// server behind on ingest). Such alerts are shown under a rule of their own, which is
    /// decided (and logged) before they are read; this answers only whether there are any.
    pub async fn any_alert_outside_every_case(
        &self,
        active_only: bool,
        limit: usize,
    ) -> Result<bool> {
        let in_no_case = crate::Authorized::nothing().and_no_case();
        let cover = in_no_case.coverage(self).await?;
        Ok(self
            .newest_alerts(active_only, limit)
            .await?
            .iter()
            .any(|a| {
                a.alert.case_id.is_none()
                    && (a.device.is_some() || a.alert.rule == AlertRule::IngestBacklog)
                    && cover.alert(a)
            }))
    }

    async fn newest_alerts(&self, active_only: bool, limit: usize) -> Result<Vec<AlertRecord>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::alerts::list_alerts(c, active_only, limit))
                .await;
        }
        self.read(move |conn| {
            let sql = if active_only {
                "SELECT * FROM alerts WHERE state != 'resolved' ORDER BY updated_at DESC, id DESC LIMIT ?1"
            } else {
                "SELECT * FROM alerts ORDER BY updated_at DESC, id DESC LIMIT ?1"
            };
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map([limit as i64], |r| Ok(alert_from_row(r)))?;
            let mut out: Vec<AlertRecord> = rows.map(|r| r?).collect::<Result<_>>()?;
            for rec in &mut out {
                rec.alert.evidence = evidence_of(conn, rec.alert.id)?;
            }
            Ok(out)
        })
        .await
    }
}
