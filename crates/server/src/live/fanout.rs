//! Cluster mode: live events shared between nodes on the cluster's core NATS live subject.

use super::{Hub, LiveEvent};
use crate::cluster_node::Node;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A live event as it travels between nodes: who published it, and the notice's addressee
/// (kept off the browser's wire, needed by each node's scope).
#[derive(Serialize, Deserialize)]
struct RemoteLive {
    origin: String,
    event: LiveEvent,
    notice_person: Option<i64>,
}

/// Live fan-out: every event published on this node's hub is sent to the cluster's live
/// subject, and every event another node sent there is republished on this node's hub, so a
/// console sees every event of its cases whatever node it is connected to (its scope is
/// applied by its own node, as for local events). Core NATS, at most once: an event sent
/// while NATS is unreachable reaches only this node's consoles; the others' next snapshot
/// (reconnect or resync) shows the stored state.
pub async fn spawn_live_fanout(
    node: &Arc<Node>,
    hub: Hub,
) -> Result<Vec<tokio::task::JoinHandle<()>>, crate::StartError> {
    let subject = node.live_subject();
    let mut sub =
        node.client.subscribe(subject.clone()).await.map_err(|e| {
            crate::StartError::Cluster(format!("cannot subscribe to live events: {e}"))
        })?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<LiveEvent>>();
    hub.forward_to(tx);
    let sender = {
        let node = node.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let notice_person = match &*event {
                    LiveEvent::Notice(n) => n.person_id,
                    _ => None,
                };
                let msg = RemoteLive {
                    origin: node.node_id.clone(),
                    event: (*event).clone(),
                    notice_person,
                };
                match serde_json::to_vec(&msg) {
                    Ok(bytes) => {
                        if let Err(e) = node.client.publish(subject.clone(), bytes.into()).await {
                            tracing::warn!(error = %e, "live event not shared with the other nodes");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "live event could not be encoded"),
                }
            }
        })
    };
    let own = node.node_id.clone();
    let receiver = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            match serde_json::from_slice::<RemoteLive>(&m.payload) {
                Ok(r) if r.origin == own => {}
                Ok(r) => {
                    let mut event = r.event;
                    if let LiveEvent::Notice(n) = &mut event {
                        n.person_id = r.notice_person;
                    }
                    hub.publish_remote(event);
                }
                Err(e) => tracing::warn!(error = %e, "unreadable live event from another node"),
            }
        }
    });
    Ok(vec![sender, receiver])
}
