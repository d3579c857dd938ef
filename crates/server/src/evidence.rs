//! Evidence bundles for a court: `bulwark evidence export` and `bulwark evidence verify`.
//!
//! An export gathers one case's fixes, alerts and orders in a time window, the access-log
//! excerpt of that window with its checkpoints, and writes them with
//! [`audit::write_bundle`], signed with the data directory's key. The export itself is an
//! access to location data: its audit record (actor `system`, purpose `evidence_export`) is
//! made durable before any file is written. It opens the store beside a running server
//! safely: SQLite serialises writers, and each audit append reads the chain head inside its
//! own transaction.

use crate::audit_log::{KeyFileError, load_key};
use audit::{
    Actor, ActorKind, AuditAction, AuditEntry, BundleAlert, BundleFix, BundleInput, BundleOrder,
    BundleReport, Outcome, Purpose, Subject,
};
use domain::{CaseId, UnixMicros};
use std::path::Path;
use std::sync::Arc;
use store::{AuditSigner, Store};

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
    let signer = crate::audit_log::signer(data_dir, key);
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
    // Logged first: no evidence leaves without its record.
    store
        .append_audit(
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
            now,
            Some(signer.clone()),
        )
        .await?;
    // The head now includes the export record: sign it so the excerpt ends on a checkpoint.
    store.checkpoint_audit(signer.clone(), now).await?;

    let people = store.list_people().await?;
    let devices = store.list_devices().await?;
    let mut fixes = Vec::new();
    for d in devices
        .iter()
        .filter(|d| d.owner.is_some_and(|o| crate::authz::party(&k, o)))
    {
        let party = people
            .iter()
            .find(|p| Some(p.id) == d.owner)
            .map(|p| p.role);
        let Some(party) = party else { continue };
        for fix in store.track(d.id, from, to, 1_000_000).await? {
            fixes.push(BundleFix { party, fix });
        }
    }
    fixes.sort_by_key(|f| (f.fix.device_time, f.fix.device_id));
    let alerts = store
        .list_alerts(false, 1_000_000)
        .await?
        .into_iter()
        .filter(|a| crate::api::alert_case(a, &devices, std::slice::from_ref(&k)) == Some(case))
        .filter(|a| a.alert.raised_at < to && a.alert.updated_at >= from)
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
    // A consecutive run of the log (verify_excerpt needs one): every record from the
    // window's start to now, so the export's own record is included.
    let mut audit = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_records(after, 10_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        audit.extend(
            page.into_iter()
                .filter_map(|(_, r)| r.ok())
                .filter(|r| r.time >= from),
        );
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
