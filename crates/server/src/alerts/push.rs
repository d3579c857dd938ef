//! Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291), through the
//! `web-push-native` crate.
//!
//! - The VAPID key pair is generated on first start and kept in the data directory
//!   ([`KEY_FILE`], mode 0600), like the access-log signing key; browsers subscribe with its
//!   public half (`GET /api/v1/push/vapid-public-key`).
//! - A browser's subscription (`POST /api/v1/me/push-subscriptions`) belongs to the signed-in
//!   account. Victims' accounts hear of the alerts of their case; monitoring officers of the
//!   cases assigned to them and of alerts outside any case.
//! - Messages are queued in the durable outbox in the same transaction as the alert change
//!   (one row per subscription, `push:<id>`), sent by the outbox worker with retries and
//!   backoff, and survive restarts. Each carries a `Topic` derived from its idempotency key,
//!   so a push service that got an attempt whose answer was lost replaces, not duplicates it.
//! - The payload is `{"alert_id", "class", "kind", "event", "silent"}`: never a position.
//!   `silent` is the recipient's setting: the service worker shows the notification without
//!   sound or vibration.

use crate::AppState;
use crate::http::error::{ApiError, ErrorBody, ErrorCode, body_error, parse_json};
use crate::privacy::auth::{BOOTSTRAP_ADMIN, Caller};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use utoipa::ToSchema;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair};
use web_push_native::{Auth, WebPushBuilder, p256};

type Body = Result<Bytes, BytesRejection>;

/// The VAPID private key (32 raw bytes) in the data directory.
pub const KEY_FILE: &str = "vapid-private.key";
/// How long a push service keeps an undelivered message (seconds).
const TTL_S: u64 = 24 * 3_600;

/// The server's VAPID key pair.
#[derive(Clone)]
pub struct VapidKey(pub Arc<ES256KeyPair>);

impl VapidKey {
    /// The public key as browsers take it (`applicationServerKey`): the uncompressed P-256
    /// point, base64url without padding.
    pub fn public_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.public_key().public_key().to_bytes_uncompressed())
    }
}

/// Loads the VAPID key from the data directory, creating it (mode 0600) on first start.
pub fn load_or_create_key(data_dir: &Path) -> Result<VapidKey, String> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => ES256KeyPair::from_bytes(&bytes)
            .map(|k| VapidKey(Arc::new(k)))
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", path.display()))?;
            let key = ES256KeyPair::generate();
            crate::privacy::audit_log::write_private(&path, &key.to_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(VapidKey(Arc::new(key)))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The class a protected person sees an alert as: `danger` (he is near, in a zone, his
/// monitor was tampered with, or she pressed SOS), `technical` (a phone or monitor that went
/// silent, ran low or lost its fix; protection degraded; the server behind) or `test`.
/// Tamper is danger: a cut or removed strap has preceded attacks, and a technical-looking
/// label would teach people to ignore it.
pub fn class_of(rule: domain::AlertRule) -> &'static str {
    use domain::AlertRule::*;
    match rule {
        ProximityViolation | ProximityWarning | ProximityNotice | ZoneViolation
        | BoundaryGrazing | Sos | Tamper => "danger",
        // A device impersonated (a second connection, an impossible jump) may be hiding
        // where he really is.
        DeviceSpoofing => "danger",
        DeviceBattery | DeviceOffline | DeviceNoFix | ProtectionDegraded | IngestBacklog
        | DeviceAlarm => "technical",
        Test => "test",
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VapidPublicKey {
    /// Base64url (no padding) of the uncompressed P-256 public key: the
    /// `applicationServerKey` of `pushManager.subscribe`.
    pub public_key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PushKeys {
    /// Base64url P-256 public key of the browser.
    pub p256dh: String,
    /// Base64url 16-byte auth secret.
    pub auth: String,
}

/// A browser's `PushSubscription.toJSON()` (other fields, like `expirationTime`, ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct PushSubscriptionRequest {
    pub endpoint: String,
    pub keys: PushKeys,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PushSubscriptionDto {
    pub id: i64,
    pub endpoint: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PushUnsubscribe {
    pub endpoint: String,
}

/// The push payload: what happened, never where.
#[derive(Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PushPayload {
    pub alert_id: i64,
    /// `danger`, `technical` or `test`.
    pub class: String,
    /// The rule, e.g. `proximity_violation`.
    pub kind: String,
    /// `alert.raised` or `alert.reopened`.
    pub event: String,
    /// Show without sound or vibration (the recipient's setting).
    pub silent: bool,
}

/// The public VAPID key browsers subscribe with.
#[utoipa::path(get, path = "/api/v1/push/vapid-public-key", tag = "access",
    responses((status = 200, body = VapidPublicKey)))]
pub async fn vapid_public_key(State(s): State<AppState>) -> Json<VapidPublicKey> {
    Json(VapidPublicKey {
        public_key: s.vapid.public_base64(),
    })
}

fn own_account(c: &Caller) -> Result<access::AccountId, ApiError> {
    if c.principal.account == BOOTSTRAP_ADMIN {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "the bootstrap token has no account to notify",
        ));
    }
    Ok(c.principal.account)
}

fn decode_b64(field: &str, v: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidField,
                format!("{field}: not base64url: {e}"),
            )
        })
}

/// Registers the caller's browser for Web Push.
#[utoipa::path(post, path = "/api/v1/me/push-subscriptions", tag = "access", security(("staff_token" = [])),
    request_body = PushSubscriptionRequest,
    responses((status = 201, body = PushSubscriptionDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn subscribe(
    State(s): State<AppState>,
    c: Caller,
    body: Body,
) -> Result<(StatusCode, Json<PushSubscriptionDto>), ApiError> {
    let account = own_account(&c)?;
    let req: PushSubscriptionRequest = parse_json(&body.map_err(body_error)?)?;
    let uri: axum::http::Uri = req
        .endpoint
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::InvalidField, format!("endpoint: not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "endpoint: must be an https URL of a push service",
        ));
    }
    if req.endpoint.len() > 2_048 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "endpoint: at most 2048 bytes",
        ));
    }
    let p256dh = decode_b64("keys.p256dh", &req.keys.p256dh)?;
    if p256::PublicKey::from_sec1_bytes(&p256dh).is_err() {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "keys.p256dh: not a P-256 public key",
        ));
    }
    if decode_b64("keys.auth", &req.keys.auth)?.len() != 16 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "keys.auth: must be 16 bytes",
        ));
    }
    let sub = s
        .store
        .add_push_subscription(
            account,
            req.endpoint,
            req.keys.p256dh,
            req.keys.auth,
            s.clock.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PushSubscriptionDto {
            id: sub.id,
            endpoint: sub.endpoint,
        }),
    ))
}

/// Removes one of the caller's subscriptions (by endpoint); queued messages for it are
/// given up.
#[utoipa::path(delete, path = "/api/v1/me/push-subscriptions", tag = "access", security(("staff_token" = [])),
    request_body = PushUnsubscribe,
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn unsubscribe(
    State(s): State<AppState>,
    c: Caller,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let account = own_account(&c)?;
    let req: PushUnsubscribe = parse_json(&body.map_err(body_error)?)?;
    if s.store
        .remove_push_subscription(Some(account), req.endpoint, s.clock.now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            "no such subscription of yours",
        ))
    }
}

/// The `Topic` header of a message: 32 base64url-safe characters derived from its
/// idempotency key, the same on every attempt.
pub fn topic(idempotency_key: &str) -> String {
    Sha256::digest(idempotency_key.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What became of one attempt.
pub enum Sent {
    Delivered,
    /// The push service says the subscription is gone (404/410): remove it, give up.
    Gone,
    Failed(String),
}

/// Sends one queued push message.
pub async fn send(
    s: &AppState,
    client: &reqwest::Client,
    item: &store::OutboxItem,
    subscription: &store::PushSubscription,
) -> Sent {
    let alert = match s.store.alert(item.alert_id).await {
        Ok(a) => a,
        Err(e) => return Sent::Failed(format!("alert: {e}")),
    };
    let silent = match s.store.silent(subscription.account).await {
        Ok(v) => v,
        Err(e) => return Sent::Failed(format!("settings: {e}")),
    };
    let class = class_of(alert.alert.rule);
    let payload = PushPayload {
        alert_id: alert.alert.id.0,
        class: class.into(),
        kind: alert.alert.rule.as_str().into(),
        event: item.event.clone(),
        silent,
    };
    let keys = (
        decode_b64("p256dh", &subscription.p256dh)
            .ok()
            .and_then(|k| p256::PublicKey::from_sec1_bytes(&k).ok()),
        decode_b64("auth", &subscription.auth)
            .ok()
            .filter(|a| a.len() == 16),
    );
    let (Some(public), Some(auth)) = keys else {
        return Sent::Gone;
    };
    let Ok(endpoint) = subscription.endpoint.parse::<axum::http::Uri>() else {
        return Sent::Gone;
    };
    let body = match serde_json::to_vec(&payload) {
        Ok(b) => b,
        Err(e) => return Sent::Failed(e.to_string()),
    };
    let request = WebPushBuilder::new(endpoint, public, Auth::clone_from_slice(&auth))
        .with_valid_duration(std::time::Duration::from_secs(TTL_S))
        .with_vapid(&s.vapid.0, &s.config.alerts.push_contact)
        .build(body);
    let mut request = match request {
        Ok(r) => r,
        Err(e) => return Sent::Failed(format!("encrypting: {e}")),
    };
    let urgency = match class {
        "danger" => "high",
        "technical" => "normal",
        _ => "low",
    };
    let headers = request.headers_mut();
    for (k, v) in [
        ("urgency", urgency.to_string()),
        ("topic", topic(&item.idempotency_key)),
    ] {
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    let request = match reqwest::Request::try_from(request) {
        Ok(r) => r,
        Err(e) => return Sent::Failed(e.to_string()),
    };
    match client.execute(request).await {
        Ok(r) if r.status().is_success() => Sent::Delivered,
        Ok(r) if matches!(r.status().as_u16(), 404 | 410) => Sent::Gone,
        Ok(r) => Sent::Failed(format!("HTTP {}", r.status())),
        Err(e) => Sent::Failed(e.to_string()),
    }
}
