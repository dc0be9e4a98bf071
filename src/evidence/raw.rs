//! The raw export (docs/evidence.md): JSON Lines, a header line carrying the signed
//! checkpoint and the key it was verified against, then one line per entry `[0, tree_size)`
//! with its exact stored bytes. [`audit_export`] audits one with no ledger, feeding the
//! entries to the same [`PrefixAudit`] as `audit` online and hashing them to the
//! checkpoint's root.

use std::io::BufRead;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditError, AuditedPrefix, PrefixAudit, AUDIT_CHUNK};
use crate::checkpoint::{open_checkpoint, Checkpoint, CheckpointError, NoteVerifier};
use crate::merkle::{self, Hash, TileAppender};

/// The `format` of the header line this version writes and reads.
pub const RAW_EXPORT_FORMAT: &str = "uptime-ledger-raw-export/1";

/// Line 1 of a raw export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawHeader {
    pub format: String,
    /// The key the checkpoint was verified against when the export was written.
    pub verifier_key: String,
    /// The C2SP signed note whose tree the entries are.
    pub checkpoint: String,
}

/// Every later line: one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawEntry {
    pub index: u64,
    /// The stored bytes, standard base64 with padding.
    pub entry: String,
}

/// The header line (without its newline).
pub fn header_line(verifier: &NoteVerifier, note: &str) -> String {
    let header = RawHeader {
        format: RAW_EXPORT_FORMAT.to_owned(),
        verifier_key: verifier.to_string(),
        checkpoint: note.to_owned(),
    };
    serde_json::to_string(&header).expect("a header serializes")
}

/// An entry's line (without its newline).
pub fn entry_line(index: u64, bytes: &[u8]) -> String {
    let entry = RawEntry {
        index,
        entry: BASE64.encode(bytes),
    };
    serde_json::to_string(&entry).expect("an entry serializes")
}

/// Why an export does not pass the audit.
#[derive(Debug, thiserror::Error)]
pub enum ExportAuditError {
    #[error("cannot read the export: {0}")]
    Read(String),
    #[error("the export is empty; its first line is the header with the checkpoint")]
    Empty,
    #[error("line 1 is not a raw export header: {0}")]
    Header(String),
    #[error("line 1 says format {0:?}; this version reads {RAW_EXPORT_FORMAT}")]
    Format(String),
    #[error("the export was verified against key {exported}, not the pinned key {pinned}; pin the key you obtained from the ledger's operator, not the one in the file")]
    KeyNotPinned { exported: String, pinned: String },
    #[error("the export's checkpoint is not signed by the pinned key: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("line {line}: {detail}")]
    Line { line: u64, detail: String },
    #[error("entry {index}: {detail}")]
    Entry { index: u64, detail: String },
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("the {entries} entries of the export hash to root {computed}, but the checkpoint signs root {signed} at tree size {tree_size}: an entry was changed, removed or reordered")]
    RootMismatch {
        tree_size: u64,
        entries: u64,
        computed: String,
        signed: String,
    },
    #[error("{audit}; and {root}")]
    Both {
        audit: AuditError,
        root: Box<ExportAuditError>,
    },
}

/// An export that passed the audit.
#[derive(Debug)]
pub struct AuditedExport {
    pub checkpoint: Checkpoint,
    pub note: String,
    pub audited: AuditedPrefix,
}

/// Audits a raw export with `verifier` as the pinned key: the header's checkpoint must be
/// signed by it, the entries must be `0, 1, …, tree_size - 1` in order, hash to the signed
/// root and pass the audit of [`PrefixAudit`] (ingest rules at each position, every
/// signature, the projection). When the entries do not hash to the root, the audit still
/// runs to name the first bad entry. Never panics on any input.
pub fn audit_export<R: BufRead>(
    reader: R,
    verifier: &NoteVerifier,
) -> Result<AuditedExport, ExportAuditError> {
    let mut lines = reader.lines();
    let header = lines
        .next()
        .ok_or(ExportAuditError::Empty)?
        .map_err(|e| ExportAuditError::Read(e.to_string()))?;
    let header: RawHeader =
        serde_json::from_str(&header).map_err(|e| ExportAuditError::Header(e.to_string()))?;
    if header.format != RAW_EXPORT_FORMAT {
        return Err(ExportAuditError::Format(header.format));
    }
    let pinned = verifier.to_string();
    if header.verifier_key != pinned {
        return Err(ExportAuditError::KeyNotPinned {
            exported: header.verifier_key,
            pinned,
        });
    }
    let checkpoint = open_checkpoint(&header.checkpoint, verifier)?;

    let mut audit = Ok(PrefixAudit::new(verifier));
    let mut appender = TileAppender::new();
    let mut leaves: Vec<Hash> = Vec::new();
    let mut chunk: Vec<Vec<u8>> = Vec::new();
    let mut next_index = 0u64;
    for (number, line) in lines.enumerate() {
        let line_number = number as u64 + 2;
        let line = line.map_err(|e| ExportAuditError::Read(e.to_string()))?;
        if line.is_empty() {
            continue;
        }
        let bytes = read_entry(&line, line_number, next_index, checkpoint.tree_size)?;
        leaves.push(merkle::leaf_hash(&bytes));
        chunk.push(bytes);
        next_index += 1;
        if chunk.len() == AUDIT_CHUNK {
            appender.append(&leaves);
            leaves.clear();
            audit = audit.and_then(|running| running.check_entries(&chunk));
            chunk.clear();
        }
    }
    appender.append(&leaves);
    let audit = audit
        .and_then(|running| running.check_entries(&chunk))
        .and_then(|running| running.finish(&checkpoint));
    let root = appender.root();
    let root = if next_index == checkpoint.tree_size && root == checkpoint.root_hash {
        Ok(())
    } else {
        Err(ExportAuditError::RootMismatch {
            tree_size: checkpoint.tree_size,
            entries: next_index,
            computed: hex::encode(root),
            signed: hex::encode(checkpoint.root_hash),
        })
    };
    match (audit, root) {
        (Ok(audited), Ok(())) => Ok(AuditedExport {
            checkpoint,
            note: header.checkpoint,
            audited,
        }),
        (Err(audit), Ok(())) => Err(audit.into()),
        (Ok(_), Err(root)) => Err(root),
        (Err(audit), Err(root)) => Err(ExportAuditError::Both {
            audit,
            root: Box::new(root),
        }),
    }
}

/// The bytes of the entry line `line`, which must be entry `expected` of a tree of
/// `tree_size`.
fn read_entry(
    line: &str,
    line_number: u64,
    expected: u64,
    tree_size: u64,
) -> Result<Vec<u8>, ExportAuditError> {
    let entry: RawEntry = serde_json::from_str(line).map_err(|e| ExportAuditError::Line {
        line: line_number,
        detail: format!("not an entry line: {e}"),
    })?;
    if expected >= tree_size {
        return Err(ExportAuditError::Line {
            line: line_number,
            detail: format!(
                "entry {} is beyond the checkpoint's tree size {tree_size}",
                entry.index
            ),
        });
    }
    if entry.index != expected {
        return Err(ExportAuditError::Entry {
            index: expected,
            detail: format!(
                "line {line_number} holds entry {} in its place; entries are in index order from 0",
                entry.index
            ),
        });
    }
    BASE64
        .decode(entry.entry.as_bytes())
        .map_err(|e| ExportAuditError::Entry {
            index: expected,
            detail: format!("its bytes are not base64: {e}"),
        })
}
