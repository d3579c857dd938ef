//! The access log's signing key and its verification.
//!
//! The Ed25519 key that signs checkpoints lives in `audit-signing.key` in the data directory,
//! created on first start with mode 0600, and never in the database: someone who can
//! rewrite the database cannot forge checkpoints. `bulwark audit verify` calls
//! [`verify_store`].

use audit::{Problem, SigningKey, VerifyReport};
use std::path::{Path, PathBuf};
use store::Store;

/// A checkpoint is signed after every this many records (and at shutdown).
pub const CHECKPOINT_EVERY: u64 = 100;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "audit-signing.key";

/// The newest signed checkpoint, beside the key and outside the database (JSON: `seq`,
/// which is the number of records, `hash`, `time_us`, `signature`). Written after each
/// periodic checkpoint and at shutdown; verification compares the database with it, so
/// deleting the newest records together with their checkpoints in the database is caught.
pub const HEAD_FILE: &str = "audit-head.json";

/// The signer of a data directory: its key, a checkpoint every [`CHECKPOINT_EVERY`]
/// records, and the head file beside the key.
pub fn signer(data_dir: &Path, key: std::sync::Arc<SigningKey>) -> store::AuditSigner {
    store::AuditSigner {
        key,
        every: CHECKPOINT_EVERY,
        head_file: Some(data_dir.join(HEAD_FILE)),
    }
}

/// What the head file outside the database held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadFile {
    /// No file (a data directory from before the file existed; the server writes one at
    /// start-up and shutdown).
    Missing,
    /// A checkpoint, handed to verification with the database's own.
    Checkpoint(audit::Checkpoint),
    /// A file that is not a checkpoint (why).
    Unreadable(String),
}

/// Reads the head file of a data directory.
pub fn read_head_file(data_dir: &Path) -> HeadFile {
    let path = data_dir.join(HEAD_FILE);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HeadFile::Missing,
        Err(e) => HeadFile::Unreadable(e.to_string()),
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .as_ref()
            .and_then(audit::Checkpoint::from_json)
        {
            Some(cp) => HeadFile::Checkpoint(cp),
            None => HeadFile::Unreadable("not a checkpoint".into()),
        },
    }
}

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Key {
        path: PathBuf,
        source: audit::KeyError,
    },
}

/// Loads the signing key from the data directory; never creates one (a verifier that made a
/// new key would report every checkpoint as forged).
pub fn load_key(data_dir: &Path) -> Result<SigningKey, KeyFileError> {
    let path = data_dir.join(KEY_FILE);
    let bytes = std::fs::read(&path).map_err(|source| KeyFileError::Io {
        path: path.clone(),
        source,
    })?;
    audit::signing_key_from_bytes(&bytes).map_err(|source| KeyFileError::Key { path, source })
}

/// Why a data directory's log could not be verified at all (as opposed to problems found).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
}

/// Opens the store in `data_dir` and verifies its access log with the directory's key.
/// `bulwark audit verify` prints the result.
pub async fn verify_data_dir(data_dir: &Path) -> Result<StoreVerifyReport, VerifyError> {
    let key = load_key(data_dir)?;
    let dir = data_dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .map_err(|e| store::StoreError::Corrupt(e.to_string()))??;
    let report = verify_store(&store, &key, data_dir).await;
    let s2 = store.clone();
    let _ = tokio::task::spawn_blocking(move || s2.close()).await;
    Ok(report?)
}

/// Loads the signing key from the data directory, creating it (mode 0600) on first start.
pub fn load_or_create_key(data_dir: &Path) -> Result<SigningKey, KeyFileError> {
    let path = data_dir.join(KEY_FILE);
    let io = |source| KeyFileError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => audit::signing_key_from_bytes(&bytes).map_err(|source| KeyFileError::Key {
            path: path.clone(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let key = audit::generate_signing_key().map_err(|source| KeyFileError::Key {
                path: path.clone(),
                source,
            })?;
            write_private(&path, &key.to_bytes()).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // create_new: never overwrite a key that appeared meanwhile (it signed checkpoints).
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// What `audit verify` found: the library's report plus rows that no longer decode.
#[derive(Debug)]
pub struct StoreVerifyReport {
    pub report: VerifyReport,
    /// Rows whose blob does not decode, or whose indexed columns (which the views filter
    /// on) disagree with the hashed record (seq, why).
    pub undecodable: Vec<(u64, store::AuditRowError)>,
    /// Checkpoint rows that do not decode.
    pub bad_checkpoints: usize,
    /// The head file outside the database, as found.
    pub head_file: HeadFile,
}

impl StoreVerifyReport {
    pub fn ok(&self) -> bool {
        self.report.ok()
            && self.undecodable.is_empty()
            && self.bad_checkpoints == 0
            && !matches!(self.head_file, HeadFile::Unreadable(_))
    }

    /// Human-readable lines, one per finding, ending with a summary.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .undecodable
            .iter()
            .map(|(seq, e)| format!("seq {seq}: {e}"))
            .collect();
        if self.bad_checkpoints > 0 {
            out.push(format!(
                "{} checkpoint row(s) do not decode",
                self.bad_checkpoints
            ));
        }
        match &self.head_file {
            HeadFile::Missing => out.push(format!(
                "no {HEAD_FILE} outside the database: records after the last checkpoint could be removed unseen (the server writes it at start-up)"
            )),
            HeadFile::Unreadable(e) => out.push(format!("{HEAD_FILE} is unreadable: {e}")),
            HeadFile::Checkpoint(cp) => out.push(format!(
                "{HEAD_FILE} vouches for {} records (checked with the database's checkpoints)",
                cp.seq
            )),
        }
        out.extend(self.report.problems.iter().map(|p: &Problem| p.to_string()));
        let r = &self.report;
        out.push(format!(
            "{} records, {} valid checkpoints, last checkpoint at {}, {} unsigned at the tail: {}",
            r.records,
            r.checkpoints_valid,
            r.last_checkpoint_seq
                .map_or("(none)".to_owned(), |s| s.to_string()),
            r.unsigned_tail,
            if self.ok() { "OK" } else { "PROBLEMS FOUND" }
        ));
        out
    }
}

/// Verifies the whole stored access log against its checkpoints, the head file of
/// `data_dir` (outside the database) and the data directory's key.
pub async fn verify_store(
    store: &Store,
    key: &SigningKey,
    data_dir: &Path,
) -> Result<StoreVerifyReport, store::StoreError> {
    let mut records = Vec::new();
    let mut undecodable = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_records(after, 10_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (seq, r) in page {
            match r {
                Ok(rec) => records.push(rec),
                // The record itself is sound: keep walking the chain through it.
                Err(store::AuditRowError::ColumnsDisagree { column, record }) => {
                    records.push((*record).clone());
                    undecodable.push((
                        seq,
                        store::AuditRowError::ColumnsDisagree { column, record },
                    ));
                }
                Err(e) => undecodable.push((seq, e)),
            }
        }
    }
    let (mut checkpoints, bad_checkpoints) = store.audit_checkpoints().await?;
    let head_file = read_head_file(data_dir);
    // The file's checkpoint is one more signed statement: a log that ends before it was
    // truncated, one that disagrees with it was rewritten, a bad signature is a forgery.
    if let HeadFile::Checkpoint(cp) = &head_file {
        checkpoints.push(cp.clone());
    }
    let report = audit::verify(&records, &checkpoints, &key.verifying_key());
    Ok(StoreVerifyReport {
        report,
        undecodable,
        bad_checkpoints,
        head_file,
    })
}
