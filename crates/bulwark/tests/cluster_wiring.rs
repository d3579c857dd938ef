//! `bulwark serve` in cluster mode, driving the real binary against the real PostgreSQL
//! (127.0.0.1:5432) and NATS JetStream (127.0.0.1:4222). Without them the tests say SKIPPED,
//! unless `BULWARK_REQUIRE_SERVICES=1` (CI), where a missing service fails them. Each test
//! uses its own PostgreSQL schema and its own NATS namespace. Waits are bounded by generous
//! deadlines; the assertions are about who holds what, never about speed (takeover times are
//! printed as measurements).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const NATS: &str = "nats://127.0.0.1:4222";
const TOKEN: &str = "cluster-wiring-admin";

fn required() -> bool {
    std::env::var("BULWARK_REQUIRE_SERVICES").as_deref() == Ok("1")
}

fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("cw_{}_{}_{test}", std::process::id(), nanos % 1_000_000)
}

/// A fresh schema's store URL, or `None` (SKIPPED) without PostgreSQL.
async fn fresh_schema(test: &str) -> Option<String> {
    let schema = unique(test);
    match tokio_postgres::connect(PG, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .expect("create schema");
            Some(format!("{PG}?options=-csearch_path%3D{schema}"))
        }
        Err(e) => {
            assert!(!required(), "PostgreSQL is required here: {e}");
            eprintln!("SKIPPED: {test}: PostgreSQL at {PG} not reachable: {e}");
            None
        }
    }
}

fn nats_up(test: &str) -> bool {
    match std::net::TcpStream::connect_timeout(
        &"127.0.0.1:4222".parse().expect("addr"),
        Duration::from_secs(2),
    ) {
        Ok(_) => true,
        Err(e) => {
            assert!(!required(), "NATS is required here: {e}");
            eprintln!("SKIPPED: {test}: NATS at {NATS} not reachable: {e}");
            false
        }
    }
}

struct NodeProc {
    child: Child,
    http: String,
    _dir: tempfile::TempDir,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one node with every device door on a free port and waits for its HTTP address.
fn start_node(store: &str, namespace: &str, node_id: &str) -> NodeProc {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        "osmand_port = 0\n[devices]\ngt06_port = 0\nh02_port = 0\nwatch_port = 0\nteltonika_port = 0\n[cluster]\nlease_ttl_s = 2\npartitions = 16\n",
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["serve", "--http-port", "0", "--bind", "127.0.0.1"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--store", store, "--cluster", NATS, "--node-id", node_id])
        .args(["--cluster-namespace", namespace, "--admin-token", TOKEN])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bulwark");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("Bulwark listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let http = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the node printed its address");
    NodeProc {
        child,
        http,
        _dir: dir,
    }
}

async fn cluster_view(client: &reqwest::Client, node: &NodeProc) -> Option<serde_json::Value> {
    let v: serde_json::Value = client
        .get(format!("{}/healthz", node.http))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v.get("cluster").cloned()
}

fn owned(view: &serde_json::Value) -> BTreeSet<u64> {
    view["partitions_owned"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn two_nodes_split_the_partitions_and_a_killed_nodes_share_passes_to_the_other() {
    let test = "two_nodes_split";
    if !nats_up(test) {
        return;
    }
    let Some(store) = fresh_schema(test).await else {
        return;
    };
    let ns = unique("split");
    let a = start_node(&store, &ns, "node-a");
    let mut b = Some(start_node(&store, &ns, "node-b"));
    let client = reqwest::Client::new();
    let all: BTreeSet<u64> = (0..16).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let va = cluster_view(&client, &a).await;
        let vb = cluster_view(&client, b.as_ref().expect("b")).await;
        if let (Some(va), Some(vb)) = (&va, &vb) {
            let (oa, ob) = (owned(va), owned(vb));
            assert!(oa.is_disjoint(&ob), "a partition on two nodes: {oa:?} {ob:?}");
            let union: BTreeSet<u64> = oa.union(&ob).copied().collect();
            if union == all && oa.len() == 8 && va["nodes"].as_array().map(Vec::len) == Some(2) {
                assert_eq!(va["node_id"], "node-a");
                assert_eq!(vb["node_id"], "node-b");
                // Exactly one leader: the holder of partition 0.
                let leaders = [va, vb].iter().filter(|v| v["role"] == "leader").count();
                assert_eq!(leaders, 1);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no even split within 60 s: {va:?} {vb:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The anonymous answer stays status and version only.
    let anon: serde_json::Value = client
        .get(format!("{}/healthz", a.http))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    assert!(anon.get("cluster").is_none(), "{anon}");
    let metrics = client
        .get(format!("{}/metrics", a.http))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("bulwark_cluster_partitions_owned 8"),
        "{metrics}"
    );
    // kill -9 node b: node a takes over every partition once b's leases expire.
    drop(b.take());
    let killed = Instant::now();
    loop {
        if let Some(va) = cluster_view(&client, &a).await
            && owned(&va) == all
        {
            assert_eq!(va["role"], "leader");
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no takeover within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "measured: node a held all 16 partitions {:?} after node b was killed (lease TTL 2 s)",
        killed.elapsed()
    );
}

#[tokio::test]
async fn unreachable_services_and_a_cluster_without_postgres_stop_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |extra: &[&str]| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(["serve", "--http-port", "0", "--osmand-port", "0"])
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "off")
            .output()
            .expect("run bulwark");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        eprintln!("{extra:?}: exit {:?} after {:?}", out.status.code(), started.elapsed());
        (out.status.success(), stderr)
    };
    let (ok, err) = run(&["--store", "postgres://postgres@127.0.0.1:1/test"]);
    assert!(!ok);
    assert!(err.contains("cannot reach PostgreSQL"), "{err}");
    let (ok, err) = run(&["--cluster", NATS]);
    assert!(!ok);
    assert!(err.contains("needs the shared PostgreSQL store"), "{err}");
    let (ok, err) = run(&["--store", "mysql://x"]);
    assert!(!ok);
    assert!(err.contains("postgres://"), "{err}");
    let Some(store) = fresh_schema("unreachable_nats").await else {
        return;
    };
    let (ok, err) = run(&["--store", &store, "--cluster", "nats://127.0.0.1:1"]);
    assert!(!ok);
    assert!(err.contains("cannot reach NATS"), "{err}");
}
