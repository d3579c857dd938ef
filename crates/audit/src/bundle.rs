//! Evidence bundles: what the system saw and did for one case in one time window, as
//! open-format files with a signed manifest that anyone can check offline.
//!
//! # Layout
//!
//! | file | content |
//! | --- | --- |
//! | `fixes.csv` | one row per fix, both parties, raw as received (times in µs and UTC) |
//! | `alerts.json` | alerts with their handling history |
//! | `orders.json` | every order version (versions are never edited in place) |
//! | `audit.jsonl` | the access-log records about the case, one JSON record per line, with chain hashes |
//! | `audit-links.jsonl` | the chain links (seq, `prev_hash`, content digest, hash) of the records between them that concern other cases: their content stays out, the chain stays provable |
//! | `checkpoints.json` | the signed checkpoints that cover the excerpt |
//! | `README.txt` | how to read and check the bundle without Bulwark |
//! | `manifest.json` | format, generator, case, window, creation time, and per file: name, size, SHA-256 |
//! | `manifest.sig` | lower-case hex of the Ed25519 signature over the exact bytes of `manifest.json` |
//!
//! Zone geometry and labels are left out of `orders.json`: they are the protected person's
//! home, work and school, and a bundle may reach the defence. Which fixes of the protected
//! person go in is the caller's decision (usually only those inside incident windows).
//!
//! # API Boundary
//!
//! [`build_bundle`] and [`verify_bundle_files`] are pure (files as a name → bytes map);
//! [`write_bundle`] and [`verify_bundle`] only add the directory IO.

use std::collections::BTreeMap;
use std::path::Path;

use domain::{Alert, Fix, Order, PersonRole, UnixMicros};
use ed25519_dalek::{Signature, Signer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::checkpoint::{Checkpoint, SigningKey, VerifyingKey};
use crate::hex::{from_hex_array, to_hex};
use crate::record::{AuditRecord, ChainLink};
use crate::verify::{Problem, verify_sparse_excerpt};

/// The manifest's `format` value (2: the audit excerpt is sparse, with `audit-links.jsonl`).
pub const FORMAT: &str = "bulwark-evidence-bundle/2";
/// Bundles written before the sparse excerpt; still verified.
pub const FORMAT_V1: &str = "bulwark-evidence-bundle/1";
/// The links of the left-out records.
pub const AUDIT_LINKS: &str = "audit-links.jsonl";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";

/// A fix with the party whose device took it.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFix {
    pub party: PersonRole,
    pub fix: Fix,
}

/// One step in handling an alert (acknowledged, dispatched to police, resolved, a note).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertHandling {
    pub at: UnixMicros,
    /// Who, as the audit log names them (e.g. `monitoring_officer#12`).
    pub actor: String,
    pub action: String,
    pub note: String,
}

/// An alert and what was done about it.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleAlert {
    pub alert: Alert,
    pub handling: Vec<AlertHandling>,
}

/// One order version as the court issued it.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleOrder {
    pub version: u32,
    pub order: Order,
    pub issued_at: UnixMicros,
    /// The court's stated reasons for this version.
    pub reasons: String,
}

/// Everything a bundle holds. The server fills it from the store; nothing here depends on
/// how the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleInput {
    pub case: domain::CaseId,
    pub case_reference: String,
    /// The half-open window `[from, to)` the bundle covers.
    pub window: (UnixMicros, UnixMicros),
    pub fixes: Vec<BundleFix>,
    pub alerts: Vec<BundleAlert>,
    pub orders: Vec<BundleOrder>,
    /// The records about the case, in full.
    pub audit: Vec<AuditRecord>,
    /// The links of the records between them that are not about the case (see
    /// [`crate::ChainLink`]); together with `audit` a consecutive run of the chain.
    pub audit_links: Vec<ChainLink>,
    pub checkpoints: Vec<Checkpoint>,
    pub created_at: UnixMicros,
}

/// A bundle that could not be written or read.
#[derive(Debug, Error)]
pub enum BundleError {
    #[error("the window's end ({to}) is not after its start ({from})")]
    EmptyWindow { from: i64, to: i64 },
    #[error("bundle directory {0} is not empty; evidence is never overwritten")]
    NotEmpty(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// One thing wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleProblem {
    MissingManifest,
    MissingSignature,
    /// `manifest.sig` is not 128 hex characters.
    SignatureMalformed,
    /// The signature does not verify: the manifest was edited, or the key is wrong.
    SignatureInvalid,
    /// `manifest.json` is not the expected JSON.
    ManifestUnreadable(String),
    /// The manifest names a file with a path separator or `..`: refused, never opened.
    UnsafeName(String),
    MissingFile(String),
    SizeMismatch {
        name: String,
        manifest: u64,
        actual: u64,
    },
    HashMismatch(String),
    /// A file in the bundle that the manifest does not list.
    ExtraFile(String),
    /// `audit.jsonl` or `checkpoints.json` could not be parsed.
    AuditUnreadable(String),
    /// The audit excerpt's chain or checkpoints do not verify.
    AuditChain(Problem),
}

impl std::fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleProblem::MissingManifest => write!(f, "{MANIFEST} is missing"),
            BundleProblem::MissingSignature => write!(f, "{SIGNATURE} is missing"),
            BundleProblem::SignatureMalformed => write!(f, "{SIGNATURE} is not 128 hex digits"),
            BundleProblem::SignatureInvalid => write!(
                f,
                "the manifest signature does not verify: the manifest was edited or the key is wrong"
            ),
            BundleProblem::ManifestUnreadable(e) => write!(f, "{MANIFEST} is unreadable: {e}"),
            BundleProblem::UnsafeName(n) => write!(f, "the manifest names an unsafe path {n:?}"),
            BundleProblem::MissingFile(n) => write!(f, "{n} is listed but missing"),
            BundleProblem::SizeMismatch {
                name,
                manifest,
                actual,
            } => write!(f, "{name} is {actual} bytes, the manifest says {manifest}"),
            BundleProblem::HashMismatch(n) => {
                write!(f, "{n} does not match its SHA-256 in the manifest")
            }
            BundleProblem::ExtraFile(n) => write!(f, "{n} is not listed in the manifest"),
            BundleProblem::AuditUnreadable(e) => write!(f, "the audit excerpt is unreadable: {e}"),
            BundleProblem::AuditChain(p) => write!(f, "audit excerpt: {p}"),
        }
    }
}

/// What [`verify_bundle`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BundleReport {
    /// Files whose size and hash matched the manifest.
    pub files_ok: Vec<String>,
    pub problems: Vec<BundleProblem>,
}

impl BundleReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Formats microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC), so that
/// people reading the files need no conversion. Civil-from-days after H. Hinnant's
/// public-domain algorithm.
pub fn format_utc(t: UnixMicros) -> String {
    let secs = t.0.div_euclid(1_000_000);
    let micros = t.0.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3_600,
        (sod % 3_600) / 60,
        sod % 60
    )
}

fn opt_num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn fixes_csv(fixes: &[BundleFix]) -> Vec<u8> {
    // Every column is a number or a fixed lowercase word, so no quoting is ever needed.
    let mut s = String::from(
        "fix_id,party,device_id,device_time_us,device_time_utc,received_time_us,lat,lon,\
         accuracy_m,speed_mps,course_deg,altitude_m,source,flags,device_seq\n",
    );
    for BundleFix { party, fix: f } in fixes {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            f.id.map(|i| i.0.to_string()).unwrap_or_default(),
            party.as_str(),
            f.device_id,
            f.device_time.0,
            format_utc(f.device_time),
            f.received_time.0,
            f.position.lat(),
            f.position.lon(),
            opt_num(f.accuracy_m),
            opt_num(f.speed_mps),
            opt_num(f.course_deg),
            opt_num(f.altitude_m),
            f.source.as_str(),
            f.flags.0,
            f.seq.map(|q| q.to_string()).unwrap_or_default(),
        ));
    }
    s.into_bytes()
}

fn alerts_json(alerts: &[BundleAlert]) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|BundleAlert { alert: a, handling }| {
                json!({
                    "id": a.id.0,
                    "order_id": a.order_id.map(|o| o.0),
                    "case_id": a.case_id.map(|c| c.0),
                    "rule": a.rule.as_str(),
                    "severity": a.severity.as_str(),
                    "state": a.state.as_str(),
                    "raised_at_us": a.raised_at.0,
                    "raised_at_utc": format_utc(a.raised_at),
                    "updated_at_us": a.updated_at.0,
                    "summary": a.summary,
                    "min_distance_m": a.min_distance_m,
                    "evidence_fix_ids": a.evidence.iter().map(|f| f.0).collect::<Vec<_>>(),
                    "handling": handling.iter().map(|h| json!({
                        "at_us": h.at.0,
                        "at_utc": format_utc(h.at),
                        "actor": h.actor,
                        "action": h.action,
                        "note": h.note,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn orders_json(orders: &[BundleOrder]) -> Value {
    Value::Array(
        orders
            .iter()
            .map(|v| {
                let o = &v.order;
                json!({
                    "version": v.version,
                    "order_id": o.id.0,
                    "case_id": o.case_id.0,
                    "kind": o.kind.as_str(),
                    "valid_from_us": o.valid_from.0,
                    "valid_from_utc": format_utc(o.valid_from),
                    "valid_to_us": o.valid_to.map(|t| t.0),
                    "valid_to_utc": o.valid_to.map(format_utc),
                    "no_approach_m": o.no_approach_m,
                    "warning_m": o.warning_m,
                    "disclosure_radius_m": o.disclosure_radius_m,
                    // Geometry and labels are the protected person's places: left out.
                    "zones": o.zones.iter().map(|z| json!({"id": z.id.0, "kind": z.kind.as_str()})).collect::<Vec<_>>(),
                    "issued_at_us": v.issued_at.0,
                    "reasons": v.reasons,
                })
            })
            .collect(),
    )
}

const README: &str = "Bulwark evidence bundle\n\
=======================\n\n\
manifest.json lists every other file with its size in bytes and SHA-256.\n\
manifest.sig is the hex Ed25519 signature over the exact bytes of manifest.json.\n\n\
public.pem is the operator's Ed25519 public key, handed over apart from this bundle (written by\n\
`bulwark audit public-key --data-dir <data dir> --out public.pem`; a key inside the bundle\n\
would prove nothing). manifest.json's signer_public_key must be the same key, in hex.\n\
With Bulwark: bulwark evidence verify <this directory> --public-key public.pem\n\n\
To check without Bulwark (OpenSSL 3):\n\
  sha256sum fixes.csv alerts.json orders.json audit.jsonl audit-links.jsonl checkpoints.json README.txt\n\
  xxd -r -p manifest.sig > manifest.sig.bin\n\
  openssl pkeyutl -verify -pubin -inkey public.pem -rawin -in manifest.json -sigfile manifest.sig.bin\n\n\
audit.jsonl: the access-log records about this case. A record's hash is, for format 1,\n\
SHA-256(prev_hash || canonical encoding) and, for format 2,\n\
SHA-256(\"BWLINK2\\0\" || prev_hash || SHA-256(canonical encoding)); the encoding is specified\n\
in Bulwark's audit crate (crates/audit/src/record.rs). audit-links.jsonl: the records in\n\
between that concern other cases, as links only (seq, prev_hash, content_sha256, hash), so\n\
the chain from the first record to the signed checkpoints can be recomputed without them.\n\
Times are microseconds since 1970-01-01T00:00:00Z; *_utc columns repeat them in UTC.\n\
Zone geometry is deliberately absent: it would disclose the protected person's places.\n";

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn to_pretty(v: &Value) -> Vec<u8> {
    // Serialising a Value built from strings and numbers cannot fail.
    let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// Builds a bundle's files in memory, manifest and signature included.
pub fn build_bundle(
    input: &BundleInput,
    key: &SigningKey,
) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let (from, to) = input.window;
    if to <= from {
        return Err(BundleError::EmptyWindow {
            from: from.0,
            to: to.0,
        });
    }
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("fixes.csv".into(), fixes_csv(&input.fixes));
    files.insert("alerts.json".into(), to_pretty(&alerts_json(&input.alerts)));
    files.insert("orders.json".into(), to_pretty(&orders_json(&input.orders)));
    let mut audit = String::new();
    for r in &input.audit {
        audit.push_str(&r.to_json_line());
        audit.push('\n');
    }
    files.insert("audit.jsonl".into(), audit.into_bytes());
    let mut links = String::new();
    for l in &input.audit_links {
        links.push_str(&l.to_json_line());
        links.push('\n');
    }
    files.insert(AUDIT_LINKS.into(), links.into_bytes());
    files.insert(
        "checkpoints.json".into(),
        to_pretty(&Value::Array(
            input.checkpoints.iter().map(Checkpoint::to_json).collect(),
        )),
    );
    files.insert("README.txt".into(), README.as_bytes().to_vec());

    let listed: Vec<Value> = files
        .iter()
        .map(|(name, bytes)| {
            json!({"name": name, "size": bytes.len(), "sha256": to_hex(&sha256(bytes))})
        })
        .collect();
    let manifest = json!({
        "format": FORMAT,
        "generator": concat!("bulwark-audit ", env!("CARGO_PKG_VERSION")),
        "created_at_us": input.created_at.0,
        "created_at_utc": format_utc(input.created_at),
        "case_id": input.case.0,
        "case_reference": input.case_reference,
        "window": {
            "from_us": from.0,
            "to_us": to.0,
            "from_utc": format_utc(from),
            "to_utc": format_utc(to),
        },
        "signer_public_key": to_hex(key.verifying_key().as_bytes()),
        "files": listed,
    });
    let manifest_bytes = to_pretty(&manifest);
    let sig = key.sign(&manifest_bytes).to_bytes();
    files.insert(MANIFEST.into(), manifest_bytes);
    files.insert(SIGNATURE.into(), format!("{}\n", to_hex(&sig)).into_bytes());
    Ok(files)
}

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name != MANIFEST
        && name != SIGNATURE
}

/// Checks a bundle's files against its manifest and signature, and its audit excerpt
/// against its checkpoints. Reports every problem, not just the first.
pub fn verify_bundle_files(files: &BTreeMap<String, Vec<u8>>, key: &VerifyingKey) -> BundleReport {
    let mut report = BundleReport::default();
    let Some(manifest_bytes) = files.get(MANIFEST) else {
        report.problems.push(BundleProblem::MissingManifest);
        // Without a manifest nothing else can be checked; every file is unaccounted for.
        for name in files.keys().filter(|n| *n != SIGNATURE) {
            report.problems.push(BundleProblem::ExtraFile(name.clone()));
        }
        return report;
    };
    match files.get(SIGNATURE) {
        None => report.problems.push(BundleProblem::MissingSignature),
        Some(sig) => match std::str::from_utf8(sig)
            .ok()
            .and_then(|s| from_hex_array::<64>(s.trim()).ok())
        {
            None => report.problems.push(BundleProblem::SignatureMalformed),
            Some(sig) => {
                if key
                    .verify_strict(manifest_bytes, &Signature::from_bytes(&sig))
                    .is_err()
                {
                    report.problems.push(BundleProblem::SignatureInvalid);
                }
            }
        },
    }

    let listed = match parse_manifest(manifest_bytes) {
        Ok(l) => l,
        Err(e) => {
            report.problems.push(BundleProblem::ManifestUnreadable(e));
            return report;
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    for (name, size, hash) in listed {
        if !safe_name(&name) {
            report.problems.push(BundleProblem::UnsafeName(name));
            continue;
        }
        seen.insert(name.clone());
        let Some(bytes) = files.get(&name) else {
            report.problems.push(BundleProblem::MissingFile(name));
            continue;
        };
        let actual = bytes.len() as u64;
        if actual != size {
            report.problems.push(BundleProblem::SizeMismatch {
                name,
                manifest: size,
                actual,
            });
        } else if sha256(bytes) != hash {
            report.problems.push(BundleProblem::HashMismatch(name));
        } else {
            report.files_ok.push(name);
        }
    }
    for name in files.keys() {
        if name != MANIFEST && name != SIGNATURE && !seen.contains(name) {
            report.problems.push(BundleProblem::ExtraFile(name.clone()));
        }
    }
    check_audit(files, key, &mut report);
    report
}

fn parse_manifest(bytes: &[u8]) -> Result<Vec<(String, u64, [u8; 32])>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if !matches!(
        v.get("format").and_then(Value::as_str),
        Some(FORMAT | FORMAT_V1)
    ) {
        return Err(format!("format is not {FORMAT:?}"));
    }
    let files = v
        .get("files")
        .and_then(Value::as_array)
        .ok_or("no files list")?;
    files
        .iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or("file without name")?;
            let size = f
                .get("size")
                .and_then(Value::as_u64)
                .ok_or("file without size")?;
            let hash = f
                .get("sha256")
                .and_then(Value::as_str)
                .and_then(|h| from_hex_array::<32>(h).ok())
                .ok_or("file without a valid sha256")?;
            Ok((name.to_owned(), size, hash))
        })
        .collect()
}

fn check_audit(files: &BTreeMap<String, Vec<u8>>, key: &VerifyingKey, report: &mut BundleReport) {
    let (Some(audit), Some(cps)) = (files.get("audit.jsonl"), files.get("checkpoints.json")) else {
        return; // already reported as missing files
    };
    let records: Result<Vec<AuditRecord>, String> = String::from_utf8_lossy(audit)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| AuditRecord::from_json_line(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect();
    let checkpoints: Result<Vec<Checkpoint>, String> = serde_json::from_slice::<Value>(cps)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            v.as_array()
                .ok_or_else(|| "checkpoints.json is not an array".to_owned())?
                .iter()
                .map(|c| Checkpoint::from_json(c).ok_or_else(|| "invalid checkpoint".to_owned()))
                .collect()
        });
    // Absent in format-1 bundles, whose excerpt is consecutive.
    let links: Result<Vec<ChainLink>, String> =
        files.get(AUDIT_LINKS).map_or(Ok(Vec::new()), |b| {
            String::from_utf8_lossy(b)
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    ChainLink::from_json_line(l)
                        .map_err(|e| format!("{AUDIT_LINKS} line {}: {e}", i + 1))
                })
                .collect()
        });
    match (records, checkpoints, links) {
        (Ok(records), Ok(checkpoints), Ok(links)) => {
            let r = verify_sparse_excerpt(&records, &links, &checkpoints, key);
            report
                .problems
                .extend(r.problems.into_iter().map(BundleProblem::AuditChain));
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            report.problems.push(BundleProblem::AuditUnreadable(e))
        }
    }
}

/// Writes a bundle into `dir` (created if needed; it must be empty) and returns the
/// manifest's SHA-256, which the server records in the audit log as the export's details.
pub fn write_bundle(
    dir: &Path,
    input: &BundleInput,
    key: &SigningKey,
) -> Result<[u8; 32], BundleError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| BundleError::Io { path, source }
    };
    let files = build_bundle(input, key)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(BundleError::NotEmpty(dir.display().to_string()));
    }
    for (name, bytes) in &files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
        // Evidence must survive a crash right after the export is reported done.
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io(&path))?;
    }
    Ok(sha256(files.get(MANIFEST).map_or(&[][..], Vec::as_slice)))
}

/// Reads every entry of `dir` and checks it with [`verify_bundle_files`]. Subdirectories and
/// other non-files count as extra files.
pub fn verify_bundle(dir: &Path, key: &VerifyingKey) -> Result<BundleReport, BundleError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| BundleError::Io { path, source }
    };
    let mut files = BTreeMap::new();
    let mut odd = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if entry.file_type().map_err(io(&path))?.is_file() {
            files.insert(name, std::fs::read(&path).map_err(io(&path))?);
        } else {
            odd.push(name);
        }
    }
    let mut report = verify_bundle_files(&files, key);
    report
        .problems
        .extend(odd.into_iter().map(BundleProblem::ExtraFile));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(UnixMicros(0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_utc(UnixMicros(1_782_259_200_000_001)),
            "2026-06-24T00:00:00.000001Z"
        );
        assert_eq!(format_utc(UnixMicros(-1)), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            format_utc(UnixMicros::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn unsafe_names_are_refused() {
        for n in ["", ".", "..", "../x", "a/b", "a\\b", MANIFEST, SIGNATURE] {
            assert!(!safe_name(n), "{n:?}");
        }
        assert!(safe_name("fixes.csv"));
    }
}
