//! The `audit` command's check of a whole cached history: the ledger serves it over gRPC
//! in this process, and [`client::download_and_audit`] (the code `uptime-ledger audit`
//! runs) downloads every entry, recomputes the Merkle root, then judges every entry by the
//! ingest rules, verifies every signature in Ed25519 batches on every core and recomputes
//! the projection. Timed per step; the verification step is compared with the one-core
//! batch-verify ceiling times the cores it used, measured as CPU time: entries per CPU
//! second of the process against signatures per CPU second of the ceiling's thread, which
//! holds whether or not other work shares the machine.

use std::sync::Arc;
use std::time::Instant;

use crate::client::{self, AuditStep};
use crate::clock::ManualClock;
use crate::pb::log_service_client::LogServiceClient;

use super::history::{self, Built};
use super::BenchResult;

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditResult {
    pub history_days: u32,
    pub entries: u64,
    pub signatures_verified: u64,
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
    let started = Instant::now();
    let mut verify_started: Option<(Instant, f64)> = None;
    let audited = client::download_and_audit(&mut log, &checkpoint, &verifier, |step, _| {
        if step == AuditStep::Verify && verify_started.is_none() {
            verify_started = Some((Instant::now(), super::cpu_seconds("self")));
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let ended = Instant::now();
    let cpu_ended = super::cpu_seconds("self");
    served.stop().await;
    let (verify_at, cpu_at) = verify_started.ok_or("the audit never reached verification")?;
    let verify_seconds = (ended - verify_at).as_secs_f64();
    let verify_cpu_seconds = (cpu_ended - cpu_at).max(0.01);
    let entries = audited.tree_size;
    Ok(AuditResult {
        history_days: built.days,
        entries,
        signatures_verified: audited.counts.signatures_verified,
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
