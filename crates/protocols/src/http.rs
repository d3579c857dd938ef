//! Phone apps that upload positions over HTTP: OsmAnd / Traccar Client, OwnTracks, GPSLogger
//! and Overland.
//!
//! # Overview
//!
//! Each app is a pure function of the request: [`decode`] takes the method, path and query,
//! headers and body (as an [`HttpRequest`]) and returns the decoded [`Message`]s plus the
//! [`HttpReply`] the app expects. Nothing here knows a web framework; the server adapts its
//! request type to [`HttpRequest`] and writes [`HttpReply`] back.
//!
//! **API boundary — the reply is the acknowledgement.** Apps delete or stop retrying a point
//! once they get a 2xx; send [`HttpReply`] only after the messages are durable. On a decode
//! error, answer [`HttpDecodeError::status`] (4xx): the app keeps the point and retries.
//!
//! # Formats
//!
//! - **OsmAnd / Traccar Client** (query form): `?id=..&lat=..&lon=..&timestamp=..&speed=..
//!   &bearing=..&altitude=..&accuracy=..&batt=..` on any path, GET or POST; with no query the
//!   body is read as a form. `timestamp` is Unix seconds, Unix milliseconds (≥ 2^31), ISO 8601,
//!   or `yyyy-MM-dd HH:mm:ss` (taken as UTC). `speed` is in knots (Traccar Client converts to
//!   knots before sending; Traccar's `osmand.speed` default). `alarm=sos` is the SOS button.
//!   **JSON form** (Content-Type `application/json`, newer Traccar Client, Transistorsoft
//!   background-geolocation layout): `device_id`, `location.timestamp` (ISO 8601),
//!   `location.coords.{latitude, longitude, accuracy, speed (m/s, negative = unknown),
//!   heading (negative = unknown), altitude}`, `location.battery.{level 0..1, is_charging}`.
//!   Reply: 200 with an empty body. Source: Traccar Client source and Traccar's
//!   `OsmAndProtocolDecoder` behaviour (see `tests/vectors/README.md`).
//! - **OwnTracks** (HTTP mode): JSON POST of `{"_type":"location", "tid", "tst" (Unix s),
//!   "lat", "lon", "acc" (m), "vel" (km/h), "cog", "alt", "batt" (%), "bs" (battery status,
//!   2 = charging)}`, or an array of them. Identity: the `X-Limit-U` (user) and `X-Limit-D`
//!   (device) headers, else the HTTP Basic user, else `tid`. Non-location messages (`lwt`,
//!   `transition`, `waypoint`...) are accepted and ignored. Reply: `[]` (a JSON array of
//!   commands for the phone; none). Source: owntracks.org booklet, "HTTP" and "JSON" pages.
//! - **GPSLogger** (custom URL): query string or form body (the app may omit Content-Type) with
//!   `lat`, `lon` or `longitude`, `time` (ISO 8601) or `timestamp` (Unix s), `acc`, `spd` (m/s),
//!   `dir`, `alt`, `batt` (%), `ischarging`, and `id`, `device`, `aid` or `ser` for identity.
//!   Reply: 200 empty. Source: GPSLogger for Android documentation, "Custom URL".
//! - **Overland**: JSON POST `{"locations":[GeoJSON Feature...]}`, each with
//!   `geometry.coordinates = [lon, lat]` and `properties.{timestamp (ISO 8601),
//!   horizontal_accuracy, speed (m/s), course, altitude, battery_level (0..1),
//!   battery_state, device_id}`. Reply: `{"result":"ok"}` (the app only deletes the batch on
//!   exactly this). Source: Overland for iOS README (aaronpk/Overland-iOS).

use crate::util::parse_iso8601;
use crate::{
    DecodedFix, DeviceEvent, DeviceStatus, EventKind, Integrity, KMH_TO_MPS, KNOTS_TO_MPS, Message,
};
use domain::{FixSource, LatLon, UnixMicros};
use serde_json::Value;
use thiserror::Error;

/// Largest request body accepted, in bytes (Traccar allows 64 KiB; an Overland batch of 100
/// points is about 60 KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// Which app sent the request (the server routes by path or port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    OsmAnd,
    OwnTracks,
    GpsLogger,
    Overland,
}

/// A request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Path with the query string, e.g. `/?id=1&lat=..`.
    pub path_and_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// Server receive time; used when a point carries no time of its own.
    pub received: UnixMicros,
}

/// What to answer the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

/// Decoded messages and the reply to send once they are durable.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpDecoded {
    pub messages: Vec<Message>,
    pub reply: HttpReply,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum HttpDecodeError {
    #[error("no device identity in the request")]
    MissingDeviceId,
    #[error("request body over {MAX_BODY} bytes")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl HttpDecodeError {
    /// The HTTP status to answer with (4xx: the app keeps the point and may retry).
    pub fn status(&self) -> u16 {
        match self {
            HttpDecodeError::MissingDeviceId => 400,
            HttpDecodeError::TooLarge => 413,
            HttpDecodeError::Malformed(_) => 400,
        }
    }
}

/// Decodes one request from `app`.
pub fn decode(app: App, req: &HttpRequest<'_>) -> Result<HttpDecoded, HttpDecodeError> {
    if req.body.len() > MAX_BODY {
        return Err(HttpDecodeError::TooLarge);
    }
    match app {
        App::OsmAnd => osmand(req),
        App::OwnTracks => owntracks(req),
        App::GpsLogger => gpslogger(req),
        App::Overland => overland(req),
    }
}

fn header<'a>(req: &'a HttpRequest<'_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_json(req: &HttpRequest<'_>) -> bool {
    header(req, "content-type").is_some_and(|v| {
        v.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    })
}

fn hexval(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `application/x-www-form-urlencoded` text ('+' is a space).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).copied().and_then(hexval),
                b.get(i + 2).copied().and_then(hexval),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a query or form string into decoded pairs, keeping order and repeats.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Query parameters, or the body as a form when the URL has none.
fn params(req: &HttpRequest<'_>) -> Vec<(String, String)> {
    let query = req
        .path_and_query
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("");
    let mut p = parse_form(query);
    if p.is_empty() {
        p = parse_form(&String::from_utf8_lossy(req.body));
    }
    p
}

fn get<'a>(p: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| p.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str()))
        .filter(|v| !v.is_empty())
}

fn num(p: &[(String, String)], keys: &[&str]) -> Option<f64> {
    get(p, keys)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// Unix seconds, Unix milliseconds (≥ 2^31), ISO 8601, or `yyyy-MM-dd HH:mm:ss` (UTC).
fn parse_timestamp(s: &str) -> Option<UnixMicros> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(if n >= 1 << 31 {
            UnixMicros::from_millis(n)
        } else {
            UnixMicros::from_secs(n)
        });
    }
    if let Ok(x) = s.parse::<f64>()
        && (0.0..1e15).contains(&x)
    {
        return Some(UnixMicros((x * 1_000_000.0) as i64));
    }
    parse_iso8601(s)
}

fn ok_empty() -> HttpReply {
    HttpReply {
        status: 200,
        content_type: None,
        body: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn fix(
    time: UnixMicros,
    lat: f64,
    lon: f64,
    accuracy: Option<f64>,
    speed_mps: Option<f64>,
    course: Option<f64>,
    altitude: Option<f64>,
    valid: bool,
) -> Option<DecodedFix> {
    Some(DecodedFix {
        device_time: time,
        position: LatLon::new(lat, lon).ok()?,
        accuracy_m: accuracy.filter(|a| a.is_finite() && *a > 0.0),
        speed_mps: speed_mps.filter(|s| s.is_finite() && *s >= 0.0),
        course_deg: course.filter(|c| (0.0..=360.0).contains(c)),
        altitude_m: altitude.filter(|a| a.is_finite()),
        // Phones blend GNSS, Wi-Fi and cell; the accuracy field says how good the blend is.
        source: FixSource::Unknown,
        gnss_valid: valid,
        satellites: None,
        integrity_suspect: false,
        seq: None,
    })
}

fn alarm_event(name: &str, time: UnixMicros, position: Option<LatLon>) -> DeviceEvent {
    let kind = match name {
        "sos" => EventKind::Sos,
        "lowBattery" => EventKind::LowBattery,
        "fallDown" => EventKind::FallDown,
        other => EventKind::Other(other.to_string()),
    };
    DeviceEvent {
        kind,
        device_time: Some(time),
        position,
        integrity_suspect: false,
    }
}

fn osmand(req: &HttpRequest<'_>) -> Result<HttpDecoded, HttpDecodeError> {
    if is_json(req) {
        return osmand_json(req);
    }
    let p = params(req);
    let id = get(&p, &["id", "deviceid"])
        .ok_or(HttpDecodeError::MissingDeviceId)?
        .to_string();
    let time = match get(&p, &["timestamp"]) {
        Some(t) => parse_timestamp(t)
            .ok_or_else(|| HttpDecodeError::Malformed(format!("timestamp {t:?}")))?,
        None => req.received,
    };
    let (mut lat, mut lon) = (num(&p, &["lat"]), num(&p, &["lon"]));
    if let Some((a, b)) = get(&p, &["location"]).and_then(|l| l.split_once(',')) {
        lat = a.trim().parse().ok();
        lon = b.trim().parse().ok();
    }
    let valid = get(&p, &["valid"]).is_none_or(|v| v == "true" || v == "1");
    let mut msg = Message {
        identity: Some(id),
        integrity: Integrity::NotCarried,
        ..Message::default()
    };
    if let (Some(lat), Some(lon)) = (lat, lon) {
        msg.fixes.extend(fix(
            time,
            lat,
            lon,
            num(&p, &["accuracy"]),
            num(&p, &["speed"]).map(|s| s * KNOTS_TO_MPS),
            num(&p, &["bearing", "heading"]),
            num(&p, &["altitude"]),
            valid,
        ));
    }
    // cell=mcc,mnc,lac,cid[,rssi] and wifi=mac,rssi may repeat.
    let mut scan = crate::NetworkScan {
        time: Some(time),
        ..crate::NetworkScan::default()
    };
    for (k, v) in &p {
        let parts: Vec<&str> = v.split(',').map(str::trim).collect();
        match (k.as_str(), parts.as_slice()) {
            ("cell", [mcc, mnc, lac, cid, rest @ ..]) => {
                if let (Ok(mcc), Ok(mnc), Ok(lac), Ok(cid)) =
                    (mcc.parse(), mnc.parse(), lac.parse(), cid.parse())
                {
                    let rssi = rest.first().and_then(|r| r.parse().ok());
                    scan.cells.push(crate::CellTower {
                        mcc,
                        mnc,
                        lac,
                        cell_id: cid,
                        rssi,
                    });
                }
            }
            ("wifi", [mac, rssi, ..]) => {
                scan.wifi.push(crate::WifiAccessPoint {
                    mac: mac.replace('-', ":").to_ascii_lowercase(),
                    rssi: rssi.parse().ok(),
                });
            }
            _ => {}
        }
    }
    if !scan.cells.is_empty() || !scan.wifi.is_empty() {
        msg.network = Some(scan);
    }
    let battery = num(&p, &["batt"]);
    let charging = get(&p, &["charge"]).map(|v| v == "true" || v == "1");
    if battery.is_some() || charging.is_some() {
        msg.status = Some(DeviceStatus {
            battery_percent: battery,
            charging,
            ..DeviceStatus::default()
        });
    }
    if let Some(a) = get(&p, &["alarm"]) {
        msg.events
            .push(alarm_event(a, time, msg.fixes.first().map(|f| f.position)));
    }
    Ok(HttpDecoded {
        messages: vec![msg],
        reply: ok_empty(),
    })
}

fn json_body(req: &HttpRequest<'_>) -> Result<Value, HttpDecodeError> {
    serde_json::from_slice(req.body).map_err(|e| HttpDecodeError::Malformed(format!("JSON: {e}")))
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn osmand_json(req: &HttpRequest<'_>) -> Result<HttpDecoded, HttpDecodeError> {
    let root = json_body(req)?;
    let id = match &root["device_id"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(HttpDecodeError::MissingDeviceId),
    };
    let loc = &root["location"];
    let time = match loc["timestamp"].as_str() {
        Some(t) => parse_iso8601(t)
            .ok_or_else(|| HttpDecodeError::Malformed(format!("timestamp {t:?}")))?,
        None => req.received,
    };
    let c = &loc["coords"];
    let mut msg = Message {
        identity: Some(id),
        integrity: Integrity::NotCarried,
        ..Message::default()
    };
    if let (Some(lat), Some(lon)) = (f(&c["latitude"]), f(&c["longitude"])) {
        // Negative speed or heading means "unknown" in this layout.
        msg.fixes.extend(fix(
            time,
            lat,
            lon,
            f(&c["accuracy"]),
            f(&c["speed"]).filter(|s| *s >= 0.0),
            f(&c["heading"]).filter(|h| *h >= 0.0),
            f(&c["altitude"]),
            true,
        ));
    }
    let level = f(&loc["battery"]["level"])
        .filter(|l| *l >= 0.0)
        .map(|l| (l * 100.0).round());
    let charging = loc["battery"]["is_charging"].as_bool();
    if level.is_some() || charging.is_some() {
        msg.status = Some(DeviceStatus {
            battery_percent: level,
            charging,
            ..DeviceStatus::default()
        });
    }
    if let Some(a) = root["alarm"].as_str().or(loc["alarm"].as_str()) {
        msg.events
            .push(alarm_event(a, time, msg.fixes.first().map(|x| x.position)));
    }
    Ok(HttpDecoded {
        messages: vec![msg],
        reply: ok_empty(),
    })
}

/// `user/device` from OwnTracks' headers, else the Basic-auth user.
fn owntracks_identity(req: &HttpRequest<'_>) -> Option<String> {
    let u = header(req, "x-limit-u").filter(|s| !s.is_empty());
    let d = header(req, "x-limit-d").filter(|s| !s.is_empty());
    match (u, d) {
        (Some(u), Some(d)) => return Some(format!("{u}/{d}")),
        (Some(x), None) | (None, Some(x)) => return Some(x.to_string()),
        _ => {}
    }
    basic_user(req)
}

/// The user name of an HTTP Basic `Authorization` header.
fn basic_user(req: &HttpRequest<'_>) -> Option<String> {
    let auth = header(req, "authorization")?;
    let b64 = auth
        .trim()
        .strip_prefix("Basic ")
        .or_else(|| auth.trim().strip_prefix("basic "))?;
    let decoded = base64_decode(b64.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next().unwrap_or("");
    (!user.is_empty()).then(|| user.to_string())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s.as_bytes().iter().filter(|&&c| c != b'=') {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn owntracks(req: &HttpRequest<'_>) -> Result<HttpDecoded, HttpDecodeError> {
    let root = json_body(req)?;
    let header_id = owntracks_identity(req);
    let items: Vec<&Value> = match &root {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    let mut messages = Vec::new();
    for item in items {
        if item["_type"].as_str() != Some("location") {
            // Not a location (transition, waypoint, lwt, card...): answered `[]` like the
            // others, so it must be kept raw for the server to store before that answer.
            // Without an identity it cannot be attributed: refused, never acknowledged.
            let id = header_id
                .clone()
                .or_else(|| item["tid"].as_str().map(str::to_string))
                .ok_or(HttpDecodeError::MissingDeviceId)?;
            let kind: String = item["_type"]
                .as_str()
                .unwrap_or("(none)")
                .chars()
                .take(32)
                .collect();
            messages.push(Message {
                identity: Some(id),
                integrity: Integrity::NotCarried,
                unsupported: Some(format!("OwnTracks _type {kind:?} not decoded")),
                raw: Some(item.to_string().into_bytes()),
                ..Message::default()
            });
            continue;
        }
        let id = header_id
            .clone()
            .or_else(|| item["tid"].as_str().map(str::to_string))
            .ok_or(HttpDecodeError::MissingDeviceId)?;
        let time = item["tst"]
            .as_i64()
            .map(UnixMicros::from_secs)
            .unwrap_or(req.received);
        let mut msg = Message {
            identity: Some(id),
            integrity: Integrity::NotCarried,
            ..Message::default()
        };
        if let (Some(lat), Some(lon)) = (f(&item["lat"]), f(&item["lon"])) {
            msg.fixes.extend(fix(
                time,
                lat,
                lon,
                f(&item["acc"]),
                f(&item["vel"]).map(|v| v * KMH_TO_MPS),
                f(&item["cog"]),
                f(&item["alt"]),
                true,
            ));
        }
        let batt = f(&item["batt"]);
        let charging = item["bs"].as_i64().map(|bs| bs == 2 || bs == 3);
        if batt.is_some() || charging.is_some() {
            msg.status = Some(DeviceStatus {
                battery_percent: batt,
                charging,
                ..DeviceStatus::default()
            });
        }
        messages.push(msg);
    }
    if messages.is_empty()
        && header_id.is_none()
        && matches!(root, Value::Object(_))
        && root["_type"].as_str() == Some("location")
    {
        return Err(HttpDecodeError::MissingDeviceId);
    }
    Ok(HttpDecoded {
        messages,
        reply: HttpReply {
            status: 200,
            content_type: Some("application/json"),
            body: b"[]".to_vec(),
        },
    })
}

fn gpslogger(req: &HttpRequest<'_>) -> Result<HttpDecoded, HttpDecodeError> {
    let p = params(req);
    // GPSLogger's default URL names no device: the id is a parameter the user adds, or the
    // user name of the HTTP Basic credentials GPSLogger sends (its "basic auth" setting, or
    // `user:password@` in the URL).
    let id = get(&p, &["id", "device", "aid", "ser", "deviceid"])
        .map(str::to_string)
        .or_else(|| basic_user(req))
        .ok_or(HttpDecodeError::MissingDeviceId)?;
    let time = match get(&p, &["time", "timestamp"]) {
        Some(t) => {
            parse_timestamp(t).ok_or_else(|| HttpDecodeError::Malformed(format!("time {t:?}")))?
        }
        None => req.received,
    };
    let mut msg = Message {
        identity: Some(id),
        integrity: Integrity::NotCarried,
        ..Message::default()
    };
    if let (Some(lat), Some(lon)) = (
        num(&p, &["lat", "latitude"]),
        num(&p, &["lon", "longitude"]),
    ) {
        msg.fixes.extend(fix(
            time,
            lat,
            lon,
            num(&p, &["acc", "accuracy"]),
            // `s` is the speed of GPSLogger's default URL (`s=%SPD`, m/s).
            num(&p, &["spd", "speed", "s"]),
            num(&p, &["dir", "bearing"]),
            num(&p, &["alt", "altitude"]),
            true,
        ));
    }
    let batt = num(&p, &["batt", "battery"]);
    let charging = get(&p, &["ischarging", "charging"]).map(|v| v == "true" || v == "1");
    if batt.is_some() || charging.is_some() {
        msg.status = Some(DeviceStatus {
            battery_percent: batt,
            charging,
            ..DeviceStatus::default()
        });
    }
    Ok(HttpDecoded {
        messages: vec![msg],
        reply: ok_empty(),
    })
}

fn overland(req: &HttpRequest<'_>) -> Result<HttpDecoded, HttpDecodeError> {
    let root = json_body(req)?;
    let locations = root["locations"]
        .as_array()
        .ok_or_else(|| HttpDecodeError::Malformed("no locations array".into()))?;
    let mut messages = Vec::new();
    for feature in locations {
        let props = &feature["properties"];
        let id = props["device_id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or(HttpDecodeError::MissingDeviceId)?;
        let time = match props["timestamp"].as_str() {
            Some(t) => parse_iso8601(t)
                .ok_or_else(|| HttpDecodeError::Malformed(format!("timestamp {t:?}")))?,
            None => req.received,
        };
        let coords = &feature["geometry"]["coordinates"];
        let mut msg = Message {
            identity: Some(id),
            integrity: Integrity::NotCarried,
            ..Message::default()
        };
        if let (Some(lon), Some(lat)) = (f(&coords[0]), f(&coords[1])) {
            msg.fixes.extend(fix(
                time,
                lat,
                lon,
                f(&props["horizontal_accuracy"]),
                f(&props["speed"]).filter(|s| *s >= 0.0),
                f(&props["course"]).filter(|c| *c >= 0.0),
                f(&props["altitude"]),
                true,
            ));
        }
        let level = f(&props["battery_level"])
            .filter(|l| *l >= 0.0)
            .map(|l| (l * 100.0).round());
        let charging = props["battery_state"]
            .as_str()
            .map(|s| s == "charging" || s == "full");
        if level.is_some() || charging.is_some() {
            msg.status = Some(DeviceStatus {
                battery_percent: level,
                charging,
                ..DeviceStatus::default()
            });
        }
        messages.push(msg);
    }
    Ok(HttpDecoded {
        messages,
        reply: HttpReply {
            status: 200,
            content_type: Some("application/json"),
            body: br#"{"result":"ok"}"#.to_vec(),
        },
    })
}
