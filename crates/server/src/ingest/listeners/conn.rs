//! One tracker connection: read, decode, store durably, then acknowledge.

use super::{ConnGuard, DeviceClaim, Limits, stopped};
use crate::AppState;
use crate::ingest;
use domain::{Device, DeviceEvent, Protocol, UnixMicros};
use engine::DeviceCommand;
use protocols::{DecodeError, Message, SkipReason, StreamItem, StreamSession};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long writing one ack may take before the peer is considered gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server ends a connection, and the last bytes to send before it does.
#[derive(Debug)]
pub(super) struct Close {
    pub reason: &'static str,
    pub reply: Option<Vec<u8>>,
}

impl Close {
    fn new(reason: &'static str) -> Self {
        Close {
            reason,
            reply: None,
        }
    }
}

fn new_session(protocol: Protocol) -> Option<Box<dyn StreamSession + Send>> {
    use protocols::{gt06, h02, teltonika, watch};
    Some(match protocol {
        Protocol::Gt06 => Box::new(gt06::Gt06Session::gt06()),
        Protocol::H02 => Box::new(h02::H02Session::h02()),
        Protocol::Watch => Box::new(watch::WatchSession::watch()),
        Protocol::Teltonika => Box::new(teltonika::TeltonikaSession::teltonika()),
        _ => return None,
    })
}

/// Per-connection (or, for UDP, per-datagram) state between messages.
pub(super) struct Conn {
    state: AppState,
    protocol: Protocol,
    remote: SocketAddr,
    /// The device this connection resolved to, by the identity it resolved from. Devices do
    /// not change identity on a connection; if one does, it is resolved again.
    device: Option<(String, Device)>,
    /// Watch frames name a maker (`SG`, `3G`...) that commands must repeat.
    watch_maker: Option<String>,
    /// Bytes dropped since the last decodable frame.
    garbage: usize,
    /// The registered model of a device just identified, not yet given to the session.
    pending_model: Option<Option<String>>,
    /// The listeners' shared counters (TCP only): who else claims this device.
    limits: Option<Limits>,
    /// This connection's claim on its device's identity.
    claim: Option<DeviceClaim>,
}

impl Conn {
    pub(super) fn new(state: AppState, protocol: Protocol, remote: SocketAddr) -> Self {
        Conn {
            state,
            protocol,
            remote,
            device: None,
            watch_maker: None,
            garbage: 0,
            pending_model: None,
            limits: None,
            claim: None,
        }
    }

    /// Claims the device for this TCP connection. A second live connection claiming the same
    /// identity is a sign of spoofing (or of a device reconnecting over a link that died
    /// without a FIN): both are kept, and a `spoofing` event (`second_connection`) is stored
    /// for staff. Why not refuse one of them: refusing the newcomer lets whoever connects
    /// first lock the real device out; refusing the old one lets anyone knowing the IMEI kick
    /// the real device off. Fixes from either while both are live are flagged
    /// `integrity_suspect` (see `handle`).
    async fn claim_identity(&mut self, device: &Device, received: UnixMicros) -> Result<(), Close> {
        let Some(limits) = &self.limits else {
            return Ok(());
        };
        let (claim, others) = limits.claim(device.id);
        self.claim = Some(claim);
        if others == 0 {
            return Ok(());
        }
        metrics::counter!("bulwark_spoofing_suspected_total", "protocol" => self.door(), "sign" => "second_connection").increment(1);
        tracing::warn!(protocol = self.door(), device = %device.id, remote = %self.remote.ip(), others, "second live connection claims this device; both kept, flagged");
        let event = ingest::spoofing_event(device.id, "second_connection", received, received);
        if let Err(e) =
            ingest::store_reports(&self.state, self.door(), Vec::new(), vec![event]).await
        {
            tracing::error!(protocol = self.door(), device = %device.id, error = %e.message, "spoofing event not stored; closing");
            return Err(Close::new("store error; not acknowledged"));
        }
        Ok(())
    }

    /// The model of a device identified since the last call, for the session's decoder.
    pub(super) fn take_model(&mut self) -> Option<Option<String>> {
        self.pending_model.take()
    }

    fn door(&self) -> &'static str {
        self.protocol.as_str()
    }

    fn identity(&self) -> Option<&str> {
        self.device.as_ref().map(|(i, _)| i.as_str())
    }

    /// Resolves the identity to a registered device. Unknown identities are recorded for an
    /// administrator and refused: a device is never trusted because it knows an IMEI format.
    async fn resolve(&mut self, identity: &str, received: UnixMicros) -> Result<Device, Close> {
        if let Some((id, d)) = &self.device
            && id == identity
        {
            return Ok(d.clone());
        }
        let store = &self.state.store;
        match store
            .device_by_hardware_id(self.protocol, identity.to_string())
            .await
        {
            Ok(Some((d, _))) => {
                // The model selects firmware-specific layouts for the frames that follow.
                let model = match store.device_model(d.id).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(protocol = self.door(), device = %d.id, error = %e, "device model not read; standard layouts");
                        None
                    }
                };
                tracing::info!(protocol = self.door(), remote = %self.remote, hardware_id = identity, device = %d.id, model = ?model, "device identified");
                self.pending_model = Some(model);
                self.device = Some((identity.to_string(), d.clone()));
                self.claim = None;
                self.claim_identity(&d, received).await?;
                Ok(d)
            }
            Ok(None) => {
                if let Err(e) = store
                    .record_unknown_device(
                        self.protocol,
                        identity.to_string(),
                        Some(self.remote.ip().to_string()),
                        received,
                    )
                    .await
                {
                    tracing::error!(protocol = self.door(), error = %e, "could not record unknown device");
                }
                metrics::counter!("bulwark_device_unknown_total", "protocol" => self.door())
                    .increment(1);
                tracing::warn!(protocol = self.door(), hardware_id = identity, remote = %self.remote.ip(), "unknown device refused; connection closed");
                Err(Close {
                    reason: "unknown device",
                    // Teltonika waits for a one-byte verdict on its IMEI: 0x00 means refused.
                    // Other protocols get no reply.
                    reply: (self.protocol == Protocol::Teltonika).then(|| vec![0x00]),
                })
            }
            Err(e) => {
                tracing::error!(protocol = self.door(), error = %e, "device lookup failed; closing without ack");
                Err(Close::new("store error during device lookup"))
            }
        }
    }

    /// Handles one decoded message: returns the bytes to write (ack, then any queued command)
    /// only once the message's fixes and events are durable.
    pub(super) async fn handle(
        &mut self,
        m: Message,
        session_identity: Option<&str>,
        received: UnixMicros,
    ) -> Result<Vec<u8>, Close> {
        self.garbage = 0;
        let identity = m
            .identity
            .clone()
            .or_else(|| session_identity.map(str::to_string));
        let Some(identity) = identity else {
            // Keep-alives before identification carry nothing to store; data without an
            // identity cannot be attributed and is neither stored nor acknowledged.
            if m.has_data() {
                metrics::counter!("bulwark_device_frames_rejected_total", "protocol" => self.door(), "reason" => "no_identity").increment(1);
                tracing::warn!(protocol = self.door(), remote = %self.remote, "data before identification dropped");
                return Ok(Vec::new());
            }
            return Ok(m.ack.unwrap_or_default());
        };
        let device = self.resolve(&identity, received).await?;
        if self.protocol == Protocol::Watch
            && let Some(ack) = &m.ack
            && let Some(maker) = watch_maker(ack)
        {
            self.watch_maker = Some(maker);
        }
        if let Some(reply) = &m.command_reply {
            // A reply to `WHERE#`-style commands can quote a position: TRACE only.
            tracing::debug!(protocol = self.door(), device = %device.id, "command reply received");
            tracing::trace!(protocol = self.door(), device = %device.id, %reply, "command reply text");
        }

        // While two connections claim the device, neither's positions can be trusted.
        let shared = self.limits.as_ref().is_some_and(|l| l.live(device.id) > 1);
        let suspect_frame = m.integrity.is_suspect() || shared;
        let mut fixes = Vec::with_capacity(m.fixes.len());
        // Index in `fixes` of each decoded fix that passed validation.
        let mut stored_index = vec![None; m.fixes.len()];
        for (i, f) in m.fixes.iter().enumerate() {
            let raw = ingest::raw_from_decoded(f, suspect_frame);
            match ingest::validate(&self.state, device.id, raw, received, i) {
                Ok(fix) => {
                    if let Some(slot) = stored_index.get_mut(i) {
                        *slot = Some(fixes.len());
                    }
                    fixes.push(fix)
                }
                Err(e) => {
                    let code = e.code.spec().0;
                    metrics::counter!("bulwark_ingest_rejected_total", "door" => self.door(), "code" => code)
                        .increment(1);
                    // The message can quote a coordinate: only at TRACE.
                    tracing::warn!(protocol = self.door(), device = %device.id, code, "fix rejected, not stored (frame still acknowledged)");
                    tracing::trace!(protocol = self.door(), device = %device.id, reason = %e.message, "rejected fix detail");
                }
            }
        }

        let mut events: Vec<DeviceEvent> = m
            .events
            .iter()
            .filter_map(|ev| {
                ingest::event_from_decoded(&self.state, self.protocol, device.id, ev, received)
            })
            .collect();

        let scans: Vec<store::NewScan> = m
            .network
            .as_ref()
            .and_then(|n| ingest::scan_from_decoded(&self.state, device.id, n, &m.fixes, received))
            .map(|(scan, fix)| store::NewScan {
                scan,
                fix: fix.and_then(|i| stored_index.get(i).copied().flatten()),
            })
            .into_iter()
            .collect();

        match ingest::flag_impossible_jumps(
            &self.state,
            self.protocol,
            device.id,
            &mut fixes,
            received,
        )
        .await
        {
            Ok(jump) => events.extend(jump),
            Err(e) => {
                tracing::error!(protocol = self.door(), device = %device.id, error = %e.message, "jump check failed; closing without ack");
                return Err(Close::new("store error; not acknowledged"));
            }
        }
        // A frame's health report is stored with its fixes, events and scans (one durable
        // write); a status-only frame stores it alone, below.
        let mut health_stored = false;
        if !fixes.is_empty() || !events.is_empty() || !scans.is_empty() {
            let n = fixes.len();
            let health = m
                .status
                .as_ref()
                .and_then(|s| ingest::health_of(s, received))
                .map(|h| (device.id, h))
                .into_iter()
                .collect();
            health_stored = true;
            if let Err(e) = ingest::store_reports_with_scans(
                &self.state,
                self.door(),
                fixes,
                events,
                scans,
                health,
            )
            .await
            {
                // Not acknowledged: the device keeps the record and resends it.
                tracing::error!(protocol = self.door(), device = %device.id, code = e.code.spec().0, error = %e.message, fixes = n, "store failed; closing without ack");
                return Err(Close::new("store error; not acknowledged"));
            }
        }

        if let Some(note) = &m.unsupported {
            // The invariant: what cannot be turned into stored data is stored raw before
            // the ack, or not acknowledged at all.
            let raw = m.raw.clone().unwrap_or_default();
            if let Err(e) = ingest::store_unknown_frame(
                &self.state,
                self.protocol,
                device.id,
                raw,
                note,
                received,
            )
            .await
            {
                tracing::error!(protocol = self.door(), device = %device.id, error = %e.message, "raw frame not stored; closing without ack");
                return Err(Close::new("store error; not acknowledged"));
            }
        }
        if let Some(status) = &m.status
            && !health_stored
        {
            ingest::record_health(&self.state, device.id, status, received).await;
        }
        let mut out = m.ack.unwrap_or_default();
        if let Some(command) = self.state.pipeline.take_command(device.id) {
            let DeviceCommand::ReportingInterval(secs) = command;
            match self.encode_interval(&identity, secs, received) {
                Some(bytes) => {
                    tracing::info!(protocol = self.door(), device = %device.id, interval_s = secs, "reporting-interval command sent");
                    metrics::counter!("bulwark_device_commands_sent_total", "protocol" => self.door()).increment(1);
                    out.extend_from_slice(&bytes);
                }
                None => {
                    tracing::warn!(protocol = self.door(), device = %device.id, "no command encoder for this protocol; command dropped");
                }
            }
        }
        Ok(out)
    }

    fn encode_interval(&self, identity: &str, secs: u32, now: UnixMicros) -> Option<Vec<u8>> {
        use protocols::{gt06, h02, teltonika, watch};
        Some(match self.protocol {
            Protocol::Gt06 => gt06::encode_set_interval(secs),
            Protocol::H02 => h02::encode_set_interval(identity, secs, now),
            Protocol::Watch => watch::encode_set_interval(
                self.watch_maker.as_deref().unwrap_or("3G"),
                identity,
                secs,
            ),
            Protocol::Teltonika => teltonika::encode_set_interval(secs),
            _ => return None,
        })
    }

    /// A complete frame that did not decode. The connection stays open (the next frame may be
    /// fine) unless it has produced nothing but such bytes for too long.
    pub(super) fn rejected(&mut self, frame_len: usize, error: &DecodeError) -> Result<(), Close> {
        let reason = match error {
            DecodeError::Truncated(_) => "truncated",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::NotIdentified => "not_identified",
            DecodeError::Unsupported(_) => "unsupported",
        };
        metrics::counter!("bulwark_device_frames_rejected_total", "protocol" => self.door(), "reason" => reason).increment(1);
        match error {
            DecodeError::Unsupported(_) => {
                tracing::debug!(protocol = self.door(), remote = %self.remote, frame_len, %error, "frame rejected")
            }
            _ => {
                tracing::warn!(protocol = self.door(), remote = %self.remote, device = ?self.identity(), frame_len, %error, "frame rejected")
            }
        }
        self.add_garbage(frame_len)
    }

    /// Bytes skipped while resynchronising.
    pub(super) fn skipped(&mut self, bytes: usize, reason: &SkipReason) -> Result<(), Close> {
        let label = match reason {
            SkipReason::Garbage => "garbage",
            SkipReason::Oversize => "oversize",
            SkipReason::BadFrame => "bad_frame",
            // Line endings between text frames are normal.
            SkipReason::Padding => return Ok(()),
        };
        metrics::counter!("bulwark_device_bytes_skipped_total", "protocol" => self.door(), "reason" => label).increment(bytes as u64);
        tracing::debug!(protocol = self.door(), remote = %self.remote, bytes, reason = label, "bytes skipped to resynchronise");
        self.add_garbage(bytes)
    }

    fn add_garbage(&mut self, bytes: usize) -> Result<(), Close> {
        self.garbage = self.garbage.saturating_add(bytes);
        if self.garbage > self.state.config.devices.max_garbage_bytes {
            tracing::warn!(protocol = self.door(), remote = %self.remote, bytes = self.garbage, "closing: no decodable frame in too many bytes");
            return Err(Close::new("too many undecodable bytes"));
        }
        Ok(())
    }
}

/// The maker field of a Watch frame (`[SG*...`), read from the ack the codec built from it.
fn watch_maker(ack: &[u8]) -> Option<String> {
    let rest = ack.strip_prefix(b"[")?;
    let end = rest.iter().position(|&b| b == b'*')?;
    let maker = rest.get(..end)?;
    (!maker.is_empty() && maker.len() <= 8 && maker.iter().all(u8::is_ascii_alphanumeric))
        .then(|| String::from_utf8_lossy(maker).into_owned())
}

/// Serves one TCP connection until the device closes it, it idles out, it is refused, or the
/// server shuts down.
pub(super) async fn serve_tcp(
    state: AppState,
    protocol: Protocol,
    mut stream: TcpStream,
    remote: SocketAddr,
    guard: ConnGuard,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(mut session) = new_session(protocol) else {
        return;
    };
    let idle = Duration::from_secs(state.config.devices.idle_timeout_s.max(1));
    let mut conn = Conn::new(state, protocol, remote);
    conn.limits = Some(guard.limits.clone());
    tracing::debug!(protocol = %protocol, %remote, "device connected");
    let reason = loop {
        // Wait for bytes without holding a read buffer: an idle connection (most of them,
        // most of the time) then costs its socket, its session and this task, not 4 KiB
        // more (`bulwark bench memory`).
        tokio::select! {
            r = tokio::time::timeout(idle, stream.readable()) => match r {
                Err(_) => break "idle timeout",
                Ok(Err(e)) => {
                    tracing::debug!(protocol = %protocol, %remote, error = %e, "read failed");
                    break "read error";
                }
                Ok(Ok(())) => {}
            },
            _ = stopped(&mut shutdown) => break "server shutting down",
        }
        {
            // On the stack and gone before the next await: not part of the task's state.
            let mut chunk = [0u8; 4096];
            match stream.try_read(&mut chunk) {
                Ok(0) => break "closed by device",
                Ok(n) => session.push(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::debug!(protocol = %protocol, %remote, error = %e, "read failed");
                    break "read error";
                }
            }
        }
        if let Err(close) = drain(&mut conn, session.as_mut(), &mut stream).await {
            if let Some(reply) = close.reply {
                let _ = stream.write_all(&reply).await;
            }
            break close.reason;
        }
    };
    let _ = stream.shutdown().await;
    tracing::info!(protocol = %protocol, %remote, device = ?conn.identity(), reason, "device connection closed");
}

/// Decodes everything buffered, handling each message before the next: acks go out in order.
async fn drain(
    conn: &mut Conn,
    session: &mut (dyn StreamSession + Send),
    stream: &mut TcpStream,
) -> Result<(), Close> {
    loop {
        let received = conn.state.clock.now();
        match session.poll(received) {
            StreamItem::NeedMore => return Ok(()),
            StreamItem::Message(m) => {
                let identity = session.identity().map(str::to_string);
                let out = conn.handle(*m, identity.as_deref(), received).await?;
                if let Some(model) = conn.take_model() {
                    session.set_model(model.as_deref());
                }
                if !out.is_empty() {
                    // A peer that stops reading must not hold the task (and shutdown) forever.
                    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&out)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Err(Close::new("write failed")),
                        Err(_) => return Err(Close::new("write timed out")),
                    }
                }
            }
            StreamItem::Rejected { frame_len, error } => conn.rejected(frame_len, &error)?,
            StreamItem::Skipped { bytes, reason } => conn.skipped(bytes, &reason)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::EventKind;

    #[test]
    fn watch_maker_comes_from_the_ack() {
        assert_eq!(watch_maker(b"[SG*8800000015*0002*LK]"), Some("SG".into()));
        assert_eq!(watch_maker(b"[*x]"), None);
        assert_eq!(watch_maker(b"xx"), None);
    }

    #[test]
    fn every_alarm_is_stored_and_only_charger_disconnected_is_not() {
        use domain::DeviceEventKind as D;
        let k = |e: &EventKind| ingest::event_kind(Protocol::Gt06, e);
        assert_eq!(k(&EventKind::Sos), Some((D::Sos, None)));
        assert_eq!(k(&EventKind::Charging(true)), Some((D::Charging, None)));
        assert_eq!(k(&EventKind::Charging(false)), None);
        assert_eq!(
            k(&EventKind::Other("accident".into())),
            Some((D::DeviceAlarm, Some("gt06:accident".into())))
        );
        assert_eq!(
            k(&EventKind::Jamming),
            Some((D::DeviceAlarm, Some("gt06:jamming".into())))
        );
    }
}
