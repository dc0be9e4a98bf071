//! The C2SP signed-note format with Ed25519: key names and key IDs, the
//! verifier key strings auditors pin, signing a note text and checking a
//! note's signature lines. It does not read the text it signs; that is the
//! checkpoint body's job.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

use super::CheckpointError;
use crate::crypto::PublicKey;

/// The largest signed note [`open_checkpoint`](super::open_checkpoint)
/// reads, in bytes.
///
/// The signed-note spec requires accepting at least 16 signatures, which may
/// be post-quantum signatures of nearly 5 kB each; one MiB leaves ample room
/// for that while keeping hostile input cheap to reject.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// The most signature lines [`open_checkpoint`](super::open_checkpoint)
/// reads, as in the Go reference implementation.
pub const MAX_SIGNATURES: usize = 100;

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

    /// Appends the blank line and this signer's signature line to `text`,
    /// which must be a valid note text.
    pub(super) fn sign_note_text(&self, text: &str) -> String {
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
pub(super) const KEY_ID_BYTES: usize = 4;

/// One signature line, decoded but not verified.
struct SignatureLine<'a> {
    key_name: &'a str,
    key_id: u32,
    signature: Vec<u8>,
}

/// Checks the note's structure and signatures and returns its text, which
/// ends with its final newline.
pub(super) fn verified_note_text<'a>(
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
    let mut signers = Vec::new();
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
            signers.push(format!(
                "{}+{:08x}",
                signature_line.key_name, signature_line.key_id
            ));
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
            signed_by: signers.join(", "),
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
pub(super) fn is_ascii_control(character: char) -> bool {
    u32::from(character) < 0x20
}

pub(super) fn check_no_control_characters(text: &str) -> Result<(), CheckpointError> {
    match text
        .char_indices()
        .find(|&(_, character)| is_ascii_control(character) && character != '\n')
    {
        Some((offset, character)) => Err(CheckpointError::ControlCharacter { character, offset }),
        None => Ok(()),
    }
}
