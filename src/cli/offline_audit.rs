//! `audit --from-export FILE`: the audit of a raw export with no ledger, through the same
//! [`uptime_ledger::audit::PrefixAudit`] as the online audit. There is no server to ask,
//! so the server's answers are not compared; the output says so.

use std::io::BufReader;
use std::path::Path;

use anyhow::{anyhow, Context};

use uptime_ledger::checkpoint::NoteVerifier;
use uptime_ledger::evidence;

pub async fn run(path: &Path, verifier: &NoteVerifier) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let verifier = verifier.clone();
    let audited = tokio::task::spawn_blocking(move || {
        evidence::audit_export(BufReader::new(file), &verifier)
    })
    .await?
    .map_err(|e| anyhow!("audit failed: {e}"))?;
    let checkpoint = &audited.checkpoint;
    println!(
        "audit passed: {} at tree size {}, root {}",
        checkpoint.origin,
        checkpoint.tree_size,
        hex::encode(checkpoint.root_hash)
    );
    let counts = audited.audited.counts;
    println!(
        "  entries: {} ({} observations, {} commands, 1 genesis), every one valid by the ingest rules at its position",
        counts.entries, counts.observations, counts.commands
    );
    println!("  signatures verified: {}", counts.signatures_verified);
    println!(
        "  offline: audited from {} with no ledger; the projection was recomputed, but no server's reports were compared (there is none to ask)",
        path.display()
    );
    Ok(())
}
