//! What this machine can do at best, measured in the same run: Ed25519 verification on
//! one core (ed25519-dalek's `verify_strict`, the ledger's signature rule, and batches for
//! comparison), an empty gRPC unary round trip over loopback, and
//! fdatasync latency on the benchmark's disk.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{median, Latency};
use crate::crypto::PublicKey;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Ceilings {
    /// ed25519-dalek's `verify_strict`, one signature at a time: the stock strict
    /// verifier, the ceiling ingest and `audit` are measured against.
    pub verify_single_per_s: f64,
    /// The same per CPU second of the measuring thread: what one core does when it runs,
    /// whatever else shares the machine (compare CPU-time rates with it).
    pub verify_single_per_cpu_s: f64,
    /// The ledger's own signature rule ([`crate::crypto::PublicKey`]), one signature at a
    /// time with the key's table built, per wall and per CPU second.
    pub verify_rule_per_s: f64,
    pub verify_rule_per_cpu_s: f64,
    /// Hash-derived batch verification, which may never decide acceptance (DESIGN.md
    /// "Which signatures are valid"): shown for comparison only.
    pub verify_batch64_per_s: f64,
    pub verify_batch256_per_s: f64,
    pub verify_batch256_per_cpu_s: f64,
    pub grpc_empty_unary_per_s: f64,
    pub fdatasync: Latency,
}

/// How [`verify_rates`] verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verifier {
    /// ed25519-dalek's `verify_strict`, one at a time.
    Strict,
    /// [`crate::crypto::PublicKey::verify_message`], one at a time.
    Rule,
    /// ed25519-dalek's `verify_batch` over this many signatures.
    Batch(usize),
}

/// Signatures verified on this thread by `verifier`, per wall second and per CPU second
/// of the thread.
pub fn verify_rates(verifier: Verifier, duration: Duration) -> (f64, f64) {
    let batch = match verifier {
        Verifier::Batch(n) => n,
        Verifier::Strict | Verifier::Rule => 1,
    };
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
    let rule_key = PublicKey::from(&keys[0]);
    let rule_signature = signatures[0].to_bytes();
    assert!(
        rule_key.verify_message(&messages[0], &rule_signature),
        "builds the key's table"
    );
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let started = Instant::now();
    let cpu_started = super::thread_cpu_seconds();
    let mut verified = 0usize;
    while started.elapsed() < duration {
        match verifier {
            Verifier::Strict => public[0]
                .verify_strict(refs[0], &signatures[0])
                .expect("valid"),
            Verifier::Rule => assert!(rule_key.verify_message(refs[0], &rule_signature)),
            Verifier::Batch(_) => {
                ed25519_dalek::verify_batch(&refs, &signatures, &public).expect("valid")
            }
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
    // Medians of three runs, per wall second and per CPU second.
    let rates = |verifier: Verifier| {
        let runs: Vec<(f64, f64)> = (0..3).map(|_| verify_rates(verifier, span)).collect();
        (
            median(runs.iter().map(|r| r.0).collect()),
            median(runs.iter().map(|r| r.1).collect()),
        )
    };
    let strict = rates(Verifier::Strict);
    let rule = rates(Verifier::Rule);
    let batch256 = rates(Verifier::Batch(256));
    Ok(Ceilings {
        verify_single_per_s: strict.0,
        verify_single_per_cpu_s: strict.1,
        verify_rule_per_s: rule.0,
        verify_rule_per_cpu_s: rule.1,
        verify_batch64_per_s: rates(Verifier::Batch(64)).0,
        verify_batch256_per_s: batch256.0,
        verify_batch256_per_cpu_s: batch256.1,
        grpc_empty_unary_per_s: grpc_empty_unary_rate(256, span * 2).await,
        fdatasync: fdatasync_latency(dir, if quick { 100 } else { 500 })?,
    })
}
