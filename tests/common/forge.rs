//! Signatures that satisfy only the cofactored Ed25519 equation: made with the probe's own
//! key, with `R = rB + T` for a point `T` of small order, `k = SHA-512(R || A || M)` and
//! `s = r + k·a`. Stock verifiers (OpenSSL/PyCA, Go, libsodium, ed25519-dalek
//! `verify_strict`) reject them; a cofactored or batch verifier may accept them.

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha512};

use uptime_ledger::crypto::{self, SigningContext};
use uptime_ledger::pb;

/// `EIGHT_TORSION` holds the points of order 1, 8, 4, 8, 2, 8, 4, 8: one index per order.
pub const TORSION_OF_ORDER: [(u32, usize); 3] = [(2, 4), (4, 2), (8, 1)];

/// The secret scalar of `key`, as Ed25519 derives it from the seed.
fn secret_scalar(key: &SigningKey) -> Scalar {
    let hash = Sha512::digest(key.to_bytes());
    let mut lower: [u8; 32] = hash[..32].try_into().unwrap();
    lower[0] &= 248;
    lower[31] &= 127;
    lower[31] |= 64;
    Scalar::from_bytes_mod_order(lower)
}

/// A signature by `key` over `message` whose `R` carries the small-order point
/// `EIGHT_TORSION[torsion]`; `nonce` picks `r`.
pub fn torsioned_signature(
    key: &SigningKey,
    message: &[u8],
    torsion: usize,
    nonce: u64,
) -> [u8; 64] {
    let r = hash_scalar(&[b"test nonce", &nonce.to_le_bytes(), message]);
    let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[torsion]).compress();
    let k = hash_scalar(&[big_r.as_bytes(), key.verifying_key().as_bytes(), message]);
    let s = r + k * secret_scalar(key);
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(big_r.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    assert!(
        satisfies_cofactored_equation(key, message, &signature),
        "the construction is a cofactored-valid signature"
    );
    signature
}

/// Whether `[8]([s]B - [k]A - R)` is the identity: what a cofactored verifier checks.
pub fn satisfies_cofactored_equation(
    key: &SigningKey,
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    let big_r = curve25519_dalek::edwards::CompressedEdwardsY(signature[..32].try_into().unwrap())
        .decompress()
        .unwrap();
    let s = Scalar::from_canonical_bytes(signature[32..].try_into().unwrap()).unwrap();
    let a = key.verifying_key().to_edwards();
    let k = hash_scalar(&[&signature[..32], key.verifying_key().as_bytes(), message]);
    (EdwardsPoint::mul_base(&s) - k * a - big_r)
        .mul_by_cofactor()
        .is_identity()
}

/// SHA-512 of the concatenated `parts`, reduced mod ℓ.
fn hash_scalar(parts: &[&[u8]]) -> Scalar {
    let mut hash = Sha512::new();
    for part in parts {
        hash.update(part);
    }
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
}

/// `signed` with its signature replaced by a torsioned one over the same body.
pub fn torsioned_observation(
    key: &SigningKey,
    signed: &pb::SignedObservation,
    torsion: usize,
    nonce: u64,
) -> pb::SignedObservation {
    let message = crypto::signed_message(SigningContext::Observation, &signed.body);
    pb::SignedObservation {
        body: signed.body.clone(),
        signature: torsioned_signature(key, &message, torsion, nonce).to_vec(),
    }
}
