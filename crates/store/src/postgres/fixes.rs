//! Fixes and device events on PostgreSQL: the same duplicate keys and the same same-second
//! rule as SQLite's owner (`sqlite::same_time_verdict` decides for both).
//!
//! Several nodes may store fixes of one device at once. A seq-less fix takes a transaction
//! advisory lock on its device before it looks for fixes of the same device second, so two
//! nodes cannot both miss each other's burst; the unique indexes (`ON CONFLICT DO NOTHING`)
//! make a resend stored twice impossible whatever the order.

use super::sqlstate;
use crate::sqlite::fixes::event_from_row;
use crate::sqlite::fixes::fix_from_row;
use crate::sqlite::{SameTime, same_time_verdict};
use crate::{FixOutcome, Result, StoreError};
use domain::*;
use postgres::Client;
use postgres::error::SqlState;

/// First key of the per-device advisory lock (the second is the device id).
const DEVICE_LOCK: i32 = 1;

fn unregistered(e: &postgres::Error, device: DeviceId) -> Option<StoreError> {
    (sqlstate(e) == Some(&SqlState::FOREIGN_KEY_VIOLATION))
        .then(|| StoreError::InvalidReference(format!("device {device} is not registered")))
}

/// Stores fixes inside the writer's transaction; sets `id` (and the suspect flag where the
/// same-second rule says so) on those stored.
pub(crate) fn insert_fixes_tx(c: &mut Client, fixes: &mut [Fix]) -> Result<Vec<FixOutcome>> {
    if fixes.len() > 1 && fixes.iter().all(|f| f.seq.is_some()) {
        return insert_numbered_fixes(c, fixes);
    }
    let insert = super::prepared(
        c,
        "INSERT INTO fixes (device_id, device_time, received_time, lat, lon, accuracy_m, speed_mps,
         course_deg, altitude_m, source, flags, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING RETURNING id",
    )?;
    let same_time = super::prepared(
        c,
        "SELECT id, lat, lon, accuracy_m FROM fixes
         WHERE device_id = $1 AND device_time = $2 AND seq IS NULL ORDER BY id",
    )?;
    let mut out = Vec::with_capacity(fixes.len());
    for f in fixes.iter_mut() {
        if f.seq.is_none() {
            // Serialise seq-less fixes of this device across nodes until the group commits.
            let key = (f.device_id.0 % i64::from(i32::MAX)) as i32;
            let lock = super::prepared(c, "SELECT pg_advisory_xact_lock($1, $2)")?;
            c.execute(&lock, &[&DEVICE_LOCK, &key])?;
            let stored = c
                .query(&same_time, &[&f.device_id.0, &f.device_time.0])?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get("id")?,
                        r.try_get("lat")?,
                        r.try_get("lon")?,
                        r.try_get("accuracy_m")?,
                    ))
                })
                .collect::<Result<Vec<(i64, f64, f64, Option<f64>)>>>()?;
            match same_time_verdict(f, &stored) {
                SameTime::Resend(id) => {
                    out.push(FixOutcome::Duplicate(id));
                    continue;
                }
                SameTime::Implausible => f.flags = f.flags.with(FixFlags::INTEGRITY_SUSPECT),
                SameTime::Plausible => {}
            }
        }
        let rows = c.query(
            &insert,
            &[
                &f.device_id.0,
                &f.device_time.0,
                &f.received_time.0,
                &f.position.lat(),
                &f.position.lon(),
                &f.accuracy_m,
                &f.speed_mps,
                &f.course_deg,
                &f.altitude_m,
                &f.source.as_str(),
                &i64::from(f.flags.0),
                &f.seq,
            ],
        );
        let rows = match rows {
            Err(e) => return Err(unregistered(&e, f.device_id).unwrap_or(e.into())),
            Ok(rows) => rows,
        };
        if let Some(r) = rows.first() {
            let id = FixId(r.try_get("id")?);
            f.id = Some(id);
            out.push(FixOutcome::Stored(id));
        } else {
            // Refused by a unique index: a resend of a stored fix.
            let existing = match f.seq {
                Some(seq) => c.query_one(
                    "SELECT id FROM fixes WHERE device_id = $1 AND seq = $2",
                    &[&f.device_id.0, &seq],
                )?,
                None => c.query_one(
                    "SELECT id FROM fixes WHERE device_id = $1 AND device_time = $2 AND seq IS NULL
                     AND lat = $3 AND lon = $4",
                    &[
                        &f.device_id.0,
                        &f.device_time.0,
                        &f.position.lat(),
                        &f.position.lon(),
                    ],
                )?,
            };
            out.push(FixOutcome::Duplicate(FixId(existing.try_get("id")?)));
        }
    }
    Ok(out)
}

/// A call's fixes that all carry a sequence number, in one statement (their dedup key is the
/// unique `(device_id, seq)` index alone; the same-second rule is for seq-less fixes only).
/// Ids are drawn in the call's order; a fix whose key is stored (before, or earlier in the
/// same call) is a duplicate of that fix, as on the one-by-one path. A fix of an unknown
/// device is not inserted by the join and fails the whole call (all or nothing: the job's
/// savepoint is rolled back).
fn insert_numbered_fixes(c: &mut Client, fixes: &mut [Fix]) -> Result<Vec<FixOutcome>> {
    let insert = super::prepared(
        c,
        "INSERT INTO fixes (device_id, device_time, received_time, lat, lon, accuracy_m, speed_mps,
         course_deg, altitude_m, source, flags, seq)
         SELECT u.device_id, u.device_time, u.received_time, u.lat, u.lon, u.accuracy_m, u.speed_mps,
                u.course_deg, u.altitude_m, u.source, u.flags, u.seq
         FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::DOUBLE PRECISION[],
                     $5::DOUBLE PRECISION[], $6::DOUBLE PRECISION[], $7::DOUBLE PRECISION[],
                     $8::DOUBLE PRECISION[], $9::DOUBLE PRECISION[], $10::TEXT[], $11::BIGINT[],
                     $12::BIGINT[])
              WITH ORDINALITY AS u(device_id, device_time, received_time, lat, lon, accuracy_m,
                                   speed_mps, course_deg, altitude_m, source, flags, seq, n)
         JOIN devices d ON d.id = u.device_id
         ORDER BY u.n
         ON CONFLICT DO NOTHING RETURNING id, device_id, seq",
    )?;
    let col = |f: fn(&Fix) -> i64| fixes.iter().map(f).collect::<Vec<i64>>();
    let opt = |f: fn(&Fix) -> Option<f64>| fixes.iter().map(f).collect::<Vec<Option<f64>>>();
    let devices = col(|f| f.device_id.0);
    let device_times = col(|f| f.device_time.0);
    let received = col(|f| f.received_time.0);
    let lats: Vec<f64> = fixes.iter().map(|f| f.position.lat()).collect();
    let lons: Vec<f64> = fixes.iter().map(|f| f.position.lon()).collect();
    let accuracy = opt(|f| f.accuracy_m);
    let speed = opt(|f| f.speed_mps);
    let course = opt(|f| f.course_deg);
    let altitude = opt(|f| f.altitude_m);
    let sources: Vec<&str> = fixes.iter().map(|f| f.source.as_str()).collect();
    let flags = col(|f| i64::from(f.flags.0));
    let seqs: Vec<Option<i64>> = fixes.iter().map(|f| f.seq).collect();
    let rows = c.query(
        &insert,
        &[
            &devices,
            &device_times,
            &received,
            &lats,
            &lons,
            &accuracy,
            &speed,
            &course,
            &altitude,
            &sources,
            &flags,
            &seqs,
        ],
    )?;
    let mut stored = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        let key: (i64, Option<i64>) = (r.try_get("device_id")?, r.try_get("seq")?);
        stored.insert(key, r.try_get::<_, i64>("id")?);
    }
    let existing = super::prepared(c, "SELECT id FROM fixes WHERE device_id = $1 AND seq = $2")?;
    let mut seen = std::collections::HashSet::with_capacity(fixes.len());
    let mut out = Vec::with_capacity(fixes.len());
    for f in fixes.iter_mut() {
        let key = (f.device_id.0, f.seq);
        match stored.get(&key) {
            Some(&id) if seen.insert(key) => {
                f.id = Some(FixId(id));
                out.push(FixOutcome::Stored(FixId(id)));
            }
            Some(&id) => out.push(FixOutcome::Duplicate(FixId(id))),
            None => match c.query_opt(&existing, &[&f.device_id.0, &f.seq])? {
                Some(r) => out.push(FixOutcome::Duplicate(FixId(r.try_get("id")?))),
                None => {
                    return Err(StoreError::InvalidReference(format!(
                        "device {} is not registered",
                        f.device_id
                    )));
                }
            },
        }
    }
    Ok(out)
}

/// Stores device events inside the writer's transaction: `(new, id)` for each.
pub(crate) fn insert_events_tx(c: &mut Client, events: &[DeviceEvent]) -> Result<Vec<(bool, i64)>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let insert = super::prepared(
        c,
        "INSERT INTO device_events (device_id, kind, device_time, received_time, lat, lon, code)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
    )?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let code = e.code.as_deref().unwrap_or("");
        let rows = match c.query(
            &insert,
            &[
                &e.device_id.0,
                &e.kind.as_str(),
                &e.device_time.0,
                &e.received_time.0,
                &e.position.map(|p| p.lat()),
                &e.position.map(|p| p.lon()),
                &code,
            ],
        ) {
            Err(err) => return Err(unregistered(&err, e.device_id).unwrap_or(err.into())),
            Ok(rows) => rows,
        };
        match rows.first() {
            Some(r) => out.push((true, r.try_get("id")?)),
            None => {
                let r = c.query_one(
                    "SELECT id FROM device_events WHERE device_id = $1 AND kind = $2 AND device_time = $3 AND code = $4",
                    &[&e.device_id.0, &e.kind.as_str(), &e.device_time.0, &code],
                )?;
                out.push((false, r.try_get("id")?));
            }
        }
    }
    Ok(out)
}

pub(crate) fn events_received_since(c: &mut Client, since: UnixMicros) -> Result<Vec<DeviceEvent>> {
    c.query(
        "SELECT id, device_id, kind, device_time, received_time, lat, lon, code FROM device_events
         WHERE received_time >= $1 ORDER BY id",
        &[&since.0],
    )?
    .iter()
    .map(event_from_row)
    .collect()
}

fn fixes(
    c: &mut Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<Fix>> {
    c.query(sql, params)?.iter().map(fix_from_row).collect()
}

pub(crate) fn latest_fixes(c: &mut Client) -> Result<Vec<Fix>> {
    // The latest by device time; of two at that time, the later stored.
    fixes(
        c,
        "SELECT DISTINCT ON (device_id) * FROM fixes ORDER BY device_id, device_time DESC, id DESC",
        &[],
    )
}

pub(crate) fn latest_fix_of_person(c: &mut Client, person: PersonId) -> Result<Option<Fix>> {
    Ok(fixes(
        c,
        "SELECT f.* FROM devices d
         JOIN fixes f ON f.id = (SELECT x.id FROM fixes x WHERE x.device_id = d.id
                                 ORDER BY x.device_time DESC, x.id DESC LIMIT 1)
         WHERE d.owner_id = $1
         ORDER BY f.device_time DESC, f.id DESC LIMIT 1",
        &[&person.0],
    )?
    .pop())
}

pub(crate) fn last_fix_before(
    c: &mut Client,
    device: DeviceId,
    time: UnixMicros,
    sound_only: bool,
) -> Result<Option<Fix>> {
    let mask: i64 = if sound_only {
        i64::from(FixFlags::INTEGRITY_SUSPECT)
    } else {
        0
    };
    Ok(fixes(
        c,
        "SELECT * FROM fixes WHERE device_id = $1 AND device_time <= $2 AND (flags & $3) = 0
         ORDER BY device_time DESC, id DESC LIMIT 1",
        &[&device.0, &time.0, &mask],
    )?
    .pop())
}

pub(crate) fn fixes_received_since(c: &mut Client, since: UnixMicros) -> Result<Vec<Fix>> {
    fixes(
        c,
        "SELECT * FROM fixes WHERE received_time >= $1 ORDER BY id",
        &[&since.0],
    )
}

pub(crate) fn track(
    c: &mut Client,
    device: DeviceId,
    from: UnixMicros,
    to: UnixMicros,
    limit: usize,
) -> Result<Vec<Fix>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    fixes(
        c,
        "SELECT * FROM fixes WHERE device_id = $1 AND device_time >= $2 AND device_time < $3
         ORDER BY device_time, id LIMIT $4",
        &[&device.0, &from.0, &to.0, &limit],
    )
}

pub(crate) fn count_fixes(c: &mut Client) -> Result<i64> {
    Ok(c.query_one("SELECT COUNT(*) AS n FROM fixes", &[])?
        .try_get("n")?)
}
