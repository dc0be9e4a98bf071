//! `uptime-ledger admin …`: sign an admin command with a key file and apply it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use uptime_ledger::client;
use uptime_ledger::crypto;
use uptime_ledger::domain::{
    AdminCommand, Command, MaintenanceId, ProbeId, Quorum, ServiceId, ServiceSpec,
};
use uptime_ledger::pb;
use uptime_ledger::pb::admin_service_client::AdminServiceClient;

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
    /// The admin key's name in the genesis.
    #[arg(long, default_value = "admin", global = true)]
    signer: String,
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
    let key = crypto::read_signing_key(&args.key)?;
    let command = match args.command {
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
    Ok(())
}
