//! The C2SP tlog-checkpoint body: the origin, the tree size and the root hash,
//! one per line, then any extension lines. Printing and strict parsing; no
//! signatures.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::note::check_no_control_characters;
use super::CheckpointError;

/// A signed tree head of the log in the C2SP `tlog-checkpoint` format.
///
/// The fields are plain data;
/// [`NoteSigner::sign_checkpoint`](super::NoteSigner::sign_checkpoint) checks
/// that they form a valid note text before signing them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The identity of the log, which is also the name of its signing key.
    pub origin: String,
    /// The number of entries in the tree.
    pub tree_size: u64,
    /// The RFC 6962 Merkle tree hash of the first `tree_size` entries.
    pub root_hash: [u8; 32],
    /// Opaque lines after the root hash, each non-empty and free of control
    /// characters. The ledger emits none but keeps those it reads.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, tree size and root hash lines, then the
    /// extension lines, each ending in a newline.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root_hash)
        );
        for extension in &self.extensions {
            body.push_str(extension);
            body.push('\n');
        }
        body
    }

    /// Parses a note text strictly as a checkpoint body.
    ///
    /// This does not authenticate anything: use
    /// [`open_checkpoint`](super::open_checkpoint) for a note from anywhere
    /// but this process.
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        check_no_control_characters(text)?;
        let lines = text
            .strip_suffix('\n')
            .ok_or(malformed("it does not end with a newline"))?;
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(malformed("its origin line is empty"));
        }
        let tree_size =
            parse_tree_size(lines.next().ok_or(malformed("it has no tree size line"))?)?;
        let root_hash =
            parse_root_hash(lines.next().ok_or(malformed("it has no root hash line"))?)?;
        let extensions = lines
            .map(|line| {
                if line.is_empty() {
                    Err(malformed("it has an empty extension line"))
                } else {
                    Ok(line.to_owned())
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            extensions,
        })
    }
}

/// Parses a tree size: ASCII decimal digits, without leading zeros unless the
/// size is 0, within `u64`.
fn parse_tree_size(line: &str) -> Result<u64, CheckpointError> {
    let is_decimal = !line.is_empty() && line.bytes().all(|byte| byte.is_ascii_digit());
    let has_leading_zero = line.len() > 1 && line.starts_with('0');
    if !is_decimal || has_leading_zero {
        return Err(malformed(
            "its tree size is not a decimal number without leading zeros",
        ));
    }
    line.parse()
        .map_err(|_| malformed("its tree size does not fit in 64 bits"))
}

/// Parses a root hash: canonical padded base64 of exactly 32 bytes.
fn parse_root_hash(line: &str) -> Result<[u8; 32], CheckpointError> {
    let decoded = BASE64
        .decode(line)
        .map_err(|_| malformed("its root hash is not padded standard base64"))?;
    decoded
        .try_into()
        .map_err(|_| malformed("its root hash is not 32 bytes"))
}

fn malformed(reason: &'static str) -> CheckpointError {
    CheckpointError::MalformedCheckpoint { reason }
}
