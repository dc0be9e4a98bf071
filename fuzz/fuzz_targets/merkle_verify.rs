//! The proof verifiers (RFC 9162 §2.1.3.2, §2.1.4.2) on proofs, sizes and roots from
//! anywhere: what an auditor runs on a server's answers.
//!
//! Checked: nothing panics on arbitrary indexes, sizes and hash lists; and for a real
//! tree of up to 300 leaves (hashed here, independently of the library's tree code), the
//! proofs the library builds verify, while a changed, dropped or added proof hash, or a
//! different leaf or first root, is rejected.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use uptime_ledger::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, node_hash, verify_consistency, verify_inclusion,
    Hash, SubtreeSource,
};

#[derive(Debug, Arbitrary)]
struct Input {
    index: u64,
    tree_size: u64,
    first: u64,
    second: u64,
    proof: Vec<[u8; 32]>,
    leaf: [u8; 32],
    root: [u8; 32],
    other_root: [u8; 32],
    real: Real,
}

/// A real tree of `leaves % 300 + 1` leaves, with a proof to tamper with.
#[derive(Debug, Arbitrary)]
struct Real {
    leaves: u16,
    index: u16,
    first: u16,
    tamper: Tamper,
}

#[derive(Debug, Arbitrary)]
enum Tamper {
    FlipBit { hash: u8, bit: u8 },
    Drop { hash: u8 },
    Add { hash: [u8; 32], at: u8 },
    WrongLeaf { leaf: u16 },
}

/// Leaf hashes, answering subtree questions by hashing from scratch (RFC 6962 §2.1).
struct Leaves(Vec<Hash>);

impl Leaves {
    fn hash(&self, range: std::ops::Range<usize>) -> Hash {
        if range.len() == 1 {
            return self.0[range.start];
        }
        // The largest power of two below the length.
        let split = 1usize << (usize::BITS - 1 - (range.len() - 1).leading_zeros());
        node_hash(
            &self.hash(range.start..range.start + split),
            &self.hash(range.start + split..range.end),
        )
    }
}

impl SubtreeSource for Leaves {
    type Error = std::convert::Infallible;

    fn subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let start = (index as usize) << level;
        Ok(self.hash(start..start + (1usize << level)))
    }
}

fn tampered(proof: &[Hash], tamper: &Tamper) -> Option<Vec<Hash>> {
    let mut proof = proof.to_vec();
    match *tamper {
        Tamper::FlipBit { hash, bit } => {
            if proof.is_empty() {
                return None;
            }
            let at = hash as usize % proof.len();
            proof[at][usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
        }
        Tamper::Drop { hash } => {
            if proof.is_empty() {
                return None;
            }
            proof.remove(hash as usize % proof.len());
        }
        Tamper::Add { hash, at } => proof.insert(at as usize % (proof.len() + 1), hash),
        Tamper::WrongLeaf { .. } => return None,
    }
    Some(proof)
}

fuzz_target!(|input: Input| {
    // Arbitrary claims: must never panic.
    let _ = verify_inclusion(
        &input.leaf,
        input.index,
        input.tree_size,
        &input.proof,
        &input.root,
    );
    let _ = verify_consistency(
        input.first,
        input.second,
        &input.root,
        &input.other_root,
        &input.proof,
    );

    // A real tree.
    let real = &input.real;
    let size = usize::from(real.leaves % 300) + 1;
    let leaves = Leaves(
        (0..size)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect(),
    );
    let n = size as u64;
    let root = leaves.hash(0..size);
    let index = u64::from(real.index) % n;
    let proof = inclusion_proof(&leaves, index, n).unwrap();
    let leaf = leaves.0[index as usize];
    assert_eq!(verify_inclusion(&leaf, index, n, &proof, &root), Ok(()));
    if let Some(bad) = tampered(&proof, &real.tamper) {
        assert!(verify_inclusion(&leaf, index, n, &bad, &root).is_err());
    }
    if let Tamper::WrongLeaf { leaf: other } = real.tamper {
        let other = leaf_hash(&(n + u64::from(other)).to_be_bytes());
        assert!(verify_inclusion(&other, index, n, &proof, &root).is_err());
    }

    let first = u64::from(real.first) % n + 1;
    let first_root = leaves.hash(0..first as usize);
    let proof = consistency_proof(&leaves, first, n).unwrap();
    assert_eq!(
        verify_consistency(first, n, &first_root, &root, &proof),
        Ok(())
    );
    if let Some(bad) = tampered(&proof, &real.tamper) {
        assert!(verify_consistency(first, n, &first_root, &root, &bad).is_err());
    }
    if let Tamper::WrongLeaf { leaf: other } = real.tamper {
        // A first root that is not the prefix's: the proof must not vouch for it.
        let other = leaf_hash(&(n + u64::from(other)).to_be_bytes());
        assert!(verify_consistency(first, n, &other, &root, &proof).is_err());
    }
});
