//! Partition ownership and the event stream against the real NATS JetStream server at
//! 127.0.0.1:4222. Without one these tests say SKIPPED, unless `BULWARK_REQUIRE_SERVICES=1`
//! (as in CI), where a missing server fails them.
//!
//! Each test works in its own namespace (its own buckets and stream) and deletes it at the end.
//! Waits are bounded by generous deadlines so a broken build fails instead of hanging; the
//! assertions are about who holds what and in which order, never about speed. Takeover times
//! are printed as measurements.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use cluster::{
    ClusterError, ClusterStatus, EventStream, Ownership, OwnershipConfig, Partition, PartitionCount,
};
use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::time::Instant;

const NATS: &str = "nats://127.0.0.1:4222";

async fn nats(test: &str) -> Option<jetstream::Context> {
    match cluster::connect(NATS, test, Duration::from_secs(3)).await {
        Ok(js) => Some(js),
        Err(e) => {
            if std::env::var("BULWARK_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("NATS JetStream is required here (BULWARK_REQUIRE_SERVICES=1): {e}");
            }
            eprintln!("SKIPPED: {test}: NATS JetStream at {NATS} not reachable: {e}");
            None
        }
    }
}

fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("t{}_{}_{test}", std::process::id(), nanos % 1_000_000_000)
}

async fn cleanup(js: &jetstream::Context, ns: &str) {
    let _ = js.delete_key_value(format!("{ns}_leases")).await;
    let _ = js.delete_key_value(format!("{ns}_nodes")).await;
    let _ = js.delete_stream(format!("{ns}_events")).await;
}

fn config(ns: &str, node: &str, partitions: u16, ttl: Duration) -> OwnershipConfig {
    OwnershipConfig {
        namespace: ns.to_string(),
        node_id: node.to_string(),
        partitions: PartitionCount::new(partitions).expect("non-zero"),
        lease_ttl: ttl,
    }
}

/// Waits until `done` holds for the nodes' current statuses, checking at every sample that no
/// partition is acted on by two nodes at once.
async fn wait_for(
    nodes: &[&Ownership],
    deadline: Duration,
    what: &str,
    done: impl Fn(&[ClusterStatus]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let statuses: Vec<ClusterStatus> =
            nodes.iter().map(|n| n.status().borrow().clone()).collect();
        assert_no_double_owner(&statuses);
        if done(&statuses) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: not reached within {deadline:?}; statuses: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_no_double_owner(statuses: &[ClusterStatus]) {
    let now = Instant::now();
    let mut owner: BTreeMap<Partition, usize> = BTreeMap::new();
    for (i, s) in statuses.iter().enumerate() {
        for (p, lease) in &s.held {
            if lease.valid_until <= now {
                continue; // its holder may no longer act on it
            }
            if let Some(other) = owner.insert(*p, i) {
                panic!("partition {p} acted on by nodes {other} and {i} at once");
            }
        }
    }
}

fn held_counts(statuses: &[ClusterStatus]) -> Vec<usize> {
    statuses.iter().map(|s| s.held.len()).collect()
}

fn covers(statuses: &[ClusterStatus], partitions: u16) -> bool {
    let mut all: Vec<Partition> = statuses
        .iter()
        .flat_map(|s| s.held.keys().copied())
        .collect();
    all.sort();
    all == (0..partitions).map(Partition).collect::<Vec<_>>()
}

#[tokio::test]
async fn a_republished_event_is_stored_once() {
    let Some(js) = nats("a_republished_event_is_stored_once").await else {
        return;
    };
    let ns = namespace("dedup");
    let events = EventStream::open(js.clone(), &ns, Duration::from_secs(600))
        .await
        .expect("stream");
    let first = events
        .publish(Partition(3), "fix-41", Bytes::from_static(b"a"))
        .await
        .expect("publish");
    let again = events
        .publish(Partition(3), "fix-41", Bytes::from_static(b"a"))
        .await
        .expect("republish");
    let next = events
        .publish(Partition(3), "fix-42", Bytes::from_static(b"b"))
        .await
        .expect("publish");
    assert!(!first.duplicate);
    assert!(again.duplicate, "the server must drop a republished id");
    assert_eq!(
        again.sequence, first.sequence,
        "a duplicate names the original's place"
    );
    assert!(!next.duplicate);
    assert_eq!(events.last_sequence().await.expect("info"), next.sequence);

    let read: Vec<_> = events
        .read(Partition(3), 0)
        .await
        .expect("read")
        .take(2)
        .collect()
        .await;
    let ids: Vec<Option<String>> = read.into_iter().map(|e| e.expect("event").msg_id).collect();
    assert_eq!(ids, vec![Some("fix-41".into()), Some("fix-42".into())]);
    cleanup(&js, &ns).await;
}

#[tokio::test]
async fn a_partitions_reader_resumes_after_its_watermark_in_order() {
    let Some(js) = nats("a_partitions_reader_resumes_after_its_watermark_in_order").await else {
        return;
    };
    let ns = namespace("watermark");
    let events = EventStream::open(js.clone(), &ns, Duration::from_secs(600))
        .await
        .expect("stream");
    let mut p3 = Vec::new();
    for i in 0..10u32 {
        let a = events
            .publish(Partition(3), &format!("a{i}"), Bytes::from(format!("{i}")))
            .await
            .expect("publish");
        p3.push(a.sequence);
        // Another partition's traffic in between must not show up in partition 3.
        events
            .publish(Partition(4), &format!("b{i}"), Bytes::from_static(b"x"))
            .await
            .expect("publish");
    }
    let watermark = p3[3];
    let got: Vec<_> = events
        .read(Partition(3), watermark)
        .await
        .expect("read")
        .take(6)
        .map(|e| e.expect("event"))
        .collect()
        .await;
    let seqs: Vec<u64> = got.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, p3[4..].to_vec());
    let payloads: Vec<&[u8]> = got.iter().map(|e| e.payload.as_ref()).collect();
    assert_eq!(payloads, vec![b"4" as &[u8], b"5", b"6", b"7", b"8", b"9"]);
    cleanup(&js, &ns).await;
}

#[tokio::test]
async fn a_partitions_reader_from_a_time_gets_only_what_was_stored_after_it() {
    let test = "a_partitions_reader_from_a_time_gets_only_what_was_stored_after_it";
    let Some(js) = nats(test).await else {
        return;
    };
    let ns = namespace("since");
    let events = EventStream::open(js.clone(), &ns, Duration::from_secs(600))
        .await
        .expect("stream");
    for i in 0..3u32 {
        events
            .publish(Partition(2), &format!("old{i}"), Bytes::from(format!("old{i}")))
            .await
            .expect("publish");
    }
    // The server stamps messages with its clock (the same machine's): a gap on either side
    // of the chosen instant separates the two groups whatever the rounding.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3u32 {
        events
            .publish(Partition(2), &format!("new{i}"), Bytes::from(format!("new{i}")))
            .await
            .expect("publish");
    }
    let got: Vec<_> = events
        .read_since(Partition(2), since)
        .await
        .expect("read")
        .take(3)
        .map(|e| e.expect("event"))
        .collect()
        .await;
    let ids: Vec<Option<String>> = got.iter().map(|e| e.msg_id.clone()).collect();
    assert_eq!(
        ids,
        vec![Some("new0".into()), Some("new1".into()), Some("new2".into())]
    );
    cleanup(&js, &ns).await;
}

#[tokio::test]
async fn three_nodes_share_every_partition_and_a_killed_nodes_share_passes_on() {
    let test = "three_nodes_share_every_partition_and_a_killed_nodes_share_passes_on";
    let Some(js) = nats(test).await else {
        return;
    };
    let ns = namespace("three");
    let ttl = Duration::from_secs(2);
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        let js = cluster::connect(NATS, name, Duration::from_secs(3))
            .await
            .expect("connect");
        nodes.push(
            Ownership::start(js, config(&ns, name, 12, ttl))
                .await
                .expect("start"),
        );
    }
    let refs: Vec<&Ownership> = nodes.iter().collect();
    let settle = wait_for(&refs, Duration::from_secs(30), "fair shares", |s| {
        covers(s, 12) && held_counts(s) == vec![4, 4, 4]
    })
    .await;
    eprintln!("measured: 3 nodes reached 4+4+4 of 12 partitions in {settle:?}");

    let before: ClusterStatus = nodes[0].status().borrow().clone();
    // Every node sees the three by name once settled.
    let names = wait_for(&refs, Duration::from_secs(30), "names", |s| {
        s.iter().all(|st| st.nodes == ["node-a", "node-b", "node-c"])
    })
    .await;
    eprintln!("every node listed the three names after {names:?} more");
    let killed = nodes.remove(0);
    drop(killed); // aborts its task: no release, as kill -9 would
    let refs: Vec<&Ownership> = nodes.iter().collect();
    let takeover = wait_for(&refs, Duration::from_secs(30), "takeover", |s| {
        covers(s, 12)
    })
    .await;
    eprintln!(
        "measured: a killed node's 4 partitions were held again after {takeover:?} (lease TTL {ttl:?})"
    );

    // The new owners' fencing tokens are larger than the dead owner's.
    for (p, old) in &before.held {
        let new = nodes
            .iter()
            .find_map(|n| n.status().borrow().held.get(p).copied())
            .expect("taken over");
        assert!(
            new.token > old.token,
            "partition {p}: token {} after {}",
            new.token,
            old.token
        );
    }
    // And the survivors settle on even shares.
    wait_for(&refs, Duration::from_secs(30), "shares of two", |s| {
        covers(s, 12) && held_counts(s) == vec![6, 6]
    })
    .await;
    for n in nodes {
        n.leave().await;
    }
    cleanup(&js, &ns).await;
}

/// A TCP relay between a node and NATS that the test can cut, as a network fault would.
struct Relay {
    url: String,
    tasks: Arc<Mutex<tokio::task::JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("nats://{}", listener.local_addr().expect("addr"));
        let tasks = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                t.lock().await.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:4222").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { url, tasks, accept }
    }

    async fn cut(self) {
        self.accept.abort();
        let _ = self.accept.await;
        self.tasks.lock().await.abort_all();
    }
}

#[tokio::test]
async fn a_node_cut_off_from_nats_stops_acting_before_another_takes_over() {
    let test = "a_node_cut_off_from_nats_stops_acting_before_another_takes_over";
    let Some(js) = nats(test).await else {
        return;
    };
    let ns = namespace("cut");
    let ttl = Duration::from_secs(2);
    let relay = Relay::start().await;
    let js_a = cluster::connect(&relay.url, "node-a", Duration::from_secs(3))
        .await
        .expect("connect through relay");
    let a = Ownership::start(js_a, config(&ns, "node-a", 4, ttl))
        .await
        .expect("start a");
    wait_for(&[&a], Duration::from_secs(30), "a holds all", |s| {
        covers(s, 4)
    })
    .await;

    relay.cut().await;
    let b = Ownership::start(js.clone(), config(&ns, "node-b", 4, ttl))
        .await
        .expect("start b");
    // Record, for each partition, until when A may act on it (its last valid_until while it
    // still listed it) and when B first held it.
    let mut a_until: BTreeMap<Partition, Instant> = BTreeMap::new();
    let mut b_from: BTreeMap<Partition, Instant> = BTreeMap::new();
    let start = Instant::now();
    while b_from.len() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "B never took all 4 partitions"
        );
        let now = Instant::now();
        for (p, lease) in a.status().borrow().held.iter() {
            a_until.insert(*p, lease.valid_until);
        }
        for p in b.status().borrow().held.keys() {
            b_from.entry(*p).or_insert(now);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (p, from) in &b_from {
        let until = a_until.get(p).copied().expect("A held it");
        assert!(
            until < *from,
            "partition {p}: B acted from {from:?}, A could until {until:?}"
        );
        eprintln!(
            "measured: partition {p}: gap between the cut-off holder stopping and the new one starting {:?}",
            from.duration_since(until)
        );
    }
    assert!(
        a.status().borrow().held.is_empty(),
        "A stepped down from everything"
    );
    drop(a);
    b.leave().await;
    cleanup(&js, &ns).await;
}

#[tokio::test]
async fn a_node_that_leaves_deletes_its_leases_for_the_others() {
    let test = "a_node_that_leaves_deletes_its_leases_for_the_others";
    let Some(js) = nats(test).await else {
        return;
    };
    let ns = namespace("leave");
    // A TTL far longer than the test: any takeover seen here came from the release.
    let ttl = Duration::from_secs(120);
    let a = Ownership::start(js.clone(), config(&ns, "node-a", 4, ttl))
        .await
        .expect("start a");
    wait_for(&[&a], Duration::from_secs(60), "a holds all", |s| {
        covers(s, 4)
    })
    .await;
    a.leave().await;
    let leases = js
        .get_key_value(format!("{ns}_leases"))
        .await
        .expect("bucket");
    for p in 0..4 {
        assert_eq!(
            leases.get(format!("p{p}")).await.expect("get"),
            None,
            "p{p} released"
        );
    }
    let nodes = js
        .get_key_value(format!("{ns}_nodes"))
        .await
        .expect("bucket");
    assert_eq!(
        nodes.get("node-a").await.expect("get"),
        None,
        "presence removed"
    );
    cleanup(&js, &ns).await;
}

#[tokio::test]
async fn an_unreachable_nats_is_a_clear_error_not_a_hang() {
    let started = std::time::Instant::now();
    let err = match cluster::connect("nats://127.0.0.1:1", "t", Duration::from_secs(2)).await {
        Ok(_) => panic!("nothing listens on port 1"),
        Err(e) => e,
    };
    assert!(matches!(err, ClusterError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    eprintln!("measured: refused in {:?}", started.elapsed());
}
