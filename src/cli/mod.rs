//! Command-line interface (clap). Each subcommand lives in its own file.

mod admin;
mod audit;
mod bench;
pub mod console;
mod demo;
mod evidence;
mod export;
mod keygen;
mod limits;
mod log;
mod offline_audit;
mod probe;
mod raw_export;
mod report;
mod serve;
mod submit;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use uptime_ledger::client::{self, ConnectOptions, LedgerChannel};
use uptime_ledger::read_token;
use uptime_ledger::tls::ClientTls;

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
    Serve(Box<serve::ServeArgs>),
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
    /// Check an evidence file written by `report --evidence`, with no ledger: the
    /// checkpoint, every inclusion proof and signature; says what it proves and what not.
    VerifyEvidence(evidence::VerifyEvidenceArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(*args).await,
        Command::Keygen(args) => keygen::run(args),
        Command::Admin(args) => admin::run(args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Log(args) => log::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Probe(args) => probe::run(args).await,
        Command::VerifyEvidence(args) => evidence::verify(args),
    }
}

/// TLS to an `https://` ledger (every client subcommand).
#[derive(Debug, Args)]
struct TlsArgs {
    /// CA certificate(s), PEM, to trust for an https:// ledger instead of the Mozilla roots
    /// built into the binary.
    #[arg(long, value_name = "FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Client certificate, PEM, to present (a ledger with --client-ca requires one for
    /// ingest, naming the probe).
    #[arg(long, value_name = "FILE", requires = "client_key", global = true)]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long, value_name = "FILE", requires = "client_cert", global = true)]
    client_key: Option<PathBuf>,
}

impl TlsArgs {
    fn load(&self) -> anyhow::Result<ClientTls> {
        Ok(ClientTls::load(
            self.ca_file.as_deref(),
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
        )?)
    }

    /// Connects to `ledger` without a read token.
    async fn connect(&self, ledger: &str) -> anyhow::Result<LedgerChannel> {
        connect(
            ledger,
            ConnectOptions {
                tls: self.load()?,
                read_token: None,
            },
        )
        .await
    }
}

/// The read token of a ledger started with `--read-token` (the read subcommands).
#[derive(Debug, Args)]
struct ReadTokenArgs {
    /// The ledger's read token. Prefer the environment variable or --read-token-file: a
    /// command-line argument is visible to other users in `ps`.
    #[arg(long, env = read_token::ENV_VAR, hide_env_values = true, global = true)]
    read_token: Option<String>,
    /// A file holding the read token (surrounding whitespace ignored); takes precedence
    /// over --read-token and the environment variable.
    #[arg(long, value_name = "FILE", global = true)]
    read_token_file: Option<PathBuf>,
}

impl ReadTokenArgs {
    fn token(&self) -> anyhow::Result<Option<String>> {
        match (&self.read_token_file, &self.read_token) {
            (Some(path), _) => Ok(Some(read_token::read_file(path)?)),
            (None, Some(token)) => {
                read_token::validate(token).context("--read-token")?;
                Ok(Some(token.clone()))
            }
            (None, None) => Ok(None),
        }
    }
}

/// Connects to `ledger` with the TLS settings and read token of a read subcommand.
async fn connect_reader(
    ledger: &str,
    tls: &TlsArgs,
    token: &ReadTokenArgs,
) -> anyhow::Result<LedgerChannel> {
    connect(
        ledger,
        ConnectOptions {
            tls: tls.load()?,
            read_token: token.token()?,
        },
    )
    .await
}

async fn connect(ledger: &str, options: ConnectOptions) -> anyhow::Result<LedgerChannel> {
    client::connect_with(ledger, &options).await.map_err(|error| {
        // One line, each cause once (the transport repeats them), and what to check.
        let causes: Vec<String> = anyhow::Chain::new(&error).map(|e| e.to_string()).collect();
        anyhow::anyhow!(
            "cannot reach the ledger at {ledger}: {}; is it running, and is --ledger its gRPC address (default http://127.0.0.1:50051)?",
            without_repeats(&causes.join(": "))
        )
    })
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

/// A refused RPC as the CLI reports it: the gRPC code by name and the server's message,
/// e.g. `NotFound: probe nobody is not registered`.
fn rpc_failure(status: &tonic::Status) -> String {
    let message = without_repeats(status.message());
    let lowered = message.to_ascii_lowercase();
    let hint = if lowered.contains("connect") && status.code() == tonic::Code::Unavailable {
        "; is the ledger running, and is --ledger its gRPC address (default http://127.0.0.1:50051)?"
    } else if [
        "broken pipe",
        "h2 protocol error",
        "frame with invalid size",
        "http2 error",
    ]
    .iter()
    .any(|sign| lowered.contains(sign))
    {
        "; --ledger may point at a server that does not speak gRPC (the HTTP port of the status page?): use the gRPC address"
    } else {
        ""
    };
    format!("{:?}: {message}{hint}", status.code())
}

/// A message with each `: `-separated part said once (transport errors repeat their cause).
fn without_repeats(message: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in message.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_their_cause_once_and_what_to_check() {
        let down = tonic::Status::unavailable("tcp connect error: tcp connect error");
        assert_eq!(
            rpc_failure(&down),
            "Unavailable: tcp connect error; is the ledger running, and is --ledger its gRPC address (default http://127.0.0.1:50051)?"
        );
        let http = tonic::Status::unknown("h2 protocol error: http2 error");
        assert!(rpc_failure(&http).contains("the HTTP port of the status page?"));
        let plain = tonic::Status::not_found("service \"x\" is not defined");
        assert_eq!(
            rpc_failure(&plain),
            "NotFound: service \"x\" is not defined"
        );
    }
}
