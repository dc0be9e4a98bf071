//! Checkpoints: the C2SP `tlog-checkpoint` text, signed as a C2SP
//! `signed-note` with Ed25519.
//!
//! A checkpoint commits the ledger to the root hash of its Merkle tree at a
//! given size. It is what auditors fetch, pin and compare, so it follows the
//! public specifications exactly and any `golang.org/x/mod/sumdb/note` or
//! transparency-dev verifier accepts it:
//!
//! ```text
//! example.com/uptime-ledger
//! 1234567
//! TdCOHLvvsrgWyedNY8qDklYm81l6yIfekjqfWBIYSnQ=
//!
//! — example.com/uptime-ledger IT2HTH8o9q606x2rzWpZyFBbH5ygQ3LHrGndBTtZ0VHYEpkXzXa+eFoAxYyTmMXLw2MFemee9E72DzFzxN5ZyNO9+wI=
//! ```
//!
//! The body is the origin, the tree size in decimal and the base64 root hash,
//! one per line, optionally followed by extension lines (parsed and kept; the
//! ledger emits none). A blank line separates it from the signature lines,
//! each `— <key name> base64(key ID || signature)`. The Ed25519 key ID is
//! `SHA-256(key name || 0x0A || 0x01 || public key)[:4]`, and an auditor pins
//! the verifier key string `<name>+<hex key ID>+<base64(0x01 || public key)>`.
//!
//! Where the specifications leave room, this module decides:
//!
//! - The signer's key name is the checkpoint origin. [`NoteSigner`] refuses
//!   to sign any other origin and [`open_checkpoint`] rejects a checkpoint
//!   whose origin differs from the verifier's name, so one key can never vouch
//!   for another log's tree.
//! - A note is at most [`MAX_NOTE_BYTES`] long and carries at most
//!   [`MAX_SIGNATURES`] signature lines, which bounds the work an untrusted
//!   note can cause while leaving room for many witness cosignatures.
//! - Signatures by other keys (another name or another key ID) are ignored,
//!   as the spec requires, but every signature by the pinned key must verify,
//!   and at least one must be present.
//! - Ed25519 verification is strict (no small-order keys or components, no
//!   non-canonical encodings), and so is base64 (padded, canonical).
//! - Verifier key strings use lowercase hex key IDs, as the Go implementation
//!   prints them, so that parsing and printing are exact inverses.
//! - [`Checkpoint::parse_body`] accepts any non-empty origin, because the
//!   spec forbids assuming its format; only signing requires it to be a valid
//!   key name.
//!
//! This module is pure: it does no I/O and never panics on any input.
//!
//! Specifications: <https://c2sp.org/tlog-checkpoint> and
//! <https://c2sp.org/signed-note>.
//!
//! # Layout
//!
//! - `body`: [`Checkpoint`], the tlog-checkpoint body (origin, tree size, root
//!   hash, extension lines): printing it and parsing it strictly;
//! - `note`: the signed-note format: [`NoteSigner`] and [`NoteVerifier`] (key
//!   names, key IDs, verifier key strings), signing a note text and verifying a
//!   note's signature lines, whatever the text says;
//! - this file: the two together ([`open_checkpoint`],
//!   [`NoteSigner::sign_checkpoint`]) and [`CheckpointError`].

mod body;
mod note;

#[cfg(test)]
mod tests;

pub use body::Checkpoint;
pub use note::{NoteSigner, NoteVerifier, MAX_NOTE_BYTES, MAX_SIGNATURES};

use crate::crypto::WeakKey;
use note::{is_ascii_control, verified_note_text};

/// Why a checkpoint, signed note or key could not be used.
///
/// Every variant describes a rejected input: retrying with the same input
/// fails again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note is longer than [`MAX_NOTE_BYTES`].
    #[error("signed note is {size} bytes long, more than the limit of {limit} bytes")]
    NoteTooLarge { size: usize, limit: usize },

    /// The text contains an ASCII control character other than newline.
    #[error(
        "text contains the control character {character:?} at byte {offset}; \
         a signed note allows no control character other than newline"
    )]
    ControlCharacter { character: char, offset: usize },

    /// No blank line separates the text from the signature lines.
    #[error("signed note has no blank line between its text and its signature lines")]
    MissingSignatureSeparator,

    /// Nothing follows the blank line.
    #[error("signed note has no signature lines after its blank line")]
    NoSignatureLines,

    /// The last signature line is not terminated by a newline.
    #[error("signed note does not end with a newline after its last signature line")]
    MissingFinalNewline,

    /// A signature line does not have the form `— <name> <base64>`.
    #[error("line {line} of the signed note is not a valid signature line: {reason}")]
    MalformedSignatureLine { line: usize, reason: &'static str },

    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("signed note has more than {limit} signature lines")]
    TooManySignatures { limit: usize },

    /// A signature carrying the pinned key's name and key ID is wrong.
    #[error("checkpoint signature does not verify with key {key}")]
    SignatureInvalid { key: String },

    /// No signature line carries the pinned key's name and key ID.
    #[error(
        "the note is not signed by the pinned key {key}; it is signed by {signed_by} \
         (a signature counts only if both its key name and key ID match: check that the \
         verifier key is this log's)"
    )]
    NoSignatureFromKey { key: String, signed_by: String },

    /// The checkpoint's origin is not the name of the key that signs it.
    #[error(
        "checkpoint origin {origin:?} differs from the key name {key_name:?}; \
         a log signs its checkpoints with a key named after its origin"
    )]
    OriginMismatch { origin: String, key_name: String },

    /// The note text is not a checkpoint.
    #[error("checkpoint text is malformed: {reason}")]
    MalformedCheckpoint { reason: &'static str },

    /// An extension line cannot be part of a note text.
    #[error(
        "checkpoint extension line {index} is empty or contains a newline \
         or control character"
    )]
    InvalidExtension { index: usize },

    /// A key name is empty or contains a space, a `+` or a control character.
    #[error(
        "key name {name:?} is invalid: it must be non-empty and contain no \
         spaces, '+' or control characters"
    )]
    InvalidKeyName { name: String },

    /// A verifier key string does not have the expected form.
    #[error(
        "verifier key is invalid: {reason}; expected \
         <name>+<8 lowercase hex digit key ID>+<base64 of 0x01 and the 32-byte Ed25519 public key>"
    )]
    InvalidVerifierKey { reason: &'static str },

    /// A verifier key's Ed25519 public key fails the key rule.
    #[error("verifier key is refused: its Ed25519 public key {0}")]
    WeakVerifierKey(#[from] WeakKey),

    /// A verifier key string names a key ID that its name and key do not give.
    #[error(
        "verifier key {key_name}+{claimed:08x} has the wrong key ID: its name \
         and public key give {computed:08x}"
    )]
    KeyIdMismatch {
        key_name: String,
        claimed: u32,
        computed: u32,
    },
}

/// Verifies a signed checkpoint note against the pinned key and returns the
/// checkpoint it carries.
///
/// The note must hold at least one signature line with the verifier's name and
/// key ID, and every such signature must verify; signatures by other keys are
/// ignored. Only then is the body parsed, and its origin must be the
/// verifier's name.
pub fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, CheckpointError> {
    let text = verified_note_text(note, verifier)?;
    let checkpoint = Checkpoint::parse_body(text)?;
    if checkpoint.origin != verifier.name() {
        return Err(CheckpointError::OriginMismatch {
            origin: checkpoint.origin,
            key_name: verifier.name().to_owned(),
        });
    }
    Ok(checkpoint)
}

impl NoteSigner {
    /// Signs `checkpoint` and returns the whole signed note.
    ///
    /// The checkpoint's origin must be this signer's name and its extension
    /// lines must fit in a note text, so that the note always opens with
    /// [`NoteSigner::verifier`] to the same checkpoint.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        if checkpoint.origin != self.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin.clone(),
                key_name: self.name().to_owned(),
            });
        }
        let is_note_line = |line: &str| !line.is_empty() && !line.chars().any(is_ascii_control);
        if let Some(index) = checkpoint
            .extensions
            .iter()
            .position(|line| !is_note_line(line))
        {
            return Err(CheckpointError::InvalidExtension { index });
        }
        let note = self.sign_note_text(&checkpoint.body());
        if note.len() > MAX_NOTE_BYTES {
            return Err(CheckpointError::NoteTooLarge {
                size: note.len(),
                limit: MAX_NOTE_BYTES,
            });
        }
        Ok(note)
    }
}
