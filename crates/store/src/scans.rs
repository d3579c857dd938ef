//! Network scans: the cell towers and Wi-Fi access points a device reported beside (or instead
//! of) a GNSS fix. Not positions: turning one into a position needs a geolocation service,
//! which Bulwark does not call. They are kept raw, for network-based location fallback (an SOS
//! from indoors often arrives with nothing else), under the same retention as fixes.

use crate::{Result, Store, StoreError};
use domain::{DeviceId, FixId, UnixMicros};
use rusqlite::{Connection, params};
use serde_json::{Value, json};

/// A cell tower the device heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanCell {
    pub mcc: u16,
    pub mnc: u16,
    pub lac: u32,
    pub cell_id: u64,
    /// As the protocol reports it (dBm when negative).
    pub rssi: Option<i32>,
}

/// A Wi-Fi access point the device heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanWifi {
    /// `aa:bb:cc:dd:ee:ff`, lower case.
    pub mac: String,
    pub rssi: Option<i32>,
}

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
    pub cells: Vec<ScanCell>,
    pub wifi: Vec<ScanWifi>,
}

/// A scan to store with a report. `fix` is the index, in the same call's fixes, of the fix
/// decoded from the same frame.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScan {
    pub scan: NetworkScan,
    pub fix: Option<usize>,
}

fn cells_json(cells: &[ScanCell]) -> String {
    Value::Array(
        cells
            .iter()
            .map(|c| json!([c.mcc, c.mnc, c.lac, c.cell_id, c.rssi]))
            .collect(),
    )
    .to_string()
}

fn wifi_json(wifi: &[ScanWifi]) -> String {
    Value::Array(wifi.iter().map(|w| json!([w.mac, w.rssi])).collect()).to_string()
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("network scan {what} column does not decode"))
}

fn cells_from(text: &str) -> Result<Vec<ScanCell>> {
    let v: Vec<(u16, u16, u32, u64, Option<i32>)> =
        serde_json::from_str(text).map_err(|_| corrupt("cells"))?;
    Ok(v.into_iter()
        .map(|(mcc, mnc, lac, cell_id, rssi)| ScanCell {
            mcc,
            mnc,
            lac,
            cell_id,
            rssi,
        })
        .collect())
}

fn wifi_from(text: &str) -> Result<Vec<ScanWifi>> {
    let v: Vec<(String, Option<i32>)> = serde_json::from_str(text).map_err(|_| corrupt("wifi"))?;
    Ok(v.into_iter()
        .map(|(mac, rssi)| ScanWifi { mac, rssi })
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

fn scan_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(NetworkScan, String, String)> {
    Ok((
        NetworkScan {
            id: Some(r.get(0)?),
            device_id: DeviceId(r.get(1)?),
            scan_time: UnixMicros(r.get(2)?),
            received_time: UnixMicros(r.get(3)?),
            fix_id: r.get::<_, Option<i64>>(4)?.map(FixId),
            cells: Vec::new(),
            wifi: Vec::new(),
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

fn decode_rows(rows: Vec<(NetworkScan, String, String)>) -> Result<Vec<NetworkScan>> {
    rows.into_iter()
        .map(|(mut s, cells, wifi)| {
            s.cells = cells_from(&cells)?;
            s.wifi = wifi_from(&wifi)?;
            Ok(s)
        })
        .collect()
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
        auth.require_device(self, device).await?;
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, device_id, scan_time, received_time, fix_id, cells, wifi FROM network_scans
                 WHERE device_id = ?1 AND scan_time >= ?2 AND scan_time < ?3
                 ORDER BY scan_time, id LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(params![device.0, from.0, to.0, limit as i64], scan_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            decode_rows(rows)
        })
        .await
    }

    /// The scans that came with the given fixes (one per fix at most), for a track.
    pub async fn network_scans_of_fixes(&self, fixes: Vec<FixId>) -> Result<Vec<NetworkScan>> {
        if fixes.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, device_id, scan_time, received_time, fix_id, cells, wifi FROM network_scans
                 WHERE fix_id = ?1 ORDER BY id LIMIT 1",
            )?;
            let mut rows = Vec::new();
            for f in &fixes {
                let mut q = stmt.query_map(params![f.0], scan_from_row)?;
                if let Some(row) = q.next() {
                    rows.push(row?);
                }
            }
            decode_rows(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::{Actor, ActorKind, AuditAction, AuditEntry, Outcome, Subject};
    use domain::*;

    fn fix(device: DeviceId, secs: i64) -> Fix {
        Fix {
            id: None,
            device_id: device,
            device_time: UnixMicros::from_secs(secs),
            received_time: UnixMicros::from_secs(secs + 1),
            position: LatLon::new(37.5, 127.0).unwrap(),
            accuracy_m: None,
            speed_mps: None,
            course_deg: None,
            altitude_m: None,
            source: FixSource::Gnss,
            flags: FixFlags::default(),
            seq: None,
        }
    }

    fn scan(device: DeviceId, secs: i64) -> NetworkScan {
        NetworkScan {
            id: None,
            device_id: device,
            scan_time: UnixMicros::from_secs(secs),
            received_time: UnixMicros::from_secs(secs + 1),
            fix_id: None,
            cells: vec![ScanCell {
                mcc: 450,
                mnc: 5,
                lac: 8_000,
                cell_id: 123_456_789,
                rssi: Some(-71),
            }],
            wifi: vec![ScanWifi {
                mac: "aa:bb:cc:dd:ee:ff".into(),
                rssi: None,
            }],
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn scans_are_stored_with_their_fix_once_and_purged_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store
            .create_device(
                DeviceKind::AnkleMonitor,
                Protocol::Gt06,
                "1".into(),
                None,
                None,
                UnixMicros::from_secs(1),
            )
            .await
            .unwrap()
            .id;
        // A frame with a fix and its cell, resent once; and a cell-only report.
        for _ in 0..2 {
            store
                .insert_reports_with_scans(
                    vec![fix(d, 100)],
                    Vec::new(),
                    vec![NewScan {
                        scan: scan(d, 100),
                        fix: Some(0),
                    }],
                )
                .await
                .unwrap();
        }
        store
            .insert_reports_with_scans(
                Vec::new(),
                Vec::new(),
                vec![NewScan {
                    scan: scan(d, 200),
                    fix: None,
                }],
            )
            .await
            .unwrap();
        let all = store
            .network_scans(
                &crate::Authorized::system("test"),
                d,
                UnixMicros(0),
                UnixMicros::from_secs(1_000),
                10,
            )
            .await
            .unwrap();
        assert_eq!(all.len(), 2, "the resent frame's scan is stored once");
        let fix_id = store
            .track(
                &crate::Authorized::system("test"),
                d,
                UnixMicros(0),
                UnixMicros::from_secs(1_000),
                10,
            )
            .await
            .unwrap()[0]
            .id
            .unwrap();
        assert_eq!(all[0].fix_id, Some(fix_id));
        assert_eq!(all[0].cells, scan(d, 100).cells);
        assert_eq!(all[0].wifi, scan(d, 100).wifi);
        assert_eq!(all[1].fix_id, None);
        let with_fix = store.network_scans_of_fixes(vec![fix_id]).await.unwrap();
        assert_eq!(with_fix.len(), 1);
        assert_eq!(with_fix[0].scan_time, UnixMicros::from_secs(100));

        store
            .record_device_health(
                d,
                crate::DeviceHealth {
                    reported_at: UnixMicros::from_secs(150),
                    battery_percent: Some(40.0),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // Retention: purging [0, 160) takes the fix, its scan and the health report; the
        // later cell-only scan stays.
        let entry = AuditEntry {
            actor: Actor {
                kind: ActorKind::System,
                id: 0,
                role: "system".into(),
            },
            action: AuditAction::Purge,
            subject: Subject::default(),
            purpose: None,
            outcome: Outcome::Allowed,
            details: "test".into(),
        };
        let n = store
            .purge_fixes(
                vec![(d, vec![(UnixMicros(0), UnixMicros::from_secs(160))])],
                entry,
                UnixMicros::from_secs(300),
                None,
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
        let left = store
            .network_scans(
                &crate::Authorized::system("test"),
                d,
                UnixMicros(0),
                UnixMicros::from_secs(1_000),
                10,
            )
            .await
            .unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].scan_time, UnixMicros::from_secs(200));
        let health = store
            .device_health_history(
                &crate::Authorized::system("test"),
                d,
                UnixMicros(0),
                UnixMicros::from_secs(1_000),
                10,
            )
            .await
            .unwrap();
        assert!(health.is_empty());
    }
}
