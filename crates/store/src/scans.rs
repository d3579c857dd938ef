//! Network scans: the cell towers and Wi-Fi access points a device reported beside (or instead
//! of) a GNSS fix. Not positions: turning one into a position needs a geolocation service,
//! which Bulwark does not call. They are kept raw, for network-based location fallback (an SOS
//! from indoors often arrives with nothing else), under the same retention as fixes.

use crate::columns::Columns;
use crate::{Result, Store, StoreError};
use domain::{DeviceId, FixId, UnixMicros};
use rusqlite::{Connection, params};
use serde_json::{Value, json};

/// A scan keeps the cells and access points as the decoder read them (domain types).
use domain::{CellTower, WifiAccessPoint};

/// One stored scan.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkScan {
    pub id: Option<i64>,
    pub device_id: DeviceId,
    /// The device's time of the report, or the receipt time when the report carried none.
    pub scan_time: UnixMicros,
    pub received_time: UnixMicros,
    /// The fix decoded from the same frame, when there was one and it was stored.
    pub fix_id: Option<FixId>,
    pub cells: Vec<CellTower>,
    pub wifi: Vec<WifiAccessPoint>,
}

/// A scan to store with a report. `fix` is the index, in the same call's fixes, of the fix
/// decoded from the same frame.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScan {
    pub scan: NetworkScan,
    pub fix: Option<usize>,
}

pub(crate) fn cells_json(cells: &[CellTower]) -> String {
    Value::Array(
        cells
            .iter()
            .map(|c| json!([c.mcc, c.mnc, c.lac, c.cell_id, c.rssi]))
            .collect(),
    )
    .to_string()
}

pub(crate) fn wifi_json(wifi: &[WifiAccessPoint]) -> String {
    Value::Array(wifi.iter().map(|w| json!([w.mac, w.rssi])).collect()).to_string()
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("network scan {what} column does not decode"))
}

pub(crate) fn cells_from(text: &str) -> Result<Vec<CellTower>> {
    let v: Vec<(u16, u16, u32, u64, Option<i32>)> =
        serde_json::from_str(text).map_err(|_| corrupt("cells"))?;
    Ok(v.into_iter()
        .map(|(mcc, mnc, lac, cell_id, rssi)| CellTower {
            mcc,
            mnc,
            lac,
            cell_id,
            rssi,
        })
        .collect())
}

pub(crate) fn wifi_from(text: &str) -> Result<Vec<WifiAccessPoint>> {
    let v: Vec<(String, Option<i32>)> = serde_json::from_str(text).map_err(|_| corrupt("wifi"))?;
    Ok(v.into_iter()
        .map(|(mac, rssi)| WifiAccessPoint { mac, rssi })
        .collect())
}

/// Inserts scans inside a report's transaction; `fix_ids` are the ids of that report's fixes
/// (stored or duplicate) in order. A resent frame's scan (same device, time and fix) is
/// stored once.
pub(crate) fn insert_scans_tx(
    conn: &Connection,
    scans: &[NewScan],
    fix_ids: &[FixId],
) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO network_scans (device_id, scan_time, received_time, fix_id, cells, wifi)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for s in scans {
        let fix = s.fix.and_then(|i| fix_ids.get(i)).map(|f| f.0);
        insert.execute(params![
            s.scan.device_id.0,
            s.scan.scan_time.0,
            s.scan.received_time.0,
            fix,
            cells_json(&s.scan.cells),
            wifi_json(&s.scan.wifi),
        ])?;
    }
    Ok(())
}

/// The columns a scan is read from, in both backends' queries.
pub(crate) const SCAN_COLUMNS: &str =
    "id, device_id, scan_time, received_time, fix_id, cells, wifi";

pub(crate) fn scan_from_row<R: Columns>(r: &R) -> Result<NetworkScan> {
    Ok(NetworkScan {
        id: Some(r.col("id")?),
        device_id: DeviceId(r.col("device_id")?),
        scan_time: UnixMicros(r.col("scan_time")?),
        received_time: UnixMicros(r.col("received_time")?),
        fix_id: r.col::<Option<i64>>("fix_id")?.map(FixId),
        cells: cells_from(&r.col::<String>("cells")?)?,
        wifi: wifi_from(&r.col::<String>("wifi")?)?,
    })
}

impl Store {
    /// A device's scans whose scan time is in `[from, to)`, oldest first, at most `limit`.
    pub async fn network_scans(
        &self,
        auth: &crate::Authorized,
        device: DeviceId,
        from: UnixMicros,
        to: UnixMicros,
        limit: usize,
    ) -> Result<Vec<NetworkScan>> {
        self.read_device(
            auth,
            device,
            move |c| crate::postgres::scans::network_scans(c, device, from, to, limit),
            move |conn| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {SCAN_COLUMNS} FROM network_scans
                 WHERE device_id = ?1 AND scan_time >= ?2 AND scan_time < ?3
                 ORDER BY scan_time, id LIMIT ?4"
                ))?;
                stmt.query_map(params![device.0, from.0, to.0, limit as i64], |r| {
                    Ok(scan_from_row(r))
                })?
                .map(|r| r?)
                .collect()
            },
        )
        .await
    }

    /// The scans that came with the given fixes (one per fix at most), for a track; `auth`
    /// must cover every scan's device.
    pub async fn network_scans_of_fixes(
        &self,
        auth: &crate::Authorized,
        fixes: Vec<FixId>,
    ) -> Result<Vec<NetworkScan>> {
        let scans = self.scans_of_fixes(fixes).await?;
        let cover = auth.coverage(self).await?;
        if let Some(s) = scans.iter().find(|s| !cover.device(s.device_id)) {
            return Err(crate::StoreError::NotAuthorized(format!(
                "no logged decision covers device {}",
                s.device_id.0
            )));
        }
        Ok(scans)
    }

    async fn scans_of_fixes(&self, fixes: Vec<FixId>) -> Result<Vec<NetworkScan>> {
        if fixes.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::scans::network_scans_of_fixes(c, &fixes))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SCAN_COLUMNS} FROM network_scans WHERE fix_id = ?1 ORDER BY id LIMIT 1"
            ))?;
            let mut out = Vec::new();
            for f in &fixes {
                let mut q = stmt.query_map(params![f.0], |r| Ok(scan_from_row(r)))?;
                if let Some(row) = q.next() {
                    out.push(row??);
                }
            }
            Ok(out)
        })
        .await
    }
}
