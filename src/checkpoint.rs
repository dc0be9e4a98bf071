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

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

use crate::crypto::{PublicKey, WeakKey};

/// The largest signed note [`open_checkpoint`] reads, in bytes.
///
/// The signed-note spec requires accepting at least 16 signatures, which may
/// be post-quantum signatures of nearly 5 kB each; one MiB leaves ample room
/// for that while keeping hostile input cheap to reject.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// The most signature lines [`open_checkpoint`] reads, as in the Go
/// reference implementation.
pub const MAX_SIGNATURES: usize = 100;

/// A signed tree head of the log in the C2SP `tlog-checkpoint` format.
///
/// The fields are plain data; [`NoteSigner::sign_checkpoint`] checks that
/// they form a valid note text before signing them.
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

/// An Ed25519 public key that a checkpoint must be signed with, as pinned by
/// an auditor.
///
/// Invariant: `key_id` is the key ID computed from `name` and `public_key`,
/// and `name` is a valid key name; `public_key` satisfies the key rule, as every
/// [`PublicKey`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    public_key: PublicKey,
}

/// The log's Ed25519 signing key under its key name, which is the origin of
/// every checkpoint it signs.
///
/// Invariant: `name` is a valid key name and `key_id` is computed from it and
/// the public half of `signing_key`.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    signing_key: SigningKey,
}

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
        "signed note has no signature from key {key} \
         (a signature counts only if both its key name and key ID match)"
    )]
    NoSignatureFromKey { key: String },

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
    if checkpoint.origin != verifier.name {
        return Err(CheckpointError::OriginMismatch {
            origin: checkpoint.origin,
            key_name: verifier.name.clone(),
        });
    }
    Ok(checkpoint)
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
    /// This does not authenticate anything: use [`open_checkpoint`] for a
    /// note from anywhere but this process.
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

impl NoteVerifier {
    /// A verifier for `public_key` under `name`.
    pub fn new(name: &str, public_key: PublicKey) -> Result<Self, CheckpointError> {
        check_key_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &public_key),
            public_key,
        })
    }

    /// The key name, which is the origin of the checkpoints it verifies.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID that signature lines by this key carry.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The `<name>+<key ID>` label that identifies the key in error messages.
    fn label(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_id)
    }
}

impl FromStr for NoteVerifier {
    type Err = CheckpointError;

    /// Parses `<name>+<hex key ID>+<base64(0x01 || public key)>`, checking
    /// that the key ID belongs to the name and key.
    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| CheckpointError::InvalidVerifierKey { reason };
        // Names contain no '+', so the first two '+' end the name and the key
        // ID; the base64 key after them may contain more.
        let mut parts = key.splitn(3, '+');
        let (Some(name), Some(key_id_hex), Some(key_base64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("it does not have three parts separated by '+'"));
        };
        check_key_name(name)?;
        let is_lowercase_hex = |byte: u8| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
        if key_id_hex.len() != 8 || !key_id_hex.bytes().all(is_lowercase_hex) {
            return Err(invalid("its key ID is not 8 lowercase hex digits"));
        }
        let claimed = u32::from_str_radix(key_id_hex, 16)
            .map_err(|_| invalid("its key ID is not 8 lowercase hex digits"))?;
        let typed_key = BASE64
            .decode(key_base64)
            .map_err(|_| invalid("its key is not padded standard base64"))?;
        let Some((&signature_type, key_bytes)) = typed_key.split_first() else {
            return Err(invalid("its key is empty"));
        };
        if signature_type != ED25519_SIGNATURE_TYPE {
            return Err(invalid("its key type is not Ed25519 (0x01)"));
        }
        if key_bytes.len() != 32 {
            return Err(invalid("its Ed25519 public key is not 32 bytes"));
        }
        let public_key = PublicKey::from_bytes(key_bytes)?;
        let computed = ed25519_key_id(name, &public_key);
        if claimed != computed {
            return Err(CheckpointError::KeyIdMismatch {
                key_name: name.to_owned(),
                claimed,
                computed,
            });
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: computed,
            public_key,
        })
    }
}

impl fmt::Display for NoteVerifier {
    /// Formats the verifier key string that auditors pin.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut typed_key = [0u8; 33];
        typed_key[0] = ED25519_SIGNATURE_TYPE;
        typed_key[1..].copy_from_slice(self.public_key.as_bytes());
        write!(
            formatter,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(typed_key)
        )
    }
}

impl NoteSigner {
    /// A signer for the log whose origin is `name`.
    pub fn new(name: &str, signing_key: SigningKey) -> Result<Self, CheckpointError> {
        check_key_name(name)?;
        Ok(NoteSigner {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &PublicKey::from(&signing_key)),
            signing_key,
        })
    }

    /// The key name, which is the origin of every checkpoint it signs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this signer's key, whose string form auditors pin.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            public_key: PublicKey::from(&self.signing_key),
        }
    }

    /// Signs `checkpoint` and returns the whole signed note.
    ///
    /// The checkpoint's origin must be this signer's name and its extension
    /// lines must fit in a note text, so that the note always opens with
    /// [`NoteSigner::verifier`] to the same checkpoint.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        if checkpoint.origin != self.name {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin.clone(),
                key_name: self.name.clone(),
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

    /// Appends the blank line and this signer's signature line to `text`,
    /// which must be a valid note text.
    fn sign_note_text(&self, text: &str) -> String {
        let signature = self.signing_key.sign(text.as_bytes());
        let mut key_id_and_signature =
            Vec::with_capacity(KEY_ID_BYTES + ed25519_dalek::SIGNATURE_LENGTH);
        key_id_and_signature.extend_from_slice(&self.key_id.to_be_bytes());
        key_id_and_signature.extend_from_slice(&signature.to_bytes());
        format!(
            "{text}\n{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(key_id_and_signature)
        )
    }
}

impl fmt::Debug for NoteSigner {
    /// Shows which key this is without revealing its secret half.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// Every signature line starts with an em dash (U+2014) and a space.
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// The signed-note signature type byte of Ed25519, hashed into key IDs and
/// prefixed to public keys in verifier key strings.
const ED25519_SIGNATURE_TYPE: u8 = 0x01;

/// Signature lines start their base64 payload with a big-endian key ID.
const KEY_ID_BYTES: usize = 4;

/// One signature line, decoded but not verified.
struct SignatureLine<'a> {
    key_name: &'a str,
    key_id: u32,
    signature: Vec<u8>,
}

/// Checks the note's structure and signatures and returns its text, which
/// ends with its final newline.
fn verified_note_text<'a>(
    note: &'a str,
    verifier: &NoteVerifier,
) -> Result<&'a str, CheckpointError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::NoteTooLarge {
            size: note.len(),
            limit: MAX_NOTE_BYTES,
        });
    }
    check_no_control_characters(note)?;
    // The text may itself contain blank lines; the last one is the separator.
    let separator = note
        .rfind("\n\n")
        .ok_or(CheckpointError::MissingSignatureSeparator)?;
    let (text, signature_block) = (&note[..=separator], &note[separator + 2..]);
    let Some(signature_lines) = signature_block.strip_suffix('\n') else {
        return Err(if signature_block.is_empty() {
            CheckpointError::NoSignatureLines
        } else {
            CheckpointError::MissingFinalNewline
        });
    };
    // Line numbers count the text's lines and the blank line, so that an
    // error points at the line a person sees in the note.
    let first_signature_line = text.matches('\n').count() + 2;
    let mut verified_signatures = 0;
    for (index, line) in signature_lines.split('\n').enumerate() {
        if index == MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures {
                limit: MAX_SIGNATURES,
            });
        }
        let signature_line = parse_signature_line(line).map_err(|reason| {
            CheckpointError::MalformedSignatureLine {
                line: first_signature_line + index,
                reason,
            }
        })?;
        if signature_line.key_name != verifier.name || signature_line.key_id != verifier.key_id {
            continue;
        }
        let verifies = verifier
            .public_key
            .verify_message(text.as_bytes(), &signature_line.signature);
        if !verifies {
            return Err(CheckpointError::SignatureInvalid {
                key: verifier.label(),
            });
        }
        verified_signatures += 1;
    }
    if verified_signatures == 0 {
        return Err(CheckpointError::NoSignatureFromKey {
            key: verifier.label(),
        });
    }
    Ok(text)
}

/// Decodes `— <key name> <base64(key ID || signature)>`, or says what is
/// wrong with the line.
fn parse_signature_line(line: &str) -> Result<SignatureLine<'_>, &'static str> {
    let rest = line
        .strip_prefix(SIGNATURE_LINE_PREFIX)
        .ok_or("it does not start with an em dash (U+2014) and a space")?;
    let (key_name, payload_base64) = rest
        .split_once(' ')
        .ok_or("it has no space between the key name and the signature")?;
    if !is_valid_key_name(key_name) {
        return Err("its key name is empty or contains a space, '+' or control character");
    }
    let payload = BASE64
        .decode(payload_base64)
        .map_err(|_| "its signature is not padded standard base64")?;
    if payload.len() <= KEY_ID_BYTES {
        return Err("its signature is too short to hold a 4-byte key ID and a signature");
    }
    let (key_id, signature) = payload.split_at(KEY_ID_BYTES);
    let key_id = u32::from_be_bytes([key_id[0], key_id[1], key_id[2], key_id[3]]);
    Ok(SignatureLine {
        key_name,
        key_id,
        signature: signature.to_vec(),
    })
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

/// The signed-note key ID of an Ed25519 key:
/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
fn ed25519_key_id(name: &str, public_key: &PublicKey) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ED25519_SIGNATURE_TYPE])
        .chain_update(public_key.as_bytes())
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Key names are non-empty without Unicode spaces or '+', as the spec says,
/// and without control characters, which no note may contain.
fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|character| {
            character.is_whitespace() || character == '+' || is_ascii_control(character)
        })
}

fn check_key_name(name: &str) -> Result<(), CheckpointError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(CheckpointError::InvalidKeyName {
            name: name.to_owned(),
        })
    }
}

/// The characters below U+0020, which a signed note may contain only as
/// newline.
fn is_ascii_control(character: char) -> bool {
    u32::from(character) < 0x20
}

fn check_no_control_characters(text: &str) -> Result<(), CheckpointError> {
    match text
        .char_indices()
        .find(|&(_, character)| is_ascii_control(character) && character != '\n')
    {
        Some((offset, character)) => Err(CheckpointError::ControlCharacter { character, offset }),
        None => Ok(()),
    }
}

fn malformed(reason: &'static str) -> CheckpointError {
    CheckpointError::MalformedCheckpoint { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// The example of `golang.org/x/mod/sumdb/note`: its verifier key, the
    /// seed of its signer key (`PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK…`
    /// without the type byte), and the signed note its documentation shows.
    const GO_VERIFIER_KEY: &str =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_SIGNER_SEED_HEX: &str =
        "810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n\
                           \n\
                           — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    /// A checkpoint signed independently with Python's `cryptography`
    /// package (seeds `SHA-256("uptime-ledger interop log key")` and
    /// `SHA-256("uptime-ledger interop witness key")`), first by a witness
    /// this test does not know, then by the log.
    const PYTHON_VERIFIER_KEY: &str =
        "example.com/uptime-ledger+213d874c+AVXcrO25P9I1lQt+2myzJm76IqAAR/DQec08lvaZB/FG";
    const PYTHON_ROOT_HEX: &str =
        "4dd08e1cbbefb2b816c9e74d63ca83925626f3597ac887de923a9f5812184a74";
    const PYTHON_NOTE: &str = "example.com/uptime-ledger\n\
        1234567\n\
        TdCOHLvvsrgWyedNY8qDklYm81l6yIfekjqfWBIYSnQ=\n\
        \n\
        — witness.example/w1 DXTvVct9bneph/is5yMkJ5OLP/zUBLUBsTU2955T2AjaZk5oVH/0rcRMDldjGC/pcMW3KD2h3+HzvhNWHr4hwEiZkwY=\n\
        — example.com/uptime-ledger IT2HTH8o9q606x2rzWpZyFBbH5ygQ3LHrGndBTtZ0VHYEpkXzXa+eFoAxYyTmMXLw2MFemee9E72DzFzxN5ZyNO9+wI=\n";

    const ORIGIN: &str = "example.com/uptime-ledger";

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn checkpoint(tree_size: u64) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.to_owned(),
            tree_size,
            root_hash: Sha256::digest(tree_size.to_be_bytes()).into(),
            extensions: Vec::new(),
        }
    }

    /// A note of `checkpoint(42)` signed by the log key, and that key's verifier.
    fn signed_note() -> (String, NoteVerifier) {
        let log = signer(ORIGIN, 1);
        (
            log.sign_checkpoint(&checkpoint(42)).unwrap(),
            log.verifier(),
        )
    }

    #[test]
    fn signed_checkpoint_opens_to_the_same_checkpoint() {
        let log = signer(ORIGIN, 1);
        for checkpoint in [
            checkpoint(0),
            checkpoint(42),
            checkpoint(u64::MAX),
            Checkpoint {
                extensions: vec!["first extension".to_owned(), "+second—extension".to_owned()],
                ..checkpoint(7)
            },
        ] {
            let note = log.sign_checkpoint(&checkpoint).unwrap();
            assert!(note.starts_with(&format!("{}\n", checkpoint.body())));
            assert_eq!(open_checkpoint(&note, &log.verifier()), Ok(checkpoint));
        }
    }

    #[test]
    fn body_has_the_spec_layout() {
        let checkpoint = Checkpoint {
            origin: ORIGIN.to_owned(),
            tree_size: 1234567,
            root_hash: hex::decode(PYTHON_ROOT_HEX).unwrap().try_into().unwrap(),
            extensions: vec!["extension".to_owned()],
        };
        let body = "example.com/uptime-ledger\n1234567\nTdCOHLvvsrgWyedNY8qDklYm81l6yIfekjqfWBIYSnQ=\nextension\n";
        assert_eq!(checkpoint.body(), body);
        assert_eq!(Checkpoint::parse_body(body), Ok(checkpoint));
    }

    #[test]
    fn verifier_key_string_round_trips() {
        for key in [GO_VERIFIER_KEY, PYTHON_VERIFIER_KEY] {
            assert_eq!(key.parse::<NoteVerifier>().unwrap().to_string(), key);
        }
        let verifier = signer(ORIGIN, 1).verifier();
        assert_eq!(verifier.to_string().parse::<NoteVerifier>(), Ok(verifier));
    }

    #[test]
    fn key_id_matches_the_go_example_and_the_spec_formula() {
        let verifier: NoteVerifier = GO_VERIFIER_KEY.parse().unwrap();
        assert_eq!(verifier.name(), "PeterNeumann");
        assert_eq!(verifier.key_id(), 0xc74f20a3);

        let mut preimage = b"PeterNeumann\n\x01".to_vec();
        preimage.extend_from_slice(verifier.public_key().as_bytes());
        assert_eq!(Sha256::digest(&preimage)[..4], 0xc74f20a3u32.to_be_bytes());

        let seed: [u8; 32] = hex::decode(GO_SIGNER_SEED_HEX).unwrap().try_into().unwrap();
        let go_signer = NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap();
        assert_eq!(go_signer.verifier(), verifier);
    }

    #[test]
    fn notes_match_the_go_implementation_byte_for_byte() {
        let seed: [u8; 32] = hex::decode(GO_SIGNER_SEED_HEX).unwrap().try_into().unwrap();
        let go_signer = NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap();
        assert_eq!(go_signer.sign_note_text(GO_TEXT), GO_NOTE);

        let verifier: NoteVerifier = GO_VERIFIER_KEY.parse().unwrap();
        assert_eq!(verified_note_text(GO_NOTE, &verifier), Ok(GO_TEXT));
        // The Go example verifies but is prose, not a checkpoint.
        assert!(matches!(
            open_checkpoint(GO_NOTE, &verifier),
            Err(CheckpointError::MalformedCheckpoint { .. })
        ));
    }

    #[test]
    fn opens_a_checkpoint_signed_by_python() {
        let verifier: NoteVerifier = PYTHON_VERIFIER_KEY.parse().unwrap();
        let expected = Checkpoint {
            origin: ORIGIN.to_owned(),
            tree_size: 1234567,
            root_hash: hex::decode(PYTHON_ROOT_HEX).unwrap().try_into().unwrap(),
            extensions: Vec::new(),
        };
        assert_eq!(open_checkpoint(PYTHON_NOTE, &verifier), Ok(expected));
    }

    #[test]
    fn signatures_by_unknown_keys_are_ignored() {
        let (note, verifier) = signed_note();
        let text = note.split_once("\n\n").unwrap().0.to_owned() + "\n";
        let witness_line =
            signer("witness.example", 2).sign_note_text(&text)[text.len() + 1..].to_owned();
        // The same name as the log with a different key, hence key ID.
        let rotated_line = signer(ORIGIN, 3).sign_note_text(&text)[text.len() + 1..].to_owned();
        for note in [
            format!("{note}{witness_line}"),
            format!("{text}\n{witness_line}{}", &note[text.len() + 1..]),
            format!("{note}{rotated_line}"),
        ] {
            assert_eq!(
                open_checkpoint(&note, &verifier),
                Ok(checkpoint(42)),
                "{note}"
            );
        }
    }

    #[test]
    fn a_note_without_a_signature_by_the_pinned_key_is_rejected() {
        let checkpoint = checkpoint(42);
        let pinned = signer(ORIGIN, 1).verifier();
        let no_signature_from_key = Err(CheckpointError::NoSignatureFromKey {
            key: format!("{ORIGIN}+{:08x}", pinned.key_id()),
        });
        // Same name, different key: its key ID differs, so it is another key.
        let other_key = signer(ORIGIN, 3).sign_checkpoint(&checkpoint).unwrap();
        assert_eq!(open_checkpoint(&other_key, &pinned), no_signature_from_key);
        // The pinned key ID under another name.
        let renamed = signed_note()
            .0
            .replacen(&format!("— {ORIGIN} "), "— witness.example ", 1);
        assert_eq!(open_checkpoint(&renamed, &pinned), no_signature_from_key);
    }

    #[test]
    fn a_wrong_signature_by_the_pinned_key_is_rejected() {
        let (note, verifier) = signed_note();
        let invalid = Err(CheckpointError::SignatureInvalid {
            key: format!("{ORIGIN}+{:08x}", verifier.key_id()),
        });
        let (text, signature_line) = note.split_once("\n\n").unwrap();
        let tampered = [
            note.replacen("\n42\n", "\n43\n", 1),
            note.replacen(
                &BASE64.encode(checkpoint(42).root_hash),
                &BASE64.encode([0u8; 32]),
                1,
            ),
            note.replacen(ORIGIN, "example.com/uptime-ledgeR", 1),
            format!("{text}\nextension\n\n{signature_line}"),
        ];
        for note in tampered {
            assert_eq!(open_checkpoint(&note, &verifier), invalid, "{note}");
        }
        // A bad signature is fatal even next to a good one.
        let flipped = signature_line.replacen("— example.com/uptime-ledger ", "", 1);
        let mut payload = BASE64.decode(flipped.trim_end()).unwrap();
        payload[10] ^= 1;
        let bad_line = format!("— {ORIGIN} {}\n", BASE64.encode(&payload));
        assert_eq!(
            open_checkpoint(&format!("{note}{bad_line}"), &verifier),
            invalid
        );
        // A signature of the wrong length under the pinned key ID.
        payload.truncate(KEY_ID_BYTES + 63);
        let short_line = format!("— {ORIGIN} {}\n", BASE64.encode(&payload));
        assert_eq!(
            open_checkpoint(&format!("{note}{short_line}"), &verifier),
            invalid
        );
    }

    #[test]
    fn a_checkpoint_of_another_origin_is_rejected() {
        let log = signer(ORIGIN, 1);
        let foreign = Checkpoint {
            origin: "example.com/other-log".to_owned(),
            ..checkpoint(42)
        };
        let origin_mismatch = CheckpointError::OriginMismatch {
            origin: "example.com/other-log".to_owned(),
            key_name: ORIGIN.to_owned(),
        };
        assert_eq!(log.sign_checkpoint(&foreign), Err(origin_mismatch.clone()));
        // A note that only a misbehaving signer could produce.
        let note = log.sign_note_text(&foreign.body());
        assert_eq!(
            open_checkpoint(&note, &log.verifier()),
            Err(origin_mismatch)
        );
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let (note, verifier) = signed_note();
        let (text, signature_line) = note.split_once("\n\n").unwrap();
        let bad_line = |line, reason| CheckpointError::MalformedSignatureLine { line, reason };
        let no_dash = "it does not start with an em dash (U+2014) and a space";
        let no_space = "it has no space between the key name and the signature";
        let bad_base64 = "its signature is not padded standard base64";
        let cases = [
            (
                format!("{text}\n{signature_line}"),
                CheckpointError::MissingSignatureSeparator,
            ),
            (String::new(), CheckpointError::MissingSignatureSeparator),
            (note.replacen('—', "-", 1), bad_line(5, no_dash)),
            (note.replacen('—', "\u{2013}", 1), bad_line(5, no_dash)),
            (note.replacen("— ", "—", 1), bad_line(5, no_dash)),
            (
                format!("{note}garbage"),
                CheckpointError::MissingFinalNewline,
            ),
            (format!("{note}garbage\n"), bad_line(6, no_dash)),
            (format!("{note}\n"), CheckpointError::NoSignatureLines),
            (format!("{text}\n\n"), CheckpointError::NoSignatureLines),
            (
                format!("{text}\n\n{}", signature_line.replacen('=', "", 1)),
                bad_line(5, bad_base64),
            ),
            (format!("{note}— {ORIGIN} !!!!\n"), bad_line(6, bad_base64)),
            (
                format!("{note}— {ORIGIN} AAAAAA==\n"),
                bad_line(
                    6,
                    "its signature is too short to hold a 4-byte key ID and a signature",
                ),
            ),
            (
                format!("{note}— a+b AAAAAAAA\n"),
                bad_line(
                    6,
                    "its key name is empty or contains a space, '+' or control character",
                ),
            ),
            (format!("{note}— {ORIGIN}\n"), bad_line(6, no_space)),
            (
                note.replacen("42", "4\t2", 1),
                CheckpointError::ControlCharacter {
                    character: '\t',
                    offset: 27,
                },
            ),
            (
                note.replace('\n', "\r\n"),
                CheckpointError::ControlCharacter {
                    character: '\r',
                    offset: ORIGIN.len(),
                },
            ),
        ];
        for (note, expected) in cases {
            assert_eq!(open_checkpoint(&note, &verifier), Err(expected), "{note:?}");
        }
    }

    #[test]
    fn huge_notes_are_rejected_before_parsing() {
        let (note, verifier) = signed_note();
        let huge = format!("{}{note}", "a".repeat(MAX_NOTE_BYTES));
        assert_eq!(
            open_checkpoint(&huge, &verifier),
            Err(CheckpointError::NoteTooLarge {
                size: huge.len(),
                limit: MAX_NOTE_BYTES
            })
        );
        let log = signer(ORIGIN, 1);
        let oversized = Checkpoint {
            extensions: vec!["x".repeat(MAX_NOTE_BYTES)],
            ..checkpoint(42)
        };
        assert!(matches!(
            log.sign_checkpoint(&oversized),
            Err(CheckpointError::NoteTooLarge { .. })
        ));
    }

    #[test]
    fn at_most_one_hundred_signatures_are_read() {
        let (note, verifier) = signed_note();
        let witness_line = format!("— witness.example {}\n", BASE64.encode([7u8; 68]));
        let with_unknown = |count: usize| format!("{note}{}", witness_line.repeat(count));
        assert_eq!(
            open_checkpoint(&with_unknown(MAX_SIGNATURES - 1), &verifier),
            Ok(checkpoint(42))
        );
        assert_eq!(
            open_checkpoint(&with_unknown(MAX_SIGNATURES), &verifier),
            Err(CheckpointError::TooManySignatures {
                limit: MAX_SIGNATURES
            })
        );
    }

    #[test]
    fn checkpoint_bodies_are_parsed_strictly() {
        let root = BASE64.encode([9u8; 32]);
        let valid = [
            (format!("o\n0\n{root}\n"), 0),
            (format!("o\n10\n{root}\n"), 10),
            (format!("o\n18446744073709551615\n{root}\n"), u64::MAX),
            (format!("o with spaces+plus\n1\n{root}\next\n"), 1),
        ];
        for (body, tree_size) in valid {
            assert_eq!(
                Checkpoint::parse_body(&body).unwrap().tree_size,
                tree_size,
                "{body:?}"
            );
        }
        let invalid = [
            String::new(),
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            "o\n1\n".to_owned(),
            "o\n".to_owned(),
            format!("o\n01\n{root}\n"),
            format!("o\n00\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n 1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n1e3\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            "o\n1\n\n".to_owned(),
            format!("o\n1\n{}\n", root.trim_end_matches('=')),
            format!("o\n1\n{}\n", BASE64.encode([9u8; 31])),
            format!("o\n1\n{}\n", BASE64.encode([9u8; 33])),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\next\n"),
            format!("o\x01\n1\n{root}\n"),
        ];
        for body in invalid {
            let error = Checkpoint::parse_body(&body).unwrap_err();
            assert!(
                matches!(
                    error,
                    CheckpointError::MalformedCheckpoint { .. }
                        | CheckpointError::ControlCharacter { .. }
                ),
                "{body:?} gave {error:?}"
            );
        }
    }

    #[test]
    fn invalid_verifier_keys_are_rejected() {
        let (name, rest) = PYTHON_VERIFIER_KEY.split_once('+').unwrap();
        let (_, key_base64) = rest.split_once('+').unwrap();
        let typed_key = BASE64.decode(key_base64).unwrap();
        let with_key = |bytes: &[u8]| format!("{name}+213d874c+{}", BASE64.encode(bytes));
        let invalid = [
            String::new(),
            name.to_owned(),
            format!("{name}+213d874c"),
            PYTHON_VERIFIER_KEY.replacen("213d874c", "213D874C", 1),
            PYTHON_VERIFIER_KEY.replacen("213d874c", "213d874", 1),
            PYTHON_VERIFIER_KEY.replacen("213d874c", "+213d874", 1),
            PYTHON_VERIFIER_KEY.replacen("213d874c", "0213d874c", 1),
            format!("{PYTHON_VERIFIER_KEY}="),
            format!("{name}+213d874c+"),
            with_key(&[&[0x04], &typed_key[1..]].concat()),
            with_key(&typed_key[..32]),
            with_key(&[typed_key.as_slice(), &[0]].concat()),
            with_key(&[0x01; 1]),
            // The identity point has small order.
            with_key(&[&[0x01, 0x01], [0u8; 31].as_slice()].concat()),
        ];
        for key in invalid {
            let error = key.parse::<NoteVerifier>().unwrap_err();
            assert!(
                matches!(
                    error,
                    CheckpointError::InvalidVerifierKey { .. }
                        | CheckpointError::WeakVerifierKey(_)
                        | CheckpointError::InvalidKeyName { .. }
                ),
                "{key:?} gave {error:?}"
            );
        }
        for bad_name in ["", "a b", "a\u{a0}b", "a\tb"] {
            let key = PYTHON_VERIFIER_KEY.replacen(name, bad_name, 1);
            assert_eq!(
                key.parse::<NoteVerifier>(),
                Err(CheckpointError::InvalidKeyName {
                    name: bad_name.to_owned()
                })
            );
        }
        let renamed = PYTHON_VERIFIER_KEY.replacen(name, "example.com/other", 1);
        assert!(matches!(
            renamed.parse::<NoteVerifier>(),
            Err(CheckpointError::KeyIdMismatch {
                claimed: 0x213d874c,
                ..
            })
        ));
        let error = renamed.parse::<NoteVerifier>().unwrap_err().to_string();
        assert!(
            error.starts_with("verifier key example.com/other+213d874c has the wrong key ID"),
            "{error}"
        );
    }

    #[test]
    fn signers_reject_invalid_names_and_extensions() {
        for name in ["", "has space", "has+plus", "new\nline"] {
            assert!(matches!(
                NoteSigner::new(name, SigningKey::from_bytes(&[1; 32])),
                Err(CheckpointError::InvalidKeyName { .. })
            ));
        }
        let log = signer(ORIGIN, 1);
        for extensions in [
            vec![String::new()],
            vec!["a".to_owned(), "b\nc".to_owned()],
            vec!["\u{7}".to_owned()],
        ] {
            let index = extensions.len() - 1;
            let checkpoint = Checkpoint {
                extensions,
                ..checkpoint(1)
            };
            assert_eq!(
                log.sign_checkpoint(&checkpoint),
                Err(CheckpointError::InvalidExtension { index })
            );
        }
    }

    #[test]
    fn error_messages_name_the_key() {
        let (note, verifier) = signed_note();
        let error = open_checkpoint(&note.replacen("\n42\n", "\n43\n", 1), &verifier).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "checkpoint signature does not verify with key {ORIGIN}+{:08x}",
                verifier.key_id()
            )
        );
    }

    proptest! {
        #[test]
        fn any_checkpoint_round_trips(
            origin in "[a-z0-9.-]{1,20}(/[a-zA-Z0-9._~-]{1,20}){0,3}",
            tree_size in any::<u64>(),
            root_hash in any::<[u8; 32]>(),
            extensions in proptest::collection::vec("[^\\x00-\\x1f]{1,40}", 0..3),
        ) {
            let log = NoteSigner::new(&origin, SigningKey::from_bytes(&[5; 32])).unwrap();
            let checkpoint = Checkpoint { origin, tree_size, root_hash, extensions };
            let note = log.sign_checkpoint(&checkpoint).unwrap();
            prop_assert_eq!(open_checkpoint(&note, &log.verifier()), Ok(checkpoint));
        }

        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (_, verifier) = signed_note();
            let _ = open_checkpoint(&String::from_utf8_lossy(&bytes), &verifier);
            let _ = Checkpoint::parse_body(&String::from_utf8_lossy(&bytes));
            let _ = String::from_utf8_lossy(&bytes).parse::<NoteVerifier>();
        }

        #[test]
        fn edited_notes_never_open_to_another_checkpoint(
            start in 0usize..400,
            removed in 0usize..8,
            inserted in "(\n|—| |=|[A-Za-z0-9+/]|example.com/uptime-ledger|\u{a0}){0,6}",
        ) {
            let (note, verifier) = signed_note();
            let start = start.min(note.len());
            let end = (start + removed).min(note.len());
            if note.is_char_boundary(start) && note.is_char_boundary(end) {
                let edited = format!("{}{inserted}{}", &note[..start], &note[end..]);
                if let Ok(opened) = open_checkpoint(&edited, &verifier) {
                    prop_assert_eq!(opened, checkpoint(42));
                }
            }
        }
    }
}
