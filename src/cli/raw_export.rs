//! `export --raw`: every entry of the latest checkpoint's tree with its exact stored bytes,
//! after a header line with the checkpoint and the key it was verified against
//! ([`uptime_ledger::evidence::raw`], docs/evidence.md). The entries are streamed and hashed
//! as they pass; a tree that does not hash to the signed root is an error.

use std::io::Write;

use anyhow::{anyhow, bail, Context};

use uptime_ledger::checkpoint::NoteVerifier;
use uptime_ledger::client::{self, LedgerChannel};
use uptime_ledger::evidence::raw;
use uptime_ledger::merkle::{self, TileAppender};
use uptime_ledger::pb;
use uptime_ledger::pb::log_service_client::LogServiceClient;

pub async fn run(channel: LedgerChannel, verifier_key: &str) -> anyhow::Result<()> {
    let verifier: NoteVerifier = verifier_key
        .parse()
        .context("--verifier-key is not a verifier key")?;
    let mut log = LogServiceClient::new(channel);
    let (checkpoint, note) = client::fetch_checkpoint(&mut log, &verifier).await?;
    let rpc_error = |status: tonic::Status| anyhow!("GetEntries: {}", super::rpc_failure(&status));
    let mut stream = log
        .get_entries(pb::GetEntriesRequest {
            start: 0,
            end: checkpoint.tree_size,
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{}", raw::header_line(&verifier, &note)).context("writing to stdout")?;
    let mut appender = TileAppender::new();
    let mut leaves = Vec::with_capacity(4096);
    let mut next_index = 0u64;
    while let Some(message) = stream.message().await.map_err(rpc_error)? {
        if message.index != next_index || next_index >= checkpoint.tree_size {
            bail!(
                "the ledger sent entry {} where entry {next_index} of {} belongs",
                message.index,
                checkpoint.tree_size
            );
        }
        leaves.push(merkle::leaf_hash(&message.entry));
        if leaves.len() == 4096 {
            appender.append(&leaves);
            leaves.clear();
        }
        writeln!(out, "{}", raw::entry_line(message.index, &message.entry))
            .context("writing to stdout")?;
        next_index += 1;
    }
    out.flush().context("writing to stdout")?;
    appender.append(&leaves);
    if next_index != checkpoint.tree_size || appender.root() != checkpoint.root_hash {
        bail!(
            "the {next_index} entries served do not hash to the root the checkpoint signs at tree size {}: the export is not the signed log",
            checkpoint.tree_size
        );
    }
    Ok(())
}
