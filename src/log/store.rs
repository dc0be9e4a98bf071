//! The log's storage seam: the [`LogStore`] trait that the writer and every reader go
//! through, and the values that cross it ([`AppendBatch`], [`SeqBlock`], [`StoreError`]).
//!
//! The log (entries) is the single source of truth. A store also keeps what is derived
//! from it — Merkle tiles, the (probe, seq) dedupe index and the signed checkpoints — and
//! writes those **in the same atomic batch** as the entries they derive from, so a crash can
//! never leave them out of step.
//!
//! What the writer relies on from every implementation:
//!
//! - [`LogStore::append`] applies a batch whole or not at all, also across a crash, and
//!   only at the end of the log (a batch starts at [`LogStore::size`]);
//! - [`LogStore::flush`] makes every applied batch durable; after it fails once, every
//!   later write fails, because a retried fsync can report lost data as saved;
//! - [`StoreError::DiskFull`] is the one fault that is not fatal: nothing more is written
//!   until [`LogStore::reopen`] has brought the store back to what is durable, and the
//!   writer re-verifies the log before writing again;
//! - reads keep working after a failed write.
//!
//! [`SledStore`](super::SledStore) (`sled_store`) is the one implementation.

use std::ops::Range;

use crate::merkle::TileWrite;

pub use super::packing::PAIRS_PER_BLOCK;

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
    /// The entry at `index`, byte for byte as appended; `None` at or beyond the end.
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries in `range`, in index order, as (index, bytes).
    fn entries(&self, range: Range<u64>) -> EntryIter;
    /// The hashes of tile `tile_level`/`tile_index` as last written (level 0: the leaf
    /// hashes of the stored entries it covers); `None` when there is none.
    fn tile(&self, tile_level: u8, tile_index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// The index of the accepted observation with this (probe, seq), if a stored seq block
    /// holds it (the writer keeps each probe's newest pairs until they fill a block).
    fn seq_index(&self, probe_id: &str, seq: u64) -> Result<Option<u64>, StoreError>;
    /// The last seq of the probe's last stored seq block, if any: its accepted observations
    /// with higher seqs are not in a block yet.
    fn last_block_seq(&self, probe_id: &str) -> Result<Option<u64>, StoreError>;
    /// The signed note of the checkpoint at `tree_size`, if one was signed there.
    fn checkpoint(&self, tree_size: u64) -> Result<Option<String>, StoreError>;
    /// The checkpoint with the largest tree size, as (tree size, note).
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;
    /// After `DiskFull`: closes the store and opens it again from what is on disk, dropping
    /// whatever was applied but not made durable. The caller must re-verify the log (its
    /// size may differ) and `flush` before publishing anything. Refused for a poisoned
    /// store: a failed fsync is never retried.
    fn reopen(&self) -> Result<(), StoreError>;
}

/// Everything one group commit writes, applied atomically.
#[derive(Debug, Default)]
pub struct AppendBatch {
    /// Index of `entries[0]`; must equal the store's size.
    pub first_index: u64,
    /// Encoded `LogEntry` bytes, in index order.
    pub entries: Vec<Vec<u8>>,
    /// Merkle tiles changed by these entries (full new content of each).
    pub tiles: Vec<TileWrite>,
    /// Full blocks of a probe's accepted (seq, index) pairs, each stored once, whole.
    pub seq_blocks: Vec<SeqBlock>,
    /// A checkpoint signed over the log including this batch: (tree size, signed note).
    pub checkpoint: Option<(u64, String)>,
}

/// A probe's accepted (seq, index) pairs, in log order (both strictly increasing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqBlock {
    pub probe_id: String,
    pub pairs: Vec<(u64, u64)>,
}

/// Why the store failed; each variant says what the writer does next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk is full (or a file-size limit was hit): the batch was not made durable,
    /// and nothing more can be written until [`LogStore::reopen`] succeeds.
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
