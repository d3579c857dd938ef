//! Raw frames on PostgreSQL: stored before the door's ack, read under the track's rule.

use super::sqlstate;
use crate::unknown_frames::UnknownFrame;
use crate::{Result, StoreError};
use domain::{DeviceId, UnixMicros};
use postgres::Client;
use postgres::error::SqlState;

pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE unknown_frames (
        id BIGSERIAL PRIMARY KEY,
        device_id BIGINT NOT NULL REFERENCES devices(id),
        protocol TEXT NOT NULL,
        received_time BIGINT NOT NULL,
        bytes BYTEA NOT NULL,
        note TEXT NOT NULL
    );
    CREATE INDEX unknown_frames_device ON unknown_frames(device_id, received_time);
"#;

pub(crate) fn insert(c: &mut Client, frame: &UnknownFrame) -> Result<i64> {
    match c.query_one(
        "INSERT INTO unknown_frames (device_id, protocol, received_time, bytes, note)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        &[
            &frame.device_id.0,
            &frame.protocol.as_str(),
            &frame.received_time.0,
            &frame.bytes,
            &frame.note,
        ],
    ) {
        Err(e) if sqlstate(&e) == Some(&SqlState::FOREIGN_KEY_VIOLATION) => Err(
            StoreError::InvalidReference(format!("device {} is not registered", frame.device_id)),
        ),
        other => Ok(other?.try_get("id")?),
    }
}

pub(crate) fn list(
    c: &mut Client,
    device: DeviceId,
    from: UnixMicros,
    to: UnixMicros,
    limit: usize,
) -> Result<Vec<UnknownFrame>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(
        "SELECT id, device_id, protocol, received_time, bytes, note FROM unknown_frames
         WHERE device_id = $1 AND received_time >= $2 AND received_time < $3
         ORDER BY received_time, id LIMIT $4",
        &[&device.0, &from.0, &to.0, &limit],
    )?
    .iter()
    .map(|r| {
        let id: i64 = r.try_get("id")?;
        Ok(UnknownFrame {
            id: Some(id),
            device_id: DeviceId(r.try_get("device_id")?),
            protocol: r
                .try_get::<_, &str>("protocol")?
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("unknown frame {id}: {e}")))?,
            received_time: UnixMicros(r.try_get("received_time")?),
            bytes: r.try_get("bytes")?,
            note: r.try_get("note")?,
        })
    })
    .collect()
}
