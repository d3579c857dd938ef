//! Fixes and device events on SQLite: the duplicate keys, the same-second rule, the reads
//! the engine, the API and the victim app make, and the committed-fix publication.

use super::*;
use crate::columns::Columns;

/// What one commit made durable, as published to subscribers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Committed {
    pub fixes: Vec<Fix>,
    pub events: Vec<DeviceEvent>,
}

/// Outcome of storing one fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixOutcome {
    /// Newly stored with this id.
    Stored(FixId),
    /// Already stored earlier (same device and sequence number; without one, same device,
    /// device time and position): the resend is acknowledged but nothing is stored or
    /// evaluated twice.
    Duplicate(FixId),
}

impl FixOutcome {
    pub fn id(self) -> FixId {
        match self {
            FixOutcome::Stored(id) | FixOutcome::Duplicate(id) => id,
        }
    }
}

pub(crate) fn insert_events_tx(
    conn: &Connection,
    events: &[DeviceEvent],
) -> Result<Vec<(bool, i64)>> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO device_events (device_id, kind, device_time, received_time, lat, lon, code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let n = match insert.execute(params![
            e.device_id.0,
            e.kind.as_str(),
            e.device_time.0,
            e.received_time.0,
            e.position.map(|p| p.lat()),
            e.position.map(|p| p.lon()),
            e.code.as_deref().unwrap_or(""),
        ]) {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
            {
                return Err(StoreError::InvalidReference(format!(
                    "device {} is not registered",
                    e.device_id
                )));
            }
            other => other?,
        };
        if n == 1 {
            out.push((true, conn.last_insert_rowid()));
        } else {
            let id: i64 = conn.query_row(
                "SELECT id FROM device_events WHERE device_id = ?1 AND kind = ?2 AND device_time = ?3 AND code = ?4",
                params![e.device_id.0, e.kind.as_str(), e.device_time.0, e.code.as_deref().unwrap_or("")],
                |r| r.get(0),
            )?;
            out.push((false, id));
        }
    }
    Ok(out)
}

pub(crate) fn event_from_row<R: Columns>(r: &R) -> Result<DeviceEvent> {
    let id: i64 = r.col("id")?;
    let lat: Option<f64> = r.col("lat")?;
    let lon: Option<f64> = r.col("lon")?;
    let position = match (lat, lon) {
        (Some(a), Some(b)) => {
            Some(LatLon::new(a, b).map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?)
        }
        _ => None,
    };
    let code: String = r.col("code")?;
    Ok(DeviceEvent {
        id: Some(id),
        device_id: DeviceId(r.col("device_id")?),
        kind: parse_col(&r.col::<String>("kind")?)?,
        device_time: UnixMicros(r.col("device_time")?),
        received_time: UnixMicros(r.col("received_time")?),
        position,
        code: Some(code).filter(|c| !c.is_empty()),
    })
}

/// What a seq-less fix is, next to the stored fixes of its device and device second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SameTime {
    /// Same position as a stored one: a resend, acknowledged with that fix's id.
    Resend(FixId),
    /// Farther from one of them than anyone moves in a second: stored, flagged.
    Implausible,
    /// A sub-second burst, or the first fix of that second: stored as it is.
    Plausible,
}

/// The same-second rule, decided once for both backends: `stored` is `(id, lat, lon,
/// accuracy_m)` of the device's seq-less fixes at `f`'s device time.
pub(crate) fn same_time_verdict(f: &Fix, stored: &[(i64, f64, f64, Option<f64>)]) -> SameTime {
    let (lat, lon) = (f.position.lat(), f.position.lon());
    if let Some((id, ..)) = stored.iter().find(|s| s.1 == lat && s.2 == lon) {
        return SameTime::Resend(FixId(*id));
    }
    let own_acc = f.accuracy_m.unwrap_or(0.0).max(0.0);
    let implausible = stored.iter().any(|&(_, a, b, acc)| {
        LatLon::new(a, b).is_ok_and(|p| {
            p.distance_m(&f.position) > SAME_TIME_JUMP_M + own_acc + acc.unwrap_or(0.0).max(0.0)
        })
    });
    if implausible {
        SameTime::Implausible
    } else {
        SameTime::Plausible
    }
}

/// Two fixes of one device with the same device time and no sequence number that lie farther
/// apart than this (plus both reported accuracies) cannot both be true: nobody moves that far
/// within the one second a whole-second device time spans (200 km/h is 56 m/s). The later one
/// is stored flagged `integrity_suspect` (a cloned identity or a forged frame).
pub const SAME_TIME_JUMP_M: f64 = 100.0;

/// The stored seq-less fixes of a device at one device time (the same-second rule).
pub(crate) const SAME_TIME_SQL: &str = "SELECT id, lat, lon, accuracy_m FROM fixes
         WHERE device_id = ?1 AND device_time = ?2 AND seq IS NULL";
/// A device's latest fix at or before a time, optionally without flagged ones.
pub(crate) const LAST_FIX_BEFORE_SQL: &str =
    "SELECT * FROM fixes WHERE device_id = ?1 AND device_time <= ?2 AND (flags & ?3) = 0
                 ORDER BY device_time DESC, id DESC LIMIT 1";
/// A device's track in a window of device time.
pub(crate) const TRACK_SQL: &str =
    "SELECT * FROM fixes WHERE device_id = ?1 AND device_time >= ?2 AND device_time < ?3
                 ORDER BY device_time, id LIMIT ?4";

/// Stores each fix, or recognises it as a resend (see `ARCHITECTURE.md`, "Nothing is stored
/// twice"): same device and `seq`; or, without `seq`, same device, device time and position.
/// A fix at the device time of a stored one but elsewhere is a new fix: kept, in receipt
/// order (its id), and flagged `integrity_suspect` if it lies implausibly far from it
/// ([`SAME_TIME_JUMP_M`]). Sets `id`, and that flag where it applies, on the fixes stored.
pub(crate) fn insert_fixes_tx(conn: &Connection, fixes: &mut [Fix]) -> Result<Vec<FixOutcome>> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO fixes (device_id, device_time, received_time, lat, lon, accuracy_m, speed_mps,
         course_deg, altitude_m, source, flags, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut same_time = conn.prepare_cached(SAME_TIME_SQL)?;
    let mut out = Vec::with_capacity(fixes.len());
    for f in fixes.iter_mut() {
        if f.seq.is_none() {
            let stored: Vec<(i64, f64, f64, Option<f64>)> = same_time
                .query_map(params![f.device_id.0, f.device_time.0], |r| {
                    Ok((
                        r.get("id")?,
                        r.get("lat")?,
                        r.get("lon")?,
                        r.get("accuracy_m")?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            match same_time_verdict(f, &stored) {
                SameTime::Resend(id) => {
                    out.push(FixOutcome::Duplicate(id));
                    continue;
                }
                SameTime::Implausible => f.flags = f.flags.with(FixFlags::INTEGRITY_SUSPECT),
                SameTime::Plausible => {}
            }
        }
        let n = insert.execute(params![
            f.device_id.0,
            f.device_time.0,
            f.received_time.0,
            f.position.lat(),
            f.position.lon(),
            f.accuracy_m,
            f.speed_mps,
            f.course_deg,
            f.altitude_m,
            f.source.as_str(),
            f.flags.0,
            f.seq
        ]);
        let n = match n {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
            {
                return Err(StoreError::InvalidReference(format!(
                    "device {} is not registered",
                    f.device_id
                )));
            }
            other => other?,
        };
        if n == 1 {
            let id = FixId(conn.last_insert_rowid());
            f.id = Some(id);
            out.push(FixOutcome::Stored(id));
        } else {
            // Refused by a unique index: the sequence number's (a seq-less resend was found
            // above, so the position index cannot refuse it within this one writer).
            let existing: i64 = match f.seq {
                Some(seq) => conn.query_row(
                    "SELECT id FROM fixes WHERE device_id = ?1 AND seq = ?2",
                    params![f.device_id.0, seq],
                    |r| r.get(0),
                )?,
                None => conn.query_row(
                    "SELECT id FROM fixes WHERE device_id = ?1 AND device_time = ?2 AND seq IS NULL
                     AND lat = ?3 AND lon = ?4",
                    params![
                        f.device_id.0,
                        f.device_time.0,
                        f.position.lat(),
                        f.position.lon()
                    ],
                    |r| r.get(0),
                )?,
            };
            out.push(FixOutcome::Duplicate(FixId(existing)));
        }
    }
    Ok(out)
}

pub(crate) fn fix_from_row<R: Columns>(r: &R) -> Result<Fix> {
    let id: i64 = r.col("id")?;
    let flags: i64 = r.col("flags")?;
    Ok(Fix {
        id: Some(FixId(id)),
        device_id: DeviceId(r.col("device_id")?),
        device_time: UnixMicros(r.col("device_time")?),
        received_time: UnixMicros(r.col("received_time")?),
        position: LatLon::new(r.col("lat")?, r.col("lon")?)
            .map_err(|e| StoreError::Corrupt(format!("fix {id}: {e}")))?,
        accuracy_m: r.col("accuracy_m")?,
        speed_mps: r.col("speed_mps")?,
        course_deg: r.col("course_deg")?,
        altitude_m: r.col("altitude_m")?,
        source: parse_col(&r.col::<String>("source")?)?,
        flags: FixFlags(
            u32::try_from(flags)
                .map_err(|_| StoreError::Corrupt(format!("fix {id}: flags {flags}")))?,
        ),
        seq: r.col("seq")?,
    })
}

impl Store {
    // ---- fixes -------------------------------------------------------------------------

    /// Stores fixes durably. Each result says whether the fix was new or a resend.
    /// All-or-nothing: either every fix of the call is committed or none is.
    pub async fn insert_fixes(&self, fixes: Vec<Fix>) -> Result<Vec<FixOutcome>> {
        Ok(self.insert_reports(fixes, Vec::new()).await?.0)
    }

    /// Stores fixes and device events durably in one transaction, all or nothing. For events,
    /// `true` means newly stored and `false` a resend already stored.
    pub async fn insert_reports(
        &self,
        fixes: Vec<Fix>,
        events: Vec<DeviceEvent>,
    ) -> Result<(Vec<FixOutcome>, Vec<bool>)> {
        self.insert_reports_with_scans(fixes, events, Vec::new())
            .await
    }

    /// [`Store::insert_reports`] with the network scans of the same frames, in the same
    /// transaction (a scan points at the fix of its frame).
    pub async fn insert_reports_with_scans(
        &self,
        fixes: Vec<Fix>,
        events: Vec<DeviceEvent>,
        scans: Vec<crate::NewScan>,
    ) -> Result<(Vec<FixOutcome>, Vec<bool>)> {
        self.insert_reports_with_health(fixes, events, scans, Vec::new())
            .await
    }

    /// [`Store::insert_reports_with_scans`] with the health reports of the same frames, in the
    /// same transaction (one durable write per frame, not two).
    pub async fn insert_reports_with_health(
        &self,
        fixes: Vec<Fix>,
        events: Vec<DeviceEvent>,
        scans: Vec<crate::NewScan>,
        health: Vec<(DeviceId, crate::DeviceHealth)>,
    ) -> Result<(Vec<FixOutcome>, Vec<bool>)> {
        let subscribers: Vec<_> = self
            .inner
            .committed
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let events_for_publish = events.clone();
        // The fixes as stored (ids, and the flags the store may add), then the events' ids.
        type Out = (Vec<FixOutcome>, Vec<Fix>, Vec<(bool, i64)>);
        let hook: Box<dyn FnOnce(&Out) + Send> = Box::new(move |(outcomes, stored, event_ids)| {
            let fixes: Vec<Fix> = stored
                .iter()
                .zip(outcomes.iter())
                .filter(|(_, o)| matches!(o, FixOutcome::Stored(_)))
                .map(|(f, _)| f.clone())
                .collect();
            let events: Vec<DeviceEvent> = events_for_publish
                .into_iter()
                .zip(event_ids.iter())
                .filter_map(|(mut e, (new, id))| {
                    e.id = Some(*id);
                    new.then_some(e)
                })
                .collect();
            if !fixes.is_empty() || !events.is_empty() {
                let c = Committed { fixes, events };
                for s in &subscribers {
                    let _ = s.send(c.clone());
                }
            }
        });
        let (fo, _, eo) = if self.is_postgres() {
            self.pg_write(
                move |c| {
                    let mut fixes = fixes;
                    let f = crate::postgres::fixes::insert_fixes_tx(c, &mut fixes)?;
                    let e = crate::postgres::fixes::insert_events_tx(c, &events)?;
                    let ids: Vec<FixId> = f.iter().map(|o| o.id()).collect();
                    crate::postgres::scans::insert_scans_tx(c, &scans, &ids)?;
                    for (device, h) in &health {
                        crate::postgres::status::record_device_health(c, *device, h)?;
                    }
                    Ok((f, fixes, e))
                },
                Some(hook),
            )
            .await?
        } else {
            self.write(
                move |conn| {
                    let mut fixes = fixes;
                    let f = insert_fixes_tx(conn, &mut fixes)?;
                    let e = insert_events_tx(conn, &events)?;
                    if !scans.is_empty() {
                        let ids: Vec<FixId> = f.iter().map(|o| o.id()).collect();
                        crate::scans::insert_scans_tx(conn, &scans, &ids)?;
                    }
                    for (device, h) in &health {
                        crate::status::record_health_tx(conn, *device, h)?;
                    }
                    Ok((f, fixes, e))
                },
                Some(hook),
            )
            .await?
        };
        Ok((fo, eo.into_iter().map(|(new, _)| new).collect()))
    }

    /// Device events received at or after `since`, in store order.
    pub async fn events_received_since(&self, since: UnixMicros) -> Result<Vec<DeviceEvent>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::fixes::events_received_since(c, since))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, device_id, kind, device_time, received_time, lat, lon, code FROM device_events
                 WHERE received_time >= ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([since.0], |r| Ok(event_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// The latest fix (by device time) of every device `auth` covers.
    pub async fn latest_fixes(&self, auth: &crate::Authorized) -> Result<Vec<Fix>> {
        let cover = auth.coverage(self).await?;
        let mut out = self.latest_fix_of_each_device().await?;
        out.retain(|f| cover.device(f.device_id));
        Ok(out)
    }

    async fn latest_fix_of_each_device(&self) -> Result<Vec<Fix>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::fixes::latest_fixes).await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT f.* FROM fixes f JOIN (SELECT device_id, MAX(device_time) t FROM fixes GROUP BY device_id) m
                 ON f.device_id = m.device_id AND f.device_time = m.t ORDER BY f.device_id, f.id",
            )?;
            let rows = stmt.query_map([], |r| Ok(fix_from_row(r)))?;
            let mut out: Vec<Fix> = Vec::new();
            for r in rows {
                let f = r??;
                // Two fixes with the same device time (different seq): keep the later stored.
                if out.last().is_some_and(|l| l.device_id == f.device_id) {
                    out.pop();
                }
                out.push(f);
            }
            Ok(out)
        })
        .await
    }

    /// The latest fix (by device time, then store order) of any device `person` owns. One
    /// indexed lookup per device: the victim app asks for this every few seconds.
    pub async fn latest_fix_of_person(
        &self,
        auth: &crate::Authorized,
        person: PersonId,
    ) -> Result<Option<Fix>> {
        auth.require_person(self, person).await?;
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::fixes::latest_fix_of_person(c, person))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT f.* FROM devices d
                 JOIN fixes f ON f.id = (SELECT x.id FROM fixes x WHERE x.device_id = d.id
                                         ORDER BY x.device_time DESC, x.id DESC LIMIT 1)
                 WHERE d.owner_id = ?1
                 ORDER BY f.device_time DESC, f.id DESC LIMIT 1",
            )?;
            let mut rows = stmt.query_map([person.0], |r| Ok(fix_from_row(r)))?;
            match rows.next() {
                Some(r) => Ok(Some(r??)),
                None => Ok(None),
            }
        })
        .await
    }

    /// The device's latest fix at or before `time` (by device time), only among those not
    /// flagged `integrity_suspect` when `sound_only`: the references an impossible-jump check
    /// compares a new fix with.
    pub async fn last_fix_before(
        &self,
        auth: &crate::Authorized,
        device: DeviceId,
        time: UnixMicros,
        sound_only: bool,
    ) -> Result<Option<Fix>> {
        self.read_device(
            auth,
            device,
            move |c| crate::postgres::fixes::last_fix_before(c, device, time, sound_only),
            move |conn| {
                let mut stmt = conn.prepare_cached(LAST_FIX_BEFORE_SQL)?;
                let mut rows = stmt.query_map(
                    params![
                        device.0,
                        time.0,
                        if sound_only {
                            i64::from(FixFlags::INTEGRITY_SUSPECT)
                        } else {
                            0
                        }
                    ],
                    |r| Ok(fix_from_row(r)),
                )?;
                match rows.next() {
                    Some(r) => Ok(Some(r??)),
                    None => Ok(None),
                }
            },
        )
        .await
    }

    /// Fixes received at or after `since`, in store order (for rebuilding engine state).
    pub async fn fixes_received_since(&self, since: UnixMicros) -> Result<Vec<Fix>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::fixes::fixes_received_since(c, since))
                .await;
        }
        self.read(move |conn| {
            let mut stmt =
                conn.prepare("SELECT * FROM fixes WHERE received_time >= ?1 ORDER BY id")?;
            let rows = stmt.query_map([since.0], |r| Ok(fix_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// A device's fixes in `[from, to)` by device time, oldest first, at most `limit`.
    pub async fn track(
        &self,
        auth: &crate::Authorized,
        device: DeviceId,
        from: UnixMicros,
        to: UnixMicros,
        limit: usize,
    ) -> Result<Vec<Fix>> {
        self.read_device(
            auth,
            device,
            move |c| crate::postgres::fixes::track(c, device, from, to, limit),
            move |conn| {
                let mut stmt = conn.prepare(TRACK_SQL)?;
                let rows = stmt.query_map(params![device.0, from.0, to.0, limit as i64], |r| {
                    Ok(fix_from_row(r))
                })?;
                rows.map(|r| r?).collect()
            },
        )
        .await
    }

    pub async fn count_fixes(&self) -> Result<i64> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::fixes::count_fixes).await;
        }
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM fixes", [], |r| r.get(0))?))
            .await
    }
}
