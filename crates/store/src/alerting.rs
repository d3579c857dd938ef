//! Alerts that reach people: dual-dispatch tasks, notification settings (silent mode) and
//! Web Push subscriptions, with their deliveries queued in the durable outbox.
//!
//! A dispatch is one transaction: the tasks (officer → offender, police → each protected
//! person), the police grant, the alert's state and its action rows, and the police webhook
//! delivery. Push deliveries are queued in the same transaction as the alert change that
//! causes them (see [`enqueue_push`]).

use crate::columns::Columns;
use crate::lifecycle::{NewAlertAction, insert_action};
use crate::outbox::enqueue_keyed;
use crate::sqlite::load_alert;
use crate::{AlertRecord, Result, Store, StoreError};
use access::AccountId;
use domain::{AlertId, CaseId, PersonId, UnixMicros};
use rusqlite::{Connection, OptionalExtension, params};

/// Officer to the offender.
pub const TASK_OFFICER_TO_OFFENDER: &str = "officer_to_offender";
/// Police to the protected person.
pub const TASK_POLICE_TO_VICTIM: &str = "police_to_victim";
/// The states a task moves through.
pub const TASK_STATES: &[&str] = &["open", "en_route", "on_scene", "done", "cancelled"];

/// One field task created by a dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: i64,
    pub alert_id: AlertId,
    pub case_id: CaseId,
    /// [`TASK_OFFICER_TO_OFFENDER`] or [`TASK_POLICE_TO_VICTIM`].
    pub kind: String,
    pub assignee: AccountId,
    /// The person the assignee goes to.
    pub target: PersonId,
    pub state: String,
    pub created_at: UnixMicros,
    pub updated_at: UnixMicros,
}

/// What a dispatch creates.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDispatch {
    pub alert: AlertId,
    pub case: CaseId,
    pub at: UnixMicros,
    /// The monitoring officer who goes to the offender (the caller).
    pub officer: AccountId,
    pub offender: PersonId,
    /// The police account sent to the protected people, its grant's end, and the people.
    pub police: Option<(AccountId, UnixMicros)>,
    pub protected: Vec<PersonId>,
    /// The action rows (actor, role) written with the state change.
    pub actor_role: String,
    /// Webhooks that take `dispatch.police`.
    pub police_webhooks: Vec<String>,
}

/// A browser's push subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct PushSubscription {
    pub id: i64,
    pub account: AccountId,
    pub endpoint: String,
    /// The browser's P-256 public key and auth secret, base64url as the browser gave them.
    pub p256dh: String,
    pub auth: String,
}

pub(crate) fn subscription_from_row<R: Columns>(r: &R) -> Result<PushSubscription> {
    Ok(PushSubscription {
        id: r.col("id")?,
        account: AccountId(r.col("account_id")?),
        endpoint: r.col("endpoint")?,
        p256dh: r.col("p256dh")?,
        auth: r.col("auth")?,
    })
}

pub(crate) fn task_from_row<R: Columns>(r: &R) -> Result<Task> {
    Ok(Task {
        id: r.col("id")?,
        alert_id: AlertId(r.col("alert_id")?),
        case_id: CaseId(r.col("case_id")?),
        kind: r.col("kind")?,
        assignee: AccountId(r.col("assignee_account_id")?),
        target: PersonId(r.col("target_person_id")?),
        state: r.col("state")?,
        created_at: UnixMicros(r.col("created_at")?),
        updated_at: UnixMicros(r.col("updated_at")?),
    })
}

fn insert_task(
    conn: &Connection,
    d: &NewDispatch,
    kind: &str,
    assignee: AccountId,
    target: PersonId,
) -> Result<Task> {
    // A second dispatch of the same alert to the same people reuses the open task.
    conn.execute(
        "INSERT INTO tasks (alert_id, case_id, kind, assignee_account_id, target_person_id, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?6)
         ON CONFLICT (alert_id, kind, assignee_account_id, target_person_id) DO NOTHING",
        params![d.alert.0, d.case.0, kind, assignee.0, target.0, d.at.0],
    )?;
    conn.query_row(
        "SELECT * FROM tasks WHERE alert_id = ?1 AND kind = ?2 AND assignee_account_id = ?3 AND target_person_id = ?4",
        params![d.alert.0, kind, assignee.0, target.0],
        |r| Ok(task_from_row(r)),
    )?
}

/// The statements a dispatch is made of. Each backend writes them in its own dialect inside
/// the dispatch's transaction; [`compose_dispatch`] puts them together, once for both.
pub(crate) trait DispatchStatements {
    fn load_alert(&mut self, id: AlertId) -> Result<AlertRecord>;
    /// The task, or the open one a dispatch of the same alert to the same people made.
    fn insert_task(
        &mut self,
        d: &NewDispatch,
        kind: &str,
        assignee: AccountId,
        target: PersonId,
    ) -> Result<Task>;
    /// A row of the alert's action log.
    fn insert_action(&mut self, alert: AlertId, a: &NewAlertAction) -> Result<()>;
    /// The role of an account that is not disabled.
    fn active_role(&mut self, account: AccountId) -> Result<Option<String>>;
    /// The police account's grant to the case, until `expires_at` (a second one replaces it).
    fn grant_police(
        &mut self,
        police: AccountId,
        d: &NewDispatch,
        expires_at: UnixMicros,
    ) -> Result<()>;
    /// Queues one webhook delivery (once per key).
    fn enqueue_police_webhook(&mut self, hook: &str, d: &NewDispatch, task: &Task) -> Result<()>;
    fn mark_dispatched(&mut self, alert: AlertId, at: UnixMicros) -> Result<()>;
}

/// One dispatch: the officer's task, then with police their grant, a task per protected
/// person and its webhooks, the action rows, and the alert's state unless it is resolved.
pub(crate) fn compose_dispatch(
    w: &mut impl DispatchStatements,
    d: &NewDispatch,
) -> Result<(Vec<Task>, AlertRecord)> {
    let before = w.load_alert(d.alert)?;
    let mut tasks = vec![w.insert_task(d, TASK_OFFICER_TO_OFFENDER, d.officer, d.offender)?];
    let action = |name: &str, note: Option<String>| NewAlertAction {
        at: d.at,
        actor_account_id: d.officer.0,
        actor_role: d.actor_role.clone(),
        action: name.into(),
        cause: None,
        note,
    };
    w.insert_action(d.alert, &action("officer_dispatched_to_offender", None))?;
    if let Some((police, expires_at)) = d.police {
        if w.active_role(police)?.as_deref() != Some("police") {
            return Err(StoreError::InvalidReference(
                "police_account_id: not an active police account".into(),
            ));
        }
        w.grant_police(police, d, expires_at)?;
        for p in &d.protected {
            let t = w.insert_task(d, TASK_POLICE_TO_VICTIM, police, *p)?;
            for hook in &d.police_webhooks {
                w.enqueue_police_webhook(hook, d, &t)?;
            }
            tasks.push(t);
        }
        w.insert_action(
            d.alert,
            &action(
                "police_dispatched_to_victim",
                Some(format!("police account {}", police.0)),
            ),
        )?;
    }
    if before.alert.state != domain::AlertState::Resolved {
        w.mark_dispatched(d.alert, d.at)?;
    }
    Ok((tasks, w.load_alert(d.alert)?))
}

/// The idempotency key of a task's police webhook delivery.
pub(crate) fn police_webhook_key(task: &Task) -> String {
    format!("task-{}-dispatch.police", task.id)
}

/// A dispatch's statements on SQLite.
struct SqliteDispatch<'a>(&'a Connection);

impl DispatchStatements for SqliteDispatch<'_> {
    fn load_alert(&mut self, id: AlertId) -> Result<AlertRecord> {
        load_alert(self.0, id)
    }

    fn insert_task(
        &mut self,
        d: &NewDispatch,
        kind: &str,
        assignee: AccountId,
        target: PersonId,
    ) -> Result<Task> {
        insert_task(self.0, d, kind, assignee, target)
    }

    fn insert_action(&mut self, alert: AlertId, a: &NewAlertAction) -> Result<()> {
        insert_action(self.0, alert, a).map(drop)
    }

    fn active_role(&mut self, account: AccountId) -> Result<Option<String>> {
        Ok(self
            .0
            .query_row(
                "SELECT role FROM accounts WHERE id = ?1 AND disabled_at IS NULL",
                [account.0],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn grant_police(
        &mut self,
        police: AccountId,
        d: &NewDispatch,
        expires_at: UnixMicros,
    ) -> Result<()> {
        self.0.execute(
            "INSERT OR REPLACE INTO dispatches (account_id, case_id, alert_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![police.0, d.case.0, d.alert.0, d.at.0, expires_at.0],
        )?;
        Ok(())
    }

    fn enqueue_police_webhook(&mut self, hook: &str, d: &NewDispatch, task: &Task) -> Result<()> {
        enqueue_keyed(
            self.0,
            hook,
            "dispatch.police",
            d.alert,
            Some(task.id),
            &police_webhook_key(task),
            d.at,
        )
    }

    fn mark_dispatched(&mut self, alert: AlertId, at: UnixMicros) -> Result<()> {
        self.0.execute(
            "UPDATE alerts SET state = 'dispatched', updated_at = ?2 WHERE id = ?1",
            params![alert.0, at.0],
        )?;
        Ok(())
    }
}

/// The case an alert belongs to: its own, or for a device alert the case its wearer is a
/// party of (the offender's first, then a protected person's).
pub(crate) fn alert_case_tx(conn: &Connection, alert: AlertId) -> Result<Option<CaseId>> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT COALESCE(a.case_id,
                (SELECT c.id FROM devices d JOIN cases c ON c.offender_id = d.owner_id
                 WHERE d.id = a.device_id ORDER BY c.id LIMIT 1),
                (SELECT cp.case_id FROM devices d JOIN case_protected cp ON cp.person_id = d.owner_id
                 WHERE d.id = a.device_id ORDER BY cp.case_id LIMIT 1))
             FROM alerts a WHERE a.id = ?1",
            [alert.0],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(id.map(CaseId))
}

/// Queues a Web Push message about `alert` for every subscription that should hear of it:
/// the victims' accounts of the alert's case and the monitoring officers assigned to it; for
/// an alert outside any case (a device in no case, the server itself), every monitoring
/// officer. `key` makes the delivery idempotent (one row per subscription and key).
pub(crate) fn enqueue_push(
    conn: &Connection,
    alert: AlertId,
    event: &str,
    key: &str,
    now: UnixMicros,
) -> Result<usize> {
    let case = alert_case_tx(conn, alert)?;
    // A test alert is the protected person's own check: it goes to her devices only.
    let test: bool = conn.query_row(
        "SELECT rule = 'test' FROM alerts WHERE id = ?1",
        [alert.0],
        |r| r.get(0),
    )?;
    let subs: Vec<i64> = match case {
        Some(case) => {
            let mut stmt = conn.prepare_cached(
                "SELECT s.id FROM push_subscriptions s JOIN accounts a ON a.id = s.account_id
                 WHERE a.disabled_at IS NULL AND (
                   (a.role = 'victim' AND a.person_id IN (SELECT person_id FROM case_protected WHERE case_id = ?1))
                   OR (?2 = 0 AND a.role = 'monitoring_officer' AND a.id IN (SELECT account_id FROM assignments WHERE case_id = ?1)))
                 ORDER BY s.id",
            )?;
            stmt.query_map(params![case.0, test], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        }
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT s.id FROM push_subscriptions s JOIN accounts a ON a.id = s.account_id
                 WHERE a.disabled_at IS NULL AND a.role = 'monitoring_officer' ORDER BY s.id",
            )?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        }
    };
    for s in &subs {
        enqueue_keyed(
            conn,
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

impl Store {
    /// Dual dispatch in one transaction: the officer's task to the offender, the police
    /// account's grant and its tasks to each protected person, the alert moved to
    /// `dispatched` with one action row per direction, and the police webhook delivery.
    pub async fn dispatch(&self, d: NewDispatch) -> Result<(Vec<Task>, AlertRecord)> {
        if self.is_postgres() {
            return self
                .pg_write(move |c| crate::alerting::compose_dispatch(c, &d), None)
                .await;
        }
        self.write(
            move |conn| compose_dispatch(&mut SqliteDispatch(conn), &d),
            None,
        )
        .await
    }

    /// The tasks assigned to an account, newest first.
    pub async fn tasks_of(&self, account: AccountId) -> Result<Vec<Task>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::alerting::tasks_of(c, account))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT * FROM tasks WHERE assignee_account_id = ?1 ORDER BY id DESC LIMIT 200",
            )?;
            let rows = stmt.query_map([account.0], |r| Ok(task_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// One task.
    pub async fn task(&self, id: i64) -> Result<Task> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::alerting::task(c, id))
                .await;
        }
        self.read(move |conn| {
            conn.query_row("SELECT * FROM tasks WHERE id = ?1", [id], |r| {
                Ok(task_from_row(r))
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?
        })
        .await
    }

    /// Moves a task to `state` (validated by the server).
    pub async fn set_task_state(&self, id: i64, state: String, at: UnixMicros) -> Result<Task> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::alerting::set_task_state(c, id, &state, at),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                let n = conn.execute(
                    "UPDATE tasks SET state = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, state, at.0],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("task {id}")));
                }
                conn.query_row("SELECT * FROM tasks WHERE id = ?1", [id], |r| {
                    Ok(task_from_row(r))
                })?
            },
            None,
        )
        .await
    }

    /// Whether the account asked for silent notifications (default: not silent).
    pub async fn silent(&self, account: AccountId) -> Result<bool> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::alerting::silent(c, account))
                .await;
        }
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT silent FROM account_settings WHERE account_id = ?1",
                    [account.0],
                    |r| r.get::<_, bool>(0),
                )
                .optional()?
                .unwrap_or(false))
        })
        .await
    }

    pub async fn set_silent(&self, account: AccountId, silent: bool, at: UnixMicros) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::alerting::set_silent(c, account, silent, at),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                super::sqlite::ensure_exists(conn, "accounts", account.0, "account")?;
                conn.execute(
                    "INSERT INTO account_settings (account_id, silent, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (account_id) DO UPDATE SET silent = excluded.silent, updated_at = excluded.updated_at",
                    params![account.0, silent, at.0],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    /// Stores a push subscription for `account` (the same endpoint again replaces its keys
    /// and owner: a browser re-subscribing after another sign-in).
    pub async fn add_push_subscription(
        &self,
        account: AccountId,
        endpoint: String,
        p256dh: String,
        auth: String,
        at: UnixMicros,
    ) -> Result<PushSubscription> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::alerting::add_push_subscription(
                            c, account, endpoint, p256dh, auth, at,
                        )
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                super::sqlite::ensure_exists(conn, "accounts", account.0, "account")?;
                conn.execute(
                    "INSERT INTO push_subscriptions (account_id, endpoint, p256dh, auth, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (endpoint) DO UPDATE SET account_id = excluded.account_id,
                       p256dh = excluded.p256dh, auth = excluded.auth",
                    params![account.0, endpoint, p256dh, auth, at.0],
                )?;
                let id: i64 = conn.query_row(
                    "SELECT id FROM push_subscriptions WHERE endpoint = ?1",
                    [&endpoint],
                    |r| r.get(0),
                )?;
                Ok(PushSubscription {
                    id,
                    account,
                    endpoint,
                    p256dh,
                    auth,
                })
            },
            None,
        )
        .await
    }

    /// Removes the caller's subscription with this endpoint; `false` when there was none.
    /// Deliveries still queued for it are given up.
    pub async fn remove_push_subscription(
        &self,
        account: Option<AccountId>,
        endpoint: String,
        at: UnixMicros,
    ) -> Result<bool> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::alerting::remove_push_subscription(
                            c, account, &endpoint, at,
                        )
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                let id: Option<i64> = conn
                    .query_row(
                        "SELECT id FROM push_subscriptions WHERE endpoint = ?1 AND (?2 IS NULL OR account_id = ?2)",
                        params![endpoint, account.map(|a| a.0)],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(id) = id else { return Ok(false) };
                conn.execute(
                    "UPDATE outbox SET dead_at = ?2, last_error = 'subscription removed'
                     WHERE endpoint = ?1 AND delivered_at IS NULL AND dead_at IS NULL",
                    params![format!("push:{id}"), at.0],
                )?;
                conn.execute("DELETE FROM push_subscriptions WHERE id = ?1", [id])?;
                Ok(true)
            },
            None,
        )
        .await
    }

    pub async fn push_subscription(&self, id: i64) -> Result<Option<PushSubscription>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::alerting::push_subscription(c, id))
                .await;
        }
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, account_id, endpoint, p256dh, auth FROM push_subscriptions WHERE id = ?1",
                [id],
                |r| Ok(subscription_from_row(r)),
            )
            .optional()?
            .transpose()
        })
        .await
    }
}
