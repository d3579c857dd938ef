//! Server configuration: defaults that work with no file, a TOML file, then overrides.
//!
//! Precedence (highest first): command-line flags, environment variables (both applied by the
//! `bulwark` binary), the TOML file, these defaults.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded store keeps its files; created on first start.
    pub data_dir: PathBuf,
    /// Address the listeners bind to.
    pub bind: IpAddr,
    /// The HTTP API, live stream, web apps and native ingest. 0 picks a free port.
    pub http_port: u16,
    /// The OsmAnd / Traccar Client door (Traccar's default is 5055). `None` disables it;
    /// 0 picks a free port.
    pub osmand_port: Option<u16>,
    /// Bearer token for staff endpoints until accounts exist. Generated at start if unset.
    pub admin_token: Option<String>,
    /// Bearer token of the metrics scraper (Prometheus' `authorization: credentials`). The
    /// figures behind `/metrics` and `/healthz`'s details move with every stored fix and
    /// alert, so they are answered only to this token, the administrator token or an
    /// administrator's session; anyone else gets 401 from `/metrics` and only `status` and
    /// `version` from `/healthz` (docs/privacy.md, "What the offender can see").
    pub metrics_token: Option<String>,
    pub ingest: IngestLimits,
    pub engine: EngineSettings,
    /// Unacknowledged alerts escalate after these delays.
    pub escalation: Escalation,
    /// Receivers of alert events (police dispatch, SMS gateway…), delivered through the
    /// durable outbox.
    pub webhooks: Vec<Webhook>,
    pub webhook_delivery: WebhookDelivery,
    /// TCP/UDP tracker listeners (GT06, H02, Watch, Teltonika).
    pub devices: DeviceListeners,
    /// The court workflow's scheduler (reminders before expiry, lapse checks).
    pub court: CourtSettings,
    /// The retention purge run inside the server.
    pub retention: RetentionSettings,
    /// Reopening, dispatch grants, the ingest-backlog alert and Web Push.
    pub alerts: AlertSettings,
    /// Tile URL template of the console's map (`{z}`, `{x}`, `{y}`, optionally `{s}`), e.g. a
    /// tile server inside the control room's network. `None`: OpenStreetMap. When tiles cannot
    /// load, the console shows a plain grid and says so.
    pub map_tiles: Option<String>,
    /// Where the data lives: the embedded SQLite store in `data_dir` (default) or PostgreSQL.
    pub store: StoreSettings,
    /// Several nodes on one NATS JetStream (docs/cluster.md). Off unless `url` is set.
    pub cluster: ClusterSettings,
}

/// `[store]`: which backend holds the data.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `postgres://…` selects PostgreSQL (the cluster's source of truth); unset, the embedded
    /// SQLite store in `data_dir`. The data directory still holds the key files.
    pub url: Option<String>,
}

/// `[cluster]`: this node's part in a cluster of identical nodes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// `nats://…` of the cluster's NATS with JetStream. Unset: one node, no cluster.
    pub url: Option<String>,
    /// This node's name, unique in the cluster (default: the host name and process id).
    pub node_id: Option<String>,
    /// Prefix of every stream, bucket and subject name, so clusters (and tests) sharing one
    /// NATS never meet.
    pub namespace: String,
    /// How many partitions the work is split into; fixed for the life of a cluster.
    pub partitions: u16,
    /// How long a partition lease lives without renewal (takeover after a crash takes
    /// about this long plus one renewal tick).
    pub lease_ttl_s: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            url: None,
            node_id: None,
            namespace: "bulwark".into(),
            partitions: 64,
            lease_ttl_s: 6,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CourtSettings {
    /// How often the scheduler looks for due reminders and lapses, in milliseconds.
    pub tick_ms: u64,
    /// Reminders to the court, the officer and the victim this many seconds before an
    /// order version ends.
    pub reminder_offsets_s: Vec<i64>,
}

impl Default for CourtSettings {
    fn default() -> Self {
        CourtSettings {
            tick_ms: 30_000,
            reminder_offsets_s: access::ReminderPolicy::default().offsets_s,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Seconds between purge runs; 0 disables the job (`bulwark retention purge` still works).
    pub interval_s: u64,
    /// Offender fixes are kept this many days after his last order ends.
    pub offender_days_after_order_end: i64,
    /// Protected persons' fixes are kept this many hours (outside incident windows).
    pub victim_hours: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        let p = access::RetentionPolicy::default();
        RetentionSettings {
            interval_s: 3_600,
            offender_days_after_order_end: p.offender_days_after_order_end,
            victim_hours: p.victim_hours,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// A resolved or cleared alert whose condition returns (same order, rule, person, zone,
    /// device) within this many seconds of clearing is reopened instead of duplicated
    /// (`None`: always a new alert).
    pub reopen_window_s: Option<i64>,
    /// How long a police dispatch grant lasts while its alert stays open.
    pub dispatch_open_s: i64,
    /// How long police keep the case after the alert is resolved (for the report).
    pub dispatch_grace_s: i64,
    /// The ingest-backlog system alert is raised when more fixes wait for the engine than
    /// this, or more writes wait for the store…
    pub backlog_max_queue: usize,
    /// …or a committed batch of fixes waited this many seconds for the engine.
    pub backlog_max_lag_s: f64,
    /// The ingest-backlog alert clears only after queue and lag have stayed at or under half
    /// their limits for this many seconds (hysteresis: a load around the limit does not flap).
    pub backlog_clear_hold_s: f64,
    /// The contact (`mailto:` or `https:`) in the VAPID token sent to push services.
    pub push_contact: String,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            reopen_window_s: Some(900),
            dispatch_open_s: 12 * 3_600,
            dispatch_grace_s: 30 * 60,
            backlog_max_queue: 1_000,
            backlog_max_lag_s: 5.0,
            backlog_clear_hold_s: 30.0,
            push_contact: "mailto:operations@bulwark.invalid".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Escalation {
    /// Seconds a critical alert may stay unacknowledged before it escalates (`None`: never).
    pub critical_s: Option<i64>,
    pub warning_s: Option<i64>,
    pub info_s: Option<i64>,
}

impl Default for Escalation {
    fn default() -> Self {
        // One minute for a violation or SOS: the 2021 case shows what twelve minutes cost.
        Escalation {
            critical_s: Some(60),
            warning_s: Some(300),
            info_s: None,
        }
    }
}

/// One webhook receiver.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// A stable name; queued deliveries refer to it.
    pub name: String,
    pub url: String,
    /// Key for the HMAC-SHA256 signature of each delivery.
    pub secret: String,
    /// Events to send: `alert.raised`, `alert.escalated`.
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookDelivery {
    /// First retry delay; doubles per attempt up to `max_backoff_s`.
    pub retry_base_ms: u64,
    pub max_backoff_s: u64,
    /// After this many failed attempts a delivery is given up (logged and counted).
    pub max_attempts: i64,
    pub timeout_s: u64,
}

impl Default for WebhookDelivery {
    fn default() -> Self {
        WebhookDelivery {
            retry_base_ms: 1_000,
            max_backoff_s: 600,
            max_attempts: 50,
            timeout_s: 10,
        }
    }
}

impl Config {
    /// Names of the webhooks that take `event`.
    pub fn webhooks_for(&self, event: &str) -> Vec<String> {
        self.webhooks
            .iter()
            .filter(|w| w.events.iter().any(|e| e == event))
            .map(|w| w.name.clone())
            .collect()
    }
}

/// Ports and limits of the tracker listeners. A port of `None` disables that protocol; 0 picks
/// a free port. The defaults are Traccar's ports, so devices already configured for a Traccar
/// server need only a new address.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceListeners {
    pub gt06_port: Option<u16>,
    /// TCP and UDP on the same port.
    pub h02_port: Option<u16>,
    pub watch_port: Option<u16>,
    /// TCP and UDP on the same port.
    pub teltonika_port: Option<u16>,
    /// A connection that sends nothing for this long is closed (trackers send a heartbeat every
    /// few minutes; a silent socket is usually a dead NAT mapping).
    pub idle_timeout_s: u64,
    /// Open connections allowed from one remote IP (carrier NAT puts many devices behind one
    /// address, so this is generous; it stops one host from exhausting file descriptors).
    pub max_connections_per_ip: usize,
    /// Open tracker connections allowed in total.
    pub max_connections: usize,
    /// A connection that sends this many bytes without one decodable frame is closed.
    pub max_garbage_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestLimits {
    /// Largest request body accepted on any ingest door, in bytes.
    pub max_body_bytes: usize,
    /// Most fixes in one native batch.
    pub max_batch_fixes: usize,
    /// A fix timed more than this many seconds after the server's clock is refused
    /// (device clocks drift; GNSS time does not run minutes ahead).
    pub max_future_s: i64,
    /// A fix whose device time is more than this many seconds before its receipt is marked
    /// late (uploaded from the device's buffer).
    pub late_after_s: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Seconds after which a position no longer counts as current.
    pub stale_after_s: f64,
    /// Metres beyond a radius that count as having left it.
    pub clear_margin_m: f64,
    /// Seconds the condition must stay clear before an episode ends.
    pub clear_hold_s: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./bulwark-data"),
            bind: IpAddr::from([0, 0, 0, 0]),
            http_port: 8080,
            osmand_port: Some(5055),
            admin_token: None,
            metrics_token: None,
            ingest: IngestLimits::default(),
            engine: EngineSettings::default(),
            escalation: Escalation::default(),
            webhooks: Vec::new(),
            webhook_delivery: WebhookDelivery::default(),
            devices: DeviceListeners::default(),
            court: CourtSettings::default(),
            retention: RetentionSettings::default(),
            alerts: AlertSettings::default(),
            map_tiles: None,
            store: StoreSettings::default(),
            cluster: ClusterSettings::default(),
        }
    }
}

impl DeviceListeners {
    /// Every protocol on a free port (tests, the demo): never collides with a running server.
    pub fn ephemeral() -> Self {
        DeviceListeners {
            gt06_port: Some(0),
            h02_port: Some(0),
            watch_port: Some(0),
            teltonika_port: Some(0),
            ..DeviceListeners::default()
        }
    }
}

impl Default for DeviceListeners {
    fn default() -> Self {
        DeviceListeners {
            gt06_port: Some(5023),
            h02_port: Some(5013),
            watch_port: Some(5093),
            teltonika_port: Some(5027),
            idle_timeout_s: 600,
            max_connections_per_ip: 64,
            max_connections: 20_000,
            max_garbage_bytes: 16 * 1024,
        }
    }
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_body_bytes: 1024 * 1024,
            max_batch_fixes: 1000,
            max_future_s: 300,
            late_after_s: 120,
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        let d = engine::EngineConfig::default();
        EngineSettings {
            stale_after_s: d.stale_after_s,
            clear_margin_m: d.clear_margin_m,
            clear_hold_s: d.clear_hold_s,
        }
    }
}

impl EngineSettings {
    pub fn to_engine_config(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            stale_after_s: self.stale_after_s,
            clear_margin_m: self.clear_margin_m,
            clear_hold_s: self.clear_hold_s,
            ..engine::EngineConfig::default()
        }
    }
}

impl Config {
    /// Parses a TOML document; unknown keys are errors so typos are not silently ignored.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults_and_typos_are_rejected() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        let c = Config::from_toml("http_port = 9000\n[ingest]\nmax_batch_fixes = 5\n").unwrap();
        assert_eq!(c.http_port, 9000);
        assert_eq!(c.ingest.max_batch_fixes, 5);
        assert_eq!(c.ingest.max_future_s, 300);
        assert!(Config::from_toml("http_prot = 9000").is_err());
        let c = Config::from_toml("[devices]\ngt06_port = 0\n").unwrap();
        assert_eq!(c.devices.gt06_port, Some(0));
        assert_eq!(c.devices.h02_port, Some(5013));
        let c =
            Config::from_toml("[alerts]\nreopen_window_s = 60\ndispatch_grace_s = 0\n").unwrap();
        assert_eq!(c.alerts.reopen_window_s, Some(60));
        assert_eq!(c.alerts.dispatch_grace_s, 0);
        assert_eq!(c.alerts.dispatch_open_s, 12 * 3_600);
        let c = Config::from_toml(
            "[store]\nurl = \"postgres://db/x\"\n[cluster]\nurl = \"nats://n:4222\"\nnode_id = \"a\"\n",
        )
        .unwrap();
        assert_eq!(c.store.url.as_deref(), Some("postgres://db/x"));
        assert_eq!(c.cluster.url.as_deref(), Some("nats://n:4222"));
        assert_eq!(c.cluster.node_id.as_deref(), Some("a"));
        assert_eq!(c.cluster.namespace, "bulwark");
        assert_eq!((c.cluster.partitions, c.cluster.lease_ttl_s), (64, 6));
        assert!(Config::from_toml("[cluster]\nnodeid = \"a\"\n").is_err());
    }
}
