//! Cluster coordination for running several Bulwark nodes on one NATS JetStream.
//!
//! PostgreSQL stays the source of truth; this crate only decides *who does what* and carries
//! committed events between nodes:
//!
//! - [`partition`]: the work is split into a fixed number of partitions by the person an order
//!   binds (pure, the same on every node).
//! - [`plan`]: the pure decision of which partitions a node takes or gives up each tick.
//! - [`ownership`]: each partition is leased to exactly one node at a time through a JetStream
//!   key-value bucket whose entries expire (`max_age`); a node renews its leases by
//!   compare-and-set, steps down before a lease it could not renew can expire, and a live node
//!   takes over a dead node's partitions once their leases lapse.
//! - [`events`]: committed fixes and device events are published to one stream with a subject
//!   per partition, each with `Nats-Msg-Id` set to its store id, so a republish after a crash
//!   is dropped by the server's duplicate window; a partition's new owner reads it from its
//!   watermark.
//!
//! Not a home-made consensus: mutual exclusion comes from the server's per-subject
//! compare-and-set (`Nats-Expected-Last-Subject-Sequence`) and expiry, ordering and
//! deduplication from the stream.

pub mod events;
pub mod ownership;
pub mod partition;
pub mod plan;

use std::time::Duration;

use bytes::Bytes;

pub use events::{Event, EventStream, Published};
pub use ownership::{ClusterStatus, LeaseView, Ownership, OwnershipConfig};
pub use partition::{Partition, PartitionCount, partition_of};

/// Everything that can go wrong talking to the cluster's NATS.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("JetStream is not available on this NATS server (start it with -js): {0}")]
    NoJetStream(String),
    #[error("cannot set up {what}: {reason}")]
    Setup { what: String, reason: String },
    #[error("publishing to {subject} failed: {reason}")]
    Publish { subject: String, reason: String },
    #[error("reading partition {partition} failed: {reason}")]
    Read {
        partition: Partition,
        reason: String,
    },
    #[error("invalid cluster configuration: {0}")]
    Config(String),
}

/// Connects to NATS and checks that JetStream answers, failing within `timeout` with a clear
/// error instead of retrying forever: a node that cannot reach its cluster must say so at
/// start-up, not hang. Once connected, the client reconnects by itself after an outage.
pub async fn connect(
    url: &str,
    node_name: &str,
    timeout: Duration,
) -> Result<async_nats::jetstream::Context, ClusterError> {
    let unreachable = |reason: String| ClusterError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let client = tokio::time::timeout(
        timeout,
        async_nats::ConnectOptions::new()
            .name(node_name)
            .connection_timeout(timeout)
            .connect(url),
    )
    .await
    .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
    .map_err(|e| unreachable(e.to_string()))?;
    // Ask JetStream for the account's limits: a server without JetStream has no responder.
    // The answer is read as plain JSON so that servers older or newer than the client's
    // typed structs (this machine runs 2.9) are accepted alike.
    let answer = tokio::time::timeout(timeout, client.request("$JS.API.INFO", Bytes::new()))
        .await
        .map_err(|_| ClusterError::NoJetStream(format!("no answer within {timeout:?}")))?
        .map_err(|e| ClusterError::NoJetStream(e.to_string()))?;
    let info: serde_json::Value = serde_json::from_slice(&answer.payload)
        .map_err(|e| ClusterError::NoJetStream(format!("unreadable answer: {e}")))?;
    if let Some(error) = info.get("error") {
        return Err(ClusterError::NoJetStream(error.to_string()));
    }
    Ok(async_nats::jetstream::new(client))
}

/// A name usable inside NATS stream, bucket and key names: letters, digits, `-` and `_`.
pub(crate) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
