//! Watch protocol (SeTracker / "3G" kids' and elderly watches): `[SG*id*len*content]` text frames.
//!
//! # Wire format
//!
//! `[` maker (`SG`, `3G`, `CS`, `ZJ`...) `*` device id `*` [4-hex index `*`] 4-hex content
//! length `*` content `]`. Inside a frame 0x7D escapes bytes that would break framing:
//! `7D 01` = `}`, `7D 02` = `[`, `7D 03` = `]`, `7D 04` = `,`, `7D 05` = `*`. Content is a
//! keyword up to the first comma: `LK` (link: steps, tumbles, battery %), `UD`/`UD2`/`UD3`/
//! `UD_LTE`/`UD_WCDMA`/`WT` (position), `AL`/`AL_LTE`/`ALCUSTOMER1` (alarm with position), health
//! readings (`TEMP`, `btemp2`, `heart`, `PULSE`, `bphrt`, `oxygen`), `TKQ`, `INIT`, audio.
//!
//! Position body: ddMMyy, HHmmss (UTC), A|V, latitude (decimal degrees), N|S, longitude, E|W,
//! speed (km/h), course, altitude (m), satellites, signal, battery %, steps, tumbles, status
//! (hex), then cell towers and Wi-Fi. Status alarm bits: 0 and 17 low battery, 1 and 18 leave
//! fence, 2 and 19 enter fence, 14 power cut, 16 SOS, 20 removed from the wrist, 21/22 fall.
//!
//! **AL is always an alarm.** An `AL` frame whose status word names no known alarm yields an
//! `Other("general")` event, never nothing: watches use AL for the SOS button on models that do
//! not set bit 16.
//!
//! Sources: the "3G watch protocol" document circulated by Wonlex/SeTracker vendors, and
//! Traccar's `WatchFrameDecoder` / `WatchProtocolDecoder` behaviour as described in
//! `tests/vectors/README.md`.

use crate::util::{utc, year2};
use crate::{
    CellTower, Codec, DecodeError, DecodedFix, DeviceEvent, DeviceStatus, EventKind, Framed,
    Framing, Integrity, IntegrityFailure, KMH_TO_MPS, Message, NetworkScan, SkipReason,
    WifiAccessPoint,
};
use domain::{FixSource, LatLon, UnixMicros};

/// Largest frame accepted (32 KiB, enough for a voice-message chunk).
pub const MAX_FRAME: usize = 32 * 1024;

/// Finds the next `[...]` frame (balanced brackets) at the front of `buf`. The returned frame
/// is still escaped; [`unescape`] resolves 0x7D sequences.
pub fn frame(buf: &[u8]) -> Framing {
    if let Some(skip) = Framing::garbage_before(buf, |b| b == b'[') {
        return skip;
    }
    let mut depth = 0usize;
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Framing::Frame {
                        len: i + 1,
                        consume: i + 1,
                    };
                }
            }
            _ => {}
        }
        if i >= MAX_FRAME {
            return Framing::Skip {
                len: 1,
                reason: SkipReason::Oversize,
            };
        }
    }
    Framing::NeedMore
}

/// Resolves 0x7D escape sequences. Any other byte after 0x7D is an error.
pub fn unescape(frame: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(frame.len());
    let mut it = frame.iter();
    while let Some(&b) = it.next() {
        if b != 0x7D {
            out.push(b);
            continue;
        }
        out.push(match it.next() {
            Some(0x01) => 0x7D,
            Some(0x02) => b'[',
            Some(0x03) => b']',
            Some(0x04) => b',',
            Some(0x05) => b'*',
            other => {
                return Err(DecodeError::Malformed(format!(
                    "Watch: bad escape 0x7D {other:02x?}"
                )));
            }
        });
    }
    Ok(out)
}

/// Builds a frame `[maker*id*[index*]len*content]` (content not escaped: callers pass text).
pub fn encode_frame(maker: &str, id: &str, index: Option<&str>, content: &str) -> Vec<u8> {
    let index = index.map(|i| format!("{i}*")).unwrap_or_default();
    format!("[{maker}*{id}*{index}{:04x}*{content}]", content.len()).into_bytes()
}

/// Sets the upload interval: `UPLOAD,<seconds>` (3G watch protocol §3.3).
pub fn encode_set_interval(maker: &str, id: &str, seconds: u32) -> Vec<u8> {
    encode_frame(maker, id, None, &format!("UPLOAD,{seconds}"))
}

/// Requests an immediate position: `CR` (3G watch protocol §3.2; the watch answers with UD).
pub fn encode_request_position(maker: &str, id: &str) -> Vec<u8> {
    encode_frame(maker, id, None, "CR")
}

/// Per-connection Watch state.
#[derive(Debug, Clone, Default)]
pub struct WatchCodec {
    id: Option<String>,
}

/// A Watch TCP connection.
pub type WatchSession = Framed<WatchCodec>;

impl WatchSession {
    pub fn watch() -> Self {
        Framed::new(WatchCodec::default())
    }
}

impl Codec for WatchCodec {
    const MAX_FRAME: usize = MAX_FRAME;

    fn frame(&mut self, buf: &[u8]) -> Framing {
        frame(buf)
    }

    fn decode(&mut self, frame: &[u8], now: UnixMicros) -> Result<Message, DecodeError> {
        self.decode_frame(&unescape(frame)?, now)
    }

    fn identity(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

fn is_hex4(s: &[u8]) -> bool {
    s.len() == 4 && s.iter().all(u8::is_ascii_hexdigit)
}

fn status_alarms(status: u32) -> Vec<EventKind> {
    let bit = |b: u32| status & (1 << b) != 0;
    let mut v = Vec::new();
    if bit(16) {
        v.push(EventKind::Sos);
    }
    if bit(20) {
        v.push(EventKind::Removal);
    }
    if bit(21) || bit(22) {
        v.push(EventKind::FallDown);
    }
    if bit(14) {
        v.push(EventKind::PowerCut);
    }
    if bit(0) || bit(17) {
        v.push(EventKind::LowBattery);
    }
    if bit(1) || bit(18) {
        v.push(EventKind::GeofenceExit);
    }
    if bit(2) || bit(19) {
        v.push(EventKind::GeofenceEnter);
    }
    v
}

impl WatchCodec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one frame whose 0x7D escapes are already resolved (see [`unescape`]).
    pub fn decode_frame(&mut self, frame: &[u8], _now: UnixMicros) -> Result<Message, DecodeError> {
        let inner = frame
            .strip_prefix(b"[")
            .and_then(|f| f.strip_suffix(b"]"))
            .ok_or_else(|| DecodeError::Malformed("Watch frame must be [..]".into()))?;
        let mut parts = inner.splitn(3, |&b| b == b'*');
        let maker = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let rest = parts.next().ok_or(DecodeError::Truncated("Watch header"))?;
        let first = rest
            .get(..4)
            .ok_or(DecodeError::Truncated("Watch length field"))?;
        if !is_hex4(first) || rest.get(4) != Some(&b'*') {
            return Err(DecodeError::Malformed(
                "Watch length field is not 4 hex digits".into(),
            ));
        }
        let after = rest.get(5..).unwrap_or_default();
        // A second 4-hex field followed by '*' means the first one was an index (ZJ devices).
        let (index, len_field, content) = match (after.get(..4), after.get(4)) {
            (Some(l), Some(b'*')) if is_hex4(l) => {
                (Some(first), l, after.get(5..).unwrap_or_default())
            }
            _ => (None, first, after),
        };
        if id.is_empty() {
            return Err(DecodeError::Malformed(
                "Watch frame without device id".into(),
            ));
        }
        self.id = Some(id.clone());
        let declared =
            usize::from_str_radix(std::str::from_utf8(len_field).unwrap_or("0"), 16).unwrap_or(0);
        let integrity = if declared == content.len() {
            Integrity::Ok
        } else {
            Integrity::Failed(vec![IntegrityFailure::Length {
                declared,
                actual: content.len(),
            }])
        };
        let suspect = integrity.is_suspect();
        let index = index.map(|i| String::from_utf8_lossy(i).into_owned());
        let keyword_end = content
            .iter()
            .position(|&b| b == b',')
            .unwrap_or(content.len());
        let keyword =
            String::from_utf8_lossy(content.get(..keyword_end).unwrap_or_default()).into_owned();
        let mut msg = Message {
            identity: Some(id.clone()),
            integrity,
            ..Message::default()
        };
        let reply = |c: &str| Some(encode_frame(&maker, &id, index.as_deref(), c));

        let text = String::from_utf8_lossy(content).into_owned();
        let fields: Vec<&str> = text.split(',').collect();
        let num = |i: usize| fields.get(i).and_then(|s| s.trim().parse::<f64>().ok());
        match keyword.as_str() {
            "LK" => {
                msg.ack = reply("LK");
                if fields.len() >= 4 {
                    msg.status = Some(DeviceStatus {
                        steps: num(1).map(|v| v as u64),
                        battery_percent: num(3),
                        ..DeviceStatus::default()
                    });
                }
            }
            k if k.starts_with("UD") || k.starts_with("AL") || k == "WT" => {
                let alarm_frame = k.starts_with("AL");
                if alarm_frame {
                    msg.ack = reply("AL");
                }
                self.position(&fields, suspect, alarm_frame, &mut msg)?;
            }
            "TEMP" => {
                msg.status = Some(DeviceStatus {
                    body_temp_c: num(1),
                    ..DeviceStatus::default()
                })
            }
            "btemp2" => {
                msg.status = Some(DeviceStatus {
                    body_temp_c: num(2),
                    ..DeviceStatus::default()
                })
            }
            "heart" | "PULSE" => {
                msg.status = Some(DeviceStatus {
                    heart_rate_bpm: num(1),
                    ..DeviceStatus::default()
                })
            }
            "bphrt" => {
                msg.status = Some(DeviceStatus {
                    heart_rate_bpm: num(3),
                    ..DeviceStatus::default()
                })
            }
            "oxygen" => {
                msg.status = Some(DeviceStatus {
                    blood_oxygen_pct: num(2),
                    ..DeviceStatus::default()
                })
            }
            "TKQ" | "TKQ2" => msg.ack = reply(&keyword),
            "INIT" => msg.ack = reply("INIT,1"),
            "JXTK" => {
                msg.ack = reply("JXTKR,1");
                msg.unsupported = Some("Watch JXTK audio chunk".into());
            }
            other => msg.unsupported = Some(format!("Watch {other} not decoded")),
        }
        Ok(msg)
    }

    fn position(
        &self,
        f: &[&str],
        suspect: bool,
        alarm_frame: bool,
        msg: &mut Message,
    ) -> Result<(), DecodeError> {
        let s = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
        let n = |i: usize| s(i).parse::<f64>().ok();
        let date = s(1);
        let clock = s(2);
        let two = |t: &str, a: usize| t.get(a..a + 2).and_then(|x| x.parse::<i64>().ok());
        let time = match (
            two(date, 0),
            two(date, 2),
            two(date, 4),
            two(clock, 0),
            two(clock, 2),
            two(clock, 4),
        ) {
            (Some(d), Some(mo), Some(y), Some(h), Some(mi), Some(se)) => {
                utc(year2(y), mo, d, h, mi, se as f64)
            }
            _ => None,
        };
        let coord = |v: Option<f64>, hemi: &str, neg: &str| {
            v.map(|v| if hemi == neg { -v.abs() } else { v })
        };
        let lat = coord(n(4), s(5), "S");
        let lon = coord(n(6), s(7), "W");
        let position = match (lat, lon) {
            (Some(lat), Some(lon)) => LatLon::new(lat, lon).ok(),
            _ => None,
        };
        let status_word = f
            .get(16)
            .map(|x| x.trim())
            .filter(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_hexdigit()));
        let status = status_word.and_then(|x| u32::from_str_radix(x, 16).ok());
        if let (Some(position), Some(t)) = (position, time) {
            msg.fixes.push(DecodedFix {
                device_time: t,
                position,
                accuracy_m: None,
                speed_mps: n(8).map(|v| v * KMH_TO_MPS).filter(|v| *v >= 0.0),
                course_deg: n(9).filter(|c| (0.0..=360.0).contains(c)),
                altitude_m: n(10),
                source: FixSource::Gnss,
                gnss_valid: s(3) == "A",
                satellites: n(11).map(|v| v as u32),
                integrity_suspect: suspect,
                seq: None,
            });
        }
        msg.status = Some(DeviceStatus {
            battery_percent: n(13),
            signal: n(12),
            satellites: n(11).map(|v| v as u32),
            steps: n(14).map(|v| v as u64),
            status_word: status.map(u64::from),
            ..DeviceStatus::default()
        });
        let scan = network(f, time);
        if !scan.cells.is_empty() || !scan.wifi.is_empty() {
            msg.network = Some(scan);
        }
        let mut kinds = status.map(status_alarms).unwrap_or_default();
        if alarm_frame && kinds.is_empty() {
            kinds.push(EventKind::Other("general".into()));
        }
        for kind in kinds {
            msg.events.push(DeviceEvent {
                kind,
                device_time: time,
                position,
                integrity_suspect: suspect,
            });
        }
        Ok(())
    }
}

/// The cell and Wi-Fi lists after the status word of a position report: cell count, timing
/// advance, MCC, MNC, then (LAC, cell id, signal) per cell; Wi-Fi count, then (name, MAC,
/// signal) per access point. Some firmware writes LAC and cell id in hex (with letters);
/// a cell whose MCC is not a country code is dropped, as are access points without a MAC.
fn network(f: &[&str], time: Option<UnixMicros>) -> NetworkScan {
    let s = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
    let mut scan = NetworkScan {
        time,
        ..NetworkScan::default()
    };
    let mut i = 17;
    let Ok(cells) = s(i).parse::<usize>() else {
        return scan;
    };
    i += 1;
    if cells > 0 {
        i += 1; // timing advance / serving-cell flag
        let mcc = s(i).parse::<u16>().ok();
        let mnc = s(i + 1).parse::<u16>().ok();
        i += 2;
        for _ in 0..cells.min(32) {
            let (lac, cid, rssi) = (s(i), s(i + 1), s(i + 2));
            i += 3;
            let hex = |v: &str| v.bytes().any(|b| b.is_ascii_alphabetic());
            let radix = if hex(lac) || hex(cid) { 16 } else { 10 };
            if let (Some(mcc), Some(mnc), Ok(lac), Ok(cid)) = (
                mcc.filter(|m| (200..=799).contains(m)),
                mnc,
                u32::from_str_radix(lac, radix),
                u64::from_str_radix(cid, radix),
            ) && lac != 0
            {
                scan.cells.push(CellTower {
                    mcc,
                    mnc,
                    lac,
                    cell_id: cid,
                    rssi: rssi.parse::<i32>().ok().map(|r| -r.abs()),
                });
            }
        }
    }
    if let Ok(aps) = s(i).parse::<usize>() {
        i += 1;
        for _ in 0..aps.min(64) {
            let (mac, rssi) = (s(i + 1), s(i + 2));
            i += 3;
            let ok = mac.len() == 17
                && mac
                    .split(':')
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
            if ok && mac != "00:00:00:00:00:00" {
                scan.wifi.push(WifiAccessPoint {
                    mac: mac.to_ascii_lowercase(),
                    rssi: rssi.parse::<i32>().ok().map(|r| -r.abs()),
                });
            }
        }
    }
    scan
}
