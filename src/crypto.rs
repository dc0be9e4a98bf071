//! Ed25519 signing and verification with domain separation, and key files.
//!
//! Every signature covers `context || 0x00 || body` (DESIGN.md "Signatures"), so an
//! observation's signature can never be replayed as a command's. Key files are the standard
//! formats `openssl genpkey -algorithm ed25519` reads and writes: PKCS#8 PEM for private
//! keys and SubjectPublicKeyInfo PEM for public keys.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// What a signature covers: the kind of body it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningContext {
    Observation,
    Command,
}

impl SigningContext {
    fn prefix(self) -> &'static [u8] {
        match self {
            SigningContext::Observation => b"uptime-ledger/v1/observation",
            SigningContext::Command => b"uptime-ledger/v1/command",
        }
    }
}

/// Below this many signatures, batch verification costs more than it saves.
const BATCH_THRESHOLD: usize = 8;

/// The exact message an Ed25519 signature covers.
pub fn signed_message(context: SigningContext, body: &[u8]) -> Vec<u8> {
    let prefix = context.prefix();
    let mut message = Vec::with_capacity(prefix.len() + 1 + body.len());
    message.extend_from_slice(prefix);
    message.push(0);
    message.extend_from_slice(body);
    message
}

pub fn sign(key: &SigningKey, context: SigningContext, body: &[u8]) -> [u8; 64] {
    key.sign(&signed_message(context, body)).to_bytes()
}

/// Parses a 64-byte signature; `None` for any other length.
pub fn parse_signature(bytes: &[u8]) -> Option<Signature> {
    <[u8; 64]>::try_from(bytes)
        .ok()
        .map(|b| Signature::from_bytes(&b))
}

/// Parses a raw 32-byte public key; `None` if it is not a valid point encoding.
pub fn parse_public_key(bytes: &[u8]) -> Option<VerifyingKey> {
    let bytes = <[u8; 32]>::try_from(bytes).ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

pub fn verify(
    key: &VerifyingKey,
    context: SigningContext,
    body: &[u8],
    signature: &Signature,
) -> bool {
    key.verify(&signed_message(context, body), signature)
        .is_ok()
}

/// One signature to check.
#[derive(Clone)]
pub struct SignedItem<'a> {
    pub key: &'a VerifyingKey,
    pub context: SigningContext,
    pub body: &'a [u8],
    pub signature: &'a Signature,
}

/// Verifies many signatures, answering per item. Large sets go through Ed25519 batch
/// verification first (about twice as fast); if the batch fails, single verification finds
/// exactly which items are bad.
pub fn verify_many(items: &[SignedItem<'_>]) -> Vec<bool> {
    if items.len() >= BATCH_THRESHOLD && all_verify(items) {
        return vec![true; items.len()];
    }
    items
        .iter()
        .map(|item| verify(item.key, item.context, item.body, item.signature))
        .collect()
}

/// Verifies several independent groups (the batches of different requests), answering per
/// item of each group. All groups go through one Ed25519 batch first, which costs less per
/// signature the larger it is; if it fails, each group is verified on its own
/// ([`verify_many`]), so a bad signature in one group costs the others one retry, never a
/// wrong answer.
pub fn verify_groups(groups: &[Vec<SignedItem<'_>>]) -> Vec<Vec<bool>> {
    let total: usize = groups.iter().map(Vec::len).sum();
    if groups.len() > 1 && total >= BATCH_THRESHOLD {
        let all: Vec<SignedItem<'_>> = groups.iter().flatten().cloned().collect();
        if all_verify(&all) {
            return groups.iter().map(|group| vec![true; group.len()]).collect();
        }
    }
    groups.iter().map(|group| verify_many(group)).collect()
}

/// One Ed25519 batch verification: true only if every signature verifies.
fn all_verify(items: &[SignedItem<'_>]) -> bool {
    let messages: Vec<Vec<u8>> = items
        .iter()
        .map(|item| signed_message(item.context, item.body))
        .collect();
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<Signature> = items.iter().map(|item| *item.signature).collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|item| *item.key).collect();
    ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).is_ok()
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a PKCS#8 PEM Ed25519 private key (as written by `uptime-ledger keygen` or `openssl genpkey -algorithm ed25519`): {detail}")]
    BadPrivateKey { path: PathBuf, detail: String },
    #[error("{path} is not a SubjectPublicKeyInfo PEM Ed25519 public key (as written by `uptime-ledger keygen` or `openssl pkey -pubout`): {detail}")]
    BadPublicKey { path: PathBuf, detail: String },
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let pem = fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyFileError::BadPrivateKey {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let pem = fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| KeyFileError::BadPublicKey {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// The PEM text of a public key.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("encoding a 32-byte Ed25519 public key cannot fail")
}

/// Generates a key pair and writes `path` (private, mode 0600) and `path.pub` (public).
/// Refuses to overwrite either file.
pub fn generate_key_files(path: &Path) -> Result<SigningKey, KeyFileError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let public_path = public_key_path(path);
    for existing in [path, public_path.as_path()] {
        if existing.exists() {
            return Err(KeyFileError::Exists {
                path: existing.to_owned(),
            });
        }
    }
    // PKCS#8 v1 (no embedded public key): the form `openssl genpkey` writes, and the one
    // every OpenSSL 3 release reads (some reject dalek's default v2 encoding).
    let keypair = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let private_pem = keypair
        .to_pkcs8_pem(LineEnding::LF)
        .expect("encoding a 32-byte Ed25519 private key cannot fail");
    write_new_file(path, private_pem.as_bytes(), 0o600)?;
    write_new_file(
        &public_path,
        public_key_pem(&key.verifying_key()).as_bytes(),
        0o644,
    )?;
    Ok(key)
}

/// `PATH.pub` for `PATH`.
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Writes a new file atomically: a temporary file is written and synced, then linked to
/// `path` (which fails if `path` exists) and the directory synced, so a crash never leaves
/// an empty or half-written key file behind.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyFileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write_error = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    if path.exists() {
        return Err(KeyFileError::Exists {
            path: path.to_owned(),
        });
    }
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = PathBuf::from(temp_name);
    let _ = fs::remove_file(&temp);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .and_then(|()| fs::hard_link(&temp, path));
    let _ = fs::remove_file(&temp);
    written.map_err(write_error)?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn contexts_are_separated() {
        let k = key(1);
        let sig = Signature::from_bytes(&sign(&k, SigningContext::Observation, b"body"));
        assert!(verify(
            &k.verifying_key(),
            SigningContext::Observation,
            b"body",
            &sig
        ));
        assert!(!verify(
            &k.verifying_key(),
            SigningContext::Command,
            b"body",
            &sig
        ));
    }

    #[test]
    fn signed_message_layout_is_exact() {
        assert_eq!(
            signed_message(SigningContext::Command, b"xy"),
            b"uptime-ledger/v1/command\0xy".to_vec()
        );
    }

    #[test]
    fn verify_many_finds_the_bad_ones_in_a_large_batch() {
        let keys: Vec<SigningKey> = (0..20).map(key).collect();
        let bodies: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 10]).collect();
        let mut signatures: Vec<Signature> = keys
            .iter()
            .zip(&bodies)
            .map(|(k, b)| Signature::from_bytes(&sign(k, SigningContext::Observation, b)))
            .collect();
        signatures[3] = signatures[4];
        signatures[17] =
            Signature::from_bytes(&sign(&keys[17], SigningContext::Command, &bodies[17]));
        let public: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
        let items: Vec<SignedItem<'_>> = (0..20)
            .map(|i| SignedItem {
                key: &public[i],
                context: SigningContext::Observation,
                body: &bodies[i],
                signature: &signatures[i],
            })
            .collect();
        let verdicts = verify_many(&items);
        let bad: Vec<usize> = (0..20).filter(|&i| !verdicts[i]).collect();
        assert_eq!(bad, vec![3, 17]);
        assert!(verify_many(&items[5..15]).iter().all(|&ok| ok));
    }

    #[test]
    fn verify_groups_answers_each_group_and_a_bad_signature_stays_in_its_group() {
        let keys: Vec<SigningKey> = (0..30).map(key).collect();
        let public: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
        let bodies: Vec<Vec<u8>> = (0..30u8).map(|i| vec![i; 12]).collect();
        let mut signatures: Vec<Signature> = keys
            .iter()
            .zip(&bodies)
            .map(|(k, b)| Signature::from_bytes(&sign(k, SigningContext::Observation, b)))
            .collect();
        fn items<'a>(
            public: &'a [VerifyingKey],
            bodies: &'a [Vec<u8>],
            signatures: &'a [Signature],
        ) -> Vec<SignedItem<'a>> {
            (0..30)
                .map(|i| SignedItem {
                    key: &public[i],
                    context: SigningContext::Observation,
                    body: &bodies[i],
                    signature: &signatures[i],
                })
                .collect()
        }
        // Groups of 3, 20 and 7: sizes below and above the batch threshold.
        fn split(items: Vec<SignedItem<'_>>) -> Vec<Vec<SignedItem<'_>>> {
            let mut items = items.into_iter();
            [3, 20, 7]
                .iter()
                .map(|&n| items.by_ref().take(n).collect())
                .collect()
        }
        let all_good = verify_groups(&split(items(&public, &bodies, &signatures)));
        assert_eq!(
            all_good.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 20, 7]
        );
        assert!(all_good.iter().flatten().all(|&ok| ok));

        // Item 10 (group 1) signed by another key, item 25 (group 2) for another context.
        signatures[10] =
            Signature::from_bytes(&sign(&keys[11], SigningContext::Observation, &bodies[10]));
        signatures[25] =
            Signature::from_bytes(&sign(&keys[25], SigningContext::Command, &bodies[25]));
        let verdicts = verify_groups(&split(items(&public, &bodies, &signatures)));
        assert!(verdicts[0].iter().all(|&ok| ok));
        let bad_1: Vec<usize> = (0..20).filter(|&i| !verdicts[1][i]).collect();
        assert_eq!(bad_1, vec![7]);
        let bad_2: Vec<usize> = (0..7).filter(|&i| !verdicts[2][i]).collect();
        assert_eq!(bad_2, vec![2]);
        assert!(verify_groups(&[]).is_empty());
    }

    #[test]
    fn key_files_round_trip_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.pem");
        let key = generate_key_files(&path).unwrap();
        assert_eq!(read_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(
            read_verifying_key(&public_key_path(&path)).unwrap(),
            key.verifying_key()
        );
        assert!(matches!(
            generate_key_files(&path),
            Err(KeyFileError::Exists { .. })
        ));
        assert!(matches!(
            read_verifying_key(&path),
            Err(KeyFileError::BadPublicKey { .. })
        ));
    }
}
