//! [`LeafTree`]: every perfect subtree of a prefix held in memory, built once from its
//! leaf hashes, so that any entry's inclusion proof can be cut from it.

use crate::merkle::{self, Hash, SubtreeSource};

/// The perfect subtrees of a tree: level 0 is the leaf hashes, level `k + 1` the parents
/// of the complete pairs of level `k`. About twice the leaves' memory.
#[derive(Debug, Clone)]
pub struct LeafTree {
    levels: Vec<Vec<Hash>>,
}

/// A subtree the tree does not hold (a question about leaves beyond its size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no perfect subtree at level {level}, index {index}")]
pub struct NoSuchSubtree {
    pub level: u8,
    pub index: u64,
}

impl LeafTree {
    pub fn new(leaves: Vec<Hash>) -> LeafTree {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|level| level.len() > 1) {
            let above = below
                .chunks_exact(2)
                .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        LeafTree { levels }
    }

    /// The leaves of `entries`, hashed.
    pub fn from_entries<E: AsRef<[u8]>>(entries: &[E]) -> LeafTree {
        LeafTree::new(
            entries
                .iter()
                .map(|e| merkle::leaf_hash(e.as_ref()))
                .collect(),
        )
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// The RFC 9162 root of the whole tree.
    pub fn root(&self) -> Hash {
        merkle::root(self, self.size()).unwrap_or_else(|_| merkle::empty_root())
    }

    /// The inclusion proof of leaf `index` in the whole tree.
    pub fn inclusion_proof(
        &self,
        index: u64,
    ) -> Result<Vec<Hash>, merkle::ProofError<NoSuchSubtree>> {
        merkle::inclusion_proof(self, index, self.size())
    }
}

impl SubtreeSource for LeafTree {
    type Error = NoSuchSubtree;

    fn subtree(&self, level: u8, index: u64) -> Result<Hash, NoSuchSubtree> {
        self.levels
            .get(usize::from(level))
            .and_then(|hashes| hashes.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(NoSuchSubtree { level, index })
    }
}
