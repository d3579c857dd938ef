//! Evidence bundles for a court: `bulwark evidence export` and `bulwark evidence verify`.
//!
//! An export gathers what the court's request covers (issue 17), and no more:
//!
//! - the offender's fixes in the window (his movements are the evidence);
//! - the protected person's fixes only inside the case's alerts that her position is
//!   evidence of (proximity, boundary grazing, SOS), with [`VICTIM_MARGIN_S`] either side,
//!   and rounded to [`VICTIM_DECIMALS`] decimal degrees (about 11 m, the accuracy of a
//!   phone's GNSS fix: the distance stays provable, her routine does not travel);
//! - the case's alerts and orders (zones left out by the bundle);
//! - the access-log records *about this case* from the window's start to the head, and for
//!   the records of other cases in between only their chain links (seq, hashes, content
//!   digest), so the excerpt is still checked against the signed checkpoints;
//!
//! and writes them with
//! [`audit::write_bundle`], signed with the data directory's key. The export itself is an
//! access to location data: its audit record (actor `system`, purpose `evidence_export`) is
//! made durable before any file is written. It opens the store beside a running server
//! safely: SQLite serialises writers, and each audit append reads the chain head inside its
//! own transaction.

use crate::privacy::audit_log::{KeyFileError, load_key};
use audit::{
    Actor, ActorKind, AuditAction, AuditEntry, BundleAlert, BundleFix, BundleInput, BundleOrder,
    BundleReport, Outcome, Purpose, Subject,
};
use domain::{AlertRule, CaseId, LatLon, PersonRole, UnixMicros};
use std::path::Path;
use std::sync::Arc;
use store::{AuditSigner, Store};

/// Her fixes go in this long before and after an alert they are evidence of.
pub const VICTIM_MARGIN_S: i64 = 600;

/// Decimal places of her coordinates in a bundle (1e-4 degrees: about 11 m north-south).
pub const VICTIM_DECIMALS: i32 = 4;

/// The alerts her position is evidence of.
fn needs_her_position(rule: AlertRule) -> bool {
    matches!(
        rule,
        AlertRule::ProximityViolation
            | AlertRule::ProximityWarning
            | AlertRule::ProximityNotice
            | AlertRule::BoundaryGrazing
            | AlertRule::Sos
    )
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Why an export or a verification could not be done.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("bundle: {0}")]
    Bundle(#[from] audit::BundleError),
    #[error("no case {0}")]
    NoCase(i64),
    #[error("the export needs a reason of at least 10 characters")]
    Reason,
}

/// Exports case `case` over `[from, to)` into the empty directory `out`. Returns the
/// manifest's SHA-256 (also written to the access log).
pub async fn export(
    data_dir: &Path,
    case: CaseId,
    window: (UnixMicros, UnixMicros),
    reason: &str,
    out: &Path,
    now: UnixMicros,
) -> Result<[u8; 32], EvidenceError> {
    if reason.trim().chars().count() < access::authz::MIN_REASON_CHARS {
        return Err(EvidenceError::Reason);
    }
    let key = Arc::new(load_key(data_dir)?);
    let dir = data_dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .map_err(|e| store::StoreError::Corrupt(e.to_string()))??;
    let signer = crate::privacy::audit_log::signer(data_dir, key);
    let result = export_from(&store, signer, case, window, reason, out, now).await;
    let s2 = store.clone();
    let _ = tokio::task::spawn_blocking(move || s2.close()).await;
    result
}

async fn export_from(
    store: &Store,
    signer: AuditSigner,
    case: CaseId,
    (from, to): (UnixMicros, UnixMicros),
    reason: &str,
    out: &Path,
    now: UnixMicros,
) -> Result<[u8; 32], EvidenceError> {
    let cases = store.list_cases().await?;
    let k = cases
        .into_iter()
        .find(|k| k.id == case)
        .ok_or(EvidenceError::NoCase(case.0))?;
    let key = signer.key.clone();
    // Logged first: no evidence leaves without its record (and the reads need its token).
    let (token, _) = store
        .authorize(
            vec![AuditEntry {
                actor: Actor {
                    kind: ActorKind::System,
                    id: 0,
                    role: "operator".into(),
                },
                action: AuditAction::Export,
                subject: Subject {
                    case: Some(case),
                    person: None,
                    device: None,
                },
                purpose: Some(Purpose {
                    code: "evidence_export".into(),
                    text: reason.trim().into(),
                }),
                outcome: Outcome::Allowed,
                details: format!("window {} .. {} to {}", from.0, to.0, out.display()),
            }],
            &[],
            now,
            Some(signer.clone()),
        )
        .await?;
    // The head now includes the export record: sign it so the excerpt ends on a checkpoint.
    store.checkpoint_audit(signer.clone(), now).await?;

    let people = store.list_people().await?;
    let devices = store.list_devices().await?;
    let alerts: Vec<_> = store
        .list_alerts(&token, false, 1_000_000)
        .await?
        .into_iter()
        .filter(|a| {
            crate::privacy::authz::alert_case(a, &devices, std::slice::from_ref(&k)) == Some(case)
        })
        .filter(|a| a.alert.raised_at < to && a.alert.updated_at >= from)
        .collect();
    // The windows in which her position is evidence.
    let her_windows: Vec<(UnixMicros, UnixMicros)> = alerts
        .iter()
        .filter(|a| needs_her_position(a.alert.rule))
        .map(|a| {
            (
                a.alert.raised_at.plus_secs(-VICTIM_MARGIN_S),
                a.alert.updated_at.plus_secs(VICTIM_MARGIN_S),
            )
        })
        .collect();
    let mut fixes = Vec::new();
    for d in devices
        .iter()
        .filter(|d| d.owner.is_some_and(|o| crate::privacy::authz::party(&k, o)))
    {
        let party = people
            .iter()
            .find(|p| Some(p.id) == d.owner)
            .map(|p| p.role);
        let Some(party) = party else { continue };
        for mut fix in store.track(&token, d.id, from, to, 1_000_000).await? {
            if party != PersonRole::Offender {
                let t = fix.device_time;
                if !her_windows.iter().any(|(a, b)| *a <= t && t <= *b) {
                    continue;
                }
                let p = fix.position;
                fix.position = LatLon::new(
                    round_to(p.lat(), VICTIM_DECIMALS),
                    round_to(p.lon(), VICTIM_DECIMALS),
                )
                .unwrap_or(p);
            }
            fixes.push(BundleFix { party, fix });
        }
    }
    fixes.sort_by_key(|f| (f.fix.device_time, f.fix.device_id));
    let alerts = alerts
        .into_iter()
        .map(|a| BundleAlert {
            alert: a.alert,
            // Handling history is not stored per step yet; the access log has each change.
            handling: Vec::new(),
        })
        .collect();
    let orders = store
        .list_orders()
        .await?
        .into_iter()
        .filter(|o| o.case_id == case)
        .map(|o| BundleOrder {
            version: 1,
            issued_at: o.valid_from,
            reasons: String::new(),
            order: o,
        })
        .collect();
    // A consecutive run of the chain from the window's start to the head (so the export's
    // own record is included): this case's records in full, the others as links only.
    let mut audit = Vec::new();
    let mut audit_links = Vec::new();
    let mut started = false;
    let mut after = 0;
    loop {
        let page = store.audit_records(after, 10_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, r) in page {
            let r = match r {
                Ok(r) => r,
                // The blob is sound (it is what the chain covers); its case is the true one.
                Err(store::AuditRowError::ColumnsDisagree { record, .. }) => *record,
                Err(store::AuditRowError::Undecodable(_)) => continue,
            };
            started |= r.time >= from;
            if !started {
                continue;
            }
            if r.entry.subject.case == Some(case) {
                audit.push(r);
            } else {
                audit_links.push(r.link());
            }
        }
    }
    let (checkpoints, _) = store.audit_checkpoints().await?;
    let input = BundleInput {
        case,
        case_reference: k.reference.clone(),
        window: (from, to),
        fixes,
        alerts,
        orders,
        audit,
        audit_links,
        checkpoints,
        created_at: now,
    };
    let out = out.to_path_buf();
    let digest = tokio::task::spawn_blocking(move || audit::write_bundle(&out, &input, &key))
        .await
        .map_err(|e| store::StoreError::Corrupt(e.to_string()))??;
    Ok(digest)
}

/// Verifies a bundle with the public key of `data_dir`'s signing key.
pub fn verify(dir: &Path, data_dir: &Path) -> Result<BundleReport, EvidenceError> {
    let key = load_key(data_dir)?;
    Ok(audit::verify_bundle(dir, &key.verifying_key())?)
}
