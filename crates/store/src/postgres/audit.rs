//! The access log on PostgreSQL: the same hash chain, in commit order even with several
//! nodes writing.
//!
//! An append takes a transaction advisory lock (`AUDIT_CHAIN_LOCK`) before it reads the
//! chain head, and holds it until its group commits or rolls back. A second node's append
//! waits on that lock, then reads the head anew (READ COMMITTED: each statement sees what
//! has committed), so the chain has no fork; a rolled-back job or group leaves no gap,
//! because the head is read from the table, never kept in memory.

use crate::sqlite::{AuditRowError, AuditSigner, IndexedColumns};
use crate::{Result, StoreError};
use audit::{AuditChain, AuditEntry, AuditRecord, Checkpoint};
use domain::{CaseId, UnixMicros};
use postgres::Client;

/// Key of the advisory lock that serialises appends to the chain across nodes.
const AUDIT_CHAIN_LOCK: i64 = 0x6275_6c77_0002;

pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        time BIGINT NOT NULL,
        actor_id BIGINT NOT NULL,
        action TEXT NOT NULL,
        case_id BIGINT,
        record BYTEA NOT NULL
    );
    CREATE INDEX audit_log_time ON audit_log(time);
    CREATE INDEX audit_log_actor ON audit_log(actor_id, time);
    CREATE INDEX audit_log_action ON audit_log(action, time);
    CREATE INDEX audit_log_case ON audit_log(case_id, time) WHERE case_id IS NOT NULL;
    CREATE TABLE audit_checkpoints (
        seq BIGINT PRIMARY KEY,
        checkpoint BYTEA NOT NULL
    );
"#;

/// Takes the chain's lock for the rest of this transaction (re-entrant: a later
/// [`chain_head`] in the same transaction takes it again at no cost).
pub(crate) fn lock_chain(c: &mut Client) -> Result<()> {
    c.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_CHAIN_LOCK])?;
    Ok(())
}

/// Locks the chain for this transaction and reads its head.
fn chain_head(c: &mut Client) -> Result<AuditChain> {
    lock_chain(c)?;
    let last = c.query_opt(
        "SELECT record FROM audit_log ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    match last {
        None => Ok(AuditChain::new()),
        Some(r) => {
            let b: Vec<u8> = r.try_get("record")?;
            let rec = AuditRecord::from_bytes(&b)
                .map_err(|e| StoreError::Corrupt(format!("last audit record: {e}")))?;
            Ok(AuditChain::resume(&rec))
        }
    }
}

fn insert_checkpoint(c: &mut Client, cp: &Checkpoint) -> Result<()> {
    c.execute(
        "INSERT INTO audit_checkpoints (seq, checkpoint) VALUES ($1, $2)
         ON CONFLICT (seq) DO UPDATE SET checkpoint = EXCLUDED.checkpoint",
        &[&(cp.seq as i64), &cp.to_bytes()],
    )?;
    Ok(())
}

/// Appends `entries`; returns them as stored and the newest checkpoint signed on the way.
pub(crate) fn append_tx(
    c: &mut Client,
    entries: Vec<AuditEntry>,
    now: UnixMicros,
    signer: Option<&AuditSigner>,
) -> Result<(Vec<AuditRecord>, Option<Checkpoint>)> {
    let mut chain = chain_head(c)?;
    let mut out = Vec::with_capacity(entries.len());
    let mut signed = None;
    for entry in entries {
        let rec = chain.append(entry, now);
        c.execute(
            "INSERT INTO audit_log (seq, time, actor_id, action, case_id, record) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &(rec.seq as i64),
                &rec.time.0,
                &rec.entry.actor.id,
                &rec.entry.action.as_str(),
                &rec.entry.subject.case.map(|c| c.0),
                &rec.to_bytes(),
            ],
        )?;
        if let Some(s) = signer.filter(|s| Checkpoint::due(rec.seq, s.every)) {
            let cp = Checkpoint::sign(&s.key, rec.seq, rec.hash, now);
            insert_checkpoint(c, &cp)?;
            signed = Some(cp);
        }
        out.push(rec);
    }
    Ok((out, signed))
}

/// A checkpoint at the head unless one exists there: `(new, at_head)`.
pub(crate) fn checkpoint_tx(
    c: &mut Client,
    signer: &AuditSigner,
    now: UnixMicros,
) -> Result<(Option<Checkpoint>, Option<Checkpoint>)> {
    let (seq, hash) = chain_head(c)?.head();
    if seq == 0 {
        return Ok((None, None));
    }
    let existing = c.query_opt(
        "SELECT checkpoint FROM audit_checkpoints WHERE seq = $1",
        &[&(seq as i64)],
    )?;
    if let Some(r) = existing {
        let b: Vec<u8> = r.try_get("checkpoint")?;
        if let Some(cp) = Checkpoint::from_bytes(&b) {
            return Ok((None, Some(cp)));
        }
    }
    let cp = Checkpoint::sign(&signer.key, seq, hash, now);
    insert_checkpoint(c, &cp)?;
    Ok((Some(cp.clone()), Some(cp)))
}

pub(crate) fn audit_records(
    c: &mut Client,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, std::result::Result<AuditRecord, AuditRowError>)>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(
        "SELECT seq, time, actor_id, action, case_id, record FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&(after as i64), &limit],
    )?
    .iter()
    .map(|r| {
        let seq: i64 = r.try_get("seq")?;
        let columns = IndexedColumns {
            seq,
            time: r.try_get("time")?,
            actor_id: r.try_get("actor_id")?,
            action: r.try_get("action")?,
            case_id: r.try_get("case_id")?,
        };
        let blob: Vec<u8> = r.try_get("record")?;
        let rec = AuditRecord::from_bytes(&blob)
            .map_err(|e| AuditRowError::Undecodable(e.to_string()))
            .and_then(|rec| columns.check(rec));
        Ok((seq as u64, rec))
    })
    .collect()
}

pub(crate) fn audit_records_of_case(
    c: &mut Client,
    case: CaseId,
    except_actor: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for r in c.query(
        "SELECT record FROM audit_log WHERE case_id = $1 AND actor_id != $2 ORDER BY seq DESC LIMIT $3",
        &[&case.0, &except_actor, &limit],
    )? {
        let blob: Vec<u8> = r.try_get("record")?;
        if let Ok(rec) = AuditRecord::from_bytes(&blob) {
            out.push(rec);
        }
    }
    Ok(out)
}

pub(crate) fn audit_checkpoints(c: &mut Client) -> Result<(Vec<Checkpoint>, usize)> {
    let blobs = c
        .query("SELECT checkpoint FROM audit_checkpoints ORDER BY seq", &[])?
        .iter()
        .map(|r| r.try_get::<_, Vec<u8>>("checkpoint"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let total = blobs.len();
    let cps: Vec<Checkpoint> = blobs
        .iter()
        .filter_map(|b| Checkpoint::from_bytes(b))
        .collect();
    Ok((cps.clone(), total - cps.len()))
}
