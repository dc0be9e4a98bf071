//! A deterministic history for one service watched by three probes at 10-second checks,
//! fed through the real ingest path (signed, over gRPC, verified, group-committed) into a
//! ledger whose clock is simulated so that a year of history can be backfilled within
//! the production `max_lateness` of 1 hour. Built once per size and cached on disk.
//!
//! The model: every day at 03:00 UTC a 5-minute outage seen by probes 2 and 3 (DOWN by
//! majority); every 7th day at 12:00 a 10-minute fault seen by probe 1 only (not an
//! outage); everything else UP. Probe k checks at `start + k·10/3 s + n·10 s`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use crate::clock::{Clock, ManualClock};
use crate::crypto::PublicKey;
use crate::domain::{
    AdminCommand, AdminKey, Command, Observation, ProbeId, Quorum, ServiceId, ServiceSpec, Status,
};
use crate::log::{GenesisParams, Ledger, LedgerConfig};
use crate::pb;
use crate::projector::{Projections, ProjectorConfig, DEFAULT_STATE_CHANGE_BUFFER};

use super::BenchResult;

pub const SERVICE_ID: &str = "bench.portal";
pub const PROBES: [&str; 3] = ["probe-1", "probe-2", "probe-3"];
/// 2025-01-01T00:00:00Z: every history ends here (exclusive), as in shared/bench-peers.
pub const HISTORY_END: i64 = 1_735_689_600_000;
const CHECK_INTERVAL_MS: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;
/// History fed per Submit: must stay inside max_lateness (1 h) of the simulated clock.
const CHUNK_MS: i64 = 50 * 60 * 1000;

fn probe_key(probe: usize) -> SigningKey {
    SigningKey::from_bytes(&[probe as u8 + 101; 32])
}

fn admin_key() -> SigningKey {
    SigningKey::from_bytes(&[99; 32])
}

/// The origin of the bench ledgers' checkpoints.
pub const LEDGER_ORIGIN: &str = "bench.uptime-ledger/log";

fn ledger_key() -> SigningKey {
    SigningKey::from_bytes(&[98; 32])
}

/// The checkpoint verifier an auditor of a bench ledger pins.
pub fn ledger_verifier() -> crate::checkpoint::NoteVerifier {
    crate::checkpoint::NoteVerifier::new(LEDGER_ORIGIN, PublicKey::from(&ledger_key()))
        .expect("a valid key name")
}

/// The status probe `probe` (0-based) reports at `at`.
pub fn status_at(probe: usize, at: i64) -> Status {
    let day = at.div_euclid(DAY_MS);
    let in_day = at.rem_euclid(DAY_MS);
    let daily_outage = (3 * 3_600_000..3 * 3_600_000 + 300_000).contains(&in_day) && probe > 0;
    let weekly_fault =
        day % 7 == 0 && (12 * 3_600_000..12 * 3_600_000 + 600_000).contains(&in_day) && probe == 0;
    if daily_outage || weekly_fault {
        Status::Down
    } else {
        Status::Up
    }
}

/// Every observation of `[from, to)` in time order, with its probe index.
fn observations(from: i64, to: i64, history_start: i64) -> Vec<(usize, Observation)> {
    let mut out = Vec::new();
    for (probe, probe_id) in PROBES.iter().enumerate() {
        let offset = probe as i64 * CHECK_INTERVAL_MS / 3;
        let first_n = (from - history_start - offset + CHECK_INTERVAL_MS - 1)
            .div_euclid(CHECK_INTERVAL_MS)
            .max(0);
        let mut n = first_n;
        loop {
            let at = history_start + offset + n * CHECK_INTERVAL_MS;
            if at >= to {
                break;
            }
            out.push((
                probe,
                Observation {
                    probe_id: ProbeId::parse(probe_id).expect("valid id"),
                    service_id: ServiceId::parse(SERVICE_ID).expect("valid id"),
                    seq: n as u64 + 1,
                    observed_at: at,
                    status: status_at(probe, at),
                    latency_ms: 40,
                    detail: String::new(),
                },
            ));
            n += 1;
        }
    }
    out.sort_by_key(|(probe, o)| (o.observed_at, *probe));
    out
}

/// Signs on every core.
fn sign_all(batch: Vec<(usize, Observation)>, keys: &[SigningKey]) -> Vec<pb::SignedObservation> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = batch.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(p, o)| crate::client::sign_observation(&keys[*p], o))
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

/// A served ledger over a benchmark data directory.
pub struct Served {
    pub ledger: Arc<Ledger>,
    /// How long opening (and verifying) the log took.
    pub open_seconds: f64,
    /// How long the projections took to load or rebuild and catch up.
    pub projections_start_seconds: f64,
    pub projections: Arc<Projections>,
    pub address: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Served {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.projections.shutdown().await;
        self.ledger.shutdown().await;
    }
}

/// Opens the ledger in `dir` with a clock at `now`, starts projections and gRPC on port 0.
pub async fn serve(dir: &Path, clock: Arc<ManualClock>, rebuild: bool) -> BenchResult<Served> {
    let opening = Instant::now();
    let ledger = Ledger::open(LedgerConfig {
        data_dir: dir.to_owned(),
        ledger_key: ledger_key(),
        genesis: GenesisParams {
            origin: Some(LEDGER_ORIGIN.into()),
            admin_keys: Some(vec![AdminKey {
                name: "admin".into(),
                public_key: PublicKey::from(&admin_key()),
            }]),
            max_lateness: None,
            admin_threshold: None,
            previous_log: None,
            max_skew: None,
        },
        checkpoint_interval: Duration::from_millis(200),
        clock: clock.clone(),
    })
    .map_err(|e| e.to_string())?;
    let open_seconds = opening.elapsed().as_secs_f64();
    let starting = Instant::now();
    let projections = Projections::start(
        ledger.clone(),
        ProjectorConfig {
            data_dir: dir.to_owned(),
            rebuild,
            snapshot_interval: Duration::from_secs(30),
            clock,
            state_change_buffer: DEFAULT_STATE_CHANGE_BUFFER,
        },
    )
    .map_err(|e| e.to_string())?;
    let projections_start_seconds = starting.elapsed().as_secs_f64();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let (ledger, projections) = (ledger.clone(), projections.clone());
        tokio::spawn(async move {
            // The backfill sends a year of three probes' checks as fast as it can.
            let config = crate::rpc::RpcConfig {
                limits: crate::limits::Limits::without_probe_rate(),
                ..crate::rpc::RpcConfig::default()
            };
            let _ = crate::rpc::serve(listener, ledger, projections, config, async {
                let _ = stopped.await;
            })
            .await;
        })
    };
    Ok(Served {
        ledger,
        open_seconds,
        projections_start_seconds,
        projections,
        address,
        stop,
        server,
    })
}

/// What building (or finding) a history cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub dir: PathBuf,
    pub days: u32,
    pub observations: u64,
    pub tree_size: u64,
    /// `None` when the history was found in the cache.
    pub build_seconds: Option<f64>,
    /// The build resumed an interrupted one: its time and rate cover only the rest.
    pub resumed: bool,
}

/// What a history is made of: the services and probes an admin defines at its start, and
/// what the probes observed. Probe `k` signs with the bench's key number `k`.
pub trait Source: Send + Sync + 'static {
    /// The history's first and last instants, `[start, end)`, in milliseconds.
    fn span(&self) -> (i64, i64);
    fn services(&self) -> Vec<ServiceSpec>;
    fn probes(&self) -> Vec<ProbeId>;
    /// Every observation of `[from, to)` with its probe's index, in time order; each
    /// probe's `seq` increasing.
    fn observations(&self, from: i64, to: i64) -> Vec<(usize, Observation)>;
}

/// The bench's own history (see the module documentation) over the last `days` days.
pub struct Synthetic {
    pub days: u32,
}

impl Source for Synthetic {
    fn span(&self) -> (i64, i64) {
        (HISTORY_END - i64::from(self.days) * DAY_MS, HISTORY_END)
    }

    fn services(&self) -> Vec<ServiceSpec> {
        vec![ServiceSpec {
            service_id: ServiceId::parse(SERVICE_ID).expect("valid id"),
            name: "National e-services portal".into(),
            agency: "Ministry of ICT".into(),
            slo_target: 0.995,
            quorum: Quorum::Majority,
            staleness: Duration::from_secs(90),
        }]
    }

    fn probes(&self) -> Vec<ProbeId> {
        PROBES
            .iter()
            .map(|p| ProbeId::parse(p).expect("valid id"))
            .collect()
    }

    fn observations(&self, from: i64, to: i64) -> Vec<(usize, Observation)> {
        observations(from, to, self.span().0)
    }
}

/// The ledger directory holding `days` of the bench's history under `root`, built if missing.
pub async fn ensure(root: &Path, days: u32) -> BenchResult<Built> {
    let source = Synthetic { days };
    let entries_before = 1 + (source.services().len() + source.probes().len()) as u64;
    let built = ensure_from(&root.join(format!("history-{days}d")), Arc::new(source)).await?;
    Ok(Built {
        dir: built.dir,
        days,
        observations: built.tree_size - entries_before,
        tree_size: built.tree_size,
        build_seconds: built.build_seconds,
        resumed: built.resumed,
    })
}

/// The ledger in `dir` holding `source`'s history, fed through the real ingest path if
/// `dir` holds no complete one yet. `days` and `observations` of the answer are left 0 for
/// the caller to fill in.
pub async fn ensure_from(dir: &Path, source: Arc<dyn Source>) -> BenchResult<Built> {
    let dir = dir.to_owned();
    let marker = dir.join("complete");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let tree_size = text
            .trim()
            .parse()
            .map_err(|_| format!("bad cache marker {}", marker.display()))?;
        return Ok(Built {
            dir,
            days: 0,
            observations: 0,
            tree_size,
            build_seconds: None,
            resumed: false,
        });
    }
    let started = Instant::now();
    let (history_start, history_end) = source.span();
    let clock = Arc::new(ManualClock::new(history_start));
    // A build that was interrupted resumes: from the chunk its last entry was received in,
    // whose observations are submitted again (the ledger answers DUPLICATE for those it
    // already holds).
    let served = serve(&dir, clock.clone(), false).await?;
    let probes = source.probes();
    let mut commands: Vec<Command> = source
        .services()
        .into_iter()
        .map(Command::DefineService)
        .collect();
    for (probe, probe_id) in probes.iter().enumerate() {
        commands.push(Command::RegisterProbe {
            probe_id: probe_id.clone(),
            public_key: PublicKey::from(&probe_key(probe)),
            location: format!("vantage point {}", probe + 1),
        });
    }
    let held = served.ledger.tree_size();
    let resuming = held > 1;
    if resuming && held < 1 + commands.len() as u64 {
        return Err(format!(
            "{} holds an interrupted build that stopped among its admin commands; delete it",
            dir.display()
        ));
    }
    let mut chunk_start = history_start;
    if resuming {
        let last = served
            .ledger
            .entries(held - 1..held)
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("the log's last entry is missing")?
            .map_err(|e| e.to_string())?;
        let received_at = crate::entry::decode_entry(&last.1)
            .map_err(|e| e.to_string())?
            .received_at;
        let chunks_done = (received_at - history_start - 1).max(0) / CHUNK_MS;
        chunk_start = history_start + chunks_done * CHUNK_MS;
        clock.set(received_at);
        eprintln!(
            "  resuming the interrupted build in {} ({held} entries) from {} ms",
            dir.display(),
            chunk_start
        );
    }
    let channel = crate::client::connect(&served.address)
        .await
        .map_err(|e| e.to_string())?;
    let mut admin = pb::admin_service_client::AdminServiceClient::new(channel.clone());
    for (seq, command) in commands.into_iter().enumerate().filter(|_| !resuming) {
        let signed = crate::client::sign_command(
            "admin",
            &admin_key(),
            &AdminCommand {
                seq: seq as u64 + 1,
                issued_at: clock.now_millis(),
                command,
            },
        );
        admin
            .apply(pb::ApplyRequest {
                command: Some(signed),
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    let keys: Vec<SigningKey> = (0..probes.len()).map(probe_key).collect();
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(channel);
    let mut observed = 0u64;
    // Long histories report progress on stderr, every tenth of the span.
    let report_every = if history_end - history_start > 7 * DAY_MS {
        (history_end - history_start) / 10
    } else {
        i64::MAX
    };
    // The first tenth boundary after where this build starts (or resumes).
    let mut next_report = if report_every == i64::MAX {
        i64::MAX
    } else {
        history_start + ((chunk_start - history_start) / report_every + 1) * report_every
    };
    // Sign the next chunk while the current one is being ingested.
    let sign_chunk = |from: i64, keys: Vec<SigningKey>| {
        let source = source.clone();
        tokio::task::spawn_blocking(move || {
            sign_all(
                source.observations(from, (from + CHUNK_MS).min(history_end)),
                &keys,
            )
        })
    };
    let mut next = Some(sign_chunk(chunk_start, keys.clone()));
    while let Some(signing) = next.take() {
        let signed = signing.await.map_err(|e| e.to_string())?;
        let chunk_end = (chunk_start + CHUNK_MS).min(history_end);
        if chunk_end < history_end {
            next = Some(sign_chunk(chunk_end, keys.clone()));
        }
        clock.set(chunk_end);
        for part in signed.chunks(crate::rpc::MAX_SUBMIT_BATCH) {
            let acks = ingest
                .submit(pb::SubmitRequest {
                    observations: part.to_vec(),
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .acks;
            let fine = |status: i32| {
                status == pb::AckStatus::Accepted as i32
                    || (resuming && status == pb::AckStatus::Duplicate as i32)
            };
            if let Some(bad) = acks.iter().find(|a| !fine(a.status)) {
                return Err(format!("history ingest was refused: {bad:?}"));
            }
            observed += acks.len() as u64;
        }
        chunk_start = chunk_end;
        if chunk_start >= next_report {
            next_report = next_report.saturating_add(report_every);
            let seconds = started.elapsed().as_secs_f64();
            // The ledger is served in this process, so its RSS is the server's plus the
            // load generator's (which holds two signed chunks at most).
            eprintln!(
                "  ingested {:.0} % of the history: {observed} observations in {seconds:.0} s ({:.0}/s); log {} entries, RSS {:.0} MiB",
                100.0 * (chunk_start - history_start) as f64 / (history_end - history_start) as f64,
                observed as f64 / seconds,
                served.ledger.tree_size(),
                super::rss_bytes("self") as f64 / 1048576.0
            );
        }
    }
    // Let the last checkpoint and the projector catch up, then stop cleanly.
    let tree_size = served.ledger.tree_size();
    for _ in 0..600 {
        if served.projections.read().tree_size == tree_size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    served.stop().await;
    std::fs::write(&marker, tree_size.to_string()).map_err(|e| e.to_string())?;
    Ok(Built {
        dir,
        days: 0,
        observations: observed,
        tree_size,
        build_seconds: Some(started.elapsed().as_secs_f64()),
        resumed: resuming,
    })
}
