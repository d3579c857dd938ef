//! The ingest rule over real sockets, for every door: **a frame Bulwark cannot turn into
//! stored data is never acknowledged, or it is stored raw (an `unknown_frames` row) before the
//! ack** (ARCHITECTURE.md). Each protocol gets a frame type it does not know.
//!
//! How "never acknowledged" is checked without a timed assertion: after the unknown frame the
//! device sends a frame Bulwark knows, and the next bytes it reads must be that frame's ack.
//! How "before the ack" is checked: as soon as the ack is read, the raw row is already there
//! (the handler stores, then writes the ack).
//!
//! Also here: the device alarms that have no kind of their own reach staff as `device_alarm`
//! alerts (issue 12 item 4), and the phone apps' default request shapes (item 3).

use crate::harness::{self, Api};
use domain::{DeviceId, Protocol, UnixMicros};
use protocols::gt06;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const TOKEN: &str = "test-staff-token-0123456789";
/// Bound on every wait for the server; never an assertion about speed.
const WAIT: Duration = Duration::from_secs(20);

async fn start(dir: &Path) -> server::Running {
    harness::start_with(dir, TOKEN, |config| config.osmand_port = Some(0)).await
}

/// What this module's tests ask of the client.
trait IngestApi {
    async fn device(
        &self,
        kind: &str,
        protocol: &str,
        hardware_id: &str,
        owner: Option<i64>,
    ) -> i64;
    async fn case_with_order(&mut self, protocol: &str, imei: &str) -> i64;
}

impl IngestApi for Api {
    async fn device(
        &self,
        kind: &str,
        protocol: &str,
        hardware_id: &str,
        owner: Option<i64>,
    ) -> i64 {
        self.post(
            "/api/v1/devices",
            json!({"kind": kind, "protocol": protocol, "hardware_id": hardware_id, "owner_id": owner}),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }

    /// An offender wearing `imei`'s ankle monitor, a victim, a case and an order in force, and
    /// an officer assigned to the case (this client acts as the officer afterwards).
    async fn case_with_order(&mut self, protocol: &str, imei: &str) -> i64 {
        let off = self
            .post(
                "/api/v1/people",
                json!({"role": "offender", "display_name": "O"}),
            )
            .await;
        let vic = self
            .post(
                "/api/v1/people",
                json!({"role": "protected", "display_name": "V"}),
            )
            .await;
        let dev = self
            .device("ankle_monitor", protocol, imei, off["id"].as_i64())
            .await;
        let case = self
            .post(
                "/api/v1/cases",
                json!({"reference": format!("C-{imei}"), "offender_id": off["id"], "protected_ids": [vic["id"]]}),
            )
            .await;
        let acct = self
            .post(
                "/api/v1/accounts",
                json!({"username": "officer", "password": "officer-password-1", "role": "monitoring_officer"}),
            )
            .await;
        self.post(
            &format!("/api/v1/accounts/{}/assignments", acct["account"]["id"]),
            json!({"case_id": case["id"]}),
        )
        .await;
        let v = self
            .post(
                "/api/v1/auth/login",
                json!({"username": "officer", "password": "officer-password-1"}),
            )
            .await;
        self.token = v["token"].as_str().unwrap().to_string();
        let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
        let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).to_string();
        self.post(
            "/api/v1/orders",
            json!({"case_id": case["id"], "kind": "restraining_order", "valid_from": from, "valid_to": to,
                   "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0}),
        )
        .await;
        dev
    }
}

async fn unknown_frames(r: &server::Running, device: i64) -> Vec<store::UnknownFrame> {
    r.store
        .unknown_frames(
            &harness::inspect(),
            DeviceId(device),
            UnixMicros(0),
            UnixMicros(i64::MAX),
            100,
        )
        .await
        .unwrap()
}

/// Reads until `want` bytes arrived (or the server closed).
async fn read_n(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < want {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

fn gt06_login(imei: &str) -> Vec<u8> {
    let digits = format!("0{imei}");
    let bcd: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    gt06::encode_frame(false, 0x01, &bcd, 1)
}

fn gt06_heartbeat(serial: u16) -> Vec<u8> {
    gt06::encode_frame(false, 0x13, &[0x44, 0x04, 0x04, 0x00, 0x02], serial)
}

/// A GT06 0x16 alarm frame (GPS, LBS, status) with `alarm` in the status block.
fn gt06_alarm(alarm: u8, serial: u16) -> Vec<u8> {
    let t = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let mut c = vec![
        (t.year() - 2000) as u8,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        0xC9,
    ];
    c.extend(((37.55 * 1_800_000.0) as u32).to_be_bytes());
    c.extend(((126.90 * 1_800_000.0) as u32).to_be_bytes());
    c.push(0);
    c.extend((0x1400u16 | (1 << 12)).to_be_bytes());
    c.extend([0x08, 0x01, 0xC2, 0x05, 0x12, 0x34, 0x00, 0x56, 0x78]); // LBS (length 8)
    c.extend([0x44, 0x04, 0x04, alarm, 0x02]); // info, voltage, GSM, alarm, language
    gt06::encode_frame(false, 0x16, &c, serial)
}

#[tokio::test]
async fn gt06_unknown_frame_is_stored_raw_before_its_ack_and_staff_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut api = Api::new(&r, TOKEN);
    let imei = "359710040000011";
    let dev = api.case_with_order("gt06", imei).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    s.write_all(&gt06_login(imei)).await.unwrap();
    assert_eq!(read_n(&mut s, 10).await, gt06::encode_ack(false, 0x01, 1));
    let unknown = gt06::encode_frame(false, 0xEE, &[0xDE, 0xAD, 0xBE, 0xEF], 7);
    s.write_all(&unknown).await.unwrap();
    assert_eq!(read_n(&mut s, 10).await, gt06::encode_ack(false, 0xEE, 7));
    // The ack has been read: the raw frame is already durable.
    let rows = unknown_frames(&r, dev).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bytes, unknown);
    assert_eq!(rows[0].protocol, Protocol::Gt06);
    // Staff read it through authz, with a purpose (the track's rule).
    let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let url = format!("/api/v1/devices/{dev}/unknown-frames?from={from}&to={to}");
    let (st, _) = api.get(&url).await;
    assert_eq!(st, reqwest::StatusCode::FORBIDDEN, "no purpose, no data");
    let (st, body) = api
        .get(&format!(
            "{url}&purpose_code=supervision&purpose_text=checking%20undecoded%20frames"
        ))
        .await;
    assert_eq!(st, reqwest::StatusCode::OK, "{body}");
    assert_eq!(
        body[0]["bytes_hex"],
        "7878".to_string() + &hex(&unknown[2..])
    );
    assert_eq!(body[0]["protocol"], "gt06");
    r.shutdown().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn gt06_0xa9_sos_over_a_socket_is_acknowledged_only_as_a_stored_sos_event() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut api = Api::new(&r, TOKEN);
    let imei = "359710040000012";
    let dev = api.case_with_order("gt06", imei).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    s.write_all(&gt06_login(imei)).await.unwrap();
    read_n(&mut s, 10).await;
    let t = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let mut c = vec![
        (t.year() - 2000) as u8,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    ];
    c.extend([
        0x01, 0xC2, 0x05, 0x00, 0x01, 0x12, 0x34, 0x00, 0x56, 0x78, 0x40, 0x00,
    ]);
    c.extend([0x01, 0xAA, 0xBB, 0xCC, 0x00, 0x11, 0x22, 0x40, 0x01, 0x01]);
    s.write_all(&gt06::encode_frame(false, 0xA9, &c, 9))
        .await
        .unwrap();
    assert_eq!(read_n(&mut s, 10).await, gt06::encode_ack(false, 0xA9, 9));
    assert!(unknown_frames(&r, dev).await.is_empty(), "decoded, not raw");
    let events = r.store.events_received_since(UnixMicros(0)).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, domain::DeviceEventKind::Sos);
    r.shutdown().await;
}

#[tokio::test]
async fn device_alarms_without_a_kind_of_their_own_reach_staff_as_device_alarm_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut api = Api::new(&r, TOKEN);
    let imei = "359710040000013";
    api.case_with_order("gt06", imei).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    s.write_all(&gt06_login(imei)).await.unwrap();
    read_n(&mut s, 10).await;
    // 0x2C accident, then 0x33 lock: both used to map to nothing a rule saw.
    for (alarm, serial) in [(0x2C, 2), (0x33, 3)] {
        s.write_all(&gt06_alarm(alarm, serial)).await.unwrap();
        assert_eq!(
            read_n(&mut s, 10).await,
            gt06::encode_ack(false, 0x16, serial)
        );
    }
    let events = r.store.events_received_since(UnixMicros(0)).await.unwrap();
    let codes: Vec<_> = events.iter().map(|e| (e.kind, e.code.clone())).collect();
    assert!(
        codes.contains(&(
            domain::DeviceEventKind::DeviceAlarm,
            Some("gt06:accident".into())
        )),
        "{codes:?}"
    );
    assert!(
        codes.contains(&(
            domain::DeviceEventKind::DeviceAlarm,
            Some("gt06:lock".into())
        )),
        "{codes:?}"
    );
    // The engine raises a `device_alarm` alert the case's officer sees, naming the code.
    let mut seen = Value::Null;
    for _ in 0..200 {
        let (_, alerts) = api.get("/api/v1/alerts").await;
        if alerts
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["rule"] == "device_alarm"))
        {
            seen = alerts;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alert = seen
        .as_array()
        .and_then(|a| a.iter().find(|x| x["rule"] == "device_alarm"))
        .cloned()
        .expect("a device_alarm alert");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap_or("")
            .contains("gt06:accident"),
        "{alert}"
    );
    r.shutdown().await;
}

/// Reads one `...#` H02 acknowledgement.
async fn h02_ack(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.contains(&b'#') {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn h02_v1(id: &str) -> Vec<u8> {
    let t = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "*HQ,{id},V1,{:02}{:02}{:02},A,3733.9900,N,12658.6800,E,0.00,0,{:02}{:02}{:02},FFFFFBFF#",
        t.hour(),
        t.minute(),
        t.second(),
        t.day(),
        t.month(),
        t.year() - 2000
    )
    .into_bytes()
}

#[tokio::test]
async fn h02_watch_and_teltonika_unknown_frames_are_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);

    // H02 over TCP: an unknown report type is kept raw and not answered; the next V1 is.
    let h02 = api.device("tracker", "h02", "4210000011", None).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::H02])
        .await
        .unwrap();
    let unknown = b"*HQ,4210000011,ZZ9,1,2,3#".to_vec();
    s.write_all(&unknown).await.unwrap();
    s.write_all(&h02_v1("4210000011")).await.unwrap();
    let ack = h02_ack(&mut s).await;
    assert!(
        ack.starts_with("*HQ,4210000011,V4,V1,"),
        "only the V1 is acknowledged: {ack}"
    );
    let rows = unknown_frames(&r, h02).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bytes, unknown);
    drop(s);

    // Watch: an unknown keyword likewise.
    let watch = api.device("smartwatch", "watch", "8800000011", None).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Watch])
        .await
        .unwrap();
    s.write_all(b"[SG*8800000011*0004*ZZZZ]").await.unwrap();
    s.write_all(b"[SG*8800000011*0002*LK]").await.unwrap();
    let lk = read_n(&mut s, b"[SG*8800000011*0002*LK]".len()).await;
    assert_eq!(lk, b"[SG*8800000011*0002*LK]", "only the LK is answered");
    assert_eq!(unknown_frames(&r, watch).await.len(), 1);
    drop(s);

    // Teltonika over TCP: an unknown codec is refused without an ack (the device keeps the
    // records); the next codec 8 frame is acknowledged with its record count.
    let imei = "356307042441011";
    api.device("tracker", "teltonika", imei, None).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Teltonika])
        .await
        .unwrap();
    let mut login = (imei.len() as u16).to_be_bytes().to_vec();
    login.extend(imei.as_bytes());
    s.write_all(&login).await.unwrap();
    assert_eq!(read_n(&mut s, 1).await, [0x01]);
    s.write_all(&teltonika_tcp(0x99)).await.unwrap();
    s.write_all(&teltonika_tcp(0x08)).await.unwrap();
    assert_eq!(
        read_n(&mut s, 4).await,
        [0, 0, 0, 1],
        "only the codec 8 frame is acknowledged"
    );
    drop(s);

    // Teltonika over UDP: the same, datagram by datagram.
    let imei = "356307042441012";
    api.device("tracker", "teltonika", imei, None).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = r.device_udp_addrs[&Protocol::Teltonika];
    sock.send_to(&teltonika_udp(imei, 0x99, 1), to)
        .await
        .unwrap();
    sock.send_to(&teltonika_udp(imei, 0x08, 2), to)
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("udp reply")
        .unwrap();
    // The reply names its packet id: 2, the codec 8 datagram; 1 was never answered.
    assert_eq!(&buf[..n], &[0x00, 0x05, 0x00, 0x02, 0x01, 0x02, 0x01]);

    // H02 over UDP: an unknown type is stored raw, not answered; the V1 after it is.
    let h02u = api.device("tracker", "h02", "4210000012", None).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = r.device_udp_addrs[&Protocol::H02];
    sock.send_to(b"*HQ,4210000012,ZZ9,1#", to).await.unwrap();
    sock.send_to(&h02_v1("4210000012"), to).await.unwrap();
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("udp reply")
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(reply.starts_with("*HQ,4210000012,V4,V1,"), "{reply}");
    assert_eq!(unknown_frames(&r, h02u).await.len(), 1);
    r.shutdown().await;
}

/// Codec data (codec id, one record now at 37.55 N 126.90 E, count) for `codec`.
fn teltonika_data(codec: u8) -> Vec<u8> {
    let now_ms = (jiff::Timestamp::now().as_millisecond()) as u64;
    let mut d = vec![codec, 1];
    d.extend(now_ms.to_be_bytes());
    d.push(0); // priority
    d.extend(((126.90 * 1e7) as i32).to_be_bytes());
    d.extend(((37.55 * 1e7) as i32).to_be_bytes());
    d.extend(30i16.to_be_bytes()); // altitude
    d.extend(90u16.to_be_bytes()); // angle
    d.push(8); // satellites
    d.extend(0u16.to_be_bytes()); // speed
    d.extend([0, 0, 0, 0, 0, 0]); // event id, total, n1, n2, n4, n8 (codec 8: one byte each)
    d.push(1);
    d
}

fn teltonika_tcp(codec: u8) -> Vec<u8> {
    let data = teltonika_data(codec);
    let mut f = vec![0, 0, 0, 0];
    f.extend((data.len() as u32).to_be_bytes());
    f.extend(&data);
    f.extend(u32::from(protocols::crc16_ibm(&data)).to_be_bytes());
    f
}

fn teltonika_udp(imei: &str, codec: u8, packet: u16) -> Vec<u8> {
    let mut body = packet.to_be_bytes().to_vec();
    body.push(0x01);
    body.push(packet as u8); // AVL packet id
    body.extend((imei.len() as u16).to_be_bytes());
    body.extend(imei.as_bytes());
    body.extend(teltonika_data(codec));
    let mut d = (body.len() as u16).to_be_bytes().to_vec();
    d.extend(body);
    d
}

#[tokio::test]
async fn http_doors_answer_an_unknown_request_with_an_error_or_store_it_raw_first() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let http = reqwest::Client::new();
    let base = format!("http://{}", r.http_addr);
    // Shapes no door knows: an error (4xx), so the app keeps the point; nothing is stored.
    for (path, body) in [
        ("/ingest/osmand", json!({"hello": "world"})),
        ("/ingest/gpslogger", json!({"hello": "world"})),
        ("/ingest/overland", json!({"hello": "world"})),
        (
            "/ingest/owntracks",
            json!({"_type": "waypoint", "desc": "home"}),
        ),
    ] {
        let resp = http
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
    }
    let resp = http
        .post(format!("{base}/api/v1/ingest/batch"))
        .bearer_auth("no-such-device-token")
        .json(&json!({"records": []}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    // OwnTracks from a known phone: a non-location message gets its `[]` only once stored raw.
    let phone = api
        .post(
            "/api/v1/devices",
            json!({"kind": "victim_phone", "protocol": "owntracks", "hardware_id": "alice/phone", "token": "owntracks-secret-0001"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let resp = http
        .post(format!("{base}/ingest/owntracks"))
        .basic_auth("alice", Some("owntracks-secret-0001"))
        .header("X-Limit-U", "alice")
        .header("X-Limit-D", "phone")
        .json(
            &json!({"_type": "transition", "event": "leave", "desc": "home", "tst": 1_764_547_200}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "[]");
    let rows = unknown_frames(&r, phone).await;
    assert_eq!(rows.len(), 1);
    assert!(String::from_utf8_lossy(&rows[0].bytes).contains("transition"));
    assert_eq!(r.store.count_fixes().await.unwrap(), 0);
    r.shutdown().await;
}

#[tokio::test]
async fn a_gt06_heartbeat_is_acknowledged_and_is_not_an_unknown_frame() {
    // The rule concerns frames the decoder could not decode; a heartbeat is decoded (health).
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let imei = "359710040000014";
    let dev = api.device("ankle_monitor", "gt06", imei, None).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    s.write_all(&gt06_login(imei)).await.unwrap();
    read_n(&mut s, 10).await;
    s.write_all(&gt06_heartbeat(2)).await.unwrap();
    assert_eq!(read_n(&mut s, 10).await, gt06::encode_ack(false, 0x13, 2));
    assert!(unknown_frames(&r, dev).await.is_empty());
    r.shutdown().await;
}

/// Issue 12 item 3: what the apps send with their default settings, taken from their source.
/// GPSLogger (mendhak/gpslogger `PreferenceHelper`): method GET, URL
/// `…/log?lat=%LAT&longitude=%LON&time=%TIME&s=%SPD` (`%TIME` is ISO 8601 UTC with
/// milliseconds, `%SPD` m/s), with the user's HTTP Basic credentials. OsmAnd
/// (`OsmandSettings.LIVE_MONITORING_URL`): GET `?lat={0}&lon={1}&timestamp={2}&hdop={3}&altitude={4}&speed={5}`
/// (`{2}` in milliseconds), plus the `id` Traccar's OsmAnd convention needs, on the API port
/// and on the OsmAnd port.
#[tokio::test]
async fn the_default_requests_of_gpslogger_and_osmand_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let http = reqwest::Client::new();
    let gl = api
        .post(
            "/api/v1/devices",
            json!({"kind": "victim_phone", "protocol": "gpslogger", "hardware_id": "gl-default", "token": "gpslogger-secret-0001"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(5);
    let iso = t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let resp = http
        .get(format!(
            "http://{}/ingest/gpslogger?lat=37.55&longitude=126.9&time={iso}&s=1.5",
            r.http_addr
        ))
        .basic_auth("gl-default", Some("gpslogger-secret-0001"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::OK,
        "{:?}",
        resp.text().await
    );
    let fixes = r
        .store
        .track(
            &harness::inspect(),
            DeviceId(gl),
            UnixMicros(0),
            UnixMicros(i64::MAX),
            10,
        )
        .await
        .unwrap();
    assert_eq!(fixes.len(), 1);
    assert_eq!(fixes[0].device_time.0 / 1000, t.as_millisecond());
    assert_eq!(fixes[0].speed_mps, Some(1.5));
    assert!((fixes[0].position.lon() - 126.9).abs() < 1e-9);

    let om = api
        .post(
            "/api/v1/devices",
            json!({"kind": "victim_phone", "protocol": "osmand", "hardware_id": "om-default", "token": "osmand-secret-00001"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    for (n, base) in [r.http_addr, r.osmand_addr.unwrap()].iter().enumerate() {
        let ms = t.as_millisecond() + n as i64 * 1000;
        let resp = http
            .get(format!(
                "http://{base}/ingest/osmand?lat=37.55&lon=126.9&timestamp={ms}&hdop=8.0&altitude=30.0&speed=0.0&id=om-default&token=osmand-secret-00001"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::OK,
            "{base}: {:?}",
            resp.text().await
        );
    }
    let fixes = r
        .store
        .track(
            &harness::inspect(),
            DeviceId(om),
            UnixMicros(0),
            UnixMicros(i64::MAX),
            10,
        )
        .await
        .unwrap();
    assert_eq!(fixes.len(), 2, "one per port");
    assert_eq!(fixes[0].device_time.0 / 1000, t.as_millisecond());
    assert_eq!(fixes[0].altitude_m, Some(30.0));
    r.shutdown().await;
}

/// A GT06 0x12 location at `t` (UTC).
fn gt06_location_at(lat: f64, lon: f64, t: jiff::Timestamp, serial: u16) -> Vec<u8> {
    let z = t.to_zoned(jiff::tz::TimeZone::UTC);
    let mut c = vec![
        (z.year() - 2000) as u8,
        z.month() as u8,
        z.day() as u8,
        z.hour() as u8,
        z.minute() as u8,
        z.second() as u8,
        0xC9,
    ];
    c.extend(((lat * 1_800_000.0) as u32).to_be_bytes());
    c.extend(((lon * 1_800_000.0) as u32).to_be_bytes());
    c.push(0);
    c.extend((0x1400u16 | (1 << 12)).to_be_bytes());
    c.extend([0x01, 0xC2, 0x05, 0x12, 0x34, 0x00, 0x56, 0x78]);
    gt06::encode_frame(false, 0x12, &c, serial)
}

/// Polls the case officer's alerts until one of `rule` appears (bounded by `WAIT`).
async fn alert_of_rule(api: &Api, rule: &str) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let (_, alerts) = api.get("/api/v1/alerts").await;
        if let Some(a) = alerts
            .as_array()
            .and_then(|a| a.iter().find(|x| x["rule"] == rule))
        {
            return Some(a.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn suspect(f: &domain::Fix) -> bool {
    f.flags.has(domain::FixFlags::INTEGRITY_SUSPECT)
}

#[tokio::test]
async fn a_second_live_connection_with_the_same_imei_is_flagged_and_alerts_staff() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut api = Api::new(&r, TOKEN);
    let imei = "359710040000021";
    let dev = api.case_with_order("gt06", imei).await;
    let addr = r.device_addrs[&Protocol::Gt06];
    let mut real = TcpStream::connect(addr).await.unwrap();
    real.write_all(&gt06_login(imei)).await.unwrap();
    read_n(&mut real, 10).await;
    let now = jiff::Timestamp::now();
    real.write_all(&gt06_location_at(37.55, 126.90, now, 2))
        .await
        .unwrap();
    read_n(&mut real, 10).await;
    // Someone else logs in with the same IMEI while the real device is connected: kept (see
    // `Conn::claim_identity`), and the spoofing event is durable before its login ack.
    let mut fake = TcpStream::connect(addr).await.unwrap();
    fake.write_all(&gt06_login(imei)).await.unwrap();
    assert_eq!(
        read_n(&mut fake, 10).await,
        gt06::encode_ack(false, 0x01, 1)
    );
    let events = r.store.events_received_since(UnixMicros(0)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == domain::DeviceEventKind::Spoofing
                && e.code.as_deref() == Some("second_connection")),
        "{events:?}"
    );
    // While both are live, positions from either are flagged.
    let later = now + jiff::SignedDuration::from_secs(10);
    fake.write_all(&gt06_location_at(37.5501, 126.9001, later, 3))
        .await
        .unwrap();
    read_n(&mut fake, 10).await;
    let fixes = r
        .store
        .track(
            &harness::inspect(),
            DeviceId(dev),
            UnixMicros(0),
            UnixMicros(i64::MAX),
            10,
        )
        .await
        .unwrap();
    assert_eq!(fixes.len(), 2);
    assert!(!suspect(&fixes[0]), "before the second connection");
    assert!(suspect(&fixes[1]), "while two connections claim the device");
    let alert = alert_of_rule(&api, "device_spoofing")
        .await
        .expect("a spoofing alert");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap_or("")
            .contains("second_connection"),
        "{alert}"
    );
    // Once the second connection is gone, the device is trusted again.
    drop(fake);
    let mut n = 0;
    loop {
        n += 1;
        let at = later + jiff::SignedDuration::from_secs(10 * n);
        real.write_all(&gt06_location_at(37.5502, 126.9002, at, 3 + n as u16))
            .await
            .unwrap();
        read_n(&mut real, 10).await;
        let fixes = r
            .store
            .track(
                &harness::inspect(),
                DeviceId(dev),
                UnixMicros(0),
                UnixMicros(i64::MAX),
                100,
            )
            .await
            .unwrap();
        if fixes.last().is_some_and(|f| !suspect(f)) || n > 50 {
            assert!(n <= 50, "the claim of a closed connection is released");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.shutdown().await;
}

#[tokio::test]
async fn an_impossible_jump_is_flagged_beside_the_stored_fix_and_alerts_staff() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut api = Api::new(&r, TOKEN);
    let imei = "359710040000022";
    let dev = api.case_with_order("gt06", imei).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    s.write_all(&gt06_login(imei)).await.unwrap();
    read_n(&mut s, 10).await;
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    // 37.55 N → 37.658 N is 12 km; 5 s later: 2,400 m/s. Then back near the start (close to
    // the last sound fix: not flagged), then the far place again, then a fix agreeing with
    // that one (the device really is there now: flagged once, not forever).
    for (lat, dt, serial) in [
        (37.55, 0, 2),
        (37.658, 5, 3),
        (37.5501, 60, 4),
        (37.658, 65, 5),
        (37.6581, 70, 6),
    ] {
        let at = t + jiff::SignedDuration::from_secs(dt);
        s.write_all(&gt06_location_at(lat, 126.90, at, serial))
            .await
            .unwrap();
        assert_eq!(
            read_n(&mut s, 10).await,
            gt06::encode_ack(false, 0x12, serial)
        );
    }
    let fixes = r
        .store
        .track(
            &harness::inspect(),
            DeviceId(dev),
            UnixMicros(0),
            UnixMicros(i64::MAX),
            10,
        )
        .await
        .unwrap();
    assert_eq!(fixes.len(), 5, "every fix stored, none changed");
    assert!(
        (fixes[1].position.lat() - 37.658).abs() < 1e-5,
        "stored as sent"
    );
    assert_eq!(
        fixes.iter().map(suspect).collect::<Vec<_>>(),
        [false, true, false, true, false],
        "each discontinuity is flagged, once"
    );
    let events = r.store.events_received_since(UnixMicros(0)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.code.as_deref() == Some("impossible_jump"))
    );
    let alert = alert_of_rule(&api, "device_spoofing")
        .await
        .expect("a spoofing alert");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap_or("")
            .contains("impossible_jump"),
        "{alert}"
    );
    r.shutdown().await;
}

/// Issue 17 item 5: the phone doors require a device token, and every refusal looks the same.
#[tokio::test]
async fn phone_doors_require_a_token_and_answer_unknown_and_registered_ids_alike() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let http = reqwest::Client::new();
    // Registration refuses a phone protocol without a token.
    let resp = http
        .post(format!("{}/api/v1/devices", api.base))
        .bearer_auth(TOKEN)
        .json(&json!({"kind": "victim_phone", "protocol": "osmand", "hardware_id": "no-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    // A phone registered before tokens were required (written as the old server did).
    let legacy = r
        .store
        .create_device(
            domain::DeviceKind::VictimPhone,
            Protocol::Osmand,
            "legacy-phone".into(),
            None,
            None,
            UnixMicros(0),
        )
        .await
        .unwrap();
    api.post(
        "/api/v1/devices",
        json!({"kind": "victim_phone", "protocol": "osmand", "hardware_id": "tokened-phone", "token": "tokened-phone-secret-1"}),
    )
    .await;
    let ts = jiff::Timestamp::now().as_second();
    let url = |id: &str, token: Option<&str>| {
        let mut url = format!(
            "http://{}/ingest/osmand?id={id}&lat=37.55&lon=126.9&timestamp={ts}",
            r.http_addr
        );
        if let Some(t) = token {
            url.push_str(&format!("&token={t}"));
        }
        url
    };
    let mut answers = Vec::new();
    for (id, token) in [
        ("no-such-phone", None),
        ("no-such-phone", Some("some-guess-0000000")),
        ("legacy-phone", None),
        ("legacy-phone", Some("some-guess-0000000")),
        ("tokened-phone", None),
        ("tokened-phone", Some("some-guess-0000000")),
    ] {
        let resp = http.get(url(id, token)).send().await.unwrap();
        answers.push((resp.status(), resp.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, reqwest::StatusCode::UNAUTHORIZED);
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "one answer for every refusal: {answers:?}"
    );
    assert_eq!(r.store.count_fixes().await.unwrap(), 0);
    // The migration path: an administrator issues the legacy phone a token; then it reports.
    let resp = http
        .post(format!("{}/api/v1/devices/{}/token", api.base, legacy.id.0))
        .bearer_auth(TOKEN)
        .json(&json!({"token": "legacy-phone-secret-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NO_CONTENT);
    let resp = http
        .get(url("legacy-phone", Some("legacy-phone-secret-01")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert_eq!(r.store.count_fixes().await.unwrap(), 1);
    r.shutdown().await;
}
