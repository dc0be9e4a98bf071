//! The right edge of a growing tree: just enough state to append leaves and
//! compute the root, without reading anything back from storage.

use super::{empty_root, node_hash, Hash, SubtreeSource};

/// The perfect subtrees a tree of `size` leaves decomposes into, one per set
/// bit of `size` (a "compact range" covering `[0, size)`).
///
/// Invariant: `peaks` holds exactly `size.count_ones()` hashes, largest
/// subtree first; peak `i` is the perfect subtree for the `i`-th set bit of
/// `size` counting from the most significant one. Both fields are private and
/// only [`Frontier::push`] changes them, together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

/// A perfect subtree that an append completed, in the coordinates of
/// [`SubtreeSource`](super::SubtreeSource): it covers leaves
/// `[index << level, (index + 1) << level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfectSubtree {
    pub level: u8,
    pub index: u64,
    pub hash: Hash,
}

impl Frontier {
    /// Returns the frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of the tree of `size` leaves from stored
    /// subtrees, with one lookup per peak.
    pub fn from_source<S: SubtreeSource>(source: &S, size: u64) -> Result<Self, S::Error> {
        let mut peaks = Vec::with_capacity(size.count_ones() as usize);
        let mut covered_leaves: u64 = 0;
        for level in (0..u64::BITS).rev() {
            if size >> level & 1 == 1 {
                peaks.push(source.subtree(level as u8, covered_leaves >> level)?);
                covered_leaves += 1 << level;
            }
        }
        Ok(Self { size, peaks })
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of the perfect subtrees the tree decomposes into, largest
    /// (leftmost) first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf and reports, smallest first, every perfect subtree the
    /// append completed: the leaf itself at level 0, then each subtree formed
    /// by merging it with equal-sized peaks to its left.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves, which no log will reach.
    pub fn push(&mut self, leaf_hash: Hash, mut on_completed: impl FnMut(PerfectSubtree)) {
        let new_size = self
            .size
            .checked_add(1)
            .expect("a Merkle tree holds fewer than 2^64 leaves");
        let mut completed = PerfectSubtree {
            level: 0,
            index: self.size,
            hash: leaf_hash,
        };
        on_completed(completed);
        // Each trailing set bit of the old size is a peak of the same size as
        // the subtree being carried, so the two merge, like a binary carry.
        for _ in 0..self.size.trailing_ones() {
            let left = self
                .peaks
                .pop()
                .expect("the frontier holds one peak per set bit of its size");
            completed = PerfectSubtree {
                level: completed.level + 1,
                index: completed.index >> 1,
                hash: node_hash(&left, &completed.hash),
            };
            on_completed(completed);
        }
        self.peaks.push(completed.hash);
        self.size = new_size;
    }

    /// The root hash of the tree: the peaks folded from the right, which is
    /// RFC 9162 MTH because every split of its recursion peels off the
    /// leftmost peak.
    pub fn root(&self) -> Hash {
        let mut peaks_right_to_left = self.peaks.iter().rev();
        match peaks_right_to_left.next() {
            None => empty_root(),
            Some(rightmost) => {
                peaks_right_to_left.fold(*rightmost, |right, left| node_hash(left, &right))
            }
        }
    }
}
