//! `uptime-ledger bench ingest|query|rebuild|audit|alerts|status-page|all`: the benchmark suite, with the
//! machine's ceilings measured in the same run; `bench peers`: the ledger's side of the
//! peer comparison run by `bench/peers/run.py`. Writes a table to stdout and JSON to
//! `--json`.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};

use uptime_ledger::bench::{alerts, audit, ceilings, history, ingest, peers, query, status_page};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Small histories and short measurements (about a minute; for CI smoke runs).
    #[arg(long)]
    quick: bool,
    /// Where cached histories live (built once, reused by later runs).
    #[arg(long, default_value = "bench-data")]
    dir: PathBuf,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// `peers`: the samples to load (`service,probe,ts,status`, as `bench/peers/gen.py`
    /// writes them).
    #[arg(long, value_name = "CSV", required_if_eq("which", "peers"))]
    samples: Option<PathBuf>,
    /// `peers`: the history's exclusive end, Unix seconds.
    #[arg(long, default_value_t = 1_735_689_600)]
    end: i64,
    /// `peers`: the history's length in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// `peers`: also define one service per probe, watched by that probe alone, and ask
    /// it the per-probe questions (every check is then submitted twice).
    #[arg(long)]
    per_probe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Ingest,
    Query,
    Rebuild,
    Audit,
    /// Alert evaluation per checkpoint at 100 services (in-process, no history cache).
    Alerts,
    /// The status page under a rush: `demo` and Debian's `wrk` (64 connections).
    StatusPage,
    /// Not part of `all`: run by `bench/peers/run.py`.
    Peers,
    All,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.which == Which::Peers {
        return run_peers(&args).await;
    }
    if args.which == Which::Alerts {
        let result = run_alerts(args.quick);
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
            println!("\nwrote {}", path.display());
        }
        return Ok(());
    }
    let days: &[u32] = if args.quick { &[1, 3] } else { &[1, 30, 365] };
    let calls = if args.quick { 200 } else { 2000 };
    std::fs::create_dir_all(&args.dir)?;
    let machine = ceilings::measure(&args.dir, args.quick).await?;
    println!("# machine ceilings (this run)");
    println!(
        "ed25519 verify, one core: strict single (verify_strict) {:.0}/s ({:.0} per CPU second); the ledger's rule, key table built {:.0}/s ({:.0} per CPU second)",
        machine.verify_single_per_s, machine.verify_single_per_cpu_s,
        machine.verify_rule_per_s, machine.verify_rule_per_cpu_s
    );
    println!(
        "ed25519 batch verify (never decides acceptance; for comparison): batch 64 {:.0}/s, batch 256 {:.0}/s ({:.0} per CPU second)",
        machine.verify_batch64_per_s, machine.verify_batch256_per_s,
        machine.verify_batch256_per_cpu_s
    );
    println!(
        "empty gRPC unary over loopback (256 in flight): {:.0}/s",
        machine.grpc_empty_unary_per_s
    );
    println!(
        "fdatasync: p50 {:.0} µs, p99 {:.0} µs",
        machine.fdatasync.p50_us, machine.fdatasync.p99_us
    );

    let mut ingest_results = Vec::new();
    if matches!(args.which, Which::Ingest | Which::All) {
        let binary = std::env::current_exe()?;
        let result = ingest::run(&binary, &args.dir, args.quick)
            .await
            .map_err(|e| anyhow!(e))?;
        println!(
            "\n# ingest (server in its own process; pre-signed observations from {} probes)",
            ingest::PROBES
        );
        let ratio = result.submit_per_s
            / (machine.verify_single_per_cpu_s * result.submit_server_cpu_cores.max(0.01));
        println!("Submit (batches of {}, {} in flight): {:.0} durable obs/s = {ratio:.2} of the strict single-verify ceiling x the {:.2} cores the server used; load generator {:.2} cores",
            ingest::BATCH, ingest::CONCURRENT_BATCHES,
            result.submit_per_s,
            result.submit_server_cpu_cores, result.submit_generator_cpu_cores);
        println!(
            "SubmitStream ({} streams): {:.0} durable obs/s",
            ingest::STREAMS,
            result.stream_per_s
        );
        for point in &result.latency_at_load {
            println!("ack latency at {:.0} % of max ({:.0} obs/s offered, batches of {}): p50 {:.1} ms, p99 {:.1} ms; server {:.2} cores, load generator {:.2}, stolen by the host {:.1} %",
                point.fraction * 100.0, point.offered_per_s, ingest::LATENCY_BATCH,
                point.latency.p50_us / 1000.0, point.latency.p99_us / 1000.0,
                point.server_cpu_cores, point.generator_cpu_cores, point.steal_percent);
        }
        println!("server over the whole run: {:.2} cores, peak RSS {:.0} MiB; disk {:.0} bytes/observation for {:.0} raw entry bytes ({:.2}x)",
            result.server_cpu_cores, result.server_peak_rss_bytes as f64 / 1048576.0, result.disk_bytes_per_observation,
            result.raw_entry_bytes_per_observation, result.disk_bytes_per_observation / result.raw_entry_bytes_per_observation);
        ingest_results.push(result);
    }

    let mut histories = Vec::new();
    let needs_history = matches!(
        args.which,
        Which::Query | Which::Rebuild | Which::Audit | Which::All
    );
    // Queries compare every size; rebuild and audit use the largest only.
    let sizes: &[u32] = match args.which {
        Which::Query | Which::All => days,
        _ => &days[days.len() - 1..],
    };
    for &d in sizes.iter().filter(|_| needs_history) {
        let built = history::ensure(&args.dir, d)
            .await
            .map_err(|e| anyhow!(e))?;
        match built.build_seconds {
            Some(s) if built.resumed => println!(
                "finished the interrupted build of the {d}-day history in {s:.1} s: {} observations",
                built.observations
            ),
            Some(s) => println!(
                "built {d}-day history: {} observations in {s:.1} s ({:.0} obs/s through ingest)",
                built.observations,
                built.observations as f64 / s
            ),
            None => println!(
                "cached {d}-day history: {} observations",
                built.observations
            ),
        }
        histories.push(built);
    }

    let mut queries = Vec::new();
    if matches!(args.which, Which::Query | Which::All) {
        println!("\n# queries over gRPC (sequential, p50 / p99)");
        println!(
            "{:>8} {:>8} {:<20} {:>10} {:>10}",
            "history", "window", "rpc", "p50 µs", "p99 µs"
        );
        for built in &histories {
            for result in query::run_queries(built, calls)
                .await
                .map_err(|e| anyhow!(e))?
            {
                println!(
                    "{:>7}d {:>7}d {:<20} {:>10.0} {:>10.0}",
                    result.history_days,
                    result.window_days,
                    result.rpc,
                    result.latency.p50_us,
                    result.latency.p99_us
                );
                queries.push(result);
            }
        }
    }
    // Rebuild and audit use the largest history.
    let largest = || {
        histories
            .last()
            .ok_or_else(|| anyhow!("no history was built"))
    };
    let mut rebuilds = Vec::new();
    if matches!(args.which, Which::Rebuild | Which::All) {
        println!("\n# projection rebuild from the log");
        let largest = largest()?;
        let result = query::run_rebuild(largest).await.map_err(|e| anyhow!(e))?;
        println!(
            "{} entries in {:.2} s = {:.0} entries/s; {} retained runs, {} bytes of projection heap ({:.0} bytes/run); log on disk {} bytes",
            result.entries, result.seconds, result.entries_per_s, result.retained_runs, result.projection_heap_bytes, result.bytes_per_run,
            query::disk_bytes(&largest.dir.join("log"))
        );
        rebuilds.push(result);
    }
    let mut audits = Vec::new();
    if matches!(args.which, Which::Audit | Which::All) {
        println!("\n# audit: the `audit` command's streaming check of the whole log, then the verification step alone");
        let largest = largest()?;
        let result = audit::run(largest).await.map_err(|e| anyhow!(e))?;
        let ratio = result.verify_entries_per_cpu_s / machine.verify_single_per_cpu_s;
        let ratio_wall =
            result.verify_entries_per_s / (machine.verify_single_per_s * result.threads as f64);
        println!(
            "{}-day history, {} entries ({} signatures); the audit command (streaming): {:.2} s = {:.0} entries/s end to end, peak RSS {:.0} MiB (auditor and ledger)",
            result.history_days, result.entries, result.signatures_verified,
            result.streaming_seconds, result.streaming_entries_per_s,
            result.streaming_peak_rss_bytes as f64 / 1048576.0
        );
        println!(
            "download first: download + Merkle root {:.2} s; {:.0} entries/s end to end; peak RSS {:.0} MiB with the log held",
            result.download_seconds, result.total_entries_per_s,
            result.peak_rss_bytes as f64 / 1048576.0
        );
        println!(
            "verification (rules, signatures, projection): {:.2} s = {:.0} entries/s on {} threads using {:.2} cores = {:.0} entries per CPU second",
            result.verify_seconds, result.verify_entries_per_s, result.threads,
            result.verify_cores_used, result.verify_entries_per_cpu_s
        );
        println!(
            "= {ratio:.2} of the strict single-verify ceiling x cores used ({:.0} signatures per CPU second); {ratio_wall:.2} of the wall-clock ceiling x {} threads",
            machine.verify_single_per_cpu_s, result.threads
        );
        audits.push(serde_json::json!({
            "result": result,
            "ratio_to_ceiling_times_cores_used": ratio,
            "ratio_to_wall_ceiling_times_threads": ratio_wall,
        }));
    }
    let alert_results: Vec<_> = (args.which == Which::All)
        .then(|| run_alerts(args.quick))
        .into_iter()
        .collect();
    let mut status_pages = Vec::new();
    if matches!(args.which, Which::StatusPage | Which::All) {
        let binary = std::env::current_exe()?;
        let result = status_page::run(&binary, &args.dir, args.quick)
            .await
            .map_err(|e| anyhow!(e))?;
        println!(
            "\n# status page under a rush (demo in its own process; wrk, {} connections, {} x {} s each, medians)",
            result.connections, result.runs, result.seconds_per_run
        );
        for (what, run) in [
            ("empty request (/healthz), the ceiling", &result.ceiling),
            ("/ uncompressed", &result.page_identity),
            ("/ with Accept-Encoding: br, gzip", &result.page_compressed),
        ] {
            println!(
                "{what}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {:.0} bytes/answer",
                run.requests_per_s, run.p50_ms, run.p99_ms, run.bytes_per_response
            );
        }
        println!(
            "compressed page = {:.2} of the ceiling; {:.1}x fewer bytes than uncompressed; server {:.2} cores",
            result.compressed_to_ceiling, result.bytes_ratio, result.server_cpu_cores
        );
        status_pages.push(result);
    }
    if let Some(path) = args.json {
        let json = serde_json::json!({
            "alerts": alert_results,
            "quick": args.quick,
            "ceilings": machine,
            "ingest": ingest_results,
            "histories": histories,
            "queries": queries,
            "rebuilds": rebuilds,
            "audits": audits,
            "status_page": status_pages,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// Alert evaluation per checkpoint (pure; on the blocking pool's terms: this thread).
fn run_alerts(quick: bool) -> alerts::AlertsResult {
    let evaluations = if quick { 50 } else { 500 };
    let result = alerts::run(quick, evaluations);
    println!(
        "\n# alert evaluation per checkpoint: every rule of {} services at one instant",
        result.services
    );
    println!(
        "{} h of history ({} inputs, 3 probes per service checked every minute, 10 services in an outage): p50 {:.0} µs, p99 {:.0} µs over {} evaluations; {} alerts firing",
        result.history_hours, result.inputs, result.evaluation.p50_us, result.evaluation.p99_us,
        result.evaluation.samples, result.firing
    );
    result
}

/// `bench peers`: loads the samples into a ledger (cached) and answers the comparison's
/// questions; `bench/peers/run.py` reads the JSON.
async fn run_peers(args: &BenchArgs) -> anyhow::Result<()> {
    let samples = args.samples.as_ref().expect("clap requires --samples");
    std::fs::create_dir_all(&args.dir)?;
    let calls = if args.quick { 200 } else { 2000 };
    let result = peers::run(
        samples,
        &args.dir,
        args.end * 1000,
        args.days,
        args.per_probe,
        calls,
    )
    .await
    .map_err(|e| anyhow!(e))?;
    match result.build_seconds {
        Some(s) if result.build_resumed => println!(
            "finished the interrupted build of {} in {s:.1} s (its rate is not meaningful): {} samples as {} observations, {} bytes on disk",
            result.ledger_dir.display(), result.samples, result.observations, result.ledger_disk_bytes
        ),
        Some(s) => println!(
            "built the ledger {}: {} samples as {} signed observations in {s:.1} s ({:.0} obs/s through ingest), {} bytes on disk",
            result.ledger_dir.display(), result.samples, result.observations,
            result.observations as f64 / s, result.ledger_disk_bytes
        ),
        None => println!(
            "cached ledger {}: {} samples as {} observations, {} bytes on disk",
            result.ledger_dir.display(),
            result.samples,
            result.observations,
            result.ledger_disk_bytes
        ),
    }
    println!(
        "{:>7} {:<14} {:>12} {:>12} {:>12} {:>10} {:>8} {:>8}",
        "window", "service", "up ms", "down ms", "unknown ms", "avail", "p50 µs", "p99 µs"
    );
    for a in &result.answers {
        println!(
            "{:>6}d {:<14} {:>12} {:>12} {:>12} {:>10.6} {:>8.0} {:>8.0}",
            a.window_days,
            a.service_id,
            a.up_ms,
            a.down_ms,
            a.unknown_ms,
            a.availability.unwrap_or(f64::NAN),
            a.latency.p50_us,
            a.latency.p99_us
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
