//! Alerts on PostgreSQL, keyed by episode (order, rule, person, zone, device) as on SQLite:
//! a raise or update of an open episode updates its alert, a clear closes it, a condition
//! that returns within the reopen window reopens it with a `reopened` action row; evidence
//! is appended to `alert_evidence` in the order named.
//!
//! Two nodes may handle one episode only during a partition takeover; the episode lookup
//! takes a transaction advisory lock on the episode key first, so they cannot both open it.

use crate::episode::EpisodeStatements;
use crate::lifecycle::NewAlertAction;
use crate::sqlite::alerts::alert_from_row;
use crate::sqlite::{AlertChange, AlertRecord, Opened};
use crate::{Result, StoreError};
use domain::*;
use postgres::Client;

/// First key of the per-episode advisory lock (the second is a hash of the episode key).
const EPISODE_LOCK: i32 = 3;

pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE alerts (
        id BIGSERIAL PRIMARY KEY,
        order_id BIGINT REFERENCES orders(id),
        case_id BIGINT REFERENCES cases(id),
        rule TEXT NOT NULL,
        protected_id BIGINT,
        zone_id BIGINT,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        condition_active BOOLEAN NOT NULL,
        raised_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        cleared_at BIGINT,
        summary TEXT NOT NULL,
        min_distance_m DOUBLE PRECISION,
        device_id BIGINT,
        late BOOLEAN NOT NULL DEFAULT false,
        possible BOOLEAN NOT NULL DEFAULT false,
        closing_speed_mps DOUBLE PRECISION,
        time_to_contact_s DOUBLE PRECISION,
        heading_toward BOOLEAN,
        escalation_level BIGINT NOT NULL DEFAULT 0,
        escalated_at BIGINT,
        reopened_at BIGINT,
        raise_summary TEXT,
        raise_distance_m DOUBLE PRECISION
    );
    CREATE INDEX alerts_open ON alerts(order_id, rule, protected_id, zone_id) WHERE condition_active;
    CREATE TABLE alert_evidence (
        alert_id BIGINT NOT NULL REFERENCES alerts(id),
        position BIGINT NOT NULL,
        fix_id BIGINT NOT NULL,
        PRIMARY KEY (alert_id, fix_id)
    );
    CREATE UNIQUE INDEX alert_evidence_order ON alert_evidence(alert_id, position);
    CREATE TABLE alert_actions (
        id BIGSERIAL PRIMARY KEY,
        alert_id BIGINT NOT NULL REFERENCES alerts(id),
        at BIGINT NOT NULL,
        actor_account_id BIGINT NOT NULL,
        actor_role TEXT NOT NULL,
        action TEXT NOT NULL,
        cause TEXT,
        note TEXT,
        summary TEXT,
        min_distance_m DOUBLE PRECISION,
        condition_active BOOLEAN
    );
    CREATE INDEX alert_actions_alert ON alert_actions(alert_id, at);
"#;

const EPISODE: &str =
    "order_id IS NOT DISTINCT FROM $1 AND rule = $2 AND protected_id IS NOT DISTINCT FROM $3
     AND zone_id IS NOT DISTINCT FROM $4 AND device_id IS NOT DISTINCT FROM $5";

fn evidence_of(c: &mut Client, alert: AlertId) -> Result<Vec<FixId>> {
    c.query(
        "SELECT fix_id FROM alert_evidence WHERE alert_id = $1 ORDER BY position",
        &[&alert.0],
    )?
    .iter()
    .map(|r| Ok(FixId(r.try_get("fix_id")?)))
    .collect()
}

fn add_evidence(c: &mut Client, alert: i64, fixes: &[FixId]) -> Result<()> {
    for f in fixes {
        c.execute(
            "INSERT INTO alert_evidence (alert_id, position, fix_id)
             VALUES ($1, (SELECT COALESCE(MAX(position) + 1, 0) FROM alert_evidence WHERE alert_id = $1), $2)
             ON CONFLICT DO NOTHING",
            &[&alert, &f.0],
        )?;
    }
    Ok(())
}

pub(crate) fn load_alert(c: &mut Client, id: AlertId) -> Result<AlertRecord> {
    let row = c
        .query_opt("SELECT * FROM alerts WHERE id = $1", &[&id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?;
    let mut rec = alert_from_row(&row)?;
    rec.alert.evidence = evidence_of(c, id)?;
    Ok(rec)
}

pub(crate) fn list_alerts(
    c: &mut Client,
    active_only: bool,
    limit: usize,
) -> Result<Vec<AlertRecord>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = if active_only {
        "SELECT * FROM alerts WHERE state != 'resolved' ORDER BY updated_at DESC, id DESC LIMIT $1"
    } else {
        "SELECT * FROM alerts ORDER BY updated_at DESC, id DESC LIMIT $1"
    };
    let rows = c.query(sql, &[&limit])?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut rec = alert_from_row(r)?;
        rec.alert.evidence = evidence_of(c, rec.alert.id)?;
        out.push(rec);
    }
    Ok(out)
}

pub(crate) fn set_alert_state(
    c: &mut Client,
    id: AlertId,
    state: AlertState,
    now: UnixMicros,
) -> Result<AlertRecord> {
    let n = c.execute(
        "UPDATE alerts SET state = $2, updated_at = $3 WHERE id = $1",
        &[&id.0, &state.as_str(), &now.0],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("alert {id}")));
    }
    load_alert(c, id)
}

pub(crate) fn apply_alert_change_tx(
    c: &mut Client,
    ch: &AlertChange,
    reopen_within_s: Option<i64>,
) -> Result<(AlertRecord, Opened)> {
    crate::episode::apply_alert_change(c, ch, reopen_within_s)
}

fn episode_key(
    ch: &AlertChange,
) -> (
    Option<i64>,
    &'static str,
    Option<i64>,
    Option<i64>,
    Option<i64>,
) {
    (
        ch.order_id.map(|o| o.0),
        ch.rule.as_str(),
        ch.protected.map(|p| p.0),
        ch.zone.map(|z| z.0),
        ch.device.map(|d| d.0),
    )
}

/// An alert change's statements on PostgreSQL.
impl EpisodeStatements for Client {
    fn lock_episode(&mut self, ch: &AlertChange) -> Result<()> {
        let (o, r, p, z, d) = episode_key(ch);
        let lock = format!("{o:?}/{r}/{p:?}/{z:?}/{d:?}");
        self.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&EPISODE_LOCK, &lock],
        )?;
        Ok(())
    }

    fn open_alert(&mut self, ch: &AlertChange) -> Result<Option<i64>> {
        let (o, r, p, z, d) = episode_key(ch);
        self.query_opt(
            &format!("SELECT id FROM alerts WHERE condition_active AND {EPISODE} ORDER BY id DESC LIMIT 1"),
            &[&o, &r, &p, &z, &d],
        )?
        .map(|r| r.try_get("id"))
        .transpose()
        .map_err(Into::into)
    }

    fn latest_closed(&mut self, ch: &AlertChange) -> Result<Option<(i64, Option<i64>)>> {
        let (o, r, p, z, d) = episode_key(ch);
        let Some(row) = self.query_opt(
            &format!("SELECT id, cleared_at FROM alerts WHERE NOT condition_active AND {EPISODE} ORDER BY id DESC LIMIT 1"),
            &[&o, &r, &p, &z, &d],
        )?
        else {
            return Ok(None);
        };
        Ok(Some((row.try_get("id")?, row.try_get("cleared_at")?)))
    }

    fn reopen_closed(&mut self, id: i64, at: UnixMicros) -> Result<()> {
        self.execute(
            "UPDATE alerts SET condition_active = true, cleared_at = NULL, state = 'raised',
             reopened_at = $2, escalation_level = 0, escalated_at = NULL WHERE id = $1",
            &[&id, &at.0],
        )?;
        Ok(())
    }

    fn restart_escalation(&mut self, id: i64, at: UnixMicros) -> Result<()> {
        self.execute(
            "UPDATE alerts SET reopened_at = $2, escalation_level = 0, escalated_at = NULL WHERE id = $1",
            &[&id, &at.0],
        )?;
        Ok(())
    }

    fn log_action(&mut self, id: i64, a: &NewAlertAction) -> Result<()> {
        super::lifecycle::insert_action(self, AlertId(id), a).map(drop)
    }

    fn insert_alert(&mut self, ch: &AlertChange) -> Result<i64> {
        let r = self.query_one(
            "INSERT INTO alerts (order_id, case_id, rule, protected_id, zone_id, severity, state, condition_active,
             raised_at, updated_at, summary, min_distance_m, device_id, late, possible,
             closing_speed_mps, time_to_contact_s, heading_toward, raise_summary, raise_distance_m)
             VALUES ($1, $2, $3, $4, $5, $6, 'raised', true, $7, $7, $8, $9, $10, $11, $12, $13, $14, $15, $8, $9)
             RETURNING id",
            &[
                &ch.order_id.map(|o| o.0),
                &ch.case_id.map(|o| o.0),
                &ch.rule.as_str(),
                &ch.protected.map(|p| p.0),
                &ch.zone.map(|z| z.0),
                &ch.severity.as_str(),
                &ch.at.0,
                &ch.summary,
                &ch.distance_m,
                &ch.device.map(|d| d.0),
                &ch.details.late,
                &ch.details.possible,
                &ch.details.closing_speed_mps,
                &ch.details.time_to_contact_s,
                &ch.details.heading_toward,
            ],
        )?;
        Ok(r.try_get("id")?)
    }

    fn distance_and_state(&mut self, id: i64) -> Result<(Option<f64>, String)> {
        let r = self.query_one(
            "SELECT min_distance_m, state FROM alerts WHERE id = $1",
            &[&id],
        )?;
        Ok((r.try_get("min_distance_m")?, r.try_get("state")?))
    }

    fn add_evidence(&mut self, id: i64, fixes: &[FixId]) -> Result<()> {
        add_evidence(self, id, fixes)
    }

    fn update_alert(&mut self, id: i64, ch: &AlertChange, min: Option<f64>) -> Result<()> {
        self.execute(
            "UPDATE alerts SET updated_at = $2, summary = $3, min_distance_m = $4,
             possible = $5, closing_speed_mps = $6, time_to_contact_s = $7, heading_toward = $8,
             severity = $9, state = CASE WHEN state = 'resolved' THEN 'raised' ELSE state END WHERE id = $1",
            &[
                &id,
                &ch.at.0,
                &ch.summary,
                &min,
                &ch.details.possible,
                &ch.details.closing_speed_mps,
                &ch.details.time_to_contact_s,
                &ch.details.heading_toward,
                &ch.severity.as_str(),
            ],
        )?;
        Ok(())
    }

    fn clear_alert(&mut self, id: i64, at: UnixMicros) -> Result<()> {
        self.execute(
            "UPDATE alerts SET condition_active = false, cleared_at = $2, updated_at = $2 WHERE id = $1",
            &[&id, &at.0],
        )?;
        Ok(())
    }

    fn load_alert(&mut self, id: AlertId) -> Result<AlertRecord> {
        load_alert(self, id)
    }

    fn unescalated(&mut self) -> Result<Vec<(i64, String, i64)>> {
        self.query(
            "SELECT id, severity, COALESCE(reopened_at, raised_at) AS since FROM alerts
             WHERE state = $1 AND escalation_level = 0 ORDER BY id",
            &[&AlertState::Raised.as_str()],
        )?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("severity")?,
                r.try_get("since")?,
            ))
        })
        .collect()
    }

    fn claim_escalation(&mut self, id: i64, at: UnixMicros) -> Result<bool> {
        // Another node escalating the same alert now holds it (skipped) or has escalated it
        // already (no longer level 0).
        let claimed = self.query_opt(
            "UPDATE alerts SET escalation_level = 1, escalated_at = $2, updated_at = $2
             WHERE id = (SELECT id FROM alerts WHERE id = $1 AND state = $3 AND escalation_level = 0
                         FOR UPDATE SKIP LOCKED)
             RETURNING id",
            &[&id, &at.0, &AlertState::Raised.as_str()],
        )?;
        Ok(claimed.is_some())
    }

    fn claim_fence(&mut self, f: &crate::Fence) -> Result<bool> {
        super::outbox::claim_fence_tx(self, f)
    }

    fn enqueue(
        &mut self,
        endpoint: &str,
        event: &str,
        alert: AlertId,
        key: &str,
        at: UnixMicros,
    ) -> Result<()> {
        super::outbox::enqueue_keyed(self, endpoint, event, alert, None, key, at)
    }

    fn enqueue_push(
        &mut self,
        alert: AlertId,
        event: &str,
        key: &str,
        at: UnixMicros,
    ) -> Result<()> {
        super::alerting::enqueue_push(self, alert, event, key, at).map(drop)
    }
}
