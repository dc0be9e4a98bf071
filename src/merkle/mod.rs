//! RFC 6962 / RFC 9162 Merkle tree math over the log's entries: hashing,
//! roots, inclusion and consistency proofs, their verification, and the
//! append-side bookkeeping that turns new leaves into stored tiles.
//!
//! # Layout
//!
//! - this file: the hash functions and [`SubtreeSource`], the one question
//!   every proof is built from ("what is the hash of this perfect subtree?").
//! - `proof.rs`: tree roots, inclusion proofs and consistency proofs computed
//!   from any [`SubtreeSource`] (RFC 9162 §2.1.3.1, §2.1.4.1).
//! - `verify.rs`: checking those proofs (RFC 9162 §2.1.3.2, §2.1.4.2).
//! - `frontier.rs`: the right edge of a growing tree, enough to append leaves
//!   and compute the root without looking at anything else.
//! - `tile.rs`: the storage layout (tiles of 256 hashes, after C2SP
//!   tlog-tiles), the writer that produces tile writes from appended leaves,
//!   and a [`SubtreeSource`] that answers from stored tiles.
//!
//! # Coordinates
//!
//! A perfect subtree is named by `(level, index)`: it is the subtree of
//! height `level` that covers leaves `[index << level, (index + 1) << level)`.
//! Leaf hashes are level 0. Perfect subtrees never change once the log has
//! grown past them, which is what makes them safe to store; nodes on the
//! right edge of a tree whose size is not a power of two are never stored and
//! are always recomputed by folding the perfect subtrees they decompose into.
//!
//! # Conventions where the RFC is silent
//!
//! - The root of the empty tree is SHA-256 of the empty string.
//! - A consistency proof between equal sizes is empty (RFC 9162), and one
//!   whose first tree is empty is rejected as an invalid argument, both when
//!   proving and when verifying: it would prove nothing.
//!
//! Everything here is pure: storage is reached only through the
//! [`SubtreeSource`] and [`TileReader`] traits, and writes are returned as
//! values for the caller to persist.

mod frontier;
mod proof;
mod tile;
mod verify;

#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};

pub use self::frontier::{Frontier, PerfectSubtree};
pub use self::proof::{consistency_proof, inclusion_proof, root, ProofError};
pub use self::tile::{
    TileAppender, TileError, TileReader, TileSubtreeSource, TileWrite, TILE_HEIGHT, TILE_WIDTH,
};
pub use self::verify::{verify_consistency, verify_inclusion, VerifyError};

/// The number of bytes in a `Hash`.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; HASH_SIZE];

/// Domain-separation prefix of leaf hashes (RFC 6962 §2.1), so that no leaf
/// can be passed off as an interior node and vice versa.
const LEAF_HASH_PREFIX: u8 = 0x00;

/// Domain-separation prefix of interior node hashes (RFC 6962 §2.1).
const NODE_HASH_PREFIX: u8 = 0x01;

/// Storage of perfect-subtree hashes, seen from the proof code.
///
/// Proofs, roots and frontiers only ever ask for perfect subtrees, so any
/// store that can answer this one question can serve all of them.
pub trait SubtreeSource {
    /// Why a subtree hash could not be produced; for a consistent store this
    /// only happens on I/O failure or when asked about leaves it does not hold.
    type Error;

    /// Returns the hash of the perfect subtree at `level` covering leaves
    /// `[index << level, (index + 1) << level)`.
    fn subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: SubtreeSource + ?Sized> SubtreeSource for &S {
    type Error = S::Error;

    fn subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        (**self).subtree(level, index)
    }
}

/// Hashes a log entry into its leaf hash: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([LEAF_HASH_PREFIX])
        .chain_update(entry)
        .finalize()
        .into()
}

/// Hashes two child hashes into their parent: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([NODE_HASH_PREFIX])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}
