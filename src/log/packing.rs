//! How the store packs many small records into one sled value: runs of consecutive log
//! entries ("entry chunks") and a probe's accepted (seq, index) pairs ("seq blocks").
//!
//! sled 0.34 splits a leaf at 16 items and writes every insert as its own page delta, so
//! one key per entry or per accepted seq costs several times the bytes stored and most of
//! the writer's time; `examples/sledamp.rs` measures it, ARCHITECTURE.md "Storage layout"
//! lists the keys.
//!
//! Both encodings are plain LEB128 varints (prost's), so a value never needs a schema:
//! - entry chunk: `(len, bytes)` for each entry, in index order; the chunk's key holds the
//!   index of its first entry;
//! - seq block: `seq, index` of the first pair, then `seq - previous seq,
//!   index - previous index` for each next one (both strictly increase along the log, so
//!   every delta is at least 1); the block's key holds its first seq.
//!
//! Pure functions; a value that does not decode is reported, never guessed at.

use prost::encoding::{decode_varint, encode_varint};

/// Most entries in one chunk. sled splits a leaf after 16 values and writes a page larger
/// than 128 KiB (its segment size / 4) to a blob file of its own: with typical entries
/// (~130 bytes) a leaf of 32-entry chunks is ~70 KiB; entries with the longest details
/// (~500 bytes) can push a leaf into a blob file, which is correct (blob files are
/// fsynced too) but slower. 16–64 entries per chunk measured the same (`sledamp`).
pub const ENTRIES_PER_CHUNK: usize = 32;

/// (seq, index) pairs per stored seq block; a probe's newer pairs wait in memory (and are
/// rebuilt from the log when it is opened) until they fill a block.
pub const PAIRS_PER_BLOCK: usize = 64;

/// A stored value that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Packs entries into one chunk value.
pub fn encode_chunk<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    let size: usize = entries.iter().map(|e| e.as_ref().len() + 3).sum();
    let mut out = Vec::with_capacity(size);
    for entry in entries {
        let entry = entry.as_ref();
        encode_varint(entry.len() as u64, &mut out);
        out.extend_from_slice(entry);
    }
    out
}

/// The entries of a chunk value, in order.
pub fn decode_chunk(mut value: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    let mut entries = Vec::new();
    while !value.is_empty() {
        let len = decode_varint(&mut value)
            .map_err(|e| Malformed(format!("an entry chunk has a bad length: {e}")))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= value.len())
            .ok_or_else(|| {
                Malformed(format!(
                    "an entry chunk says an entry has {len} bytes but only {} remain",
                    value.len()
                ))
            })?;
        let (entry, rest) = value.split_at(len);
        entries.push(entry);
        value = rest;
    }
    if entries.is_empty() {
        return Err(Malformed("an entry chunk is empty".into()));
    }
    Ok(entries)
}

/// Packs a probe's (seq, index) pairs, both strictly increasing, into one block value.
///
/// # Panics
/// If `pairs` is empty or not strictly increasing in both: the writer makes them from
/// the log's order, so that would be a bug in the writer, not bad input.
pub fn encode_block(pairs: &[(u64, u64)]) -> Vec<u8> {
    assert!(!pairs.is_empty(), "a seq block holds at least one pair");
    let mut out = Vec::with_capacity(pairs.len() * 4 + 16);
    let (mut seq, mut index) = pairs[0];
    encode_varint(seq, &mut out);
    encode_varint(index, &mut out);
    for &(next_seq, next_index) in &pairs[1..] {
        assert!(
            next_seq > seq && next_index > index,
            "seq block pairs increase"
        );
        encode_varint(next_seq - seq, &mut out);
        encode_varint(next_index - index, &mut out);
        (seq, index) = (next_seq, next_index);
    }
    out
}

/// The index paired with `seq` in a probe's pairs (sorted by seq), if any.
pub fn index_of_seq(pairs: &[(u64, u64)], seq: u64) -> Option<u64> {
    pairs
        .binary_search_by_key(&seq, |&(s, _)| s)
        .ok()
        .map(|at| pairs[at].1)
}

/// The (seq, index) pairs of a block value, in order.
pub fn decode_block(mut value: &[u8]) -> Result<Vec<(u64, u64)>, Malformed> {
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    while !value.is_empty() {
        let bad = |e: prost::DecodeError| Malformed(format!("a seq block does not decode: {e}"));
        let a = decode_varint(&mut value).map_err(bad)?;
        let b = decode_varint(&mut value).map_err(bad)?;
        let pair = match pairs.last() {
            None => (a, b),
            Some(&(seq, index)) => {
                if a == 0 || b == 0 {
                    return Err(Malformed("a seq block does not increase".into()));
                }
                match (seq.checked_add(a), index.checked_add(b)) {
                    (Some(seq), Some(index)) => (seq, index),
                    _ => return Err(Malformed("a seq block overflows".into())),
                }
            }
        };
        pairs.push(pair);
    }
    if pairs.is_empty() {
        return Err(Malformed("a seq block is empty".into()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_chunk_round_trips_entries_of_any_length() {
        let entries: Vec<Vec<u8>> = vec![vec![1], vec![2; 200], vec![3; 127], vec![4; 128]];
        let value = encode_chunk(&entries);
        let decoded = decode_chunk(&value).unwrap();
        assert_eq!(
            decoded,
            entries.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
    }

    #[test]
    fn damaged_chunks_are_reported() {
        let value = encode_chunk(&[vec![7u8; 40]]);
        assert!(decode_chunk(&value[..20]).is_err(), "truncated");
        assert!(decode_chunk(&[]).is_err(), "empty");
        assert!(
            decode_chunk(&[0xff; 12]).is_err(),
            "a length that never ends"
        );
    }

    #[test]
    fn a_block_stores_deltas_and_round_trips() {
        let pairs = vec![(5, 1000), (6, 1001), (9, 5000), (1 << 40, 1 << 33)];
        let value = encode_block(&pairs);
        assert_eq!(decode_block(&value).unwrap(), pairs);
        assert!(
            encode_block(&[(1, 1), (2, 2)]).len() == 4,
            "small deltas, one byte each"
        );
    }

    #[test]
    fn a_seq_is_found_only_where_it_is() {
        let pairs = [(3, 10), (5, 11), (9, 40)];
        assert_eq!(index_of_seq(&pairs, 5), Some(11));
        assert_eq!(index_of_seq(&pairs, 9), Some(40));
        assert_eq!(index_of_seq(&pairs, 4), None);
        assert_eq!(index_of_seq(&[], 4), None);
    }

    #[test]
    fn damaged_blocks_are_reported() {
        assert!(decode_block(&[]).is_err(), "empty");
        assert!(decode_block(&[1]).is_err(), "half a pair");
        assert!(
            decode_block(&[1, 1, 0, 1]).is_err(),
            "a seq that does not increase"
        );
        let mut overflow = encode_block(&[(u64::MAX - 1, 1)]);
        overflow.extend_from_slice(&[5, 1]);
        assert!(decode_block(&overflow).is_err(), "overflow");
    }

    proptest! {
        #[test]
        fn chunks_round_trip(entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..40)) {
            let value = encode_chunk(&entries);
            let decoded = decode_chunk(&value).unwrap();
            prop_assert_eq!(decoded, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }

        #[test]
        fn blocks_round_trip(start in (any::<u32>(), any::<u32>()), steps in prop::collection::vec((1u64..1000, 1u64..100_000), 0..80)) {
            let mut pairs = vec![(u64::from(start.0), u64::from(start.1))];
            for (ds, di) in steps {
                let (s, i) = *pairs.last().unwrap();
                pairs.push((s + ds, i + di));
            }
            prop_assert_eq!(decode_block(&encode_block(&pairs)).unwrap(), pairs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_chunk(&bytes);
            let _ = decode_block(&bytes);
        }
    }
}
