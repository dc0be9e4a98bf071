//! A flood against the real binary (`serve` as its own process): many connections opened
//! and dropped, hundreds held open and idle, HTTP/2 streams opened and reset at once
//! ("rapid reset"), and gRPC calls cancelled by their clients — while a legitimate probe
//! submits one observation every 50 ms. The probe's ack latency must stay bounded, the
//! server must stay up and answer, and its memory must not run away.
//!
//! The bound is a correctness bound for a loaded 2-core machine (the flooders run on the
//! same two cores as the server), not a benchmark. Every loop is bounded in count and time,
//! and all traffic goes to 127.0.0.1.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::process;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uptime_ledger::client;
use uptime_ledger::domain::{
    AdminCommand, Command, Observation, ProbeId, Quorum, ServiceId, ServiceSpec, Status,
};
use uptime_ledger::pb;

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(10);
/// The legitimate probe's interval between submissions.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Idle connections held open through the flood (under the default cap of 1024).
const HELD_CONNECTIONS: usize = 300;

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn grpc_request(path: &str) -> tonic::codegen::http::Request<()> {
    tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Opens HTTP/2 connections and, on each, opens streams and resets them at once, until
/// `stop` or `budget` streams; reconnects when the server closes the connection (which it
/// does, with GOAWAY ENHANCE_YOUR_CALM, once too many resets are pending).
async fn rapid_reset(host: String, stop: Arc<AtomicBool>, resets: Arc<AtomicU64>, budget: u64) {
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && sent < budget {
        let Ok(tcp) = TcpStream::connect(&host).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok((mut h2, connection)) = h2::client::handshake(tcp).await else {
            continue;
        };
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        for _ in 0..500 {
            if stop.load(Ordering::Relaxed) || sent >= budget {
                break;
            }
            let Ok(ready) = h2.ready().await else { break };
            h2 = ready;
            let Ok((_response, mut stream)) = h2.send_request(
                grpc_request("/uptime.ledger.v1.LogService/GetCheckpoint"),
                false,
            ) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            sent += 1;
            resets.fetch_add(1, Ordering::Relaxed);
        }
        driver.abort();
    }
}

/// Connects, writes half a preface, and drops the connection, over and over.
async fn churn(host: String, stop: Arc<AtomicBool>, connections: Arc<AtomicU64>, budget: u64) {
    for _ in 0..budget {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Ok(mut tcp) = TcpStream::connect(&host).await {
            let _ = tcp.write_all(b"PRI * HTTP/2.0\r\n").await;
            connections.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts calls that stream log entries and cancels each one almost at once.
async fn cancelled_calls(
    address: String,
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    budget: u64,
) {
    let Ok(channel) = client::connect(&address).await else {
        return;
    };
    for _ in 0..budget {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut log = pb::log_service_client::LogServiceClient::new(channel.clone());
        let call = log.get_entries(pb::GetEntriesRequest { start: 0, end: 3 });
        let _ = tokio::time::timeout(Duration::from_micros(200), call).await;
        calls.fetch_add(1, Ordering::Relaxed);
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_legitimate_probe_is_acknowledged_promptly_through_a_connection_and_reset_flood() {
    let dir = tempfile::tempdir().unwrap();
    let served = process::serve_with(dir.path(), "127.0.0.1:0", &[]);
    let address = served.address.clone();
    let host = address.trim_start_matches("http://").to_owned();

    // A service and the legitimate probe, signed with the admin key `serve` generated.
    let admin =
        uptime_ledger::crypto::read_signing_key(&dir.path().join("keys/admin.pem")).unwrap();
    let probe_key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let channel = client::connect(&address).await.unwrap();
    let mut admin_client = pb::admin_service_client::AdminServiceClient::new(channel.clone());
    let commands = [
        Command::DefineService(ServiceSpec {
            service_id: ServiceId::parse("svc").unwrap(),
            name: "Service".into(),
            agency: "Agency".into(),
            slo_target: 0.99,
            quorum: Quorum::Majority,
            staleness: Duration::from_secs(90),
        }),
        Command::RegisterProbe {
            probe_id: ProbeId::parse("legit").unwrap(),
            public_key: uptime_ledger::crypto::PublicKey::from(&probe_key),
            location: "test".into(),
        },
    ];
    for (seq, command) in commands.into_iter().enumerate() {
        let command = AdminCommand {
            seq: seq as u64 + 1,
            issued_at: now_millis(),
            command,
        };
        admin_client
            .apply(pb::ApplyRequest {
                command: Some(client::sign_command("admin", &admin, &command)),
            })
            .await
            .unwrap();
    }
    let rss_before = served.process.rss_bytes();

    // The flood.
    let stop = Arc::new(AtomicBool::new(false));
    let (resets, churned, cancelled) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut held = Vec::new();
    for _ in 0..HELD_CONNECTIONS {
        held.push(TcpStream::connect(&host).await.unwrap());
    }
    let mut flooders = Vec::new();
    for _ in 0..3 {
        flooders.push(tokio::spawn(rapid_reset(
            host.clone(),
            stop.clone(),
            resets.clone(),
            2_000_000,
        )));
    }
    for _ in 0..2 {
        flooders.push(tokio::spawn(churn(
            host.clone(),
            stop.clone(),
            churned.clone(),
            100_000,
        )));
    }
    flooders.push(tokio::spawn(cancelled_calls(
        address.clone(),
        stop.clone(),
        cancelled.clone(),
        100_000,
    )));

    // The legitimate probe, on its own connection, and the server's memory, sampled.
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(channel.clone());
    let mut latencies = Vec::new();
    let mut peak_rss = rss_before;
    let started = Instant::now();
    let mut seq = 0;
    while started.elapsed() < FLOOD {
        seq += 1;
        let signed = client::sign_observation(
            &probe_key,
            &Observation {
                probe_id: ProbeId::parse("legit").unwrap(),
                service_id: ServiceId::parse("svc").unwrap(),
                seq,
                observed_at: now_millis(),
                status: Status::Up,
                latency_ms: 5,
                detail: String::new(),
            },
        );
        let sent = Instant::now();
        let acks = tokio::time::timeout(
            Duration::from_secs(30),
            ingest.submit(pb::SubmitRequest {
                observations: vec![signed],
            }),
        )
        .await
        .expect("an answer within 30 s")
        .expect("Submit succeeds during the flood")
        .into_inner()
        .acks;
        latencies.push(sent.elapsed());
        assert_eq!(acks[0].status, pb::AckStatus::Accepted as i32, "{acks:?}");
        peak_rss = peak_rss.max(served.process.rss_bytes());
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        let _ = tokio::time::timeout(Duration::from_secs(10), flooder).await;
    }
    drop(held);
    peak_rss = peak_rss.max(served.process.rss_bytes());

    latencies.sort();
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    );
    eprintln!(
        "flood for {FLOOD:?}: {} stream resets, {} connections churned, {} cancelled calls, \
         {HELD_CONNECTIONS} idle connections held; legitimate probe: {} acks, p50 {p50:?}, \
         p99 {p99:?}, max {max:?}; server RSS {} MiB before, peak {} MiB",
        resets.load(Ordering::Relaxed),
        churned.load(Ordering::Relaxed),
        cancelled.load(Ordering::Relaxed),
        latencies.len(),
        rss_before >> 20,
        peak_rss >> 20,
    );
    assert!(resets.load(Ordering::Relaxed) > 1000, "the reset flood ran");
    assert!(
        churned.load(Ordering::Relaxed) > 100,
        "the connection churn ran"
    );
    assert!(latencies.len() >= 20, "the probe kept submitting");
    assert!(p99 < Duration::from_secs(2), "p99 ack latency {p99:?}");
    assert!(
        peak_rss < rss_before + (512 << 20),
        "memory grew from {} MiB to {} MiB",
        rss_before >> 20,
        peak_rss >> 20
    );

    // The server is still up, answers a fresh client, and shuts down cleanly.
    let fresh = client::connect(&address).await.expect("still accepting");
    let checkpoint = pb::log_service_client::LogServiceClient::new(fresh)
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await
        .expect("still answering")
        .into_inner();
    assert!(checkpoint.tree_size >= 3);
    let (exit, stderr) = served.terminate();
    assert!(exit.success(), "{stderr}");
}
