//! Webhook delivery from the durable outbox.
//!
//! Each delivery is a `POST` of JSON `{"event", "idempotency_key", "sent_at", "alert"}` with:
//! - `Idempotency-Key`: the same on every attempt of one delivery (`alert-<id>-<event>`);
//! - `X-Bulwark-Event`, `X-Bulwark-Timestamp` (Unix seconds);
//! - `X-Bulwark-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//!
//! A 2xx marks it delivered; anything else (or no answer) is retried with exponential backoff.
//! The alert is rendered at send time, so a retry carries the alert's current state. Payloads
//! carry no coordinates, with one exception: a `dispatch.police` delivery (dual dispatch)
//! carries `dispatch.victim.position`, rendered at send time and only while the police
//! account's dispatch grant is valid (decided and logged by `authz::check` as that account).
//!
//! The same worker sends Web Push messages queued as `push:<subscription>` (see `push.rs`).

use crate::AppState;
use crate::http::dto::AlertDto;
use domain::UnixMicros;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::watch;

/// Signs `timestamp.body` with the webhook's secret (hex).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this branch cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the delivery loop until shutdown.
pub fn spawn(state: AppState, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Web Push messages go through the same outbox, so the worker runs even without
        // webhooks.
        let delivery = state.config.webhook_delivery.clone();
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(delivery.timeout_s))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the webhook client; webhooks stay queued");
                return;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        // Once per cluster: only the leader runs it.
        while state.next_singleton_tick(&mut tick, &mut shutdown).await {
            let due = match state.store.due_outbox(state.clock.now(), 50).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    continue;
                }
            };
            for item in due {
                deliver(&state, &client, &delivery, item).await;
            }
        }
    })
}

async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    delivery: &crate::config::WebhookDelivery,
    item: store::OutboxItem,
) {
    let at = state.clock.now();
    if let Some(sub) = item.endpoint.strip_prefix("push:") {
        let sub = match sub.parse::<i64>() {
            Ok(id) => state.store.push_subscription(id).await,
            Err(e) => {
                tracing::error!(endpoint = %item.endpoint, error = %e, "push outbox row names no subscription id");
                Ok(None)
            }
        };
        let error = match sub {
            Ok(Some(sub)) => match crate::alerts::push::send(state, client, &item, &sub).await {
                crate::alerts::push::Sent::Delivered => {
                    metrics::counter!("bulwark_push_delivered_total").increment(1);
                    if let Err(e) = state
                        .store
                        .outbox_delivered(item.id, state.clock.now())
                        .await
                    {
                        tracing::error!(error = %e, "delivered push message not recorded");
                    }
                    return;
                }
                crate::alerts::push::Sent::Gone => {
                    tracing::info!(subscription = sub.id, "push subscription gone; removed");
                    if let Err(e) = state
                        .store
                        .remove_push_subscription(None, sub.endpoint, at)
                        .await
                    {
                        tracing::error!(subscription = sub.id, error = %e, "gone push subscription not removed");
                    }
                    return;
                }
                crate::alerts::push::Sent::Failed(e) => e,
            },
            Ok(None) => {
                if let Err(e) = state
                    .store
                    .outbox_failed(item.id, "subscription removed".into(), None, at)
                    .await
                {
                    tracing::error!(outbox = item.id, error = %e, "undeliverable push message not recorded");
                }
                return;
            }
            Err(e) => e.to_string(),
        };
        metrics::counter!("bulwark_push_failures_total").increment(1);
        retry_later(state, delivery, &item, "push", error, at).await;
        return;
    }
    let Some(hook) = state
        .config
        .webhooks
        .iter()
        .find(|w| w.name == item.endpoint)
    else {
        let _ = state
            .store
            .outbox_failed(item.id, "webhook no longer configured".into(), None, at)
            .await;
        tracing::error!(endpoint = %item.endpoint, "queued delivery for a webhook that is no longer configured; given up");
        return;
    };
    let alert = match state.store.alert(item.alert_id).await {
        Ok(a) => AlertDto::from(a),
        Err(e) => {
            tracing::error!(error = %e, alert = %item.alert_id, "cannot load alert for webhook");
            return;
        }
    };
    let mut body = serde_json::json!({
        "event": item.event,
        "idempotency_key": item.idempotency_key,
        "sent_at": crate::http::dto::ts(at),
        "alert": alert,
    });
    if let Some(task) = item.task_id {
        match dispatch_body(state, task).await {
            Ok(d) => body["dispatch"] = d,
            Err(e) => {
                tracing::error!(error = %e.message, task, "cannot render the dispatch for its webhook");
                return;
            }
        }
    }
    let body = body.to_string();
    let timestamp = at.0 / UnixMicros::SECOND;
    let result = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("idempotency-key", &item.idempotency_key)
        .header("x-bulwark-event", &item.event)
        .header("x-bulwark-timestamp", timestamp.to_string())
        .header(
            "x-bulwark-signature",
            format!("v1={}", signature(&hook.secret, timestamp, body.as_bytes())),
        )
        .body(body)
        .send()
        .await;
    let error = match result {
        Ok(r) if r.status().is_success() => {
            metrics::counter!("bulwark_webhook_delivered_total", "endpoint" => hook.name.clone())
                .increment(1);
            if let Err(e) = state
                .store
                .outbox_delivered(item.id, state.clock.now())
                .await
            {
                // Not recorded: it will be sent again, and the receiver's idempotency check
                // recognises it.
                tracing::error!(error = %e, "delivered webhook not recorded");
            }
            return;
        }
        Ok(r) => format!("HTTP {}", r.status()),
        Err(e) => format!("{e}"),
    };
    metrics::counter!("bulwark_webhook_failures_total", "endpoint" => hook.name.clone())
        .increment(1);
    retry_later(state, delivery, &item, &hook.name, error, at).await;
}

/// Records a failed attempt: retried with exponential backoff, or given up after
/// `max_attempts`.
async fn retry_later(
    state: &AppState,
    delivery: &crate::config::WebhookDelivery,
    item: &store::OutboxItem,
    name: &str,
    error: String,
    at: UnixMicros,
) {
    let attempts = item.attempts + 1;
    let next = if attempts >= delivery.max_attempts {
        tracing::error!(endpoint = %name, key = %item.idempotency_key, attempts, %error, "delivery given up");
        metrics::counter!("bulwark_webhook_dead_total").increment(1);
        None
    } else {
        let backoff_ms = delivery
            .retry_base_ms
            .saturating_mul(1u64 << attempts.clamp(0, 20))
            .min(delivery.max_backoff_s.saturating_mul(1000));
        tracing::warn!(endpoint = %name, key = %item.idempotency_key, attempts, %error, backoff_ms, "delivery failed; will retry");
        Some(UnixMicros(at.0 + backoff_ms as i64 * 1000))
    };
    if let Err(e) = state.store.outbox_failed(item.id, error, next, at).await {
        tracing::error!(error = %e, "could not record delivery failure");
    }
}

/// The `dispatch` part of a `dispatch.police` delivery, rendered at send time: the task, the
/// police account, and the protected person's latest position (time, accuracy, source) only
/// while that account's dispatch grant for the case is valid. The disclosure is decided by
/// `authz::check` as that police account, so it is in the access log like any read.
async fn dispatch_body(
    state: &AppState,
    task_id: i64,
) -> Result<serde_json::Value, crate::http::error::ApiError> {
    use access::{Action, Precision, Principal, Resource, Role};
    let task = state.store.task(task_id).await?;
    let police = crate::privacy::auth::Caller {
        principal: Principal {
            account: task.assignee,
            role: Role::Police,
            person: None,
        },
        session: None,
    };
    let resource = Resource {
        case: Some(task.case_id),
        person: Some(task.target),
        ..Default::default()
    };
    let details = format!("dispatch webhook, task {task_id}");
    let position = match crate::privacy::authz::check(
        state,
        &police,
        Action::ReadVictimPosition,
        resource,
        &details,
    )
    .await
    {
        Ok(crate::privacy::authz::Allowed {
            precision: Precision::Full,
            token,
        }) => state
            .store
            .latest_fix_of_person(&token, task.target)
            .await?
            .map(|f| crate::alerts::dispatch::task_position(&f, state.clock.now())),
        Ok(_) => None,
        Err(e) if e.code == crate::http::error::ErrorCode::Forbidden => None,
        Err(e) => return Err(e),
    };
    let expires_at = state
        .store
        .dispatches(task.assignee)
        .await?
        .into_iter()
        .filter(|d| d.case == task.case_id)
        .map(|d| d.expires_at)
        .max();
    Ok(serde_json::json!({
        "task_id": task.id,
        "kind": task.kind,
        "case_id": task.case_id.0,
        "police_account_id": task.assignee.0,
        "grant_expires_at": expires_at.map(crate::http::dto::ts),
        "victim": {"person_id": task.target.0, "position": position},
    }))
}
