//! The benchmark harness behind `uptime-ledger bench`: the machine's own ceilings, measured
//! in the same run as the results they qualify, and the query and rebuild benchmarks.
//!
//! Numbers on a shared 2-core machine are noisy: every figure is a median (with p99 where
//! latency matters) and is printed next to a ceiling measured moments before.

pub mod alerts;
pub mod audit;
pub mod ceilings;
pub mod history;
pub mod ingest;
pub mod peers;
pub mod query;
pub mod status_page;

use std::time::Duration;

/// The harness reports failures as text; it is a tool, not a library API.
pub type BenchResult<T> = Result<T, String>;

/// Sorted-sample statistics.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl Latency {
    pub fn from_samples(samples: &mut [Duration]) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        Latency {
            samples: samples.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
        }
    }
}

/// The median of a few repeated rate measurements.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// CPU seconds (user + system) process `pid` (or `"self"`) has used, from `/proc`; 0 where
/// `/proc` cannot be read.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime, in clock ticks of 1/100 s (USER_HZ on Linux).
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / 100.0
}

/// CPU seconds the calling thread has run, to the nanosecond where the kernel keeps
/// scheduler statistics (`/proc/thread-self/schedstat`), else in 1/100 s ticks.
pub fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or_else(|| cpu_seconds("thread-self"), |ns| ns / 1e9)
}

/// The machine's CPU time so far, from the first line of `/proc/stat`: (all ticks, ticks
/// stolen by the hypervisor for other guests); zeros where unknown.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let all = ticks.iter().take(8).sum();
    (all, ticks.get(7).copied().unwrap_or(0))
}

/// Peak resident set size of process `pid` (or `"self"`), from `/proc`; 0 where unknown.
pub fn peak_rss_bytes(pid: &str) -> u64 {
    proc_status_bytes(pid, "VmHWM:")
}

/// Starts this process's peak RSS (`VmHWM`) afresh, so that [`peak_rss_bytes`] measures
/// from here on (Linux `clear_refs` value 5; where it is not supported, the peak keeps
/// counting from the start).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Resident set size of process `pid` (or `"self"`) now, from `/proc`; 0 where unknown.
pub fn rss_bytes(pid: &str) -> u64 {
    proc_status_bytes(pid, "VmRSS:")
}

fn proc_status_bytes(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
