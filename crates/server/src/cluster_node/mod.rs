//! Cluster mode: this node's part in a cluster of identical nodes on one PostgreSQL (the
//! truth) and one NATS JetStream (distribution), see docs/cluster.md.
//!
//! - [`Routing`]: which partitions a device's fixes and events go to (pure).
//! - the publisher: every batch this node committed goes to the committed-event stream, one
//!   message per fix or event and partition, `Nats-Msg-Id` = `<kind><store id>.<partition>`.
//!   Publishing runs on its own task, after the commit and after the device was answered, so
//!   it never delays an ack. While NATS cannot be reached the node keeps acknowledging
//!   (PostgreSQL holds every fix) and, once NATS answers again, republishes from the store
//!   everything received since the first failure (minus a margin); the stream's duplicate
//!   window and the engine's fix-id check drop the overlap.
//! - the reader: for each partition this node holds, the stream's subject from the moment
//!   the lease was seen minus [`TAKEOVER_MARGIN`], decoded into [`Committed`] batches for the
//!   pipeline.

use crate::StartError;
use crate::config::ClusterSettings;
use bytes::Bytes;
use cluster::{ClusterStatus, EventStream, Ownership, OwnershipConfig, Partition, PartitionCount};
use domain::{
    Case, Device, DeviceEvent, DeviceId, Fix, FixFlags, FixId, LatLon, PersonId, UnixMicros,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use store::{Committed, Store};
use tokio::sync::{mpsc, watch};

/// How far before the moment it saw a new lease a node starts reading that partition's
/// subject: covers fixes committed (and published) just before the takeover, and clock skew
/// between this node and the NATS server.
pub const TAKEOVER_MARGIN: Duration = Duration::from_secs(30);
/// How far before the first failed publish the publisher re-reads the store when NATS is
/// back: a fix received earlier may commit later (group commit, retries).
pub const REPUBLISH_MARGIN: Duration = Duration::from_secs(10);
/// How long the committed events are kept in the stream.
const STREAM_MAX_AGE: Duration = Duration::from_secs(6 * 3600);
/// The bound on one publish; past it the publisher counts NATS as down.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Figures of this node's cluster traffic, for `/healthz` and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub published: AtomicU64,
    pub publish_failures: AtomicU64,
    /// Whether committed events wait to be republished from the store (NATS was down).
    pub behind: AtomicBool,
    /// Messages of held partitions not yet delivered to this node (from the stream's
    /// consumer info of the last message read), summed over partitions.
    pub pending: Arc<std::sync::Mutex<BTreeMap<Partition, u64>>>,
    /// Stream messages read into the engine.
    pub consumed: AtomicU64,
    /// Newest received time (µs) of a fix published; 0 before any.
    pub last_published_us: AtomicI64,
}

impl Stats {
    pub fn lag(&self) -> u64 {
        self.pending
            .lock()
            .map(|p| p.values().sum())
            .unwrap_or_default()
    }
}

/// A running cluster node: its NATS connection, leases and event stream.
pub struct Node {
    pub node_id: String,
    pub partitions: PartitionCount,
    pub status: watch::Receiver<ClusterStatus>,
    pub stats: Arc<Stats>,
    pub events: EventStream,
    pub client: async_nats::Client,
    pub namespace: String,
    ownership: tokio::sync::Mutex<Option<Ownership>>,
}

impl Node {
    /// Connects to NATS (a clear error within `timeout` when it cannot), opens the stream and
    /// starts taking part in partition ownership.
    pub async fn start(settings: &ClusterSettings, timeout: Duration) -> Result<Node, StartError> {
        let url = settings
            .url
            .clone()
            .ok_or_else(|| StartError::Config("no cluster URL".into()))?;
        let partitions = PartitionCount::new(settings.partitions)
            .ok_or_else(|| StartError::Config("[cluster] partitions must be at least 1".into()))?;
        let node_id = settings.node_id.clone().unwrap_or_else(default_node_id);
        if node_id.is_empty() {
            return Err(StartError::Config("the node id must not be empty".into()));
        }
        let cluster_err = |e: cluster::ClusterError| StartError::Cluster(e.to_string());
        let js = cluster::connect(&url, &node_id, timeout)
            .await
            .map_err(cluster_err)?;
        let events = tokio::time::timeout(
            timeout,
            EventStream::open(js.clone(), &settings.namespace, STREAM_MAX_AGE),
        )
        .await
        .map_err(|_| {
            StartError::Cluster(format!("NATS did not open the stream within {timeout:?}"))
        })?
        .map_err(cluster_err)?;
        let ownership = tokio::time::timeout(
            timeout,
            Ownership::start(
                js.clone(),
                OwnershipConfig {
                    namespace: settings.namespace.clone(),
                    node_id: node_id.clone(),
                    partitions,
                    lease_ttl: Duration::from_secs(settings.lease_ttl_s.max(1)),
                },
            ),
        )
        .await
        .map_err(|_| {
            StartError::Cluster(format!(
                "NATS did not open the lease buckets within {timeout:?}"
            ))
        })?
        .map_err(cluster_err)?;
        tracing::info!(node = %node_id, %url, namespace = %settings.namespace, partitions = partitions.get(), "joined the cluster");
        Ok(Node {
            node_id,
            partitions,
            status: ownership.status(),
            stats: Arc::default(),
            events,
            client: js.client(),
            namespace: settings.namespace.clone(),
            ownership: tokio::sync::Mutex::new(Some(ownership)),
        })
    }

    /// The core NATS subject on which a node announces a roster change (people, devices,
    /// cases, orders), so every node's engine reloads it.
    pub fn roster_subject(&self) -> String {
        format!("{}.roster", cluster_ns(&self.namespace))
    }

    /// The partitions held now, and valid at this instant.
    pub fn held(&self) -> BTreeSet<Partition> {
        self.held_leases().into_keys().collect()
    }

    /// The partitions held now with their fencing tokens (the revision each lease was taken
    /// at), for the alert writes' fence.
    pub fn held_leases(&self) -> std::collections::BTreeMap<Partition, u64> {
        let now = tokio::time::Instant::now();
        self.status
            .borrow()
            .held
            .iter()
            .filter(|(_, l)| now < l.valid_until)
            .map(|(p, l)| (*p, l.token))
            .collect()
    }

    /// Whether this node runs the once-per-cluster timers (escalation, the court scheduler,
    /// retention, the outbox): the holder of partition 0's lease, so the leader is chosen by
    /// the same lease mechanism and steps down with it.
    pub fn is_leader(&self) -> bool {
        self.held().contains(&Partition(0))
    }

    /// Leaves the cluster on purpose: the leases are deleted so that live nodes take them at
    /// their next tick.
    pub async fn leave(&self) {
        if let Some(o) = self.ownership.lock().await.take() {
            o.leave().await;
        }
    }
}

fn cluster_ns(namespace: &str) -> String {
    namespace
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Node {
    /// The core NATS subject on which every node's live events are shared.
    pub fn live_subject(&self) -> String {
        format!("{}.live", cluster_ns(&self.namespace))
    }
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!(
        "{}-{}",
        if host.is_empty() { "node" } else { &host },
        std::process::id()
    )
}

/// Which partitions each device's fixes and events go to: a bound person's devices to his
/// partition; a protected person's to the partition of every person whose case protects
/// her; a device whose owner is in no case to the owner's; an unowned device to the
/// partition of person 0 (nothing in the engine evaluates it).
#[derive(Debug, Clone, Default)]
pub struct Routing {
    count: Option<PartitionCount>,
    devices: HashMap<DeviceId, Vec<Partition>>,
    /// Each case's partition (its offender's).
    pub case_partition: HashMap<domain::CaseId, Partition>,
}

impl Routing {
    pub fn build(devices: &[Device], cases: &[Case], count: PartitionCount) -> Routing {
        let mut of_person: HashMap<PersonId, BTreeSet<Partition>> = HashMap::new();
        let mut case_partition = HashMap::new();
        for c in cases {
            let p = cluster::partition_of(c.offender, count);
            case_partition.insert(c.id, p);
            of_person.entry(c.offender).or_default().insert(p);
            for v in &c.protected {
                of_person.entry(*v).or_default().insert(p);
            }
        }
        let devices = devices
            .iter()
            .map(|d| {
                let owner = d.owner.unwrap_or(PersonId(0));
                let parts = match of_person.get(&owner) {
                    Some(set) => set.iter().copied().collect(),
                    None => vec![cluster::partition_of(owner, count)],
                };
                (d.id, parts)
            })
            .collect();
        Routing {
            count: Some(count),
            devices,
            case_partition,
        }
    }

    /// The device's partitions; `None` for a device this routing does not know yet.
    pub fn partitions_of(&self, device: DeviceId) -> Option<&[Partition]> {
        self.devices.get(&device).map(Vec::as_slice)
    }

    pub fn count(&self) -> Option<PartitionCount> {
        self.count
    }
}

/// One committed fix or event as carried on the stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wire {
    Fix {
        id: i64,
        device: i64,
        device_time: i64,
        received_time: i64,
        lat: f64,
        lon: f64,
        accuracy_m: Option<f64>,
        speed_mps: Option<f64>,
        course_deg: Option<f64>,
        altitude_m: Option<f64>,
        source: String,
        flags: u32,
        seq: Option<i64>,
    },
    Event {
        id: i64,
        device: i64,
        event: String,
        device_time: i64,
        received_time: i64,
        lat: Option<f64>,
        lon: Option<f64>,
        code: Option<String>,
    },
}

impl Wire {
    pub fn from_fix(f: &Fix) -> Option<Wire> {
        Some(Wire::Fix {
            id: f.id?.0,
            device: f.device_id.0,
            device_time: f.device_time.0,
            received_time: f.received_time.0,
            lat: f.position.lat(),
            lon: f.position.lon(),
            accuracy_m: f.accuracy_m,
            speed_mps: f.speed_mps,
            course_deg: f.course_deg,
            altitude_m: f.altitude_m,
            source: f.source.as_str().into(),
            flags: f.flags.0,
            seq: f.seq,
        })
    }

    pub fn from_event(e: &DeviceEvent) -> Option<Wire> {
        Some(Wire::Event {
            id: e.id?,
            device: e.device_id.0,
            event: e.kind.as_str().into(),
            device_time: e.device_time.0,
            received_time: e.received_time.0,
            lat: e.position.map(|p| p.lat()),
            lon: e.position.map(|p| p.lon()),
            code: e.code.clone(),
        })
    }

    /// The message id: the kind, the store id and the partition (the same fix published to
    /// two partitions is two messages).
    pub fn msg_id(&self, p: Partition) -> String {
        match self {
            Wire::Fix { id, .. } => format!("f{id}.{}", p.0),
            Wire::Event { id, .. } => format!("e{id}.{}", p.0),
        }
    }

    pub fn device(&self) -> DeviceId {
        match self {
            Wire::Fix { device, .. } | Wire::Event { device, .. } => DeviceId(*device),
        }
    }

    /// Back to the stored form; `None` for a message this build cannot read (logged by the
    /// caller, never a panic).
    pub fn into_committed(self) -> Option<Committed> {
        match self {
            Wire::Fix {
                id,
                device,
                device_time,
                received_time,
                lat,
                lon,
                accuracy_m,
                speed_mps,
                course_deg,
                altitude_m,
                source,
                flags,
                seq,
            } => Some(Committed {
                fixes: vec![Fix {
                    id: Some(FixId(id)),
                    device_id: DeviceId(device),
                    device_time: UnixMicros(device_time),
                    received_time: UnixMicros(received_time),
                    position: LatLon::new(lat, lon).ok()?,
                    accuracy_m,
                    speed_mps,
                    course_deg,
                    altitude_m,
                    source: source.parse().ok()?,
                    flags: FixFlags(flags),
                    seq,
                }],
                events: Vec::new(),
            }),
            Wire::Event {
                id,
                device,
                event,
                device_time,
                received_time,
                lat,
                lon,
                code,
            } => Some(Committed {
                fixes: Vec::new(),
                events: vec![DeviceEvent {
                    id: Some(id),
                    device_id: DeviceId(device),
                    kind: event.parse().ok()?,
                    device_time: UnixMicros(device_time),
                    received_time: UnixMicros(received_time),
                    position: match (lat, lon) {
                        (Some(a), Some(o)) => Some(LatLon::new(a, o).ok()?),
                        _ => None,
                    },
                    code,
                }],
            }),
        }
    }
}

/// The routing as the store has it now.
async fn load_routing(store: &Store, count: PartitionCount) -> Result<Routing, store::StoreError> {
    let devices = store.list_devices().await?;
    let cases = store.list_cases().await?;
    Ok(Routing::build(&devices, &cases, count))
}

/// Publishes every batch this node commits (see the module's comment). Ends when the store
/// closes its committed stream.
pub fn spawn_publisher(
    node: Arc<Node>,
    store: Store,
    mut committed: mpsc::UnboundedReceiver<Committed>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let count = node.partitions;
        let mut routing = Routing::default();
        let mut routing_at = tokio::time::Instant::now() - Duration::from_secs(3600);
        // Since when (received time) committed events may be missing from the stream.
        let mut behind_since: Option<i64> = None;
        let mut retry = tokio::time::interval(Duration::from_secs(2));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = committed.recv() => {
                    let Some(batch) = batch else { break };
                    if behind_since.is_some() {
                        // In the store; the catch-up re-reads it.
                        continue;
                    }
                    let items = wires(&batch);
                    if needs_reload(&routing, &items) || routing_at.elapsed() > Duration::from_secs(5) {
                        match load_routing(&store, count).await {
                            Ok(r) => { routing = r; routing_at = tokio::time::Instant::now(); }
                            Err(e) => tracing::error!(error = %e, "cannot read the routing; keeping the previous one"),
                        }
                    }
                    if let Err(first) = publish_all(&node, &routing, count, &items).await {
                        tracing::warn!(since_us = first, "NATS unreachable: committed events will be republished from the store");
                        behind_since = Some(first);
                        node.stats.behind.store(true, Ordering::Relaxed);
                    }
                }
                _ = retry.tick(), if behind_since.is_some() => {
                    let Some(since) = behind_since else { continue };
                    let from = UnixMicros(since - REPUBLISH_MARGIN.as_micros() as i64);
                    let (fixes, events) = match (store.fixes_received_since(from).await, store.events_received_since(from).await) {
                        (Ok(f), Ok(e)) => (f, e),
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::error!(error = %e, "cannot read the store to republish; retrying");
                            continue;
                        }
                    };
                    let batch = Committed { fixes, events };
                    let items = wires(&batch);
                    if let Ok(r) = load_routing(&store, count).await {
                        routing = r;
                        routing_at = tokio::time::Instant::now();
                    }
                    if publish_all(&node, &routing, count, &items).await.is_ok() {
                        tracing::info!(republished = items.len(), "caught up the stream from the store");
                        behind_since = None;
                        node.stats.behind.store(false, Ordering::Relaxed);
                    }
                }
            }
        }
    })
}

fn wires(batch: &Committed) -> Vec<(i64, Wire)> {
    // Events first, as the pipeline evaluates them.
    batch
        .events
        .iter()
        .filter_map(|e| Some((e.received_time.0, Wire::from_event(e)?)))
        .chain(
            batch
                .fixes
                .iter()
                .filter_map(|f| Some((f.received_time.0, Wire::from_fix(f)?))),
        )
        .collect()
}

fn needs_reload(routing: &Routing, items: &[(i64, Wire)]) -> bool {
    items
        .iter()
        .any(|(_, w)| routing.partitions_of(w.device()).is_none())
}

/// Publishes each item to each of its partitions; on the first failure, the received time
/// from which the stream may lack events.
async fn publish_all(
    node: &Node,
    routing: &Routing,
    count: PartitionCount,
    items: &[(i64, Wire)],
) -> Result<(), i64> {
    for (received, w) in items {
        let fallback = [cluster::partition_of(PersonId(0), count)];
        let parts = routing.partitions_of(w.device()).unwrap_or(&fallback);
        let payload = match serde_json::to_vec(w) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a committed event; skipped");
                continue;
            }
        };
        for p in parts {
            let sent = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                node.events.publish(*p, &w.msg_id(*p), payload.clone()),
            )
            .await;
            match sent {
                Ok(Ok(_)) => {
                    node.stats.published.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "publish failed");
                    node.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(*received);
                }
                Err(_) => {
                    node.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(*received);
                }
            }
        }
        node.stats
            .last_published_us
            .fetch_max(*received, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads the subjects of the partitions this node holds into `out`, starting each from the
/// moment its lease was seen minus [`TAKEOVER_MARGIN`], and stops reading a partition as soon
/// as its lease is gone.
pub fn spawn_reader(
    node: Arc<Node>,
    clock: crate::clock::Clock,
    out: mpsc::UnboundedSender<Committed>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut status = node.status.clone();
        let mut readers: BTreeMap<Partition, tokio::task::JoinHandle<()>> = BTreeMap::new();
        loop {
            let held: BTreeSet<Partition> =
                status.borrow_and_update().held.keys().copied().collect();
            readers.retain(|p, task| {
                let keep = held.contains(p) && !task.is_finished();
                if !keep {
                    task.abort();
                    if let Ok(mut pending) = node.stats.pending.lock() {
                        pending.remove(p);
                    }
                }
                keep
            });
            let since = clock.now().0 - TAKEOVER_MARGIN.as_micros() as i64;
            for p in held {
                if readers.contains_key(&p) {
                    continue;
                }
                readers.insert(
                    p,
                    tokio::spawn(read_partition(node.clone(), p, since, out.clone())),
                );
            }
            // A reader that failed is restarted at the next change or within a second.
            tokio::select! {
                changed = status.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        for (_, t) in readers {
            t.abort();
        }
    })
}

async fn read_partition(
    node: Arc<Node>,
    p: Partition,
    since: i64,
    out: mpsc::UnboundedSender<Committed>,
) {
    let mut messages = match node.events.read_since(p, since).await {
        Ok(m) => Box::pin(m),
        Err(e) => {
            tracing::warn!(partition = p.0, error = %e, "cannot read the partition's stream; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    while let Some(m) = messages.next().await {
        let event = match m {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(partition = p.0, error = %e, "reading the partition's stream failed");
                return;
            }
        };
        if let Ok(mut pending) = node.stats.pending.lock() {
            pending.insert(p, event.pending);
        }
        match serde_json::from_slice::<Wire>(&event.payload)
            .ok()
            .and_then(Wire::into_committed)
        {
            Some(c) => {
                node.stats.consumed.fetch_add(1, Ordering::Relaxed);
                if out.send(c).is_err() {
                    return;
                }
            }
            None => {
                tracing::error!(partition = p.0, msg_id = ?event.msg_id, "unreadable stream message skipped")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{CaseId, DeviceKind, FixSource, Protocol};

    fn device(id: i64, owner: Option<i64>) -> Device {
        Device {
            id: DeviceId(id),
            kind: DeviceKind::Tracker,
            protocol: Protocol::Native,
            hardware_id: format!("hw{id}"),
            owner: owner.map(PersonId),
        }
    }

    fn case(id: i64, offender: i64, protected: &[i64]) -> Case {
        Case {
            id: CaseId(id),
            reference: format!("c{id}"),
            offender: PersonId(offender),
            protected: protected.iter().map(|p| PersonId(*p)).collect(),
        }
    }

    #[test]
    fn devices_go_to_the_partitions_of_the_bound_persons_that_concern_them() {
        let count = PartitionCount::DEFAULT;
        let p = |person: i64| cluster::partition_of(PersonId(person), count);
        // Persons 1 and 2 are bound; 3 is protected from both, 4 from 1 only; 5 in no case.
        let cases = [case(10, 1, &[3, 4]), case(11, 2, &[3])];
        let devices = [
            device(100, Some(1)),
            device(101, Some(3)),
            device(102, Some(4)),
            device(103, Some(5)),
            device(104, None),
        ];
        let r = Routing::build(&devices, &cases, count);
        assert_eq!(r.partitions_of(DeviceId(100)), Some(&[p(1)][..]));
        let mut both = vec![p(1), p(2)];
        both.sort();
        both.dedup();
        assert_eq!(r.partitions_of(DeviceId(101)), Some(&both[..]));
        assert_eq!(r.partitions_of(DeviceId(102)), Some(&[p(1)][..]));
        assert_eq!(r.partitions_of(DeviceId(103)), Some(&[p(5)][..]));
        assert_eq!(r.partitions_of(DeviceId(104)), Some(&[p(0)][..]));
        assert_eq!(r.partitions_of(DeviceId(999)), None, "unknown: reload");
        assert_eq!(r.case_partition.get(&CaseId(11)), Some(&p(2)));
    }

    #[test]
    fn a_fix_and_an_event_survive_the_wire_and_unreadable_ones_are_refused() {
        let fix = Fix {
            id: Some(FixId(42)),
            device_id: DeviceId(7),
            device_time: UnixMicros(1_780_000_000_000_000),
            received_time: UnixMicros(1_780_000_000_100_000),
            position: LatLon::new(37.5, 127.0).unwrap(),
            accuracy_m: Some(5.0),
            speed_mps: None,
            course_deg: Some(90.0),
            altitude_m: None,
            source: FixSource::Gnss,
            flags: FixFlags(3),
            seq: Some(9),
        };
        let w = Wire::from_fix(&fix).unwrap();
        assert_eq!(w.msg_id(Partition(5)), "f42.5");
        let bytes = serde_json::to_vec(&w).unwrap();
        let back: Wire = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.into_committed().unwrap().fixes, vec![fix.clone()]);
        let event = DeviceEvent {
            id: Some(8),
            device_id: DeviceId(7),
            kind: domain::DeviceEventKind::ALL[0],
            device_time: UnixMicros(1),
            received_time: UnixMicros(2),
            position: None,
            code: Some("gt06:x".into()),
        };
        let w = Wire::from_event(&event).unwrap();
        assert_eq!(w.msg_id(Partition(0)), "e8.0");
        assert_eq!(w.into_committed().unwrap().events, vec![event]);
        // An uncommitted fix has no id to publish under.
        assert!(Wire::from_fix(&Fix { id: None, ..fix }).is_none());
        let bad: Wire = serde_json::from_str(
            r#"{"kind":"fix","id":1,"device":1,"device_time":0,"received_time":0,"lat":99.0,"lon":0.0,"accuracy_m":null,"speed_mps":null,"course_deg":null,"altitude_m":null,"source":"gnss","flags":0,"seq":null}"#,
        )
        .unwrap();
        assert!(bad.into_committed().is_none(), "latitude 99 is refused");
    }
}
