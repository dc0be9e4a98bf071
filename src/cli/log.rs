//! `uptime-ledger log checkpoint|entries|verify|proof|consistency`: a running ledger's log,
//! and proofs about it checked on this side.

use anyhow::Context;
use clap::{Args, Subcommand};

use uptime_ledger::checkpoint::NoteVerifier;
use uptime_ledger::client;
use uptime_ledger::domain::{Command, Quorum, Status};
use uptime_ledger::entry::{self, Payload};
use uptime_ledger::pb;
use uptime_ledger::pb::log_service_client::LogServiceClient;

#[derive(Debug, Args)]
pub struct LogArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051", global = true)]
    ledger: String,
    #[command(flatten)]
    tls: super::TlsArgs,
    #[command(flatten)]
    token: super::ReadTokenArgs,
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Print the latest signed checkpoint (or the one at --tree-size) and the verifier key.
    Checkpoint {
        #[arg(long, default_value_t = 0)]
        tree_size: u64,
    },
    /// Print entries [start, end), decoded, one per line.
    Entries {
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Default: the current tree size.
        #[arg(long)]
        end: Option<u64>,
    },
    /// Verify the checkpoint's signature against a pinned verifier key, download every entry
    /// and recompute the Merkle root.
    Verify {
        /// The key to trust, as printed by `serve` (<origin>+<key id>+<key>).
        #[arg(long)]
        verifier_key: String,
    },
    /// Prove that entry INDEX is in the log: its bytes, its RFC 9162 inclusion proof and the
    /// signed checkpoint at --tree-size (default: the latest), all checked here.
    Proof {
        #[arg(long)]
        index: u64,
        /// A tree size at which a checkpoint was signed; default: the latest.
        #[arg(long, default_value_t = 0)]
        tree_size: u64,
        /// The key to trust (<origin>+<key id>+<key>), obtained from the operator out of
        /// band; without it, the key the ledger serves is used, which proves nothing about
        /// the ledger itself.
        #[arg(long)]
        verifier_key: Option<String>,
    },
    /// Prove that the log at --to extends the log at --from (RFC 9162 consistency proof
    /// between two signed checkpoints), checked here.
    Consistency {
        #[arg(long)]
        from: u64,
        /// Default: the latest checkpoint.
        #[arg(long, default_value_t = 0)]
        to: u64,
        /// As for `log proof`.
        #[arg(long)]
        verifier_key: Option<String>,
    },
}

pub async fn run(args: LogArgs) -> anyhow::Result<()> {
    let channel = super::connect_reader(&args.ledger, &args.tls, &args.token).await?;
    let rpc_error = |status: tonic::Status| anyhow::anyhow!("{}", super::rpc_failure(&status));
    match args.command {
        LogCommand::Checkpoint { tree_size } => {
            let response = LogServiceClient::new(channel)
                .get_checkpoint(pb::GetCheckpointRequest { tree_size })
                .await
                .map_err(rpc_error)?
                .into_inner();
            print!("{}", response.checkpoint);
            println!("verifier key: {}", response.verifier_key);
        }
        LogCommand::Entries { start, end } => {
            let mut log = LogServiceClient::new(channel);
            let mut stream = log
                .get_entries(pb::GetEntriesRequest {
                    start,
                    end: end.unwrap_or(0),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            while let Some(message) = stream.message().await.map_err(rpc_error)? {
                println!("{}", describe(message.index, &message.entry));
            }
        }
        LogCommand::Verify { verifier_key } => {
            let verifier: NoteVerifier = verifier_key
                .parse()
                .context("--verifier-key is not a verifier key")?;
            let verified = client::verify_log(channel, &verifier).await?;
            println!(
                "OK: {} entries verified against the checkpoint signed by {} (root {})",
                verified.checkpoint.tree_size,
                verifier.name(),
                hex::encode(verified.checkpoint.root_hash)
            );
        }
        LogCommand::Proof {
            index,
            tree_size,
            verifier_key,
        } => {
            let mut log = LogServiceClient::new(channel);
            let (checkpoint, pinned) =
                signed_checkpoint(&mut log, tree_size, verifier_key.as_deref()).await?;
            let proven = client::prove_inclusion(&mut log, index, &checkpoint).await?;
            println!("{}", describe(index, &proven.entry));
            println!("entry bytes (base64): {}", base64(&proven.entry));
            println!("leaf hash: {}", hex::encode(proven.leaf_hash));
            println!("inclusion proof ({} hashes):", proven.proof.len());
            for hash in &proven.proof {
                println!("  {}", hex::encode(hash));
            }
            println!(
                "OK: entry {index} is in the log of {} entries whose root {} the checkpoint of {} signs{}",
                checkpoint.tree_size,
                hex::encode(checkpoint.root_hash),
                checkpoint.origin,
                pinned
            );
        }
        LogCommand::Consistency {
            from,
            to,
            verifier_key,
        } => {
            let mut log = LogServiceClient::new(channel);
            let (first, _) = signed_checkpoint(&mut log, from, verifier_key.as_deref()).await?;
            let (second, pinned) = signed_checkpoint(&mut log, to, verifier_key.as_deref()).await?;
            let proof = client::prove_consistency(&mut log, &first, &second).await?;
            println!("consistency proof ({} hashes):", proof.len());
            for hash in &proof {
                println!("  {}", hex::encode(hash));
            }
            println!(
                "OK: the log of {} entries (root {}) extends the log of {} entries (root {}); both checkpoints signed by {}{}",
                second.tree_size,
                hex::encode(second.root_hash),
                first.tree_size,
                hex::encode(first.root_hash),
                second.origin,
                pinned
            );
        }
    }
    Ok(())
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The checkpoint signed at `tree_size` (0: the latest), verified with the pinned key or,
/// without one, the key the ledger serves; the second value is what to say about the key.
async fn signed_checkpoint(
    log: &mut LogServiceClient<uptime_ledger::client::LedgerChannel>,
    tree_size: u64,
    verifier_key: Option<&str>,
) -> anyhow::Result<(uptime_ledger::checkpoint::Checkpoint, &'static str)> {
    let response = log
        .get_checkpoint(pb::GetCheckpointRequest { tree_size })
        .await
        .map_err(|status| anyhow::anyhow!("GetCheckpoint: {}", super::rpc_failure(&status)))?
        .into_inner();
    let (key, note) = match verifier_key {
        Some(key) => (key.to_owned(), ""),
        None => (
            response.verifier_key.clone(),
            " (the key the ledger itself serves: pin one obtained out of band with --verifier-key)",
        ),
    };
    let verifier: NoteVerifier = key
        .parse()
        .context("--verifier-key is not a verifier key")?;
    let checkpoint = uptime_ledger::checkpoint::open_checkpoint(&response.checkpoint, &verifier)
        .with_context(|| format!("the checkpoint at tree size {}", response.tree_size))?;
    Ok((checkpoint, note))
}

/// One human-readable line for an entry.
fn describe(index: u64, bytes: &[u8]) -> String {
    let decoded = match entry::decode_entry(bytes) {
        Ok(decoded) => decoded,
        Err(error) => return format!("{index:>8}  (undecodable: {error})"),
    };
    let when = uptime_ledger::domain::format_millis(decoded.received_at);
    match decoded.payload {
        Payload::Genesis(genesis) => format!(
            "{index:>8}  {when}  genesis  origin={} admins={} max_lateness={:?} max_skew={:?}",
            genesis.origin,
            genesis
                .admin_keys
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            genesis.max_lateness,
            genesis.max_skew
        ),
        Payload::Observation { observation: o, .. } => format!(
            "{index:>8}  {when}  observation  {} -> {} seq={} observed_at={} {} {}ms {:?}",
            o.probe_id,
            o.service_id,
            o.seq,
            uptime_ledger::domain::format_millis(o.observed_at),
            match o.status {
                Status::Up => "UP",
                Status::Down => "DOWN",
            },
            o.latency_ms,
            o.detail
        ),
        Payload::Command {
            signer, command, ..
        } => {
            format!(
                "{index:>8}  {when}  command  signer={signer} seq={} {}",
                command.seq,
                describe_command(&command.command)
            )
        }
    }
}

/// An admin command the way `admin` takes it: its subcommand and flags' values.
fn describe_command(command: &Command) -> String {
    match command {
        Command::DefineService(spec) => format!(
            "define-service {} name={:?} agency={:?} slo_target={} quorum={} staleness={}",
            spec.service_id,
            spec.name,
            spec.agency,
            spec.slo_target,
            match spec.quorum {
                Quorum::Any => "any".to_owned(),
                Quorum::Majority => "majority".to_owned(),
                Quorum::All => "all".to_owned(),
                Quorum::AtLeast(k) => format!("at-least:{k}"),
            },
            humantime::format_duration(spec.staleness)
        ),
        Command::RegisterProbe {
            probe_id,
            public_key,
            location,
        } => format!(
            "register-probe {probe_id} public_key={} location={location:?}",
            hex::encode(public_key.as_bytes())
        ),
        Command::RevokeProbe { probe_id, reason } => {
            format!("revoke-probe {probe_id} reason={reason:?}")
        }
        Command::AddAdminKey(key) => format!(
            "add-key {} public_key={}",
            key.name,
            hex::encode(key.public_key.as_bytes())
        ),
        Command::RevokeAdminKey { name, reason } => {
            format!("revoke-key {name} reason={reason:?}")
        }
        Command::ApproveCommand { proposal_digest } => {
            format!("approve proposal={}", hex::encode(proposal_digest))
        }
        Command::ScheduleMaintenance {
            maintenance_id,
            service_id,
            start,
            end,
            reason,
        } => format!(
            "schedule-maintenance {maintenance_id} service={service_id} start={} end={} reason={reason:?}",
            uptime_ledger::domain::format_millis(*start),
            uptime_ledger::domain::format_millis(*end)
        ),
        Command::CancelMaintenance { maintenance_id } => {
            format!("cancel-maintenance {maintenance_id}")
        }
    }
}
