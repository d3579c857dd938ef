//! Verification of a log against its checkpoints.
//!
//! [`verify`] walks the records in storage order once (it takes an iterator, so a backend
//! can stream millions of rows) and checks, for each record:
//!
//! 1. its stored `hash` equals `SHA-256(prev_hash || encoding)` — catches a changed field;
//! 2. its `seq` is one more than the previous record's — catches deletion, insertion and
//!    reordering even where someone recomputed the hashes;
//! 3. its `prev_hash` equals the previous record's hash — catches the same when seqs were
//!    renumbered;
//! 4. every validly signed checkpoint for its `seq` carries its computed hash — catches a log
//!    rewritten from some point on with all hashes recomputed.
//!
//! After the walk, a checkpoint beyond the last record means the log was truncated; one
//! inside the range whose record never appeared means that record was deleted.
//!
//! A rewrite of only the records after the last checkpoint, with hashes recomputed, cannot
//! be told from the real thing by the data alone; [`VerifyReport::unsigned_tail`] says how
//! many records that covers, and checkpointing often (and on shutdown) keeps it small.
//!
//! After a problem the walk resynchronises on the damaged record, so that one deletion gives
//! one or two problems rather than a cascade down the rest of the log.

use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::{Checkpoint, VerifyingKey};
use crate::record::{AuditRecord, ChainLink, GENESIS_HASH, Hash32};

/// At most this many problems are listed; a log damaged everywhere needs no longer list.
pub const MAX_PROBLEMS: usize = 1_000;

/// One thing wrong with a log. Every problem names the sequence number where it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The first record of a full log is not seq 1 with the genesis `prev_hash`: the start
    /// was deleted.
    BadStart { seq: u64 },
    /// A record's content does not match its stored hash: a field was changed.
    ContentChanged { seq: u64 },
    /// The record after `after` should be `after + 1` but is `found`: a record was deleted
    /// (`found` larger), inserted or reordered (`found` not larger).
    SeqOutOfOrder { after: u64, found: u64 },
    /// The record's `prev_hash` is not the previous record's hash.
    BrokenLink { seq: u64 },
    /// A validly signed checkpoint at `seq` disagrees with the record there: the log was
    /// rewritten with recomputed hashes.
    CheckpointMismatch { seq: u64 },
    /// A checkpoint's signature does not verify with the given key: forged, or a wrong key.
    CheckpointSignatureInvalid { seq: u64 },
    /// A checkpoint at `seq` lies inside the log's range but no record with that seq exists.
    CheckpointRecordMissing { seq: u64 },
    /// A head known from elsewhere (the live chain, a published head) disagrees with the
    /// record at that seq.
    HeadMismatch { seq: u64 },
    /// The log ends at `last_seq` (none: empty) but a checkpoint (or a known head) vouches
    /// for `checkpoint_seq`.
    Truncated {
        last_seq: Option<u64>,
        checkpoint_seq: u64,
    },
}

impl Problem {
    /// The sequence number the problem is reported at.
    pub fn seq(&self) -> u64 {
        match *self {
            Problem::BadStart { seq }
            | Problem::ContentChanged { seq }
            | Problem::BrokenLink { seq }
            | Problem::CheckpointMismatch { seq }
            | Problem::CheckpointSignatureInvalid { seq }
            | Problem::CheckpointRecordMissing { seq }
            | Problem::HeadMismatch { seq } => seq,
            Problem::SeqOutOfOrder { after, found } => found.min(after.saturating_add(1)),
            Problem::Truncated { last_seq, .. } => last_seq.map_or(1, |s| s.saturating_add(1)),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::BadStart { seq } => write!(
                f,
                "log starts at seq {seq}, not at seq 1 with the genesis hash: its start is missing"
            ),
            Problem::ContentChanged { seq } => {
                write!(
                    f,
                    "record {seq} was changed: its content does not match its hash"
                )
            }
            Problem::SeqOutOfOrder { after, found } if *found > after.saturating_add(1) => write!(
                f,
                "records {}..={} are missing (seq {found} follows {after})",
                after.saturating_add(1),
                found - 1
            ),
            Problem::SeqOutOfOrder { after, found } => write!(
                f,
                "seq {found} follows {after}: a record was inserted or records were reordered"
            ),
            Problem::BrokenLink { seq } => write!(
                f,
                "record {seq} does not link to the record before it (inserted, deleted or reordered)"
            ),
            Problem::CheckpointMismatch { seq } => write!(
                f,
                "the signed checkpoint at seq {seq} disagrees with the log: records up to {seq} were rewritten"
            ),
            Problem::CheckpointSignatureInvalid { seq } => write!(
                f,
                "the checkpoint at seq {seq} has an invalid signature (forged, or the wrong public key)"
            ),
            Problem::HeadMismatch { seq } => write!(
                f,
                "record {seq} is not the head known from outside the log: the tail was rewritten"
            ),
            Problem::CheckpointRecordMissing { seq } => {
                write!(f, "record {seq}, vouched for by a checkpoint, is missing")
            }
            Problem::Truncated {
                last_seq,
                checkpoint_seq,
            } => write!(
                f,
                "the log ends at seq {} but a checkpoint vouches for seq {checkpoint_seq}: it was truncated",
                last_seq.map_or("(none)".to_owned(), |s| s.to_string())
            ),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Records read.
    pub records: u64,
    /// The last record's seq and stored hash.
    pub head: Option<(u64, Hash32)>,
    /// Checkpoints whose signature verified.
    pub checkpoints_valid: u64,
    /// The highest seq vouched for by a valid checkpoint that matched the log.
    pub last_checkpoint_seq: Option<u64>,
    /// Records after the last matching checkpoint: protected by the chain only.
    pub unsigned_tail: u64,
    /// Everything wrong, in the order found (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Whether problems beyond [`MAX_PROBLEMS`] were dropped.
    pub problems_truncated: bool,
    /// Left-out records of a sparse excerpt whose link could not be checked (version 1:
    /// no content digest); the chain across them is only as good as their stated hashes.
    pub unchecked_links: u64,
}

impl VerifyReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The earliest sequence number at which something is wrong, and what.
    pub fn first_bad(&self) -> Option<&Problem> {
        self.problems.iter().min_by_key(|p| p.seq())
    }

    /// Checks that the log ends exactly at a head known from outside it (the server's live
    /// [`crate::AuditChain::head`], or a head published to a witness). This is what catches
    /// truncation or rewriting *after* the last checkpoint, which the records alone cannot
    /// show. For a log that may have grown since the head was taken, sign a checkpoint at
    /// that head instead and let [`verify`] check it.
    pub fn expect_head(&mut self, seq: u64, hash: Hash32) {
        match self.head {
            Some((last, h)) if last == seq => {
                if h != hash {
                    self.push(Problem::HeadMismatch { seq });
                }
            }
            Some((last, _)) if last > seq => self.push(Problem::HeadMismatch { seq }),
            last => self.push(Problem::Truncated {
                last_seq: last.map(|(s, _)| s),
                checkpoint_seq: seq,
            }),
        }
    }

    fn push(&mut self, p: Problem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else {
            self.problems_truncated = true;
        }
    }
}

/// Verifies a complete log (starting at seq 1) in storage order against its checkpoints.
pub fn verify<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
) -> VerifyReport {
    run(records, checkpoints, key, true)
}

/// Verifies an excerpt (a consecutive run of records starting anywhere, as in an evidence
/// bundle): the same checks, except that the first record may have any seq and any
/// `prev_hash`, and checkpoints outside the excerpt's range are ignored.
pub fn verify_excerpt<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
) -> VerifyReport {
    run(records, checkpoints, key, false)
}

/// Verifies a sparse excerpt: the `records` shown in full (those about one case) and the
/// `links` of the records left out between them, together a consecutive run of the chain.
/// Each link of a v2 record is checked like a record (its hash must follow from its
/// `prev_hash` and content digest); a v1 link is counted in
/// [`VerifyReport::unchecked_links`]. A record given both ways is reported as inserted.
pub fn verify_sparse_excerpt(
    records: &[AuditRecord],
    links: &[ChainLink],
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
) -> VerifyReport {
    let mut items: Vec<Item> = records
        .iter()
        .map(Item::of_record)
        .chain(links.iter().map(|l| Item {
            seq: l.seq,
            prev_hash: l.prev_hash,
            hash: l.hash,
            computed: l.computed_hash(),
        }))
        .collect();
    // Storage order is seq order; a stable sort keeps a duplicated seq visible as such.
    items.sort_by_key(|i| i.seq);
    run_items(items, checkpoints, key, false)
}

/// One place in the chain as verification sees it; `computed: None` for an uncheckable link.
struct Item {
    seq: u64,
    prev_hash: Hash32,
    hash: Hash32,
    computed: Option<Hash32>,
}

impl Item {
    fn of_record(r: &AuditRecord) -> Item {
        Item {
            seq: r.seq,
            prev_hash: r.prev_hash,
            hash: r.hash,
            computed: Some(r.computed_hash()),
        }
    }
}

fn run<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
    from_genesis: bool,
) -> VerifyReport {
    run_items(
        records.into_iter().map(Item::of_record),
        checkpoints,
        key,
        from_genesis,
    )
}

fn run_items(
    records: impl IntoIterator<Item = Item>,
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
    from_genesis: bool,
) -> VerifyReport {
    let mut report = VerifyReport::default();

    // Only validly signed checkpoints are evidence; the rest are reported and set aside.
    let mut signed: BTreeMap<u64, Vec<&Checkpoint>> = BTreeMap::new();
    let mut bad_sigs = Vec::new();
    for c in checkpoints {
        if c.signature_valid(key) {
            report.checkpoints_valid += 1;
            signed.entry(c.seq).or_default().push(c);
        } else {
            bad_sigs.push(c.seq);
        }
    }

    let mut prev: Option<(u64, Hash32)> = None;
    let mut first_seq: Option<u64> = None;
    let mut max_seq: Option<u64> = None;
    let mut seen_checkpointed: BTreeSet<u64> = BTreeSet::new();
    let mut last_good_checkpoint: Option<u64> = None;

    for r in records {
        report.records += 1;
        let computed = match r.computed {
            Some(c) => c,
            None => {
                report.unchecked_links += 1;
                r.hash
            }
        };
        if computed != r.hash {
            report.push(Problem::ContentChanged { seq: r.seq });
        }
        match prev {
            None => {
                first_seq = Some(r.seq);
                if from_genesis && (r.seq != 1 || r.prev_hash != GENESIS_HASH) {
                    report.push(Problem::BadStart { seq: r.seq });
                }
            }
            Some((prev_seq, prev_hash)) => {
                if r.seq != prev_seq.saturating_add(1) {
                    report.push(Problem::SeqOutOfOrder {
                        after: prev_seq,
                        found: r.seq,
                    });
                }
                if r.prev_hash != prev_hash {
                    report.push(Problem::BrokenLink { seq: r.seq });
                }
            }
        }
        if let Some(cps) = signed.get(&r.seq) {
            seen_checkpointed.insert(r.seq);
            if cps.iter().all(|c| c.hash == computed) {
                last_good_checkpoint = Some(last_good_checkpoint.map_or(r.seq, |s| s.max(r.seq)));
            } else {
                report.push(Problem::CheckpointMismatch { seq: r.seq });
            }
        }
        // Resynchronise on the stored hash so that one damaged record is one report.
        prev = Some((r.seq, r.hash));
        max_seq = Some(max_seq.map_or(r.seq, |m| m.max(r.seq)));
    }

    for seq in bad_sigs {
        report.push(Problem::CheckpointSignatureInvalid { seq });
    }
    let start = if from_genesis {
        1
    } else {
        first_seq.unwrap_or(u64::MAX)
    };
    for &seq in signed.keys() {
        if seen_checkpointed.contains(&seq) || seq < start {
            continue;
        }
        match max_seq {
            Some(m) if seq <= m => report.push(Problem::CheckpointRecordMissing { seq }),
            // An excerpt legitimately ends before later checkpoints.
            _ if !from_genesis => {}
            _ => report.push(Problem::Truncated {
                last_seq: max_seq,
                checkpoint_seq: seq,
            }),
        }
    }

    report.head = prev;
    report.last_checkpoint_seq = last_good_checkpoint;
    report.unsigned_tail = match (prev, last_good_checkpoint) {
        (Some((last, _)), Some(cp)) => last.saturating_sub(cp),
        _ => report.records,
    };
    report
}
