//! Verification of inclusion and consistency proofs, exactly as RFC 9162
//! §2.1.3.2 and §2.1.4.2 describe it.
//!
//! The inputs come from untrusted parties, so these functions accept any
//! values without panicking and reject every proof that is not exactly the
//! one the RFC would produce: the RFC loops stop on the first hash beyond the
//! tree's height and require the whole height to be covered, so a hash added,
//! dropped or changed anywhere is caught.
//!
//! The RFC's `fn` and `sn` are the indexes, at the current level, of the node
//! being proven and of the last node of the (second) tree; they are named
//! that way below.

use super::{node_hash, Hash};

/// Why a proof was rejected. Every variant means "do not trust this claim";
/// they differ only to say what was wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The proof claims a leaf the tree cannot hold.
    #[error("leaf index {index} is not below tree size {tree_size}")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    /// The proof claims a tree shrank.
    #[error("first tree size {first} is larger than second tree size {second}")]
    FirstLargerThanSecond { first: u64, second: u64 },
    /// The proof claims consistency from the empty tree, which RFC 9162 does
    /// not define and which would prove nothing.
    #[error("a consistency proof from the empty tree is not defined")]
    EmptyFirstTree,
    /// The proof has hashes left over after reaching the root.
    #[error("the proof has more hashes than the tree sizes call for")]
    ProofTooLong,
    /// The proof runs out of hashes before reaching the root.
    #[error("the proof has fewer hashes than the tree sizes call for")]
    ProofTooShort,
    /// The inclusion proof leads to a different root.
    #[error("the inclusion proof does not lead to the given root")]
    RootMismatch,
    /// The consistency proof does not rebuild the first tree's root.
    #[error("the consistency proof does not lead to the first root")]
    FirstRootMismatch,
    /// The consistency proof does not rebuild the second tree's root; for
    /// equal sizes this means the two roots differ.
    #[error("the consistency proof does not lead to the second root")]
    SecondRootMismatch,
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `tree_size` leaves
/// whose root is `root`, given its inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= tree_size {
        return Err(VerifyError::IndexOutOfRange { index, tree_size });
    }
    let mut proven_node = index;
    let mut last_node = tree_size - 1;
    let mut computed_root = *leaf_hash;
    for sibling in proof {
        if last_node == 0 {
            return Err(VerifyError::ProofTooLong);
        }
        if proven_node & 1 == 1 || proven_node == last_node {
            computed_root = node_hash(sibling, &computed_root);
            // When the proven node is the last of its level and a left child,
            // it has no sibling there and moves up unchanged until it becomes
            // a right child, which is where the sibling just hashed in
            // belongs; the RFC skips the levels in between.
            while proven_node & 1 == 0 && proven_node != 0 {
                proven_node >>= 1;
                last_node >>= 1;
            }
        } else {
            computed_root = node_hash(&computed_root, sibling);
        }
        proven_node >>= 1;
        last_node >>= 1;
    }
    if last_node != 0 {
        return Err(VerifyError::ProofTooShort);
    }
    if computed_root != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `first` leaves with root `first_root` is a prefix
/// of the tree of `second` leaves with root `second_root`, given their
/// consistency proof (RFC 9162 §2.1.4.2).
///
/// Equal sizes require an empty proof and equal roots; an empty first tree is
/// rejected.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if first > second {
        return Err(VerifyError::FirstLargerThanSecond { first, second });
    }
    if first == 0 {
        return Err(VerifyError::EmptyFirstTree);
    }
    if first == second {
        if !proof.is_empty() {
            return Err(VerifyError::ProofTooLong);
        }
        if first_root != second_root {
            return Err(VerifyError::SecondRootMismatch);
        }
        return Ok(());
    }
    // When the first tree is a perfect subtree of the second, the proof
    // leaves out its root, which the verifier already holds; the RFC puts it
    // back in front of the proof.
    let (seed, remaining_proof) = match proof.split_first() {
        None => return Err(VerifyError::ProofTooShort),
        Some(_) if first.is_power_of_two() => (first_root, proof),
        Some((seed, remaining_proof)) => (seed, remaining_proof),
    };
    let mut first_last_node = first - 1;
    let mut second_last_node = second - 1;
    // The seed is the largest perfect subtree ending at the first tree's last
    // leaf, so the walk starts at the seed's level.
    while first_last_node & 1 == 1 {
        first_last_node >>= 1;
        second_last_node >>= 1;
    }
    let mut computed_first_root = *seed;
    let mut computed_second_root = *seed;
    for sibling in remaining_proof {
        if second_last_node == 0 {
            return Err(VerifyError::ProofTooLong);
        }
        if first_last_node & 1 == 1 || first_last_node == second_last_node {
            computed_first_root = node_hash(sibling, &computed_first_root);
            computed_second_root = node_hash(sibling, &computed_second_root);
            // As for inclusion, a last node that is a left child moves up
            // unchanged until it becomes a right child.
            while first_last_node & 1 == 0 && first_last_node != 0 {
                first_last_node >>= 1;
                second_last_node >>= 1;
            }
        } else {
            computed_second_root = node_hash(&computed_second_root, sibling);
        }
        first_last_node >>= 1;
        second_last_node >>= 1;
    }
    if second_last_node != 0 {
        return Err(VerifyError::ProofTooShort);
    }
    if computed_first_root != *first_root {
        return Err(VerifyError::FirstRootMismatch);
    }
    if computed_second_root != *second_root {
        return Err(VerifyError::SecondRootMismatch);
    }
    Ok(())
}
