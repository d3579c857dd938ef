//! The one direction of data flow after ingest: committed fixes → engine → alerts → live.
//!
//! A single task owns the engine. It receives fixes only after the store made them durable
//! (in commit order), roster changes when cases, orders or devices change, and a tick every
//! second. Engine outputs are written to the store, then published.

mod roster;
use crate::clock::Clock;
use crate::cluster_node::{Node, Routing};
use crate::http::dto::{AlertDto, PositionDto, flag_names, ts};
use crate::live::{Hub, LiveEvent};
use domain::*;
use engine::{
    Certainty, DeviceCommand, Engine, EngineConfig, Input, MonitoredOrder, Output, Roster,
    Transition,
};
pub use roster::spawn_roster_listener;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use store::{AlertChange, AlertChangeKind, AlertDetails, Committed, Store};
use tokio::sync::{mpsc, oneshot, watch};

/// Tells the pipeline that the roster (devices, cases, orders) changed.
#[derive(Clone)]
pub struct PipelineHandle {
    roster_changed: mpsc::UnboundedSender<Option<oneshot::Sender<()>>>,
    /// Device time (µs) of the newest fix the engine has evaluated, and of the newest
    /// committed fix; their difference is the engine's lag.
    pub evaluated_received_us: Arc<AtomicI64>,
    pub committed_received_us: Arc<AtomicI64>,
    /// The latest command the engine wants each device to receive (pursuit mode). Protocol
    /// listeners deliver it the next time the device is connected.
    pub pending_commands: Arc<Mutex<HashMap<DeviceId, DeviceCommand>>>,
    /// Cluster mode: where a roster change is announced to the other nodes (their engines
    /// hold other partitions of the same cases, orders and devices).
    pub broadcast: Option<(async_nats::Client, String)>,
}

impl PipelineHandle {
    /// Asks for a roster reload without waiting for it.
    pub fn roster_changed(&self) {
        self.announce();
        let _ = self.roster_changed.send(None);
    }

    /// A reload asked for by another node's announcement (not announced again).
    pub fn roster_changed_elsewhere(&self) {
        let _ = self.roster_changed.send(None);
    }

    fn announce(&self) {
        if let Some((client, subject)) = self.broadcast.clone() {
            tokio::spawn(async move {
                if let Err(e) = client.publish(subject, bytes::Bytes::new()).await {
                    tracing::warn!(error = %e, "cannot announce a roster change to the cluster");
                }
            });
        }
    }

    /// Reloads the roster and waits until the engine has it, so that a device or order created
    /// by a request is known to the engine before the request is answered (a device that
    /// reports right after registration must not have its first fixes evaluated without it).
    pub async fn sync_roster(&self) {
        self.announce();
        let (tx, rx) = oneshot::channel();
        if self.roster_changed.send(Some(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Takes the command waiting for `device`, if any.
    pub fn take_command(&self, device: DeviceId) -> Option<DeviceCommand> {
        self.pending_commands.lock().ok()?.remove(&device)
    }

    pub fn lag_s(&self) -> f64 {
        let c = self.committed_received_us.load(Ordering::Relaxed);
        let e = self.evaluated_received_us.load(Ordering::Relaxed);
        ((c - e).max(0)) as f64 / 1e6
    }
}

/// Who hears about alerts beyond the live stream, and when unacknowledged alerts escalate.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    /// Webhooks for `alert.raised`.
    pub raised: Vec<String>,
    /// Webhooks for `alert.escalated`.
    pub escalated: Vec<String>,
    /// Webhooks for `alert.reopened`.
    pub reopened: Vec<String>,
    pub escalation: store::EscalationPolicy,
    /// See `config::AlertSettings::reopen_window_s`.
    pub reopen_within_s: Option<i64>,
    /// Queue Web Push messages for new and reopened alerts.
    pub push: bool,
    pub backlog: BacklogLimits,
}

/// When the server counts as behind on ingest, and when it has caught up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BacklogLimits {
    /// Commit batches waiting for the engine plus writes waiting for the store.
    pub max_queue: usize,
    /// Seconds a committed batch waited before the engine took it.
    pub max_lag_s: f64,
    /// Seconds both must stay at or under half their limit before the alert clears.
    pub clear_hold_s: f64,
}

impl Default for BacklogLimits {
    fn default() -> Self {
        BacklogLimits {
            max_queue: 1_000,
            max_lag_s: 5.0,
            clear_hold_s: 30.0,
        }
    }
}

/// One look at how far behind ingest is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BacklogSample {
    /// Commit batches stored but not yet evaluated by the engine.
    pub engine_queue: usize,
    /// Writes waiting for the store's writer.
    pub store_queue: usize,
    pub lag_s: f64,
    /// The store's writer cannot write (database unreachable, disk full): nothing is being
    /// acknowledged, so every device's fixes are backing up on the device.
    pub store_failing: bool,
}

/// The ingest-backlog alert's state, with hysteresis in level and in time: raised when a
/// sample exceeds either limit (the high mark); cleared only once every sample has stayed at
/// or under half of both (the low mark) for `clear_hold_s`, so that a load hovering around
/// the limit raises one alert that lasts instead of flapping (at 1,000 Teltonika devices the
/// level-only rule raised and cleared it 5 times in 9 s: the queue drains between batches).
/// A sample over the low mark restarts the hold. The time of each sample is an input, so the
/// decision can be tested with a synthetic clock. A new server resumes from the store
/// ([`Backlog::resume`]): raised if the previous run left the alert's condition open, so a
/// calm start clears it after the same hold, and not raised otherwise, so a burst right
/// after start-up raises it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    pub raised: bool,
    /// Since when every sample has been at or under the low mark, while raised.
    calm_since: Option<UnixMicros>,
}

impl Backlog {
    /// The state a server starts in: `open` is whether an ingest-backlog alert's condition
    /// is still open in the store.
    pub fn resume(open: bool) -> Backlog {
        Backlog {
            raised: open,
            calm_since: None,
        }
    }

    /// `Some(true)`: raise; `Some(false)`: clear; `None`: no change.
    pub fn observe(&mut self, s: BacklogSample, l: BacklogLimits, at: UnixMicros) -> Option<bool> {
        let queue = s.engine_queue + s.store_queue;
        let over = queue > l.max_queue || s.lag_s > l.max_lag_s || s.store_failing;
        let calm = queue <= l.max_queue / 2 && s.lag_s <= l.max_lag_s / 2.0 && !s.store_failing;
        if !self.raised {
            if over {
                self.raised = true;
                self.calm_since = None;
                return Some(true);
            }
            return None;
        }
        if !calm {
            self.calm_since = None;
            return None;
        }
        let since = *self.calm_since.get_or_insert(at);
        if at.0.saturating_sub(since.0) as f64 >= l.clear_hold_s * 1e6 {
            self.raised = false;
            self.calm_since = None;
            return Some(false);
        }
        None
    }
}

/// Cluster mode's inputs: the committed events of the partitions this node holds, read from
/// the stream (`cluster_node::spawn_reader`), instead of this node's own commits.
pub struct ClusterInput {
    pub node: Arc<Node>,
    pub input: mpsc::UnboundedReceiver<Committed>,
}

/// Store ids already evaluated, so that the overlap between a takeover's rebuild from the
/// store and the stream read from before it (and a fix published to two held partitions)
/// is evaluated once. Bounded: the oldest ids are forgotten first.
#[derive(Default)]
struct Seen {
    set: HashSet<(bool, i64)>,
    order: VecDeque<(bool, i64)>,
}

impl Seen {
    const CAP: usize = 200_000;

    /// `true` the first time.
    fn first(&mut self, fix: bool, id: i64) -> bool {
        if !self.set.insert((fix, id)) {
            return false;
        }
        self.order.push_back((fix, id));
        if self.order.len() > Self::CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

struct Pipeline {
    /// Cluster mode: the node, the partitions this engine evaluates and their routing.
    cluster: Option<Arc<Node>>,
    held: BTreeSet<cluster::Partition>,
    routing: Routing,
    seen: Seen,
    engine_config: EngineConfig,
    notify: Notify,
    engine: Engine,
    store: Store,
    hub: Hub,
    /// The server's clock: the time handed to the engine with every input.
    clock: Clock,
    devices: HashMap<DeviceId, Device>,
    commands: Arc<Mutex<HashMap<DeviceId, DeviceCommand>>>,
    people: HashMap<PersonId, PersonRole>,
    order_case: HashMap<OrderId, CaseId>,
    backlog: Backlog,
}

/// Starts the pipeline task. It ends when `shutdown` flips and the store's committed stream
/// has been drained.
pub async fn spawn(
    store: Store,
    hub: Hub,
    clock: Clock,
    config: EngineConfig,
    notify: Notify,
    mut shutdown: watch::Receiver<bool>,
    cluster_input: Option<ClusterInput>,
) -> Result<(PipelineHandle, tokio::task::JoinHandle<()>), store::StoreError> {
    let (node, mut committed) = match cluster_input {
        Some(c) => (Some(c.node), c.input),
        None => (None, store.subscribe_committed()),
    };
    let mut ownership = node.as_ref().map(|n| n.status.clone());
    let (roster_tx, mut roster_rx) = mpsc::unbounded_channel();
    let handle = PipelineHandle {
        roster_changed: roster_tx,
        evaluated_received_us: Arc::new(AtomicI64::new(0)),
        committed_received_us: Arc::new(AtomicI64::new(0)),
        pending_commands: Arc::new(Mutex::new(HashMap::new())),
        broadcast: node
            .as_ref()
            .map(|n| (n.client.clone(), n.roster_subject())),
    };
    let stale_window = config.stale_after_s;
    let mut p = Pipeline {
        held: node.as_ref().map(|n| n.held()).unwrap_or_default(),
        cluster: node,
        routing: Routing::default(),
        seen: Seen::default(),
        engine_config: config.clone(),
        notify,
        engine: Engine::new(config),
        store: store.clone(),
        hub,
        clock,
        devices: HashMap::new(),
        commands: handle.pending_commands.clone(),
        people: HashMap::new(),
        order_case: HashMap::new(),
        backlog: Backlog::resume(false),
    };
    // A backlog alert the previous run left open is cleared once calm, after the hold; with
    // none open, the first sample over a limit raises one.
    p.backlog = Backlog::resume(
        store
            .list_alerts(
                &store::Authorized::system("engine start: an open backlog alert"),
                true,
                100_000,
            )
            .await?
            .iter()
            .any(|a| a.alert.rule == AlertRule::IngestBacklog && a.condition_active),
    );
    // Rebuild state: the roster, then recent fixes replayed in commit order. Alerts are keyed
    // by episode in the store, so replaying does not open duplicates.
    p.rebuild(stale_window).await?;

    let h = handle.clone();
    let task = tokio::spawn(async move {
        // Timers (hold times, staleness, offline) need a tick; 2 s keeps their resolution well
        // under a fix interval at a cost of ~1 % CPU per 100,000 cases (docs/engine.md).
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                // Roster changes first: fixes committed after a registration must be
                // evaluated with the new roster. Ticks before fixes, so that a steady stream
                // of fixes cannot starve the timers (offline, escalation).
                biased;
                Some(first) = roster_rx.recv(), if !stopping => {
                    // Coalesce bursts of changes into one reload; answer every waiter after it.
                    let mut waiters: Vec<oneshot::Sender<()>> = first.into_iter().collect();
                    while let Ok(more) = roster_rx.try_recv() {
                        waiters.extend(more);
                    }
                    if let Err(e) = p.reload_roster(p.clock.now()).await {
                        tracing::error!(error = %e, "roster reload failed; keeping the previous roster");
                    }
                    for w in waiters {
                        let _ = w.send(());
                    }
                }
                // Cluster mode: a partition taken or lost rebuilds the engine for the new set
                // at once (a lost one is not evaluated a moment longer).
                Some(changed) = async {
                    match ownership.as_mut() {
                        Some(w) => Some(w.changed().await),
                        None => std::future::pending().await,
                    }
                }, if !stopping => {
                    if changed.is_err() {
                        ownership = None;
                        continue;
                    }
                    let held = p.cluster.as_ref().map(|n| n.held()).unwrap_or_default();
                    if held != p.held {
                        tracing::info!(held = ?held.iter().map(|x| x.0).collect::<Vec<_>>(), "partitions changed: rebuilding the engine");
                        p.held = held;
                        if let Err(e) = p.rebuild(stale_window).await {
                            tracing::error!(error = %e, "engine rebuild failed; retrying at the next tick");
                            p.held.clear();
                        }
                    }
                }
                _ = tick.tick(), if !stopping => {
                    let at = p.clock.now();
                    if let Some(n) = p.cluster.clone()
                        && n.held() != p.held
                    {
                        // A lease that ran out between status changes (step-down) or a failed
                        // rebuild: catch up here.
                        p.held = n.held();
                        if let Err(e) = p.rebuild(stale_window).await {
                            tracing::error!(error = %e, "engine rebuild failed; retrying at the next tick");
                            p.held.clear();
                        }
                    }
                    let out = p.engine.handle(Input::Tick, at);
                    p.apply(out).await;
                    // Once per cluster: only the leader escalates.
                    if p.cluster.as_ref().is_none_or(|n| n.is_leader()) {
                        p.escalate(at).await;
                    }
                    // Between batches everything committed has been evaluated.
                    p.check_backlog(committed.len(), 0.0, at).await;
                }
                batch = committed.recv() => {
                    let Some(Committed { fixes: mut batch, mut events }) = batch else { break };
                    if p.cluster.is_some() {
                        let seen = &mut p.seen;
                        batch.retain(|f| f.id.is_none_or(|id| seen.first(true, id.0)));
                        events.retain(|e| e.id.is_none_or(|id| seen.first(false, id)));
                    }
                    if let Some(last) = batch.last() {
                        h.committed_received_us.fetch_max(last.received_time.0, Ordering::Relaxed);
                    }
                    // Looked at as each batch arrives: a flood keeps this arm busy, and the
                    // backlog must be seen while it lasts, not after. The lag is how long the
                    // batch's first fix waited since it was received.
                    let at = p.clock.now();
                    let waited = batch
                        .first()
                        .map(|f| (at.0 - f.received_time.0).max(0) as f64 / 1e6)
                        .unwrap_or(0.0);
                    p.check_backlog(committed.len(), waited, at).await;
                    // Events first: an SOS must not wait behind the fixes of its batch.
                    for e in events {
                        let out = p.engine.handle(event_input(&e), p.clock.now());
                        p.apply(out).await;
                    }
                    // The batch's fixes are evaluated in order, then their alert changes are
                    // written together: changes of different episodes share the writer's
                    // group commits instead of one commit each.
                    let evaluated = batch.len() as u64;
                    let mut received = None;
                    let mut outputs = Vec::new();
                    for fix in batch {
                        received = Some(fix.received_time.0);
                        p.publish_position(&fix);
                        outputs.extend(p.engine.handle(Input::Fix(fix), p.clock.now()));
                    }
                    p.apply(outputs).await;
                    if let Some(received) = received {
                        h.evaluated_received_us.fetch_max(received, Ordering::Relaxed);
                    }
                    metrics::gauge!("bulwark_engine_lag_seconds").set(h.lag_s());
                    metrics::counter!("bulwark_fixes_evaluated_total").increment(evaluated);
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

fn event_input(e: &DeviceEvent) -> Input {
    Input::DeviceEvent {
        device: e.device_id,
        event: e.kind,
        device_time: e.device_time,
        received_time: e.received_time,
        code: e.code.clone(),
    }
}

/// Whether, and how, an engine output may be written (see [`Pipeline::write_right`]).
enum WriteRight {
    /// A lone server, or an output of no partition (a system alert).
    Unfenced,
    /// Held here: written with this partition's fence.
    Fenced(store::Fence),
    /// Its partition is not held (any more): left to the owner.
    NotHeld,
}

impl Pipeline {
    /// Rebuilds the engine's state: the roster (in cluster mode only the held partitions'
    /// part), then the recent fixes and events replayed in commit order. Alerts are keyed by
    /// episode in the store, so replaying does not open duplicates.
    async fn rebuild(&mut self, stale_window: f64) -> Result<(), store::StoreError> {
        let start = self.clock.now();
        let took = std::time::Instant::now();
        // Claimed first: nothing replayed below writes before the old owner is fenced off.
        self.claim_fences().await?;
        if self.cluster.is_some() {
            self.engine = Engine::new(self.engine_config.clone());
            self.seen = Seen::default();
        }
        self.reload_roster(start).await?;
        let mut window = (stale_window * 1e6) as i64;
        if self.cluster.is_some() {
            // At least the stream reader's margin, so the two overlap.
            window = window.max(crate::cluster_node::TAKEOVER_MARGIN.as_micros() as i64);
        }
        let since = UnixMicros(start.0 - window);
        let mut recent: Vec<(UnixMicros, Input)> = Vec::new();
        for f in self.store.fixes_received_since(since).await? {
            if self.cluster.is_some()
                && (!self.evaluates(f.device_id)
                    || !f.id.is_none_or(|id| self.seen.first(true, id.0)))
            {
                continue;
            }
            recent.push((f.received_time, Input::Fix(f)));
        }
        for e in self.store.events_received_since(since).await? {
            if self.cluster.is_some()
                && (!self.evaluates(e.device_id)
                    || !e.id.is_none_or(|id| self.seen.first(false, id)))
            {
                continue;
            }
            recent.push((e.received_time, event_input(&e)));
        }
        // Stable: fixes before events received in the same microsecond, as they were committed.
        recent.sort_by_key(|(t, _)| *t);
        let replayed = recent.len();
        for (t, input) in recent {
            let out = self.engine.handle(input, t);
            self.apply(out).await;
        }
        let out = self.engine.handle(Input::Tick, self.clock.now());
        self.apply(out).await;
        let rebuild_s = took.elapsed().as_secs_f64();
        metrics::histogram!("bulwark_engine_rebuild_seconds").record(rebuild_s);
        tracing::info!(
            replayed,
            partitions = self.held.len(),
            rebuild_ms = (rebuild_s * 1e3).round() as u64,
            "engine state rebuilt from recent fixes"
        );
        Ok(())
    }

    /// Cluster mode: whether one of the device's partitions is held here.
    fn evaluates(&self, device: DeviceId) -> bool {
        self.routing
            .partitions_of(device)
            .is_some_and(|ps| ps.iter().any(|p| self.held.contains(p)))
    }

    /// Cluster mode: whether an engine output may be written now, i.e. its partition's lease
    /// is still valid at this instant (a deposed owner stops before `valid_until`, so it never
    /// writes after the new owner started), and the fence the write carries: the store
    /// refuses it if a newer owner has claimed the partition since (a write delayed past the
    /// lease by retries or a pause). A lone server writes unfenced.
    fn write_right(&self, order: Option<OrderId>, device: Option<DeviceId>) -> WriteRight {
        let Some(node) = &self.cluster else {
            return WriteRight::Unfenced;
        };
        let held = node.held_leases();
        let fence = |p: &cluster::Partition| {
            held.get(p).map(|token| store::Fence {
                partition: u32::from(p.0),
                token: *token,
            })
        };
        if let Some(o) = order {
            return match self
                .order_case
                .get(&o)
                .and_then(|k| self.routing.case_partition.get(k))
                .and_then(fence)
            {
                Some(f) => WriteRight::Fenced(f),
                None => WriteRight::NotHeld,
            };
        }
        if let Some(d) = device {
            return match self
                .routing
                .partitions_of(d)
                .and_then(|ps| ps.iter().find_map(fence))
            {
                Some(f) => WriteRight::Fenced(f),
                None => WriteRight::NotHeld,
            };
        }
        WriteRight::Unfenced
    }

    /// Cluster mode, before the engine is rebuilt for a new set of partitions: claims their
    /// fencing tokens in the store, so that from here on a deposed owner's late alert write
    /// for them is refused. A claim refused (a newer token is recorded: this lease is itself
    /// outdated) is logged; the writes with it will be refused too.
    async fn claim_fences(&self) -> Result<(), store::StoreError> {
        let Some(node) = &self.cluster else {
            return Ok(());
        };
        let fences: Vec<store::Fence> = node
            .held_leases()
            .into_iter()
            .filter(|(p, _)| self.held.contains(p))
            .map(|(p, token)| store::Fence {
                partition: u32::from(p.0),
                token,
            })
            .collect();
        if fences.is_empty() {
            return Ok(());
        }
        let accepted = self.store.claim_fences(fences.clone()).await?;
        for (f, ok) in fences.iter().zip(accepted) {
            if !ok {
                metrics::counter!("bulwark_fence_refusals_total").increment(1);
                tracing::warn!(
                    partition = f.partition,
                    token = f.token,
                    "a newer owner has claimed this partition: its alert writes here will be refused"
                );
            }
        }
        Ok(())
    }

    async fn reload_roster(&mut self, at: UnixMicros) -> Result<(), store::StoreError> {
        let devices = self.store.list_devices().await?;
        let people = self.store.list_people().await?;
        let cases = self.store.list_cases().await?;
        let orders = self.store.list_orders().await?;
        self.people = people.into_iter().map(|p| (p.id, p.role)).collect();
        if let Some(node) = &self.cluster {
            self.routing = Routing::build(&devices, &cases, node.partitions);
        }
        let mut roster = Roster::default();
        for d in &devices {
            if let Some(owner) = d.owner
                && (self.cluster.is_none() || self.evaluates(d.id))
            {
                roster.devices.insert(d.id, (owner, d.kind));
            }
        }
        self.order_case.clear();
        // By id: a scan of every case per order made a reload quadratic (100,000 cases took
        // the pipeline's only task ~15 s, evaluating nothing meanwhile).
        let cases: HashMap<CaseId, Case> = cases.into_iter().map(|c| (c.id, c)).collect();
        for o in orders {
            if let Some(case) = cases.get(&o.case_id) {
                self.order_case.insert(o.id, case.id);
                if self.cluster.is_some()
                    && !self
                        .routing
                        .case_partition
                        .get(&case.id)
                        .is_some_and(|p| self.held.contains(p))
                {
                    continue;
                }
                roster.orders.push(MonitoredOrder {
                    offender: case.offender,
                    protected: case.protected.clone(),
                    order: o,
                });
            }
        }
        self.devices = devices.into_iter().map(|d| (d.id, d)).collect();
        // Schedules first, so the new roster is evaluated with them.
        let mut schedules = Vec::new();
        for (zone, text) in self.store.zone_schedules().await? {
            match serde_json::from_str::<Vec<crate::http::dto::ScheduleWindowDto>>(&text)
                .ok()
                .and_then(|w| crate::http::dto::schedule_from_dto("schedule", &w).ok())
            {
                Some(s) => schedules.push((zone, s)),
                // Validated on the way in; a zone whose stored schedule cannot be read is
                // treated as always active, the safe side for the protected person.
                None => {
                    tracing::error!(%zone, "unreadable zone schedule; zone treated as always active")
                }
            }
        }
        let out = self.engine.handle(Input::ZoneSchedules(schedules), at);
        self.apply(out).await;
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
            network: None,
        }
    }

    fn publish_position(&self, fix: &Fix) {
        self.hub
            .publish(LiveEvent::Position(self.position_view(fix)));
    }

    /// Writes the alert changes of `outputs`. The changes of one episode are written in the
    /// order the engine made them, each after the one before it is durable; different
    /// episodes are written concurrently, so the writer commits them in shared groups (a
    /// burst of alerts over many cases costs a few commits, not one per alert).
    async fn apply(&mut self, outputs: Vec<Output>) {
        let mut chains: Vec<Vec<(AlertChange, Option<store::Fence>)>> = Vec::new();
        let mut chain_of = HashMap::new();
        for o in outputs {
            let change = match o {
                Output::Alert(sig) => {
                    let kind = match sig.transition {
                        Transition::Raised => AlertChangeKind::Raised,
                        Transition::Updated => AlertChangeKind::Updated,
                        Transition::Cleared => AlertChangeKind::Cleared,
                    };
                    AlertChange {
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
                        device: None,
                        details: AlertDetails {
                            late: sig.late,
                            possible: sig.certainty == Certainty::Possible,
                            closing_speed_mps: sig.closing_speed_mps,
                            time_to_contact_s: sig.time_to_contact_s,
                            heading_toward: sig.heading_toward,
                        },
                    }
                }
                Output::DeviceAlert(a) => AlertChange {
                    order_id: None,
                    case_id: None,
                    rule: a.rule,
                    protected: None,
                    zone: None,
                    kind: AlertChangeKind::Raised,
                    severity: a.severity,
                    at: a.at,
                    distance_m: None,
                    evidence: Vec::new(),
                    summary: a.summary,
                    device: Some(a.device),
                    details: AlertDetails {
                        late: a.late,
                        ..Default::default()
                    },
                },
                Output::DeviceCommand { device, command } => {
                    let DeviceCommand::ReportingInterval(secs) = command;
                    tracing::info!(%device, interval_s = secs, "engine requests a reporting interval");
                    metrics::counter!("bulwark_device_commands_total").increment(1);
                    if let Ok(mut c) = self.commands.lock() {
                        c.insert(device, command);
                    }
                    continue;
                }
            };
            let fence = match self.write_right(change.order_id, change.device) {
                WriteRight::NotHeld => {
                    tracing::warn!(rule = %change.rule, "partition no longer held: alert change left to its new owner");
                    continue;
                }
                WriteRight::Unfenced => None,
                WriteRight::Fenced(f) => Some(f),
            };
            if change.kind == AlertChangeKind::Raised {
                metrics::counter!("bulwark_alerts_raised_total", "rule" => change.rule.as_str())
                    .increment(1);
            }
            let episode = (
                change.order_id,
                change.rule,
                change.protected,
                change.zone,
                change.device,
            );
            let i = *chain_of.entry(episode).or_insert_with(|| {
                chains.push(Vec::new());
                chains.len() - 1
            });
            if let Some(chain) = chains.get_mut(i) {
                chain.push((change, fence));
            }
        }
        let this = &*self;
        futures_util::future::join_all(chains.into_iter().map(|chain| async move {
            for (change, fence) in chain {
                this.store_alert(change, fence).await;
            }
        }))
        .await;
    }

    /// Escalates alerts nobody acknowledged in time (the deadline is computed from the stored
    /// raise time, so it survives restarts).
    async fn escalate(&self, at: UnixMicros) {
        match self
            .store
            .escalate_due_alerts(self.notify.escalation, self.notify.escalated.clone(), at)
            .await
        {
            Ok(escalated) => {
                for record in escalated {
                    metrics::counter!("bulwark_alerts_escalated_total").increment(1);
                    tracing::warn!(alert = %record.alert.id, rule = %record.alert.rule, "alert escalated: not acknowledged in time");
                    self.hub.publish(LiveEvent::Alert(AlertDto::from(record)));
                }
            }
            Err(e) => tracing::error!(error = %e, "escalation check failed"),
        }
    }

    /// Raises or clears the ingest-backlog system alert (see [`Backlog`]).
    async fn check_backlog(&mut self, engine_queue: usize, lag_s: f64, at: UnixMicros) {
        let sample = BacklogSample {
            engine_queue,
            store_queue: self.store.write_queue_len(),
            lag_s,
            store_failing: self.store.writes_failing(),
        };
        metrics::gauge!("bulwark_engine_queue").set(engine_queue as f64);
        let Some(raise) = self.backlog.observe(sample, self.notify.backlog, at) else {
            return;
        };
        metrics::gauge!("bulwark_ingest_backlog").set(if raise { 1.0 } else { 0.0 });
        if raise {
            tracing::warn!(
                ?sample,
                "server behind on ingest: raising the ingest-backlog alert"
            );
        }
        let summary = if sample.store_failing {
            "server behind on ingest: the store cannot write (database unreachable or disk full); no fix is acknowledged until it can, devices keep theirs".to_string()
        } else {
            format!(
                "server behind on ingest: {} batches waiting for the engine, {} writes waiting for the store, engine {:.1} s behind",
                sample.engine_queue, sample.store_queue, sample.lag_s
            )
        };
        let stored = self
            .store_alert(
                AlertChange {
                    order_id: None,
                    case_id: None,
                    rule: AlertRule::IngestBacklog,
                    protected: None,
                    zone: None,
                    kind: if raise {
                        AlertChangeKind::Raised
                    } else {
                        AlertChangeKind::Cleared
                    },
                    severity: Severity::Critical,
                    at,
                    distance_m: None,
                    evidence: Vec::new(),
                    summary,
                    device: None,
                    details: AlertDetails::default(),
                },
                None,
            )
            .await;
        if stored && raise {
            // Counted as the engine's alerts are (`apply`), so `/metrics` shows it.
            metrics::counter!("bulwark_alerts_raised_total", "rule" => AlertRule::IngestBacklog.as_str())
                .increment(1);
        }
        if !stored && raise {
            // The store is still down after the retries: observe afresh, so the next tick
            // raises again (with the time of that tick) instead of believing it raised.
            self.backlog = Backlog::resume(false);
        }
    }

    /// Stores an alert change, retrying on transient failures: an alert must not be lost
    /// because the disk was briefly busy or full. `false`: it could not be stored.
    async fn store_alert(&self, change: AlertChange, fence: Option<store::Fence>) -> bool {
        let mut delay = std::time::Duration::from_millis(50);
        for attempt in 1..=8 {
            match self
                .store
                .apply_alert_change_notifying(
                    change.clone(),
                    store::AlertNotify {
                        raised: self.notify.raised.clone(),
                        reopened: self.notify.reopened.clone(),
                        reopen_within_s: self.notify.reopen_within_s,
                        push: self.notify.push,
                        fence,
                    },
                )
                .await
            {
                Ok((record, opened)) => {
                    if opened == store::Opened::Reopened {
                        metrics::counter!("bulwark_alerts_reopened_total", "rule" => change.rule.as_str())
                            .increment(1);
                    }
                    self.hub.publish(LiveEvent::Alert(AlertDto::from(record)));
                    return true;
                }
                Err(store::StoreError::NotFound(m)) => {
                    tracing::debug!(reason = %m, "clear for an alert that is not active");
                    return true;
                }
                Err(store::StoreError::Fenced(m)) => {
                    // Not a failure: the partition's new owner evaluates (and writes) it.
                    metrics::counter!("bulwark_fence_refusals_total").increment(1);
                    tracing::warn!(rule = %change.rule, reason = %m, "alert change refused by its partition's fence");
                    return true;
                }
                Err(store::StoreError::Closed) => {
                    tracing::error!(rule = %change.rule, "store closed; alert change not stored");
                    return false;
                }
                Err(e) => {
                    tracing::error!(error = %e, attempt, rule = %change.rule, "could not store alert change; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        metrics::counter!("bulwark_alert_store_failures_total").increment(1);
        tracing::error!(rule = %change.rule, summary = %change.summary, "alert change could not be stored after retries");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(engine_queue: usize, store_queue: usize, lag_s: f64) -> BacklogSample {
        BacklogSample {
            store_failing: false,
            engine_queue,
            store_queue,
            lag_s,
        }
    }

    const LIMITS: BacklogLimits = BacklogLimits {
        max_queue: 100,
        max_lag_s: 10.0,
        clear_hold_s: 30.0,
    };

    fn at_ms(ms: i64) -> UnixMicros {
        UnixMicros(1_780_000_000_000_000 + ms * 1_000)
    }

    #[test]
    fn a_store_that_cannot_write_raises_the_backlog_alert_with_empty_queues_and_holds_it_until_calm()
     {
        let l = LIMITS;
        let failing = BacklogSample {
            store_failing: true,
            ..sample(0, 0, 0.0)
        };
        let mut b = Backlog::resume(false);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(0)), None);
        assert_eq!(
            b.observe(failing, l, at_ms(1_000)),
            Some(true),
            "PostgreSQL down"
        );
        assert_eq!(
            b.observe(failing, l, at_ms(40_000)),
            None,
            "still down: no clear"
        );
        // Back: cleared only after the hold of calm samples, not at the first one.
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(41_000)), None);
        assert_eq!(
            b.observe(failing, l, at_ms(60_000)),
            None,
            "down again restarts the hold"
        );
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(61_000)), None);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(90_999)), None);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(91_000)), Some(false));
    }

    #[test]
    fn the_backlog_alert_rises_past_a_limit_and_clears_only_well_under_it_for_the_hold() {
        let l = LIMITS;
        // Resumed with the alert left open: a calm start clears it, after the hold.
        let mut b = Backlog::resume(true);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(0)), None);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(29_999)), None);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(30_000)), Some(false));
        assert_eq!(
            b.observe(sample(60, 40, 10.0), l, at_ms(31_000)),
            None,
            "at the limit is not over"
        );
        assert_eq!(
            b.observe(sample(60, 41, 0.0), l, at_ms(32_000)),
            Some(true),
            "queues add up"
        );
        assert_eq!(
            b.observe(sample(200, 0, 0.0), l, at_ms(33_000)),
            None,
            "raised once"
        );
        // Under the limit but over the low mark (half): the hold does not start.
        assert_eq!(b.observe(sample(51, 0, 0.0), l, at_ms(40_000)), None);
        assert_eq!(b.observe(sample(51, 0, 0.0), l, at_ms(80_000)), None);
        assert_eq!(
            b.observe(sample(50, 0, 5.1), l, at_ms(120_000)),
            None,
            "lag over half"
        );
        // At the low mark from 121 s; one sample over it at 140 s restarts the hold.
        assert_eq!(b.observe(sample(50, 0, 5.0), l, at_ms(121_000)), None);
        assert_eq!(b.observe(sample(70, 0, 0.0), l, at_ms(140_000)), None);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(141_000)), None);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(170_999)), None);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(171_000)), Some(false));
        assert_eq!(
            b.observe(sample(0, 0, 10.5), l, at_ms(172_000)),
            Some(true),
            "lag alone"
        );
    }

    #[test]
    fn a_load_oscillating_around_the_limit_raises_once_and_clears_once() {
        let l = LIMITS;
        let mut b = Backlog::resume(true);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(0)), None);
        assert_eq!(b.observe(sample(0, 0, 0.0), l, at_ms(30_000)), Some(false));
        // 60 s of a queue that fills past the limit and drains to nothing between batches,
        // looked at every 50 ms (as the pipeline does per batch and per tick), with the lag
        // swinging around its limit too; then a calm minute.
        let mut changes = Vec::new();
        for step in 0..2_400i64 {
            let t = 31_000 + step * 50;
            let s = if step < 1_200 {
                match step % 4 {
                    0 => sample(150, 20, 12.0),
                    1 => sample(90, 0, 4.0),
                    2 => sample(0, 0, 0.0),
                    _ => sample(40, 70, 9.0),
                }
            } else {
                sample(step as usize % 30, 0, 0.5)
            };
            if let Some(raise) = b.observe(s, l, at_ms(t)) {
                changes.push((raise, t));
            }
        }
        // Raised at the first sample; cleared 30 s after the last sample over the low mark
        // (the oscillation's last, at 31 s + 1,199 × 50 ms = 90.95 s).
        assert_eq!(changes, vec![(true, 31_000), (false, 121_000)]);
    }

    #[test]
    fn a_server_that_starts_with_no_backlog_alert_open_raises_the_first_backlog_at_once() {
        // The defect this pins: starting "raised" whatever the store held meant a burst in
        // the first `clear_hold_s` after start-up raised nothing.
        let l = LIMITS;
        let mut b = Backlog::resume(false);
        assert_eq!(
            b.observe(sample(0, 0, 0.0), l, at_ms(0)),
            None,
            "calm: nothing to clear"
        );
        assert_eq!(b.observe(sample(101, 0, 0.0), l, at_ms(500)), Some(true));
        // Resumed raised, the same burst is the alert already open: no second raise.
        let mut open = Backlog::resume(true);
        assert_eq!(open.observe(sample(101, 0, 0.0), l, at_ms(500)), None);
    }
}
