//! Dispatch tasks, notification settings and Web Push subscriptions on PostgreSQL, with the
//! rules of the SQLite owner (`alerting.rs`): a dispatch is one transaction (tasks, police
//! grant, action rows, alert state, police webhooks); a second dispatch to the same people
//! reuses the open task; push deliveries are queued in the transaction of the alert change.
//! The tables are created by the outbox migration (`outbox.rs`).

use super::outbox::enqueue_keyed;
use crate::alerting::task_from_row;
use crate::alerting::{
    DispatchStatements, NewDispatch, PushSubscription, Task, police_webhook_key,
    subscription_from_row,
};
use crate::lifecycle::NewAlertAction;
use crate::{AlertRecord, Result, StoreError};
use access::AccountId;
use domain::{AlertId, CaseId, PersonId, UnixMicros};
use postgres::Client;

fn insert_task(
    c: &mut Client,
    d: &NewDispatch,
    kind: &str,
    assignee: AccountId,
    target: PersonId,
) -> Result<Task> {
    c.execute(
        "INSERT INTO tasks (alert_id, case_id, kind, assignee_account_id, target_person_id, state, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $6)
         ON CONFLICT (alert_id, kind, assignee_account_id, target_person_id) DO NOTHING",
        &[&d.alert.0, &d.case.0, &kind, &assignee.0, &target.0, &d.at.0],
    )?;
    task_from_row(&c.query_one(
        "SELECT * FROM tasks WHERE alert_id = $1 AND kind = $2 AND assignee_account_id = $3 AND target_person_id = $4",
        &[&d.alert.0, &kind, &assignee.0, &target.0],
    )?)
}

/// The case an alert belongs to: its own, or for a device alert the case its wearer is a
/// party of (the offender's first, then a protected person's).
pub(crate) fn alert_case_tx(c: &mut Client, alert: AlertId) -> Result<Option<CaseId>> {
    let row = c.query_opt(
        "SELECT COALESCE(a.case_id,
            (SELECT c.id FROM devices d JOIN cases c ON c.offender_id = d.owner_id
             WHERE d.id = a.device_id ORDER BY c.id LIMIT 1),
            (SELECT cp.case_id FROM devices d JOIN case_protected cp ON cp.person_id = d.owner_id
             WHERE d.id = a.device_id ORDER BY cp.case_id LIMIT 1)) AS case_id
         FROM alerts a WHERE a.id = $1",
        &[&alert.0],
    )?;
    Ok(row
        .map(|r| r.try_get::<_, Option<i64>>("case_id"))
        .transpose()?
        .flatten()
        .map(CaseId))
}

/// Queues a Web Push message about `alert` for every subscription that should hear of it
/// (see `alerting::enqueue_push`, whose rules these are).
pub(crate) fn enqueue_push(
    c: &mut Client,
    alert: AlertId,
    event: &str,
    key: &str,
    now: UnixMicros,
) -> Result<usize> {
    let case = alert_case_tx(c, alert)?;
    // A test alert is the protected person's own check: it goes to her devices only.
    let test: bool = c
        .query_one(
            "SELECT rule = 'test' AS test FROM alerts WHERE id = $1",
            &[&alert.0],
        )?
        .try_get("test")?;
    let rows = match case {
        Some(case) => c.query(
            "SELECT s.id FROM push_subscriptions s JOIN accounts a ON a.id = s.account_id
             WHERE a.disabled_at IS NULL AND (
               (a.role = 'victim' AND a.person_id IN (SELECT person_id FROM case_protected WHERE case_id = $1))
               OR (NOT $2 AND a.role = 'monitoring_officer' AND a.id IN (SELECT account_id FROM assignments WHERE case_id = $1)))
             ORDER BY s.id",
            &[&case.0, &test],
        )?,
        None => c.query(
            "SELECT s.id FROM push_subscriptions s JOIN accounts a ON a.id = s.account_id
             WHERE a.disabled_at IS NULL AND a.role = 'monitoring_officer' ORDER BY s.id",
            &[],
        )?,
    };
    let subs = rows
        .iter()
        .map(|r| r.try_get::<_, i64>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    for s in &subs {
        enqueue_keyed(
            c,
            &format!("push:{s}"),
            event,
            alert,
            None,
            &format!("{key}-push-{s}"),
            now,
        )?;
    }
    Ok(subs.len())
}

/// A dispatch's statements on PostgreSQL.
impl DispatchStatements for Client {
    fn load_alert(&mut self, id: AlertId) -> Result<AlertRecord> {
        super::alerts::load_alert(self, id)
    }

    fn insert_task(
        &mut self,
        d: &NewDispatch,
        kind: &str,
        assignee: AccountId,
        target: PersonId,
    ) -> Result<Task> {
        insert_task(self, d, kind, assignee, target)
    }

    fn insert_action(&mut self, alert: AlertId, a: &NewAlertAction) -> Result<()> {
        super::lifecycle::insert_action(self, alert, a).map(drop)
    }

    fn active_role(&mut self, account: AccountId) -> Result<Option<String>> {
        self.query_opt(
            "SELECT role FROM accounts WHERE id = $1 AND disabled_at IS NULL",
            &[&account.0],
        )?
        .map(|r| r.try_get("role"))
        .transpose()
        .map_err(Into::into)
    }

    fn grant_police(
        &mut self,
        police: AccountId,
        d: &NewDispatch,
        expires_at: UnixMicros,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO dispatches (account_id, case_id, alert_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id, alert_id) DO UPDATE SET case_id = EXCLUDED.case_id,
               created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
            &[&police.0, &d.case.0, &d.alert.0, &d.at.0, &expires_at.0],
        )?;
        Ok(())
    }

    fn enqueue_police_webhook(&mut self, hook: &str, d: &NewDispatch, task: &Task) -> Result<()> {
        enqueue_keyed(
            self,
            hook,
            "dispatch.police",
            d.alert,
            Some(task.id),
            &police_webhook_key(task),
            d.at,
        )
    }

    fn mark_dispatched(&mut self, alert: AlertId, at: UnixMicros) -> Result<()> {
        self.execute(
            "UPDATE alerts SET state = 'dispatched', updated_at = $2 WHERE id = $1",
            &[&alert.0, &at.0],
        )?;
        Ok(())
    }
}

pub(crate) fn tasks_of(c: &mut Client, account: AccountId) -> Result<Vec<Task>> {
    c.query(
        "SELECT * FROM tasks WHERE assignee_account_id = $1 ORDER BY id DESC LIMIT 200",
        &[&account.0],
    )?
    .iter()
    .map(task_from_row)
    .collect()
}

pub(crate) fn task(c: &mut Client, id: i64) -> Result<Task> {
    match c.query_opt("SELECT * FROM tasks WHERE id = $1", &[&id])? {
        Some(r) => task_from_row(&r),
        None => Err(StoreError::NotFound(format!("task {id}"))),
    }
}

pub(crate) fn set_task_state(c: &mut Client, id: i64, state: &str, at: UnixMicros) -> Result<Task> {
    let n = c.execute(
        "UPDATE tasks SET state = $2, updated_at = $3 WHERE id = $1",
        &[&id, &state, &at.0],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("task {id}")));
    }
    task(c, id)
}

/// An account must exist before settings or subscriptions refer to it.
fn ensure_account(c: &mut Client, account: AccountId) -> Result<()> {
    match c.query_opt("SELECT id FROM accounts WHERE id = $1", &[&account.0])? {
        Some(_) => Ok(()),
        None => Err(StoreError::InvalidReference(format!(
            "account {} does not exist",
            account.0
        ))),
    }
}

pub(crate) fn silent(c: &mut Client, account: AccountId) -> Result<bool> {
    Ok(c.query_opt(
        "SELECT silent FROM account_settings WHERE account_id = $1",
        &[&account.0],
    )?
    .map(|r| r.try_get::<_, bool>("silent"))
    .transpose()?
    .unwrap_or(false))
}

pub(crate) fn set_silent(
    c: &mut Client,
    account: AccountId,
    silent: bool,
    at: UnixMicros,
) -> Result<()> {
    ensure_account(c, account)?;
    c.execute(
        "INSERT INTO account_settings (account_id, silent, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE SET silent = EXCLUDED.silent, updated_at = EXCLUDED.updated_at",
        &[&account.0, &silent, &at.0],
    )?;
    Ok(())
}

pub(crate) fn add_push_subscription(
    c: &mut Client,
    account: AccountId,
    endpoint: String,
    p256dh: String,
    auth: String,
    at: UnixMicros,
) -> Result<PushSubscription> {
    ensure_account(c, account)?;
    let id: i64 = c
        .query_one(
            "INSERT INTO push_subscriptions (account_id, endpoint, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (endpoint) DO UPDATE SET account_id = EXCLUDED.account_id,
               p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth
             RETURNING id",
            &[&account.0, &endpoint, &p256dh, &auth, &at.0],
        )?
        .try_get("id")?;
    Ok(PushSubscription {
        id,
        account,
        endpoint,
        p256dh,
        auth,
    })
}

pub(crate) fn remove_push_subscription(
    c: &mut Client,
    account: Option<AccountId>,
    endpoint: &str,
    at: UnixMicros,
) -> Result<bool> {
    let id: Option<i64> = c
        .query_opt(
            "SELECT id FROM push_subscriptions WHERE endpoint = $1 AND ($2::BIGINT IS NULL OR account_id = $2)",
            &[&endpoint, &account.map(|a| a.0)],
        )?
        .map(|r| r.try_get("id"))
        .transpose()?;
    let Some(id) = id else { return Ok(false) };
    c.execute(
        "UPDATE outbox SET dead_at = $2, last_error = 'subscription removed', claimed_until = NULL
         WHERE endpoint = $1 AND delivered_at IS NULL AND dead_at IS NULL",
        &[&format!("push:{id}"), &at.0],
    )?;
    c.execute("DELETE FROM push_subscriptions WHERE id = $1", &[&id])?;
    Ok(true)
}

pub(crate) fn push_subscription(c: &mut Client, id: i64) -> Result<Option<PushSubscription>> {
    c.query_opt(
        "SELECT id, account_id, endpoint, p256dh, auth FROM push_subscriptions WHERE id = $1",
        &[&id],
    )?
    .map(|r| subscription_from_row(&r))
    .transpose()
}
