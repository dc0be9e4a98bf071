//! Query and rebuild benchmarks over cached histories (1, 30 and 365 days).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::clock::ManualClock;
use crate::pb;
use crate::pb::query_service_client::QueryServiceClient;

use super::history::{self, Built};
use super::{BenchResult, Latency};

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryResult {
    pub history_days: u32,
    pub window_days: u32,
    pub rpc: &'static str,
    pub latency: Latency,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildResult {
    pub history_days: u32,
    pub entries: u64,
    pub seconds: f64,
    pub entries_per_s: f64,
    pub retained_runs: usize,
    pub projection_heap_bytes: usize,
    pub bytes_per_run: f64,
}

pub(crate) fn window(days: u32, end: i64) -> Option<pb::Window> {
    Some(pb::Window {
        window: Some(pb::window::Window::Range(pb::TimeRange {
            start: Some(crate::entry::millis_timestamp(
                end - i64::from(days) * 86_400_000,
            )),
            end: Some(crate::entry::millis_timestamp(end)),
        })),
    })
}

/// GetAvailability and ListIncidents over each window that fits the history, `calls` each.
pub async fn run_queries(built: &Built, calls: usize) -> BenchResult<Vec<QueryResult>> {
    let served = history::serve(
        &built.dir,
        Arc::new(ManualClock::new(history::HISTORY_END)),
        false,
    )
    .await?;
    let channel = crate::client::connect(&served.address)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = QueryServiceClient::new(channel);
    let mut results = Vec::new();
    for window_days in [1u32, 30, 365].into_iter().filter(|d| *d <= built.days) {
        let mut availability = Vec::with_capacity(calls);
        let mut incidents = Vec::with_capacity(calls);
        for call in 0..calls + calls / 10 {
            let request = pb::GetAvailabilityRequest {
                service_id: history::SERVICE_ID.into(),
                window: window(window_days, history::HISTORY_END),
                tree_size: 0,
            };
            let started = Instant::now();
            client
                .get_availability(request)
                .await
                .map_err(|e| e.to_string())?;
            let elapsed = started.elapsed();
            // The first tenth warms connections and caches.
            if call >= calls / 10 {
                availability.push(elapsed);
            }
            let request = pb::ListIncidentsRequest {
                service_id: history::SERVICE_ID.into(),
                window: window(window_days, history::HISTORY_END),
                tree_size: 0,
            };
            let started = Instant::now();
            client
                .list_incidents(request)
                .await
                .map_err(|e| e.to_string())?;
            if call >= calls / 10 {
                incidents.push(started.elapsed());
            }
        }
        results.push(QueryResult {
            history_days: built.days,
            window_days,
            rpc: "GetAvailability",
            latency: Latency::from_samples(&mut availability),
        });
        results.push(QueryResult {
            history_days: built.days,
            window_days,
            rpc: "ListIncidents",
            latency: Latency::from_samples(&mut incidents),
        });
    }
    served.stop().await;
    Ok(results)
}

/// Rebuilds the projections of a cached history from its log, timing the replay.
pub async fn run_rebuild(built: &Built) -> BenchResult<RebuildResult> {
    let served = history::serve(
        &built.dir,
        Arc::new(ManualClock::new(history::HISTORY_END)),
        true,
    )
    .await?;
    let seconds = served.projections_start_seconds;
    let (entries, runs, heap) = {
        let published = served.projections.read();
        (
            published.tree_size,
            published.projection.retained_runs(),
            published.projection.approximate_heap_bytes(),
        )
    };
    served.stop().await;
    Ok(RebuildResult {
        history_days: built.days,
        entries,
        seconds,
        entries_per_s: entries as f64 / seconds,
        retained_runs: runs,
        projection_heap_bytes: heap,
        bytes_per_run: heap as f64 / runs.max(1) as f64,
    })
}

/// Bytes on disk under `dir`.
pub fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => total += disk_bytes(&entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}
