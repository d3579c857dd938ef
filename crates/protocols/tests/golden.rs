//! Golden tests: replays every case of every Traccar vector file (see `vectors/README.md`).
//!
//! Replay rules: cases are grouped by `test` and replayed in file order on one fresh decoder
//! per group. Each case either passes its checks or is listed in [`EXPECTED_UNSUPPORTED`] with
//! a reason; a listed case that starts passing fails the test too, so the list stays honest.
//!
//! What is checked: every attribute Bulwark maps (time, validity, position, course, speed,
//! altitude, alarms, battery level and voltage, external power, status word, steps, body
//! temperature, blood oxygen, command results; cells and Wi-Fi in their own test). Attributes
//! and frame kinds Bulwark deliberately does not use are named, with the reason, in
//! [`IGNORED_ATTRIBUTES`] and [`IGNORED_FRAMES`]: such a case passes only when the frame is
//! accepted and either decodes to data or carries the decoder's `unsupported` note, and never
//! when it holds a fix that was dropped. Any other unmapped attribute fails the test.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use domain::UnixMicros;
use protocols::http::{App, HttpRequest};
use protocols::{DecodeError, EventKind, Framing, Message};
use serde_json::Value;
use std::collections::BTreeMap;

/// Known, deliberate gaps: (file, lines, reason). Keep short and honest; a listed case that
/// starts passing fails the test.
const EXPECTED_UNSUPPORTED: &[(&str, &[u32], &str)] = &[
    (
        "gt06",
        &[46, 644],
        "layouts with no public specification and no layout in Traccar's published decoder \
         that Bulwark could check against: 0xA3 of length 0x18 starting with a zero date (GL21L \
         status with steps), VL103's long 0x36 (its position decodes; where the battery \
         voltage sits is not documented). Both frames are acknowledged",
    ),
    (
        "gt06",
        &[85],
        "decision: the expected altitude (-31,703 m) is read from the frame's CRC bytes (this \
         SL4X 0x32 frame is shorter than its layout); Bulwark stores the position without an \
         altitude rather than a number taken from a checksum",
    ),
    (
        "gt06",
        &[336, 342],
        "decision: nothing usable to store. 0xA7 and 0xA3 with position (0, 0) / no GPS and a \
         cell block with LAC 0 (a device registered to no network); Bulwark drops such a cell \
         because it cannot be located. The frames are acknowledged",
    ),
    (
        "watch",
        &[28, 64, 67, 70, 162, 165, 168, 171],
        "decision: position (0, 0) is the no-fix placeholder; domain::LatLon rejects it so it \
         never reaches a map or a zone check (status, alarms and the cell and Wi-Fi lists of \
         these frames are decoded and checked in golden_vectors_with_cells_and_wifi_decode_them)",
    ),
];

/// Attributes Bulwark deliberately does not map: (attribute, what it is). They describe a
/// vehicle, an accessory, the SIM card or media, none of which the monitoring pipeline uses. A
/// `verifyAttribute` case expecting one of them passes when the frame is accepted (decoded
/// without error, acknowledged where the protocol acknowledges) and the decoder either decodes
/// data or says, with an `unsupported` note, what it skipped. Counted as "ignored by design".
const IGNORED_ATTRIBUTES: &[(&str, &str)] = &[
    (
        "tag1Temp",
        "temperature of a Bluetooth tag (GT06 0x70 module 0x7F)",
    ),
    ("humidity", "humidity sensor (GT06 0x94/0x1E)"),
    ("networkTechnology", "2G/4G technology (GT06 0x94/0x0B)"),
    ("door", "vehicle door (GT06 0x94/0x05)"),
    ("serial", "RFID reader serial (GT06 0x94/0x1B)"),
    ("driverUniqueId", "driver id card (GT06 0x94/0x1B)"),
    ("iccid", "SIM card id (GT06 0x94/0x0A)"),
    ("audio", "voice message (Watch TK): Bulwark stores no audio"),
    (
        "temp1",
        "device or sensor temperature of GT06 vehicle kits (a watch's body temperature is mapped and checked)",
    ),
    ("tag1Battery", "Bluetooth tag battery (Teltonika codec 8E)"),
    ("tag1Voltage", "Bluetooth tag voltage (Teltonika codec 8E)"),
    ("eyeTemp1", "Bluetooth EYE sensor temperature (Teltonika)"),
    ("ignition", "vehicle ignition"),
    ("drivingTime", "vehicle driving time"),
    ("hours", "engine hours"),
    ("adc1", "analog input voltage"),
    ("eventFiles", "dash camera video file names (GT06 0x95)"),
    (
        "event",
        "raw device event code; the alarms Bulwark maps from it are checked by the alarm cases",
    ),
    (
        "device_integer_twelve_test",
        "free-form OsmAnd query parameter of the client app",
    ),
];

/// Frame kinds whose whole content is data Bulwark deliberately does not use: (file, kind,
/// what it carries). Kinds are GT06 protocol numbers (`0x94/0x0a`: 0x94 with its subtype) and
/// Watch message types. A `verifyAttributes` / `verifyNotNull` case on one of them passes on
/// the same terms as [`IGNORED_ATTRIBUTES`]. None of these frames carries a position, an alarm
/// or a device status Bulwark maps (checked against Traccar's decoders).
const IGNORED_FRAMES: &[(&str, &str, &str)] = &[
    (
        "gt06",
        "0x94/0x04",
        "vehicle-kit status text: ALM1-3, STA1 and DYD bytes (Traccar keeps them as raw \
         `alarmNStatus`, `otherStatus`, `engineStatus` numbers; their bits are not public, so no \
         alarm can be told from them), the SOS and centre numbers and the fence settings",
    ),
    ("gt06", "0x94/0x05", "door and input flags"),
    ("gt06", "0x94/0x0a", "IMEI, IMSI and ICCID"),
    ("gt06", "0x94/0x0d", "fuel sensor text (AIOIL)"),
    (
        "gt06",
        "0x8c",
        "OBD readings (ignition, fuel, RPM); no position",
    ),
    (
        "gt06",
        "0xf2",
        "Bluetooth peripheral report (readings of paired tags and buttons, e.g. `BTBUTTON`); no \
         position. Its layout is not public, so a paired button is not mapped to SOS",
    ),
    (
        "gt06",
        "0x70",
        "modular frame with identifier modules only (no GPS or status module)",
    ),
    ("watch", "BLOOD", "blood pressure"),
];

/// The kind of a vector's frame, as named in [`IGNORED_FRAMES`].
fn frame_kind(file: &str, bytes: &[u8]) -> String {
    match file {
        "gt06" => {
            let at = if bytes.first() == Some(&0x79) { 4 } else { 3 };
            match bytes.get(at) {
                Some(0x94) => format!("0x94/0x{:02x}", bytes.get(at + 1).copied().unwrap_or(0)),
                Some(p) => format!("0x{p:02x}"),
                None => String::new(),
            }
        }
        "watch" => String::from_utf8_lossy(bytes)
            .rsplit('*')
            .next()
            .and_then(|t| t.split([',', ']']).next())
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    }
}

/// Why a case's content is ignored by design, if it is.
fn ignored(file: &str, case: &Value) -> Option<&'static str> {
    if let Some(key) = case["expect"]["attributes"]
        .as_object()
        .and_then(|o| o.keys().next())
        && let Some((_, why)) = IGNORED_ATTRIBUTES.iter().find(|(k, _)| k == key)
    {
        return Some(why);
    }
    if !matches!(
        case["verb"].as_str(),
        Some("verifyAttributes" | "verifyNotNull")
    ) {
        return None;
    }
    let kind = frame_kind(file, &payload(case));
    IGNORED_FRAMES
        .iter()
        .find(|(f, k, _)| *f == file && *k == kind)
        .map(|(_, _, why)| *why)
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.as_bytes();
    (0..s.len() / 2)
        .map(|i| {
            let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            d(s[2 * i]) << 4 | d(s[2 * i + 1])
        })
        .collect()
}

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn payload(case: &Value) -> Vec<u8> {
    if let Some(h) = case["payload_hex"].as_str() {
        unhex(h)
    } else {
        case["payload_text"]
            .as_str()
            .unwrap_or("")
            .as_bytes()
            .to_vec()
    }
}

/// "yyyy-MM-dd HH:mm:ss.SSS" (UTC) to microseconds.
fn parse_time(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, mo, d, h, mi, se, ms) = (
        n(0, 4),
        n(5, 7),
        n(8, 10),
        n(11, 13),
        n(14, 16),
        n(17, 19),
        n(20, 23),
    );
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + se) * 1000 + ms) * 1000
}

const NOW: UnixMicros = UnixMicros(1_800_000_000_000_000);

/// A decoder for one replay group.
enum Decoder {
    Gt06(protocols::gt06::Gt06Codec),
    H02(protocols::h02::H02Codec),
    Watch(protocols::watch::WatchCodec),
    Teltonika(protocols::teltonika::TeltonikaCodec),
    Http,
}

impl Decoder {
    fn new(protocol: &str) -> Self {
        match protocol {
            "gt06" => Decoder::Gt06(Default::default()),
            "h02" => Decoder::H02(Default::default()),
            "watch" => Decoder::Watch(Default::default()),
            "teltonika" => Decoder::Teltonika(Default::default()),
            _ => Decoder::Http,
        }
    }

    fn decode(&mut self, case: &Value) -> Result<Vec<Message>, String> {
        let bytes = payload(case);
        let one = |r: Result<Message, DecodeError>| r.map(|m| vec![m]).map_err(|e| e.to_string());
        match self {
            Decoder::Gt06(c) => {
                if let Some(model) = case["decoder_config"]["model_override"].as_str() {
                    c.set_model(Some(model));
                }
                one(c.decode_frame(&bytes, NOW))
            }
            Decoder::H02(c) => one(c.decode_frame(&bytes, NOW)),
            Decoder::Watch(c) => one(c.decode_frame(&bytes, NOW)),
            Decoder::Teltonika(c) => {
                if case["decoder_config"]["extended"].as_bool() == Some(true) {
                    c.extended = true;
                }
                if case["decoder_config"]["connectionless"].as_bool() == Some(true) {
                    one(protocols::teltonika::decode_udp(&bytes, NOW))
                } else {
                    one(c.decode_frame(&bytes, NOW))
                }
            }
            Decoder::Http => {
                let headers: Vec<(String, String)> = case["http_headers"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let uri = case["http_uri"].as_str().unwrap_or("/");
                // The payload is the body unless it is just the query string repeated.
                let body: &[u8] = if uri.contains('?') { b"" } else { &bytes };
                let req = HttpRequest {
                    method: case["http_method"].as_str().unwrap_or("GET"),
                    path_and_query: uri,
                    headers: &headers,
                    body,
                    received: NOW,
                };
                protocols::http::decode(App::OsmAnd, &req)
                    .map(|r| r.messages)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

fn alarm_kind(name: &str) -> EventKind {
    match name {
        "sos" => EventKind::Sos,
        "tampering" => EventKind::Tamper,
        "removing" => EventKind::Removal,
        "lowBattery" => EventKind::LowBattery,
        "powerCut" => EventKind::PowerCut,
        "powerOff" => EventKind::PowerOff,
        "fallDown" => EventKind::FallDown,
        "vibration" => EventKind::Vibration,
        "overspeed" => EventKind::Overspeed,
        other => EventKind::Other(other.to_string()),
    }
}

fn close(a: Option<f64>, b: f64, tol: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= tol)
}

fn sane(m: &Message) -> Result<(), String> {
    for f in &m.fixes {
        let t = f.device_time.0;
        if !(915_148_800_000_000..=NOW.0).contains(&t) {
            return Err(format!("fix time {t} out of range"));
        }
        if let Some(a) = f.altitude_m
            && !(-12262.0..=18000.0).contains(&a)
        {
            return Err(format!("altitude {a}"));
        }
        if let Some(s) = f.speed_mps
            && !(0.0..=869.0 * 0.514_445).contains(&s)
        {
            return Err(format!("speed {s}"));
        }
        if let Some(c) = f.course_deg
            && !(0.0..=360.0).contains(&c)
        {
            return Err(format!("course {c}"));
        }
    }
    Ok(())
}

/// Outcome: Ok(note) when passing (note says how), Err(why) when not.
fn check(
    file: &str,
    case: &Value,
    result: Result<Vec<Message>, String>,
) -> Result<&'static str, String> {
    let verb = case["verb"].as_str().unwrap_or("");
    let expect = &case["expect"];
    let msgs = match (verb, result) {
        ("verifyNull", Err(_)) => return Ok("no message"),
        (_, Err(e)) => return Err(format!("decode error: {e}")),
        (_, Ok(m)) => m,
    };
    let fixes: Vec<_> = msgs.iter().flat_map(|m| m.fixes.iter()).collect();
    let has_data = msgs.iter().any(Message::has_data);
    for m in &msgs {
        sane(m)?;
    }
    match verb {
        "verifyNull" => {
            if fixes.is_empty() {
                Ok("no fix")
            } else {
                Err(format!("expected no fix, got {}", fixes.len()))
            }
        }
        "verifyPosition" | "verifyPositions" => {
            if verb == "verifyPositions" && case["check_location"].as_bool() == Some(false) {
                return if has_data {
                    Ok("data")
                } else {
                    Err("expected a non-empty message".into())
                };
            }
            let Some(f) = fixes.first() else {
                return Err("expected a fix, got none".into());
            };
            if let Some(t) = expect["time"].as_str() {
                if f.device_time.0 != parse_time(t) {
                    return Err(format!("time {} != {}", f.device_time.0, parse_time(t)));
                }
                if expect["valid"].as_bool() != Some(f.gnss_valid) {
                    return Err(format!("valid {} != {}", f.gnss_valid, expect["valid"]));
                }
                let (lat, lon) = (
                    expect["lat"].as_f64().unwrap_or(0.0),
                    expect["lon"].as_f64().unwrap_or(0.0),
                );
                if (f.position.lat() - lat).abs() > 1e-5 || (f.position.lon() - lon).abs() > 1e-5 {
                    return Err(format!(
                        "position {},{} != {lat},{lon}",
                        f.position.lat(),
                        f.position.lon()
                    ));
                }
                return Ok("exact position");
            }
            Ok("sane position")
        }
        "verifyAttributes" | "verifyNotNull" => {
            if has_data {
                Ok("data")
            } else {
                Err("expected data, got only an ack/nothing".into())
            }
        }
        "verifyAttribute" => check_attribute(file, expect, &msgs),
        other => Err(format!("unknown verb {other}")),
    }
}

fn check_attribute(file: &str, expect: &Value, msgs: &[Message]) -> Result<&'static str, String> {
    let status = msgs
        .iter()
        .find_map(|m| m.status.clone())
        .unwrap_or_default();
    let first_fix = msgs.iter().flat_map(|m| m.fixes.iter()).next();
    let pass = |ok: bool, what: String| if ok { Ok("attribute") } else { Err(what) };
    if let Some(alt) = expect["altitude"].as_f64() {
        return pass(
            close(first_fix.and_then(|f| f.altitude_m), alt, 0.01),
            format!("altitude != {alt}"),
        );
    }
    if let Some(c) = expect["course"].as_f64() {
        return pass(
            close(first_fix.and_then(|f| f.course_deg), c, 0.01),
            format!("course != {c}"),
        );
    }
    if let Some(s) = expect["speed_knots"].as_f64() {
        return pass(
            close(
                first_fix.and_then(|f| f.speed_mps),
                s * 1852.0 / 3600.0,
                0.01,
            ),
            format!("speed != {s} kn"),
        );
    }
    let Some((key, value)) = expect["attributes"]
        .as_object()
        .and_then(|o| o.iter().next())
    else {
        return Err("no attribute in expectation".into());
    };
    match key.as_str() {
        "alarm" => {
            let want = alarm_kind(value.as_str().unwrap_or(""));
            let got: Vec<_> = msgs
                .iter()
                .flat_map(|m| m.events.iter().map(|e| e.kind.clone()))
                .collect();
            pass(
                got.contains(&want),
                format!("alarm {want:?} not in {got:?}"),
            )
        }
        "batteryLevel" => pass(
            close(status.battery_percent, value.as_f64().unwrap_or(-1.0), 0.5),
            format!("batteryLevel {:?} != {value}", status.battery_percent),
        ),
        "battery" => pass(
            close(status.battery_volts, value.as_f64().unwrap_or(-1.0), 0.005),
            format!("battery {:?} != {value}", status.battery_volts),
        ),
        "power" if value.is_null() => pass(
            status.power_volts.is_none(),
            format!("power {:?} should be absent", status.power_volts),
        ),
        "power" => pass(
            close(status.power_volts, value.as_f64().unwrap_or(-1.0), 0.005),
            format!("power {:?} != {value}", status.power_volts),
        ),
        "status" => pass(
            status.status_word == value.as_u64(),
            format!("status {:?} != {value}", status.status_word),
        ),
        "steps" => pass(
            status.steps == value.as_u64(),
            format!("steps {:?} != {value}", status.steps),
        ),
        "result" => {
            let got = msgs.iter().find_map(|m| m.command_reply.clone());
            pass(
                got.as_deref() == value.as_str(),
                format!("result {got:?} != {value}"),
            )
        }
        "bloodOxygen" => pass(
            close(status.blood_oxygen_pct, value.as_f64().unwrap_or(-1.0), 0.5),
            format!("bloodOxygen {:?} != {value}", status.blood_oxygen_pct),
        ),
        // A watch's temperature is the wearer's skin: mapped (strap removal corroboration).
        "temp1" if file == "watch" => pass(
            close(status.body_temp_c, value.as_f64().unwrap_or(-1000.0), 0.005),
            format!("body temperature {:?} != {value}", status.body_temp_c),
        ),
        // Attributes Bulwark deliberately does not map: the frame must still decode to data.
        key if IGNORED_ATTRIBUTES.iter().any(|(k, _)| *k == key) => {
            if msgs.iter().any(Message::has_data) {
                Ok("ignored attribute, frame decoded")
            } else {
                Err(format!("ignored attribute {key}: no data decoded"))
            }
        }
        key => Err(format!(
            "attribute {key} is neither mapped nor listed in IGNORED_ATTRIBUTES"
        )),
    }
}

#[test]
fn golden_decoder_cases() {
    let mut failures = Vec::new();
    let mut stale = Vec::new();
    let mut summary = String::new();
    for file in ["gt06", "h02", "watch", "teltonika", "osmand"] {
        let doc = load(file);
        let cases = doc["cases"].as_array().cloned().unwrap_or_default();
        let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for c in &cases {
            groups
                .entry(c["test"].as_str().unwrap_or("").to_string())
                .or_default()
                .push(c);
        }
        let mut tally: BTreeMap<&'static str, usize> = BTreeMap::new();
        for group in groups.values() {
            let mut dec = Decoder::new(file);
            for case in group {
                let line = case["line"].as_u64().unwrap_or(0) as u32;
                let listed = EXPECTED_UNSUPPORTED
                    .iter()
                    .find(|(f, l, _)| *f == file && l.contains(&line));
                let result = dec.decode(case);
                let outcome = match (ignored(file, case), check(file, case, result.clone())) {
                    (_, Ok(how)) => Ok(how),
                    (Some(_), Err(why)) => match &result {
                        Ok(msgs)
                            if msgs.iter().all(|m| m.fixes.is_empty())
                                && msgs.iter().any(|m| m.unsupported.is_some() || m.has_data()) =>
                        {
                            Ok("ignored by design")
                        }
                        _ => Err(format!(
                            "ignored content, but the frame is not accepted: {why}"
                        )),
                    },
                    (None, Err(why)) => Err(why),
                };
                match (outcome, listed) {
                    (Ok(how), None) => *tally.entry(how).or_default() += 1,
                    (Ok(_), Some(_)) => {
                        stale.push(format!("{file}:{line} passes but is listed as unsupported"))
                    }
                    (Err(why), Some(_)) => {
                        if std::env::var_os("GOLDEN_VERBOSE").is_some() {
                            println!("listed {file}:{line}: {why}");
                        }
                        *tally.entry("expected unsupported").or_default() += 1
                    }
                    (Err(why), None) => {
                        *tally.entry("FAILED").or_default() += 1;
                        failures.push(format!(
                            "{file}:{line} {}: {why}",
                            case["verb"].as_str().unwrap_or("")
                        ));
                    }
                }
            }
        }
        summary.push_str(&format!("{file:10} {:3} cases: {tally:?}\n", cases.len()));
    }
    println!("{summary}");
    for f in &failures {
        println!("FAIL {f}");
    }
    for s in &stale {
        println!("STALE {s}");
    }
    assert!(
        failures.is_empty() && stale.is_empty(),
        "{} failures, {} stale entries",
        failures.len(),
        stale.len()
    );
}

/// A framer closure (some framers keep per-connection state).
type Framer = Box<dyn FnMut(&[u8]) -> Framing>;

fn framer(protocol: &str) -> Framer {
    match protocol {
        "gt06" => Box::new(protocols::gt06::frame),
        "h02" => {
            let mut c = protocols::h02::H02Codec::default();
            Box::new(move |b| protocols::Codec::frame(&mut c, b))
        }
        "watch" => Box::new(protocols::watch::frame),
        _ => {
            let mut c = protocols::teltonika::TeltonikaCodec::default();
            Box::new(move |b| protocols::Codec::frame(&mut c, b))
        }
    }
}

#[test]
fn golden_frame_cases() {
    let mut failures = Vec::new();
    let mut n = 0;
    for file in ["gt06", "h02", "watch", "teltonika"] {
        let doc = load(file);
        for case in doc["frame_cases"].as_array().cloned().unwrap_or_default() {
            n += 1;
            let input = unhex(case["input_hex"].as_str().unwrap_or(""));
            let want = unhex(case["expected_frame_hex"].as_str().unwrap_or(""));
            let mut frame = framer(file);
            let mut off = 0;
            let got = loop {
                match frame(&input[off..]) {
                    Framing::Frame { len, .. } => break Some(input[off..off + len].to_vec()),
                    Framing::Skip { len, .. } => off += len,
                    Framing::NeedMore => break None,
                }
            };
            let got = match (file, got) {
                ("watch", Some(f)) => protocols::watch::unescape(&f).ok(),
                (_, g) => g,
            };
            if got.as_deref() != Some(&want[..]) {
                failures.push(format!(
                    "{file}:{} got {:?}",
                    case["line"],
                    got.map(|g| g.len())
                ));
            }
        }
    }
    println!("{n} frame cases, {} failed", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Total cells and access points decoded from one vector file, and the scans by line.
fn scans(file: &str) -> BTreeMap<u32, protocols::NetworkScan> {
    let doc = load(file);
    let cases = doc["cases"].as_array().cloned().unwrap_or_default();
    let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for c in &cases {
        groups
            .entry(c["test"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(c);
    }
    let mut out = BTreeMap::new();
    for group in groups.values() {
        let mut dec = Decoder::new(file);
        for case in group {
            let line = case["line"].as_u64().unwrap_or(0) as u32;
            for m in dec.decode(case).unwrap_or_default() {
                if let Some(n) = m.network {
                    out.insert(line, n);
                }
            }
        }
    }
    out
}

#[test]
fn golden_vectors_with_cells_and_wifi_decode_them() {
    let cell = |s: &protocols::NetworkScan, i: usize| {
        let c = &s.cells[i];
        (c.mcc, c.mnc, c.lac, c.cell_id)
    };
    // GT06: a serving cell after the GPS block (even when the position is (0, 0)), multi-cell
    // frames, and AZ735's cell and Wi-Fi lists.
    let gt06 = scans("gt06");
    assert_eq!(cell(&gt06[&330], 0), (310, 260, 52106, 48883));
    assert_eq!(
        gt06[&188].cells.len(),
        2,
        "WANWAY S20 0x24 with its own count"
    );
    let az = &gt06[&402];
    assert_eq!((az.cells.len(), az.wifi.len()), (5, 8));
    assert_eq!(cell(az, 0), (510, 10, 1551, 27164));
    assert_eq!(az.wifi[0].mac, "44:d9:e7:f7:e1:77");
    assert_eq!(az.wifi[0].rssi, Some(-61));
    // Watch: cells and Wi-Fi after the status word, also from (0, 0) reports.
    let watch = scans("watch");
    let w = &watch[&61];
    assert_eq!(cell(w, 0), (425, 1, 10223, 8012811));
    assert_eq!(w.wifi.len(), 3);
    assert_eq!(w.wifi[1].mac, "a8:3f:a1:e0:66:ba");
    assert_eq!(
        watch[&165].cells.len(),
        5,
        "a (0, 0) report still carries its cells"
    );
    assert_eq!(watch[&171].wifi.len(), 5, "Wi-Fi only, no cells");
    // H02: NBR neighbour lists and the cell-only VP1.
    let h02 = scans("h02");
    assert_eq!(h02[&118].cells.len(), 6);
    assert_eq!(cell(&h02[&118], 0), (722, 310, 8106, 32010));
    assert_eq!(cell(&h02[&46], 2), (470, 2, 92, 1340));
    let total: usize = [&gt06, &watch, &h02]
        .iter()
        .flat_map(|m| m.values())
        .map(|s| s.cells.len() + s.wifi.len())
        .sum();
    println!(
        "network scans: gt06 {}, watch {}, h02 {}, teltonika {}; {total} cells and access points",
        gt06.len(),
        watch.len(),
        h02.len(),
        scans("teltonika").len()
    );
}
