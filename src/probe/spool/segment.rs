//! The spool's segment files, `segment-<first seq>.log`, and their records.
//!
//! A record is `length: u32 LE | checksum: SHA-256(payload)[..8] | payload`, where the
//! payload is `seq: u64 LE | signature: 64 bytes | body` and `length` is the payload's.
//! Reading a segment stops at the first record that is short or fails its checksum.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{io_error, SpoolError, SpooledObservation};

/// Bytes of a record before its payload: length and checksum.
pub(super) const HEADER_BYTES: usize = 4 + 8;
/// Bytes of a payload before the body: seq and signature.
const PAYLOAD_PREFIX_BYTES: usize = 8 + 64;
/// A record claiming more than this is torn or corrupt (bodies are a few hundred bytes).
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// One segment file: its records start at `first_seq`.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub(super) first_seq: u64,
    pub(super) path: PathBuf,
}

fn segment_name(first_seq: u64) -> String {
    format!("segment-{first_seq:020}.log")
}

pub(super) fn list_segments(dir: &Path) -> Result<VecDeque<Segment>, SpoolError> {
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
pub(super) fn create_segment(dir: &Path, first_seq: u64) -> Result<Segment, SpoolError> {
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

pub(super) fn encode_record(observation: &SpooledObservation) -> Vec<u8> {
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
pub(super) fn read_segment(path: &Path) -> Result<(Vec<SpooledObservation>, u64, u64), SpoolError> {
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
