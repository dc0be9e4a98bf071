//! `uptime-ledger probe --config probe.toml [--once]`: run the probe agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use uptime_ledger::clock::SystemClock;
use uptime_ledger::crypto;
use uptime_ledger::domain::Status;
use uptime_ledger::probe::agent::{Agent, Mode, RunReport};
use uptime_ledger::probe::config;
use uptime_ledger::probe::spool::Appended;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The probe's config file (TOML; see the README's "Run a probe").
    #[arg(long)]
    config: PathBuf,
    /// Run every check once, deliver, print the results and exit (for cron and for trying
    /// a config). Exits non-zero if anything was rejected, dropped or left undelivered.
    #[arg(long)]
    once: bool,
    /// How long to keep delivering spooled observations before exiting (after --once, or
    /// on SIGTERM/SIGINT); what is left stays spooled for the next start.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    drain_timeout: Duration,
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let key = crypto::read_signing_key(&config.key_file)
        .with_context(|| format!("cannot load the key of probe {}", config.probe_id))?;
    let agent = Agent {
        config,
        key,
        clock: Arc::new(SystemClock),
        drain_timeout: args.drain_timeout,
    };
    if args.once {
        // No signal handler: SIGTERM ends a one-shot run at once, and the spool keeps
        // whatever was already written.
        let report = agent.run(Mode::Once, std::future::pending()).await?;
        print_once(&report)
    } else {
        agent
            .run(Mode::Continuous, super::serve::shutdown_signal())
            .await?;
        Ok(())
    }
}

/// Prints one line per check and a total; fails when something did not reach the log.
fn print_once(report: &RunReport) -> anyhow::Result<()> {
    for once in &report.once_results {
        let status = match once.result.status {
            Status::Up => "UP",
            Status::Down => "DOWN",
        };
        let spooled = match once.appended {
            Appended::Spooled { seq } => format!("seq {seq}"),
            Appended::Full => "dropped: the spool is full".into(),
        };
        println!(
            "{}  {status}  {} ms  {}  ({spooled})",
            once.service_id,
            once.result.latency_ms(),
            once.result.detail,
        );
    }
    let totals = &report.totals;
    println!(
        "delivered {}, rejected {} (too_late {}), dropped {}, still spooled {}",
        totals.delivered, totals.rejected, totals.rejected_too_late, totals.dropped, report.pending
    );
    if totals.rejected > 0 || totals.dropped > 0 || report.pending > 0 {
        bail!(
            "not every observation reached the log: {} rejected (see the dead-letter file in the spool directory), {} dropped, {} still spooled (the next run delivers them)",
            totals.rejected,
            totals.dropped,
            report.pending
        );
    }
    Ok(())
}
