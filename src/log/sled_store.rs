//! [`SledStore`]: the [`LogStore`] on an embedded sled database, one data directory and
//! one sled tree.
//!
//! Everything lives in one tree with one-byte key prefixes, because sled's `apply_batch`
//! is atomic only within a tree. Entries are stored in chunks of up to
//! [`ENTRIES_PER_CHUNK`] consecutive entries (keyed by the first one's index) and the dedupe
//! index in blocks of up to [`PAIRS_PER_BLOCK`](super::packing::PAIRS_PER_BLOCK) of a
//! probe's (seq, index) pairs (keyed by the first seq), so that sled's cost per key is paid
//! per chunk and per block, not per entry (the byte formats are in `packing`). Level-0 tiles are not stored: they are the
//! entries' leaf hashes, computed when read.
//!
//! Durability: sled 0.34's `flush` ends in `sync_file_range`, which does not reach the
//! drive's cache. `flush` here follows it with our own `fdatasync` of sled's data file and
//! of any blob files. A failed flush or fsync poisons the store: every later write is
//! refused, because a retried fsync can report lost data as saved.
//!
//! A full disk: sled 0.34.7 turns the first failed write of its log into a sticky "global
//! error": that `Db` never writes again (and its in-memory tree may hold part of the
//! refused batch). So `DiskFull` is reported for ENOSPC/EFBIG/EDQUOT from sled's write
//! path, and the only way back is [`LogStore::reopen`]: close the database and open it
//! again from what is on disk — exactly what a restart does. Reads keep working throughout
//! (sled does not check its global error on reads).

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::packing::{self, Malformed, ENTRIES_PER_CHUNK};
use super::store::{AppendBatch, EntryIter, LogStore, StoreError};

/// sled's page cache for the log. Reads of the log are entries for auditors and proofs,
/// mostly sequential or recent; queries never touch it (they read the projections). sled's
/// default (1 GiB, which sled undercounts per cached node) would let `serve`'s memory grow
/// with the log.
const LOG_CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// The sled-backed store: one data directory, one sled tree.
pub struct SledStore {
    /// The open database; swapped by `reopen` (empty only after a reopen failed).
    db: DbSlot,
    path: PathBuf,
    size: std::sync::atomic::AtomicU64,
    sync: Mutex<SyncState>,
}

/// Shared with entry iterators, which take the database afresh for each chunk, so that no
/// long-lived handle keeps a closed database (and sled's file lock) alive across a reopen.
type DbSlot = Arc<RwLock<Option<sled::Db>>>;

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
        let db = open_db(path)?;
        let size = stored_size(&db)?;
        let data_file = open_data_file(path)?;
        Ok(SledStore {
            db: Arc::new(RwLock::new(Some(db))),
            path: path.to_owned(),
            size: std::sync::atomic::AtomicU64::new(size),
            sync: Mutex::new(SyncState {
                data_file,
                synced_blobs: HashSet::new(),
                failure: None,
            }),
        })
    }

    fn db(&self) -> Result<sled::Db, StoreError> {
        current_db(&self.db)
    }

    fn check_not_failed(&self) -> Result<(), StoreError> {
        match &self.sync.lock().expect("sync state lock").failure {
            Some(reason) => Err(StoreError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Tile 0/`tile_index`, computed from the entries it covers (the store keeps no
    /// level-0 tiles): the leaf hashes of every stored entry in its range.
    fn leaf_tile(&self, tile_index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let width = crate::merkle::TILE_WIDTH as u64;
        let start = tile_index.saturating_mul(width);
        let end = start.saturating_add(width).min(self.size());
        if start >= end {
            return Ok(None);
        }
        let mut hashes = Vec::with_capacity((end - start) as usize * crate::merkle::HASH_SIZE);
        for item in self.entries(start..end) {
            let (_, bytes) = item?;
            hashes.extend_from_slice(&crate::merkle::leaf_hash(&bytes));
        }
        Ok(Some(hashes))
    }

    fn sync_files(&self, state: &mut SyncState) -> std::io::Result<()> {
        fail::fail_point!("store::fsync", |_| Err(std::io::Error::other(
            "failpoint store::fsync"
        )));
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

impl LogStore for SledStore {
    fn size(&self) -> u64 {
        self.size.load(std::sync::atomic::Ordering::Acquire)
    }

    fn append(&self, batch: AppendBatch) -> Result<(), StoreError> {
        self.check_not_failed()?;
        let db = self.db()?;
        let size = self.size();
        if batch.first_index != size {
            return Err(StoreError::Corrupt(format!(
                "batch starts at index {} but the log has {size} entries",
                batch.first_index
            )));
        }
        let mut writes = sled::Batch::default();
        let appended = batch.entries.len() as u64;
        for (number, chunk) in batch.entries.chunks(ENTRIES_PER_CHUNK).enumerate() {
            let first = size + (number * ENTRIES_PER_CHUNK) as u64;
            writes.insert(&index_key(CHUNK, first), packing::encode_chunk(chunk));
        }
        // Level-0 tiles are the entries' leaf hashes: `tile` computes them from the
        // entries, so storing them would only repeat 32 bytes per entry (and rewrite the
        // partial one at every commit).
        for tile in batch.tiles.into_iter().filter(|t| t.tile_level > 0) {
            writes.insert(&tile_key(tile.tile_level, tile.tile_index), tile.hashes);
        }
        fail::fail_point!("store::dedupe-update", |_| Err(StoreError::Failed(
            "failpoint store::dedupe-update".into()
        )));
        for block in batch.seq_blocks {
            writes.insert(
                seq_key(&block.probe_id, block.pairs[0].0),
                packing::encode_block(&block.pairs),
            );
        }
        if let Some((tree_size, note)) = batch.checkpoint {
            writes.insert(&index_key(CHECKPOINT, tree_size), note.as_bytes());
        }
        db.apply_batch(writes).map_err(sled_error)?;
        self.size
            .store(size + appended, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut state = self.sync.lock().expect("sync state lock");
        if let Some(reason) = &state.failure {
            return Err(StoreError::Failed(reason.clone()));
        }
        let db = self.db()?;
        let result = match sled_flush(&db) {
            // sled could not write its log because the disk is full. Nothing was synced (no
            // fsync is being retried); the database must be reopened before writing again.
            Err(sled::Error::Io(io)) if is_disk_full(&io) => {
                return Err(StoreError::DiskFull(format!(
                    "sled cannot write its log: {io}"
                )))
            }
            Err(e) => Err(format!("sled flush failed: {e}")),
            Ok(()) => self
                .sync_files(&mut state)
                .map_err(|e| format!("fdatasync failed: {e}")),
        };
        if let Err(reason) = result {
            tracing::error!(%reason, "storage flush failed; the ledger stops accepting writes (a retried fsync can report lost data as saved)");
            state.failure = Some(reason.clone());
            return Err(StoreError::Failed(reason));
        }
        Ok(())
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((first, value)) = chunk_at(&self.db()?, index)? else {
            return Ok(None);
        };
        let entries = packing::decode_chunk(&value).map_err(malformed(&index_key(CHUNK, first)))?;
        Ok(usize::try_from(index - first)
            .ok()
            .and_then(|offset| entries.get(offset))
            .map(|entry| entry.to_vec()))
    }

    fn entries(&self, range: Range<u64>) -> EntryIter {
        Box::new(ChunkedEntries {
            slot: self.db.clone(),
            next: range.start,
            end: range.end,
            buffer: VecDeque::new(),
            done: false,
        })
    }

    fn tile(&self, tile_level: u8, tile_index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if tile_level == 0 {
            return self.leaf_tile(tile_index);
        }
        Ok(self
            .db()?
            .get(tile_key(tile_level, tile_index))
            .map_err(sled_error)?
            .map(|v| v.to_vec()))
    }

    fn seq_index(&self, probe_id: &str, seq: u64) -> Result<Option<u64>, StoreError> {
        let found = self
            .db()?
            .range(seq_key(probe_id, 0)..=seq_key(probe_id, seq))
            .next_back()
            .transpose()
            .map_err(sled_error)?;
        let Some((key, value)) = found else {
            return Ok(None);
        };
        let pairs = packing::decode_block(&value).map_err(malformed(&key))?;
        Ok(packing::index_of_seq(&pairs, seq))
    }

    fn last_block_seq(&self, probe_id: &str) -> Result<Option<u64>, StoreError> {
        let found = self
            .db()?
            .scan_prefix(seq_prefix(probe_id))
            .next_back()
            .transpose()
            .map_err(sled_error)?;
        let Some((key, value)) = found else {
            return Ok(None);
        };
        let pairs = packing::decode_block(&value).map_err(malformed(&key))?;
        Ok(pairs.last().map(|&(seq, _)| seq))
    }

    fn checkpoint(&self, tree_size: u64) -> Result<Option<String>, StoreError> {
        self.db()?
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
            .db()?
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

    fn reopen(&self) -> Result<(), StoreError> {
        let mut state = self.sync.lock().expect("sync state lock");
        if let Some(reason) = &state.failure {
            return Err(StoreError::Failed(reason.clone()));
        }
        // Readers wait on the slot while it is swapped. sled holds an exclusive lock on its
        // file, so the old database must be gone before the new one opens.
        let mut slot = self.db.write().expect("db slot lock");
        drop(slot.take());
        let mut attempts = 0;
        let db = loop {
            match open_db(&self.path) {
                Ok(db) => break db,
                // One of sled's threads may still hold the old handle for a moment.
                Err(StoreError::Failed(_)) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => return Err(error),
            }
        };
        let size = stored_size(&db)?;
        state.data_file = open_data_file(&self.path)?;
        state.synced_blobs.clear();
        *slot = Some(db);
        self.size.store(size, std::sync::atomic::Ordering::Release);
        tracing::info!(size, "reopened the log store");
        Ok(())
    }
}

/// Opens the sled database `config` describes (its directory is `path`).
///
/// sled 0.34.7 writes a snapshot of its page table to `snap.<lsn>.generating` and renames
/// it once complete, but on open it takes the newest `snap.*` file, finished or not: after
/// a crash in the middle of that write it reads a torn snapshot and refuses to open with a
/// corruption error (sled issue #1527). An unfinished snapshot
/// holds nothing that the log and the last finished snapshot do not, so when sled reports
/// corruption and such files exist, they are removed and the open is tried once more.
/// Whatever sled then recovers is still checked against the signed checkpoint.
pub fn open_sled(path: &Path, config: sled::Config) -> sled::Result<sled::Db> {
    match config.clone().open() {
        Err(sled::Error::Corruption { at, bt }) => {
            if remove_unfinished_snapshots(path) == 0 {
                return Err(sled::Error::Corruption { at, bt });
            }
            config.open()
        }
        opened => opened,
    }
}

/// Removes the `snap.*.generating` files in `path`; returns how many.
fn remove_unfinished_snapshots(path: &Path) -> usize {
    let Ok(dir) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut removed = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("snap.") && name.ends_with(".generating")) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::warn!(
                    file = %entry.path().display(),
                    "removed a sled snapshot that a crash left unfinished"
                );
                removed += 1;
            }
            Err(error) => tracing::warn!(
                file = %entry.path().display(),
                %error,
                "cannot remove a sled snapshot that a crash left unfinished"
            ),
        }
    }
    removed
}

const CHUNK: u8 = b'c';
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

fn malformed(at: &[u8]) -> impl Fn(Malformed) -> StoreError + '_ {
    move |Malformed(detail)| StoreError::Corrupt(format!("the value at key {at:02x?}: {detail}"))
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

/// Entries read per step by [`LogStore::entries`].
const ENTRY_CHUNK: u64 = 1024;

/// How long opening waits for sled's lock on its files (see [`open_db`]).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    // A `sled::Db` that was just dropped in this process can keep its file lock for a
    // moment (its flusher thread lets go last): a log created in `log.creating` and
    // reopened after the rename hit this. Wait for the lock, briefly; a lock that stays
    // held is another process using the directory, and is reported as such.
    let started = std::time::Instant::now();
    loop {
        match open_db_once(path) {
            Err(StoreError::Failed(detail))
                if detail.contains("could not acquire lock") && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(StoreError::Failed(detail)) if detail.contains("could not acquire lock") => {
                return Err(StoreError::Failed(format!(
                    "{detail} (is another uptime-ledger using this data directory?)"
                )));
            }
            opened => return opened,
        }
    }
}

fn open_db_once(path: &Path) -> Result<sled::Db, StoreError> {
    // sled's recovery asserts on some damaged files instead of returning an error: a panic
    // there is a damaged data directory, reported as such.
    let opened = std::panic::catch_unwind(|| {
        let config = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(LOG_CACHE_BYTES);
        open_sled(path, config)
    })
    .map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        StoreError::Corrupt(format!(
            "sled failed while recovering its database in {} ({message})",
            path.display()
        ))
    })?;
    opened.map_err(|e| match sled_error(e) {
        StoreError::Corrupt(detail) => StoreError::Corrupt(format!(
            "sled cannot read its database in {}: {detail}",
            path.display()
        )),
        StoreError::DiskFull(detail) => StoreError::DiskFull(detail),
        StoreError::Failed(detail) => StoreError::Failed(format!(
            "cannot open the sled database in {}: {detail}",
            path.display()
        )),
    })
}

/// sled's own flush (its log written and `sync_file_range`d).
fn sled_flush(db: &sled::Db) -> Result<(), sled::Error> {
    fail::fail_point!("store::flush", |_| Err(sled::Error::Io(
        std::io::Error::other("failpoint store::flush")
    )));
    db.flush().map(|_| ())
}

fn open_data_file(path: &Path) -> Result<File, StoreError> {
    File::open(path.join("db"))
        .map_err(|e| StoreError::Failed(format!("cannot open sled's data file for fsync: {e}")))
}

/// The number of entries: one past the last entry of the last chunk.
fn stored_size(db: &sled::Db) -> Result<u64, StoreError> {
    match db
        .scan_prefix([CHUNK])
        .next_back()
        .transpose()
        .map_err(sled_error)?
    {
        Some((key, value)) => {
            let first = be_u64(&key[1..])?;
            let count = packing::decode_chunk(&value)
                .map_err(malformed(&key))?
                .len();
            Ok(first + count as u64)
        }
        None => Ok(0),
    }
}

fn current_db(slot: &DbSlot) -> Result<sled::Db, StoreError> {
    slot.read()
        .expect("db slot lock")
        .clone()
        .ok_or_else(|| StoreError::Failed("the log store is closed: reopening it failed".into()))
}

/// sled's errors, typed. sled keeps its first failed write as a sticky error and hands out
/// copies that keep only the `io::ErrorKind` (not the OS error number), so a full disk is
/// recognised by kind.
fn sled_error(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if is_disk_full(&io) => StoreError::DiskFull(io.to_string()),
        sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Failed(other.to_string()),
    }
}

/// ENOSPC, EFBIG (a file-size limit) or EDQUOT.
fn is_disk_full(io: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        io.kind(),
        ErrorKind::StorageFull | ErrorKind::FileTooLarge | ErrorKind::QuotaExceeded
    )
}

/// Entries `[next, end)`, read a chunk at a time, each chunk from the database open then.
struct ChunkedEntries {
    slot: DbSlot,
    next: u64,
    end: u64,
    buffer: VecDeque<(u64, Vec<u8>)>,
    done: bool,
}

impl ChunkedEntries {
    fn fill(&mut self) -> Result<(), StoreError> {
        let db = current_db(&self.slot)?;
        let until = self.end.min(self.next.saturating_add(ENTRY_CHUNK));
        // The chunk holding `next` may start before it (whether it reaches `next` is
        // checked below, with every other chunk).
        let start = match chunk_at(&db, self.next)? {
            Some((first, _)) => first,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "entry {} is missing",
                    self.next
                )))
            }
        };
        let mut expected = start;
        for item in db.range(index_key(CHUNK, start)..index_key(CHUNK, until)) {
            let (key, value) = item.map_err(sled_error)?;
            let first = be_u64(&key[1..])?;
            if first != expected {
                return Err(StoreError::Corrupt(format!("entry {expected} is missing")));
            }
            for (offset, entry) in packing::decode_chunk(&value)
                .map_err(malformed(&key))?
                .into_iter()
                .enumerate()
            {
                let index = first + offset as u64;
                if (self.next..until).contains(&index) {
                    self.buffer.push_back((index, entry.to_vec()));
                }
                expected = index + 1;
            }
        }
        if expected < until {
            return Err(StoreError::Corrupt(format!("entry {expected} is missing")));
        }
        self.next = until;
        Ok(())
    }
}

impl Iterator for ChunkedEntries {
    type Item = Result<(u64, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done && self.next < self.end {
            if let Err(error) = self.fill() {
                self.done = true;
                return Some(Err(error));
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}

/// The last chunk that starts at or before entry `index`: (its first index, its value).
/// Whether it reaches `index` is for the caller to see when it decodes the chunk.
fn chunk_at(db: &sled::Db, index: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
    let Some((key, value)) = db
        .range(index_key(CHUNK, 0)..=index_key(CHUNK, index))
        .next_back()
        .transpose()
        .map_err(sled_error)?
    else {
        return Ok(None);
    };
    Ok(Some((be_u64(&key[1..])?, value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::store::SeqBlock;

    fn entry_bytes(index: u64) -> Vec<u8> {
        format!("entry {index} {}", "x".repeat((index % 7) as usize)).into_bytes()
    }

    /// Appends `sizes` batches of entries, one seq block per batch for probe `p`.
    fn store_with(dir: &Path, sizes: &[usize]) -> SledStore {
        let store = SledStore::open(dir).unwrap();
        for &n in sizes {
            let first = store.size();
            let pairs: Vec<(u64, u64)> =
                (first..first + n as u64).map(|i| (i * 2 + 1, i)).collect();
            store
                .append(AppendBatch {
                    first_index: first,
                    entries: (first..first + n as u64).map(entry_bytes).collect(),
                    seq_blocks: vec![SeqBlock {
                        probe_id: "p".into(),
                        pairs,
                    }],
                    ..AppendBatch::default()
                })
                .unwrap();
        }
        store.flush().unwrap();
        store
    }

    #[test]
    fn entries_in_chunks_read_back_one_by_one_and_in_any_range() {
        let dir = tempfile::tempdir().unwrap();
        // Batches smaller than, equal to and larger than a chunk.
        let sizes = [1, 31, 32, 33, 100, 2, 64];
        let total: u64 = sizes.iter().sum::<usize>() as u64;
        let store = store_with(dir.path(), &sizes);
        assert_eq!(store.size(), total);
        for i in 0..total {
            assert_eq!(store.entry(i).unwrap(), Some(entry_bytes(i)), "entry {i}");
        }
        assert_eq!(store.entry(total).unwrap(), None);
        for (start, end) in [(0, total), (5, 6), (31, 97), (64, 65), (100, total), (3, 3)] {
            let read: Vec<(u64, Vec<u8>)> = store.entries(start..end).map(Result::unwrap).collect();
            let expected: Vec<(u64, Vec<u8>)> = (start..end).map(|i| (i, entry_bytes(i))).collect();
            assert_eq!(read, expected, "range {start}..{end}");
        }
        drop(store);
        let reopened = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.size(),
            total,
            "the size is found from the last chunk"
        );
    }

    #[test]
    fn seq_blocks_answer_every_seq_they_hold_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &[1, 40, 3]);
        for i in 0..44u64 {
            assert_eq!(
                store.seq_index("p", i * 2 + 1).unwrap(),
                Some(i),
                "seq {}",
                i * 2 + 1
            );
            assert_eq!(store.seq_index("p", i * 2 + 2).unwrap(), None, "a gap");
        }
        assert_eq!(store.seq_index("p", 0).unwrap(), None);
        assert_eq!(store.seq_index("other", 1).unwrap(), None);
        assert_eq!(store.seq_index("p\u{1}", 1).unwrap(), None);
        assert_eq!(store.last_block_seq("p").unwrap(), Some(43 * 2 + 1));
        assert_eq!(store.last_block_seq("q").unwrap(), None);
    }

    #[test]
    fn level_0_tiles_are_computed_from_the_entries_and_higher_levels_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let entries: Vec<Vec<u8>> = (0..300).map(entry_bytes).collect();
        let leaves: Vec<crate::merkle::Hash> = entries
            .iter()
            .map(|e| crate::merkle::leaf_hash(e))
            .collect();
        let tiles = crate::merkle::TileAppender::new().append(&leaves);
        assert!(tiles.iter().any(|t| t.tile_level == 0) && tiles.iter().any(|t| t.tile_level == 1));
        store
            .append(AppendBatch {
                first_index: 0,
                entries,
                tiles: tiles.clone(),
                ..AppendBatch::default()
            })
            .unwrap();
        for tile in &tiles {
            assert_eq!(
                store
                    .tile(tile.tile_level, tile.tile_index)
                    .unwrap()
                    .as_ref(),
                Some(&tile.hashes),
                "tile {}/{}",
                tile.tile_level,
                tile.tile_index
            );
        }
        assert_eq!(store.tile(0, 2).unwrap(), None, "beyond the entries");
        let db = store.db().unwrap();
        assert!(
            db.get(tile_key(0, 0)).unwrap().is_none(),
            "level 0 is not stored"
        );
        assert!(db.get(tile_key(1, 0)).unwrap().is_some(), "level 1 is");
    }

    #[test]
    fn a_damaged_chunk_is_reported_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        drop(store_with(dir.path(), &[10]));
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert(index_key(CHUNK, 10), vec![0xff; 5]).unwrap();
            db.flush().unwrap();
        }
        let Err(StoreError::Corrupt(reason)) = SledStore::open(dir.path()) else {
            panic!("a chunk that does not decode must be reported");
        };
        assert!(reason.contains("entry chunk"), "{reason}");
    }

    #[test]
    fn a_snapshot_a_crash_left_unfinished_does_not_stop_the_store_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        drop(store_with(dir.path(), &[10, 20]));
        // What a SIGKILL in the middle of sled's snapshot write leaves: a torn file under
        // the name sled renames from once the write is complete.
        let torn = dir.path().join("snap.FFFFFFFFFFFFFFFF.generating");
        std::fs::write(&torn, [7u8; 100]).unwrap();
        // The store just dropped may hold sled's file lock for a moment (see `open_db`).
        let started = std::time::Instant::now();
        let plain = loop {
            let opened = sled::Config::new().path(dir.path()).open();
            match &opened {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && started.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => break opened,
            }
        };
        assert!(
            matches!(plain, Err(sled::Error::Corruption { .. })),
            "sled alone refuses this directory (the bug worked around): {plain:?}"
        );
        let store = SledStore::open(dir.path()).expect("opens after removing the torn snapshot");
        assert!(!torn.exists());
        assert_eq!(store.size(), 30);
        assert_eq!(store.entry(29).unwrap(), Some(entry_bytes(29)));
    }

    #[test]
    fn a_store_reopens_at_once_after_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..20 {
            let store = SledStore::open(dir.path()).unwrap();
            drop(store);
        }
    }

    #[test]
    fn a_store_held_open_elsewhere_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let _held = SledStore::open(dir.path()).unwrap();
        let started = std::time::Instant::now();
        let Err(StoreError::Failed(reason)) = SledStore::open(dir.path()) else {
            panic!("a second open of a held store must fail");
        };
        assert!(
            reason.contains("another uptime-ledger using this data directory"),
            "{reason}"
        );
        assert!(
            started.elapsed() >= LOCK_WAIT,
            "it waited for the lock first"
        );
    }
}
