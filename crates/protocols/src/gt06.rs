//! GT06 (Concox / JimiIoT and many clones): binary frames over TCP.
//!
//! # Wire format
//!
//! Standard frame: `78 78`, length `L` (1 byte), protocol number, content, serial (2), CRC (2),
//! `0D 0A`; `L` counts protocol number through CRC, so the frame is `L + 5` bytes. Extended
//! frame: `79 79`, 2-byte `L`, same layout, `L + 6` bytes. The CRC is CRC-16/X-25 (CRC-ITU)
//! over length..serial. All integers are big-endian. Sources: Concox GT06N protocol manual
//! v1.8, and the behaviour of Traccar's `Gt06FrameDecoder` / `Gt06ProtocolDecoder` as described
//! in `tests/vectors/README.md`.
//!
//! The first frame of a connection is a login (0x01) carrying the IMEI as 8 BCD bytes; later
//! frames carry no identity and belong to the login of their connection. Frames before a login
//! decode to [`DecodeError::NotIdentified`].
//!
//! Location frames carry a GPS block: date-time YY MM DD hh mm ss (UTC), a byte whose low
//! nibble is the satellite count, latitude and longitude as unsigned 32-bit values in 1/30000
//! minute (÷ 1,800,000 for degrees), speed (1 byte, km/h) and a 16-bit word with course
//! (bits 0–9), north (bit 10), west (bit 11) and "positioned" (bit 12).
//!
//! Most location frames follow the GPS block with the serving cell (MCC, MNC, LAC, cell id),
//! which is reported as a [`NetworkScan`] for network-based location. Firmware families
//! reuse protocol numbers with their own layouts: those recognisable from the protocol number
//! and declared length are chosen automatically (`Variant`), the others need the device model
//! ([`Gt06Codec::set_model`]; the server passes the registered model after the login).
//!
//! # Integrity
//!
//! Real devices send frames with wrong lengths or CRCs. The framer accepts a frame whose
//! declared length ends at `0D 0A`, and otherwise cuts at the first `0D 0A` (as Traccar does);
//! the decoder checks length and CRC and reports failures in [`Message::integrity`], marking
//! fixes `integrity_suspect` (see the crate docs for why such frames are not dropped).

use crate::util::{Reader, crc16_x25, hex, utc, year2};
use crate::{
    CellTower, Codec, DecodeError, DecodedFix, DeviceEvent, DeviceStatus, EventKind, Framed,
    Framing, Integrity, IntegrityFailure, KMH_TO_MPS, Message, NetworkScan, SkipReason,
    WifiAccessPoint,
};
use domain::{FixSource, LatLon, UnixMicros};

/// Largest frame accepted (Traccar's limit is the same 32 KiB buffer).
pub const MAX_FRAME: usize = 32 * 1024;

const STOP: [u8; 2] = [0x0D, 0x0A];

/// Finds the next frame at the front of `buf`.
pub fn frame(buf: &[u8]) -> Framing {
    let start = buf
        .windows(2)
        .position(|w| w == [0x78, 0x78] || w == [0x79, 0x79]);
    match start {
        None => {
            // Keep a trailing 0x78/0x79: it may be the first half of a header.
            let keep = usize::from(matches!(buf.last(), Some(0x78 | 0x79)));
            let len = buf.len().saturating_sub(keep);
            if len == 0 {
                Framing::NeedMore
            } else {
                Framing::Skip {
                    len,
                    reason: SkipReason::Garbage,
                }
            }
        }
        Some(0) => frame_at_start(buf),
        Some(n) => Framing::Skip {
            len: n,
            reason: SkipReason::Garbage,
        },
    }
}

fn frame_at_start(buf: &[u8]) -> Framing {
    let extended = buf.first() == Some(&0x79);
    let header = if extended { 4 } else { 3 };
    if buf.len() < header + 2 {
        return Framing::NeedMore;
    }
    let declared = if extended {
        usize::from(buf.get(2).copied().unwrap_or(0)) << 8
            | usize::from(buf.get(3).copied().unwrap_or(0))
    } else {
        usize::from(buf.get(2).copied().unwrap_or(0))
    };
    let total = declared + header + 2;
    if total > MAX_FRAME {
        return Framing::Skip {
            len: 2,
            reason: SkipReason::Oversize,
        };
    }
    if buf.get(total - 2..total) == Some(&STOP[..]) {
        return Framing::Frame {
            len: total,
            consume: total,
        };
    }
    // The declared length does not end at CR LF (wrong length, or not all bytes are here yet):
    // cut at the first CR LF after the header, as Traccar does. This keeps devices with wrong
    // length fields working (they wait for an ack before sending more, so waiting for the
    // declared length would stall them); the price is that a frame with CR LF inside its body
    // that arrives split exactly there is cut early and then fails its CRC.
    match buf
        .get(header..)
        .and_then(|b| b.windows(2).position(|w| w == STOP))
    {
        Some(p) => {
            let len = header + p + 2;
            Framing::Frame { len, consume: len }
        }
        None if buf.len() > MAX_FRAME => Framing::Skip {
            len: 2,
            reason: SkipReason::Oversize,
        },
        None => Framing::NeedMore,
    }
}

/// Per-connection GT06 decoder state.
#[derive(Debug, Clone, Default)]
pub struct Gt06Codec {
    imei: Option<String>,
    /// The device model, upper case, when the registry knows it. Some firmware families reuse
    /// a protocol number with their own layout or alarm codes, and nothing in the frame says
    /// which; see [`Gt06Codec::set_model`].
    model: Option<String>,
}

/// Models whose 0x22 / 0x25 frames start with a source byte, the IMEI and a device time, and
/// carry power, battery volts and engine hours after the cell (Traccar's "NT" family).
const NT_MODELS: &[&str] = &["NT11", "NT20", "NT26", "NT40", "NT46", "VL100", "XT40"];
/// Models whose alarm byte 0x09 / 0x28 / 0x30 mean tow / power off / braking.
const VL_MODELS: &[&str] = &["VL103", "LL303", "VL512", "G18"];

/// What a configured model changes in the decoding.
#[derive(Debug, Clone, Copy, Default)]
struct ModelFlags {
    /// `LW…` (LW4G and relatives): 0x13 carries external power; alarms 0x18/0x19 differ.
    lw: bool,
    /// `SEEWORLD`: 0x13's last byte is external power in volts; alarms 0x28/0x29 differ.
    seeworld: bool,
    nt: bool,
    vl: bool,
    /// `R11`: 0x13 carries external power (0.01 V) instead of the voltage level.
    r11: bool,
    /// `QH302R`: 0x12 starts with the IMEI.
    qh302r: bool,
}

/// Layout variants recognised from the frame itself (protocol number and declared length),
/// as the firmware families that use them send no other marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Standard,
    /// 0x24 of length 0x31: timing advance first, then an explicit cell count.
    WanwayS20,
    /// 0x13 of length 0x13: a long status with packed signal, battery %, power.
    Obd6,
    /// 0x31 of length 0x2A, 0x32 of length 0x27/0x29: 2-byte MNC, 8-byte cell id, altitude.
    Sl4x,
    /// 0xA3 of length 0x0C: a status frame, not a geofence frame.
    Seeworld,
    /// 0x17 of length 0x27 or 0x28 whose declared length ends the frame: GPS, cell and an
    /// RFID card (8 bytes; 0x28 has one more byte), not a Wi-Fi list. A Wi-Fi 0x17 frame
    /// carries no length (its length byte is the access-point count), so with 0x27 or 0x28
    /// access points it would be far longer than the length byte says.
    Rfid,
}

fn variant(extended: bool, protocol: u8, declared: usize, frame_len: usize) -> Variant {
    if extended {
        return Variant::Standard;
    }
    if protocol == 0x17 && frame_len != declared + 5 {
        return Variant::Standard;
    }
    match (protocol, declared) {
        (0x24, 0x31) => Variant::WanwayS20,
        (0x13, 0x13) => Variant::Obd6,
        (0x31, 0x2A) | (0x32, 0x27 | 0x29) => Variant::Sl4x,
        (0xA3, 0x0C) => Variant::Seeworld,
        (0x17, 0x27 | 0x28) => Variant::Rfid,
        _ => Variant::Standard,
    }
}

/// A GT06 TCP connection: push bytes, poll messages.
pub type Gt06Session = Framed<Gt06Codec>;

impl Gt06Session {
    pub fn gt06() -> Self {
        Framed::new(Gt06Codec::default())
    }
}

impl Codec for Gt06Codec {
    const MAX_FRAME: usize = MAX_FRAME;

    fn frame(&mut self, buf: &[u8]) -> Framing {
        frame(buf)
    }

    fn decode(&mut self, frame: &[u8], _now: UnixMicros) -> Result<Message, DecodeError> {
        self.decode_frame(frame, _now)
    }

    fn identity(&self) -> Option<&str> {
        self.imei.as_deref()
    }

    fn set_model(&mut self, model: Option<&str>) {
        Gt06Codec::set_model(self, model);
    }
}

/// A parsed frame envelope.
struct Envelope<'a> {
    extended: bool,
    /// The length field as sent (protocol number through CRC).
    declared: usize,
    protocol: u8,
    content: &'a [u8],
    serial: u16,
    integrity: Integrity,
}

fn envelope(frame: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let extended = frame.first() == Some(&0x79);
    let header = if extended { 4 } else { 3 };
    let n = frame.len();
    if n < header + 1 + 6 {
        return Err(DecodeError::Truncated(
            "GT06 frame shorter than header + trailer",
        ));
    }
    let mut r = Reader::new(frame);
    r.skip(2)?;
    let declared = if extended {
        usize::from(r.u16()?)
    } else {
        usize::from(r.u8()?)
    };
    let protocol = r.u8()?;
    let content = frame
        .get(header + 1..n - 6)
        .ok_or(DecodeError::Truncated("GT06 content"))?;
    let mut t = Reader::new(frame.get(n - 6..).unwrap_or(&[]));
    let serial = t.u16()?;
    let crc = t.u16()?;
    let mut failures = Vec::new();
    let actual = n - header - 2;
    if declared != actual {
        failures.push(IntegrityFailure::Length { declared, actual });
    }
    let computed = crc16_x25(frame.get(2..n - 4).unwrap_or(&[]));
    if computed != crc {
        failures.push(IntegrityFailure::Crc {
            declared: u32::from(crc),
            computed: u32::from(computed),
        });
    }
    Ok(Envelope {
        extended,
        declared,
        protocol,
        content,
        serial,
        integrity: Integrity::from_failures(failures),
    })
}

/// Builds a frame: header, length, protocol, content, serial, CRC, stop bytes.
pub fn encode_frame(extended: bool, protocol: u8, content: &[u8], serial: u16) -> Vec<u8> {
    let length = 1 + content.len() + 2 + 2;
    let mut out = Vec::with_capacity(length + 6);
    if extended {
        out.extend_from_slice(&[0x79, 0x79]);
        out.extend_from_slice(&(length as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[0x78, 0x78]);
        out.push(length as u8);
    }
    out.push(protocol);
    out.extend_from_slice(content);
    out.extend_from_slice(&serial.to_be_bytes());
    let crc = crc16_x25(out.get(2..).unwrap_or(&[]));
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&STOP);
    out
}

/// The standard acknowledgement: protocol number and serial echoed, no content.
pub fn encode_ack(extended: bool, protocol: u8, serial: u16) -> Vec<u8> {
    encode_frame(extended, protocol, &[], serial)
}

/// A server command (protocol 0x80): command length, 4-byte server flag (0), ASCII command.
/// Format from the Concox GT06N manual §5.8 ("online command").
pub fn encode_command(text: &str, serial: u16) -> Vec<u8> {
    let mut content = Vec::with_capacity(text.len() + 5);
    content.push((4 + text.len()).min(255) as u8);
    content.extend_from_slice(&0u32.to_be_bytes());
    content.extend_from_slice(text.as_bytes());
    encode_frame(false, 0x80, &content, serial)
}

/// Sets the upload interval while moving: `TIMER,<seconds>#` (Concox command list; the
/// accepted range is device-specific, commonly 10–18000 s).
pub fn encode_set_interval(seconds: u32) -> Vec<u8> {
    encode_command(&format!("TIMER,{seconds}#"), 1)
}

/// Asks for the current position: `WHERE#` (Concox command list); the device answers with a
/// 0x15 string reply and/or a location frame.
pub fn encode_request_position() -> Vec<u8> {
    encode_command("WHERE#", 1)
}

/// Protocol numbers whose content starts with a GPS block.
fn has_gps(p: u8) -> bool {
    matches!(
        p,
        0x10 | 0x11
            | 0x12
            | 0x16
            | 0x1A
            | 0x1E
            | 0x22
            | 0x26
            | 0x27
            | 0x2D
            | 0x31
            | 0x32
            | 0x37
            | 0xA0
            | 0xA3
            | 0xA4
    )
}

/// Protocol numbers with an LBS block (length-prefixed) and a status block after the GPS block.
fn has_status(p: u8) -> bool {
    matches!(p, 0x16 | 0x19 | 0x26 | 0x27 | 0x32)
}

/// Protocol numbers whose GPS block is followed by the serving cell.
fn has_lbs(p: u8) -> bool {
    matches!(
        p,
        0x11 | 0x12 | 0x16 | 0x22 | 0x26 | 0x27 | 0x2D | 0x31 | 0x32 | 0x37 | 0xA0 | 0xA3 | 0xA4
    )
}

/// How a single serving cell is laid out in a frame.
#[derive(Debug, Clone, Copy)]
struct CellLayout {
    /// A length byte comes first (0 = no cell).
    length_prefixed: bool,
    /// The MNC is 2 bytes even without MCC bit 15.
    wide_mnc: bool,
    /// The LAC is 4 bytes.
    long_lac: bool,
    /// Width of the cell id: 3, 4 or 8 bytes.
    cid_bytes: usize,
}

impl Default for CellLayout {
    fn default() -> Self {
        CellLayout {
            length_prefixed: false,
            wide_mnc: false,
            long_lac: false,
            cid_bytes: 3,
        }
    }
}

/// Reads one serving cell: [length], MCC (bit 15 set = 2-byte MNC), MNC, LAC, cell id. `None`
/// when the frame says "no cell", the bytes run out, or the MCC is not a country code (a sign
/// that this firmware lays the block out differently; a wrong cell is worse than none).
fn read_cell(r: &mut Reader<'_>, l: CellLayout) -> Option<CellTower> {
    let mut length = 0;
    if l.length_prefixed {
        length = usize::from(r.u8().ok()?);
        if length == 0 {
            return None;
        }
    }
    let mcc = r.u16().ok()?;
    let mnc = if mcc & 0x8000 != 0 || l.wide_mnc {
        r.u16().ok()?
    } else {
        u16::from(r.u8().ok()?)
    };
    let lac = if l.long_lac {
        r.u32().ok()?
    } else {
        u32::from(r.u16().ok()?)
    };
    let cid = r.uint(l.cid_bytes).ok()?;
    if length > 9 {
        r.skip(length - 9).ok()?;
    }
    let mcc = mcc & 0x7FFF;
    // LAC 0 is reserved (3GPP TS 23.003): devices send it when registered to no network. Cell
    // ids are at most 36 bits (5G NCI); a wider one is a misread layout.
    if !(200..=799).contains(&mcc) || lac == 0 || cid > 0xF_FFFF_FFFF {
        return None;
    }
    Some(CellTower {
        mcc,
        mnc,
        lac,
        cell_id: cid,
        rssi: None,
    })
}

/// Extended 0xF1 device status (Jimi IoT 4G): Unix time, then (id u16, length u8, value)
/// entries. Mapped: 0x0005 external power (0.01 V), 0x0007 charging.
fn device_status_tlv(content: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let mut r = Reader::new(content);
    r.skip(4)?; // report time
    let mut st = DeviceStatus::default();
    while r.remaining() >= 3 {
        let id = r.u16()?;
        let len = usize::from(r.u8()?);
        let Ok(value) = r.bytes(len.min(r.remaining())) else {
            break;
        };
        let mut v = Reader::new(value);
        match id {
            0x0005 => st.power_volts = v.u16().ok().map(|x| f64::from(x) * 0.01),
            0x0007 => st.charging = v.u8().ok().map(|x| x > 0),
            _ => {}
        }
    }
    if st.is_empty() {
        msg.unsupported = Some("GT06 0xF1 status without power or charging entries".into());
    } else {
        msg.status = Some(st);
    }
    Ok(())
}

/// The alarm byte of status blocks (Concox manual §5.3.2, extended by Traccar's list; some
/// codes mean something else on the LW, SEEWORLD and VL firmware families). `v` is the alarm
/// byte, with the language byte's high nibble above it where the frame carries one (0xA9:
/// 0x0107 and 0x010B are jamming). A code not in the list is still an alarm the device raised:
/// it is reported as `Other("gt06_alarm_0x..")` so that it reaches staff with its code rather
/// than being dropped.
fn alarm_byte(v: u16, m: ModelFlags) -> Option<EventKind> {
    let other = |s: &str| EventKind::Other(s.into());
    Some(match v {
        0x00 => return None,
        0x01 => EventKind::Sos,
        0x02 => EventKind::PowerCut,
        0x03 => EventKind::Vibration,
        0x09 if m.vl => other("tow"),
        0x09 => EventKind::Vibration,
        0x04 => EventKind::GeofenceEnter,
        0x05 => EventKind::GeofenceExit,
        0x06 => EventKind::Overspeed,
        0x0C | 0x13 | 0x25 | 0x32 => EventKind::Tamper,
        0x0E | 0x0F => EventKind::LowBattery,
        0x11 => EventKind::PowerOff,
        0x14 => other("door"),
        0x18 if m.lw => other("accident"),
        0x18 => EventKind::Removal,
        0x19 if m.lw => other("hardAcceleration"),
        0x19 => EventKind::LowBattery,
        0x1A | 0x27 | 0xF1 => other("hardBraking"),
        0x1B | 0x2A | 0x2B | 0x2E => other("hardCornering"),
        0x23 => EventKind::FallDown,
        0x26 | 0xF0 => other("hardAcceleration"),
        0x28 if m.seeworld => other("hardCornering"),
        0x28 if m.vl => EventKind::PowerOff,
        0x28 => other("hardBraking"),
        0x29 if m.seeworld => other("accident"),
        0x29 => other("hardAcceleration"),
        0x2C | 0xF2 => other("accident"),
        0x30 if m.vl => other("hardBraking"),
        0x30 | 0x0107 | 0x010B => EventKind::Jamming,
        0x33 => other("lock"),
        0x34 => other("unlock"),
        0x53 => other("fuelLeak"),
        0x5B | 0x5C => other("temperature"),
        0xC9 => other("idle"),
        v if v > 0xFF => return alarm_byte(v & 0xFF, m),
        v => EventKind::Other(format!("gt06_alarm_0x{v:02x}")),
    })
}

/// Terminal-information byte: bits 3..5 are an alarm code, bit 2 "charging".
fn terminal_info_alarm(info: u8) -> Option<EventKind> {
    match (info >> 3) & 0x07 {
        1 => Some(EventKind::Vibration),
        2 => Some(EventKind::PowerCut),
        3 => Some(EventKind::LowBattery),
        4 => Some(EventKind::Sos),
        6 => Some(EventKind::Other("geofence".into())),
        7 => Some(EventKind::Removal),
        _ => None,
    }
}

struct Gps {
    time: UnixMicros,
    position: Option<LatLon>,
    valid: bool,
    satellites: u32,
    speed_kmh: f64,
    course: f64,
}

impl Gps {
    /// The fix this GPS block reports at `position`, with the frame's serial as its sequence.
    fn fix(
        &self,
        position: LatLon,
        altitude_m: Option<f64>,
        suspect: bool,
        serial: u16,
    ) -> DecodedFix {
        DecodedFix {
            device_time: self.time,
            position,
            accuracy_m: None,
            speed_mps: Some(self.speed_kmh * KMH_TO_MPS),
            course_deg: Some(self.course).filter(|c| *c <= 360.0),
            altitude_m,
            source: FixSource::Gnss,
            gnss_valid: self.valid,
            satellites: Some(self.satellites),
            integrity_suspect: suspect,
            seq: Some(i64::from(serial)),
        }
    }
}

fn read_time(r: &mut Reader<'_>) -> Result<Option<UnixMicros>, DecodeError> {
    let b = r.bytes(6)?;
    let g = |i: usize| i64::from(b.get(i).copied().unwrap_or(0));
    Ok(utc(year2(g(0)), g(1), g(2), g(3), g(4), g(5) as f64))
}

/// Latitude and longitude in 1/30000 minute, signed by the course word: north is bit 10,
/// west bit 11. `None` when out of range or (0, 0).
fn signed_position(lat: u32, lon: u32, flags: u16) -> Option<LatLon> {
    let lat = f64::from(lat) / 1_800_000.0;
    let lon = f64::from(lon) / 1_800_000.0;
    let lat = if flags & (1 << 10) == 0 { -lat } else { lat };
    let lon = if flags & (1 << 11) != 0 { -lon } else { lon };
    LatLon::new(lat, lon).ok()
}

/// Reads a GPS block; `Ok(None)` when a length-prefixed block says "no GPS".
fn read_gps(r: &mut Reader<'_>, with_length: bool) -> Result<Option<Gps>, DecodeError> {
    let time = read_time(r)?
        .ok_or_else(|| DecodeError::Malformed("GT06 GPS date-time out of range".into()))?;
    if with_length && r.u8()? == 0 {
        return Ok(None);
    }
    let sats = r.u8()?;
    let (lat, lon) = (r.u32()?, r.u32()?);
    let speed = r.u8()?;
    let flags = r.u16()?;
    Ok(Some(Gps {
        time,
        position: signed_position(lat, lon, flags),
        valid: flags & (1 << 12) != 0,
        satellites: u32::from(sats & 0x0F),
        speed_kmh: f64::from(speed),
        course: f64::from(flags & 0x03FF),
    }))
}

impl Gt06Codec {
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec for a device of a known model (e.g. `LW4G-4B`, `SEEWORLD`, `R11`, `NT20`,
    /// `XT40`, `G18`, `VL103`, `QH302R`).
    pub fn with_model(model: &str) -> Self {
        let mut c = Self::default();
        c.set_model(Some(model));
        c
    }

    /// Sets the device model (case-insensitive). Model-specific layouts are used only when
    /// it is set: the frames of those firmware families are indistinguishable otherwise.
    pub fn set_model(&mut self, model: Option<&str>) {
        self.model = model
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty());
    }

    fn flags(&self) -> ModelFlags {
        let Some(m) = self.model.as_deref() else {
            return ModelFlags::default();
        };
        ModelFlags {
            lw: m.starts_with("LW"),
            seeworld: m == "SEEWORLD",
            nt: NT_MODELS.contains(&m),
            vl: VL_MODELS.contains(&m),
            r11: m == "R11",
            qh302r: m == "QH302R",
        }
    }

    /// Decodes one complete frame (as produced by [`frame`]).
    ///
    /// A frame of an identified connection whose CRC and length are right but whose content
    /// does not fit the layout Bulwark knows for its protocol number is still acknowledged
    /// (the device would otherwise resend it forever and stop emptying its buffer), as a
    /// message with only the ack and an `unsupported` note saying why. Frames that fail their
    /// checks as well are rejected.
    pub fn decode_frame(&mut self, frame: &[u8], now: UnixMicros) -> Result<Message, DecodeError> {
        match self.decode_checked(frame, now) {
            Err(e @ (DecodeError::Truncated(_) | DecodeError::Malformed(_))) => {
                let env = envelope(frame)?;
                let p = env.protocol;
                let acked = !env.extended
                    && !matches!(
                        p,
                        0x01 | 0x80 | 0x81 | 0x82 | 0x21 | 0x94 | 0xF3 | 0x8A | 0x17 | 0x69
                    );
                match &self.imei {
                    Some(imei) if acked && env.integrity == Integrity::Ok => Ok(Message {
                        identity: Some(imei.clone()),
                        ack: Some(encode_ack(false, p, env.serial)),
                        unsupported: Some(format!(
                            "GT06 0x{p:02x} with valid CRC does not fit the known layout ({e}); \
                             acknowledged, nothing decoded"
                        )),
                        ..Message::default()
                    }),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    fn decode_checked(&mut self, frame: &[u8], now: UnixMicros) -> Result<Message, DecodeError> {
        let env = envelope(frame)?;
        if env.protocol == 0x01 {
            return self.login(&env);
        }
        let Some(imei) = self.imei.clone() else {
            return Err(DecodeError::NotIdentified);
        };
        let model = self.flags();
        let var = variant(env.extended, env.protocol, env.declared, frame.len());
        let f = FrameInfo {
            frame,
            nt: model.nt && !env.extended && matches!(env.protocol, 0x22 | 0x25),
            suspect: env.integrity.is_suspect(),
            var,
            model,
            env,
        };
        let mut msg = Message {
            integrity: f.env.integrity.clone(),
            identity: Some(imei),
            ack: default_ack(&f),
            ..Message::default()
        };
        let (p, content, suspect) = (f.env.protocol, f.env.content, f.suspect);
        match message_type(&f) {
            MessageType::Az735 => {
                msg.ack = Some(encode_ack(true, p, f.env.serial));
                self.az735(p, content, &mut msg, f.env.serial, suspect)?;
            }
            MessageType::GpsLbs8 => self.gps_lbs_8(content, &mut msg, f.env.serial, suspect)?,
            MessageType::StatusTlv => device_status_tlv(content, &mut msg)?,
            MessageType::Peripheral => {
                msg.unsupported = Some(
                    "GT06 0xF2 peripheral report (Bluetooth tags, external battery packs): \
                     no field Bulwark uses"
                        .into(),
                );
            }
            MessageType::StatusVariant => self.status_variant(content, &mut msg, var, suspect)?,
            MessageType::Status2 => self.status_2(content, &mut msg, suspect)?,
            MessageType::Power => power(content, &mut msg)?,
            MessageType::AddressRequest => address_request(content, &mut msg),
            MessageType::Location => self.location(&f, &mut msg)?,
            MessageType::LbsStatus => {
                // LBS-only status / alarm frames: the status block ends the content.
                let tail = content
                    .get(content.len().saturating_sub(5)..)
                    .unwrap_or_default();
                self.status_block(
                    &mut Reader::new(tail),
                    &mut msg,
                    AlarmAt::unlocated(suspect),
                )?;
            }
            MessageType::Heartbeat => self.heartbeat(content, &mut msg, suspect)?,
            MessageType::Gk310Heartbeat => gk310_heartbeat(content, &mut msg)?,
            MessageType::CommandReply => command_reply(content, &mut msg)?,
            MessageType::StringReply => string_reply(content, &mut msg, suspect)?,
            MessageType::Modular => self.modular(content, &mut msg, suspect, f.env.serial)?,
            MessageType::SerialPassThrough => serial_pass_through(content, &mut msg)?,
            MessageType::Information => information(content, &mut msg)?,
            MessageType::Alarm95 => self.alarm_0x95(content, &mut msg, suspect)?,
            MessageType::WifiAlarm => self.wifi_alarm(content, &mut msg, suspect)?,
            MessageType::TimeRequest => msg.ack = Some(time_reply(now)),
            MessageType::WifiScan => wifi_scan(p, frame, &mut msg)?,
            MessageType::WifiList => wifi_list(content, &mut msg)?,
            MessageType::LbsScan => msg.network = Some(multi_lbs(p, content, var)?),
            MessageType::Unknown => {
                msg.unsupported = Some(format!("GT06 protocol number 0x{p:02x} not decoded"));
            }
        }
        Ok(msg)
    }

    /// Login (0x01): the IMEI as 8 BCD bytes (a leading 0 digit). Later frames of the
    /// connection belong to it.
    fn login(&mut self, env: &Envelope<'_>) -> Result<Message, DecodeError> {
        let digits = hex(Reader::new(env.content).bytes(8)?);
        let imei = digits.get(1..).unwrap_or("").to_string();
        if imei.is_empty() || !imei.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecodeError::Malformed(format!(
                "GT06 login IMEI is not BCD: {digits}"
            )));
        }
        self.imei = Some(imei.clone());
        Ok(Message {
            integrity: env.integrity.clone(),
            identity: Some(imei),
            ack: Some(encode_ack(false, 0x01, env.serial)),
            ..Message::default()
        })
    }

    /// Frames whose content starts with a GPS block: the fix, the serving cell after it and,
    /// by protocol number, a status block.
    fn location(&self, f: &FrameInfo<'_>, msg: &mut Message) -> Result<(), DecodeError> {
        let p = f.env.protocol;
        let mut r = Reader::new(f.env.content);
        let opportunistic = matches!(p, 0x24 | 0x36 | 0xA2);
        if p == 0x34 {
            r.skip(4)?; // X1: data and alarm word before the GPS block
        }
        if (p == 0x12 && f.model.qh302r) || p == 0x61 {
            r.skip(8)?; // the IMEI again
        }
        if f.nt {
            r.skip(1 + 8 + 6)?; // location source, IMEI, device time
        }
        let gps = match read_gps(&mut r, false) {
            Ok(g) => g,
            // Some GT02-style frames (0x10) carry no serial and CRC: the GPS block then runs
            // up to the stop bytes. Retry on that span before giving up.
            Err(DecodeError::Truncated(_)) if !opportunistic => {
                let span = f
                    .frame
                    .get(4..f.frame.len().saturating_sub(2))
                    .unwrap_or_default();
                read_gps(&mut Reader::new(span), false)?
            }
            Err(e) if !opportunistic => return Err(e),
            Err(_) => None,
        };
        // Frame types that only sometimes carry GPS count only when the "positioned" bit is set.
        let gps = gps.filter(|g| !opportunistic || g.valid);
        let time = gps.as_ref().map(|g| g.time);
        let at = AlarmAt {
            time,
            position: gps.as_ref().and_then(|g| g.position),
            suspect: f.suspect,
        };

        let altitude =
            if gps.is_some() && (has_lbs(p) || f.nt || f.var == Variant::Rfid || p == 0x61) {
                location_cell(f, &mut r, time, msg)?
            } else {
                None
            };
        if let Some(gps) = &gps
            && let Some(position) = gps.position
        {
            msg.fixes
                .push(gps.fix(position, altitude, f.suspect, f.env.serial));
        }
        if f.nt {
            self.nt_status(&mut r, msg, at)?;
        } else if has_status(p) && !f.env.extended {
            self.status_tail(p, f.env.content, msg, at)?;
        } else if p == 0xA4 {
            // Multi-fence alarm: ... info, voltage level, GSM, alarm, language (2).
            let n = f.env.content.len();
            let tail = f.env.content.get(n.saturating_sub(6)..).unwrap_or_default();
            self.status_block(&mut Reader::new(tail), msg, at)?;
        } else if opportunistic && gps.is_none() {
            match multi_lbs(p, f.env.content, f.var) {
                Ok(scan) => msg.network = Some(scan),
                Err(_) => msg.unsupported = Some(format!("GT06 0x{p:02x} layout not recognised")),
            }
        }
        Ok(())
    }

    /// The NT20 family's status after the cell: info, external power (0.01 V), battery
    /// (0.1 V), GSM, alarm, then language, odometer and engine hours (not used).
    fn nt_status(
        &self,
        r: &mut Reader<'_>,
        msg: &mut Message,
        at: AlarmAt,
    ) -> Result<(), DecodeError> {
        let info = r.u8()?;
        let power = r.u16()?;
        let battery = r.u8()?;
        let gsm = r.u8()?;
        let alarm = r.u8()?;
        self.push_alarms(msg, info, alarm, at);
        msg.status = Some(DeviceStatus {
            power_volts: Some(f64::from(power) * 0.01),
            battery_volts: Some(f64::from(battery) * 0.1),
            signal: Some(f64::from(gsm)),
            ..info_status(info)
        });
        Ok(())
    }

    /// Heartbeat / status (0x13). The classic layout is 5 bytes: terminal info, voltage
    /// level 0..6, GSM signal 0..4, alarm, language.
    fn heartbeat(
        &self,
        content: &[u8],
        msg: &mut Message,
        suspect: bool,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(content);
        if content.len() == 5 {
            self.status_block(&mut r, msg, AlarmAt::unlocated(suspect))?;
        } else if content.len() == 16 {
            // Long variant: info, satellites(2), alarm, language, battery %.
            let info = r.u8()?;
            r.skip(4)?;
            let pct = r.u8()?;
            msg.status = Some(DeviceStatus {
                battery_percent: Some(f64::from(pct)),
                ..info_status(info)
            });
        } else {
            let info = r.u8()?;
            msg.status = Some(DeviceStatus {
                ..info_status(info)
            });
            msg.unsupported = Some(format!(
                "GT06 0x13 status of {} bytes: only terminal info decoded",
                content.len()
            ));
        }
        Ok(())
    }

    /// Alarm frame 0x95 (JC100 / JC400 dash cameras). Three layouts: a short form (date-time,
    /// event), an extended form starting with a GPS block without satellites and speed, and
    /// the JC400 form, marked by `FF FF` and a version byte, whose GPS block carries
    /// satellites, the course word before a 2-byte speed, then external power (0.1 V). The
    /// event byte follows (with 2 bytes of event data), then the names of the video files.
    /// Layouts as Traccar's `Gt06ProtocolDecoder` reads them (Apache-2.0, commit
    /// `9e5c458ad0bf44ceaddf72534bf6874787f41b6c`).
    fn alarm_0x95(
        &self,
        content: &[u8],
        msg: &mut Message,
        suspect: bool,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(content);
        let jc400 = content.get(..2) == Some(&[0xFF, 0xFF][..]);
        let extended_alarm = content.len() > 7;
        let (time, position) = if jc400 {
            r.skip(3)?; // marker, version
            let time = read_time(&mut r)?;
            let sats = r.u8()?;
            let (lat, lon) = (r.u32()?, r.u32()?);
            let flags = r.u16()?;
            let speed = r.u16()?;
            let power = r.u16()?;
            let position = signed_position(lat, lon, flags);
            if let (Some(t), Some(p)) = (time, position) {
                msg.fixes.push(DecodedFix {
                    device_time: t,
                    position: p,
                    accuracy_m: None,
                    speed_mps: Some(f64::from(speed) * KMH_TO_MPS),
                    course_deg: Some(f64::from(flags & 0x03FF)).filter(|c| *c <= 360.0),
                    altitude_m: None,
                    source: FixSource::Gnss,
                    gnss_valid: flags & (1 << 12) != 0,
                    satellites: Some(u32::from(sats & 0x0F)),
                    integrity_suspect: suspect,
                    seq: None,
                });
            }
            msg.status = Some(DeviceStatus {
                power_volts: Some(f64::from(power) * 0.1),
                ..DeviceStatus::default()
            });
            (time, position)
        } else if extended_alarm {
            let time = read_time(&mut r)?;
            let (lat, lon) = (r.u32()?, r.u32()?);
            let flags = r.u16()?;
            (time, signed_position(lat, lon, flags))
        } else {
            (read_time(&mut r)?, None)
        };
        let code = r.u8()?;
        let kind = match code {
            0x01 if extended_alarm => EventKind::Sos,
            0x01 => EventKind::Other("general".into()),
            // "Low power": the device is running out of power. On an ankle monitor that ends
            // monitoring, so it is the battery alarm, not a vehicle detail.
            0x0E => EventKind::LowBattery,
            0x76 => EventKind::Other("temperature".into()),
            0x80 => EventKind::Vibration,
            0x87 => EventKind::Overspeed,
            0x88 => EventKind::PowerCut,
            0x90 => EventKind::Other("hardAcceleration".into()),
            0x91 => EventKind::Other("hardBraking".into()),
            0x92 => EventKind::Other("hardCornering".into()),
            0x93 => EventKind::Other("accident".into()),
            c => EventKind::Other(format!("gt06_event_0x{c:02x}")),
        };
        msg.events.push(DeviceEvent {
            kind,
            device_time: time,
            position,
            integrity_suspect: suspect,
        });
        Ok(())
    }

    /// Wi-Fi alarm 0xA9 (Jimi IoT 4G): date-time, MCC, MNC (2 bytes when MCC bit 15 is set),
    /// a "4G cells" flag, a cell count and the cells (LAC u16 + cell id u24, or with the flag
    /// LAC u32 + cell id u64; then the signal), timing advance, a Wi-Fi count and the access
    /// points (MAC, signal), then the alarm byte and the language byte (whose high nibble
    /// extends the alarm code). Layout as Traccar reads it (`MSG_WIFI_ALARM`, commit
    /// `754c65359b5c76326bc6b783c6a0ff05b7bcec00`, Apache-2.0). The frame carries no GPS: the
    /// alarm is stored as an event without a position, with the scan beside it.
    fn wifi_alarm(
        &self,
        content: &[u8],
        msg: &mut Message,
        suspect: bool,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(content);
        let time = read_time(&mut r)?;
        let mcc = r.u16()?;
        let mnc = if mcc & 0x8000 != 0 {
            r.u16()?
        } else {
            u16::from(r.u8()?)
        };
        let cell4g = r.u8()? > 0;
        let count = r.u8()?;
        let mut scan = NetworkScan {
            time,
            ..NetworkScan::default()
        };
        for _ in 0..count {
            let (lac, cid) = if cell4g {
                (r.u32()?, r.u64()?)
            } else {
                (u32::from(r.u16()?), r.uint(3)?)
            };
            let rssi = r.u8()?;
            let mcc = mcc & 0x7FFF;
            if lac > 0 && (200..=799).contains(&mcc) {
                scan.cells.push(CellTower {
                    mcc,
                    mnc,
                    lac,
                    cell_id: cid,
                    rssi: Some(-i32::from(rssi)),
                });
            }
        }
        r.skip(1)?; // timing advance
        let wifi = r.u8()?;
        for _ in 0..wifi {
            let mac = r.bytes(6)?;
            let rssi = r.u8()?;
            scan.wifi.push(WifiAccessPoint {
                mac: mac_string(mac),
                rssi: Some(-i32::from(rssi)),
            });
        }
        let alarm = r.u8()?;
        let language = r.u8()?;
        let code = u16::from(language >> 4) << 8 | u16::from(alarm);
        // An alarm frame always reports an alarm: a code 0 is still "the device alarmed".
        let kind =
            alarm_byte(code, self.flags()).unwrap_or_else(|| EventKind::Other("general".into()));
        msg.events.push(DeviceEvent {
            kind,
            device_time: time,
            position: None,
            integrity_suspect: suspect,
        });
        msg.network = Some(scan);
        Ok(())
    }

    /// AZ735 extended 0x32 (location) / 0x33 (alarm): date-time, GPS with a length byte,
    /// serving cell with a length byte and its signal, extra cells (6 bytes each) and Wi-Fi
    /// access points (7 bytes each) as length-prefixed lists, a status byte (0x33: 0xA2/0xA3
    /// low battery, 0xA4 alarm), a reserved extension.
    fn az735(
        &self,
        p: u8,
        content: &[u8],
        msg: &mut Message,
        serial: u16,
        suspect: bool,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(content);
        let gps = read_gps(&mut r, true)?;
        let time = read_time(&mut Reader::new(content)).ok().flatten();
        if let Some(g) = &gps
            && let Some(position) = g.position
        {
            msg.fixes.push(g.fix(position, None, suspect, serial));
        }
        let mut scan = NetworkScan {
            time,
            ..NetworkScan::default()
        };
        let mut st = DeviceStatus::default();
        let length = r.u8()?;
        let mut serving: Option<(u16, u16)> = None;
        if length == 0 {
            // An all-zero placeholder block is skipped whole (up to 45 bytes).
            let window = r.clone().bytes(r.remaining().min(45)).unwrap_or_default();
            if window.len() > 9 && window.get(9..).unwrap_or_default().iter().all(|b| *b == 0) {
                r.skip(window.len())?;
            }
        } else {
            let mut block = Reader::new(r.bytes(usize::from(length).saturating_sub(1).max(8))?);
            let cell = read_cell(&mut block, CellLayout::default());
            let rssi = r.u8()?;
            st.signal = Some(f64::from(rssi));
            if let Some(mut c) = cell {
                serving = Some((c.mcc, c.mnc));
                c.rssi = Some(-i32::from(rssi));
                scan.cells.push(c);
            }
        }
        let extra = usize::from(r.u8()?);
        for chunk in r.bytes(extra)?.chunks_exact(6) {
            let mut c = Reader::new(chunk);
            let (lac, cid, rssi) = (c.u16()?, c.uint(3)?, c.u8()?);
            if let Some((mcc, mnc)) = serving
                && lac > 0
            {
                scan.cells.push(CellTower {
                    mcc,
                    mnc,
                    lac: u32::from(lac),
                    cell_id: cid,
                    rssi: Some(-i32::from(rssi)),
                });
            }
        }
        let wifi = usize::from(r.u8()?);
        for chunk in r.bytes(wifi)?.chunks_exact(7) {
            scan.wifi.push(WifiAccessPoint {
                mac: mac_string(chunk.get(..6).unwrap_or_default()),
                rssi: chunk.get(6).map(|v| -i32::from(*v)),
            });
        }
        let status = r.u8()?;
        st.status_word = Some(u64::from(status));
        let kind = match (p, status) {
            (0x33, 0xA2 | 0xA3) => Some(EventKind::LowBattery),
            (0x33, 0xA4) => Some(EventKind::Other("general".into())),
            (0x33, 0xA5) => Some(EventKind::Other("door".into())),
            _ => None,
        };
        if let Some(kind) = kind {
            msg.events.push(DeviceEvent {
                kind,
                device_time: time,
                position: msg.fixes.first().map(|f| f.position),
                integrity_suspect: suspect,
            });
        }
        msg.status = Some(st);
        if !scan.cells.is_empty() || !scan.wifi.is_empty() {
            msg.network = Some(scan);
        }
        Ok(())
    }

    /// Extended 0x38: GPS block, upload mode and re-upload flag, then the serving cell with a
    /// cell-type byte (3 and above: 4-byte LAC, 8-byte cell id, 2-byte signal).
    fn gps_lbs_8(
        &self,
        content: &[u8],
        msg: &mut Message,
        serial: u16,
        suspect: bool,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(content);
        let Some(g) = read_gps(&mut r, false)? else {
            return Ok(());
        };
        if let Some(position) = g.position {
            msg.fixes.push(g.fix(position, None, suspect, serial));
        }
        let cell = (|| {
            r.skip(2).ok()?;
            let four_g = r.u8().ok()? >= 3;
            let mut c = read_cell(
                &mut r,
                CellLayout {
                    long_lac: four_g,
                    cid_bytes: if four_g { 8 } else { 3 },
                    ..CellLayout::default()
                },
            )?;
            let rssi = if four_g {
                r.u16().ok()? as i16
            } else {
                i16::from(r.u8().ok()?)
            };
            c.rssi = Some(-i32::from(rssi.unsigned_abs()));
            Some(c)
        })();
        if let Some(c) = cell {
            msg.network = Some(NetworkScan {
                time: Some(g.time),
                cells: vec![c],
                wifi: Vec::new(),
            });
        }
        Ok(())
    }

    /// 0x13 layouts of particular firmware (OBD6 by length; LW, SEEWORLD, R11 by model) and
    /// SEEWORLD's 0xA3 status frame.
    fn status_variant(
        &self,
        content: &[u8],
        msg: &mut Message,
        var: Variant,
        suspect: bool,
    ) -> Result<(), DecodeError> {
        let m = self.flags();
        let mut r = Reader::new(content);
        let info = r.u8()?;
        let mut st = DeviceStatus {
            ..info_status(info)
        };
        let mut alarm = 0;
        if var == Variant::Obd6 {
            // Signal word: satellites in two 5-bit fields, GSM in the low 5 bits.
            let signal = r.u16()?;
            st.satellites = Some(u32::from(((signal >> 10) & 0x1F) + ((signal >> 5) & 0x1F)));
            st.signal = Some(f64::from(signal & 0x1F));
            alarm = r.u8()?;
            r.skip(1)?; // language
            st.battery_percent = Some(f64::from(r.u8()?));
            r.skip(1)?; // working mode
            st.power_volts = Some(f64::from(r.u16()?) * 0.01);
        } else if m.r11 && var != Variant::Seeworld {
            st.power_volts = Some(f64::from(r.u16()?) * 0.01);
            st.signal = Some(f64::from(r.u8()?));
            alarm = r.u8()?;
        } else {
            st.battery_percent = battery_level(r.u8()?);
            st.signal = Some(f64::from(r.u8()?));
            if m.lw && var != Variant::Seeworld {
                st.power_volts = Some(f64::from(r.u16()? & 0x0FFF) * 0.1);
            } else if m.seeworld && var != Variant::Seeworld {
                st.power_volts = Some(f64::from(r.u8()?));
            } else {
                alarm = r.u8()?;
            }
        }
        self.push_alarms(msg, info, alarm, AlarmAt::unlocated(suspect));
        msg.status = Some(st);
        Ok(())
    }

    /// Non-extended 0x36 (Jimi IoT 4G status): info, battery level, GSM, alarm, language, then
    /// (type u16, length u8, value) modules: 0x0018 battery (0.01 V), 0x006A battery %.
    fn status_2(
        &self,
        content: &[u8],
        msg: &mut Message,
        suspect: bool,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(content);
        let info = r.u8()?;
        let mut st = DeviceStatus {
            battery_percent: battery_level(r.u8()?),
            signal: Some(f64::from(r.u8()?)),
            ..info_status(info)
        };
        let alarm = r.u8()?;
        r.skip(1)?; // language
        while r.remaining() >= 3 {
            let kind = r.u16()?;
            let len = usize::from(r.u8()?);
            let Ok(value) = r.bytes(len) else { break };
            let mut v = Reader::new(value);
            match kind {
                0x0018 => st.battery_volts = v.u16().ok().map(|x| f64::from(x) * 0.01),
                0x006A => st.battery_percent = v.u8().ok().map(f64::from),
                _ => {}
            }
        }
        self.push_alarms(msg, info, alarm, AlarmAt::unlocated(suspect));
        msg.status = Some(st);
        Ok(())
    }

    /// The status block at the end of a location+LBS+status frame. The LBS block before it
    /// comes with or without its length byte depending on the firmware, so the status is read
    /// from the end: 5 bytes (info, voltage level, GSM, alarm, language), or 6 bytes when the
    /// voltage field is 2 bytes wide (then a value up to 100 is a battery percentage, above
    /// that hundredths of a volt).
    fn status_tail(
        &self,
        protocol: u8,
        content: &[u8],
        msg: &mut Message,
        at: AlarmAt,
    ) -> Result<(), DecodeError> {
        let n = content.len();
        if protocol == 0x27 {
            // 0x27 ends with a 2-byte language field after the alarm byte.
            let tail = content.get(n.saturating_sub(6)..).unwrap_or_default();
            return self.status_block(&mut Reader::new(tail), msg, at);
        }
        // GPS (18) + LBS (9 with its length byte) + 6-byte status = 33 for 0x16/0x26.
        if n == 18 + 15 {
            let mut r = Reader::new(content.get(n - 6..).unwrap_or_default());
            let info = r.u8()?;
            let wide = r.u16()?;
            let gsm = r.u8()?;
            let alarm = r.u8()?;
            let mut st = DeviceStatus {
                signal: Some(f64::from(gsm)),
                ..info_status(info)
            };
            if wide <= 100 {
                st.battery_percent = Some(f64::from(wide));
            } else {
                st.power_volts = Some(f64::from(wide) * 0.01);
            }
            self.push_alarms(msg, info, alarm, at);
            msg.status = Some(st);
            return Ok(());
        }
        let tail = content.get(n.saturating_sub(5)..).unwrap_or_default();
        self.status_block(&mut Reader::new(tail), msg, at)
    }

    fn push_alarms(&self, msg: &mut Message, info: u8, alarm: u8, at: AlarmAt) {
        for kind in terminal_info_alarm(info)
            .into_iter()
            .chain(alarm_byte(u16::from(alarm), self.flags()))
        {
            if !msg.events.iter().any(|e| e.kind == kind) {
                msg.events.push(DeviceEvent {
                    kind,
                    device_time: at.time,
                    position: at.position,
                    integrity_suspect: at.suspect,
                });
            }
        }
    }

    /// Modular location frame (extended 0x70): a list of (type u16, length u16, data) modules.
    /// Mapped modules: 0x09 satellites, 0x18 battery (0.01 V), 0x2A inputs (high nibble =
    /// tamper), 0x2B event (0x11 low battery, 0x13 power cut, 0x14 removal), 0x33 GPS (Unix
    /// time, satellites, altitude, coordinates, speed, course/flags).
    fn modular(
        &self,
        content: &[u8],
        msg: &mut Message,
        suspect: bool,
        serial: u16,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(content);
        let mut st = DeviceStatus::default();
        let mut kinds = Vec::new();
        let mut fix: Option<DecodedFix> = None;
        let mut skipped = Vec::new();
        while r.remaining() >= 4 {
            let kind = r.u16()?;
            let len = usize::from(r.u16()?);
            let data = r.bytes(len)?;
            let mut m = Reader::new(data);
            match kind {
                0x09 => st.satellites = m.u8().ok().map(u32::from),
                0x18 => st.battery_volts = m.u16().ok().map(|v| f64::from(v) * 0.01),
                0x2A if m.u8().is_ok_and(|v| v >> 4 != 0) => kinds.push(EventKind::Tamper),
                0x2B => match m.u8() {
                    Ok(0x11) => kinds.push(EventKind::LowBattery),
                    Ok(0x12) => kinds.push(EventKind::Other("lowPower".into())),
                    Ok(0x13) => kinds.push(EventKind::PowerCut),
                    Ok(0x14) => kinds.push(EventKind::Removal),
                    _ => {}
                },
                0x33 => {
                    let t = UnixMicros::from_secs(i64::from(m.u32()?));
                    let sats = m.u8()?;
                    let alt = m.u16()? as i16;
                    let lat = f64::from(m.u32()?) / 1_800_000.0;
                    let lon = f64::from(m.u32()?) / 1_800_000.0;
                    let speed = m.u8()?;
                    let flags = m.u16()?;
                    let lat = if flags & (1 << 10) == 0 { -lat } else { lat };
                    let lon = if flags & (1 << 11) != 0 { -lon } else { lon };
                    if let Ok(position) = LatLon::new(lat, lon) {
                        fix = Some(DecodedFix {
                            device_time: t,
                            position,
                            accuracy_m: None,
                            speed_mps: Some(f64::from(speed) * KMH_TO_MPS),
                            course_deg: Some(f64::from(flags & 0x03FF)).filter(|c| *c <= 360.0),
                            altitude_m: Some(f64::from(alt)),
                            source: FixSource::Gnss,
                            gnss_valid: flags & (1 << 12) != 0,
                            satellites: Some(u32::from(sats)),
                            integrity_suspect: suspect,
                            seq: Some(i64::from(serial)),
                        });
                    }
                }
                other => skipped.push(format!("0x{other:02x}")),
            }
        }
        if fix.is_none() && kinds.is_empty() && st.is_empty() {
            msg.unsupported = Some(format!(
                "GT06 0x70 with only modules Bulwark does not use ({}): identifiers, \
                 Bluetooth tag data",
                skipped.join(", ")
            ));
        }
        let time = fix.as_ref().map(|f| f.device_time);
        let position = fix.as_ref().map(|f| f.position);
        for kind in kinds {
            msg.events.push(DeviceEvent {
                kind,
                device_time: time,
                position,
                integrity_suspect: suspect,
            });
        }
        msg.fixes.extend(fix);
        if !st.is_empty() {
            msg.status = Some(st);
        }
        msg.ack = Some(encode_ack(false, 0x70, serial));
        Ok(())
    }

    /// Status block: terminal info, voltage level (0..6), GSM signal, alarm byte, language.
    fn status_block(
        &self,
        r: &mut Reader<'_>,
        msg: &mut Message,
        at: AlarmAt,
    ) -> Result<(), DecodeError> {
        let info = r.u8()?;
        let level = r.u8()?;
        let gsm = r.u8()?;
        let alarm = r.u8()?;
        self.push_alarms(msg, info, alarm, at);
        msg.status = Some(DeviceStatus {
            // Voltage level 0..6 as a percentage, as the manual's table and Traccar map it.
            battery_percent: Some(f64::from(u32::from(level) * 100 / 6)),
            signal: Some(f64::from(gsm)),
            ..info_status(info)
        });
        Ok(())
    }
}
/// Where and when the alarms of a status block happened: the frame's fix, if it has one,
/// and whether the frame failed its integrity check.
#[derive(Debug, Clone, Copy)]
struct AlarmAt {
    time: Option<UnixMicros>,
    position: Option<LatLon>,
    suspect: bool,
}

impl AlarmAt {
    /// A status frame without a fix.
    fn unlocated(suspect: bool) -> Self {
        AlarmAt {
            time: None,
            position: None,
            suspect,
        }
    }
}

/// What the terminal-info byte itself says: charging (bit 2), and the raw byte.
fn info_status(info: u8) -> DeviceStatus {
    DeviceStatus {
        charging: Some(info & 0x04 != 0),
        status_word: Some(u64::from(info)),
        ..DeviceStatus::default()
    }
}

/// One identified frame with what its layout depends on: the envelope, the variant its
/// length marks and the device model.
struct FrameInfo<'a> {
    /// The whole frame, for the layouts that ignore the envelope (no serial or CRC).
    frame: &'a [u8],
    env: Envelope<'a>,
    var: Variant,
    model: ModelFlags,
    /// An NT20-family location frame (0x22 / 0x25 with the IMEI and a status block).
    nt: bool,
    /// The frame failed its length or CRC check: its fixes are `integrity_suspect`.
    suspect: bool,
}

/// The GT06 message types Bulwark decodes, told apart by protocol number, frame kind
/// (standard or extended), variant and device model ([`message_type`]). Each has one
/// decoding function, which [`Gt06Codec::decode_frame`] dispatches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageType {
    /// Extended 0x32 / 0x33: AZ735 location and alarm, with an extended ack.
    Az735,
    /// Extended 0x38: GPS and LBS with 8-byte cell ids.
    GpsLbs8,
    /// Extended 0xF1: device status as type-length-value items.
    StatusTlv,
    /// Extended 0xF2: peripheral report (no field Bulwark uses).
    Peripheral,
    /// 0x13 of the LW, SeeWorld, R11 and OBD families, SeeWorld's 0xA3: status layouts of
    /// their own.
    StatusVariant,
    /// 0x36 shorter than 30 bytes: status without GPS.
    Status2,
    /// Standard 0x94: external power.
    Power,
    /// Standard 0xA7: address request with the serving cell.
    AddressRequest,
    /// Frames whose content starts with a GPS block.
    Location,
    /// 0x19 / 0xA5: LBS-only status and alarm frames.
    LbsStatus,
    /// 0x13: heartbeat / status.
    Heartbeat,
    /// 0x23: GK310 heartbeat.
    Gk310Heartbeat,
    /// 0x15: command reply.
    CommandReply,
    /// 0x21: extended string reply.
    StringReply,
    /// Extended 0x70: the modular frame of typed items.
    Modular,
    /// 0x9B: serial pass-through.
    SerialPassThrough,
    /// Extended 0x94: information by subtype.
    Information,
    /// 0x95: JC100 / JC400 alarm.
    Alarm95,
    /// 0xA9: Wi-Fi alarm.
    WifiAlarm,
    /// 0x8A: time request.
    TimeRequest,
    /// Standard 0x17 / 0x69: Wi-Fi scan without serial or CRC.
    WifiScan,
    /// 0xF3: Wi-Fi list.
    WifiList,
    /// Cell (and Wi-Fi) scans without GPS: 0x18, 0x24, 0x28, 0x2C, 0x2E, 0x33, 0xA1, 0xA2,
    /// 0xA7 (and 0x24 of the WanwayS20).
    LbsScan,
    /// A protocol number Bulwark does not decode.
    Unknown,
}

/// The message type of an identified frame. The order matters: layouts that differ by
/// variant or model first, then the frames with a GPS block, then the others by number.
fn message_type(f: &FrameInfo<'_>) -> MessageType {
    use MessageType::*;
    let (p, ext, var, m) = (f.env.protocol, f.env.extended, f.var, f.model);
    if ext {
        match p {
            0x32 | 0x33 => return Az735,
            0x38 => return GpsLbs8,
            0xF1 => return StatusTlv,
            0xF2 => return Peripheral,
            _ => {}
        }
    } else {
        match (p, var) {
            (0x13, _) if m.lw || m.seeworld || m.r11 || var == Variant::Obd6 => {
                return StatusVariant;
            }
            (0xA3, Variant::Seeworld) => return StatusVariant,
            (0x36, _) if f.env.content.len() < 30 => return Status2,
            (0x24, Variant::WanwayS20) => return LbsScan,
            (0x94, _) => return Power,
            (0xA7, _) => return AddressRequest,
            _ => {}
        }
    }
    if has_gps(p)
        || f.nt
        || var == Variant::Rfid
        || (p == 0x61 && !ext)
        || matches!(p, 0x24 | 0x36 | 0xA2)
        || (p == 0x34 && !ext)
    {
        return Location;
    }
    match p {
        0x19 | 0xA5 => LbsStatus,
        0x13 => Heartbeat,
        0x23 => Gk310Heartbeat,
        0x15 => CommandReply,
        0x21 => StringReply,
        0x70 if ext => Modular,
        0x9B => SerialPassThrough,
        0x94 => Information,
        0x95 => Alarm95,
        0xA9 => WifiAlarm,
        0x8A => TimeRequest,
        0x17 | 0x69 if !ext => WifiScan,
        0xF3 => WifiList,
        0x18 | 0x24 | 0x28 | 0x2C | 0x2E | 0x33 | 0xA1 | 0xA2 | 0xA7 => LbsScan,
        _ => Unknown,
    }
}

/// The short ack most frames get, like the manual (and Traccar): every standard frame
/// except command replies and the frames that have their own answer; the extended frames
/// that expect one get it.
fn default_ack(f: &FrameInfo<'_>) -> Option<Vec<u8>> {
    let p = f.env.protocol;
    let wifi_list = matches!(p, 0x17 | 0x69) && f.var != Variant::Rfid;
    let acked = if f.env.extended {
        matches!(p, 0xF1 | 0xF2)
    } else {
        !matches!(p, 0x80 | 0x81 | 0x82 | 0x21 | 0x94 | 0xF3 | 0x8A) && !wifi_list
    };
    acked.then(|| encode_ack(false, p, f.env.serial))
}

/// The serving cell after a location frame's GPS block, reported for network-based
/// location; returns the altitude that the SL4x layout carries after it.
fn location_cell(
    f: &FrameInfo<'_>,
    r: &mut Reader<'_>,
    time: Option<UnixMicros>,
    msg: &mut Message,
) -> Result<Option<f64>, DecodeError> {
    let p = f.env.protocol;
    let layout = CellLayout {
        length_prefixed: f.nt || (has_status(p) && !(p == 0x16 && f.env.declared == 0x24)),
        wide_mnc: p == 0x11 || f.var == Variant::Sl4x,
        long_lac: p == 0xA0,
        cid_bytes: match p {
            0xA0 => 8,
            _ if f.var == Variant::Sl4x => 8,
            0x11 | 0x61 | 0x25 => 4,
            _ => 3,
        },
    };
    if let Some(cell) = read_cell(r, layout) {
        msg.network = Some(NetworkScan {
            time,
            cells: vec![cell],
            wifi: Vec::new(),
        });
    }
    if p == 0x31 && f.var == Variant::Sl4x && r.remaining() >= 3 {
        // Ignition, event, archive flag, [odometer], altitude (m).
        r.skip(3)?;
        if r.remaining() > 2 {
            r.skip(4)?;
        }
        return Ok(r
            .u16()
            .ok()
            .map(|a| f64::from(a as i16))
            .filter(|a| (-500.0..=9_000.0).contains(a)));
    }
    Ok(None)
}

/// Standard 0x94: external power, 0.01 V (signed).
fn power(content: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let v = Reader::new(content).u16()? as i16;
    msg.status = Some(DeviceStatus {
        power_volts: Some(f64::from(v) * 0.01),
        ..DeviceStatus::default()
    });
    Ok(())
}

/// Address request (0xA7): the serving cell, then the phone number to answer to.
fn address_request(content: &[u8], msg: &mut Message) {
    if let Some(cell) = read_cell(&mut Reader::new(content), CellLayout::default()) {
        msg.network = Some(NetworkScan {
            time: None,
            cells: vec![cell],
            wifi: Vec::new(),
        });
    }
}

/// GK310 heartbeat (0x23): terminal info, battery voltage (0.01 V), signal.
fn gk310_heartbeat(content: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let mut r = Reader::new(content);
    let info = r.u8()?;
    let mut st = DeviceStatus {
        ..info_status(info)
    };
    if r.remaining() >= 2 {
        st.battery_volts = Some(f64::from(r.u16()?) * 0.01);
    }
    if r.remaining() >= 1 {
        st.signal = Some(f64::from(r.u8()?));
    }
    msg.status = Some(st);
    Ok(())
}

/// Command reply (0x15): length, server flag (4), ASCII text, language (2). Some devices
/// send length 0 and the text anyway: then the text runs to the language field.
fn command_reply(content: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let mut r = Reader::new(content);
    let len = usize::from(r.u8()?);
    r.skip(4)?;
    let text = if len > 4 {
        r.bytes((len - 4).min(r.remaining()))?
    } else {
        let rest = r.rest();
        rest.get(..rest.len().saturating_sub(2)).unwrap_or_default()
    };
    let text = String::from_utf8_lossy(text);
    let text = text.trim_matches(char::from(0)).trim();
    if !text.is_empty() {
        msg.command_reply = Some(text.to_string());
    }
    Ok(())
}

/// Extended string reply (0x21): server flag (4), encoding (1 = ASCII, else UTF-16BE), text;
/// a reply to the position command also yields a fix.
fn string_reply(content: &[u8], msg: &mut Message, suspect: bool) -> Result<(), DecodeError> {
    let mut r = Reader::new(content);
    r.skip(4)?;
    let enc = r.u8()?;
    let body = r.rest();
    let text = if enc == 1 {
        String::from_utf8_lossy(body).into_owned()
    } else {
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| {
                u16::from_be_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    if let Some(fix) = parse_current_position(&text, suspect) {
        msg.fixes.push(fix);
    }
    msg.command_reply = Some(text);
    Ok(())
}

/// Serial pass-through (0x9B; RFID readers, sensors): a port byte, then data. Printable text
/// is kept as text, anything else as hex.
fn serial_pass_through(content: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let mut r = Reader::new(content);
    r.skip(1)?;
    let data = r.rest();
    let text = String::from_utf8_lossy(data);
    let trimmed = text.trim_end_matches(['\r', '\n']);
    msg.command_reply = Some(
        if trimmed.bytes().all(|b| b.is_ascii_graphic() || b == b' ') && !trimmed.is_empty() {
            trimmed.to_string()
        } else {
            hex(data)
        },
    );
    Ok(())
}

/// Extended information (0x94) by subtype: 0x00, and 0x0B with two bytes, are the external
/// power (0.01 V); the others are not stored.
fn information(content: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let mut r = Reader::new(content);
    let sub = r.u8()?;
    if sub == 0x00 || (sub == 0x0B && r.remaining() == 2) {
        msg.status = Some(DeviceStatus {
            power_volts: Some(f64::from(r.u16()?) * 0.01),
            ..DeviceStatus::default()
        });
    } else if sub == 0x0B {
        msg.unsupported =
            Some("GT06 0x94/0x0B network technology (2G/4G): not a field Bulwark stores".into());
    } else {
        msg.unsupported = Some(format!(
            "GT06 0x94 information subtype 0x{sub:02x} (vehicle/SIM details) not decoded"
        ));
    }
    Ok(())
}

/// The answer to a time request (0x8A): the server's UTC time, serial 0.
fn time_reply(now: UnixMicros) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = crate::util::civil(now);
    let content = [
        (y - 2000).clamp(0, 255) as u8,
        mo as u8,
        d as u8,
        h as u8,
        mi as u8,
        s as u8,
    ];
    encode_frame(false, 0x8A, &content, 0)
}

/// Standard Wi-Fi frames (0x17 / 0x69): no serial or CRC; the length byte is the
/// access-point count. Short ack with the 6-byte BCD date-time echoed.
fn wifi_scan(p: u8, frame: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let body = frame
        .get(4..frame.len().saturating_sub(2))
        .unwrap_or_default();
    let mut r = Reader::new(body);
    let time = r.bytes(6)?;
    let mut ack = vec![0x78, 0x78, 0x00, p];
    ack.extend_from_slice(time);
    ack.extend_from_slice(&STOP);
    msg.ack = Some(ack);
    // These frames carry no CRC, so their integrity is "not carried", not "failed".
    msg.integrity = Integrity::NotCarried;
    let count = usize::from(frame.get(2).copied().unwrap_or(0));
    let bcd = |b: u8| i64::from(b >> 4) * 10 + i64::from(b & 0x0F);
    let g = |i: usize| bcd(time.get(i).copied().unwrap_or(0));
    let mut scan = NetworkScan {
        time: utc(year2(g(0)), g(1), g(2), g(3), g(4), g(5) as f64),
        ..NetworkScan::default()
    };
    for _ in 0..count {
        let mac = r.bytes(6)?;
        let rssi = r.u8()?;
        scan.wifi.push(WifiAccessPoint {
            mac: mac_string(mac),
            rssi: Some(-i32::from(rssi)),
        });
    }
    if let Ok(cells) = r.u8() {
        let mcc = r.u16()?;
        let mnc = r.u8()?;
        for _ in 0..cells {
            let lac = r.u16()?;
            let cid = r.u16()?;
            let rssi = r.u8()?;
            scan.cells.push(CellTower {
                mcc,
                mnc: u16::from(mnc),
                lac: u32::from(lac),
                cell_id: u64::from(cid),
                rssi: Some(-i32::from(rssi)),
            });
        }
    }
    msg.network = Some(scan);
    Ok(())
}

/// Wi-Fi list (0xF3): date-time, count, then (2 reserved bytes, MAC) per access point.
fn wifi_list(content: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let mut r = Reader::new(content);
    let time = read_time(&mut r)?;
    let count = r.u8()?;
    let mut scan = NetworkScan {
        time,
        ..NetworkScan::default()
    };
    for _ in 0..count {
        r.skip(2)?;
        scan.wifi.push(WifiAccessPoint {
            mac: mac_string(r.bytes(6)?),
            rssi: None,
        });
    }
    msg.network = Some(scan);
    Ok(())
}

/// A battery byte: 0..6 is a voltage level (as a percentage, like the manual's table), up to
/// 100 a percentage; anything else is not a battery reading.
fn battery_level(b: u8) -> Option<f64> {
    match b {
        0..=6 => Some(f64::from(u32::from(b) * 100 / 6)),
        7..=100 => Some(f64::from(b)),
        _ => None,
    }
}

fn mac_string(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Multi-cell (and Wi-Fi) frames 0x18, 0x24, 0x28, 0x2C, 0x2E, 0x33, 0xA1, 0xA2, 0xA7:
/// date-time, MCC (bit 15 set = 2-byte MNC), MNC, 7 cells (6 for 0x33) of LAC, cell id and
/// signal, timing advance, then for Wi-Fi types a count and (MAC, signal) pairs. The GK310
/// types 0xA1/0xA2/0x33 use 4-byte LACs and 8-byte cell ids.
fn multi_lbs(p: u8, content: &[u8], var: Variant) -> Result<NetworkScan, DecodeError> {
    let mut r = Reader::new(content);
    let time = read_time(&mut r)?;
    let s20 = var == Variant::WanwayS20;
    if s20 {
        r.skip(1)?; // timing advance
    }
    let long = matches!(p, 0xA1 | 0xA2 | 0x33);
    let mcc = r.u16()?;
    let mnc = if mcc & 0x8000 != 0 {
        r.u16()?
    } else {
        u16::from(r.u8()?)
    };
    let mut scan = NetworkScan {
        time,
        ..NetworkScan::default()
    };
    let cells = if s20 {
        usize::from(r.u8()?)
    } else if p == 0x33 {
        6
    } else {
        7
    };
    for _ in 0..cells {
        let lac = if long { r.u32()? } else { u32::from(r.u16()?) };
        let cid = if long { r.u64()? } else { r.uint(3)? };
        let rssi = r.u8()?;
        if lac > 0 {
            scan.cells.push(CellTower {
                mcc: mcc & 0x7FFF,
                mnc,
                lac,
                cell_id: cid,
                rssi: Some(-i32::from(rssi)),
            });
        }
    }
    if s20 {
        return Ok(scan);
    }
    r.skip(1)?; // timing advance
    if !matches!(p, 0x24 | 0x28 | 0x2E | 0xA1)
        && let Ok(count) = r.u8()
    {
        for _ in 0..count {
            let Ok(mac) = r.bytes(6) else { break };
            let rssi = r.u8().ok().map(|v| -i32::from(v));
            scan.wifi.push(WifiAccessPoint {
                mac: mac_string(mac),
                rssi,
            });
        }
    }
    Ok(scan)
}

/// Parses the text reply "Current position!Lat:N23.111822,Lon:E114.409529,Course:0.00,
/// Speed:0.00,DateTime:2019-09-06 18:05:11" (speed in km/h, time UTC) some devices send in 0x21.
fn parse_current_position(text: &str, suspect: bool) -> Option<DecodedFix> {
    let rest = text.split("Current position!").nth(1)?;
    let field = |key: &str| -> Option<&str> {
        let start = rest.find(key)? + key.len();
        let tail = rest.get(start..)?;
        Some(tail.split(',').next().unwrap_or(tail).trim())
    };
    let hem = |s: &str, neg: char| -> Option<f64> {
        let (h, v) = s.split_at_checked(1)?;
        let v: f64 = v.parse().ok()?;
        Some(if h.starts_with(neg) { -v } else { v })
    };
    let lat = hem(field("Lat:")?, 'S')?;
    let lon = hem(field("Lon:")?, 'W')?;
    let course: Option<f64> = field("Course:").and_then(|s| s.parse().ok());
    let speed: Option<f64> = field("Speed:").and_then(|s| s.parse().ok());
    let dt = field("DateTime:")?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("T");
    let t = crate::util::parse_iso8601(&dt)?;
    Some(DecodedFix {
        device_time: t,
        position: LatLon::new(lat, lon).ok()?,
        accuracy_m: None,
        speed_mps: speed.map(|s| s * KMH_TO_MPS),
        course_deg: course,
        altitude_m: None,
        source: FixSource::Gnss,
        gnss_valid: true,
        satellites: None,
        integrity_suspect: suspect,
        seq: None,
    })
}
