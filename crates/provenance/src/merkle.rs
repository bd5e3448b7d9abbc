//! RFC 6962 / RFC 9162 Merkle inclusion proofs, as Rekor builds its tree.
//!
//! sigstore-rs 0.15 does not check a bundle's inclusion proof at all; without this, "the
//! entry is in the log" would rest on the bundle's word.

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 tree hash.
pub(crate) type Hash = [u8; 32];

/// Why an inclusion proof cannot even be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("{got} hashes for leaf {index} of a tree of {size}, expected {expected}")]
    WrongLength {
        index: u64,
        size: u64,
        got: usize,
        expected: usize,
    },
    #[error("hash {0} is not 32 bytes")]
    BadHash(usize),
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
pub(crate) fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub(crate) fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root hash an inclusion proof leads to from `leaf` at `index` in a tree of `size`
/// leaves (RFC 9162 §2.1.3.2). The caller compares it with a root it trusts.
///
/// The proof length must be exactly the one the index and size imply, so that no extra
/// hashes ride along unchecked.
pub(crate) fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: Hash,
    proof: &[Vec<u8>],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = expected_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            index,
            size,
            got: proof.len(),
            expected,
        });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = leaf;
    for (i, p) in proof.iter().enumerate() {
        let p: &Hash = p
            .as_slice()
            .try_into()
            .map_err(|_| ProofError::BadHash(i))?;
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // With the length fixed above, the walk always ends at the root (s_n == 0); this only
    // guards the arithmetic.
    if s_n != 0 {
        return Err(ProofError::WrongLength {
            index,
            size,
            got: proof.len(),
            expected,
        });
    }
    Ok(r)
}

/// Proof length for leaf `index` of a tree of `size` (index < size): the hashes below the
/// point where the paths to `index` and `size - 1` split, plus one per left subtree above it.
fn expected_proof_len(index: u64, size: u64) -> usize {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    // Both are at most 64.
    (inner + border) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH(D[n]) straight from RFC 6962 §2.1: split at the largest power of two below n.
    fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// PATH(m, D[n]) from RFC 6962 §2.1.1.
    fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]).to_vec());
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]).to_vec());
            p
        }
    }

    /// Largest power of two strictly below `n` (n > 1).
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// The leaves of the certificate-transparency test vectors (RFC 6962 test data).
    fn ct_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).expect("hex"))
        .collect()
    }

    #[test]
    fn tree_builder_matches_published_roots() {
        let leaves = ct_leaves();
        // Roots of the first 1, 2 and 8 leaves, as published with the CT reference code.
        let published = [
            (
                1,
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            ),
            (
                2,
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            ),
            (
                8,
                "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
            ),
        ];
        for (n, root) in published {
            assert_eq!(hex::encode(mth(&leaves[..n])), root, "root of {n} leaves");
        }
    }

    #[test]
    fn every_leaf_of_trees_of_1_to_17_leaves_verifies() {
        let leaves: Vec<Vec<u8>> = (0u8..17).map(|i| vec![i, i.wrapping_mul(7)]).collect();
        for n in 1..=leaves.len() {
            let tree = &leaves[..n];
            let root = mth(tree);
            for m in 0..n {
                let proof = path(m, tree);
                let (m64, n64) = (m as u64, n as u64);
                let got = root_from_inclusion_proof(m64, n64, leaf_hash(&tree[m]), &proof);
                assert_eq!(got, Ok(root), "leaf {m} of {n}");

                // The same proof must not place another leaf, or this leaf elsewhere.
                let other = root_from_inclusion_proof(m64, n64, leaf_hash(b"other"), &proof);
                assert_ne!(other, Ok(root), "foreign leaf accepted at {m} of {n}");
                if n > 1 {
                    let moved = root_from_inclusion_proof(
                        (m64 + 1) % n64,
                        n64,
                        leaf_hash(&tree[m]),
                        &proof,
                    );
                    assert_ne!(moved, Ok(root), "leaf {m} of {n} accepted at another index");
                }
                // Every single-bit flip in every proof hash breaks it.
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][31] ^= 1;
                    let got = root_from_inclusion_proof(m64, n64, leaf_hash(&tree[m]), &bad);
                    assert_ne!(got, Ok(root), "flipped hash {i} for leaf {m} of {n}");
                }
                // A hash too many or too few is refused outright.
                let mut long = proof.clone();
                long.push(root.to_vec());
                assert!(matches!(
                    root_from_inclusion_proof(m64, n64, leaf_hash(&tree[m]), &long),
                    Err(ProofError::WrongLength { .. })
                ));
                if !proof.is_empty() {
                    assert!(matches!(
                        root_from_inclusion_proof(m64, n64, leaf_hash(&tree[m]), &proof[1..]),
                        Err(ProofError::WrongLength { .. })
                    ));
                }
            }
        }
    }

    #[test]
    fn structural_errors() {
        let leaf = leaf_hash(b"x");
        assert_eq!(
            root_from_inclusion_proof(3, 3, leaf, &[]),
            Err(ProofError::IndexOutOfRange { index: 3, size: 3 })
        );
        assert_eq!(
            root_from_inclusion_proof(0, 0, leaf, &[]),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            root_from_inclusion_proof(0, 2, leaf, &[vec![0; 31]]),
            Err(ProofError::BadHash(0))
        );
        // Extreme sizes do not overflow.
        for (index, size) in [
            (u64::MAX - 1, u64::MAX),
            (0, u64::MAX),
            (1 << 62, (1 << 63) + 5),
        ] {
            let proof = vec![vec![0u8; 32]; expected_proof_len(index, size)];
            assert!(root_from_inclusion_proof(index, size, leaf, &proof).is_ok());
        }
    }
}
