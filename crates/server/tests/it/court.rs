//! The court workflow over real HTTP (petition → review → decision → order versions →
//! reminders → lapse), and the server's own housekeeping: the access log verified at
//! start-up, the retention job, failed log-ins with unknown usernames.

use crate::harness::{self, Http};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const ADMIN: &str = "court-test-admin-token-0123456789";
const ANKLE: &str = "court-ankle-device-token-0001";
const PHONE: &str = "court-phone-device-token-0001";
const DAY: i64 = 86_400;

async fn start(dir: &Path, adjust: impl FnOnce(&mut server::Config)) -> server::Running {
    harness::start_with(dir, ADMIN, |config| {
        harness::without_tracker_listeners(config);
        config.court.tick_ms = 50;
        adjust(config);
    })
    .await
}

/// What this module's tests ask of the client.
trait CourtHttp {
    async fn created(&self, path: &str, token: &str, body: Value) -> Value;
    async fn account(&self, username: &str, role: &str, person: Option<i64>) -> String;
    async fn log_in(&self, username: &str) -> String;
    async fn fix(&self, token: &str, seq: i64, lat: f64, lon: f64);
}

impl CourtHttp for Http {
    async fn created(&self, path: &str, token: &str, body: Value) -> Value {
        self.created_by(token, path, body).await
    }

    async fn account(&self, username: &str, role: &str, person: Option<i64>) -> String {
        self.new_account(ADMIN, username, role, person).await;
        self.log_in(username).await
    }

    /// Signs `username` in and returns the session token.
    async fn log_in(&self, username: &str) -> String {
        self.log_in_with(username, harness::PASSWORD).await
    }

    async fn fix(&self, token: &str, seq: i64, lat: f64, lon: f64) {
        self.send_fix(token, seq, lat, lon, 5.0).await;
    }
}

/// The kinds of the notices in a list, in order.
fn kinds(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `path` until `done` holds (deadline 20 s), and returns the last answer.
async fn wait_for(h: &Http, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (s, v) = h.get(path, token).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path}: the expected change did not happen");
}

struct Parties {
    case: i64,
    offender: i64,
    victim_token: String,
    offender_token: String,
    officer: String,
    clerk: String,
    judge: String,
}

/// An offender whose ankle monitor is registered BEFORE any order, a victim with a phone, a
/// case, an assigned monitoring officer, a clerk and a judge.
impl Parties {
    /// Everyone signs in again: advancing the server's one clock by days ends every session
    /// (30 min idle), as days passing would.
    async fn log_in_again(&mut self, h: &Http) {
        self.victim_token = h.log_in("victim").await;
        self.offender_token = h.log_in("offender").await;
        self.officer = h.log_in("officer").await;
        self.clerk = h.log_in("clerk").await;
        self.judge = h.log_in("judge").await;
    }
}

async fn parties(h: &Http) -> Parties {
    let offender = h
        .created(
            "/api/v1/people",
            ADMIN,
            json!({"role": "offender", "display_name": "Kim"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let victim = h
        .created(
            "/api/v1/people",
            ADMIN,
            json!({"role": "protected", "display_name": "Lee"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    h.created(
        "/api/v1/devices",
        ADMIN,
        json!({"kind": "ankle_monitor", "protocol": "native", "hardware_id": "court-ankle", "owner_id": offender, "token": ANKLE}),
    )
    .await;
    h.created(
        "/api/v1/devices",
        ADMIN,
        json!({"kind": "victim_phone", "protocol": "native", "hardware_id": "court-phone", "owner_id": victim, "token": PHONE}),
    )
    .await;
    let case = h
        .created(
            "/api/v1/cases",
            ADMIN,
            json!({"reference": "2026-court-1", "offender_id": offender, "protected_ids": [victim]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let officer = h.account("officer", "monitoring_officer", None).await;
    let (s, me) = h.get("/api/v1/auth/me", &officer).await;
    assert_eq!(s, StatusCode::OK);
    let officer_id = me["account_id"].as_i64().unwrap();
    let (s, v) = h
        .post(
            &format!("/api/v1/accounts/{officer_id}/assignments"),
            ADMIN,
            json!({"case_id": case}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    Parties {
        case,
        offender,
        victim_token: h.account("victim", "victim", Some(victim)).await,
        offender_token: h.account("offender", "offender", Some(offender)).await,
        officer,
        clerk: h.account("clerk", "court_clerk", None).await,
        judge: h.account("judge", "judge", None).await,
    }
}

/// The victim files for her own case (not for another, not as the offender, not over 92
/// days); the court and she are told. The petition's id.
async fn file_the_victims_petition(h: &Http, p: &Parties) -> i64 {
    // The victim files for her own case.
    let requested = json!({"no_approach_m": 100.0, "duration_days": 30, "no_contact_by_phone": true, "electronic_monitoring": true});
    let petition = h
        .created(
            "/api/v1/petitions",
            &p.victim_token,
            json!({"case_id": p.case, "kind": "provisional_measure", "requested": requested, "statement": "He follows me home from work."}),
        )
        .await;
    assert_eq!(petition["state"], "filed");
    assert_eq!(petition["petitioner"], "victim");
    assert_eq!(petition["case_id"], p.case);
    assert_eq!(petition["requested"], requested);
    assert!(petition["filed_at"].is_string());
    let id = petition["id"].as_i64().unwrap();
    // Not for another case, and not as the offender.
    let (s, _) = h
        .post(
            "/api/v1/petitions",
            &p.offender_token,
            json!({"case_id": p.case, "kind": "provisional_measure", "requested": requested, "statement": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A provisional measure runs at most 92 days per period.
    let (s, v) = h
        .post(
            "/api/v1/petitions",
            &p.victim_token,
            json!({"case_id": p.case, "kind": "provisional_measure", "requested": {"no_approach_m": 100.0, "duration_days": 120}, "statement": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // It lands in the court's queue; the victim is told it was filed.
    let (s, queue) = h.get("/api/v1/petitions", &p.clerk).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    let (_, notices) = h.get("/api/v1/me/notices", &p.victim_token).await;
    assert_eq!(kinds(&notices), ["petition_filed"]);
    let (_, court) = h.get("/api/v1/notices", &p.judge).await;
    assert_eq!(kinds(&court), ["petition_filed"]);
    id
}

/// Review, then the judge's grant: version 1 of an order in force now. The order and the
/// end of version 1.
async fn review_and_grant(h: &Http, p: &Parties, id: i64) -> (i64, String) {
    // No decision before review; the clerk reviews, but does not decide.
    let (s, v) = h
        .post(
            &format!("/api/v1/petitions/{id}/decision"),
            &p.judge,
            json!({"decision": "grant"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v) = h
        .post(
            &format!("/api/v1/petitions/{id}/review"),
            &p.clerk,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "under_review");
    let (s, _) = h
        .post(
            &format!("/api/v1/petitions/{id}/decision"),
            &p.clerk,
            json!({"decision": "grant"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A modification needs the court's reasons.
    let (s, v) = h
        .post(
            &format!("/api/v1/petitions/{id}/decision"),
            &p.judge,
            json!({"decision": "modify", "conditions": {"no_approach_m": 200.0, "duration_days": 30}, "reasons": " "}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // The judge grants: version 1 of an order in force now, for 30 days.
    let (s, granted) = h
        .post(
            &format!("/api/v1/petitions/{id}/decision"),
            &p.judge,
            json!({"decision": "grant"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{granted}");
    assert_eq!(granted["state"], "in_force");
    let order = granted["order_id"].as_i64().unwrap();
    let events: Vec<&str> = granted["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["filed", "review_started", "granted"]);
    let (_, orders) = h.get("/api/v1/orders", &p.officer).await;
    let o = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order)
        .unwrap_or_else(|| panic!("{orders}"));
    assert_eq!(o["kind"], "provisional_measure");
    assert_eq!(o["no_approach_m"], 100.0);
    let (_, versions) = h
        .get(&format!("/api/v1/orders/{order}/versions"), &p.officer)
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    assert_eq!(versions[0]["in_force"], true);
    let v1_end = versions[0]["valid_to"].as_str().unwrap().to_owned();
    (order, v1_end)
}

/// The engine applies the granted order to the monitor he registered before it.
async fn the_order_applies_to_his_monitor(h: &Http, p: &Parties, order: i64) {
    // The engine applies it to the monitor he registered before the order: he comes within
    // 20 m of her and an alert is raised for this order.
    h.fix(PHONE, 1, 37.5, 127.0).await;
    h.fix(ANKLE, 1, 37.50018, 127.0).await;
    wait_for(h, "/api/v1/alerts", &p.officer, |a| {
        a.as_array().unwrap().iter().any(|a| a["order_id"] == order)
    })
    .await;
}

/// A second version from where version 1 ends; what the parties are told. Its end.
async fn extend_by_a_second_version(
    h: &Http,
    p: &Parties,
    id: i64,
    order: i64,
    v1_end: &str,
) -> Value {
    // An extension starts exactly where version 1 ends.
    let (s, v2) = h
        .post(
            &format!("/api/v1/orders/{order}/versions"),
            &p.judge,
            json!({"extend_days": 30, "reasons": "The risk continues."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["valid_from"].as_str().unwrap(), v1_end);
    assert_eq!(v2["in_force"], false, "version 1 is still the one in force");
    // Reasons are required; only judges issue versions.
    let (s, _) = h
        .post(
            &format!("/api/v1/orders/{order}/versions"),
            &p.judge,
            json!({"extend_days": 1, "reasons": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = h
        .post(
            &format!("/api/v1/orders/{order}/versions"),
            &p.clerk,
            json!({"extend_days": 1, "reasons": "more time"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, orders) = h.get("/api/v1/orders", &p.officer).await;
    let o = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order)
        .unwrap();
    assert_eq!(
        o["valid_to"], v2["valid_to"],
        "the engine's order runs to the new end"
    );
    let v2_end = v2["valid_to"].clone();

    let (_, mine) = h.get("/api/v1/me/notices", &p.victim_token).await;
    assert_eq!(
        kinds(&mine),
        ["petition_filed", "under_review", "granted", "extended"]
    );
    // The offender learns his obligations, never her petition or the court's reasons.
    let (_, his) = h.get("/api/v1/me/notices", &p.offender_token).await;
    assert_eq!(kinds(&his), ["granted", "extended"]);
    assert!(
        his.as_array()
            .unwrap()
            .iter()
            .all(|n| n["reasons"].is_null())
    );
    let (s, _) = h
        .get(&format!("/api/v1/petitions/{id}"), &p.offender_token)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    v2_end
}

/// 47 days on, the 14-day reminder reaches all three, once.
async fn remind_before_the_end(r: &server::Running, h: &Http, p: &mut Parties, v2_end: &Value) {
    // 47 days on, version 2 ends in 13 days: the 14-day reminder reaches all three, once.
    r.clock.advance(47 * DAY);
    p.log_in_again(h).await;
    let mine = wait_for(h, "/api/v1/me/notices", &p.victim_token, |v| {
        kinds(v).contains(&"expires_soon".to_owned())
    })
    .await;
    let soon: Vec<&Value> = mine
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "expires_soon")
        .collect();
    assert_eq!(soon.len(), 1, "{mine}");
    assert_eq!(&soon[0]["valid_to"], v2_end);
    for staff in [&p.officer, &p.judge] {
        wait_for(h, "/api/v1/notices", staff, |v| {
            kinds(v).contains(&"expires_soon".to_owned())
        })
        .await;
    }
}

/// Past the end: the lapse notice, live and listed, once. Her notices at the end.
async fn lapse_at_the_end(
    r: &server::Running,
    h: &Http,
    p: &mut Parties,
    id: i64,
    order: i64,
) -> Value {
    // Past the end: the victim is told at once that protection has ended, and only that;
    // her app's live stream carries it.
    let mut live = h
        .http
        .get(format!(
            "{}/api/v1/live?access_token={}",
            h.base, p.victim_token
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    r.clock.advance(14 * DAY);
    p.log_in_again(h).await;
    let mut text = String::new();
    while !text.contains("\"kind\":\"lapsed\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), live.chunk())
            .await
            .expect("the live stream delivers the lapse")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: notice"), "{text}");
    assert!(
        !text.contains("\"recipient\":\"officer\""),
        "only her own notices: {text}"
    );
    drop(live);
    let mine = wait_for(h, "/api/v1/me/notices", &p.victim_token, |v| {
        kinds(v).contains(&"lapsed".to_owned())
    })
    .await;
    let k = kinds(&mine);
    assert_eq!(k.iter().filter(|k| *k == "lapsed").count(), 1, "{mine}");
    assert_eq!(
        k.iter().filter(|k| *k == "expires_soon").count(),
        1,
        "{mine}"
    );
    let (_, pet) = h
        .get(&format!("/api/v1/petitions/{id}"), &p.victim_token)
        .await;
    assert_eq!(pet["state"], "lapsed");
    let (s, v) = h
        .post(
            &format!("/api/v1/orders/{order}/versions"),
            &p.judge,
            json!({"extend_days": 10, "reasons": "too late"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (_, his) = h.get("/api/v1/me/notices", &p.offender_token).await;
    assert_eq!(kinds(&his), ["granted", "extended", "lapsed"]);
    let _ = p.offender;
    mine
}

/// After a restart at the same court time, nothing is sent twice.
async fn nothing_is_sent_twice_after_a_restart(dir: &Path, mine: &Value) {
    // After a restart at the same court time, nothing is sent twice.
    let r = start(dir, |_| {}).await;
    r.clock.advance(62 * DAY);
    let h = Http::new(&r);
    let (s, v) = h
        .call(
            "post",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "victim", "password": harness::PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    // Several scheduler ticks (50 ms each) pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, again) = h.get("/api/v1/me/notices", &token).await;
    assert_eq!(&again, mine);
    r.shutdown().await;
}

#[tokio::test]
async fn a_victims_petition_becomes_an_order_that_is_extended_reminded_and_lapses() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), |_| {}).await;
    let h = Http::new(&r);
    let mut p = parties(&h).await;
    let id = file_the_victims_petition(&h, &p).await;
    let (order, v1_end) = review_and_grant(&h, &p, id).await;
    the_order_applies_to_his_monitor(&h, &p, order).await;
    let v2_end = extend_by_a_second_version(&h, &p, id, order, &v1_end).await;
    remind_before_the_end(&r, &h, &mut p, &v2_end).await;
    let mine = lapse_at_the_end(&r, &h, &mut p, id, order).await;
    r.shutdown().await;
    nothing_is_sent_twice_after_a_restart(dir.path(), &mine).await;
}

#[tokio::test]
async fn a_zone_edit_is_a_new_version_from_now_and_a_denial_needs_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), |_| {}).await;
    let h = Http::new(&r);
    let p = parties(&h).await;
    let police = h.account("police", "police", None).await;
    a_denial_needs_reasons(&h, &p, &police).await;
    let (order, zone) = a_modified_petition_makes_an_order_with_a_home_zone(&h, &p, &police).await;
    let work = the_zone_editor_makes_a_new_version_from_now(&h, &p, order, &zone).await;
    the_officer_redraws_zones_but_not_distances(&h, &p, order, &work).await;
    the_offender_sees_versions_without_zones_or_reasons(&h, &p, order).await;
    an_open_ended_order_is_amended_and_stays_open(&h, &p).await;
    a_bad_zone_is_refused_whole(&h, &p, order).await;
    r.shutdown().await;
}

/// Police petition for the victim (a restraining order, 100 m, 180 days).
async fn file_police_petition(h: &Http, p: &Parties, police: &str) -> Value {
    h.created(
        "/api/v1/petitions",
        police,
        json!({"case_id": p.case, "kind": "restraining_order", "requested": {"no_approach_m": 100.0, "duration_days": 180}, "statement": "Repeated visits at her home."}),
    )
    .await
}

/// The judge denies the police's petition, with reasons (without, it is refused).
async fn a_denial_needs_reasons(h: &Http, p: &Parties, police: &str) {
    let first = file_police_petition(h, p, police).await;
    assert_eq!(first["petitioner"], "police");
    let id = first["id"].as_i64().unwrap();
    let (s, _) = h
        .post(
            &format!("/api/v1/petitions/{id}/decision"),
            &p.judge,
            json!({"decision": "deny"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = h
        .post(
            &format!("/api/v1/petitions/{id}/decision"),
            &p.judge,
            json!({"decision": "deny", "reasons": "No evidence of a visit."}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "denied");
    let (_, mine) = h.get("/api/v1/me/notices", &p.victim_token).await;
    assert_eq!(kinds(&mine), ["petition_filed", "denied"]);
}

/// A second petition is modified: 200 m, with a home zone. Answers the order and the zone.
async fn a_modified_petition_makes_an_order_with_a_home_zone(
    h: &Http,
    p: &Parties,
    police: &str,
) -> (i64, Value) {
    let id = file_police_petition(h, p, police).await["id"]
        .as_i64()
        .unwrap();
    h.post(
        &format!("/api/v1/petitions/{id}/review"),
        &p.clerk,
        json!({}),
    )
    .await;
    let zone = json!({"kind": "home", "label": "her home", "shape": {"type": "circle", "lat": 37.51, "lon": 127.01, "radius_m": 300.0}});
    let (s, v) = h
        .post(
            &format!("/api/v1/petitions/{id}/decision"),
            &p.judge,
            json!({"decision": "modify", "conditions": {"no_approach_m": 200.0, "duration_days": 180}, "reasons": "A wider distance is needed.", "zones": [zone]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let order = v["order_id"].as_i64().unwrap();
    let (_, mine) = h.get("/api/v1/me/notices", &p.victim_token).await;
    assert!(kinds(&mine).contains(&"modified".to_owned()), "{mine}");

    (order, zone)
}

/// Answers the second zone it added (her office).
async fn the_zone_editor_makes_a_new_version_from_now(
    h: &Http,
    p: &Parties,
    order: i64,
    zone: &Value,
) -> Value {
    // The console's zone editor replaces the zones: version 2, from now to the same end.
    let work = json!({"kind": "work", "label": "her office", "shape": {"type": "circle", "lat": 37.52, "lon": 127.02, "radius_m": 200.0}});
    let (s, v2) = h
        .post(
            &format!("/api/v1/orders/{order}/versions"),
            &p.judge,
            json!({"zones": [zone, work], "reasons": "She started a new job."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["in_force"], true);
    assert_eq!(v2["zones"].as_array().unwrap().len(), 2);
    assert_eq!(v2["no_approach_m"], 200.0);
    let (_, versions) = h
        .get(&format!("/api/v1/orders/{order}/versions"), &p.officer)
        .await;
    assert_eq!(versions[0]["valid_to"], versions[1]["valid_to"]);
    assert_eq!(
        versions[0]["zones"].as_array().unwrap().len(),
        1,
        "version 1 is unchanged"
    );
    let (_, orders) = h.get("/api/v1/orders", &p.officer).await;
    let o = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order)
        .unwrap();
    assert_eq!(
        o["zones"].as_array().unwrap().len(),
        2,
        "the engine uses version 2"
    );
    work
}

async fn the_officer_redraws_zones_but_not_distances(
    h: &Http,
    p: &Parties,
    order: i64,
    work: &Value,
) {
    // The case's officer may redraw the zones (version 3, attributed to the officer), but
    // not the distances: those are the court's.
    let (s, v3) = h
        .post(
            &format!("/api/v1/orders/{order}/versions"),
            &p.officer,
            json!({"zones": [work], "reasons": "Her home zone moves with her (court letter 12)."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v3}");
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["no_approach_m"], 200.0);
    let (s, refused) = h
        .post(
            &format!("/api/v1/orders/{order}/versions"),
            &p.officer,
            json!({"zones": [work], "no_approach_m": 50.0, "reasons": "closer"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
}

async fn the_offender_sees_versions_without_zones_or_reasons(h: &Http, p: &Parties, order: i64) {
    // The offender's view of the versions leaves out zones and reasons.
    let (s, his) = h
        .get(
            &format!("/api/v1/orders/{order}/versions"),
            &p.offender_token,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        his.as_array()
            .unwrap()
            .iter()
            .all(|v| v["zones"] == json!([]) && v["reasons"].is_null()),
        "{his}"
    );
}

async fn an_open_ended_order_is_amended_and_stays_open(h: &Http, p: &Parties) {
    // An open-ended order registered directly is amended the same way and stays open.
    let (s, direct) = h
        .post(
            "/api/v1/orders",
            &p.officer,
            json!({"case_id": p.case, "kind": "electronic_monitoring", "valid_from": "2026-01-01T00:00:00Z", "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{direct}");
    let direct = direct["id"].as_i64().unwrap();
    let (s, v) = h
        .post(
            &format!("/api/v1/orders/{direct}/versions"),
            &p.judge,
            json!({"no_approach_m": 150.0, "reasons": "The court widens the distance."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["version"].as_i64(), v["valid_to"].is_null()),
        (Some(2), true),
        "{v}"
    );
    let (s, _) = h
        .post(
            &format!("/api/v1/orders/{direct}/versions"),
            &p.judge,
            json!({"extend_days": 5, "reasons": "more"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "nothing to extend");
}

async fn a_bad_zone_is_refused_whole(h: &Http, p: &Parties, order: i64) {
    // A bad zone is refused whole.
    let (s, _) = h
        .post(
            &format!("/api/v1/orders/{order}/versions"),
            &p.judge,
            json!({"zones": [{"kind": "home", "label": "x", "shape": {"type": "circle", "lat": 95.0, "lon": 127.0, "radius_m": 10.0}}], "reasons": "typo"}),
        )
        .await;
    assert!(s.is_client_error(), "{s}");
}

#[tokio::test]
async fn a_tampered_access_log_is_reported_at_start_and_monitoring_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), |_| {}).await;
    let h = Http::new(&r);
    let (_, health) = h.get("/healthz", ADMIN).await;
    assert_eq!(health["audit_chain"], "ok");
    for name in ["a", "b", "c", "d"] {
        h.created(
            "/api/v1/people",
            ADMIN,
            json!({"role": "offender", "display_name": name}),
        )
        .await;
    }
    r.shutdown().await;

    // A clean restart verifies.
    let r = start(dir.path(), |_| {}).await;
    let (_, health) = Http::new(&r).get("/healthz", ADMIN).await;
    assert_eq!(health["audit_chain"], "ok", "{health}");
    r.shutdown().await;

    // Someone rewrites record 2 with raw SQL between two runs.
    let db = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let blob: Vec<u8> = db
        .query_row("SELECT record FROM audit_log WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut rec = audit::AuditRecord::from_bytes(&blob).unwrap();
    rec.entry.details = "nothing happened".into();
    db.execute(
        "UPDATE audit_log SET record = ?1 WHERE seq = 2",
        [rec.to_bytes()],
    )
    .unwrap();
    drop(db);

    let r = start(dir.path(), |_| {}).await;
    let h = Http::new(&r);
    let (s, health) = h.get("/healthz", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(health["audit_chain"], "broken", "{health}");
    assert_eq!(health["status"], "degraded");
    let (_, metrics) = h.get("/metrics", ADMIN).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("bulwark_audit_chain_ok 0"), "{metrics}");
    // Still serving.
    let (s, people) = h.get("/api/v1/people", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(people.as_array().unwrap().len(), 4);
    r.shutdown().await;
}

#[tokio::test]
async fn the_retention_job_purges_inside_the_running_server_and_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), |c| c.retention.interval_s = 1).await;
    let h = Http::new(&r);
    let p = parties(&h).await;
    h.account("auditor", "auditor", None).await;
    h.fix(PHONE, 1, 37.5, 127.0).await;
    h.fix(ANKLE, 1, 37.6, 127.1).await;
    assert_eq!(r.store.count_fixes().await.unwrap(), 2);
    // Four days on, her position (kept 72 h) must go; his stays (his order never ended:
    // there is none yet, so protection has not ended).
    r.clock.advance(4 * DAY);
    // Four days end the auditor's session (the server's one clock moved).
    let auditor = h.log_in("auditor").await;
    let mut left = 2;
    for _ in 0..100 {
        left = r.store.count_fixes().await.unwrap();
        if left == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1, "the victim's fix is purged, the offender's kept");
    let log = wait_for(&h, "/api/v1/audit?limit=5000", &auditor, |v| {
        v.as_array().unwrap().iter().any(|r| {
            r["action"] == "purge"
                && r["details"]
                    .as_str()
                    .unwrap_or("")
                    .contains("fixes deleted: 1")
        })
    })
    .await;
    assert!(!log.as_array().unwrap().is_empty());
    let (_, metrics) = h.get("/metrics", ADMIN).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("bulwark_retention_deleted_total")
    );
    let _ = p.case;
    r.shutdown().await;
}

#[tokio::test]
async fn a_failed_log_in_with_an_unknown_username_is_logged_and_answered_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), |_| {}).await;
    let h = Http::new(&r);
    let auditor = h.account("auditor", "auditor", None).await;
    let login = |user: &'static str| {
        let h = h.clone();
        async move {
            h.call(
                "post",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": user, "password": "not the password"})),
            )
            .await
        }
    };
    let unknown = login("no-such-user").await;
    let wrong = login("auditor").await;
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown, wrong, "the answer does not tell which");
    let (_, log) = h.get("/api/v1/audit?limit=5000", &auditor).await;
    let failed: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{log}");
    assert!(
        failed
            .iter()
            .any(|r| r["details"].as_str().unwrap().contains("no-such-user")),
        "{log}"
    );
    // No account was created.
    let (_, accounts) = h.get("/api/v1/accounts", ADMIN).await;
    assert!(
        accounts
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["username"] != "no-such-user")
    );
    r.shutdown().await;
}
