//! Tree roots, inclusion proofs and consistency proofs (RFC 9162 §2.1.1,
//! §2.1.3.1 and §2.1.4.1), computed from perfect-subtree hashes.
//!
//! The RFC defines MTH, PATH and SUBPROOF recursively over leaf ranges,
//! splitting each range at the largest power of two below its length. Every
//! range that recursion visits is either a perfect subtree (one lookup) or a
//! range ending at the tree size, on the right edge, whose hash is folded from
//! the perfect subtrees its length decomposes into (O(log n) lookups). A proof
//! holds at most one right-edge hash: once the recursion steps into a left
//! half, that half is perfect and so is everything below it. Every function
//! here therefore costs O(log n) lookups, whatever the tree size.
//!
//! The recursion is walked iteratively from the root down, collecting one
//! sibling per step; PATH and SUBPROOF list those siblings from the bottom up,
//! so the collected list is reversed at the end.

use super::{empty_root, node_hash, Hash, SubtreeSource};

/// Why a root or proof could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    /// The caller asked about a leaf the tree does not hold.
    #[error("leaf index {index} is not below tree size {tree_size}")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    /// The caller asked for consistency from a larger tree to a smaller one.
    #[error("first tree size {first} is larger than second tree size {second}")]
    FirstLargerThanSecond { first: u64, second: u64 },
    /// The caller asked for consistency from the empty tree, which RFC 9162
    /// does not define and which would prove nothing.
    #[error("a consistency proof from the empty tree is not defined")]
    EmptyFirstTree,
    /// The store could not produce a subtree hash the proof needs.
    #[error("reading a subtree hash failed")]
    Source(#[source] E),
}

/// Returns the root hash of the first `tree_size` leaves (RFC 9162 MTH); the
/// empty tree's root is [`empty_root`].
pub fn root<S: SubtreeSource>(source: &S, tree_size: u64) -> Result<Hash, ProofError<S::Error>> {
    if tree_size == 0 {
        return Ok(empty_root());
    }
    range_hash(source, 0, tree_size).map_err(ProofError::Source)
}

/// Returns the inclusion proof of leaf `index` in the tree of `tree_size`
/// leaves (RFC 9162 PATH), ordered from the leaf's sibling up to the root's
/// child.
pub fn inclusion_proof<S: SubtreeSource>(
    source: &S,
    index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let mut proof = Vec::new();
    let (mut start, mut end) = (0, tree_size);
    while end - start > 1 {
        let split = start + largest_power_of_two_below(end - start);
        if index < split {
            proof.push(range_hash(source, split, end).map_err(ProofError::Source)?);
            end = split;
        } else {
            proof.push(range_hash(source, start, split).map_err(ProofError::Source)?);
            start = split;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Returns the proof that the tree of `first` leaves is a prefix of the tree
/// of `second` leaves (RFC 9162 PROOF and SUBPROOF).
///
/// Equal sizes give the empty proof; an empty first tree is rejected.
pub fn consistency_proof<S: SubtreeSource>(
    source: &S,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if first > second {
        return Err(ProofError::FirstLargerThanSecond { first, second });
    }
    if first == 0 {
        return Err(ProofError::EmptyFirstTree);
    }
    // SUBPROOF's flag `b` ("the verifier already knows this range's hash")
    // holds exactly while the range still starts at leaf 0, because the first
    // step into a right half clears it and nothing sets it again; so the flag
    // is `start == 0` here. Throughout, `start < first <= end`.
    let mut proof = Vec::new();
    let (mut start, mut end) = (0, second);
    while first != end {
        let split = start + largest_power_of_two_below(end - start);
        if first <= split {
            proof.push(range_hash(source, split, end).map_err(ProofError::Source)?);
            end = split;
        } else {
            proof.push(range_hash(source, start, split).map_err(ProofError::Source)?);
            start = split;
        }
    }
    if start != 0 {
        proof.push(range_hash(source, start, end).map_err(ProofError::Source)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Returns MTH of leaves `[start, end)` for a non-empty range that the RFC
/// recursion visits: `start` is a multiple of every power of two up to
/// `end - start`.
///
/// The range's perfect subtrees are given by the binary decomposition of its
/// length, largest first, and MTH of the range is their hashes folded from
/// the right: each split of the RFC recursion peels off the leftmost of them.
fn range_hash<S: SubtreeSource>(source: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    debug_assert!(start < end, "the range [{start}, {end}) is empty");
    let width = end - start;
    let lowest_level = width.trailing_zeros();
    let mut subtree_start = end - (1 << lowest_level);
    let mut hash = source.subtree(lowest_level as u8, subtree_start >> lowest_level)?;
    let mut remaining_width = width & (width - 1);
    while remaining_width != 0 {
        let level = remaining_width.trailing_zeros();
        subtree_start -= 1 << level;
        let left = source.subtree(level as u8, subtree_start >> level)?;
        hash = node_hash(&left, &hash);
        remaining_width &= remaining_width - 1;
    }
    Ok(hash)
}

/// Returns the largest power of two strictly below `width`, where the RFC
/// splits a range of `width` leaves; `width` must be at least 2.
fn largest_power_of_two_below(width: u64) -> u64 {
    debug_assert!(width >= 2, "a range of {width} leaves has no split");
    1 << (u64::BITS - 1 - (width - 1).leading_zeros())
}
