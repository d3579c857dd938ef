//! Frames a device door acknowledged but could not decode, kept raw.
//!
//! The ingest invariant (ARCHITECTURE.md, "a frame Bulwark cannot turn into stored data is
//! stored raw before its ack") needs somewhere to put such a frame: its bytes, the device, the
//! protocol, the receipt time and the decoder's note. They are evidence (an SOS in a layout
//! Bulwark does not know yet is still an SOS), and they may hold a position, so they are read
//! under the location-history rule and purged with the device's fixes.

use crate::{Result, Store, StoreError};
use domain::{DeviceId, Protocol, UnixMicros};
use rusqlite::params;

/// Largest frame kept, in bytes (the GT06 and Teltonika framers stop at 32 KiB and 1,280 B).
pub const MAX_UNKNOWN_FRAME: usize = 64 * 1024;

/// One stored raw frame.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownFrame {
    pub id: Option<i64>,
    pub device_id: DeviceId,
    pub protocol: Protocol,
    pub received_time: UnixMicros,
    pub bytes: Vec<u8>,
    /// What the decoder said it could not decode.
    pub note: String,
}

impl Store {
    /// Stores a raw frame durably; answers only after the commit, so the caller may ack.
    pub async fn insert_unknown_frame(&self, mut frame: UnknownFrame) -> Result<i64> {
        frame.bytes.truncate(MAX_UNKNOWN_FRAME);
        frame.note = frame.note.chars().take(500).collect();
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::unknown_frames::insert(c, &frame),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                let n = conn.execute(
                    "INSERT INTO unknown_frames (device_id, protocol, received_time, bytes, note)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        frame.device_id.0,
                        frame.protocol.as_str(),
                        frame.received_time.0,
                        frame.bytes,
                        frame.note
                    ],
                );
                match n {
                    Err(rusqlite::Error::SqliteFailure(err, _))
                        if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                    {
                        Err(StoreError::InvalidReference(format!(
                            "device {} is not registered",
                            frame.device_id
                        )))
                    }
                    other => {
                        other?;
                        Ok(conn.last_insert_rowid())
                    }
                }
            },
            None,
        )
        .await
    }

    /// A device's raw frames received in `[from, to)`, oldest first.
    pub async fn unknown_frames(
        &self,
        auth: &crate::Authorized,
        device: DeviceId,
        from: UnixMicros,
        to: UnixMicros,
        limit: usize,
    ) -> Result<Vec<UnknownFrame>> {
        self.read_device(
            auth,
            device,
            move |c| crate::postgres::unknown_frames::list(c, device, from, to, limit),
            move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT id, device_id, protocol, received_time, bytes, note FROM unknown_frames
                 WHERE device_id = ?1 AND received_time >= ?2 AND received_time < ?3
                 ORDER BY received_time, id LIMIT ?4",
                )?;
                let rows = stmt
                    .query_map(params![device.0, from.0, to.0, limit as i64], |r| {
                        Ok((
                            r.get::<_, i64>("id")?,
                            r.get::<_, i64>("device_id")?,
                            r.get::<_, String>("protocol")?,
                            r.get::<_, i64>("received_time")?,
                            r.get::<_, Vec<u8>>("bytes")?,
                            r.get::<_, String>("note")?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter()
                    .map(|(id, device, protocol, at, bytes, note)| {
                        Ok(UnknownFrame {
                            id: Some(id),
                            device_id: DeviceId(device),
                            protocol: protocol.parse().map_err(|e| {
                                StoreError::Corrupt(format!("unknown frame {id}: {e}"))
                            })?,
                            received_time: UnixMicros(at),
                            bytes,
                            note,
                        })
                    })
                    .collect()
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests state their expectations with unwrap.
    use super::*;
    use crate::conformance::{Place, on_both_backends};
    use domain::{DeviceKind, PersonRole};

    on_both_backends!(
        raw_frames_are_stored_truncated_and_read_by_window,
        flavor = "current_thread"
    );
    async fn raw_frames_are_stored_truncated_and_read_by_window(place: Place) {
        let store = place.open();
        let now = UnixMicros::from_secs(1);
        let p = store
            .create_person(PersonRole::Offender, "O".into(), now)
            .await
            .unwrap();
        let d = store
            .create_device(
                DeviceKind::AnkleMonitor,
                Protocol::Gt06,
                "imei".into(),
                Some(p.id),
                None,
                now,
            )
            .await
            .unwrap();
        let frame = |t: i64, len: usize| UnknownFrame {
            id: None,
            device_id: d.id,
            protocol: Protocol::Gt06,
            received_time: UnixMicros::from_secs(t),
            bytes: vec![0x78; len],
            note: "n".repeat(600),
        };
        let a = store.insert_unknown_frame(frame(10, 8)).await.unwrap();
        store
            .insert_unknown_frame(frame(20, MAX_UNKNOWN_FRAME + 10))
            .await
            .unwrap();
        let err = store
            .insert_unknown_frame(UnknownFrame {
                device_id: DeviceId(9_999),
                ..frame(30, 8)
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidReference(_)), "{err}");
        let got = store
            .unknown_frames(
                &crate::Authorized::system("test"),
                d.id,
                UnixMicros::from_secs(0),
                UnixMicros::from_secs(100),
                10,
            )
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, Some(a));
        assert_eq!(got[0].bytes, vec![0x78; 8]);
        assert_eq!(got[1].bytes.len(), MAX_UNKNOWN_FRAME, "truncated");
        assert_eq!(got[1].note.chars().count(), 500, "note cut");
        let later = store
            .unknown_frames(
                &crate::Authorized::system("test"),
                d.id,
                UnixMicros::from_secs(15),
                UnixMicros::from_secs(100),
                10,
            )
            .await
            .unwrap();
        assert_eq!(later.len(), 1);
    }
}
