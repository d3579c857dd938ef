//! The retention purge: deletes fixes that `access::retention::plan` says must go.
//!
//! For every person who is a party of a case: an offender's fixes are kept while any of his
//! orders is in force or open-ended, and for the policy's days after the last one ends; a
//! protected person's for the policy's hours. Fixes around alerts are held as evidence
//! (incident windows: from [`INCIDENT_MARGIN_S`] before the alert was raised to the same
//! margin after it cleared; an alert still active holds everything after its start).
//! Fixes of devices that belong to no case party are not touched. Each run deletes and writes
//! its one `purge` audit record in one transaction.

pub use access::RetentionPolicy;
use access::{RetentionSubject, Window};
use audit::{Actor, ActorKind, AuditAction, AuditEntry, Outcome, Subject};
use domain::{PersonId, PersonRole, UnixMicros};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use store::{AuditSigner, Store};

/// Margin around an alert episode held as evidence (24 h; a placeholder until the
/// operator's legal basis sets it, like the policy's periods).
pub const INCIDENT_MARGIN_S: i64 = 24 * 3_600;

/// What a run did (or, for a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeSummary {
    pub people: usize,
    /// Fixes deleted (0 in a dry run).
    pub deleted: u64,
    /// The windows planned per device.
    pub windows: Vec<(domain::DeviceId, Vec<(UnixMicros, UnixMicros)>)>,
}

/// Plans the purge at `now` and, unless `dry_run`, carries it out.
pub async fn purge(
    store: &Store,
    policy: RetentionPolicy,
    now: UnixMicros,
    signer: Option<AuditSigner>,
    dry_run: bool,
) -> Result<PurgeSummary, store::StoreError> {
    let people = store.list_people().await?;
    let cases = store.list_cases().await?;
    let orders = store.list_orders().await?;
    let devices = store.list_devices().await?;
    let alerts = store
        .list_alerts(
            &store::Authorized::system("retention: the incidents that keep data"),
            false,
            usize::MAX >> 1,
        )
        .await?;
    // Per party: (protection end — None while any order is open or in force — , incidents).
    let mut parties: BTreeMap<PersonId, (Option<UnixMicros>, Vec<Window>)> = BTreeMap::new();
    for k in &cases {
        let case_orders: Vec<_> = orders.iter().filter(|o| o.case_id == k.id).collect();
        // No order yet, or one without an end: protection has not ended.
        let end = if case_orders.is_empty() || case_orders.iter().any(|o| o.valid_to.is_none()) {
            None
        } else {
            case_orders.iter().filter_map(|o| o.valid_to).max()
        };
        let incidents: Vec<Window> = alerts
            .iter()
            .filter(|a| {
                crate::privacy::authz::alert_case(a, &devices, std::slice::from_ref(k))
                    == Some(k.id)
            })
            .map(|a| {
                let to = match (a.condition_active, a.cleared_at) {
                    (false, Some(c)) => c.plus_secs(INCIDENT_MARGIN_S),
                    _ => UnixMicros(i64::MAX),
                };
                Window::new(a.alert.raised_at.plus_secs(-INCIDENT_MARGIN_S), to)
            })
            .collect();
        for p in std::iter::once(k.offender).chain(k.protected.iter().copied()) {
            let entry = parties.entry(p).or_insert((end, Vec::new()));
            // A person in several cases is kept as long as the longest-lasting of them.
            entry.0 = match (entry.0, end) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            entry.1.extend(incidents.iter().copied());
        }
    }
    let mut summary = PurgeSummary {
        people: parties.len(),
        ..Default::default()
    };
    for (person, (protection_end, incidents)) in &parties {
        let Some(party) = people.iter().find(|p| p.id == *person).map(|p| p.role) else {
            continue;
        };
        let subject = RetentionSubject {
            party,
            protection_end: if party == PersonRole::Offender {
                *protection_end
            } else {
                None
            },
            incidents,
        };
        let report = access::plan(
            &policy,
            &subject,
            // Nothing is stored from before the epoch (ingest refuses unset clocks).
            Window::new(UnixMicros(0), now),
            now,
        );
        if report.purge.is_empty() {
            continue;
        }
        let windows: Vec<_> = report.purge.iter().map(|w| (w.from, w.to)).collect();
        for d in devices.iter().filter(|d| d.owner == Some(*person)) {
            summary.windows.push((d.id, windows.clone()));
        }
    }
    if dry_run {
        return Ok(summary);
    }
    let entry = AuditEntry {
        actor: Actor {
            kind: ActorKind::System,
            id: 0,
            role: "retention".into(),
        },
        action: AuditAction::Purge,
        subject: Subject::default(),
        purpose: None,
        outcome: Outcome::Allowed,
        details: format!(
            "policy: offender {} days after order end, victim {} hours; {} devices",
            policy.offender_days_after_order_end,
            policy.victim_hours,
            summary.windows.len()
        ),
    };
    summary.deleted = store
        .purge_fixes(summary.windows.clone(), entry, now, signer)
        .await?;
    Ok(summary)
}

/// Opens the store in `data_dir` and runs [`purge`] with the directory's signing key.
pub async fn purge_data_dir(
    data_dir: &Path,
    policy: RetentionPolicy,
    now: UnixMicros,
    dry_run: bool,
) -> Result<PurgeSummary, crate::privacy::audit_log::VerifyError> {
    let key = Arc::new(crate::privacy::audit_log::load_key(data_dir)?);
    let dir = data_dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .map_err(|e| store::StoreError::Corrupt(e.to_string()))??;
    let signer = crate::privacy::audit_log::signer(data_dir, key);
    let result = purge(&store, policy, now, Some(signer), dry_run).await;
    let s2 = store.clone();
    let _ = tokio::task::spawn_blocking(move || s2.close()).await;
    Ok(result?)
}

/// The purge inside the server: every `retention.interval_s` (0: off) with the server clock,
/// reporting what it removed in the log, in metrics (`bulwark_retention_runs_total`,
/// `bulwark_retention_deleted_total`, `bulwark_retention_last_deleted`) and in its `purge`
/// audit record. The first run is one interval after start.
pub fn spawn_job(
    state: crate::AppState,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let r = &state.config.retention;
        if r.interval_s == 0 {
            let _ = shutdown.wait_for(|v| *v).await;
            return;
        }
        let policy = RetentionPolicy {
            offender_days_after_order_end: r.offender_days_after_order_end,
            victim_hours: r.victim_hours,
        };
        let every = std::time::Duration::from_secs(r.interval_s);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // Once per cluster: only the leader runs it.
        while state.next_singleton_tick(&mut tick, &mut shutdown).await {
            let now = state.clock.now();
            match purge(
                &state.store,
                policy,
                now,
                Some(state.audit_signer.clone()),
                false,
            )
            .await
            {
                Ok(summary) => {
                    metrics::counter!("bulwark_retention_runs_total").increment(1);
                    metrics::counter!("bulwark_retention_deleted_total").increment(summary.deleted);
                    metrics::gauge!("bulwark_retention_last_deleted").set(summary.deleted as f64);
                    tracing::info!(
                        deleted = summary.deleted,
                        people = summary.people,
                        devices = summary.windows.len(),
                        "retention purge"
                    );
                }
                Err(e) => tracing::error!(error = %e, "retention purge failed; retried next run"),
            }
        }
    })
}
