//! Device health on PostgreSQL: the latest report of each device (merged field by field, as
//! on SQLite: a report without a field keeps the last known value), every report as sent in
//! `device_health_history`, and the device model.

use crate::Result;
use crate::status::{DeviceHealth, health_from_row};
use domain::{DeviceId, UnixMicros};
use postgres::Client;

pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE device_status (
        device_id BIGINT PRIMARY KEY REFERENCES devices(id),
        reported_at BIGINT NOT NULL,
        battery_percent DOUBLE PRECISION,
        battery_volts DOUBLE PRECISION,
        power_volts DOUBLE PRECISION,
        charging BOOLEAN,
        signal DOUBLE PRECISION,
        satellites BIGINT,
        heart_rate_bpm DOUBLE PRECISION,
        body_temp_c DOUBLE PRECISION
    );
    CREATE TABLE device_health_history (
        id BIGSERIAL PRIMARY KEY,
        device_id BIGINT NOT NULL REFERENCES devices(id),
        reported_at BIGINT NOT NULL,
        battery_percent DOUBLE PRECISION,
        battery_volts DOUBLE PRECISION,
        power_volts DOUBLE PRECISION,
        charging BOOLEAN,
        signal DOUBLE PRECISION,
        satellites BIGINT,
        heart_rate_bpm DOUBLE PRECISION,
        body_temp_c DOUBLE PRECISION
    );
    CREATE INDEX device_health_history_device ON device_health_history(device_id, reported_at);
"#;

const COLUMNS: &str = "reported_at, battery_percent, battery_volts, power_volts, charging, signal,
     satellites, heart_rate_bpm, body_temp_c";

pub(crate) fn record_device_health(
    c: &mut Client,
    device: DeviceId,
    h: &DeviceHealth,
) -> Result<()> {
    let params: [&(dyn postgres::types::ToSql + Sync); 10] = [
        &device.0,
        &h.reported_at.0,
        &h.battery_percent,
        &h.battery_volts,
        &h.power_volts,
        &h.charging,
        &h.signal,
        &h.satellites,
        &h.heart_rate_bpm,
        &h.body_temp_c,
    ];
    c.execute(
        &format!(
            "INSERT INTO device_health_history (device_id, {COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &params,
    )?;
    c.execute(
        &format!(
            "INSERT INTO device_status AS s (device_id, {COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (device_id) DO UPDATE SET
               reported_at = GREATEST(s.reported_at, EXCLUDED.reported_at),
               battery_percent = COALESCE(EXCLUDED.battery_percent, s.battery_percent),
               battery_volts = COALESCE(EXCLUDED.battery_volts, s.battery_volts),
               power_volts = COALESCE(EXCLUDED.power_volts, s.power_volts),
               charging = COALESCE(EXCLUDED.charging, s.charging),
               signal = COALESCE(EXCLUDED.signal, s.signal),
               satellites = COALESCE(EXCLUDED.satellites, s.satellites),
               heart_rate_bpm = COALESCE(EXCLUDED.heart_rate_bpm, s.heart_rate_bpm),
               body_temp_c = COALESCE(EXCLUDED.body_temp_c, s.body_temp_c)"
        ),
        &params,
    )?;
    Ok(())
}

pub(crate) fn device_health_history(
    c: &mut Client,
    device: DeviceId,
    from: UnixMicros,
    to: UnixMicros,
    limit: usize,
) -> Result<Vec<DeviceHealth>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(
        &format!(
            "SELECT {COLUMNS} FROM device_health_history
             WHERE device_id = $1 AND reported_at >= $2 AND reported_at < $3
             ORDER BY reported_at, id LIMIT $4"
        ),
        &[&device.0, &from.0, &to.0, &limit],
    )?
    .iter()
    .map(health_from_row)
    .collect()
}

pub(crate) fn device_health(c: &mut Client) -> Result<Vec<(DeviceId, DeviceHealth)>> {
    c.query(
        &format!("SELECT device_id, {COLUMNS} FROM device_status ORDER BY device_id"),
        &[],
    )?
    .iter()
    .map(|r| Ok((DeviceId(r.try_get("device_id")?), health_from_row(r)?)))
    .collect()
}

pub(crate) fn set_device_model(
    c: &mut Client,
    device: DeviceId,
    model: Option<String>,
) -> Result<()> {
    c.execute(
        "UPDATE devices SET model = $2 WHERE id = $1",
        &[&device.0, &model],
    )?;
    Ok(())
}

pub(crate) fn device_models(c: &mut Client) -> Result<Vec<(DeviceId, String)>> {
    c.query(
        "SELECT id, model FROM devices WHERE model IS NOT NULL ORDER BY id",
        &[],
    )?
    .iter()
    .map(|r| Ok((DeviceId(r.try_get("id")?), r.try_get("model")?)))
    .collect()
}

pub(crate) fn device_model(c: &mut Client, device: DeviceId) -> Result<Option<String>> {
    Ok(
        c.query_opt("SELECT model FROM devices WHERE id = $1", &[&device.0])?
            .map(|r| r.try_get::<_, Option<String>>("model"))
            .transpose()?
            .flatten(),
    )
}
