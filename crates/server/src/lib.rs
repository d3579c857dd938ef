//! Bulwark's IO shell: it owns the sockets, the store handle and the engine task, and is the
//! only crate that knows HTTP and JSON.
//!
//! Data flows one way: ingest doors → store (durable) → pipeline (engine) → alerts → live
//! stream. `start` wires it all and returns a handle whose `shutdown` stops accepting new
//! requests, lets in-flight ones finish, flushes the store and stops the engine.

pub mod alerts;
pub mod api;
pub mod clock;
pub mod cluster_node;
pub mod config;
pub mod court;
pub mod http;
pub mod ingest;
pub mod live;
pub mod pipeline;
pub mod privacy;

// The paths the binary's admin commands (`audit verify`, `evidence`, `retention purge`) and
// the integration tests use.
pub use alerts::webhooks;
pub use privacy::{audit_log, evidence, retention};

pub use config::Config;

use alerts::{dispatch, lifecycle, push, victim_alerts};
use api::me;
use http::{dto, error, hardening, web};
use ingest::listeners;
use live::ws;
use privacy::{accounts, auth};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hub: live::Hub,
    pub pipeline: pipeline::PipelineHandle,
    pub config: Arc<Config>,
    pub admin_token: Arc<str>,
    /// The metrics scraper's token (`Config::metrics_token`).
    pub metrics_token: Option<Arc<str>>,
    pub metrics: PrometheusHandle,
    /// Signs access-log checkpoints; the key lives in a file in the data directory.
    pub audit_signer: store::AuditSigner,
    /// Signs Web Push requests (VAPID); the key lives in a file in the data directory.
    pub vapid: push::VapidKey,
    /// Flips to true on shutdown; long-lived responses (the live stream) end when it does, so
    /// graceful shutdown does not wait forever for them.
    pub shutdown: watch::Receiver<bool>,
    /// The server's one clock: every part reads the time from it (tests advance it).
    pub clock: clock::Clock,
    /// Whether the access log verified at start-up (`false`: broken; the server serves on).
    pub audit_chain_ok: bool,
    /// The log-in throttle by source and username (in memory: a restart forgets it).
    pub login_guard: Arc<std::sync::Mutex<access::LoginGuard>>,
    /// Each device's latest fixes, for the impossible-jump check (see [`ingest::LastFixes`]).
    pub last_fixes: Arc<ingest::LastFixes>,
    /// Each device's last stored health report: a repeat within a minute is not stored again
    /// (see [`ingest::HealthSeen`]).
    pub health_seen: Arc<ingest::HealthSeen>,
    /// This node's part in a cluster; `None` for a lone server.
    pub cluster: Option<Arc<cluster_node::Node>>,
}

impl AppState {
    /// Whether this node runs the once-per-cluster jobs (escalation, court scheduler,
    /// retention, the outbox worker): always for a lone server, the leader in a cluster.
    pub fn runs_singletons(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.is_leader())
    }

    /// Waits for the next tick at which a once-per-cluster job runs here: ticks while this
    /// node is not the leader are skipped (docs/cluster.md). `false` once shutdown is asked.
    pub async fn next_singleton_tick(
        &self,
        tick: &mut tokio::time::Interval,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|v| *v) => return false,
            }
            if self.runs_singletons() {
                return true;
            }
        }
    }

    /// The log-in throttle, locked (a poisoned lock is taken over: its state is counters).
    pub fn login_guard(&self) -> std::sync::MutexGuard<'_, access::LoginGuard> {
        self.login_guard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Bulwark", description = "Protective-order monitoring: ingest, cases, alerts."),
    modifiers(&SecurityAddon),
    tags(
        (name = "ingest", description = "Doors for devices and phone apps"),
        (name = "setup", description = "People, devices, cases and orders"),
        (name = "monitoring", description = "Positions, alerts and the live stream"),
        (name = "ops", description = "Health, metrics, this document"),
        (name = "access", description = "Log-in, accounts, case assignments, the access log"),
        (name = "court", description = "Petitions, court decisions, order versions, notices"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "staff_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "device_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every operation may answer a client error with the error table's body (an unreadable path
/// or query, a wrong content type, a missing token), not only the codes its handler names, so
/// each operation documents the `4XX` range with [`error::ErrorBody`].
struct ClientErrors;

impl utoipa::Modify for ClientErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = ResponseBuilder::new()
            .description("A client error, with its code from the error table")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("4XX".into())
                    .or_insert_with(|| error.clone().into());
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .entry("ErrorBody".into())
            .or_insert_with(<error::ErrorBody as utoipa::PartialSchema>::schema);
        components
            .schemas
            .entry("ErrorDetail".into())
            .or_insert_with(<error::ErrorDetail as utoipa::PartialSchema>::schema);
    }
}

/// Liveness and degradation: `degraded` when the store's queue or the engine is behind,
/// the store cannot write, the access log is broken, or (cluster mode) the node has lost
/// NATS or has commits not yet published. Anyone (a load balancer) gets
/// `status` and `version`; the figures (queue, lag, server time, which part is degraded)
/// only a caller that may read the operational figures ([`auth::may_read_operations`]).
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = dto::Health)))]
async fn healthz(
    State(s): State<AppState>,
    parts: axum::http::request::Parts,
) -> axum::Json<dto::Health> {
    let queue = s.store.write_queue_len();
    let lag = s.pipeline.lag_s();
    let writes_failing = s.store.writes_failing();
    metrics::gauge!("bulwark_store_writes_failing").set(if writes_failing { 1.0 } else { 0.0 });
    // A cluster node that lost NATS keeps acknowledging (PostgreSQL holds every fix) but
    // its commits no longer reach the partitions' owners: protection is degraded until it
    // is back and has republished.
    let cluster_behind = s.cluster.as_deref().is_some_and(|c| {
        !c.status.borrow().connected || c.stats.behind.load(std::sync::atomic::Ordering::Relaxed)
    });
    let status =
        if queue > 1000 || lag > 5.0 || !s.audit_chain_ok || writes_failing || cluster_behind {
            "degraded"
        } else {
            "ok"
        };
    let ops = auth::may_read_operations(&parts, &s).await;
    axum::Json(dto::Health {
        status,
        version: env!("CARGO_PKG_VERSION"),
        server_time: ops.then(|| dto::ts(s.clock.now())),
        store_queue: ops.then_some(queue),
        engine_lag_s: ops.then_some(lag),
        audit_chain: ops.then_some(if s.audit_chain_ok { "ok" } else { "broken" }),
        store: ops.then_some(if writes_failing {
            "write_failing"
        } else {
            "ok"
        }),
        cluster: if ops {
            s.cluster.as_deref().map(cluster_health)
        } else {
            None
        },
    })
}

fn cluster_health(c: &cluster_node::Node) -> dto::ClusterHealth {
    let status = c.status.borrow().clone();
    let held = c.held();
    dto::ClusterHealth {
        node_id: c.node_id.clone(),
        role: if held.contains(&::cluster::Partition(0)) {
            "leader"
        } else {
            "member"
        },
        partitions_owned: held.iter().map(|p| p.0).collect(),
        lag: c.stats.lag(),
        nodes: status.nodes,
        connected: status.connected,
        publish_behind: c.stats.behind.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// Prometheus metrics in the text exposition format, for the metrics scraper's token, the
/// administrator token or an administrator's session (401 otherwise: the counters move with
/// every fix and alert).
#[utoipa::path(get, path = "/metrics", tag = "ops", security(("staff_token" = [])), responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics_endpoint(
    State(s): State<AppState>,
    parts: axum::http::request::Parts,
) -> Result<String, error::ApiError> {
    if !auth::may_read_operations(&parts, &s).await {
        return Err(error::ApiError::new(
            error::ErrorCode::Unauthorized,
            "the metrics need the scraper's token (`metrics_token`) or an administrator's",
        ));
    }
    metrics::gauge!("bulwark_store_queue").set(s.store.write_queue_len() as f64);
    metrics::gauge!("bulwark_audit_chain_ok").set(if s.audit_chain_ok { 1.0 } else { 0.0 });
    if let Some(c) = &s.cluster {
        use std::sync::atomic::Ordering::Relaxed;
        let h = cluster_health(c);
        metrics::gauge!("bulwark_cluster_partitions_owned").set(h.partitions_owned.len() as f64);
        metrics::gauge!("bulwark_cluster_stream_lag").set(h.lag as f64);
        metrics::gauge!("bulwark_cluster_nodes").set(h.nodes.len() as f64);
        metrics::gauge!("bulwark_cluster_leader").set(if h.role == "leader" { 1.0 } else { 0.0 });
        metrics::gauge!("bulwark_cluster_connected").set(if h.connected { 1.0 } else { 0.0 });
        metrics::gauge!("bulwark_cluster_publish_behind").set(if h.publish_behind {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("bulwark_cluster_published_total")
            .set(c.stats.published.load(Relaxed) as f64);
        metrics::gauge!("bulwark_cluster_publish_failures_total")
            .set(c.stats.publish_failures.load(Relaxed) as f64);
        metrics::gauge!("bulwark_cluster_consumed_total")
            .set(c.stats.consumed.load(Relaxed) as f64);
    }
    Ok(s.metrics.render())
}

fn openapi_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics_endpoint))
        .routes(routes!(live::live_stream))
        .routes(routes!(ws::live_ws))
        .routes(routes!(ingest::native_batch))
        .routes(routes!(ingest::osmand))
        .routes(routes!(ingest::owntracks))
        .routes(routes!(ingest::gpslogger))
        .routes(routes!(ingest::overland))
        .routes(routes!(api::create_person, api::list_people))
        .routes(routes!(api::create_device, api::list_devices))
        .routes(routes!(api::list_unknown_devices))
        .routes(routes!(api::set_device_token))
        .routes(routes!(api::create_case, api::list_cases))
        .routes(routes!(api::create_order, api::list_orders))
        .routes(routes!(api::positions_latest))
        .routes(routes!(api::track))
        .routes(routes!(api::device_health_history))
        .routes(routes!(api::network_scans))
        .routes(routes!(api::unknown_frames))
        .routes(routes!(api::list_alerts))
        .routes(routes!(api::set_alert_state))
        .routes(routes!(lifecycle::add_action))
        .routes(routes!(lifecycle::history))
        .routes(routes!(lifecycle::measures))
        .routes(routes!(dispatch::dispatch))
        .routes(routes!(dispatch::my_tasks))
        .routes(routes!(dispatch::set_task_state))
        .routes(routes!(dispatch::police_units))
        .routes(routes!(api::snapshot))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::create_account, accounts::list_accounts))
        .routes(routes!(accounts::assign_case))
        .routes(routes!(accounts::disable_account))
        .routes(routes!(accounts::audit_log))
        .routes(routes!(me::my_case))
        .routes(routes!(court::file_petition, court::list_petitions))
        .routes(routes!(court::get_petition))
        .routes(routes!(court::review_petition))
        .routes(routes!(court::decide_petition))
        .routes(routes!(court::list_versions, court::create_version))
        .routes(routes!(court::my_notices))
        .routes(routes!(court::staff_notices))
        .routes(routes!(victim_alerts::my_alerts))
        .routes(routes!(victim_alerts::test_alert))
        .routes(routes!(
            victim_alerts::get_settings,
            victim_alerts::put_settings
        ))
        .routes(routes!(push::vapid_public_key))
        .routes(routes!(push::subscribe, push::unsubscribe))
        .routes(routes!(me::my_location))
        .routes(routes!(me::my_sos))
        .routes(routes!(me::my_access_log))
}

/// The OpenAPI document of every API endpoint (built from the same table as the router).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_parts().1
}

/// The router and its document, with what every operation shares (the `4XX` answers) added
/// once the routes are in.
fn api_parts() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::Modify;
    let (api, mut doc) = openapi_router().split_for_parts();
    ClientErrors.modify(&mut doc);
    (api, doc)
}

fn common_layers(router: Router<AppState>, state: &AppState) -> Router {
    use tower_http::catch_panic::CatchPanicLayer;
    let csp = HeaderValue::from_str(&hardening::content_security_policy(
        state.config.map_tiles.as_deref(),
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    router
        .layer(axum::middleware::map_response(error::json_rejections))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.ingest.max_body_bytes,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| -> Response {
                error::ApiError::internal("handler panicked").into_response()
            },
        ))
        // Outermost, so that every answer gets them, a caught panic's 500 included.
        .layer(axum::middleware::map_response(move |res: Response| {
            let csp = csp.clone();
            async move { hardening::apply(&csp, res) }
        }))
        .with_state(state.clone())
}

/// The main HTTP router: API, OpenAPI document and web apps.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api_parts();
    let doc = Arc::new(doc);
    let api = api
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .merge(web::routes(state.config.map_tiles.clone()))
        .fallback(|| async {
            error::ApiError::new(error::ErrorCode::NotFound, "no such endpoint")
        });
    common_layers(api, &state)
}

/// The OsmAnd door on its own port: any path, as Traccar Client posts to the server root.
fn osmand_router(state: AppState) -> Router {
    let r = Router::new().fallback(ingest::osmand);
    common_layers(r, &state)
}

fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Time to acknowledge is a real histogram (buckets from 5 s to 1 h), so that
            // dashboards can aggregate it across servers; other timings stay summaries.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("bulwark_alert_time_to_ack_seconds".into()),
                    &[5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1_800.0, 3_600.0],
                )
                // Only empty buckets are refused.
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // A second server in the same process (tests) reuses the first recorder.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("access-log signing key: {0}")]
    AuditKey(String),
    #[error("Web Push (VAPID) key: {0}")]
    VapidKey(String),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("PostgreSQL did not answer within {0:?} (is it running, is the URL right?)")]
    StoreTimeout(std::time::Duration),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server.
pub struct Running {
    pub http_addr: SocketAddr,
    pub osmand_addr: Option<SocketAddr>,
    /// Bound tracker listeners (TCP; H02 and Teltonika also UDP on the same port).
    pub device_addrs: std::collections::HashMap<domain::Protocol, SocketAddr>,
    pub device_udp_addrs: std::collections::HashMap<domain::Protocol, SocketAddr>,
    pub admin_token: String,
    pub store: Store,
    /// The server's clock (`AppState::clock`); tests advance it.
    pub clock: clock::Clock,
    audit_signer: store::AuditSigner,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pipeline_task: tokio::task::JoinHandle<()>,
    webhook_task: tokio::task::JoinHandle<()>,
    cluster: Option<Arc<cluster_node::Node>>,
    cluster_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Graceful shutdown: stop accepting, finish in-flight requests (their fixes commit),
    /// close the store (the writer drains its queue), then let the engine drain.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // Undelivered webhooks stay in the outbox and go out after the restart.
        let _ = self.webhook_task.await;
        // Sign the head so that the records since the last periodic checkpoint are vouched
        // for too (the log's own chain cannot protect its unsigned tail).
        if let Err(e) = self
            .store
            .checkpoint_audit(self.audit_signer.clone(), self.clock.now())
            .await
        {
            tracing::error!(error = %e, "could not sign the access-log checkpoint at shutdown");
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        if let Some(node) = &self.cluster {
            // Hand the partitions over before the engine stops: live nodes take them at
            // their next tick instead of waiting for the leases to expire.
            node.leave().await;
        }
        let _ = self.pipeline_task.await;
        // The publisher ends with the store's committed stream; the reader is stopped.
        for t in self.cluster_tasks {
            t.abort();
        }
        tracing::info!("shutdown complete");
    }

    /// Resolves when shutdown has been requested by someone else (not used by tests).
    pub fn shutdown_sender(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn bind(config: &Config, port: u16) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::new(config.bind, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// How long start-up waits for PostgreSQL before it gives up with a clear error.
pub const STORE_OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the configured store: PostgreSQL when `[store] url` is set, else the embedded SQLite
/// store in the data directory. A server that cannot be reached, or a schema newer than this
/// build, is an error within [`STORE_OPEN_TIMEOUT`], never a hang.
async fn open_store(config: &Config) -> Result<Store, StartError> {
    let opening = match config.store.url.clone() {
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(StartError::Config(
                    "the store URL must start with postgres:// (or leave it unset for the embedded store)".into(),
                ));
            }
            tokio::task::spawn_blocking(move || Store::open_url(&url))
        }
        None => {
            let dir = config.data_dir.clone();
            tokio::task::spawn_blocking(move || Store::open(&dir))
        }
    };
    let store = tokio::time::timeout(STORE_OPEN_TIMEOUT, opening)
        .await
        .map_err(|_| StartError::StoreTimeout(STORE_OPEN_TIMEOUT))?
        .map_err(|e| store::StoreError::Corrupt(e.to_string()))??;
    if store.is_postgres() {
        tracing::info!("store: PostgreSQL");
    }
    Ok(store)
}

/// Opens the store, rebuilds engine state, binds the listeners and starts serving.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if config.cluster.url.is_some() && config.store.url.is_none() {
        return Err(StartError::Config(
            "a cluster node needs the shared PostgreSQL store: give --store postgres://… with --cluster".into(),
        ));
    }
    let store = open_store(&config).await?;
    let node = match &config.cluster.url {
        Some(_) => Some(Arc::new(
            cluster_node::Node::start(&config.cluster, STORE_OPEN_TIMEOUT).await?,
        )),
        None => None,
    };
    // Cluster mode: this node's commits go to the stream (publisher), and its engine is fed
    // from the stream's subjects of the partitions it holds (reader), not from its own commits.
    let clock = crate::clock::Clock::system();
    let mut cluster_tasks = Vec::new();
    let pipeline_cluster = match &node {
        Some(n) => {
            cluster_tasks.push(cluster_node::spawn_publisher(
                n.clone(),
                store.clone(),
                store.subscribe_committed(),
            ));
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            cluster_tasks.push(cluster_node::spawn_reader(n.clone(), clock.clone(), tx));
            Some(pipeline::ClusterInput {
                node: n.clone(),
                input: rx,
            })
        }
        None => None,
    };
    let hub = live::Hub::new(16_384);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (pipeline, pipeline_task) = pipeline::spawn(
        store.clone(),
        hub.clone(),
        clock.clone(),
        config.engine.to_engine_config(),
        pipeline::Notify {
            raised: config.webhooks_for("alert.raised"),
            escalated: config.webhooks_for("alert.escalated"),
            reopened: config.webhooks_for("alert.reopened"),
            reopen_within_s: config.alerts.reopen_window_s,
            push: true,
            backlog: pipeline::BacklogLimits {
                max_queue: config.alerts.backlog_max_queue,
                max_lag_s: config.alerts.backlog_max_lag_s,
                clear_hold_s: config.alerts.backlog_clear_hold_s,
            },
            escalation: store::EscalationPolicy {
                critical_s: config.escalation.critical_s,
                warning_s: config.escalation.warning_s,
                info_s: config.escalation.info_s,
            },
        },
        shutdown_rx.clone(),
        pipeline_cluster,
    )
    .await?;
    if let Some(n) = &node {
        cluster_tasks.push(pipeline::spawn_roster_listener(n, pipeline.clone()).await?);
        cluster_tasks.extend(live::spawn_live_fanout(n, hub.clone()).await?);
    }
    let admin_token = config.admin_token.clone().unwrap_or_else(random_token);
    let audit_signer = audit_log::signer(
        &config.data_dir,
        Arc::new(
            audit_log::load_or_create_key(&config.data_dir)
                .map_err(|e| StartError::AuditKey(e.to_string()))?,
        ),
    );
    // Verify the stored access log before serving. A broken chain is reported (log, /healthz,
    // `bulwark_audit_chain_ok`), never a reason to stop monitoring.
    let audit_chain_ok =
        match audit_log::verify_store(&store, &audit_signer.key, &config.data_dir).await {
            Ok(report) if report.ok() => {
                tracing::info!(records = report.report.records, "access log verified");
                if report.head_file == audit_log::HeadFile::Missing {
                    // A data directory from before the head file: anchor the verified head now.
                    tracing::warn!("no access-log head file yet: writing one at the verified head");
                    if let Err(e) = store
                        .checkpoint_audit(audit_signer.clone(), clock.now())
                        .await
                    {
                        tracing::error!(error = %e, "could not anchor the access-log head");
                    }
                }
                true
            }
            Ok(report) => {
                for line in report.lines() {
                    tracing::error!(finding = %line, "ACCESS LOG VERIFICATION FAILED");
                }
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "ACCESS LOG could not be read for verification");
                false
            }
        };
    let vapid = push::load_or_create_key(&config.data_dir).map_err(StartError::VapidKey)?;
    let state = AppState {
        clock: clock.clone(),
        audit_chain_ok,
        login_guard: Arc::default(),
        last_fixes: Arc::default(),
        health_seen: Arc::default(),
        cluster: node.clone(),
        store: store.clone(),
        hub,
        pipeline,
        config: Arc::new(config.clone()),
        admin_token: admin_token.clone().into(),
        metrics_token: config.metrics_token.as_deref().map(Arc::from),
        metrics: prometheus(),
        audit_signer: audit_signer.clone(),
        vapid,
        shutdown: shutdown_rx.clone(),
    };

    let mut tasks = Vec::new();
    let webhook_task = webhooks::spawn(state.clone(), shutdown_rx.clone());
    tasks.push(court::spawn_scheduler(state.clone(), shutdown_rx.clone()));
    tasks.push(retention::spawn_job(state.clone(), shutdown_rx.clone()));
    let http = bind(&config, config.http_port).await?;
    let http_addr = http.local_addr().map_err(|source| StartError::Bind {
        addr: SocketAddr::new(config.bind, config.http_port),
        source,
    })?;
    tasks.push(serve(http, router(state.clone()), shutdown_rx.clone()));
    let mut osmand_addr = None;
    if let Some(port) = config.osmand_port {
        let l = bind(&config, port).await?;
        osmand_addr = l.local_addr().ok();
        tasks.push(serve(l, osmand_router(state.clone()), shutdown_rx.clone()));
    }
    let devices = listeners::start(&state, shutdown_rx.clone()).await?;
    tasks.extend(devices.tasks);
    tracing::info!(%http_addr, ?osmand_addr, data_dir = %config.data_dir.display(), "bulwark serving");
    Ok(Running {
        http_addr,
        osmand_addr,
        device_addrs: devices.tcp,
        device_udp_addrs: devices.udp,
        admin_token,
        store,
        clock,
        audit_signer,
        shutdown: shutdown_tx,
        tasks,
        pipeline_task,
        webhook_task,
        cluster: node,
        cluster_tasks,
    })
}

/// A client has this long to send a request's headers. Without it a slowloris client (one
/// header line every few seconds) held its connection forever: the abuse campaign kept 300
/// such connections open for 60 s, and enough of them exhaust the file descriptors.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    tokio::spawn(async move {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let stop = async {
                let _ = shutdown.wait_for(|v| *v).await;
            };
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "accepting an HTTP connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop => break,
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(remote));
                    router.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = http1
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut stop = shutdown.clone();
            connections.spawn(async move {
                let mut conn = std::pin::pin!(conn);
                let mut stopping = false;
                loop {
                    let shut = async {
                        let _ = stop.wait_for(|v| *v).await;
                    };
                    tokio::select! {
                        res = conn.as_mut() => {
                            if let Err(e) = res {
                                tracing::debug!(error = %e, "HTTP connection ended with an error");
                            }
                            break;
                        }
                        _ = shut, if !stopping => {
                            // Finish the request in flight, then close (graceful shutdown).
                            conn.as_mut().graceful_shutdown();
                            stopping = true;
                        }
                    }
                }
            });
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    })
}
