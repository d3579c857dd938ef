//! Audit records, their canonical byte encoding and the hash chain.
//!
//! # Canonical encoding (version 1)
//!
//! The bytes hashed for a record are, in this order and with nothing between them:
//!
//! | field | encoding |
//! | --- | --- |
//! | magic | the 8 ASCII bytes `BWAUDIT1` (format and version) |
//! | `seq` | u64, big-endian |
//! | `time` | i64 microseconds since the Unix epoch, big-endian |
//! | `actor.kind`, `actor.id`, `actor.role` | str, i64 BE, str |
//! | `action` | str (the action's stable name, e.g. `read_track`) |
//! | `subject.case`, `subject.person`, `subject.device` | opt(i64 BE) each |
//! | `purpose` | opt(str code, str text) |
//! | `outcome` | str (`allowed` or `denied`) |
//! | `details` | str |
//!
//! where `str` is a u32 big-endian byte length followed by that many bytes of UTF-8, and
//! `opt(x)` is the byte `0x00` for "absent" or `0x01` followed by `x`. Every field has a fixed
//! position and every variable-length field carries its length, so two different records
//! can never encode to the same bytes (the encoding is prefix-free and injective); no
//! escaping, no key ordering and no number formatting are involved, which is why it was
//! chosen over canonical JSON.
//!
//! The chain hash of a version-1 record is `SHA-256(prev_hash || encoding)`, with
//! `prev_hash` of the first record (seq 1) being 32 zero bytes ([`GENESIS_HASH`]).
//!
//! # Version 2 (records written from issue 17 on)
//!
//! The same fields, with the magic `BWAUDIT2`, and the chain hash
//! `SHA-256("BWLINK2\0" || prev_hash || SHA-256(encoding))`. Hashing the content's digest
//! rather than the content lets an excerpt (an evidence bundle about one case) prove the
//! chain across records it leaves out: for those it carries only a [`ChainLink`] (seq,
//! `prev_hash`, content digest, hash), never their content. The version is chained: it is
//! the magic inside the digested encoding, and the two forms hash under different
//! constructions, so a record cannot be re-labelled as the other version without changing
//! its hash. Version-1 records keep their form, so deployed logs still verify.
//!
//! # Storage form
//!
//! [`AuditRecord::to_bytes`] is `encoding || prev_hash || hash` and [`AuditRecord::from_bytes`]
//! reads it back; a backend may store that blob, or one column per field and rebuild the
//! record. The JSON Lines form used in evidence bundles is [`AuditRecord::to_json_line`].

use domain::{CaseId, DeviceId, PersonId, UnixMicros};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::hex::{from_hex_array, to_hex};

/// A SHA-256 digest.
pub type Hash32 = [u8; 32];

/// The `prev_hash` of the first record in a log.
pub const GENESIS_HASH: Hash32 = [0; 32];

const MAGIC: &[u8; 8] = b"BWAUDIT1";
const MAGIC_V2: &[u8; 8] = b"BWAUDIT2";
const LINK_V2: &[u8; 8] = b"BWLINK2\0";

/// A record's hash format (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordFormat {
    /// `SHA-256(prev_hash || encoding)`; records written before issue 17.
    V1,
    /// `SHA-256("BWLINK2\0" || prev_hash || SHA-256(encoding))`; every new record.
    V2,
}

impl RecordFormat {
    pub fn number(self) -> u8 {
        match self {
            RecordFormat::V1 => 1,
            RecordFormat::V2 => 2,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(RecordFormat::V1),
            2 => Some(RecordFormat::V2),
            _ => None,
        }
    }

    fn magic(self) -> &'static [u8; 8] {
        match self {
            RecordFormat::V1 => MAGIC,
            RecordFormat::V2 => MAGIC_V2,
        }
    }
}

/// The v2 chain hash from the previous hash and the content digest.
pub fn chain_hash_v2(prev_hash: &Hash32, content_sha256: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update(LINK_V2);
    h.update(prev_hash);
    h.update(content_sha256);
    h.finalize().into()
}

/// A record's place in the chain without its content: what an excerpt carries for a record
/// it leaves out. For a v2 record the link is checkable (`hash` follows from `prev_hash`
/// and `content_sha256`); a v1 record has no digest form, so its link can only be taken as
/// stated (`content_sha256: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: u64,
    pub prev_hash: Hash32,
    pub content_sha256: Option<Hash32>,
    pub hash: Hash32,
}

impl ChainLink {
    /// The hash the link's parts give; `None` for a v1 link (not checkable).
    pub fn computed_hash(&self) -> Option<Hash32> {
        self.content_sha256
            .map(|d| chain_hash_v2(&self.prev_hash, &d))
    }

    pub fn to_json_line(&self) -> String {
        serde_json::json!({
            "seq": self.seq,
            "prev_hash": to_hex(&self.prev_hash),
            "content_sha256": self.content_sha256.as_ref().map(|d| to_hex(d)),
            "hash": to_hex(&self.hash),
        })
        .to_string()
    }

    pub fn from_json_line(line: &str) -> Result<Self, DecodeError> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| DecodeError::Json(e.to_string()))?;
        let hex = |field: &'static str| -> Result<Option<Hash32>, DecodeError> {
            match v.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(x) => {
                    let s = x
                        .as_str()
                        .ok_or_else(|| DecodeError::Json(format!("{field} is not a string")))?;
                    from_hex_array(s)
                        .map(Some)
                        .map_err(|source| DecodeError::Hex { field, source })
                }
            }
        };
        let need = |field: &'static str| {
            hex(field)?.ok_or_else(|| DecodeError::Json(format!("{field} missing")))
        };
        Ok(ChainLink {
            seq: v
                .get("seq")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| DecodeError::Json("seq missing".into()))?,
            prev_hash: need("prev_hash")?,
            content_sha256: hex("content_sha256")?,
            hash: need("hash")?,
        })
    }
}

domain::str_enum!(
    /// Who acted.
    ActorKind {
        /// A person logged in with an account (staff, victim, offender).
        Account = "account",
        /// A device (e.g. a victim phone pulling its own view).
        Device = "device",
        /// Bulwark itself (retention purges, scheduled exports).
        System = "system",
    }
);

domain::str_enum!(
    /// What was done. Reads of location data have their own actions so that a query for
    /// "who looked at this victim's position" needs no parsing of `details`.
    AuditAction {
        Login = "login",
        LoginFailed = "login_failed",
        Logout = "logout",
        ReadCase = "read_case",
        ReadPosition = "read_position",
        ReadTrack = "read_track",
        ReadVictimPosition = "read_victim_position",
        ReadVictimTrack = "read_victim_track",
        LiveStream = "live_stream",
        ReadAlerts = "read_alerts",
        HandleAlert = "handle_alert",
        Export = "export",
        ChangeCase = "change_case",
        ChangeOrder = "change_order",
        ChangeAccess = "change_access",
        BreakGlass = "break_glass",
        ReadAudit = "read_audit",
        FilePetition = "file_petition",
        ReviewPetition = "review_petition",
        DecidePetition = "decide_petition",
        Purge = "purge",
        /// A protected person's own phone report through the app (position or SOS); logged
        /// only when refused.
        OwnReport = "own_report",
    }
);

domain::str_enum!(
    /// Whether the access was allowed. Denied attempts are logged too: repeated denials are
    /// what insider misuse looks like.
    Outcome {
        Allowed = "allowed",
        Denied = "denied",
    }
);

/// Who acted, with the role they acted in (a person may hold several roles over time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    /// Account id, device id, or 0 for the system.
    pub id: i64,
    /// The role's stable name (`access::Role::as_str`); a string so that this crate and old
    /// records do not depend on the current set of roles.
    pub role: String,
}

/// What the action touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Subject {
    pub case: Option<CaseId>,
    pub person: Option<PersonId>,
    pub device: Option<DeviceId>,
}

/// Why a staff member looked at location data: a code for statistics and a sentence for the
/// reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    pub code: String,
    pub text: String,
}

/// What the caller supplies for a new record; the chain adds seq, time and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub actor: Actor,
    pub action: AuditAction,
    pub subject: Subject,
    pub purpose: Option<Purpose>,
    pub outcome: Outcome,
    /// Free text or JSON chosen by the caller (e.g. the time range read). Never victim
    /// coordinates: the log is read by auditors who must not learn them.
    pub details: String,
}

/// One record of the access log as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// How its hash is formed (new records: [`RecordFormat::V2`]).
    pub format: RecordFormat,
    /// 1 for the first record, then consecutive.
    pub seq: u64,
    pub time: UnixMicros,
    pub entry: AuditEntry,
    /// The hash of record `seq - 1` ([`GENESIS_HASH`] for seq 1).
    pub prev_hash: Hash32,
    /// The chain hash over `prev_hash` and the canonical encoding, as `format` says.
    pub hash: Hash32,
}

/// Bytes that are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("record bytes end early")]
    Truncated,
    #[error("record does not start with the BWAUDIT1 magic")]
    BadMagic,
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
    #[error("invalid option tag {0:#04x}")]
    BadOptionTag(u8),
    #[error("a text field is not UTF-8")]
    NotUtf8,
    #[error("unknown {what} {value:?}")]
    UnknownName { what: &'static str, value: String },
    #[error("invalid JSON record: {0}")]
    Json(String),
    #[error("invalid hex in {field}: {source}")]
    Hex {
        field: &'static str,
        source: crate::hex::HexError,
    },
}

// --- encoding -------------------------------------------------------------------------

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Fields longer than 4 GiB cannot be represented; they are cut so that encoding stays
    // infallible. No caller comes near this: details are at most a few kilobytes.
    let bytes = s.as_bytes();
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

fn put_opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// The canonical version-1 encoding of a record's content (everything except the hashes).
pub fn canonical_encoding(seq: u64, time: UnixMicros, e: &AuditEntry) -> Vec<u8> {
    canonical_encoding_as(RecordFormat::V1, seq, time, e)
}

/// The canonical encoding of a record's content in `format` (only the magic differs).
pub fn canonical_encoding_as(
    format: RecordFormat,
    seq: u64,
    time: UnixMicros,
    e: &AuditEntry,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + e.details.len());
    out.extend_from_slice(format.magic());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time.0.to_be_bytes());
    put_str(&mut out, e.actor.kind.as_str());
    out.extend_from_slice(&e.actor.id.to_be_bytes());
    put_str(&mut out, &e.actor.role);
    put_str(&mut out, e.action.as_str());
    put_opt_i64(&mut out, e.subject.case.map(|c| c.0));
    put_opt_i64(&mut out, e.subject.person.map(|p| p.0));
    put_opt_i64(&mut out, e.subject.device.map(|d| d.0));
    match &e.purpose {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            put_str(&mut out, &p.code);
            put_str(&mut out, &p.text);
        }
    }
    put_str(&mut out, e.outcome.as_str());
    put_str(&mut out, &e.details);
    out
}

/// `SHA-256(prev_hash || encoding)`.
pub fn chain_hash(prev_hash: &Hash32, encoding: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(encoding);
    h.finalize().into()
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }

    fn opt_tag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(DecodeError::BadOptionTag(t)),
        }
    }

    fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        if self.opt_tag()? {
            Ok(Some(self.i64()?))
        } else {
            Ok(None)
        }
    }
}

fn parse_name<T>(
    what: &'static str,
    s: String,
    parse: fn(&str) -> Option<T>,
) -> Result<T, DecodeError> {
    parse(&s).ok_or(DecodeError::UnknownName { what, value: s })
}

impl AuditRecord {
    /// The canonical encoding of this record's content.
    pub fn encoding(&self) -> Vec<u8> {
        canonical_encoding_as(self.format, self.seq, self.time, &self.entry)
    }

    /// SHA-256 of the encoding: what a v2 link stands on.
    pub fn content_sha256(&self) -> Hash32 {
        Sha256::digest(self.encoding()).into()
    }

    /// The hash this record's content and `prev_hash` give, whatever `hash` says.
    pub fn computed_hash(&self) -> Hash32 {
        match self.format {
            RecordFormat::V1 => chain_hash(&self.prev_hash, &self.encoding()),
            RecordFormat::V2 => chain_hash_v2(&self.prev_hash, &self.content_sha256()),
        }
    }

    /// This record as a link without content (see [`ChainLink`]).
    pub fn link(&self) -> ChainLink {
        ChainLink {
            seq: self.seq,
            prev_hash: self.prev_hash,
            content_sha256: (self.format == RecordFormat::V2).then(|| self.content_sha256()),
            hash: self.hash,
        }
    }

    /// Storage form: `encoding || prev_hash || hash`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.encoding();
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.hash);
        out
    }

    /// Reads the storage form back. Does not check the hash: that is [`crate::verify()`]'s job,
    /// so that a damaged record can still be shown and reported.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { buf: bytes };
        let format = match r.take(MAGIC.len())? {
            m if m == MAGIC => RecordFormat::V1,
            m if m == MAGIC_V2 => RecordFormat::V2,
            _ => return Err(DecodeError::BadMagic),
        };
        let seq = u64::from_be_bytes(r.array()?);
        let time = UnixMicros(r.i64()?);
        let kind = parse_name("actor kind", r.str()?, ActorKind::parse)?;
        let id = r.i64()?;
        let role = r.str()?;
        let action = parse_name("action", r.str()?, AuditAction::parse)?;
        let case = r.opt_i64()?.map(CaseId);
        let person = r.opt_i64()?.map(PersonId);
        let device = r.opt_i64()?.map(DeviceId);
        let purpose = if r.opt_tag()? {
            Some(Purpose {
                code: r.str()?,
                text: r.str()?,
            })
        } else {
            None
        };
        let outcome = parse_name("outcome", r.str()?, Outcome::parse)?;
        let details = r.str()?;
        let prev_hash = r.array()?;
        let hash = r.array()?;
        if !r.buf.is_empty() {
            return Err(DecodeError::Trailing(r.buf.len()));
        }
        Ok(AuditRecord {
            format,
            seq,
            time,
            entry: AuditEntry {
                actor: Actor { kind, id, role },
                action,
                subject: Subject {
                    case,
                    person,
                    device,
                },
                purpose,
                outcome,
                details,
            },
            prev_hash,
            hash,
        })
    }

    /// One line of JSON (no trailing newline), flat so that spreadsheet and `jq` users can
    /// read it. Hashes are lower-case hex. This form is for people; the hash is always over
    /// the canonical encoding, never over the JSON.
    pub fn to_json_line(&self) -> String {
        let j = RecordJson {
            format: self.format.number(),
            seq: self.seq,
            time_us: self.time.0,
            actor_kind: self.entry.actor.kind.as_str().to_owned(),
            actor_id: self.entry.actor.id,
            actor_role: self.entry.actor.role.clone(),
            action: self.entry.action.as_str().to_owned(),
            case_id: self.entry.subject.case.map(|c| c.0),
            person_id: self.entry.subject.person.map(|p| p.0),
            device_id: self.entry.subject.device.map(|d| d.0),
            purpose_code: self.entry.purpose.as_ref().map(|p| p.code.clone()),
            purpose_text: self.entry.purpose.as_ref().map(|p| p.text.clone()),
            outcome: self.entry.outcome.as_str().to_owned(),
            details: self.entry.details.clone(),
            prev_hash: to_hex(&self.prev_hash),
            hash: to_hex(&self.hash),
        };
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(&j).unwrap_or_default()
    }

    /// Parses one line written by [`AuditRecord::to_json_line`].
    pub fn from_json_line(line: &str) -> Result<Self, DecodeError> {
        let j: RecordJson =
            serde_json::from_str(line).map_err(|e| DecodeError::Json(e.to_string()))?;
        let purpose = match (j.purpose_code, j.purpose_text) {
            (None, None) => None,
            (Some(code), Some(text)) => Some(Purpose { code, text }),
            _ => {
                return Err(DecodeError::Json(
                    "purpose_code and purpose_text must both be present or both absent".into(),
                ));
            }
        };
        Ok(AuditRecord {
            format: RecordFormat::from_number(j.format)
                .ok_or_else(|| DecodeError::Json(format!("unknown record format {}", j.format)))?,
            seq: j.seq,
            time: UnixMicros(j.time_us),
            entry: AuditEntry {
                actor: Actor {
                    kind: parse_name("actor kind", j.actor_kind, ActorKind::parse)?,
                    id: j.actor_id,
                    role: j.actor_role,
                },
                action: parse_name("action", j.action, AuditAction::parse)?,
                subject: Subject {
                    case: j.case_id.map(CaseId),
                    person: j.person_id.map(PersonId),
                    device: j.device_id.map(DeviceId),
                },
                purpose,
                outcome: parse_name("outcome", j.outcome, Outcome::parse)?,
                details: j.details,
            },
            prev_hash: from_hex_array(&j.prev_hash).map_err(|source| DecodeError::Hex {
                field: "prev_hash",
                source,
            })?,
            hash: from_hex_array(&j.hash).map_err(|source| DecodeError::Hex {
                field: "hash",
                source,
            })?,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson {
    /// Absent in bundles written before version 2: those records are version 1.
    #[serde(default = "format_v1")]
    format: u8,
    seq: u64,
    time_us: i64,
    actor_kind: String,
    actor_id: i64,
    actor_role: String,
    action: String,
    case_id: Option<i64>,
    person_id: Option<i64>,
    device_id: Option<i64>,
    purpose_code: Option<String>,
    purpose_text: Option<String>,
    outcome: String,
    details: String,
    prev_hash: String,
    hash: String,
}

fn format_v1() -> u8 {
    1
}

/// The writer's side of the chain: the next sequence number and the last hash.
///
/// The server keeps one per log, restores it at start-up from the last stored record with
/// [`AuditChain::resume`], and appends under the same lock (or writer thread) that orders
/// the inserts, so that seq order and storage order agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditChain {
    next_seq: u64,
    last_hash: Hash32,
}

impl Default for AuditChain {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditChain {
    /// An empty log: the first record will be seq 1 with [`GENESIS_HASH`] before it.
    pub fn new() -> Self {
        AuditChain {
            next_seq: 1,
            last_hash: GENESIS_HASH,
        }
    }

    /// Continues after the last stored record.
    pub fn resume(last: &AuditRecord) -> Self {
        AuditChain {
            next_seq: last.seq.saturating_add(1),
            last_hash: last.hash,
        }
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hash of the last record (the chain head).
    pub fn head(&self) -> (u64, Hash32) {
        (self.next_seq.saturating_sub(1), self.last_hash)
    }

    /// Seals an entry into the next record. `now` is the time of the access, passed in by the
    /// caller; it is recorded as given (the chain, not the clock, orders the log).
    pub fn append(&mut self, entry: AuditEntry, now: UnixMicros) -> AuditRecord {
        let seq = self.next_seq;
        let prev_hash = self.last_hash;
        let mut rec = AuditRecord {
            format: RecordFormat::V2,
            seq,
            time: now,
            entry,
            prev_hash,
            hash: [0; 32],
        };
        rec.hash = rec.computed_hash();
        self.next_seq = seq.saturating_add(1);
        self.last_hash = rec.hash;
        rec
    }

    /// Seals an entry in the version-1 form (tests of logs written before version 2).
    pub fn append_v1(&mut self, entry: AuditEntry, now: UnixMicros) -> AuditRecord {
        let seq = self.next_seq;
        let prev_hash = self.last_hash;
        let hash = chain_hash(&prev_hash, &canonical_encoding(seq, now, &entry));
        self.next_seq = seq.saturating_add(1);
        self.last_hash = hash;
        AuditRecord {
            format: RecordFormat::V1,
            seq,
            time: now,
            entry,
            prev_hash,
            hash,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(i: i64) -> AuditEntry {
        AuditEntry {
            actor: Actor {
                kind: ActorKind::Account,
                id: 10 + i % 3,
                role: "monitoring_officer".into(),
            },
            action: AuditAction::ALL[(i as usize) % AuditAction::ALL.len()],
            subject: Subject {
                case: Some(CaseId(i % 4)),
                person: if i % 2 == 0 { Some(PersonId(i)) } else { None },
                device: None,
            },
            purpose: if i % 3 == 0 {
                Some(Purpose {
                    code: "alert_response".into(),
                    text: format!("alert {i} check"),
                })
            } else {
                None
            },
            outcome: if i % 5 == 4 {
                Outcome::Denied
            } else {
                Outcome::Allowed
            },
            details: format!("{{\"n\":{i}}}"),
        }
    }

    pub(crate) fn log(n: i64) -> Vec<AuditRecord> {
        let mut chain = AuditChain::new();
        (0..n)
            .map(|i| chain.append(entry(i), UnixMicros::from_secs(1_000 + i)))
            .collect()
    }

    #[test]
    fn chain_links_and_hashes() {
        let l = log(3);
        assert_eq!(l[0].seq, 1);
        assert_eq!(l[0].prev_hash, GENESIS_HASH);
        assert_eq!(l[1].prev_hash, l[0].hash);
        for r in &l {
            assert_eq!(r.computed_hash(), r.hash);
        }
        let resumed = AuditChain::resume(&l[2]);
        assert_eq!(resumed.head(), (3, l[2].hash));
    }

    #[test]
    fn encoding_is_pinned() {
        // A golden hash: if this changes, every stored log stops verifying.
        let mut chain = AuditChain::new();
        let r = chain.append_v1(entry(0), UnixMicros(1_700_000_000_000_000));
        let enc = r.encoding();
        assert_eq!(&enc[..8], b"BWAUDIT1");
        assert_eq!(
            to_hex(&r.hash),
            to_hex(&chain_hash(&GENESIS_HASH, &enc)),
            "hash is over prev_hash || encoding"
        );
        assert_eq!(
            to_hex(&r.hash),
            "ed725055ab4bdeca96e0e59d3eafeacdcd25e1f14bb7cb076f2fe97156db1894",
            "golden hash of the first record"
        );
        // Version 2: the same content under the link construction; a v1 head continues
        // into v2 records (a deployed log after the upgrade).
        let v2 = chain.append(entry(1), UnixMicros(1_700_000_000_000_001));
        assert_eq!(v2.format, RecordFormat::V2);
        assert_eq!(&v2.encoding()[..8], b"BWAUDIT2");
        assert_eq!(v2.prev_hash, r.hash);
        assert_eq!(
            v2.hash,
            chain_hash_v2(&r.hash, &Sha256::digest(v2.encoding()).into())
        );
        assert_eq!(
            to_hex(&v2.hash),
            to_hex(&v2.computed_hash()),
            "v2 hash is over the link prefix, prev_hash and the content digest"
        );
        let mut relabelled = v2.clone();
        relabelled.format = RecordFormat::V1;
        assert_ne!(
            relabelled.computed_hash(),
            v2.hash,
            "the version is chained"
        );
        assert_eq!(v2.link().computed_hash(), Some(v2.hash));
        assert_eq!(
            ChainLink::from_json_line(&v2.link().to_json_line()),
            Ok(v2.link())
        );
        assert_eq!(
            r.link().computed_hash(),
            None,
            "a v1 link cannot be checked"
        );
        assert_eq!(
            to_hex(&v2.hash),
            "3d9420889022c59faabe29400b2dafdc9e5c7305133015b8131a70b323ab39b6",
            "golden hash of a v2 record after the v1 one"
        );
    }

    #[test]
    fn fields_cannot_slide_into_each_other() {
        // With plain concatenation "ab"+"c" and "a"+"bc" would collide; length prefixes stop it.
        let mut a = entry(1);
        a.actor.role = "ab".into();
        a.details = "c".into();
        let mut b = entry(1);
        b.actor.role = "a".into();
        b.details = "bc".into();
        assert_ne!(
            canonical_encoding(1, UnixMicros(0), &a),
            canonical_encoding(1, UnixMicros(0), &b)
        );
    }

    #[test]
    fn bytes_and_json_round_trip() {
        for r in log(12) {
            assert_eq!(AuditRecord::from_bytes(&r.to_bytes()), Ok(r.clone()));
            assert_eq!(
                AuditRecord::from_json_line(&r.to_json_line()),
                Ok(r.clone())
            );
        }
    }

    #[test]
    fn decode_errors() {
        let r = &log(1)[0];
        let b = r.to_bytes();
        assert_eq!(
            AuditRecord::from_bytes(&b[..b.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut extra = b.clone();
        extra.push(0);
        assert_eq!(
            AuditRecord::from_bytes(&extra),
            Err(DecodeError::Trailing(1))
        );
        let mut magic = b.clone();
        magic[0] = b'X';
        assert_eq!(AuditRecord::from_bytes(&magic), Err(DecodeError::BadMagic));
        assert!(matches!(
            AuditRecord::from_json_line("{}"),
            Err(DecodeError::Json(_))
        ));
    }
}
