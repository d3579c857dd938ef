//! H02 (Sinotrack and many clones): text `*HQ,...#` and binary `$...` reports on one port.
//!
//! # Wire format
//!
//! Text: `*<maker>,<id>,<type>,<hhmmss>,<A|V>,<lat ddmm.mmmm>,<N|S>,<lon dddmm.mmmm>,<E|W>,
//! <speed kn>,<course>,<ddmmyy>,<status 8 hex>[,...]#`. Types: `V1` (position; also V2, V5,
//! V6, V8, V19, VI1 and the `V4` command reply that repeats a position), `VP1` (date only),
//! `HTBT`/`V0` (heartbeat, optional battery %), `LINK` (signal, satellites, battery, steps),
//! `NBR`/`V3` (cell towers), `SMS` (command reply text).
//!
//! Binary (fixed 32 or 45 bytes): `$`, BCD id (5), BCD hhmmss, ddmmyy, BCD latitude (4), a
//! battery byte, BCD longitude (9 digits) + a flag nibble (bit 1 valid, bit 2 north, bit 3
//! east), BCD speed (3 digits, knots), BCD course (3 digits), 32-bit status word.
//!
//! The status word is active-low: bit 0 cleared = vibration, bit 1 or 18 cleared = SOS, bit 2
//! cleared = overspeed, bit 19 cleared = power cut.
//!
//! Sources: the H02 protocol document circulated by Sinotrack ("H02 protocol v1.x"), and the
//! behaviour of Traccar's `H02FrameDecoder` / `H02ProtocolDecoder` as described in
//! `tests/vectors/README.md`. H02 carries no checksum: [`Integrity::NotCarried`].
//!
//! # Binary frame length
//!
//! Devices send either 32- or 45-byte binary reports and the frame does not say which. Unless
//! configured, the length is learnt from the first binary report of a connection: 32 when the
//! byte after 32 bytes starts another frame or when exactly 32 bytes are buffered, 45 otherwise.

use crate::util::{hex, utc, year2};
use crate::{
    CellTower, Codec, DecodeError, DecodedFix, DeviceEvent, DeviceStatus, EventKind, Framed,
    Framing, Integrity, KNOTS_TO_MPS, Message, NetworkScan, SkipReason,
};
use domain::{FixSource, LatLon, UnixMicros};

/// Largest text frame accepted (real reports are under 300 bytes; SMS replies under 1 KiB).
pub const MAX_FRAME: usize = 4096;

/// Per-connection H02 state.
#[derive(Debug, Clone, Default)]
pub struct H02Codec {
    /// The id of the last report that carried one (some reports arrive with an empty id).
    id: Option<String>,
    /// Binary report length: configured, or learnt from the first binary report.
    pub binary_len: Option<usize>,
}

/// An H02 TCP connection.
pub type H02Session = Framed<H02Codec>;

impl H02Session {
    pub fn h02() -> Self {
        Framed::new(H02Codec::default())
    }
}

fn is_marker(b: u8) -> bool {
    matches!(b, b'*' | b'$' | b'X')
}

/// Whether three BCD bytes read as a time of day (hh mm ss).
fn bcd_time(b: Option<&[u8]>) -> bool {
    let Some(&[h, m, s]) = b else {
        return false;
    };
    let dec = |x: u8| (x >> 4 < 10 && x & 0x0F < 10).then_some((x >> 4) * 10 + (x & 0x0F));
    matches!((dec(h), dec(m), dec(s)), (Some(h), Some(m), Some(s)) if h < 24 && m < 60 && s < 60)
}

/// A binary report with an 8-byte id (42 bytes in all) instead of the 5-byte one: the time
/// does not read as a time after a 5-byte id but does after an 8-byte one.
fn long_id_report(buf: &[u8]) -> bool {
    !bcd_time(buf.get(6..9)) && bcd_time(buf.get(9..12))
}

impl Codec for H02Codec {
    const MAX_FRAME: usize = MAX_FRAME;

    fn frame(&mut self, buf: &[u8]) -> Framing {
        let padding = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if padding > 0 {
            return Framing::Skip {
                len: padding,
                reason: SkipReason::Padding,
            };
        }
        if let Some(skip) = Framing::garbage_before(buf, is_marker) {
            return skip;
        }
        if buf.first() == Some(&b'*') {
            return match buf.iter().position(|&b| b == b'#') {
                Some(end) => {
                    let len = end + 1;
                    let trailing = buf
                        .get(len..)
                        .unwrap_or(&[])
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    Framing::Frame {
                        len,
                        consume: len + trailing,
                    }
                }
                None if buf.len() > MAX_FRAME => Framing::Skip {
                    len: 1,
                    reason: SkipReason::Oversize,
                },
                None => Framing::NeedMore,
            };
        }
        // A long-id report is told by its content, whatever length the connection has learnt.
        let len = match self.binary_len {
            _ if long_id_report(buf) => 42,
            Some(n) => n,
            None => {
                if buf.len() < 32 {
                    return Framing::NeedMore;
                }
                let n = match buf.get(32) {
                    None => 32,
                    Some(&b) if is_marker(b) => 32,
                    Some(_) if buf.len() >= 45 => 45,
                    Some(_) => return Framing::NeedMore,
                };
                self.binary_len = Some(n);
                n
            }
        };
        if buf.len() < len {
            Framing::NeedMore
        } else {
            Framing::Frame { len, consume: len }
        }
    }

    fn decode(&mut self, frame: &[u8], now: UnixMicros) -> Result<Message, DecodeError> {
        self.decode_frame(frame, now)
    }

    fn identity(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// `ddmm.mmmm` (or without the dot, or `-dd-mm.mmmm`) to degrees; the sign comes from the
/// hemisphere unless the value carries its own.
fn coordinate(value: &str, hemisphere: &str) -> Option<f64> {
    let v = value.trim();
    let degrees = if let Some(rest) = v.strip_prefix('-') {
        let (d, m) = rest.split_once('-')?;
        -(d.parse::<f64>().ok()? + m.parse::<f64>().ok()? / 60.0)
    } else {
        let number: f64 = if v.contains('.') {
            v.parse().ok()?
        } else {
            // No decimal point: the last four digits are minute decimals.
            let split = v.len().checked_sub(4)?;
            format!("{}.{}", v.get(..split)?, v.get(split..)?)
                .parse()
                .ok()?
        };
        let d = (number / 100.0).trunc();
        d + (number - d * 100.0) / 60.0
    };
    if !degrees.is_finite() {
        return None;
    }
    Some(match hemisphere {
        "S" | "W" => -degrees.abs(),
        "N" | "E" => degrees,
        _ => return None,
    })
}

fn status_events(status: u32) -> Vec<EventKind> {
    let cleared = |bit: u32| status & (1 << bit) == 0;
    let mut v = Vec::new();
    if cleared(1) || cleared(18) {
        v.push(EventKind::Sos);
    }
    if cleared(0) {
        v.push(EventKind::Vibration);
    }
    if cleared(2) {
        v.push(EventKind::Overspeed);
    }
    if cleared(19) {
        v.push(EventKind::PowerCut);
    }
    v
}

fn is_hex8(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hhmmss(s: &str) -> Option<(i64, i64, f64)> {
    if s.len() < 6 {
        return None;
    }
    Some((
        s.get(0..2)?.parse().ok()?,
        s.get(2..4)?.parse().ok()?,
        s.get(4..)?.parse().ok()?,
    ))
}

fn ddmmyy(s: &str) -> Option<(i64, i64, i64)> {
    if s.len() != 6 {
        return None;
    }
    Some((
        year2(s.get(4..6)?.parse().ok()?),
        s.get(2..4)?.parse().ok()?,
        s.get(0..2)?.parse().ok()?,
    ))
}

/// Server time as `yyyyMMddHHmmss` for V4 replies.
fn server_time(now: UnixMicros) -> String {
    let (y, mo, d, h, mi, s) = crate::util::civil(now);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// Sets the reporting interval: `*HQ,<id>,S71,<hhmmss>,22,<seconds>#` (H02 manual, command
/// S71 sub-function 22 "upload interval"; the time field is the server's UTC time).
pub fn encode_set_interval(id: &str, seconds: u32, now: UnixMicros) -> Vec<u8> {
    let (_, _, _, h, mi, s) = crate::util::civil(now);
    format!("*HQ,{id},S71,{h:02}{mi:02}{s:02},22,{seconds}#").into_bytes()
}

/// Asks for one position now: `*HQ,<id>,R1,<hhmmss>#` (H02 manual, command R1 "call the
/// roll"; the device answers with a V4,R1 report carrying a position).
pub fn encode_request_position(id: &str, now: UnixMicros) -> Vec<u8> {
    let (_, _, _, h, mi, s) = crate::util::civil(now);
    format!("*HQ,{id},R1,{h:02}{mi:02}{s:02}#").into_bytes()
}

impl H02Codec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one text or binary report. UDP datagrams are passed here directly.
    pub fn decode_frame(&mut self, frame: &[u8], now: UnixMicros) -> Result<Message, DecodeError> {
        match frame.first() {
            Some(b'*') => self.decode_text(frame, now),
            Some(b'$') | Some(b'X') => self.decode_binary(frame),
            _ => Err(DecodeError::Malformed(
                "H02 frame must start with '*' or '$'".into(),
            )),
        }
    }

    fn identify(&mut self, id: &str) -> Result<String, DecodeError> {
        if !id.is_empty() {
            self.id = Some(id.to_string());
        }
        self.id.clone().ok_or(DecodeError::NotIdentified)
    }

    fn decode_text(&mut self, frame: &[u8], now: UnixMicros) -> Result<Message, DecodeError> {
        let text = String::from_utf8_lossy(frame);
        let body = text.trim_end_matches(['\r', '\n']);
        let body = body.strip_prefix('*').unwrap_or(body);
        let body = body.strip_suffix('#').unwrap_or(body);
        let fields: Vec<&str> = body.split(',').collect();
        let marker = fields.first().copied().unwrap_or("HQ").to_ascii_uppercase();
        let raw_id = fields.get(1).copied().unwrap_or("").trim();
        let id = self.identify(raw_id)?;
        let kind = fields
            .get(2)
            .copied()
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase();
        let mut msg = Message {
            identity: Some(id.clone()),
            integrity: Integrity::NotCarried,
            ..Message::default()
        };

        match kind.as_str() {
            "HTBT" | "V0" => {
                msg.ack = Some(format!("*{marker},{id},{kind}#").into_bytes());
                if let Some(pct) = fields.get(3).and_then(|s| s.trim().parse::<f64>().ok()) {
                    msg.status = Some(DeviceStatus {
                        battery_percent: Some(pct),
                        ..DeviceStatus::default()
                    });
                }
                return Ok(msg);
            }
            "SMS" => {
                msg.command_reply = Some(fields.get(3..).map(|f| f.join(",")).unwrap_or_default());
                return Ok(msg);
            }
            "LINK" => {
                // LINK,hhmmss,rssi,satellites,battery,steps,turnovers,ddmmyy,status
                let num = |i: usize| fields.get(i).and_then(|s| s.trim().parse::<f64>().ok());
                msg.status = Some(DeviceStatus {
                    signal: num(4),
                    satellites: num(5).map(|v| v as u32),
                    battery_percent: num(6),
                    steps: num(7).map(|v| v as u64),
                    status_word: fields
                        .get(10)
                        .filter(|s| is_hex8(s))
                        .and_then(|s| u64::from_str_radix(s, 16).ok()),
                    ..DeviceStatus::default()
                });
                return Ok(msg);
            }
            _ => {}
        }

        // Position: find "<lat>,<N|S>,<lon>,<E|W>"; the validity flag and time precede it, speed,
        // course and date follow. This covers V1, V2, V4 (command replies), V5, V19, VI1, VP1.
        let hemi = |i: usize, a: &str, b: &str| fields.get(i).is_some_and(|f| *f == a || *f == b);
        let k = (4..fields.len()).find(|&k| hemi(k, "N", "S") && hemi(k + 2, "E", "W"));
        let status_word = fields
            .iter()
            .skip(3)
            .find(|f| is_hex8(f))
            .and_then(|s| u32::from_str_radix(s, 16).ok());
        let mut time = None;
        let mut fix_pos = None;
        if let Some(k) = k {
            let lat = fields
                .get(k - 1)
                .and_then(|v| coordinate(v, fields.get(k).copied().unwrap_or("")));
            let lon = fields
                .get(k + 1)
                .and_then(|v| coordinate(v, fields.get(k + 2).copied().unwrap_or("")));
            let validity = fields.get(k - 2).map(|s| s.trim()).unwrap_or("");
            let clock = fields.get(k - 3).and_then(|s| hhmmss(s.trim()));
            let speed = fields.get(k + 3).and_then(|s| s.trim().parse::<f64>().ok());
            let course = fields.get(k + 4).and_then(|s| s.trim().parse::<f64>().ok());
            let date = fields
                .iter()
                .skip(k + 5)
                .take(3)
                .find_map(|s| ddmmyy(s.trim()));
            time = match (date, clock) {
                (Some((y, mo, d)), Some((h, mi, s))) => utc(y, mo, d, h, mi, s),
                (Some((y, mo, d)), None) => utc(y, mo, d, 0, 0, 0.0),
                // Neither date nor time: the report is taken as current (receive time).
                _ => Some(now),
            };
            if let (Some(lat), Some(lon), Some(t)) = (lat, lon, time)
                && let Ok(position) = LatLon::new(lat, lon)
            {
                fix_pos = Some(position);
                msg.fixes.push(DecodedFix {
                    device_time: t,
                    position,
                    accuracy_m: None,
                    speed_mps: speed.map(|s| s * KNOTS_TO_MPS),
                    course_deg: course.filter(|c| (0.0..=360.0).contains(c)),
                    altitude_m: None,
                    source: FixSource::Gnss,
                    gnss_valid: validity == "A",
                    satellites: None,
                    integrity_suspect: false,
                    seq: None,
                });
            }
        }
        if let Some(sw) = status_word {
            msg.status = Some(DeviceStatus {
                status_word: Some(u64::from(sw)),
                ..DeviceStatus::default()
            });
            for kind in status_events(sw) {
                msg.events.push(DeviceEvent {
                    kind,
                    device_time: time,
                    position: fix_pos,
                    integrity_suspect: false,
                });
            }
        }
        if let Some(scan) = cells(&kind, &fields).filter(|s| !s.cells.is_empty()) {
            msg.network = Some(scan);
        }
        match kind.as_str() {
            "V1" => {
                msg.ack = Some(format!("*{marker},{id},V4,V1,{}#", server_time(now)).into_bytes())
            }
            "NBR" => {
                msg.ack = Some(format!("*{marker},{id},V4,NBR,{}#", server_time(now)).into_bytes())
            }
            "V4" => msg.command_reply = fields.get(3).map(|s| s.to_string()),
            _ => {}
        }
        if !msg.has_data() {
            msg.unsupported = Some(format!("H02 {kind} report without a position or status"));
        }
        Ok(msg)
    }

    fn decode_binary(&mut self, frame: &[u8]) -> Result<Message, DecodeError> {
        if frame.len() < 32 {
            return Err(DecodeError::Truncated(
                "H02 binary report is 32, 42 or 45 bytes",
            ));
        }
        let h = hex(frame);
        let digits = |a: usize, b: usize| -> Result<&str, DecodeError> {
            let s = h
                .get(a..b)
                .ok_or(DecodeError::Truncated("H02 binary field"))?;
            if s.bytes().all(|c| c.is_ascii_digit()) {
                Ok(s)
            } else {
                Err(DecodeError::Malformed(format!(
                    "H02 BCD field is not decimal: {s}"
                )))
            }
        };
        let num = |a: usize, b: usize| -> Result<i64, DecodeError> {
            digits(a, b)?
                .parse()
                .map_err(|_| DecodeError::Malformed("H02 BCD".into()))
        };
        // A 42-byte report carries an 8-byte id (a 15-digit IMEI and one pad nibble) instead of
        // the 5-byte one; every later field moves 3 bytes (6 hex digits) along.
        let long_id = frame.len() == 42 && long_id_report(frame);
        let o = if long_id { 6 } else { 0 };
        let id = if long_id {
            digits(2, 17)?.to_string()
        } else {
            digits(2, 12)?.to_string()
        };
        let id = self.identify(&id)?;
        let t = utc(
            year2(num(o + 22, o + 24)?),
            num(o + 20, o + 22)?,
            num(o + 18, o + 20)?,
            num(o + 12, o + 14)?,
            num(o + 14, o + 16)?,
            num(o + 16, o + 18)? as f64,
        );
        let lat_raw = num(o + 24, o + 32)? as f64 / 10_000.0; // ddmm.mmmm
        let lon_raw = num(o + 34, o + 43)? as f64 / 10_000.0; // dddmm.mmmm
        let flags = u8::from_str_radix(h.get(o + 43..o + 44).unwrap_or("0"), 16).unwrap_or(0);
        let speed = num(o + 44, o + 47)? as f64;
        let course = num(o + 47, o + 50)? as f64;
        let status = u32::from_str_radix(h.get(o + 50..o + 58).unwrap_or(""), 16)
            .map_err(|_| DecodeError::Malformed("H02 status word".into()))?;
        let dm = |v: f64| {
            let d = (v / 100.0).trunc();
            d + (v - d * 100.0) / 60.0
        };
        let lat = if flags & 0x4 != 0 {
            dm(lat_raw)
        } else {
            -dm(lat_raw)
        };
        let lon = if flags & 0x8 != 0 {
            dm(lon_raw)
        } else {
            -dm(lon_raw)
        };
        let mut msg = Message {
            identity: Some(id),
            integrity: Integrity::NotCarried,
            ..Message::default()
        };
        let position = LatLon::new(lat, lon).ok();
        if let (Some(position), Some(t)) = (position, t) {
            msg.fixes.push(DecodedFix {
                device_time: t,
                position,
                accuracy_m: None,
                speed_mps: Some(speed * KNOTS_TO_MPS),
                course_deg: Some(course).filter(|c| (0.0..=360.0).contains(c)),
                altitude_m: None,
                source: FixSource::Gnss,
                gnss_valid: flags & 0x2 != 0,
                satellites: None,
                integrity_suspect: false,
                seq: None,
            });
        }
        msg.status = Some(DeviceStatus {
            status_word: Some(u64::from(status)),
            ..DeviceStatus::default()
        });
        for kind in status_events(status) {
            msg.events.push(DeviceEvent {
                kind,
                device_time: t,
                position,
                integrity_suspect: false,
            });
        }
        Ok(msg)
    }
}

/// Cell lists: `NBR,hhmmss,MCC,MNC,TA,count,(LAC,cell id,signal)*count,ddmmyy,status` and
/// the cell-only `VP1,V,MCC,MNC,LAC,cell id,signal[Y LAC,cell id,signal]...`. Decimal fields;
/// a cell whose MCC is not a country code or whose LAC is 0 is dropped.
fn cells(kind: &str, f: &[&str]) -> Option<NetworkScan> {
    let s = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
    let tower = |mcc: u16, mnc: u16, lac: &str, cid: &str, rssi: &str| {
        let lac = lac.trim().parse::<u32>().ok().filter(|l| *l != 0)?;
        let cid = cid.trim().parse::<u64>().ok()?;
        Some(CellTower {
            mcc,
            mnc,
            lac,
            cell_id: cid,
            rssi: rssi.trim().parse::<i32>().ok().map(|r| -r.abs()),
        })
    };
    let country = |m: &str| m.parse::<u16>().ok().filter(|m| (200..=799).contains(m));
    match kind {
        "NBR" => {
            let mcc = country(s(4))?;
            let mnc = s(5).parse::<u16>().ok()?;
            let count = s(7).parse::<usize>().ok()?.min(32);
            let mut scan = NetworkScan::default();
            for c in 0..count {
                let i = 8 + 3 * c;
                scan.cells.extend(tower(mcc, mnc, s(i), s(i + 1), s(i + 2)));
            }
            let date = ddmmyy(s(8 + 3 * count));
            let clock = hhmmss(s(3));
            if let (Some((y, mo, d)), Some((h, mi, se))) = (date, clock) {
                scan.time = utc(y, mo, d, h, mi, se);
            }
            Some(scan)
        }
        "VP1" if s(3) == "V" => {
            let mcc = country(s(4))?;
            let mnc = s(5).parse::<u16>().ok()?;
            let rest = f.get(6..).unwrap_or_default().join(",");
            let mut scan = NetworkScan::default();
            for cell in rest.split(['Y', 'y']).take(32) {
                let v: Vec<&str> = cell.split(',').collect();
                if let [lac, cid, rssi] = v[..] {
                    scan.cells.extend(tower(mcc, mnc, lac, cid, rssi));
                }
            }
            Some(scan)
        }
        _ => None,
    }
}
