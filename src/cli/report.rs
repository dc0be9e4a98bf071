//! `uptime-ledger report`: availability, SLO compliance and incidents of one or all
//! services over a window, from the ledger's QueryService, as an aligned table or JSON.
//! Every answer names the log prefix it was computed from; `audit` checks them.

use anyhow::{anyhow, bail};
use clap::Args;
use serde::Serialize;
use uptime_ledger::checkpoint::Checkpoint;

use uptime_ledger::client;
use uptime_ledger::domain::format_millis;
use uptime_ledger::pb;
use uptime_ledger::pb::query_service_client::QueryServiceClient;
use uptime_ledger::projection::{AvailabilityReport, Incident};
use uptime_ledger::window::WindowSpec;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The ledger's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    ledger: String,
    #[command(flatten)]
    tls: super::TlsArgs,
    #[command(flatten)]
    token: super::ReadTokenArgs,
    /// Only this service (repeatable); default: every service.
    #[arg(long = "service", value_name = "ID")]
    services: Vec<String>,
    /// Compute every report from the log prefix of this size, at which a checkpoint was
    /// signed; default: the prefix the ledger publishes now. Every service's report comes
    /// from the same prefix either way.
    #[arg(long, value_name = "N")]
    tree_size: Option<u64>,
    #[arg(long, default_value = "last-30d", help = super::WINDOW_HELP)]
    window: WindowSpec,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Write an evidence file of the service's report and incidents instead (the signed
    /// observations behind each incident with their inclusion proofs; docs/evidence.md),
    /// computed from the audited log prefix of the latest checkpoint.
    #[arg(long, value_name = "FILE", requires_all = ["services", "verifier_key"])]
    evidence: Option<std::path::PathBuf>,
    /// With --evidence: the checkpoint key to verify the log against.
    #[arg(long, requires = "evidence")]
    verifier_key: Option<String>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct ReportDocument {
    services: Vec<ServiceReport>,
}

/// One service's report, in the JSON API's shape: times are RFC 3339 UTC, durations
/// milliseconds.
#[derive(Debug, Serialize)]
struct ServiceReport {
    service_id: String,
    name: String,
    agency: String,
    #[serde(flatten)]
    report: AvailabilityReport,
    incidents: Vec<Incident>,
    /// The log prefix the report was computed from.
    tree_size: u64,
    checkpoint: String,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let channel = super::connect_reader(&args.ledger, &args.tls, &args.token).await?;
    if let (Some(path), Some(verifier_key)) = (&args.evidence, &args.verifier_key) {
        let [service_id] = args.services.as_slice() else {
            bail!("--evidence covers one service: give exactly one --service");
        };
        let request = super::evidence::EvidenceRequest {
            path,
            verifier_key,
            service_id,
            window: &args.window,
        };
        return super::evidence::write(channel, request).await;
    }
    let mut query = QueryServiceClient::new(channel);
    let rpc_error = |status: tonic::Status| anyhow!("{}", super::rpc_failure(&status));
    let listed = query
        .list_services(pb::ListServicesRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner();
    // One prefix for every service: the one asked for, else the one published now.
    let tree_size = match args.tree_size {
        Some(size) => size,
        None => listed.prefix.as_ref().map_or(0, |prefix| prefix.tree_size),
    };
    let specs: Vec<pb::ServiceSpec> = listed.services.into_iter().filter_map(|s| s.spec).collect();
    let specs = if args.services.is_empty() {
        specs
    } else {
        let defined: Vec<&str> = specs.iter().map(|spec| spec.service_id.as_str()).collect();
        for wanted in &args.services {
            if !defined.contains(&wanted.as_str()) {
                bail!(
                    "service {wanted:?} is not defined; the ledger defines: {}",
                    defined.join(", ")
                );
            }
        }
        specs
            .into_iter()
            .filter(|spec| args.services.contains(&spec.service_id))
            .collect()
    };
    let mut services = Vec::with_capacity(specs.len());
    for spec in specs {
        services.push(
            service_report(&mut query, spec, &args.window, tree_size)
                .await
                .map_err(|e| e.context("the ledger's answer cannot be read"))?,
        );
    }
    let document = ReportDocument { services };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print_table(&document);
    }
    Ok(())
}

async fn service_report(
    query: &mut QueryServiceClient<client::LedgerChannel>,
    spec: pb::ServiceSpec,
    window: &WindowSpec,
    tree_size: u64,
) -> anyhow::Result<ServiceReport> {
    let service_id = spec.service_id;
    let rpc_error = |rpc: &str, status: tonic::Status| {
        anyhow!(
            "service {service_id}: {rpc}: {}",
            super::rpc_failure(&status)
        )
    };
    let served = query
        .get_availability(pb::GetAvailabilityRequest {
            service_id: service_id.clone(),
            window: Some(client::window_to_pb(window)),
            tree_size,
        })
        .await
        .map_err(|status| rpc_error("GetAvailability", status))?
        .into_inner()
        .report
        .ok_or_else(|| anyhow!("service {service_id}: GetAvailability answered no report"))?;
    let (report, served_size, checkpoint) = client::availability_report_from_pb(&served)?;
    if tree_size != 0 && served_size != tree_size {
        bail!("service {service_id}: the ledger answered for tree size {served_size}, not {tree_size}");
    }
    let tree_size = served_size;
    let incidents = query
        .list_incidents(pb::ListIncidentsRequest {
            service_id: service_id.clone(),
            window: Some(client::window_to_pb(window)),
            tree_size,
        })
        .await
        .map_err(|status| rpc_error("ListIncidents", status))?
        .into_inner()
        .incidents
        .iter()
        .map(client::incident_from_pb)
        .collect::<Result<Vec<Incident>, _>>()?;
    Ok(ServiceReport {
        service_id,
        name: spec.name,
        agency: spec.agency,
        report,
        incidents,
        tree_size,
        checkpoint,
    })
}

fn print_table(document: &ReportDocument) {
    let Some(first) = document.services.first() else {
        println!("no services are defined");
        return;
    };
    let tree_sizes = document.services.iter().map(|s| s.tree_size);
    let (smallest, largest) = (tree_sizes.clone().min(), tree_sizes.max());
    let header = [
        "service",
        "availability",
        "SLO",
        "met",
        "up",
        "down",
        "unknown",
        "maintenance",
        "budget left",
        "incidents",
    ]
    .map(String::from);
    let rows: Vec<[String; 10]> = document
        .services
        .iter()
        .map(|s| {
            [
                s.service_id.clone(),
                s.report.availability.map_or("-".into(), percent),
                percent(s.report.slo_target),
                if s.report.slo_met { "yes" } else { "no" }.into(),
                duration(s.report.up_ms as f64),
                duration(s.report.down_ms as f64),
                duration(s.report.unknown_ms as f64),
                duration(s.report.maintenance_ms as f64),
                duration(s.report.error_budget_remaining_ms),
                s.report.incident_count.to_string(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| match column {
                0 => format!("{cell:<width$}"),
                _ => format!("{cell:>width$}"),
            })
            .collect();
        println!("{}", cells.join("  "));
    }
    let incidents: Vec<(&str, &Incident)> = document
        .services
        .iter()
        .flat_map(|s| s.incidents.iter().map(|i| (s.service_id.as_str(), i)))
        .collect();
    if !incidents.is_empty() {
        println!();
        println!("incidents:");
        for (service_id, incident) in incidents {
            // An open incident has no end yet: only its latest evidence is printed.
            let until = match incident.last_observed_at.filter(|_| incident.open) {
                Some(last) => format!(
                    "ongoing, last observation {} ({} so far)",
                    format_millis(last),
                    duration((last - incident.start) as f64)
                ),
                None => format_millis(incident.end),
            };
            println!(
                "  {service_id:<width$}  {} .. {until}  probes: {}",
                format_millis(incident.start),
                incident.probes.join(", "),
                width = widths[0]
            );
        }
    }
    println!();
    // Every report comes from one prefix; name it with its root.
    let root = first
        .checkpoint
        .split_once("\n\n")
        .and_then(|(body, _)| Checkpoint::parse_body(&format!("{body}\n")).ok())
        .map_or_else(
            || "?".to_owned(),
            |checkpoint| hex::encode(checkpoint.root_hash),
        );
    let prefix = match (smallest, largest) {
        (Some(smallest), Some(largest)) if smallest != largest => {
            format!("tree sizes {smallest} to {largest}")
        }
        _ => format!("tree size {}, root {root}", first.tree_size),
    };
    println!(
        "window [{}, {}); computed from the log prefix of {prefix}",
        format_millis(first.report.start),
        format_millis(first.report.end)
    );
}

/// A fraction as a percentage with three decimals: `0.99953` → `99.953%`.
fn percent(fraction: f64) -> String {
    format!("{:.3}%", fraction * 100.0)
}

/// Milliseconds as days, hours, minutes and seconds (`3d 4h 0m 12s`), rounded to the
/// second; negative for an overspent error budget.
fn duration(millis: f64) -> String {
    let seconds = (millis.abs() / 1000.0).round() as u64;
    let sign = if millis < 0.0 && seconds > 0 { "-" } else { "" };
    let (days, hours, minutes, seconds) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    let text = match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m {seconds}s"),
        _ => format!("{days}d {hours}h {minutes}m {seconds}s"),
    };
    format!("{sign}{text}")
}
