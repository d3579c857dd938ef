//! PostgreSQL schema migrations, recorded in `bulwark_schema` (one row: the version).
//!
//! The tables and columns carry the SQLite schema's names (rows are read by name on both);
//! types are PostgreSQL's (`BIGINT` times in microseconds, `DOUBLE PRECISION`, `BOOLEAN`,
//! `BYTEA`). A migration is never edited once released: add a new one instead.

use crate::sqlite::check_schema_version;
use crate::{Result, StoreError};
use postgres::Client;

/// Key of the advisory lock under which migrations run (several nodes may start at once).
const MIGRATION_LOCK: i64 = 0x6275_6c77_0001;

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: what ingest needs: the registry (people, devices, cases), fixes and device events
    // with their duplicate keys, and the unknown-device list.
    r#"
    CREATE TABLE people (
        id BIGSERIAL PRIMARY KEY,
        role TEXT NOT NULL,
        display_name TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE devices (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        protocol TEXT NOT NULL,
        hardware_id TEXT NOT NULL,
        owner_id BIGINT REFERENCES people(id),
        token_sha256 BYTEA,
        created_at BIGINT NOT NULL,
        model TEXT,
        UNIQUE (protocol, hardware_id)
    );
    CREATE UNIQUE INDEX devices_token ON devices(token_sha256) WHERE token_sha256 IS NOT NULL;
    CREATE INDEX devices_owner ON devices(owner_id);
    CREATE TABLE cases (
        id BIGSERIAL PRIMARY KEY,
        reference TEXT NOT NULL,
        offender_id BIGINT NOT NULL REFERENCES people(id),
        created_at BIGINT NOT NULL
    );
    CREATE TABLE case_protected (
        case_id BIGINT NOT NULL REFERENCES cases(id),
        person_id BIGINT NOT NULL REFERENCES people(id),
        PRIMARY KEY (case_id, person_id)
    );
    CREATE TABLE fixes (
        id BIGSERIAL PRIMARY KEY,
        device_id BIGINT NOT NULL REFERENCES devices(id),
        device_time BIGINT NOT NULL,
        received_time BIGINT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        accuracy_m DOUBLE PRECISION,
        speed_mps DOUBLE PRECISION,
        course_deg DOUBLE PRECISION,
        altitude_m DOUBLE PRECISION,
        source TEXT NOT NULL,
        flags BIGINT NOT NULL,
        seq BIGINT
    );
    CREATE UNIQUE INDEX fixes_device_seq ON fixes(device_id, seq) WHERE seq IS NOT NULL;
    CREATE UNIQUE INDEX fixes_device_time_position ON fixes(device_id, device_time, lat, lon)
        WHERE seq IS NULL;
    CREATE INDEX fixes_device_time_all ON fixes(device_id, device_time);
    CREATE INDEX fixes_received ON fixes(received_time);
    CREATE TABLE device_events (
        id BIGSERIAL PRIMARY KEY,
        device_id BIGINT NOT NULL REFERENCES devices(id),
        kind TEXT NOT NULL,
        device_time BIGINT NOT NULL,
        received_time BIGINT NOT NULL,
        lat DOUBLE PRECISION,
        lon DOUBLE PRECISION,
        code TEXT NOT NULL DEFAULT '',
        UNIQUE (device_id, kind, device_time, code)
    );
    CREATE TABLE unknown_devices (
        protocol TEXT NOT NULL,
        hardware_id TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        attempts BIGINT NOT NULL,
        last_remote TEXT,
        PRIMARY KEY (protocol, hardware_id)
    );
    "#,
    // 2: the hash-chained access log and its signed checkpoints (`audit.rs`).
    super::audit::MIGRATION,
    // 3: orders, their zones (with schedules) and order versions (`orders.rs`).
    super::orders::MIGRATION,
    // 4: alerts keyed by episode, their evidence and action log (`alerts.rs`).
    super::alerts::MIGRATION,
    // 5: raw frames kept before their ack (`unknown_frames.rs`).
    super::unknown_frames::MIGRATION,
    // 6: accounts, log-in throttle, sessions, case assignments, police
    // dispatches (`accounts.rs`).
    super::accounts::MIGRATION,
    // 7: petitions and their history, notices, court timers and the orders' lapse
    // (`court.rs`; order versions came with 3).
    super::court::MIGRATION,
    // 8: device health: the latest report of each device and every report (`status.rs`).
    super::status::MIGRATION,
    // 9: network scans: the cells and Wi-Fi access points stored beside fixes (`scans.rs`).
    super::scans::MIGRATION,
    // 10: alerting and outbox: dispatch tasks, notification settings, push
    // subscriptions and the webhook/Web Push outbox with its claim lease (`outbox.rs`).
    super::outbox::MIGRATION,
    // 11: the largest fencing token claimed per partition (cluster mode).
    super::outbox::FENCE_MIGRATION,
];

/// Applies the migrations this database lacks, under an advisory lock held by the
/// transaction; refuses a schema newer than this build.
pub(crate) fn migrate(client: &mut Client) -> Result<()> {
    migrate_to(client, MIGRATIONS)
}

pub(crate) fn migrate_to(client: &mut Client, migrations: &[&str]) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS bulwark_schema (version BIGINT NOT NULL)")?;
    let row = tx.query_opt("SELECT version FROM bulwark_schema", &[])?;
    let version: i64 = match row {
        Some(r) => r.try_get("version")?,
        None => {
            tx.execute("INSERT INTO bulwark_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    check_schema_version(version, migrations.len())?;
    let from = usize::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("schema version {version}")))?;
    for (i, sql) in migrations.iter().enumerate().skip(from) {
        tx.batch_execute(sql)?;
        tx.execute(
            "UPDATE bulwark_schema SET version = $1",
            &[&((i + 1) as i64)],
        )?;
        tracing::info!(migration = i + 1, "applied PostgreSQL schema migration");
    }
    tx.commit()?;
    Ok(())
}
