//! Command-line interface (clap). Each subcommand lives in its own file.

mod admin;
mod keygen;
mod log;
mod probe;
mod serve;
mod submit;

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "uptime-ledger",
    version,
    about = "A verifiable uptime ledger for government digital services"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ledger (gRPC). Works with no flags: data in ./ledger-data, gRPC on 127.0.0.1:50051.
    Serve(serve::ServeArgs),
    /// Generate an Ed25519 key pair: PATH (PKCS#8 PEM) and PATH.pub (SubjectPublicKeyInfo PEM).
    Keygen(keygen::KeygenArgs),
    /// Sign an admin command with an admin key and apply it.
    Admin(admin::AdminArgs),
    /// Sign one observation with a probe key and submit it (for trying things out; run `probe` for real checks).
    Submit(submit::SubmitArgs),
    /// Look at the log: its checkpoint, its entries, and a full verification.
    Log(log::LogArgs),
    /// Run the probe agent: check services from a config file, sign, spool and deliver.
    Probe(probe::ProbeArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Keygen(args) => keygen::run(args),
        Command::Admin(args) => admin::run(args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Log(args) => log::run(args).await,
        Command::Probe(args) => probe::run(args).await,
    }
}

/// The default `--seq` of commands and observations signed from the command line: the
/// current time in microseconds, so successive invocations increase without local state.
fn seq_from_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses an RFC 3339 time (`2026-11-28T01:00:00Z`) to Unix milliseconds.
fn parse_time(text: &str) -> Result<i64, String> {
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => Ok(d.as_millis() as i64),
        Err(e) => Ok(-(e.duration().as_millis() as i64)),
    }
}

/// Formats Unix milliseconds as RFC 3339 UTC.
fn format_time(millis: i64) -> String {
    if millis >= 0 {
        humantime::format_rfc3339_millis(
            UNIX_EPOCH + std::time::Duration::from_millis(millis as u64),
        )
        .to_string()
    } else {
        format!("{millis} ms before 1970")
    }
}
