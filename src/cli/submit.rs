//! `uptime-ledger submit`: sign one observation and submit it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use uptime_ledger::client;
use uptime_ledger::crypto;
use uptime_ledger::domain::{Observation, ProbeId, ServiceId, Status};
use uptime_ledger::pb;
use uptime_ledger::pb::ingest_service_client::IngestServiceClient;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    ledger: String,
    #[command(flatten)]
    tls: super::TlsArgs,
    /// The probe's private key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    probe_id: String,
    #[arg(long)]
    service_id: String,
    #[arg(long, value_enum)]
    status: StatusArg,
    /// Sequence number (must increase per probe; default: the current time in µs).
    #[arg(long)]
    seq: Option<u64>,
    /// When the check ran, RFC 3339 (default: now).
    #[arg(long, value_parser = uptime_ledger::domain::parse_millis)]
    observed_at: Option<i64>,
    #[arg(long, default_value_t = 0)]
    latency_ms: u32,
    #[arg(long, default_value = "")]
    detail: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    Up,
    Down,
}

pub async fn run(args: SubmitArgs) -> anyhow::Result<()> {
    let key = crypto::read_signing_key(&args.key)?;
    let observation = Observation {
        probe_id: ProbeId::parse(&args.probe_id)?,
        service_id: ServiceId::parse(&args.service_id)?,
        seq: args.seq.unwrap_or_else(super::seq_from_clock),
        observed_at: args.observed_at.unwrap_or_else(super::now_millis),
        status: match args.status {
            StatusArg::Up => Status::Up,
            StatusArg::Down => Status::Down,
        },
        latency_ms: args.latency_ms,
        detail: args.detail,
    };
    let channel = args.tls.connect(&args.ledger).await?;
    let response = IngestServiceClient::new(channel)
        .submit(pb::SubmitRequest {
            observations: vec![client::sign_observation(&key, &observation)],
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", super::rpc_failure(&status)))?
        .into_inner();
    let ack = response
        .acks
        .into_iter()
        .next()
        .context("the ledger sent no ack")?;
    match pb::AckStatus::try_from(ack.status) {
        Ok(pb::AckStatus::Accepted) => {
            println!("accepted at index {} (seq {})", ack.index, observation.seq)
        }
        Ok(pb::AckStatus::Duplicate) => println!("duplicate of index {}", ack.index),
        _ => anyhow::bail!(
            "rejected: {} ({})",
            pb::RejectReason::try_from(ack.reason)
                .map(|r| r.as_str_name())
                .unwrap_or("UNKNOWN"),
            ack.message
        ),
    }
    Ok(())
}
