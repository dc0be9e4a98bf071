//! The ingest benchmark: a real `uptime-ledger serve` in its own process, and this process
//! as the load generator with pre-signed observations from many probes (so signing is not
//! measured). Reports durable acknowledged observations per second over `Submit` batches
//! and over `SubmitStream`, ack latency at fractions of the maximum, the server's CPU and
//! peak RSS, and disk bytes per observation.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use tonic::transport::Channel;

use crate::crypto::PublicKey;
use crate::domain::{
    AdminCommand, Command as AdminAction, Observation, ProbeId, Quorum, ServiceId, ServiceSpec,
    Status,
};
use crate::pb;
use crate::pb::ingest_service_client::IngestServiceClient;

use super::{BenchResult, Latency};

/// Probes the load generator speaks for. Each lane of concurrent calls has its own, so that
/// every probe's observations arrive in seq order whatever the interleaving.
pub const PROBES: usize = 256;
const SERVICES: usize = 8;
pub const BATCH: usize = 256;
pub const CONCURRENT_BATCHES: usize = 8;
pub const STREAMS: usize = 4;
pub const LATENCY_BATCH: usize = 32;

#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestResult {
    pub observations: usize,
    pub submit_per_s: f64,
    pub stream_per_s: f64,
    pub latency_at_load: Vec<LoadPoint>,
    /// The server's CPU over the whole run (all phases, including the open-loop ones).
    pub server_cpu_cores: f64,
    /// The server's and the load generator's CPU during the Submit closed loop.
    pub submit_server_cpu_cores: f64,
    pub submit_generator_cpu_cores: f64,
    pub server_peak_rss_bytes: u64,
    pub disk_bytes_per_observation: f64,
    pub raw_entry_bytes_per_observation: f64,
}

/// One open-loop phase: ack latency at a fraction of the Submit maximum, and what the
/// machine was doing meanwhile (the load generator runs on the same cores).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadPoint {
    pub fraction: f64,
    pub offered_per_s: f64,
    pub latency: Latency,
    pub server_cpu_cores: f64,
    pub generator_cpu_cores: f64,
    /// Share of the machine's CPU time the hypervisor gave to other guests.
    pub steal_percent: f64,
}

/// A `serve` child process on a fresh data directory.
struct Server {
    child: Child,
    address: String,
    data_dir: PathBuf,
}

impl Server {
    fn start(binary: &Path, data_dir: &Path) -> BenchResult<Server> {
        let mut child = Command::new(binary)
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            // The load generator is every probe at once, far above any real probe's rate.
            .args(["--probe-rate", "0", "--http-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.trim().strip_prefix("gRPC:") {
                        break address.trim().to_owned();
                    }
                }
                _ => return Err("serve exited before listening".into()),
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server {
            child,
            address,
            data_dir: data_dir.to_owned(),
        })
    }

    /// CPU seconds (user + system) the server has used.
    fn cpu_seconds(&self) -> f64 {
        super::cpu_seconds(&self.child.id().to_string())
    }

    fn peak_rss_bytes(&self) -> u64 {
        super::peak_rss_bytes(&self.child.id().to_string())
    }

    /// A clean stop (SIGTERM: the ledger flushes and checkpoints), waited for.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    /// A run that fails part way must not leave its server running: killed unless stopped.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU use over one phase of the run, from `/proc`: started before it, read after it.
struct Usage {
    server_cpu: f64,
    generator_cpu: f64,
    /// The machine's (all, stolen) ticks.
    ticks: (u64, u64),
    started: Instant,
}

/// What [`Usage`] measured: cores used by the server and the load generator, and the share
/// of the machine's CPU time the host stole.
struct Used {
    server_cores: f64,
    generator_cores: f64,
    steal_percent: f64,
}

impl Usage {
    fn start(server: &Server) -> Usage {
        Usage {
            server_cpu: server.cpu_seconds(),
            generator_cpu: super::cpu_seconds("self"),
            ticks: super::machine_ticks(),
            started: Instant::now(),
        }
    }

    fn end(self, server: &Server) -> Used {
        let seconds = self.started.elapsed().as_secs_f64();
        let (all, stolen) = super::machine_ticks();
        Used {
            server_cores: (server.cpu_seconds() - self.server_cpu) / seconds,
            generator_cores: (super::cpu_seconds("self") - self.generator_cpu) / seconds,
            steal_percent: 100.0 * stolen.saturating_sub(self.ticks.1) as f64
                / all.saturating_sub(self.ticks.0).max(1) as f64,
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Registers the services and probes, signing with the admin key `serve` generated.
async fn set_up(server: &Server, keys: &[SigningKey]) -> BenchResult<()> {
    let admin = crate::crypto::read_signing_key(&server.data_dir.join("keys/admin.pem"))
        .map_err(|e| e.to_string())?;
    let channel = crate::client::connect(&server.address)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = pb::admin_service_client::AdminServiceClient::new(channel);
    let mut actions = Vec::new();
    for s in 0..SERVICES {
        actions.push(AdminAction::DefineService(ServiceSpec {
            service_id: ServiceId::parse(&format!("svc-{s}")).expect("valid id"),
            name: format!("Service {s}"),
            agency: "Benchmarks".into(),
            slo_target: 0.99,
            quorum: Quorum::Majority,
            staleness: Duration::from_secs(90),
        }));
    }
    for (p, key) in keys.iter().enumerate() {
        actions.push(AdminAction::RegisterProbe {
            probe_id: ProbeId::parse(&format!("probe-{p}")).expect("valid id"),
            public_key: PublicKey::from(key),
            location: String::new(),
        });
    }
    for (seq, command) in actions.into_iter().enumerate() {
        let signed = crate::client::sign_command(
            "admin",
            &admin,
            &AdminCommand {
                seq: seq as u64 + 1,
                issued_at: now_millis(),
                command,
            },
        );
        client
            .apply(pb::ApplyRequest {
                command: Some(signed),
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Probe `probe`'s observation number `i` (seq `first_seq + i`), signed by `key`.
fn signed_observation(
    key: &SigningKey,
    probe: usize,
    i: usize,
    first_seq: u64,
    observed_at: i64,
) -> pb::SignedObservation {
    let observation = Observation {
        probe_id: ProbeId::parse(&format!("probe-{probe}")).expect("valid id"),
        service_id: ServiceId::parse(&format!("svc-{}", (probe + i) % SERVICES)).expect("valid id"),
        seq: first_seq + i as u64,
        observed_at,
        status: if (probe + i).is_multiple_of(97) {
            Status::Down
        } else {
            Status::Up
        },
        latency_ms: 35,
        detail: String::new(),
    };
    crate::client::sign_observation(key, &observation)
}

/// `per_probe` signed observations from each probe, seqs `first_seq..`, in seq order
/// (`result[p]` is probe `p`'s), signed on every core.
fn presign(
    keys: &[SigningKey],
    per_probe: usize,
    first_seq: u64,
) -> Vec<Vec<pb::SignedObservation>> {
    let now = now_millis();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let probes_per_thread = keys.len().div_ceil(threads);
    let sign_probe = |probe: usize| -> Vec<pb::SignedObservation> {
        (0..per_probe)
            .map(|i| signed_observation(&keys[probe], probe, i, first_seq, now))
            .collect()
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..keys.len())
            .step_by(probes_per_thread)
            .map(|first| {
                let probes = first..(first + probes_per_thread).min(keys.len());
                scope.spawn(move || probes.map(sign_probe).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    })
}

/// Splits the probes' observations into `count` lanes: lane `l` holds probes `l, l + count,
/// l + 2 count, …`, interleaved round robin, each probe's in seq order. Lanes share no
/// probe, so whatever order concurrent lanes reach the server in, every probe's
/// observations arrive in seq order, as a real probe sends them (a later seq overtaking an
/// earlier one would make it `STALE_SEQ`).
fn lanes(
    per_probe: Vec<Vec<pb::SignedObservation>>,
    count: usize,
) -> Vec<Vec<pb::SignedObservation>> {
    let mut sources: Vec<Vec<std::vec::IntoIter<pb::SignedObservation>>> =
        (0..count).map(|_| Vec::new()).collect();
    for (probe, observations) in per_probe.into_iter().enumerate() {
        sources[probe % count].push(observations.into_iter());
    }
    sources
        .into_iter()
        .map(|mut probes| {
            let mut lane = Vec::new();
            loop {
                let before = lane.len();
                lane.extend(probes.iter_mut().filter_map(Iterator::next));
                if lane.len() == before {
                    return lane;
                }
            }
        })
        .collect()
}

/// Counts acknowledgements; anything but ACCEPTED means the load generator is broken
/// (every observation it sends is valid and in order), so the run stops with an error
/// rather than report a throughput of rejections.
fn count_accepted(acks: &[pb::Ack]) -> Result<usize, String> {
    match acks
        .iter()
        .find(|a| a.status != pb::AckStatus::Accepted as i32)
    {
        None => Ok(acks.len()),
        Some(ack) => Err(format!(
            "the ledger did not accept a benchmark observation: status {} reason {} ({})",
            ack.status, ack.reason, ack.message
        )),
    }
}

/// Closed loop: `CONCURRENT_BATCHES` lanes, each with its own probes and one Submit call
/// in flight; acknowledged observations per second.
async fn submit_closed_loop(
    channel: Channel,
    observations: Vec<Vec<pb::SignedObservation>>,
) -> BenchResult<f64> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for lane in lanes(observations, CONCURRENT_BATCHES) {
        let mut client = IngestServiceClient::new(channel.clone());
        workers.push(tokio::spawn(async move {
            let mut acknowledged = 0usize;
            for batch in lane.chunks(BATCH) {
                let acks = client
                    .submit(pb::SubmitRequest {
                        observations: batch.to_vec(),
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner()
                    .acks;
                acknowledged += count_accepted(&acks)?;
            }
            Ok::<usize, String>(acknowledged)
        }));
    }
    let mut acknowledged = 0;
    for worker in workers {
        acknowledged += worker.await.map_err(|e| e.to_string())??;
    }
    Ok(acknowledged as f64 / started.elapsed().as_secs_f64())
}

/// `STREAMS` SubmitStreams at once, each with its own probes; acknowledged per second.
async fn stream_closed_loop(
    channel: Channel,
    observations: Vec<Vec<pb::SignedObservation>>,
) -> BenchResult<f64> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for part in lanes(observations, STREAMS) {
        let mut client = IngestServiceClient::new(channel.clone());
        workers.push(tokio::spawn(async move {
            let requests = tokio_stream::iter(part.into_iter().map(|o| pb::SubmitStreamRequest {
                observation: Some(o),
            }));
            let mut acks = client
                .submit_stream(requests)
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let mut accepted = 0usize;
            while let Some(response) = acks.message().await.map_err(|e| e.to_string())? {
                let ack = response.ack.ok_or("a stream response without an ack")?;
                accepted += count_accepted(std::slice::from_ref(&ack))?;
            }
            Ok::<usize, String>(accepted)
        }));
    }
    let mut acknowledged = 0;
    for worker in workers {
        acknowledged += worker.await.map_err(|e| e.to_string())??;
    }
    Ok(acknowledged as f64 / started.elapsed().as_secs_f64())
}

/// Open loop: batches of `LATENCY_BATCH` offered at `rate` observations/s, each batch from
/// one probe, the probes taking turns. A probe sends its next batch at its scheduled time,
/// or as soon as its previous one is answered if that is later (a probe delivers in seq
/// order, as real probes do); each latency is counted from the scheduled time, so a server
/// that falls behind is charged for the wait (no coordinated omission).
async fn latency_at(
    channel: Channel,
    observations: Vec<Vec<pb::SignedObservation>>,
    rate: f64,
) -> BenchResult<Latency> {
    let interval = Duration::from_secs_f64(LATENCY_BATCH as f64 / rate);
    let probes = observations.len();
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut senders = Vec::new();
    for (probe, mine) in observations.into_iter().enumerate() {
        let batches: Vec<Vec<pb::SignedObservation>> =
            mine.chunks(LATENCY_BATCH).map(<[_]>::to_vec).collect();
        let mut client = IngestServiceClient::new(channel.clone());
        senders.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(batches.len());
            for (round, batch) in batches.into_iter().enumerate() {
                let scheduled = start + interval * (round * probes + probe) as u32;
                tokio::time::sleep_until(scheduled).await;
                let acks = client
                    .submit(pb::SubmitRequest {
                        observations: batch,
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner()
                    .acks;
                samples.push(scheduled.elapsed());
                count_accepted(&acks)?;
            }
            Ok::<Vec<Duration>, String>(samples)
        }));
    }
    let mut samples = Vec::new();
    for sender in senders {
        samples.extend(sender.await.map_err(|e| e.to_string())??);
    }
    Ok(Latency::from_samples(&mut samples))
}

pub async fn run(binary: &Path, dir: &Path, quick: bool) -> BenchResult<IngestResult> {
    let data_dir = dir.join("ingest-run");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).map_err(|e| e.to_string())?;
    }
    let server = Server::start(binary, &data_dir)?;
    let keys: Vec<SigningKey> = (0..PROBES)
        .map(|p| {
            let mut seed = [3u8; 32];
            seed[..8].copy_from_slice(&(p as u64).to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    set_up(&server, &keys).await?;
    let channel = crate::client::connect(&server.address)
        .await
        .map_err(|e| e.to_string())?;
    let per_probe = if quick { 160 } else { 1200 };
    let cpu_before = server.cpu_seconds();
    let wall = Instant::now();

    let observations = presign(&keys, per_probe, 1);
    let usage = Usage::start(&server);
    let submit_per_s = submit_closed_loop(channel.clone(), observations).await?;
    let submit_used = usage.end(&server);
    let mut next_seq = 1 + per_probe as u64;
    let stream_per_s =
        stream_closed_loop(channel.clone(), presign(&keys, per_probe, next_seq)).await?;
    next_seq += per_probe as u64;
    let mut latency_at_load = Vec::new();
    for fraction in [0.25, 0.5, 0.9] {
        let rate = submit_per_s * fraction;
        let offered = rate * if quick { 2.0 } else { 5.0 };
        let calls_per_probe = (offered / (PROBES * LATENCY_BATCH) as f64).ceil().max(2.0) as usize;
        let per_probe = calls_per_probe * LATENCY_BATCH;
        let observations = presign(&keys, per_probe, next_seq);
        next_seq += per_probe as u64;
        let usage = Usage::start(&server);
        let latency = latency_at(channel.clone(), observations, rate).await?;
        let used = usage.end(&server);
        latency_at_load.push(LoadPoint {
            fraction,
            offered_per_s: rate,
            latency,
            server_cpu_cores: used.server_cores,
            generator_cpu_cores: used.generator_cores,
            steal_percent: used.steal_percent,
        });
    }
    let cpu = server.cpu_seconds() - cpu_before;
    let cpu_cores = cpu / wall.elapsed().as_secs_f64();
    let peak_rss = server.peak_rss_bytes();
    let mut log = pb::log_service_client::LogServiceClient::new(channel);
    let tree_size = log
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .tree_size;
    let mut raw = 0u64;
    let mut entries = log
        .get_entries(pb::GetEntriesRequest {
            start: 0,
            end: tree_size,
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    while let Some(message) = entries.message().await.map_err(|e| e.to_string())? {
        raw += message.entry.len() as u64;
    }
    server.stop();
    let disk = super::query::disk_bytes(&data_dir.join("log"));
    Ok(IngestResult {
        observations: tree_size as usize,
        submit_per_s,
        stream_per_s,
        latency_at_load,
        server_cpu_cores: cpu_cores,
        submit_server_cpu_cores: submit_used.server_cores,
        submit_generator_cpu_cores: submit_used.generator_cores,
        server_peak_rss_bytes: peak_rss,
        disk_bytes_per_observation: disk as f64 / tree_size as f64,
        raw_entry_bytes_per_observation: raw as f64 / tree_size as f64,
    })
}
