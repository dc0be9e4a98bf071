//! Where the projector keeps its snapshot: a small sled database of its own
//! (`DATA_DIR/projections`), separate from the log, because projections are derived and
//! can always be rebuilt.
//!
//! One value holds the snapshot together with the tree size it reflects and that prefix's
//! Merkle root, so the state and its index are written atomically, and a snapshot that
//! belongs to another log (or a rewritten one) is recognised on load.

use std::path::Path;

use crate::merkle::Hash;

const SNAPSHOT_KEY: &[u8] = b"snapshot";
/// The wrapper's format; the engine's own encoding carries its own version inside.
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 8 + 32 + 8;

/// A stored snapshot: the projection of the prefix `[0, tree_size)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub tree_size: u64,
    pub root: Hash,
    /// `received_at` of the prefix's last entry.
    pub as_of: i64,
    pub projection: Vec<u8>,
}

pub struct SnapshotStore {
    db: sled::Db,
}

impl SnapshotStore {
    pub fn open(path: &Path) -> Result<SnapshotStore, String> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(16 * 1024 * 1024);
        let db = crate::log::open_sled(path, config)
            .map_err(|e| format!("cannot open the projection store {}: {e}", path.display()))?;
        Ok(SnapshotStore { db })
    }

    /// The stored snapshot; `Err` names why an existing one cannot be used.
    pub fn load(&self) -> Result<Option<StoredSnapshot>, String> {
        let Some(value) = self.db.get(SNAPSHOT_KEY).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        if value.len() < HEADER_LEN || value[0] != FORMAT {
            return Err(format!(
                "the stored snapshot has format {} (expected {FORMAT})",
                value.first().copied().unwrap_or_default()
            ));
        }
        let u64_at = |at: usize| u64::from_le_bytes(value[at..at + 8].try_into().expect("8 bytes"));
        Ok(Some(StoredSnapshot {
            tree_size: u64_at(1),
            root: value[9..41].try_into().expect("32 bytes"),
            as_of: u64_at(41) as i64,
            projection: value[HEADER_LEN..].to_vec(),
        }))
    }

    /// Replaces the snapshot. Flushed, but not fsynced: a lost snapshot only means a
    /// longer replay from the log.
    pub fn save(&self, snapshot: &StoredSnapshot) -> Result<(), String> {
        let mut value = Vec::with_capacity(HEADER_LEN + snapshot.projection.len());
        value.push(FORMAT);
        value.extend_from_slice(&snapshot.tree_size.to_le_bytes());
        value.extend_from_slice(&snapshot.root);
        value.extend_from_slice(&snapshot.as_of.to_le_bytes());
        value.extend_from_slice(&snapshot.projection);
        self.db
            .insert(SNAPSHOT_KEY, value)
            .map_err(|e| e.to_string())?;
        self.db.flush().map_err(|e| e.to_string())?;
        Ok(())
    }
}
