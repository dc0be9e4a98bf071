//! `uptime-ledger admin …`: sign an admin command with a key file and apply it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use uptime_ledger::client;
use uptime_ledger::crypto;
use uptime_ledger::domain::{
    AdminCommand, AdminKey, AdminName, Command, Digest, MaintenanceId, ProbeId, Quorum, ServiceId,
    ServiceSpec,
};
use uptime_ledger::pb;
use uptime_ledger::pb::admin_service_client::AdminServiceClient;
use uptime_ledger::pb::query_service_client::QueryServiceClient;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The ledger's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051", global = true)]
    ledger: String,
    #[command(flatten)]
    tls: super::TlsArgs,
    /// The admin private key (PKCS#8 PEM).
    #[arg(long, default_value = "ledger-data/keys/admin.pem", global = true)]
    key: PathBuf,
    /// The admin key's name (named by the genesis or added by `admin add-key`).
    #[arg(long, default_value = "admin", global = true)]
    signer: String,
    #[command(flatten)]
    token: super::ReadTokenArgs,
    /// The command's sequence number (must increase per signer; default: the current time in µs).
    #[arg(long, global = true)]
    seq: Option<u64>,
    #[command(subcommand)]
    command: AdminCommandArgs,
}

#[derive(Debug, Subcommand)]
enum AdminCommandArgs {
    /// Define a service, or replace its definition from now on.
    DefineService {
        #[arg(long)]
        service_id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        agency: String,
        /// Fraction of time the service must be up, e.g. 0.995.
        #[arg(long)]
        slo_target: f64,
        /// any | majority | all | at-least:K
        #[arg(long, default_value = "majority", value_parser = parse_quorum)]
        quorum: Quorum,
        /// How long an observation stays fresh.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "90s")]
        staleness: Duration,
    },
    /// Register a probe's public key.
    RegisterProbe {
        #[arg(long)]
        probe_id: String,
        /// The probe's public key file (SubjectPublicKeyInfo PEM, e.g. probe.pem.pub).
        #[arg(long)]
        public_key: PathBuf,
        #[arg(long, default_value = "")]
        location: String,
    },
    /// Revoke a probe (permanent): its later observations are rejected.
    RevokeProbe {
        #[arg(long)]
        probe_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Declare a maintenance window in advance (it cannot start before it is received).
    ScheduleMaintenance {
        #[arg(long)]
        maintenance_id: String,
        #[arg(long)]
        service_id: String,
        /// RFC 3339, e.g. 2026-11-28T01:00:00Z
        #[arg(long, value_parser = uptime_ledger::domain::parse_millis)]
        start: i64,
        #[arg(long, value_parser = uptime_ledger::domain::parse_millis)]
        end: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Cancel a maintenance window from now on.
    CancelMaintenance {
        #[arg(long)]
        maintenance_id: String,
    },
    /// Add an admin key (names are never reused).
    AddKey {
        #[arg(long)]
        name: String,
        /// The new admin's public key file (SubjectPublicKeyInfo PEM, e.g. alice.pem.pub).
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Revoke an admin key: it signs nothing from then on; what it signed before stays.
    RevokeKey {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Approve a pending proposal (a command that needs several admins).
    Approve {
        /// The proposal's digest, in hex, as `admin proposals` lists it.
        #[arg(long, value_parser = parse_digest)]
        proposal: Digest,
    },
    /// List the pending proposals with their digests and who has signed them (a read:
    /// needs no admin key).
    Proposals {
        /// Also the proposals that took effect or lapsed.
        #[arg(long)]
        all: bool,
    },
}

fn parse_digest(text: &str) -> Result<Digest, String> {
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| Digest::try_from(bytes).ok())
        .ok_or_else(|| format!("{text:?} is not a proposal digest (64 hex digits)"))
}

fn parse_quorum(text: &str) -> Result<Quorum, String> {
    match text {
        "any" => Ok(Quorum::Any),
        "majority" => Ok(Quorum::Majority),
        "all" => Ok(Quorum::All),
        _ => match text.strip_prefix("at-least:").map(str::parse::<u32>) {
            Some(Ok(k)) if k >= 1 => Ok(Quorum::AtLeast(k)),
            _ => Err(format!(
                "{text:?} is not any, majority, all or at-least:K (K >= 1)"
            )),
        },
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let command = match args.command {
        AdminCommandArgs::Proposals { all } => {
            return list_proposals(&args.ledger, &args.tls, &args.token, all).await
        }
        AdminCommandArgs::AddKey { name, public_key } => Command::AddAdminKey(AdminKey {
            name: AdminName::parse(&name)?.into_string(),
            public_key: crypto::read_public_key(&public_key)?,
        }),
        AdminCommandArgs::RevokeKey { name, reason } => Command::RevokeAdminKey { name, reason },
        AdminCommandArgs::Approve { proposal } => Command::ApproveCommand {
            proposal_digest: proposal,
        },
        AdminCommandArgs::DefineService {
            service_id,
            name,
            agency,
            slo_target,
            quorum,
            staleness,
        } => Command::DefineService(ServiceSpec {
            service_id: ServiceId::parse(&service_id)?,
            name,
            agency,
            slo_target,
            quorum,
            staleness,
        }),
        AdminCommandArgs::RegisterProbe {
            probe_id,
            public_key,
            location,
        } => Command::RegisterProbe {
            probe_id: ProbeId::parse(&probe_id)?,
            public_key: crypto::read_public_key(&public_key)?,
            location,
        },
        AdminCommandArgs::RevokeProbe { probe_id, reason } => Command::RevokeProbe {
            probe_id: ProbeId::parse(&probe_id)?,
            reason,
        },
        AdminCommandArgs::ScheduleMaintenance {
            maintenance_id,
            service_id,
            start,
            end,
            reason,
        } => Command::ScheduleMaintenance {
            maintenance_id: MaintenanceId::parse(&maintenance_id)?,
            service_id: ServiceId::parse(&service_id)?,
            start,
            end,
            reason,
        },
        AdminCommandArgs::CancelMaintenance { maintenance_id } => Command::CancelMaintenance {
            maintenance_id: MaintenanceId::parse(&maintenance_id)?,
        },
    };
    let key = crypto::read_signing_key(&args.key)?;
    let command = AdminCommand {
        seq: args.seq.unwrap_or_else(super::seq_from_clock),
        issued_at: super::now_millis(),
        command,
    };
    let signed = client::sign_command(&args.signer, &key, &command);
    let channel = args.tls.connect(&args.ledger).await?;
    let response = AdminServiceClient::new(channel)
        .apply(pb::ApplyRequest {
            command: Some(signed),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", super::rpc_failure(&status)))?
        .into_inner();
    if response.duplicate {
        println!("already applied at index {}", response.index);
    } else {
        println!("applied at index {}", response.index);
    }
    if let Some(proposal) = response.proposal {
        let digest = hex::encode(&proposal.digest);
        if proposal.in_force {
            println!(
                "proposal {digest}: in force ({} of {} approvals)",
                proposal.approvals, proposal.threshold
            );
        } else {
            println!(
                "proposal {digest}: pending, {} of {} approvals; needs {} more within 7 days (`uptime-ledger admin approve --proposal {digest}`)",
                proposal.approvals,
                proposal.threshold,
                proposal.threshold.saturating_sub(proposal.approvals)
            );
        }
    }
    Ok(())
}

/// `admin proposals`: the pending proposals (or all), one block each.
async fn list_proposals(
    ledger: &str,
    tls: &super::TlsArgs,
    token: &super::ReadTokenArgs,
    all: bool,
) -> anyhow::Result<()> {
    let channel = super::connect_reader(ledger, tls, token).await?;
    let response = QueryServiceClient::new(channel)
        .list_proposals(pb::ListProposalsRequest {
            tree_size: 0,
            pending_only: !all,
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", super::rpc_failure(&status)))?
        .into_inner();
    let tree_size = response.prefix.map_or(0, |prefix| prefix.tree_size);
    if response.proposals.is_empty() {
        println!(
            "no {}proposals at tree size {tree_size} (approval threshold {})",
            if all { "" } else { "pending " },
            response.threshold
        );
        return Ok(());
    }
    let time = |timestamp: Option<&prost_types::Timestamp>| {
        uptime_ledger::entry::timestamp_millis(timestamp, "time")
            .map(uptime_ledger::domain::format_millis)
            .unwrap_or_default()
    };
    for proposal in response.proposals {
        let summary = proposal
            .command
            .as_ref()
            .and_then(|signed| uptime_ledger::entry::decode_command(&signed.body).ok())
            .and_then(|command| uptime_ledger::governance::Change::of(&command.command))
            .map_or_else(|| "?".to_owned(), |change| change.describe());
        let state = match pb::ProposalState::try_from(proposal.state) {
            Ok(pb::ProposalState::Pending) => format!(
                "pending: needs {} more approval(s) by {}",
                proposal.approvals_needed,
                time(proposal.expires_at.as_ref())
            ),
            Ok(pb::ProposalState::InForce) => format!(
                "in force since entry {}",
                proposal.in_force.map_or(0, |at| at.index)
            ),
            Ok(pb::ProposalState::Lapsed) => "lapsed".to_owned(),
            _ => "unknown".to_owned(),
        };
        println!("proposal {}", hex::encode(&proposal.digest));
        println!("  {summary}; {state}");
        for approval in proposal.approvals {
            let at = approval.at.unwrap_or_default();
            println!(
                "  signed by {} at entry {} ({}){}",
                approval.admin,
                at.index,
                time(at.received_at.as_ref()),
                if approval.counts {
                    ""
                } else {
                    "; does not count: the key was revoked"
                }
            );
        }
    }
    println!(
        "(tree size {tree_size}, approval threshold {})",
        response.threshold
    );
    Ok(())
}
