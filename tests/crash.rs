//! Crash safety: the real server on one data directory, several probes sending signed
//! observations concurrently and recording every acknowledgement and every checkpoint
//! they see, SIGKILL at random moments (also during start-up, recovery and the creation of
//! a new log), then a restart that must pass `check_restarted` (every acknowledged event
//! at its index with its bytes, root == checkpoint, every earlier checkpoint consistent,
//! resends DUPLICATE with the original index, projections equal to a replay). At the end,
//! `serve --rebuild-projections` on a copy answers exactly what the resumed server does.
//!
//! `cargo test` runs 20 cycles. The soak:
//! `CRASH_CYCLES=5000 cargo test --release --test crash -- --nocapture`
//! (`CRASH_SEED=N` replays a schedule; the seed is printed first).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::durability::{
    check_projection_equals_replay, check_restarted, copy_dir, provision, seed, serve_command,
    temp_data, Record, Running, Sender, SharedRecord,
};
use common::process::Process;
use uptime_ledger::pb;

const PROBES: usize = 4;
/// A soak starts over in a fresh directory this often, so start-up stays short.
const CYCLES_PER_DIRECTORY: usize = 250;

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let cycles: usize = std::env::var("CRASH_CYCLES")
        .ok()
        .map(|c| c.parse().expect("CRASH_CYCLES is a number"))
        .unwrap_or(20);
    let seed = seed("CRASH_SEED");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut done = 0;
    let mut directory = 0;
    while done < cycles {
        let these = (cycles - done).min(CYCLES_PER_DIRECTORY);
        runtime.block_on(crash_cycles(seed.wrapping_add(directory), these, done));
        done += these;
        directory += 1;
    }
}

/// `cycles` kill-and-restart cycles on one fresh data directory.
async fn crash_cycles(seed: u64, cycles: usize, offset: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (_dir, data) = temp_data();

    // Killed while creating the log (keys, genesis), a few times: the next start must
    // still create or open it.
    for _ in 0..3 {
        let process = Process::spawn(serve_command(&data));
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..60)));
        process.kill();
    }
    let mut running = Running::start(serve_command(&data));
    let mut probes = provision(&running, &data, PROBES).await;
    let record: SharedRecord = Arc::new(Mutex::new(Record::default()));
    let mut in_doubt: Vec<Vec<pb::SignedObservation>> = vec![Vec::new(); PROBES];
    let mut startup = running.startup;

    for cycle in 0..cycles {
        let context = format!("cycle {} (seed {seed})", offset + cycle);
        // Load: every probe sends batches; a watcher records the checkpoints it sees.
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::new();
        for (p, probe) in probes.iter().enumerate() {
            let mut sender = Sender {
                probe: probe.clone(),
                in_doubt: std::mem::take(&mut in_doubt[p]),
            };
            let (address, record, stop) = (running.address.clone(), record.clone(), stop.clone());
            let sender_seed = rng.gen();
            senders.push(tokio::spawn(async move {
                sender.run(address, record, stop, sender_seed).await;
                sender
            }));
        }
        let watcher = tokio::spawn(watch_checkpoints(
            running.address.clone(),
            running.verifier.clone(),
            record.clone(),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..500))).await;
        let stderr = tokio::task::spawn_blocking(move || running.kill())
            .await
            .unwrap();
        assert!(!stderr.contains("panicked"), "{context}: {stderr}");
        stop.store(true, Ordering::Relaxed);
        for (p, sender) in senders.into_iter().enumerate() {
            let sender = sender.await.unwrap();
            probes[p] = sender.probe.clone();
            in_doubt[p] = sender.in_doubt;
        }
        watcher.await.unwrap();

        // Sometimes killed again while starting (opening sled, verifying, projections).
        if rng.gen_bool(0.35) {
            let millis = rng.gen_range(0..=startup.as_millis().max(1) as u64);
            let process = Process::spawn(serve_command(&data));
            tokio::time::sleep(Duration::from_millis(millis)).await;
            tokio::task::spawn_blocking(move || process.kill())
                .await
                .unwrap();
        }

        running = tokio::task::spawn_blocking({
            let data = data.clone();
            move || Running::start(serve_command(&data))
        })
        .await
        .unwrap();
        startup = running.startup;
        check_restarted(&running, &record, &mut rng, &context).await;
    }
    let acked = record.lock().unwrap().acked.len();
    assert!(acked > 0, "the load ran");
    eprintln!(
        "{cycles} cycles: {acked} acknowledged events, {} checkpoints seen",
        record.lock().unwrap().checkpoints.len()
    );

    // Projections after the last crash equal a full rebuild by another server.
    let stderr = tokio::task::spawn_blocking(move || running.kill())
        .await
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (_copy_dir, copy) = temp_data();
    copy_dir(&data, &copy);
    let (resumed, rebuilt) = tokio::task::spawn_blocking(move || {
        let resumed = Running::start(serve_command(&data));
        let mut rebuild = serve_command(&copy);
        rebuild.arg("--rebuild-projections");
        (resumed, Running::start(rebuild))
    })
    .await
    .unwrap();
    check_projection_equals_replay(&resumed.channel().await, "resumed").await;
    check_projection_equals_replay(&rebuilt.channel().await, "rebuilt").await;
    let availability = |running: &Running| {
        let address = running.address.clone();
        async move {
            let channel = uptime_ledger::client::connect(&address).await.unwrap();
            pb::query_service_client::QueryServiceClient::new(channel)
                .get_availability(pb::GetAvailabilityRequest {
                    service_id: common::durability::SERVICE.into(),
                    window: Some(pb::Window {
                        window: Some(pb::window::Window::Named(pb::NamedWindow::Last24h as i32)),
                    }),
                    tree_size: 0,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    assert_eq!(
        availability(&resumed).await,
        availability(&rebuilt).await,
        "the resumed projection differs from --rebuild-projections"
    );
    resumed.kill();
    rebuilt.kill();
}

/// Records every checkpoint served while the load runs (each checked against the key).
async fn watch_checkpoints(
    address: String,
    verifier: uptime_ledger::checkpoint::NoteVerifier,
    record: SharedRecord,
    stop: Arc<AtomicBool>,
) {
    let Ok(channel) = uptime_ledger::client::connect(&address).await else {
        return;
    };
    let mut log = pb::log_service_client::LogServiceClient::new(channel);
    while !stop.load(Ordering::Relaxed) {
        let Ok(response) = log
            .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
            .await
        else {
            return;
        };
        let response = response.into_inner();
        uptime_ledger::checkpoint::open_checkpoint(&response.checkpoint, &verifier)
            .expect("a served checkpoint verifies");
        record
            .lock()
            .unwrap()
            .checkpoints
            .insert(response.tree_size, response.checkpoint);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}
