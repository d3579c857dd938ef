//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.
//!
//! A migration is never edited once released: add a new one instead.

pub const MIGRATIONS: &[&str] = &[
    // 1: the walking skeleton's schema.
    r#"
    CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        role TEXT NOT NULL,
        display_name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        protocol TEXT NOT NULL,
        hardware_id TEXT NOT NULL,
        owner_id INTEGER REFERENCES people(id),
        token_sha256 BLOB,
        created_at INTEGER NOT NULL,
        UNIQUE (protocol, hardware_id)
    );
    CREATE UNIQUE INDEX devices_token ON devices(token_sha256) WHERE token_sha256 IS NOT NULL;
    CREATE TABLE cases (
        id INTEGER PRIMARY KEY,
        reference TEXT NOT NULL,
        offender_id INTEGER NOT NULL REFERENCES people(id),
        created_at INTEGER NOT NULL
    );
    CREATE TABLE case_protected (
        case_id INTEGER NOT NULL REFERENCES cases(id),
        person_id INTEGER NOT NULL REFERENCES people(id),
        PRIMARY KEY (case_id, person_id)
    );
    CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases(id),
        kind TEXT NOT NULL,
        valid_from INTEGER NOT NULL,
        valid_to INTEGER,
        no_approach_m REAL NOT NULL,
        warning_m REAL NOT NULL,
        disclosure_radius_m REAL NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE zones (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        shape TEXT NOT NULL
    );
    CREATE TABLE fixes (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id),
        device_time INTEGER NOT NULL,
        received_time INTEGER NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        accuracy_m REAL,
        speed_mps REAL,
        course_deg REAL,
        altitude_m REAL,
        source TEXT NOT NULL,
        flags INTEGER NOT NULL,
        seq INTEGER
    );
    CREATE UNIQUE INDEX fixes_device_seq ON fixes(device_id, seq) WHERE seq IS NOT NULL;
    CREATE UNIQUE INDEX fixes_device_time ON fixes(device_id, device_time) WHERE seq IS NULL;
    CREATE INDEX fixes_device_time_all ON fixes(device_id, device_time);
    CREATE TABLE unknown_devices (
        protocol TEXT NOT NULL,
        hardware_id TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        last_remote TEXT,
        PRIMARY KEY (protocol, hardware_id)
    );
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        order_id INTEGER REFERENCES orders(id),
        case_id INTEGER REFERENCES cases(id),
        rule TEXT NOT NULL,
        protected_id INTEGER,
        zone_id INTEGER,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        condition_active INTEGER NOT NULL,
        raised_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        cleared_at INTEGER,
        summary TEXT NOT NULL,
        min_distance_m REAL,
        evidence TEXT NOT NULL
    );
    CREATE INDEX alerts_open ON alerts(order_id, rule, protected_id, zone_id) WHERE condition_active = 1;
    "#,
    // 2: device events (SOS, tamper, battery…), and richer alerts: device alerts not tied to
    // an order, late detection, certainty and approach figures.
    r#"
    CREATE TABLE device_events (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id),
        kind TEXT NOT NULL,
        device_time INTEGER NOT NULL,
        received_time INTEGER NOT NULL,
        lat REAL,
        lon REAL,
        UNIQUE (device_id, kind, device_time)
    );
    ALTER TABLE alerts ADD COLUMN device_id INTEGER;
    ALTER TABLE alerts ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN possible INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN closing_speed_mps REAL;
    ALTER TABLE alerts ADD COLUMN time_to_contact_s REAL;
    ALTER TABLE alerts ADD COLUMN heading_toward INTEGER;
    "#,
    // 3: accounts, sessions, log-in throttle, officer case assignments, and the hash-chained
    // access log with its signed checkpoints (docs/privacy.md, "Wiring it into the server").
    // The audit blob is `AuditRecord::to_bytes`; the other audit columns are indexed copies
    // for queries and are never trusted by verification.
    r#"
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        person_id INTEGER REFERENCES people(id),
        password_phc TEXT NOT NULL,
        totp_secret BLOB,
        totp_last_step INTEGER,
        created_at INTEGER NOT NULL,
        disabled_at INTEGER
    );
    CREATE TABLE login_throttle (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
        failures INTEGER NOT NULL,
        lockouts INTEGER NOT NULL,
        locked_until INTEGER,
        last_failure INTEGER
    );
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        idle_timeout_s INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE assignments (
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        case_id INTEGER NOT NULL REFERENCES cases(id),
        created_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, case_id)
    );
    CREATE TABLE dispatches (
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        case_id INTEGER NOT NULL REFERENCES cases(id),
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, alert_id)
    );
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        actor_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        case_id INTEGER,
        record BLOB NOT NULL
    );
    CREATE INDEX audit_log_time ON audit_log(time);
    CREATE INDEX audit_log_actor ON audit_log(actor_id, time);
    CREATE INDEX audit_log_action ON audit_log(action, time);
    CREATE INDEX audit_log_case ON audit_log(case_id, time) WHERE case_id IS NOT NULL;
    CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        checkpoint BLOB NOT NULL
    );
    "#,
    // 4: optional weekly schedules of zones, as a JSON document the server owns.
    r#"
    ALTER TABLE zones ADD COLUMN schedule TEXT;
    "#,
    // 5: the durable outbox for webhooks (transactional with the alert changes that cause
    // them) and alert escalation.
    r#"
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        endpoint TEXT NOT NULL,
        event TEXT NOT NULL,
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        idempotency_key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        delivered_at INTEGER,
        dead_at INTEGER,
        last_error TEXT,
        UNIQUE (endpoint, idempotency_key)
    );
    CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
    ALTER TABLE alerts ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN escalated_at INTEGER;
    "#,
    // 6: the alert action log: every lifecycle step (acknowledge, calls, dispatches, notes,
    // resolve with its cause), timestamped and attributed to the account that took it.
    r#"
    CREATE TABLE alert_actions (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        at INTEGER NOT NULL,
        actor_account_id INTEGER NOT NULL,
        actor_role TEXT NOT NULL,
        action TEXT NOT NULL,
        cause TEXT,
        note TEXT
    );
    CREATE INDEX alert_actions_alert ON alert_actions(alert_id, at);
    "#,
    // 7: the latest health report of each device (battery, charging, signal, body contact).
    r#"
    CREATE TABLE device_status (
        device_id INTEGER PRIMARY KEY REFERENCES devices(id),
        reported_at INTEGER NOT NULL,
        battery_percent REAL,
        battery_volts REAL,
        power_volts REAL,
        charging INTEGER,
        signal REAL,
        satellites INTEGER,
        heart_rate_bpm REAL,
        body_temp_c REAL
    );
    "#,
    // 8: court workflow: petitions and their event history, immutable order versions (the
    // `orders` row and its zones are the engine's projection of the version in force),
    // durable notices (unique per dedup key: each is sent once) and the workflow's timers
    // (reminders before expiry, lapse checks).
    r#"
    CREATE TABLE petitions (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases(id),
        kind TEXT NOT NULL,
        petitioner TEXT NOT NULL,
        petitioner_account_id INTEGER NOT NULL,
        no_approach_m REAL NOT NULL,
        duration_s INTEGER NOT NULL,
        no_contact_by_phone INTEGER NOT NULL,
        electronic_monitoring INTEGER NOT NULL,
        statement TEXT NOT NULL,
        state TEXT NOT NULL,
        filed_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        order_id INTEGER REFERENCES orders(id)
    );
    CREATE INDEX petitions_case ON petitions(case_id);
    CREATE UNIQUE INDEX petitions_order ON petitions(order_id) WHERE order_id IS NOT NULL;
    CREATE TABLE petition_events (
        id INTEGER PRIMARY KEY,
        petition_id INTEGER NOT NULL REFERENCES petitions(id),
        at INTEGER NOT NULL,
        actor_account_id INTEGER,
        actor_role TEXT NOT NULL,
        event TEXT NOT NULL,
        reasons TEXT,
        details TEXT
    );
    CREATE INDEX petition_events_petition ON petition_events(petition_id, id);
    CREATE TABLE order_versions (
        order_id INTEGER NOT NULL REFERENCES orders(id),
        version INTEGER NOT NULL,
        valid_from INTEGER NOT NULL,
        valid_to INTEGER,
        kind TEXT NOT NULL,
        no_approach_m REAL NOT NULL,
        warning_m REAL NOT NULL,
        disclosure_radius_m REAL NOT NULL,
        no_contact_by_phone INTEGER NOT NULL,
        electronic_monitoring INTEGER NOT NULL,
        zones TEXT NOT NULL,
        reasons TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        issued_by INTEGER,
        PRIMARY KEY (order_id, version)
    );
    INSERT INTO order_versions (order_id, version, valid_from, valid_to, kind, no_approach_m,
        warning_m, disclosure_radius_m, no_contact_by_phone, electronic_monitoring, zones,
        reasons, issued_at, issued_by)
        SELECT id, 1, valid_from, valid_to, kind, no_approach_m, warning_m, disclosure_radius_m,
            0, kind = 'electronic_monitoring',
            (SELECT json_group_array(json_object('id', z.id, 'kind', z.kind, 'label', z.label, 'shape', z.shape))
             FROM zones z WHERE z.order_id = orders.id),
            'registered before versioning', created_at, NULL
        FROM orders;
    ALTER TABLE orders ADD COLUMN lapsed_at INTEGER;
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases(id),
        order_id INTEGER REFERENCES orders(id),
        petition_id INTEGER REFERENCES petitions(id),
        recipient TEXT NOT NULL,
        person_id INTEGER REFERENCES people(id),
        kind TEXT NOT NULL,
        valid_to INTEGER,
        reasons TEXT,
        dedup_key TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX notices_case ON notices(case_id, id);
    CREATE TABLE court_timers (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        recipient TEXT,
        version INTEGER NOT NULL,
        done_at INTEGER,
        cancelled_at INTEGER
    );
    CREATE INDEX court_timers_due ON court_timers(at) WHERE done_at IS NULL AND cancelled_at IS NULL;
    "#,
    // 9: alerts that reach people: dual-dispatch tasks (officer to the offender, police to
    // the victim), per-account notification settings (silent mode), Web Push subscriptions,
    // deliveries that belong to a task, and reopened alerts.
    r#"
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        case_id INTEGER NOT NULL REFERENCES cases(id),
        kind TEXT NOT NULL,
        assignee_account_id INTEGER NOT NULL REFERENCES accounts(id),
        target_person_id INTEGER NOT NULL REFERENCES people(id),
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (alert_id, kind, assignee_account_id, target_person_id)
    );
    CREATE INDEX tasks_assignee ON tasks(assignee_account_id, id);
    CREATE TABLE account_settings (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
        silent INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE push_subscriptions (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        endpoint TEXT NOT NULL UNIQUE,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN task_id INTEGER REFERENCES tasks(id);
    ALTER TABLE alerts ADD COLUMN reopened_at INTEGER;
    "#,
    // 10: device health history (every report, not only the latest) and network scans (cell
    // towers and Wi-Fi access points reported beside or instead of a fix); both purged with
    // the fixes of the same device and time window. The device model (GT06 firmware
    // families with their own layouts).
    r#"
    CREATE TABLE device_health_history (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id),
        reported_at INTEGER NOT NULL,
        battery_percent REAL,
        battery_volts REAL,
        power_volts REAL,
        charging INTEGER,
        signal REAL,
        satellites INTEGER,
        heart_rate_bpm REAL,
        body_temp_c REAL
    );
    CREATE INDEX device_health_history_device ON device_health_history(device_id, reported_at);
    CREATE TABLE network_scans (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id),
        scan_time INTEGER NOT NULL,
        received_time INTEGER NOT NULL,
        fix_id INTEGER REFERENCES fixes(id),
        cells TEXT NOT NULL,
        wifi TEXT NOT NULL
    );
    CREATE UNIQUE INDEX network_scans_unique ON network_scans(device_id, scan_time, IFNULL(fix_id, 0));
    CREATE INDEX network_scans_fix ON network_scans(fix_id) WHERE fix_id IS NOT NULL;
    ALTER TABLE devices ADD COLUMN model TEXT;
    "#,
    // 11: ingest (issue 12, 17): frames a door acknowledged but could not decode, kept raw
    // before the ack (`unknown_frames`, purged with the device's fixes); the protocol's own
    // code of a device alarm that has no kind of its own (`device_events.code`).
    r#"
    CREATE TABLE unknown_frames (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id),
        protocol TEXT NOT NULL,
        received_time INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        note TEXT NOT NULL
    );
    CREATE INDEX unknown_frames_device ON unknown_frames(device_id, received_time);
    -- Rebuilt rather than altered: two different alarms of one device in the same second
    -- (an accident and a lock) are two events, so the code joins the duplicate key. '' is
    -- "no code", so a resent SOS is still one row (NULLs would all be distinct).
    CREATE TABLE device_events_v11 (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id),
        kind TEXT NOT NULL,
        device_time INTEGER NOT NULL,
        received_time INTEGER NOT NULL,
        lat REAL,
        lon REAL,
        code TEXT NOT NULL DEFAULT '',
        UNIQUE (device_id, kind, device_time, code)
    );
    INSERT INTO device_events_v11 (id, device_id, kind, device_time, received_time, lat, lon)
        SELECT id, device_id, kind, device_time, received_time, lat, lon FROM device_events;
    DROP TABLE device_events;
    ALTER TABLE device_events_v11 RENAME TO device_events;
    "#,
    // 12: same-time fixes. Without a sequence number a fix is a resend only when device,
    // device time and position all equal a stored one's; a fix at the same device time
    // elsewhere (a sub-second burst on a whole-second protocol, or a sign of tampering) is
    // stored beside it (see `insert_fixes_tx`). The unique index moves from (device, time)
    // to (device, time, position).
    r#"
    DROP INDEX fixes_device_time;
    CREATE UNIQUE INDEX fixes_device_time_position ON fixes(device_id, device_time, lat, lon)
        WHERE seq IS NULL;
    "#,
    // 13: history as it was: an alert keeps the summary and distance it was raised with, and
    // each action-log row the alert's summary, closest distance and whether its condition
    // held at the moment of that step (the alert row itself shows only the latest).
    r#"
    ALTER TABLE alerts ADD COLUMN raise_summary TEXT;
    ALTER TABLE alerts ADD COLUMN raise_distance_m REAL;
    ALTER TABLE alert_actions ADD COLUMN summary TEXT;
    ALTER TABLE alert_actions ADD COLUMN min_distance_m REAL;
    ALTER TABLE alert_actions ADD COLUMN condition_active INTEGER;
    "#,
    // 14: alert evidence in its own table (issue 13): one row per fix, in the order the
    // engine named them, instead of a JSON array in `alerts.evidence`. `migrate` refuses to
    // run this when a stored array does not parse (`StoreError::Corrupt`), so nothing is
    // silently reset; `json_each` moves the content, keeping the array's order.
    r#"
    CREATE TABLE alert_evidence (
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        position INTEGER NOT NULL,
        fix_id INTEGER NOT NULL,
        PRIMARY KEY (alert_id, fix_id)
    );
    CREATE UNIQUE INDEX alert_evidence_order ON alert_evidence(alert_id, position);
    INSERT OR IGNORE INTO alert_evidence (alert_id, position, fix_id)
        SELECT a.id, CAST(j.key AS INTEGER), CAST(j.value AS INTEGER)
        FROM alerts a, json_each(a.evidence) j;
    ALTER TABLE alerts DROP COLUMN evidence;
    "#,
    // 15: the largest fencing token claimed per partition (`outbox.rs`, `Fence`). A lone
    // server never claims one; the table is here so both backends answer alike.
    r#"
    CREATE TABLE partition_fences (
        part INTEGER PRIMARY KEY,
        token INTEGER NOT NULL
    );
    "#,
    // 16: one index over the fixes' device and time instead of two (issue 14). Every fix
    // written touched the leaf of its device in both `fixes_device_time_all` and
    // `fixes_device_time_position`: a page each per commit, most of the store writer's pages
    // at saturation. The one index keeps both jobs: range reads by device and time use its
    // leading columns, and it is unique on (device, time, position) among the fixes without a
    // sequence number, as `fixes_device_time_position` was (`IFNULL(seq, '')` is the same text
    // for all of them and never equals a number, so a fix with a sequence number never
    // collides with one without; those stay unique by `fixes_device_seq`).
    r#"
    CREATE UNIQUE INDEX fixes_device_time_key
        ON fixes(device_id, device_time, lat, lon, IFNULL(seq, ''));
    DROP INDEX fixes_device_time_all;
    DROP INDEX fixes_device_time_position;
    "#,
];

/// The migration that moves `alerts.evidence` (a JSON array) into `alert_evidence`; before
/// it runs, every stored array must parse.
pub const EVIDENCE_TABLE_MIGRATION: usize = 14;
