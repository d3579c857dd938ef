//! The victim app's server side over real HTTP: her status banner, her browser's position
//! and a silent SOS stored as reports of her phone, and "who viewed my data" for her and for
//! the offender.

use crate::harness::{self, Http, PASSWORD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const ADMIN: &str = "victim-test-admin-token-0123456789";
const ANKLE: &str = "victim-test-ankle-token-000001";
const ANKLE_B: &str = "victim-test-ankle-token-000002";
/// Her home; the offender's positions are given in metres north of it.
const HOME: (f64, f64) = (37.55, 126.95);

async fn start(dir: &Path) -> server::Running {
    harness::start(dir, ADMIN).await
}

/// What this module's tests ask of the client.
trait VictimHttp {
    async fn created(&self, path: &str, token: &str, body: Value) -> i64;
    async fn login(&self, username: &str) -> String;
}

impl VictimHttp for Http {
    async fn created(&self, path: &str, token: &str, body: Value) -> i64 {
        let v = self.created_by(token, path, body).await;
        v["id"].as_i64().or(v["account"]["id"].as_i64()).unwrap()
    }

    async fn login(&self, username: &str) -> String {
        self.log_in_with(username, PASSWORD).await
    }
}

struct World {
    h: Http,
    case_a: i64,
    case_b: i64,
    ankle_a: i64,
    ankle_b: i64,
    officer: String,
    officer_b: String,
    victim: String,
    /// Case B's victim, who has no phone.
    victim_b: String,
    offender: String,
}

/// Case A (her case, with an order: 100 m no-approach, 500 m warning, 600 m disclosure; her
/// phone; his ankle monitor) and case B (another victim without a phone), each with its own
/// officer.
async fn world(r: &server::Running) -> World {
    let h = Http::new(r);
    let person = |role: &str| json!({"role": role, "display_name": role});
    let off_a = h.created("/api/v1/people", ADMIN, person("offender")).await;
    let vic_a = h
        .created("/api/v1/people", ADMIN, person("protected"))
        .await;
    let off_b = h.created("/api/v1/people", ADMIN, person("offender")).await;
    let vic_b = h
        .created("/api/v1/people", ADMIN, person("protected"))
        .await;
    let ankle_a = h
        .created(
            "/api/v1/devices",
            ADMIN,
            json!({"kind": "ankle_monitor", "protocol": "native", "hardware_id": "ankle-a", "owner_id": off_a, "token": ANKLE}),
        )
        .await;
    let ankle_b = h
        .created(
            "/api/v1/devices",
            ADMIN,
            json!({"kind": "ankle_monitor", "protocol": "native", "hardware_id": "ankle-b", "owner_id": off_b, "token": ANKLE_B}),
        )
        .await;
    h.created(
        "/api/v1/devices",
        ADMIN,
        json!({"kind": "victim_phone", "protocol": "osmand", "hardware_id": "phone-a", "owner_id": vic_a, "token": "phone-a-token-00000001"}),
    )
    .await;
    let case_a = h
        .created(
            "/api/v1/cases",
            ADMIN,
            json!({"reference": "A", "offender_id": off_a, "protected_ids": [vic_a]}),
        )
        .await;
    let case_b = h
        .created(
            "/api/v1/cases",
            ADMIN,
            json!({"reference": "B", "offender_id": off_b, "protected_ids": [vic_b]}),
        )
        .await;
    let account = |username: &str, role: &str, person: Option<i64>| json!({"username": username, "password": PASSWORD, "role": role, "person_id": person});
    let officer_id = h
        .created(
            "/api/v1/accounts",
            ADMIN,
            account("officer-a", "monitoring_officer", None),
        )
        .await;
    let officer_b_id = h
        .created(
            "/api/v1/accounts",
            ADMIN,
            account("officer-b", "monitoring_officer", None),
        )
        .await;
    for (o, c) in [(officer_id, case_a), (officer_b_id, case_b)] {
        let (s, v) = h
            .post(
                &format!("/api/v1/accounts/{o}/assignments"),
                ADMIN,
                json!({"case_id": c}),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    h.created(
        "/api/v1/accounts",
        ADMIN,
        account("victim-a", "victim", Some(vic_a)),
    )
    .await;
    h.created(
        "/api/v1/accounts",
        ADMIN,
        account("victim-b", "victim", Some(vic_b)),
    )
    .await;
    h.created(
        "/api/v1/accounts",
        ADMIN,
        account("offender-a", "offender", Some(off_a)),
    )
    .await;
    let officer = h.login("officer-a").await;
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30)).to_string();
    h.created(
        "/api/v1/orders",
        &officer,
        json!({"case_id": case_a, "kind": "provisional_measure", "valid_from": "2026-01-01T00:00:00Z",
               "valid_to": until, "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0}),
    )
    .await;
    World {
        case_a,
        case_b,
        ankle_a,
        ankle_b,
        officer,
        officer_b: h.login("officer-b").await,
        victim: h.login("victim-a").await,
        victim_b: h.login("victim-b").await,
        offender: h.login("offender-a").await,
        h,
    }
}

fn north(m: f64) -> (f64, f64) {
    (HOME.0 + m / 111_195.0, HOME.1)
}

/// Her browser reports her at home.
async fn share_at_home(w: &World) -> Value {
    let (s, v) = w
        .h
        .post(
            "/api/v1/me/location",
            &w.victim,
            json!({"lat": HOME.0, "lon": HOME.1, "accuracy_m": 12.0, "time": jiff::Timestamp::now().to_string(), "speed_mps": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// The offender reports three times from `metres` north of her home (a jump needs
/// consecutive confirmations before the engine believes it).
async fn offender_at(w: &World, seq: i64, metres: f64) {
    let (lat, lon) = north(metres);
    for i in 0..3 {
        let (s, v) = w
            .h
            .post(
                "/api/v1/ingest/batch",
                ANKLE,
                json!({"fixes": [{"seq": seq * 10 + i, "time": jiff::Timestamp::now().to_string(), "lat": lat, "lon": lon, "accuracy_m": 8.0}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls her case view until `f` holds (the engine works after the durable ack).
async fn eventually_case(w: &World, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (s, v) = w.h.get("/api/v1/me/case", &w.victim).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if f(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; last answer {last}");
}

#[tokio::test]
async fn her_status_follows_the_offender_and_degrades_when_positions_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    // Nothing known yet: never "safe".
    let (_, v) = w.h.get("/api/v1/me/case", &w.victim).await;
    assert_eq!(v["status"], "degraded", "{v}");
    let reasons = v["status_reasons"].to_string();
    assert!(
        reasons.contains("own_position_stale") && reasons.contains("offender_position_unknown"),
        "{v}"
    );
    assert_eq!(v["own_device"]["kind"], "victim_phone");
    assert!(v["expires_at"].is_string(), "{v}");
    assert_eq!(v["orders"][0]["no_approach_m"], 100.0);

    share_at_home(&w).await;
    offender_at(&w, 1, 3_000.0).await;
    let v = eventually_case(&w, "safe", |v| v["status"] == "safe").await;
    assert_eq!(v["offender"], "not_nearby");
    assert_eq!(v["own_position"]["accuracy_m"], 12.0);
    assert_eq!(v["own_position"]["stale"], false);

    offender_at(&w, 2, 550.0).await;
    let v = eventually_case(&w, "in_area", |v| v["status"] == "in_area").await;
    assert!(v["offender"]["distance_m"].as_f64().unwrap() < 600.0, "{v}");

    offender_at(&w, 3, 300.0).await;
    eventually_case(&w, "approaching", |v| v["status"] == "approaching").await;
    offender_at(&w, 4, 50.0).await;
    let v = eventually_case(&w, "violation", |v| v["status"] == "violation").await;
    assert!(
        v["status_reasons"]
            .to_string()
            .contains("proximity_violation"),
        "{v}"
    );
    // What holds now is listed apart from what happened earlier, with the time of his fix.
    assert!(v["now"]["as_of"].is_string(), "{v}");
    assert_eq!(v["now"]["fresh"], true, "{v}");
    assert!(
        v["now"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["rule"] == "proximity_violation" && c["since"].is_string()),
        "{v}"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn a_violation_that_ended_is_listed_as_earlier_not_as_the_danger_now() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    share_at_home(&w).await;
    offender_at(&w, 1, 50.0).await;
    eventually_case(&w, "violation", |v| v["status"] == "violation").await;
    // He leaves: the alert stays open for the officer, but it is no longer the danger now.
    share_at_home(&w).await;
    offender_at(&w, 2, 3_000.0).await;
    offender_at(&w, 3, 3_000.0).await;
    let v = eventually_case(&w, "the violation to end", |v| {
        v["status"] != "violation" && v["status"] != "approaching"
    })
    .await;
    assert_eq!(v["offender"], "not_nearby", "{v}");
    assert!(
        !v["status_reasons"]
            .to_string()
            .contains("proximity_violation"),
        "{v}"
    );
    assert!(
        v["now"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["rule"] != "proximity_violation"),
        "{v}"
    );
    let earlier = v["earlier"].as_array().unwrap();
    let past = earlier
        .iter()
        .find(|e| e["rule"] == "proximity_violation")
        .unwrap_or_else(|| panic!("no earlier violation in {v}"));
    assert!(past["raised_at"].is_string(), "{v}");
    // The engine holds the condition for a while after he left (against flapping): it is
    // still open and watched, but not what his latest position shows.
    assert_eq!(past["still_watched"], true, "{v}");
    assert_eq!(past["last_known"], false, "{v}");
    assert_eq!(v["now"]["fresh"], true, "{v}");
    r.shutdown().await;
}

#[tokio::test]
async fn her_browser_position_is_stored_as_a_fix_of_her_phone() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    let time = jiff::Timestamp::now().to_string();
    let fix = json!({"lat": HOME.0, "lon": HOME.1, "accuracy_m": 25.0, "time": time, "speed_mps": 1.2, "course_deg": 90.0, "source": "wifi"});
    let (s, first) =
        w.h.post("/api/v1/me/location", &w.victim, fix.clone())
            .await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert!(first["fix_id"].as_i64().unwrap() > 0);
    assert_eq!(first["duplicate"], false);
    assert!(first["received_time"].is_string());
    // A resend is stored once.
    let (s, again) = w.h.post("/api/v1/me/location", &w.victim, fix).await;
    assert_eq!((s, &again["fix_id"]), (StatusCode::OK, &first["fix_id"]));
    assert_eq!(again["duplicate"], true);
    // Her officer sees it, with its accuracy and source.
    let (_, latest) = w.h.get("/api/v1/positions/latest", &w.officer).await;
    let hers = latest
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["device_id"] == first["device_id"])
        .unwrap_or_else(|| panic!("{latest}"));
    assert_eq!(
        (hers["accuracy_m"].as_f64(), hers["source"].as_str()),
        (Some(25.0), Some("wifi"))
    );
    // Invalid input is refused whole, with the device doors' codes.
    for (bad, code) in [
        (
            json!({"lat": 91.0, "lon": 0.0, "accuracy_m": 5.0, "time": time}),
            "coordinates_out_of_range",
        ),
        (
            json!({"lat": 37.0, "lon": 127.0, "accuracy_m": -1.0, "time": time}),
            "invalid_field",
        ),
        (
            json!({"lat": 37.0, "lon": 127.0, "accuracy_m": 5.0, "time": "2099-01-01T00:00:00Z"}),
            "timestamp_in_future",
        ),
        (
            json!({"lat": 37.0, "lon": 127.0, "time": time}),
            "invalid_field",
        ),
    ] {
        let (s, v) =
            w.h.post("/api/v1/me/location", &w.victim, bad.clone())
                .await;
        assert_eq!(v["error"]["code"], code, "{bad}: {s} {v}");
    }
    // A victim without a phone gets a code she can act on; staff and the offender are refused.
    let here = json!({"lat": 37.0, "lon": 127.0, "accuracy_m": 5.0, "time": time});
    let (s, v) =
        w.h.post("/api/v1/me/location", &w.victim_b, here.clone())
            .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_own_device"))
    );
    for token in [&w.officer, &w.offender] {
        let (s, _) = w.h.post("/api/v1/me/location", token, here.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    r.shutdown().await;
}

#[tokio::test]
async fn her_silent_sos_raises_the_sos_alert_with_or_without_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    // Without any position at all: still durable, still an alert.
    let (s, v) = w.h.post("/api/v1/me/sos", &w.victim, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["fix_id"].is_null() && v["received_time"].is_string(),
        "{v}"
    );
    let mut sos = None;
    for _ in 0..100 {
        let (_, alerts) = w.h.get("/api/v1/alerts", &w.officer).await;
        sos = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "sos")
            .cloned();
        if sos.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sos = sos.expect("the SOS reaches her officer");
    assert_eq!(sos["severity"], "critical");
    assert_eq!(sos["case_id"], w.case_a, "{sos}");
    // The other case's officer does not see it.
    let (_, other) = w.h.get("/api/v1/alerts", &w.officer_b).await;
    assert!(!other.to_string().contains("\"sos\""), "{other}");
    // Her view says her SOS is open.
    let v = eventually_case(&w, "her SOS in her view", |v| v["sos"]["state"] == "raised").await;
    assert_eq!(v["sos"]["alert_id"], sos["id"]);
    // With a position: stored with it. With a bad one: the SOS still goes, the position not.
    let now = jiff::Timestamp::now().to_string();
    let (s, v) = w
        .h
        .post(
            "/api/v1/me/sos",
            &w.victim,
            json!({"time": now, "position": {"lat": HOME.0, "lon": HOME.1, "accuracy_m": 15.0, "time": now}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["fix_id"].as_i64().is_some(), "{v}");
    let (s, v) =
        w.h.post(
            "/api/v1/me/sos",
            &w.victim,
            json!({"position": {"lat": 123.0, "lon": HOME.1, "accuracy_m": 15.0, "time": now}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["position_ignored"].is_string() && v["fix_id"].is_null(),
        "{v}"
    );
    // Nobody else can press her button.
    for token in [&w.officer, &w.offender] {
        let (s, _) = w.h.post("/api/v1/me/sos", token, json!({})).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, v) = w.h.post("/api/v1/me/sos", &w.victim_b, json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_own_device"))
    );
    r.shutdown().await;
}

#[tokio::test]
async fn who_viewed_my_data_shows_her_case_only_and_him_only_his_own_position() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    share_at_home(&w).await;
    offender_at(&w, 1, 300.0).await;
    let (s, _) = w
        .h
        .post(
            "/api/v1/ingest/batch",
            ANKLE_B,
            json!({"fixes": [{"seq": 1, "time": jiff::Timestamp::now().to_string(), "lat": 37.4, "lon": 127.1}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let purpose = "purpose_code=supervision&purpose_text=weekly%20supervision%20review";
    // Her officer reads the offender's track with a purpose; the other officer reads case B.
    let (s, v) =
        w.h.get(
            &format!(
                "/api/v1/devices/{}/track?from={from}&to={to}&{purpose}",
                w.ankle_a
            ),
            &w.officer,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) =
        w.h.get(
            &format!(
                "/api/v1/devices/{}/track?from={from}&to={to}&{purpose}",
                w.ankle_b
            ),
            &w.officer_b,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = w.h.get("/api/v1/positions/latest", &w.officer).await;
    assert_eq!(s, StatusCode::OK);
    // She looks at her own case a few times: not "who viewed".
    for _ in 0..3 {
        w.h.get("/api/v1/me/case", &w.victim).await;
    }
    let (s, log) = w.h.get("/api/v1/me/access-log", &w.victim).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let rows = log.as_array().unwrap();
    let track = rows
        .iter()
        .find(|r| r["action"] == "read_track")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(track["actor_name"], "officer-a");
    assert_eq!(track["actor_role"], "monitoring_officer");
    assert_eq!(track["purpose_code"], "supervision");
    assert_eq!(track["purpose_text"], "weekly supervision review");
    assert!(
        rows.iter().all(|r| r["actor_name"] != "officer-b"),
        "another case's reads: {log}"
    );
    assert!(
        rows.iter().all(|r| r["actor_role"] != "victim"),
        "her own reads: {log}"
    );
    assert_eq!(
        rows.iter().filter(|r| r["action"] == "read_track").count(),
        1,
        "{log}"
    );
    // Case B's victim sees case B's read, not case A's.
    let (_, log_b) = w.h.get("/api/v1/me/access-log", &w.victim_b).await;
    assert!(
        log_b.to_string().contains("officer-b") && !log_b.to_string().contains("officer-a"),
        "{log_b}"
    );
    // The offender sees the read of his own track, without the purpose text; nothing about her.
    let (s, his) = w.h.get("/api/v1/me/access-log", &w.offender).await;
    assert_eq!(s, StatusCode::OK, "{his}");
    let his_rows = his.as_array().unwrap();
    assert!(
        his_rows.iter().any(|r| r["action"] == "read_track"),
        "{his}"
    );
    assert!(
        his_rows.iter().all(|r| matches!(
            r["action"].as_str(),
            Some("read_position" | "read_track")
        ) && r["purpose_text"].is_null()),
        "{his}"
    );
    // Staff use the auditor's log, not this door.
    let (s, _) = w.h.get("/api/v1/me/access-log", &w.officer).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let _ = w.case_b;
    r.shutdown().await;
}
