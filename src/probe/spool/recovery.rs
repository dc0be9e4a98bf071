//! Opening a spool: taking the directory's lock, reading every segment back and checking
//! that the seqs are contiguous, and finding how far settlement got (the `delivered` mark,
//! the last dead letter).
//!
//! A crash can only leave a torn record at the end of the newest segment; opening the spool
//! cuts it off. That record's seq was never handed out (its append had not returned), so
//! no one has seen it and it is allocated again.

use std::fs::{self, OpenOptions};
use std::path::Path;

use super::dead_letter::open_dead_letter;
use super::segment::{create_segment, list_segments, read_segment};
use super::{corrupt, io_error, Spool, SpoolConfig, SpoolError, DELIVERED_FILE, LOCK_FILE};

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
