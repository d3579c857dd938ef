//! The one direction of data flow after ingest: committed fixes → engine → alerts → live.
//!
//! A single task owns the engine. It receives fixes only after the store made them durable
//! (in commit order), roster changes when cases, orders or devices change, and a tick every
//! second. Engine outputs are written to the store, then published.

use crate::dto::{AlertDto, PositionDto, flag_names, ts};
use crate::live::{Hub, LiveEvent};
use domain::*;
use engine::{Engine, EngineConfig, Input, MonitoredOrder, Output, Roster, Transition};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use store::{AlertChange, AlertChangeKind, Store};
use tokio::sync::{mpsc, watch};

/// Tells the pipeline that the roster (devices, cases, orders) changed.
#[derive(Clone)]
pub struct PipelineHandle {
    roster_changed: mpsc::UnboundedSender<()>,
    /// Device time (µs) of the newest fix the engine has evaluated, and of the newest
    /// committed fix; their difference is the engine's lag.
    pub evaluated_received_us: Arc<AtomicI64>,
    pub committed_received_us: Arc<AtomicI64>,
}

impl PipelineHandle {
    pub fn roster_changed(&self) {
        let _ = self.roster_changed.send(());
    }

    pub fn lag_s(&self) -> f64 {
        let c = self.committed_received_us.load(Ordering::Relaxed);
        let e = self.evaluated_received_us.load(Ordering::Relaxed);
        ((c - e).max(0)) as f64 / 1e6
    }
}

pub fn now() -> UnixMicros {
    UnixMicros(jiff::Timestamp::now().as_microsecond())
}

struct Pipeline {
    engine: Engine,
    store: Store,
    hub: Hub,
    devices: HashMap<DeviceId, Device>,
    people: HashMap<PersonId, PersonRole>,
    order_case: HashMap<OrderId, CaseId>,
}

/// Starts the pipeline task. It ends when `shutdown` flips and the store's committed stream
/// has been drained.
pub async fn spawn(
    store: Store,
    hub: Hub,
    config: EngineConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(PipelineHandle, tokio::task::JoinHandle<()>), store::StoreError> {
    let mut committed = store.subscribe_committed();
    let (roster_tx, mut roster_rx) = mpsc::unbounded_channel();
    let handle = PipelineHandle {
        roster_changed: roster_tx,
        evaluated_received_us: Arc::new(AtomicI64::new(0)),
        committed_received_us: Arc::new(AtomicI64::new(0)),
    };
    let stale_window = config.stale_after_s;
    let mut p = Pipeline {
        engine: Engine::new(config),
        store: store.clone(),
        hub,
        devices: HashMap::new(),
        people: HashMap::new(),
        order_case: HashMap::new(),
    };
    // Rebuild state: the roster, then recent fixes replayed in commit order. Alerts are keyed
    // by episode in the store, so replaying does not open duplicates.
    let start = now();
    p.reload_roster(start).await?;
    let since = UnixMicros(start.0 - (stale_window * 1e6) as i64);
    let recent = store.fixes_received_since(since).await?;
    let replayed = recent.len();
    for fix in recent {
        let t = fix.received_time;
        let out = p.engine.handle(Input::Fix(fix), t);
        p.apply(out).await;
    }
    let out = p.engine.handle(Input::Tick, now());
    p.apply(out).await;
    tracing::info!(replayed, "engine state rebuilt from recent fixes");

    let h = handle.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                batch = committed.recv() => {
                    let Some(batch) = batch else { break };
                    if let Some(last) = batch.last() {
                        h.committed_received_us.fetch_max(last.received_time.0, Ordering::Relaxed);
                    }
                    for fix in batch {
                        let received = fix.received_time.0;
                        p.publish_position(&fix);
                        let out = p.engine.handle(Input::Fix(fix), now());
                        p.apply(out).await;
                        h.evaluated_received_us.fetch_max(received, Ordering::Relaxed);
                    }
                    metrics::gauge!("bulwark_engine_lag_seconds").set(h.lag_s());
                }
                Some(()) = roster_rx.recv(), if !stopping => {
                    // Coalesce bursts of changes into one reload.
                    while roster_rx.try_recv().is_ok() {}
                    if let Err(e) = p.reload_roster(now()).await {
                        tracing::error!(error = %e, "roster reload failed; keeping the previous roster");
                    }
                }
                _ = tick.tick(), if !stopping => {
                    let out = p.engine.handle(Input::Tick, now());
                    p.apply(out).await;
                }
                changed = shutdown.changed(), if !stopping => {
                    if changed.is_err() || *shutdown.borrow() {
                        // Keep draining committed fixes until the store closes its stream.
                        stopping = true;
                    }
                }
            }
        }
        tracing::info!("pipeline stopped");
    });
    Ok((handle, task))
}

impl Pipeline {
    async fn reload_roster(&mut self, at: UnixMicros) -> Result<(), store::StoreError> {
        let devices = self.store.list_devices().await?;
        let people = self.store.list_people().await?;
        let cases = self.store.list_cases().await?;
        let orders = self.store.list_orders().await?;
        self.people = people.into_iter().map(|p| (p.id, p.role)).collect();
        let mut roster = Roster::default();
        for d in &devices {
            if let Some(owner) = d.owner {
                roster.devices.insert(d.id, (owner, d.kind));
            }
        }
        self.order_case.clear();
        for o in orders {
            if let Some(case) = cases.iter().find(|c| c.id == o.case_id) {
                self.order_case.insert(o.id, case.id);
                roster.orders.push(MonitoredOrder {
                    offender: case.offender,
                    protected: case.protected.clone(),
                    order: o,
                });
            }
        }
        self.devices = devices.into_iter().map(|d| (d.id, d)).collect();
        let out = self.engine.handle(Input::Roster(roster), at);
        self.apply(out).await;
        Ok(())
    }

    fn position_view(&self, fix: &Fix) -> PositionDto {
        let device = self.devices.get(&fix.device_id);
        let owner = device.and_then(|d| d.owner);
        PositionDto {
            fix_id: fix.id.map(|i| i.0).unwrap_or_default(),
            device_id: fix.device_id.0,
            device_kind: device.map(|d| d.kind.to_string()),
            person_id: owner.map(|p| p.0),
            role: owner
                .and_then(|p| self.people.get(&p))
                .map(|r| r.to_string()),
            lat: fix.position.lat(),
            lon: fix.position.lon(),
            accuracy_m: fix.accuracy_m,
            speed_mps: fix.speed_mps,
            course_deg: fix.course_deg,
            source: fix.source.to_string(),
            device_time: ts(fix.device_time),
            received_time: ts(fix.received_time),
            flags: flag_names(fix.flags),
        }
    }

    fn publish_position(&self, fix: &Fix) {
        self.hub
            .publish(LiveEvent::Position(self.position_view(fix)));
    }

    async fn apply(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Alert(sig) => {
                    let kind = match sig.transition {
                        Transition::Raised => AlertChangeKind::Raised,
                        Transition::Updated => AlertChangeKind::Updated,
                        Transition::Cleared => AlertChangeKind::Cleared,
                    };
                    if kind == AlertChangeKind::Raised {
                        metrics::counter!("bulwark_alerts_raised_total", "rule" => sig.key.rule.as_str())
                            .increment(1);
                    }
                    let change = AlertChange {
                        order_id: Some(sig.key.order_id),
                        case_id: self.order_case.get(&sig.key.order_id).copied(),
                        rule: sig.key.rule,
                        protected: sig.key.protected,
                        zone: sig.key.zone,
                        kind,
                        severity: sig.severity,
                        at: sig.at,
                        distance_m: sig.distance_m,
                        evidence: sig.evidence,
                        summary: sig.summary,
                    };
                    match self.store.apply_alert_change(change).await {
                        Ok(record) => self.hub.publish(LiveEvent::Alert(AlertDto::from(record))),
                        Err(store::StoreError::NotFound(m)) => {
                            tracing::debug!(reason = %m, "clear for an alert that is not active");
                        }
                        Err(e) => tracing::error!(error = %e, "could not store alert change"),
                    }
                }
            }
        }
    }
}
