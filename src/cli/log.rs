//! `uptime-ledger log checkpoint|entries|verify`: a quick look at a running ledger's log.

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
    }
    Ok(())
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
