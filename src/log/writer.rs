//! The single writer: judges what depends on log order, appends, and acknowledges only
//! after the batch is durable.
//!
//! One thread owns every mutation of the log. It takes all the work that queued up while
//! the previous flush ran, judges it in arrival order (sequence numbers, time bounds, the
//! registry), writes one atomic batch (entries, Merkle tiles, dedupe keys, and a signed
//! checkpoint when one is due), makes it durable with one flush + fdatasync — group
//! commit — and only then answers every caller and publishes the new size.
//!
//! Invariants owned here:
//! - entry `i` is stored at index `i`, and entries are never rewritten;
//! - an ACCEPTED or DUPLICATE answer is sent only after its entry is durable;
//! - `received_at` never decreases along the log;
//! - after a failed flush nothing more is written or acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot};

use super::packing::index_of_seq;
use super::registry::{CommandCheck, CommandRefusal, Registry};
use super::rules::{self, Judgement};
use super::shared::Shared;
use super::store::{AppendBatch, LogStore, SeqBlock, StoreError, PAIRS_PER_BLOCK};
use super::witness::{Witness, Witnessed};
use crate::checkpoint::{Checkpoint, NoteSigner};
use crate::clock::Clock;
use crate::domain::{AdminCommand, Millis, Observation, Outcome, ProbeId, RejectReason, Rejection};
use crate::entry;
use crate::governance::{Position, Progress};
use crate::merkle::{self, TileAppender};
use crate::metrics::LedgerMetrics;
use crate::pb;

/// Most events one group commit takes; bounds the batch's memory and latency.
pub const MAX_EVENTS_PER_COMMIT: usize = 8192;

/// An observation whose body decoded and whose signature verified against `key`, the
/// probe's registered key at the time. Only ingest's verification creates one.
#[derive(Debug)]
pub struct VerifiedObservation {
    pub(super) observation: Observation,
    pub(super) body: Vec<u8>,
    pub(super) signature: Vec<u8>,
    pub(super) key: crate::crypto::PublicKey,
}

/// A command whose signature verified against its signer's genesis key.
#[derive(Debug)]
pub struct VerifiedCommand {
    pub(super) signer: String,
    pub(super) body: Vec<u8>,
    pub(super) signature: Vec<u8>,
    pub(super) command: AdminCommand,
}

/// Why a write was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Storage failed; the ledger accepts no more writes until restarted.
    #[error("the ledger is not accepting writes: {0}")]
    Unavailable(String),
    /// The disk is full; retry once space is freed.
    #[error("the ledger's disk is full: {0}")]
    DiskFull(String),
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Appended at `index`; for a gated command or an approval, where its proposal stands.
    Applied {
        index: u64,
        proposal: Option<Progress>,
    },
    AlreadyApplied {
        index: u64,
        proposal: Option<Progress>,
    },
    Refused(CommandRefusal),
}

pub enum WriteOp {
    Observations {
        /// Per event: already rejected before the writer, or verified.
        events: Vec<Result<VerifiedObservation, Rejection>>,
        reply: oneshot::Sender<Result<Vec<Outcome>, WriteError>>,
    },
    Command {
        command: Box<VerifiedCommand>,
        reply: oneshot::Sender<Result<CommandOutcome, WriteError>>,
    },
    /// Wakes the writer so a lagging checkpoint gets signed while the log is idle.
    Tick,
}

impl WriteOp {
    fn event_count(&self) -> usize {
        match self {
            WriteOp::Observations { events, .. } => events.len(),
            WriteOp::Command { .. } => 1,
            WriteOp::Tick => 0,
        }
    }
}

pub struct Writer {
    pub(super) store: Arc<dyn LogStore>,
    pub(super) shared: Arc<Shared>,
    pub(super) registry: Registry,
    pub(super) last_seqs: HashMap<ProbeId, u64>,
    /// Each probe's accepted (seq, index) pairs not yet in a stored seq block (fewer than
    /// `PAIRS_PER_BLOCK`; rebuilt from the log when it is opened).
    pub(super) seq_tails: HashMap<ProbeId, Vec<(u64, u64)>>,
    pub(super) appender: TileAppender,
    pub(super) signer: NoteSigner,
    /// To re-verify the log after the store was reopened (disk full).
    pub(super) ledger_key: SigningKey,
    /// Records each checkpoint outside sled before it is published.
    pub(super) witness: Witness,
    /// What the witness last recorded.
    pub(super) witnessed: Witnessed,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) last_received_at: Millis,
    pub(super) checkpointed_size: u64,
    pub(super) last_checkpoint_at: Instant,
    pub(super) checkpoint_interval: Duration,
    pub(super) failure: Option<String>,
    pub(super) disk_full: Option<DiskFull>,
    /// The wait after the next full disk: doubles each time, reset by a durable write.
    pub(super) disk_full_backoff: Duration,
    pub(super) metrics: Arc<LedgerMetrics>,
}

/// Writes are refused because the disk was full; the store is reopened (and the log
/// re-verified) on the first write after `retry_at`.
pub(super) struct DiskFull {
    reason: String,
    retry_at: Instant,
}

/// The first wait after a full disk before the store is reopened; it doubles up to the max.
pub(super) const DISK_FULL_FIRST_RETRY: Duration = Duration::from_millis(500);
const DISK_FULL_MAX_RETRY: Duration = Duration::from_secs(30);

/// One request's work, without its reply channel (which stays outside any panic).
enum Work {
    Observations(Vec<Result<VerifiedObservation, Rejection>>),
    Command(Box<VerifiedCommand>),
}

/// Where a request's answer goes.
enum ReplyTo {
    Observations(oneshot::Sender<Result<Vec<Outcome>, WriteError>>),
    Command(oneshot::Sender<Result<CommandOutcome, WriteError>>),
}

/// One request's answer, sent only once its entries are durable.
enum Answer {
    Observations(Vec<Outcome>),
    Command(CommandOutcome),
}

/// What one commit changes in memory, kept aside until the batch is durable so that a
/// refused write (disk full) leaves the writer exactly as it was.
struct Staged {
    batch: AppendBatch,
    leaf_hashes: Vec<merkle::Hash>,
    registry: Option<Registry>,
    last_seqs: HashMap<ProbeId, u64>,
    /// (seq, index) pairs accepted in this batch, per probe.
    new_pairs: HashMap<ProbeId, Vec<(u64, u64)>>,
    /// What `seq_tails` becomes for the probes of this batch once it is durable.
    seq_tails: HashMap<ProbeId, Vec<(u64, u64)>>,
}

/// A fail point on the write path (compiled in only with the `failpoints` feature):
/// `return` makes the step fail with an error naming the point, `panic` panics.
fn failpoint(name: &str) -> Result<(), String> {
    let _ = name;
    fail::fail_point!(name, |_| Err(format!("failpoint {name}")));
    Ok(())
}

impl Writer {
    /// Runs until every sender is gone (shutdown), then returns.
    pub fn run(mut self, mut inbox: mpsc::Receiver<WriteOp>) {
        while let Some(first) = inbox.blocking_recv() {
            let mut events = first.event_count();
            let mut ops = vec![first];
            while events < MAX_EVENTS_PER_COMMIT {
                match inbox.try_recv() {
                    Ok(op) => {
                        events += op.event_count();
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.commit(ops);
        }
        // A clean stop leaves the whole log under a signed (and witnessed) checkpoint.
        if self.failure.is_none() && self.store.size() > self.checkpointed_size {
            self.last_checkpoint_at = Instant::now()
                .checked_sub(self.checkpoint_interval)
                .unwrap_or_else(Instant::now);
            self.commit(Vec::new());
        }
        tracing::debug!("log writer stopped");
    }

    /// Commits one group and answers every request in it. A panic while committing stops
    /// writes for good (like a failed flush), with a reason every caller gets: the
    /// in-memory state may be half-updated, and only a restart re-verifies it.
    fn commit(&mut self, ops: Vec<WriteOp>) {
        let mut work = Vec::with_capacity(ops.len());
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                WriteOp::Observations { events, reply } => {
                    work.push(Work::Observations(events));
                    replies.push(ReplyTo::Observations(reply));
                }
                WriteOp::Command { command, reply } => {
                    work.push(Work::Command(command));
                    replies.push(ReplyTo::Command(reply));
                }
                WriteOp::Tick => {}
            }
        }
        let result = match &self.failure {
            Some(reason) => Err(WriteError::Unavailable(reason.clone())),
            None => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.commit_work(work)
                })) {
                    Ok(result) => result,
                    Err(panic) => {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(self.stop_writes(format!(
                            "the log writer panicked ({message}); restart the ledger, which re-verifies the log"
                        )))
                    }
                }
            }
        };
        match result {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    match (reply, answer) {
                        (ReplyTo::Observations(tx), Answer::Observations(outcomes)) => {
                            drop(tx.send(Ok(outcomes)))
                        }
                        (ReplyTo::Command(tx), Answer::Command(outcome)) => {
                            drop(tx.send(Ok(outcome)))
                        }
                        _ => unreachable!("answers are made in the order of the work"),
                    }
                }
            }
            Err(error) => {
                for reply in replies {
                    match reply {
                        ReplyTo::Observations(tx) => drop(tx.send(Err(error.clone()))),
                        ReplyTo::Command(tx) => drop(tx.send(Err(error.clone()))),
                    }
                }
            }
        }
    }

    /// Stops all writes for good and tells readers why; returns the error for callers.
    fn stop_writes(&mut self, reason: String) -> WriteError {
        tracing::error!(%reason, "the ledger stops accepting writes until restarted");
        self.failure = Some(reason.clone());
        self.shared.publish_failure(reason.clone());
        WriteError::Unavailable(reason)
    }

    /// Judges the work in order, writes it as one durable batch, publishes the new size and
    /// checkpoint, and returns one answer per request (in order).
    fn commit_work(&mut self, work: Vec<Work>) -> Result<Vec<Answer>, WriteError> {
        if self.disk_full.is_some() {
            if work.is_empty() {
                return Ok(Vec::new());
            }
            self.recover_from_disk_full()?;
        }
        let received_at = self.clock.now_millis().max(self.last_received_at);
        let mut staged = Staged {
            batch: AppendBatch {
                first_index: self.store.size(),
                ..AppendBatch::default()
            },
            leaf_hashes: Vec::new(),
            registry: None,
            last_seqs: HashMap::new(),
            new_pairs: HashMap::new(),
            seq_tails: HashMap::new(),
        };
        let mut answers = Vec::with_capacity(work.len());
        let (mut accepted, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
        for item in work {
            match item {
                Work::Observations(events) => {
                    let outcomes: Vec<Outcome> = events
                        .into_iter()
                        .map(|event| match event {
                            Err(rejection) => Outcome::Rejected(rejection),
                            Ok(verified) => {
                                self.judge_observation(&mut staged, verified, received_at)
                            }
                        })
                        .collect();
                    for outcome in &outcomes {
                        match outcome {
                            Outcome::Accepted { .. } => accepted += 1,
                            Outcome::Duplicate { .. } => duplicates += 1,
                            Outcome::Rejected(_) => rejected += 1,
                        }
                    }
                    answers.push(Answer::Observations(outcomes));
                }
                Work::Command(command) => {
                    let outcome = self.judge_command(&mut staged, *command, received_at);
                    answers.push(Answer::Command(outcome));
                }
            }
        }

        let appended = staged.batch.entries.len();
        let new_size = self.store.size() + appended as u64;
        let checkpoint_due = new_size > self.checkpointed_size
            && self.last_checkpoint_at.elapsed() >= self.checkpoint_interval;
        if appended == 0 && !checkpoint_due {
            return Ok(answers);
        }
        failpoint("writer::before-append").map_err(|e| self.stop_writes(e))?;
        self.stage_seq_blocks(&mut staged);
        let mut appender = None;
        if appended > 0 {
            failpoint("writer::merkle-update").map_err(|e| self.stop_writes(e))?;
            let mut next = self.appender.clone();
            staged.batch.tiles = next.append(&staged.leaf_hashes);
            appender = Some(next);
        }
        let mut checkpoint_root = None;
        if checkpoint_due {
            let root = appender.as_ref().unwrap_or(&self.appender).root();
            checkpoint_root = Some(root);
            let signed = failpoint("writer::checkpoint-sign").and_then(|()| {
                self.signer
                    .sign_checkpoint(&Checkpoint {
                        origin: self.registry.genesis().origin.clone(),
                        tree_size: new_size,
                        root_hash: root,
                        extensions: Vec::new(),
                    })
                    .map_err(|e| e.to_string())
            });
            match signed {
                Ok(note) => staged.batch.checkpoint = Some((new_size, note)),
                // The origin was checked when the ledger opened, so this is not expected;
                // the entries are still written and the next batch tries again.
                Err(error) => tracing::error!(%error, "cannot sign a checkpoint"),
            }
        }

        if appended > 0 || staged.batch.checkpoint.is_some() {
            let checkpoint = staged.batch.checkpoint.clone();
            self.write_durably(std::mem::take(&mut staged.batch))?;
            failpoint("writer::after-fsync").map_err(|e| self.stop_writes(e))?;
            if let (Some((size, _)), Some(root)) = (&checkpoint, checkpoint_root) {
                let witnessed = Witnessed {
                    tree_size: *size,
                    root,
                };
                self.witness
                    .record(witnessed)
                    .map_err(|e| self.stop_writes(format!("checkpoint witness: {e}")))?;
                self.witnessed = witnessed;
            }
            // Durable: adopt the staged state, then publish it.
            if let Some(next) = appender {
                self.appender = next;
            }
            self.last_received_at = received_at;
            self.last_seqs.extend(staged.last_seqs);
            self.seq_tails.extend(staged.seq_tails);
            if let Some(registry) = staged.registry {
                self.registry = registry;
                self.shared.publish_registry(self.registry.clone());
            }
            // The size first: whoever follows checkpoints may read up to the checkpoint's size.
            self.shared.publish_size(new_size);
            self.metrics.record_commit(appended);
            if let Some((size, note)) = checkpoint {
                self.checkpointed_size = size;
                self.last_checkpoint_at = Instant::now();
                self.shared.publish_checkpoint(size, note);
                self.metrics.record_checkpoint(self.clock.now_millis());
            }
        }
        if accepted + duplicates + rejected > 0 {
            tracing::debug!(
                accepted,
                duplicates,
                rejected,
                tree_size = new_size,
                "batch committed"
            );
        }
        Ok(answers)
    }

    fn write_durably(&mut self, batch: AppendBatch) -> Result<(), WriteError> {
        let result = self.store.append(batch).and_then(|()| {
            failpoint("writer::after-append").map_err(StoreError::Failed)?;
            let started = Instant::now();
            let flushed = self.store.flush();
            self.metrics.record_fsync(started.elapsed());
            flushed
        });
        match result {
            Ok(()) => {
                self.disk_full_backoff = DISK_FULL_FIRST_RETRY;
                Ok(())
            }
            Err(StoreError::DiskFull(reason)) => Err(self.refuse_while_disk_full(reason)),
            Err(other) => Err(self.stop_writes(other.to_string())),
        }
    }

    /// Refuses writes until the back-off has passed; then the store is reopened.
    fn refuse_while_disk_full(&mut self, reason: String) -> WriteError {
        let backoff = self.disk_full_backoff;
        self.disk_full_backoff = (backoff * 2).min(DISK_FULL_MAX_RETRY);
        tracing::warn!(%reason, retry_in = ?backoff, "disk full: the batch was not written; writes are refused until space is freed");
        self.disk_full = Some(DiskFull {
            reason: reason.clone(),
            retry_at: Instant::now() + backoff,
        });
        WriteError::DiskFull(reason)
    }

    /// After a full disk: once the back-off has passed, reopens the store from what is on
    /// disk (sled refuses every write after a failed one), re-verifies the whole log as a
    /// start does, makes whatever it holds durable, and takes its state. Until then, or if
    /// the disk is still full, the work is refused with `DiskFull`.
    fn recover_from_disk_full(&mut self) -> Result<(), WriteError> {
        let Some(full) = &self.disk_full else {
            return Ok(());
        };
        if Instant::now() < full.retry_at {
            return Err(WriteError::DiskFull(full.reason.clone()));
        }
        let refused = |writer: &mut Writer, error: StoreError| match error {
            StoreError::DiskFull(reason) => writer.refuse_while_disk_full(reason),
            other => writer.stop_writes(format!(
                "reopening the log store after a full disk failed: {other}"
            )),
        };
        if let Err(error) = self.store.reopen() {
            return Err(refused(self, error));
        }
        let opened = match super::recovery::verify(
            self.store.clone(),
            &self.ledger_key,
            Some(self.witnessed),
        ) {
            Ok(opened) => opened,
            Err(error) => {
                return Err(self.stop_writes(format!(
                    "after a full disk, the reopened log failed verification: {error}"
                )))
            }
        };
        let durable = self.shared.durable_size();
        if opened.appender.size() < durable {
            return Err(self.stop_writes(format!(
                "after a full disk, the reopened log has {} entries but {durable} were durable",
                opened.appender.size()
            )));
        }
        // Entries of the refused batch may have reached the disk; make them durable before
        // anything is published (they were never acknowledged: a resend is a DUPLICATE).
        if let Err(error) = self.store.flush() {
            return Err(refused(self, error));
        }
        tracing::info!(
            tree_size = opened.appender.size(),
            "reopened and re-verified the log after a full disk"
        );
        self.registry = opened.registry;
        self.shared.publish_registry(self.registry.clone());
        self.last_seqs = opened.last_seqs;
        self.seq_tails = opened.seq_tails;
        self.appender = opened.appender;
        self.last_received_at = self.last_received_at.max(opened.last_received_at);
        self.shared.publish_size(self.appender.size());
        if opened.checkpoint.tree_size > self.checkpointed_size {
            let witnessed = Witnessed {
                tree_size: opened.checkpoint.tree_size,
                root: opened.checkpoint_root,
            };
            self.witness
                .record(witnessed)
                .map_err(|e| self.stop_writes(format!("checkpoint witness: {e}")))?;
            self.witnessed = witnessed;
            self.checkpointed_size = opened.checkpoint.tree_size;
            self.shared
                .publish_checkpoint(opened.checkpoint.tree_size, opened.checkpoint.note);
        }
        self.disk_full = None;
        tracing::info!("writes resumed after the disk was full");
        Ok(())
    }

    fn registry<'a>(&'a self, staged: &'a Staged) -> &'a Registry {
        staged.registry.as_ref().unwrap_or(&self.registry)
    }

    /// Ingest rules 2, 4 and 5 ([`rules::judge_observation`]) against the state including
    /// this batch, then the entry staged.
    fn judge_observation(
        &self,
        staged: &mut Staged,
        verified: VerifiedObservation,
        received_at: Millis,
    ) -> Outcome {
        let VerifiedObservation {
            observation,
            body,
            signature,
            key,
        } = verified;
        let last_seq = staged
            .last_seqs
            .get(&observation.probe_id)
            .or_else(|| self.last_seqs.get(&observation.probe_id))
            .copied();
        let judged =
            rules::judge_observation(self.registry(staged), last_seq, &observation, received_at);
        let judged = match judged {
            Err(rejection) => return Outcome::Rejected(rejection),
            Ok(judged) => judged,
        };
        if *judged.key() != key {
            return reject(
                RejectReason::BadSignature,
                format!(
                    "probe {}'s key changed while the observation was verified",
                    observation.probe_id
                ),
            );
        }
        match judged {
            Judgement::New { .. } => {}
            Judgement::SeqNotAbove { last_seq, .. } => {
                let earlier =
                    match self.earlier_body(staged, &observation.probe_id, observation.seq) {
                        Ok(found) => found,
                        Err(message) => return reject(RejectReason::Invalid, message),
                    };
                return match earlier {
                    Some((index, earlier_body)) if earlier_body == body => {
                        Outcome::Duplicate { index }
                    }
                    Some((index, _)) => {
                        tracing::warn!(probe_id = %observation.probe_id, seq = observation.seq, original_index = index,
                            "equivocation: the probe signed two different observations with one seq");
                        reject(
                            RejectReason::Equivocation,
                            format!(
                                "probe {} already has a different observation with seq {} at index {index}",
                                observation.probe_id, observation.seq
                            ),
                        )
                    }
                    None => Outcome::Rejected(rules::stale_seq(&observation, last_seq)),
                };
            }
        }

        let index = staged.batch.first_index + staged.batch.entries.len() as u64;
        let bytes = entry::encode_entry(
            index,
            received_at,
            pb::log_entry::Payload::Observation(pb::SignedObservation { body, signature }),
        );
        staged.leaf_hashes.push(merkle::leaf_hash(&bytes));
        staged.batch.entries.push(bytes);
        staged
            .new_pairs
            .entry(observation.probe_id.clone())
            .or_default()
            .push((observation.seq, index));
        staged
            .last_seqs
            .insert(observation.probe_id.clone(), observation.seq);
        Outcome::Accepted { index }
    }

    /// Moves every probe's pairs of this batch behind its tail and stages each block of
    /// `PAIRS_PER_BLOCK` that fills up for writing; the rest is the probe's new tail.
    fn stage_seq_blocks(&self, staged: &mut Staged) {
        for (probe_id, new_pairs) in std::mem::take(&mut staged.new_pairs) {
            let mut tail = self.seq_tails.get(&probe_id).cloned().unwrap_or_default();
            tail.extend(new_pairs);
            let full = tail.len() / PAIRS_PER_BLOCK * PAIRS_PER_BLOCK;
            for pairs in tail[..full].chunks(PAIRS_PER_BLOCK) {
                staged.batch.seq_blocks.push(SeqBlock {
                    probe_id: probe_id.to_string(),
                    pairs: pairs.to_vec(),
                });
            }
            tail.drain(..full);
            staged.seq_tails.insert(probe_id, tail);
        }
    }

    /// The index and body of the accepted observation with this (probe, seq), if any:
    /// earlier in this batch, or stored.
    fn earlier_body(
        &self,
        staged: &Staged,
        probe_id: &ProbeId,
        seq: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, String> {
        let in_batch = staged
            .new_pairs
            .get(probe_id)
            .and_then(|pairs| index_of_seq(pairs, seq));
        match in_batch {
            Some(index) => {
                let bytes = &staged.batch.entries[(index - staged.batch.first_index) as usize];
                observation_body(index, bytes).map(Some)
            }
            None => self.stored_body(probe_id, seq),
        }
    }

    /// The body of the stored observation with this (probe, seq), if any: its index is in
    /// the probe's in-memory tail or in a stored seq block.
    fn stored_body(&self, probe_id: &ProbeId, seq: u64) -> Result<Option<(u64, Vec<u8>)>, String> {
        let unreadable =
            |e: &dyn std::fmt::Display| format!("cannot read the earlier observation: {e}");
        let in_tail = self
            .seq_tails
            .get(probe_id)
            .and_then(|tail| index_of_seq(tail, seq));
        let index = match in_tail {
            Some(index) => index,
            None => match self
                .store
                .seq_index(probe_id.as_str(), seq)
                .map_err(|e| unreadable(&e))?
            {
                Some(index) => index,
                None => return Ok(None),
            },
        };
        let bytes = self
            .store
            .entry(index)
            .map_err(|e| unreadable(&e))?
            .ok_or_else(|| unreadable(&format!("entry {index} is missing")))?;
        observation_body(index, &bytes).map(Some)
    }

    fn judge_command(
        &self,
        staged: &mut Staged,
        verified: VerifiedCommand,
        received_at: Millis,
    ) -> CommandOutcome {
        let VerifiedCommand {
            signer,
            body,
            signature,
            command,
        } = verified;
        let registry = self.registry(staged);
        match registry.check(&signer, &body, &command, received_at) {
            Err(refusal) => CommandOutcome::Refused(refusal),
            Ok(CommandCheck::AlreadyApplied { index }) => CommandOutcome::AlreadyApplied {
                index,
                proposal: registry.progress(&body, &command),
            },
            Ok(CommandCheck::Apply) => {
                let index = staged.batch.first_index + staged.batch.entries.len() as u64;
                let bytes = entry::encode_entry(
                    index,
                    received_at,
                    pb::log_entry::Payload::Command(pb::SignedCommand {
                        signer: signer.clone(),
                        body: body.clone(),
                        signature: signature.clone(),
                    }),
                );
                staged.leaf_hashes.push(merkle::leaf_hash(&bytes));
                staged.batch.entries.push(bytes);
                let registry = staged.registry.get_or_insert_with(|| self.registry.clone());
                let at = Position { index, received_at };
                let proposal = registry.apply(at, &signer, &body, &signature, &command);
                CommandOutcome::Applied { index, proposal }
            }
        }
    }
}

/// The signed body of the observation stored as entry `index`.
fn observation_body(index: u64, bytes: &[u8]) -> Result<(u64, Vec<u8>), String> {
    let unreadable =
        |e: &dyn std::fmt::Display| format!("cannot read the earlier observation: {e}");
    match entry::decode_entry(bytes)
        .map_err(|e| unreadable(&e))?
        .payload
    {
        entry::Payload::Observation { body, .. } => Ok((index, body)),
        _ => Err(unreadable(&format!("entry {index} is not an observation"))),
    }
}

fn reject(reason: RejectReason, message: String) -> Outcome {
    Outcome::Rejected(Rejection::new(reason, message))
}
