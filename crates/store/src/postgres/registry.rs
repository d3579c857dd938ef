//! The registry on PostgreSQL: people, devices (with their tokens and the unknown-device
//! list) and cases. The rules are the SQLite owner's: a device's owner and a case's people
//! must exist with the right role; a token is stored only as its SHA-256.

use super::sqlstate;
use crate::sqlite::registry::device_from_row;
use crate::sqlite::{UnknownDevice, parse_col, token_hash};
use crate::{Result, StoreError};
use domain::*;
use postgres::error::SqlState;
use postgres::{Client, GenericClient};

fn person_role(c: &mut impl GenericClient, p: PersonId) -> Result<PersonRole> {
    match c.query_opt("SELECT role FROM people WHERE id = $1", &[&p.0])? {
        Some(r) => parse_col(r.try_get::<_, &str>("role")?),
        None => Err(StoreError::InvalidReference(format!(
            "person {p} does not exist"
        ))),
    }
}

pub(crate) fn create_person(
    c: &mut Client,
    role: PersonRole,
    display_name: String,
    now: UnixMicros,
) -> Result<Person> {
    let row = c.query_one(
        "INSERT INTO people (role, display_name, created_at) VALUES ($1, $2, $3) RETURNING id",
        &[&role.as_str(), &display_name, &now.0],
    )?;
    Ok(Person {
        id: PersonId(row.try_get("id")?),
        role,
        display_name,
    })
}

pub(crate) fn list_people(c: &mut Client) -> Result<Vec<Person>> {
    c.query("SELECT id, role, display_name FROM people ORDER BY id", &[])?
        .iter()
        .map(|r| {
            Ok(Person {
                id: PersonId(r.try_get("id")?),
                role: parse_col(r.try_get::<_, &str>("role")?)?,
                display_name: r.try_get("display_name")?,
            })
        })
        .collect()
}

pub(crate) fn set_device_token(c: &mut Client, device: DeviceId, token: String) -> Result<bool> {
    match c.execute(
        "UPDATE devices SET token_sha256 = $2 WHERE id = $1",
        &[&device.0, &token_hash(&token)],
    ) {
        Err(e) if sqlstate(&e) == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(StoreError::Conflict("that token is already in use".into()))
        }
        other => Ok(other? == 1),
    }
}

pub(crate) fn create_device(
    c: &mut Client,
    kind: DeviceKind,
    protocol: Protocol,
    hardware_id: String,
    owner: Option<PersonId>,
    token: Option<String>,
    now: UnixMicros,
) -> Result<Device> {
    if let Some(o) = owner
        && c.query_opt("SELECT 1 FROM people WHERE id = $1", &[&o.0])?
            .is_none()
    {
        return Err(StoreError::InvalidReference(format!(
            "owner person {o} does not exist"
        )));
    }
    let hash = token.map(|t| token_hash(&t));
    let row = match c.query_one(
        "INSERT INTO devices (kind, protocol, hardware_id, owner_id, token_sha256, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        &[
            &kind.as_str(),
            &protocol.as_str(),
            &hardware_id,
            &owner.map(|o| o.0),
            &hash,
            &now.0,
        ],
    ) {
        Err(e) if sqlstate(&e) == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(StoreError::Conflict(format!(
                "a {protocol} device with hardware id {hardware_id:?} (or that token) is already registered"
            )));
        }
        other => other?,
    };
    // Registering clears the device from the unknown list.
    c.execute(
        "DELETE FROM unknown_devices WHERE protocol = $1 AND hardware_id = $2",
        &[&protocol.as_str(), &hardware_id],
    )?;
    Ok(Device {
        id: DeviceId(row.try_get("id")?),
        kind,
        protocol,
        hardware_id,
        owner,
    })
}

pub(crate) fn list_devices(c: &mut Client) -> Result<Vec<Device>> {
    c.query(
        "SELECT id, kind, protocol, hardware_id, owner_id FROM devices ORDER BY id",
        &[],
    )?
    .iter()
    .map(device_from_row)
    .collect()
}

pub(crate) fn device_by_token(c: &mut Client, token: String) -> Result<Option<Device>> {
    c.query_opt(
        "SELECT id, kind, protocol, hardware_id, owner_id FROM devices WHERE token_sha256 = $1",
        &[&token_hash(&token)],
    )?
    .as_ref()
    .map(device_from_row)
    .transpose()
}

pub(crate) fn device_by_hardware_id(
    c: &mut Client,
    protocol: Protocol,
    hardware_id: String,
) -> Result<Option<(Device, bool)>> {
    c.query_opt(
        "SELECT id, kind, protocol, hardware_id, owner_id, token_sha256 IS NOT NULL AS has_token
         FROM devices WHERE protocol = $1 AND hardware_id = $2",
        &[&protocol.as_str(), &hardware_id],
    )?
    .as_ref()
    .map(|r| Ok((device_from_row(r)?, r.try_get("has_token")?)))
    .transpose()
}

pub(crate) fn device_token_matches(
    c: &mut Client,
    device: DeviceId,
    token: String,
) -> Result<bool> {
    let stored: Option<Vec<u8>> = match c.query_opt(
        "SELECT token_sha256 FROM devices WHERE id = $1",
        &[&device.0],
    )? {
        Some(r) => r.try_get("token_sha256")?,
        None => None,
    };
    Ok(stored.is_some_and(|s| s == token_hash(&token)))
}

pub(crate) fn record_unknown_device(
    c: &mut Client,
    protocol: Protocol,
    hardware_id: String,
    remote: Option<String>,
    now: UnixMicros,
) -> Result<()> {
    c.execute(
        "INSERT INTO unknown_devices (protocol, hardware_id, first_seen, last_seen, attempts, last_remote)
         VALUES ($1, $2, $3, $3, 1, $4)
         ON CONFLICT (protocol, hardware_id) DO UPDATE
         SET last_seen = $3, attempts = unknown_devices.attempts + 1, last_remote = $4",
        &[&protocol.as_str(), &hardware_id, &now.0, &remote],
    )?;
    Ok(())
}

pub(crate) fn list_unknown_devices(c: &mut Client) -> Result<Vec<UnknownDevice>> {
    c.query(
        "SELECT protocol, hardware_id, first_seen, last_seen, attempts, last_remote
         FROM unknown_devices ORDER BY last_seen DESC LIMIT 1000",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(UnknownDevice {
            protocol: r.try_get("protocol")?,
            hardware_id: r.try_get("hardware_id")?,
            first_seen: UnixMicros(r.try_get("first_seen")?),
            last_seen: UnixMicros(r.try_get("last_seen")?),
            attempts: r.try_get("attempts")?,
            last_remote: r.try_get("last_remote")?,
        })
    })
    .collect()
}

pub(crate) fn create_case(
    c: &mut Client,
    reference: String,
    offender: PersonId,
    protected: Vec<PersonId>,
    now: UnixMicros,
) -> Result<Case> {
    if person_role(c, offender)? != PersonRole::Offender {
        return Err(StoreError::InvalidReference(format!(
            "person {offender} is not an offender"
        )));
    }
    if protected.is_empty() {
        return Err(StoreError::InvalidReference(
            "a case protects at least one person".into(),
        ));
    }
    for p in &protected {
        if person_role(c, *p)? != PersonRole::Protected {
            return Err(StoreError::InvalidReference(format!(
                "person {p} is not a protected person"
            )));
        }
    }
    let row = c.query_one(
        "INSERT INTO cases (reference, offender_id, created_at) VALUES ($1, $2, $3) RETURNING id",
        &[&reference, &offender.0, &now.0],
    )?;
    let id = CaseId(row.try_get("id")?);
    for p in &protected {
        c.execute(
            "INSERT INTO case_protected (case_id, person_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&id.0, &p.0],
        )?;
    }
    let mut protected = protected;
    protected.sort();
    protected.dedup();
    Ok(Case {
        id,
        reference,
        offender,
        protected,
    })
}

pub(crate) fn list_cases(c: &mut Client) -> Result<Vec<Case>> {
    let cases = c.query(
        "SELECT id, reference, offender_id FROM cases ORDER BY id",
        &[],
    )?;
    let mut out = Vec::with_capacity(cases.len());
    for r in &cases {
        let id: i64 = r.try_get("id")?;
        let protected = c
            .query(
                "SELECT person_id FROM case_protected WHERE case_id = $1 ORDER BY person_id",
                &[&id],
            )?
            .iter()
            .map(|p| Ok(PersonId(p.try_get("person_id")?)))
            .collect::<Result<Vec<_>>>()?;
        out.push(Case {
            id: CaseId(id),
            reference: r.try_get("reference")?,
            offender: PersonId(r.try_get("offender_id")?),
            protected,
        });
    }
    Ok(out)
}
