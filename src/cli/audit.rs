//! `uptime-ledger audit`: an auditor's independent check of a running ledger.
//!
//! Trust only the pinned checkpoint key: fetch the latest checkpoint and verify its
//! signature; if a checkpoint was saved by an earlier audit, verify the ledger's proof that
//! the log extends it; download every entry and recompute the Merkle root; check every
//! entry's signature and ingest rules and recompute the projection ([`audit`], pure); ask
//! the server for each service's availability and incidents *at the audited tree size* and
//! compare them field by field with the recomputed ones; the same for the alerts firing at
//! the prefix's last `received_at` and those that fired during the window, under the rules
//! of `--alerts` (the server's file; default rules without it). Any difference is an error naming
//! what differs; on success the new checkpoint is saved for the next audit.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::Args;

use uptime_ledger::alert::{self, AlertPolicy};
use uptime_ledger::audit::{self, AuditedPrefix, LogPrefix};
use uptime_ledger::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use uptime_ledger::client::{self, AuditStep, LedgerChannel};
use uptime_ledger::entry::timestamp_millis;
use uptime_ledger::merkle::Hash;
use uptime_ledger::pb;
use uptime_ledger::pb::log_service_client::LogServiceClient;
use uptime_ledger::pb::query_service_client::QueryServiceClient;
use uptime_ledger::window::{self, WindowSpec};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The ledger's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    ledger: String,
    #[command(flatten)]
    tls: super::TlsArgs,
    #[command(flatten)]
    token: super::ReadTokenArgs,
    /// The checkpoint key to trust, as printed by `serve` (<origin>+<key id>+<key>).
    #[arg(long)]
    verifier_key: String,
    /// Audit a raw export (`export --raw`) with no ledger instead: the same checks of every
    /// entry, signature and the Merkle root; no server answers to compare.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["since", "services", "previous_verifier_key"])]
    from_export: Option<PathBuf>,
    /// A checkpoint note saved by an earlier audit: the ledger must prove that its log
    /// extends it. After a successful audit the new checkpoint is saved there (also when
    /// FILE does not exist yet).
    #[arg(long, value_name = "FILE")]
    since: Option<PathBuf>,
    /// Only this service (repeatable); default: every service defined in the log.
    #[arg(long = "service", value_name = "ID")]
    services: Vec<String>,
    #[arg(long, default_value = "last-30d", help = super::WINDOW_HELP)]
    window: WindowSpec,
    /// The checkpoint key of the log this one continues (after a key rotation): the
    /// previous log is audited too, and its last checkpoint must be the one the new
    /// genesis names.
    #[arg(long, requires = "previous_ledger")]
    previous_verifier_key: Option<String>,
    /// The gRPC address of the ledger serving the previous log.
    #[arg(long, requires = "previous_verifier_key")]
    previous_ledger: Option<String>,
    /// The server's alert rules (its `--alerts` file; receivers are ignored). Without it the
    /// default rules, which is what a server without `--alerts` uses.
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let verifier: NoteVerifier = args
        .verifier_key
        .parse()
        .context("--verifier-key is not a verifier key")?;
    if let Some(path) = &args.from_export {
        return super::offline_audit::run(path, &verifier).await;
    }
    let previous = match (&args.previous_verifier_key, &args.previous_ledger) {
        (Some(key), Some(ledger)) => Some((
            key.parse::<NoteVerifier>()
                .context("--previous-verifier-key is not a verifier key")?,
            ledger.clone(),
        )),
        _ => None,
    };
    let channel = super::connect_reader(&args.ledger, &args.tls, &args.token).await?;
    let audited = audit_ledger(channel, &verifier, &args)
        .await
        .context("audit failed")?;
    match (previous, &audited.genesis.previous_log) {
        (Some((previous_verifier, previous_ledger)), _) => {
            audit_previous_log(&audited, &previous_verifier, &previous_ledger, &args)
                .await
                .context("audit of the previous log failed")?;
        }
        (None, Some(named)) => println!(
            "  note: this log continues {} at tree size {}; audit that log too with --previous-ledger and --previous-verifier-key (its key obtained out of band)",
            named.origin, named.tree_size
        ),
        (None, None) => {}
    }
    Ok(())
}

/// Audits the log the audited one continues, and checks that the new genesis names its
/// last checkpoint.
async fn audit_previous_log(
    audited: &AuditedPrefix,
    verifier: &NoteVerifier,
    ledger: &str,
    args: &AuditArgs,
) -> anyhow::Result<()> {
    let channel = super::connect_reader(ledger, &args.tls, &args.token).await?;
    let mut log = LogServiceClient::new(channel);
    let (checkpoint, _) = client::fetch_checkpoint(&mut log, verifier).await?;
    download_and_audit(&mut log, &checkpoint, verifier).await?;
    let previous = audited.genesis.previous_log.as_ref();
    let named = match previous {
        Some(previous) if previous.tree_size != checkpoint.tree_size => {
            let note = log
                .get_checkpoint(pb::GetCheckpointRequest {
                    tree_size: previous.tree_size,
                })
                .await
                .map_err(|status| {
                    anyhow!(
                        "the genesis names the previous log's checkpoint at tree size {}, which that ledger does not serve: {}",
                        previous.tree_size,
                        super::rpc_failure(&status)
                    )
                })?
                .into_inner()
                .checkpoint;
            let named = open_checkpoint(&note, verifier)?;
            if named.tree_size < checkpoint.tree_size {
                client::prove_consistency(&mut log, &named, &checkpoint).await?;
            }
            named
        }
        _ => checkpoint.clone(),
    };
    audit::check_succession(previous, verifier, &named, &checkpoint)?;
    println!(
        "previous log {} audited: {} entries, and its last checkpoint (root {}) is the one this log's genesis continues",
        checkpoint.origin,
        checkpoint.tree_size,
        hex::encode(checkpoint.root_hash)
    );
    Ok(())
}

async fn audit_ledger(
    channel: LedgerChannel,
    verifier: &NoteVerifier,
    args: &AuditArgs,
) -> anyhow::Result<AuditedPrefix> {
    let mut log = LogServiceClient::new(channel.clone());
    let (checkpoint, note) = client::fetch_checkpoint(&mut log, verifier).await?;

    let saved = match &args.since {
        Some(path) => read_saved_checkpoint(path, verifier)?,
        None => None,
    };
    if let Some(saved) = &saved {
        let proof = if saved.tree_size < checkpoint.tree_size {
            consistency_proof(&mut log, saved.tree_size, checkpoint.tree_size).await?
        } else {
            Vec::new()
        };
        audit::check_consistency(saved, &checkpoint, &proof)?;
    }

    if !args.services.is_empty() {
        // A mistyped service is named before the whole log is downloaded (the audited log
        // is checked again after it).
        let listed = QueryServiceClient::new(channel.clone())
            .list_services(pb::ListServicesRequest {})
            .await
            .map_err(|status| anyhow!("ListServices failed: {}", super::rpc_failure(&status)))?
            .into_inner();
        let defined: Vec<String> = listed
            .services
            .into_iter()
            .filter_map(|service| service.spec.map(|spec| spec.service_id))
            .collect();
        if let Some(unknown) = args.services.iter().find(|asked| !defined.contains(asked)) {
            bail!(
                "service {unknown:?} is not defined; the ledger defines: {}",
                defined.join(", ")
            );
        }
    }
    let audited = download_and_audit(&mut log, &checkpoint, verifier).await?;
    let prefix = LogPrefix {
        tree_size: checkpoint.tree_size,
        checkpoint: note.clone(),
    };
    let services = services_to_check(&audited, &args.services)?;
    let (start, end) =
        window::resolve(&args.window, audited.as_of).map_err(|e| anyhow!("--window: {e}"))?;
    let policy = match &args.alerts {
        Some(path) => alert::config::load(path)?.policy,
        None => AlertPolicy::default(),
    };
    let mut query = QueryServiceClient::new(channel);
    let (keys, proposals) = compare_governance(&mut query, &audited, &prefix).await?;
    for service_id in &services {
        compare_service(
            &mut query,
            service_id,
            &args.window,
            &audited,
            &prefix,
            (start, end),
        )
        .await?;
        compare_alerts(
            &mut query,
            service_id,
            &args.window,
            &audited,
            &policy,
            &prefix,
        )
        .await?;
    }

    println!(
        "audit passed: {} at tree size {}, root {}",
        checkpoint.origin,
        checkpoint.tree_size,
        hex::encode(checkpoint.root_hash)
    );
    let counts = audited.counts;
    println!(
        "  entries: {} ({} observations, {} commands, 1 genesis), every one valid by the ingest rules at its position",
        counts.entries, counts.observations, counts.commands
    );
    println!("  signatures verified: {}", counts.signatures_verified);
    println!(
        "  services checked: {} (availability, incidents and alerts over [{}, {}) equal the server's answers at tree size {})",
        services.len(),
        uptime_ledger::domain::format_millis(start),
        uptime_ledger::domain::format_millis(end),
        checkpoint.tree_size
    );
    println!(
        "  admin keys: {keys}, proposals: {proposals} (approval threshold {}); who proposed and approved what equals the server's answers",
        audited.projection.governance().threshold()
    );
    if let Some(path) = &args.since {
        save_checkpoint(path, &note)?;
        match &saved {
            Some(saved) => println!(
                "  consistent with the checkpoint saved in {} (tree size {}); saved the new one there",
                path.display(),
                saved.tree_size
            ),
            None => println!(
                "  no checkpoint was saved in {} yet; saved this one there",
                path.display()
            ),
        }
    }
    Ok(audited)
}

/// Asks the server for the admin keys and every proposal at the audited tree size and
/// compares them with the recomputed ones; answers how many of each there are.
async fn compare_governance(
    query: &mut QueryServiceClient<LedgerChannel>,
    audited: &AuditedPrefix,
    prefix: &LogPrefix,
) -> anyhow::Result<(usize, usize)> {
    let rpc_error =
        |rpc: &str, status: tonic::Status| anyhow!("{rpc} failed: {}", super::rpc_failure(&status));
    let served_keys = query
        .list_admin_keys(pb::ListAdminKeysRequest {
            tree_size: prefix.tree_size,
        })
        .await
        .map_err(|status| rpc_error("ListAdminKeys", status))?
        .into_inner();
    let served_proposals = query
        .list_proposals(pb::ListProposalsRequest {
            tree_size: prefix.tree_size,
            pending_only: false,
        })
        .await
        .map_err(|status| rpc_error("ListProposals", status))?
        .into_inner();
    for (answer, served) in [
        ("admin key list's", served_keys.prefix.clone()),
        ("proposal list's", served_proposals.prefix.clone()),
    ] {
        let served = served.unwrap_or_default();
        audit::compare_prefix(
            "(governance)",
            answer,
            &LogPrefix {
                tree_size: served.tree_size,
                checkpoint: served.checkpoint,
            },
            prefix,
        )?;
    }
    let governance = audited.projection.governance();
    let thresholds = [
        ("admin key list's threshold", served_keys.threshold),
        ("proposal list's threshold", served_proposals.threshold),
    ];
    for (what, served) in thresholds {
        audit::compare_governance(what, &[served], &[governance.threshold()], u32::to_string)?;
    }
    let keys: Vec<_> = governance
        .admins()
        .iter()
        .map(uptime_ledger::rpc::admin_key_to_pb)
        .collect();
    audit::compare_governance("admin keys", &served_keys.keys, &keys, |key| {
        key.name.clone()
    })?;
    let proposals: Vec<_> = governance
        .proposal_statuses(audited.as_of)
        .into_iter()
        .map(uptime_ledger::rpc::proposal_to_pb)
        .collect();
    audit::compare_governance(
        "proposals",
        &served_proposals.proposals,
        &proposals,
        |proposal| hex::encode(&proposal.digest),
    )?;
    Ok((keys.len(), proposals.len()))
}

/// Downloads the prefix the checkpoint signs and audits it ([`client::download_and_audit`]),
/// with a progress bar per step.
async fn download_and_audit(
    log: &mut LogServiceClient<LedgerChannel>,
    checkpoint: &Checkpoint,
    verifier: &NoteVerifier,
) -> anyhow::Result<AuditedPrefix> {
    // One bar for the entries audited; downloads run a chunk ahead of it.
    let bar = super::progress_bar(checkpoint.tree_size, "auditing");
    let audited = client::download_and_audit(log, checkpoint, verifier, |step, entries| {
        if step == AuditStep::Verify {
            bar.inc(entries);
        }
    })
    .await;
    bar.finish_and_clear();
    Ok(audited?)
}

/// The services to compare: those asked for, each of which the audited log must define,
/// or every service it defines.
fn services_to_check(audited: &AuditedPrefix, asked: &[String]) -> anyhow::Result<Vec<String>> {
    if asked.is_empty() {
        return Ok(audited
            .projection
            .services()
            .map(|spec| spec.service_id.to_string())
            .collect());
    }
    for service_id in asked {
        if audited.projection.spec(service_id).is_none() {
            bail!(
                "service {service_id:?} is not defined in the audited log (tree size {})",
                audited.tree_size
            );
        }
    }
    Ok(asked.to_vec())
}

/// Asks the server for the service's availability report and incidents at the audited
/// tree size and compares them, and the prefix they name, with the recomputed ones.
async fn compare_service(
    query: &mut QueryServiceClient<LedgerChannel>,
    service_id: &str,
    window_spec: &WindowSpec,
    audited: &AuditedPrefix,
    prefix: &LogPrefix,
    window: (i64, i64),
) -> anyhow::Result<()> {
    let rpc_error = |rpc: &str, status: tonic::Status| {
        anyhow!(
            "service {service_id}: {rpc} failed: {}",
            super::rpc_failure(&status)
        )
    };
    let served = query
        .get_availability(pb::GetAvailabilityRequest {
            service_id: service_id.to_owned(),
            window: Some(client::window_to_pb(window_spec)),
            tree_size: prefix.tree_size,
        })
        .await
        .map_err(|status| rpc_error("GetAvailability", status))?
        .into_inner()
        .report
        .ok_or_else(|| anyhow!("service {service_id}: GetAvailability answered no report"))?;
    let (served, tree_size, checkpoint) = client::availability_report_from_pb(&served)
        .map_err(|e| anyhow!("service {service_id}: the availability report is malformed: {e}"))?;
    audit::compare_prefix(
        service_id,
        "availability report's",
        &LogPrefix {
            tree_size,
            checkpoint,
        },
        prefix,
    )?;
    let recomputed = audited
        .projection
        .report(service_id, window.0, window.1)
        .expect("the audited log defines the service");
    audit::compare_report(service_id, &served, &recomputed)?;

    let served = query
        .list_incidents(pb::ListIncidentsRequest {
            service_id: service_id.to_owned(),
            window: Some(client::window_to_pb(window_spec)),
            tree_size: prefix.tree_size,
        })
        .await
        .map_err(|status| rpc_error("ListIncidents", status))?
        .into_inner();
    let malformed = |e: uptime_ledger::entry::InvalidInput| {
        anyhow!("service {service_id}: the incident list is malformed: {e}")
    };
    let served_prefix = served.prefix.unwrap_or_default();
    audit::compare_prefix(
        service_id,
        "incident list's",
        &LogPrefix {
            tree_size: served_prefix.tree_size,
            checkpoint: served_prefix.checkpoint,
        },
        prefix,
    )?;
    let served_window = (
        timestamp_millis(served.start.as_ref(), "start").map_err(malformed)?,
        timestamp_millis(served.end.as_ref(), "end").map_err(malformed)?,
    );
    let served_incidents = served
        .incidents
        .iter()
        .map(client::incident_from_pb)
        .collect::<Result<Vec<_>, _>>()
        .map_err(malformed)?;
    let recomputed = audited
        .projection
        .incidents(service_id, window.0, window.1)
        .expect("the audited log defines the service");
    audit::compare_incidents(
        service_id,
        served_window,
        &served_incidents,
        window,
        &recomputed,
    )?;
    Ok(())
}

/// Asks the server for the service's alerts at the audited tree size (firing at the
/// prefix's last `received_at`, fired during the window) and compares them with the ones
/// recomputed under `policy`.
async fn compare_alerts(
    query: &mut QueryServiceClient<LedgerChannel>,
    service_id: &str,
    window_spec: &WindowSpec,
    audited: &AuditedPrefix,
    policy: &AlertPolicy,
    prefix: &LogPrefix,
) -> anyhow::Result<()> {
    let served = query
        .list_alerts(pb::ListAlertsRequest {
            service_id: service_id.to_owned(),
            at: Some(uptime_ledger::entry::millis_timestamp(audited.as_of)),
            window: Some(client::window_to_pb(window_spec)),
            tree_size: prefix.tree_size,
        })
        .await
        .map_err(|status| {
            anyhow!(
                "service {service_id}: ListAlerts failed: {}",
                super::rpc_failure(&status)
            )
        })?
        .into_inner();
    let served_prefix = served.prefix.unwrap_or_default();
    audit::compare_prefix(
        service_id,
        "alert list's",
        &LogPrefix {
            tree_size: served_prefix.tree_size,
            checkpoint: served_prefix.checkpoint,
        },
        prefix,
    )?;
    let decode = |alerts: &[pb::Alert]| {
        alerts
            .iter()
            .map(client::alert_from_pb)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("service {service_id}: the alert list is malformed: {e}"))
    };
    let (start, end) =
        window::resolve(window_spec, audited.as_of).map_err(|e| anyhow!("--window: {e}"))?;
    let projection = &audited.projection;
    audit::compare_alerts(
        service_id,
        "firing alerts",
        &decode(&served.firing)?,
        &alert::firing_for(projection, policy, service_id, audited.as_of),
    )?;
    audit::compare_alerts(
        service_id,
        "alert history",
        &decode(&served.history)?,
        &alert::history(projection, policy, service_id, start, end),
    )?;
    Ok(())
}

/// The checkpoint saved in `path` by an earlier audit, verified with the pinned key; `None`
/// when the file does not exist yet.
fn read_saved_checkpoint(
    path: &Path,
    verifier: &NoteVerifier,
) -> anyhow::Result<Option<Checkpoint>> {
    let note = match std::fs::read_to_string(path) {
        Ok(note) => note,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(anyhow!("cannot read {}: {error}", path.display())),
    };
    let checkpoint = open_checkpoint(&note, verifier).with_context(|| {
        format!(
            "{} does not hold a checkpoint signed by the pinned key",
            path.display()
        )
    })?;
    Ok(Some(checkpoint))
}

/// Writes the note to `path` atomically (a temporary file renamed over it), so an
/// interrupted audit never leaves half a checkpoint behind.
fn save_checkpoint(path: &Path, note: &str) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, note)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("cannot save the checkpoint to {}", path.display()))
}

async fn consistency_proof(
    log: &mut LogServiceClient<LedgerChannel>,
    first: u64,
    second: u64,
) -> anyhow::Result<Vec<Hash>> {
    let proof = log
        .get_consistency_proof(pb::GetConsistencyProofRequest { first, second })
        .await
        .map_err(|status| {
            anyhow!(
                "GetConsistencyProof({first}, {second}) failed: {}",
                super::rpc_failure(&status)
            )
        })?
        .into_inner()
        .proof;
    proof
        .into_iter()
        .map(|hash| {
            Hash::try_from(hash.as_slice()).map_err(|_| {
                anyhow!(
                    "the consistency proof holds a hash of {} bytes instead of 32",
                    hash.len()
                )
            })
        })
        .collect()
}
