//! The alert action log on PostgreSQL, with the rules of `lifecycle.rs`: a state change and
//! its action row in one job (one transaction), each row carrying the alert as it was.

use super::alerts::load_alert;
use crate::lifecycle::action_from_row;
use crate::lifecycle::{AlertAction, NewAlertAction};
use crate::{AlertRecord, Result, StoreError};
use domain::{AlertId, AlertState, CaseId, UnixMicros};
use postgres::Client;

pub(crate) fn insert_action(
    c: &mut Client,
    alert: AlertId,
    a: &NewAlertAction,
) -> Result<AlertAction> {
    let row = c
        .query_opt(
            "INSERT INTO alert_actions (alert_id, at, actor_account_id, actor_role, action, cause, note,
             summary, min_distance_m, condition_active)
             SELECT $1, $2, $3, $4, $5, $6, $7, summary, min_distance_m, condition_active
             FROM alerts WHERE id = $1
             RETURNING *",
            &[
                &alert.0,
                &a.at.0,
                &a.actor_account_id,
                &a.actor_role,
                &a.action,
                &a.cause,
                &a.note,
            ],
        )?
        .ok_or_else(|| StoreError::NotFound(format!("alert {alert}")))?;
    action_from_row(&row)
}

fn actions_of(c: &mut Client, id: AlertId) -> Result<Vec<AlertAction>> {
    c.query(
        "SELECT * FROM alert_actions WHERE alert_id = $1 ORDER BY at, id",
        &[&id.0],
    )?
    .iter()
    .map(action_from_row)
    .collect()
}

pub(crate) fn set_alert_state_logged(
    c: &mut Client,
    id: AlertId,
    state: AlertState,
    action: NewAlertAction,
) -> Result<(AlertRecord, AlertRecord)> {
    let before = load_alert(c, id)?;
    c.execute(
        "UPDATE alerts SET state = $2, updated_at = $3 WHERE id = $1",
        &[&id.0, &state.as_str(), &action.at.0],
    )?;
    insert_action(c, id, &action)?;
    Ok((before, load_alert(c, id)?))
}

pub(crate) fn add_alert_action(
    c: &mut Client,
    id: AlertId,
    action: NewAlertAction,
) -> Result<AlertAction> {
    load_alert(c, id)?;
    insert_action(c, id, &action)
}

pub(crate) fn alert_actions(c: &mut Client, id: AlertId) -> Result<Vec<AlertAction>> {
    actions_of(c, id)
}

pub(crate) fn alerts_raised_between(
    c: &mut Client,
    from: UnixMicros,
    to: UnixMicros,
) -> Result<Vec<(AlertRecord, Vec<AlertAction>)>> {
    let ids = c
        .query(
            "SELECT id FROM alerts WHERE raised_at >= $1 AND raised_at < $2 ORDER BY id",
            &[&from.0, &to.0],
        )?
        .iter()
        .map(|r| r.try_get::<_, i64>("id"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let rec = load_alert(c, AlertId(id))?;
        let log = actions_of(c, AlertId(id))?;
        out.push((rec, log));
    }
    Ok(out)
}

pub(crate) fn case_opened_at(c: &mut Client) -> Result<Vec<(CaseId, UnixMicros)>> {
    c.query("SELECT id, created_at FROM cases", &[])?
        .iter()
        .map(|r| {
            Ok((
                CaseId(r.try_get("id")?),
                UnixMicros(r.try_get("created_at")?),
            ))
        })
        .collect()
}
