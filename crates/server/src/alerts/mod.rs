//! Alerts that reach people (`docs/alerts.md`): the action log and measures ([`lifecycle`]),
//! dual dispatch and its tasks ([`dispatch`]), the victim's alerts by class
//! ([`victim_alerts`]), Web Push ([`push`]) and the outbox worker ([`webhooks`]).

pub mod dispatch;
pub mod lifecycle;
pub mod push;
pub mod victim_alerts;
pub mod webhooks;
