//! What only the PostgreSQL backend has to show: several writers (nodes) on one database,
//! a lost server, a schema from a newer build. The shared behaviour is in the conformance
//! suite (`on_both_backends!`).
#![allow(clippy::unwrap_used)] // Tests state their expectations with unwrap.

use crate::conformance::Place;
use crate::{Store, StoreError};
use audit::{Actor, ActorKind, AuditAction, AuditEntry, Outcome, Subject};
use domain::*;

fn entry(i: i64) -> AuditEntry {
    AuditEntry {
        actor: Actor {
            kind: ActorKind::Account,
            id: i,
            role: "monitoring_officer".into(),
        },
        action: AuditAction::ReadPosition,
        subject: Subject {
            case: Some(CaseId(1)),
            person: None,
            device: None,
        },
        purpose: None,
        outcome: Outcome::Allowed,
        details: format!("read {i}"),
    }
}

fn run_sql(place: &Place, sql: String) {
    let url = place.url().unwrap();
    std::thread::spawn(move || {
        let mut c = url
            .parse::<postgres::Config>()
            .unwrap()
            .connect(postgres::NoTls)
            .unwrap();
        c.batch_execute(&sql).unwrap();
    })
    .join()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_at_once_keep_one_chain_in_commit_order() {
    let Some(place) = Place::postgres("two_nodes_appending_at_once_keep_one_chain_in_commit_order")
    else {
        return;
    };
    // Two stores are two writers with their own sessions, as two nodes would be.
    let (a, b) = (place.open(), place.open());
    let mut tasks = Vec::new();
    for i in 0..40i64 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.append_audit(
                vec![entry(i), entry(i + 100)],
                UnixMicros::from_secs(i),
                None,
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let records: Vec<_> = a
        .audit_records(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.unwrap())
        .collect();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=80).collect::<Vec<u64>>(),
        "no gap, no fork"
    );
    for w in records.windows(2) {
        assert_eq!(
            w[1].prev_hash, w[0].hash,
            "record {} links to {}",
            w[1].seq, w[0].seq
        );
    }
    let report = audit::verify(
        &records,
        &[],
        &audit::SigningKey::from_bytes(&[9; 32]).verifying_key(),
    );
    assert!(report.problems.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_schema_newer_than_this_build_is_refused_at_open() {
    let Some(place) = Place::postgres("pg a_schema_newer_than_this_build_is_refused_at_open")
    else {
        return;
    };
    drop(place.open());
    let newer = super::migrations::MIGRATIONS.len() as i64 + 1;
    run_sql(
        &place,
        format!("UPDATE bulwark_schema SET version = {newer}"),
    );
    let err = Store::open_url(&place.url().unwrap())
        .err()
        .expect("a newer schema must be refused");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, .. } if found == newer),
        "{err}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_server_is_a_clear_error_at_open() {
    // Port 1: nothing listens there; the answer comes from the connect, not a hang.
    let err = Store::open_url("postgres://postgres@127.0.0.1:1/test")
        .err()
        .expect("no server, no store");
    assert!(
        matches!(err, StoreError::Unavailable(ref m) if m.contains("127.0.0.1")),
        "{err}"
    );
    let err = Store::open_url("mysql://nope").err().expect("not a URL");
    assert!(matches!(err, StoreError::InvalidReference(_)), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn after_the_server_drops_its_sessions_the_writer_reconnects_and_acks_only_what_committed() {
    let Some(place) = Place::postgres("after_the_server_drops_its_sessions") else {
        return;
    };
    let store = place.open();
    let now = UnixMicros::from_secs(1);
    let p = store
        .create_person(PersonRole::Offender, "O".into(), now)
        .await
        .unwrap();
    let Place::Postgres { schema, .. } = &place else {
        unreachable!()
    };
    // What a server restart does to the sessions: every one of this store's is ended.
    run_sql(
        &place,
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
        ),
    );
    // The first write after the loss may fail (its group met the dead session): a clear
    // error, nothing acknowledged. The writer reconnects, and a later one succeeds.
    let mut acked = Vec::new();
    let mut failures = 0;
    for i in 0..5 {
        match store
            .create_person(PersonRole::Protected, format!("V{i}"), now)
            .await
        {
            Ok(v) => acked.push(v.id),
            Err(e) => {
                eprintln!("write {i} refused: {e}");
                failures += 1;
                assert!(
                    matches!(
                        e,
                        StoreError::Unavailable(_)
                            | StoreError::Postgres(_)
                            | StoreError::Corrupt(_)
                    ),
                    "{e}"
                );
            }
        }
    }
    assert!(
        failures <= 1,
        "only the group that met the lost session fails"
    );
    assert!(acked.len() >= 4);
    // Everything acknowledged is stored (read through a fresh reader), nothing else.
    let people = store.list_people().await.unwrap();
    let stored: Vec<PersonId> = people
        .iter()
        .map(|x| x.id)
        .filter(|id| *id != p.id)
        .collect();
    assert_eq!(stored, acked);
}
