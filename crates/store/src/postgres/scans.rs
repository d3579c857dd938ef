//! Network scans on PostgreSQL: stored in the report's transaction beside its fixes, a resent
//! frame's scan (same device, scan time and fix) once, as on SQLite; cells and Wi-Fi kept as
//! the same JSON text.

use crate::Result;
use crate::scans::{NetworkScan, NewScan, SCAN_COLUMNS, cells_json, scan_from_row, wifi_json};
use domain::{DeviceId, FixId, UnixMicros};
use postgres::Client;

pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE network_scans (
        id BIGSERIAL PRIMARY KEY,
        device_id BIGINT NOT NULL REFERENCES devices(id),
        scan_time BIGINT NOT NULL,
        received_time BIGINT NOT NULL,
        fix_id BIGINT REFERENCES fixes(id),
        cells TEXT NOT NULL,
        wifi TEXT NOT NULL
    );
    CREATE UNIQUE INDEX network_scans_unique ON network_scans(device_id, scan_time, COALESCE(fix_id, 0));
    CREATE INDEX network_scans_fix ON network_scans(fix_id) WHERE fix_id IS NOT NULL;
    CREATE INDEX network_scans_device ON network_scans(device_id, scan_time);
"#;

/// Inserts scans inside a report's transaction; `fix_ids` are that report's fix ids in order.
pub(crate) fn insert_scans_tx(c: &mut Client, scans: &[NewScan], fix_ids: &[FixId]) -> Result<()> {
    if scans.is_empty() {
        return Ok(());
    }
    let insert = c.prepare(
        "INSERT INTO network_scans (device_id, scan_time, received_time, fix_id, cells, wifi)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )?;
    for s in scans {
        let fix = s.fix.and_then(|i| fix_ids.get(i)).map(|f| f.0);
        c.execute(
            &insert,
            &[
                &s.scan.device_id.0,
                &s.scan.scan_time.0,
                &s.scan.received_time.0,
                &fix,
                &cells_json(&s.scan.cells),
                &wifi_json(&s.scan.wifi),
            ],
        )?;
    }
    Ok(())
}

pub(crate) fn network_scans(
    c: &mut Client,
    device: DeviceId,
    from: UnixMicros,
    to: UnixMicros,
    limit: usize,
) -> Result<Vec<NetworkScan>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(
        &format!(
            "SELECT {SCAN_COLUMNS} FROM network_scans
             WHERE device_id = $1 AND scan_time >= $2 AND scan_time < $3
             ORDER BY scan_time, id LIMIT $4"
        ),
        &[&device.0, &from.0, &to.0, &limit],
    )?
    .iter()
    .map(scan_from_row)
    .collect()
}

/// The scan of each fix (the first stored, at most one per fix), in the order of `fixes`.
pub(crate) fn network_scans_of_fixes(c: &mut Client, fixes: &[FixId]) -> Result<Vec<NetworkScan>> {
    let stmt = c.prepare(&format!(
        "SELECT {SCAN_COLUMNS} FROM network_scans WHERE fix_id = $1 ORDER BY id LIMIT 1"
    ))?;
    let mut out = Vec::new();
    for f in fixes {
        if let Some(r) = c.query_opt(&stmt, &[&f.0])? {
            out.push(scan_from_row(&r)?);
        }
    }
    Ok(out)
}
