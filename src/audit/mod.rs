//! The auditor's independent check of a log: pure. It is given the entries (hashed to the
//! signed checkpoint as they stream in, by [`crate::client::download_and_audit`]), the
//! pinned checkpoint verifier and, for comparisons, the server's answers as plain values; it
//! does no I/O and never reads the clock.
//!
//! - [`prefix`]: [`PrefixAudit`] re-judges every entry by the ingest rules at its position
//!   in the log (`log::rules` for observations, `Registry::check` for commands), verifies
//!   every signature by the signature rule, and recomputes the projection with the
//!   projector's own code;
//! - [`compare`]: the server's answers held against the recomputed ones field by field,
//!   and a saved checkpoint against the latest one.
//!
//! Errors name the first bad entry, or the service and field that differ.

mod compare;
mod prefix;

pub use compare::{
    check_consistency, check_succession, compare_alerts, compare_governance, compare_incidents,
    compare_prefix, compare_report,
};
pub use prefix::{audit_prefix, PrefixAudit, AUDIT_CHUNK};

use crate::domain::{Genesis, Millis, RejectReason};
use crate::log::CommandRefusal;
use crate::projection::Projection;

/// What is wrong with the audited log or with the server's answers. Every message names
/// the entry (by index) or the service and field concerned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuditError {
    #[error("entry {index} does not decode: {detail}")]
    Undecodable { index: u64, detail: String },
    #[error("entry {index} says it is entry {claimed}")]
    Misplaced { index: u64, claimed: u64 },
    #[error("entry 0 is not a genesis; a log starts with its genesis")]
    MissingGenesis,
    #[error("the genesis cannot start a log: {0}")]
    InvalidGenesis(String),
    #[error("entry {index} is a second genesis")]
    SecondGenesis { index: u64 },
    #[error("the genesis names origin {genesis_origin:?} with ledger key {genesis_key}, but the pinned verifier key is for {pinned_origin:?} with key {pinned_key}")]
    GenesisMismatch {
        genesis_origin: String,
        genesis_key: String,
        pinned_origin: String,
        pinned_key: String,
    },
    #[error("entry {index} was received at {received_at}, before entry {previous_index} ({previous_received_at}); the ledger's time never goes back")]
    TimeWentBack {
        index: u64,
        received_at: String,
        previous_index: u64,
        previous_received_at: String,
    },
    #[error("entry {index}: the signature of {signer}'s {kind} does not verify")]
    BadSignature {
        index: u64,
        kind: &'static str,
        signer: String,
    },
    #[error("entry {index}: an observation the ledger must have rejected ({}): {detail}", reason.as_str())]
    RejectedObservation {
        index: u64,
        reason: RejectReason,
        detail: String,
    },
    #[error("entry {index}: a command the ledger must have refused: {refusal}")]
    RefusedCommand { index: u64, refusal: CommandRefusal },
    #[error("entry {index}: a command that repeats entry {original} byte for byte; a retried command is never appended twice")]
    RepeatedCommand { index: u64, original: u64 },
    #[error("the log holds {entries} entries but the checkpoint covers {tree_size}")]
    WrongSize { entries: u64, tree_size: u64 },
    #[error(
        "service {service_id}: the server's {field} is {served}, but the log gives {recomputed}"
    )]
    ReportMismatch {
        service_id: String,
        field: String,
        served: String,
        recomputed: String,
    },
    #[error("the server's {what} differs from the log's: the server answers {served}, but the log gives {recomputed}")]
    GovernanceMismatch {
        what: String,
        served: String,
        recomputed: String,
    },
    #[error(
        "the audited log's genesis names no previous log, but a previous verifier key was given"
    )]
    NoPreviousLog,
    #[error("the genesis says this log continues {claimed}, but the previous log {actual}: the chain is broken or forged")]
    BrokenChain { claimed: String, actual: String },
    #[error("the genesis continues the previous log at tree size {named}, and that checkpoint is the previous log's, but it grew after the new log started: it now holds {now} entries, appended after the handover or hidden from the new log")]
    PreviousLogGrew { named: u64, now: u64 },
    #[error("the checkpoint saved earlier (tree size {saved}) is ahead of the ledger's latest (tree size {latest}): the log was rolled back or forked")]
    RolledBack { saved: u64, latest: u64 },
    #[error("the ledger's checkpoint at tree size {latest} is not consistent with the one saved earlier at tree size {saved}: {detail}; the log was rewritten or forked")]
    Inconsistent {
        saved: u64,
        latest: u64,
        detail: String,
    },
}

/// Counts of what an audit checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCounts {
    pub entries: u64,
    pub observations: u64,
    pub commands: u64,
    pub signatures_verified: u64,
}

/// A prefix that passed the audit, and its recomputed projection.
#[derive(Debug)]
pub struct AuditedPrefix {
    pub tree_size: u64,
    /// The largest `received_at` in the prefix: where relative windows end.
    pub as_of: Millis,
    pub genesis: Genesis,
    pub projection: Projection,
    pub counts: AuditCounts,
}

/// The signed log prefix an answer names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPrefix {
    pub tree_size: u64,
    /// The C2SP signed note of the checkpoint at `tree_size`.
    pub checkpoint: String,
}

#[cfg(test)]
mod tests;
