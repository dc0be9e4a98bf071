//! The narrow storage interface of the log, and its embedded sled implementation.
//!
//! The log (entries) is the single source of truth. The store also keeps what is derived
//! from it — Merkle tiles, the (probe, seq) dedupe index and the signed checkpoints — and writes those **in the same atomic batch** as the entries
//! they derive from, so a crash can never leave them out of step.
//!
//! All of it lives in one sled tree with one-byte key prefixes, because sled's
//! `apply_batch` is atomic only within a tree.
//!
//! Durability: sled 0.34's `flush` ends in `sync_file_range`, which does not reach the
//! drive's cache. `flush` here follows it with our own `fdatasync` of sled's data file and
//! of any blob files. A failed flush or fsync poisons the store: every later write is
//! refused, because a retried fsync can report lost data as saved.

use std::collections::HashSet;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::merkle::TileWrite;

/// Everything one group commit writes, applied atomically.
#[derive(Debug, Default)]
pub struct AppendBatch {
    /// Index of `entries[0]`; must equal the store's size.
    pub first_index: u64,
    /// Encoded `LogEntry` bytes, in index order.
    pub entries: Vec<Vec<u8>>,
    /// Merkle tiles changed by these entries (full new content of each).
    pub tiles: Vec<TileWrite>,
    /// (probe, seq) → index of each accepted observation.
    pub accepted_seqs: Vec<(String, u64, u64)>,
    /// A checkpoint signed over the log including this batch: (tree size, signed note).
    pub checkpoint: Option<(u64, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk is full: the batch was not written; writes may resume once space is freed.
    #[error("the disk is full: {0}")]
    DiskFull(String),
    /// A flush or fsync failed, or storage returned an I/O error: nothing more is written.
    #[error("storage failed, writes are stopped: {0}")]
    Failed(String),
    /// The stored data does not make sense (e.g. an entry at the wrong key).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Stored entries in index order, as (index, bytes).
pub type EntryIter = Box<dyn Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + Send>;

/// The storage interface: append a batch, read ranges, size, durable flush, plus the
/// derived records written with each batch. A replicated backend would keep entries in its
/// replicated log and the derived records next to its local state.
pub trait LogStore: Send + Sync + 'static {
    /// Number of entries stored (durable or not yet flushed).
    fn size(&self) -> u64;
    /// Applies the batch atomically (all of it or none, also across a crash). Not yet durable.
    fn append(&self, batch: AppendBatch) -> Result<(), StoreError>;
    /// Makes every applied batch durable. After an error, all writes fail.
    fn flush(&self) -> Result<(), StoreError>;
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries in `range`, in index order, as (index, bytes).
    fn entries(&self, range: Range<u64>) -> EntryIter;
    fn tile(&self, tile_level: u8, tile_index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// The index of the accepted observation with this (probe, seq), if any.
    fn seq_index(&self, probe_id: &str, seq: u64) -> Result<Option<u64>, StoreError>;
    /// The highest accepted seq of a probe, if any.
    fn last_seq(&self, probe_id: &str) -> Result<Option<u64>, StoreError>;
    fn checkpoint(&self, tree_size: u64) -> Result<Option<String>, StoreError>;
    /// The checkpoint with the largest tree size, as (tree size, note).
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;
}

const ENTRY: u8 = b'e';
const TILE: u8 = b't';
const SEQ: u8 = b's';
const CHECKPOINT: u8 = b'k';

fn index_key(prefix: u8, index: u64) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn tile_key(tile_level: u8, tile_index: u64) -> [u8; 10] {
    let mut key = [TILE; 10];
    key[1] = tile_level;
    key[2..].copy_from_slice(&tile_index.to_be_bytes());
    key
}

/// `s || probe_id || 0x00 || seq`: ids never contain 0x00, so one probe's keys are one
/// contiguous range ordered by seq.
fn seq_prefix(probe_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(probe_id.len() + 10);
    key.push(SEQ);
    key.extend_from_slice(probe_id.as_bytes());
    key.push(0);
    key
}

fn seq_key(probe_id: &str, seq: u64) -> Vec<u8> {
    let mut key = seq_prefix(probe_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn be_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| {
            StoreError::Corrupt(format!(
                "expected an 8-byte number, found {} bytes",
                bytes.len()
            ))
        })
}

/// The sled-backed store: one data directory, one sled tree.
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
    size: std::sync::atomic::AtomicU64,
    sync: Mutex<SyncState>,
}

/// What `flush` needs beyond sled: our own handle on sled's files, and whether a flush
/// has ever failed.
struct SyncState {
    data_file: File,
    synced_blobs: HashSet<std::ffi::OsString>,
    failure: Option<String>,
}

impl SledStore {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| {
                StoreError::Failed(format!(
                    "cannot open the sled database in {}: {e}",
                    path.display()
                ))
            })?;
        let size = match db
            .scan_prefix([ENTRY])
            .next_back()
            .transpose()
            .map_err(sled_error)?
        {
            Some((key, _)) => be_u64(&key[1..])? + 1,
            None => 0,
        };
        let data_file = File::open(path.join("db")).map_err(|e| {
            StoreError::Failed(format!("cannot open sled's data file for fsync: {e}"))
        })?;
        let store = SledStore {
            db,
            path: path.to_owned(),
            size: std::sync::atomic::AtomicU64::new(size),
            sync: Mutex::new(SyncState {
                data_file,
                synced_blobs: HashSet::new(),
                failure: None,
            }),
        };
        Ok(store)
    }

    fn check_not_failed(&self) -> Result<(), StoreError> {
        match &self.sync.lock().expect("sync state lock").failure {
            Some(reason) => Err(StoreError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    fn sync_files(&self, state: &mut SyncState) -> std::io::Result<()> {
        state.data_file.sync_data()?;
        // Values larger than sled's inline threshold live in blob files that sled writes
        // without any sync; sync each new one, then the directory that names it.
        let blob_dir = self.path.join("blobs");
        let mut new_blobs = false;
        if let Ok(listing) = std::fs::read_dir(&blob_dir) {
            for blob in listing {
                let blob = blob?;
                if state.synced_blobs.insert(blob.file_name()) {
                    File::open(blob.path())?.sync_data()?;
                    new_blobs = true;
                }
            }
        }
        if new_blobs {
            File::open(&blob_dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn sled_error(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if io.raw_os_error() == Some(libc_enospc()) => {
            StoreError::DiskFull(io.to_string())
        }
        sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Failed(other.to_string()),
    }
}

/// ENOSPC on Linux.
const fn libc_enospc() -> i32 {
    28
}

impl LogStore for SledStore {
    fn size(&self) -> u64 {
        self.size.load(std::sync::atomic::Ordering::Acquire)
    }

    fn append(&self, batch: AppendBatch) -> Result<(), StoreError> {
        self.check_not_failed()?;
        let size = self.size();
        if batch.first_index != size {
            return Err(StoreError::Corrupt(format!(
                "batch starts at index {} but the log has {size} entries",
                batch.first_index
            )));
        }
        let mut writes = sled::Batch::default();
        let appended = batch.entries.len() as u64;
        for (offset, entry) in batch.entries.into_iter().enumerate() {
            writes.insert(&index_key(ENTRY, size + offset as u64), entry);
        }
        for tile in batch.tiles {
            writes.insert(&tile_key(tile.tile_level, tile.tile_index), tile.hashes);
        }
        for (probe_id, seq, index) in batch.accepted_seqs {
            writes.insert(seq_key(&probe_id, seq), &index.to_be_bytes());
        }
        if let Some((tree_size, note)) = batch.checkpoint {
            writes.insert(&index_key(CHECKPOINT, tree_size), note.as_bytes());
        }
        self.db.apply_batch(writes).map_err(sled_error)?;
        self.size
            .store(size + appended, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut state = self.sync.lock().expect("sync state lock");
        if let Some(reason) = &state.failure {
            return Err(StoreError::Failed(reason.clone()));
        }
        let result = self
            .db
            .flush()
            .map_err(|e| format!("sled flush failed: {e}"))
            .and_then(|_| {
                self.sync_files(&mut state)
                    .map_err(|e| format!("fdatasync failed: {e}"))
            });
        if let Err(reason) = result {
            tracing::error!(%reason, "storage flush failed; the ledger stops accepting writes (a retried fsync can report lost data as saved)");
            state.failure = Some(reason.clone());
            return Err(StoreError::Failed(reason));
        }
        Ok(())
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get(index_key(ENTRY, index))
            .map_err(sled_error)?
            .map(|v| v.to_vec()))
    }

    fn entries(&self, range: Range<u64>) -> EntryIter {
        let mut expected = range.start;
        let iter = self
            .db
            .range(index_key(ENTRY, range.start)..index_key(ENTRY, range.end))
            .map(move |item| {
                let (key, value) = item.map_err(sled_error)?;
                let index = be_u64(&key[1..])?;
                if index != expected {
                    return Err(StoreError::Corrupt(format!("entry {expected} is missing")));
                }
                expected += 1;
                Ok((index, value.to_vec()))
            });
        Box::new(iter)
    }

    fn tile(&self, tile_level: u8, tile_index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get(tile_key(tile_level, tile_index))
            .map_err(sled_error)?
            .map(|v| v.to_vec()))
    }

    fn seq_index(&self, probe_id: &str, seq: u64) -> Result<Option<u64>, StoreError> {
        self.db
            .get(seq_key(probe_id, seq))
            .map_err(sled_error)?
            .map(|v| be_u64(&v))
            .transpose()
    }

    fn last_seq(&self, probe_id: &str) -> Result<Option<u64>, StoreError> {
        let prefix = seq_prefix(probe_id);
        match self
            .db
            .scan_prefix(&prefix)
            .next_back()
            .transpose()
            .map_err(sled_error)?
        {
            Some((key, _)) => Ok(Some(be_u64(&key[prefix.len()..])?)),
            None => Ok(None),
        }
    }

    fn checkpoint(&self, tree_size: u64) -> Result<Option<String>, StoreError> {
        self.db
            .get(index_key(CHECKPOINT, tree_size))
            .map_err(sled_error)?
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| StoreError::Corrupt("a stored checkpoint is not UTF-8".into()))
            })
            .transpose()
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self
            .db
            .scan_prefix([CHECKPOINT])
            .next_back()
            .transpose()
            .map_err(sled_error)?
        {
            Some((key, value)) => Ok(Some((
                be_u64(&key[1..])?,
                String::from_utf8(value.to_vec())
                    .map_err(|_| StoreError::Corrupt("a stored checkpoint is not UTF-8".into()))?,
            ))),
            None => Ok(None),
        }
    }
}
