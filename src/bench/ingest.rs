//! The ingest benchmark: a real `uptime-ledger serve` in its own process, and this process
//! as the load generator with pre-signed observations from many probes (so signing is not
//! measured). Reports durable acknowledged observations per second over `Submit` batches
//! and over `SubmitStream`, ack latency at fractions of the maximum, the server's CPU and
//! peak RSS, and disk bytes per observation.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use tonic::transport::Channel;

use crate::domain::{
    AdminCommand, Command as AdminAction, Observation, ProbeId, Quorum, ServiceId, ServiceSpec,
    Status,
};
use crate::pb;
use crate::pb::ingest_service_client::IngestServiceClient;

use super::{BenchResult, Latency};

const PROBES: usize = 64;
const SERVICES: usize = 8;
const BATCH: usize = 256;
const CONCURRENT_BATCHES: usize = 8;

#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestResult {
    pub observations: usize,
    pub submit_per_s: f64,
    pub stream_per_s: f64,
    /// (fraction of the Submit maximum, offered rate, ack latency).
    pub latency_at_load: Vec<(f64, f64, Latency)>,
    pub server_cpu_cores: f64,
    pub server_peak_rss_bytes: u64,
    pub disk_bytes_per_observation: f64,
    pub raw_entry_bytes_per_observation: f64,
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

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
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
            public_key: key.verifying_key(),
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

/// `count` observations spread over the probes, each probe's seqs increasing from `first_seq`.
fn presign(keys: &[SigningKey], count: usize, first_seq: u64) -> Vec<pb::SignedObservation> {
    let now = now_millis();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t * per_thread..((t + 1) * per_thread).min(count))
                        .map(|i| {
                            let probe = i % keys.len();
                            let observation = Observation {
                                probe_id: ProbeId::parse(&format!("probe-{probe}"))
                                    .expect("valid id"),
                                service_id: ServiceId::parse(&format!("svc-{}", i % SERVICES))
                                    .expect("valid id"),
                                seq: first_seq + (i / keys.len()) as u64,
                                observed_at: now,
                                status: if i % 97 == 0 {
                                    Status::Down
                                } else {
                                    Status::Up
                                },
                                latency_ms: 35,
                                detail: String::new(),
                            };
                            crate::client::sign_observation(&keys[probe], &observation)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    })
}

/// Closed loop: `CONCURRENT_BATCHES` Submit calls in flight; acknowledged per second.
async fn submit_closed_loop(
    channel: Channel,
    observations: Vec<pb::SignedObservation>,
) -> BenchResult<f64> {
    let batches: Vec<Vec<pb::SignedObservation>> =
        observations.chunks(BATCH).map(<[_]>::to_vec).collect();
    let queue = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENT_BATCHES {
        let queue = queue.clone();
        let mut client = IngestServiceClient::new(channel.clone());
        workers.push(tokio::spawn(async move {
            let mut acknowledged = 0usize;
            loop {
                let next = queue.lock().expect("queue").next();
                let Some(batch) = next else {
                    return Ok::<usize, String>(acknowledged);
                };
                let acks = client
                    .submit(pb::SubmitRequest {
                        observations: batch,
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner()
                    .acks;
                acknowledged += acks
                    .iter()
                    .filter(|a| a.status == pb::AckStatus::Accepted as i32)
                    .count();
            }
        }));
    }
    let mut acknowledged = 0;
    for worker in workers {
        acknowledged += worker.await.map_err(|e| e.to_string())??;
    }
    Ok(acknowledged as f64 / started.elapsed().as_secs_f64())
}

/// One SubmitStream per 8 probes' worth of observations, all at once; acknowledged per second.
async fn stream_closed_loop(
    channel: Channel,
    observations: Vec<pb::SignedObservation>,
) -> BenchResult<f64> {
    let streams = 4;
    let per_stream = observations.len().div_ceil(streams);
    let started = Instant::now();
    let mut workers = Vec::new();
    for part in observations.chunks(per_stream).map(<[_]>::to_vec) {
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
                if response
                    .ack
                    .is_some_and(|a| a.status == pb::AckStatus::Accepted as i32)
                {
                    accepted += 1;
                }
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

/// Open loop: batches of 32 offered at `rate` observations/s; the latency of each call.
async fn latency_at(
    channel: Channel,
    observations: Vec<pb::SignedObservation>,
    rate: f64,
) -> BenchResult<Latency> {
    let small = 32;
    let interval = Duration::from_secs_f64(small as f64 / rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = Vec::new();
    for batch in observations.chunks(small).map(<[_]>::to_vec) {
        ticker.tick().await;
        let mut client = IngestServiceClient::new(channel.clone());
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            client
                .submit(pb::SubmitRequest {
                    observations: batch,
                })
                .await
                .map_err(|e| e.to_string())?;
            Ok::<Duration, String>(started.elapsed())
        }));
    }
    let mut samples = Vec::with_capacity(calls.len());
    for call in calls {
        samples.push(call.await.map_err(|e| e.to_string())??);
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
        .map(|p| SigningKey::from_bytes(&[(p % 250) as u8 + 3; 32]))
        .collect();
    set_up(&server, &keys).await?;
    let channel = crate::client::connect(&server.address)
        .await
        .map_err(|e| e.to_string())?;
    let count = if quick { 40_000 } else { 300_000 };
    let cpu_before = server.cpu_seconds();
    let wall = Instant::now();

    let submit_per_s = submit_closed_loop(channel.clone(), presign(&keys, count, 1)).await?;
    let stream_per_s = stream_closed_loop(
        channel.clone(),
        presign(&keys, count, 1 + (count / PROBES) as u64 + 1),
    )
    .await?;
    let mut next_seq = 3 + 2 * (count / PROBES) as u64;
    let mut latency_at_load = Vec::new();
    for fraction in [0.25, 0.5, 0.9] {
        let rate = submit_per_s * fraction;
        let offered = ((rate * if quick { 2.0 } else { 5.0 }) as usize).max(PROBES * 4);
        let observations = presign(&keys, offered, next_seq);
        next_seq += (offered / PROBES) as u64 + 1;
        latency_at_load.push((
            fraction,
            rate,
            latency_at(channel.clone(), observations, rate).await?,
        ));
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
        server_peak_rss_bytes: peak_rss,
        disk_bytes_per_observation: disk as f64 / tree_size as f64,
        raw_entry_bytes_per_observation: raw as f64 / tree_size as f64,
    })
}
