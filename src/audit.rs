//! The auditor's independent check of a log prefix: pure. It is given the entries (hashed
//! to the signed checkpoint as they stream in, by [`crate::client::download_and_audit`]), the pinned
//! checkpoint verifier and, for comparisons, the server's answers as plain values; it does
//! no I/O and never reads the clock.
//!
//! [`PrefixAudit`] takes the prefix's entries in log order, a chunk at a time (so memory
//! holds one chunk of decoded entries and a caller can show progress), and for each entry:
//!
//! - re-judges it by DESIGN.md's ingest rules at its position in the log: an observation's
//!   probe registered and not revoked, its service defined, its `seq` above the probe's
//!   previous accepted one, `received_at - max_lateness <= observed_at <= received_at +
//!   max_skew`; a command valid in the state of the log then (the ledger's own
//!   [`Registry::check`]); `received_at` never decreasing. This catches an operator who
//!   injects entries the ledger would have refused, such as backdated observations, even
//!   though they are validly signed and hashed into the tree;
//! - verifies its signature, observations against the probe key the log registered,
//!   commands against the genesis admin keys, by the signature rule (each on its own),
//!   spread over all cores;
//! - feeds it to the projection through [`feed::apply_entry`], exactly as the server's
//!   projector does, so the recomputed reports use the same code as the served ones.
//!
//! [`compare_report`], [`compare_incidents`] and [`compare_prefix`] then hold the server's
//! answers against the recomputed ones field by field, and [`check_consistency`] checks
//! that a checkpoint saved earlier describes a prefix of the current one.
//!
//! # Decisions
//!
//! - Errors name the first bad entry. Within a chunk, judging stops at the first entry that
//!   breaks a rule; then the signatures of the entries before it are verified, and a bad
//!   one among them is reported instead, being earlier. A chunk's signatures are verified
//!   in the background while the next chunk is judged (judging is sequential, verifying
//!   is not, so the cores stay busy); a bad one is reported before anything a later chunk
//!   turns up.
//! - An observation is judged in the ledger's order (probe, revocation, service, seq, time
//!   bounds); every `seq` at or below the probe's last one is reported as `stale_seq`, since
//!   neither a duplicate nor an equivocation may ever be appended.
//! - A command that repeats an appended one byte for byte is an error: the ledger answers a
//!   retry with the original index and never appends it twice.
//! - The genesis must name the pinned checkpoint key and origin: a log whose trust root
//!   disagrees with the key an auditor pinned is not the log the auditor means to check.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::crypto::{PublicKey, SigningContext};
use crate::domain::{
    format_millis, AdminCommand, Genesis, Millis, Observation, ProbeId, RejectReason, Rejection,
};
use crate::entry::{self, DecodedEntry, Payload};
use crate::log::registry::CommandCheck;
use crate::log::rules::{self, Judgement};
use crate::log::{CommandRefusal, Registry};
use crate::merkle::{self, Hash};
use crate::projection::{AvailabilityReport, Incident, Projection};
use crate::projector::feed;

/// Entries decoded and judged per step of [`audit_prefix`].
pub const AUDIT_CHUNK: usize = 65_536;
/// The fewest signatures worth a thread of their own.
const MIN_SHARE: usize = 256;

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

/// An audit in progress: feed it the prefix's entries in order with
/// [`PrefixAudit::check_entries`], then [`PrefixAudit::finish`] it. Each step consumes the
/// audit, so nothing can continue past a failure.
pub struct PrefixAudit {
    verifier: NoteVerifier,
    /// Set by the genesis (entry 0).
    judge: Option<Judge>,
    next_index: u64,
    last_received_at: Millis,
    counts: AuditCounts,
    /// The previous chunk's signatures, being verified while the next chunk is judged.
    verifying: Option<std::thread::JoinHandle<Result<u64, AuditError>>>,
}

/// The state the ingest rules are judged against, as the log has made it so far.
struct Judge {
    genesis: Genesis,
    registry: Registry,
    last_seqs: HashMap<ProbeId, u64>,
    projection: Projection,
}

/// The signature an entry must carry: the key that must have made it, over what.
struct ExpectedSignature {
    key: PublicKey,
    context: SigningContext,
}

/// A signature to verify once the chunk has been judged.
struct PendingSignature {
    /// Position of the entry in the chunk.
    position: usize,
    expected: ExpectedSignature,
}

/// Audits a whole prefix held in memory; `checkpoint` is the one its entries hash to.
pub fn audit_prefix(
    entries: &[Vec<u8>],
    checkpoint: &Checkpoint,
    verifier: &NoteVerifier,
) -> Result<AuditedPrefix, AuditError> {
    let mut audit = PrefixAudit::new(verifier);
    for chunk in entries.chunks(AUDIT_CHUNK) {
        audit = audit.check_entries(chunk)?;
    }
    audit.finish(checkpoint)
}

impl PrefixAudit {
    /// An audit of a log whose checkpoints `verifier` (the pinned key) verifies.
    pub fn new(verifier: &NoteVerifier) -> PrefixAudit {
        PrefixAudit {
            verifier: verifier.clone(),
            judge: None,
            next_index: 0,
            last_received_at: Millis::MIN,
            counts: AuditCounts::default(),
            verifying: None,
        }
    }

    /// Judges the next entries of the log (in order, starting where the previous call
    /// stopped), applies them to the projection and verifies their signatures on all cores.
    ///
    /// Verification is pipelined: a chunk's signatures are verified in the background
    /// while the caller hands over and this judges the next chunk; a bad signature is
    /// reported by the next call or by [`PrefixAudit::finish`], before anything found in
    /// a later chunk, so the error still names the first bad entry.
    pub fn check_entries<E: AsRef<[u8]>>(
        mut self,
        entries: &[E],
    ) -> Result<PrefixAudit, AuditError> {
        let mut decoded = Vec::with_capacity(entries.len());
        let mut pending = Vec::new();
        let mut refusal = None;
        for bytes in entries {
            match self.judge_next(bytes.as_ref()) {
                Ok((entry, expected)) => {
                    if let Some(expected) = expected {
                        pending.push(PendingSignature {
                            position: decoded.len(),
                            expected,
                        });
                    }
                    decoded.push(entry);
                }
                Err(error) => {
                    refusal = Some(error);
                    break;
                }
            }
        }
        self.join_verification()?;
        match refusal {
            Some(error) => {
                verify_chunk(&decoded, &pending)?;
                Err(error)
            }
            None => {
                self.verifying = Some(std::thread::spawn(move || verify_chunk(&decoded, &pending)));
                Ok(self)
            }
        }
    }

    /// Waits for the chunk being verified in the background, if any.
    fn join_verification(&mut self) -> Result<(), AuditError> {
        if let Some(verifying) = self.verifying.take() {
            let verified = verifying.join().expect("a verification thread panicked")?;
            self.counts.signatures_verified += verified;
        }
        Ok(())
    }

    /// Ends the audit: every entry the checkpoint covers must have been checked.
    pub fn finish(mut self, checkpoint: &Checkpoint) -> Result<AuditedPrefix, AuditError> {
        self.join_verification()?;
        let judge = self.judge.ok_or(AuditError::MissingGenesis)?;
        if self.next_index != checkpoint.tree_size {
            return Err(AuditError::WrongSize {
                entries: self.next_index,
                tree_size: checkpoint.tree_size,
            });
        }
        Ok(AuditedPrefix {
            tree_size: self.next_index,
            as_of: self.last_received_at,
            genesis: judge.genesis,
            projection: judge.projection,
            counts: self.counts,
        })
    }

    /// Decodes and judges one entry and applies it; returns it with the signature it must
    /// carry (none for the genesis).
    fn judge_next(
        &mut self,
        bytes: &[u8],
    ) -> Result<(DecodedEntry, Option<ExpectedSignature>), AuditError> {
        let index = self.next_index;
        let entry = entry::decode_entry(bytes).map_err(|e| AuditError::Undecodable {
            index,
            detail: e.to_string(),
        })?;
        if entry.index != index {
            return Err(AuditError::Misplaced {
                index,
                claimed: entry.index,
            });
        }
        if entry.received_at < self.last_received_at {
            return Err(AuditError::TimeWentBack {
                index,
                received_at: format_millis(entry.received_at),
                previous_index: index - 1,
                previous_received_at: format_millis(self.last_received_at),
            });
        }
        let signature = match (&entry.payload, self.judge.as_mut()) {
            (Payload::Genesis(genesis), None) => {
                self.judge = Some(Judge::new(genesis, &self.verifier)?);
                None
            }
            (Payload::Genesis(_), Some(_)) => return Err(AuditError::SecondGenesis { index }),
            (_, None) => return Err(AuditError::MissingGenesis),
            (
                Payload::Observation {
                    observation,
                    signature,
                    ..
                },
                Some(judge),
            ) => {
                self.counts.observations += 1;
                Some(judge.observation(index, entry.received_at, observation, signature)?)
            }
            (
                Payload::Command {
                    signer,
                    body,
                    signature,
                    command,
                },
                Some(judge),
            ) => {
                self.counts.commands += 1;
                let key = judge.command(index, signer, body, command)?;
                check_signature_length(&entry, signature)?;
                Some(ExpectedSignature {
                    key,
                    context: SigningContext::Command,
                })
            }
        };
        let judge = self.judge.as_mut().expect("entry 0 set the judge");
        feed::apply_entry(&mut judge.projection, &entry);
        self.last_received_at = entry.received_at;
        self.next_index += 1;
        self.counts.entries += 1;
        Ok((entry, signature))
    }
}

impl Judge {
    fn new(genesis: &Genesis, verifier: &NoteVerifier) -> Result<Judge, AuditError> {
        if genesis.origin != verifier.name() || &genesis.ledger_public_key != verifier.public_key()
        {
            return Err(AuditError::GenesisMismatch {
                genesis_origin: genesis.origin.clone(),
                genesis_key: hex::encode(genesis.ledger_public_key.as_bytes()),
                pinned_origin: verifier.name().to_owned(),
                pinned_key: hex::encode(verifier.public_key().as_bytes()),
            });
        }
        Ok(Judge {
            genesis: genesis.clone(),
            registry: Registry::new(genesis.clone()),
            last_seqs: HashMap::new(),
            projection: Projection::new(feed::projection_config(genesis)),
        })
    }

    /// Ingest rules 2, 4 and 5 at this position; returns the key the signature must verify
    /// against (rule 3 is checked in bulk afterwards).
    fn observation(
        &mut self,
        index: u64,
        received_at: Millis,
        observation: &Observation,
        signature: &[u8],
    ) -> Result<ExpectedSignature, AuditError> {
        let rejected = |rejection: Rejection| AuditError::RejectedObservation {
            index,
            reason: rejection.reason,
            detail: rejection.message,
        };
        let probe_id = &observation.probe_id;
        let last_seq = self.last_seqs.get(probe_id).copied();
        let key = match rules::judge_observation(&self.registry, last_seq, observation, received_at)
            .map_err(rejected)?
        {
            Judgement::New { key } => key.clone(),
            // The log holds every accepted (probe, seq) once: a seq not above the last one
            // was never accepted.
            Judgement::SeqNotAbove { last_seq } => {
                return Err(rejected(rules::stale_seq(observation, last_seq)))
            }
        };
        if signature.len() != 64 {
            return Err(AuditError::BadSignature {
                index,
                kind: "observation",
                signer: format!("probe {probe_id}"),
            });
        }
        self.last_seqs.insert(probe_id.clone(), observation.seq);
        Ok(ExpectedSignature {
            key,
            context: SigningContext::Observation,
        })
    }

    /// The admin command rules at this position; returns the signer's key.
    fn command(
        &mut self,
        index: u64,
        signer: &str,
        body: &[u8],
        command: &AdminCommand,
    ) -> Result<PublicKey, AuditError> {
        match self.registry.check(signer, body, command) {
            Ok(CommandCheck::Apply) => {}
            Ok(CommandCheck::AlreadyApplied { index: original }) => {
                return Err(AuditError::RepeatedCommand { index, original })
            }
            Err(refusal) => return Err(AuditError::RefusedCommand { index, refusal }),
        }
        let key = self
            .registry
            .admin_key(signer)
            .expect("check refuses unknown signers")
            .clone();
        self.registry.apply(index, signer, body, command);
        Ok(key)
    }
}

/// A signature of any other length than 64 bytes is refused as soon as its entry is read.
fn check_signature_length(entry: &DecodedEntry, signature: &[u8]) -> Result<(), AuditError> {
    if signature.len() == 64 {
        Ok(())
    } else {
        Err(bad_signature(entry))
    }
}

fn bad_signature(entry: &DecodedEntry) -> AuditError {
    let (kind, signer) = match &entry.payload {
        Payload::Observation { observation, .. } => {
            ("observation", format!("probe {}", observation.probe_id))
        }
        Payload::Command { signer, .. } => ("command", format!("admin {signer}")),
        Payload::Genesis(_) => ("genesis", "the ledger".to_owned()),
    };
    AuditError::BadSignature {
        index: entry.index,
        kind,
        signer,
    }
}

/// The body an entry's signature covers, and the signature.
fn signed_parts(entry: &DecodedEntry) -> (&[u8], &[u8]) {
    match &entry.payload {
        Payload::Observation {
            body, signature, ..
        }
        | Payload::Command {
            body, signature, ..
        } => (body, signature),
        Payload::Genesis(_) => (&[], &[]),
    }
}

/// Verifies a judged chunk's signatures; the number verified, or the error naming the
/// first entry whose signature does not verify.
fn verify_chunk(decoded: &[DecodedEntry], pending: &[PendingSignature]) -> Result<u64, AuditError> {
    match first_bad_signature(decoded, pending) {
        Some(bad) => Err(bad_signature(&decoded[pending[bad].position])),
        None => Ok(pending.len() as u64),
    }
}

/// The position in `pending` of the first signature that does not verify by the signature
/// rule. The work is split into one contiguous share per core.
fn first_bad_signature(decoded: &[DecodedEntry], pending: &[PendingSignature]) -> Option<usize> {
    let verifies = |p: &PendingSignature| {
        let (body, signature) = signed_parts(&decoded[p.position]);
        p.expected.key.verify(p.expected.context, body, signature)
    };
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let share = pending.len().div_ceil(cores).max(MIN_SHARE);
    let first_bad_in = |share: &[PendingSignature]| share.iter().position(|p| !verifies(p));
    if pending.len() <= share {
        return first_bad_in(pending);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = pending
            .chunks(share)
            .enumerate()
            .map(|(n, part)| scope.spawn(move || first_bad_in(part).map(|bad| n * share + bad)))
            .collect();
        workers
            .into_iter()
            .filter_map(|worker| worker.join().expect("a verification thread panicked"))
            .min()
    })
}

/// Compares a served availability report with the recomputed one, field by field; the
/// error names the first field that differs and both values.
pub fn compare_report(
    service_id: &str,
    served: &AvailabilityReport,
    recomputed: &AvailabilityReport,
) -> Result<(), AuditError> {
    let time = |millis| format_millis(millis);
    let optional = |value: Option<f64>| value.map_or("absent".to_owned(), |v| format!("{v:?}"));
    let fields = [
        ("window start", time(served.start), time(recomputed.start)),
        ("window end", time(served.end), time(recomputed.end)),
        (
            "up_ms",
            served.up_ms.to_string(),
            recomputed.up_ms.to_string(),
        ),
        (
            "down_ms",
            served.down_ms.to_string(),
            recomputed.down_ms.to_string(),
        ),
        (
            "unknown_ms",
            served.unknown_ms.to_string(),
            recomputed.unknown_ms.to_string(),
        ),
        (
            "maintenance_ms",
            served.maintenance_ms.to_string(),
            recomputed.maintenance_ms.to_string(),
        ),
        (
            "availability",
            optional(served.availability),
            optional(recomputed.availability),
        ),
        (
            "coverage",
            optional(served.coverage),
            optional(recomputed.coverage),
        ),
        (
            "slo_target",
            format!("{:?}", served.slo_target),
            format!("{:?}", recomputed.slo_target),
        ),
        (
            "slo_met",
            served.slo_met.to_string(),
            recomputed.slo_met.to_string(),
        ),
        (
            "error_budget_ms",
            format!("{:?}", served.error_budget_ms),
            format!("{:?}", recomputed.error_budget_ms),
        ),
        (
            "error_budget_remaining_ms",
            format!("{:?}", served.error_budget_remaining_ms),
            format!("{:?}", recomputed.error_budget_remaining_ms),
        ),
        (
            "incident_count",
            served.incident_count.to_string(),
            recomputed.incident_count.to_string(),
        ),
    ];
    first_difference(service_id, "availability report's", fields)
}

/// Compares a served incident list (and the window it resolved) with the recomputed one.
pub fn compare_incidents(
    service_id: &str,
    served_window: (Millis, Millis),
    served: &[Incident],
    recomputed_window: (Millis, Millis),
    recomputed: &[Incident],
) -> Result<(), AuditError> {
    let time = |millis| format_millis(millis);
    first_difference(
        service_id,
        "incident list's",
        [
            (
                "window start",
                time(served_window.0),
                time(recomputed_window.0),
            ),
            (
                "window end",
                time(served_window.1),
                time(recomputed_window.1),
            ),
            (
                "number of incidents",
                served.len().to_string(),
                recomputed.len().to_string(),
            ),
        ],
    )?;
    for (n, (served, recomputed)) in served.iter().zip(recomputed).enumerate() {
        let describe = |incident: &Incident| {
            format!(
                "[{}, {}) open={} probes=[{}]",
                time(incident.start),
                time(incident.end),
                incident.open,
                incident.probes.join(",")
            )
        };
        if served != recomputed {
            return Err(mismatch(
                service_id,
                format!("incident {n}"),
                describe(served),
                describe(recomputed),
            ));
        }
    }
    Ok(())
}

/// Checks that an answer names the prefix that was audited.
pub fn compare_prefix(
    service_id: &str,
    answer: &str,
    served: &LogPrefix,
    audited: &LogPrefix,
) -> Result<(), AuditError> {
    first_difference(
        service_id,
        answer,
        [
            (
                "tree_size",
                served.tree_size.to_string(),
                audited.tree_size.to_string(),
            ),
            (
                "checkpoint",
                format!("{:?}", served.checkpoint),
                format!("{:?}", audited.checkpoint),
            ),
        ],
    )
}

fn first_difference<const N: usize>(
    service_id: &str,
    answer: &str,
    fields: [(&str, String, String); N],
) -> Result<(), AuditError> {
    match fields.into_iter().find(|(_, served, ours)| served != ours) {
        Some((field, served, recomputed)) => Err(mismatch(
            service_id,
            format!("{answer} {field}"),
            served,
            recomputed,
        )),
        None => Ok(()),
    }
}

fn mismatch(service_id: &str, field: String, served: String, recomputed: String) -> AuditError {
    AuditError::ReportMismatch {
        service_id: service_id.to_owned(),
        field,
        served,
        recomputed,
    }
}

/// Checks that `latest` extends `saved` (both already verified against the pinned key),
/// given the RFC 9162 consistency proof between them (empty for equal sizes).
pub fn check_consistency(
    saved: &Checkpoint,
    latest: &Checkpoint,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if saved.tree_size > latest.tree_size {
        return Err(AuditError::RolledBack {
            saved: saved.tree_size,
            latest: latest.tree_size,
        });
    }
    merkle::verify_consistency(
        saved.tree_size,
        latest.tree_size,
        &saved.root_hash,
        &latest.root_hash,
        proof,
    )
    .map_err(|e| AuditError::Inconsistent {
        saved: saved.tree_size,
        latest: latest.tree_size,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::client::{sign_command, sign_observation};
    use crate::domain::{AdminKey, Command, MaintenanceId, Quorum, ServiceId, ServiceSpec, Status};
    use crate::pb;

    /// 2026-11-27T00:00:00Z.
    const T0: Millis = 1_795_737_600_000;
    const ORIGIN: &str = "audit.test/log";
    const SECOND: Millis = 1000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// Builds a log entry by entry, signing like a real admin and real probes, without
    /// any of the ledger's checks: what a dishonest operator could write.
    struct LogBuilder {
        entries: Vec<Vec<u8>>,
        admin_seq: u64,
    }

    impl LogBuilder {
        /// A genesis (ledger key 1, admin key 2, max_lateness 1 h, max_skew 30 s), service
        /// `passport` and probes `p1` (key 11) and `p2` (key 12), all received at T0.
        fn new() -> LogBuilder {
            let genesis = Genesis {
                origin: ORIGIN.into(),
                ledger_public_key: crate::crypto::PublicKey::from(&key(1)),
                admin_keys: vec![AdminKey {
                    name: "admin".into(),
                    public_key: crate::crypto::PublicKey::from(&key(2)),
                }],
                max_lateness: Duration::from_secs(3600),
                max_skew: Duration::from_secs(30),
            };
            let mut log = LogBuilder {
                entries: vec![entry::encode_entry(
                    0,
                    T0,
                    pb::log_entry::Payload::Genesis(entry::genesis_to_pb(&genesis)),
                )],
                admin_seq: 0,
            };
            log.command(T0, define("passport"));
            log.command(T0, register("p1", 11));
            log.command(T0, register("p2", 12));
            log
        }

        fn next_index(&self) -> u64 {
            self.entries.len() as u64
        }

        fn command(&mut self, received_at: Millis, command: Command) -> u64 {
            self.admin_seq += 1;
            let command = AdminCommand {
                seq: self.admin_seq,
                issued_at: received_at,
                command,
            };
            self.signed_command(received_at, sign_command("admin", &key(2), &command))
        }

        fn signed_command(&mut self, received_at: Millis, signed: pb::SignedCommand) -> u64 {
            let index = self.next_index();
            self.entries.push(entry::encode_entry(
                index,
                received_at,
                pb::log_entry::Payload::Command(signed),
            ));
            index
        }

        /// An observation by probe `p<seed - 10>` signed with `key(seed)`, unless `signer`
        /// says otherwise.
        #[allow(clippy::too_many_arguments)]
        fn observation(
            &mut self,
            received_at: Millis,
            probe: &str,
            signer: u8,
            seq: u64,
            observed_at: Millis,
            status: Status,
        ) -> u64 {
            let observation = Observation {
                probe_id: ProbeId::parse(probe).unwrap(),
                service_id: ServiceId::parse("passport").unwrap(),
                seq,
                observed_at,
                status,
                latency_ms: 20,
                detail: String::new(),
            };
            let index = self.next_index();
            self.entries.push(entry::encode_entry(
                index,
                received_at,
                pb::log_entry::Payload::Observation(sign_observation(&key(signer), &observation)),
            ));
            index
        }

        fn checkpoint(&self) -> Checkpoint {
            Checkpoint {
                origin: ORIGIN.into(),
                tree_size: self.next_index(),
                root_hash: [0; 32],
                extensions: Vec::new(),
            }
        }

        fn audit(&self) -> Result<AuditedPrefix, AuditError> {
            audit_prefix(&self.entries, &self.checkpoint(), &verifier())
        }
    }

    fn verifier() -> NoteVerifier {
        NoteVerifier::new(ORIGIN, PublicKey::from(&key(1))).unwrap()
    }

    fn define(service_id: &str) -> Command {
        Command::DefineService(ServiceSpec {
            service_id: ServiceId::parse(service_id).unwrap(),
            name: "Passport applications".into(),
            agency: "Immigration".into(),
            slo_target: 0.99,
            quorum: Quorum::Majority,
            staleness: Duration::from_secs(90),
        })
    }

    fn register(probe_id: &str, seed: u8) -> Command {
        Command::RegisterProbe {
            probe_id: ProbeId::parse(probe_id).unwrap(),
            public_key: crate::crypto::PublicKey::from(&key(seed)),
            location: "Nairobi".into(),
        }
    }

    fn rejected_reason(result: Result<AuditedPrefix, AuditError>) -> (u64, RejectReason, String) {
        match result {
            Err(error @ AuditError::RejectedObservation { index, reason, .. }) => {
                (index, reason, error.to_string())
            }
            other => panic!("expected a rejected observation, got {other:?}"),
        }
    }

    #[test]
    fn an_honest_log_passes_and_projects_like_the_server() {
        let mut log = LogBuilder::new();
        // p1: UP at +0 s, DOWN at +60 s, UP at +120 s (fresh for 90 s); maintenance from
        // +200 s to +300 s. One probe, so the service state is p1's.
        log.observation(T0, "p1", 11, 1, T0, Status::Up);
        log.observation(
            T0 + 60 * SECOND,
            "p1",
            11,
            2,
            T0 + 60 * SECOND,
            Status::Down,
        );
        log.observation(
            T0 + 120 * SECOND,
            "p1",
            11,
            5,
            T0 + 120 * SECOND,
            Status::Up,
        );
        log.command(
            T0 + 130 * SECOND,
            Command::ScheduleMaintenance {
                maintenance_id: MaintenanceId::parse("m1").unwrap(),
                service_id: ServiceId::parse("passport").unwrap(),
                start: T0 + 200 * SECOND,
                end: T0 + 300 * SECOND,
                reason: "upgrade".into(),
            },
        );
        let audited = log.audit().unwrap();
        assert_eq!(
            audited.counts,
            AuditCounts {
                entries: 8,
                observations: 3,
                commands: 4,
                signatures_verified: 7,
            }
        );
        assert_eq!(audited.as_of, T0 + 130 * SECOND);
        let report = audited
            .projection
            .report("passport", T0, T0 + 300 * SECOND)
            .unwrap();
        assert_eq!(
            (
                report.up_ms,
                report.down_ms,
                report.unknown_ms,
                report.maintenance_ms
            ),
            (140_000, 60_000, 0, 100_000)
        );
        let incidents = audited
            .projection
            .incidents("passport", T0, T0 + 300 * SECOND)
            .unwrap();
        assert_eq!(
            incidents,
            vec![Incident {
                start: T0 + 60 * SECOND,
                end: T0 + 120 * SECOND,
                open: false,
                probes: vec!["p1".into()],
            }]
        );
    }

    #[test]
    fn a_backdated_observation_is_caught_although_validly_signed() {
        let mut log = LogBuilder::new();
        log.observation(T0, "p1", 11, 1, T0, Status::Up);
        // Received two hours later but dated at T0: the ledger refuses this as TOO_LATE,
        // so only an operator writing the log directly can have put it there.
        let injected = log.observation(T0 + 7200 * SECOND, "p2", 12, 1, T0, Status::Down);
        let (index, reason, message) = rejected_reason(log.audit());
        assert_eq!((index, reason), (injected, RejectReason::TooLate));
        assert!(
            message.starts_with("entry 5: ") && message.contains("7200000 ms before received_at"),
            "{message}"
        );
    }

    #[test]
    fn every_observation_rule_is_judged_at_its_position() {
        struct Case {
            name: &'static str,
            build: fn(&mut LogBuilder) -> u64,
            reason: RejectReason,
        }
        let cases = [
            Case {
                name: "dated too far ahead",
                build: |log| log.observation(T0, "p1", 11, 1, T0 + 31 * SECOND, Status::Up),
                reason: RejectReason::TooEarly,
            },
            Case {
                name: "unregistered probe",
                build: |log| log.observation(T0, "p9", 11, 1, T0, Status::Up),
                reason: RejectReason::UnknownProbe,
            },
            Case {
                name: "revoked probe",
                build: |log| {
                    log.command(
                        T0,
                        Command::RevokeProbe {
                            probe_id: ProbeId::parse("p1").unwrap(),
                            reason: "stolen key".into(),
                        },
                    );
                    log.observation(T0, "p1", 11, 1, T0, Status::Up)
                },
                reason: RejectReason::ProbeRevoked,
            },
            Case {
                name: "seq replayed with other bytes",
                build: |log| {
                    log.observation(T0, "p1", 11, 7, T0, Status::Up);
                    log.observation(T0, "p1", 11, 7, T0, Status::Down)
                },
                reason: RejectReason::StaleSeq,
            },
            Case {
                name: "seq going down",
                build: |log| {
                    log.observation(T0, "p1", 11, 7, T0, Status::Up);
                    log.observation(T0, "p1", 11, 6, T0, Status::Up)
                },
                reason: RejectReason::StaleSeq,
            },
        ];
        for case in cases {
            let mut log = LogBuilder::new();
            let bad = (case.build)(&mut log);
            log.observation(T0 + SECOND, "p2", 12, 1, T0, Status::Up);
            let (index, reason, _) = rejected_reason(log.audit());
            assert_eq!((index, reason), (bad, case.reason), "{}", case.name);
        }
    }

    #[test]
    fn an_observation_of_a_service_defined_only_later_is_caught() {
        let mut log = LogBuilder::new();
        let observation = |log: &mut LogBuilder| {
            let body = Observation {
                probe_id: ProbeId::parse("p1").unwrap(),
                service_id: ServiceId::parse("tax").unwrap(),
                seq: 1,
                observed_at: T0,
                status: Status::Up,
                latency_ms: 1,
                detail: String::new(),
            };
            let index = log.next_index();
            log.entries.push(entry::encode_entry(
                index,
                T0,
                pb::log_entry::Payload::Observation(sign_observation(&key(11), &body)),
            ));
            index
        };
        let bad = observation(&mut log);
        log.command(T0, define("tax"));
        let (index, reason, message) = rejected_reason(log.audit());
        assert_eq!((index, reason), (bad, RejectReason::UnknownService));
        assert!(message.contains("service tax is not defined"), "{message}");
    }

    #[test]
    fn received_at_must_never_decrease() {
        let mut log = LogBuilder::new();
        log.observation(T0 + 10 * SECOND, "p1", 11, 1, T0, Status::Up);
        log.observation(T0 + 5 * SECOND, "p2", 12, 1, T0, Status::Up);
        let error = log.audit().unwrap_err();
        assert!(matches!(error, AuditError::TimeWentBack { index: 5, .. }));
        assert!(
            error
                .to_string()
                .starts_with("entry 5 was received at 2026-11-27T00:00:05.000Z, before entry 4"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_signature_is_named_precisely_among_thousands() {
        let mut log = LogBuilder::new();
        let mut bad = 0;
        for seq in 1..=3000u64 {
            let observed_at = T0 + seq as Millis;
            // Probe p2's observation signed with p1's key.
            let signer = if seq == 2345 { 11 } else { 12 };
            let index = log.observation(observed_at, "p2", signer, seq, observed_at, Status::Up);
            if seq == 2345 {
                bad = index;
            }
        }
        let error = log.audit().unwrap_err();
        assert_eq!(
            error,
            AuditError::BadSignature {
                index: bad,
                kind: "observation",
                signer: "probe p2".into()
            }
        );
        assert_eq!(
            error.to_string(),
            format!("entry {bad}: the signature of probe p2's observation does not verify")
        );
        // Honest, the same log verifies every signature.
        let mut log = LogBuilder::new();
        for seq in 1..=3000u64 {
            log.observation(T0, "p2", 12, seq, T0, Status::Up);
        }
        assert_eq!(log.audit().unwrap().counts.signatures_verified, 3003);
    }

    #[test]
    fn the_earlier_of_a_bad_signature_and_a_broken_rule_is_reported() {
        let mut log = LogBuilder::new();
        let bad_signature = log.observation(T0, "p1", 12, 1, T0, Status::Up);
        log.observation(T0, "p9", 11, 1, T0, Status::Up);
        assert!(matches!(
            log.audit(),
            Err(AuditError::BadSignature { index, .. }) if index == bad_signature
        ));

        let mut log = LogBuilder::new();
        let broken_rule = log.observation(T0, "p9", 11, 1, T0, Status::Up);
        log.observation(T0, "p1", 12, 1, T0, Status::Up);
        assert_eq!(rejected_reason(log.audit()).0, broken_rule);
    }

    /// Audits `log` a few entries at a time, so chunks are verified in the background
    /// while later ones are judged.
    fn audit_in_chunks(log: &LogBuilder, chunk: usize) -> Result<AuditedPrefix, AuditError> {
        let mut audit = PrefixAudit::new(&verifier());
        for entries in log.entries.chunks(chunk) {
            audit = audit.check_entries(entries)?;
        }
        audit.finish(&log.checkpoint())
    }

    #[test]
    fn across_chunks_the_earlier_of_a_bad_signature_and_a_broken_rule_is_reported() {
        // The bad signature is in one chunk, the broken rule in a later one, judged while
        // the first is still being verified.
        let mut log = LogBuilder::new();
        let mut bad_signature = 0;
        for seq in 1..=40u64 {
            let signer = if seq == 7 { 12 } else { 11 };
            let index = log.observation(T0, "p1", signer, seq, T0, Status::Up);
            if seq == 7 {
                bad_signature = index;
            }
        }
        log.observation(T0, "p9", 11, 1, T0, Status::Up);
        for chunk in [1, 5, 16, 1000] {
            assert!(
                matches!(
                    audit_in_chunks(&log, chunk),
                    Err(AuditError::BadSignature { index, .. }) if index == bad_signature
                ),
                "chunk {chunk}"
            );
        }

        // A bad signature in the last chunk is found by finish.
        let mut log = LogBuilder::new();
        for seq in 1..=40u64 {
            log.observation(T0, "p1", 11, seq, T0, Status::Up);
        }
        let last = log.observation(T0, "p1", 12, 41, T0, Status::Up);
        assert!(matches!(
            audit_in_chunks(&log, 8),
            Err(AuditError::BadSignature { index, .. }) if index == last
        ));

        // Honest, every signature is counted once, whatever the chunking.
        let mut log = LogBuilder::new();
        for seq in 1..=40u64 {
            log.observation(T0, "p1", 11, seq, T0, Status::Up);
        }
        for chunk in [1, 7, 1000] {
            assert_eq!(
                audit_in_chunks(&log, chunk)
                    .unwrap()
                    .counts
                    .signatures_verified,
                43
            );
        }
    }

    #[test]
    fn commands_are_judged_by_the_ledger_rules() {
        // Cancelling a maintenance that was never scheduled.
        let mut log = LogBuilder::new();
        let cancel = log.command(
            T0,
            Command::CancelMaintenance {
                maintenance_id: MaintenanceId::parse("never").unwrap(),
            },
        );
        let error = log.audit().unwrap_err();
        assert!(
            matches!(error, AuditError::RefusedCommand { index, refusal: CommandRefusal::NotFound(_) } if index == cancel)
        );
        assert!(
            error
                .to_string()
                .contains("maintenance never was never scheduled"),
            "{error}"
        );

        // The same signed command appended twice.
        let mut log = LogBuilder::new();
        let repeated = log.entries[1].clone();
        let signed = match entry::decode_entry(&repeated).unwrap().payload {
            Payload::Command {
                signer,
                body,
                signature,
                ..
            } => pb::SignedCommand {
                signer,
                body,
                signature,
            },
            _ => unreachable!(),
        };
        let index = log.signed_command(T0, signed);
        assert_eq!(
            log.audit().unwrap_err(),
            AuditError::RepeatedCommand { index, original: 1 }
        );

        // Signed by a key that is not the admin key of that name.
        let mut log = LogBuilder::new();
        let command = AdminCommand {
            seq: 99,
            issued_at: T0,
            command: define("tax"),
        };
        let forged = log.signed_command(T0, sign_command("admin", &key(3), &command));
        assert_eq!(
            log.audit().unwrap_err().to_string(),
            format!("entry {forged}: the signature of admin admin's command does not verify")
        );
    }

    #[test]
    fn the_genesis_must_match_the_pinned_key() {
        let log = LogBuilder::new();
        let other = NoteVerifier::new(ORIGIN, PublicKey::from(&key(9))).unwrap();
        let error = audit_prefix(&log.entries, &log.checkpoint(), &other).unwrap_err();
        assert!(
            matches!(error, AuditError::GenesisMismatch { .. }),
            "{error}"
        );

        let mut log = LogBuilder::new();
        log.entries.remove(0);
        let error = log.audit().unwrap_err();
        assert!(
            matches!(
                error,
                AuditError::Misplaced {
                    index: 0,
                    claimed: 1
                }
            ),
            "{error}"
        );

        let mut log = LogBuilder::new();
        let genesis = log.entries[0].clone();
        let mut reencoded = entry::decode_entry(&genesis).unwrap();
        reencoded.index = 4;
        let Payload::Genesis(genesis) = reencoded.payload else {
            unreachable!()
        };
        log.entries.push(entry::encode_entry(
            4,
            T0,
            pb::log_entry::Payload::Genesis(entry::genesis_to_pb(&genesis)),
        ));
        assert_eq!(
            log.audit().unwrap_err(),
            AuditError::SecondGenesis { index: 4 }
        );
    }

    #[test]
    fn the_whole_prefix_must_be_audited() {
        let log = LogBuilder::new();
        let mut checkpoint = log.checkpoint();
        checkpoint.tree_size += 1;
        assert_eq!(
            audit_prefix(&log.entries, &checkpoint, &verifier()).unwrap_err(),
            AuditError::WrongSize {
                entries: 4,
                tree_size: 5
            }
        );
        let mut corrupt = log.entries.clone();
        corrupt[2].truncate(10);
        assert!(matches!(
            audit_prefix(&corrupt, &log.checkpoint(), &verifier()),
            Err(AuditError::Undecodable { index: 2, .. })
        ));
    }

    fn report() -> AvailabilityReport {
        AvailabilityReport {
            start: T0,
            end: T0 + 600_000,
            up_ms: 480_000,
            down_ms: 120_000,
            unknown_ms: 0,
            maintenance_ms: 0,
            availability: Some(0.8),
            coverage: Some(1.0),
            slo_target: 0.99,
            slo_met: false,
            error_budget_ms: 6000.0,
            error_budget_remaining_ms: -114_000.0,
            incident_count: 1,
        }
    }

    #[test]
    fn reports_are_compared_field_by_field() {
        assert_eq!(compare_report("passport", &report(), &report()), Ok(()));
        let served = AvailabilityReport {
            up_ms: 540_000,
            ..report()
        };
        let error = compare_report("passport", &served, &report()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "service passport: the server's availability report's up_ms is 540000, but the log gives 480000"
        );
        let served = AvailabilityReport {
            availability: None,
            ..report()
        };
        assert!(compare_report("passport", &served, &report())
            .unwrap_err()
            .to_string()
            .contains("availability is absent, but the log gives 0.8"));
    }

    #[test]
    fn incident_lists_and_prefixes_are_compared() {
        let incident = Incident {
            start: T0,
            end: T0 + 60_000,
            open: false,
            probes: vec!["p1".into()],
        };
        let window = (T0, T0 + 600_000);
        let incidents = vec![incident.clone()];
        let same = compare_incidents("passport", window, &incidents, window, &incidents);
        assert_eq!(same, Ok(()));
        let error = compare_incidents("passport", window, &[], window, &incidents)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "service passport: the server's incident list's number of incidents is 0, but the log gives 1");
        let shortened = Incident {
            end: T0 + 30_000,
            ..incident.clone()
        };
        let error = compare_incidents("passport", window, &[shortened], window, &[incident])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("incident 0 is [2026-11-27T00:00:00.000Z, 2026-11-27T00:00:30.000Z)"),
            "{error}"
        );
        let audited = LogPrefix {
            tree_size: 10,
            checkpoint: "note".into(),
        };
        let served = LogPrefix {
            tree_size: 9,
            ..audited.clone()
        };
        assert!(
            compare_prefix("passport", "GetAvailability", &served, &audited)
                .unwrap_err()
                .to_string()
                .contains("GetAvailability tree_size is 9, but the log gives 10")
        );
    }

    /// Leaf hashes in memory, answering any perfect subtree by hashing.
    struct Leaves(Vec<Hash>);

    impl merkle::SubtreeSource for Leaves {
        type Error = std::convert::Infallible;

        fn subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
            let mut level_hashes: Vec<Hash> =
                self.0[(index << level) as usize..((index + 1) << level) as usize].to_vec();
            while level_hashes.len() > 1 {
                level_hashes = level_hashes
                    .chunks(2)
                    .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                    .collect();
            }
            Ok(level_hashes[0])
        }
    }

    #[test]
    fn consistency_with_a_saved_checkpoint() {
        let leaves = Leaves((0..13u8).map(|i| merkle::leaf_hash(&[i])).collect());
        let checkpoint = |tree_size| Checkpoint {
            origin: ORIGIN.into(),
            tree_size,
            root_hash: merkle::root(&leaves, tree_size).unwrap(),
            extensions: Vec::new(),
        };
        let (saved, latest) = (checkpoint(5), checkpoint(13));
        let proof = merkle::consistency_proof(&leaves, 5, 13).unwrap();
        assert_eq!(check_consistency(&saved, &latest, &proof), Ok(()));
        assert_eq!(check_consistency(&latest, &latest, &[]), Ok(()));
        assert_eq!(
            check_consistency(&latest, &saved, &proof),
            Err(AuditError::RolledBack {
                saved: 13,
                latest: 5
            })
        );
        let forked = Checkpoint {
            root_hash: merkle::leaf_hash(b"another history"),
            ..checkpoint(5)
        };
        let error = check_consistency(&forked, &latest, &proof).unwrap_err();
        assert!(matches!(
            error,
            AuditError::Inconsistent {
                saved: 5,
                latest: 13,
                ..
            }
        ));
        assert!(error.to_string().contains("rewritten or forked"), "{error}");
    }
}
