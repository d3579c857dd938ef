//! The live stream: every committed position and every alert change, fanned out to clients.
//!
//! Server-Sent Events at `GET /api/v1/live`. Every event has an id `<epoch>-<seq>`; a client
//! that reconnects with `Last-Event-ID` (browsers' `EventSource` does so by itself) first gets
//! every event it missed from a replay buffer, then the live ones, with no gap and no
//! duplicate. When the gap is older than the buffer, or the server restarted (another epoch),
//! or a client falls behind the broadcast, it gets a `resync` event and reloads the snapshot:
//! never a silent loss. Each client sees only the cases `authz` allowed it when it connected.

mod fanout;
pub mod ws;
pub use fanout::spawn_live_fanout;

use crate::AppState;
use crate::http::dto::{AlertDto, PositionDto};
use crate::http::error::ApiError;
use crate::privacy::auth::Caller;
use crate::privacy::authz;
use access::Action;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::UnixMicros;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Position(PositionDto),
    Alert(AlertDto),
    /// A court notice (order granted, extended, expiring, lapsed…), to its recipients only.
    Notice(NoticeEvent),
}

/// A notice as streamed: the victim it is addressed to sees hers, the case's officers see
/// those to the officer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoticeEvent {
    #[serde(flatten)]
    pub notice: crate::http::dto::NoticeDto,
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
    /// In cluster mode: where this node's own events also go, so every other node's hub
    /// republishes them (`cluster_node::spawn_live_fanout`).
    forward: Arc<Mutex<Option<mpsc::UnboundedSender<Arc<LiveEvent>>>>>,
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
            forward: Arc::default(),
        }
    }

    /// Sends every event published on this node from now on to `tx` as well (cluster mode).
    pub fn forward_to(&self, tx: mpsc::UnboundedSender<Arc<LiveEvent>>) {
        if let Ok(mut f) = self.forward.lock() {
            *f = Some(tx);
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The SSE id of an event.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }

    /// Publishes an event that happened on this node: to its own clients and, in cluster
    /// mode, to every other node's.
    pub fn publish(&self, event: LiveEvent) {
        let event = self.publish_local(event);
        if let Some(Some(tx)) = self.forward.lock().ok().as_deref()
            && let Some(event) = event
        {
            let _ = tx.send(event);
        }
    }

    /// Publishes an event another node published (cluster mode): to this node's clients only.
    pub fn publish_remote(&self, event: LiveEvent) {
        self.publish_local(event);
    }

    fn publish_local(&self, event: LiveEvent) -> Option<Arc<LiveEvent>> {
        let Ok(mut guard) = self.recent.lock() else {
            return None;
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
        let event = item.event.clone();
        // No receivers is normal (nobody watching).
        let _ = self.tx.send(item);
        Some(event)
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

/// What one live client may see, decided (and audited) once at connect through
/// [`authz::scope`]: the stream carries only the cases allowed then. Devices registered
/// later are not shown until the client reconnects (the safe side).
///
/// A police account's cases are bounded in time as well: their grant ends at the dispatch's
/// expiry (moved earlier when the alert is resolved), so every event is checked against the
/// clock, and the grants are reloaded whenever an alert event of their case passes. A
/// stream that stays open past the end of a dispatch shows nothing more of that case: police
/// never receive the victim's position outside a dispatch, live streams included.
pub struct LiveScope {
    visible_devices: HashSet<i64>,
    device_case: HashMap<i64, i64>,
    allowed_cases: HashSet<i64>,
    /// Device alerts from devices in no case, and system alerts (the server behind on
    /// ingest), go to every monitoring officer.
    officer: bool,
    /// Police only: the end of the grant of each case.
    police: Option<(access::AccountId, HashMap<i64, UnixMicros>)>,
    /// For court notices: a victim sees those addressed to her, officers and police those
    /// to the officer of an allowed case.
    role: access::Role,
    person: Option<i64>,
}

impl LiveScope {
    pub async fn for_caller(s: &AppState, c: &Caller) -> Result<LiveScope, ApiError> {
        let cases = authz::scope(s, c, Action::LiveStream, "live stream").await?;
        let devices = s.store.list_devices().await?;
        let all_cases = s.store.list_cases().await?;
        // Each person's cases, in case order: looking them up per device instead of scanning
        // every case made opening a stream quadratic (minutes at 100,000 cases).
        let allowed: HashSet<domain::CaseId> = cases.iter().copied().collect();
        let mut cases_of: HashMap<domain::PersonId, Vec<&domain::Case>> = HashMap::new();
        for k in &all_cases {
            cases_of.entry(k.offender).or_default().push(k);
            for p in &k.protected {
                cases_of.entry(*p).or_default().push(k);
            }
        }
        let party_cases = |o: domain::PersonId| {
            cases_of
                .get(&o)
                .into_iter()
                .flatten()
                .filter(move |k| authz::party(k, o))
        };
        let visible_devices: HashSet<i64> = devices
            .iter()
            .filter(|d| {
                d.owner
                    .is_some_and(|o| party_cases(o).any(|k| allowed.contains(&k.id)))
            })
            .map(|d| d.id.0)
            .collect();
        let device_case: HashMap<i64, i64> = devices
            .iter()
            .filter_map(|d| {
                let k = party_cases(d.owner?).next()?;
                Some((d.id.0, k.id.0))
            })
            .collect();
        let mut scope = LiveScope {
            visible_devices,
            device_case,
            allowed_cases: cases.iter().map(|k| k.0).collect(),
            officer: c.principal.role == access::Role::MonitoringOfficer,
            police: (c.principal.role == access::Role::Police)
                .then(|| (c.principal.account, HashMap::new())),
            role: c.principal.role,
            person: c.principal.person.map(|p| p.0),
        };
        scope.reload_grants(s).await?;
        Ok(scope)
    }

    async fn reload_grants(&mut self, s: &AppState) -> Result<(), ApiError> {
        if let Some((account, until)) = &mut self.police {
            until.clear();
            for d in s.store.dispatches(*account).await? {
                let e = until.entry(d.case.0).or_insert(d.expires_at);
                *e = (*e).max(d.expires_at);
            }
        }
        Ok(())
    }

    fn case_of(&self, ev: &LiveEvent) -> Option<i64> {
        match ev {
            LiveEvent::Position(p) => self.device_case.get(&p.device_id).copied(),
            LiveEvent::Alert(a) => a
                .case_id
                .or_else(|| a.device_id.and_then(|d| self.device_case.get(&d).copied())),
            LiveEvent::Notice(n) => Some(n.notice.case_id),
        }
    }

    /// Whether this client sees `ev` at `now`.
    pub fn shows(&self, ev: &LiveEvent, now: UnixMicros) -> bool {
        let case = self.case_of(ev);
        if let (Some((_, until)), Some(k)) = (&self.police, case)
            && until.get(&k).is_none_or(|end| now >= *end)
        {
            return false;
        }
        match ev {
            LiveEvent::Notice(n) => match self.role {
                access::Role::Victim => {
                    n.notice.recipient == "victim" && n.person_id == self.person
                }
                access::Role::MonitoringOfficer | access::Role::Police => {
                    n.notice.recipient == "officer"
                        && self.allowed_cases.contains(&n.notice.case_id)
                }
                _ => false,
            },
            LiveEvent::Position(p) => self.visible_devices.contains(&p.device_id),
            LiveEvent::Alert(a) => match case {
                Some(k) => self.allowed_cases.contains(&k),
                // A device alert outside any case, or a system alert: officers only.
                None => {
                    self.officer
                        && (a.device_id.is_some()
                            || a.rule == domain::AlertRule::IngestBacklog.as_str())
                }
            },
        }
    }

    /// Called with every event before [`LiveScope::shows`]: an alert change of a police
    /// account's case may have moved the end of its grant (a resolve shortens it).
    pub async fn observe(&mut self, s: &AppState, ev: &LiveEvent) {
        if self.police.is_some()
            && let LiveEvent::Alert(_) = ev
            && let Some(k) = self.case_of(ev)
            && self.allowed_cases.contains(&k)
            && let Err(e) = self.reload_grants(s).await
        {
            // Could not reload: end the grants here rather than show too much.
            tracing::error!(error = %e.message, "cannot reload police grants; closing them for this stream");
            if let Some((_, until)) = &mut self.police {
                until.clear();
            }
        }
    }
}

/// The name of an event (`event:` in SSE, `event` in WebSocket messages).
pub fn event_name(ev: &LiveEvent) -> &'static str {
    match ev {
        LiveEvent::Position(_) => "position",
        LiveEvent::Alert(_) => "alert",
        LiveEvent::Notice(_) => "notice",
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
    let mut scope = LiveScope::for_caller(&s, &c).await?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (rx, resume, mut seen) = s.hub.resume(last_id.as_deref());
    let hub = s.hub.clone();
    let to_event = |hub: &Hub, item: &Sequenced| {
        let data = serde_json::to_string(&*item.event).unwrap_or_default();
        Event::default()
            .event(event_name(&item.event))
            .id(hub.event_id(item.seq))
            .data(data)
    };
    let mut first: Vec<Event> = Vec::new();
    match resume {
        Resume::From(missed) => {
            if let Some(last) = missed.last() {
                seen = last.seq;
            }
            for m in &missed {
                scope.observe(&s, &m.event).await;
                if scope.shows(&m.event, s.clock.now()) {
                    first.push(to_event(&hub, m));
                }
            }
        }
        Resume::Resync => {
            metrics::counter!("bulwark_live_resync_total").increment(1);
            first.push(
                Event::default()
                    .event("resync")
                    .data("{\"reason\":\"gap\"}"),
            );
        }
    }
    let replay = futures_util::stream::iter(first.into_iter().map(Ok));
    let stop = s.shutdown.clone();
    let live = futures_util::stream::unfold(
        (rx, stop, hub, seen, scope, s),
        move |(mut rx, mut stop, hub, mut seen, mut scope, s)| async move {
            // Events of other cases are skipped here, not sent as blanks: a client must not
            // learn that something happened elsewhere.
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
                        scope.observe(&s, &item.event).await;
                        if !scope.shows(&item.event, s.clock.now()) {
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
                return Some((Ok(ev), (rx, stop, hub, seen, scope, s)));
            }
        },
    );
    Ok(Sse::new(futures_util::StreamExt::chain(replay, live)).keep_alive(KeepAlive::default()))
}
