//! The court workflow's storage: petitions and their history, immutable order versions,
//! notices and the workflow's timers.
//!
//! The server runs the pure `access::Workflow` and hands its effects here as one
//! [`CourtStep`], written in one transaction: a state change, its history row, the order
//! version it issues, the notices it sends and the timers it sets either all happen or none
//! does. Order versions are never updated; the `orders` row and its zones are the engine's
//! projection of the version in force and are rewritten when a version is issued. Notices are
//! unique per dedup key, and a timer is marked done in the same transaction as the notices it
//! caused, so a notice is sent once even across restarts; the step claims its timers before
//! anything else, and one already done refuses the step, so a timer fires once across nodes.

use crate::columns::Columns;
use crate::sqlite::{ensure_exists, parse_col, shape_from_text, shape_to_text};
use crate::{Result, Store, StoreError};
use domain::{CaseId, OrderId, OrderKind, PersonId, UnixMicros, Zone, ZoneId};
use rusqlite::{Connection, OptionalExtension, params};

/// A petition as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Petition {
    pub id: i64,
    pub case_id: CaseId,
    pub kind: OrderKind,
    /// `victim`, `police` or `prosecutor`.
    pub petitioner: String,
    pub petitioner_account_id: i64,
    pub no_approach_m: f64,
    pub duration_s: i64,
    pub no_contact_by_phone: bool,
    pub electronic_monitoring: bool,
    pub statement: String,
    /// `filed`, `under_review`, `denied`, `in_force`, `lapsed`.
    pub state: String,
    pub filed_at: UnixMicros,
    pub updated_at: UnixMicros,
    pub order_id: Option<OrderId>,
}

/// One step in a petition's history.
#[derive(Debug, Clone, PartialEq)]
pub struct PetitionEvent {
    pub id: i64,
    pub petition_id: i64,
    pub at: UnixMicros,
    /// `None` for the server's own steps (a lapse).
    pub actor_account_id: Option<i64>,
    pub actor_role: String,
    pub event: String,
    pub reasons: Option<String>,
    pub details: Option<String>,
}

/// A history row to write (the store assigns id and petition).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPetitionEvent {
    pub at: UnixMicros,
    pub actor_account_id: Option<i64>,
    pub actor_role: String,
    pub event: String,
    pub reasons: Option<String>,
    pub details: Option<String>,
}

/// One immutable version of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderVersionRecord {
    /// Ignored when the step creates the order (the new id is used).
    pub order_id: OrderId,
    pub version: u32,
    pub valid_from: UnixMicros,
    pub valid_to: Option<UnixMicros>,
    pub kind: OrderKind,
    pub no_approach_m: f64,
    pub warning_m: f64,
    pub disclosure_radius_m: f64,
    pub no_contact_by_phone: bool,
    pub electronic_monitoring: bool,
    /// The zones this version orders (ids are those of the projection when it was issued).
    pub zones: Vec<Zone>,
    pub reasons: String,
    pub issued_at: UnixMicros,
    pub issued_by: Option<i64>,
}

/// A notice to write. `order_id: None` in a step that creates an order means that order.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotice {
    pub case_id: CaseId,
    pub order_id: Option<OrderId>,
    pub petition_id: Option<i64>,
    /// `court`, `officer`, `victim` or `offender`.
    pub recipient: String,
    /// The person told, for `victim` and `offender` notices.
    pub person_id: Option<PersonId>,
    pub kind: String,
    pub valid_to: Option<UnixMicros>,
    pub reasons: Option<String>,
    /// A notice whose key exists already is not written again (sent once).
    pub dedup_key: String,
}

/// A stored notice.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeRecord {
    pub id: i64,
    pub case_id: CaseId,
    pub order_id: Option<OrderId>,
    pub petition_id: Option<i64>,
    pub recipient: String,
    pub person_id: Option<PersonId>,
    pub kind: String,
    pub valid_to: Option<UnixMicros>,
    pub reasons: Option<String>,
    pub created_at: UnixMicros,
}

/// A workflow timer: a reminder (`recipient` set) or a lapse check.
#[derive(Debug, Clone, PartialEq)]
pub struct CourtTimer {
    pub id: i64,
    pub order_id: OrderId,
    pub at: UnixMicros,
    /// `reminder` or `lapse_check`.
    pub kind: String,
    pub recipient: Option<String>,
    pub version: u32,
}

/// A timer to set. `order_id: None` in a step that creates an order means that order.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTimer {
    pub order_id: Option<OrderId>,
    pub at: UnixMicros,
    pub kind: String,
    pub recipient: Option<String>,
    pub version: u32,
}

/// Everything one workflow step writes, in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CourtStep {
    pub at: UnixMicros,
    /// The petition the step belongs to, and its new state.
    pub petition: Option<(i64, String)>,
    pub event: Option<NewPetitionEvent>,
    /// A grant: create this order (with its zones) and link it to the petition.
    pub new_order: Option<domain::Order>,
    /// The order an existing-order step concerns.
    pub order_id: Option<OrderId>,
    /// The version to issue; the projection follows it.
    pub version: Option<OrderVersionRecord>,
    /// Whether the version changes the distances (an amendment), not only the end.
    pub replace_conditions: bool,
    /// Whether the version's zones replace the projection's (an amendment with zones).
    pub replace_zones: bool,
    pub notices: Vec<NewNotice>,
    pub timers: Vec<NewTimer>,
    /// Cancel the pending reminders of this version of the step's order.
    pub cancel_reminders_of: Option<u32>,
    /// Timers handled by this step, claimed first: one no longer pending (done already, e.g.
    /// by another node) refuses the whole step with [`StoreError::Conflict`].
    pub timers_done: Vec<i64>,
    /// The order's protection ended (lapse).
    pub lapsed: bool,
}

/// What a step wrote.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepOutcome {
    /// The order created or concerned.
    pub order_id: Option<OrderId>,
    /// The zones of the projection after the step, when it replaced them.
    pub zones: Vec<Zone>,
    /// Notices newly written (those already sent are left out).
    pub notices: Vec<NoticeRecord>,
}

pub(crate) fn petition_from_row<R: Columns>(r: &R) -> Result<Petition> {
    Ok(Petition {
        id: r.col("id")?,
        case_id: CaseId(r.col("case_id")?),
        kind: parse_col(&r.col::<String>("kind")?)?,
        petitioner: r.col("petitioner")?,
        petitioner_account_id: r.col("petitioner_account_id")?,
        no_approach_m: r.col("no_approach_m")?,
        duration_s: r.col("duration_s")?,
        no_contact_by_phone: r.col("no_contact_by_phone")?,
        electronic_monitoring: r.col("electronic_monitoring")?,
        statement: r.col("statement")?,
        state: r.col("state")?,
        filed_at: UnixMicros(r.col("filed_at")?),
        updated_at: UnixMicros(r.col("updated_at")?),
        order_id: r.col::<Option<i64>>("order_id")?.map(OrderId),
    })
}

pub(crate) fn event_from_row<R: Columns>(r: &R) -> Result<PetitionEvent> {
    Ok(PetitionEvent {
        id: r.col("id")?,
        petition_id: r.col("petition_id")?,
        at: UnixMicros(r.col("at")?),
        actor_account_id: r.col("actor_account_id")?,
        actor_role: r.col("actor_role")?,
        event: r.col("event")?,
        reasons: r.col("reasons")?,
        details: r.col("details")?,
    })
}

pub(crate) fn notice_from_row<R: Columns>(r: &R) -> Result<NoticeRecord> {
    Ok(NoticeRecord {
        id: r.col("id")?,
        case_id: CaseId(r.col("case_id")?),
        order_id: r.col::<Option<i64>>("order_id")?.map(OrderId),
        petition_id: r.col("petition_id")?,
        recipient: r.col("recipient")?,
        person_id: r.col::<Option<i64>>("person_id")?.map(PersonId),
        kind: r.col("kind")?,
        valid_to: r.col::<Option<i64>>("valid_to")?.map(UnixMicros),
        reasons: r.col("reasons")?,
        created_at: UnixMicros(r.col("created_at")?),
    })
}

pub(crate) fn zones_to_text(zones: &[Zone]) -> String {
    serde_json::Value::Array(
        zones
            .iter()
            .map(|z| {
                serde_json::json!({"id": z.id.0, "kind": z.kind.as_str(), "label": z.label, "shape": shape_to_text(&z.shape)})
            })
            .collect(),
    )
    .to_string()
}

pub(crate) fn zones_from_text(s: &str) -> Result<Vec<Zone>> {
    let bad = |m: String| StoreError::Corrupt(format!("version zones: {m}"));
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| bad(e.to_string()))?;
    let arr = v.as_array().ok_or_else(|| bad("not an array".into()))?;
    arr.iter()
        .map(|z| {
            let text = |k: &str| {
                z.get(k)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| bad(format!("{k} missing")))
            };
            Ok(Zone {
                id: ZoneId(z.get("id").and_then(|v| v.as_i64()).unwrap_or(0)),
                kind: parse_col(text("kind")?)?,
                label: text("label")?.to_owned(),
                shape: shape_from_text(text("shape")?)?,
            })
        })
        .collect()
}

pub(crate) fn timer_from_row<R: Columns>(r: &R) -> Result<CourtTimer> {
    Ok(CourtTimer {
        id: r.col("id")?,
        order_id: OrderId(r.col("order_id")?),
        at: UnixMicros(r.col("at")?),
        kind: r.col("kind")?,
        recipient: r.col("recipient")?,
        version: r.version("version")?,
    })
}

pub(crate) fn version_from_row<R: Columns>(r: &R) -> Result<OrderVersionRecord> {
    Ok(OrderVersionRecord {
        order_id: OrderId(r.col("order_id")?),
        version: r.version("version")?,
        valid_from: UnixMicros(r.col("valid_from")?),
        valid_to: r.col::<Option<i64>>("valid_to")?.map(UnixMicros),
        kind: parse_col(&r.col::<String>("kind")?)?,
        no_approach_m: r.col("no_approach_m")?,
        warning_m: r.col("warning_m")?,
        disclosure_radius_m: r.col("disclosure_radius_m")?,
        no_contact_by_phone: r.col("no_contact_by_phone")?,
        electronic_monitoring: r.col("electronic_monitoring")?,
        zones: zones_from_text(&r.col::<String>("zones")?)?,
        reasons: r.col("reasons")?,
        issued_at: UnixMicros(r.col("issued_at")?),
        issued_by: r.col("issued_by")?,
    })
}

pub(crate) fn insert_version(conn: &Connection, v: &OrderVersionRecord) -> Result<()> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO order_versions (order_id, version, valid_from, valid_to, kind,
            no_approach_m, warning_m, disclosure_radius_m, no_contact_by_phone,
            electronic_monitoring, zones, reasons, issued_at, issued_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            v.order_id.0,
            v.version,
            v.valid_from.0,
            v.valid_to.map(|t| t.0),
            v.kind.as_str(),
            v.no_approach_m,
            v.warning_m,
            v.disclosure_radius_m,
            v.no_contact_by_phone,
            v.electronic_monitoring,
            zones_to_text(&v.zones),
            v.reasons,
            v.issued_at.0,
            v.issued_by,
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

fn insert_zones(conn: &Connection, order: OrderId, zones: Vec<Zone>) -> Result<Vec<Zone>> {
    let mut out = Vec::with_capacity(zones.len());
    for z in zones {
        conn.execute(
            "INSERT INTO zones (order_id, kind, label, shape) VALUES (?1, ?2, ?3, ?4)",
            params![order.0, z.kind.as_str(), z.label, shape_to_text(&z.shape)],
        )?;
        out.push(Zone {
            id: ZoneId(conn.last_insert_rowid()),
            ..z
        });
    }
    Ok(out)
}

fn insert_notice(conn: &Connection, n: &NewNotice, at: UnixMicros) -> Result<Option<NoticeRecord>> {
    let written = conn.execute(
        "INSERT OR IGNORE INTO notices (case_id, order_id, petition_id, recipient, person_id,
            kind, valid_to, reasons, dedup_key, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            n.case_id.0,
            n.order_id.map(|o| o.0),
            n.petition_id,
            n.recipient,
            n.person_id.map(|p| p.0),
            n.kind,
            n.valid_to.map(|t| t.0),
            n.reasons,
            n.dedup_key,
            at.0
        ],
    )?;
    Ok((written == 1).then(|| NoticeRecord {
        id: conn.last_insert_rowid(),
        case_id: n.case_id,
        order_id: n.order_id,
        petition_id: n.petition_id,
        recipient: n.recipient.clone(),
        person_id: n.person_id,
        kind: n.kind.clone(),
        valid_to: n.valid_to,
        reasons: n.reasons.clone(),
        created_at: at,
    }))
}

/// What a step answers when a timer it handles is no longer pending: another node (or an
/// earlier run) fired it, and the step is refused as a whole so the timer fires once.
pub(crate) fn timer_not_pending(id: i64) -> StoreError {
    StoreError::Conflict(format!(
        "court timer {id} is not pending (handled already, e.g. by another node)"
    ))
}

/// The statements a court step is made of. Each backend writes them in its own dialect inside
/// the step's transaction; [`compose_step`] puts them together, once for both.
pub(crate) trait StepStatements {
    /// A new petition row (its case must exist); its id.
    fn insert_petition(&mut self, p: &Petition) -> Result<i64>;
    /// Marks a timer done; false when it was not pending.
    fn claim_timer(&mut self, id: i64, at: UnixMicros) -> Result<bool>;
    /// The order's projection row (its case must exist); its zones are written apart.
    fn insert_order(&mut self, order: &domain::Order, at: UnixMicros) -> Result<OrderId>;
    fn insert_zones(&mut self, order: OrderId, zones: Vec<Zone>) -> Result<Vec<Zone>>;
    fn delete_zones(&mut self, order: OrderId) -> Result<()>;
    /// A petition's new state, linked to the order when it has none yet; false when there
    /// is no such petition.
    fn set_petition_state(
        &mut self,
        petition: i64,
        state: &str,
        at: UnixMicros,
        order: Option<OrderId>,
    ) -> Result<bool>;
    fn insert_event(&mut self, petition: i64, e: &NewPetitionEvent) -> Result<()>;
    /// The projection's end, from the version in force.
    fn set_order_end(&mut self, v: &OrderVersionRecord) -> Result<()>;
    /// The projection's distances, from the version in force.
    fn set_order_conditions(&mut self, v: &OrderVersionRecord) -> Result<()>;
    fn insert_version(&mut self, v: &OrderVersionRecord) -> Result<()>;
    /// Cancels the pending reminders of one version of an order.
    fn cancel_reminders(&mut self, order: OrderId, version: u32, at: UnixMicros) -> Result<()>;
    fn insert_timer(&mut self, order: OrderId, t: &NewTimer) -> Result<()>;
    /// The order's protection ended at `at`, unless it had ended already.
    fn mark_lapsed(&mut self, order: OrderId, at: UnixMicros) -> Result<()>;
    /// The notice, or `None` when its dedup key was written already (sent once).
    fn insert_notice(&mut self, n: &NewNotice, at: UnixMicros) -> Result<Option<NoticeRecord>>;
}

/// One court step, in the order its rules need: the step's timers are claimed first (one
/// already done refuses the whole step), then the order, the petition, the version and the
/// projection that follows it, timers and notices.
pub(crate) fn compose_step(w: &mut impl StepStatements, step: CourtStep) -> Result<StepOutcome> {
    let at = step.at;
    for id in &step.timers_done {
        if !w.claim_timer(*id, at)? {
            return Err(timer_not_pending(*id));
        }
    }
    let mut order_id = step.order_id;
    let mut zones = Vec::new();
    if let Some(mut order) = step.new_order {
        let id = w.insert_order(&order, at)?;
        zones = w.insert_zones(id, std::mem::take(&mut order.zones))?;
        order_id = Some(id);
    }
    if let Some((pid, state)) = &step.petition {
        if !w.set_petition_state(*pid, state, at, order_id)? {
            return Err(StoreError::NotFound(format!("petition {pid}")));
        }
        if let Some(e) = &step.event {
            w.insert_event(*pid, e)?;
        }
    }
    if let Some(mut v) = step.version {
        let oid = order_id.ok_or_else(|| StoreError::InvalidReference("no order".into()))?;
        v.order_id = oid;
        if v.zones.is_empty() && !zones.is_empty() {
            v.zones = zones.clone();
        }
        // The projection the engine reads follows the newest version: its end, and for an
        // amendment its conditions and zones.
        w.set_order_end(&v)?;
        if step.replace_conditions {
            w.set_order_conditions(&v)?;
        }
        if step.replace_zones {
            w.delete_zones(oid)?;
            zones = w.insert_zones(oid, std::mem::take(&mut v.zones))?;
            v.zones = zones.clone();
        }
        w.insert_version(&v)?;
    }
    if let (Some(version), Some(oid)) = (step.cancel_reminders_of, order_id) {
        w.cancel_reminders(oid, version, at)?;
    }
    for t in &step.timers {
        let oid = t
            .order_id
            .or(order_id)
            .ok_or_else(|| StoreError::InvalidReference("timer without an order".into()))?;
        w.insert_timer(oid, t)?;
    }
    if step.lapsed
        && let Some(oid) = order_id
    {
        w.mark_lapsed(oid, at)?;
    }
    let mut notices = Vec::new();
    for mut n in step.notices {
        if n.order_id.is_none() {
            n.order_id = order_id;
        }
        if let Some(rec) = w.insert_notice(&n, at)? {
            notices.push(rec);
        }
    }
    Ok(StepOutcome {
        order_id,
        zones,
        notices,
    })
}

/// A petition filed: its row, its first history row and its notices (each dedup key
/// prefixed with the new petition's id), in the caller's transaction.
pub(crate) fn compose_filing(
    w: &mut impl StepStatements,
    p: Petition,
    event: NewPetitionEvent,
    notices: Vec<NewNotice>,
) -> Result<(Petition, Vec<NoticeRecord>)> {
    let id = w.insert_petition(&p)?;
    w.insert_event(id, &event)?;
    let mut written = Vec::new();
    for mut n in notices {
        n.petition_id = Some(id);
        n.dedup_key = format!("petition-{id}:{}", n.dedup_key);
        written.extend(w.insert_notice(&n, p.filed_at)?);
    }
    Ok((
        Petition {
            id,
            updated_at: p.filed_at,
            order_id: None,
            ..p
        },
        written,
    ))
}

/// A court step's statements on SQLite.
struct SqliteStep<'a>(&'a Connection);

impl StepStatements for SqliteStep<'_> {
    fn insert_petition(&mut self, p: &Petition) -> Result<i64> {
        ensure_exists(self.0, "cases", p.case_id.0, "case")?;
        self.0.execute(
            "INSERT INTO petitions (case_id, kind, petitioner, petitioner_account_id,
                no_approach_m, duration_s, no_contact_by_phone, electronic_monitoring,
                statement, state, filed_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
            params![
                p.case_id.0,
                p.kind.as_str(),
                p.petitioner,
                p.petitioner_account_id,
                p.no_approach_m,
                p.duration_s,
                p.no_contact_by_phone,
                p.electronic_monitoring,
                p.statement,
                p.state,
                p.filed_at.0
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    fn claim_timer(&mut self, id: i64, at: UnixMicros) -> Result<bool> {
        let n = self.0.execute(
            "UPDATE court_timers SET done_at = ?2 WHERE id = ?1 AND done_at IS NULL",
            params![id, at.0],
        )?;
        Ok(n > 0)
    }

    fn insert_order(&mut self, order: &domain::Order, at: UnixMicros) -> Result<OrderId> {
        ensure_exists(self.0, "cases", order.case_id.0, "case")?;
        self.0.execute(
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
                at.0
            ],
        )?;
        Ok(OrderId(self.0.last_insert_rowid()))
    }

    fn insert_zones(&mut self, order: OrderId, zones: Vec<Zone>) -> Result<Vec<Zone>> {
        insert_zones(self.0, order, zones)
    }

    fn delete_zones(&mut self, order: OrderId) -> Result<()> {
        self.0
            .execute("DELETE FROM zones WHERE order_id = ?1", [order.0])?;
        Ok(())
    }

    fn set_petition_state(
        &mut self,
        petition: i64,
        state: &str,
        at: UnixMicros,
        order: Option<OrderId>,
    ) -> Result<bool> {
        let n = self.0.execute(
            "UPDATE petitions SET state = ?2, updated_at = ?3, order_id = COALESCE(order_id, ?4)
             WHERE id = ?1",
            params![petition, state, at.0, order.map(|o| o.0)],
        )?;
        Ok(n > 0)
    }

    fn insert_event(&mut self, petition: i64, e: &NewPetitionEvent) -> Result<()> {
        insert_event(self.0, petition, e)
    }

    fn set_order_end(&mut self, v: &OrderVersionRecord) -> Result<()> {
        self.0.execute(
            "UPDATE orders SET valid_to = ?2 WHERE id = ?1",
            params![v.order_id.0, v.valid_to.map(|t| t.0)],
        )?;
        Ok(())
    }

    fn set_order_conditions(&mut self, v: &OrderVersionRecord) -> Result<()> {
        self.0.execute(
            "UPDATE orders SET no_approach_m = ?2, warning_m = ?3, disclosure_radius_m = ?4
             WHERE id = ?1",
            params![
                v.order_id.0,
                v.no_approach_m,
                v.warning_m,
                v.disclosure_radius_m
            ],
        )?;
        Ok(())
    }

    fn insert_version(&mut self, v: &OrderVersionRecord) -> Result<()> {
        insert_version(self.0, v)
    }

    fn cancel_reminders(&mut self, order: OrderId, version: u32, at: UnixMicros) -> Result<()> {
        self.0.execute(
            "UPDATE court_timers SET cancelled_at = ?3
             WHERE order_id = ?1 AND version = ?2 AND kind = 'reminder'
               AND done_at IS NULL AND cancelled_at IS NULL",
            params![order.0, version, at.0],
        )?;
        Ok(())
    }

    fn insert_timer(&mut self, order: OrderId, t: &NewTimer) -> Result<()> {
        self.0.execute(
            "INSERT INTO court_timers (order_id, at, kind, recipient, version) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![order.0, t.at.0, t.kind, t.recipient, t.version],
        )?;
        Ok(())
    }

    fn mark_lapsed(&mut self, order: OrderId, at: UnixMicros) -> Result<()> {
        self.0.execute(
            "UPDATE orders SET lapsed_at = COALESCE(lapsed_at, ?2) WHERE id = ?1",
            params![order.0, at.0],
        )?;
        Ok(())
    }

    fn insert_notice(&mut self, n: &NewNotice, at: UnixMicros) -> Result<Option<NoticeRecord>> {
        insert_notice(self.0, n, at)
    }
}

fn insert_event(conn: &Connection, petition: i64, e: &NewPetitionEvent) -> Result<()> {
    conn.execute(
        "INSERT INTO petition_events (petition_id, at, actor_account_id, actor_role, event, reasons, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            petition,
            e.at.0,
            e.actor_account_id,
            e.actor_role,
            e.event,
            e.reasons,
            e.details
        ],
    )?;
    Ok(())
}

impl Store {
    /// Files a petition with its first history row and notices (their dedup keys are
    /// prefixed with the new petition's id).
    pub async fn file_petition(
        &self,
        p: Petition,
        event: NewPetitionEvent,
        notices: Vec<NewNotice>,
    ) -> Result<(Petition, Vec<NoticeRecord>)> {
        if self.is_postgres() {
            return self
                .pg_write(move |c| compose_filing(c, p, event, notices), None)
                .await;
        }
        self.write(
            move |conn| compose_filing(&mut SqliteStep(conn), p, event, notices),
            None,
        )
        .await
    }

    /// Writes one workflow step (see [`CourtStep`]) in one transaction. A step whose timer
    /// was handled already is refused as a whole (`Conflict`), so a timer fires once even with
    /// several nodes on one PostgreSQL.
    pub async fn apply_court_step(&self, step: CourtStep) -> Result<StepOutcome> {
        if self.is_postgres() {
            return self
                .pg_write(move |c| crate::court::compose_step(c, step), None)
                .await;
        }
        self.write(move |conn| compose_step(&mut SqliteStep(conn), step), None)
            .await
    }

    pub async fn petition(&self, id: i64) -> Result<Option<Petition>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::court::petition(c, id))
                .await;
        }
        self.read(move |conn| {
            conn.query_row("SELECT * FROM petitions WHERE id = ?1", [id], |r| {
                Ok(petition_from_row(r))
            })
            .optional()?
            .transpose()
        })
        .await
    }

    /// Every petition, oldest first.
    pub async fn list_petitions(&self) -> Result<Vec<Petition>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::court::list_petitions).await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT * FROM petitions ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok(petition_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// The petition that issued `order`, if it came from one.
    pub async fn petition_for_order(&self, order: OrderId) -> Result<Option<Petition>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::court::petition_for_order(c, order))
                .await;
        }
        self.read(move |conn| {
            conn.query_row(
                "SELECT * FROM petitions WHERE order_id = ?1",
                [order.0],
                |r| Ok(petition_from_row(r)),
            )
            .optional()?
            .transpose()
        })
        .await
    }

    /// A petition's history, oldest first.
    pub async fn petition_events(&self, petition: i64) -> Result<Vec<PetitionEvent>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::court::petition_events(c, petition))
                .await;
        }
        self.read(move |conn| {
            let mut stmt =
                conn.prepare("SELECT * FROM petition_events WHERE petition_id = ?1 ORDER BY id")?;
            let rows = stmt.query_map([petition], |r| Ok(event_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// The cases the court handles: every case with a petition or an order.
    pub async fn court_cases(&self) -> Result<Vec<CaseId>> {
        if self.is_postgres() {
            return self.pg_read(crate::postgres::court::court_cases).await;
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT case_id FROM petitions UNION SELECT case_id FROM orders ORDER BY 1",
            )?;
            let rows = stmt.query_map([], |r| Ok(CaseId(r.get(0)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// An order's versions, oldest first.
    pub async fn order_versions(&self, order: OrderId) -> Result<Vec<OrderVersionRecord>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::court::order_versions(c, order))
                .await;
        }
        self.read(move |conn| {
            let mut stmt =
                conn.prepare("SELECT * FROM order_versions WHERE order_id = ?1 ORDER BY version")?;
            let rows = stmt.query_map([order.0], |r| Ok(version_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// When the order's protection ended, if it has.
    pub async fn order_lapsed_at(&self, order: OrderId) -> Result<Option<UnixMicros>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::court::order_lapsed_at(c, order))
                .await;
        }
        self.read(move |conn| {
            let v: Option<Option<i64>> = conn
                .query_row(
                    "SELECT lapsed_at FROM orders WHERE id = ?1",
                    [order.0],
                    |r| r.get(0),
                )
                .optional()?;
            match v {
                None => Err(StoreError::NotFound(format!("order {order}"))),
                Some(t) => Ok(t.map(UnixMicros)),
            }
        })
        .await
    }

    /// Timers due at `now` (not done, not cancelled), earliest first.
    pub async fn due_court_timers(&self, now: UnixMicros) -> Result<Vec<CourtTimer>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::court::due_court_timers(c, now))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, order_id, at, kind, recipient, version FROM court_timers
                 WHERE done_at IS NULL AND cancelled_at IS NULL AND at <= ?1
                 ORDER BY at, id LIMIT 1000",
            )?;
            let rows = stmt.query_map([now.0], |r| Ok(timer_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Notices, oldest first (at most `limit`, the newest ones).
    pub async fn list_notices(&self, limit: usize) -> Result<Vec<NoticeRecord>> {
        if self.is_postgres() {
            return self
                .pg_read(move |c| crate::postgres::court::list_notices(c, limit))
                .await;
        }
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT * FROM (SELECT * FROM notices ORDER BY id DESC LIMIT ?1) ORDER BY id",
            )?;
            let rows = stmt.query_map([limit as i64], |r| Ok(notice_from_row(r)))?;
            rows.map(|r| r?).collect()
        })
        .await
    }
}
