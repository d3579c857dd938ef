//! The one door to case data, as a type: [`Authorized`].
//!
//! Every read of case data takes an `&Authorized`: a device's track, network scans, raw
//! frames and health history; a person's latest position; the access log of a case; and the
//! listings (alerts, an alert's actions, the latest fix and the health of each device). A read
//! of one device, person or alert refuses one the token does not cover; a listing returns only
//! the rows the token covers, so a handler that forgot to filter still shows nothing more. Its fields
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
//! about no case at all (a device outside every case, which only an administrator may
//! read). Each read checks, as its first line, that the token covers the
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
use domain::{Case, CaseId, DeviceId, PersonId, UnixMicros};
use std::collections::HashSet;

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
        if self.covers_person(&store.list_cases().await?, Some(person)) {
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
        if self.coverage(store).await?.device(device) {
            Ok(())
        } else {
            Err(StoreError::NotAuthorized(format!(
                "no logged decision covers device {}",
                device.0
            )))
        }
    }

    /// A token that covers nothing: the answer of a listing with no case to list (an
    /// officer with no assignment yet). It opens no read.
    pub fn nothing() -> Authorized {
        Authorized {
            cases: Vec::new(),
            outside_case: false,
            system: None,
        }
    }

    /// The token widened to data in no case, for the store's own question of whether such
    /// data exists (never handed out).
    pub(crate) fn and_no_case(mut self) -> Authorized {
        self.outside_case = true;
        self
    }

    /// Both decisions' cases (each token is proof of its own logged records).
    pub fn and(mut self, other: Authorized) -> Authorized {
        self.cases.extend(other.cases);
        self.cases.sort();
        self.cases.dedup();
        self.outside_case |= other.outside_case;
        self.system = self.system.or(other.system);
        self
    }

    /// Whether the token covers the cases `person` (the wearer of a device; `None`: no
    /// wearer) is a party of; a person in no case needs a decision about no case.
    fn covers_person(&self, cases: &[Case], person: Option<PersonId>) -> bool {
        if self.system.is_some() {
            return true;
        }
        let Some(p) = person else {
            return self.outside_case;
        };
        let mut theirs = cases
            .iter()
            .filter(|k| k.offender == p || k.protected.contains(&p))
            .peekable();
        if theirs.peek().is_none() {
            self.outside_case
        } else {
            theirs.any(|k| self.cases.contains(&k.id))
        }
    }

    /// What the token covers, resolved once against the registry, for the reads that list
    /// many devices' rows.
    pub(crate) async fn coverage(&self, store: &Store) -> Result<Coverage> {
        if self.system.is_some() {
            return Ok(Coverage {
                all: true,
                cases: Vec::new(),
                devices: HashSet::new(),
            });
        }
        let cases = store.list_cases().await?;
        let devices = store
            .list_devices()
            .await?
            .into_iter()
            .filter(|d| self.covers_person(&cases, d.owner))
            .map(|d| d.id)
            .collect();
        Ok(Coverage {
            all: false,
            cases: self.cases.clone(),
            devices,
        })
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

/// A token resolved against the registry: which devices' rows it covers.
pub(crate) struct Coverage {
    /// The server's own read: everything.
    all: bool,
    cases: Vec<CaseId>,
    devices: HashSet<DeviceId>,
}

impl Coverage {
    /// Whether the token covers the rows of `device` (the case of its wearer).
    pub(crate) fn device(&self, device: DeviceId) -> bool {
        self.all || self.devices.contains(&device)
    }

    /// Whether the token covers an alert: the alert's case, or for a device alert with no
    /// case of its own the case of the device's wearer. An alert about no case and no
    /// device (the server behind on ingest) is no one's data and is always covered.
    pub(crate) fn alert(&self, a: &crate::AlertRecord) -> bool {
        match (a.alert.case_id, a.device) {
            (Some(k), _) => self.all || self.cases.contains(&k),
            (None, Some(d)) => self.device(d),
            (None, None) => true,
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

    /// The reads that list many devices' rows (latest fixes, latest health, alerts) return
    /// only what the token covers; the reads of one alert's log or of a track's scans refuse
    /// a token that does not cover them. A system alert (no case, no device) is no one's data.
    mod listings {
        #![allow(clippy::unwrap_used)]
        use crate::conformance::{Place, on_both_backends};
        use crate::*;
        use audit::{Actor, ActorKind, AuditAction, AuditEntry, Outcome, Subject};
        use domain::*;

        fn fix(device: DeviceId, secs: i64) -> Fix {
            Fix {
                id: None,
                device_id: device,
                device_time: UnixMicros::from_secs(secs),
                received_time: UnixMicros::from_secs(secs + 1),
                position: LatLon::new(37.5, 127.0).unwrap(),
                accuracy_m: None,
                speed_mps: None,
                course_deg: None,
                altitude_m: None,
                source: FixSource::Gnss,
                flags: FixFlags::default(),
                seq: None,
            }
        }

        fn alert(case: Option<CaseId>, device: Option<DeviceId>, rule: AlertRule) -> AlertChange {
            AlertChange {
                order_id: None,
                case_id: case,
                rule,
                protected: None,
                zone: None,
                kind: AlertChangeKind::Raised,
                severity: Severity::Critical,
                at: UnixMicros::from_secs(100),
                distance_m: None,
                evidence: Vec::new(),
                summary: format!("{rule:?} {case:?} {device:?}"),
                device,
                details: AlertDetails::default(),
            }
        }

        fn read_of(case: Option<CaseId>) -> AuditEntry {
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
                outcome: Outcome::Allowed,
                details: "listing".into(),
            }
        }

        on_both_backends!(
            listing_reads_return_only_what_the_token_covers,
            flavor = "current_thread"
        );
        async fn listing_reads_return_only_what_the_token_covers(place: Place) {
            let store = place.open();
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
                .unwrap()
                .id;
            let all = [devices[0], devices[1], loose];
            let mut scans = Vec::new();
            for (i, d) in all.iter().enumerate() {
                store
                    .insert_reports_with_scans(
                        vec![fix(*d, 100 + i as i64)],
                        Vec::new(),
                        vec![NewScan {
                            scan: NetworkScan {
                                id: None,
                                device_id: *d,
                                scan_time: UnixMicros::from_secs(100),
                                received_time: UnixMicros::from_secs(101),
                                fix_id: None,
                                cells: Vec::new(),
                                wifi: vec![WifiAccessPoint {
                                    mac: "aa:bb:cc:dd:ee:ff".into(),
                                    rssi: None,
                                }],
                            },
                            fix: Some(0),
                        }],
                    )
                    .await
                    .unwrap();
                store
                    .record_device_health(
                        *d,
                        DeviceHealth {
                            reported_at: UnixMicros::from_secs(100),
                            battery_percent: Some(50.0),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                scans.push(
                    store
                        .latest_fixes(&Authorized::system("test"))
                        .await
                        .unwrap()
                        .into_iter()
                        .find(|f| f.device_id == *d)
                        .unwrap()
                        .id
                        .unwrap(),
                );
            }
            let of_case_1 = store
                .apply_alert_change(alert(Some(cases[1]), None, AlertRule::ZoneViolation))
                .await
                .unwrap()
                .alert
                .id;
            let of_device_0 = store
                .apply_alert_change(alert(None, Some(devices[0]), AlertRule::Tamper))
                .await
                .unwrap()
                .alert
                .id;
            let of_loose = store
                .apply_alert_change(alert(None, Some(loose), AlertRule::Tamper))
                .await
                .unwrap()
                .alert
                .id;
            let backlog = store
                .apply_alert_change(alert(None, None, AlertRule::IngestBacklog))
                .await
                .unwrap()
                .alert
                .id;

            let (first, _) = store
                .authorize(vec![read_of(Some(cases[0]))], &[], now, None)
                .await
                .unwrap();
            let fixes: Vec<DeviceId> = store
                .latest_fixes(&first)
                .await
                .unwrap()
                .iter()
                .map(|f| f.device_id)
                .collect();
            assert_eq!(fixes, vec![devices[0]]);
            let health: Vec<DeviceId> = store
                .device_health(&first)
                .await
                .unwrap()
                .iter()
                .map(|h| h.0)
                .collect();
            assert_eq!(health, vec![devices[0]]);
            let mut alerts: Vec<AlertId> = store
                .list_alerts(&first, false, 100)
                .await
                .unwrap()
                .iter()
                .map(|a| a.alert.id)
                .collect();
            alerts.sort();
            assert_eq!(alerts, vec![of_device_0, backlog]);
            assert!(store.alert_actions(&first, of_device_0).await.is_ok());
            let r = store.alert_actions(&first, of_case_1).await;
            assert!(matches!(r, Err(StoreError::NotAuthorized(_))), "{r:?}");
            assert_eq!(
                store
                    .network_scans_of_fixes(&first, vec![scans[0]])
                    .await
                    .unwrap()
                    .len(),
                1
            );
            let r = store
                .network_scans_of_fixes(&first, vec![scans[0], scans[1]])
                .await;
            assert!(matches!(r, Err(StoreError::NotAuthorized(_))), "{r:?}");

            // Nothing covers no one's data only; widened by a decision about no case, the
            // loose device's rows too. Whether alerts outside every case exist is answered
            // without a token.
            let nothing = Authorized::nothing();
            assert!(store.latest_fixes(&nothing).await.unwrap().is_empty());
            let ids: Vec<AlertId> = store
                .list_alerts(&nothing, false, 100)
                .await
                .unwrap()
                .iter()
                .map(|a| a.alert.id)
                .collect();
            assert_eq!(ids, vec![backlog]);
            let (none, _) = store
                .authorize(vec![read_of(None)], &[], now, None)
                .await
                .unwrap();
            let wide = first.and(none);
            let mut fixes: Vec<DeviceId> = store
                .latest_fixes(&wide)
                .await
                .unwrap()
                .iter()
                .map(|f| f.device_id)
                .collect();
            fixes.sort();
            assert_eq!(fixes, vec![devices[0], loose]);
            let mut alerts: Vec<AlertId> = store
                .list_alerts(&wide, false, 100)
                .await
                .unwrap()
                .iter()
                .map(|a| a.alert.id)
                .collect();
            alerts.sort();
            assert_eq!(alerts, vec![of_device_0, of_loose, backlog]);
            assert!(
                store
                    .any_alert_outside_every_case(false, 100)
                    .await
                    .unwrap()
            );
            store
                .set_alert_state(of_loose, AlertState::Resolved, now)
                .await
                .unwrap();
            store
                .set_alert_state(backlog, AlertState::Resolved, now)
                .await
                .unwrap();
            assert!(!store.any_alert_outside_every_case(true, 100).await.unwrap());
            assert!(
                store
                    .any_alert_outside_every_case(false, 100)
                    .await
                    .unwrap()
            );
        }
    }
}
