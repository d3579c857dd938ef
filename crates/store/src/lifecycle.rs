//! The alert action log: who did what to an alert, and when.
//!
//! A state change (acknowledge, dispatch, resolve) and its action row are written in one
//! transaction, so the log can never miss a step that the alert shows, or show one that was
//! rolled back. Actions without a state change (a call, a note) are appended on their own.

use crate::columns::Columns;
use crate::sqlite::load_alert;
use crate::{AlertRecord, Result, Store, StoreError};
use domain::{AlertId, AlertState, CaseId, UnixMicros};
use rusqlite::{Connection, params};

/// A lifecycle step to record. The store keeps the words as given; the server validates them.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlertAction {
    pub at: UnixMicros,
    pub actor_account_id: i64,
    pub actor_role: String,
    pub action: String,
    pub cause: Option<String>,
    pub note: Option<String>,
}

/// One row of the action log.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAction {
    pub id: i64,
    pub alert_id: AlertId,
    pub at: UnixMicros,
    pub actor_account_id: i64,
    pub actor_role: String,
    pub action: String,
    pub cause: Option<String>,
    pub note: Option<String>,
    /// The alert as it was at this step: its summary, closest distance and whether its
    /// condition held (`None` for rows stored before these were kept).
    pub summary: Option<String>,
    pub min_distance_m: Option<f64>,
    pub condition_active: Option<bool>,
}

pub(crate) fn insert_action(
    conn: &Connection,
    alert: AlertId,
    a: &NewAlertAction,
) -> Result<AlertAction> {
    conn.execute(
        "INSERT INTO alert_actions (alert_id, at, actor_account_id, actor_role, action, cause, note,
         summary, min_distance_m, condition_active)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, summary, min_distance_m, condition_active
         FROM alerts WHERE id = ?1",
        params![
            alert.0,
            a.at.0,
            a.actor_account_id,
            a.actor_role,
            a.action,
            a.cause,
            a.note
        ],
    )?;
    let id = conn.last_insert_rowid();
    let (summary, min_distance_m, condition_active) = conn.query_row(
        "SELECT summary, min_distance_m, condition_active FROM alert_actions WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get("summary")?,
                r.get("min_distance_m")?,
                r.get("condition_active")?,
            ))
        },
    )?;
    Ok(AlertAction {
        id,
        alert_id: alert,
        at: a.at,
        actor_account_id: a.actor_account_id,
        actor_role: a.actor_role.clone(),
        action: a.action.clone(),
        cause: a.cause.clone(),
        note: a.note.clone(),
        summary,
        min_distance_m,
        condition_active,
    })
}

pub(crate) fn action_from_row<R: Columns>(r: &R) -> Result<AlertAction> {
    Ok(AlertAction {
        id: r.col("id")?,
        alert_id: AlertId(r.col("alert_id")?),
        at: UnixMicros(r.col("at")?),
        actor_account_id: r.col("actor_account_id")?,
        actor_role: r.col("actor_role")?,
        action: r.col("action")?,
        cause: r.col("cause")?,
        note: r.col("note")?,
        summary: r.col("summary")?,
        min_distance_m: r.col("min_distance_m")?,
        condition_active: r.col("condition_active")?,
    })
}

impl Store {
    /// Moves an alert along its lifecycle and records the step in the action log, in one
    /// transaction. Returns the alert as it was before and as it is after.
    pub async fn set_alert_state_logged(
        &self,
        id: AlertId,
        state: AlertState,
        action: NewAlertAction,
    ) -> Result<(AlertRecord, AlertRecord)> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::lifecycle::set_alert_state_logged(c, id, state, action)
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                let before = load_alert(conn, id)?;
                conn.execute(
                    "UPDATE alerts SET state = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id.0, state.as_str(), action.at.0],
                )?;
                insert_action(conn, id, &action)?;
                Ok((before, load_alert(conn, id)?))
            },
            None,
        )
        .await
    }

    /// Appends an action that does not change the alert's state (a call, a note).
    pub async fn add_alert_action(
        &self,
        id: AlertId,
        action: NewAlertAction,
    ) -> Result<AlertAction> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::lifecycle::add_alert_action(c, id, action),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                load_alert(conn, id)?;
                insert_action(conn, id, &action)
            },
            None,
        )
        .await
    }

    /// The action log of one alert, oldest first; `auth` must cover the alert.
    pub async fn alert_actions(
        &self,
        auth: &crate::Authorized,
        id: AlertId,
    ) -> Result<Vec<AlertAction>> {
        let alert = match self.alert(id).await {
            Ok(a) => a,
            // No alert, no actions: there is nothing to cover.
            Err(crate::StoreError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if !auth.coverage(self).await?.alert(&alert) {
            return Err(crate::StoreError::NotAuthorized(format!(
                "no logged decision covers alert {}",
                id.0
            )));
        }
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::lifecycle::alert_actions(c, id))
                .await;
        }
        self.read(move |conn| {
            let mut stmt =
                conn.prepare("SELECT * FROM alert_actions WHERE alert_id = ?1 ORDER BY at, id")?;
            let rows = stmt.query_map([id.0], |r| Ok(action_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Alerts raised in `[from, to)`, with their action logs (oldest first), for measures.
    pub async fn alerts_raised_between(
        &self,
        from: UnixMicros,
        to: UnixMicros,
    ) -> Result<Vec<(AlertRecord, Vec<AlertAction>)>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::lifecycle::alerts_raised_between(c, from, to))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id FROM alerts WHERE raised_at >= ?1 AND raised_at < ?2 ORDER BY id",
            )?;
            let ids = stmt
                .query_map([from.0, to.0], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut acts =
                conn.prepare("SELECT * FROM alert_actions WHERE alert_id = ?1 ORDER BY at, id")?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let rec = load_alert(conn, AlertId(id))?;
                let log = acts
                    .query_map([id], |r| Ok(action_from_row(r)))?
                    .map(|r| r?)
                    .collect::<Result<Vec<_>>>()?;
                out.push((rec, log));
            }
            Ok(out)
        })
        .await
    }

    /// When each case was opened (for case-days in a window).
    pub async fn case_opened_at(&self) -> Result<Vec<(CaseId, UnixMicros)>> {
        if self.is_postgres() {
            return self
                .pg_read(crate::postgres::lifecycle::case_opened_at)
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT id, created_at FROM cases")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    CaseId(r.get("id")?),
                    UnixMicros(r.get::<_, i64>("created_at")?),
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(StoreError::from)
        })
        .await
    }
}
