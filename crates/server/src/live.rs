//! The live stream: every committed position and every alert change, fanned out to clients.
//!
//! Server-Sent Events at `GET /api/v1/live`. Every event has an id `<epoch>-<seq>`; a client
//! that reconnects with `Last-Event-ID` (browsers' `EventSource` does so by itself) first gets
//! every event it missed from a replay buffer, then the live ones, with no gap and no
//! duplicate. When the gap is older than the buffer, or the server restarted (another epoch),
//! or a client falls behind the broadcast, it gets a `resync` event and reloads the snapshot:
//! never a silent loss. Each client sees only the cases `authz` allowed it when it connected.

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
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Position(PositionDto),
    Alert(AlertDto),
    /// A court notice (order granted, extended, expiring, lapsed…), to its recipients only.
    Notice(NoticeEvent),
}

/// A notice as streamed: the victim it is addressed to sees hers, the case's officers see
/// those to the officer.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeEvent {
    #[serde(flatten)]
    pub notice: crate::court::NoticeDto,
    #[serde(skip)]
    pub person_id: Option<i64>,
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
    /// Recent events for resuming clients, and the last sequence number given out. One lock
    /// so that the replay buffer and the broadcast see events in the same order.
    recent: Arc<Mutex<(VecDeque<Sequenced>, u64)>>,
    capacity: usize,
    /// Distinguishes this process's sequence numbers from a previous run's.
    epoch: u64,
}

/// Where a new subscriber starts.
pub enum Resume {
    /// Events after the given one, then live events. May be empty.
    From(Vec<Sequenced>),
    /// The client missed events that are no longer buffered: reload the snapshot first.
    Resync,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Hub {
            tx,
            recent: Arc::new(Mutex::new((VecDeque::with_capacity(capacity), 0))),
            capacity,
            epoch: rand::random::<u32>() as u64,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The SSE id of an event.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }

    pub fn publish(&self, event: LiveEvent) {
        let Ok(mut guard) = self.recent.lock() else {
            return;
        };
        let (recent, last) = &mut *guard;
        *last += 1;
        let item = Sequenced {
            seq: *last,
            event: Arc::new(event),
        };
        if recent.len() == self.capacity {
            recent.pop_front();
        }
        recent.push_back(item.clone());
        // No receivers is normal (nobody watching).
        let _ = self.tx.send(item);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Sequenced> {
        self.tx.subscribe()
    }

    /// Subscribes and works out what a client that last saw `last_event_id` missed. The
    /// receiver is created under the same lock as the replay, so nothing falls between them;
    /// the caller skips live events with `seq` at or below the last replayed one.
    pub fn resume(
        &self,
        last_event_id: Option<&str>,
    ) -> (broadcast::Receiver<Sequenced>, Resume, u64) {
        let Ok(guard) = self.recent.lock() else {
            return (self.tx.subscribe(), Resume::Resync, 0);
        };
        let rx = self.tx.subscribe();
        let (recent, last) = &*guard;
        let Some(id) = last_event_id else {
            return (rx, Resume::From(Vec::new()), *last);
        };
        let parsed = id
            .split_once('-')
            .and_then(|(e, s)| Some((e.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
        match parsed {
            Some((epoch, seen)) if epoch == self.epoch && seen <= *last => {
                let oldest = recent.front().map(|e| e.seq).unwrap_or(*last + 1);
                if seen + 1 < oldest {
                    (rx, Resume::Resync, *last)
                } else {
                    let missed = recent.iter().filter(|e| e.seq > seen).cloned().collect();
                    (rx, Resume::From(missed), *last)
                }
            }
            _ => (rx, Resume::Resync, *last),
        }
    }
}

/// Server-Sent Events: `position`, `alert` and `notice` events as they happen; `resync` if this client
/// fell behind and must reload `/api/v1/snapshot`.
#[utoipa::path(get, path = "/api/v1/live", tag = "monitoring", security(("staff_token" = [])),
    params(("access_token" = Option<String>, Query, description = "Staff token (EventSource cannot set headers)")),
    responses((status = 200, description = "text/event-stream of position and alert events", content_type = "text/event-stream")))]
pub async fn live_stream(
    State(s): State<AppState>,
    c: Caller,
    headers: axum::http::HeaderMap,
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
    // Device alerts from devices in no case go to every monitoring officer
    // (`authz::unlinked_device_alert`): such an alert must reach a person.
    let officer = c.principal.role == access::Role::MonitoringOfficer;
    let (role, person) = (c.principal.role, c.principal.person.map(|p| p.0));
    let shows = Arc::new(move |ev: &LiveEvent| match ev {
        LiveEvent::Notice(n) => match role {
            access::Role::Victim => n.notice.recipient == "victim" && n.person_id == person,
            access::Role::MonitoringOfficer | access::Role::Police => {
                n.notice.recipient == "officer" && allowed_cases.contains(&n.notice.case_id)
            }
            _ => false,
        },
        LiveEvent::Position(p) => visible_devices.contains(&p.device_id),
        LiveEvent::Alert(a) => match a
            .case_id
            .or_else(|| a.device_id.and_then(|d| device_case.get(&d).copied()))
        {
            Some(k) => allowed_cases.contains(&k),
            None => officer && a.device_id.is_some(),
        },
    });
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (rx, resume, mut seen) = s.hub.resume(last_id.as_deref());
    let hub = s.hub.clone();
    let to_event = |hub: &Hub, item: &Sequenced| {
        let name = match &*item.event {
            LiveEvent::Position(_) => "position",
            LiveEvent::Alert(_) => "alert",
            LiveEvent::Notice(_) => "notice",
        };
        let data = serde_json::to_string(&*item.event).unwrap_or_default();
        Event::default()
            .event(name)
            .id(hub.event_id(item.seq))
            .data(data)
    };
    let first: Vec<Event> = match resume {
        Resume::From(missed) => {
            if let Some(last) = missed.last() {
                seen = last.seq;
            }
            missed
                .iter()
                .filter(|m| shows(&m.event))
                .map(|m| to_event(&hub, m))
                .collect()
        }
        Resume::Resync => {
            metrics::counter!("bulwark_live_resync_total").increment(1);
            vec![
                Event::default()
                    .event("resync")
                    .data("{\"reason\":\"gap\"}"),
            ]
        }
    };
    let replay = futures_util::stream::iter(first.into_iter().map(Ok));
    let stop = s.shutdown.clone();
    let live = futures_util::stream::unfold(
        (rx, stop, hub, seen),
        move |(mut rx, mut stop, hub, mut seen)| {
            let shows = shows.clone();
            async move {
                // Events of other cases are skipped here, not sent as blanks: a client must
                // not learn that something happened elsewhere.
                loop {
                    let received = tokio::select! {
                        r = rx.recv() => r,
                        _ = stop.wait_for(|v| *v) => return None,
                    };
                    let ev = match received {
                        // Already sent in the replay.
                        Ok(item) if item.seq <= seen => continue,
                        Ok(item) => {
                            seen = item.seq;
                            if !shows(&item.event) {
                                continue;
                            }
                            to_event(&hub, &item)
                        }
                        Err(RecvError::Lagged(n)) => {
                            metrics::counter!("bulwark_live_lagged_total").increment(1);
                            Event::default()
                                .event("resync")
                                .data(format!("{{\"missed\":{n}}}"))
                        }
                        Err(RecvError::Closed) => return None,
                    };
                    return Some((Ok(ev), (rx, stop, hub, seen)));
                }
            }
        },
    );
    Ok(Sse::new(futures_util::StreamExt::chain(replay, live)).keep_alive(KeepAlive::default()))
}
