//! The live stream: every committed position and every alert change, fanned out to clients.
//!
//! Server-Sent Events at `GET /api/v1/live`. A client that falls behind the broadcast buffer is
//! told so with a `resync` event (it reloads the snapshot) instead of being dropped silently.

use crate::dto::{AlertDto, PositionDto};
use serde::Serialize;
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
