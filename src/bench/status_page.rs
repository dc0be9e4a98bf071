//! The status page under a rush: `uptime-ledger demo` (six services, a backfilled history,
//! live probes) in its own process, and Debian's `wrk` with 64 connections against `/`
//! uncompressed and with `Accept-Encoding: br, gzip`, beside the empty-request ceiling
//! (`/healthz`) measured by the same client in the same run. The client shares the cores
//! with the server, as a load generator on one small machine does.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Serialize;

use super::{median, BenchResult};

/// Connections wrk keeps open (the issue's rush: `wrk -t2 -c64`).
pub const CONNECTIONS: u32 = 64;
const THREADS: u32 = 2;

/// Prints one line wrk's `done` callback fills: requests, bytes, duration (µs), latency
/// p50 and p99 (µs), errors (including non-2xx/3xx answers).
const REPORT_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %d %d %d %d\n", summary.requests, summary.bytes,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#;

/// One wrk run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WrkRun {
    pub requests_per_s: f64,
    /// Bytes on the wire per answer, headers included.
    pub bytes_per_response: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// Medians over the repeated runs of each target.
#[derive(Debug, Clone, Serialize)]
pub struct StatusPageResult {
    pub connections: u32,
    pub seconds_per_run: u32,
    pub runs: usize,
    pub ceiling: WrkRun,
    pub page_identity: WrkRun,
    pub page_compressed: WrkRun,
    /// Page requests per second as a share of the empty-request ceiling.
    pub compressed_to_ceiling: f64,
    /// Uncompressed bytes per answer over compressed ones.
    pub bytes_ratio: f64,
    /// CPU cores the server used while wrk ran, over all runs.
    pub server_cpu_cores: f64,
}

/// The demo in its own process, its status page at `url`.
struct Demo {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl Demo {
    /// A fresh demo in `data_dir` with `history` backfilled (e.g. `7d`).
    fn start(binary: &Path, data_dir: &Path, history: &str) -> BenchResult<Demo> {
        let _ = std::fs::remove_dir_all(data_dir);
        let mut child = Command::new(binary)
            .args(["demo", "--history", history, "--grpc-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("http://") => break line.trim().to_owned(),
                Some(Ok(_)) => {}
                _ => return Err("demo exited before printing its status page".into()),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Demo {
            child,
            url,
            data_dir: data_dir.to_owned(),
        })
    }

    fn cpu_seconds(&self) -> f64 {
        super::cpu_seconds(&self.child.id().to_string())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Runs the benchmark with `binary` (this executable), the demo and wrk's script under
/// `dir`: a 7-day demo history and 3 runs of 10 s per target, or a 1-day history and one
/// run of 2 s with `quick`.
pub async fn run(binary: &Path, dir: &Path, quick: bool) -> BenchResult<StatusPageResult> {
    let (binary, dir) = (binary.to_owned(), dir.to_owned());
    tokio::task::spawn_blocking(move || run_blocking(&binary, &dir, quick))
        .await
        .map_err(|e| e.to_string())?
}

fn run_blocking(binary: &Path, dir: &Path, quick: bool) -> BenchResult<StatusPageResult> {
    let (runs, seconds, history) = if quick { (1, 2, "1d") } else { (3, 10, "7d") };
    let script = dir.join("wrk-report.lua");
    std::fs::write(&script, REPORT_SCRIPT).map_err(|e| e.to_string())?;
    let demo = Demo::start(binary, &dir.join("status-page-demo"), history)?;
    let base = demo.url.trim_end_matches('/').to_owned();
    let healthz = format!("{base}/healthz");
    let page = format!("{base}/");
    let wrk = |url: &str, compressed: bool| run_wrk(&script, url, compressed, seconds);
    // Warm up: the first request renders the page.
    wrk(&page, true)?;
    let (mut ceiling, mut identity, mut compressed) = (Vec::new(), Vec::new(), Vec::new());
    let cpu_before = demo.cpu_seconds();
    let started = std::time::Instant::now();
    for _ in 0..runs {
        ceiling.push(wrk(&healthz, false)?);
        identity.push(wrk(&page, false)?);
        compressed.push(wrk(&page, true)?);
    }
    let server_cpu_cores =
        (demo.cpu_seconds() - cpu_before) / started.elapsed().as_secs_f64().max(1e-9);
    let (ceiling, page_identity, page_compressed) = (
        median_run(&ceiling),
        median_run(&identity),
        median_run(&compressed),
    );
    Ok(StatusPageResult {
        connections: CONNECTIONS,
        seconds_per_run: seconds,
        runs,
        compressed_to_ceiling: page_compressed.requests_per_s / ceiling.requests_per_s.max(1e-9),
        bytes_ratio: page_identity.bytes_per_response
            / page_compressed.bytes_per_response.max(1e-9),
        ceiling,
        page_identity,
        page_compressed,
        server_cpu_cores,
    })
}

fn run_wrk(script: &Path, url: &str, compressed: bool, seconds: u32) -> BenchResult<WrkRun> {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script);
    if compressed {
        command.args(["-H", "Accept-Encoding: br, gzip"]);
    }
    let output = command.arg(url).output().map_err(|e| {
        format!("cannot run wrk ({e}): the status-page benchmark needs Debian's wrk (apt-get install wrk)")
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("WRK_RESULT "))
        .ok_or_else(|| {
            format!(
                "wrk printed no result for {url}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .map(|n| {
            n.parse::<f64>()
                .map_err(|e| format!("wrk result {line:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let [requests, bytes, duration_us, p50_us, p99_us, errors] = numbers[..] else {
        return Err(format!("wrk result {line:?} has not six numbers"));
    };
    if errors > 0.0 {
        return Err(format!("wrk saw {errors} errors against {url}"));
    }
    Ok(WrkRun {
        requests_per_s: requests / (duration_us / 1e6).max(1e-9),
        bytes_per_response: bytes / requests.max(1.0),
        p50_ms: p50_us / 1000.0,
        p99_ms: p99_us / 1000.0,
        errors: errors as u64,
    })
}

/// The run with the median rate (its latencies and sizes go with it).
fn median_run(runs: &[WrkRun]) -> WrkRun {
    let rate = median(runs.iter().map(|r| r.requests_per_s).collect());
    *runs
        .iter()
        .find(|r| r.requests_per_s == rate)
        .expect("at least one run")
}
