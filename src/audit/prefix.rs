//! [`PrefixAudit`]: a log prefix's entries, a chunk at a time, in log order. For each entry:
//!
//! - it is re-judged by DESIGN.md's ingest rules at its position in the log: an
//!   observation by [`crate::log::rules`], the ledger's own rules (every `seq` at or below
//!   the probe's last one is `stale_seq`, since neither a duplicate nor an equivocation is
//!   ever appended); a command by the ledger's own [`Registry::check`] (a command repeating
//!   an appended one byte for byte is an error: a retry is answered, never appended);
//!   `received_at` never decreasing. This catches an operator who injects entries the
//!   ledger would have refused, such as backdated observations, although they are validly
//!   signed and hashed into the tree;
//! - its signature is verified by the signature rule (each on its own), spread over all
//!   cores, in the background while the next chunk is judged; within a chunk judging stops
//!   at the first entry that breaks a rule, and a bad signature before it is reported
//!   instead, being earlier;
//! - it is fed to the projection through [`feed::apply_entry`], exactly as the server's
//!   projector does, so recomputed reports come from the same code as served ones.
//!
//! The genesis must name the pinned checkpoint key and origin: a log whose trust root
//! disagrees with the key an auditor pinned is not the log the auditor means to check.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use super::{AuditCounts, AuditError, AuditedPrefix};
use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::crypto::{PublicKey, SigningContext};
use crate::domain::{
    format_millis, AdminCommand, Genesis, Millis, Observation, ProbeId, Rejection,
};
use crate::entry::{self, DecodedEntry, Payload};
use crate::governance::{self, Position};
use crate::log::registry::CommandCheck;
use crate::log::rules::{self, Judgement};
use crate::log::Registry;
use crate::projection::Projection;
use crate::projector::feed;

/// Entries decoded and judged per step of [`audit_prefix`].
pub const AUDIT_CHUNK: usize = 65_536;
/// The fewest signatures worth a thread of their own.
const MIN_SHARE: usize = 256;

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
                self.judge = Some(Judge::new(genesis, entry.received_at, &self.verifier)?);
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
                let at = Position {
                    index,
                    received_at: entry.received_at,
                };
                let key = judge.command(at, signer, body, signature, command)?;
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
    fn new(
        genesis: &Genesis,
        received_at: Millis,
        verifier: &NoteVerifier,
    ) -> Result<Judge, AuditError> {
        if genesis.origin != verifier.name() || &genesis.ledger_public_key != verifier.public_key()
        {
            return Err(AuditError::GenesisMismatch {
                genesis_origin: genesis.origin.clone(),
                genesis_key: hex::encode(genesis.ledger_public_key.as_bytes()),
                pinned_origin: verifier.name().to_owned(),
                pinned_key: hex::encode(verifier.public_key().as_bytes()),
            });
        }
        governance::check_genesis(genesis).map_err(AuditError::InvalidGenesis)?;
        Ok(Judge {
            genesis: genesis.clone(),
            registry: Registry::new(genesis.clone()).starting_at(received_at),
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
            Judgement::SeqNotAbove { last_seq, .. } => {
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
        at: Position,
        signer: &str,
        body: &[u8],
        signature: &[u8],
        command: &AdminCommand,
    ) -> Result<PublicKey, AuditError> {
        let index = at.index;
        match self.registry.check(signer, body, command, at.received_at) {
            Ok(CommandCheck::Apply) => {}
            Ok(CommandCheck::AlreadyApplied { index: original }) => {
                return Err(AuditError::RepeatedCommand { index, original })
            }
            Err(refusal) => return Err(AuditError::RefusedCommand { index, refusal }),
        }
        let key = self
            .registry
            .admin_key(signer)
            .map_err(|refusal| AuditError::RefusedCommand { index, refusal })?
            .clone();
        self.registry.apply(at, signer, body, signature, command);
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
