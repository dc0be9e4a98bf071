//! The `audit` command's check of a whole cached history: the ledger serves it over gRPC
//! in this process. Two runs over the same log:
//!
//! 1. [`client::download_and_audit`], the code `uptime-ledger audit` runs: entries stream
//!    in a chunk at a time, each chunk judged by the ingest rules, its signatures
//!    verified in Ed25519 batches on every core while the next chunk downloads, the
//!    projection recomputed. End-to-end rate and the process's peak RSS (taken before
//!    run 2, which holds the log).
//! 2. The same checks with the log downloaded first ([`client::download_entries`], then
//!    [`audit::audit_prefix`]), so that the verification step runs alone and can be
//!    compared with the one-core batch-verify ceiling times the cores it used, measured as
//!    CPU time: entries per CPU second of the process against signatures per CPU second
//!    of the ceiling's thread, which holds whether or not other work shares the machine.

use std::sync::Arc;
use std::time::Instant;

use crate::audit;
use crate::client;
use crate::clock::ManualClock;
use crate::pb::log_service_client::LogServiceClient;

use super::history::{self, Built};
use super::BenchResult;

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditResult {
    pub history_days: u32,
    pub entries: u64,
    pub signatures_verified: u64,
    /// Run 1: the command's streaming audit, end to end.
    pub streaming_seconds: f64,
    pub streaming_entries_per_s: f64,
    /// The process (auditor and ledger) after run 1.
    pub streaming_peak_rss_bytes: u64,
    /// Run 2: download and Merkle root, then verification alone.
    /// Download, decode and Merkle root, over gRPC from the in-process server.
    pub download_seconds: f64,
    /// Ingest rules, signatures and projection, over the downloaded entries.
    pub verify_seconds: f64,
    pub verify_entries_per_s: f64,
    /// The verification threads the audit spreads signatures over (one per core).
    pub threads: usize,
    /// CPU seconds this process used during the verification step.
    pub verify_cpu_seconds: f64,
    /// CPU time over wall time during the verification step.
    pub verify_cores_used: f64,
    /// Entries verified per CPU second: compare with the ceiling per CPU second.
    pub verify_entries_per_cpu_s: f64,
    /// Both steps, end to end.
    pub total_entries_per_s: f64,
    /// Peak RSS of this process (auditor and the ledger serving it): the auditor holds
    /// every downloaded entry.
    pub peak_rss_bytes: u64,
}

/// Audits the cached history in `built`.
pub async fn run(built: &Built) -> BenchResult<AuditResult> {
    let served = history::serve(
        &built.dir,
        Arc::new(ManualClock::new(history::HISTORY_END)),
        false,
    )
    .await?;
    let channel = client::connect(&served.address)
        .await
        .map_err(|e| e.to_string())?;
    let mut log = LogServiceClient::new(client::LedgerChannel::from(channel));
    let verifier = history::ledger_verifier();
    let (checkpoint, _) = client::fetch_checkpoint(&mut log, &verifier)
        .await
        .map_err(|e| e.to_string())?;
    // 1. The command's streaming audit (its own peak: what this process did before, such
    // as building or serving histories, is not counted).
    super::reset_peak_rss();
    let started = Instant::now();
    let streamed = client::download_and_audit(&mut log, &checkpoint, &verifier, |_, _| {})
        .await
        .map_err(|e| e.to_string())?;
    let streaming_seconds = started.elapsed().as_secs_f64();
    let streaming_peak_rss_bytes = super::peak_rss_bytes("self");

    // 2. Download first, then verify alone.
    let started = Instant::now();
    let downloaded = client::download_entries(&mut log, checkpoint.tree_size, || {})
        .await
        .map_err(|e| e.to_string())?;
    client::check_root(&checkpoint, &downloaded).map_err(|e| e.to_string())?;
    let verify_at = Instant::now();
    let cpu_at = super::cpu_seconds("self");
    let audited = audit::audit_prefix(&downloaded.entries, &checkpoint, &verifier)
        .map_err(|e| e.to_string())?;
    let ended = Instant::now();
    let cpu_ended = super::cpu_seconds("self");
    served.stop().await;
    if audited.tree_size != streamed.tree_size || audited.counts != streamed.counts {
        return Err("the streaming and the two-step audit disagree".into());
    }
    let verify_seconds = (ended - verify_at).as_secs_f64();
    let verify_cpu_seconds = (cpu_ended - cpu_at).max(0.01);
    let entries = audited.tree_size;
    Ok(AuditResult {
        history_days: built.days,
        entries,
        signatures_verified: audited.counts.signatures_verified,
        streaming_seconds,
        streaming_entries_per_s: entries as f64 / streaming_seconds,
        streaming_peak_rss_bytes,
        download_seconds: (verify_at - started).as_secs_f64(),
        verify_seconds,
        verify_entries_per_s: entries as f64 / verify_seconds,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        verify_cpu_seconds,
        verify_cores_used: verify_cpu_seconds / verify_seconds,
        verify_entries_per_cpu_s: entries as f64 / verify_cpu_seconds,
        total_entries_per_s: entries as f64 / (ended - started).as_secs_f64(),
        peak_rss_bytes: super::peak_rss_bytes("self"),
    })
}
