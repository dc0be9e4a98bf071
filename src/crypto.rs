//! Ed25519 signing, the one rule for which keys and signatures are valid, and key files.
//!
//! Every signature covers `context || 0x00 || body` (DESIGN.md "Signatures"), so an
//! observation's signature can never be replayed as a command's. Every place that judges a
//! signature (ingest, `Apply`, genesis, checkpoints, `audit`) goes through [`PublicKey`]:
//! keys are checked once, when they enter the log, and each signature is judged on its own
//! by the cofactorless equation, so a verdict never depends on the batch it came in and
//! every mainstream verifier agrees with it. Key files are the standard formats
//! `openssl genpkey -algorithm ed25519` reads and writes: PKCS#8 PEM for private keys and
//! SubjectPublicKeyInfo PEM for public keys.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};

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

/// Why a public key is refused (DESIGN.md "Which signatures are valid"): only canonical
/// encodings of points in the prime-order subgroup are keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakKey {
    #[error("it is {0} bytes; an Ed25519 public key is 32")]
    Length(usize),
    #[error("it does not encode a point of edwards25519")]
    NotAPoint,
    #[error("it is not the canonical encoding of its point")]
    NotCanonical,
    #[error("it is a point of small order")]
    SmallOrder,
    #[error("it has a small-order component (it is not in the prime-order subgroup)")]
    MixedOrder,
}

/// An Ed25519 public key that satisfies the key rule: a canonical encoding of a point of
/// the prime-order subgroup, other than the identity. Every key that enters the log (probe
/// keys, admin keys, the ledger key) is one, so the rule is checked once, when it enters,
/// and the key is decoded once: a probe's key verifies every observation it ever sends.
/// Cloning shares the decoded key.
#[derive(Clone)]
pub struct PublicKey(Arc<Decoded>);

struct Decoded {
    key: VerifyingKey,
    /// `−A`, decoded.
    minus_a: EdwardsPoint,
}

impl PublicKey {
    /// The key whose raw 32-byte encoding is `bytes`, if it satisfies the key rule.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, WeakKey> {
        let bytes = <[u8; 32]>::try_from(bytes).map_err(|_| WeakKey::Length(bytes.len()))?;
        let point = CompressedEdwardsY(bytes)
            .decompress()
            .ok_or(WeakKey::NotAPoint)?;
        if point.compress().as_bytes() != &bytes {
            return Err(WeakKey::NotCanonical);
        }
        if point.is_small_order() {
            return Err(WeakKey::SmallOrder);
        }
        if !point.is_torsion_free() {
            return Err(WeakKey::MixedOrder);
        }
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| WeakKey::NotAPoint)?;
        Ok(PublicKey(Arc::new(Decoded {
            key,
            minus_a: -point,
        })))
    }

    /// The key rule for a key read from a file or another library.
    pub fn from_verifying_key(key: &VerifyingKey) -> Result<PublicKey, WeakKey> {
        PublicKey::from_bytes(key.as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.key.as_bytes()
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.key.to_bytes()
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0.key
    }

    /// The signature rule for an observation's or a command's signature over `body`.
    pub fn verify(&self, context: SigningContext, body: &[u8], signature: &[u8]) -> bool {
        self.verify_parts(&[context.prefix(), &[0], body], signature)
    }

    /// The signature rule for a signature over `message` as it is (a signed note's text).
    pub fn verify_message(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_parts(&[message], signature)
    }

    /// The signature rule (DESIGN.md "Which signatures are valid") for the message that is
    /// `parts` concatenated: `s < ℓ`, and `R` is the canonical encoding of `[s]B − [k]A`
    /// (the cofactorless equation), which is not of small order, with
    /// `k = SHA-512(R || A || message)`. Comparing encodings makes a non-canonical `R`
    /// fail without decoding it, which is what makes this faster than `verify_strict`
    /// (BENCHMARKS.md). A pure function of (key, message, signature).
    fn verify_parts(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        let (r, s) = signature.split_at(32);
        let s: [u8; 32] = s.try_into().expect("a 64-byte signature has a 32-byte s");
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
            return false;
        };
        let mut hash = Sha512::new();
        hash.update(r);
        hash.update(self.as_bytes());
        for part in parts {
            hash.update(part);
        }
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        let recomputed = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &self.0.minus_a, &s);
        recomputed.compress().as_bytes() == r && !recomputed.is_small_order()
    }
}

impl From<&SigningKey> for PublicKey {
    /// A signing key's public key always satisfies the key rule: it is `[a]B` for a
    /// clamped `a`, a multiple of 8 below `8ℓ`, so a point of order `ℓ`, encoded by
    /// compression (canonical).
    fn from(key: &SigningKey) -> PublicKey {
        let key = key.verifying_key();
        PublicKey(Arc::new(Decoded {
            minus_a: -key.to_edwards(),
            key,
        }))
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for PublicKey {}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.as_bytes()))
    }
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
    #[error(
        "{path} holds a weak Ed25519 public key, which no signature may be judged by: {reason}"
    )]
    WeakPublicKey { path: PathBuf, reason: WeakKey },
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

/// Reads a public key file; the key must satisfy the key rule.
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyFileError> {
    let pem = fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let key = VerifyingKey::from_public_key_pem(&pem).map_err(|e| KeyFileError::BadPublicKey {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    PublicKey::from_verifying_key(&key).map_err(|reason| KeyFileError::WeakPublicKey {
        path: path.to_owned(),
        reason,
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
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn contexts_are_separated() {
        let k = key(1);
        let public = PublicKey::from(&k);
        let signature = sign(&k, SigningContext::Observation, b"body");
        assert!(public.verify(SigningContext::Observation, b"body", &signature));
        assert!(!public.verify(SigningContext::Command, b"body", &signature));
        assert!(!public.verify(SigningContext::Observation, b"bodz", &signature));
        assert!(!public.verify(SigningContext::Observation, b"body", &signature[..63]));
    }

    #[test]
    fn signed_message_layout_is_exact() {
        assert_eq!(
            signed_message(SigningContext::Command, b"xy"),
            b"uptime-ledger/v1/command\0xy".to_vec()
        );
        let k = key(2);
        let signature = k.sign(b"a signed note\n").to_bytes();
        assert!(PublicKey::from(&k).verify_message(b"a signed note\n", &signature));
    }

    #[test]
    fn the_key_rule_refuses_what_is_not_a_prime_order_point() {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        assert_eq!(PublicKey::from_bytes(&[1; 31]), Err(WeakKey::Length(31)));
        // The identity, and every point of small order.
        for torsion in EIGHT_TORSION {
            assert_eq!(
                PublicKey::from_bytes(torsion.compress().as_bytes()),
                Err(WeakKey::SmallOrder)
            );
        }
        // A prime-order point plus a small-order one.
        let mixed = ED25519_BASEPOINT_POINT + EIGHT_TORSION[1];
        assert_eq!(
            PublicKey::from_bytes(mixed.compress().as_bytes()),
            Err(WeakKey::MixedOrder)
        );
        // y = 1 with the sign bit set: the identity, encoded as "x = -0".
        let mut minus_zero = [0u8; 32];
        minus_zero[0] = 1;
        minus_zero[31] = 0x80;
        assert_eq!(
            PublicKey::from_bytes(&minus_zero),
            Err(WeakKey::NotCanonical)
        );
        // y = 2 is not the y of any point of edwards25519.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(PublicKey::from_bytes(&not_a_point), Err(WeakKey::NotAPoint));
        let honest = key(3).verifying_key();
        assert_eq!(
            PublicKey::from_bytes(honest.as_bytes()),
            Ok(PublicKey::from(&key(3)))
        );
    }

    proptest! {
        /// On keys the rule admits, the rule's verdict is ed25519-dalek's `verify_strict`
        /// verdict, for honest signatures and for signatures with any byte changed.
        #[test]
        fn the_rule_agrees_with_verify_strict(
            seed in any::<[u8; 32]>(),
            message in proptest::collection::vec(any::<u8>(), 0..300),
            position in 0usize..64,
            flip in any::<u8>(),
        ) {
            let signing = SigningKey::from_bytes(&seed);
            let public = PublicKey::from(&signing);
            let mut signature = signing.sign(&message).to_bytes();
            prop_assert!(public.verify_message(&message, &signature));
            signature[position] ^= flip;
            let strict = signing
                .verifying_key()
                .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&signature))
                .is_ok();
            prop_assert_eq!(public.verify_message(&message, &signature), strict);
            prop_assert_eq!(strict, flip == 0);
        }
    }

    #[test]
    fn key_files_round_trip_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.pem");
        let key = generate_key_files(&path).unwrap();
        assert_eq!(read_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(
            read_public_key(&public_key_path(&path)).unwrap(),
            PublicKey::from(&key)
        );
        assert!(matches!(
            generate_key_files(&path),
            Err(KeyFileError::Exists { .. })
        ));
        assert!(matches!(
            read_public_key(&path),
            Err(KeyFileError::BadPublicKey { .. })
        ));
    }
}
