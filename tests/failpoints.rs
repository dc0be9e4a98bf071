//! Fail points (the `fail` crate) at each step of the write path and the projector, each
//! with `panic` and `return` (an error), in the real binary (`FAILPOINTS` is read at
//! start; the tests build it with the `failpoints` feature, see Cargo.toml).
//!
//! For each point × action: a ledger with probes is started with the point armed after a
//! few good batches, probes send until the fault hits, then the test checks what the
//! ledger does while faulted (writes refused with UNAVAILABLE and the reason, reads still
//! served, `/readyz` 503 — or, for the checkpoint and projector points, the ledger carrying
//! on), kills it, restarts it without fail points and runs `check_restarted`: no
//! acknowledged event lost, root == checkpoint, earlier checkpoints consistent, resends
//! DUPLICATE, projections equal to a replay.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use common::durability::{
    check_restarted, copy_dir, provision, serve_command, submit_recorded, temp_data, Probe, Record,
    Refused, Running, SharedRecord,
};
use uptime_ledger::domain::Status;
use uptime_ledger::pb;
use uptime_ledger::pb::ingest_service_client::IngestServiceClient;

/// Batches that succeed before a write-path point fires.
const GOOD_BATCHES: usize = 3;

/// What the ledger must do when a point fires.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Writes stop for good: UNAVAILABLE with the reason, reads keep working.
    WritesStop,
    /// Writes carry on (the fault is retried: checkpoint signing, the projector).
    CarriesOn,
    /// The process exits (a panic on the main thread while starting).
    Exits,
}

/// A data directory with the service and probes defined, made once and copied per case.
fn base() -> &'static (tempfile::TempDir, PathBuf, Vec<Probe>) {
    static BASE: OnceLock<(tempfile::TempDir, PathBuf, Vec<Probe>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let (dir, data) = temp_data();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let running = Running::start(serve_command(&data));
        let probes = runtime.block_on(provision(&running, &data, 2));
        let (exit, stderr) = running.process.terminate();
        assert!(exit.success(), "{stderr}");
        (dir, data, probes)
    })
}

fn case(point: &str, action: &str, expect: Expect) {
    let context = format!("{point}={action}");
    let (_, base_data, base_probes) = base();
    let (_dir, data) = temp_data();
    copy_dir(base_data, &data);
    let mut probes = base_probes.clone();
    let record: SharedRecord = Arc::new(Mutex::new(Record::default()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(7);

    let mut command = serve_command(&data);
    command.env("FAILPOINTS", format!("{point}={action}"));
    if expect == Expect::Exits {
        let mut process = common::process::Process::spawn(command);
        let (exit, stderr) = process.wait();
        assert!(
            !exit.success(),
            "{context}: the start should fail: {stderr}"
        );
        assert!(stderr.contains(point), "{context}: {stderr}");
    } else {
        let running = Running::start(command);
        runtime.block_on(drive(&running, &mut probes, &record, expect, &context));
        let stderr = running.kill();
        // The fault did fire (its name is in the server's log)...
        assert!(stderr.contains(point), "{context}: never fired:\n{stderr}");
        // ...and a panic was a real one.
        if action.contains("panic") {
            assert!(stderr.contains("panicked"), "{context}: {stderr}");
        }
    }

    // Restarted without fail points: everything acknowledged is there and verifies.
    let running = Running::start(serve_command(&data));
    runtime.block_on(async {
        check_restarted(&running, &record, &mut rng, &context).await;
        let mut ingest = IngestServiceClient::new(running.channel().await);
        let batch = vec![probes[0].observe(Status::Up, "after restart")];
        submit_recorded(&mut ingest, &record, &batch)
            .await
            .unwrap_or_else(|e| panic!("{context}: writes after the restart: {e:?}"));
    });
    running.kill();
}

/// Sends batches of 4 from each probe in turn until the fault shows (or, for points the
/// ledger carries on through, a fixed number), then checks the faulted ledger.
async fn drive(
    running: &Running,
    probes: &mut [Probe],
    record: &SharedRecord,
    expect: Expect,
    context: &str,
) {
    let mut ingest = IngestServiceClient::new(running.channel().await);
    let mut refusal = None;
    for round in 0..40 {
        let probe = &mut probes[round % 2];
        let batch: Vec<pb::SignedObservation> = (0..4)
            .map(|i| {
                let status = if (round + i) % 5 == 0 {
                    Status::Down
                } else {
                    Status::Up
                };
                probe.observe(status, "")
            })
            .collect();
        match submit_recorded(&mut ingest, record, &batch).await {
            Ok(_) => {}
            Err(Refused(status)) => {
                refusal = Some(status);
                break;
            }
        }
        if expect == Expect::CarriesOn && round >= 20 {
            break;
        }
        // Let checkpoints and the projector run between batches.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    match expect {
        Expect::WritesStop => {
            let status = refusal.unwrap_or_else(|| panic!("{context}: no write was refused"));
            assert_eq!(
                status.code(),
                tonic::Code::Unavailable,
                "{context}: {status:?}"
            );
            let reason = status.message().to_owned();
            eprintln!("{context}: writes refused: {reason}");
            assert!(
                reason.contains("failpoint") || reason.contains("panicked"),
                "{context}: the refusal says why: {reason}"
            );
            // Ticks that only sign a checkpoint also count as commits, so at least one
            // good batch came before the fault.
            assert!(
                !record.lock().unwrap().acked.is_empty(),
                "{context}: the good batches were acknowledged"
            );
            // Every later write is refused with the same reason.
            let batch = vec![probes[0].observe(Status::Up, "")];
            let Err(Refused(again)) = submit_recorded(&mut ingest, record, &batch).await else {
                panic!("{context}: a write was accepted after writes stopped");
            };
            assert_eq!(again.code(), tonic::Code::Unavailable);
            assert!(
                again.message().contains(&reason) || reason.contains(again.message()),
                "{context}: {again:?} vs {reason}"
            );
            check_reads_work(running, context).await;
            let ready = common::http_get(&running.http_address, "/readyz").await;
            assert_eq!(ready.status, 503, "{context}: /readyz: {}", ready.body);
        }
        Expect::CarriesOn => {
            if let Some(status) = refusal {
                panic!("{context}: a write was refused: {status:?}");
            }
            // The projection catches up with the log once the fault is spent.
            check_reads_work(running, context).await;
            let channel = running.channel().await;
            common::durability::check_projection_equals_replay(&channel, context).await;
        }
        Expect::Exits => unreachable!(),
    }
}

/// GetCheckpoint, GetEntries (verified against the checkpoint) and QueryService answer.
async fn check_reads_work(running: &Running, context: &str) {
    let channel = running.channel().await;
    uptime_ledger::client::verify_log(channel.clone(), &running.verifier)
        .await
        .unwrap_or_else(|e| panic!("{context}: reads while faulted: {e}"));
    pb::query_service_client::QueryServiceClient::new(channel)
        .list_services(pb::ListServicesRequest {})
        .await
        .unwrap_or_else(|e| panic!("{context}: queries while faulted: {e}"));
}

fn armed(action: &str) -> String {
    format!("{GOOD_BATCHES}*off->{action}")
}

fn write_path(point: &str) {
    case(point, &armed("panic"), Expect::WritesStop);
    case(point, &armed("return"), Expect::WritesStop);
}

#[test]
fn before_append() {
    write_path("writer::before-append");
}

#[test]
fn merkle_update() {
    write_path("writer::merkle-update");
}

#[test]
fn dedupe_update() {
    write_path("store::dedupe-update");
}

#[test]
fn after_append() {
    write_path("writer::after-append");
}

#[test]
fn flush() {
    write_path("store::flush");
}

#[test]
fn fsync() {
    write_path("store::fsync");
}

#[test]
fn after_fsync_before_the_acknowledgement() {
    write_path("writer::after-fsync");
}

#[test]
fn checkpoint_signing() {
    // An error skips that checkpoint (the next batch signs one); a panic stops writes.
    case(
        "writer::checkpoint-sign",
        &armed("2*return"),
        Expect::CarriesOn,
    );
    case(
        "writer::checkpoint-sign",
        &armed("panic"),
        Expect::WritesStop,
    );
}

#[test]
fn projection_update() {
    // The published projection stays the previous whole prefix; the next tick retries.
    case("projector::apply", "1*off->2*return", Expect::CarriesOn);
    case("projector::apply", "1*off->2*panic", Expect::CarriesOn);
}

#[test]
fn projection_snapshot() {
    // The first snapshot is written while starting: a panic there ends the process; an
    // error is logged and the snapshot is simply older (a longer replay next start).
    case("projector::snapshot", "1*panic", Expect::Exits);
    case("projector::snapshot", "1*return", Expect::CarriesOn);
}

/// A stream whose chunks all fail with one failed flush is one refused call in `/metrics`
/// (each chunk of it gets the error; only the one that ends the stream is counted).
#[test]
fn a_stream_refused_by_a_failed_flush_counts_once() {
    let (_, base_data, base_probes) = base();
    let (_dir, data) = temp_data();
    copy_dir(base_data, &data);
    let mut probe = base_probes[0].clone();
    let mut command = serve_command(&data);
    command.env("FAILPOINTS", "store::fsync=return");
    let running = Running::start(command);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Thousands at once: the server reads them in several chunks, all in flight.
        let requests: Vec<_> = (0..3000)
            .map(|_| pb::SubmitStreamRequest {
                observation: Some(probe.observe(Status::Up, "")),
            })
            .collect();
        let mut ingest = IngestServiceClient::new(running.channel().await);
        let mut responses = ingest
            .submit_stream(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let error = match responses.message().await {
            Ok(Some(ack)) => panic!("acknowledged although every flush fails: {ack:?}"),
            Ok(None) => panic!("the stream ended without an error"),
            Err(status) => status,
        };
        assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
        // Counted once, and still once after every chunk's task has had time to finish.
        for _ in 0..5 {
            let metrics = common::metrics_at(&running.http_address).await;
            assert_eq!(metrics.refused_calls("unavailable"), 1.0);
            assert_eq!(metrics.value("uptime_ledger_log_writes_stopped", &[]), 1.0);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    running.kill();
}
