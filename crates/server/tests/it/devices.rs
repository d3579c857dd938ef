//! Tracker listeners over real TCP (and UDP): the Traccar golden vectors replayed against the
//! running server, unknown devices, garbage, split frames and device commands.
use crate::harness::{self, Api};
use domain::{DeviceEventKind, DeviceId, Protocol, UnixMicros};
use protocols::{EventKind, Message, StreamItem, StreamSession};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
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
trait DevicesApi {
    async fn login_officer(&mut self, case: &Value);
    async fn device(&self, protocol: &str, hardware_id: &str, owner: Option<i64>) -> i64;
}

impl DevicesApi for Api {
    /// Creates a monitoring officer assigned to `case` and acts as that officer from now on
    /// (orders are the officer's to register; the administrator sees no case data).
    async fn login_officer(&mut self, case: &Value) {
        let acct = self
            .post(
                "/api/v1/accounts",
                json!({"username": "officer", "password": "officer-password-1", "role": "monitoring_officer"}),
            )
            .await;
        let r = self
            .http
            .post(format!(
                "{}/api/v1/accounts/{}/assignments",
                self.base, acct["account"]["id"]
            ))
            .bearer_auth(&self.token)
            .json(&json!({"case_id": case["id"]}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "assignment: {}", r.status());
        let v = self
            .post(
                "/api/v1/auth/login",
                json!({"username": "officer", "password": "officer-password-1"}),
            )
            .await;
        self.token = v["token"].as_str().unwrap().to_string();
    }

    async fn device(&self, protocol: &str, hardware_id: &str, owner: Option<i64>) -> i64 {
        self.post(
            "/api/v1/devices",
            json!({"kind": "tracker", "protocol": protocol, "hardware_id": hardware_id, "owner_id": owner}),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../protocols/tests/vectors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn payload(case: &Value) -> Vec<u8> {
    match case["payload_hex"].as_str() {
        Some(h) => unhex(h),
        None => case["payload_text"].as_str().unwrap().as_bytes().to_vec(),
    }
}

/// "yyyy-MM-dd HH:mm:ss.SSS" (UTC) to microseconds.
fn parse_time(s: &str) -> i64 {
    let t: jiff::civil::DateTime = s.replace(' ', "T").parse().unwrap();
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_microsecond()
}

fn now() -> UnixMicros {
    UnixMicros(jiff::Timestamp::now().as_microsecond())
}

fn session(protocol: Protocol) -> Box<dyn StreamSession> {
    use protocols::{gt06, h02, teltonika, watch};
    match protocol {
        Protocol::Gt06 => Box::new(gt06::Gt06Session::gt06()),
        Protocol::H02 => Box::new(h02::H02Session::h02()),
        Protocol::Watch => Box::new(watch::WatchSession::watch()),
        _ => Box::new(teltonika::TeltonikaSession::teltonika()),
    }
}

/// What one case should do, computed with the same sans-IO session the server uses.
struct Expected {
    case: Value,
    udp: bool,
    /// (identity, message) for every message the case's bytes produce.
    messages: Vec<(Option<String>, Message)>,
    /// The bytes the server must answer with, and whether they are exact (some acks carry the
    /// server's clock; those are compared by length).
    ack: Vec<u8>,
    ack_exact: bool,
}

fn server_ack(identity: &Option<String>, m: &Message) -> Vec<u8> {
    // The server acknowledges identified messages of registered devices (all are registered
    // here), and identity-less keep-alives; identity-less data is dropped unacknowledged.
    if identity.is_some() || !m.has_data() {
        m.ack.clone().unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// Replays a group through two local sessions (now and a day later) to get the messages and
/// the acknowledgements, and to spot acknowledgements that depend on the clock.
fn expect_group(protocol: Protocol, cases: &[Value]) -> Vec<Expected> {
    let mut a = session(protocol);
    let mut b = session(protocol);
    let t = now();
    let later = UnixMicros(t.0 + 86_400_000_000);
    let mut out = Vec::new();
    for case in cases {
        let bytes = payload(case);
        if case["transport"] == "udp" {
            let m = protocols::teltonika::decode_udp(&bytes, t).ok();
            out.push(Expected {
                case: case.clone(),
                udp: true,
                ack: m.as_ref().and_then(|m| m.ack.clone()).unwrap_or_default(),
                ack_exact: true,
                messages: m.into_iter().map(|m| (m.identity.clone(), m)).collect(),
            });
            continue;
        }
        let run = |s: &mut Box<dyn StreamSession>, now: UnixMicros| {
            s.push(&bytes);
            let mut v = Vec::new();
            loop {
                match s.poll(now) {
                    StreamItem::NeedMore => break,
                    StreamItem::Message(m) => {
                        let id = m
                            .identity
                            .clone()
                            .or_else(|| s.identity().map(str::to_string));
                        v.push((id, *m));
                    }
                    _ => {}
                }
            }
            v
        };
        let ma = run(&mut a, t);
        let mb = run(&mut b, later);
        let ack: Vec<u8> = ma.iter().flat_map(|(i, m)| server_ack(i, m)).collect();
        let ack_b: Vec<u8> = mb.iter().flat_map(|(i, m)| server_ack(i, m)).collect();
        out.push(Expected {
            case: case.clone(),
            udp: false,
            ack_exact: ack == ack_b,
            ack,
            messages: ma,
        });
    }
    out
}

async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("server answers")
        .expect("connection open");
    buf
}

/// Waits until the server closes the connection (EOF or reset), discarding what it sends.
async fn closed_by_server(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("server closes the connection")
        {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the server would store this fix (same limits as `ingest::validate`).
fn storable(f: &protocols::DecodedFix, received: UnixMicros) -> bool {
    f.device_time.0 >= 946_684_800_000_000
        && f.device_time.0 <= received.0 + 300 * 1_000_000
        && f.speed_mps.is_none_or(|s| (0.0..=350.0).contains(&s))
        && f.course_deg.is_none_or(|c| (0.0..=360.0).contains(&c))
        && f.altitude_m
            .is_none_or(|a| (-12_262.0..=18_000.0).contains(&a))
        && f.accuracy_m.is_none_or(|a| (0.0..=100_000.0).contains(&a))
}

/// Whether a decoded fix is among the stored ones. Reports without a date (some H02 `V1`) are
/// stamped with the receive time, which differs between this replay and the server's: those
/// match any stored fix received around then.
fn is_stored(stored: &[domain::Fix], f: &protocols::DecodedFix) -> bool {
    let stamped_now = (now().0 - f.device_time.0).abs() < 600 * 1_000_000;
    stored.iter().any(|s| {
        s.device_time == f.device_time
            || (stamped_now && (s.device_time.0 - f.device_time.0).abs() < 600 * 1_000_000)
    })
}

/// What the golden-vector replay checked for one protocol.
#[derive(Default)]
struct Checked {
    acks: usize,
    exact_positions: usize,
    fixes: usize,
    sos: usize,
    scans: usize,
}

#[tokio::test]
async fn golden_vectors_over_real_sockets_store_fixes_events_and_get_acks() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let mut summary = Vec::new();
    let mut any_sos = false;
    for (name, protocol) in [
        ("gt06", Protocol::Gt06),
        ("h02", Protocol::H02),
        ("watch", Protocol::Watch),
        ("teltonika", Protocol::Teltonika),
    ] {
        let file = load(name);
        let mut devices: HashMap<String, i64> = HashMap::new();
        let mut checked = Checked::default();
        for group in vector_groups(&file) {
            let expected = expect_group(protocol, &group);
            register_devices(&api, name, &expected, &mut devices).await;
            send_group(&r, protocol, name, &expected, &mut checked).await;
            // Every ack was read, so everything acknowledged is already durable.
            let received = now();
            for e in &expected {
                for (id, m) in &e.messages {
                    let Some(dev) = id.as_ref().map(|i| devices[i]) else {
                        continue;
                    };
                    check_message_stored(&r, name, e, dev, m, received, &mut checked).await;
                }
            }
        }
        any_sos |= checked.sos > 0;
        summary.push(format!(
            "{name}: {} cases, {} acks, {} stored fixes checked, {} exact positions, {} SOS, {} network scans",
            file["cases"].as_array().unwrap().len(),
            checked.acks,
            checked.fixes,
            checked.exact_positions,
            checked.sos,
            checked.scans
        ));
        assert!(
            checked.acks > 0 && checked.fixes > 0,
            "{}",
            summary.join("\n")
        );
    }
    println!("{}", summary.join("\n"));
    assert!(any_sos, "the vectors contain SOS frames");
    status_frames_left_battery_readings(&r).await;
    an_sos_without_an_order_still_raises_a_device_alert(&r).await;
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", r.http_addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("bulwark_device_connection_panics_total"));
    r.shutdown().await;
}

/// A protocol file's vectors grouped by their `test` field, groups in file order.
fn vector_groups(file: &Value) -> Vec<Vec<Value>> {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut order = Vec::new();
    for c in file["cases"].as_array().unwrap() {
        let t = c["test"].as_str().unwrap().to_string();
        if !groups.contains_key(&t) {
            order.push(t.clone());
        }
        groups.entry(t).or_default().push(c.clone());
    }
    order
        .into_iter()
        .map(|t| groups.remove(&t).unwrap_or_default())
        .collect()
}

/// Registers every device a group's messages identify, once.
async fn register_devices(
    api: &Api,
    name: &str,
    expected: &[Expected],
    devices: &mut HashMap<String, i64>,
) {
    for e in expected {
        for (id, _) in &e.messages {
            if let Some(id) = id
                && !devices.contains_key(id)
            {
                let d = api.device(name, id, None).await;
                devices.insert(id.clone(), d);
            }
        }
    }
}

/// Sends one group's frames, checking each ack: one TCP connection per group, as the vectors
/// README prescribes; a UDP case on its own socket.
async fn send_group(
    r: &server::Running,
    protocol: Protocol,
    name: &str,
    expected: &[Expected],
    checked: &mut Checked,
) {
    let addr = r.device_addrs[&protocol];
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for e in expected {
        let bytes = payload(&e.case);
        let line = &e.case["line"];
        if e.udp {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sock.send_to(&bytes, r.device_udp_addrs[&protocol])
                .await
                .unwrap();
            let mut buf = [0u8; 512];
            let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
                .await
                .expect("udp reply")
                .unwrap();
            assert_eq!(&buf[..n], &e.ack[..], "{name} line {line}: udp ack");
            checked.acks += 1;
            continue;
        }
        stream.write_all(&bytes).await.unwrap();
        if !e.ack.is_empty() {
            let got = read_n(&mut stream, e.ack.len()).await;
            if e.ack_exact {
                assert_eq!(got, e.ack, "{name} line {line}: ack bytes");
            }
            checked.acks += 1;
        }
    }
}

/// One decoded message's fixes, network scan, expected position and SOS are in the store.
async fn check_message_stored(
    r: &server::Running,
    name: &str,
    e: &Expected,
    dev: i64,
    m: &Message,
    received: UnixMicros,
    checked: &mut Checked,
) {
    let line = &e.case["line"];
    // Frames without an ack (some protocols acknowledge only some types) give no durability
    // signal to wait for: poll, bounded.
    let want: Vec<_> = m.fixes.iter().filter(|f| storable(f, received)).collect();
    let mut stored = Vec::new();
    for _ in 0..100 {
        stored = r
            .store
            .track(
                &harness::inspect(),
                DeviceId(dev),
                UnixMicros(0),
                UnixMicros(i64::MAX),
                100_000,
            )
            .await
            .unwrap();
        if want.iter().all(|f| is_stored(&stored, f)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for f in want {
        assert!(
            is_stored(&stored, f),
            "{name} line {line}: fix at {:?} not stored",
            f.device_time
        );
        checked.fixes += 1;
    }
    // Cell towers and access points are stored beside the fix or report.
    if let Some(n) = m
        .network
        .as_ref()
        .filter(|n| !n.cells.is_empty() || !n.wifi.is_empty())
    {
        check_scan_stored(r, name, line, dev, n).await;
        checked.scans += 1;
    }
    let exp = &e.case["expect"];
    if let (Some(time), Some(lat), Some(lon)) = (
        exp["time"].as_str(),
        exp["lat"].as_f64(),
        exp["lon"].as_f64(),
    ) {
        let time = parse_time(time);
        if m.fixes.iter().any(|f| f.device_time.0 == time) {
            assert!(
                stored.iter().any(|s| s.device_time.0 == time
                    && (s.position.lat() - lat).abs() < 1e-5
                    && (s.position.lon() - lon).abs() < 1e-5),
                "{name} line {line}: expected position not stored"
            );
            checked.exact_positions += 1;
        }
    }
    if m.events.iter().any(|ev| ev.kind == EventKind::Sos) {
        let events = r.store.events_received_since(UnixMicros(0)).await.unwrap();
        assert!(
            events
                .iter()
                .any(|ev| ev.device_id == DeviceId(dev) && ev.kind == DeviceEventKind::Sos),
            "{name} line {line}: SOS event not stored"
        );
        checked.sos += 1;
    }
}

/// The decoded scan `n` is among the device's stored scans (polled, bounded).
async fn check_scan_stored(
    r: &server::Running,
    name: &str,
    line: &Value,
    dev: i64,
    n: &protocols::NetworkScan,
) {
    let same =
        |st: &store::NetworkScan| {
            st.cells.len() == n.cells.len()
                && st.wifi.len() == n.wifi.len()
                && st.cells.iter().zip(&n.cells).all(|(a, b)| {
                    (a.mcc, a.mnc, a.lac, a.cell_id) == (b.mcc, b.mnc, b.lac, b.cell_id)
                })
                && st.wifi.iter().zip(&n.wifi).all(|(a, b)| a.mac == b.mac)
        };
    let mut found = false;
    for _ in 0..100 {
        let stored = r
            .store
            .network_scans(
                &harness::inspect(),
                DeviceId(dev),
                UnixMicros(0),
                UnixMicros(i64::MAX),
                100_000,
            )
            .await
            .unwrap();
        if stored.iter().any(same) {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "{name} line {line}: network scan not stored");
}

/// Heartbeats and status frames leave each device's latest health (battery, signal…).
async fn status_frames_left_battery_readings(r: &server::Running) {
    let health = r
        .store
        .device_health(&store::Authorized::system("test"))
        .await
        .unwrap();
    assert!(
        health
            .iter()
            .any(|(_, h)| h.battery_percent.is_some() || h.battery_volts.is_some()),
        "status frames in the vectors carry battery readings"
    );
}

/// An SOS from a device with no order in force still reaches staff as a device alert.
async fn an_sos_without_an_order_still_raises_a_device_alert(r: &server::Running) {
    let mut alerted = false;
    for _ in 0..100 {
        // These devices belong to no case, so no staff listing covers them: read the store.
        let alerts = r
            .store
            .list_alerts(&store::Authorized::system("test"), false, 1000)
            .await
            .unwrap();
        if alerts
            .iter()
            .any(|a| a.alert.rule == domain::AlertRule::Sos)
        {
            alerted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alerted, "an SOS alert was raised");
}

fn gt06_login(imei: &str, serial: u16) -> Vec<u8> {
    let digits = format!("{imei:0>16}");
    let bcd: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    protocols::gt06::encode_frame(false, 0x01, &bcd, serial)
}

fn gt06_location(lat: f64, lon: f64, serial: u16) -> Vec<u8> {
    gt06_location_at(jiff::Timestamp::now(), lat, lon, serial)
}

/// A GT06 location (0x12) with the given device time (whole seconds on the wire).
fn gt06_location_at(time: jiff::Timestamp, lat: f64, lon: f64, serial: u16) -> Vec<u8> {
    let t = time.to_zoned(jiff::tz::TimeZone::UTC);
    let mut c = vec![
        (t.year() - 2000) as u8,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        0xC9, // 12 bytes of GPS data, 9 satellites
    ];
    c.extend_from_slice(&((lat.abs() * 1_800_000.0).round() as u32).to_be_bytes());
    c.extend_from_slice(&((lon.abs() * 1_800_000.0).round() as u32).to_be_bytes());
    c.push(0); // km/h
    let mut flags: u16 = 1 << 12; // positioned
    if lat >= 0.0 {
        flags |= 1 << 10;
    }
    if lon < 0.0 {
        flags |= 1 << 11;
    }
    c.extend_from_slice(&flags.to_be_bytes());
    c.extend_from_slice(&[0x01, 0xC2, 0x05, 0x12, 0x34, 0x00, 0x56, 0x78]); // MCC 450, MNC 5, LAC, cell
    protocols::gt06::encode_frame(false, 0x12, &c, serial)
}

/// The rule for fixes at a stored device time (ARCHITECTURE.md, "Nothing is stored twice"),
/// over a real GT06 socket: an identical resend is acknowledged and not stored again; a
/// different position in the same device second is stored beside it, and flagged
/// `integrity_suspect` when it is farther than anyone moves in a second.
#[tokio::test]
async fn same_second_gt06_fixes_resends_are_dropped_bursts_kept_and_far_ones_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let imei = "359710040000031";
    let device = DeviceId(api.device("gt06", imei, None).await);
    let second = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - 10).unwrap();
    let (lat, lon) = (37.5665, 126.978);
    let first = gt06_location_at(second, lat, lon, 2);
    let burst = gt06_location_at(second, lat + 0.000_18, lon, 3); // 20 m north
    let far = gt06_location_at(second, lat, lon + 0.056_6, 4); // 5 km east
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    // Every frame is acknowledged, resends included (the device must stop resending).
    for frame in [
        gt06_login(imei, 1),
        first.clone(),
        first,
        burst,
        far.clone(),
        far,
    ] {
        s.write_all(&frame).await.unwrap();
        assert_eq!(read_n(&mut s, 10).await.len(), 10);
    }
    let track = r
        .store
        .track(
            &harness::inspect(),
            device,
            UnixMicros(0),
            UnixMicros(i64::MAX),
            10,
        )
        .await
        .unwrap();
    let rows: Vec<(i64, bool)> = track
        .iter()
        .map(|f| {
            (
                f.device_time.0,
                f.flags.has(domain::FixFlags::INTEGRITY_SUSPECT),
            )
        })
        .collect();
    let t = second.as_microsecond();
    assert_eq!(rows, vec![(t, false), (t, false), (t, true)], "{track:?}");
    assert!(
        track[1].position.lat() > track[0].position.lat(),
        "receipt order"
    );
    r.shutdown().await;
}

/// A GT06 heartbeat (0x13): terminal info, voltage level 0..6, GSM 0..4, alarm, language.
fn gt06_heartbeat(level: u8, charging: bool, serial: u16) -> Vec<u8> {
    let info = if charging { 0x04 } else { 0x00 };
    protocols::gt06::encode_frame(false, 0x13, &[info, level, 0x04, 0x00, 0x01], serial)
}

#[tokio::test]
async fn health_history_and_network_scans_over_tcp_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut api = Api::new(&r, TOKEN);
    let imei = "359710040000003";
    let (dev, case) = an_ankle_monitor_in_a_case(&api, imei).await;
    let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    heartbeats_and_a_location_with_its_cell_over_gt06(&r, imei).await;
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let health_url = format!("/api/v1/devices/{dev}/health?from={from}&to={to}");
    nobody_without_the_case_reads_its_health(&api, &health_url).await;
    api.login_officer(&case).await;
    the_officer_reads_the_health_history(&api, dev, &health_url, &from, &to).await;
    the_track_and_the_scans_carry_the_cell(&api, dev, &from, &to).await;
    r.shutdown().await;
}

/// An offender wearing a GT06 ankle monitor, in a case protecting one person: (device, case).
async fn an_ankle_monitor_in_a_case(api: &Api, imei: &str) -> (i64, Value) {
    let off = api
        .post(
            "/api/v1/people",
            json!({"role": "offender", "display_name": "O"}),
        )
        .await;
    let vic = api
        .post(
            "/api/v1/people",
            json!({"role": "protected", "display_name": "V"}),
        )
        .await;
    let dev = api
        .post(
            "/api/v1/devices",
            json!({"kind": "ankle_monitor", "protocol": "gt06", "hardware_id": imei, "owner_id": off["id"]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let case = api
        .post(
            "/api/v1/cases",
            json!({"reference": "H-1", "offender_id": off["id"], "protected_ids": [vic["id"]]}),
        )
        .await;
    (dev, case)
}

/// Over a real socket: two heartbeats (charging at full, then 50 % off the charger) and a
/// location with its serving cell, each acknowledged only once durable.
async fn heartbeats_and_a_location_with_its_cell_over_gt06(r: &server::Running, imei: &str) {
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    for frame in [
        gt06_login(imei, 1),
        gt06_heartbeat(6, true, 2),
        gt06_heartbeat(3, false, 3),
        gt06_location(37.55, 126.90, 4),
    ] {
        s.write_all(&frame).await.unwrap();
        read_n(&mut s, 10).await;
    }
    drop(s);
}

async fn nobody_without_the_case_reads_its_health(api: &Api, health_url: &str) {
    // Nobody without the case reads it: the administrator has no case data.
    let denied = api
        .http
        .get(format!("{}{health_url}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), reqwest::StatusCode::FORBIDDEN);
}

async fn the_officer_reads_the_health_history(
    api: &Api,
    dev: i64,
    health_url: &str,
    from: &str,
    to: &str,
) {
    let health = api.value(health_url).await;
    let reports = health.as_array().expect("a list of reports");
    assert_eq!(reports.len(), 2, "{health}");
    assert_eq!(reports[0]["battery_percent"], 100.0);
    assert_eq!(reports[0]["charging"], true);
    assert_eq!(reports[1]["battery_percent"], 50.0);
    assert_eq!(reports[1]["charging"], false);
    assert!(
        reports[0]["reported_at"].as_str().unwrap() <= reports[1]["reported_at"].as_str().unwrap()
    );
    // A window that ends before the reports holds none.
    let empty = api
        .value(&format!(
            "/api/v1/devices/{dev}/health?from={from}&to={from}"
        ))
        .await;
    assert_eq!(empty, json!([]));
    // Bad input is a clear 4xx.
    let bad = api
        .http
        .get(format!(
            "{}/api/v1/devices/{dev}/health?from=yesterday&to={to}",
            api.base
        ))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error(), "{}", bad.status());
}

async fn the_track_and_the_scans_carry_the_cell(api: &Api, dev: i64, from: &str, to: &str) {
    // The track shows the cell the location frame carried, beside its fix.
    let track = api
        .value(&format!(
            "/api/v1/devices/{dev}/track?from={from}&to={to}&purpose_code=supervision&purpose_text=checking%20the%20device%20health"
        ))
        .await;
    let points = track.as_array().expect("a list of positions");
    assert_eq!(points.len(), 1, "{track}");
    let cells = &points[0]["network"]["cells"];
    assert_eq!(
        cells,
        &json!([{"mcc": 450, "mnc": 5, "lac": 0x1234, "cell_id": 0x5678, "rssi": null}]),
        "{track}"
    );
    assert_eq!(points[0]["network"]["wifi"], json!([]));
    // The scans themselves, with or without a fix, under the track's rule (purpose required).
    let scans_url = format!("/api/v1/devices/{dev}/network-scans?from={from}&to={to}");
    let no_purpose = api
        .http
        .get(format!("{}{scans_url}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_purpose.status(), reqwest::StatusCode::FORBIDDEN);
    let scans = api
        .value(&format!(
            "{scans_url}&purpose_code=supervision&purpose_text=checking%20the%20device%20health"
        ))
        .await;
    assert_eq!(scans.as_array().map(Vec::len), Some(1), "{scans}");
    assert_eq!(&scans[0]["cells"], cells);
}

#[tokio::test]
async fn a_registered_model_selects_its_firmware_layouts_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    // Two GT06 devices send the same LW4G frames (golden vectors, GT06 lines 575 and 579):
    // a 0x13 status with external power, and a location whose alarm byte 0x19 means hard
    // acceleration on LW firmware but low battery in the standard layout.
    let owner = api
        .post(
            "/api/v1/people",
            json!({"role": "offender", "display_name": "O"}),
        )
        .await;
    let lw = api
        .post(
            "/api/v1/devices",
            json!({"kind": "tracker", "protocol": "gt06", "hardware_id": "359710040000004", "model": "LW4G-4B", "owner_id": owner["id"]}),
        )
        .await;
    assert_eq!(lw["model"], "LW4G-4B");
    let plain = api.device("gt06", "359710040000005", None).await;
    let bad = api
        .http
        .post(format!("{}/api/v1/devices", api.base))
        .bearer_auth(&api.token)
        .json(&json!({"kind": "tracker", "protocol": "gt06", "hardware_id": "x1", "model": "LW4G; DROP"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let status = unhex("78780a13560604f0830ccf986f0d0a");
    let location = unhex(
        "78782516180516150812c804b50ee80880e40805dcf909012e000000986633460604190106c393490d0a",
    );
    for imei in ["359710040000004", "359710040000005"] {
        let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
            .await
            .unwrap();
        for frame in [gt06_login(imei, 1), status.clone(), location.clone()] {
            s.write_all(&frame).await.unwrap();
            read_n(&mut s, 10).await;
        }
    }
    let lw_id = DeviceId(lw["id"].as_i64().unwrap());
    let health = r
        .store
        .device_health_history(
            &harness::inspect(),
            lw_id,
            UnixMicros(0),
            UnixMicros(i64::MAX),
            10,
        )
        .await
        .unwrap();
    assert!(
        health
            .iter()
            .any(|h| h.power_volts.is_some_and(|v| (v - 13.1).abs() < 1e-9)),
        "LW 0x13 carries external power: {health:?}"
    );
    let events = r.store.events_received_since(UnixMicros(0)).await.unwrap();
    let low = |d: DeviceId| {
        events
            .iter()
            .any(|e| e.device_id == d && e.kind == DeviceEventKind::LowBattery)
    };
    assert!(!low(lw_id), "hard acceleration is not a low battery");
    assert!(
        low(DeviceId(plain)),
        "without a model the standard layout applies"
    );
    let list = api.value("/api/v1/devices").await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == lw["id"]);
    // The administrator's registry list shows the model.
    assert_eq!(listed.unwrap()["model"], "LW4G-4B");
    r.shutdown().await;
}

#[tokio::test]
async fn unknown_devices_are_refused_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);

    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    s.write_all(&gt06_login("359710040000009", 1))
        .await
        .unwrap();
    let got = closed_by_server(&mut s).await;
    assert!(got.is_empty(), "no ack for an unknown IMEI: {got:02x?}");

    // Teltonika waits for a verdict on its IMEI packet: 0x00 is "refused".
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Teltonika])
        .await
        .unwrap();
    s.write_all(b"\x00\x0f352093081452251").await.unwrap();
    assert_eq!(closed_by_server(&mut s).await, vec![0x00]);

    let unknown = api.value("/api/v1/devices/unknown").await;
    let ids: Vec<&str> = unknown
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["hardware_id"].as_str())
        .collect();
    assert!(ids.contains(&"359710040000009"), "{unknown}");
    assert!(ids.contains(&"352093081452251"), "{unknown}");
    assert!(r.store.count_fixes().await.unwrap() == 0);
    r.shutdown().await;
}

#[tokio::test]
async fn garbage_and_split_frames_still_decode_and_pure_garbage_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let imei = "359710040000001";
    api.device("gt06", imei, None).await;
    let addr = r.device_addrs[&Protocol::Gt06];

    let login = gt06_login(imei, 1);
    let fix = gt06_location(37.5, 127.0, 2);
    let mut wire: Vec<u8> = (0u8..50).map(|i| i.wrapping_mul(3) % 0x70).collect();
    wire.extend_from_slice(&login);
    wire.extend_from_slice(&fix);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    // One byte per write: every frame arrives split across many reads.
    for b in &wire {
        s.write_all(&[*b]).await.unwrap();
        s.flush().await.unwrap();
    }
    let acks = read_n(&mut s, 20).await;
    assert_eq!(
        &acks[..10],
        &protocols::gt06::encode_ack(false, 0x01, 1)[..]
    );
    assert_eq!(
        &acks[10..],
        &protocols::gt06::encode_ack(false, 0x12, 2)[..]
    );
    assert_eq!(r.store.count_fixes().await.unwrap(), 1);

    // A peer that sends nothing decodable is closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let junk = vec![0x11u8; 64 * 1024];
    let _ = s.write_all(&junk).await; // the server may close before all of it is written
    assert!(closed_by_server(&mut s).await.is_empty());
    r.shutdown().await;
}

#[tokio::test]
async fn pursuit_mode_sends_the_interval_command_to_a_gt06_ankle_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let mut api = Api::new(&r, TOKEN);
    let home = (37.5560, 126.9040);
    let off = api
        .post(
            "/api/v1/people",
            json!({"role": "offender", "display_name": "O"}),
        )
        .await;
    let vic = api
        .post(
            "/api/v1/people",
            json!({"role": "protected", "display_name": "V"}),
        )
        .await;
    let imei = "359710040000002";
    api.post(
        "/api/v1/devices",
        json!({"kind": "ankle_monitor", "protocol": "gt06", "hardware_id": imei, "owner_id": off["id"]}),
    )
    .await;
    api.post(
        "/api/v1/devices",
        json!({"kind": "victim_phone", "protocol": "osmand", "hardware_id": "phone-1", "owner_id": vic["id"], "token": "phone-1-token-0000001"}),
    )
    .await;
    let case = api
        .post(
            "/api/v1/cases",
            json!({"reference": "T-1", "offender_id": off["id"], "protected_ids": [vic["id"]]}),
        )
        .await;
    api.login_officer(&case).await;
    api.post(
        "/api/v1/orders",
        json!({"case_id": case["id"], "kind": "provisional_measure", "valid_from": "2026-01-01T00:00:00Z",
               "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0, "zones": []}),
    )
    .await;
    let osmand = format!("http://{}/", r.osmand_addr.unwrap());
    let resp = api
        .http
        .get(&osmand)
        .query(&[
            ("id", "phone-1"),
            ("token", "phone-1-token-0000001"),
            ("lat", &home.0.to_string()),
            ("lon", &home.1.to_string()),
            ("timestamp", &jiff::Timestamp::now().as_second().to_string()),
            ("accuracy", "10"),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());

    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    s.write_all(&gt06_login(imei, 1)).await.unwrap();
    read_n(&mut s, 10).await;
    // 60 m from her: inside the no-approach distance, so the engine asks for pursuit mode,
    // delivered after the ack of one of his next frames.
    let command = protocols::gt06::encode_set_interval(15);
    let mut received = Vec::new();
    let mut serial = 2u16;
    while !received.windows(command.len()).any(|w| w == command) {
        assert!(serial < 200, "no interval command after {serial} frames");
        s.write_all(&gt06_location(home.0 + 60.0 / 111_195.0, home.1, serial))
            .await
            .unwrap();
        received.extend(read_n(&mut s, 10).await);
        serial += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A command written after the previous ack arrives before the next ack.
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(10), s.read(&mut buf)).await {
            received.extend_from_slice(&buf[..n]);
        }
    }
    r.shutdown().await;
}

fn h02_frame(id: &str) -> Vec<u8> {
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

/// Sends one H02 report and reads its `...#` acknowledgement.
async fn h02_acked(s: &mut TcpStream, id: &str) -> bool {
    if s.write_all(&h02_frame(id)).await.is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.contains(&b'#') {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    true
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_are_refused_and_idle_ones_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = server::Config {
        data_dir: dir.path().to_path_buf(),
        bind: [127, 0, 0, 1].into(),
        http_port: 0,
        osmand_port: None,
        admin_token: Some(TOKEN.into()),
        devices: server::config::DeviceListeners {
            max_connections_per_ip: 2,
            idle_timeout_s: 2,
            ..server::config::DeviceListeners::ephemeral()
        },
        ..Default::default()
    };
    let r = server::start(config).await.unwrap();
    let api = Api::new(&r, TOKEN);
    let id = "4210000001";
    api.device("h02", id, None).await;
    let addr = r.device_addrs[&Protocol::H02];
    let mut a = TcpStream::connect(addr).await.unwrap();
    assert!(h02_acked(&mut a, id).await);
    let mut b = TcpStream::connect(addr).await.unwrap();
    assert!(h02_acked(&mut b, id).await);
    // A third connection from the same address is closed without being served.
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(!h02_acked(&mut c, id).await);
    // The first two go quiet and are closed by the idle timeout...
    assert!(closed_by_server(&mut a).await.is_empty());
    assert!(closed_by_server(&mut b).await.is_empty());
    // ...which frees their places.
    let mut d = TcpStream::connect(addr).await.unwrap();
    assert!(h02_acked(&mut d, id).await);
    r.shutdown().await;
}

#[tokio::test]
async fn nothing_is_acknowledged_that_did_not_become_durable() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let imei = "359710040000003";
    api.device("gt06", imei, None).await;
    let mut s = TcpStream::connect(r.device_addrs[&Protocol::Gt06])
        .await
        .unwrap();
    s.write_all(&gt06_login(imei, 1)).await.unwrap();
    read_n(&mut s, 10).await;
    // The store stops accepting writes (as on a failed disk); the device is already identified.
    r.store.close();
    s.write_all(&gt06_location(37.5, 127.0, 2)).await.unwrap();
    let got = closed_by_server(&mut s).await;
    assert!(
        got.is_empty(),
        "no ack for a fix that is not durable: {got:02x?}"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn h02_over_udp_is_acknowledged_after_storing() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    let api = Api::new(&r, TOKEN);
    let id = "4210000002";
    api.device("h02", id, None).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut frame = h02_frame(id);
    frame.extend_from_slice(b"\r\n");
    sock.send_to(&frame, r.device_udp_addrs[&Protocol::H02])
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("udp reply")
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(reply.starts_with(&format!("*HQ,{id},V4,V1,")), "{reply}");
    assert_eq!(r.store.count_fixes().await.unwrap(), 1);
    r.shutdown().await;
}
