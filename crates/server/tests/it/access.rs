//! Access control and the audit trail over real HTTP: log-in, lock-out, TOTP, scoped reads,
//! the authorisation matrix generated from the route table, and tamper detection in the
//! stored access log.

use crate::harness::{self, Http, PASSWORD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const ADMIN: &str = "access-test-admin-token-0123456789";
const ANKLE_A: &str = "ankle-a-device-token-000001";

async fn start(dir: &Path) -> server::Running {
    harness::start(dir, ADMIN).await
}

/// What this module's tests ask of the client.
trait AccessHttp {
    async fn login(&self, username: &str) -> String;
    async fn account(&self, username: &str, role: &str, person: Option<i64>) -> i64;
}

impl AccessHttp for Http {
    /// Signs `username` in with the test password.
    async fn login(&self, username: &str) -> String {
        self.log_in_with(username, PASSWORD).await
    }

    /// An account created by the administrator; its id.
    async fn account(&self, username: &str, role: &str, person: Option<i64>) -> i64 {
        self.new_account(ADMIN, username, role, person).await
    }
}

/// Two cases, A and B, each with its own officer; an auditor; the victim and the offender
/// of case A with their own accounts; an SOS alert in case A.
struct World {
    h: Http,
    case_a: i64,
    offender_a: i64,
    victim_a: i64,
    device_a: i64,
    alert_a: i64,
    officer_a: i64,
    /// Role name → session token (the administrator uses the bootstrap token).
    tokens: BTreeMap<&'static str, String>,
}

async fn world(r: &server::Running) -> World {
    let h = Http::new(r);
    let person = |role: &'static str| {
        let h = h.clone();
        async move {
            let (s, v) = h
                .post(
                    "/api/v1/people",
                    ADMIN,
                    json!({"role": role, "display_name": role}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_i64().unwrap()
        }
    };
    let (offender_a, victim_a) = (person("offender").await, person("protected").await);
    let (offender_b, victim_b) = (person("offender").await, person("protected").await);
    let (s, dev) = h
        .post(
            "/api/v1/devices",
            ADMIN,
            json!({"kind": "ankle_monitor", "protocol": "native", "hardware_id": "ankle-a", "owner_id": offender_a, "token": ANKLE_A}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{dev}");
    let case = |off: i64, vic: i64, reference: &'static str| {
        let h = h.clone();
        async move {
            let (s, v) = h
                .post(
                    "/api/v1/cases",
                    ADMIN,
                    json!({"reference": reference, "offender_id": off, "protected_ids": [vic]}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_i64().unwrap()
        }
    };
    let case_a = case(offender_a, victim_a, "A").await;
    let case_b = case(offender_b, victim_b, "B").await;
    let officer_a = h.account("officer-a", "monitoring_officer", None).await;
    let officer_b = h.account("officer-b", "monitoring_officer", None).await;
    for (officer, case) in [(officer_a, case_a), (officer_b, case_b)] {
        let (s, v) = h
            .post(
                &format!("/api/v1/accounts/{officer}/assignments"),
                ADMIN,
                json!({"case_id": case}),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    h.account("auditor", "auditor", None).await;
    h.account("victim-a", "victim", Some(victim_a)).await;
    h.account("offender-a", "offender", Some(offender_a)).await;
    let mut tokens = BTreeMap::new();
    tokens.insert("administrator", ADMIN.to_string());
    for (role, user) in [
        ("officer_own", "officer-a"),
        ("officer_other", "officer-b"),
        ("auditor", "auditor"),
        ("victim", "victim-a"),
        ("offender", "offender-a"),
    ] {
        tokens.insert(role, h.login(user).await);
    }
    // An SOS from the offender's monitor raises an alert in case A.
    let now = jiff::Timestamp::now().to_string();
    let (s, v) = h
        .post(
            "/api/v1/ingest/batch",
            ANKLE_A,
            json!({"events": [{"kind": "sos", "time": now}], "fixes": [{"seq": 1, "time": now, "lat": 37.5, "lon": 127.0}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut alert_a = None;
    for _ in 0..100 {
        let (_, alerts) = h.get("/api/v1/alerts", &tokens["officer_own"]).await;
        alert_a = alerts
            .as_array()
            .and_then(|a| a.first())
            .and_then(|a| a["id"].as_i64());
        if alert_a.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    World {
        h,
        case_a,
        offender_a,
        victim_a,
        device_a: dev["id"].as_i64().unwrap(),
        alert_a: alert_a.expect("the SOS alert appears"),
        officer_a,
        tokens,
    }
}

const PURPOSE: &str = "purpose_code=alert_response&purpose_text=checking%20the%20SOS%20route";

/// Roles in the order of the expectation columns; `anonymous` sends no token.
const ROLES: [&str; 7] = [
    "anonymous",
    "administrator",
    "officer_own",
    "officer_other",
    "auditor",
    "victim",
    "offender",
];

/// Expected status per role (columns as in ROLES) and the request to send.
type Row = (&'static str, String, Option<Value>, [u16; 7]);

/// What the matrix's rows name: a petition filed by the victim and an order registered by the
/// officer (for the court routes), a dispatch task, a push subscription, a track URL.
struct MatrixRecords {
    from: String,
    to: String,
    track: String,
    petition_body: Value,
    petition: i64,
    order: i64,
    task: i64,
    subscription: Value,
}

async fn matrix_records(w: &World) -> MatrixRecords {
    let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let track = format!(
        "/api/v1/devices/{}/track?from={from}&to={to}&{PURPOSE}",
        w.device_a
    );
    // A petition filed by the victim and an order registered by the officer, for the court
    // routes that name one.
    let petition_body = json!({"case_id": w.case_a, "kind": "provisional_measure",
        "requested": {"no_approach_m": 100.0, "duration_days": 30}, "statement": "he waits outside my work"});
    let (s, petition) =
        w.h.post(
            "/api/v1/petitions",
            &w.tokens["victim"],
            petition_body.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{petition}");
    let petition = petition["id"].as_i64().unwrap();
    let (s, order) = w
        .h
        .post(
            "/api/v1/orders",
            &w.tokens["officer_own"],
            json!({"case_id": w.case_a, "kind": "restraining_order", "valid_from": from, "valid_to": to, "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    let order = order["id"].as_i64().unwrap();
    // The case's officer dispatches the SOS: a task of theirs for the task route's row.
    let (s, d) =
        w.h.post(
            &format!("/api/v1/alerts/{}/dispatch", w.alert_a),
            &w.tokens["officer_own"],
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let task = d["tasks"][0]["id"].as_i64().unwrap();
    // A browser's push subscription (the RFC 8291 example keys); nothing listens there.
    let subscription = json!({"endpoint": "http://127.0.0.1:9/push/probe", "keys": {
        "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        "auth": "BTBZMqHH6r4Tts7J_aSIgg"}});
    MatrixRecords {
        from,
        to,
        track,
        petition_body,
        petition,
        order,
        task,
        subscription,
    }
}

/// One row per route of the OpenAPI document. A route without a row here fails the test: a
/// new endpoint needs a rule.
async fn matrix_rows(w: &World, m: &MatrixRecords) -> Vec<Row> {
    let MatrixRecords {
        from,
        to,
        track,
        petition_body,
        petition,
        order,
        task,
        subscription,
    } = m;
    vec![
        ("get /healthz", "/healthz".into(), None, [200; 7]),
        // The counters move with every fix and alert: the scraper's or an administrator's.
        (
            "get /metrics",
            "/metrics".into(),
            None,
            [401, 200, 401, 401, 401, 401, 401],
        ),
        // Device doors: staff tokens are not device credentials.
        (
            "post /api/v1/ingest/batch",
            "/api/v1/ingest/batch".into(),
            Some(json!({"fixes": []})),
            [401; 7],
        ),
        (
            "post /ingest/osmand",
            "/ingest/osmand".into(),
            Some(
                json!({"device_id": "no-such-phone", "location": {"timestamp": to, "coords": {"latitude": 37.5, "longitude": 127.0}}}),
            ),
            [401; 7],
        ),
        (
            "post /ingest/owntracks",
            "/ingest/owntracks".into(),
            Some(
                json!({"_type": "location", "tid": "np", "tst": 1_764_547_200, "lat": 37.5, "lon": 127.0}),
            ),
            [401; 7],
        ),
        (
            "get /ingest/osmand",
            "/ingest/osmand?id=no-such-phone&lat=37.5&lon=127.0".into(),
            None,
            [401; 7],
        ),
        (
            "get /ingest/gpslogger",
            "/ingest/gpslogger?id=no-such-phone&lat=37.5&longitude=127.0".into(),
            None,
            [401; 7],
        ),
        (
            "post /ingest/gpslogger",
            "/ingest/gpslogger?id=no-such-phone&lat=37.5&lon=127.0".into(),
            None,
            [401; 7],
        ),
        (
            "post /ingest/overland",
            "/ingest/overland".into(),
            Some(
                json!({"locations": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [127.0, 37.5]},
                "properties": {"timestamp": to, "device_id": "no-such-phone"}}]}),
            ),
            [401; 7],
        ),
        (
            "get /api/v1/live",
            "/api/v1/live".into(),
            None,
            [401, 403, 200, 200, 403, 200, 403],
        ),
        (
            // Decided exactly like the SSE stream; a plain GET then lacks the upgrade.
            "get /api/v1/live/ws",
            "/api/v1/live/ws".into(),
            None,
            [401, 403, 426, 426, 403, 426, 403],
        ),
        (
            // Only the case's monitoring officer dispatches.
            "post /api/v1/alerts/{id}/dispatch",
            format!("/api/v1/alerts/{}/dispatch", w.alert_a),
            Some(json!({})),
            [401, 403, 201, 403, 403, 403, 403],
        ),
        (
            // Everyone's own tasks (none for most).
            "get /api/v1/tasks",
            "/api/v1/tasks".into(),
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        (
            // The police accounts a dispatch may name: whoever may dispatch (any monitoring
            // officer: it names accounts, not a case).
            "get /api/v1/police-units",
            "/api/v1/police-units".into(),
            None,
            [401, 403, 200, 200, 403, 403, 403],
        ),
        (
            // Someone else's task does not exist for the caller.
            "post /api/v1/tasks/{id}/state",
            format!("/api/v1/tasks/{task}/state"),
            Some(json!({"state": "en_route"})),
            [401, 404, 200, 404, 404, 404, 404],
        ),
        (
            "get /api/v1/me/alerts",
            "/api/v1/me/alerts".into(),
            None,
            [401, 403, 403, 403, 403, 200, 403],
        ),
        (
            "post /api/v1/me/alerts/test",
            "/api/v1/me/alerts/test".into(),
            None,
            [401, 403, 403, 403, 403, 201, 403],
        ),
        (
            // Every account's own settings; the bootstrap token has no account.
            "get /api/v1/me/settings",
            "/api/v1/me/settings".into(),
            None,
            [401, 403, 200, 200, 200, 200, 200],
        ),
        (
            "put /api/v1/me/settings",
            "/api/v1/me/settings".into(),
            Some(json!({"silent": true})),
            [401, 403, 200, 200, 200, 200, 200],
        ),
        (
            "get /api/v1/push/vapid-public-key",
            "/api/v1/push/vapid-public-key".into(),
            None,
            [200; 7],
        ),
        (
            "post /api/v1/me/push-subscriptions",
            "/api/v1/me/push-subscriptions".into(),
            Some(subscription.clone()),
            [401, 403, 201, 201, 201, 201, 201],
        ),
        (
            // Sent before the subscriptions above (methods in order): nobody's yet.
            "delete /api/v1/me/push-subscriptions",
            "/api/v1/me/push-subscriptions".into(),
            Some(json!({"endpoint": "http://127.0.0.1:9/push/probe"})),
            [401, 403, 404, 404, 404, 404, 404],
        ),
        (
            "post /api/v1/people",
            "/api/v1/people".into(),
            Some(json!({"role": "offender", "display_name": "x"})),
            [401, 201, 403, 403, 403, 403, 403],
        ),
        (
            "get /api/v1/people",
            "/api/v1/people".into(),
            None,
            [401, 200, 200, 200, 403, 200, 200],
        ),
        (
            "post /api/v1/devices",
            "/api/v1/devices".into(),
            Some(json!({"kind": "tracker", "protocol": "gt06", "hardware_id": "probe"})),
            [401, 201, 403, 403, 403, 403, 403],
        ),
        (
            "get /api/v1/devices",
            "/api/v1/devices".into(),
            None,
            [401, 200, 200, 200, 403, 200, 200],
        ),
        (
            "get /api/v1/devices/unknown",
            "/api/v1/devices/unknown".into(),
            None,
            [401, 200, 403, 403, 403, 403, 403],
        ),
        (
            // Issuing a device token is registry work: administrators only.
            "post /api/v1/devices/{id}/token",
            format!("/api/v1/devices/{}/token", w.device_a),
            Some(json!({"token": "issued-by-the-administrator-0001"})),
            [401, 204, 403, 403, 403, 403, 403],
        ),
        (
            "post /api/v1/cases",
            "/api/v1/cases".into(),
            Some(
                json!({"reference": "probe", "offender_id": w.offender_a, "protected_ids": [w.victim_a]}),
            ),
            [401, 201, 403, 403, 403, 403, 403],
        ),
        (
            "get /api/v1/cases",
            "/api/v1/cases".into(),
            None,
            [401, 200, 200, 200, 403, 200, 200],
        ),
        (
            "post /api/v1/orders",
            "/api/v1/orders".into(),
            Some(
                json!({"case_id": w.case_a, "kind": "provisional_measure", "valid_from": "2026-01-01T00:00:00Z", "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0}),
            ),
            [401, 403, 201, 403, 403, 403, 403],
        ),
        (
            "get /api/v1/orders",
            "/api/v1/orders".into(),
            None,
            [401, 403, 200, 200, 403, 200, 200],
        ),
        (
            "get /api/v1/positions/latest",
            "/api/v1/positions/latest".into(),
            None,
            [401, 403, 200, 200, 403, 200, 200],
        ),
        (
            "get /api/v1/devices/{id}/track",
            track.clone(),
            None,
            [401, 403, 200, 403, 403, 403, 200],
        ),
        (
            // Network scans locate the wearer: the same rule as the track.
            "get /api/v1/devices/{id}/network-scans",
            format!(
                "/api/v1/devices/{}/network-scans?from={from}&to={to}&{PURPOSE}",
                w.device_a
            ),
            None,
            [401, 403, 200, 403, 403, 403, 200],
        ),
        (
            // Raw frames may hold a position the decoder could not read: the track's rule.
            "get /api/v1/devices/{id}/unknown-frames",
            format!(
                "/api/v1/devices/{}/unknown-frames?from={from}&to={to}&{PURPOSE}",
                w.device_a
            ),
            None,
            [401, 403, 200, 403, 403, 403, 200],
        ),
        (
            // Like the device status of the case summary (`view_case`): the case's officer,
            // its victim and its offender (his own device); no administrator or auditor.
            "get /api/v1/devices/{id}/health",
            format!("/api/v1/devices/{}/health?from={from}&to={to}", w.device_a),
            None,
            [401, 403, 200, 403, 403, 200, 200],
        ),
        (
            "get /api/v1/alerts",
            "/api/v1/alerts".into(),
            None,
            [401, 403, 200, 200, 403, 200, 403],
        ),
        (
            "post /api/v1/alerts/{id}/state",
            format!("/api/v1/alerts/{}/state", w.alert_a),
            Some(json!({"state": "acknowledged"})),
            [401, 403, 200, 403, 403, 403, 403],
        ),
        (
            "post /api/v1/alerts/{id}/actions",
            format!("/api/v1/alerts/{}/actions", w.alert_a),
            Some(json!({"action": "note", "note": "probe"})),
            [401, 403, 201, 403, 403, 403, 403],
        ),
        (
            "get /api/v1/alerts/{id}/history",
            format!("/api/v1/alerts/{}/history", w.alert_a),
            None,
            [401, 403, 200, 403, 403, 403, 403],
        ),
        (
            // Scoped like the alert list, over the cases the caller handles alerts for: an
            // officer without the case gets measures over nothing.
            "get /api/v1/alerts/measures",
            "/api/v1/alerts/measures".into(),
            None,
            [401, 403, 200, 200, 403, 403, 403],
        ),
        (
            "get /api/v1/snapshot",
            "/api/v1/snapshot".into(),
            None,
            [401, 403, 200, 200, 403, 200, 403],
        ),
        (
            "post /api/v1/auth/login",
            "/api/v1/auth/login".into(),
            Some(json!({"username": "nobody", "password": "wrong password"})),
            // Seven failures for one (unknown) username from one address: the sixth on is
            // backed off, as for a username that exists.
            [401, 401, 401, 401, 401, 429, 429],
        ),
        (
            "post /api/v1/auth/logout",
            "/api/v1/auth/logout".into(),
            None,
            [401, 204, 204, 204, 204, 204, 204],
        ),
        (
            "get /api/v1/auth/me",
            "/api/v1/auth/me".into(),
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        (
            "post /api/v1/accounts",
            "/api/v1/accounts".into(),
            Some(json!({"username": "probe", "password": PASSWORD, "role": "auditor"})),
            [401, 201, 403, 403, 403, 403, 403],
        ),
        (
            "get /api/v1/accounts",
            "/api/v1/accounts".into(),
            None,
            [401, 200, 403, 403, 403, 403, 403],
        ),
        (
            "post /api/v1/accounts/{id}/assignments",
            format!("/api/v1/accounts/{}/assignments", w.officer_a),
            Some(json!({"case_id": w.case_a})),
            [401, 204, 403, 403, 403, 403, 403],
        ),
        (
            // An account made for the probe, so that disabling it changes nothing else.
            "post /api/v1/accounts/{id}/disable",
            format!(
                "/api/v1/accounts/{}/disable",
                w.h.account("to-disable", "auditor", None).await
            ),
            None,
            [401, 204, 403, 403, 403, 403, 403],
        ),
        (
            "get /api/v1/me/case",
            "/api/v1/me/case".into(),
            None,
            [401, 403, 403, 403, 403, 200, 200],
        ),
        (
            // Her own reports need a phone of hers: case A's victim has none in this world.
            "post /api/v1/me/location",
            "/api/v1/me/location".into(),
            Some(json!({"lat": 37.5, "lon": 127.0, "accuracy_m": 10.0, "time": to})),
            [401, 403, 403, 403, 403, 409, 403],
        ),
        (
            "post /api/v1/me/sos",
            "/api/v1/me/sos".into(),
            Some(json!({})),
            [401, 403, 403, 403, 403, 409, 403],
        ),
        (
            "get /api/v1/me/access-log",
            "/api/v1/me/access-log".into(),
            None,
            [401, 403, 403, 403, 403, 200, 200],
        ),
        (
            "get /api/v1/audit",
            "/api/v1/audit".into(),
            None,
            [401, 403, 403, 403, 200, 403, 403],
        ),
        (
            // Victims for their own case, police for any; monitoring officers do not petition.
            "post /api/v1/petitions",
            "/api/v1/petitions".into(),
            Some(petition_body.clone()),
            [401, 403, 403, 403, 403, 201, 403],
        ),
        (
            // The offender never reads her statement.
            "get /api/v1/petitions",
            "/api/v1/petitions".into(),
            None,
            [401, 403, 200, 200, 403, 200, 403],
        ),
        (
            "get /api/v1/petitions/{id}",
            format!("/api/v1/petitions/{petition}"),
            None,
            [401, 403, 200, 403, 403, 200, 403],
        ),
        (
            // Court clerks review, judges decide (tests/it/court.rs); nobody else.
            "post /api/v1/petitions/{id}/review",
            format!("/api/v1/petitions/{petition}/review"),
            None,
            [401, 403, 403, 403, 403, 403, 403],
        ),
        (
            "post /api/v1/petitions/{id}/decision",
            format!("/api/v1/petitions/{petition}/decision"),
            Some(json!({"decision": "deny", "reasons": "probe"})),
            [401, 403, 403, 403, 403, 403, 403],
        ),
        (
            // The offender's view leaves out zones, distances beyond his own and reasons.
            "get /api/v1/orders/{id}/versions",
            format!("/api/v1/orders/{order}/versions"),
            None,
            [401, 403, 200, 403, 403, 200, 200],
        ),
        (
            // Only judges issue versions (tests/it/court.rs).
            "post /api/v1/orders/{id}/versions",
            format!("/api/v1/orders/{order}/versions"),
            Some(json!({"extend_days": 1, "reasons": "probe"})),
            [401, 403, 403, 403, 403, 403, 403],
        ),
        (
            "get /api/v1/me/notices",
            "/api/v1/me/notices".into(),
            None,
            [401, 403, 403, 403, 403, 200, 200],
        ),
        (
            "get /api/v1/notices",
            "/api/v1/notices".into(),
            None,
            [401, 403, 200, 200, 403, 403, 403],
        ),
    ]
}

/// Sends every route's request as every role; the mismatches, and how many rows matched a
/// route of the document.
async fn ask_every_route_as_every_role(
    w: &World,
    table: &BTreeMap<&str, (String, Option<Value>, [u16; 7])>,
) -> (Vec<String>, usize) {
    let mut n = 0;
    let mut unique = move || {
        n += 1;
        n
    };
    let doc = server::openapi();
    let doc = serde_json::to_value(&doc).unwrap();
    let mut failures = Vec::new();
    let mut covered = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let key = format!("{method} {path}");
            let Some((url, body, expect)) = table.get(key.as_str()) else {
                failures.push(format!("{key}: no rule in this test's table"));
                continue;
            };
            covered += 1;
            for (role, want) in ROLES.iter().zip(expect) {
                // Log-out ends the session: use a fresh one so later rows keep theirs.
                let fresh;
                let token = match (*role, key.as_str()) {
                    ("anonymous", _) => None,
                    ("administrator", _) => Some(ADMIN),
                    (r, "post /api/v1/auth/logout") => {
                        let user = match r {
                            "officer_own" => "officer-a",
                            "officer_other" => "officer-b",
                            "victim" => "victim-a",
                            "offender" => "offender-a",
                            other => other,
                        };
                        fresh = w.h.login(user).await;
                        Some(fresh.as_str())
                    }
                    (r, _) => Some(w.tokens[r].as_str()),
                };
                let mut body = body.clone();
                // Names that must be unique get a counter.
                if let Some(Value::Object(m)) = &mut body {
                    for field in ["username", "hardware_id"] {
                        if let Some(Value::String(s)) = m.get_mut(field)
                            && s == "probe"
                        {
                            *s = format!("probe-{}", unique());
                        }
                    }
                }
                let (got, v) = w.h.call(method, url, token, body).await;
                if got.as_u16() != *want {
                    failures.push(format!("{key} as {role}: expected {want}, got {got}: {v}"));
                }
            }
        }
    }
    (failures, covered)
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_matrix_says() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    let records = matrix_records(&w).await;
    let table: BTreeMap<&str, (String, Option<Value>, [u16; 7])> = matrix_rows(&w, &records)
        .await
        .into_iter()
        .map(|(k, path, body, expect)| (k, (path, body, expect)))
        .collect();
    let (failures, covered) = ask_every_route_as_every_role(&w, &table).await;
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(covered, table.len(), "rows for routes that no longer exist");
    r.shutdown().await;
}

#[tokio::test]
async fn reads_are_scoped_to_assigned_cases_and_audited_with_their_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    let own = &w.tokens["officer_own"];
    let other = &w.tokens["officer_other"];
    // Officer B sees neither case A's alert nor its positions.
    let (_, alerts) = w.h.get("/api/v1/alerts", other).await;
    assert_eq!(alerts.as_array().map(Vec::len), Some(0), "{alerts}");
    let (_, latest) = w.h.get("/api/v1/positions/latest", other).await;
    assert_eq!(latest.as_array().map(Vec::len), Some(0), "{latest}");
    let (_, latest) = w.h.get("/api/v1/positions/latest", own).await;
    assert_eq!(latest.as_array().map(Vec::len), Some(1), "{latest}");
    // History needs a purpose.
    let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let bare = format!("/api/v1/devices/{}/track?from={from}&to={to}", w.device_a);
    let (s, v) = w.h.get(&bare, own).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, v) = w.h.get(&format!("{bare}&{PURPOSE}"), own).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    // The auditor sees both attempts: the refusal, then the read with its purpose.
    let (s, log) =
        w.h.get("/api/v1/audit?limit=5000", &w.tokens["auditor"])
            .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let tracks: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "read_track")
        .collect();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    assert_eq!(tracks[0]["outcome"], "denied");
    assert_eq!(tracks[1]["outcome"], "allowed");
    assert_eq!(tracks[1]["purpose_code"], "alert_response");
    assert_eq!(tracks[1]["case_id"], w.case_a);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "login" && r["actor_role"] == "monitoring_officer")
    );
    // The administrator manages accounts but sees no case data.
    let (s, _) = w.h.get("/api/v1/positions/latest", ADMIN).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    r.shutdown().await;
}

#[tokio::test]
async fn an_offender_reads_the_health_of_his_own_devices_only() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    let (s, phone) = w
        .h
        .post(
            "/api/v1/devices",
            ADMIN,
            json!({"kind": "victim_phone", "protocol": "osmand", "hardware_id": "victim-a-phone", "owner_id": w.victim_a, "token": "victim-a-phone-token-health-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{phone}");
    let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let url = |dev: &Value| format!("/api/v1/devices/{dev}/health?from={from}&to={to}");
    let (s, _) = w.h.get(&url(&phone["id"]), &w.tokens["offender"]).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "nothing about her device reaches him"
    );
    let (s, _) =
        w.h.get(&url(&json!(w.device_a)), &w.tokens["offender"])
            .await;
    assert_eq!(s, StatusCode::OK, "his own monitor");
    let (s, _) = w.h.get(&url(&phone["id"]), &w.tokens["victim"]).await;
    assert_eq!(s, StatusCode::OK, "her own phone");
    let (s, _) = w.h.get(&url(&phone["id"]), &w.tokens["officer_own"]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) =
        w.h.get(&url(&phone["id"]), &w.tokens["officer_other"])
            .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    r.shutdown().await;
}

#[tokio::test]
async fn log_in_locks_out_after_five_failures_and_log_out_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let h = Http::new(&r);
    h.account("pat", "monitoring_officer", None).await;
    let token = h.login("pat").await;
    let (s, me) = h.get("/api/v1/auth/me", &token).await;
    assert_eq!(
        (s, me["role"].as_str()),
        (StatusCode::OK, Some("monitoring_officer"))
    );
    let (s, _) = h.post("/api/v1/auth/logout", &token, Value::Null).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = h.get("/api/v1/auth/me", &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a revoked session is refused");

    // Disabling an account ends its sessions and refuses new log-ins.
    let id = h.account("lee", "police", None).await;
    let lee = h.login("lee").await;
    let (s, _) = h
        .call(
            "post",
            &format!("/api/v1/accounts/{id}/disable"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = h.get("/api/v1/auth/me", &lee).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h
        .call(
            "post",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "lee", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let wrong = json!({"username": "pat", "password": "not the password"});
    for i in 0..4 {
        let (s, _) = h
            .call("post", "/api/v1/auth/login", None, Some(wrong.clone()))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // The fifth failure locks the account; now even the right password is refused.
    let (s, _) = h
        .call("post", "/api/v1/auth/login", None, Some(wrong))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = h
        .call(
            "post",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "pat", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("login_locked"))
    );
    r.shutdown().await;
}

/// A client whose connections come from `source` (any 127/8 address reaches the server).
fn from(r: &server::Running, source: [u8; 4]) -> Http {
    Http {
        http: reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(source))
            .build()
            .unwrap(),
        base: harness::base(r),
    }
}

/// (status, error code) of a log-in attempt.
async fn try_login(h: &Http, username: &str, password: &str) -> (u16, String) {
    let (s, v) = h
        .call(
            "post",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await;
    (
        s.as_u16(),
        v["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn failures_elsewhere_never_lock_an_officer_out_and_unknown_users_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let desk = from(&r, [127, 0, 0, 1]);
    desk.account("kim", "monitoring_officer", None).await;

    // Someone elsewhere types her username with wrong passwords until backed off.
    let attacker = from(&r, [127, 0, 0, 2]);
    let mut answers = Vec::new();
    for _ in 0..7 {
        answers.push(try_login(&attacker, "kim", "not her password").await);
    }
    let unauthorized = (401, "unauthorized".to_owned());
    let throttled = (429, "login_locked".to_owned());
    assert_eq!(answers[..5], vec![unauthorized.clone(); 5]);
    assert_eq!(answers[5..], vec![throttled.clone(); 2]);
    // From there even her password is refused for now; at her desk she logs in.
    assert_eq!(try_login(&attacker, "kim", PASSWORD).await, throttled);
    assert_eq!(try_login(&desk, "kim", PASSWORD).await.0, 200);

    // A username that exists and one that does not get the same answers, in the same order.
    let (a, b) = (from(&r, [127, 0, 0, 3]), from(&r, [127, 0, 0, 4]));
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..7 {
        known.push(try_login(&a, "kim", "wrong password").await);
        unknown.push(try_login(&b, "no-such-user", "wrong password").await);
    }
    assert_eq!(known, unknown);
    assert_eq!(known[5], throttled, "unknown usernames are throttled too");

    // One place guessing many usernames is backed off whatever it names; not the desk.
    let sprayer = from(&r, [127, 0, 0, 5]);
    for i in 0..20 {
        assert_eq!(
            try_login(&sprayer, &format!("guess{i}"), "password1").await,
            unauthorized
        );
    }
    assert_eq!(try_login(&sprayer, "kim", PASSWORD).await, throttled);
    assert_eq!(try_login(&desk, "kim", PASSWORD).await.0, 200);
    r.shutdown().await;
}

#[tokio::test]
async fn staff_who_enrolled_totp_need_a_fresh_code() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let h = Http::new(&r);
    let (s, v) = h
        .post(
            "/api/v1/accounts",
            ADMIN,
            json!({"username": "sam", "password": PASSWORD, "role": "auditor", "totp": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let secret = audit::from_hex(v["totp_secret"].as_str().unwrap()).unwrap();
    let login = |code: Option<String>| {
        let h = h.clone();
        async move {
            h.call(
                "post",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "sam", "password": PASSWORD, "totp": code})),
            )
            .await
            .0
        }
    };
    assert_eq!(login(None).await, StatusCode::UNAUTHORIZED);
    let now = domain::UnixMicros(jiff::Timestamp::now().as_microsecond());
    let code = access::totp::code_at(&secret, now);
    assert_eq!(login(Some(code.clone())).await, StatusCode::OK);
    assert_eq!(
        login(Some(code)).await,
        StatusCode::UNAUTHORIZED,
        "a code is accepted once"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn audit_verify_finds_a_row_edited_with_raw_sql() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    let (s, _) = w.h.get("/api/v1/snapshot", &w.tokens["officer_own"]).await;
    assert_eq!(s, StatusCode::OK);
    r.shutdown().await;

    // Shutdown signed a checkpoint at the head: the untouched log verifies.
    let report = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.lines());
    assert!(report.report.records > 5);
    assert_eq!(report.report.unsigned_tail, 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(server::audit_log::KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Someone with database access rewrites who did what in record 3, keeping its hashes.
    let db = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let blob: Vec<u8> = db
        .query_row("SELECT record FROM audit_log WHERE seq = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut rec = audit::AuditRecord::from_bytes(&blob).unwrap();
    rec.entry.details = "nothing to see here".into();
    db.execute(
        "UPDATE audit_log SET record = ?1 WHERE seq = 3",
        [rec.to_bytes()],
    )
    .unwrap();
    drop(db);

    let report = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(!report.ok());
    assert_eq!(
        report.report.first_bad().map(|p| p.seq()),
        Some(3),
        "{:?}",
        report.lines()
    );
}

#[tokio::test]
async fn removing_the_newest_records_with_their_checkpoints_is_caught_by_the_head_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    // Past a periodic checkpoint (every 100 records), and some beyond it.
    for _ in 0..150 {
        let (s, _) = w.h.get("/api/v1/cases", &w.tokens["officer_own"]).await;
        assert_eq!(s, StatusCode::OK);
    }
    r.shutdown().await;
    let head = dir.path().join(server::audit_log::HEAD_FILE);
    let server::audit_log::HeadFile::Checkpoint(anchored) =
        server::audit_log::read_head_file(dir.path())
    else {
        panic!("shutdown wrote the head file beside the key");
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&head).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let db = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let (last, checkpoints): (i64, i64) = db
        .query_row(
            "SELECT (SELECT max(seq) FROM audit_log), (SELECT count(*) FROM audit_checkpoints)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(anchored.seq, last as u64, "the file holds the head");
    assert!(
        last > 120 && checkpoints >= 2,
        "{last} records, {checkpoints} checkpoints"
    );
    let report = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.lines());

    // Someone with database access removes the newest 20 records and the database's
    // shutdown checkpoint: what the database holds is consistent in itself.
    let cut = last - 20;
    db.execute("DELETE FROM audit_log WHERE seq > ?1", [cut])
        .unwrap();
    db.execute("DELETE FROM audit_checkpoints WHERE seq > ?1", [cut])
        .unwrap();
    drop(db);
    let report = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(!report.ok(), "{:?}", report.lines());
    assert_eq!(
        report.report.first_bad(),
        Some(&audit::Problem::Truncated {
            last_seq: Some(cut as u64),
            checkpoint_seq: last as u64
        }),
        "{:?}",
        report.lines()
    );
    // Without the file the same database verifies: the file is what catches it.
    let saved = std::fs::read(&head).unwrap();
    std::fs::remove_file(&head).unwrap();
    let report = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.lines());
    std::fs::write(&head, saved).unwrap();

    // At start-up too.
    let r = start(dir.path()).await;
    let (_, health) = w.h.clone().rebase(&r).get("/healthz", ADMIN).await;
    assert_eq!(health["audit_chain"], "broken", "{health}");
    r.shutdown().await;
}

#[tokio::test]
async fn a_data_directory_without_a_head_file_gets_one_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    r.shutdown().await;
    let head = dir.path().join(server::audit_log::HEAD_FILE);
    std::fs::remove_file(&head).unwrap();
    let report = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(
        report.ok(),
        "an older data directory verifies: {:?}",
        report.lines()
    );
    assert_eq!(report.head_file, server::audit_log::HeadFile::Missing);
    let r = start(dir.path()).await;
    let (_, health) = w.h.clone().rebase(&r).get("/healthz", ADMIN).await;
    assert_eq!(health["audit_chain"], "ok", "{health}");
    assert!(
        matches!(
            server::audit_log::read_head_file(dir.path()),
            server::audit_log::HeadFile::Checkpoint(_)
        ),
        "anchored at start-up, before any shutdown"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn the_token_in_the_query_works_on_the_live_streams_only_and_answers_carry_hardening_headers()
{
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    let officer = w.tokens["officer_own"].clone();
    let raw = |path: String| {
        let h = w.h.clone();
        async move {
            h.http
                .get(format!("{}{path}", h.base))
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .unwrap()
        }
    };
    // Where a browser cannot send a header: the token in the query is accepted.
    let live = raw(format!("/api/v1/live?access_token={officer}")).await;
    assert_eq!(live.status(), StatusCode::OK);
    drop(live);
    let ws = raw(format!("/api/v1/live/ws?access_token={officer}")).await;
    assert_eq!(
        ws.status(),
        StatusCode::UPGRADE_REQUIRED,
        "decided as the officer"
    );
    // Everywhere else it is ignored (as if no token had been sent).
    for path in [
        "/api/v1/cases",
        "/api/v1/alerts",
        "/api/v1/auth/me",
        "/api/v1/live/x",
    ] {
        let res = raw(format!("{path}?access_token={officer}")).await;
        assert!(
            matches!(
                res.status(),
                StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND
            ),
            "{path}: {}",
            res.status()
        );
        let res = raw(format!("{path}?access_token={ADMIN}")).await;
        assert_ne!(
            res.status(),
            StatusCode::OK,
            "{path} with the admin token in the query"
        );
    }

    // Every answer: API, error, page.
    for (path, token) in [
        ("/api/v1/cases", Some(officer.as_str())),
        ("/api/v1/cases", None),
        ("/api/v1/no-such-route", None),
        ("/healthz", None),
        ("/", None),
        ("/app/", None),
    ] {
        let mut req = w.h.http.get(format!("{}{path}", w.h.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let h = res.headers();
        let get = |name: &str| {
            h.get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let csp = get("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self';",
            "connect-src 'self'",
            "worker-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "https://tile.openstreetmap.org",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(
            get("referrer-policy"),
            "strict-origin-when-cross-origin",
            "{path}"
        );
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        if path != "/" && path != "/app/" {
            assert_eq!(get("cache-control"), "no-store", "{path}");
        }
    }
    r.shutdown().await;
}

/// How many of the victim's "who viewed my data" entries are by `username`.
async fn viewed_by(w: &World, username: &str) -> usize {
    let (s, log) = w.h.get("/api/v1/me/access-log", &w.tokens["victim"]).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_name"] == username)
        .count()
}

#[tokio::test]
async fn an_edit_of_case_id_alone_is_caught_by_verify_and_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    let seen = viewed_by(&w, "officer-a").await;
    assert!(seen >= 1, "the officer's reads of case A are in her view");
    r.shutdown().await;
    assert!(
        server::audit_log::verify_data_dir(dir.path())
            .await
            .unwrap()
            .ok()
    );

    // Someone with database access moves the officer's last read of case A to another
    // case, touching only the indexed column the views filter on (the record blob, with
    // its hashes, stays as it was).
    let db = rusqlite::Connection::open(dir.path().join("bulwark.db")).unwrap();
    let seq: i64 = db
        .query_row(
            "SELECT max(seq) FROM audit_log WHERE case_id = ?1 AND actor_id = ?2",
            [w.case_a, w.officer_a],
            |r| r.get(0),
        )
        .unwrap();
    let changed = db
        .execute(
            "UPDATE audit_log SET case_id = 999999 WHERE seq = ?1",
            [seq],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    // `bulwark audit verify` (this function is what it prints) names the row.
    let report = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(!report.ok(), "{:?}", report.lines());
    let lines = report.lines().join("\n");
    assert!(
        lines.contains(&format!("seq {seq}: the indexed column case_id")),
        "{lines}"
    );

    // At start-up the server finds it too, and says so in /healthz; the edit did hide the
    // read from her view (which is what the check exists for).
    let r = start(dir.path()).await;
    let (s, health) = w.h.clone().rebase(&r).get("/healthz", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(health["audit_chain"], "broken", "{health}");
    let w = World {
        h: w.h.rebase(&r),
        ..w
    };
    assert_eq!(viewed_by(&w, "officer-a").await, seen - 1);
    r.shutdown().await;
}

const PHONE_A: &str = "victim-a-phone-token-000001";

/// Case A gets an order (600 m disclosure radius) and the victim a phone that reports
/// through the native door.
async fn order_and_phone(w: &World) {
    let (s, v) = w
        .h
        .post(
            "/api/v1/orders",
            &w.tokens["officer_own"],
            json!({"case_id": w.case_a, "kind": "provisional_measure", "valid_from": "2026-01-01T00:00:00Z",
                   "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0,
                   "zones": [{"kind": "home", "label": "her home", "shape": {"type": "circle", "lat": 37.51, "lon": 127.0, "radius_m": 50.0}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = w
        .h
        .post(
            "/api/v1/devices",
            ADMIN,
            json!({"kind": "victim_phone", "protocol": "native", "hardware_id": "phone-a", "owner_id": w.victim_a, "token": PHONE_A}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// Moves the victim to `metres_north` of the offender's fix (37.5, 127.0).
async fn victim_at(w: &World, seq: i64, metres_north: f64) {
    let time = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seq)).to_string();
    let (s, v) = w
        .h
        .post(
            "/api/v1/ingest/batch",
            PHONE_A,
            json!({"fixes": [{"seq": seq, "time": time, "lat": 37.5 + metres_north / 111_195.0, "lon": 127.0, "accuracy_m": 10.0}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_victim_sees_the_offender_only_inside_her_disclosure_radius() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    order_and_phone(&w).await;
    let victim = &w.tokens["victim"];
    let (s, v) = w.h.get("/api/v1/me/case", victim).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["offender"], "unknown", "her position is not known yet");
    assert_eq!(v["orders"][0]["zones"][0]["label"], "her home");

    victim_at(&w, 1, 5_000.0).await;
    let (_, v) = w.h.get("/api/v1/me/case", victim).await;
    assert_eq!(v["offender"], "not_nearby", "{v}");

    victim_at(&w, 2, 300.0).await;
    let (_, v) = w.h.get("/api/v1/me/case", victim).await;
    let d = v["offender"]["distance_m"]
        .as_f64()
        .expect("a distance inside the radius");
    assert!((d - 300.0).abs() < 2.0, "{v}");
    assert_eq!(v["offender"]["lat"], 37.5);
    assert!(v["offender"]["device_time"].is_string());

    // Her views of his position are in the access log.
    let (_, log) =
        w.h.get("/api/v1/audit?limit=5000", &w.tokens["auditor"])
            .await;
    let reads = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "read_position" && r["actor_role"] == "victim")
        .count();
    assert!(reads >= 3, "{log}");
    r.shutdown().await;
}

/// Every request the offender can send, generated from the OpenAPI route table (like the
/// access matrix), so a new route is covered without a new line here: every method of every
/// path, each path once per id of the world when it names one (his device, her phone, the
/// order, the alert, the case; another's id gives an error body, which must not depend on
/// her either), with the query a history read needs, and `{}` as the body of a write (its
/// error, or its answer, must not depend on her). Log-out is left out: it would end the
/// session the other requests use.
fn offender_requests(ids: &[i64], query: &str) -> Vec<(String, String)> {
    let doc = serde_json::to_value(server::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if path == "/api/v1/auth/logout" {
                continue;
            }
            if path.contains("{id}") {
                for id in ids {
                    let url = format!("{}?{query}", path.replace("{id}", &id.to_string()));
                    out.push((method.clone(), url));
                }
            } else {
                out.push((method.clone(), format!("{path}?{query}")));
            }
        }
    }
    out
}

/// What a route answers to him, byte for byte (status and body).
async fn raw_answer(w: &World, (method, url): &(String, String)) -> (u16, String) {
    let url = format!("{}{url}", w.h.base);
    let req = match method.as_str() {
        "get" => w.h.http.get(url),
        "post" => w.h.http.post(url).json(&json!({})),
        "put" => w.h.http.put(url).json(&json!({})),
        "delete" => w.h.http.delete(url).json(&json!({})),
        other => panic!("no client for method {other}"),
    };
    let r = req
        .bearer_auth(&w.tokens["offender"])
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn an_offenders_answer_never_depends_on_where_she_is() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    order_and_phone(&w).await;
    let ids = ids_he_could_name(&w).await;
    subscribe_him_to_push(&w).await;
    let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    let requests = offender_requests(&ids, &format!("from={from}&to={to}&{PURPOSE}"));
    assert!(requests.len() > 80, "{requests:?}");

    let mut first = Vec::new();
    for request in &requests {
        first.push(raw_answer(&w, request).await);
    }
    nothing_he_reaches_names_her_places(&w, &requests, &first).await;
    answers_stay_the_same_as_she_moves(&w, &requests, &first).await;
    nothing_was_queued_for_him(&w, dir.path()).await;
    alerts_and_live_streams_refuse_him(&w).await;
    r.shutdown().await;
}

/// The ids of every device, his order, an alert and a case: what he could put in a URL.
async fn ids_he_could_name(w: &World) -> Vec<i64> {
    let (_, orders) = w.h.get("/api/v1/orders", &w.tokens["officer_own"]).await;
    let order = orders[0]["id"].as_i64().unwrap();
    let (_, devices) = w.h.get("/api/v1/devices", ADMIN).await;
    let ids: Vec<i64> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .chain([order, w.alert_a, w.case_a])
        .collect();
    ids
}

async fn subscribe_him_to_push(w: &World) {
    // His push subscription: nothing that notifies may ever be queued for it.
    let (s, _) = w
        .h
        .post(
            "/api/v1/me/push-subscriptions",
            &w.tokens["offender"],
            json!({"endpoint": "http://127.0.0.1:9/push/offender", "keys": {
                "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
                "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

async fn nothing_he_reaches_names_her_places(
    w: &World,
    requests: &[(String, String)],
    first: &[(u16, String)],
) {
    let (_, case) = w.h.get("/api/v1/me/case", &w.tokens["offender"]).await;
    assert_eq!(case["own_position"]["lat"], 37.5, "{case}");
    // Nothing he can reach names or draws her places: the zone is "her home", a 50 m circle
    // centred on 37.51, 127.0.
    for ((_, url), (_, body)) in requests.iter().zip(first) {
        for leak in ["her home", "37.51", "\"radius_m\"", "\"zones\":[{"] {
            assert!(!body.contains(leak), "{url} tells him {leak:?}: {body}");
        }
    }
    let orders_of_his = first[requests
        .iter()
        .position(|(m, u)| m == "get" && u.starts_with("/api/v1/orders?"))
        .unwrap()]
    .clone();
    assert_eq!(
        orders_of_his.0, 200,
        "he reads his orders: {orders_of_his:?}"
    );
    assert!(
        orders_of_his.1.contains("\"zones\":[]"),
        "{orders_of_his:?}"
    );
}

async fn answers_stay_the_same_as_she_moves(
    w: &World,
    requests: &[(String, String)],
    first: &[(u16, String)],
) {
    // Far away, just outside and inside her radius, inside the no-approach distance, and
    // back: every answer is the same every time.
    for (seq, metres) in [
        (1, 5_000.0),
        (2, 601.0),
        (3, 599.0),
        (4, 40.0),
        (5, 0.0),
        (6, 3_000.0),
    ] {
        victim_at(w, seq, metres).await;
        for (request, before) in requests.iter().zip(first) {
            let now = raw_answer(w, request).await;
            assert_eq!(
                &now, before,
                "her being {metres} m away changed {request:?}"
            );
        }
    }
}

async fn nothing_was_queued_for_him(w: &World, dir: &std::path::Path) {
    // Her approach raised an alert (so the push check below is not vacuous) and nothing was
    // queued for him: no push, and no webhook names him as a recipient.
    assert!(
        proximity_alert_raised(w).await,
        "the approach raised a proximity alert"
    );
    let db = rusqlite::Connection::open(dir.join("bulwark.db")).unwrap();
    let his: i64 = db
        .query_row(
            "SELECT count(*) FROM outbox WHERE endpoint IN
                 (SELECT 'push:' || s.id FROM push_subscriptions s JOIN accounts a ON a.id = s.account_id
                  WHERE a.role = 'offender')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(his, 0, "a push to the offender was queued");
    drop(db);
}

async fn alerts_and_live_streams_refuse_him(w: &World) {
    // Alerts and the live streams would tell him when he is near her: refused.
    for url in ["/api/v1/alerts", "/api/v1/live", "/api/v1/live/ws"] {
        let (s, _) = w.h.get(url, &w.tokens["offender"]).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{url}");
    }
}

#[tokio::test]
async fn an_evidence_bundle_carries_only_the_cases_records_and_her_positions_where_needed() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    order_and_phone(&w).await;
    // Case B is read by its officer: records about another case in the log.
    for _ in 0..5 {
        let (s, _) = w.h.get("/api/v1/cases", &w.tokens["officer_other"]).await;
        assert_eq!(s, StatusCode::OK);
    }
    // Her phone half an hour ago, far from him (no alert), then 40 m from him now.
    let earlier = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30)).to_string();
    let (s, v) = w
        .h
        .post(
            "/api/v1/ingest/batch",
            PHONE_A,
            json!({"fixes": [{"seq": 100, "time": earlier, "lat": 37.6123456, "lon": 127.0, "accuracy_m": 10.0}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    victim_at(&w, 1, 40.0).await;
    assert!(
        proximity_alert_raised(&w).await,
        "her approach raised a proximity alert"
    );
    r.shutdown().await;

    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("bundle");
    let now = domain::UnixMicros(jiff::Timestamp::now().as_microsecond());
    export_case(
        dir.path(),
        &w,
        "court request 2026-17 for the breach",
        &bundle,
        now,
    )
    .await
    .unwrap();

    // Her positions: only the one the breach needs, rounded to 1e-4 degrees.
    let fixes = std::fs::read_to_string(bundle.join("fixes.csv")).unwrap();
    let hers: Vec<&str> = fixes
        .lines()
        .filter(|l| l.contains(",protected,"))
        .collect();
    assert_eq!(hers.len(), 1, "{fixes}");
    assert!(hers[0].contains("37.5004,"), "{fixes}");
    assert!(
        !fixes.contains("37.612"),
        "her position half an hour earlier: {fixes}"
    );
    assert!(fixes.lines().any(|l| l.contains(",offender,")), "{fixes}");

    // The log: every full record is about case A; the rest are links, and there are some.
    let audit = std::fs::read_to_string(bundle.join("audit.jsonl")).unwrap();
    assert!(audit.lines().count() > 3);
    for line in audit.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["case_id"], w.case_a, "{line}");
    }
    let links = std::fs::read_to_string(bundle.join("audit-links.jsonl")).unwrap();
    assert!(
        links.lines().count() >= 5,
        "case B's reads are links: {links}"
    );
    assert!(
        !links.contains("case_id") && !links.contains("details"),
        "{links}"
    );
    let log = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(log.ok(), "{:?}", log.lines());
}

/// Waits (polling, no timed assertion) for a proximity alert (violation, warning or notice)
/// in case A.
async fn proximity_alert_raised(w: &World) -> bool {
    for _ in 0..100 {
        let (_, alerts) = w.h.get("/api/v1/alerts", &w.tokens["officer_own"]).await;
        if alerts.as_array().unwrap().iter().any(|a| {
            a["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("proximity"))
        }) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Exports case A over the hour either side of `now` into `bundle`; on success the bundle
/// verifies with the data directory's key.
async fn export_case(
    data_dir: &Path,
    w: &World,
    reason: &str,
    bundle: &Path,
    now: domain::UnixMicros,
) -> Result<(), server::evidence::EvidenceError> {
    let window = (now.plus_secs(-3_600), now.plus_secs(3_600));
    server::evidence::export(
        data_dir,
        domain::CaseId(w.case_a),
        window,
        reason,
        bundle,
        now,
    )
    .await?;
    let report = server::evidence::verify(bundle, data_dir).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    Ok(())
}

#[tokio::test]
async fn an_evidence_export_is_logged_signed_and_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    order_and_phone(&w).await;
    victim_at(&w, 1, 300.0).await;
    r.shutdown().await;

    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("bundle");
    let now = domain::UnixMicros(jiff::Timestamp::now().as_microsecond());
    let window = (now.plus_secs(-3_600), now.plus_secs(3_600));
    let too_short = export_case(dir.path(), &w, "court", &bundle, now).await;
    assert!(too_short.is_err(), "a reason is required");
    export_case(
        dir.path(),
        &w,
        "court request 2026-17 for the SOS",
        &bundle,
        now,
    )
    .await
    .unwrap();
    let fixes = std::fs::read_to_string(bundle.join("fixes.csv")).unwrap();
    assert!(
        fixes.lines().count() >= 3,
        "offender and victim fixes: {fixes}"
    );
    let orders = std::fs::read_to_string(bundle.join("orders.json")).unwrap();
    assert!(
        !orders.contains("her home"),
        "zone labels stay out: {orders}"
    );
    // The export is in the log, and the log still verifies.
    let log = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(log.ok(), "{:?}", log.lines());
    // Evidence is never overwritten; a changed file is caught.
    assert!(
        server::evidence::export(
            dir.path(),
            domain::CaseId(w.case_a),
            window,
            "a second export here",
            &bundle,
            now
        )
        .await
        .is_err()
    );
    std::fs::write(bundle.join("fixes.csv"), fixes.replace("37.5", "37.6")).unwrap();
    let report = server::evidence::verify(&bundle, dir.path()).unwrap();
    assert!(!report.ok());
}

#[tokio::test]
async fn the_retention_purge_deletes_only_what_the_policy_releases_and_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    order_and_phone(&w).await;
    r.shutdown().await;

    let now = domain::UnixMicros(jiff::Timestamp::now().as_microsecond());
    let store = store::Store::open(dir.path()).unwrap();
    let devices = store.list_devices().await.unwrap();
    let phone = devices
        .iter()
        .find(|d| d.hardware_id == "phone-a")
        .unwrap()
        .id;
    let fix = |device, hours_ago: i64| domain::Fix {
        id: None,
        device_id: device,
        device_time: now.plus_secs(-hours_ago * 3_600),
        received_time: now.plus_secs(-hours_ago * 3_600),
        position: domain::LatLon::new(37.51, 127.0).unwrap(),
        accuracy_m: Some(10.0),
        speed_mps: None,
        course_deg: None,
        altitude_m: None,
        source: domain::FixSource::Gnss,
        flags: domain::FixFlags::default(),
        seq: Some(1_000 + hours_ago),
    };
    // Hers: 100 h old (past 72 h, before the SOS incident window) and 1 h old (kept).
    // His: 100 h old, kept while his order is open-ended.
    store
        .insert_fixes(vec![
            fix(phone, 100),
            fix(phone, 1),
            fix(domain::DeviceId(w.device_a), 100),
        ])
        .await
        .unwrap();
    let before = store.count_fixes().await.unwrap();
    store.close();

    let policy = server::retention::RetentionPolicy::default();
    let dry = server::retention::purge_data_dir(dir.path(), policy, now, true)
        .await
        .unwrap();
    assert_eq!(dry.deleted, 0);
    assert_eq!(dry.windows.len(), 1, "only her phone: {:?}", dry.windows);
    let done = server::retention::purge_data_dir(dir.path(), policy, now, false)
        .await
        .unwrap();
    assert_eq!(done.deleted, 1);

    let store = store::Store::open(dir.path()).unwrap();
    assert_eq!(store.count_fixes().await.unwrap(), before - 1);
    let log = store.audit_records(0, 10_000).await.unwrap();
    let purge = log
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .find(|r| r.entry.action == audit::AuditAction::Purge)
        .expect("a purge record");
    assert!(
        purge.entry.details.ends_with("fixes deleted: 1"),
        "{}",
        purge.entry.details
    );
    store.close();
    let report = server::audit_log::verify_data_dir(dir.path())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.lines());
}

#[tokio::test]
async fn police_see_a_case_once_an_alert_is_dispatched_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    let police_id = w.h.account("police-1", "police", None).await;
    let police = w.h.login("police-1").await;
    let (s, alerts) = w.h.get("/api/v1/alerts", &police).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        alerts.as_array().map(Vec::len),
        Some(0),
        "nothing before dispatch"
    );

    let state = format!("/api/v1/alerts/{}/state", w.alert_a);
    let own = &w.tokens["officer_own"];
    let (s, v) =
        w.h.post(
            &state,
            own,
            json!({"state": "dispatched", "police_account_id": w.officer_a}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_reference")),
        "an officer is not police"
    );
    let (s, v) =
        w.h.post(
            &state,
            own,
            json!({"state": "dispatched", "police_account_id": police_id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, alerts) = w.h.get("/api/v1/alerts", &police).await;
    assert_eq!(alerts[0]["id"], w.alert_a, "{alerts}");
    let (_, latest) = w.h.get("/api/v1/positions/latest", &police).await;
    assert_eq!(latest.as_array().map(Vec::len), Some(1), "{latest}");
    // Resolving keeps the grant for its grace period (its end is the pure crate's rule,
    // tested there with explicit times).
    let (s, _) =
        w.h.post(
            &state,
            own,
            json!({"state": "resolved", "cause": "true_violation"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, alerts) = w.h.get("/api/v1/alerts?active=false", &police).await;
    assert_eq!(alerts[0]["id"], w.alert_a);
    r.shutdown().await;
}

#[tokio::test]
async fn a_judge_assigned_a_case_reads_its_orders_but_never_positions() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let w = world(&r).await;
    order_and_phone(&w).await;
    let judge_id = w.h.account("judge-1", "judge", None).await;
    let (s, v) =
        w.h.post(
            &format!("/api/v1/accounts/{judge_id}/assignments"),
            ADMIN,
            json!({"case_id": w.case_a}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let judge = w.h.login("judge-1").await;
    let (s, orders) = w.h.get("/api/v1/orders", &judge).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(orders.as_array().map(Vec::len), Some(1), "{orders}");
    for path in ["/api/v1/positions/latest", "/api/v1/alerts", "/api/v1/live"] {
        let (s, _) = w.h.get(path, &judge).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
    }
    r.shutdown().await;
}
