//! Partition leases on a JetStream key-value bucket: each partition is held by at most one
//! node at a time, and a dead node's partitions pass to live nodes.
//!
//! # Why JetStream KV and not PostgreSQL advisory locks
//!
//! An advisory lock lives as long as one database session, so ownership would hang on the
//! health of one pooled connection, and a node cut off from PostgreSQL but still running
//! keeps believing it owns its partitions until it notices the broken socket. A KV lease
//! expires on the server's clock after a fixed time whatever the node does, its holder knows
//! exactly when it must stop (it measures from when it sent its last successful renewal), and
//! the revision a lease was taken at is a fencing token that grows with every new owner.
//!
//! # The guarantee, as steps
//!
//! 1. A node takes a free partition with `create` (succeeds only if the key has no live
//!    value): at most one node wins, and the winning revision is the lease's token.
//! 2. Every tick (a quarter of the TTL) it renews with `update` expecting the revision it last
//!    wrote. A `WrongLastRevision` answer means the lease lapsed and someone else took it: the
//!    node drops the partition at once.
//! 3. If a renewal cannot be confirmed (NATS unreachable), the node drops the partition once
//!    half the TTL has passed since it sent its last confirmed renewal, and every lease it
//!    reports carries that instant (`valid_until`) so the work it guards can check it between
//!    ticks. The server expires the entry no earlier than a full TTL after that renewal was
//!    written, so the old holder has stopped before a new one can start. Every NATS call of a
//!    tick is bounded (an eighth of the TTL), so an unreachable server cannot stall a tick.
//! 4. A node that dies stops renewing; its entries expire after the TTL and the next tick of a
//!    live node finds them free. Takeover is bounded by TTL + one tick (+ the server's expiry
//!    granularity); `tests/nats.rs` measures it.
//! 5. A node that leaves on purpose drops its partitions first, then deletes its leases, so
//!    others take them at their next tick.
//!
//! Each node aims at its fair share of the partitions ([`crate::plan`]); live nodes are counted
//! from a second bucket where each node refreshes a presence entry with the same TTL.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::partition::{Partition, PartitionCount};
use crate::{ClusterError, plan, sanitize};

/// How a node takes part in partition ownership.
#[derive(Debug, Clone)]
pub struct OwnershipConfig {
    /// Prefix of the buckets, so clusters (and tests) sharing one NATS never meet.
    pub namespace: String,
    /// This node's name, unique in the cluster.
    pub node_id: String,
    pub partitions: PartitionCount,
    /// How long a lease lives without renewal. Takeover after a crash takes about this long.
    pub lease_ttl: Duration,
}

impl OwnershipConfig {
    /// Renewal period: four renewals per TTL, so one lost renewal never costs a lease.
    pub fn tick(&self) -> Duration {
        self.lease_ttl / 4
    }

    /// How long after sending its last confirmed renewal a node stops acting on a lease.
    pub fn step_down_after(&self) -> Duration {
        self.lease_ttl / 2
    }

    /// The bound on each NATS call of a tick.
    pub fn call_timeout(&self) -> Duration {
        self.lease_ttl / 8
    }

    fn bucket(&self, what: &str) -> String {
        format!("{}_{what}", sanitize(&self.namespace))
    }
}

/// One lease as its holder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView {
    /// The fencing token: the revision the lease was taken at. A later owner of the same
    /// partition always has a larger one.
    pub token: u64,
    /// The holder must not act on the partition from this instant on unless a later status
    /// extends it.
    pub valid_until: Instant,
}

/// What a node knows of the cluster, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The partitions this node holds.
    pub held: BTreeMap<Partition, LeaseView>,
    /// Nodes with a live presence entry at the last tick, this one included.
    pub live_nodes: usize,
    /// Their names, sorted (as sanitised for NATS keys).
    pub nodes: Vec<String>,
    /// Whether the last tick reached NATS.
    pub connected: bool,
}

struct Held {
    token: u64,
    revision: u64,
    confirmed_sent_at: Instant,
}

/// A running ownership task. Dropping it aborts the task without releasing anything, as a
/// crash would; [`Ownership::leave`] hands the partitions over.
pub struct Ownership {
    status: watch::Receiver<ClusterStatus>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Ownership {
    /// Creates the buckets if needed and starts taking part.
    pub async fn start(
        js: jetstream::Context,
        config: OwnershipConfig,
    ) -> Result<Ownership, ClusterError> {
        if config.lease_ttl < Duration::from_millis(400) {
            return Err(ClusterError::Config(format!(
                "lease TTL {:?} is too short to renew reliably",
                config.lease_ttl
            )));
        }
        let leases = bucket(&js, &config.bucket("leases"), config.lease_ttl).await?;
        let nodes = bucket(&js, &config.bucket("nodes"), config.lease_ttl).await?;
        let (tx, rx) = watch::channel(ClusterStatus::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let worker = Worker {
            node: sanitize(&config.node_id),
            rotation: rotation_of(&config.node_id),
            config,
            leases,
            nodes,
            held: BTreeMap::new(),
            status: tx,
            peers: Vec::new(),
        };
        let task = tokio::spawn(worker.run(stop_rx));
        Ok(Ownership {
            status: rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The node's view, updated every tick and whenever ownership changes.
    pub fn status(&self) -> watch::Receiver<ClusterStatus> {
        self.status.clone()
    }

    /// Leave the cluster: stop acting on every partition, delete the leases so live nodes take
    /// them at their next tick, and remove this node's presence.
    pub async fn leave(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn bucket(
    js: &jetstream::Context,
    name: &str,
    ttl: Duration,
) -> Result<kv::Store, ClusterError> {
    let setup = |reason: String| ClusterError::Setup {
        what: format!("key-value bucket {name}"),
        reason,
    };
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    // The bucket's stream is created directly, with the key-value conventions
    // (`KV_<bucket>`, `$KV.<bucket>.>`, one value per key, rollups, direct get, new values
    // refused when full) instead of through `create_key_value`: that call first reads the
    // account's limits with a struct that requires fields servers before 2.10 do not send,
    // and this machine's server is 2.9.
    let created = js
        .create_stream(jetstream::stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age: ttl,
            storage: jetstream::stream::StorageType::File,
            num_replicas: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await;
    // Creating an identical stream again succeeds, so a race between nodes is harmless; an
    // existing bucket with other settings is an error to report, not to paper over.
    if let Err(e) = created {
        return Err(setup(e.to_string()));
    }
    js.get_key_value(name)
        .await
        .map_err(|e| setup(e.to_string()))
}

fn rotation_of(node: &str) -> u16 {
    // FNV-1a: a stable, well-spread number from the node name.
    let mut h: u32 = 0x811C_9DC5;
    for b in node.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(u16::MAX)) as u16
}

/// Every live key of a bucket, or `None` if NATS did not answer in time.
async fn list_keys(store: &kv::Store, timeout: Duration) -> Option<Vec<String>> {
    let listing = async {
        let mut keys = store.keys().await.ok()?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            out.push(k.ok()?);
        }
        Some(out)
    };
    tokio::time::timeout(timeout, listing).await.ok()?
}

fn key(p: Partition) -> String {
    format!("p{}", p.0)
}

fn partition_of_key(key: &str) -> Option<Partition> {
    key.strip_prefix('p')?.parse().ok().map(Partition)
}

struct Worker {
    config: OwnershipConfig,
    node: String,
    rotation: u16,
    leases: kv::Store,
    nodes: kv::Store,
    held: BTreeMap<Partition, Held>,
    status: watch::Sender<ClusterStatus>,
    /// The live nodes' names seen at the last listing.
    peers: Vec<String>,
}

impl Worker {
    async fn run(mut self, mut stop: tokio::sync::oneshot::Receiver<()>) {
        let mut interval = tokio::time::interval(self.config.tick());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => self.tick().await,
                _ = &mut stop => break,
            }
        }
        self.leave().await;
    }

    async fn tick(&mut self) {
        if self.step_down_expired() {
            let live = self.status.borrow().live_nodes;
            self.publish(live, false);
        }
        let me = Bytes::from(self.node.clone());
        let timeout = self.config.call_timeout();
        let presence = matches!(
            tokio::time::timeout(timeout, self.nodes.put(&self.node, me.clone())).await,
            Ok(Ok(_))
        );
        self.renew(&me).await;
        let view = match (self.live_nodes().await, self.taken().await) {
            (Some(live), Some(taken)) => Some((live, taken)),
            _ => None,
        };
        let mut connected = presence;
        if let Some((live, taken)) = view {
            let all: BTreeSet<Partition> = self.config.partitions.all().collect();
            let held: BTreeSet<Partition> = self.held.keys().copied().collect();
            let free: BTreeSet<Partition> = all.difference(&taken).copied().collect();
            let todo = plan::plan(self.config.partitions, &held, &free, live, self.rotation);
            for p in todo.release {
                self.release(p).await;
            }
            for p in todo.acquire {
                self.acquire(p, &me).await;
            }
            self.publish(live, connected);
        } else {
            connected = false;
            let live = self.status.borrow().live_nodes;
            self.publish(live, connected);
        }
    }

    async fn renew(&mut self, me: &Bytes) {
        let timeout = self.config.call_timeout();
        let leases = &self.leases;
        let renewals = self.held.iter().map(|(p, lease)| {
            let (p, revision, value) = (*p, lease.revision, me.clone());
            async move {
                let sent = Instant::now();
                let answer =
                    tokio::time::timeout(timeout, leases.update(key(p), value, revision)).await;
                (p, sent, answer)
            }
        });
        let answers = futures_util::future::join_all(renewals).await;
        let mut lost = false;
        for (p, sent, answer) in answers {
            match answer {
                Ok(Ok(revision)) => {
                    if let Some(lease) = self.held.get_mut(&p) {
                        lease.revision = revision;
                        lease.confirmed_sent_at = sent;
                    }
                }
                Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(
                        partition = p.0,
                        "lease taken by another node; stepping down"
                    );
                    self.held.remove(&p);
                    lost = true;
                }
                Ok(Err(e)) => tracing::warn!(partition = p.0, error = %e, "lease renewal failed"),
                Err(_) => tracing::warn!(partition = p.0, "lease renewal timed out"),
            }
        }
        lost |= self.step_down_expired();
        if lost {
            let live = self.status.borrow().live_nodes;
            self.publish(live, false);
        }
    }

    /// Drops every lease whose confirmed renewal is too old to act on.
    fn step_down_expired(&mut self) -> bool {
        let now = Instant::now();
        let limit = self.config.step_down_after();
        let before = self.held.len();
        self.held.retain(|p, lease| {
            let keep = now < lease.confirmed_sent_at + limit;
            if !keep {
                tracing::warn!(partition = p.0, "lease not renewed in time; stepping down");
            }
            keep
        });
        self.held.len() != before
    }

    async fn live_nodes(&mut self) -> Option<usize> {
        let mut keys = list_keys(&self.nodes, self.config.call_timeout()).await?;
        keys.sort();
        let n = keys.len();
        self.peers = keys;
        Some(n)
    }

    async fn taken(&self) -> Option<BTreeSet<Partition>> {
        let keys = list_keys(&self.leases, self.config.call_timeout()).await?;
        Some(keys.iter().filter_map(|k| partition_of_key(k)).collect())
    }

    async fn acquire(&mut self, p: Partition, me: &Bytes) {
        let sent = Instant::now();
        let created = tokio::time::timeout(
            self.config.call_timeout(),
            self.leases.create(key(p), me.clone()),
        )
        .await;
        if let Ok(Ok(revision)) = created {
            tracing::info!(partition = p.0, token = revision, "partition taken");
            self.held.insert(
                p,
                Held {
                    token: revision,
                    revision,
                    confirmed_sent_at: sent,
                },
            );
        }
    }

    async fn release(&mut self, p: Partition) {
        let Some(lease) = self.held.remove(&p) else {
            return;
        };
        // Stop acting first, then let the lease go.
        let live = self.status.borrow().live_nodes;
        self.publish(live, true);
        let deleted = tokio::time::timeout(
            self.config.call_timeout(),
            self.leases
                .delete_expect_revision(key(p), Some(lease.revision)),
        )
        .await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::warn!(
                partition = p.0,
                "lease release not confirmed; it will expire"
            );
        }
    }

    async fn leave(&mut self) {
        let held: Vec<(Partition, u64)> = self.held.iter().map(|(p, l)| (*p, l.revision)).collect();
        self.held.clear();
        self.publish(0, true);
        let timeout = self.config.call_timeout();
        for (p, revision) in held {
            let _ = tokio::time::timeout(
                timeout,
                self.leases.delete_expect_revision(key(p), Some(revision)),
            )
            .await;
        }
        let _ = tokio::time::timeout(timeout, self.nodes.delete(&self.node)).await;
    }

    fn publish(&self, live_nodes: usize, connected: bool) {
        let status = ClusterStatus {
            held: self
                .held
                .iter()
                .map(|(p, l)| {
                    let view = LeaseView {
                        token: l.token,
                        valid_until: l.confirmed_sent_at + self.config.step_down_after(),
                    };
                    (*p, view)
                })
                .collect(),
            live_nodes,
            nodes: if live_nodes == 0 {
                Vec::new()
            } else {
                self.peers.clone()
            },
            connected,
        };
        self.status.send_if_modified(|old| {
            if *old == status {
                false
            } else {
                *old = status;
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for n in [0u16, 1, 63, 999] {
            assert_eq!(partition_of_key(&key(Partition(n))), Some(Partition(n)));
        }
        assert_eq!(partition_of_key("x1"), None);
        assert_eq!(partition_of_key("p"), None);
    }

    #[test]
    fn a_node_steps_down_before_its_lease_can_expire() {
        let c = OwnershipConfig {
            namespace: "t".into(),
            node_id: "n".into(),
            partitions: PartitionCount::DEFAULT,
            lease_ttl: Duration::from_secs(6),
        };
        // The last confirmed renewal was sent at S; the server expires the lease no earlier
        // than S + TTL. The holder stops acting at S + step_down_after (its `valid_until`),
        // with room left for two bounded calls of slack (clock rate, scheduling).
        assert!(c.step_down_after() + 2 * c.call_timeout() < c.lease_ttl);
        // And it renews often enough that one slow renewal does not cost the lease.
        assert!(c.tick() + c.call_timeout() < c.step_down_after());
    }
}
