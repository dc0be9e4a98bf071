//! How much sled 0.34 stores, and how fast, for log entries written one key per entry or
//! packed into chunks, with or without one dedupe key per entry: the measurement behind the
//! store's layout (ARCHITECTURE.md, "Storage layout").
//!
//! ```sh
//! cargo run --release --example sledamp -- <entries per value> <entries per batch> <entries> <dedupe keys 0|1>
//! cargo run --release --example sledamp -- 32 2048 400000 0
//! ```
//!
//! Entries are 126 bytes (the ingest benchmark's size); each batch is applied atomically and
//! flushed, as the ledger's group commit does; dedupe keys spread over 256 probes.

use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let [per_value, batch, total, dedupe] = args[..] else {
        eprintln!(
            "usage: sledamp <entries per value> <entries per batch> <entries> <dedupe keys 0|1>"
        );
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = sled::Config::new()
        .path(dir.path())
        .mode(sled::Mode::HighThroughput)
        .open()
        .expect("open sled");
    let started = Instant::now();
    let (mut index, mut raw) = (0usize, 0u64);
    while index < total {
        let mut writes = sled::Batch::default();
        let end = (index + batch).min(total);
        for first in (index..end).step_by(per_value) {
            let mut value = Vec::new();
            for i in first..(first + per_value).min(end) {
                let mut entry = vec![0xab_u8; 126];
                entry[..8].copy_from_slice(&(i as u64).to_le_bytes());
                value.push(entry.len() as u8);
                value.extend_from_slice(&entry);
                raw += entry.len() as u64;
                if dedupe == 1 {
                    let mut key = format!("sprobe-{}", i % 256).into_bytes();
                    key.push(0);
                    key.extend_from_slice(&((i / 256) as u64).to_be_bytes());
                    writes.insert(key, &(i as u64).to_be_bytes());
                }
            }
            let mut key = [b'e'; 9];
            key[1..].copy_from_slice(&(first as u64).to_be_bytes());
            writes.insert(&key, value);
        }
        db.apply_batch(writes).expect("apply");
        db.flush().expect("flush");
        index = end;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(db);
    let size = disk_bytes(dir.path());
    println!(
        "{per_value} entries per value, batches of {batch}, dedupe keys {dedupe}: {:.0} entries/s, {:.0} bytes/entry = {:.2}x the raw bytes",
        total as f64 / seconds,
        size as f64 / total as f64,
        size as f64 / raw as f64
    );
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| {
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                disk_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
