//! The spool: every signed observation, on local disk from the moment its seq is allocated
//! until the ledger has settled it (acknowledged it, or rejected it into the dead letters).
//!
//! A directory of append-only files, written with `write` + `fdatasync` and nothing else:
//!
//! | file | what |
//! |---|---|
//! | `lock` | held (`flock`) by the one agent using the directory |
//! | `segment-<first seq>.log` | records, one per observation, in seq order; a new segment starts past `segment_bytes` |
//! | `delivered` | the highest settled seq, as decimal text (replaced by rename) |
//! | `dead-letter.jsonl` | rejected observations, one JSON object a line, with the reason |
//!
//! # Layout
//!
//! - this file: [`Spool`]: appending (a seq allocated and made durable in one step) and
//!   settling in seq order;
//! - `segment`: the segment files and the format of their records;
//! - `recovery`: [`Spool::open`]: locking the directory, reading the segments back, cutting
//!   off a torn record, checking the invariants, finding how far settlement got;
//! - `dead_letter`: the dead-letter file, one JSON line per rejected observation.

mod dead_letter;
mod recovery;
mod segment;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::domain::RejectReason;
use dead_letter::dead_letter_line;
use segment::{create_segment, encode_record, Segment};

/// Default size at which a new segment file is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024;

const LOCK_FILE: &str = "lock";
const DELIVERED_FILE: &str = "delivered";
const DELIVERED_TEMP_FILE: &str = "delivered.tmp";
const DEAD_LETTER_FILE: &str = "dead-letter.jsonl";

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Undelivered observations kept; when this many are pending, `append` refuses new ones.
    pub max_pending: usize,
    pub segment_bytes: u64,
}

/// One signed observation as spooled: exactly the bytes that will be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledObservation {
    pub seq: u64,
    /// The encoded `Observation`, exactly as signed.
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

/// What `append` did with a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Durable under this seq.
    Spooled { seq: u64 },
    /// The spool holds `max_pending` undelivered observations: nothing was signed or
    /// written and no seq was allocated.
    Full,
}

/// The ledger's verdict on one delivered observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// ACCEPTED or DUPLICATE: it is in the log.
    Delivered,
    /// REJECTED: it goes to the dead letters and is never sent again. `reason` is `None`
    /// for a reason this probe does not know (from a newer ledger).
    Rejected {
        reason: Option<RejectReason>,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool directory {0} is in use by another probe agent")]
    Locked(PathBuf),
    #[error("spool I/O failed on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the spool in {dir} is corrupt: {detail}")]
    Corrupt { dir: PathBuf, detail: String },
    #[error("the spool stopped writing after an earlier failure: {0}")]
    Poisoned(String),
}

/// The probe's durable queue of signed observations.
///
/// Invariants (checked on open, kept by every method, asserted where they could break):
///
/// 1. **Seqs are contiguous.** The records of all segments, in order, carry the seqs
///    `first, first + 1, …, next_seq - 1`, and each segment's name is its first seq.
/// 2. **A seq is allocated and made durable in one step.** `append` hands out `next_seq`
///    only after the record carrying it has been written and `fdatasync`ed; if the write or
///    the sync fails, the spool is poisoned and never writes again, so a seq is never
///    reused and never skipped.
/// 3. **Settlement is in seq order.** `pending` holds exactly the durable records with
///    `seq > settled_through`, oldest first; only its front can be settled, and
///    `settled_through` only grows.
/// 4. **Nothing is lost on settlement.** A rejected observation is in the `fdatasync`ed
///    dead-letter file before `settled_through` passes it; a segment is deleted only when
///    every record in it is settled, and the newest segment is never deleted (it fixes
///    `next_seq`).
/// 5. **One writer.** The directory's lock file is held for the spool's lifetime.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_pending: usize,
    segment_bytes: u64,
    /// Held for its `flock`, released when the spool is dropped (or the process dies).
    _lock: File,
    /// Segments oldest first; the last is the one being appended to.
    segments: VecDeque<Segment>,
    /// The last segment, open for appending.
    active: File,
    active_bytes: u64,
    next_seq: u64,
    settled_through: u64,
    pending: VecDeque<SpooledObservation>,
    dead_letter: File,
    /// Why writing stopped, once a write or sync has failed.
    poisoned: Option<String>,
}

impl Spool {
    /// Allocates the next seq, has `sign` build the signed observation carrying it, and
    /// makes it durable — one step (invariant 2). When the spool is full nothing happens
    /// and `Full` is returned. Errors are fatal: the spool is poisoned.
    pub fn append(
        &mut self,
        sign: impl FnOnce(u64) -> SpooledObservation,
    ) -> Result<Appended, SpoolError> {
        if let Some(why) = &self.poisoned {
            return Err(SpoolError::Poisoned(why.clone()));
        }
        if self.pending.len() >= self.max_pending {
            return Ok(Appended::Full);
        }
        if self.active_bytes >= self.segment_bytes {
            self.rotate()?;
        }
        let seq = self.next_seq;
        let observation = sign(seq);
        assert_eq!(
            observation.seq, seq,
            "the signed observation must carry the allocated seq"
        );
        let record = encode_record(&observation);
        let path = self.active_path().to_owned();
        let written = self
            .active
            .write_all(&record)
            .and_then(|()| self.active.sync_data());
        if let Err(source) = written {
            self.poisoned = Some(format!(
                "appending seq {seq} to {} failed: {source}",
                path.display()
            ));
            return Err(SpoolError::Io { path, source });
        }
        self.active_bytes += record.len() as u64;
        self.next_seq += 1;
        self.pending.push_back(observation);
        Ok(Appended::Spooled { seq })
    }

    /// The oldest pending observations, at most `limit`, in seq order.
    pub fn oldest_pending(&self, limit: usize) -> Vec<SpooledObservation> {
        self.pending.iter().take(limit).cloned().collect()
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The seq the next `append` will allocate.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Settles the oldest pending observations: `settlements[i]` is for the `i`-th oldest,
    /// and names its seq (invariant 3; a mismatch is a bug and panics). Rejected ones are
    /// written to the dead-letter file and synced before the `delivered` mark moves past
    /// them (invariant 4).
    pub fn settle(&mut self, settlements: &[(u64, Settlement)]) -> Result<(), SpoolError> {
        if let Some(why) = &self.poisoned {
            return Err(SpoolError::Poisoned(why.clone()));
        }
        let Some((last_seq, _)) = settlements.last() else {
            return Ok(());
        };
        for ((seq, _), pending) in settlements.iter().zip(self.pending.iter()) {
            assert_eq!(
                *seq, pending.seq,
                "settlements must name the oldest pending seqs, in order"
            );
        }
        assert!(
            settlements.len() <= self.pending.len(),
            "settled more observations than are pending"
        );

        let mut lines = Vec::new();
        for ((_, settlement), observation) in settlements.iter().zip(self.pending.iter()) {
            if let Settlement::Rejected { reason, message } = settlement {
                lines.extend_from_slice(&dead_letter_line(observation, *reason, message));
            }
        }
        if !lines.is_empty() {
            let path = self.dir.join(DEAD_LETTER_FILE);
            let written = self
                .dead_letter
                .write_all(&lines)
                .and_then(|()| self.dead_letter.sync_data());
            if let Err(source) = written {
                self.poisoned = Some(format!(
                    "writing dead letters to {} failed: {source}",
                    path.display()
                ));
                return Err(SpoolError::Io { path, source });
            }
        }
        self.write_delivered(*last_seq)?;
        self.settled_through = *last_seq;
        self.pending.drain(..settlements.len());
        self.delete_settled_segments();
        Ok(())
    }

    fn active_path(&self) -> &Path {
        &self
            .segments
            .back()
            .expect("a spool always has a segment")
            .path
    }

    /// Starts a new segment at `next_seq`.
    fn rotate(&mut self) -> Result<(), SpoolError> {
        let created = create_segment(&self.dir, self.next_seq).and_then(|segment| {
            let active = OpenOptions::new()
                .append(true)
                .open(&segment.path)
                .map_err(io_error(&segment.path))?;
            Ok((segment, active))
        });
        let (segment, active) = match created {
            Ok(created) => created,
            Err(error) => {
                self.poisoned = Some(error.to_string());
                return Err(error);
            }
        };
        self.segments.push_back(segment);
        self.active = active;
        self.active_bytes = 0;
        self.delete_settled_segments();
        Ok(())
    }

    /// Records `seq` as the highest settled one: written to a temporary file, synced, then
    /// renamed over `delivered`. If the rename is lost in a crash the older mark is read
    /// back, and those observations are delivered again: the ledger answers DUPLICATE.
    fn write_delivered(&mut self, seq: u64) -> Result<(), SpoolError> {
        let temp = self.dir.join(DELIVERED_TEMP_FILE);
        let written = File::create(&temp)
            .and_then(|mut file| {
                file.write_all(format!("{seq}\n").as_bytes())?;
                file.sync_data()
            })
            .and_then(|()| fs::rename(&temp, self.dir.join(DELIVERED_FILE)));
        written.map_err(|source| {
            self.poisoned = Some(format!(
                "recording delivery up to seq {seq} failed: {source}"
            ));
            SpoolError::Io { path: temp, source }
        })
    }

    /// Deletes every segment whose records are all settled, except the newest.
    fn delete_settled_segments(&mut self) {
        while self.segments.len() > 1 && self.segments[1].first_seq <= self.settled_through + 1 {
            let segment = self.segments.pop_front().expect("checked above");
            if let Err(error) = fs::remove_file(&segment.path) {
                // Harmless: the records in it are settled and are skipped on the next open.
                tracing::warn!(segment = %segment.path.display(), %error, "cannot delete a delivered spool segment");
            }
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

fn corrupt(dir: &Path, detail: String) -> SpoolError {
    SpoolError::Corrupt {
        dir: dir.to_owned(),
        detail,
    }
}
