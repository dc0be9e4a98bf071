//! The checkpoint witness: the tree size and root of the latest signed checkpoint, kept in
//! a small file *outside* sled (`DATA_DIR/checkpoint-witness`).
//!
//! Why: sled 0.34.7 treats a message that fails its checksum while recovering its log as
//! the torn tail of a crash — it silently ends the log there, and even overwrites the rest
//! of that segment. A flipped bit or a truncated file in the middle of recent data would
//! therefore come back as a shorter, still self-consistent log with an older checkpoint,
//! and the start-up verification against "the latest stored checkpoint" would pass. The
//! witness, made durable before a checkpoint is published, lets start-up tell a rolled-back
//! log from an intact one: the stored log must reach the witnessed size and hash to the
//! witnessed root there.
//!
//! Format: two 64-byte slots written alternately (`pwrite` + `fdatasync`), so a torn write
//! leaves the other slot intact. A slot is `"ULW1" | generation u64 | tree_size u64 |
//! root [32] | SHA-256(previous 52 bytes)[..8] | 4 zero bytes`, little-endian; the valid slot
//! with the highest generation wins. One `fdatasync` per checkpoint (at most two a second).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::merkle::Hash;

pub const FILE_NAME: &str = "checkpoint-witness";
const MAGIC: &[u8; 4] = b"ULW1";
const SLOT: usize = 64;
const BODY: usize = 4 + 8 + 8 + 32;

/// A witnessed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Witnessed {
    pub tree_size: u64,
    pub root: Hash,
}

pub struct Witness {
    path: PathBuf,
    file: File,
    generation: u64,
}

impl Witness {
    /// Reads the witness in `data_dir`, if there is one with a valid slot. A file that
    /// exists but holds no valid slot is an error: it was damaged.
    pub fn read(data_dir: &Path) -> Result<Option<(Witnessed, u64)>, String> {
        let path = data_dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let best = bytes
            .chunks(SLOT)
            .filter_map(decode_slot)
            .max_by_key(|(_, generation)| *generation);
        match best {
            Some(found) => Ok(Some(found)),
            None => Err(format!(
                "{} holds no valid record ({} bytes): it was damaged",
                path.display(),
                bytes.len()
            )),
        }
    }

    /// Opens the existing witness file for writing; `generation` is the one last read.
    pub fn open(data_dir: &Path, generation: u64) -> Result<Witness, String> {
        let path = data_dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(Witness {
            path,
            file,
            generation,
        })
    }

    /// Creates the witness file holding `witnessed`, atomically (a temporary file, synced,
    /// renamed into place, the directory synced): a crash leaves either no file or a valid one.
    pub fn create(data_dir: &Path, witnessed: Witnessed) -> Result<Witness, String> {
        let path = data_dir.join(FILE_NAME);
        let temp = data_dir.join(format!("{FILE_NAME}.tmp"));
        let mut contents = vec![0u8; 2 * SLOT];
        contents[SLOT..].copy_from_slice(&encode_slot(witnessed, 1));
        std::fs::write(&temp, &contents)
            .and_then(|()| File::open(&temp)?.sync_all())
            .and_then(|()| std::fs::rename(&temp, &path))
            .and_then(|()| File::open(data_dir)?.sync_all())
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Witness::open(data_dir, 1)
    }

    /// Makes `witnessed` durable (in the slot not holding the latest record).
    pub fn record(&mut self, witnessed: Witnessed) -> Result<(), String> {
        let generation = self.generation + 1;
        let slot = encode_slot(witnessed, generation);
        let offset = (generation % 2) * SLOT as u64;
        self.file
            .write_all_at(&slot, offset)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        self.generation = generation;
        Ok(())
    }
}

fn encode_slot(witnessed: Witnessed, generation: u64) -> [u8; SLOT] {
    let mut slot = [0u8; SLOT];
    slot[..4].copy_from_slice(MAGIC);
    slot[4..12].copy_from_slice(&generation.to_le_bytes());
    slot[12..20].copy_from_slice(&witnessed.tree_size.to_le_bytes());
    slot[20..52].copy_from_slice(&witnessed.root);
    let digest = Sha256::digest(&slot[..BODY]);
    slot[BODY..BODY + 8].copy_from_slice(&digest[..8]);
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(Witnessed, u64)> {
    if slot.len() != SLOT || &slot[..4] != MAGIC {
        return None;
    }
    let digest = Sha256::digest(&slot[..BODY]);
    if slot[BODY..BODY + 8] != digest[..8] {
        return None;
    }
    let generation = u64::from_le_bytes(slot[4..12].try_into().ok()?);
    let tree_size = u64::from_le_bytes(slot[12..20].try_into().ok()?);
    let root = slot[20..52].try_into().ok()?;
    Some((Witnessed { tree_size, root }, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_valid_slot_wins_and_a_torn_slot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Witness::read(dir.path()).unwrap(), None);
        let mut witness = Witness::create(
            dir.path(),
            Witnessed {
                tree_size: 1,
                root: [1; 32],
            },
        )
        .unwrap();
        for size in 2..=5u64 {
            witness
                .record(Witnessed {
                    tree_size: size,
                    root: [size as u8; 32],
                })
                .unwrap();
        }
        let (latest, generation) = Witness::read(dir.path()).unwrap().unwrap();
        assert_eq!((latest.tree_size, generation), (5, 5));
        // Tear the latest slot: the previous record is used.
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT + 30] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (previous, _) = Witness::read(dir.path()).unwrap().unwrap();
        assert_eq!(previous.tree_size, 4);
        // Both torn: damaged.
        bytes[30] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(Witness::read(dir.path()).unwrap_err().contains("damaged"));
    }
}
