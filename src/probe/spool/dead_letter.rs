//! The dead letters, `dead-letter.jsonl`: each rejected observation as one JSON line, with
//! the reason, what the observation said and its exact signed bytes for a resubmission.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use base64::Engine as _;
use serde::Serialize;

use super::{io_error, SpoolError, SpooledObservation, DEAD_LETTER_FILE};
use crate::domain::{RejectReason, Status};
use crate::entry;

/// How much of the dead-letter file's end is read on open to find its last seq.
const DEAD_LETTER_TAIL_BYTES: u64 = 64 * 1024;

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

/// The dead-letter line of a rejected observation, newline included.
pub(super) fn dead_letter_line(
    observation: &SpooledObservation,
    reason: Option<RejectReason>,
    message: &str,
) -> Vec<u8> {
    let mut line = serde_json::to_vec(&dead_letter(observation, reason, message))
        .expect("a dead letter always serializes");
    line.push(b'\n');
    line
}

/// Opens the dead-letter file for appending, cuts a torn last line, and returns the seq of
/// its last letter: settlement is in seq order, so every seq up to it is settled even if
/// the `delivered` mark did not get that far before a crash.
pub(super) fn open_dead_letter(dir: &Path) -> Result<(File, Option<u64>), SpoolError> {
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
