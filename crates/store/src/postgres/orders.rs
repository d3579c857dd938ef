//! Orders and their zones on PostgreSQL, with version 1 of each order registered directly
//! (the court's later versions are written by `postgres/court.rs`).

use crate::sqlite::{parse_col, shape_from_text, shape_to_text};
use crate::{Result, StoreError};
use domain::*;
use postgres::Client;

pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE orders (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases(id),
        kind TEXT NOT NULL,
        valid_from BIGINT NOT NULL,
        valid_to BIGINT,
        no_approach_m DOUBLE PRECISION NOT NULL,
        warning_m DOUBLE PRECISION NOT NULL,
        disclosure_radius_m DOUBLE PRECISION NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE zones (
        id BIGSERIAL PRIMARY KEY,
        order_id BIGINT NOT NULL REFERENCES orders(id),
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        shape TEXT NOT NULL,
        schedule TEXT
    );
    CREATE TABLE order_versions (
        order_id BIGINT NOT NULL REFERENCES orders(id),
        version BIGINT NOT NULL,
        valid_from BIGINT NOT NULL,
        valid_to BIGINT,
        kind TEXT NOT NULL,
        no_approach_m DOUBLE PRECISION NOT NULL,
        warning_m DOUBLE PRECISION NOT NULL,
        disclosure_radius_m DOUBLE PRECISION NOT NULL,
        no_contact_by_phone BOOLEAN NOT NULL,
        electronic_monitoring BOOLEAN NOT NULL,
        zones TEXT NOT NULL,
        reasons TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        issued_by BIGINT,
        PRIMARY KEY (order_id, version)
    );
"#;

pub(crate) fn create_order(c: &mut Client, order: Order, now: UnixMicros) -> Result<Order> {
    if c.query_opt("SELECT 1 FROM cases WHERE id = $1", &[&order.case_id.0])?
        .is_none()
    {
        return Err(StoreError::InvalidReference(format!(
            "case {} does not exist",
            order.case_id
        )));
    }
    let row = c.query_one(
        "INSERT INTO orders (case_id, kind, valid_from, valid_to, no_approach_m, warning_m, disclosure_radius_m, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        &[
            &order.case_id.0,
            &order.kind.as_str(),
            &order.valid_from.0,
            &order.valid_to.map(|t| t.0),
            &order.no_approach_m,
            &order.warning_m,
            &order.disclosure_radius_m,
            &now.0,
        ],
    )?;
    let id = OrderId(row.try_get("id")?);
    let mut zones = Vec::with_capacity(order.zones.len());
    for z in order.zones {
        let r = c.query_one(
            "INSERT INTO zones (order_id, kind, label, shape) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&id.0, &z.kind.as_str(), &z.label, &shape_to_text(&z.shape)],
        )?;
        zones.push(Zone {
            id: ZoneId(r.try_get("id")?),
            ..z
        });
    }
    // Registered directly (setup, demo): its first version says so.
    c.execute(
        "INSERT INTO order_versions (order_id, version, valid_from, valid_to, kind,
            no_approach_m, warning_m, disclosure_radius_m, no_contact_by_phone,
            electronic_monitoring, zones, reasons, issued_at, issued_by)
         VALUES ($1, 1, $2, $3, $4, $5, $6, $7, false, $8, $9, 'registered directly', $10, NULL)",
        &[
            &id.0,
            &order.valid_from.0,
            &order.valid_to.map(|t| t.0),
            &order.kind.as_str(),
            &order.no_approach_m,
            &order.warning_m,
            &order.disclosure_radius_m,
            &(order.kind == OrderKind::ElectronicMonitoring),
            &crate::court::zones_to_text(&zones),
            &now.0,
        ],
    )?;
    Ok(Order { id, zones, ..order })
}

pub(crate) fn set_zone_schedule(
    c: &mut Client,
    zone: ZoneId,
    schedule: Option<String>,
) -> Result<()> {
    let n = c.execute(
        "UPDATE zones SET schedule = $2 WHERE id = $1",
        &[&zone.0, &schedule],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("zone {zone}")));
    }
    Ok(())
}

pub(crate) fn zone_schedules(c: &mut Client) -> Result<Vec<(ZoneId, String)>> {
    c.query(
        "SELECT id, schedule FROM zones WHERE schedule IS NOT NULL ORDER BY id",
        &[],
    )?
    .iter()
    .map(|r| Ok((ZoneId(r.try_get("id")?), r.try_get("schedule")?)))
    .collect()
}

pub(crate) fn list_orders(c: &mut Client) -> Result<Vec<Order>> {
    let mut orders = c
        .query(
            "SELECT id, case_id, kind, valid_from, valid_to, no_approach_m, warning_m, disclosure_radius_m
             FROM orders ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(Order {
                id: OrderId(r.try_get("id")?),
                case_id: CaseId(r.try_get("case_id")?),
                kind: parse_col(r.try_get::<_, &str>("kind")?)?,
                valid_from: UnixMicros(r.try_get("valid_from")?),
                valid_to: r.try_get::<_, Option<i64>>("valid_to")?.map(UnixMicros),
                no_approach_m: r.try_get("no_approach_m")?,
                warning_m: r.try_get("warning_m")?,
                disclosure_radius_m: r.try_get("disclosure_radius_m")?,
                zones: Vec::new(),
            })
        })
        .collect::<Result<Vec<Order>>>()?;
    for r in c.query(
        "SELECT id, order_id, kind, label, shape FROM zones ORDER BY id",
        &[],
    )? {
        let order_id: i64 = r.try_get("order_id")?;
        if let Some(o) = orders.iter_mut().find(|o| o.id.0 == order_id) {
            o.zones.push(Zone {
                id: ZoneId(r.try_get("id")?),
                kind: parse_col(r.try_get::<_, &str>("kind")?)?,
                label: r.try_get("label")?,
                shape: shape_from_text(r.try_get::<_, &str>("shape")?)?,
            });
        }
    }
    Ok(orders)
}
