//! Tiled storage of perfect-subtree hashes, after C2SP tlog-tiles: the writer
//! that turns appended leaves into tile writes, and the reader side that
//! answers [`SubtreeSource`] questions from stored tiles.
//!
//! Storing every perfect subtree on its own would cost one write per node;
//! grouping 256 hashes of one tree level into a tile turns a batch of leaves
//! into a handful of writes. Tile `(tile_level k, tile_index t)` holds the
//! hashes at tree level `8k` with indexes `[256t, 256t + 256)`, concatenated
//! in index order. Only completed perfect subtrees are stored, so a tree of
//! `n` leaves has `n >> 8k` hashes at tile level `k`: every tile is full except
//! the rightmost one of each tile level, which holds the remainder and does
//! not exist while the remainder is zero.
//!
//! Levels between two tile levels are not stored: the hash at level `8k + h`
//! (`0 < h < 8`) is folded from the `2^h` hashes under it at level `8k`, which
//! lie in a single tile because tiles are aligned to `2^8` hashes.
//!
//! Stored hashes never change once written, because the log only grows. A
//! tile stored for a larger tree therefore also serves every smaller one:
//! readers use the prefix they need and ignore the rest.

use super::{node_hash, Frontier, Hash, SubtreeSource, HASH_SIZE};

/// The number of tree levels a tile spans: tile level `k` stores tree level
/// `k * TILE_HEIGHT`.
pub const TILE_HEIGHT: u8 = 8;

/// The number of hashes in a full tile.
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;

/// The number of bytes in a full tile.
const FULL_TILE_BYTES: usize = TILE_WIDTH * HASH_SIZE;

/// The number of tile levels a tree can use: subtrees are at most 63 levels
/// high because tree sizes are `u64`.
const TILE_LEVEL_COUNT: u8 = (u64::BITS / TILE_HEIGHT as u32) as u8;

/// The new content of one tile, to be stored in place of what the store held
/// under that tile's coordinates.
///
/// The new content always starts with every hash the tile held at the tree
/// size the writer started from, so applying any subset of an append's writes
/// leaves the store valid for that earlier size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileWrite {
    pub tile_level: u8,
    pub tile_index: u64,
    /// The tile's hashes, concatenated: between 1 and [`TILE_WIDTH`] of them.
    pub hashes: Vec<u8>,
}

/// Storage of tiles, seen from the Merkle code.
pub trait TileReader {
    /// Why the store could not be read.
    type Error;

    /// Returns the stored content of the tile, or `None` if nothing is stored
    /// under those coordinates.
    fn tile(&self, tile_level: u8, tile_index: u64) -> Result<Option<Vec<u8>>, Self::Error>;
}

impl<R: TileReader + ?Sized> TileReader for &R {
    type Error = R::Error;

    fn tile(&self, tile_level: u8, tile_index: u64) -> Result<Option<Vec<u8>>, Self::Error> {
        (**self).tile(tile_level, tile_index)
    }
}

/// Why a hash could not be read from tiles. Everything but
/// [`TileError::Read`] means the store does not hold what the tree size
/// promised: it is inconsistent, and retrying will not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError<E> {
    /// A tile the tree size requires is not stored.
    #[error("tile {tile_level}/{tile_index} is missing from the store")]
    MissingTile { tile_level: u8, tile_index: u64 },
    /// A stored tile holds fewer hashes than the tree size requires.
    #[error("tile {tile_level}/{tile_index} has {stored_hashes} hashes, needs {needed_hashes}")]
    TileTooShort {
        tile_level: u8,
        tile_index: u64,
        stored_hashes: usize,
        needed_hashes: usize,
    },
    /// A stored tile is empty, not a whole number of hashes, or longer than
    /// a full tile.
    #[error("tile {tile_level}/{tile_index} is {length} bytes, not 1 to 256 whole hashes")]
    MalformedTile {
        tile_level: u8,
        tile_index: u64,
        length: usize,
    },
    /// The store failed to read the tile.
    #[error("reading tile {tile_level}/{tile_index} failed")]
    Read {
        tile_level: u8,
        tile_index: u64,
        #[source]
        source: E,
    },
}

/// Answers perfect-subtree questions from the tiles of a [`TileReader`], so
/// roots, proofs and frontiers can be computed from tile storage.
///
/// Each question costs one tile read and fewer than [`TILE_WIDTH`] / 2 node
/// hashes.
#[derive(Debug, Clone)]
pub struct TileSubtreeSource<R> {
    reader: R,
}

/// The writer's state: the tree's frontier and the rightmost, partial tile of
/// each tile level, so appends produce tile writes without reading anything.
///
/// Invariant: `partial_tiles[k]` holds the `(size >> 8k) % 256` hashes of the
/// rightmost tile at tile level `k` (empty when there is no partial tile);
/// tile levels past the end of the vector hold no hashes yet.
#[derive(Debug, Clone, Default)]
pub struct TileAppender {
    frontier: Frontier,
    partial_tiles: Vec<Vec<u8>>,
}

impl<R> TileSubtreeSource<R> {
    /// Wraps a tile reader; pass a reference to keep using the reader.
    pub fn new(reader: R) -> Self {
        Self { reader }
    }
}

impl<R: TileReader> SubtreeSource for TileSubtreeSource<R> {
    type Error = TileError<R::Error>;

    fn subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let tile_level = level / TILE_HEIGHT;
        let height_in_tile = level % TILE_HEIGHT;
        let hashes_per_subtree = 1usize << height_in_tile;
        let subtrees_per_tile = (TILE_WIDTH >> height_in_tile) as u64;
        let tile_index = index / subtrees_per_tile;
        let first_hash = (index % subtrees_per_tile) as usize * hashes_per_subtree;
        let end_hash = first_hash + hashes_per_subtree;
        let tile = read_tile(&self.reader, tile_level, tile_index, end_hash)?;
        Ok(perfect_subtree_root(
            &tile[first_hash * HASH_SIZE..end_hash * HASH_SIZE],
        ))
    }
}

impl TileAppender {
    /// Returns the writer of an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the writer's state for the tree of `tree_size` leaves from the
    /// stored tiles, reading O(log n) tiles. Tiles may hold more hashes than
    /// `tree_size` needs, left by writes whose tree size was never published;
    /// only the prefix belonging to `tree_size` is used.
    pub fn resume<R: TileReader + ?Sized>(
        reader: &R,
        tree_size: u64,
    ) -> Result<Self, TileError<R::Error>> {
        let frontier = Frontier::from_source(&TileSubtreeSource::new(reader), tree_size)?;
        let mut partial_tiles = Vec::new();
        for tile_level in 0..TILE_LEVEL_COUNT {
            let stored_hashes = stored_hash_count(tree_size, tile_level);
            if stored_hashes == 0 {
                break;
            }
            let partial_tile_hashes = (stored_hashes % TILE_WIDTH as u64) as usize;
            let mut partial_tile = Vec::new();
            if partial_tile_hashes != 0 {
                let tile_index = stored_hashes / TILE_WIDTH as u64;
                partial_tile = read_tile(reader, tile_level, tile_index, partial_tile_hashes)?;
                partial_tile.truncate(partial_tile_hashes * HASH_SIZE);
            }
            partial_tiles.push(partial_tile);
        }
        Ok(Self {
            frontier,
            partial_tiles,
        })
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root hash of the tree.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends leaves and returns the new content of every tile they changed,
    /// one write per tile: the tiles that filled up, in the order they did,
    /// then the partial tile of each tile level that grew.
    pub fn append(&mut self, leaf_hashes: &[Hash]) -> Vec<TileWrite> {
        let size_before = self.frontier.size();
        let mut writes = Vec::new();
        let Self {
            frontier,
            partial_tiles,
        } = self;
        for leaf_hash in leaf_hashes {
            frontier.push(*leaf_hash, |completed| {
                if completed.level % TILE_HEIGHT != 0 {
                    return;
                }
                let tile_level = completed.level / TILE_HEIGHT;
                let slot = usize::from(tile_level);
                if partial_tiles.len() <= slot {
                    partial_tiles.resize_with(slot + 1, Vec::new);
                }
                let partial_tile = &mut partial_tiles[slot];
                partial_tile.extend_from_slice(&completed.hash);
                if partial_tile.len() == FULL_TILE_BYTES {
                    writes.push(TileWrite {
                        tile_level,
                        tile_index: completed.index / TILE_WIDTH as u64,
                        hashes: std::mem::take(partial_tile),
                    });
                }
            });
        }
        let size_after = frontier.size();
        for (tile_level, partial_tile) in (0..TILE_LEVEL_COUNT).zip(partial_tiles.iter()) {
            let hashes_after = stored_hash_count(size_after, tile_level);
            let grew = hashes_after > stored_hash_count(size_before, tile_level);
            if grew && !partial_tile.is_empty() {
                writes.push(TileWrite {
                    tile_level,
                    tile_index: hashes_after / TILE_WIDTH as u64,
                    hashes: partial_tile.clone(),
                });
            }
        }
        writes
    }
}

/// The number of hashes stored at `tile_level` for a tree of `tree_size`
/// leaves: one per completed perfect subtree at tree level `8 * tile_level`.
fn stored_hash_count(tree_size: u64, tile_level: u8) -> u64 {
    debug_assert!(tile_level < TILE_LEVEL_COUNT);
    tree_size >> (u32::from(tile_level) * u32::from(TILE_HEIGHT))
}

/// Reads a tile that must hold at least `needed_hashes` hashes.
fn read_tile<R: TileReader + ?Sized>(
    reader: &R,
    tile_level: u8,
    tile_index: u64,
    needed_hashes: usize,
) -> Result<Vec<u8>, TileError<R::Error>> {
    let tile = reader
        .tile(tile_level, tile_index)
        .map_err(|source| TileError::Read {
            tile_level,
            tile_index,
            source,
        })?
        .ok_or(TileError::MissingTile {
            tile_level,
            tile_index,
        })?;
    if tile.is_empty() || tile.len() % HASH_SIZE != 0 || tile.len() > FULL_TILE_BYTES {
        return Err(TileError::MalformedTile {
            tile_level,
            tile_index,
            length: tile.len(),
        });
    }
    let stored_hashes = tile.len() / HASH_SIZE;
    if stored_hashes < needed_hashes {
        return Err(TileError::TileTooShort {
            tile_level,
            tile_index,
            stored_hashes,
            needed_hashes,
        });
    }
    Ok(tile)
}

/// Folds a power-of-two number of consecutive same-level hashes, concatenated,
/// into the root of the perfect subtree whose bottom level they are.
fn perfect_subtree_root(hashes: &[u8]) -> Hash {
    if hashes.len() == HASH_SIZE {
        let mut hash = [0; HASH_SIZE];
        hash.copy_from_slice(hashes);
        return hash;
    }
    let (left, right) = hashes.split_at(hashes.len() / 2);
    node_hash(&perfect_subtree_root(left), &perfect_subtree_root(right))
}
