//! The registry on SQLite: people, devices (tokens as SHA-256, the unknown-device list) and
//! cases.

use super::*;
use crate::columns::Columns;

/// What the engine and the live stream need about a device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    pub device: Device,
    pub created_at: UnixMicros,
}

/// A device that tried to connect but is not registered.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownDevice {
    pub protocol: String,
    pub hardware_id: String,
    pub first_seen: UnixMicros,
    pub last_seen: UnixMicros,
    pub attempts: i64,
    pub last_remote: Option<String>,
}

/// SHA-256 of a device token; tokens themselves are never stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub(crate) fn person_role(conn: &Connection, p: PersonId) -> Result<PersonRole> {
    let role: Option<String> = conn
        .query_row("SELECT role FROM people WHERE id = ?1", [p.0], |r| r.get(0))
        .optional()?;
    match role {
        Some(r) => parse_col(&r),
        None => Err(StoreError::InvalidReference(format!(
            "person {p} does not exist"
        ))),
    }
}

pub(crate) fn device_from_row<R: Columns>(r: &R) -> Result<Device> {
    Ok(Device {
        id: DeviceId(r.col("id")?),
        kind: parse_col(&r.col::<String>("kind")?)?,
        protocol: parse_col(&r.col::<String>("protocol")?)?,
        hardware_id: r.col("hardware_id")?,
        owner: r.col::<Option<i64>>("owner_id")?.map(PersonId),
    })
}

impl Store {
    // ---- people, devices, cases, orders -------------------------------------------------

    pub async fn create_person(
        &self,
        role: PersonRole,
        display_name: String,
        now: UnixMicros,
    ) -> Result<Person> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::registry::create_person(c, role, display_name, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "INSERT INTO people (role, display_name, created_at) VALUES (?1, ?2, ?3)",
                    params![role.as_str(), display_name, now.0],
                )?;
                Ok(Person {
                    id: PersonId(conn.last_insert_rowid()),
                    role,
                    display_name,
                })
            },
            None,
        )
        .await
    }

    pub async fn list_people(&self) -> Result<Vec<Person>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::registry::list_people).await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, role, display_name FROM people ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>("id")?,
                    r.get::<_, String>("role")?,
                    r.get::<_, String>("display_name")?,
                ))
            })?;
            rows.map(|r| {
                let (id, role, name) = r?;
                Ok(Person {
                    id: PersonId(id),
                    role: parse_col(&role)?,
                    display_name: name,
                })
            })
            .collect()
        })
        .await
    }

    /// Sets (or replaces) a device's token, stored only as its SHA-256: the migration path for
    /// phones registered before the phone doors required one. `false` when no such device.
    pub async fn set_device_token(&self, device: DeviceId, token: String) -> Result<bool> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::registry::set_device_token(c, device, token),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                let res = conn.execute(
                    "UPDATE devices SET token_sha256 = ?2 WHERE id = ?1",
                    params![device.0, token_hash(&token)],
                );
                match res {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        Err(StoreError::Conflict("that token is already in use".into()))
                    }
                    other => Ok(other? == 1),
                }
            },
            None,
        )
        .await
    }

    /// Registers a device. `token` (if any) is stored only as its SHA-256.
    pub async fn create_device(
        &self,
        kind: DeviceKind,
        protocol: Protocol,
        hardware_id: String,
        owner: Option<PersonId>,
        token: Option<String>,
        now: UnixMicros,
    ) -> Result<Device> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::registry::create_device(
                            c,
                            kind,
                            protocol,
                            hardware_id,
                            owner,
                            token,
                            now,
                        )
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                if let Some(o) = owner {
                    ensure_exists(conn, "people", o.0, "owner person")?;
                }
                let hash = token.map(|t| token_hash(&t));
                let res = conn.execute(
                    "INSERT INTO devices (kind, protocol, hardware_id, owner_id, token_sha256, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![kind.as_str(), protocol.as_str(), hardware_id, owner.map(|o| o.0), hash, now.0],
                );
                match res {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        return Err(StoreError::Conflict(format!(
                            "a {protocol} device with hardware id {hardware_id:?} (or that token) is already registered"
                        )));
                    }
                    other => {
                        other?;
                    }
                }
                // Registering clears the device from the unknown list.
                conn.execute(
                    "DELETE FROM unknown_devices WHERE protocol = ?1 AND hardware_id = ?2",
                    params![protocol.as_str(), hardware_id],
                )?;
                Ok(Device {
                    id: DeviceId(conn.last_insert_rowid()),
                    kind,
                    protocol,
                    hardware_id,
                    owner,
                })
            },
            None,
        )
        .await
    }

    pub async fn list_devices(&self) -> Result<Vec<Device>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::registry::list_devices).await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, kind, protocol, hardware_id, owner_id FROM devices ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok(device_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Finds a device by the SHA-256 of its token.
    pub async fn device_by_token(&self, token: String) -> Result<Option<Device>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::registry::device_by_token(c, token))
                .await;
        }
        self.read(move |conn| {
            let hash = token_hash(&token);
            conn.query_row(
                "SELECT id, kind, protocol, hardware_id, owner_id FROM devices WHERE token_sha256 = ?1",
                [hash],
                |r| Ok(device_from_row(r)),
            )
            .optional()?
            .transpose()
        })
        .await
    }

    /// Finds a device by protocol and hardware identifier (IMEI, OsmAnd id).
    pub async fn device_by_hardware_id(
        &self,
        protocol: Protocol,
        hardware_id: String,
    ) -> Result<Option<(Device, bool)>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| {
                    crate::postgres::registry::device_by_hardware_id(c, protocol, hardware_id)
                })
                .await;
        }
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT id, kind, protocol, hardware_id, owner_id, token_sha256 IS NOT NULL AS has_token
                     FROM devices WHERE protocol = ?1 AND hardware_id = ?2",
                    params![protocol.as_str(), hardware_id],
                    |r| Ok((device_from_row(r), r.get::<_, bool>("has_token")?)),
                )
                .optional()?;
            match row {
                Some((d, has_token)) => Ok(Some((d?, has_token))),
                None => Ok(None),
            }
        })
        .await
    }

    /// Checks a device token against the stored hash.
    pub async fn device_token_matches(&self, device: DeviceId, token: String) -> Result<bool> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::registry::device_token_matches(c, device, token))
                .await;
        }
        self.read(move |conn| {
            let stored: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT token_sha256 FROM devices WHERE id = ?1",
                    [device.0],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            Ok(stored.is_some_and(|s| s == token_hash(&token)))
        })
        .await
    }

    /// Records a connection attempt by an unregistered device, for an administrator to review.
    pub async fn record_unknown_device(
        &self,
        protocol: Protocol,
        hardware_id: String,
        remote: Option<String>,
        now: UnixMicros,
    ) -> Result<()> {
        let hardware_id: String = hardware_id.chars().take(64).collect();
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::registry::record_unknown_device(
                            c,
                            protocol,
                            hardware_id,
                            remote,
                            now,
                        )
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                conn.execute(
                    "INSERT INTO unknown_devices (protocol, hardware_id, first_seen, last_seen, attempts, last_remote)
                     VALUES (?1, ?2, ?3, ?3, 1, ?4)
                     ON CONFLICT (protocol, hardware_id) DO UPDATE SET last_seen = ?3, attempts = attempts + 1, last_remote = ?4",
                    params![protocol.as_str(), hardware_id, now.0, remote],
                )?;
                Ok(())
            },
            None,
        )
        .await
    }

    pub async fn list_unknown_devices(&self) -> Result<Vec<UnknownDevice>> {
        if self.is_postgres() {
            return self
                .pg_read(crate::postgres::registry::list_unknown_devices)
                .await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT protocol, hardware_id, first_seen, last_seen, attempts, last_remote
                 FROM unknown_devices ORDER BY last_seen DESC LIMIT 1000",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(UnknownDevice {
                    protocol: r.get("protocol")?,
                    hardware_id: r.get("hardware_id")?,
                    first_seen: UnixMicros(r.get("first_seen")?),
                    last_seen: UnixMicros(r.get("last_seen")?),
                    attempts: r.get("attempts")?,
                    last_remote: r.get("last_remote")?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn create_case(
        &self,
        reference: String,
        offender: PersonId,
        protected: Vec<PersonId>,
        now: UnixMicros,
    ) -> Result<Case> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| {
                        crate::postgres::registry::create_case(
                            c, reference, offender, protected, now,
                        )
                    },
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                let role = person_role(conn, offender)?;
                if role != PersonRole::Offender {
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
                    if person_role(conn, *p)? != PersonRole::Protected {
                        return Err(StoreError::InvalidReference(format!(
                            "person {p} is not a protected person"
                        )));
                    }
                }
                conn.execute(
                    "INSERT INTO cases (reference, offender_id, created_at) VALUES (?1, ?2, ?3)",
                    params![reference, offender.0, now.0],
                )?;
                let id = CaseId(conn.last_insert_rowid());
                for p in &protected {
                    conn.execute(
                        "INSERT OR IGNORE INTO case_protected (case_id, person_id) VALUES (?1, ?2)",
                        params![id.0, p.0],
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
            },
            None,
        )
        .await
    }

    pub async fn list_cases(&self) -> Result<Vec<Case>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::registry::list_cases).await;
        }
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT id, reference, offender_id FROM cases ORDER BY id")?;
            let cases: Vec<(i64, String, i64)> = stmt
                .query_map([], |r| {
                    Ok((r.get("id")?, r.get("reference")?, r.get("offender_id")?))
                })?
                .collect::<Result<_, _>>()?;
            let mut pstmt = conn.prepare(
                "SELECT person_id FROM case_protected WHERE case_id = ?1 ORDER BY person_id",
            )?;
            cases
                .into_iter()
                .map(|(id, reference, offender)| {
                    let protected = pstmt
                        .query_map([id], |r| Ok(PersonId(r.get("person_id")?)))?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Case {
                        id: CaseId(id),
                        reference,
                        offender: PersonId(offender),
                        protected,
                    })
                })
                .collect()
        })
        .await
    }
}
