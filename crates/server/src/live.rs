//! The live stream: every committed position and every alert change, fanned out to clients.
//!
//! Server-Sent Events at `GET /api/v1/live`. A client that falls behind the broadcast buffer is
//! told so with a `resync` event (it reloads the snapshot) instead of being dropped silently.
//! Each client sees only the cases `authz` allowed it when it connected.

use crate::AppState;
use crate::auth::Caller;
use crate::authz;
use crate::dto::{AlertDto, PositionDto};
use crate::error::ApiError;
use access::Action;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Position(PositionDto),
    Alert(AlertDto),
}

/// Events with a sequence number, so a client can tell whether it missed any.
#[derive(Debug, Clone)]
pub struct Sequenced {
    pub seq: u64,
    pub event: Arc<LiveEvent>,
}

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Sequenced>,
    seq: Arc<AtomicU64>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Hub {
            tx,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn publish(&self, event: LiveEvent) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        // No receivers is normal (nobody watching).
        let _ = self.tx.send(Sequenced {
            seq,
            event: Arc::new(event),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Sequenced> {
        self.tx.subscribe()
    }
}

/// Server-Sent Events: `position` and `alert` events as they happen; `resync` if this client
/// fell behind and must reload `/api/v1/snapshot`.
#[utoipa::path(get, path = "/api/v1/live", tag = "monitoring", security(("staff_token" = [])),
    params(("access_token" = Option<String>, Query, description = "Staff token (EventSource cannot set headers)")),
    responses((status = 200, description = "text/event-stream of position and alert events", content_type = "text/event-stream")))]
pub async fn live_stream(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    use tokio::sync::broadcast::error::RecvError;
    // Decided (and audited) once at connect: the stream carries only the cases allowed now.
    // Devices registered later are not shown until the client reconnects (the safe side).
    let cases = authz::scope(&s, &c, Action::LiveStream, "live stream").await?;
    let devices = s.store.list_devices().await?;
    let all_cases = s.store.list_cases().await?;
    let visible_devices: HashSet<i64> = devices
        .iter()
        .filter(|d| {
            d.owner.is_some_and(|o| {
                all_cases
                    .iter()
                    .any(|k| cases.contains(&k.id) && authz::party(k, o))
            })
        })
        .map(|d| d.id.0)
        .collect();
    let device_case: HashMap<i64, i64> = devices
        .iter()
        .filter_map(|d| {
            let o = d.owner?;
            let k = all_cases.iter().find(|k| authz::party(k, o))?;
            Some((d.id.0, k.id.0))
        })
        .collect();
    let allowed_cases: HashSet<i64> = cases.iter().map(|k| k.0).collect();
    let shows = Arc::new(move |ev: &LiveEvent| match ev {
        LiveEvent::Position(p) => visible_devices.contains(&p.device_id),
        LiveEvent::Alert(a) => a
            .case_id
            .or_else(|| a.device_id.and_then(|d| device_case.get(&d).copied()))
            .is_some_and(|k| allowed_cases.contains(&k)),
    });
    let rx = s.hub.subscribe();
    let stop = s.shutdown.clone();
    let stream = futures_util::stream::unfold((rx, stop), move |(mut rx, mut stop)| {
        let shows = shows.clone();
        async move {
            // Events of other cases are skipped here, not sent as blanks: a client must not
            // learn that something happened elsewhere.
            let ev = loop {
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = stop.wait_for(|v| *v) => return None,
                };
                break match received {
                    Ok(item) if !shows(&item.event) => continue,
                    Ok(item) => {
                        let name = match &*item.event {
                            LiveEvent::Position(_) => "position",
                            LiveEvent::Alert(_) => "alert",
                        };
                        let data = serde_json::to_string(&*item.event).unwrap_or_default();
                        Event::default()
                            .event(name)
                            .id(item.seq.to_string())
                            .data(data)
                    }
                    Err(RecvError::Lagged(n)) => {
                        metrics::counter!("bulwark_live_lagged_total").increment(1);
                        Event::default()
                            .event("resync")
                            .data(format!("{{\"missed\":{n}}}"))
                    }
                    Err(RecvError::Closed) => return None,
                };
            };
            Some((Ok(ev), (rx, stop)))
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
