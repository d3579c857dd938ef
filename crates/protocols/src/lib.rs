//! Device protocols, sans-IO: bytes in, decoded fixes, events, statuses and acknowledgements out.
//!
//! # Overview
//!
//! Every tracker protocol Bulwark speaks is a module here: [`gt06`], [`h02`], [`watch`] and
//! [`teltonika`] for TCP (and UDP) trackers, and [`http`] for phone apps that upload over HTTP
//! (OsmAnd / Traccar Client, OwnTracks, GPSLogger, Overland). No module opens a socket, reads a
//! clock or touches storage: the server passes bytes and "now" in and acts on what comes out.
//!
//! All protocols produce the same shape, [`Message`]: the device identity if the frame carried
//! one, zero or more [`DecodedFix`]es, [`DeviceEvent`]s (SOS, tamper, strap removal, low
//! battery...), an optional [`DeviceStatus`], the acknowledgement bytes the device expects, and
//! the result of the frame's integrity checks ([`Integrity`]).
//!
//! A TCP connection gets one [`StreamSession`] (for example [`gt06::Gt06Session`]): push bytes
//! as they are read, then poll until it answers [`StreamItem::NeedMore`]. Partial frames, several
//! frames per read, garbage before a frame and oversize frames are all ordinary results, never
//! panics or errors that end the connection by themselves.
//!
//! **API boundary — acknowledgements.** [`Message::ack`] holds the bytes the device waits for.
//! The server must send them only after the fixes and events of that message are durable:
//! most trackers delete a record from their buffer when it is acknowledged, so an early
//! acknowledgement followed by a crash loses the record for good (a failure Traccar has).
//!
//! **Integrity decision.** Many real devices send wrong CRCs or lengths (the Traccar vectors
//! mark 29 of 187 GT06 frames). Frames whose structure still parses are accepted, but every fix
//! from such a frame carries `integrity_suspect = true`, so the engine can refuse to raise a
//! confident zone or proximity alarm from a possibly corrupted coordinate. Events (an SOS, a
//! strap cut) from such frames are still reported: a lost real SOS costs more than a false one,
//! which an operator can dismiss. See `docs/protocols.md`.

pub mod gt06;
pub mod h02;
pub mod http;
pub mod teltonika;
pub mod watch;

mod util;

/// CRC-16/ARC (Teltonika's "CRC-16/IBM"), for tools and tests that build frames.
pub use util::crc16_ibm;

use domain::{FixSource, LatLon, UnixMicros};
use thiserror::Error;

/// Knots to metres per second (1 kn = 1852 m / 3600 s, exact by definition).
pub const KNOTS_TO_MPS: f64 = 1852.0 / 3600.0;
/// Kilometres per hour to metres per second.
pub const KMH_TO_MPS: f64 = 1000.0 / 3600.0;

/// One position as a device reported it, converted to SI units and UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedFix {
    /// When the device says it took the fix (UTC).
    pub device_time: UnixMicros,
    pub position: LatLon,
    /// Horizontal accuracy in metres when the device reports one (phone apps do; trackers rarely).
    pub accuracy_m: Option<f64>,
    pub speed_mps: Option<f64>,
    /// Course over ground, degrees clockwise from north.
    pub course_deg: Option<f64>,
    pub altitude_m: Option<f64>,
    pub source: FixSource,
    /// The device's own "GNSS fix valid" flag. `false` usually means the last known position is
    /// being repeated, so it must not be shown as current.
    pub gnss_valid: bool,
    pub satellites: Option<u32>,
    /// The frame failed a length or checksum check; the coordinate may be corrupt.
    pub integrity_suspect: bool,
    /// The device's record or frame sequence number, when it has one, to spot resent fixes.
    pub seq: Option<i64>,
}

/// What a device said happened, independent of any position.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The wearer pressed the panic button.
    Sos,
    /// Case opened, strap or body tamper switch.
    Tamper,
    /// Strap cut or device taken off the body.
    Removal,
    LowBattery,
    /// External power disconnected.
    PowerCut,
    /// Device switched off.
    PowerOff,
    /// Charger connected (`true`) or disconnected (`false`). The decoders report the charging
    /// *state* in [`DeviceStatus::charging`] on every heartbeat; turning a change of state into
    /// this event needs the previous state, which the engine has and a frame does not.
    Charging(bool),
    FallDown,
    Vibration,
    Overspeed,
    GeofenceEnter,
    GeofenceExit,
    /// GNSS or GSM jamming detected.
    Jamming,
    /// Any other alarm, named as the protocol documentation names it (e.g. `hardBraking`).
    /// Named `general` when the device says "alarm" without saying which.
    Other(String),
}

/// A device event with the device's time and the position carried in the same frame, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    pub kind: EventKind,
    pub device_time: Option<UnixMicros>,
    /// The position in the same frame. `None` when the frame had none (the server should use
    /// the last known position and say so). Never dropped for lack of a GNSS fix: an SOS
    /// without a position is still an SOS.
    pub position: Option<LatLon>,
    /// Set when the frame failed an integrity check (the event is still reported, see crate docs).
    pub integrity_suspect: bool,
}

/// Device health as reported; every field is optional because every protocol reports a
/// different subset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceStatus {
    pub battery_percent: Option<f64>,
    /// Internal battery voltage.
    pub battery_volts: Option<f64>,
    /// External power voltage (vehicle or charger).
    pub power_volts: Option<f64>,
    pub charging: Option<bool>,
    /// Signal strength in the protocol's own scale (GSM 0..31, 0..4 bars or dBm); see `signal_unit`.
    pub signal: Option<f64>,
    pub satellites: Option<u32>,
    pub steps: Option<u64>,
    /// Raw status word when the protocol has one (H02 and Watch flags, GT06 terminal info).
    pub status_word: Option<u64>,
    /// Body-contact readings from wrist and ankle devices. A strap that is cut or slipped off
    /// shows as a pulse of 0 or a skin temperature falling to ambient, which corroborates a
    /// removal alarm.
    pub heart_rate_bpm: Option<f64>,
    pub body_temp_c: Option<f64>,
    pub blood_oxygen_pct: Option<f64>,
}

impl DeviceStatus {
    pub fn is_empty(&self) -> bool {
        *self == DeviceStatus::default()
    }
}

/// The cell towers and access points a device heard are domain types: the store keeps them as
/// they are decoded.
pub use domain::{CellTower, WifiAccessPoint};

/// Radio surroundings reported instead of (or beside) a GNSS fix. Not a position: turning it
/// into one needs a geolocation service (cell accuracy 200–2,000 m, Wi-Fi 20–60 m; domain
/// brief). Kept because an SOS indoors often arrives with nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkScan {
    pub time: Option<UnixMicros>,
    pub cells: Vec<CellTower>,
    pub wifi: Vec<WifiAccessPoint>,
}

/// A frame check that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegrityFailure {
    Crc { declared: u32, computed: u32 },
    Length { declared: usize, actual: usize },
}

/// The result of the frame's own consistency checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Integrity {
    /// All checks the protocol carries passed.
    #[default]
    Ok,
    /// The protocol carries no check (H02 text, HTTP apps).
    NotCarried,
    /// At least one check failed; the frame was still decoded (see crate docs).
    Failed(Vec<IntegrityFailure>),
}

impl Integrity {
    pub fn is_suspect(&self) -> bool {
        matches!(self, Integrity::Failed(_))
    }

    fn from_failures(failures: Vec<IntegrityFailure>) -> Self {
        if failures.is_empty() {
            Integrity::Ok
        } else {
            Integrity::Failed(failures)
        }
    }
}

/// Everything one frame (or one HTTP request, or one datagram) said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// IMEI or device id, from a login frame or carried in the frame itself. Stream sessions
    /// remember the login identity and repeat it on every later message of the connection.
    pub identity: Option<String>,
    pub fixes: Vec<DecodedFix>,
    pub events: Vec<DeviceEvent>,
    pub status: Option<DeviceStatus>,
    /// Cell towers / Wi-Fi access points heard, for network-based location.
    pub network: Option<NetworkScan>,
    /// Bytes the device expects back. Send them only after `fixes` and `events` are durable.
    pub ack: Option<Vec<u8>>,
    pub integrity: Integrity,
    /// Text the device sent in reply to a command (GT06 0x15, H02 V4/SMS, Teltonika codec 12).
    pub command_reply: Option<String>,
    /// The frame was recognised but its content is not decoded (which message type, and why).
    /// Such a message may still carry an `ack` so the device does not resend forever.
    pub unsupported: Option<String>,
    /// The frame's bytes, kept when `unsupported` is set ([`Framed`] fills it for stream
    /// sessions; datagram doors set it themselves), so the server can store what it could not
    /// decode, raw, before it sends the ack (see the server's `unknown_frames`).
    pub raw: Option<Vec<u8>>,
}

impl Message {
    /// Whether the message carries anything for the monitoring pipeline (not just an ack).
    pub fn has_data(&self) -> bool {
        !self.fixes.is_empty()
            || !self.events.is_empty()
            || self.status.as_ref().is_some_and(|s| !s.is_empty())
            || self.command_reply.is_some()
            || self
                .network
                .as_ref()
                .is_some_and(|n| !n.cells.is_empty() || !n.wifi.is_empty())
    }
}

/// Why a frame could not be decoded. None of these end a connection by themselves.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeError {
    #[error("frame is truncated: {0}")]
    Truncated(&'static str),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("data before the device identified itself (login / IMEI packet) was dropped")]
    NotIdentified,
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Why bytes were skipped while looking for a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Bytes before the next frame start marker.
    Garbage,
    /// A frame header announced more than the protocol's maximum frame size, or the buffer grew
    /// past it without a complete frame.
    Oversize,
    /// A frame that started correctly but could not be delimited (e.g. bad stop bytes).
    BadFrame,
    /// Line terminators between text frames (H02 devices end frames with CR LF). Harmless;
    /// reported separately so that garbage counts stay meaningful.
    Padding,
}

/// One result of [`StreamSession::poll`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// No complete frame is buffered: read more bytes. This is the normal idle state.
    NeedMore,
    /// A frame was decoded.
    Message(Box<Message>),
    /// A complete frame was found but could not be decoded (it has been consumed).
    Rejected {
        frame_len: usize,
        error: DecodeError,
    },
    /// Bytes were dropped to resynchronise.
    Skipped { bytes: usize, reason: SkipReason },
}

/// A per-connection decoder for a stream transport: push bytes in, poll results out.
pub trait StreamSession {
    /// Appends bytes read from the connection.
    fn push(&mut self, bytes: &[u8]);
    /// Returns the next result; call until it answers [`StreamItem::NeedMore`].
    /// `now` is the server's receive time (used for replies that carry the server time).
    fn poll(&mut self, now: UnixMicros) -> StreamItem;
    /// The identity the connection logged in with, if any.
    fn identity(&self) -> Option<&str>;
    /// Bytes buffered and not yet consumed.
    fn buffered(&self) -> usize;
    /// Tells the decoder the device's model once the registry knows it (after the login):
    /// some GT06 firmware families reuse protocol numbers with their own layouts. Protocols
    /// without model-specific layouts ignore it.
    fn set_model(&mut self, _model: Option<&str>) {}
}

/// How a framer sees the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    NeedMore,
    /// A frame occupies `buf[..len]`; `consume >= len` bytes are to be dropped (trailing CR/LF).
    Frame {
        len: usize,
        consume: usize,
    },
    Skip {
        len: usize,
        reason: SkipReason,
    },
}

impl Framing {
    /// Garbage before the first byte that can start a frame: the bytes before it, or the
    /// whole buffer when no byte can (an empty buffer waits for more). `None` when `buf`
    /// starts with such a byte.
    pub fn garbage_before(buf: &[u8], starts_frame: impl Fn(u8) -> bool) -> Option<Framing> {
        match buf.iter().position(|&b| starts_frame(b)) {
            Some(0) => None,
            _ if buf.is_empty() => Some(Framing::NeedMore),
            Some(start) => Some(Framing::Skip {
                len: start,
                reason: SkipReason::Garbage,
            }),
            None => Some(Framing::Skip {
                len: buf.len(),
                reason: SkipReason::Garbage,
            }),
        }
    }
}

/// A protocol's framer plus stateful decoder; [`Framed`] turns it into a [`StreamSession`].
pub trait Codec {
    /// Largest frame accepted, in bytes.
    const MAX_FRAME: usize;
    fn frame(&mut self, buf: &[u8]) -> Framing;
    fn decode(&mut self, frame: &[u8], now: UnixMicros) -> Result<Message, DecodeError>;
    fn identity(&self) -> Option<&str>;
    /// See [`StreamSession::set_model`].
    fn set_model(&mut self, _model: Option<&str>) {}
}

/// A buffered stream session around a [`Codec`].
#[derive(Debug, Clone, Default)]
pub struct Framed<C> {
    buf: Vec<u8>,
    pub codec: C,
}

impl<C: Codec> Framed<C> {
    pub fn new(codec: C) -> Self {
        Framed {
            buf: Vec::new(),
            codec,
        }
    }

    fn drain(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.drain(..n);
    }
}

impl<C: Codec> StreamSession for Framed<C> {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn poll(&mut self, now: UnixMicros) -> StreamItem {
        if self.buf.is_empty() {
            return StreamItem::NeedMore;
        }
        match self.codec.frame(&self.buf) {
            Framing::NeedMore => {
                // A peer that never completes a frame must not grow the buffer without bound.
                if self.buf.len() > C::MAX_FRAME {
                    let bytes = self.buf.len();
                    self.buf.clear();
                    StreamItem::Skipped {
                        bytes,
                        reason: SkipReason::Oversize,
                    }
                } else {
                    StreamItem::NeedMore
                }
            }
            Framing::Skip { len, reason } => {
                // A framer that asks to skip nothing would loop forever; skip at least one byte.
                let bytes = len.clamp(1, self.buf.len());
                self.drain(bytes);
                StreamItem::Skipped { bytes, reason }
            }
            Framing::Frame { len, consume } => {
                let len = len.min(self.buf.len());
                let frame: Vec<u8> = self.buf.get(..len).map(<[u8]>::to_vec).unwrap_or_default();
                self.drain(consume.max(len).max(1));
                match self.codec.decode(&frame, now) {
                    Ok(mut m) => {
                        if m.unsupported.is_some() {
                            m.raw = Some(frame);
                        }
                        StreamItem::Message(Box::new(m))
                    }
                    Err(error) => StreamItem::Rejected {
                        frame_len: len,
                        error,
                    },
                }
            }
        }
    }

    fn identity(&self) -> Option<&str> {
        self.codec.identity()
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn set_model(&mut self, model: Option<&str>) {
        self.codec.set_model(model);
    }
}
