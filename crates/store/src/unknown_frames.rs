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
        device: DeviceId,
        from: UnixMicros,
        to: UnixMicros,
        limit: usize,
    ) -> Result<Vec<UnknownFrame>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, device_id, protocol, received_time, bytes, note FROM unknown_frames
                 WHERE device_id = ?1 AND received_time >= ?2 AND received_time < ?3
                 ORDER BY received_time, id LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(params![device.0, from.0, to.0, limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, device, protocol, at, bytes, note)| {
                    Ok(UnknownFrame {
                        id: Some(id),
                        device_id: DeviceId(device),
                        protocol: protocol
                            .parse()
                            .map_err(|e| StoreError::Corrupt(format!("unknown frame {id}: {e}")))?,
                        received_time: UnixMicros(at),
                        bytes,
                        note,
                    })
                })
                .collect()
        })
        .await
    }
}
