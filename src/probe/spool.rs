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
//! A record is `length: u32 LE | checksum: SHA-256(payload)[..8] | payload`, where the
//! payload is `seq: u64 LE | signature: 64 bytes | body` and `length` is the payload's.
//! A crash can only leave a torn record at the end of the newest segment; opening the spool
//! cuts it off. That record's seq was never handed out (its append had not returned), so
//! no one has seen it and it is allocated again.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{RejectReason, Status};
use crate::entry;

/// Default size at which a new segment file is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024;

const LOCK_FILE: &str = "lock";
const DELIVERED_FILE: &str = "delivered";
const DELIVERED_TEMP_FILE: &str = "delivered.tmp";
const DEAD_LETTER_FILE: &str = "dead-letter.jsonl";
const HEADER_BYTES: usize = 4 + 8;
/// Bytes of a payload before the body: seq and signature.
const PAYLOAD_PREFIX_BYTES: usize = 8 + 64;
/// A record claiming more than this is torn or corrupt (bodies are a few hundred bytes).
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// How much of the dead-letter file's end is read on open to find its last seq.
const DEAD_LETTER_TAIL_BYTES: u64 = 64 * 1024;

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

#[derive(Debug, Clone)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
}

/// One line of the dead-letter file: enough for a person to see what was refused and why,
/// and the exact signed bytes to resubmit if the cause is fixed.
#[derive(Debug, Serialize)]
struct DeadLetter<'a> {
    seq: u64,
    reason: &'static str,
    message: &'a str,
    service_id: Option<String>,
    observed_at: Option<String>,
    status: Option<&'static str>,
    detail: Option<String>,
    body_base64: String,
    signature_base64: String,
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`. A new spool's first seq is
    /// `first_seq_if_new`; an existing one continues where it stopped.
    pub fn open(config: SpoolConfig, first_seq_if_new: u64) -> Result<Spool, SpoolError> {
        assert!(
            config.max_pending > 0,
            "a spool must hold at least one observation"
        );
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir)),
            Err(fs::TryLockError::Error(source)) => {
                return Err(SpoolError::Io {
                    path: lock_path,
                    source,
                })
            }
        }

        let mut segments = list_segments(&dir)?;
        let mut records = Vec::new();
        let mut active_bytes = 0;
        for (position, segment) in segments.iter().enumerate() {
            let (segment_records, valid_bytes, file_bytes) = read_segment(&segment.path)?;
            let newest = position + 1 == segments.len();
            if valid_bytes < file_bytes {
                if !newest {
                    return Err(corrupt(
                        &dir,
                        format!(
                            "{} has an unreadable record at byte {valid_bytes}, and it is not the newest segment",
                            segment.path.display()
                        ),
                    ));
                }
                // A crash during an append: the record's seq was never handed out.
                tracing::warn!(
                    segment = %segment.path.display(),
                    cut_bytes = file_bytes - valid_bytes,
                    "cutting a torn record off the end of the spool (an append interrupted by a crash)"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&segment.path)
                    .map_err(io_error(&segment.path))?;
                file.set_len(valid_bytes).map_err(io_error(&segment.path))?;
                file.sync_all().map_err(io_error(&segment.path))?;
            }
            let mut expected = segment.first_seq;
            for record in &segment_records {
                if record.seq != expected {
                    return Err(corrupt(
                        &dir,
                        format!(
                            "{} holds seq {} where seq {expected} belongs",
                            segment.path.display(),
                            record.seq
                        ),
                    ));
                }
                expected += 1;
            }
            if let Some(next) = segments.get(position + 1) {
                if next.first_seq != expected {
                    return Err(corrupt(
                        &dir,
                        format!(
                            "{} ends before seq {expected} but the next segment starts at seq {}",
                            segment.path.display(),
                            next.first_seq
                        ),
                    ));
                }
            }
            if newest {
                active_bytes = valid_bytes;
            }
            records.extend(segment_records);
        }

        let next_seq = match (segments.back(), records.last()) {
            (_, Some(last)) => last.seq + 1,
            (Some(segment), None) => segment.first_seq,
            (None, None) => {
                let segment = create_segment(&dir, first_seq_if_new)?;
                segments.push_back(segment);
                first_seq_if_new
            }
        };
        let first_seq = segments.front().map_or(next_seq, |s| s.first_seq);
        let delivered = read_delivered(&dir)?;
        let (dead_letter, dead_letter_last_seq) = open_dead_letter(&dir)?;
        let settled_through = [
            Some(first_seq.saturating_sub(1)),
            delivered,
            dead_letter_last_seq,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        if settled_through >= next_seq {
            return Err(corrupt(
                &dir,
                format!(
                    "seq {settled_through} is recorded as settled but the spool's last seq is {}",
                    next_seq.saturating_sub(1)
                ),
            ));
        }
        let active_path = segments
            .back()
            .expect("a spool always has a segment")
            .path
            .clone();
        let active = OpenOptions::new()
            .append(true)
            .open(&active_path)
            .map_err(io_error(&active_path))?;
        let pending = records
            .into_iter()
            .filter(|record| record.seq > settled_through)
            .collect();
        let mut spool = Spool {
            dir,
            max_pending: config.max_pending,
            segment_bytes: config.segment_bytes,
            _lock: lock,
            segments,
            active,
            active_bytes,
            next_seq,
            settled_through,
            pending,
            dead_letter,
            poisoned: None,
        };
        spool.delete_settled_segments();
        Ok(spool)
    }

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
                let mut line = serde_json::to_vec(&dead_letter(observation, *reason, message))
                    .expect("a dead letter always serializes");
                line.push(b'\n');
                lines.extend_from_slice(&line);
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

fn segment_name(first_seq: u64) -> String {
    format!("segment-{first_seq:020}.log")
}

fn list_segments(dir: &Path) -> Result<VecDeque<Segment>, SpoolError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(first_seq) = name
            .strip_prefix("segment-")
            .and_then(|rest| rest.strip_suffix(".log"))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push(Segment {
            first_seq,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|segment| segment.first_seq);
    Ok(segments.into())
}

/// Creates an empty segment and syncs the directory, so that the segment (and every record
/// later synced into it) survives a crash.
fn create_segment(dir: &Path, first_seq: u64) -> Result<Segment, SpoolError> {
    let path = dir.join(segment_name(first_seq));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error(&path))?;
    file.sync_all().map_err(io_error(&path))?;
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io_error(dir))?;
    Ok(Segment { first_seq, path })
}

fn encode_record(observation: &SpooledObservation) -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_PREFIX_BYTES + observation.body.len());
    payload.extend_from_slice(&observation.seq.to_le_bytes());
    payload.extend_from_slice(&observation.signature);
    payload.extend_from_slice(&observation.body);
    assert!(
        payload.len() <= MAX_PAYLOAD_BYTES,
        "an observation body is a few hundred bytes"
    );
    let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&checksum(&payload));
    record.extend_from_slice(&payload);
    record
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    Sha256::digest(payload)[..8]
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// The valid records at the start of a segment, the length they cover, and the file's
/// length. Reading stops at the first record that is short or fails its checksum.
fn read_segment(path: &Path) -> Result<(Vec<SpooledObservation>, u64, u64), SpoolError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let mut records = Vec::new();
    let mut offset = 0;
    while let Some(header) = bytes.get(offset..offset + HEADER_BYTES) {
        let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        if !(PAYLOAD_PREFIX_BYTES..=MAX_PAYLOAD_BYTES).contains(&length) {
            break;
        }
        let Some(payload) = bytes.get(offset + HEADER_BYTES..offset + HEADER_BYTES + length) else {
            break;
        };
        if checksum(payload) != header[4..] {
            break;
        }
        records.push(SpooledObservation {
            seq: u64::from_le_bytes(payload[..8].try_into().expect("8 bytes")),
            signature: payload[8..PAYLOAD_PREFIX_BYTES]
                .try_into()
                .expect("64 bytes"),
            body: payload[PAYLOAD_PREFIX_BYTES..].to_vec(),
        });
        offset += HEADER_BYTES + length;
    }
    Ok((records, offset as u64, bytes.len() as u64))
}

fn read_delivered(dir: &Path) -> Result<Option<u64>, SpoolError> {
    let path = dir.join(DELIVERED_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse() {
            Ok(seq) => Ok(Some(seq)),
            Err(_) => {
                // Only a damaged file gets here; resending is safe (the ledger answers
                // DUPLICATE for what it has), losing observations is not.
                tracing::warn!(path = %path.display(), "the delivered mark is unreadable; delivering every spooled observation again");
                Ok(None)
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SpoolError::Io { path, source }),
    }
}

/// Opens the dead-letter file for appending, cuts a torn last line, and returns the seq of
/// its last letter: settlement is in seq order, so every seq up to it is settled even if
/// the `delivered` mark did not get that far before a crash.
fn open_dead_letter(dir: &Path) -> Result<(File, Option<u64>), SpoolError> {
    let path = dir.join(DEAD_LETTER_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(io_error(&path))?;
    let length = file.metadata().map_err(io_error(&path))?.len();
    let tail_start = length.saturating_sub(DEAD_LETTER_TAIL_BYTES);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(tail_start))
        .and_then(|_| file.read_to_end(&mut tail))
        .map_err(io_error(&path))?;
    let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < tail.len() && (tail_start == 0 || complete > 0) {
        file.set_len(tail_start + complete as u64)
            .and_then(|()| file.sync_all())
            .map_err(io_error(&path))?;
    }
    let last_seq = tail[..complete]
        .split(|&b| b == b'\n')
        .rfind(|line| !line.is_empty())
        .and_then(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .and_then(|letter| letter.get("seq").and_then(serde_json::Value::as_u64));
    Ok((file, last_seq))
}

fn dead_letter<'a>(
    observation: &SpooledObservation,
    reason: Option<RejectReason>,
    message: &'a str,
) -> DeadLetter<'a> {
    let decoded = entry::decode_observation(&observation.body).ok();
    let base64 = base64::engine::general_purpose::STANDARD;
    DeadLetter {
        seq: observation.seq,
        reason: reason.map_or("unknown", RejectReason::as_str),
        message,
        service_id: decoded.as_ref().map(|o| o.service_id.to_string()),
        observed_at: decoded.as_ref().and_then(|o| {
            u64::try_from(o.observed_at).ok().map(|millis| {
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis),
                )
                .to_string()
            })
        }),
        status: decoded.as_ref().map(|o| match o.status {
            Status::Up => "UP",
            Status::Down => "DOWN",
        }),
        detail: decoded.map(|o| o.detail),
        body_base64: base64.encode(&observation.body),
        signature_base64: base64.encode(observation.signature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, max_pending: usize, segment_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_owned(),
            max_pending,
            segment_bytes,
        }
    }

    fn observation(seq: u64) -> SpooledObservation {
        SpooledObservation {
            seq,
            body: format!("body of {seq}").into_bytes(),
            signature: [seq as u8; 64],
        }
    }

    fn append(spool: &mut Spool) -> u64 {
        match spool.append(observation).unwrap() {
            Appended::Spooled { seq } => seq,
            Appended::Full => panic!("the spool is full"),
        }
    }

    fn pending_seqs(spool: &Spool) -> Vec<u64> {
        spool
            .oldest_pending(usize::MAX)
            .iter()
            .map(|o| o.seq)
            .collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect();
        files.sort();
        files
    }

    #[test]
    fn seqs_start_where_asked_continue_across_reopen_and_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 500).unwrap();
        assert_eq!((append(&mut spool), append(&mut spool)), (500, 501));
        drop(spool);
        // The first-seq argument only applies to a new spool.
        let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 9_000).unwrap();
        assert_eq!(pending_seqs(&spool), vec![500, 501]);
        assert_eq!(spool.oldest_pending(1), vec![observation(500)]);
        assert_eq!(append(&mut spool), 502);
        // Settled all: the next seq still follows on after a reopen.
        spool
            .settle(&[
                (500, Settlement::Delivered),
                (501, Settlement::Delivered),
                (502, Settlement::Delivered),
            ])
            .unwrap();
        drop(spool);
        let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 9_000).unwrap();
        assert_eq!(spool.pending_count(), 0);
        assert_eq!(append(&mut spool), 503);
    }

    #[test]
    fn a_second_agent_cannot_open_the_same_spool() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Spool::open(config(dir.path(), 10, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        let second = Spool::open(config(dir.path(), 10, DEFAULT_SEGMENT_BYTES), 1);
        assert!(matches!(second, Err(SpoolError::Locked(_))), "{second:?}");
    }

    #[test]
    fn a_full_spool_keeps_the_oldest_and_allocates_no_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 2, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        append(&mut spool);
        append(&mut spool);
        let mut signed = false;
        let full = spool
            .append(|seq| {
                signed = true;
                observation(seq)
            })
            .unwrap();
        assert_eq!(full, Appended::Full);
        assert!(!signed, "nothing is signed for a dropped result");
        assert_eq!(pending_seqs(&spool), vec![1, 2]);
        spool.settle(&[(1, Settlement::Delivered)]).unwrap();
        assert_eq!(
            append(&mut spool),
            3,
            "no seq was used by the dropped result"
        );
    }

    #[test]
    fn a_torn_record_at_the_end_is_cut_off_and_its_seq_allocated_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        for _ in 0..3 {
            append(&mut spool);
        }
        drop(spool);
        let segment = segment_files(dir.path()).pop().unwrap();
        let intact = fs::metadata(&segment).unwrap().len();
        // Every way an append can be torn: a partial header, a partial payload, and a
        // complete-looking record whose bytes did not all reach the disk.
        let full_record = encode_record(&observation(4));
        let mut garbled = full_record.clone();
        let last = garbled.len() - 1;
        garbled[last] ^= 0xff;
        for torn in [&full_record[..5], &full_record[..30], &garbled[..]] {
            let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
            file.write_all(torn).unwrap();
            drop(file);
            let spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
            assert_eq!(fs::metadata(&segment).unwrap().len(), intact);
            assert_eq!(pending_seqs(&spool), vec![1, 2, 3]);
            assert_eq!(spool.next_seq(), 4);
            drop(spool);
        }
        let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        assert_eq!(append(&mut spool), 4);
    }

    #[test]
    fn damage_before_the_newest_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny segments: one record each.
        let mut spool = Spool::open(config(dir.path(), 100, 1), 1).unwrap();
        for _ in 0..3 {
            append(&mut spool);
        }
        drop(spool);
        let segments = segment_files(dir.path());
        assert_eq!(segments.len(), 3);
        let mut bytes = fs::read(&segments[0]).unwrap();
        bytes[HEADER_BYTES + 2] ^= 0xff;
        fs::write(&segments[0], bytes).unwrap();
        let opened = Spool::open(config(dir.path(), 100, 1), 1);
        assert!(
            matches!(opened, Err(SpoolError::Corrupt { .. })),
            "{opened:?}"
        );
    }

    #[test]
    fn a_missing_segment_is_a_gap_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 100, 1), 1).unwrap();
        for _ in 0..3 {
            append(&mut spool);
        }
        drop(spool);
        fs::remove_file(&segment_files(dir.path())[1]).unwrap();
        let opened = Spool::open(config(dir.path(), 100, 1), 1);
        assert!(
            matches!(opened, Err(SpoolError::Corrupt { .. })),
            "{opened:?}"
        );
    }

    #[test]
    fn settled_segments_are_deleted_but_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 100, 1), 1).unwrap();
        for _ in 0..4 {
            append(&mut spool);
        }
        assert_eq!(segment_files(dir.path()).len(), 4);
        spool
            .settle(&[(1, Settlement::Delivered), (2, Settlement::Delivered)])
            .unwrap();
        assert_eq!(segment_files(dir.path()).len(), 2);
        spool
            .settle(&[(3, Settlement::Delivered), (4, Settlement::Delivered)])
            .unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1);
        drop(spool);
        let mut spool = Spool::open(config(dir.path(), 100, 1), 1).unwrap();
        assert_eq!(spool.pending_count(), 0);
        assert_eq!(append(&mut spool), 5);
    }

    #[test]
    fn rejected_observations_go_to_the_dead_letters_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        for _ in 0..3 {
            append(&mut spool);
        }
        spool
            .settle(&[
                (1, Settlement::Delivered),
                (
                    2,
                    Settlement::Rejected {
                        reason: Some(RejectReason::TooLate),
                        message: "observed 2 h before it was received".into(),
                    },
                ),
            ])
            .unwrap();
        assert_eq!(pending_seqs(&spool), vec![3]);
        let letters = fs::read_to_string(dir.path().join(DEAD_LETTER_FILE)).unwrap();
        let lines: Vec<_> = letters.lines().collect();
        assert_eq!(lines.len(), 1, "{letters}");
        let letter: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(letter["seq"], 2);
        assert_eq!(letter["reason"], "too_late");
        assert_eq!(letter["message"], "observed 2 h before it was received");
        let body = base64::engine::general_purpose::STANDARD
            .decode(letter["body_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(body, b"body of 2");
        drop(spool);

        // A crash after the dead letter was synced but before the delivered mark moved:
        // the letter itself says seq 2 (and so 1) is settled; nothing is sent twice.
        fs::write(dir.path().join(DELIVERED_FILE), "0\n").unwrap();
        let spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        assert_eq!(pending_seqs(&spool), vec![3]);
    }

    #[test]
    fn a_torn_dead_letter_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        append(&mut spool);
        append(&mut spool);
        let rejected = Settlement::Rejected {
            reason: Some(RejectReason::UnknownService),
            message: "no such service".into(),
        };
        spool.settle(&[(1, rejected)]).unwrap();
        drop(spool);
        let path = dir.path().join(DEAD_LETTER_FILE);
        let whole = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("{whole}{{\"seq\":2,\"rea")).unwrap();
        let spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), whole);
        assert_eq!(pending_seqs(&spool), vec![2]);
    }

    #[test]
    #[should_panic(expected = "oldest pending")]
    fn settling_out_of_order_is_a_bug() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        append(&mut spool);
        append(&mut spool);
        let _ = spool.settle(&[(2, Settlement::Delivered)]);
    }
}
