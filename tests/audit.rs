//! `audit`, `report` and `export` (the real binary) against a real ledger over real gRPC:
//! an honest ledger passes and `--since` proves consistency across runs; a lying proxy in
//! front of the ledger (a flipped entry byte, an inflated `up_ms`, a hidden incident) and
//! a saved checkpoint from another history make `audit` fail with a message naming what
//! is wrong; `audit --alerts` recomputes alerts under the server's rules; `report --json`
//! and `export` print what the log holds.

mod common;

use common::process::{failure, run as cli, stdout};

use std::pin::Pin;
use std::process::Output;

use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status as RpcStatus};

use common::*;
use uptime_ledger::domain::{Command, MaintenanceId, ServiceId, Status};
use uptime_ledger::entry::{self, Payload};
use uptime_ledger::merkle;
use uptime_ledger::pb;
use uptime_ledger::pb::log_service_client::LogServiceClient;
use uptime_ledger::pb::log_service_server::{LogService, LogServiceServer};
use uptime_ledger::pb::query_service_client::QueryServiceClient;
use uptime_ledger::pb::query_service_server::{QueryService, QueryServiceServer};

const MINUTE: i64 = 60_000;

/// A ledger whose log holds two services, three probes, an outage and maintenance:
///
/// - `passport` (majority of p1, p2, p3; staleness 90 s): one observation per probe per
///   minute from T0-10m to T0-1m; p1 and p2 see DOWN at T0-5m and T0-4m. So the service is
///   UP on [T0-10m, T0-5m), DOWN on [T0-5m, T0-3m), UP on [T0-3m, T0+30s).
/// - `tax`: maintenance m1 for [T0-1m, T0+10m) scheduled at T0 (effective from T0), then
///   p3 sees UP at T0+1m and T0+2m, received at T0+2m.
async fn populated() -> (TestLedger, String) {
    populated_with(TestLedger::start().await).await
}

/// [`populated`]'s log in `ledger`.
async fn populated_with(mut ledger: TestLedger) -> (TestLedger, String) {
    ledger.define_service("passport").await;
    ledger.define_service("tax").await;
    for (probe_id, seed) in [("p1", 11), ("p2", 12), ("p3", 13)] {
        ledger.register_probe(probe_id, &key(seed)).await;
    }
    let mut observations = Vec::new();
    for (seq, minute) in (-10i64..=-1).enumerate() {
        for (probe_id, seed) in [("p1", 11), ("p2", 12), ("p3", 13)] {
            let down = probe_id != "p3" && (minute == -5 || minute == -4);
            observations.push(observation(
                &key(seed),
                probe_id,
                "passport",
                seq as u64 + 1,
                T0 + minute * MINUTE,
                if down { Status::Down } else { Status::Up },
            ));
        }
    }
    assert!(ledger.submit(observations).await.iter().all(accepted));
    ledger
        .apply(Command::ScheduleMaintenance {
            maintenance_id: MaintenanceId::parse("m1").unwrap(),
            service_id: ServiceId::parse("tax").unwrap(),
            start: T0 - MINUTE,
            end: T0 + 10 * MINUTE,
            reason: "database upgrade".into(),
        })
        .await
        .unwrap();
    ledger.clock.advance(2 * MINUTE);
    let tax = vec![
        observation(&key(13), "p3", "tax", 11, T0 + MINUTE, Status::Up),
        observation(&key(13), "p3", "tax", 12, T0 + 2 * MINUTE, Status::Up),
    ];
    assert!(ledger.submit(tax).await.iter().all(accepted));
    let verifier_key = ledger.wait_for_checkpoint().await.verifier_key;
    (ledger, verifier_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_passes_against_an_honest_ledger_and_since_proves_consistency() {
    let (ledger, verifier_key) = populated().await;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("checkpoint.note");
    let saved_arg = saved.to_str().unwrap();
    let first_size = ledger.tree_size();

    let output = stdout(
        &cli(&[
            "audit",
            "--ledger",
            &ledger.address,
            "--verifier-key",
            &verifier_key,
            "--since",
            saved_arg,
        ])
        .await,
    );
    assert!(
        output.contains(&format!("audit passed: {ORIGIN} at tree size {first_size}")),
        "{output}"
    );
    assert!(
        output.contains(&format!("signatures verified: {}", first_size - 1)),
        "{output}"
    );
    assert!(output.contains("services checked: 2"), "{output}");
    assert!(output.contains("no checkpoint was saved"), "{output}");
    let note = std::fs::read_to_string(&saved).unwrap();
    assert!(
        note.starts_with(&format!("{ORIGIN}\n{first_size}\n")),
        "{note}"
    );

    // The log grows; the second audit checks the ledger's consistency proof from the
    // saved checkpoint, over one service and a calendar month.
    let more = vec![observation(
        &key(13),
        "p3",
        "tax",
        13,
        T0 + 2 * MINUTE,
        Status::Down,
    )];
    assert!(ledger.submit(more).await.iter().all(accepted));
    ledger.wait_for_checkpoint().await;
    let output = stdout(
        &cli(&[
            "audit",
            "--ledger",
            &ledger.address,
            "--verifier-key",
            &verifier_key,
            "--since",
            saved_arg,
            "--service",
            "tax",
            "--window",
            "2026-11@Africa/Nairobi",
        ])
        .await,
    );
    assert!(
        output.contains(&format!(
            "consistent with the checkpoint saved in {saved_arg} (tree size {first_size})"
        )),
        "{output}"
    );
    assert!(output.contains("services checked: 1"), "{output}");
    let note = std::fs::read_to_string(&saved).unwrap();
    assert!(
        note.starts_with(&format!("{ORIGIN}\n{}\n", first_size + 1)),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_refuses_a_ledger_that_forked_from_the_saved_checkpoint() {
    // Same keys and origin (TestLedger uses fixed seeds), different histories.
    let mut first = TestLedger::start().await;
    first.define_service("passport").await;
    let verifier_key = first.wait_for_checkpoint().await.verifier_key;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("checkpoint.note");
    let saved_arg = saved.to_str().unwrap();
    let audit = |address: String| {
        let verifier_key = verifier_key.clone();
        let saved_arg = saved_arg.to_owned();
        async move {
            cli(&[
                "audit",
                "--ledger",
                &address,
                "--verifier-key",
                &verifier_key,
                "--since",
                &saved_arg,
            ])
            .await
        }
    };
    stdout(&audit(first.address.clone()).await);

    let mut fork = TestLedger::start().await;
    for service_id in ["tax", "licences", "portal"] {
        fork.define_service(service_id).await;
    }
    fork.wait_for_checkpoint().await;
    let message = failure(&audit(fork.address.clone()).await);
    assert!(
        message.contains(
            "checkpoint at tree size 4 is not consistent with the one saved earlier at tree size 2"
        ),
        "{message}"
    );
    // A failed audit keeps the earlier checkpoint.
    let note = std::fs::read_to_string(&saved).unwrap();
    assert!(note.starts_with(&format!("{ORIGIN}\n2\n")), "{note}");
}

/// How the proxy lies.
#[derive(Clone)]
enum Lie {
    /// Forward everything faithfully.
    Nothing,
    /// Flip the last byte (inside the signature) of this entry in GetEntries.
    FlipEntryByte(u64),
    /// Add a minute to `up_ms` of this service's availability reports.
    InflateUpMs(&'static str),
    /// Answer no incidents for this service.
    HideIncidents(&'static str),
    /// Answer an empty alert history for this service.
    HideAlertHistory(&'static str),
    /// Send one entry more than GetEntries asked for (a copy of the first, re-indexed).
    ExtraEntry,
    /// Name someone else as the proposer's signature in every proposal (who approved what).
    CreditSomeoneElse,
    /// Re-sign this observation entry by its own probe with a signature that only the
    /// cofactored equation accepts (`R` carries a point of order 8).
    TorsionedSignature(u64),
}

/// `served` (an observation entry of `populated`'s probes) with a torsioned signature by
/// its probe over the same body.
fn torsioned_entry(served: &[u8]) -> Vec<u8> {
    use prost::Message;
    let mut entry = pb::LogEntry::decode(served).unwrap();
    let Some(pb::log_entry::Payload::Observation(signed)) = &entry.payload else {
        panic!("entry {} is not an observation", entry.index);
    };
    let probe = pb::Observation::decode(signed.body.as_slice())
        .unwrap()
        .probe_id;
    let seed = match probe.as_str() {
        "p1" => 11,
        "p2" => 12,
        _ => 13,
    };
    let torsioned = common::forge::torsioned_observation(&key(seed), signed, 1, entry.index);
    entry.payload = Some(pb::log_entry::Payload::Observation(torsioned));
    entry.encode_to_vec()
}

/// A LogService and QueryService that forward to a real ledger, lying as told.
#[derive(Clone)]
struct LyingProxy {
    upstream: Channel,
    lie: Lie,
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::GetEntriesResponse, RpcStatus>> + Send>>;
type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, RpcStatus>> + Send>>;
type StateStream = Pin<Box<dyn Stream<Item = Result<pb::WatchStatesResponse, RpcStatus>> + Send>>;

impl LyingProxy {
    fn log(&self) -> LogServiceClient<Channel> {
        LogServiceClient::new(self.upstream.clone())
    }

    fn query(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(self.upstream.clone())
    }

    /// Serves the proxy on 127.0.0.1:0; returns its address.
    async fn start(upstream: Channel, lie: Lie) -> String {
        let proxy = LyingProxy { upstream, lie };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            Server::builder()
                .add_service(LogServiceServer::new(proxy.clone()))
                .add_service(QueryServiceServer::new(proxy))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        address
    }
}

#[tonic::async_trait]
impl LogService for LyingProxy {
    type GetEntriesStream = EntryStream;
    type SubscribeStream = SubscribeStream;

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, RpcStatus> {
        self.log().get_checkpoint(request.into_inner()).await
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<EntryStream>, RpcStatus> {
        let request = request.into_inner();
        let extra = match self.lie {
            Lie::ExtraEntry => {
                let first = self
                    .log()
                    .get_entries(pb::GetEntriesRequest { start: 0, end: 1 })
                    .await?
                    .into_inner()
                    .message()
                    .await?
                    .expect("the genesis");
                Some(Ok(pb::GetEntriesResponse {
                    index: request.end,
                    entry: first.entry,
                }))
            }
            _ => None,
        };
        let entries = self.log().get_entries(request).await?.into_inner();
        let lie = self.lie.clone();
        let entries = entries
            .map(move |served| {
                served.map(|mut served| {
                    if matches!(lie, Lie::FlipEntryByte(index) if index == served.index) {
                        *served.entry.last_mut().unwrap() ^= 0x01;
                    }
                    if matches!(lie, Lie::TorsionedSignature(index) if index == served.index) {
                        served.entry = torsioned_entry(&served.entry);
                    }
                    served
                })
            })
            .chain(futures_util::stream::iter(extra));
        Ok(Response::new(Box::pin(entries)))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, RpcStatus> {
        self.log().get_inclusion_proof(request.into_inner()).await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, RpcStatus> {
        self.log().get_consistency_proof(request.into_inner()).await
    }

    async fn subscribe(
        &self,
        _request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<SubscribeStream>, RpcStatus> {
        Err(RpcStatus::unimplemented("not proxied"))
    }
}

#[tonic::async_trait]
impl QueryService for LyingProxy {
    type WatchStatesStream = StateStream;

    async fn list_admin_keys(
        &self,
        request: Request<pb::ListAdminKeysRequest>,
    ) -> Result<Response<pb::ListAdminKeysResponse>, RpcStatus> {
        self.query().list_admin_keys(request.into_inner()).await
    }

    async fn list_proposals(
        &self,
        request: Request<pb::ListProposalsRequest>,
    ) -> Result<Response<pb::ListProposalsResponse>, RpcStatus> {
        let mut response = self.query().list_proposals(request.into_inner()).await?;
        if matches!(self.lie, Lie::CreditSomeoneElse) {
            for proposal in &mut response.get_mut().proposals {
                proposal.approvals[0].admin = "someone-else".into();
            }
        }
        Ok(response)
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, RpcStatus> {
        self.query().list_services(request.into_inner()).await
    }

    async fn get_service(
        &self,
        request: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::GetServiceResponse>, RpcStatus> {
        self.query().get_service(request.into_inner()).await
    }

    async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::GetAvailabilityResponse>, RpcStatus> {
        let request = request.into_inner();
        let service_id = request.service_id.clone();
        let mut response = self.query().get_availability(request).await?;
        if matches!(self.lie, Lie::InflateUpMs(lied_about) if lied_about == service_id) {
            let report = response.get_mut().report.as_mut().unwrap();
            report.up_ms += MINUTE as u64;
            report.unknown_ms -= MINUTE as u64;
        }
        Ok(response)
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, RpcStatus> {
        let request = request.into_inner();
        let service_id = request.service_id.clone();
        let mut response = self.query().list_incidents(request).await?;
        if matches!(self.lie, Lie::HideIncidents(lied_about) if lied_about == service_id) {
            response.get_mut().incidents.clear();
        }
        Ok(response)
    }

    async fn get_timeline(
        &self,
        request: Request<pb::GetTimelineRequest>,
    ) -> Result<Response<pb::GetTimelineResponse>, RpcStatus> {
        self.query().get_timeline(request.into_inner()).await
    }

    async fn watch_states(
        &self,
        _request: Request<pb::WatchStatesRequest>,
    ) -> Result<Response<StateStream>, RpcStatus> {
        Err(RpcStatus::unimplemented("not proxied"))
    }

    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, RpcStatus> {
        let request = request.into_inner();
        let service_id = request.service_id.clone();
        let mut response = self.query().list_alerts(request).await?;
        if matches!(self.lie, Lie::HideAlertHistory(lied_about) if lied_about == service_id) {
            response.get_mut().history.clear();
        }
        Ok(response)
    }
}

async fn audit_through(ledger: &TestLedger, verifier_key: &str, lie: Lie) -> Output {
    let proxy = LyingProxy::start(ledger.channel().await, lie).await;
    cli(&[
        "audit",
        "--ledger",
        &proxy,
        "--verifier-key",
        verifier_key,
        "--window",
        "2026-11-26T23:50:00Z..2026-11-27T00:10:00Z",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_recomputes_alerts_under_the_servers_alerts_file() {
    // Only outage alerts, after 90 s: passport's 2-minute outage fired for its last 30 s,
    // and nothing fires at the audited prefix's end; under the default rules much more.
    let rules = "rules = [\"outage\"]\nfor = \"90s\"\n";
    let config = uptime_ledger::alert::config::parse(rules, "alerts.toml").unwrap();
    let (ledger, verifier_key) = populated_with(TestLedger::start_with_alerts(config).await).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.toml");
    std::fs::write(&file, rules).unwrap();
    let audit = |alerts: Option<&str>| {
        let mut args = vec![
            "audit",
            "--ledger",
            &ledger.address,
            "--verifier-key",
            &verifier_key,
            "--window",
            "2026-11-26T23:50:00Z..2026-11-27T00:10:00Z",
        ];
        if let Some(alerts) = alerts {
            args.extend(["--alerts", alerts]);
        }
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&args).await
        }
    };
    let passed = stdout(&audit(Some(file.to_str().unwrap())).await);
    assert!(
        passed.contains("availability, incidents and alerts"),
        "{passed}"
    );
    // Under the default rules the log gives alerts this server does not answer.
    let message = failure(&audit(None).await);
    assert!(
        message
            .contains("service passport: the server's firing alerts count is 0, but the log gives"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_names_the_entry_a_server_tampered_with() {
    let (ledger, verifier_key) = populated().await;
    // Entry 20 is one of passport's observations.
    let message = failure(&audit_through(&ledger, &verifier_key, Lie::FlipEntryByte(20)).await);
    assert!(message.contains("audit failed"), "{message}");
    assert!(
        message.contains("but the checkpoint signs root"),
        "names the root mismatch: {message}"
    );
    assert!(
        message.contains("entry 20: the signature of probe p"),
        "names the entry: {message}"
    );
    // A signature that only a cofactored verifier accepts, by the probe's own key, is
    // invalid to the audit as to every stock verifier.
    let message =
        failure(&audit_through(&ledger, &verifier_key, Lie::TorsionedSignature(20)).await);
    assert!(
        message.contains("entry 20: the signature of probe p"),
        "names the entry: {message}"
    );
    // The same audit through an honest proxy passes.
    stdout(&audit_through(&ledger, &verifier_key, Lie::Nothing).await);
    // A server that sends more than the checkpoint covers is refused at the first extra
    // entry (the audit streams: it never reads an endless log).
    let message = failure(&audit_through(&ledger, &verifier_key, Lie::ExtraEntry).await);
    assert!(
        message.contains("the server sent more than the") && message.contains("entries asked for"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_names_the_report_field_a_server_lied_about() {
    let (ledger, verifier_key) = populated().await;
    // Over [T0-10m, T0+10m) passport was UP for 8 min 30 s: [T0-10m, T0-5m) and
    // [T0-3m, T0+30s).
    let message =
        failure(&audit_through(&ledger, &verifier_key, Lie::InflateUpMs("passport")).await);
    assert!(
        message.contains(
            "service passport: the server's availability report's up_ms is 570000, but the log gives 510000"
        ),
        "{message}"
    );

    let message =
        failure(&audit_through(&ledger, &verifier_key, Lie::HideIncidents("passport")).await);
    assert!(
        message.contains(
            "service passport: the server's incident list's number of incidents is 0, but the log gives 1"
        ),
        "{message}"
    );

    // Who registered the probes is recomputed too.
    let message = failure(&audit_through(&ledger, &verifier_key, Lie::CreditSomeoneElse).await);
    assert!(
        message.contains("the server's proposals #0") && message.contains("someone-else"),
        "{message}"
    );

    // The outage [T0-5m, T0-3m) fired an outage alert (and burned the budget); a server
    // that hides the episodes is caught.
    let message =
        failure(&audit_through(&ledger, &verifier_key, Lie::HideAlertHistory("passport")).await);
    assert!(
        message
            .contains("service passport: the server's alert history count is 0, but the log gives"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_json_gives_what_the_log_holds() {
    let (ledger, verifier_key) = populated().await;
    ledger.wait_for_projection().await;
    let output = stdout(
        &cli(&[
            "report",
            "--ledger",
            &ledger.address,
            "--window",
            "2026-11-26T23:50:00Z..2026-11-27T00:00:00Z",
            "--json",
        ])
        .await,
    );
    let document: serde_json::Value = serde_json::from_str(&output).unwrap();
    let services = document["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    let passport = &services[0];
    assert_eq!(passport["service_id"], "passport");
    assert_eq!(passport["start"], "2026-11-26T23:50:00.000Z");
    assert_eq!(passport["end"], "2026-11-27T00:00:00.000Z");
    assert_eq!(passport["up_ms"], 480_000);
    assert_eq!(passport["down_ms"], 120_000);
    assert_eq!(passport["unknown_ms"], 0);
    assert_eq!(passport["availability"], 0.8);
    assert_eq!(passport["slo_met"], false);
    assert_eq!(
        passport["error_budget_remaining_ms"].as_f64(),
        Some(-114_000.0)
    );
    assert_eq!(passport["incident_count"], 1);
    assert_eq!(
        passport["incidents"],
        serde_json::json!([{
            "start": "2026-11-26T23:55:00.000Z",
            "end": "2026-11-26T23:57:00.000Z",
            "duration_ms": 120_000,
            "open": false,
            "probes": ["p1", "p2"],
            "last_observed_at": null,
        }])
    );
    assert_eq!(passport["tree_size"], ledger.tree_size());
    // tax has no data before T0: all unknown, no availability.
    assert_eq!(services[1]["service_id"], "tax");
    assert_eq!(services[1]["unknown_ms"], 600_000);
    assert!(services[1]["availability"].is_null());

    // Maintenance, for one service, and the table.
    let window = "2026-11-27T00:00:00Z..2026-11-27T00:10:00Z";
    let output = stdout(
        &cli(&[
            "report",
            "--ledger",
            &ledger.address,
            "--service",
            "tax",
            "--window",
            window,
            "--json",
        ])
        .await,
    );
    let document: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(document["services"][0]["maintenance_ms"], 600_000);
    let table = stdout(&cli(&["report", "--ledger", &ledger.address]).await);
    let passport_row = table.lines().find(|l| l.starts_with("passport")).unwrap();
    assert!(passport_row.contains("2m 0s"), "{table}");
    assert!(
        table.contains("2026-11-26T23:55:00.000Z .. 2026-11-26T23:57:00.000Z"),
        "{table}"
    );
    // Every service from one prefix, named with its root.
    let size = ledger.tree_size();
    let checkpoint = ledger.wait_for_checkpoint().await;
    let root = checkpoint
        .checkpoint
        .lines()
        .nth(2)
        .map(|line| {
            use base64::Engine as _;
            hex::encode(
                base64::engine::general_purpose::STANDARD
                    .decode(line)
                    .unwrap(),
            )
        })
        .unwrap();
    assert!(
        table.contains(&format!(
            "computed from the log prefix of tree size {size}, root {root}"
        )),
        "{table}"
    );
    // --tree-size pins every report to an earlier checkpoint (the first one after both
    // services were defined); --service repeats.
    let mut log = ledger.log().await;
    let mut earlier = None;
    for size in 3..=size {
        let signed = log
            .get_checkpoint(pb::GetCheckpointRequest { tree_size: size })
            .await;
        if signed.is_ok() {
            earlier = Some(size);
            break;
        }
    }
    let earlier = earlier
        .expect("a checkpoint after both services were defined")
        .to_string();
    let early = stdout(
        &cli(&[
            "report",
            "--ledger",
            &ledger.address,
            "--service",
            "passport",
            "--service",
            "tax",
            "--tree-size",
            &earlier,
            "--json",
        ])
        .await,
    );
    let early: serde_json::Value = serde_json::from_str(&early).unwrap();
    let services = early["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    assert!(
        services
            .iter()
            .all(|s| s["tree_size"].as_u64().map(|n| n.to_string()) == Some(earlier.clone())),
        "{early}"
    );
    // Mistakes are named before anything is asked of the server.
    let message = failure(
        &cli(&[
            "report",
            "--ledger",
            &ledger.address,
            "--service",
            "pasport",
        ])
        .await,
    );
    assert!(
        message.contains("service \"pasport\" is not defined; the ledger defines: passport, tax"),
        "{message}"
    );
    let message = failure(
        &cli(&[
            "report",
            "--ledger",
            &ledger.address,
            "--window",
            "2026-11-27T00:10:00Z..2026-11-27T00:00:00Z",
        ])
        .await,
    );
    assert!(message.contains("before it starts"), "{message}");
    assert!(!message.contains("GetAvailability"), "{message}");
    let message = failure(
        &cli(&[
            "audit",
            "--ledger",
            &ledger.address,
            "--verifier-key",
            &verifier_key,
            "--service",
            "pasport",
        ])
        .await,
    );
    assert!(
        message.contains("service \"pasport\" is not defined; the ledger defines: passport, tax"),
        "{message}"
    );
}

/// Every entry of the log, fetched and decoded directly.
async fn entries(ledger: &TestLedger) -> Vec<(u64, Vec<u8>)> {
    let mut stream = ledger
        .log()
        .await
        .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut entries = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        entries.push((message.index, message.entry));
    }
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_every_entry_as_jsonl_and_csv() {
    let (ledger, _) = populated().await;
    let entries = entries(&ledger).await;
    assert_eq!(entries.len() as u64, ledger.tree_size());

    let jsonl = stdout(&cli(&["export", "--ledger", &ledger.address]).await);
    let rows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), entries.len());
    for (row, (index, bytes)) in rows.iter().zip(&entries) {
        assert_eq!(row["index"], *index);
        assert_eq!(row["leaf_hash"], hex::encode(merkle::leaf_hash(bytes)));
        let decoded = entry::decode_entry(bytes).unwrap();
        assert_eq!(
            row["received_at"],
            uptime_ledger::domain::format_millis(decoded.received_at)
        );
        match decoded.payload {
            Payload::Genesis(genesis) => {
                assert_eq!(row["kind"], "genesis");
                assert_eq!(row["origin"], genesis.origin);
            }
            Payload::Observation { observation, .. } => {
                assert_eq!(row["kind"], "observation");
                assert_eq!(row["probe_id"], observation.probe_id.as_str());
                assert_eq!(row["service_id"], observation.service_id.as_str());
                assert_eq!(row["seq"], observation.seq);
                assert_eq!(
                    row["observed_at"],
                    uptime_ledger::domain::format_millis(observation.observed_at)
                );
                let status = if observation.status == Status::Up {
                    "UP"
                } else {
                    "DOWN"
                };
                assert_eq!(row["status"], status);
                assert_eq!(row["latency_ms"], observation.latency_ms);
                assert!(row.get("signer").is_none(), "{row}");
            }
            Payload::Command {
                signer, command, ..
            } => {
                assert_eq!(row["kind"], "command");
                assert_eq!(row["signer"], signer);
                assert_eq!(row["seq"], command.seq);
            }
        }
    }
    let maintenance = rows
        .iter()
        .find(|row| row["command"] == "schedule_maintenance")
        .unwrap();
    assert_eq!(maintenance["maintenance_id"], "m1");
    assert_eq!(maintenance["start"], "2026-11-26T23:59:00.000Z");

    // CSV over a range: the same records, every column on every row.
    let csv_text = stdout(
        &cli(&[
            "export",
            "--ledger",
            &ledger.address,
            "--start",
            "3",
            "--end",
            "9",
            "--format",
            "csv",
        ])
        .await,
    );
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 6);
    for (record, row) in records.iter().zip(&rows[3..9]) {
        assert_eq!(record.len(), header.len());
        assert_eq!(record[column("index")], row["index"].to_string());
        assert_eq!(record[column("leaf_hash")], row["leaf_hash"]);
        assert_eq!(record[column("kind")], row["kind"]);
        assert_eq!(
            &record[column("probe_id")],
            row["probe_id"].as_str().unwrap_or("")
        );
    }
    // Entry 4 is p2's registration, entry 6 p1's first observation.
    assert_eq!(&records[1][column("command")], "register_probe");
    assert_eq!(&records[3][column("status")], "UP");
}
