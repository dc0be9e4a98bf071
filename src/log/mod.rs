//! The log: an append-only, verifiable sequence of signed entries, and the one handle
//! (`Ledger`) through which the rest of the program writes and reads it.
//!
//! - `store`: the storage seam ([`LogStore`]) the writer and the readers go through;
//! - `sled_store`: [`SledStore`], the store on sled (`packing`: its byte formats);
//! - `witness`: the latest checkpoint's size and root, kept outside the store;
//! - `registry`: admin keys, services, probes and maintenance ids, as the log made them;
//! - `rules`: the observation rules that depend on the log, shared with `audit`;
//! - `writer`: the single writer thread (judging, group commit, checkpoints);
//! - `recovery`: opening a data directory, verifying it, rebuilding derived state;
//! - `shared`: what the writer publishes to readers;
//! - `verify_pool`: the threads that verify signatures off the async runtime.

mod packing;
mod recovery;
pub mod registry;
pub mod rules;
mod shared;
mod sled_store;
pub mod store;
mod verify_pool;
mod witness;
mod writer;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::{NoteSigner, NoteVerifier};
use crate::clock::Clock;
use crate::crypto::SigningContext;
use crate::domain::{AdminKey, Outcome, PreviousLog, ProbeId, RejectReason, Rejection};
use crate::entry;
use crate::merkle::{self, Hash, TileSubtreeSource};
use crate::metrics::LedgerMetrics;

pub use recovery::OpenError;
pub use registry::{CommandRefusal, Registry};
pub use shared::PublishedCheckpoint;
pub(crate) use sled_store::open_sled;
pub use sled_store::SledStore;
pub use store::{LogStore, StoreError};
pub use writer::{CommandOutcome, WriteError, MAX_EVENTS_PER_COMMIT};

use writer::WriteOp;
pub use writer::{VerifiedCommand, VerifiedObservation};

/// Below this many signatures, verifying inline is cheaper than a hop to a verification
/// thread.
const INLINE_VERIFY_LIMIT: usize = 8;
/// Queued write requests; beyond this, submitters wait (back-pressure instead of memory).
const WRITE_QUEUE_DEPTH: usize = 1024;

/// Genesis parameters. `None` means the default when the log is created, and "whatever
/// the log says" when it already exists; a given value that differs from the log is an error.
#[derive(Debug, Clone, Default)]
pub struct GenesisParams {
    pub origin: Option<String>,
    pub admin_keys: Option<Vec<AdminKey>>,
    pub max_lateness: Option<Duration>,
    pub max_skew: Option<Duration>,
    pub admin_threshold: Option<u32>,
    /// The log this one continues (`serve --continue-from`).
    pub previous_log: Option<PreviousLog>,
}

pub struct LedgerConfig {
    /// The sled database lives in `data_dir/log`.
    pub data_dir: PathBuf,
    /// Signs checkpoints; its public key is in the genesis.
    pub ledger_key: SigningKey,
    pub genesis: GenesisParams,
    /// Longest time a grown log waits for a new checkpoint.
    pub checkpoint_interval: Duration,
    pub clock: Arc<dyn Clock>,
}

/// The default origin (checkpoint signer name) of a new log.
pub const DEFAULT_ORIGIN: &str = "uptime-ledger.local/log";
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// An envelope as received, before anything is checked.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A batch after ingest rules 1–3: per event, its rejection or the verified observation.
#[derive(Debug)]
pub struct VerifiedBatch {
    events: Vec<Result<VerifiedObservation, Rejection>>,
    started: Instant,
}

impl VerifiedBatch {
    /// Events in the batch.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The probes whose signatures verified in this batch, with how many of their
    /// observations it carries (in first-seen order).
    pub fn verified_probes(&self) -> Vec<(ProbeId, usize)> {
        let mut order = Vec::new();
        let mut counts: std::collections::HashMap<&ProbeId, usize> =
            std::collections::HashMap::new();
        for verified in self.events.iter().filter_map(|event| event.as_ref().ok()) {
            let probe = &verified.observation.probe_id;
            let count = counts.entry(probe).or_insert_with(|| {
                order.push(probe);
                0
            });
            *count += 1;
        }
        order
            .into_iter()
            .map(|probe| (probe.clone(), counts[probe]))
            .collect()
    }

    /// Per event: the rejection, or the verified observation.
    pub fn events(&self) -> &[Result<VerifiedObservation, Rejection>] {
        &self.events
    }
}

impl VerifiedObservation {
    /// The decoded observation whose signature verified.
    pub fn observation(&self) -> &crate::domain::Observation {
        &self.observation
    }
}

/// A batch in the writer's queue; its outcomes arrive once every accepted event is durable.
pub struct PendingOutcomes<'a> {
    answer: oneshot::Receiver<Result<Vec<Outcome>, WriteError>>,
    started: Instant,
    ledger: &'a Ledger,
}

impl PendingOutcomes<'_> {
    pub async fn outcomes(self) -> Result<Vec<Outcome>, WriteError> {
        let outcomes = self.answer.await.map_err(|_| self.ledger.stopped())??;
        self.ledger
            .metrics
            .record_submit(&outcomes, self.started.elapsed());
        Ok(outcomes)
    }
}

/// Why a command was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(String),
    #[error("the command signature does not verify with admin key {0:?}")]
    BadSignature(String),
    #[error(transparent)]
    Refused(#[from] CommandRefusal),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    NotFound(String),
    #[error("reading the log failed: {0}")]
    Storage(String),
}

/// The ledger: one data directory, one writer thread, any number of readers.
pub struct Ledger {
    store: Arc<dyn LogStore>,
    shared: Arc<shared::Shared>,
    inbox: Mutex<Option<mpsc::Sender<WriteOp>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    verifier: NoteVerifier,
    metrics: Arc<LedgerMetrics>,
    /// One verification thread per core, taking requests in arrival order (several at once
    /// when they queue up), instead of every request's batch time-slicing the cores
    /// against the writer thread.
    verifying: verify_pool::VerifyPool,
}

impl Ledger {
    /// Opens (creating if needed) and verifies the ledger in `config.data_dir`, then starts
    /// its writer. Blocking: reads and hashes the whole log. Must run inside a Tokio runtime
    /// (it starts the checkpoint ticker).
    pub fn open(config: LedgerConfig) -> Result<Arc<Ledger>, OpenError> {
        let recovery::OpenedDir { opened, witness } = recovery::open(&config)?;
        let signer = NoteSigner::new(&opened.registry.genesis().origin, config.ledger_key.clone())
            .map_err(|e| OpenError::Genesis(format!("the origin cannot sign checkpoints: {e}")))?;
        let verifier = signer.verifier();
        let shared = Arc::new(shared::Shared::new(
            opened.appender.size(),
            opened.checkpoint.clone(),
            opened.registry.clone(),
        ));
        let metrics = Arc::new(LedgerMetrics::new(opened.last_received_at));
        let writer = writer::Writer {
            store: opened.store.clone(),
            shared: shared.clone(),
            registry: opened.registry,
            last_seqs: opened.last_seqs,
            seq_tails: opened.seq_tails,
            appender: opened.appender,
            signer,
            ledger_key: config.ledger_key.clone(),
            witness,
            witnessed: witness::Witnessed {
                tree_size: opened.checkpoint.tree_size,
                root: opened.checkpoint_root,
            },
            clock: config.clock.clone(),
            last_received_at: opened.last_received_at,
            checkpointed_size: opened.checkpoint.tree_size,
            // A log that grew past its checkpoint before a crash gets a new one at once.
            last_checkpoint_at: Instant::now() - config.checkpoint_interval,
            checkpoint_interval: config.checkpoint_interval,
            failure: None,
            disk_full: None,
            disk_full_backoff: writer::DISK_FULL_FIRST_RETRY,
            metrics: metrics.clone(),
        };
        let verifying = verify_pool::VerifyPool::start(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        )
        .map_err(|e| OpenError::Storage(format!("cannot start the verification threads: {e}")))?;
        let (sender, receiver) = mpsc::channel(WRITE_QUEUE_DEPTH);
        let writer_thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| OpenError::Storage(format!("cannot start the writer thread: {e}")))?;
        spawn_checkpoint_ticker(sender.downgrade(), config.checkpoint_interval);
        Ok(Arc::new(Ledger {
            store: opened.store,
            shared,
            inbox: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            verifier,
            metrics,
            verifying,
        }))
    }

    /// The key auditors pin: `<origin>+<key id>+<public key>`.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Ingest and writer counters, for `/metrics`.
    pub fn metrics(&self) -> &Arc<LedgerMetrics> {
        &self.metrics
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.shared.registry()
    }

    /// Number of durable entries.
    pub fn tree_size(&self) -> u64 {
        self.shared.durable_size()
    }

    pub fn watch_tree_size(&self) -> watch::Receiver<u64> {
        self.shared.watch_size()
    }

    pub fn watch_checkpoint(&self) -> watch::Receiver<PublishedCheckpoint> {
        self.shared.watch_checkpoint()
    }

    /// Why writes stopped, if they did.
    pub fn write_failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Ingest rules 1–3 for a batch (decoding, registry, signatures), off the async threads
    /// for large batches. Nothing is written; the result says which probes authenticated
    /// themselves, so admission control can act on them before [`Ledger::enqueue`].
    pub async fn verify(&self, envelopes: Vec<Envelope>) -> Result<VerifiedBatch, WriteError> {
        let started = Instant::now();
        let registry = self.shared.registry();
        let events = if envelopes.len() < INLINE_VERIFY_LIMIT {
            verify_envelopes(&registry, envelopes)
        } else {
            self.verifying
                .verify(registry, envelopes)
                .await
                .ok_or_else(|| {
                    WriteError::Unavailable(
                        "signature verification failed (an internal error; see the server log)"
                            .into(),
                    )
                })?
        };
        Ok(VerifiedBatch { events, started })
    }

    /// Hands a verified batch to the writer (waiting while its queue is full) and returns
    /// at once; batches enqueued one after another are judged in that order.
    pub async fn enqueue(&self, batch: VerifiedBatch) -> Result<PendingOutcomes<'_>, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.send(WriteOp::Observations {
            events: batch.events,
            reply,
        })
        .await?;
        Ok(PendingOutcomes {
            answer,
            started: batch.started,
            ledger: self,
        })
    }

    /// Verifies and applies one signed admin command.
    pub async fn apply(
        &self,
        signer: String,
        body: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<CommandOutcome, ApplyError> {
        let command = verify_command(&self.shared.registry(), signer, body, signature)?;
        let (reply, answer) = oneshot::channel();
        self.send(WriteOp::Command {
            command: Box::new(command),
            reply,
        })
        .await?;
        match answer.await.map_err(|_| self.stopped())?? {
            CommandOutcome::Refused(refusal) => Err(ApplyError::Refused(refusal)),
            outcome => Ok(outcome),
        }
    }

    async fn send(&self, op: WriteOp) -> Result<(), WriteError> {
        let sender = self
            .inbox
            .lock()
            .expect("inbox lock")
            .clone()
            .ok_or_else(|| self.stopped())?;
        sender.send(op).await.map_err(|_| self.stopped())
    }

    /// Stops accepting writes, lets the writer finish every queued batch (each flushed and
    /// answered), and waits for it. Reads keep working.
    pub async fn shutdown(&self) {
        self.inbox.lock().expect("inbox lock").take();
        let thread = self
            .writer_thread
            .lock()
            .expect("writer thread lock")
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// The latest durable checkpoint.
    pub fn checkpoint(&self) -> PublishedCheckpoint {
        self.shared.checkpoint()
    }

    /// The checkpoint signed at exactly `tree_size`.
    pub fn checkpoint_at(&self, tree_size: u64) -> Result<PublishedCheckpoint, ReadError> {
        let latest = self.shared.checkpoint();
        if tree_size > latest.tree_size {
            return Err(ReadError::NotFound(format!(
                "no checkpoint at tree size {tree_size}; the latest is at {}",
                latest.tree_size
            )));
        }
        match self.store.checkpoint(tree_size).map_err(storage)? {
            Some(note) => Ok(PublishedCheckpoint { tree_size, note }),
            None => Err(ReadError::NotFound(format!(
                "no checkpoint was signed at tree size {tree_size}; checkpoints are signed at most every {:?}",
                DEFAULT_CHECKPOINT_INTERVAL
            ))),
        }
    }

    /// Durable entries in `range` as (index, bytes); `range.end` may not pass the tree size.
    pub fn entries(
        &self,
        range: Range<u64>,
    ) -> Result<impl Iterator<Item = Result<(u64, Vec<u8>), ReadError>> + Send, ReadError> {
        let size = self.tree_size();
        if range.start > range.end || range.end > size {
            return Err(ReadError::OutOfRange(format!(
                "entries [{}, {}) are not in the log of {size} entries",
                range.start, range.end
            )));
        }
        Ok(self.store.entries(range).map(|item| item.map_err(storage)))
    }

    /// Entries from `start` up to the current durable size, without bounds checks on the end.
    pub fn entries_from(
        &self,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), ReadError>> + Send {
        self.store
            .entries(start..end.min(self.tree_size()))
            .map(|item| item.map_err(storage))
    }

    pub fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<(Vec<Hash>, Hash), ReadError> {
        self.check_size(tree_size)?;
        if index >= tree_size {
            return Err(ReadError::OutOfRange(format!(
                "index {index} is not below tree size {tree_size}"
            )));
        }
        let source = TileSubtreeSource::new(self.store.as_ref());
        let proof = merkle::inclusion_proof(&source, index, tree_size)
            .map_err(|e| ReadError::Storage(e.to_string()))?;
        let leaf = crate::merkle::SubtreeSource::subtree(&source, 0, index)
            .map_err(|e| ReadError::Storage(e.to_string()))?;
        Ok((proof, leaf))
    }

    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, ReadError> {
        self.check_size(second)?;
        if first == 0 || first > second {
            return Err(ReadError::OutOfRange(format!(
                "a consistency proof needs 0 < first <= second, got first {first}, second {second}"
            )));
        }
        let source = TileSubtreeSource::new(self.store.as_ref());
        merkle::consistency_proof(&source, first, second)
            .map_err(|e| ReadError::Storage(e.to_string()))
    }

    /// The Merkle root over the first `tree_size` durable entries.
    pub fn root(&self, tree_size: u64) -> Result<Hash, ReadError> {
        self.check_size(tree_size)?;
        let source = TileSubtreeSource::new(self.store.as_ref());
        merkle::root(&source, tree_size).map_err(|e| ReadError::Storage(e.to_string()))
    }

    fn check_size(&self, tree_size: u64) -> Result<(), ReadError> {
        let size = self.tree_size();
        if tree_size > size {
            return Err(ReadError::OutOfRange(format!(
                "tree size {tree_size} is larger than the log ({size})"
            )));
        }
        Ok(())
    }
}

impl merkle::TileReader for dyn LogStore {
    type Error = StoreError;

    fn tile(&self, tile_level: u8, tile_index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        LogStore::tile(self, tile_level, tile_index)
    }
}

fn storage(error: StoreError) -> ReadError {
    ReadError::Storage(error.to_string())
}

impl Ledger {
    /// Why the writer took no more work: it stopped writes for a reason, or shutdown.
    fn stopped(&self) -> WriteError {
        WriteError::Unavailable(
            self.shared
                .failure()
                .unwrap_or_else(|| "the ledger is shutting down".into()),
        )
    }
}

/// Ingest rules 1–3 for a batch: decode and validate, look up probe and service, verify
/// signatures. Sequence and time are judged by the writer, against the log order. Pure, so
/// that it can be fuzzed exactly as ingest runs it on untrusted bytes.
pub fn verify_envelopes(
    registry: &Registry,
    envelopes: Vec<Envelope>,
) -> Vec<Result<VerifiedObservation, Rejection>> {
    envelopes
        .into_iter()
        .map(|envelope| verify_envelope(registry, envelope))
        .collect()
}

/// [`verify_envelopes`] for several batches at once (the requests a verification thread
/// took together), each with the registry it was received under. Each observation is
/// judged on its own: its verdict is the same whatever else was taken with it.
pub fn verify_batches<R: std::borrow::Borrow<Registry>>(
    batches: Vec<(R, Vec<Envelope>)>,
) -> Vec<Vec<Result<VerifiedObservation, Rejection>>> {
    batches
        .into_iter()
        .map(|(registry, envelopes)| verify_envelopes(registry.borrow(), envelopes))
        .collect()
}

/// Ingest rules 1–3 for one observation.
fn verify_envelope(
    registry: &Registry,
    envelope: Envelope,
) -> Result<VerifiedObservation, Rejection> {
    let observation = entry::decode_observation(&envelope.body)
        .map_err(|e| Rejection::new(RejectReason::Invalid, e.0))?;
    let key = rules::registered_key(registry, &observation)?;
    if envelope.signature.len() != 64 {
        return Err(Rejection::new(
            RejectReason::BadSignature,
            format!(
                "the signature is {} bytes; Ed25519 signatures are 64",
                envelope.signature.len()
            ),
        ));
    }
    if !key.verify(
        SigningContext::Observation,
        &envelope.body,
        &envelope.signature,
    ) {
        return Err(Rejection::new(
            RejectReason::BadSignature,
            format!(
                "the signature does not verify with probe {}'s registered key",
                observation.probe_id
            ),
        ));
    }
    Ok(VerifiedObservation {
        observation,
        body: envelope.body,
        signature: envelope.signature,
        key: key.clone(),
    })
}

/// Decodes a signed admin command and verifies its signature against its signer's key (an
/// admin key in force); whether it fits the current state is the writer's [`Registry::check`]. Pure, so that
/// it can be fuzzed exactly as `Apply` runs it on untrusted bytes.
pub fn verify_command(
    registry: &Registry,
    signer: String,
    body: Vec<u8>,
    signature: Vec<u8>,
) -> Result<VerifiedCommand, ApplyError> {
    let command = entry::decode_command(&body).map_err(|e| ApplyError::Invalid(e.0))?;
    let key = registry.admin_key(&signer)?;
    if !key.verify(SigningContext::Command, &body, &signature) {
        return Err(ApplyError::BadSignature(signer));
    }
    Ok(VerifiedCommand {
        signer,
        body,
        signature,
        command,
    })
}

impl VerifiedCommand {
    pub fn signer(&self) -> &str {
        &self.signer
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn command(&self) -> &crate::domain::AdminCommand {
        &self.command
    }
}

/// Wakes the writer a few times per checkpoint interval so a grown log gets its checkpoint
/// even when no more writes arrive. Stops when the ledger shuts down.
fn spawn_checkpoint_ticker(inbox: mpsc::WeakSender<WriteOp>, interval: Duration) {
    let period = (interval / 4).max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match inbox.upgrade() {
                Some(sender) => {
                    let _ = sender.try_send(WriteOp::Tick);
                }
                None => break,
            }
        }
    });
}
