//! Connectionless H02 and Teltonika: one datagram is one message, answered to its sender.
//!
//! Datagrams are handled one after another on one task, so a reply is only sent after that
//! datagram's fixes are durable; the cost is that one slow commit delays the next datagram.

use super::conn::Conn;
use super::stopped;
use crate::AppState;
use domain::Protocol;
use protocols::{DecodeError, Message};
use tokio::net::UdpSocket;
use tokio::sync::watch;

fn decode(
    protocol: Protocol,
    datagram: &[u8],
    now: domain::UnixMicros,
) -> Option<Result<Message, DecodeError>> {
    Some(match protocol {
        Protocol::Teltonika => protocols::teltonika::decode_udp(datagram, now),
        Protocol::H02 => {
            // Devices end text frames with CR LF; the codec wants the bare frame.
            let end = datagram
                .iter()
                .rposition(|b| !matches!(b, b'\r' | b'\n' | 0))
                .map_or(0, |i| i + 1);
            protocols::h02::H02Codec::new()
                .decode_frame(datagram.get(..end).unwrap_or_default(), now)
        }
        _ => return None,
    })
}

pub(super) async fn serve(
    socket: UdpSocket,
    protocol: Protocol,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, remote) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from earlier replies surface here; they concern one peer.
                    tracing::debug!(protocol = %protocol, error = %e, "udp receive failed");
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let received = state.clock.now();
        let datagram = buf.get(..n).unwrap_or_default();
        let Some(decoded) = decode(protocol, datagram, received) else {
            break;
        };
        let mut conn = Conn::new(state.clone(), protocol, remote);
        let reply = match decoded {
            Ok(mut m) => {
                if m.unsupported.is_some() {
                    m.raw = Some(datagram.to_vec());
                }
                match conn.handle(m, None, received).await {
                    Ok(out) => out,
                    Err(close) => {
                        // No reply: the TCP refusal byte (Teltonika `00`) means nothing over UDP,
                        // and an unanswered datagram is what an unknown device should see.
                        tracing::debug!(protocol = %protocol, %remote, reason = close.reason, "datagram refused");
                        Vec::new()
                    }
                }
            }
            Err(e) => {
                let _ = conn.rejected(n, &e);
                Vec::new()
            }
        };
        if !reply.is_empty()
            && let Err(e) = socket.send_to(&reply, remote).await
        {
            tracing::debug!(protocol = %protocol, %remote, error = %e, "udp reply failed");
        }
    }
}
