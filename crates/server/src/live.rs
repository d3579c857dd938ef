//! The live stream: every committed position and every alert change, fanned out to clients.
//!
//! Server-Sent Events at `GET /api/v1/live`. Every event has an id `<epoch>-<seq>`; a client
//! that reconnects with `Last-Event-ID` (browsers' `EventSource` does so by itself) first gets
//! every event it missed from a replay buffer, then the live ones, with no gap and no
//! duplicate. When the gap is older than the buffer, or the server restarted (another epoch),
//! or a client falls behind the broadcast, it gets a `resync` event and reloads the snapshot:
//! never a silent loss.

use crate::dto::{AlertDto, PositionDto};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
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
