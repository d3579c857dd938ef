//! The court workflow on PostgreSQL: petitions and their history, immutable order versions,
//! notices (unique per dedup key) and the workflow's timers, with the rules of `court.rs`.
//!
//! Several nodes: a step that handles timers claims each one first
//! (`UPDATE … WHERE done_at IS NULL RETURNING`) inside the writer's transaction. A second
//! node's claim of the same timer waits on the first one's row lock and then finds it done:
//! its step is refused as a whole, so a timer fires once across nodes.

use super::accounts::ensure_exists;
use crate::court::{
    CourtTimer, NewNotice, NewPetitionEvent, NewTimer, NoticeRecord, OrderVersionRecord, Petition,
    PetitionEvent, StepStatements, event_from_row, notice_from_row, petition_from_row,
    timer_from_row, version_from_row, zones_to_text,
};
use crate::sqlite::shape_to_text;
use crate::{Result, StoreError};
use domain::{CaseId, OrderId, UnixMicros, Zone, ZoneId};
use postgres::Client;

pub(crate) const MIGRATION: &str = r#"
    ALTER TABLE orders ADD COLUMN lapsed_at BIGINT;
    CREATE TABLE petitions (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases(id),
        kind TEXT NOT NULL,
        petitioner TEXT NOT NULL,
        petitioner_account_id BIGINT NOT NULL,
        no_approach_m DOUBLE PRECISION NOT NULL,
        duration_s BIGINT NOT NULL,
        no_contact_by_phone BOOLEAN NOT NULL,
        electronic_monitoring BOOLEAN NOT NULL,
        statement TEXT NOT NULL,
        state TEXT NOT NULL,
        filed_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        order_id BIGINT REFERENCES orders(id)
    );
    CREATE INDEX petitions_case ON petitions(case_id);
    CREATE UNIQUE INDEX petitions_order ON petitions(order_id) WHERE order_id IS NOT NULL;
    CREATE TABLE petition_events (
        id BIGSERIAL PRIMARY KEY,
        petition_id BIGINT NOT NULL REFERENCES petitions(id),
        at BIGINT NOT NULL,
        actor_account_id BIGINT,
        actor_role TEXT NOT NULL,
        event TEXT NOT NULL,
        reasons TEXT,
        details TEXT
    );
    CREATE INDEX petition_events_petition ON petition_events(petition_id, id);
    CREATE TABLE notices (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases(id),
        order_id BIGINT REFERENCES orders(id),
        petition_id BIGINT REFERENCES petitions(id),
        recipient TEXT NOT NULL,
        person_id BIGINT REFERENCES people(id),
        kind TEXT NOT NULL,
        valid_to BIGINT,
        reasons TEXT,
        dedup_key TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX notices_case ON notices(case_id, id);
    CREATE TABLE court_timers (
        id BIGSERIAL PRIMARY KEY,
        order_id BIGINT NOT NULL REFERENCES orders(id),
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        recipient TEXT,
        version BIGINT NOT NULL,
        done_at BIGINT,
        cancelled_at BIGINT
    );
    CREATE INDEX court_timers_due ON court_timers(at) WHERE done_at IS NULL AND cancelled_at IS NULL;
"#;

fn insert_version(c: &mut Client, v: &OrderVersionRecord) -> Result<()> {
    let n = c.execute(
        "INSERT INTO order_versions (order_id, version, valid_from, valid_to, kind,
            no_approach_m, warning_m, disclosure_radius_m, no_contact_by_phone,
            electronic_monitoring, zones, reasons, issued_at, issued_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT DO NOTHING",
        &[
            &v.order_id.0,
            &i64::from(v.version),
            &v.valid_from.0,
            &v.valid_to.map(|t| t.0),
            &v.kind.as_str(),
            &v.no_approach_m,
            &v.warning_m,
            &v.disclosure_radius_m,
            &v.no_contact_by_phone,
            &v.electronic_monitoring,
            &zones_to_text(&v.zones),
            &v.reasons,
            &v.issued_at.0,
            &v.issued_by,
        ],
    )?;
    if n == 0 {
        // Versions are never rewritten: a second version with the same number is a race.
        return Err(StoreError::Conflict(format!(
            "order {} already has a version {}",
            v.order_id, v.version
        )));
    }
    Ok(())
}

fn insert_zones(c: &mut Client, order: OrderId, zones: Vec<Zone>) -> Result<Vec<Zone>> {
    let mut out = Vec::with_capacity(zones.len());
    for z in zones {
        let r = c.query_one(
            "INSERT INTO zones (order_id, kind, label, shape) VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                &order.0,
                &z.kind.as_str(),
                &z.label,
                &shape_to_text(&z.shape),
            ],
        )?;
        out.push(Zone {
            id: ZoneId(r.try_get("id")?),
            ..z
        });
    }
    Ok(out)
}

fn insert_notice(c: &mut Client, n: &NewNotice, at: UnixMicros) -> Result<Option<NoticeRecord>> {
    let row = c.query_opt(
        "INSERT INTO notices (case_id, order_id, petition_id, recipient, person_id,
            kind, valid_to, reasons, dedup_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        &[
            &n.case_id.0,
            &n.order_id.map(|o| o.0),
            &n.petition_id,
            &n.recipient,
            &n.person_id.map(|p| p.0),
            &n.kind,
            &n.valid_to.map(|t| t.0),
            &n.reasons,
            &n.dedup_key,
            &at.0,
        ],
    )?;
    row.map(|r| {
        Ok(NoticeRecord {
            id: r.try_get("id")?,
            case_id: n.case_id,
            order_id: n.order_id,
            petition_id: n.petition_id,
            recipient: n.recipient.clone(),
            person_id: n.person_id,
            kind: n.kind.clone(),
            valid_to: n.valid_to,
            reasons: n.reasons.clone(),
            created_at: at,
        })
    })
    .transpose()
}

fn insert_event(c: &mut Client, petition: i64, e: &NewPetitionEvent) -> Result<()> {
    c.execute(
        "INSERT INTO petition_events (petition_id, at, actor_account_id, actor_role, event, reasons, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &petition,
            &e.at.0,
            &e.actor_account_id,
            &e.actor_role,
            &e.event,
            &e.reasons,
            &e.details,
        ],
    )?;
    Ok(())
}

/// A court step's statements on PostgreSQL. A timer's claim (`UPDATE … RETURNING`) waits on
/// another node's row lock and then finds the timer done.
impl StepStatements for Client {
    fn insert_petition(&mut self, p: &Petition) -> Result<i64> {
        ensure_exists(self, "cases", p.case_id.0, "case")?;
        let r = self.query_one(
            "INSERT INTO petitions (case_id, kind, petitioner, petitioner_account_id,
                no_approach_m, duration_s, no_contact_by_phone, electronic_monitoring,
                statement, state, filed_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
            &[
                &p.case_id.0,
                &p.kind.as_str(),
                &p.petitioner,
                &p.petitioner_account_id,
                &p.no_approach_m,
                &p.duration_s,
                &p.no_contact_by_phone,
                &p.electronic_monitoring,
                &p.statement,
                &p.state,
                &p.filed_at.0,
            ],
        )?;
        Ok(r.try_get("id")?)
    }

    fn claim_timer(&mut self, id: i64, at: UnixMicros) -> Result<bool> {
        let claimed = self.query_opt(
            "UPDATE court_timers SET done_at = $2 WHERE id = $1 AND done_at IS NULL RETURNING id",
            &[&id, &at.0],
        )?;
        Ok(claimed.is_some())
    }

    fn insert_order(&mut self, order: &domain::Order, at: UnixMicros) -> Result<OrderId> {
        ensure_exists(self, "cases", order.case_id.0, "case")?;
        let r = self.query_one(
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
                &at.0,
            ],
        )?;
        Ok(OrderId(r.try_get("id")?))
    }

    fn insert_zones(&mut self, order: OrderId, zones: Vec<Zone>) -> Result<Vec<Zone>> {
        insert_zones(self, order, zones)
    }

    fn delete_zones(&mut self, order: OrderId) -> Result<()> {
        self.execute("DELETE FROM zones WHERE order_id = $1", &[&order.0])?;
        Ok(())
    }

    fn set_petition_state(
        &mut self,
        petition: i64,
        state: &str,
        at: UnixMicros,
        order: Option<OrderId>,
    ) -> Result<bool> {
        let n = self.execute(
            "UPDATE petitions SET state = $2, updated_at = $3, order_id = COALESCE(order_id, $4)
             WHERE id = $1",
            &[&petition, &state, &at.0, &order.map(|o| o.0)],
        )?;
        Ok(n > 0)
    }

    fn insert_event(&mut self, petition: i64, e: &NewPetitionEvent) -> Result<()> {
        insert_event(self, petition, e)
    }

    fn set_order_end(&mut self, v: &OrderVersionRecord) -> Result<()> {
        self.execute(
            "UPDATE orders SET valid_to = $2 WHERE id = $1",
            &[&v.order_id.0, &v.valid_to.map(|t| t.0)],
        )?;
        Ok(())
    }

    fn set_order_conditions(&mut self, v: &OrderVersionRecord) -> Result<()> {
        self.execute(
            "UPDATE orders SET no_approach_m = $2, warning_m = $3, disclosure_radius_m = $4
             WHERE id = $1",
            &[
                &v.order_id.0,
                &v.no_approach_m,
                &v.warning_m,
                &v.disclosure_radius_m,
            ],
        )?;
        Ok(())
    }

    fn insert_version(&mut self, v: &OrderVersionRecord) -> Result<()> {
        insert_version(self, v)
    }

    fn cancel_reminders(&mut self, order: OrderId, version: u32, at: UnixMicros) -> Result<()> {
        self.execute(
            "UPDATE court_timers SET cancelled_at = $3
             WHERE order_id = $1 AND version = $2 AND kind = 'reminder'
               AND done_at IS NULL AND cancelled_at IS NULL",
            &[&order.0, &i64::from(version), &at.0],
        )?;
        Ok(())
    }

    fn insert_timer(&mut self, order: OrderId, t: &NewTimer) -> Result<()> {
        self.execute(
            "INSERT INTO court_timers (order_id, at, kind, recipient, version) VALUES ($1, $2, $3, $4, $5)",
            &[&order.0, &t.at.0, &t.kind, &t.recipient, &i64::from(t.version)],
        )?;
        Ok(())
    }

    fn mark_lapsed(&mut self, order: OrderId, at: UnixMicros) -> Result<()> {
        self.execute(
            "UPDATE orders SET lapsed_at = COALESCE(lapsed_at, $2) WHERE id = $1",
            &[&order.0, &at.0],
        )?;
        Ok(())
    }

    fn insert_notice(&mut self, n: &NewNotice, at: UnixMicros) -> Result<Option<NoticeRecord>> {
        insert_notice(self, n, at)
    }
}

pub(crate) fn petition(c: &mut Client, id: i64) -> Result<Option<Petition>> {
    c.query_opt("SELECT * FROM petitions WHERE id = $1", &[&id])?
        .as_ref()
        .map(petition_from_row)
        .transpose()
}

pub(crate) fn list_petitions(c: &mut Client) -> Result<Vec<Petition>> {
    c.query("SELECT * FROM petitions ORDER BY id", &[])?
        .iter()
        .map(petition_from_row)
        .collect()
}

pub(crate) fn petition_for_order(c: &mut Client, order: OrderId) -> Result<Option<Petition>> {
    c.query_opt("SELECT * FROM petitions WHERE order_id = $1", &[&order.0])?
        .as_ref()
        .map(petition_from_row)
        .transpose()
}

pub(crate) fn petition_events(c: &mut Client, petition: i64) -> Result<Vec<PetitionEvent>> {
    c.query(
        "SELECT * FROM petition_events WHERE petition_id = $1 ORDER BY id",
        &[&petition],
    )?
    .iter()
    .map(event_from_row)
    .collect()
}

pub(crate) fn court_cases(c: &mut Client) -> Result<Vec<CaseId>> {
    c.query(
        "SELECT case_id FROM petitions UNION SELECT case_id FROM orders ORDER BY 1",
        &[],
    )?
    .iter()
    .map(|r| Ok(CaseId(r.try_get(0)?)))
    .collect()
}

pub(crate) fn order_versions(c: &mut Client, order: OrderId) -> Result<Vec<OrderVersionRecord>> {
    c.query(
        "SELECT * FROM order_versions WHERE order_id = $1 ORDER BY version",
        &[&order.0],
    )?
    .iter()
    .map(version_from_row)
    .collect()
}

pub(crate) fn order_lapsed_at(c: &mut Client, order: OrderId) -> Result<Option<UnixMicros>> {
    match c.query_opt("SELECT lapsed_at FROM orders WHERE id = $1", &[&order.0])? {
        None => Err(StoreError::NotFound(format!("order {order}"))),
        Some(r) => Ok(r.try_get::<_, Option<i64>>("lapsed_at")?.map(UnixMicros)),
    }
}

pub(crate) fn due_court_timers(c: &mut Client, now: UnixMicros) -> Result<Vec<CourtTimer>> {
    c.query(
        "SELECT id, order_id, at, kind, recipient, version FROM court_timers
         WHERE done_at IS NULL AND cancelled_at IS NULL AND at <= $1
         ORDER BY at, id LIMIT 1000",
        &[&now.0],
    )?
    .iter()
    .map(timer_from_row)
    .collect()
}

pub(crate) fn list_notices(c: &mut Client, limit: usize) -> Result<Vec<NoticeRecord>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(
        "SELECT * FROM (SELECT * FROM notices ORDER BY id DESC LIMIT $1) newest ORDER BY id",
        &[&limit],
    )?
    .iter()
    .map(notice_from_row)
    .collect()
}
