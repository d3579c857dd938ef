//! Orders and their zones on SQLite (the court's order versions are in `court.rs`).

use super::*;

/// Zone geometry as a small JSON document: `{"circle":[lat,lon,radius_m]}` or
/// `{"polygon":[[lat,lon],...]}`.
pub(crate) fn shape_to_text(s: &ZoneShape) -> String {
    match s {
        ZoneShape::Circle { center, radius_m } => {
            serde_json::json!({"circle": [center.lat(), center.lon(), radius_m]}).to_string()
        }
        ZoneShape::Polygon { ring } => serde_json::json!({
            "polygon": ring.iter().map(|p| [p.lat(), p.lon()]).collect::<Vec<_>>()
        })
        .to_string(),
    }
}

pub(crate) fn shape_from_text(s: &str) -> Result<ZoneShape> {
    let bad = |m: &str| StoreError::Corrupt(format!("zone shape {s:?}: {m}"));
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| bad(&e.to_string()))?;
    let num = |v: &serde_json::Value| v.as_f64().ok_or_else(|| bad("not a number"));
    if let Some(c) = v.get("circle").and_then(|c| c.as_array()) {
        let (lat, lon, r) = match c.as_slice() {
            [a, b, c] => (num(a)?, num(b)?, num(c)?),
            _ => return Err(bad("circle needs 3 numbers")),
        };
        return Ok(ZoneShape::Circle {
            center: LatLon::new(lat, lon).map_err(|e| bad(&e.to_string()))?,
            radius_m: r,
        });
    }
    if let Some(p) = v.get("polygon").and_then(|c| c.as_array()) {
        let ring = p
            .iter()
            .map(|pt| match pt.as_array().map(|a| a.as_slice()) {
                Some([a, b]) => LatLon::new(num(a)?, num(b)?).map_err(|e| bad(&e.to_string())),
                _ => Err(bad("vertex needs 2 numbers")),
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(ZoneShape::Polygon { ring });
    }
    Err(bad("unknown shape"))
}

impl Store {
    /// Stores an order with its zones (ids in `order` and its zones are ignored and assigned).
    pub async fn create_order(&self, order: Order, now: UnixMicros) -> Result<Order> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::orders::create_order(c, order, now),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                ensure_exists(conn, "cases", order.case_id.0, "case")?;
                conn.execute(
                    "INSERT INTO orders (case_id, kind, valid_from, valid_to, no_approach_m, warning_m, disclosure_radius_m, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        order.case_id.0,
                        order.kind.as_str(),
                        order.valid_from.0,
                        order.valid_to.map(|t| t.0),
                        order.no_approach_m,
                        order.warning_m,
                        order.disclosure_radius_m,
                        now.0
                    ],
                )?;
                let id = OrderId(conn.last_insert_rowid());
                let mut zones = Vec::with_capacity(order.zones.len());
                for z in order.zones {
                    conn.execute(
                        "INSERT INTO zones (order_id, kind, label, shape) VALUES (?1, ?2, ?3, ?4)",
                        params![id.0, z.kind.as_str(), z.label, shape_to_text(&z.shape)],
                    )?;
                    zones.push(Zone {
                        id: ZoneId(conn.last_insert_rowid()),
                        ..z
                    });
                }
                // Registered directly (setup, demo): its first version says so.
                crate::court::insert_version(
                    conn,
                    &crate::court::OrderVersionRecord {
                        order_id: id,
                        version: 1,
                        valid_from: order.valid_from,
                        valid_to: order.valid_to,
                        kind: order.kind,
                        no_approach_m: order.no_approach_m,
                        warning_m: order.warning_m,
                        disclosure_radius_m: order.disclosure_radius_m,
                        no_contact_by_phone: false,
                        electronic_monitoring: order.kind == OrderKind::ElectronicMonitoring,
                        zones: zones.clone(),
                        reasons: "registered directly".into(),
                        issued_at: now,
                        issued_by: None,
                    },
                )?;
                Ok(Order { id, zones, ..order })
            },
            None,
        )
        .await
    }

    /// Sets (or with `None` removes) a zone's schedule, stored as the server's JSON text.
    pub async fn set_zone_schedule(&self, zone: ZoneId, schedule: Option<String>) -> Result<()> {
        if self.is_postgres() {
            return self
                .pg_write(
                    move |c| crate::postgres::orders::set_zone_schedule(c, zone, schedule),
                    None,
                )
                .await;
        }
        self.write(
            move |conn| {
                let n = conn.execute(
                    "UPDATE zones SET schedule = ?2 WHERE id = ?1",
                    params![zone.0, schedule],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("zone {zone}")));
                }
                Ok(())
            },
            None,
        )
        .await
    }

    /// Every zone that has a schedule, with its JSON text.
    pub async fn zone_schedules(&self) -> Result<Vec<(ZoneId, String)>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::orders::zone_schedules).await;
        }
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, schedule FROM zones WHERE schedule IS NOT NULL ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok((ZoneId(r.get("id")?), r.get::<_, String>("schedule")?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn list_orders(&self) -> Result<Vec<Order>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::orders::list_orders).await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, case_id, kind, valid_from, valid_to, no_approach_m, warning_m, disclosure_radius_m
                 FROM orders ORDER BY id",
            )?;
            let mut orders: Vec<Order> = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>("id")?,
                        r.get::<_, i64>("case_id")?,
                        r.get::<_, String>("kind")?,
                        r.get::<_, i64>("valid_from")?,
                        r.get::<_, Option<i64>>("valid_to")?,
                        r.get::<_, f64>("no_approach_m")?,
                        r.get::<_, f64>("warning_m")?,
                        r.get::<_, f64>("disclosure_radius_m")?,
                    ))
                })?
                .map(|r| {
                    let (id, case_id, kind, from, to, na, w, d) = r?;
                    Ok(Order {
                        id: OrderId(id),
                        case_id: CaseId(case_id),
                        kind: parse_col(&kind)?,
                        valid_from: UnixMicros(from),
                        valid_to: to.map(UnixMicros),
                        no_approach_m: na,
                        warning_m: w,
                        disclosure_radius_m: d,
                        zones: Vec::new(),
                    })
                })
                .collect::<Result<_>>()?;
            let mut zstmt =
                conn.prepare("SELECT id, order_id, kind, label, shape FROM zones ORDER BY id")?;
            let zones = zstmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>("id")?,
                    r.get::<_, i64>("order_id")?,
                    r.get::<_, String>("kind")?,
                    r.get::<_, String>("label")?,
                    r.get::<_, String>("shape")?,
                ))
            })?;
            for z in zones {
                let (id, order_id, kind, label, shape) = z?;
                if let Some(o) = orders.iter_mut().find(|o| o.id.0 == order_id) {
                    o.zones.push(Zone {
                        id: ZoneId(id),
                        kind: parse_col(&kind)?,
                        label,
                        shape: shape_from_text(&shape)?,
                    });
                }
            }
            Ok(orders)
        })
        .await
    }
}
