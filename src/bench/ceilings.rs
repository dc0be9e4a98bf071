//! What this machine can do at best, measured in the same run: Ed25519 verification on
//! one core (single and batched), an empty gRPC unary round trip over loopback, and
//! fdatasync latency on the benchmark's disk.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{median, Latency};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Ceilings {
    pub verify_single_per_s: f64,
    pub verify_batch64_per_s: f64,
    pub verify_batch256_per_s: f64,
    /// The batch-256 rate per CPU second of the measuring thread: what one core does when
    /// it runs, whatever else shares the machine (compare CPU-time rates with it).
    pub verify_batch256_per_cpu_s: f64,
    pub grpc_empty_unary_per_s: f64,
    pub fdatasync: Latency,
}

/// Signatures verified per second on this thread, in batches of `batch` (1 = single).
pub fn verify_rate(batch: usize, duration: Duration) -> f64 {
    verify_rates(batch, duration).0
}

/// Signatures verified on this thread, in batches of `batch`, per wall second and per CPU
/// second of the thread.
pub fn verify_rates(batch: usize, duration: Duration) -> (f64, f64) {
    let keys: Vec<SigningKey> = (0..batch)
        .map(|i| SigningKey::from_bytes(&[(i % 251) as u8 + 1; 32]))
        .collect();
    let messages: Vec<Vec<u8>> = (0..batch)
        .map(|i| {
            format!(
                "observation {i} of a realistic length, about two hundred bytes: {}",
                "x".repeat(120)
            )
            .into_bytes()
        })
        .collect();
    let signatures: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let public: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let started = Instant::now();
    let cpu_started = super::thread_cpu_seconds();
    let mut verified = 0usize;
    while started.elapsed() < duration {
        if batch == 1 {
            public[0]
                .verify_strict(refs[0], &signatures[0])
                .expect("valid");
        } else {
            ed25519_dalek::verify_batch(&refs, &signatures, &public).expect("valid");
        }
        verified += batch;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = super::thread_cpu_seconds() - cpu_started;
    (verified as f64 / wall, verified as f64 / cpu.max(0.01))
}

/// fdatasync latency of a small append to a file in `dir`.
pub fn fdatasync_latency(dir: &Path, count: usize) -> std::io::Result<Latency> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        file.write_all(&[0u8; 256])?;
        let started = Instant::now();
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(Latency::from_samples(&mut samples))
}

/// Empty unary gRPC calls per second over loopback (grpc.health.v1 Check against a
/// server with nothing else), with `in_flight` concurrent calls.
pub async fn grpc_empty_unary_rate(in_flight: usize, duration: Duration) -> f64 {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let (_reporter, service) = tonic_health::server::health_reporter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    let channel = crate::client::connect(&address).await.expect("connect");
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight {
        let mut client = HealthClient::new(channel.clone());
        workers.push(tokio::spawn(async move {
            let mut calls = 0u64;
            while started.elapsed() < duration {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .expect("health check");
                calls += 1;
            }
            calls
        }));
    }
    let mut calls = 0;
    for worker in workers {
        calls += worker.await.expect("worker");
    }
    let rate = calls as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;
    rate
}

/// Measures every ceiling; `quick` shortens each measurement.
pub async fn measure(dir: &Path, quick: bool) -> std::io::Result<Ceilings> {
    let span = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(1)
    };
    let repeat = |batch: usize| median((0..3).map(|_| verify_rate(batch, span)).collect());
    let batch256: Vec<(f64, f64)> = (0..3).map(|_| verify_rates(256, span)).collect();
    Ok(Ceilings {
        verify_single_per_s: repeat(1),
        verify_batch64_per_s: repeat(64),
        verify_batch256_per_s: median(batch256.iter().map(|r| r.0).collect()),
        verify_batch256_per_cpu_s: median(batch256.iter().map(|r| r.1).collect()),
        grpc_empty_unary_per_s: grpc_empty_unary_rate(256, span * 2).await,
        fdatasync: fdatasync_latency(dir, if quick { 100 } else { 500 })?,
    })
}
