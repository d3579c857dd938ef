//! Teltonika (FMB/FMC/FMM/TAT series): codec 8, 8 Extended and 16 AVL data over TCP and UDP,
//! codec 7 (GH3000 personal trackers, see [`read_gh3000_records`]), codec 12/13 command replies.
//!
//! # Wire format (TCP)
//!
//! A connection starts with the IMEI packet: 2-byte length N and N ASCII digits; the server
//! answers `01` to accept (`00` to refuse). Then AVL packets: 4 zero bytes, 4-byte data length
//! D, D bytes of data (codec id, record count, records, record count again) and a 4-byte field
//! holding the CRC-16/IBM (ARC) of the data. The server answers the number of records accepted
//! as a 4-byte big-endian integer. A single `FF` byte is a keep-alive.
//!
//! A codec 8 record: time (8 bytes, Unix ms), priority (0 low, 1 high, 2 panic), longitude and
//! latitude (signed 32-bit, 1e-7 degrees), altitude (i16, m), angle (u16), satellites (u8; 0 =
//! no fix), speed (u16, km/h), then IO elements grouped by value size (1, 2, 4, 8 bytes). Codec
//! 8E widens IO ids and counts to 2 bytes and adds variable-length values; codec 16 has 2-byte
//! ids, 1-byte counts and a generation-type byte.
//!
//! UDP: 2-byte length, 2-byte packet id, packet type, AVL packet id, 2-byte IMEI length, IMEI,
//! then codec, count, records, count (no preamble, no CRC). The answer is `00 05`, packet id,
//! `01`, AVL packet id, records accepted (1 byte).
//!
//! Sources: Teltonika wiki "Codec" pages (Codec 8, 8 Extended, 16, 12, 13) and "Teltonika Data
//! Sending Protocols"; Traccar's `TeltonikaFrameDecoder` behaviour as described in
//! `tests/vectors/README.md`.
//!
//! # IO elements mapped
//!
//! 66 external voltage (mV), 67 battery voltage (mV), 113 battery %, 116 charger connected,
//! 21 GSM signal (0..5), 69 GNSS status, 252 unplug (power cut), 247 crash, 249/318 jamming,
//! 236 alarm. Priority 2 ("panic") records raise an SOS event.

use crate::util::{Reader, crc16_ibm};
use crate::{
    CellTower, Codec, DecodeError, DecodedFix, DeviceEvent, DeviceStatus, EventKind, Framed,
    Framing, Integrity, IntegrityFailure, KMH_TO_MPS, Message, NetworkScan, SkipReason,
};
use domain::{FixSource, LatLon, UnixMicros};

/// Largest TCP frame accepted (Teltonika devices send at most ~1.3 KB per packet; Traccar
/// allows 32 KiB).
pub const MAX_FRAME: usize = 32 * 1024;

pub const CODEC_GH3000: u8 = 0x07;
pub const CODEC_8: u8 = 0x08;
pub const CODEC_8E: u8 = 0x8E;
pub const CODEC_12: u8 = 0x0C;
pub const CODEC_13: u8 = 0x0D;
pub const CODEC_16: u8 = 0x10;

/// Finds the next TCP frame: `FF` ping, IMEI packet, or AVL packet.
pub fn frame(buf: &[u8]) -> Framing {
    let Some(&first) = buf.first() else {
        return Framing::NeedMore;
    };
    if first == 0xFF {
        return Framing::Frame { len: 1, consume: 1 };
    }
    let Some(lead) = buf.get(..2) else {
        return Framing::NeedMore;
    };
    let n = usize::from(u16::from_be_bytes([
        lead.first().copied().unwrap_or(0),
        lead.get(1).copied().unwrap_or(0),
    ]));
    if n != 0 {
        // IMEI packet: 15–17 digits in practice; anything else is not a frame start.
        if n > 64 {
            return Framing::Skip {
                len: 1,
                reason: SkipReason::Garbage,
            };
        }
        let total = 2 + n;
        return match buf.get(2..total) {
            None => Framing::NeedMore,
            Some(d) if d.iter().all(u8::is_ascii_digit) => Framing::Frame {
                len: total,
                consume: total,
            },
            Some(_) => Framing::Skip {
                len: 1,
                reason: SkipReason::Garbage,
            },
        };
    }
    let Some(head) = buf.get(..8) else {
        return Framing::NeedMore;
    };
    if head.get(..4) != Some(&[0, 0, 0, 0][..]) {
        return Framing::Skip {
            len: 1,
            reason: SkipReason::Garbage,
        };
    }
    let d = head
        .get(4..8)
        .map(|b| b.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x)))
        .unwrap_or(0);
    let total = d.saturating_add(12);
    if total > MAX_FRAME {
        return Framing::Skip {
            len: 4,
            reason: SkipReason::Oversize,
        };
    }
    if buf.len() < total {
        Framing::NeedMore
    } else {
        Framing::Frame {
            len: total,
            consume: total,
        }
    }
}

/// Per-connection Teltonika state.
#[derive(Debug, Clone, Default)]
pub struct TeltonikaCodec {
    imei: Option<String>,
    /// Records carry a fifth IO group of 16-byte values after the 8-byte group (FMB firmware
    /// with Bluetooth sensors; Traccar's `teltonika.extended`).
    pub extended: bool,
}

/// A Teltonika TCP connection.
pub type TeltonikaSession = Framed<TeltonikaCodec>;

impl TeltonikaSession {
    pub fn teltonika() -> Self {
        Framed::new(TeltonikaCodec::default())
    }
}

impl Codec for TeltonikaCodec {
    const MAX_FRAME: usize = MAX_FRAME;

    fn frame(&mut self, buf: &[u8]) -> Framing {
        frame(buf)
    }

    fn decode(&mut self, frame: &[u8], now: UnixMicros) -> Result<Message, DecodeError> {
        self.decode_frame(frame, now)
    }

    fn identity(&self) -> Option<&str> {
        self.imei.as_deref()
    }
}

/// Builds a codec 12 command packet (type 0x05) carrying `text`.
pub fn encode_command(text: &str) -> Vec<u8> {
    let mut data = vec![CODEC_12, 1, 0x05];
    data.extend_from_slice(&(text.len() as u32).to_be_bytes());
    data.extend_from_slice(text.as_bytes());
    data.push(1);
    let mut out = vec![0, 0, 0, 0];
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let crc = crc16_ibm(&data);
    out.extend_from_slice(&data);
    out.extend_from_slice(&u32::from(crc).to_be_bytes());
    out
}

/// Sets the period of records while moving: `setparam 10050:<seconds>` (FMB parameter 10050,
/// "Home network, on moving, min period", Teltonika wiki "FMB120 Data acquisition settings").
/// Other models number parameters differently; check the model's parameter list.
pub fn encode_set_interval(seconds: u32) -> Vec<u8> {
    encode_command(&format!("setparam 10050:{seconds}"))
}

/// Requests the current position: `getgps` (Teltonika SMS/GPRS command list); the device
/// answers with a codec 12 text reply containing the coordinates.
pub fn encode_request_position() -> Vec<u8> {
    encode_command("getgps")
}

struct RecordCtx {
    suspect: bool,
}

fn read_records(
    r: &mut Reader<'_>,
    codec: u8,
    extended: bool,
    ctx: &RecordCtx,
    msg: &mut Message,
) -> Result<usize, DecodeError> {
    let count = usize::from(r.u8()?);
    for _ in 0..count {
        let time = UnixMicros::from_millis(r.u64()? as i64);
        let priority = r.u8()?;
        let lon = f64::from(r.i32()?) / 1e7;
        let lat = f64::from(r.i32()?) / 1e7;
        let alt = r.u16()? as i16;
        let angle = r.u16()?;
        let sats = r.u8()?;
        let speed = r.u16()?;
        let wide = codec == CODEC_8E || codec == CODEC_16;
        let count_wide = codec == CODEC_8E;
        let id = |r: &mut Reader<'_>| {
            if wide {
                r.u16().map(u32::from)
            } else {
                r.u8().map(u32::from)
            }
        };
        let cnt = |r: &mut Reader<'_>| {
            if count_wide {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            }
        };
        let _event_id = id(r)?;
        if codec == CODEC_16 {
            r.u8()?; // generation type
        }
        cnt(r)?; // total IO count
        let mut status = DeviceStatus {
            satellites: Some(u32::from(sats)),
            ..DeviceStatus::default()
        };
        let position = LatLon::new(lat, lon).ok();
        let mut events = Vec::new();
        let mut cell = CellIo::default();
        if priority == 2 {
            events.push(EventKind::Sos);
        }
        for size in [1usize, 2, 4, 8] {
            let n = cnt(r)?;
            for _ in 0..n {
                let io = id(r)?;
                let v = r.uint(size)?;
                apply_io(io, v, &mut status, &mut events);
                cell.apply(io, v);
            }
        }
        if extended {
            // A group of 16-byte values (Bluetooth sensor data), none of which Bulwark maps.
            let n = cnt(r)?;
            for _ in 0..n {
                id(r)?;
                r.skip(16)?;
            }
        }
        if codec == CODEC_8E {
            let n = cnt(r)?;
            for _ in 0..n {
                id(r)?;
                let len = usize::from(r.u16()?);
                r.skip(len)?;
            }
        }
        if let Some(position) = position {
            msg.fixes.push(DecodedFix {
                device_time: time,
                position,
                accuracy_m: None,
                speed_mps: Some(f64::from(speed) * KMH_TO_MPS),
                course_deg: Some(f64::from(angle)).filter(|c| *c <= 360.0),
                altitude_m: Some(f64::from(alt)),
                source: FixSource::Gnss,
                gnss_valid: sats > 0,
                satellites: Some(u32::from(sats)),
                integrity_suspect: ctx.suspect,
                seq: None,
            });
        }
        for kind in events {
            msg.events.push(DeviceEvent {
                kind,
                device_time: Some(time),
                position,
                integrity_suspect: ctx.suspect,
            });
        }
        if let Some(tower) = cell.tower()
            && msg
                .network
                .as_ref()
                .is_none_or(|n| n.time.is_none_or(|t| t <= time))
        {
            msg.network = Some(NetworkScan {
                time: Some(time),
                cells: vec![tower],
                wifi: Vec::new(),
            });
        }
        // The newest record's status is the one that describes the device now.
        let newer = msg.fixes.last().is_none_or(|f| f.device_time <= time);
        if newer || msg.status.is_none() {
            msg.status = Some(status);
        }
    }
    Ok(count)
}

/// Seconds from the Unix epoch to 2007-01-01 00:00:00 UTC, the GH3000 time origin.
const GH3000_EPOCH_S: i64 = 1_167_609_600;

/// Codec 7 (GH3000 personal trackers). Each record: a 4-byte time (the low 30 bits count
/// seconds since 2007-01-01 UTC; the top 2 bits are the priority), a global mask (bit 0
/// location block present; bits 1, 2, 3: 1-, 2- and 4-byte IO groups present), then the
/// location block: a location mask and, by its bits, latitude and longitude (bit 0, two IEEE
/// 754 floats, latitude first), altitude (bit 1, u16 m), course (bit 2, u8 in 1/256 turns),
/// speed (bit 3, u8 km/h), satellites (bit 4), LAC and cell id (bit 5, u16 each), signal
/// (bit 6, u8) and operator code (bit 7, u32 MCC+MNC). IO groups are a 1-byte count of 1-byte
/// id + value pairs. A record without a location block carries only IO values (no fix).
///
/// IO mapped: 1 battery %, 2 USB (charging), 67 battery mV, 222 SOS button (1 = pressed).
fn read_gh3000_records(
    r: &mut Reader<'_>,
    ctx: &RecordCtx,
    msg: &mut Message,
) -> Result<usize, DecodeError> {
    let count = usize::from(r.u8()?);
    for _ in 0..count {
        let raw = r.u32()?;
        let time = UnixMicros((i64::from(raw & 0x3fff_ffff) + GH3000_EPOCH_S) * 1_000_000);
        let global = r.u8()?;
        let mut status = DeviceStatus::default();
        let mut position = None;
        let mut fix = None;
        let mut tower = None;
        if global & 0x01 != 0 {
            let loc = r.u8()?;
            let mut coords = None;
            if loc & 0x01 != 0 {
                let lat = f64::from(f32::from_bits(r.u32()?));
                let lon = f64::from(f32::from_bits(r.u32()?));
                coords = Some((lat, lon));
            }
            let alt = if loc & 0x02 != 0 {
                Some(f64::from(r.u16()?))
            } else {
                None
            };
            let course = if loc & 0x04 != 0 {
                Some(f64::from(r.u8()?) * 360.0 / 256.0)
            } else {
                None
            };
            let speed = if loc & 0x08 != 0 {
                Some(f64::from(r.u8()?) * KMH_TO_MPS)
            } else {
                None
            };
            let sats = if loc & 0x10 != 0 {
                Some(u32::from(r.u8()?))
            } else {
                None
            };
            status.satellites = sats;
            let mut cell = None;
            if loc & 0x20 != 0 {
                cell = Some((u32::from(r.u16()?), u64::from(r.u16()?)));
            }
            if loc & 0x40 != 0 {
                status.signal = Some(f64::from(r.u8()?));
            }
            if loc & 0x80 != 0 {
                let op = u64::from(r.u32()?);
                if let Some((lac, cid)) = cell {
                    tower = CellIo {
                        cid: Some(cid),
                        lac: Some(lac),
                        operator: Some(op),
                    }
                    .tower();
                }
            }
            position = coords.and_then(|(lat, lon)| LatLon::new(lat, lon).ok());
            fix = position.map(|position| DecodedFix {
                device_time: time,
                position,
                accuracy_m: None,
                speed_mps: speed,
                course_deg: course,
                altitude_m: alt,
                source: FixSource::Gnss,
                // The tracker sends a location block only with a fix; a satellite count of 0
                // says otherwise.
                gnss_valid: sats.is_none_or(|s| s > 0),
                satellites: sats,
                integrity_suspect: ctx.suspect,
                seq: None,
            });
        }
        let mut events = Vec::new();
        for (bit, size) in [(0x02u8, 1usize), (0x04, 2), (0x08, 4)] {
            if global & bit == 0 {
                continue;
            }
            let n = r.u8()?;
            for _ in 0..n {
                let id = r.u8()?;
                let v = r.uint(size)?;
                match id {
                    1 => status.battery_percent = Some(v as f64),
                    2 => status.charging = Some(v == 1),
                    67 => status.battery_volts = Some(v as f64 / 1000.0),
                    222 if v == 1 => events.push(EventKind::Sos),
                    _ => {}
                }
            }
        }
        if let Some(f) = fix {
            msg.fixes.push(f);
        }
        for kind in events {
            msg.events.push(DeviceEvent {
                kind,
                device_time: Some(time),
                position,
                integrity_suspect: ctx.suspect,
            });
        }
        if let Some(tower) = tower {
            msg.network = Some(NetworkScan {
                time: Some(time),
                cells: vec![tower],
                wifi: Vec::new(),
            });
        }
        if !status.is_empty() {
            msg.status = Some(status);
        }
    }
    Ok(count)
}

/// The serving cell from a record's IO elements: 205 GSM cell id, 206 GSM area code (LAC),
/// 241 active GSM operator (MCC followed by a 2- or 3-digit MNC, e.g. 45005, 310260).
#[derive(Debug, Default)]
struct CellIo {
    cid: Option<u64>,
    lac: Option<u32>,
    operator: Option<u64>,
}

impl CellIo {
    fn apply(&mut self, id: u32, v: u64) {
        match id {
            205 => self.cid = Some(v),
            206 => self.lac = u32::try_from(v).ok(),
            241 => self.operator = Some(v),
            _ => {}
        }
    }

    fn tower(&self) -> Option<CellTower> {
        let (op, lac, cid) = (self.operator?, self.lac?, self.cid?);
        let (mcc, mnc) = if op >= 100_000 {
            (op / 1000, op % 1000)
        } else {
            (op / 100, op % 100)
        };
        let mcc = u16::try_from(mcc)
            .ok()
            .filter(|m| (200..=799).contains(m))?;
        (lac != 0 && cid != 0).then_some(CellTower {
            mcc,
            mnc: u16::try_from(mnc).ok()?,
            lac,
            cell_id: cid,
            rssi: None,
        })
    }
}

fn apply_io(id: u32, v: u64, st: &mut DeviceStatus, events: &mut Vec<EventKind>) {
    match id {
        21 => st.signal = Some(v as f64),
        66 => st.power_volts = Some(v as f64 / 1000.0),
        67 => st.battery_volts = Some(v as f64 / 1000.0),
        113 => st.battery_percent = Some(v as f64),
        116 => st.charging = Some(v != 0),
        252 if v != 0 => events.push(EventKind::PowerCut),
        247 if v != 0 => events.push(EventKind::Other("accident".into())),
        249 | 318 if v != 0 => events.push(EventKind::Jamming),
        236 if v != 0 => events.push(EventKind::Other("general".into())),
        // FMB IO ids as Teltonika's wiki and Traccar's decoder name them: 246 towing, 251
        // idling, 253 green driving (1 acceleration, 2 braking, 3 cornering), 155 geofence
        // zone 01 and 175 auto-geofence (1 entered, 0 left). Each reaches staff as a device
        // alarm with its code; the engine's episode keeps a repeated value to one alert.
        246 if v != 0 => events.push(EventKind::Other("tow".into())),
        251 if v != 0 => events.push(EventKind::Other("idle".into())),
        253 => match v {
            1 => events.push(EventKind::Other("hardAcceleration".into())),
            2 => events.push(EventKind::Other("hardBraking".into())),
            3 => events.push(EventKind::Other("hardCornering".into())),
            _ => {}
        },
        155 | 175 => match v {
            1 => events.push(EventKind::GeofenceEnter),
            0 => events.push(EventKind::GeofenceExit),
            _ => {}
        },
        _ => {}
    }
}

/// Decodes the body shared by TCP and UDP: codec, count, records (or command), count.
fn decode_data(
    data: &[u8],
    extended: bool,
    suspect: bool,
    msg: &mut Message,
) -> Result<usize, DecodeError> {
    let mut r = Reader::new(data);
    let codec = r.u8()?;
    let ctx = RecordCtx { suspect };
    match codec {
        CODEC_8 | CODEC_8E | CODEC_16 | CODEC_GH3000 => {
            let count = if codec == CODEC_GH3000 {
                read_gh3000_records(&mut r, &ctx, msg)?
            } else {
                read_records(&mut r, codec, extended, &ctx, msg)?
            };
            let trailer = r.u8().ok().map(usize::from);
            if trailer != Some(count) {
                return Err(DecodeError::Malformed(format!(
                    "Teltonika record count {count} != trailer {trailer:?}"
                )));
            }
            Ok(count)
        }
        CODEC_12 | CODEC_13 => {
            let count = usize::from(r.u8()?);
            for _ in 0..count {
                let kind = r.u8()?;
                let size = r.u32()? as usize;
                let mut body = r.bytes(size.min(r.remaining()))?;
                if codec == CODEC_13 {
                    body = body.get(4..).unwrap_or_default(); // timestamp
                }
                // Type 0x06 is a device response; 0x05 a command; other types (photos) are binary.
                if kind == 0x05 || kind == 0x06 {
                    msg.command_reply = Some(String::from_utf8_lossy(body).into_owned());
                } else {
                    msg.unsupported = Some(format!(
                        "Teltonika codec 0x{codec:02x} message type 0x{kind:02x} (camera/file transfer)"
                    ));
                }
            }
            Ok(count)
        }
        other => Err(DecodeError::Unsupported(format!(
            "Teltonika codec 0x{other:02x} is not decoded"
        ))),
    }
}

impl TeltonikaCodec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one TCP frame as produced by [`frame`].
    pub fn decode_frame(&mut self, frame: &[u8], _now: UnixMicros) -> Result<Message, DecodeError> {
        if frame == [0xFF] {
            return Ok(Message {
                identity: self.imei.clone(),
                ..Message::default()
            });
        }
        let mut r = Reader::new(frame);
        let lead = r.u16()?;
        if lead != 0 {
            let imei = String::from_utf8_lossy(r.bytes(usize::from(lead))?).into_owned();
            if imei.is_empty() || !imei.bytes().all(|b| b.is_ascii_digit()) {
                return Err(DecodeError::Malformed(
                    "Teltonika IMEI packet is not digits".into(),
                ));
            }
            self.imei = Some(imei.clone());
            return Ok(Message {
                identity: Some(imei),
                ack: Some(vec![0x01]),
                ..Message::default()
            });
        }
        let Some(imei) = self.imei.clone() else {
            return Err(DecodeError::NotIdentified);
        };
        r.u16()?;
        let declared = r.u32()? as usize;
        let n = frame.len();
        let actual = n.saturating_sub(12);
        let data = frame.get(8..n.saturating_sub(4).max(8)).unwrap_or_default();
        let crc_field = frame.get(n.saturating_sub(4)..).unwrap_or_default();
        let crc = crc_field.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b));
        let mut failures = Vec::new();
        if declared != actual {
            failures.push(IntegrityFailure::Length { declared, actual });
        }
        let computed = u32::from(crc16_ibm(data));
        if computed != crc {
            failures.push(IntegrityFailure::Crc {
                declared: crc,
                computed,
            });
        }
        let integrity = Integrity::from_failures(failures);
        let mut msg = Message {
            identity: Some(imei),
            integrity: integrity.clone(),
            ..Message::default()
        };
        let codec = data.first().copied();
        let count = match decode_data(data, self.extended, integrity.is_suspect(), &mut msg) {
            Ok(c) => c,
            // A frame shorter than its declared length sometimes lacks the CRC field: the records
            // then run to the end of the frame. Retry on that span before rejecting.
            Err(e) if declared > actual => {
                msg = Message {
                    identity: msg.identity.clone(),
                    integrity: integrity.clone(),
                    ..Message::default()
                };
                decode_data(
                    frame.get(8..).unwrap_or_default(),
                    self.extended,
                    true,
                    &mut msg,
                )
                .map_err(|_| e)?
            }
            Err(e) => return Err(e),
        };
        if !matches!(codec, Some(CODEC_12) | Some(CODEC_13)) {
            msg.ack = Some((count as u32).to_be_bytes().to_vec());
        }
        Ok(msg)
    }
}

/// Decodes one UDP datagram (connectionless: the IMEI is in every datagram).
pub fn decode_udp(datagram: &[u8], _now: UnixMicros) -> Result<Message, DecodeError> {
    let mut r = Reader::new(datagram);
    let len = usize::from(r.u16()?);
    let packet_id = r.u16()?;
    let _packet_type = r.u8()?;
    let avl_id = r.u8()?;
    let imei_len = usize::from(r.u16()?);
    let imei = String::from_utf8_lossy(r.bytes(imei_len)?).into_owned();
    let integrity = if len == datagram.len().saturating_sub(2) {
        Integrity::Ok
    } else {
        Integrity::Failed(vec![IntegrityFailure::Length {
            declared: len,
            actual: datagram.len().saturating_sub(2),
        }])
    };
    let mut msg = Message {
        identity: Some(imei),
        integrity: integrity.clone(),
        ..Message::default()
    };
    let count = decode_data(r.rest(), false, integrity.is_suspect(), &mut msg)?;
    let mut ack = vec![0x00, 0x05];
    ack.extend_from_slice(&packet_id.to_be_bytes());
    ack.push(0x01);
    ack.push(avl_id);
    ack.push(count.min(255) as u8);
    msg.ack = Some(ack);
    Ok(msg)
}
