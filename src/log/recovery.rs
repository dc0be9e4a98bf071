//! Opening a data directory: create the genesis on first start; otherwise verify the whole
//! stored log before serving it, and rebuild the writer's derived state from it.
//!
//! Verification re-hashes every stored entry, checks that the entries hash to the root of
//! the latest signed checkpoint (and that the checkpoint's signature verifies), and that
//! the stored Merkle tiles agree with the entries. A data directory changed behind the
//! ledger's back therefore refuses to start, with a message naming what differs.

use std::collections::HashMap;
use std::sync::Arc;

use super::registry::{CommandCheck, Registry};
use super::shared::PublishedCheckpoint;
use super::store::{AppendBatch, LogStore, SledStore, StoreError};
use super::{LedgerConfig, DEFAULT_ORIGIN};
use crate::checkpoint::{open_checkpoint, Checkpoint, NoteSigner};
use crate::domain::{Genesis, Millis, ProbeId, ServiceId, DEFAULT_MAX_LATENESS, DEFAULT_MAX_SKEW};
use crate::entry::{self, Payload};
use crate::merkle::{self, Hash, TileAppender, TileSubtreeSource};
use crate::pb;

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
    pub appender: TileAppender,
    pub last_received_at: Millis,
    pub checkpoint: PublishedCheckpoint,
}

pub(super) fn open(config: &LedgerConfig) -> Result<Opened, OpenError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        OpenError::Storage(format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let store: Arc<dyn LogStore> = Arc::new(SledStore::open(&config.data_dir.join("log"))?);
    if store.size() == 0 {
        create_genesis(store.as_ref(), config)?;
    }
    let opened = verify(store, config)?;
    check_genesis_params(opened.registry.genesis(), config)?;
    Ok(opened)
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
        ServiceId::parse(&key.name).map_err(|_| {
            OpenError::Genesis(format!(
                "admin key name {:?} is not 1-64 characters of [a-z0-9._-]",
                key.name
            ))
        })?;
    }
    let genesis = Genesis {
        origin: params
            .origin
            .clone()
            .unwrap_or_else(|| DEFAULT_ORIGIN.to_owned()),
        ledger_public_key: config.ledger_key.verifying_key(),
        admin_keys,
        max_lateness: params.max_lateness.unwrap_or(DEFAULT_MAX_LATENESS),
        max_skew: params.max_skew.unwrap_or(DEFAULT_MAX_SKEW),
    };
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
        accepted_seqs: Vec::new(),
        checkpoint: Some((1, note)),
    })?;
    store.flush()?;
    tracing::info!(origin = %genesis.origin, "created a new log");
    Ok(())
}

fn verify(store: Arc<dyn LogStore>, config: &LedgerConfig) -> Result<Opened, OpenError> {
    let size = store.size();
    let (checkpoint_size, note) = store
        .latest_checkpoint()?
        .ok_or_else(|| OpenError::Corrupt("the log has entries but no signed checkpoint".into()))?;
    if checkpoint_size > size {
        return Err(OpenError::Corrupt(format!(
            "the latest signed checkpoint covers {checkpoint_size} entries but only {size} are stored: entries were lost"
        )));
    }

    let mut registry: Option<Registry> = None;
    let mut last_seqs: HashMap<ProbeId, u64> = HashMap::new();
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
                registry = Some(Registry::new(genesis))
            }
            (Payload::Genesis(_), _) => {
                return Err(OpenError::Corrupt(format!(
                    "entry {index} is a second genesis"
                )))
            }
            (_, None) => return Err(OpenError::Corrupt("entry 0 is not a genesis".into())),
            (Payload::Observation { observation, .. }, Some(_)) => {
                let last = last_seqs
                    .entry(observation.probe_id)
                    .or_insert(observation.seq);
                *last = (*last).max(observation.seq);
            }
            (
                Payload::Command {
                    signer,
                    body,
                    command,
                    ..
                },
                Some(registry),
            ) => match registry.check(&signer, &body, &command) {
                Ok(CommandCheck::Apply) => registry.apply(index, &signer, &body, &command),
                other => {
                    return Err(OpenError::Corrupt(format!(
                        "entry {index} holds a command that was not valid when appended ({other:?})"
                    )))
                }
            },
        }
        pending_leaves.push(merkle::leaf_hash(&bytes));
        if pending_leaves.len() == VERIFY_CHUNK || index + 1 == checkpoint_size {
            appender.append(&pending_leaves);
            pending_leaves.clear();
        }
        if index + 1 == checkpoint_size {
            root_at_checkpoint = Some(appender.root());
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

    let signer = NoteSigner::new(&registry.genesis().origin, config.ledger_key.clone())
        .map_err(|e| OpenError::Genesis(e.to_string()))?;
    if registry.genesis().ledger_public_key != config.ledger_key.verifying_key() {
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
        appender,
        last_received_at,
        checkpoint: PublishedCheckpoint {
            tree_size: checkpoint_size,
            note,
        },
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
