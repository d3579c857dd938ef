//! The live stream over WebSocket: `GET /api/v1/live/ws`, beside the SSE stream.
//!
//! The same events, the same case scoping and the same authorisation as `GET /api/v1/live`
//! ([`LiveScope`], decided and audited before the upgrade), for clients that cannot use
//! EventSource (native apps, some proxies). Server → client, one JSON text message per event:
//!
//! ```text
//! {"id": "<epoch>-<seq>", "event": "position" | "alert" | "notice", "data": { ...same JSON as SSE... }}
//! {"id": null, "event": "resync", "data": {"reason": "gap"} | {"missed": n}}
//! ```
//!
//! Resuming: the client names the last event id it saw, in the query (`?last_event_id=`) or
//! as its first message `{"last_event_id": "<epoch>-<seq>"}` (or `null`: start now). Without
//! either, the stream starts from the moment of connection after [`FIRST_MESSAGE_WAIT`], so
//! nothing published after the connection is lost. The client then gets exactly the events it
//! missed (no gap, no duplicate), or `resync` when they are no longer buffered or the server
//! restarted, and must reload `/api/v1/snapshot`. A client that falls behind the broadcast
//! (`Lagged`) gets `resync` and the socket stays open.

use crate::AppState;
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::live::{LiveScope, Resume, Sequenced, event_name};
use crate::privacy::auth::Caller;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

/// How long the server waits for a first message naming the last event id when the query
/// does not.
pub const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// Staff token (browsers' WebSocket cannot set headers).
    pub access_token: Option<String>,
    /// The last event id this client saw (`<epoch>-<seq>`).
    pub last_event_id: Option<String>,
}

/// The first message a client may send.
#[derive(Debug, Deserialize)]
struct Hello {
    last_event_id: Option<String>,
}

/// WebSocket live stream: the SSE stream's events as JSON messages
/// `{"id", "event", "data"}`; resumable with `last_event_id`.
#[utoipa::path(get, path = "/api/v1/live/ws", tag = "monitoring", security(("staff_token" = [])),
    params(WsQuery),
    responses((status = 101, description = "WebSocket of position, alert and resync messages"),
        (status = 403, body = ErrorBody), (status = 426, body = ErrorBody)))]
pub async fn live_ws(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<WsQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Decided (and audited) before the upgrade, exactly as for SSE.
    let scope = LiveScope::for_caller(&s, &c).await?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            ErrorCode::UpgradeRequired,
            format!("a WebSocket upgrade is required: {e}"),
        )
    })?;
    Ok(upgrade.on_upgrade(move |socket| serve(socket, s, scope, q.last_event_id)))
}

fn message(id: Option<String>, event: &str, data: Value) -> Message {
    Message::Text(
        json!({"id": id, "event": event, "data": data})
            .to_string()
            .into(),
    )
}

fn event_message(s: &AppState, item: &Sequenced) -> Message {
    message(
        Some(s.hub.event_id(item.seq)),
        event_name(&item.event),
        serde_json::to_value(&*item.event).unwrap_or(Value::Null),
    )
}

async fn serve(
    mut socket: WebSocket,
    s: AppState,
    mut scope: LiveScope,
    query_last: Option<String>,
) {
    let mut stop = s.shutdown.clone();
    // Subscribed at once, so that nothing published from here on is lost while the client
    // decides where to start.
    let (mut rx, mut resume, mut seen) = s.hub.resume(query_last.as_deref());
    if query_last.is_none() {
        let first = tokio::time::timeout(FIRST_MESSAGE_WAIT, socket.recv()).await;
        match first {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<Hello>(&t) {
                Ok(Hello {
                    last_event_id: Some(id),
                }) => (rx, resume, seen) = s.hub.resume(Some(&id)),
                Ok(Hello {
                    last_event_id: None,
                }) => {}
                Err(e) => {
                    let _ = socket
                        .send(message(
                            None,
                            "error",
                            json!({"code": "invalid_json", "message": format!("expected {{\"last_event_id\": ...}}: {e}")}),
                        ))
                        .await;
                    return;
                }
            },
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
            // No message in time, or a ping: start from the connection.
            Ok(Some(Ok(_))) | Err(_) => {}
        }
    }
    match std::mem::replace(&mut resume, Resume::From(Vec::new())) {
        Resume::From(missed) => {
            if let Some(last) = missed.last() {
                seen = last.seq;
            }
            for m in &missed {
                scope.observe(&s, &m.event).await;
                if scope.shows(&m.event, s.clock.now())
                    && socket.send(event_message(&s, m)).await.is_err()
                {
                    return;
                }
            }
        }
        Resume::Resync => {
            metrics::counter!("bulwark_live_resync_total").increment(1);
            if socket
                .send(message(None, "resync", json!({"reason": "gap"})))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    enum Next {
        Event(Result<Sequenced, RecvError>),
        Client(Option<Result<Message, axum::Error>>),
        Stop,
    }
    loop {
        let next = tokio::select! {
            r = rx.recv() => Next::Event(r),
            m = socket.recv() => Next::Client(m),
            _ = stop.wait_for(|v| *v) => Next::Stop,
        };
        let msg = match next {
            // Already sent in the replay.
            Next::Event(Ok(item)) if item.seq <= seen => continue,
            Next::Event(Ok(item)) => {
                seen = item.seq;
                scope.observe(&s, &item.event).await;
                if !scope.shows(&item.event, s.clock.now()) {
                    continue;
                }
                event_message(&s, &item)
            }
            // Too slow for the broadcast: say so and carry on (the client reloads the
            // snapshot); never a silent loss, never a dropped socket.
            Next::Event(Err(RecvError::Lagged(n))) => {
                metrics::counter!("bulwark_live_lagged_total").increment(1);
                message(None, "resync", json!({"missed": n}))
            }
            Next::Event(Err(RecvError::Closed)) | Next::Stop => break,
            // Pings are answered by the WebSocket layer; other messages are ignored.
            Next::Client(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => return,
            Next::Client(Some(Ok(_))) => continue,
        };
        if socket.send(msg).await.is_err() {
            return;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
