//! Shared by the crash, fail point and storage fault tests: the real binary on one data
//! directory, probes that record every acknowledgement, and the check a restarted ledger
//! must pass — every acknowledged event at its index with its bytes, the served entries
//! hashing to the signed checkpoint, every checkpoint seen before consistent with the new
//! one, resends answered `DUPLICATE` with the original index, and the served projections
//! equal to a projection rebuilt here from the downloaded log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use tonic::transport::Channel;

use super::process::{banner_field, Process, BINARY, SERVE_BANNER};
use uptime_ledger::checkpoint::{open_checkpoint, NoteVerifier};
use uptime_ledger::client::{self, LedgerChannel};
use uptime_ledger::clock::{Clock, SystemClock};
use uptime_ledger::domain::{
    AdminCommand, Command as AdminOp, Observation, ProbeId, Quorum, ServiceId, ServiceSpec, Status,
};
use uptime_ledger::entry::{self, DecodedEntry, Payload};
use uptime_ledger::merkle;
use uptime_ledger::pb;
use uptime_ledger::pb::ingest_service_client::IngestServiceClient;
use uptime_ledger::pb::log_service_client::LogServiceClient;
use uptime_ledger::pb::query_service_client::QueryServiceClient;
use uptime_ledger::projection::{AvailabilityReport, Incident, Interval, Projection, State};
use uptime_ledger::projector::feed;

pub const SERVICE: &str = "svc";

/// `uptime-ledger serve` on free ports with a short checkpoint interval, as a command
/// (so a test can add environment variables or wrap it in strace).
pub fn serve_command(data: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command.args(serve_args(data));
    command
}

pub fn serve_args(data: &Path) -> Vec<String> {
    vec![
        "serve".into(),
        "--grpc-addr".into(),
        "127.0.0.1:0".into(),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--checkpoint-interval".into(),
        "100ms".into(),
        "--data-dir".into(),
        data.to_str().unwrap().into(),
    ]
}

/// A serving ledger process.
pub struct Running {
    pub process: Process,
    pub address: String,
    pub http_address: String,
    pub verifier: NoteVerifier,
    /// From spawn to serving.
    pub startup: Duration,
}

impl Running {
    /// Spawns `command` and waits until it serves.
    pub fn start(command: Command) -> Running {
        let started = Instant::now();
        let mut running = Running::start_attached(Process::spawn(command));
        running.startup = started.elapsed();
        running
    }

    /// Waits until an already spawned `serve` serves.
    pub fn start_attached(mut process: Process) -> Running {
        let started = Instant::now();
        let (address, http_address, verifier) =
            process.wait_for_stderr("serving", Duration::from_secs(60), |stderr| {
                let field = |label| banner_field(stderr, SERVE_BANNER, label);
                Some((
                    field("gRPC")?,
                    field("status page")?.trim_end_matches('/').to_owned(),
                    field("verifier key")?,
                ))
            });
        Running {
            process,
            address,
            http_address,
            verifier: verifier.parse().expect("serve prints its verifier key"),
            startup: started.elapsed(),
        }
    }

    pub async fn channel(&self) -> Channel {
        client::connect(&self.address).await.unwrap()
    }

    /// SIGKILL; returns stderr.
    pub fn kill(self) -> String {
        self.process.kill().1
    }
}

/// A probe the tests sign for, with its next seq.
#[derive(Clone)]
pub struct Probe {
    pub id: String,
    pub key: SigningKey,
    pub next_seq: u64,
}

impl Probe {
    /// A new signed observation with the next seq, observed now.
    pub fn observe(&mut self, status: Status, detail: &str) -> pb::SignedObservation {
        let seq = self.next_seq;
        self.next_seq += 1;
        client::sign_observation(
            &self.key,
            &Observation {
                probe_id: ProbeId::parse(&self.id).unwrap(),
                service_id: ServiceId::parse(SERVICE).unwrap(),
                seq,
                observed_at: SystemClock.now_millis(),
                status,
                latency_ms: 7,
                detail: detail.into(),
            },
        )
    }
}

/// Defines the service and registers `count` probes, signed with the generated admin key.
pub async fn provision(running: &Running, data: &Path, count: usize) -> Vec<Probe> {
    let admin = uptime_ledger::crypto::read_signing_key(&data.join("keys/admin.pem")).unwrap();
    let mut admin_client =
        pb::admin_service_client::AdminServiceClient::new(running.channel().await);
    let now = SystemClock.now_millis();
    let probes: Vec<Probe> = (0..count)
        .map(|p| Probe {
            id: format!("p{p}"),
            key: SigningKey::from_bytes(&[p as u8 + 1; 32]),
            next_seq: 1,
        })
        .collect();
    let commands = std::iter::once(AdminOp::DefineService(ServiceSpec {
        service_id: ServiceId::parse(SERVICE).unwrap(),
        name: "Service".into(),
        agency: "Ministry of Tests".into(),
        slo_target: 0.99,
        quorum: Quorum::Majority,
        staleness: Duration::from_secs(90),
    }))
    .chain(probes.iter().map(|probe| AdminOp::RegisterProbe {
        probe_id: ProbeId::parse(&probe.id).unwrap(),
        public_key: uptime_ledger::crypto::PublicKey::from(&probe.key),
        location: "test".into(),
    }));
    for (seq, command) in commands.enumerate() {
        let signed = client::sign_command(
            "admin",
            &admin,
            &AdminCommand {
                seq: seq as u64 + 1,
                issued_at: now,
                command,
            },
        );
        admin_client
            .apply(pb::ApplyRequest {
                command: Some(signed),
            })
            .await
            .expect("provisioning applies");
    }
    probes
}

/// Everything the clients were told, to hold a restarted ledger to.
#[derive(Default)]
pub struct Record {
    /// Index → the observation acknowledged there (ACCEPTED, or DUPLICATE of it).
    pub acked: BTreeMap<u64, pb::SignedObservation>,
    /// Tree size → a signed checkpoint note a client saw.
    pub checkpoints: BTreeMap<u64, String>,
    /// The tree size of the last restart's verified checkpoint: every checkpoint up to it
    /// was proven consistent with it then, so later checks take those by sample.
    pub verified_through: u64,
}

impl Record {
    /// Records an acknowledgement; two different observations at one index is a failure.
    pub fn ack(&mut self, index: u64, observation: &pb::SignedObservation) {
        if let Some(earlier) = self.acked.insert(index, observation.clone()) {
            assert_eq!(
                earlier, *observation,
                "two different observations were acknowledged at index {index}"
            );
        }
    }
}

pub type SharedRecord = Arc<Mutex<Record>>;

/// Why a submit failed.
#[derive(Debug)]
pub struct Refused(pub tonic::Status);

/// Submits `batch`; on success records every acknowledgement. Any rejection fails the
/// test (these observations are always valid). DUPLICATE must name the index the record
/// holds for it, when the record has it.
pub async fn submit_recorded(
    ingest: &mut IngestServiceClient<Channel>,
    record: &SharedRecord,
    batch: &[pb::SignedObservation],
) -> Result<Vec<pb::Ack>, Refused> {
    let acks = ingest
        .submit(pb::SubmitRequest {
            observations: batch.to_vec(),
        })
        .await
        .map_err(Refused)?
        .into_inner()
        .acks;
    assert_eq!(acks.len(), batch.len());
    let mut record = record.lock().unwrap();
    for (ack, observation) in acks.iter().zip(batch) {
        let status = pb::AckStatus::try_from(ack.status).unwrap();
        match status {
            pb::AckStatus::Accepted | pb::AckStatus::Duplicate => {
                record.ack(ack.index, observation)
            }
            _ => panic!("an observation was refused: {ack:?}"),
        }
    }
    Ok(acks)
}

/// A probe sending batches until told to stop or until a request fails. What was sent in
/// a failed request is in doubt: it is sent again first next time (ACCEPTED or DUPLICATE
/// are both right; anything else is a failure).
pub struct Sender {
    pub probe: Probe,
    pub in_doubt: Vec<pb::SignedObservation>,
}

impl Sender {
    pub async fn run(
        &mut self,
        address: String,
        record: SharedRecord,
        stop: Arc<std::sync::atomic::AtomicBool>,
        seed: u64,
    ) -> Option<tonic::Status> {
        let mut rng: StdRng = rand::SeedableRng::seed_from_u64(seed);
        let Ok(channel) = client::connect(&address).await else {
            return None;
        };
        let mut ingest = IngestServiceClient::new(channel);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let batch = if self.in_doubt.is_empty() {
                let size = rng.gen_range(1..=8);
                (0..size)
                    .map(|_| {
                        let status = if rng.gen_bool(0.2) {
                            Status::Down
                        } else {
                            Status::Up
                        };
                        self.probe.observe(status, "")
                    })
                    .collect()
            } else {
                std::mem::take(&mut self.in_doubt)
            };
            if let Err(Refused(status)) = submit_recorded(&mut ingest, &record, &batch).await {
                self.in_doubt = batch;
                return Some(status);
            }
        }
        None
    }
}

/// Polls the latest checkpoint until it covers `size` entries; returns (tree size, note).
pub async fn wait_for_checkpoint(log: &mut LogServiceClient<Channel>, size: u64) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = log
            .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
            .await
            .expect("GetCheckpoint answers")
            .into_inner();
        if response.tree_size >= size {
            return (response.tree_size, response.checkpoint);
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint covered {size} entries within 20 s (latest: {})",
            response.tree_size
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The observation (body, signature) stored in an entry.
pub fn stored_observation(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match entry::decode_entry(bytes).unwrap().payload {
        Payload::Observation {
            body, signature, ..
        } => (body, signature),
        other => panic!("expected an observation, found {other:?}"),
    }
}

/// The checks a ledger must pass after any crash or fault, against everything clients were
/// told before. Returns the verified tree size. Also records the new checkpoint.
pub async fn check_restarted(
    running: &Running,
    record: &SharedRecord,
    rng: &mut StdRng,
    context: &str,
) -> u64 {
    let channel = running.channel().await;
    let mut log = LogServiceClient::new(channel.clone());
    let (acked, seen) = {
        let record = record.lock().unwrap();
        // Consistency is transitive through the last verified checkpoint: check every
        // checkpoint seen since (and it), plus a sample of older ones.
        let (older, newer): (Vec<_>, Vec<_>) = record
            .checkpoints
            .iter()
            .map(|(size, note)| (*size, note.clone()))
            .partition(|(size, _)| *size < record.verified_through);
        let mut seen: BTreeMap<u64, String> = newer.into_iter().collect();
        seen.extend(older.choose_multiple(rng, 8).cloned());
        (record.acked.clone(), seen)
    };
    let needed = acked.keys().next_back().map_or(1, |index| index + 1);
    wait_for_checkpoint(&mut log, needed).await;

    // The served entries hash to the signed checkpoint (signature checked with the key
    // pinned on the first start).
    let verified = client::verify_log(channel.clone(), &running.verifier)
        .await
        .unwrap_or_else(|e| panic!("{context}: the restarted log does not verify: {e}"));
    let size = verified.checkpoint.tree_size;
    let root = verified.checkpoint.root_hash;

    // Every acknowledged event, at its index, byte for byte.
    for (index, observation) in &acked {
        let stored = verified.entries.get(*index as usize).unwrap_or_else(|| {
            panic!("{context}: acknowledged entry {index} is missing (log of {size})")
        });
        let (body, signature) = stored_observation(stored);
        assert!(
            body == observation.body && signature == observation.signature,
            "{context}: entry {index} is not the acknowledged observation"
        );
    }

    // Every checkpoint seen before is still served as it was and is consistent with now.
    for (seen_size, note) in &seen {
        let old = open_checkpoint(note, &running.verifier).unwrap();
        assert!(
            *seen_size <= size,
            "{context}: a checkpoint at {seen_size} was seen but the log has {size} entries"
        );
        let served = log
            .get_checkpoint(pb::GetCheckpointRequest {
                tree_size: *seen_size,
            })
            .await
            .unwrap_or_else(|e| panic!("{context}: the checkpoint at {seen_size} is gone: {e}"))
            .into_inner()
            .checkpoint;
        assert_eq!(&served, note, "{context}: checkpoint {seen_size} changed");
        let proof: Vec<merkle::Hash> = log
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                first: *seen_size,
                second: size,
            })
            .await
            .unwrap()
            .into_inner()
            .proof
            .into_iter()
            .map(|hash| hash.try_into().unwrap())
            .collect();
        merkle::verify_consistency(*seen_size, size, &old.root_hash, &root, &proof).unwrap_or_else(
            |e| panic!("{context}: checkpoint {seen_size} is not consistent with {size}: {e}"),
        );
    }
    {
        let mut record = record.lock().unwrap();
        record.checkpoints.insert(size, verified.note.clone());
        record.verified_through = size;
    }

    // Resends of acknowledged events are DUPLICATEs of the original index.
    let mut sample: Vec<(u64, pb::SignedObservation)> = acked
        .iter()
        .map(|(index, observation)| (*index, observation.clone()))
        .collect::<Vec<_>>()
        .choose_multiple(rng, 12)
        .cloned()
        .collect();
    if let Some((index, observation)) = acked.iter().next_back() {
        sample.push((*index, observation.clone()));
    }
    if !sample.is_empty() {
        let acks = IngestServiceClient::new(channel.clone())
            .submit(pb::SubmitRequest {
                observations: sample.iter().map(|(_, o)| o.clone()).collect(),
            })
            .await
            .unwrap_or_else(|e| panic!("{context}: resending failed: {e}"))
            .into_inner()
            .acks;
        for ((index, _), ack) in sample.iter().zip(acks) {
            assert_eq!(
                (ack.status, ack.index),
                (pb::AckStatus::Duplicate as i32, *index),
                "{context}: a resend of the event acknowledged at {index} was answered {ack:?}"
            );
        }
    }

    check_projection_equals_replay(&channel, context).await;
    size
}

/// The projection the server publishes (resumed from its snapshot and caught up, or
/// rebuilt) answers exactly what a projection rebuilt here, independently, from the log
/// answers: the server's entries `[0, tree_size)` are downloaded over `GetEntries` and
/// applied to a fresh `Projection` with the library's pure functions, and every service's
/// availability, incidents, timeline (over a window holding all the data) and probes are
/// compared, at the tree size the served answers name.
pub async fn check_projection_equals_replay(channel: &Channel, context: &str) {
    let mut query = QueryServiceClient::new(channel.clone());
    let mut log = LogServiceClient::new(LedgerChannel::from(channel.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let checkpoint = log
            .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
            .await
            .unwrap()
            .into_inner()
            .tree_size;
        let services = query
            .list_services(pb::ListServicesRequest {})
            .await
            .unwrap()
            .into_inner();
        let tree_size = services.prefix.as_ref().unwrap().tree_size;
        if tree_size >= checkpoint {
            let downloaded = client::download_entries(&mut log, tree_size, || {})
                .await
                .unwrap_or_else(|e| panic!("{context}: GetEntries up to {tree_size}: {e}"));
            let entries: Vec<DecodedEntry> = downloaded
                .entries
                .iter()
                .map(|bytes| entry::decode_entry(bytes).unwrap())
                .collect();
            let replayed = replay(&entries);
            let served_ids: Vec<String> = services
                .services
                .iter()
                .map(|summary| summary.spec.as_ref().unwrap().service_id.clone())
                .collect();
            let replayed_ids: Vec<String> = replayed
                .services()
                .map(|spec| spec.service_id.to_string())
                .collect();
            assert_eq!(
                served_ids, replayed_ids,
                "{context}: the served services differ from a replay of the log"
            );
            let window = window_covering(&entries, &replayed);
            let mut answers = Vec::new();
            for service_id in &replayed_ids {
                answers.push(served_answers(&mut query, service_id, window).await);
            }
            // The projector may have published a newer prefix meanwhile: then start again.
            let same_prefix = answers
                .iter()
                .all(|(prefixes, _)| prefixes.iter().all(|&prefix| prefix == tree_size));
            if same_prefix {
                for (service_id, (_, served)) in replayed_ids.iter().zip(answers) {
                    let (start, end) = window;
                    let expected = ServedAnswers {
                        report: replayed.report(service_id, start, end).unwrap(),
                        incidents: replayed.incidents(service_id, start, end).unwrap(),
                        timeline: replayed.timeline(service_id, start, end).unwrap(),
                        probes: replayed
                            .probes_for(service_id)
                            .unwrap()
                            .into_iter()
                            .map(|p| {
                                let location = p.registration.as_ref().map(|r| r.location.clone());
                                let revoked =
                                    p.registration.is_some_and(|r| r.revoked_at.is_some());
                                (
                                    p.probe_id,
                                    location.unwrap_or_default(),
                                    revoked,
                                    p.last_observed_at,
                                )
                            })
                            .collect(),
                    };
                    assert_eq!(
                        served, expected,
                        "{context}: service {service_id}: the served projection differs \
                         from a replay of the log's {tree_size} entries"
                    );
                }
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{context}: the projection did not settle at the checkpoint at {checkpoint} \
             within 20 s (it names {tree_size})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the query service says about one service over one window, as plain values.
#[derive(Debug, PartialEq)]
struct ServedAnswers {
    report: AvailabilityReport,
    incidents: Vec<Incident>,
    timeline: Vec<Interval>,
    /// Each probe as `GetService` lists it: id, location, revoked, latest observation.
    probes: Vec<(String, String, bool, i64)>,
}

/// The availability, incidents and timeline of `service_id` over `[start, end)` and its
/// probes, from the latest published prefix, with the tree size each answer names.
async fn served_answers(
    query: &mut QueryServiceClient<Channel>,
    service_id: &str,
    (start, end): (i64, i64),
) -> ([u64; 4], ServedAnswers) {
    let window = || {
        Some(pb::Window {
            window: Some(pb::window::Window::Range(pb::TimeRange {
                start: Some(entry::millis_timestamp(start)),
                end: Some(entry::millis_timestamp(end)),
            })),
        })
    };
    let report = query
        .get_availability(pb::GetAvailabilityRequest {
            service_id: service_id.into(),
            window: window(),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let (report, report_tree_size, _) = client::availability_report_from_pb(&report).unwrap();
    let incidents = query
        .list_incidents(pb::ListIncidentsRequest {
            service_id: service_id.into(),
            window: window(),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let timeline = query
        .get_timeline(pb::GetTimelineRequest {
            service_id: service_id.into(),
            window: window(),
        })
        .await
        .unwrap()
        .into_inner();
    let resolved = |response_start, response_end| {
        (
            entry::timestamp_millis(response_start, "start").unwrap(),
            entry::timestamp_millis(response_end, "end").unwrap(),
        )
    };
    assert_eq!(
        resolved(incidents.start.as_ref(), incidents.end.as_ref()),
        (start, end)
    );
    assert_eq!(
        resolved(timeline.start.as_ref(), timeline.end.as_ref()),
        (start, end)
    );
    let service = query
        .get_service(pb::GetServiceRequest {
            service_id: service_id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let prefixes = [
        report_tree_size,
        incidents.prefix.unwrap().tree_size,
        timeline.prefix.unwrap().tree_size,
        service.prefix.unwrap().tree_size,
    ];
    let answers = ServedAnswers {
        report,
        incidents: incidents
            .incidents
            .iter()
            .map(|incident| client::incident_from_pb(incident).unwrap())
            .collect(),
        timeline: timeline
            .intervals
            .iter()
            .map(|interval| Interval {
                start: entry::timestamp_millis(interval.start.as_ref(), "start").unwrap(),
                end: entry::timestamp_millis(interval.end.as_ref(), "end").unwrap(),
                state: match pb::ServiceState::try_from(interval.state).unwrap() {
                    pb::ServiceState::Up => State::Up,
                    pb::ServiceState::Down => State::Down,
                    pb::ServiceState::Unknown => State::Unknown,
                    pb::ServiceState::Maintenance => State::Maintenance,
                    pb::ServiceState::Unspecified => panic!("a timeline interval has no state"),
                },
            })
            .collect(),
        probes: service
            .probes
            .into_iter()
            .map(|probe| {
                let observed_at =
                    entry::timestamp_millis(probe.last_observed_at.as_ref(), "observed_at");
                (
                    probe.probe_id,
                    probe.location,
                    probe.revoked,
                    observed_at.unwrap(),
                )
            })
            .collect(),
    };
    (prefixes, answers)
}

/// The projection of `entries` (a whole log prefix, genesis first), built as an auditor
/// builds it: a fresh `Projection` fed every entry through `projector::feed`.
fn replay(entries: &[DecodedEntry]) -> Projection {
    let Some(Payload::Genesis(genesis)) = entries.first().map(|first| &first.payload) else {
        panic!("the log does not start with its genesis");
    };
    let mut projection = Projection::new(feed::projection_config(genesis));
    for entry in entries {
        feed::apply_entry(&mut projection, entry);
    }
    assert_eq!(
        projection.applied_index(),
        entries.len().checked_sub(1).map(|last| last as u64)
    );
    projection
}

/// A window holding every instant the log speaks of (entries' `received_at`, observations'
/// `observed_at`, maintenance windows), with a day to spare on each side so that the last
/// observations' staleness and the UNKNOWN around the data are inside it too.
fn window_covering(entries: &[DecodedEntry], projection: &Projection) -> (i64, i64) {
    const DAY_MS: i64 = 86_400_000;
    let observed = entries.iter().filter_map(|entry| match &entry.payload {
        Payload::Observation { observation, .. } => Some(observation.observed_at),
        _ => None,
    });
    let maintenance = projection
        .services()
        .flat_map(|spec| projection.maintenance(&spec.service_id).unwrap())
        .flat_map(|window| [window.start, window.end]);
    let times: Vec<i64> = entries
        .iter()
        .map(|entry| entry.received_at)
        .chain(observed)
        .chain(maintenance)
        .collect();
    (
        times.iter().min().unwrap() - DAY_MS,
        times.iter().max().unwrap() + DAY_MS,
    )
}

/// A copy of a stopped data directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).unwrap();
        }
    }
}

/// The seed: `CRASH_SEED` (or `name`'s own variable) if set, else a fresh one; printed so
/// a failure can be replayed.
pub fn seed(variable: &str) -> u64 {
    let seed = std::env::var(variable)
        .ok()
        .map(|s| s.parse().expect("the seed is a number"))
        .unwrap_or_else(rand::random);
    eprintln!("seed: {seed} (rerun with {variable}={seed})");
    seed
}

/// `DIR/data` in a new temporary directory.
pub fn temp_data() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}
