//! The conformance harness: one store test body, run against both backends.
//!
//! `on_both_backends!(name, flavor = "...")` turns `async fn name(place: Place)` into two
//! tests, `name::sqlite` (a temporary directory) and `name::postgres` (a fresh schema of the
//! PostgreSQL at `BULWARK_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`,
//! dropped afterwards, so tests run in parallel). Without a reachable server the PostgreSQL
//! half prints SKIPPED, unless `BULWARK_REQUIRE_SERVICES=1` (CI), where it fails.

use crate::Store;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub(crate) fn postgres_url() -> String {
    std::env::var("BULWARK_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into())
}

/// Where one test's store lives.
pub(crate) enum Place {
    Sqlite(tempfile::TempDir),
    Postgres { base: String, schema: String },
}

/// Runs `f` on a plain thread: the blocking driver may not run on an async worker.
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

impl Place {
    pub(crate) fn sqlite() -> Place {
        Place::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh schema, or `None` (SKIPPED) when no server answers and services are optional.
    pub(crate) fn postgres(test: &str) -> Option<Place> {
        let base = postgres_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let schema = format!("t_{}_{nanos}", std::process::id());
        let (b, s) = (base.clone(), schema.clone());
        let created = off_runtime(move || -> Result<(), postgres::Error> {
            let mut config: postgres::Config = b.parse()?;
            config.connect_timeout(std::time::Duration::from_secs(3));
            let mut c = config.connect(postgres::NoTls)?;
            c.batch_execute(&format!("CREATE SCHEMA {s}"))
        });
        match created {
            Ok(()) => Some(Place::Postgres { base, schema }),
            Err(e) => {
                if std::env::var("BULWARK_REQUIRE_SERVICES").as_deref() == Ok("1") {
                    panic!("PostgreSQL is required here (BULWARK_REQUIRE_SERVICES=1): {e}");
                }
                eprintln!("SKIPPED: {test}: PostgreSQL at {base} not reachable: {e}");
                None
            }
        }
    }

    /// The URL of this place's schema (PostgreSQL only).
    pub(crate) fn url(&self) -> Option<String> {
        match self {
            Place::Sqlite(_) => None,
            Place::Postgres { base, schema } => {
                let sep = if base.contains('?') { '&' } else { '?' };
                // The schema's name as the session's application name too, so a test can find
                // (and end) exactly its own sessions.
                Some(format!(
                    "{base}{sep}options=-csearch_path%3D{schema}&application_name={schema}"
                ))
            }
        }
    }

    /// Opens (or reopens) the store of this place.
    pub(crate) fn open(&self) -> Store {
        match self {
            Place::Sqlite(dir) => Store::open(dir.path()).unwrap(),
            Place::Postgres { .. } => Store::open_url(&self.url().unwrap()).unwrap(),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Place::Postgres { base, schema } = self {
            let (b, s) = (base.clone(), schema.clone());
            let _ = off_runtime(move || -> Result<(), postgres::Error> {
                let mut c = b.parse::<postgres::Config>()?.connect(postgres::NoTls)?;
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
            });
        }
    }
}

/// Two tests from one body: `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($name:ident, $($flavor:tt)*) => {
        mod $name {
            #[tokio::test($($flavor)*)]
            async fn sqlite() {
                super::$name(crate::conformance::Place::sqlite()).await
            }

            #[tokio::test($($flavor)*)]
            async fn postgres() {
                if let Some(place) = crate::conformance::Place::postgres(stringify!($name)) {
                    super::$name(place).await
                }
            }
        }
    };
}
pub(crate) use on_both_backends;
