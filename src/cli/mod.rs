//! Command-line interface (clap). Each subcommand lives in its own file.

mod admin;
mod audit;
mod bench;
mod demo;
mod export;
mod keygen;
mod limits;
mod log;
mod probe;
mod report;
mod serve;
mod submit;

use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Parser)]
#[command(
    name = "uptime-ledger",
    version,
    about = "A verifiable uptime ledger for government digital services"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr: `text` for people, `json` (one object per line) for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Cli {
    /// The log filter when `RUST_LOG` is not set: `info`, except that the demo keeps its
    /// terminal for the probes' state changes and for warnings.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Demo(_) => "warn,uptime_ledger::probe::agent=info",
            _ => "info",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Try it: a ledger, six simulated government services with scripted outages, three
    /// in-process probes, a few days of backfilled history and the status page on
    /// http://127.0.0.1:8080. Runs until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Run the ledger. Works with no flags: data in ./ledger-data, gRPC on 127.0.0.1:50051, the
    /// status page, JSON API and /metrics on http://127.0.0.1:8080.
    Serve(serve::ServeArgs),
    /// Generate an Ed25519 key pair: PATH (PKCS#8 PEM) and PATH.pub (SubjectPublicKeyInfo PEM).
    Keygen(keygen::KeygenArgs),
    /// Sign an admin command with an admin key and apply it.
    Admin(admin::AdminArgs),
    /// Sign one observation with a probe key and submit it (for trying things out; run `probe` for real checks).
    Submit(submit::SubmitArgs),
    /// Look at the log: its checkpoint, its entries, and a full verification.
    Log(log::LogArgs),
    /// Run the benchmarks (ceilings, queries, rebuild); see BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Availability, SLO compliance and incidents of one or all services over a window.
    Report(report::ReportArgs),
    /// Verify a ledger independently: checkpoint signature, every entry's signature and
    /// ingest rules, Merkle root, consistency with a saved checkpoint, and every report
    /// recomputed from the raw log and compared with the server's.
    Audit(audit::AuditArgs),
    /// Decoded entries of a log range as JSON Lines or CSV, for auditors' own tools.
    Export(export::ExportArgs),
    /// Run the probe agent: check services from a config file, sign, spool and deliver.
    Probe(probe::ProbeArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Keygen(args) => keygen::run(args),
        Command::Admin(args) => admin::run(args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Log(args) => log::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Probe(args) => probe::run(args).await,
    }
}

/// How `--window` is written (report and audit).
const WINDOW_HELP: &str = "The window: last-24h, last-7d, last-30d or last-90d (ending at the \
    last entry's received_at), a calendar month 2026-10 (UTC) or 2026-10@Africa/Nairobi, or \
    START..END in RFC 3339 (2026-11-01T00:00:00Z..2026-11-08T00:00:00Z, half-open)";

/// A progress bar over `total` entries on stderr, drawn only when stderr is a terminal.
fn progress_bar(total: u64, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{msg:>11} [{bar:30}] {human_pos}/{human_len} entries ({elapsed}, {eta} left)",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    ProgressBar::new(total).with_style(style).with_message(what)
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
    uptime_ledger::domain::format_millis(millis)
}
