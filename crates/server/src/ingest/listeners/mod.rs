//! Tracker listeners: real sockets around the sans-IO decoders of `crates/protocols`.
//!
//! One TCP listener per protocol (GT06, H02, Watch, Teltonika), plus UDP on the same port for
//! H02 and Teltonika. Each TCP connection is its own task with its own `StreamSession`; a panic
//! in one ends that connection only (tokio isolates it, the accept loop logs it).
//!
//! The invariant of the HTTP doors holds here too: **a device is acknowledged only after what
//! it sent is durable**. A store error closes the connection without the ack, so the device
//! keeps the record and resends it on its next connection.

mod conn;
mod udp;

use crate::config::DeviceListeners;
use crate::{AppState, StartError};
use domain::Protocol;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The tracker protocols that have listeners.
pub const PROTOCOLS: [Protocol; 4] = [
    Protocol::Gt06,
    Protocol::H02,
    Protocol::Watch,
    Protocol::Teltonika,
];

/// What [`start`] bound.
pub struct Bound {
    pub tcp: HashMap<Protocol, SocketAddr>,
    pub udp: HashMap<Protocol, SocketAddr>,
    pub tasks: Vec<JoinHandle<()>>,
}

fn configured_port(c: &DeviceListeners, p: Protocol) -> Option<u16> {
    match p {
        Protocol::Gt06 => c.gt06_port,
        Protocol::H02 => c.h02_port,
        Protocol::Watch => c.watch_port,
        Protocol::Teltonika => c.teltonika_port,
        _ => None,
    }
}

/// Whether the protocol also has a connectionless form the decoders support.
fn has_udp(p: Protocol) -> bool {
    matches!(p, Protocol::H02 | Protocol::Teltonika)
}

/// Binds every enabled listener and starts its accept loop.
pub async fn start(state: &AppState, shutdown: watch::Receiver<bool>) -> Result<Bound, StartError> {
    let cfg = &state.config.devices;
    let limits = Limits::new(cfg.max_connections_per_ip, cfg.max_connections);
    let mut bound = Bound {
        tcp: HashMap::new(),
        udp: HashMap::new(),
        tasks: Vec::new(),
    };
    for protocol in PROTOCOLS {
        let Some(port) = configured_port(cfg, protocol) else {
            continue;
        };
        let addr = SocketAddr::new(state.config.bind, port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        bound.tcp.insert(protocol, local);
        bound.tasks.push(tokio::spawn(accept_loop(
            listener,
            protocol,
            state.clone(),
            limits.clone(),
            shutdown.clone(),
        )));
        if has_udp(protocol) {
            // Same port number as TCP, as devices are configured with one port.
            let uaddr = SocketAddr::new(state.config.bind, local.port());
            let socket = UdpSocket::bind(uaddr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: uaddr,
                    source,
                })?;
            if let Ok(a) = socket.local_addr() {
                bound.udp.insert(protocol, a);
            }
            bound.tasks.push(tokio::spawn(udp::serve(
                socket,
                protocol,
                state.clone(),
                shutdown.clone(),
            )));
        }
        tracing::info!(protocol = %protocol, tcp = %local, udp = has_udp(protocol), "device listener bound");
    }
    Ok(bound)
}

/// Resolves once shutdown is requested (or the sender is gone, which also means stop).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

async fn accept_loop(
    listener: TcpListener,
    protocol: Protocol,
    state: AppState,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let guard = match limits.try_acquire(remote.ip()) {
                        Ok(g) => g,
                        Err(limit) => {
                            metrics::counter!("bulwark_device_connections_refused_total", "protocol" => protocol.as_str(), "limit" => limit).increment(1);
                            tracing::warn!(protocol = %protocol, remote = %remote.ip(), limit, "connection refused: limit reached");
                            continue;
                        }
                    };
                    // Acks are small and latency-bound; do not let Nagle hold them back.
                    let _ = stream.set_nodelay(true);
                    conns.spawn(conn::serve_tcp(state.clone(), protocol, stream, remote, guard, shutdown.clone()));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning on accept.
                    tracing::warn!(protocol = %protocol, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(res) = conns.join_next(), if !conns.is_empty() => log_join(protocol, res),
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    // Connections see the same shutdown signal and end after the message they are storing, so
    // nothing half-acknowledged is left when the store closes.
    while let Some(res) = conns.join_next().await {
        log_join(protocol, res);
    }
}

fn log_join(protocol: Protocol, res: Result<(), tokio::task::JoinError>) {
    if let Err(e) = res
        && e.is_panic()
    {
        metrics::counter!("bulwark_device_connection_panics_total", "protocol" => protocol.as_str())
            .increment(1);
        tracing::error!(protocol = %protocol, error = %e, "device connection task panicked; that connection was closed");
    }
}

/// Connection counters shared by all tracker listeners.
#[derive(Clone)]
pub(crate) struct Limits {
    inner: Arc<Mutex<LimitsInner>>,
    per_ip: usize,
    total: usize,
}

#[derive(Default)]
struct LimitsInner {
    by_ip: HashMap<IpAddr, usize>,
    total: usize,
    /// Live TCP connections per identified device: more than one is a sign of spoofing.
    live: HashMap<domain::DeviceId, usize>,
}

/// One connection's claim on a device identity, released when the connection ends.
pub(crate) struct DeviceClaim {
    limits: Limits,
    device: domain::DeviceId,
}

impl Drop for DeviceClaim {
    fn drop(&mut self) {
        let mut g = self.limits.lock();
        if let Some(n) = g.live.get_mut(&self.device) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                g.live.remove(&self.device);
            }
        }
    }
}

impl Limits {
    fn new(per_ip: usize, total: usize) -> Self {
        Limits {
            inner: Arc::new(Mutex::new(LimitsInner::default())),
            per_ip,
            total,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimitsInner> {
        // The counters stay meaningful even if a holder panicked mid-update (it cannot: no code
        // between lock and unlock panics), so a poisoned lock is simply taken over.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that a connection identified as `device`; returns the claim and how many other
    /// live connections already claim the same device.
    pub(crate) fn claim(&self, device: domain::DeviceId) -> (DeviceClaim, usize) {
        let mut g = self.lock();
        let n = g.live.entry(device).or_insert(0);
        let others = *n;
        *n += 1;
        (
            DeviceClaim {
                limits: self.clone(),
                device,
            },
            others,
        )
    }

    /// How many live connections claim `device`.
    pub(crate) fn live(&self, device: domain::DeviceId) -> usize {
        self.lock().live.get(&device).copied().unwrap_or(0)
    }

    /// Counts a new connection, or names the limit it would exceed.
    fn try_acquire(&self, ip: IpAddr) -> Result<ConnGuard, &'static str> {
        let mut g = self.lock();
        if g.total >= self.total {
            return Err("total");
        }
        let n = g.by_ip.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            return Err("per_ip");
        }
        *n += 1;
        g.total += 1;
        metrics::gauge!("bulwark_device_connections").set(g.total as f64);
        Ok(ConnGuard {
            limits: self.clone(),
            ip,
        })
    }
}

/// Releases a connection's place in [`Limits`] when the connection task ends (also on panic).
pub(crate) struct ConnGuard {
    limits: Limits,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut g = self.limits.lock();
        if let Some(n) = g.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                g.by_ip.remove(&self.ip);
            }
        }
        g.total = g.total.saturating_sub(1);
        metrics::gauge!("bulwark_device_connections").set(g.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_per_ip_and_in_total_and_release_on_drop() {
        let l = Limits::new(2, 3);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = l.try_acquire(a).unwrap();
        let _a2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).err(), Some("per_ip"));
        let _b1 = l.try_acquire(b).unwrap();
        assert_eq!(l.try_acquire(b).err(), Some("total"));
        drop(a1);
        assert!(l.try_acquire(b).is_ok());
    }
}
