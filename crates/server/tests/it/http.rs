//! Integration tests: the real server on port 0, spoken to over real HTTP.

use crate::harness::{self, Http, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The victim phone's device token (the phone doors require one).
const PHONE_TOKEN: &str = "phone-1-token-0000001";
const TOKEN: &str = "test-staff-token-0123456789";

async fn start(dir: &Path) -> server::Running {
    start_with(dir, |_| {}).await
}

async fn start_with(dir: &Path, adjust: impl FnOnce(&mut server::Config)) -> server::Running {
    harness::start_with(dir, TOKEN, |config| {
        config.osmand_port = Some(0);
        adjust(config);
    })
    .await
}

/// The harness's client with a bearer token of its own (and the OsmAnd door's address).
#[derive(Clone)]
struct Client {
    h: Http,
    osmand: String,
    /// The bearer token sent with staff requests: the bootstrap administrator token, or a
    /// session token after `login`.
    token: String,
}

impl std::ops::Deref for Client {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.h
    }
}

const OFFICER: &str = "officer1";
const OFFICER_PASSWORD: &str = "officer-password-1";

impl Client {
    /// A client acting as the bootstrap administrator.
    fn new(r: &server::Running) -> Self {
        Client {
            h: Http::new(r),
            osmand: format!("http://{}", r.osmand_addr.expect("osmand door")),
            token: TOKEN.into(),
        }
    }

    /// The same server, acting as the bootstrap administrator.
    fn as_admin(&self) -> Client {
        Client {
            token: TOKEN.into(),
            ..self.clone()
        }
    }

    /// Logs in and acts as that account from now on.
    async fn login(&mut self, username: &str, password: &str) {
        self.token = self.h.log_in_with(username, password).await;
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.h.post(path, &self.token, body).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.h.get(path, &self.token).await
    }

    async fn batch(
        &self,
        device_token: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/ingest/batch", self.base))
            .bearer_auth(device_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

const HOME: (f64, f64) = (37.5560, 126.9040);
const DEVICE_TOKEN: &str = "ankle-monitor-token-000001";

/// One case: offender with a native ankle monitor, protected person with an OsmAnd phone,
/// an order with a 100 m no-approach distance.
async fn seed(c: &mut Client) -> (i64, i64) {
    *c = c.as_admin();
    let (s, off) = c
        .post(
            "/api/v1/people",
            json!({"role": "offender", "display_name": "O"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{off}");
    let (_, vic) = c
        .post(
            "/api/v1/people",
            json!({"role": "protected", "display_name": "V"}),
        )
        .await;
    let (s, dev) = c
        .post(
            "/api/v1/devices",
            json!({"kind": "ankle_monitor", "protocol": "native", "hardware_id": "350000000000001", "owner_id": off["id"], "token": DEVICE_TOKEN}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{dev}");
    let (s, _) = c
        .post(
            "/api/v1/devices",
            json!({"kind": "victim_phone", "protocol": "osmand", "hardware_id": "phone-1", "owner_id": vic["id"], "token": PHONE_TOKEN}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, case) = c
        .post(
            "/api/v1/cases",
            json!({"reference": "T-1", "offender_id": off["id"], "protected_ids": [vic["id"]]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{case}");
    // A monitoring officer assigned to the case registers the order and does the reading.
    let (s, acct) = c
        .post(
            "/api/v1/accounts",
            json!({"username": OFFICER, "password": OFFICER_PASSWORD, "role": "monitoring_officer"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{acct}");
    let (s, v) = c
        .post(
            &format!("/api/v1/accounts/{}/assignments", acct["account"]["id"]),
            json!({"case_id": case["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    c.login(OFFICER, OFFICER_PASSWORD).await;
    let (s, order) = c
        .post(
            "/api/v1/orders",
            json!({"case_id": case["id"], "kind": "provisional_measure", "valid_from": "2026-01-01T00:00:00Z",
                   "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0,
                   "zones": [{"kind": "home", "label": "home", "shape": {"type": "circle", "lat": HOME.0, "lon": HOME.1, "radius_m": 50.0}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    (dev["id"].as_i64().unwrap(), case["id"].as_i64().unwrap())
}

fn now_iso(offset_s: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(offset_s)).to_string()
}

async fn victim_at_home(c: &Client) {
    let r = c
        .http
        .get(format!("{}/", c.osmand))
        .query(&[
            ("id", "phone-1"),
            ("token", PHONE_TOKEN),
            ("lat", &HOME.0.to_string()),
            ("lon", &HOME.1.to_string()),
            ("timestamp", &jiff::Timestamp::now().as_second().to_string()),
            ("accuracy", "10"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn active_alerts(c: &Client) -> Vec<Value> {
    c.get("/api/v1/alerts")
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn approach_through_both_doors_raises_one_alert_and_streams_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;

    // Subscribe to the live stream first.
    let mut live = c
        .http
        .get(format!("{}/api/v1/live?access_token={}", c.base, c.token))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);

    victim_at_home(&c).await;
    // 60 m north of home: inside the 100 m no-approach distance (and outside the 50 m zone).
    let (s, body) = c
        .batch(
            DEVICE_TOKEN,
            json!({"fixes": [{"seq": 1, "time": now_iso(0), "lat": HOME.0 + 60.0 / 111_195.0, "lon": HOME.1, "accuracy_m": 5.0}]}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 1);

    eventually("a proximity violation", || async {
        active_alerts(&c)
            .await
            .iter()
            .any(|a| a["rule"] == "proximity_violation")
    })
    .await;
    let alerts = active_alerts(&c).await;
    let v: Vec<_> = alerts
        .iter()
        .filter(|a| a["rule"] == "proximity_violation")
        .collect();
    assert_eq!(v.len(), 1, "{alerts:?}");
    let d = v[0]["min_distance_m"].as_f64().unwrap();
    assert!((d - 60.0).abs() < 2.0, "{d}");
    assert_eq!(
        v[0]["evidence"].as_array().unwrap().len(),
        2,
        "offender and victim fixes"
    );

    // The live stream carried positions and the alert.
    let mut text = String::new();
    while !(text.contains("event: alert") && text.contains("event: position")) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), live.chunk())
            .await
            .expect("live stream delivers")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("proximity_violation"));

    // Acknowledge and resolve through the API.
    let id = v[0]["id"].as_i64().unwrap();
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/state"),
            json!({"state": "acknowledged"}),
        )
        .await;
    assert_eq!(
        (s, a["state"].as_str()),
        (StatusCode::OK, Some("acknowledged"))
    );
    let (s, _) = c
        .post(
            &format!("/api/v1/alerts/{id}/state"),
            json!({"state": "raised"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    r.shutdown().await;
}

#[tokio::test]
async fn resent_batches_are_stored_once_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    let (device, _) = seed(&mut c).await;
    let batch = json!({"fixes": [
        {"seq": 10, "time": now_iso(-30), "lat": 37.50, "lon": 127.00},
        {"seq": 11, "time": now_iso(-20), "lat": 37.51, "lon": 127.00},
    ]})
    .to_string();
    let (s, first) = c.batch(DEVICE_TOKEN, batch.clone()).await;
    assert_eq!((s, first["stored"].as_i64()), (StatusCode::OK, Some(2)));
    let (s, again) = c.batch(DEVICE_TOKEN, batch.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (again["stored"].as_i64(), again["duplicates"].as_i64()),
        (Some(0), Some(2))
    );
    assert_eq!(again["fix_ids"], first["fix_ids"]);
    r.shutdown().await;

    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    c.login(OFFICER, OFFICER_PASSWORD).await;
    let (s, again) = c.batch(DEVICE_TOKEN, batch).await;
    assert_eq!((s, again["duplicates"].as_i64()), (StatusCode::OK, Some(2)));
    let (_, latest) = c.get("/api/v1/positions/latest").await;
    let mine: Vec<_> = latest
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["device_id"] == device)
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["lat"], 37.51);
    assert_eq!(mine[0]["source"], "gnss");
    assert!(mine[0]["device_time"].as_str().unwrap().ends_with('Z'));
    r.shutdown().await;
}

#[tokio::test]
async fn an_ongoing_violation_is_not_double_counted_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    victim_at_home(&c).await;
    let near = |seq: i64| {
        json!({"fixes": [{"seq": seq, "time": now_iso(0), "lat": HOME.0 + 0.0005, "lon": HOME.1}]})
            .to_string()
    };
    assert_eq!(c.batch(DEVICE_TOKEN, near(1)).await.0, StatusCode::OK);
    eventually("violation", || async {
        active_alerts(&c)
            .await
            .iter()
            .any(|a| a["rule"] == "proximity_violation")
    })
    .await;
    r.shutdown().await;

    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    c.login(OFFICER, OFFICER_PASSWORD).await;
    assert_eq!(c.batch(DEVICE_TOKEN, near(2)).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = active_alerts(&c)
        .await
        .iter()
        .filter(|a| a["rule"] == "proximity_violation")
        .count();
    assert_eq!(n, 1);
    r.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    let good = |t: String| json!({"time": t, "lat": 37.5, "lon": 127.0});
    let cases: Vec<(&str, String, String, StatusCode, &str)> = vec![
        ("malformed json", DEVICE_TOKEN.into(), "{\"fixes\": [".into(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("wrong shape", DEVICE_TOKEN.into(), "{\"fixes\": 3}".into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        ("unknown field", DEVICE_TOKEN.into(), json!({"fixes": [], "x": 1}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        ("unknown token", "not-a-device-token-at-all".into(), json!({"fixes": [good(now_iso(0))]}).to_string(), StatusCode::UNAUTHORIZED, "unauthorized"),
        ("latitude out of range", DEVICE_TOKEN.into(),
            json!({"fixes": [good(now_iso(0)), {"time": now_iso(0), "lat": 91.0, "lon": 127.0}]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY, "coordinates_out_of_range"),
        ("null island", DEVICE_TOKEN.into(), json!({"fixes": [{"time": now_iso(0), "lat": 0.0, "lon": 0.0}]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY, "coordinates_out_of_range"),
        ("timestamp in the future", DEVICE_TOKEN.into(), json!({"fixes": [good(now_iso(0)), good(now_iso(3600))]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY, "timestamp_in_future"),
        ("unset device clock", DEVICE_TOKEN.into(), json!({"fixes": [good("1980-01-06T00:00:00Z".into())]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        ("bad time text", DEVICE_TOKEN.into(), json!({"fixes": [good("yesterday".into())]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        ("absurd speed", DEVICE_TOKEN.into(), json!({"fixes": [{"time": now_iso(0), "lat": 37.5, "lon": 127.0, "speed_mps": 9000.0}]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        ("empty batch", DEVICE_TOKEN.into(), json!({"fixes": []}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        ("too many fixes", DEVICE_TOKEN.into(),
            json!({"fixes": (0..1001).map(|i| json!({"seq": i, "time": now_iso(0), "lat": 37.5, "lon": 127.0})).collect::<Vec<_>>()}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
        ("oversized body", DEVICE_TOKEN.into(), format!("{{\"fixes\": [], \"pad\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
    ];
    for (name, token, body, status, code) in cases {
        let (s, v) = c.batch(&token, body).await;
        assert_eq!(s, status, "{name}: {v}");
        assert_eq!(v["error"]["code"], code, "{name}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    let (_, latest) = c.get("/api/v1/positions/latest").await;
    assert_eq!(
        latest.as_array().unwrap().len(),
        0,
        "nothing stored half-way"
    );

    // Staff endpoints need the token.
    let s = c
        .http
        .get(format!("{}/api/v1/alerts", c.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Setup validation.
    let admin = c.as_admin();
    let (s, v) = admin
        .post(
            "/api/v1/people",
            json!({"role": "suspect", "display_name": "x"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
    let (s, v) = c
        .post("/api/v1/orders", json!({"case_id": 1, "kind": "provisional_measure", "valid_from": "2026-01-01T00:00:00Z",
            "no_approach_m": 500.0, "warning_m": 100.0, "disclosure_radius_m": 600.0}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
    let (s, v) = admin
        .post("/api/v1/devices", json!({"kind": "tracker", "protocol": "gt06", "hardware_id": "350000000000001", "owner_id": 999}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_reference"))
    );
    let (s, v) = c.get("/api/v1/no-such-thing").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    r.shutdown().await;
}

#[tokio::test]
async fn osmand_door_accepts_registered_phones_and_records_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    // Unknown id: refused and listed for an administrator.
    let resp = c
        .http
        .get(format!("{}/?id=stranger&lat=37.5&lon=127.0", c.osmand))
        .send()
        .await
        .unwrap();
    // The same answer as a wrong token, so ids cannot be enumerated.
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, unknown) = c.as_admin().get("/api/v1/devices/unknown").await;
    assert_eq!(unknown[0]["hardware_id"], "stranger");
    assert_eq!(unknown[0]["protocol"], "osmand");
    // Missing id.
    let resp = c
        .http
        .get(format!("{}/?lat=37.5&lon=127.0", c.osmand))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Query form as a POST form body without a content type (as some clients send).
    let ts = jiff::Timestamp::now().as_second();
    let resp = c
        .http
        .post(format!("{}/", c.osmand))
        .basic_auth("phone-1", Some(PHONE_TOKEN))
        .body(format!(
            "id=phone-1&lat=37.55&lon=126.9&timestamp={ts}&speed=1.0&bearing=90&accuracy=12"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The JSON form, on the main port's path.
    let resp = c
        .http
        .post(format!("{}/ingest/osmand", c.base))
        .basic_auth("phone-1", Some(PHONE_TOKEN))
        .json(&json!({"device_id": "phone-1", "location": {"timestamp": now_iso(1), "coords": {"latitude": 37.56, "longitude": 126.91, "accuracy": 7, "speed": 1.5, "heading": -1}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, latest) = c.get("/api/v1/positions/latest").await;
    let p = &latest[0];
    assert_eq!(
        (p["lat"].as_f64(), p["role"].as_str()),
        (Some(37.56), Some("protected"))
    );
    assert_eq!(
        p["course_deg"],
        Value::Null,
        "negative heading means unknown"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn every_acknowledged_fix_is_stored_across_a_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    let mut tasks = Vec::new();
    for i in 0..100i64 {
        let http = c.http.clone();
        let url = format!("{}/api/v1/ingest/batch", c.base);
        tasks.push(tokio::spawn(async move {
            let body = json!({"fixes": [{"seq": i, "time": now_iso(-100 + i), "lat": 37.5, "lon": 127.0}]});
            match http.post(url).bearer_auth(DEVICE_TOKEN).json(&body).send().await {
                Ok(resp) if resp.status() == StatusCode::OK => 1,
                _ => 0,
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    r.shutdown().await;
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap();
    }
    let store = store::Store::open(dir.path()).unwrap();
    let stored = store.count_fixes().await.unwrap();
    assert!(stored >= acked, "acknowledged {acked}, stored {stored}");
}

/// The operational figures move with every stored fix and alert: only the scraper's token,
/// the administrator token or an administrator's session reads them (issue 17).
#[tokio::test]
async fn metrics_and_health_figures_are_for_the_scraper_and_administrators_only() {
    const SCRAPER: &str = "metrics-scraper-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let r = start_with(dir.path(), |c| c.metrics_token = Some(SCRAPER.into())).await;
    let c = Client::new(&r);
    let get = |path: &'static str, token: Option<&'static str>| {
        let c = c.clone();
        async move {
            let mut req = c.http.get(format!("{}{path}", c.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    for token in [None, Some("not-a-token"), Some(DEVICE_TOKEN)] {
        let (s, body) = get("/metrics", token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert!(!body.contains("bulwark_"), "{body}");
        let (s, body) = get("/healthz", token).await;
        assert_eq!(s, StatusCode::OK);
        let h: Value = serde_json::from_str(&body).unwrap();
        let mut keys: Vec<&str> = h.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["status", "version"], "{token:?}: {body}");
    }
    for token in [SCRAPER, TOKEN] {
        let (s, body) = get("/metrics", Some(token)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(body.contains("bulwark_audit_chain_ok 1"), "{body}");
        let (_, body) = get("/healthz", Some(token)).await;
        let h: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (
                h["status"].as_str(),
                h["store"].as_str(),
                h["audit_chain"].as_str()
            ),
            (Some("ok"), Some("ok"), Some("ok")),
            "{body}"
        );
        assert!(
            h["store_queue"].is_u64() && h["server_time"].is_string(),
            "{body}"
        );
    }
    r.shutdown().await;
}

#[tokio::test]
async fn health_metrics_and_openapi_describe_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    let (s, h) = c.get("/healthz").await;
    assert_eq!((s, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let m = c
        .http
        .get(format!("{}/metrics", c.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    seed(&mut c).await;
    c.batch(
        DEVICE_TOKEN,
        json!({"fixes": [{"time": now_iso(0), "lat": 37.5, "lon": 127.0}]}).to_string(),
    )
    .await;
    let m2 = c
        .http
        .get(format!("{}/metrics", c.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m2.contains("bulwark_fixes_stored_total"), "{m}\n---\n{m2}");
    let (s, doc) = c.get("/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let mut paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    paths.sort();
    let expected = [
        "/api/v1/accounts",
        "/api/v1/accounts/{id}/assignments",
        "/api/v1/accounts/{id}/disable",
        "/api/v1/alerts",
        "/api/v1/alerts/measures",
        "/api/v1/alerts/{id}/actions",
        "/api/v1/alerts/{id}/dispatch",
        "/api/v1/alerts/{id}/history",
        "/api/v1/alerts/{id}/state",
        "/api/v1/audit",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/cases",
        "/api/v1/devices",
        "/api/v1/devices/unknown",
        "/api/v1/devices/{id}/health",
        "/api/v1/devices/{id}/network-scans",
        "/api/v1/devices/{id}/token",
        "/api/v1/devices/{id}/track",
        "/api/v1/devices/{id}/unknown-frames",
        "/api/v1/ingest/batch",
        "/api/v1/live",
        "/api/v1/live/ws",
        "/api/v1/me/access-log",
        "/api/v1/me/alerts",
        "/api/v1/me/alerts/test",
        "/api/v1/me/case",
        "/api/v1/me/location",
        "/api/v1/me/notices",
        "/api/v1/me/push-subscriptions",
        "/api/v1/me/settings",
        "/api/v1/me/sos",
        "/api/v1/notices",
        "/api/v1/orders",
        "/api/v1/orders/{id}/versions",
        "/api/v1/people",
        "/api/v1/petitions",
        "/api/v1/petitions/{id}",
        "/api/v1/petitions/{id}/decision",
        "/api/v1/petitions/{id}/review",
        "/api/v1/police-units",
        "/api/v1/positions/latest",
        "/api/v1/push/vapid-public-key",
        "/api/v1/snapshot",
        "/api/v1/tasks",
        "/api/v1/tasks/{id}/state",
        "/healthz",
        "/ingest/gpslogger",
        "/ingest/osmand",
        "/ingest/overland",
        "/ingest/owntracks",
        "/metrics",
    ];
    assert_eq!(paths, expected);
    r.shutdown().await;
}

#[tokio::test]
async fn an_sos_without_a_position_raises_a_critical_alert_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    // The protected person's smartwatch uses the native API.
    let (_, people) = c.get("/api/v1/people").await;
    let victim = people
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "protected")
        .unwrap()["id"]
        .clone();
    let (s, _) = c
        .as_admin()
        .post("/api/v1/devices", json!({"kind": "smartwatch", "protocol": "native", "hardware_id": "watch-1", "owner_id": victim, "token": "smartwatch-token-0000001"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    victim_at_home(&c).await;
    let sos = json!({"events": [{"kind": "sos", "time": now_iso(0)}]}).to_string();
    let (s, body) = c.batch("smartwatch-token-0000001", sos.clone()).await;
    assert_eq!(
        (s, body["events_stored"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    eventually("an SOS alert", || async {
        active_alerts(&c).await.iter().any(|a| a["rule"] == "sos")
    })
    .await;
    let alerts = active_alerts(&c).await;
    let sos_alert = alerts.iter().find(|a| a["rule"] == "sos").unwrap();
    assert_eq!(sos_alert["severity"], "critical");
    // Resending the same SOS does not raise a second alert.
    let (s, body) = c.batch("smartwatch-token-0000001", sos).await;
    assert_eq!(
        (s, body["events_stored"].as_i64()),
        (StatusCode::OK, Some(0))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        active_alerts(&c)
            .await
            .iter()
            .filter(|a| a["rule"] == "sos")
            .count(),
        1
    );
    // Bad events are refused whole.
    let (s, v) = c
        .batch(
            "smartwatch-token-0000001",
            json!({"events": [{"kind": "panic", "time": now_iso(0)}]}).to_string(),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
    r.shutdown().await;
}

#[tokio::test]
async fn owntracks_gpslogger_and_overland_doors_store_and_reply_as_the_apps_expect() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    register_her_three_phone_apps(&mut c).await;
    let now_s = jiff::Timestamp::now().as_second();
    owntracks_stores_with_its_credentials_only(&c, now_s).await;
    gpslogger_stores_a_form_body(&c, now_s).await;
    overland_answers_ok_or_refuses_the_batch_whole(&c).await;
    only_the_accepted_points_are_latest(&c).await;
    r.shutdown().await;
}

async fn register_her_three_phone_apps(c: &mut Client) {
    let (_, people) = c.get("/api/v1/people").await;
    let victim = people
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "protected")
        .unwrap()["id"]
        .clone();
    for (protocol, hw, token) in [
        ("owntracks", "alice/phone", Some("owntracks-secret-0001")),
        ("gpslogger", "gl-1", Some("gpslogger-secret-0001")),
        ("overland", "ov-1", Some("overland-secret-00001")),
    ] {
        let (s, v) = c
            .as_admin()
            .post("/api/v1/devices", json!({"kind": "victim_phone", "protocol": protocol, "hardware_id": hw, "owner_id": victim, "token": token}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
}

async fn owntracks_stores_with_its_credentials_only(c: &Client, now_s: i64) {
    let loc = json!({"_type": "location", "tid": "ap", "tst": now_s - 5, "lat": 37.55, "lon": 126.91, "acc": 9, "vel": 4, "batt": 80});
    // OwnTracks with the right Basic credentials: stored, reply `[]`.
    let resp = c
        .http
        .post(format!("{}/ingest/owntracks", c.base))
        .basic_auth("alice", Some("owntracks-secret-0001"))
        .header("X-Limit-U", "alice")
        .header("X-Limit-D", "phone")
        .json(&loc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap().trim(), "[]");
    // Wrong password: refused, nothing stored.
    let resp = c
        .http
        .post(format!("{}/ingest/owntracks", c.base))
        .basic_auth("alice", Some("wrong"))
        .header("X-Limit-U", "alice")
        .header("X-Limit-D", "phone")
        .json(
            &json!({"_type": "location", "tid": "ap", "tst": now_s - 4, "lat": 37.0, "lon": 127.0}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn gpslogger_stores_a_form_body(c: &Client, now_s: i64) {
    // GPSLogger: a form body without a content type.
    let resp = c
        .http
        .post(format!("{}/ingest/gpslogger", c.base))
        .basic_auth("gl-1", Some("gpslogger-secret-0001"))
        .body(format!(
            "lat=37.56&lon=126.92&timestamp={}&acc=6&id=gl-1",
            now_s - 3
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn overland_answers_ok_or_refuses_the_batch_whole(c: &Client) {
    // Overland: the app deletes its batch only on exactly {"result":"ok"}.
    let ts = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(2)).to_string();
    let resp = c
        .http
        .post(format!("{}/ingest/overland", c.base))
        .basic_auth("ov-1", Some("overland-secret-00001"))
        .json(&json!({"locations": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.93, 37.57]},
            "properties": {"timestamp": ts, "horizontal_accuracy": 5, "device_id": "ov-1"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"result": "ok"}));
    // A batch with an impossible point is refused whole.
    let resp = c
        .http
        .post(format!("{}/ingest/overland", c.base))
        .basic_auth("ov-1", Some("overland-secret-00001"))
        .json(&json!({"locations": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.93, 37.57]}, "properties": {"timestamp": ts, "device_id": "ov-1", "speed": 3}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.93, 37.58]}, "properties": {"timestamp": "2099-01-01T00:00:00Z", "device_id": "ov-1"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn only_the_accepted_points_are_latest(c: &Client) {
    let (_, latest) = c.get("/api/v1/positions/latest").await;
    let lats: Vec<f64> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lat"].as_f64().unwrap())
        .collect();
    assert!(
        lats.contains(&37.55) && lats.contains(&37.56) && lats.contains(&37.57),
        "{lats:?}"
    );
    assert!(!lats.contains(&37.58) && !lats.contains(&37.0));
}

#[tokio::test]
async fn zone_schedules_decide_when_a_zone_is_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    let (_, case) = seed(&mut c).await;
    // A school zone in force only for one hour, twelve hours from now (Seoul time), every day.
    let local = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(9)));
    let start_h = (local.hour() + 12) % 24;
    let all_days = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    let school = (37.60, 127.00);
    let (s, order) = c
        .post(
            "/api/v1/orders",
            json!({"case_id": case, "kind": "restraining_order", "valid_from": "2026-01-01T00:00:00Z",
                   "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0,
                   "zones": [
                     {"kind": "school", "label": "school", "shape": {"type": "circle", "lat": school.0, "lon": school.1, "radius_m": 200.0},
                      "schedule": [{"days": all_days, "start": format!("{start_h:02}:00"), "end": format!("{:02}:00", (start_h + 1) % 24)}]},
                     {"kind": "work", "label": "work", "shape": {"type": "circle", "lat": school.0, "lon": school.1, "radius_m": 300.0}}
                   ]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    assert_eq!(order["zones"][0]["schedule"][0]["days"], all_days);
    let (_, orders) = c.get("/api/v1/orders").await;
    assert!(
        orders
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["zones"][0]["schedule"].is_array())
    );
    // The offender stands in both zones.
    for seq in 1..=3 {
        let (s, _) = c
            .batch(DEVICE_TOKEN, json!({"fixes": [{"seq": seq, "time": now_iso(seq - 3), "lat": school.0, "lon": school.1, "accuracy_m": 5.0}]}).to_string())
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let work_zone = order["zones"][1]["id"].clone();
    let school_zone = order["zones"][0]["id"].clone();
    eventually("the always-active zone alerts", || async {
        active_alerts(&c)
            .await
            .iter()
            .any(|a| a["rule"] == "zone_violation" && a["zone_id"] == work_zone)
    })
    .await;
    assert!(
        !active_alerts(&c)
            .await
            .iter()
            .any(|a| a["zone_id"] == school_zone),
        "the school zone is not in force now"
    );
    // Bad schedules are refused.
    for bad in [
        json!([{"days": ["monday"], "start": "08:00", "end": "09:00"}]),
        json!([{"days": ["mon"], "start": "25:00", "end": "09:00"}]),
        json!([{"days": ["mon"], "start": "08:00", "end": "08:00"}]),
        json!([]),
    ] {
        let (s, v) = c
            .post(
                "/api/v1/orders",
                json!({"case_id": case, "kind": "restraining_order", "valid_from": "2026-01-01T00:00:00Z",
                       "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0,
                       "zones": [{"kind": "school", "label": "s", "shape": {"type": "circle", "lat": 37.6, "lon": 127.0, "radius_m": 200.0}, "schedule": bad}]}),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")),
            "{v}"
        );
    }
    r.shutdown().await;
}

/// A webhook receiver that fails its first `fail_first` requests, checks signatures, and
/// records what it accepted.
#[derive(Clone, Default)]
struct Receiver {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, bool)>>>,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn receiver(fail_first: usize) -> (Receiver, String) {
    use axum::http::HeaderMap;
    let rec = Receiver::default();
    let r2 = rec.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let rec = r2.clone();
            async move {
                let n = rec.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n < fail_first {
                    return StatusCode::INTERNAL_SERVER_ERROR;
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
                        server::webhooks::signature("hook-secret", ts, &body)
                    );
                rec.seen
                    .lock()
                    .unwrap()
                    .push((h("idempotency-key"), h("x-bulwark-event"), valid));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rec, url)
}

#[tokio::test]
async fn webhooks_survive_failures_are_signed_and_escalation_follows_silence() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, url) = receiver(2).await;
    let r = start_with(dir.path(), |c| {
        c.webhooks = vec![server::config::Webhook {
            name: "police".into(),
            url,
            secret: "hook-secret".into(),
            events: vec!["alert.raised".into(), "alert.escalated".into()],
        }];
        c.webhook_delivery.retry_base_ms = 20;
        c.escalation.critical_s = Some(1);
    })
    .await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    victim_at_home(&c).await;
    let (s, _) = c
        .batch(DEVICE_TOKEN, json!({"fixes": [{"seq": 1, "time": now_iso(0), "lat": HOME.0 + 0.0004, "lon": HOME.1, "accuracy_m": 5.0}]}).to_string())
        .await;
    assert_eq!(s, StatusCode::OK);
    // Nobody acknowledges: the critical alert escalates and both events reach the receiver,
    // after it failed twice, each exactly once and correctly signed.
    let violation = || async {
        active_alerts(&c)
            .await
            .into_iter()
            .find(|a| a["rule"] == "proximity_violation")
    };
    eventually("the violation escalates", || async {
        violation()
            .await
            .is_some_and(|a| a["escalation_level"] == 1)
    })
    .await;
    let id = violation().await.unwrap()["id"].as_i64().unwrap();
    let raised = format!("alert-{id}-alert.raised");
    let escalated = format!("alert-{id}-alert.escalated");
    eventually("both deliveries", || async {
        let seen = rec.seen.lock().unwrap();
        seen.iter().any(|(k, _, _)| *k == raised) && seen.iter().any(|(k, _, _)| *k == escalated)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = rec.seen.lock().unwrap().clone();
    for key in [&raised, &escalated] {
        let hits: Vec<_> = seen.iter().filter(|(k, _, _)| k == key).collect();
        assert_eq!(hits.len(), 1, "{key}: {seen:?}");
        assert!(hits[0].2, "signature must verify");
    }
    assert!(
        rec.calls.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "the first two attempts failed"
    );
    r.shutdown().await;
}

/// Reads SSE events (id, event name) from a response until `n` events with ids arrived.
async fn read_events(resp: &mut reqwest::Response, n: usize) -> Vec<(String, String)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("stream delivers")
            .unwrap()
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                block.lines().find_map(|l| {
                    l.strip_prefix(&format!("{name}:"))
                        .map(|v| v.trim().to_string())
                })
            };
            if let Some(ev) = field("event") {
                out.push((field("id").unwrap_or_default(), ev));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_live_client_that_reconnects_gets_exactly_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    let live_url = format!("{}/api/v1/live?access_token={}", c.base, c.token);
    let send = |seq: i64| {
        let c = &c;
        async move {
            let body = json!({"fixes": [{"seq": seq, "time": now_iso(seq - 100), "lat": 37.4 + seq as f64 * 1e-4, "lon": 127.0}]});
            assert_eq!(
                c.batch(DEVICE_TOKEN, body.to_string()).await.0,
                StatusCode::OK
            );
        }
    };
    let mut first = c.http.get(&live_url).send().await.unwrap();
    send(1).await;
    send(2).await;
    let got = read_events(&mut first, 2).await;
    let last_id = got.last().unwrap().0.clone();
    drop(first);
    // While disconnected, three more positions.
    for seq in 3..=5 {
        send(seq).await;
    }
    let mut again = c
        .http
        .get(&live_url)
        .header("Last-Event-ID", &last_id)
        .send()
        .await
        .unwrap();
    send(6).await;
    let resumed = read_events(&mut again, 4).await;
    let (epoch, seen) = last_id.split_once('-').unwrap();
    let seen: u64 = seen.parse().unwrap();
    let seqs: Vec<u64> = resumed
        .iter()
        .map(|(id, ev)| {
            assert_eq!(ev, "position");
            let (e, s) = id.split_once('-').unwrap();
            assert_eq!(e, epoch);
            s.parse().unwrap()
        })
        .collect();
    assert_eq!(
        seqs,
        vec![seen + 1, seen + 2, seen + 3, seen + 4],
        "no gap, no duplicate"
    );
    // An id from another run (or older than the buffer) asks the client to reload.
    let mut stale = c
        .http
        .get(&live_url)
        .header("Last-Event-ID", "1-1")
        .send()
        .await
        .unwrap();
    let first_event = read_events_any(&mut stale).await;
    assert_eq!(first_event, "resync");
    r.shutdown().await;
}

async fn read_events_any(resp: &mut reqwest::Response) -> String {
    let mut buf = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("stream delivers")
            .unwrap()
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(l) = buf.lines().find_map(|l| l.strip_prefix("event:")) {
            return l.trim().to_string();
        }
    }
}

/// Raises a proximity violation for the seeded case and returns its id.
async fn raise_proximity_alert(c: &Client) -> i64 {
    victim_at_home(c).await;
    let (s, body) = c
        .batch(
            DEVICE_TOKEN,
            json!({"fixes": [{"seq": 1, "time": now_iso(0), "lat": HOME.0 + 60.0 / 111_195.0, "lon": HOME.1, "accuracy_m": 5.0}]}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    eventually("a proximity violation", || async {
        active_alerts(c)
            .await
            .iter()
            .any(|a| a["rule"] == "proximity_violation")
    })
    .await;
    active_alerts(c)
        .await
        .iter()
        .find(|a| a["rule"] == "proximity_violation")
        .and_then(|a| a["id"].as_i64())
        .unwrap()
}

#[tokio::test]
async fn alert_lifecycle_is_logged_in_order_with_its_actor_and_resolving_needs_a_cause() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    let id = raise_proximity_alert(&c).await;
    let (_, me) = c.get("/api/v1/auth/me").await;

    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/state"),
            json!({"state": "acknowledged"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/actions"),
            json!({"action": "victim_called", "note": "she is safe at home"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(a["action"], "victim_called");
    let (s, e) = c
        .post(
            &format!("/api/v1/alerts/{id}/actions"),
            json!({"action": "made_coffee"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // Resolving without a cause (or with an unknown one) is refused and changes nothing.
    for body in [
        json!({"state": "resolved"}),
        json!({"state": "resolved", "cause": "bad_luck"}),
    ] {
        let (s, e) = c.post(&format!("/api/v1/alerts/{id}/state"), body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["code"], "invalid_field", "{e}");
    }
    let (s, e) = c
        .post(
            &format!("/api/v1/alerts/{id}/state"),
            json!({"state": "acknowledged", "cause": "gps_error"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/state"),
            json!({"state": "resolved", "cause": "gps_error", "note": "multipath near the tower"}),
        )
        .await;
    assert_eq!(
        (s, a["state"].as_str()),
        (StatusCode::OK, Some("resolved")),
        "{a}"
    );

    let (s, h) = c.get(&format!("/api/v1/alerts/{id}/history")).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    let h = h.as_array().unwrap();
    let steps: Vec<_> = h.iter().map(|x| x["action"].as_str().unwrap()).collect();
    assert_eq!(steps, ["acknowledge", "victim_called", "resolve"], "{h:?}");
    for x in h {
        assert_eq!(x["actor_account_id"], me["account_id"], "{x} {me}");
        assert_eq!(x["actor_role"], "monitoring_officer", "{x}");
        assert_eq!(x["alert_id"], id);
    }
    assert!(
        h.windows(2)
            .all(|w| w[0]["at"].as_str() <= w[1]["at"].as_str())
    );
    assert_eq!(h[1]["note"], "she is safe at home");
    assert_eq!(h[2]["cause"], "gps_error");
    assert_eq!(h[2]["note"], "multipath near the tower");
    r.shutdown().await;
}

#[tokio::test]
async fn history_shows_the_alert_as_it_was_at_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    let id = raise_proximity_alert(&c).await;
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/state"),
            json!({"state": "acknowledged"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let raised_with = a["raise_distance_m"].as_f64().unwrap();
    assert!(a["raise_summary"].is_string(), "{a}");
    // He comes closer: the alert's latest summary and distance change.
    for seq in 2..5 {
        let (s, body) = c
            .batch(
                DEVICE_TOKEN,
                json!({"fixes": [{"seq": seq, "time": now_iso(0), "lat": HOME.0 + 20.0 / 111_195.0, "lon": HOME.1, "accuracy_m": 5.0}]}).to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    eventually("the alert to see him closer", || async {
        active_alerts(&c).await.iter().any(|a| {
            a["id"] == id
                && a["min_distance_m"]
                    .as_f64()
                    .is_some_and(|d| d < raised_with - 20.0)
        })
    })
    .await;
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/actions"),
            json!({"action": "victim_called"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let (_, h) = c.get(&format!("/api/v1/alerts/{id}/history")).await;
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    // Each step keeps the alert as it was then; the raise keeps its own summary.
    assert_eq!(h[0]["min_distance_m"].as_f64(), Some(raised_with), "{h:?}");
    assert!(
        h[1]["min_distance_m"].as_f64().unwrap() < raised_with - 20.0,
        "{h:?}"
    );
    assert_eq!(h[0]["condition_active"], true, "{h:?}");
    assert!(
        h[0]["summary"].is_string() && h[0]["summary"] != h[1]["summary"],
        "{h:?}"
    );
    let now = active_alerts(&c)
        .await
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap();
    assert_eq!(now["raise_distance_m"].as_f64(), Some(raised_with), "{now}");
    assert_ne!(now["raise_summary"], now["summary"], "{now}");
    r.shutdown().await;
}

#[tokio::test]
async fn measures_show_the_false_alarm_share_and_time_to_acknowledge() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    let id = raise_proximity_alert(&c).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/state"),
            json!({"state": "acknowledged"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/actions"),
            json!({"action": "officer_dispatched_to_offender"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{id}/state"),
            json!({"state": "resolved", "cause": "gps_error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let window = format!(
        "/api/v1/alerts/measures?from={}&to={}",
        now_iso(-3_600),
        now_iso(60)
    );
    let (s, m) = c.get(&window).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert!(m["alerts"].as_u64().unwrap() >= 1, "{m}");
    assert!(
        m["per_rule"]["proximity_violation"].as_u64().unwrap() >= 1,
        "{m}"
    );
    assert!(m["case_days"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m["alerts_per_case_day"].as_f64().unwrap() > 0.0, "{m}");
    // A one-hour window: the counts come with their window, and the rate is flagged as too
    // short to mean anything.
    assert!(
        (m["window_days"].as_f64().unwrap() - 61.0 / 1440.0).abs() < 0.01,
        "{m}"
    );
    assert!(m["cases"].as_u64().unwrap() >= 1, "{m}");
    assert!(
        m["case_days"].as_f64().unwrap() < m["rate_min_case_days"].as_f64().unwrap(),
        "{m}"
    );
    assert_eq!(m["resolved"], 1, "{m}");
    assert_eq!(m["per_cause"]["gps_error"], 1, "{m}");
    assert_eq!(m["false_alarm_share"].as_f64(), Some(1.0), "{m}");
    assert_eq!(m["time_to_ack_s"]["count"], 1, "{m}");
    let ack = m["time_to_ack_s"]["median"].as_f64().unwrap();
    assert!((0.0..600.0).contains(&ack), "{m}");
    assert_eq!(m["time_to_ack_s"]["p90"].as_f64(), Some(ack), "{m}");
    assert_eq!(m["time_to_dispatch_s"]["count"], 1, "{m}");
    assert!(
        m["time_to_dispatch_s"]["median"].as_f64().unwrap() >= ack,
        "{m}"
    );
    // The same steps were counted as they happened.
    let prom = c
        .http
        .get(format!("{}/metrics", c.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        prom.contains("bulwark_alerts_resolved_total{cause=\"gps_error\"}"),
        "{prom}"
    );
    assert!(
        prom.contains("bulwark_alert_time_to_ack_seconds_bucket"),
        "{prom}"
    );

    let (s, e) = c
        .get(&format!(
            "/api/v1/alerts/measures?from={}&to={}",
            now_iso(0),
            now_iso(-60)
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    r.shutdown().await;
}

#[tokio::test]
async fn a_devices_battery_report_is_shown_with_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    for (batt, ts) in [("87", 10), ("12", 5)] {
        let resp = c
            .http
            .get(format!("{}/", c.osmand))
            .query(&[
                ("id", "phone-1"),
                ("token", PHONE_TOKEN),
                ("lat", "37.55"),
                ("lon", "126.9"),
                (
                    "timestamp",
                    &(jiff::Timestamp::now().as_second() - ts).to_string(),
                ),
                ("batt", batt),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let (s, devices) = c.get("/api/v1/devices").await;
    assert_eq!(s, StatusCode::OK, "{devices}");
    let phone = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["hardware_id"] == "phone-1")
        .unwrap();
    assert_eq!(phone["health"]["battery_percent"], 12.0, "{phone}");
    assert!(
        phone["health"]["reported_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    r.shutdown().await;
}

#[tokio::test]
async fn an_alert_from_a_device_in_no_case_still_reaches_the_monitoring_officers() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    // A smartwatch registered before anyone linked it to a person or a case.
    let (s, _) = c
        .as_admin()
        .post(
            "/api/v1/devices",
            json!({"kind": "smartwatch", "protocol": "native", "hardware_id": "watch-unlinked", "token": "unlinked-watch-token-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = c
        .batch(
            "unlinked-watch-token-01",
            json!({"events": [{"kind": "sos", "time": now_iso(0)}]}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    eventually("the officer sees the SOS", || async {
        active_alerts(&c).await.iter().any(|a| a["rule"] == "sos")
    })
    .await;
    let sos = active_alerts(&c)
        .await
        .into_iter()
        .find(|a| a["rule"] == "sos")
        .unwrap();
    assert!(
        sos["device_id"].is_i64() && sos["case_id"].is_null(),
        "{sos}"
    );
    let (s, a) = c
        .post(
            &format!("/api/v1/alerts/{}/state", sos["id"]),
            json!({"state": "acknowledged"}),
        )
        .await;
    assert_eq!(
        (s, a["state"].as_str()),
        (StatusCode::OK, Some("acknowledged")),
        "{a}"
    );
    // The administrator (no case data) still sees nothing.
    let (s, _) = c.as_admin().get("/api/v1/alerts").await;
    assert_ne!(s, StatusCode::OK);
    r.shutdown().await;
}

/// Issue 17 item 9: the document declared 18 query parameters (`from`, `to`, `limit`,
/// `purpose_code`…) as path parameters, so a client generated from it could not call those
/// routes, and `ZoneDto` forbade the `id` every zone in an answer carries. Each parameter is
/// now declared where the server reads it, and an order's zones read back are accepted again.
#[tokio::test]
async fn the_openapi_document_places_each_parameter_where_the_server_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut c = Client::new(&r);
    let (s, doc) = c.get("/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let mut misplaced = Vec::new();
    let mut query = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let in_template = path.contains(&format!("{{{name}}}"));
                if (p["in"] == "path") != in_template {
                    misplaced.push(format!("{method} {path} {name} in {}", p["in"]));
                }
                query += usize::from(p["in"] == "query");
            }
        }
    }
    assert!(misplaced.is_empty(), "{misplaced:#?}");
    assert!(query >= 18, "{query} query parameters");
    let zone = &doc["components"]["schemas"]["ZoneDto"];
    assert!(zone["properties"]["id"].is_object(), "{zone}");

    // The framework's rejections answer with the error table too.
    let (s, v) = c.get("/api/v1/orders/9223372036854775808/versions").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    let get = &doc["paths"]["/api/v1/orders/{id}/versions"]["get"];
    assert!(get["responses"]["4XX"].is_object(), "{get}");

    // The parameters work where the document now puts them.
    let (device, case) = seed(&mut c).await;
    let (s, v) = c
        .get(&format!(
            "/api/v1/devices/{device}/track?from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&purpose_code=supervision&purpose_text=checking%20the%20track"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // An order read back (zones with their ids) is a valid request body.
    let (_, orders) = c.get("/api/v1/orders").await;
    let zones = orders[0]["zones"].clone();
    assert!(zones[0]["id"].as_i64().unwrap() > 0, "{zones}");
    let (s, v) = c
        .post(
            "/api/v1/orders",
            json!({"case_id": case, "kind": "restraining_order", "valid_from": "2026-01-01T00:00:00Z",
                   "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0,
                   "zones": zones}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_ne!(
        v["zones"][0]["id"], zones[0]["id"],
        "the server assigns zone ids"
    );
}

/// Found by the crash campaign's full-disk phase: `/healthz` said `ok` while every write
/// failed. On a full disk (a small tmpfs; needs root, skipped with a SKIPPED line where mount
/// is not permitted) nothing is acknowledged, `/healthz` says `degraded` with
/// `store: write_failing`, and once space is back the resent fix is stored and health clears.
#[tokio::test]
async fn a_full_disk_is_reported_by_healthz_and_nothing_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: a_full_disk_is_reported_by_healthz: cannot mount a tmpfs here");
        return;
    }
    let data = mnt.join("data");
    let r = start(&data).await;
    let mut c = Client::new(&r);
    seed(&mut c).await;
    let fix = |seq: i64| {
        json!({"fixes": [{"seq": seq, "time": now_iso(0), "lat": 37.5, "lon": 127.0}]}).to_string()
    };
    let (s, _) = c.batch(DEVICE_TOKEN, fix(1)).await;
    assert_eq!(s, StatusCode::OK);
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 65536]).and_then(|_| f.flush()).is_ok() {}
    }
    // Space the WAL already holds may take a few commits; keep writing until one fails.
    let mut refused = None;
    for seq in 2..200 {
        let (s, v) = c.batch(DEVICE_TOKEN, fix(seq)).await;
        if s != StatusCode::OK {
            refused = Some((seq, s, v));
            break;
        }
    }
    let (seq, status, v) = refused.expect("a write fails on a full disk");
    assert!(status.is_server_error(), "{status} {v}");
    let (_, h) = c.as_admin().get("/healthz").await;
    assert_eq!(
        (h["status"].as_str(), h["store"].as_str()),
        (Some("degraded"), Some("write_failing")),
        "{h} after the refusal {status} {v}"
    );
    std::fs::remove_file(&filler).unwrap();
    let (s, v) = c.batch(DEVICE_TOKEN, fix(seq)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // It clears with the first clean write after the store's hold (`FAILING_HOLD`); the
    // device's resend of its last fix is that write (a duplicate: nothing more is stored).
    eventually("/healthz ok once writes succeed again", || {
        let c = c.clone();
        async move {
            let (s, _) = c.batch(DEVICE_TOKEN, fix(seq)).await;
            let (_, h) = c.as_admin().get("/healthz").await;
            s == StatusCode::OK
                && (h["status"].as_str(), h["store"].as_str()) == (Some("ok"), Some("ok"))
        }
    })
    .await;
    r.shutdown().await;
    let store = store::Store::open(&data).unwrap();
    assert_eq!(store.count_fixes().await.unwrap(), seq);
    drop(store);
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(&mnt)
        .status();
}

/// Found by the abuse campaign: a slowloris client (one header line every second, never the
/// blank line) kept its connection forever, so enough of them exhaust the server's file
/// descriptors. Now the server closes it once `HEADER_READ_TIMEOUT` has passed; the test gives
/// it six times that before failing.
#[tokio::test]
async fn a_slowloris_client_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut s = tokio::net::TcpStream::connect(r.http_addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let limit = server::HEADER_READ_TIMEOUT * 6;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let closed = loop {
        assert!(
            started.elapsed() < limit,
            "still connected after {limit:?} of dripped headers"
        );
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            // Closed, or answered (408) and then closed.
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => continue,
            Err(_) => {
                if s.write_all(b"X-Drip: 1\r\n").await.is_err() {
                    break true;
                }
            }
        }
    };
    assert!(closed);
    // A normal request still works.
    let c = Client::new(&r);
    let (st, _) = c.get("/healthz").await;
    assert_eq!(st, StatusCode::OK);
    r.shutdown().await;
}
