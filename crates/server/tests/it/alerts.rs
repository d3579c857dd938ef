//! Alerts that reach people, over real sockets: the WebSocket live stream and its resume,
//! dual dispatch and what police may see, the victim's alerts and silent mode, Web Push
//! through a real local push service, and the ingest-backlog system alert.

use crate::harness::{self, Http, PASSWORD, eventually, poll};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "alerts-test-admin-token-0123456789";

async fn start_with(dir: &Path, adjust: impl FnOnce(&mut server::Config)) -> server::Running {
    harness::start_with(dir, ADMIN, |config| {
        harness::without_tracker_listeners(config);
        config.webhook_delivery.retry_base_ms = 20;
        adjust(config);
    })
    .await
}

/// What this module's tests ask of the client.
trait AlertsHttp {
    async fn created(&self, path: &str, body: Value) -> Value;
    async fn account(&self, username: &str, role: &str, person: Option<i64>) -> (i64, String);
    async fn report(&self, device_token: &str, seq: i64, lat: f64, lon: f64, sos: bool);
}

impl AlertsHttp for Http {
    async fn created(&self, path: &str, body: Value) -> Value {
        self.created_by(ADMIN, path, body).await
    }
    async fn account(&self, username: &str, role: &str, person: Option<i64>) -> (i64, String) {
        let id = self.new_account(ADMIN, username, role, person).await;
        (id, self.log_in_with(username, PASSWORD).await)
    }
    /// Sends one fix (and optionally an SOS) from a native device.
    async fn report(&self, device_token: &str, seq: i64, lat: f64, lon: f64, sos: bool) {
        let now = jiff::Timestamp::now().to_string();
        let mut body = json!({"fixes": [{"seq": seq, "time": now, "lat": lat, "lon": lon, "accuracy_m": 8.0}]});
        if sos {
            body["events"] = json!([{"kind": "sos", "time": now}]);
        }
        let (s, _) = self.post("/api/v1/ingest/batch", device_token, body).await;
        assert_eq!(s, StatusCode::OK);
    }
}

/// One case of the world: its people, devices (native, with tokens) and SOS alert.
struct Case {
    id: i64,
    victim: i64,
    ankle: i64,
    phone: i64,
    ankle_token: String,
    phone_token: String,
    victim_at: (f64, f64),
}

/// Two cases, A and B, with one monitoring officer assigned to both, a police account, and
/// accounts for A's victim and offender.
struct World {
    h: Http,
    a: Case,
    b: Case,
    officer: String,
    police_id: i64,
    police: String,
    victim_a: String,
    offender_a: String,
}

async fn case(h: &Http, name: &str, victim_at: (f64, f64)) -> Case {
    let off = h
        .created(
            "/api/v1/people",
            json!({"role": "offender", "display_name": format!("O{name}")}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let vic = h
        .created(
            "/api/v1/people",
            json!({"role": "protected", "display_name": format!("V{name}")}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let ankle_token = format!("ankle-{name}-token-0000000001");
    let phone_token = format!("phone-{name}-token-0000000001");
    let ankle = h
        .created(
            "/api/v1/devices",
            json!({"kind": "ankle_monitor", "protocol": "native", "hardware_id": format!("ankle-{name}"), "owner_id": off, "token": ankle_token}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let phone = h
        .created(
            "/api/v1/devices",
            json!({"kind": "victim_phone", "protocol": "native", "hardware_id": format!("phone-{name}"), "owner_id": vic, "token": phone_token}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let id = h
        .created(
            "/api/v1/cases",
            json!({"reference": name, "offender_id": off, "protected_ids": [vic]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    Case {
        id,
        victim: vic,
        ankle,
        phone,
        ankle_token,
        phone_token,
        victim_at,
    }
}

async fn world(r: &server::Running) -> World {
    let h = Http::new(r);
    let a = case(&h, "A", (37.5100, 127.0100)).await;
    let b = case(&h, "B", (37.6200, 127.1200)).await;
    let (officer_id, officer) = h.account("officer", "monitoring_officer", None).await;
    for k in [a.id, b.id] {
        let (s, v) = h
            .post(
                &format!("/api/v1/accounts/{officer_id}/assignments"),
                ADMIN,
                json!({"case_id": k}),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    let (police_id, police) = h.account("police", "police", None).await;
    let (_, victim_a) = h.account("victim-a", "victim", Some(a.victim)).await;
    let offender_person = h.get("/api/v1/cases", ADMIN).await.1[0]["offender_id"]
        .as_i64()
        .unwrap();
    let (_, offender_a) = h
        .account("offender-a", "offender", Some(offender_person))
        .await;
    World {
        h,
        a,
        b,
        officer,
        police_id,
        police,
        victim_a,
        offender_a,
    }
}

/// The active alert of a case (its SOS), as the officer lists it.
async fn alert_of(w: &World, case: &Case) -> i64 {
    poll("the case's alert", || async {
        let (_, alerts) = w.h.get("/api/v1/alerts", &w.officer).await;
        alerts.as_array().unwrap().iter().find_map(|a| {
            (a["device_id"] == case.phone || a["case_id"] == case.id)
                .then(|| a["id"].as_i64())
                .flatten()
        })
    })
    .await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(h: &Http, token: &str, last: Option<&str>) -> Ws {
    let mut url = format!(
        "{}/api/v1/live/ws?access_token={token}",
        h.base.replace("http://", "ws://")
    );
    if let Some(l) = last {
        url.push_str(&format!("&last_event_id={l}"));
    }
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

/// The next JSON message of a WebSocket.
async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the stream delivers")
            .expect("the stream is open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

fn seq_of(id: &Value) -> (String, u64) {
    let (e, s) = id.as_str().unwrap().split_once('-').unwrap();
    (e.to_string(), s.parse().unwrap())
}

#[tokio::test]
async fn a_websocket_client_that_reconnects_gets_exactly_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_with(dir.path(), |_| {}).await;
    let w = world(&r).await;
    let ankle = w.a.ankle_token.clone();
    let send = |seq: i64| {
        let (h, t) = (w.h.clone(), ankle.clone());
        async move {
            h.report(&t, seq, 37.4 + seq as f64 * 1e-4, 127.0, false)
                .await
        }
    };
    // Start at once (no id yet).
    let mut first = ws_connect(&w.h, &w.officer, None).await;
    first
        .send(Message::Text(
            json!({"last_event_id": null}).to_string().into(),
        ))
        .await
        .unwrap();
    send(1).await;
    send(2).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = ws_next(&mut first).await;
        assert_eq!(m["event"], "position", "{m}");
        assert_eq!(m["data"]["device_id"], w.a.ankle, "{m}");
        got.push(m);
    }
    let last_id = got[1]["id"].as_str().unwrap().to_string();
    // Disconnected mid-stream; three positions happen meanwhile.
    drop(first);
    for seq in 3..=5 {
        send(seq).await;
    }
    let (epoch, seen) = seq_of(&json!(last_id));
    for resume_by_message in [false, true] {
        let mut again = if resume_by_message {
            let mut ws = ws_connect(&w.h, &w.officer, None).await;
            ws.send(Message::Text(
                json!({"last_event_id": last_id}).to_string().into(),
            ))
            .await
            .unwrap();
            ws
        } else {
            ws_connect(&w.h, &w.officer, Some(&last_id)).await
        };
        // Everything after the last id seen: positions 3..=5, and on the second pass also
        // the one sent live during the first.
        let missed = if resume_by_message { 4 } else { 3 };
        let mut seqs = Vec::new();
        while seqs.len() < missed {
            let m = ws_next(&mut again).await;
            assert_eq!(m["event"], "position", "{m}");
            let (e, s) = seq_of(&m["id"]);
            assert_eq!(e, epoch);
            seqs.push(s);
        }
        assert_eq!(
            seqs,
            (1..=missed as u64).map(|i| seen + i).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
        // Live events follow the replay on the same socket.
        send(if resume_by_message { 7 } else { 6 }).await;
        let m = ws_next(&mut again).await;
        assert_eq!(seq_of(&m["id"]).1, seen + missed as u64 + 1, "{m}");
    }
    // An id from another run (or older than the buffer) asks the client to reload.
    let mut stale = ws_connect(&w.h, &w.officer, Some("1-1")).await;
    let m = ws_next(&mut stale).await;
    assert_eq!(
        (m["event"].as_str(), &m["id"]),
        (Some("resync"), &Value::Null)
    );
    // The WebSocket is scoped like the SSE stream: the offender is refused before upgrading.
    let url = format!(
        "{}/api/v1/live/ws?access_token={}",
        w.h.base.replace("http://", "ws://"),
        w.offender_a
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403)
        }
        other => panic!("the offender got a stream: {:?}", other.map(|(_, r)| r)),
    }
    r.shutdown().await;
}

/// Reads WebSocket messages until a position of `sentinel_device` arrives; returns every
/// message before it. Events are delivered in publication order, so anything published
/// before the sentinel that the client may see has arrived by then.
async fn until_sentinel(ws: &mut Ws, sentinel_device: i64) -> Vec<Value> {
    let mut before = Vec::new();
    loop {
        let m = ws_next(ws).await;
        if m["event"] == "position" && m["data"]["device_id"] == sentinel_device {
            return before;
        }
        before.push(m);
    }
}

/// The same for the SSE stream: (event, data) pairs before the sentinel's position.
async fn sse_until_sentinel(resp: &mut reqwest::Response, sentinel_device: i64) -> Vec<Value> {
    let mut buf = String::new();
    let mut before = Vec::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("the stream delivers")
            .unwrap()
            .expect("the stream is open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                block.lines().find_map(|l| {
                    l.strip_prefix(&format!("{name}:"))
                        .map(|v| v.trim().to_string())
                })
            };
            let (Some(event), Some(data)) = (field("event"), field("data")) else {
                continue;
            };
            let m = json!({"event": event, "data": serde_json::from_str::<Value>(&data).unwrap()});
            if m["event"] == "position" && m["data"]["device_id"] == sentinel_device {
                return before;
            }
            before.push(m);
        }
    }
}

/// Whether a live message is about case `c` (its devices, its alerts).
fn about(m: &Value, c: &Case) -> bool {
    let d = &m["data"]["device_id"];
    *d == c.ankle || *d == c.phone || m["data"]["case_id"] == c.id
}

/// A webhook receiver that records what it accepted.
async fn receiver() -> (Arc<Mutex<Vec<Value>>>, String) {
    let (seen, url, _) = gated_receiver(true).await;
    (seen, url)
}

/// A webhook receiver that answers 503 while its gate is closed.
async fn gated_receiver(
    open: bool,
) -> (
    Arc<Mutex<Vec<Value>>>,
    String,
    Arc<std::sync::atomic::AtomicBool>,
) {
    use axum::http::HeaderMap;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(open));
    let (s2, g2) = (seen.clone(), gate.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (seen, gate) = (s2.clone(), g2.clone());
            async move {
                if !gate.load(std::sync::atomic::Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let ts: i64 = h("x-bulwark-timestamp").parse().unwrap_or(0);
                let valid = h("x-bulwark-signature")
                    == format!(
                        "v1={}",
                        server::webhooks::signature("police-secret", ts, &body)
                    );
                let mut v: Value = serde_json::from_slice(&body).unwrap();
                v["signature_valid"] = json!(valid);
                seen.lock().unwrap().push(v);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, url, gate)
}

#[tokio::test]
async fn police_see_the_victims_position_only_inside_their_dispatch() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url) = receiver().await;
    let r = start_with(dir.path(), |c| {
        c.webhooks = vec![server::config::Webhook {
            name: "police".into(),
            url,
            secret: "police-secret".into(),
            events: vec!["dispatch.police".into()],
        }];
        // The grant ends the moment the alert is resolved.
        c.alerts.dispatch_grace_s = 0;
    })
    .await;
    let w = world(&r).await;
    let (a, b) = (&w.a, &w.b);
    // Positions for everyone, and an SOS in each case.
    w.h.report(&a.ankle_token, 1, 37.40, 127.30, false).await;
    w.h.report(&b.ankle_token, 1, 37.41, 127.31, false).await;
    w.h.report(&a.phone_token, 1, a.victim_at.0, a.victim_at.1, true)
        .await;
    w.h.report(&b.phone_token, 1, b.victim_at.0, b.victim_at.1, true)
        .await;
    let (alert_a, alert_b) = (alert_of(&w, a).await, alert_of(&w, b).await);

    police_before_any_dispatch_see_nothing_and_cannot_dispatch(&w, alert_b).await;
    dual_dispatch_in_case_b(&w, alert_b).await;
    let mut ws = police_stream_is_scoped_to_case_b(&w).await;
    let mut sse = dispatched_to_case_a_the_police_see_its_victim(&w, alert_a, &mut ws).await;
    police_webhook_got_each_dispatch_once_signed(&w, &hook).await;
    let tasks = resolution_ends_case_as_grant(&w, alert_a, &mut ws, &mut sse).await;
    case_bs_dispatch_stands_and_is_in_the_action_log(&w, alert_b, &tasks).await;
    r.shutdown().await;
}

async fn police_before_any_dispatch_see_nothing_and_cannot_dispatch(w: &World, alert_b: i64) {
    // Before any dispatch: no task, no position, no case.
    let (s, tasks) = w.h.get("/api/v1/tasks", &w.police).await;
    assert_eq!((s, tasks.clone()), (StatusCode::OK, json!([])));
    let (_, latest) = w.h.get("/api/v1/positions/latest", &w.police).await;
    assert_eq!(latest, json!([]));

    // Police are dispatched, they do not dispatch; a non-police account is refused.
    let (s, _) =
        w.h.post(
            &format!("/api/v1/alerts/{alert_b}/dispatch"),
            &w.police,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) =
        w.h.post(
            &format!("/api/v1/alerts/{alert_b}/dispatch"),
            &w.officer,
            json!({"police_account_id": 1}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_reference")),
        "{v}"
    );
}

async fn dual_dispatch_in_case_b(w: &World, alert_b: i64) {
    // Dual dispatch in case B.
    let (s, d) =
        w.h.post(
            &format!("/api/v1/alerts/{alert_b}/dispatch"),
            &w.officer,
            json!({"police_account_id": w.police_id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(d["alert"]["state"], "dispatched");
    let kinds: Vec<&str> = d["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["officer_to_offender", "police_to_victim"]);
    // The officer's own task carries the offender's position with its time, accuracy and
    // source; the police task shows the officer no victim position.
    let to_offender = &d["tasks"][0];
    assert_eq!(to_offender["target"]["role"], "offender");
    let p = &to_offender["target"]["position"];
    assert_eq!(
        (p["lat"].as_f64(), p["source"].as_str()),
        (Some(37.41), Some("gnss"))
    );
    assert!(p["device_time"].is_string() && p["accuracy_m"] == 8.0 && p["age_s"].is_number());
    assert_eq!(d["tasks"][1]["target"]["position"], Value::Null);
}

async fn police_stream_is_scoped_to_case_b(w: &World) -> Ws {
    let (a, b) = (&w.a, &w.b);
    // The police stream, opened with case B granted: case A is another case.
    let mut ws = ws_connect(&w.h, &w.police, Some("0-0")).await;
    assert_eq!(ws_next(&mut ws).await["event"], "resync");
    w.h.report(&a.phone_token, 2, a.victim_at.0, a.victim_at.1, false)
        .await;
    w.h.report(&b.phone_token, 2, b.victim_at.0, b.victim_at.1, false)
        .await;
    let before = until_sentinel(&mut ws, b.phone).await;
    assert!(!before.iter().any(|m| about(m, a)), "{before:?}");
    let (_, tasks) = w.h.get("/api/v1/tasks", &w.police).await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    assert_eq!(tasks[0]["target"]["position"]["lat"], b.victim_at.0);

    ws
}

async fn dispatched_to_case_a_the_police_see_its_victim(
    w: &World,
    alert_a: i64,
    ws: &mut Ws,
) -> reqwest::Response {
    let (a, b) = (&w.a, &w.b);
    // Now dispatched to case A too: its victim's position, in the task and on a new stream.
    let (s, d) =
        w.h.post(
            &format!("/api/v1/alerts/{alert_a}/dispatch"),
            &w.officer,
            json!({"police_account_id": w.police_id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let (_, tasks) = w.h.get("/api/v1/tasks", &w.police).await;
    let task_a = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["case_id"] == a.id)
        .unwrap()
        .clone();
    assert_eq!(task_a["kind"], "police_to_victim");
    assert_eq!(task_a["target"]["person_id"], a.victim);
    let p = &task_a["target"]["position"];
    assert_eq!(
        (p["lat"].as_f64(), p["lon"].as_f64()),
        (Some(a.victim_at.0), Some(a.victim_at.1))
    );
    assert!(p["received_time"].is_string() && p["source"] == "gnss" && p["accuracy_m"] == 8.0);
    // A new stream in place of the first (its grant was case B alone).
    *ws = ws_connect(&w.h, &w.police, Some("0-0")).await;
    assert_eq!(ws_next(ws).await["event"], "resync");
    w.h.report(&a.phone_token, 3, a.victim_at.0, a.victim_at.1, false)
        .await;
    let m = ws_next(ws).await;
    assert_eq!(
        (m["event"].as_str(), &m["data"]["device_id"]),
        (Some("position"), &json!(a.phone)),
        "{m}"
    );
    // And over SSE, with the same scope.
    let mut sse =
        w.h.http
            .get(format!(
                "{}/api/v1/live?access_token={}",
                w.h.base, w.police
            ))
            .send()
            .await
            .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    w.h.report(&a.phone_token, 30, a.victim_at.0, a.victim_at.1, false)
        .await;
    w.h.report(&b.phone_token, 30, b.victim_at.0, b.victim_at.1, false)
        .await;
    let seen_sse = sse_until_sentinel(&mut sse, b.phone).await;
    assert!(
        seen_sse.iter().any(|m| m["data"]["device_id"] == a.phone),
        "{seen_sse:?}"
    );
    let before = until_sentinel(ws, b.phone).await;
    assert!(
        before.iter().any(|m| m["data"]["device_id"] == a.phone),
        "{before:?}"
    );

    sse
}

async fn police_webhook_got_each_dispatch_once_signed(w: &World, hook: &Arc<Mutex<Vec<Value>>>) {
    let (a, b) = (&w.a, &w.b);
    // The police webhook got each dispatch exactly once, signed, with the victim's position
    // inside it.
    eventually("both dispatch deliveries", || async {
        hook.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = hook.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (got, case) in seen.iter().zip([b, a]) {
        assert_eq!(got["event"], "dispatch.police");
        assert_eq!(got["signature_valid"], true);
        assert_eq!(got["dispatch"]["case_id"], case.id);
        assert_eq!(got["dispatch"]["police_account_id"], w.police_id);
        assert_eq!(
            got["dispatch"]["victim"]["position"]["lat"],
            case.victim_at.0
        );
        assert!(got["dispatch"]["victim"]["position"]["device_time"].is_string());
    }
}

/// Resolved with a grace of 0: the grant ends. Answers the police's tasks after it.
async fn resolution_ends_case_as_grant(
    w: &World,
    alert_a: i64,
    ws: &mut Ws,
    sse: &mut reqwest::Response,
) -> Value {
    let (a, b) = (&w.a, &w.b);
    // Resolved (grace 0): the grant ends. Nothing more of case A reaches the police, not on
    // the stream that is still open, not in the task, not in the positions.
    let (s, _) =
        w.h.post(
            &format!("/api/v1/alerts/{alert_a}/state"),
            &w.officer,
            json!({"state": "resolved", "cause": "true_violation"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    w.h.report(
        &a.phone_token,
        4,
        a.victim_at.0 + 0.001,
        a.victim_at.1,
        false,
    )
    .await;
    w.h.report(&b.phone_token, 3, b.victim_at.0, b.victim_at.1, false)
        .await;
    let before = until_sentinel(ws, b.phone).await;
    assert!(
        !before.iter().any(|m| about(m, a)),
        "after expiry: {before:?}"
    );
    let before = sse_until_sentinel(sse, b.phone).await;
    assert!(
        !before.iter().any(|m| about(m, a)),
        "after expiry, SSE: {before:?}"
    );
    let (_, tasks) = w.h.get("/api/v1/tasks", &w.police).await;
    let task_a = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["case_id"] == a.id)
        .unwrap()
        .clone();
    assert_eq!(task_a["target"]["position"], Value::Null, "{task_a}");
    let (s, _) =
        w.h.post(
            &format!("/api/v1/tasks/{}/state", task_a["id"]),
            &w.police,
            json!({"state": "done"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the grant is over");
    let (_, latest) = w.h.get("/api/v1/positions/latest", &w.police).await;
    assert!(
        !latest
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device_id"] == a.phone || p["device_id"] == a.ankle),
        "{latest}"
    );
    tasks
}

async fn case_bs_dispatch_stands_and_is_in_the_action_log(w: &World, alert_b: i64, tasks: &Value) {
    let b = &w.b;
    // Case B's dispatch still stands.
    let (s, t) =
        w.h.post(
            &format!(
                "/api/v1/tasks/{}/state",
                tasks
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["case_id"] == b.id)
                    .unwrap()["id"]
            ),
            &w.police,
            json!({"state": "on_scene"}),
        )
        .await;
    assert_eq!(
        (s, t["state"].as_str()),
        (StatusCode::OK, Some("on_scene")),
        "{t}"
    );
    // The dispatch steps are in the action log (measures read time to dispatch from it).
    let (_, log) =
        w.h.get(&format!("/api/v1/alerts/{alert_b}/history"), &w.officer)
            .await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.starts_with(&[
            "officer_dispatched_to_offender",
            "police_dispatched_to_victim"
        ]),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_dispatch_webhook_delivered_after_the_grant_ended_carries_no_position() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, url, gate) = gated_receiver(false).await;
    let r = start_with(dir.path(), |c| {
        c.webhooks = vec![server::config::Webhook {
            name: "police".into(),
            url,
            secret: "police-secret".into(),
            events: vec!["dispatch.police".into()],
        }];
        c.alerts.dispatch_grace_s = 0;
    })
    .await;
    let w = world(&r).await;
    let a = &w.a;
    w.h.report(&a.phone_token, 1, a.victim_at.0, a.victim_at.1, true)
        .await;
    let alert = alert_of(&w, a).await;
    let (s, _) =
        w.h.post(
            &format!("/api/v1/alerts/{alert}/dispatch"),
            &w.officer,
            json!({"police_account_id": w.police_id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // The receiver is down until the alert is resolved and the grant is over.
    let (s, _) =
        w.h.post(
            &format!("/api/v1/alerts/{alert}/state"),
            &w.officer,
            json!({"state": "resolved", "cause": "gps_error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    gate.store(true, std::sync::atomic::Ordering::SeqCst);
    eventually("the late delivery", || async {
        !hook.lock().unwrap().is_empty()
    })
    .await;
    let got = hook.lock().unwrap()[0].clone();
    assert_eq!(got["event"], "dispatch.police");
    assert_eq!(got["dispatch"]["case_id"], a.id);
    assert_eq!(got["dispatch"]["victim"]["position"], Value::Null, "{got}");
    assert_eq!(got["alert"]["state"], "resolved");
    r.shutdown().await;
}

#[tokio::test]
async fn a_victim_sees_her_alerts_by_class_without_positions_and_sets_silent_mode() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_with(dir.path(), |_| {}).await;
    let w = world(&r).await;
    her_alerts_are_classes_without_positions(&w).await;
    a_test_alert_is_class_test_and_resolved(&w).await;
    the_offender_and_staff_have_no_my_alerts(&w).await;
    she_sets_silent_mode(&w).await;
    r.shutdown().await;
}

async fn her_alerts_are_classes_without_positions(w: &World) {
    // His tamper (danger), her SOS (danger); case B's SOS is not hers.
    let now = jiff::Timestamp::now().to_string();
    let r2 = w
        .h
        .http
        .post(format!("{}/api/v1/ingest/batch", w.h.base))
        .bearer_auth(&w.a.ankle_token)
        .json(&json!({"events": [{"kind": "tamper", "time": now}], "fixes": [{"seq": 1, "time": now, "lat": 37.4, "lon": 127.3}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status(), StatusCode::OK);
    w.h.report(&w.a.phone_token, 1, w.a.victim_at.0, w.a.victim_at.1, true)
        .await;
    w.h.report(&w.b.phone_token, 1, w.b.victim_at.0, w.b.victim_at.1, true)
        .await;
    let mine = poll("her two alerts", || async {
        let mine = w.h.get("/api/v1/me/alerts", &w.victim_a).await.1;
        mine.as_array()
            .is_some_and(|a| a.len() == 2)
            .then_some(mine)
    })
    .await;
    let mut kinds: Vec<(String, String)> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut keys: Vec<&String> = a.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(
                keys,
                [
                    "class",
                    "id",
                    "kind",
                    "raised_at",
                    "severity",
                    "state",
                    "updated_at"
                ],
                "exactly this shape, no position"
            );
            (
                a["class"].as_str().unwrap().into(),
                a["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("danger".into(), "sos".into()),
            ("danger".into(), "tamper".into())
        ]
    );
    let text = mine.to_string();
    assert!(
        !text.contains("lat") && !text.contains("distance"),
        "{text}"
    );
}

async fn a_test_alert_is_class_test_and_resolved(w: &World) {
    // A test alert: class `test`, already resolved.
    let (s, t) =
        w.h.post("/api/v1/me/alerts/test", &w.victim_a, json!({}))
            .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(
        (t["class"].as_str(), t["kind"].as_str(), t["state"].as_str()),
        (Some("test"), Some("test"), Some("resolved"))
    );
    assert_eq!(
        w.h.get("/api/v1/me/alerts", &w.victim_a)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

async fn the_offender_and_staff_have_no_my_alerts(w: &World) {
    // The offender and staff have no "my alerts".
    assert_eq!(
        w.h.get("/api/v1/me/alerts", &w.offender_a).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.h.get("/api/v1/me/alerts", &w.officer).await.0,
        StatusCode::FORBIDDEN
    );
}

async fn she_sets_silent_mode(w: &World) {
    // Silent mode.
    assert_eq!(
        w.h.get("/api/v1/me/settings", &w.victim_a).await.1,
        json!({"silent": false})
    );
    let (s, v) =
        w.h.call(
            "put",
            "/api/v1/me/settings",
            Some(&w.victim_a),
            Some(json!({"silent": true})),
        )
        .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"silent": true})));
    assert_eq!(
        w.h.get("/api/v1/me/settings", &w.victim_a).await.1,
        json!({"silent": true})
    );
    let (s, v) =
        w.h.call(
            "put",
            "/api/v1/me/settings",
            Some(&w.victim_a),
            Some(json!({"silent": "yes"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
}

/// What the push service accepted: (subscription path, topic, decrypted payload).
type Pushed = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A push service on 127.0.0.1: verifies the VAPID token (ES256, audience, expiry) against
/// the server's published key, decrypts the aes128gcm body with the subscription's private
/// key, and fails its first `fail_first` requests.
async fn push_service(
    vapid_public: String,
    keys: BTreeMap<String, (web_push_native::p256::SecretKey, [u8; 16])>,
    fail_first: usize,
) -> (Pushed, Arc<std::sync::atomic::AtomicUsize>, String) {
    use axum::extract::Path as AxPath;
    use axum::http::HeaderMap;
    use base64::Engine as _;
    use web_push_native::jwt_simple::prelude::*;
    let pushed: Pushed = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // web-push-native's audience is scheme and host (no port).
    let (p2, c2, audience) = (
        pushed.clone(),
        calls.clone(),
        "http://127.0.0.1".to_string(),
    );
    let keys = Arc::new(keys);
    let app = axum::Router::new().route(
        "/push/{sub}",
        axum::routing::post(
            move |AxPath(sub): AxPath<String>, headers: HeaderMap, body: axum::body::Bytes| {
                let (pushed, calls, keys, audience, vapid_public) = (
                    p2.clone(),
                    c2.clone(),
                    keys.clone(),
                    audience.clone(),
                    vapid_public.clone(),
                );
                async move {
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail_first {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let h = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    // Authorization: vapid t=<jwt>, k=<public key>
                    let auth = h("authorization");
                    let rest = auth.strip_prefix("vapid ").expect("a VAPID authorization");
                    let mut t = "";
                    let mut k = "";
                    for part in rest.split(',') {
                        let part = part.trim();
                        if let Some(v) = part.strip_prefix("t=") {
                            t = v;
                        }
                        if let Some(v) = part.strip_prefix("k=") {
                            k = v;
                        }
                    }
                    assert_eq!(k, vapid_public, "signed with the published key");
                    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(k)
                        .unwrap();
                    let pk = ES256PublicKey::from_bytes(&raw).unwrap();
                    let options = VerificationOptions {
                        allowed_audiences: Some(HashSet::from_strings(&[audience])),
                        ..Default::default()
                    };
                    if pk.verify_token::<NoCustomClaims>(t, Some(options)).is_err() {
                        return StatusCode::UNAUTHORIZED;
                    }
                    assert_eq!(h("content-encoding"), "aes128gcm");
                    let (secret, auth) = &keys[&sub];
                    let plain = web_push_native::decrypt(
                        body.to_vec(),
                        secret,
                        web_push_native::Auth::from_slice(auth),
                    )
                    .expect("the payload decrypts with the subscription's key");
                    let payload: Value = serde_json::from_slice(&plain).unwrap();
                    pushed.lock().unwrap().push((sub, h("topic"), payload));
                    StatusCode::CREATED
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (pushed, calls, base)
}

#[tokio::test]
async fn web_push_reaches_a_real_push_service_encrypted_signed_and_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_with(dir.path(), |_| {}).await;
    let w = world(&r).await;
    let (s, key) = w.h.get("/api/v1/push/vapid-public-key", "").await;
    assert_eq!(s, StatusCode::OK);
    let vapid_public = key["public_key"].as_str().unwrap().to_string();
    // Two browsers: hers and the officer's, each with its own key pair and auth secret.
    let mut keys = BTreeMap::new();
    for (i, name) in ["victim", "officer"].iter().enumerate() {
        let secret = web_push_native::p256::SecretKey::from_slice(&[i as u8 + 7; 32]).unwrap();
        keys.insert(name.to_string(), (secret, [i as u8 + 1; 16]));
    }
    let (pushed, calls, base) = push_service(vapid_public.clone(), keys.clone(), 3).await;
    subscribe_her_and_the_officer(&w, &base, &keys).await;
    // Her SOS (danger: both hear of it) and her test (only her).
    w.h.report(&w.a.phone_token, 1, w.a.victim_at.0, w.a.victim_at.1, true)
        .await;
    let sos = alert_of(&w, &w.a).await;
    let (s, t) =
        w.h.post("/api/v1/me/alerts/test", &w.victim_a, json!({}))
            .await;
    assert_eq!(s, StatusCode::CREATED);
    let test = t["id"].as_i64().unwrap();
    let ours = || {
        pushed
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, p)| p["alert_id"] == sos || p["alert_id"] == test)
            .cloned()
            .collect::<Vec<_>>()
    };
    eventually("three push messages", || async { ours().len() >= 3 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = ours();
    assert_eq!(got.len(), 3, "each message exactly once: {got:?}");
    assert!(
        calls.load(std::sync::atomic::Ordering::SeqCst) >= 6,
        "the first three attempts failed"
    );
    each_message_once_with_its_topic_class_and_silence(&got, sos, test);
    // Unsubscribed: nothing more goes there.
    let (s, _) =
        w.h.call(
            "delete",
            "/api/v1/me/push-subscriptions",
            Some(&w.victim_a),
            Some(json!({"endpoint": format!("{base}/push/victim")})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The key survives a restart (browsers keep subscriptions made with it).
    r.shutdown().await;
    let r = start_with(dir.path(), |_| {}).await;
    let h = Http::new(&r);
    assert_eq!(
        h.get("/api/v1/push/vapid-public-key", "").await.1["public_key"],
        vapid_public.as_str()
    );
    r.shutdown().await;
}

/// Her browser and the officer's subscribe with their keys; a bad endpoint is refused; she
/// turns silent mode on.
async fn subscribe_her_and_the_officer(
    w: &World,
    base: &str,
    keys: &BTreeMap<String, (web_push_native::p256::SecretKey, [u8; 16])>,
) {
    use base64::Engine as _;
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    for (name, token) in [("victim", &w.victim_a), ("officer", &w.officer)] {
        let (secret, auth) = &keys[name];
        let body = json!({"endpoint": format!("{base}/push/{name}"), "keys": {
            "p256dh": b64(secret.public_key().to_encoded_point(false).as_bytes()),
            "auth": b64(auth)}, "expirationTime": null});
        let (s, v) = w.h.post("/api/v1/me/push-subscriptions", token, body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) =
        w.h.post(
            "/api/v1/me/push-subscriptions",
            &w.victim_a,
            json!({"endpoint": "ftp://x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
    let (s, _) =
        w.h.call(
            "put",
            "/api/v1/me/settings",
            Some(&w.victim_a),
            Some(json!({"silent": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

/// The three messages: the SOS to both (silent for her), her test to her alone, each with its
/// own topic.
fn each_message_once_with_its_topic_class_and_silence(
    got: &[(String, String, Value)],
    sos: i64,
    test: i64,
) {
    let mut topics: Vec<&String> = got.iter().map(|(_, t, _)| t).collect();
    topics.sort();
    topics.dedup();
    assert_eq!(topics.len(), 3, "one topic per message");
    assert!(topics.iter().all(|t| t.len() == 32));
    let find = |sub: &str, alert: i64| {
        got.iter()
            .find(|(s, _, p)| s == sub && p["alert_id"] == alert)
            .map(|(_, _, p)| p.clone())
            .unwrap_or_else(|| panic!("{sub} {alert}: {got:?}"))
    };
    assert_eq!(
        find("victim", sos),
        json!({"alert_id": sos, "class": "danger", "kind": "sos", "event": "alert.raised", "silent": true})
    );
    assert_eq!(
        find("officer", sos),
        json!({"alert_id": sos, "class": "danger", "kind": "sos", "event": "alert.raised", "silent": false})
    );
    assert_eq!(find("victim", test)["class"], "test");
    assert!(
        !got.iter()
            .any(|(s, _, p)| s == "officer" && p["alert_id"] == test),
        "her test is hers"
    );
}

#[tokio::test]
async fn a_server_behind_on_ingest_raises_a_system_alert_every_officer_sees() {
    let dir = tempfile::tempdir().unwrap();
    // Any queued write or batch counts as behind, so that a burst shows it.
    let r = start_with(dir.path(), |c| {
        c.alerts.backlog_max_queue = 0;
        c.alerts.backlog_max_lag_s = 1e9;
        c.alerts.backlog_clear_hold_s = 1.0;
    })
    .await;
    let w = world(&r).await;
    // An officer with no case at all still sees it.
    let (_, idle_officer) =
        w.h.account("idle-officer", "monitoring_officer", None)
            .await;
    let mut live = ws_connect(&w.h, &idle_officer, None).await;
    live.send(Message::Text(
        json!({"last_event_id": null}).to_string().into(),
    ))
    .await
    .unwrap();
    send_a_burst_of_batches(&w).await;
    let alert = the_backlog_alert_is_raised_and_streamed(&w, &idle_officer, &mut live).await;
    it_clears_and_is_acknowledged(&w, &idle_officer, &alert).await;
    // The victim hears of degraded protection only while it lasts: it cleared.
    let (s, mine) = w.h.get("/api/v1/me/alerts", &w.victim_a).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!mine.to_string().contains("ingest_backlog"), "{mine}");
    r.shutdown().await;
}

/// The one ingest-backlog alert in a list of alerts, if it is there.
fn backlog(list: Value) -> Option<Value> {
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "ingest_backlog")
        .cloned()
}

async fn send_a_burst_of_batches(w: &World) {
    // A burst: many concurrent batches of fixes.
    let mut burst = Vec::new();
    for i in 0..40i64 {
        let h = w.h.clone();
        let token = w.a.ankle_token.clone();
        burst.push(tokio::spawn(async move {
            let base = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(4_100);
            let fixes: Vec<Value> = (0..100i64)
                .map(|j| {
                    let t = base + jiff::SignedDuration::from_secs(i * 100 + j);
                    json!({"seq": 10_000 + i * 100 + j, "time": t.to_string(), "lat": 37.4, "lon": 127.3})
                })
                .collect();
            let r = h
                .http
                .post(format!("{}/api/v1/ingest/batch", h.base))
                .bearer_auth(&token)
                .json(&json!({"fixes": fixes}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }));
    }
    for b in burst {
        b.await.unwrap();
    }
}

/// Raised as a system alert (no case, critical) and streamed to an officer with no case.
async fn the_backlog_alert_is_raised_and_streamed(
    w: &World,
    idle_officer: &str,
    live: &mut Ws,
) -> Value {
    let alert = poll("the ingest-backlog alert", || async {
        backlog(w.h.get("/api/v1/alerts?active=false", idle_officer).await.1)
    })
    .await;
    assert_eq!(
        (alert["case_id"].clone(), alert["severity"].as_str()),
        (Value::Null, Some("critical"))
    );
    // Streamed to the officer with no case.
    loop {
        let m = ws_next(live).await;
        if m["event"] == "alert" && m["data"]["rule"] == "ingest_backlog" {
            break;
        }
    }
    alert
}

async fn it_clears_and_is_acknowledged(w: &World, idle_officer: &str, alert: &Value) {
    // Cleared when the queue drains; acknowledged like any alert.
    eventually("the backlog clears", || async {
        backlog(w.h.get("/api/v1/alerts?active=false", idle_officer).await.1)
            .is_some_and(|a| a["condition_active"] == false)
    })
    .await;
    let (s, v) =
        w.h.post(
            &format!("/api/v1/alerts/{}/state", alert["id"]),
            idle_officer,
            json!({"state": "acknowledged"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let metrics =
        w.h.http
            .get(format!("{}/metrics", w.h.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(metrics.contains("bulwark_ingest_backlog 0"), "{metrics}");
}

#[tokio::test]
async fn officers_list_the_active_police_units_they_may_dispatch() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_with(dir.path(), |_| {}).await;
    let w = world(&r).await;
    let (second_id, _) = w.h.account("police-2", "police", None).await;
    let (s, units) = w.h.get("/api/v1/police-units", &w.officer).await;
    assert_eq!(s, StatusCode::OK, "{units}");
    // Police accounts only (not the officer, the victim or the offender), names and ids only.
    assert_eq!(
        units,
        json!([{"account_id": w.police_id, "username": "police"},
               {"account_id": second_id, "username": "police-2"}])
    );
    // Police are dispatched, they do not dispatch; parties never see the roster.
    for token in [&w.police, &w.victim_a, &w.offender_a] {
        let (s, v) = w.h.get("/api/v1/police-units", token).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    }
    // A disabled account is no unit any more.
    let (s, v) =
        w.h.post(
            &format!("/api/v1/accounts/{second_id}/disable"),
            ADMIN,
            json!({}),
        )
        .await;
    assert!(s.is_success(), "{s} {v}");
    let (_, units) = w.h.get("/api/v1/police-units", &w.officer).await;
    assert_eq!(
        units,
        json!([{"account_id": w.police_id, "username": "police"}])
    );
    // Each read, and each refusal, is in the access log.
    let (_, auditor) = w.h.account("auditor", "auditor", None).await;
    let (s, log) = w.h.get("/api/v1/audit?limit=5000", &auditor).await;
    assert_eq!(s, StatusCode::OK);
    let roster: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.to_string().contains("dispatch roster"))
        .collect();
    let outcomes: Vec<String> = roster
        .iter()
        .map(|e| e.to_string())
        .map(|e| {
            if e.contains("denied") {
                "denied"
            } else {
                "allowed"
            }
            .to_string()
        })
        .collect();
    assert_eq!(
        outcomes,
        ["allowed", "denied", "denied", "denied", "allowed"],
        "{roster:?}"
    );
    r.shutdown().await;
}
