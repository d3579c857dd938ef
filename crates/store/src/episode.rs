//! An engine signal applied to its alert episode, written once for both backends.
//!
//! An episode is keyed by (order, rule, protected person, zone, device). A raise or update of
//! an open episode updates its alert (evidence appended, the closest distance kept); a clear
//! closes it; a condition that returns within the reopen window reopens the latest closed
//! alert of the key instead of opening a second one, and so does a raise of an alert a person
//! resolved while its condition held. Each backend writes the statements in its own dialect
//! ([`EpisodeStatements`]); [`apply_alert_change`] decides which run, inside the caller's
//! transaction.

use crate::lifecycle::NewAlertAction;
use crate::sqlite::{AlertChange, AlertChangeKind, AlertRecord, Opened, SYSTEM_ACTOR};
use crate::{Result, StoreError};
use domain::{AlertId, AlertState, FixId, UnixMicros};

/// The statements an alert change is made of.
pub(crate) trait EpisodeStatements {
    /// Serialises the writers of one episode for the rest of the transaction (PostgreSQL:
    /// an advisory lock, since two nodes meet on a partition takeover; SQLite has one writer).
    fn lock_episode(&mut self, ch: &AlertChange) -> Result<()>;
    /// The episode's open alert (condition active), the newest if several.
    fn open_alert(&mut self, ch: &AlertChange) -> Result<Option<i64>>;
    /// The episode's newest closed alert and when its condition cleared.
    fn latest_closed(&mut self, ch: &AlertChange) -> Result<Option<(i64, Option<i64>)>>;
    /// A closed alert whose condition returned: active, `raised`, escalation restarted.
    fn reopen_closed(&mut self, id: i64, at: UnixMicros) -> Result<()>;
    /// An alert resolved while its condition held is back: escalation restarts.
    fn restart_escalation(&mut self, id: i64, at: UnixMicros) -> Result<()>;
    /// A row of the alert's action log.
    fn log_action(&mut self, id: i64, a: &NewAlertAction) -> Result<()>;
    /// A new alert row, raised, with the change's summary and distance as its first.
    fn insert_alert(&mut self, ch: &AlertChange) -> Result<i64>;
    /// The alert's closest distance so far and its state.
    fn distance_and_state(&mut self, id: i64) -> Result<(Option<f64>, String)>;
    /// Appends evidence in the order named; a fix already there is not added twice.
    fn add_evidence(&mut self, id: i64, fixes: &[FixId]) -> Result<()>;
    /// The latest summary, details and severity, the closest distance `min`; a resolved
    /// alert goes back to `raised`.
    fn update_alert(&mut self, id: i64, ch: &AlertChange, min: Option<f64>) -> Result<()>;
    /// The condition cleared at `at`.
    fn clear_alert(&mut self, id: i64, at: UnixMicros) -> Result<()>;
    fn load_alert(&mut self, id: AlertId) -> Result<AlertRecord>;
    /// Claims the partition's fencing token: false when a newer one was claimed since.
    fn claim_fence(&mut self, f: &crate::Fence) -> Result<bool>;
    /// Queues one webhook delivery; a second with the same endpoint and key is ignored.
    fn enqueue(
        &mut self,
        endpoint: &str,
        event: &str,
        alert: AlertId,
        key: &str,
        at: UnixMicros,
    ) -> Result<()>;
    /// Alerts still `raised` and never escalated: id, severity and since when (the latest
    /// reopening, else the raise).
    fn unescalated(&mut self) -> Result<Vec<(i64, String, i64)>>;
    /// Marks one escalated; false when another writer did first (or holds it now).
    fn claim_escalation(&mut self, id: i64, at: UnixMicros) -> Result<bool>;
    /// Queues Web Push messages for the people of the alert's case (once per key).
    fn enqueue_push(
        &mut self,
        alert: AlertId,
        event: &str,
        key: &str,
        at: UnixMicros,
    ) -> Result<()>;
}

/// A `reopened` row by the server itself.
fn reopened(at: UnixMicros, note: String) -> NewAlertAction {
    NewAlertAction {
        at,
        actor_account_id: SYSTEM_ACTOR.0,
        actor_role: SYSTEM_ACTOR.1.into(),
        action: "reopened".into(),
        cause: None,
        note: Some(note),
    }
}

/// Applies one alert change to its episode; says whether it opened a new alert, reopened
/// one, or neither. Time is the signal's (`ch.at`), not the clock's.
pub(crate) fn apply_alert_change(
    w: &mut impl EpisodeStatements,
    ch: &AlertChange,
    reopen_within_s: Option<i64>,
) -> Result<(AlertRecord, Opened)> {
    w.lock_episode(ch)?;
    let mut opened = Opened::No;
    let mut active = w.open_alert(ch)?;
    // Reopen: the condition of the latest closed alert of this episode key came back within
    // the window. The same alert goes back to `raised`, its escalation deadline restarts,
    // and the step is logged.
    if active.is_none()
        && ch.kind != AlertChangeKind::Cleared
        && let Some(within) = reopen_within_s
        && let Some((id, Some(cleared))) = w.latest_closed(ch)?
        && ch.at.0 >= cleared
        && ch.at.0 - cleared <= within.saturating_mul(UnixMicros::SECOND)
    {
        w.reopen_closed(id, ch.at)?;
        let after_s = (ch.at.0 - cleared) / UnixMicros::SECOND;
        w.log_action(
            id,
            &reopened(
                ch.at,
                format!("condition returned {after_s} s after it cleared"),
            ),
        )?;
        active = Some(id);
        opened = Opened::Reopened;
    }
    let id = match (active, ch.kind) {
        (None, AlertChangeKind::Raised | AlertChangeKind::Updated) => {
            let id = w.insert_alert(ch)?;
            opened = Opened::New;
            w.add_evidence(id, &ch.evidence)?;
            id
        }
        (Some(id), AlertChangeKind::Raised | AlertChangeKind::Updated) => {
            let (old_min, state) = w.distance_and_state(id)?;
            if state == AlertState::Resolved.as_str() && opened == Opened::No {
                // Resolved by a person while the condition still held: it is back.
                w.log_action(
                    id,
                    &reopened(ch.at, "condition still holds after it was resolved".into()),
                )?;
                w.restart_escalation(id, ch.at)?;
                opened = Opened::Reopened;
            }
            w.add_evidence(id, &ch.evidence)?;
            let min = match (old_min, ch.distance_m) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            w.update_alert(id, ch, min)?;
            id
        }
        (Some(id), AlertChangeKind::Cleared) => {
            w.clear_alert(id, ch.at)?;
            id
        }
        (None, AlertChangeKind::Cleared) => {
            return Err(StoreError::NotFound(format!(
                "no active {} alert to clear",
                ch.rule
            )));
        }
    };
    Ok((w.load_alert(AlertId(id))?, opened))
}

/// [`apply_alert_change`] behind the partition's fence, queueing in the same transaction
/// `alert.raised` (a new alert) or `alert.reopened` for the webhooks, and Web Push messages
/// for the people of the case. A write whose fencing token is outdated writes nothing.
pub(crate) fn apply_alert_change_notifying(
    w: &mut impl EpisodeStatements,
    change: &AlertChange,
    notify: &crate::AlertNotify,
) -> Result<(AlertRecord, Opened)> {
    if let Some(f) = &notify.fence
        && !w.claim_fence(f)?
    {
        return Err(crate::outbox::fenced(f));
    }
    let (record, opened) = apply_alert_change(w, change, notify.reopen_within_s)?;
    let id = record.alert.id;
    let (event, key, endpoints) = match opened {
        Opened::New => (
            "alert.raised",
            format!("alert-{id}-alert.raised"),
            &notify.raised,
        ),
        // Each reopening is its own delivery.
        Opened::Reopened => (
            "alert.reopened",
            format!("alert-{id}-alert.reopened-{}", change.at.0),
            &notify.reopened,
        ),
        Opened::No => return Ok((record, opened)),
    };
    for e in endpoints {
        w.enqueue(e, event, id, &key, change.at)?;
    }
    if notify.push {
        w.enqueue_push(id, event, &key, change.at)?;
    }
    Ok((record, opened))
}

/// Escalates every alert still `raised` past its severity's deadline, counted from the stored
/// raise (or reopening) time: raises its escalation level and queues `alert.escalated` for
/// `endpoints`. Each alert is claimed first, so several nodes escalate it once.
pub(crate) fn escalate_due_alerts(
    w: &mut impl EpisodeStatements,
    policy: crate::EscalationPolicy,
    endpoints: &[String],
    now: UnixMicros,
) -> Result<Vec<AlertRecord>> {
    let mut out = Vec::new();
    for (id, severity, since) in w.unescalated()? {
        let Ok(sev) = severity.parse::<domain::Severity>() else {
            continue;
        };
        let Some(after) = policy.after_s(sev) else {
            continue;
        };
        if now.0 - since < after * UnixMicros::SECOND || !w.claim_escalation(id, now)? {
            continue;
        }
        let id = AlertId(id);
        for e in endpoints {
            w.enqueue(
                e,
                "alert.escalated",
                id,
                &format!("alert-{id}-alert.escalated"),
                now,
            )?;
        }
        out.push(w.load_alert(id)?);
    }
    Ok(out)
}
