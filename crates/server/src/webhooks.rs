//! Webhook delivery from the durable outbox.
//!
//! Each delivery is a `POST` of JSON `{"event", "idempotency_key", "sent_at", "alert"}` with:
//! - `Idempotency-Key`: the same on every attempt of one delivery (`alert-<id>-<event>`);
//! - `X-Bulwark-Event`, `X-Bulwark-Timestamp` (Unix seconds);
//! - `X-Bulwark-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//!
//! A 2xx marks it delivered; anything else (or no answer) is retried with exponential backoff.
//! The alert is rendered at send time, so a retry carries the alert's current state. Payloads
//! carry no coordinates: a receiver that needs positions asks the API with its own grant.

use crate::AppState;
use crate::dto::AlertDto;
use crate::pipeline::now;
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
        if state.config.webhooks.is_empty() {
            let _ = shutdown.wait_for(|v| *v).await;
            return;
        }
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
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|v| *v) => break,
            }
            let due = match state.store.due_outbox(now(), 50).await {
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
    let at = now();
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
    let body = serde_json::json!({
        "event": item.event,
        "idempotency_key": item.idempotency_key,
        "sent_at": crate::dto::ts(at),
        "alert": alert,
    })
    .to_string();
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
            if let Err(e) = state.store.outbox_delivered(item.id, now()).await {
                // Not recorded: it will be sent again, and the receiver's idempotency check
                // recognises it.
                tracing::error!(error = %e, "delivered webhook not recorded");
            }
            return;
        }
        Ok(r) => format!("HTTP {}", r.status()),
        Err(e) => format!("{e}"),
    };
    let attempts = item.attempts + 1;
    metrics::counter!("bulwark_webhook_failures_total", "endpoint" => hook.name.clone())
        .increment(1);
    let next = if attempts >= delivery.max_attempts {
        tracing::error!(endpoint = %hook.name, key = %item.idempotency_key, attempts, %error, "webhook delivery given up");
        metrics::counter!("bulwark_webhook_dead_total").increment(1);
        None
    } else {
        let backoff_ms = delivery
            .retry_base_ms
            .saturating_mul(1u64 << attempts.clamp(0, 20))
            .min(delivery.max_backoff_s.saturating_mul(1000));
        tracing::warn!(endpoint = %hook.name, key = %item.idempotency_key, attempts, %error, backoff_ms, "webhook delivery failed; will retry");
        Some(UnixMicros(at.0 + backoff_ms as i64 * 1000))
    };
    if let Err(e) = state.store.outbox_failed(item.id, error, next, at).await {
        tracing::error!(error = %e, "could not record webhook failure");
    }
}
