//! Device health reports: the latest of each device (what staff need to see that protection
//! depends on a battery or a strap: a device at 5 % is about to go silent), and the history of
//! every report (a battery that drains in hours, a strap that keeps losing body contact, a
//! device switched off every night), kept and purged like the device's fixes.

use crate::columns::Columns;
use crate::{Result, Store};
use domain::{DeviceId, UnixMicros};
use rusqlite::params;

/// A device's latest reported health. Every field is optional: each protocol reports a
/// different subset. A report merges into the stored one (a heartbeat with only the battery
/// does not erase the last known signal).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DeviceHealth {
    pub reported_at: UnixMicros,
    pub battery_percent: Option<f64>,
    pub battery_volts: Option<f64>,
    pub power_volts: Option<f64>,
    pub charging: Option<bool>,
    /// In the protocol's own scale (GSM 0–31, bars, or dBm).
    pub signal: Option<f64>,
    pub satellites: Option<i64>,
    pub heart_rate_bpm: Option<f64>,
    pub body_temp_c: Option<f64>,
}

/// A health report, from a row of `device_status` or `device_health_history`.
pub(crate) fn health_from_row<R: Columns>(r: &R) -> Result<DeviceHealth> {
    Ok(DeviceHealth {
        reported_at: UnixMicros(r.col("reported_at")?),
        battery_percent: r.col("battery_percent")?,
        battery_volts: r.col("battery_volts")?,
        power_volts: r.col("power_volts")?,
        charging: r.col("charging")?,
        signal: r.col("signal")?,
        satellites: r.col("satellites")?,
        heart_rate_bpm: r.col("heart_rate_bpm")?,
        body_temp_c: r.col("body_temp_c")?,
    })
}

/// Merges a health report into the device's latest one and appends it to its history,
/// inside the caller's transaction (statements prepared once per connection: a tracker that
/// reports its status with every fix writes them per frame).
pub(crate) fn record_health_tx(
    conn: &rusqlite::Connection,
    device: DeviceId,
    h: &DeviceHealth,
) -> Result<()> {
    let values = params![
        device.0,
        h.reported_at.0,
        h.battery_percent,
        h.battery_volts,
        h.power_volts,
        h.charging,
        h.signal,
        h.satellites,
        h.heart_rate_bpm,
        h.body_temp_c
    ];
    conn.prepare_cached(
        "INSERT INTO device_health_history (device_id, reported_at, battery_percent,
             battery_volts, power_volts, charging, signal, satellites, heart_rate_bpm, body_temp_c)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(values)?;
    conn.prepare_cached(
            "INSERT INTO device_status (device_id, reported_at, battery_percent, battery_volts, power_volts,
             charging, signal, satellites, heart_rate_bpm, body_temp_c)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (device_id) DO UPDATE SET
               reported_at = MAX(reported_at, excluded.reported_at),
               battery_percent = COALESCE(excluded.battery_percent, battery_percent),
               battery_volts = COALESCE(excluded.battery_volts, battery_volts),
               power_volts = COALESCE(excluded.power_volts, power_volts),
               charging = COALESCE(excluded.charging, charging),
               signal = COALESCE(excluded.signal, signal),
               satellites = COALESCE(excluded.satellites, satellites),
               heart_rate_bpm = COALESCE(excluded.heart_rate_bpm, heart_rate_bpm),
               body_temp_c = COALESCE(excluded.body_temp_c, body_temp_c)",
        )?
        .execute(values)?;
    Ok(())
}

impl Store {
    /// Merges a health report into the device's latest one and appends it, as reported, to the
    /// device's health history, in one transaction.
    pub async fn record_device_health(&self, device: DeviceId, h: DeviceHealth) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::status::record_device_health(c, device, &h),
                    None,
                )
                .await;
        }
        self.write(move |conn| record_health_tx(conn, device, &h), None)
            .await
    }

    /// A device's health reports received in `[from, to)`, oldest first, at most `limit`; each
    /// as the device sent it (fields it did not report are `None`).
    pub async fn device_health_history(
        &self,
        auth: &crate::Authorized,
        device: DeviceId,
        from: UnixMicros,
        to: UnixMicros,
        limit: usize,
    ) -> Result<Vec<DeviceHealth>> {
        self.read_device(
            auth,
            device,
            move |c| crate::postgres::status::device_health_history(c, device, from, to, limit),
            move |conn| {
                let mut stmt = conn.prepare(
                "SELECT reported_at, battery_percent, battery_volts, power_volts, charging, signal,
                 satellites, heart_rate_bpm, body_temp_c FROM device_health_history
                 WHERE device_id = ?1 AND reported_at >= ?2 AND reported_at < ?3
                 ORDER BY reported_at, id LIMIT ?4",
            )?;
                let rows = stmt.query_map(params![device.0, from.0, to.0, limit as i64], |r| {
                    Ok(health_from_row(r))
                })?;
                rows.map(|r| r?).collect()
            },
        )
        .await
    }

    /// Sets a device's model (e.g. `LW4G-4B`, `NT20`): the tracker listeners pass it to the
    /// decoder, since some firmware families reuse protocol numbers with their own layouts.
    pub async fn set_device_model(&self, device: DeviceId, model: Option<String>) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::status::set_device_model(c, device, model),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "UPDATE devices SET model = ?2 WHERE id = ?1",
                    params![device.0, model],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    /// The model of every device that has one.
    pub async fn device_models(&self) -> Result<Vec<(DeviceId, String)>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::status::device_models).await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, model FROM devices WHERE model IS NOT NULL")?;
            let rows = stmt.query_map([], |r| Ok((DeviceId(r.get("id")?), r.get("model")?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// One device's model, if it has one.
    pub async fn device_model(&self, device: DeviceId) -> Result<Option<String>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::status::device_model(c, device))
                .await;
        }
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT model FROM devices WHERE id = ?1",
                    params![device.0],
                    |r| r.get::<_, Option<String>>(0),
                )
                .unwrap_or(None))
        })
        .await
    }

    /// The latest health report of every device `auth` covers.
    pub async fn device_health(
        &self,
        auth: &crate::Authorized,
    ) -> Result<Vec<(DeviceId, DeviceHealth)>> {
        let cover = auth.coverage(self).await?;
        let mut out = self.health_of_each_device().await?;
        out.retain(|(d, _)| cover.device(*d));
        Ok(out)
    }

    async fn health_of_each_device(&self) -> Result<Vec<(DeviceId, DeviceHealth)>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::status::device_health).await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT device_id, reported_at, battery_percent, battery_volts, power_volts, charging, signal,
                 satellites, heart_rate_bpm, body_temp_c FROM device_status",
            )?;
            let rows = stmt.query_map([], |r| {
                let device = DeviceId(r.get("device_id")?);
                Ok(health_from_row(r).map(|h| (device, h)))
            })?;
            rows.map(|r| r?).collect()
        })
        .await
    }
}
