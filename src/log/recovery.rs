//! Opening a data directory: create the genesis on first start; otherwise verify the whole
//! stored log before serving it, and rebuild the writer's derived state from it.
//!
//! Verification re-hashes every stored entry, checks that the entries hash to the root of
//! the latest signed checkpoint (and that the checkpoint's signature verifies), and that
//! the stored Merkle tiles agree with the entries. It also checks the log against the
//! checkpoint witness kept outside sled (`witness`), which catches a log that sled
//! recovered shorter than it was (sled ends its log at the first damaged record). A data
//! directory changed behind the ledger's back therefore refuses to start, with a message
//! naming what differs.
//!
//! A new log is created in `DATA_DIR/log.creating` and renamed to `DATA_DIR/log` only once
//! its genesis is durable, so a start killed half-way leaves nothing that looks like a log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::registry::{CommandCheck, Registry};
use super::shared::PublishedCheckpoint;
use super::sled_store::SledStore;
use super::store::{AppendBatch, LogStore, StoreError};
use super::witness::{self, Witness, Witnessed};
use super::{LedgerConfig, DEFAULT_ORIGIN};
use crate::checkpoint::{open_checkpoint, Checkpoint, NoteSigner};
use crate::crypto::PublicKey;
use crate::domain::{
    AdminName, Genesis, Millis, PreviousLog, ProbeId, DEFAULT_MAX_LATENESS, DEFAULT_MAX_SKEW,
};
use crate::entry::{self, Payload};
use crate::governance::{self, Position};
use crate::merkle::{self, Hash, TileAppender, TileSubtreeSource};
use crate::pb;
use ed25519_dalek::SigningKey;

/// Leaves hashed per Merkle append while verifying.
const VERIFY_CHUNK: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("the data directory failed verification: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Genesis(String),
}

impl From<StoreError> for OpenError {
    fn from(error: StoreError) -> OpenError {
        match error {
            StoreError::Corrupt(detail) => OpenError::Corrupt(detail),
            other => OpenError::Storage(other.to_string()),
        }
    }
}

/// Everything the writer needs, rebuilt from the log.
pub(super) struct Opened {
    pub store: Arc<dyn LogStore>,
    pub registry: Registry,
    pub last_seqs: HashMap<ProbeId, u64>,
    /// Each probe's accepted (seq, index) pairs that are not in a stored seq block yet.
    pub seq_tails: HashMap<ProbeId, Vec<(u64, u64)>>,
    pub appender: TileAppender,
    pub last_received_at: Millis,
    pub checkpoint: PublishedCheckpoint,
    /// The root at `checkpoint.tree_size`, as recomputed from the entries.
    pub checkpoint_root: Hash,
}

/// A verified log and its checkpoint witness, ready for writing.
pub(super) struct OpenedDir {
    pub opened: Opened,
    pub witness: Witness,
}

pub(super) fn open(config: &LedgerConfig) -> Result<OpenedDir, OpenError> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        OpenError::Storage(format!(
            "cannot create data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    let log_dir = data_dir.join("log");
    if !log_dir.exists() {
        create_log(data_dir, &log_dir, config)?;
    }
    let witnessed = Witness::read(data_dir).map_err(|e| {
        OpenError::Corrupt(format!(
            "the checkpoint witness cannot be used: {e}; restore the data directory from a backup"
        ))
    })?;
    let store: Arc<dyn LogStore> = Arc::new(SledStore::open(&log_dir)?);
    if store.size() == 0 {
        return Err(OpenError::Corrupt(format!(
            "{} holds no entries, not even the genesis; it is not a log this ledger wrote (remove it to create a new log)",
            log_dir.display()
        )));
    }
    let opened = verify(
        store,
        &config.ledger_key,
        witnessed.map(|(witnessed, _)| witnessed),
    )?;
    check_genesis_params(opened.registry.genesis(), config)?;
    let verified = Witnessed {
        tree_size: opened.checkpoint.tree_size,
        root: opened.checkpoint_root,
    };
    let witness = match witnessed {
        // A log from before the witness existed, or one whose first start was cut short.
        None => Witness::create(data_dir, verified).map_err(OpenError::Storage)?,
        Some((recorded, generation)) => {
            let mut witness = Witness::open(data_dir, generation).map_err(OpenError::Storage)?;
            if recorded != verified {
                witness.record(verified).map_err(OpenError::Storage)?;
            }
            witness
        }
    };
    Ok(OpenedDir { opened, witness })
}

/// Creates a new log with its genesis in a staging directory, then renames it into place.
fn create_log(data_dir: &Path, log_dir: &Path, config: &LedgerConfig) -> Result<(), OpenError> {
    let staging = data_dir.join("log.creating");
    let io = |what: &str, e: std::io::Error| OpenError::Storage(format!("{what}: {e}"));
    if staging.exists() {
        // A start that died while creating the log: nothing in it was ever served.
        std::fs::remove_dir_all(&staging)
            .map_err(|e| io(&format!("cannot remove {}", staging.display()), e))?;
    }
    {
        let store = SledStore::open(&staging)?;
        create_genesis(&store, config)?;
    }
    std::fs::rename(&staging, log_dir)
        .and_then(|()| std::fs::File::open(data_dir)?.sync_all())
        .map_err(|e| {
            io(
                &format!("cannot move the new log to {}", log_dir.display()),
                e,
            )
        })?;
    Ok(())
}

fn create_genesis(store: &dyn LogStore, config: &LedgerConfig) -> Result<(), OpenError> {
    let params = &config.genesis;
    let admin_keys = params.admin_keys.clone().unwrap_or_default();
    if admin_keys.is_empty() {
        return Err(OpenError::Genesis(
            "a new log needs at least one admin key".into(),
        ));
    }
    for key in &admin_keys {
        AdminName::parse(&key.name).map_err(|e| OpenError::Genesis(e.to_string()))?;
    }
    let genesis = Genesis {
        origin: params
            .origin
            .clone()
            .unwrap_or_else(|| DEFAULT_ORIGIN.to_owned()),
        ledger_public_key: PublicKey::from(&config.ledger_key),
        admin_keys,
        max_lateness: params.max_lateness.unwrap_or(DEFAULT_MAX_LATENESS),
        max_skew: params.max_skew.unwrap_or(DEFAULT_MAX_SKEW),
        admin_threshold: params.admin_threshold.unwrap_or(1).max(1),
        previous_log: params.previous_log.clone(),
    };
    governance::check_genesis(&genesis).map_err(OpenError::Genesis)?;
    if let Some(previous) = &genesis.previous_log {
        if previous.origin == genesis.origin {
            return Err(OpenError::Genesis(format!(
                "the new log continues {:?} under the same origin; a successor log needs its own origin (--origin), so that nobody mistakes one log for the other",
                previous.origin
            )));
        }
        if previous.ledger_public_key == genesis.ledger_public_key {
            return Err(OpenError::Genesis(
                "the new log would sign with the previous log's checkpoint key; a successor log exists to rotate that key, so give it a new one".into(),
            ));
        }
    }
    let signer = NoteSigner::new(&genesis.origin, config.ledger_key.clone()).map_err(|e| {
        OpenError::Genesis(format!(
            "origin {:?} cannot name a checkpoint signer: {e}",
            genesis.origin
        ))
    })?;
    let bytes = entry::encode_entry(
        0,
        config.clock.now_millis(),
        pb::log_entry::Payload::Genesis(entry::genesis_to_pb(&genesis)),
    );
    let mut appender = TileAppender::new();
    let tiles = appender.append(&[merkle::leaf_hash(&bytes)]);
    let note = signer
        .sign_checkpoint(&Checkpoint {
            origin: genesis.origin.clone(),
            tree_size: 1,
            root_hash: appender.root(),
            extensions: Vec::new(),
        })
        .map_err(|e| OpenError::Genesis(e.to_string()))?;
    store.append(AppendBatch {
        first_index: 0,
        entries: vec![bytes],
        tiles,
        seq_blocks: Vec::new(),
        checkpoint: Some((1, note)),
    })?;
    store.flush()?;
    tracing::info!(origin = %genesis.origin, "created a new log");
    Ok(())
}

/// Verifies the whole stored log (see the module doc) and rebuilds the writer's state.
/// `witnessed`: the checkpoint the witness file recorded, which the log must still hold.
pub(super) fn verify(
    store: Arc<dyn LogStore>,
    ledger_key: &SigningKey,
    witnessed: Option<Witnessed>,
) -> Result<Opened, OpenError> {
    let size = store.size();
    let (checkpoint_size, note) = store
        .latest_checkpoint()?
        .ok_or_else(|| OpenError::Corrupt("the log has entries but no signed checkpoint".into()))?;
    if checkpoint_size > size {
        return Err(OpenError::Corrupt(format!(
            "the latest signed checkpoint covers {checkpoint_size} entries but only {size} are stored: entries were lost"
        )));
    }
    if let Some(witnessed) = witnessed {
        if witnessed.tree_size > checkpoint_size {
            return Err(OpenError::Corrupt(format!(
                "the log was cut short: a checkpoint at tree size {} was signed and recorded in {} but the stored log holds {size} entries and its latest checkpoint is at {checkpoint_size}; sled ends its log at the first damaged record, so its files were damaged or truncated",
                witnessed.tree_size,
                witness::FILE_NAME
            )));
        }
    }
    let witness_size = witnessed.map_or(0, |w| w.tree_size);
    let mut root_at_witness = None;

    let mut registry: Option<Registry> = None;
    let mut last_seqs: HashMap<ProbeId, u64> = HashMap::new();
    // Per probe: the last seq its stored seq blocks hold (looked up once per probe).
    let mut in_blocks: HashMap<ProbeId, Option<u64>> = HashMap::new();
    let mut seq_tails: HashMap<ProbeId, Vec<(u64, u64)>> = HashMap::new();
    let mut appender = TileAppender::new();
    let mut pending_leaves: Vec<Hash> = Vec::with_capacity(VERIFY_CHUNK);
    let mut root_at_checkpoint = None;
    let mut last_received_at = Millis::MIN;
    for item in store.entries(0..size) {
        let (index, bytes) = item?;
        let decoded = entry::decode_entry(&bytes)
            .map_err(|e| OpenError::Corrupt(format!("entry {index} does not decode: {e}")))?;
        if decoded.index != index {
            return Err(OpenError::Corrupt(format!(
                "entry {index} says it is entry {}",
                decoded.index
            )));
        }
        if decoded.received_at < last_received_at {
            return Err(OpenError::Corrupt(format!(
                "entry {index} was received before entry {}",
                index - 1
            )));
        }
        last_received_at = decoded.received_at;
        match (decoded.payload, registry.as_mut()) {
            (Payload::Genesis(genesis), None) if index == 0 => {
                governance::check_genesis(&genesis).map_err(|e| {
                    OpenError::Corrupt(format!("the genesis cannot start a log: {e}"))
                })?;
                registry = Some(Registry::new(genesis).starting_at(decoded.received_at))
            }
            (Payload::Genesis(_), _) => {
                return Err(OpenError::Corrupt(format!(
                    "entry {index} is a second genesis"
                )))
            }
            (_, None) => return Err(OpenError::Corrupt("entry 0 is not a genesis".into())),
            (Payload::Observation { observation, .. }, Some(_)) => {
                let probe_id = observation.probe_id;
                let seq = observation.seq;
                if last_seqs.get(&probe_id).is_some_and(|&last| seq <= last) {
                    return Err(OpenError::Corrupt(format!(
                        "entry {index} repeats or lowers probe {probe_id}'s seq {seq}"
                    )));
                }
                last_seqs.insert(probe_id.clone(), seq);
                let blocked = match in_blocks.get(&probe_id) {
                    Some(&blocked) => blocked,
                    None => {
                        let blocked = store.last_block_seq(probe_id.as_str())?;
                        in_blocks.insert(probe_id.clone(), blocked);
                        blocked
                    }
                };
                if blocked.is_none_or(|through| seq > through) {
                    seq_tails.entry(probe_id).or_default().push((seq, index));
                }
            }
            (
                Payload::Command {
                    signer,
                    body,
                    signature,
                    command,
                },
                Some(registry),
            ) => match registry.check(&signer, &body, &command, decoded.received_at) {
                Ok(CommandCheck::Apply) => {
                    let at = Position {
                        index,
                        received_at: decoded.received_at,
                    };
                    registry.apply(at, &signer, &body, &signature, &command);
                }
                other => {
                    return Err(OpenError::Corrupt(format!(
                        "entry {index} holds a command that was not valid when appended ({other:?})"
                    )))
                }
            },
        }
        pending_leaves.push(merkle::leaf_hash(&bytes));
        let at_checkpoint = index + 1 == checkpoint_size;
        let at_witness = index + 1 == witness_size;
        if pending_leaves.len() == VERIFY_CHUNK || at_checkpoint || at_witness {
            appender.append(&pending_leaves);
            pending_leaves.clear();
        }
        if at_checkpoint {
            root_at_checkpoint = Some(appender.root());
        }
        if at_witness {
            root_at_witness = Some(appender.root());
        }
    }
    appender.append(&pending_leaves);
    if appender.size() != size {
        return Err(OpenError::Corrupt(format!(
            "{size} entries are expected but {} were read",
            appender.size()
        )));
    }
    let registry = registry.ok_or_else(|| OpenError::Corrupt("the log is empty".into()))?;

    let signer = NoteSigner::new(&registry.genesis().origin, ledger_key.clone())
        .map_err(|e| OpenError::Genesis(e.to_string()))?;
    if registry.genesis().ledger_public_key != PublicKey::from(ledger_key) {
        return Err(OpenError::Genesis(
            "the ledger key in the data directory is not the key named in this log's genesis"
                .into(),
        ));
    }
    let checkpoint = open_checkpoint(&note, &signer.verifier()).map_err(|e| {
        OpenError::Corrupt(format!(
            "the latest checkpoint (tree size {checkpoint_size}) does not verify: {e}"
        ))
    })?;
    let recomputed = root_at_checkpoint.unwrap_or_else(merkle::empty_root);
    if checkpoint.tree_size != checkpoint_size || checkpoint.root_hash != recomputed {
        return Err(OpenError::Corrupt(format!(
            "the stored entries do not match the latest signed checkpoint: at tree size {checkpoint_size} the checkpoint's root is {} but the entries hash to {}; an entry was changed, removed or reordered",
            hex(&checkpoint.root_hash),
            hex(&recomputed)
        )));
    }
    if let Some(witnessed) = witnessed {
        if root_at_witness != Some(witnessed.root) {
            return Err(OpenError::Corrupt(format!(
                "the stored entries do not match the checkpoint recorded in {}: at tree size {} its root is {} but the entries hash to {}; an entry was changed, removed or reordered",
                witness::FILE_NAME,
                witnessed.tree_size,
                hex(&witnessed.root),
                root_at_witness.map_or_else(|| "nothing".into(), |root| hex(&root))
            )));
        }
    }
    let tile_root = merkle::root(&TileSubtreeSource::new(store.as_ref()), size)
        .map_err(|e| OpenError::Corrupt(format!("the stored Merkle tiles cannot be read: {e}")))?;
    if tile_root != appender.root() {
        return Err(OpenError::Corrupt(
            "the stored Merkle tiles disagree with the stored entries".into(),
        ));
    }
    tracing::info!(
        tree_size = size,
        checkpoint_size,
        "verified the stored log against its latest checkpoint"
    );
    Ok(Opened {
        store,
        registry,
        last_seqs,
        seq_tails,
        appender,
        last_received_at,
        checkpoint: PublishedCheckpoint {
            tree_size: checkpoint_size,
            note,
        },
        checkpoint_root: recomputed,
    })
}

/// Genesis flags only apply when the log is created; a given flag that disagrees with an
/// existing log is an error rather than silently ignored.
fn check_genesis_params(genesis: &Genesis, config: &LedgerConfig) -> Result<(), OpenError> {
    let params = &config.genesis;
    let mismatch = |flag: &str, log: String, given: String| {
        Err(OpenError::Genesis(format!(
            "{flag} is {given} but this log was created with {log}; genesis flags only apply when the log is created"
        )))
    };
    if let Some(origin) = &params.origin {
        if origin != &genesis.origin {
            return mismatch("--origin", genesis.origin.clone(), origin.clone());
        }
    }
    if let Some(lateness) = params.max_lateness {
        if lateness != genesis.max_lateness {
            return mismatch(
                "--max-lateness",
                format!("{:?}", genesis.max_lateness),
                format!("{lateness:?}"),
            );
        }
    }
    if let Some(skew) = params.max_skew {
        if skew != genesis.max_skew {
            return mismatch(
                "--max-skew",
                format!("{:?}", genesis.max_skew),
                format!("{skew:?}"),
            );
        }
    }
    if let Some(threshold) = params.admin_threshold {
        if threshold.max(1) != genesis.admin_threshold {
            return mismatch(
                "--admin-threshold",
                genesis.admin_threshold.to_string(),
                threshold.to_string(),
            );
        }
    }
    if let Some(previous) = &params.previous_log {
        if genesis.previous_log.as_ref() != Some(previous) {
            let named = |previous: Option<&PreviousLog>| {
                previous.map_or("no previous log".to_owned(), |p| {
                    format!("{} at tree size {}", p.origin, p.tree_size)
                })
            };
            return mismatch(
                "--continue-from",
                named(genesis.previous_log.as_ref()),
                named(Some(previous)),
            );
        }
    }
    if let Some(keys) = &params.admin_keys {
        if keys != &genesis.admin_keys {
            let names = |keys: &[crate::domain::AdminKey]| {
                keys.iter()
                    .map(|k| k.name.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return mismatch("--admin-key", names(&genesis.admin_keys), names(keys));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
