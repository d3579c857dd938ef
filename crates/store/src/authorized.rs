//! The one door to case data, as a type: [`Authorized`].
//!
//! Every read of case data (a device's track, network scans, raw frames and health history;
//! a person's latest position; the access log of a case) takes an `&Authorized`. Its fields
//! are private and it has one constructor, [`Store::authorize`], which appends the access-log
//! records of the decision and answers only once they are durable. So a read that did not
//! first write its access-log record does not compile:
//!
//! The same read with a token compiles (here the server's own kind, see below):
//!
//! ```no_run
//! # async fn system_read(store: &store::Store) -> store::Result<()> {
//! let token = store::Authorized::system("engine rebuild");
//! let _ = store.track(&token, domain::DeviceId(1), domain::UnixMicros(0), domain::UnixMicros(1), 10).await?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # async fn skip_the_log(store: &store::Store) -> store::Result<()> {
//! // No `Authorized` without the access log: there is no constructor to call.
//! let token = store::Authorized { cases: Vec::new(), outside_case: false, system: None };
//! let _ = store.track(&token, domain::DeviceId(1), domain::UnixMicros(0), domain::UnixMicros(1), 10).await?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # async fn skip_the_log(store: &store::Store) -> store::Result<()> {
//! // A read without the token does not compile either.
//! let _ = store.track(domain::DeviceId(1), domain::UnixMicros(0), domain::UnixMicros(1), 10).await?;
//! # Ok(()) }
//! ```
//!
//! The token names what the decision allowed: the cases of its `allowed` records, plus the
//! cases of allowed requests that the access rules do not log (a party's view of her or his
//! own case, `access::authorize` answers those with no record), and whether one of them was
//! about no case at all (a device outside every case, which only an administrator may read). Each read checks, as its first line, that the token covers the
//! case of the device or person it reads ([`StoreError::NotAuthorized`] otherwise: a handler
//! that authorised one case and reads another is a bug, answered 500 and never with data).
//!
//! Reads that are no one's request — the server rebuilding its engine from stored fixes,
//! deciding which device a frame comes from, the retention job — are not case data read *by
//! someone*, so there is nothing to log for them. They use [`Authorized::system`], which
//! names its reason. `crates/server/tests/architecture.rs` checks that the server calls it
//! only from the modules listed there (the pipeline, the ingest doors, alert dispatch and
//! retention), so a request handler cannot reach for it.

use crate::{Result, Store, StoreError};
use audit::{AuditEntry, AuditRecord, Outcome};
use domain::{CaseId, DeviceId, PersonId, UnixMicros};

/// Proof that the access-log records of a decision are durable; what it allowed.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The cases of the decision's `allowed` records.
    cases: Vec<CaseId>,
    /// One `allowed` record names no case (an administrator's read of a device in no case).
    outside_case: bool,
    /// The server's own read, not a request's: the reason.
    system: Option<&'static str>,
}

impl Authorized {
    /// The server's own read of case data (engine rebuild, ingest, dispatch, retention): no
    /// one asked, so nothing is logged. Only the modules named in the server's architecture
    /// test may call this.
    pub fn system(reason: &'static str) -> Authorized {
        Authorized {
            cases: Vec::new(),
            outside_case: false,
            system: Some(reason),
        }
    }

    /// The cases the logged decision allowed.
    pub fn cases(&self) -> &[CaseId] {
        &self.cases
    }

    /// Why the server reads on its own, for a system token.
    pub fn system_reason(&self) -> Option<&'static str> {
        self.system
    }

    /// Whether the token covers `case` (`None`: data in no case).
    pub fn covers(&self, case: Option<CaseId>) -> bool {
        self.system.is_some()
            || match case {
                Some(k) => self.cases.contains(&k),
                None => self.outside_case,
            }
    }

    /// `Ok` when the token covers `case`.
    pub fn require_case(&self, case: CaseId) -> Result<()> {
        if self.covers(Some(case)) {
            Ok(())
        } else {
            Err(StoreError::NotAuthorized(format!(
                "no logged decision covers case {}",
                case.0
            )))
        }
    }

    /// `Ok` when the token covers the case `person` is a party of (or, for a person in no
    /// case, a logged decision about no case).
    pub async fn require_person(&self, store: &Store, person: PersonId) -> Result<()> {
        if self.system.is_some() {
            return Ok(());
        }
        let cases = store.list_cases().await?;
        let theirs: Vec<CaseId> = cases
            .iter()
            .filter(|k| k.offender == person || k.protected.contains(&person))
            .map(|k| k.id)
            .collect();
        let covered = if theirs.is_empty() {
            self.outside_case
        } else {
            theirs.iter().any(|k| self.cases.contains(k))
        };
        if covered {
            Ok(())
        } else {
            Err(StoreError::NotAuthorized(format!(
                "no logged decision covers person {}",
                person.0
            )))
        }
    }

    /// `Ok` when the token covers the case of `device`'s wearer.
    pub async fn require_device(&self, store: &Store, device: DeviceId) -> Result<()> {
        if self.system.is_some() {
            return Ok(());
        }
        let owner = store
            .list_devices()
            .await?
            .into_iter()
            .find(|d| d.id == device)
            .and_then(|d| d.owner);
        let covered = match owner {
            Some(p) => self.require_person(store, p).await.is_ok(),
            None => self.outside_case,
        };
        if covered {
            Ok(())
        } else {
            Err(StoreError::NotAuthorized(format!(
                "no logged decision covers device {}",
                device.0
            )))
        }
    }

    fn of(entries: &[AuditEntry], unlogged: &[Option<CaseId>]) -> Authorized {
        let mut cases = Vec::new();
        let mut outside_case = false;
        let logged = entries
            .iter()
            .filter(|e| e.outcome == Outcome::Allowed)
            .map(|e| e.subject.case);
        for case in logged.chain(unlogged.iter().copied()) {
            match case {
                Some(k) => cases.push(k),
                None => outside_case = true,
            }
        }
        cases.sort();
        cases.dedup();
        Authorized {
            cases,
            outside_case,
            system: None,
        }
    }
}

impl Store {
    /// Appends a decision's records to the access log (as [`Store::append_audit`]) and,
    /// once they are durable, returns the token the case-data reads take. `unlogged`: the
    /// cases of the decision's allowed requests that its rules answer without a record.
    pub async fn authorize(
        &self,
        entries: Vec<AuditEntry>,
        unlogged: &[Option<CaseId>],
        now: UnixMicros,
        signer: Option<crate::AuditSigner>,
    ) -> Result<(Authorized, Vec<AuditRecord>)> {
        let token = Authorized::of(&entries, unlogged);
        let records = self.append_audit(entries, now, signer).await?;
        Ok((token, records))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::{Authorized, Store, StoreError};
    use audit::{Actor, ActorKind, AuditAction, AuditEntry, Outcome, Subject};
    use domain::*;

    fn read_of(case: Option<CaseId>, outcome: Outcome) -> AuditEntry {
        AuditEntry {
            actor: Actor {
                kind: ActorKind::Account,
                id: 7,
                role: "monitoring_officer".into(),
            },
            action: AuditAction::ReadPosition,
            subject: Subject {
                case,
                person: None,
                device: None,
            },
            purpose: None,
            outcome,
            details: "test read".into(),
        }
    }

    /// A token covers the cases its logged decision allowed, and nothing else; the record is
    /// in the access log when the token exists.
    #[tokio::test(flavor = "current_thread")]
    async fn a_token_covers_only_what_its_logged_decision_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = UnixMicros::from_secs(10);
        let mut cases = Vec::new();
        let mut devices = Vec::new();
        for n in 0..2 {
            let off = store
                .create_person(PersonRole::Offender, format!("O{n}"), now)
                .await
                .unwrap();
            let vic = store
                .create_person(PersonRole::Protected, format!("V{n}"), now)
                .await
                .unwrap();
            let dev = store
                .create_device(
                    DeviceKind::AnkleMonitor,
                    Protocol::Gt06,
                    format!("imei-{n}"),
                    Some(off.id),
                    None,
                    now,
                )
                .await
                .unwrap();
            let case = store
                .create_case(format!("C-{n}"), off.id, vec![vic.id], now)
                .await
                .unwrap();
            cases.push(case.id);
            devices.push(dev.id);
        }
        let loose = store
            .create_device(
                DeviceKind::AnkleMonitor,
                Protocol::Gt06,
                "imei-loose".into(),
                None,
                None,
                now,
            )
            .await
            .unwrap();
        let (a, records) = store
            .authorize(
                vec![
                    read_of(Some(cases[0]), Outcome::Allowed),
                    read_of(Some(cases[1]), Outcome::Denied),
                ],
                &[],
                now,
                None,
            )
            .await
            .unwrap();
        assert_eq!(records.len(), 2, "both decisions are logged");
        assert_eq!(a.cases(), &[cases[0]]);
        let window = (UnixMicros(0), UnixMicros(i64::MAX));
        assert!(
            store
                .track(&a, devices[0], window.0, window.1, 10)
                .await
                .is_ok()
        );
        for d in [devices[1], loose.id] {
            let r = store.track(&a, d, window.0, window.1, 10).await;
            assert!(matches!(r, Err(StoreError::NotAuthorized(_))), "{r:?}");
        }
        let r = store.audit_records_of_case(&a, cases[1], 0, 10).await;
        assert!(matches!(r, Err(StoreError::NotAuthorized(_))), "{r:?}");
        assert_eq!(
            store
                .audit_records_of_case(&a, cases[0], 0, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // A decision about no case covers a device in no case, and only that.
        let (none, _) = store
            .authorize(vec![read_of(None, Outcome::Allowed)], &[], now, None)
            .await
            .unwrap();
        assert!(
            store
                .track(&none, loose.id, window.0, window.1, 10)
                .await
                .is_ok()
        );
        let r = store.track(&none, devices[0], window.0, window.1, 10).await;
        assert!(matches!(r, Err(StoreError::NotAuthorized(_))), "{r:?}");
        // A party's own view, allowed without a record, covers her case.
        let (own, records) = store
            .authorize(Vec::new(), &[Some(cases[1])], now, None)
            .await
            .unwrap();
        assert!(records.is_empty());
        assert!(
            store
                .track(&own, devices[1], window.0, window.1, 10)
                .await
                .is_ok()
        );
        // The server's own reads name their reason and cover everything.
        let system = Authorized::system("engine rebuild");
        assert_eq!(system.system_reason(), Some("engine rebuild"));
        assert!(
            store
                .track(&system, devices[1], window.0, window.1, 10)
                .await
                .is_ok()
        );
    }
}
