//! `uptime-ledger demo`: the whole system in one command. A ledger (the same `Server` as
//! `serve`), six government services of six agencies, three probes at three vantage points
//! running the real probe agent in-process against simulated endpoints with scripted
//! outages, a few days of backfilled history sent through the real ingest path, and the
//! status page. Runs until Ctrl-C; the data directory is kept for `report`, `audit` and
//! `export`, and a later `demo --data-dir DIR` resumes it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use ed25519_dalek::SigningKey;
use futures_util::future::try_join_all;
use tonic::transport::Channel;

use super::console;
use uptime_ledger::client;
use uptime_ledger::clock::{Clock, SystemClock};
use uptime_ledger::crypto;
use uptime_ledger::demo::{alert_receiver, history, simulator, Script, PROBES, SERVICES};
use uptime_ledger::domain::{
    AdminCommand, Command, MaintenanceId, Millis, ProbeId, ServiceId, ServiceSpec,
};
use uptime_ledger::limits::Limits;
use uptime_ledger::pb;
use uptime_ledger::pb::admin_service_client::AdminServiceClient;
use uptime_ledger::pb::ingest_service_client::IngestServiceClient;
use uptime_ledger::probe::agent::{Agent, Mode};
use uptime_ledger::probe::config;
use uptime_ledger::projector::Projections;

use super::limits::LimitArgs;
use super::serve::{shutdown_signal, SecurityArgs, ServeArgs, Server};

/// The file that marks a demo directory whose setup and backfill are complete, holding
/// the script's anchor (Unix milliseconds).
const ANCHOR_FILE: &str = "demo-anchor";
/// Backfilled observations are this far apart (the live probes check more often).
const BACKFILL_EVERY: Duration = Duration::from_secs(60);
/// Observations per backfill `Submit`.
const BACKFILL_BATCH: usize = 2_000;
/// The live probes' check timeout (the simulator's "no route" answers hang longer).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Staleness of every demo service: longer than the backfill interval.
const STALENESS: Duration = Duration::from_secs(90);

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo's ledger lives. Default: a new directory under the system's temp
    /// directory, printed at start. Giving the directory of an earlier demo resumes it.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// HTTP listen address: the status page, the JSON API, /metrics.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// History backfilled before the probes start (the demo ledger's max lateness is this
    /// plus an hour, so all of it is accepted). A week fills a week of the 90 daily bars and
    /// takes a few seconds; 30d takes about 30 s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "7d")]
    history: Duration,
    /// How often each live probe checks each service.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    check_interval: Duration,
    /// Also send the alerts to this Alertmanager (its base URL, e.g. http://127.0.0.1:9093).
    #[arg(long, value_name = "URL")]
    alertmanager: Option<String>,
    /// The IANA time zone the status pages show times and days in, e.g. Africa/Nairobi.
    #[arg(long, value_name = "ZONE", default_value = "UTC", value_parser = super::serve::parse_time_zone)]
    time_zone: String,
}

/// `for` of the demo's outage and no-data alerts: short, so they fire during its outages.
const ALERT_FOR: &str = "30s";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.history > Duration::from_secs(30 * 86_400) {
        bail!("--history is at most 30d");
    }
    if args.check_interval < Duration::from_secs(1) || args.check_interval > STALENESS {
        bail!(
            "--check-interval must be between 1s and {}s (the services' staleness)",
            STALENESS.as_secs()
        );
    }
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "uptime-ledger-demo-{}",
            SystemClock.now_millis() / 1000
        )),
    };
    let anchor = read_anchor(&data_dir)?;
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the demo's webhook receiver")?;
    let alerts = write_alerts_config(
        &data_dir,
        args.http_addr,
        receiver_listener.local_addr()?,
        args.alertmanager.as_deref(),
    )?;
    // The backfill sends days of a probe's observations at once: no per-probe rate limit.
    let limits = Limits {
        probe_rate: 0.0,
        ..Limits::default()
    };
    let server = Server::open(
        &ServeArgs {
            data_dir: data_dir.clone(),
            grpc_addr: args.grpc_addr,
            http_addr: args.http_addr,
            origin: None,
            admin_keys: Vec::new(),
            // Genesis only: a resumed demo keeps the lateness it was created with.
            max_lateness: anchor
                .is_none()
                .then(|| args.history + Duration::from_secs(3600)),
            max_skew: None,
            admin_threshold: None,
            continue_from: None,
            rebuild_projections: false,
            checkpoint_interval: Duration::from_millis(500),
            alerts: Some(alerts),
            time_zone: args.time_zone.clone(),
            limits: LimitArgs::default(),
            security: SecurityArgs::default(),
        },
        limits,
    )
    .await?;
    let grpc_addr = server.grpc_addr()?;
    let http_addr = server.http_addr()?;
    let verifier = server.ledger.verifier().to_string();
    let (ledger, projections) = (server.ledger.clone(), server.projections.clone());

    let (stop_server, server_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(alert_receiver::serve(
        receiver_listener,
        server.ledger.verifier().clone(),
        |line| console::say(format_args!("{line}")),
        wait_for(server_stopped.clone()),
    ));
    let mut serving = tokio::spawn(server.serve_until(wait_for(server_stopped)));
    let ledger_url = format!("http://{grpc_addr}");
    let channel = client::connect(&ledger_url)
        .await
        .with_context(|| format!("cannot reach the demo ledger at {ledger_url}"))?;

    let script = match anchor {
        Some(anchor) => {
            console::say(format_args!("resuming the demo in {}", data_dir.display()));
            Script::new(anchor)
        }
        None => {
            let anchor = SystemClock.now_millis();
            let script = Script::new(anchor);
            set_up(&data_dir, &script, channel.clone()).await?;
            backfill(&data_dir, &script, args.history, channel.clone()).await?;
            projections_include(&projections, ledger.tree_size()).await?;
            std::fs::write(data_dir.join(ANCHOR_FILE), anchor.to_string())
                .context("cannot write the demo's anchor file")?;
            script
        }
    };

    let simulator_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the simulated services")?;
    let simulator_addr = simulator_listener.local_addr()?;
    let (stop_probes, probes_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(simulator::serve(
        simulator_listener,
        script,
        Arc::new(SystemClock),
        wait_for(stop_server.subscribe()),
    ));
    let mut probes = Vec::new();
    for probe in &PROBES {
        let path = write_probe_config(
            &data_dir,
            probe.probe_id,
            &ledger_url,
            simulator_addr,
            &args,
        )?;
        let config = config::load(&path)?;
        let key = crypto::read_signing_key(&config.key_file)?;
        let agent = Agent {
            config,
            key,
            clock: Arc::new(SystemClock),
            drain_timeout: Duration::from_secs(3),
        };
        probes.push(tokio::spawn(
            agent.run(Mode::Continuous, wait_for(probes_stopped.clone())),
        ));
    }

    print_banner(&data_dir, grpc_addr, http_addr, simulator_addr, &verifier);
    tokio::select! {
        () = shutdown_signal() => {}
        served = &mut serving => {
            served??;
            bail!("the demo ledger stopped unexpectedly");
        }
    }
    // Probes first, so that what they checked last still reaches the ledger.
    let _ = stop_probes.send(true);
    for probe in probes {
        if let Err(error) = probe.await? {
            tracing::warn!("a demo probe stopped with an error: {error}");
        }
    }
    let _ = stop_server.send(true);
    serving.await??;
    console::say(format_args!(
        "demo stopped; its ledger stays in {} (resume with `uptime-ledger demo --data-dir {}`)",
        data_dir.display(),
        data_dir.display()
    ));
    Ok(())
}

/// Waits until the projections include the first `tree_size` entries, so the status page
/// shows the backfilled history as soon as the demo prints its address (the projector
/// follows checkpoints, signed every 500 ms).
async fn projections_include(projections: &Projections, tree_size: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while projections.read().tree_size < tree_size {
        if Instant::now() > deadline {
            bail!(
                "the projections did not reach the backfilled history ({tree_size} entries) within 60 s"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The anchor of a completed demo setup in `data_dir`, `None` for a new directory.
fn read_anchor(data_dir: &Path) -> anyhow::Result<Option<Millis>> {
    let path = data_dir.join(ANCHOR_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let anchor = text
                .trim()
                .parse()
                .with_context(|| format!("{} does not hold a time", path.display()))?;
            Ok(Some(anchor))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if data_dir.join("log").exists() {
                bail!(
                    "{} holds a ledger but no completed demo setup (an earlier `demo` was \
                     interrupted while backfilling, or this is not a demo directory): remove \
                     it or pick another --data-dir",
                    data_dir.display()
                );
            }
            Ok(None)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Defines the services, registers the probes (generating their keys) and declares the
/// planned maintenance, all as admin commands signed with the generated admin key.
async fn set_up(data_dir: &Path, script: &Script, channel: Channel) -> anyhow::Result<()> {
    let admin_key = crypto::read_signing_key(&data_dir.join("keys").join("admin.pem"))?;
    let mut commands = Vec::new();
    for service in &SERVICES {
        commands.push(Command::DefineService(ServiceSpec {
            service_id: ServiceId::parse(service.service_id)?,
            name: service.name.into(),
            agency: service.agency.into(),
            slo_target: service.slo_target,
            quorum: service.quorum,
            staleness: STALENESS,
        }));
    }
    for probe in &PROBES {
        let dir = data_dir.join("probes").join(probe.probe_id);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let key = crypto::generate_key_files(&dir.join("probe.pem"))?;
        commands.push(Command::RegisterProbe {
            probe_id: ProbeId::parse(probe.probe_id)?,
            public_key: crypto::PublicKey::from(&key),
            location: probe.location.into(),
        });
    }
    let maintenance = script.maintenance();
    commands.push(Command::ScheduleMaintenance {
        maintenance_id: MaintenanceId::parse(maintenance.maintenance_id)?,
        service_id: ServiceId::parse(SERVICES[maintenance.service].service_id)?,
        start: maintenance.start,
        end: maintenance.end,
        reason: maintenance.reason.into(),
    });
    let mut admin = AdminServiceClient::new(channel);
    for (seq, command) in (1..).zip(commands) {
        let command = AdminCommand {
            seq,
            issued_at: SystemClock.now_millis(),
            command,
        };
        admin
            .apply(pb::ApplyRequest {
                command: Some(client::sign_command("admin", &admin_key, &command)),
            })
            .await
            .map_err(|status| anyhow::anyhow!("demo setup: {}", super::rpc_failure(&status)))?;
    }
    Ok(())
}

/// Sends `history` of each probe's observations through `Submit`, signed with the probe's
/// key; every one must be ACCEPTED.
async fn backfill(
    data_dir: &Path,
    script: &Script,
    history: Duration,
    channel: Channel,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let to = script.anchor;
    let from = to - history.as_millis() as Millis;
    // Below the seqs the live agent's new spool starts at (the time in microseconds).
    let first_seq = u64::try_from(from).unwrap_or(0) * 1000;
    let every = BACKFILL_EVERY.as_millis() as Millis;
    let per_probe = history::observations(script, from, to, every, first_seq);
    let total: usize = per_probe.iter().map(Vec::len).sum();
    console::say(format_args!(
        "backfilling {} of history: {total} signed observations from {} probes…",
        history_text(history),
        PROBES.len()
    ));
    let sends = per_probe
        .into_iter()
        .zip(&PROBES)
        .map(|(observations, probe)| {
            let key_path = data_dir
                .join("probes")
                .join(probe.probe_id)
                .join("probe.pem");
            let mut ingest = IngestServiceClient::new(channel.clone());
            async move {
                let key: SigningKey = crypto::read_signing_key(&key_path)?;
                for chunk in observations.chunks(BACKFILL_BATCH) {
                    let signed = chunk
                        .iter()
                        .map(|o| client::sign_observation(&key, o))
                        .collect();
                    let acks = ingest
                        .submit(pb::SubmitRequest {
                            observations: signed,
                        })
                        .await
                        .map_err(|s| anyhow::anyhow!("backfill: {}", super::rpc_failure(&s)))?
                        .into_inner()
                        .acks;
                    if let Some(ack) = acks
                        .iter()
                        .find(|ack| ack.status != pb::AckStatus::Accepted as i32)
                    {
                        bail!("backfill: an observation was not accepted: {}", ack.message);
                    }
                }
                anyhow::Ok(())
            }
        });
    try_join_all(sends).await?;
    console::say(format_args!(
        "backfilled {total} observations in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Writes (each start, so flags apply) the probe's config file: one HTTP check per service
/// against its own path on the simulator. It is an ordinary probe config, loaded by the
/// same code as `uptime-ledger probe --config`.
fn write_probe_config(
    data_dir: &Path,
    probe_id: &str,
    ledger_url: &str,
    simulator: SocketAddr,
    args: &DemoArgs,
) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("probes").join(probe_id);
    let interval = humantime::format_duration(args.check_interval);
    let timeout = humantime::format_duration(CHECK_TIMEOUT.min(args.check_interval));
    let mut text = format!(
        "# Written by `uptime-ledger demo`: this probe checks the simulated services.\n\
         probe_id = \"{probe_id}\"\nkey_file = \"probe.pem\"\nledger = \"{ledger_url}\"\n\
         spool_dir = \"spool\"\n"
    );
    for service in &SERVICES {
        text.push_str(&format!(
            "\n[[check]]\nservice_id = \"{}\"\nkind = \"http\"\n\
             url = \"http://{simulator}/{probe_id}/{}\"\ninterval = \"{interval}\"\n\
             timeout = \"{timeout}\"\nexpect_status = [200]\n",
            service.service_id, service.service_id
        ));
    }
    let path = dir.join("probe.toml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Writes the demo's `--alerts` file: outage and no-data after [`ALERT_FOR`], every burn
/// rule, evaluated every 2 s, sent to the demo's own webhook receiver (and to an
/// Alertmanager when one is given), linking to the status page.
fn write_alerts_config(
    data_dir: &Path,
    http: SocketAddr,
    receiver: SocketAddr,
    alertmanager: Option<&str>,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut text = format!(
        "for = \"{ALERT_FOR}\"\nlink = \"http://{http}\"\n\n[delivery]\nevaluation_interval = \"2s\"\nrepost_interval = \"30s\"\nmax_backoff = \"30s\"\n\n[[receiver]]\nname = \"demo-webhook\"\nwebhook = \"http://{receiver}{}\"\n",
        alert_receiver::PATH
    );
    if let Some(url) = alertmanager {
        text.push_str(&format!(
            "\n[[receiver]]\nname = \"alertmanager\"\nalertmanager = \"{url}\"\n"
        ));
    }
    let path = data_dir.join("alerts.toml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn print_banner(
    data_dir: &Path,
    grpc: SocketAddr,
    http: SocketAddr,
    simulator: SocketAddr,
    verifier: &str,
) {
    console::blank_line();
    console::banner(
        "uptime-ledger demo is running (Ctrl-C to stop)",
        &[
            ("status page", format!("http://{http}/")),
            (
                "one service",
                format!("http://{http}/services/immigration.passport"),
            ),
            ("JSON API", format!("http://{http}/api/v1/services")),
            ("alerts", format!("http://{http}/api/v1/alerts")),
            ("Prometheus metrics", format!("http://{http}/metrics")),
            ("gRPC", format!("http://{grpc}")),
            (
                "simulated services",
                format!("http://{simulator}/<probe>/<service>"),
            ),
            ("data dir", data_dir.display().to_string()),
            ("verifier key", verifier.to_owned()),
        ],
    );
    console::blank_line();
    console::say(format_args!(
        "What happens next: passport applications go down for everyone at +1m30s and come\n\
         back at +6m; business registration flaps for 15 minutes; the mobile-network probe\n\
         loses driving licences for 10 minutes (the other two outvote it); tax filing is in\n\
         planned maintenance from +3m to +13m. Alerts fire 30 s into an outage and resolve\n\
         when it ends; the demo's webhook receiver prints each one below (the alerts file is\n\
         DATA_DIR/alerts.toml; --alertmanager URL also sends them there). In another terminal:\n  \
         uptime-ledger report --ledger http://{grpc} --window last-24h\n  \
         uptime-ledger audit --ledger http://{grpc} --verifier-key '{verifier}' --window last-24h"
    ));
    // The status page URL on stdout, for scripts (stderr carries the rest).
    println!("http://{http}/");
}

/// `7 days`, `1 day`, or humantime's form for anything else (`36h`).
fn history_text(history: Duration) -> String {
    match history.as_secs() {
        86_400 => "1 day".into(),
        secs if secs % 86_400 == 0 => format!("{} days", secs / 86_400),
        _ => humantime::format_duration(history).to_string(),
    }
}

/// Resolves once `flag` is true (or its sender is gone).
async fn wait_for(mut flag: tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|&stop| stop).await;
}
