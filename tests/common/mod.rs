//! Shared setup for the integration tests: a real ledger (real sled in a temporary
//! directory, real keys) served over real gRPC on 127.0.0.1:0, with a manual clock.

#![allow(dead_code)]

pub mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use uptime_ledger::client;
use uptime_ledger::clock::ManualClock;
use uptime_ledger::domain::{
    AdminCommand, AdminKey, Command, Observation, ProbeId, Quorum, ServiceId, ServiceSpec, Status,
};
use uptime_ledger::log::{GenesisParams, Ledger, LedgerConfig};
use uptime_ledger::pb;
use uptime_ledger::pb::admin_service_client::AdminServiceClient;
use uptime_ledger::pb::ingest_service_client::IngestServiceClient;
use uptime_ledger::pb::log_service_client::LogServiceClient;

/// 2026-11-27T00:00:00Z, the tests' "now".
pub const T0: i64 = 1_795_737_600_000;
pub const ORIGIN: &str = "test.uptime-ledger/log";

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub struct TestLedger {
    pub dir: PathBuf,
    pub clock: Arc<ManualClock>,
    ledger: Option<Arc<Ledger>>,
    pub address: String,
    pub admin: SigningKey,
    ledger_key: SigningKey,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    pub admin_seq: u64,
    _temp: Option<tempfile::TempDir>,
}

impl TestLedger {
    /// A fresh ledger in a new temporary directory.
    pub async fn start() -> TestLedger {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let mut ledger =
            TestLedger::start_in(&dir, Arc::new(ManualClock::new(T0)), key(200), key(201)).await;
        ledger._temp = Some(temp);
        ledger
    }

    pub async fn start_in(
        dir: &Path,
        clock: Arc<ManualClock>,
        ledger_key: SigningKey,
        admin: SigningKey,
    ) -> TestLedger {
        let ledger = open(dir, clock.clone(), &ledger_key, &admin).expect("the ledger opens");
        let (address, stop, server) = serve(ledger.clone()).await;
        TestLedger {
            dir: dir.to_owned(),
            clock,
            ledger: Some(ledger),
            address,
            admin,
            ledger_key,
            stop: Some(stop),
            server: Some(server),
            admin_seq: 1,
            _temp: None,
        }
    }

    /// Stops the server and the ledger (flushing), then opens the same directory again.
    pub async fn restart(&mut self) {
        self.stop().await;
        // The old ledger must be gone (its sled database closed) before the directory reopens.
        let old = self.ledger.take().expect("the ledger is running");
        for _ in 0..500 {
            if Arc::strong_count(&old) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            Arc::strong_count(&old),
            1,
            "something still holds the old ledger"
        );
        drop(old);
        self.ledger = Some(
            open(&self.dir, self.clock.clone(), &self.ledger_key, &self.admin)
                .expect("the ledger reopens"),
        );
        let (address, stop, server) = serve(self.ledger().clone()).await;
        self.address = address;
        self.stop = Some(stop);
        self.server = Some(server);
    }

    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        if let Some(ledger) = &self.ledger {
            ledger.shutdown().await;
        }
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        self.ledger.as_ref().expect("the ledger is running")
    }

    pub async fn channel(&self) -> Channel {
        client::connect(&self.address).await.unwrap()
    }

    pub async fn ingest(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(self.channel().await)
    }

    pub async fn log(&self) -> LogServiceClient<Channel> {
        LogServiceClient::new(self.channel().await)
    }

    pub async fn admin_client(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    /// Signs `command` with the genesis admin key and applies it; returns the response.
    pub async fn apply(&mut self, command: Command) -> Result<pb::ApplyResponse, tonic::Status> {
        self.admin_seq += 1;
        let command = AdminCommand {
            seq: self.admin_seq,
            issued_at: self.clock_now(),
            command,
        };
        let signed = client::sign_command("admin", &self.admin, &command);
        self.admin_client()
            .await
            .apply(pb::ApplyRequest {
                command: Some(signed),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub fn clock_now(&self) -> i64 {
        use uptime_ledger::clock::Clock;
        self.clock.now_millis()
    }

    pub async fn define_service(&mut self, service_id: &str) {
        self.apply(Command::DefineService(ServiceSpec {
            service_id: ServiceId::parse(service_id).unwrap(),
            name: format!("Service {service_id}"),
            agency: "Ministry of Tests".into(),
            slo_target: 0.99,
            quorum: Quorum::Majority,
            staleness: Duration::from_secs(90),
        }))
        .await
        .expect("define-service applies");
    }

    pub async fn register_probe(&mut self, probe_id: &str, probe_key: &SigningKey) {
        self.apply(Command::RegisterProbe {
            probe_id: ProbeId::parse(probe_id).unwrap(),
            public_key: probe_key.verifying_key(),
            location: "test".into(),
        })
        .await
        .expect("register-probe applies");
    }

    /// Submits and returns the acks.
    pub async fn submit(&self, observations: Vec<pb::SignedObservation>) -> Vec<pb::Ack> {
        self.ingest()
            .await
            .submit(pb::SubmitRequest { observations })
            .await
            .expect("Submit succeeds")
            .into_inner()
            .acks
    }

    pub fn tree_size(&self) -> u64 {
        self.ledger().tree_size()
    }

    /// Waits until the published checkpoint covers the whole log.
    pub async fn wait_for_checkpoint(&self) -> pb::GetCheckpointResponse {
        let size = self.tree_size();
        for _ in 0..200 {
            let response = self
                .log()
                .await
                .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
                .await
                .unwrap()
                .into_inner();
            if response.tree_size >= size {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no checkpoint covered tree size {size} within 5 s");
    }

    pub fn admin_keys(&self) -> Vec<AdminKey> {
        vec![AdminKey {
            name: "admin".into(),
            public_key: self.admin.verifying_key(),
        }]
    }
}

pub fn open(
    dir: &Path,
    clock: Arc<ManualClock>,
    ledger_key: &SigningKey,
    admin: &SigningKey,
) -> Result<Arc<Ledger>, uptime_ledger::log::OpenError> {
    Ledger::open(LedgerConfig {
        data_dir: dir.to_owned(),
        ledger_key: ledger_key.clone(),
        genesis: GenesisParams {
            origin: Some(ORIGIN.into()),
            admin_keys: Some(vec![AdminKey {
                name: "admin".into(),
                public_key: admin.verifying_key(),
            }]),
            max_lateness: None,
            max_skew: None,
        },
        checkpoint_interval: Duration::from_millis(50),
        clock,
    })
}

async fn serve(ledger: Arc<Ledger>) -> (String, oneshot::Sender<()>, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        uptime_ledger::rpc::serve(listener, ledger, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (address, stop, server)
}

/// An observation by `probe_id` of `service_id`, signed with `probe_key`.
pub fn observation(
    probe_key: &SigningKey,
    probe_id: &str,
    service_id: &str,
    seq: u64,
    observed_at: i64,
    status: Status,
) -> pb::SignedObservation {
    client::sign_observation(
        probe_key,
        &Observation {
            probe_id: ProbeId::parse(probe_id).unwrap(),
            service_id: ServiceId::parse(service_id).unwrap(),
            seq,
            observed_at,
            status,
            latency_ms: 12,
            detail: String::new(),
        },
    )
}

pub fn accepted(ack: &pb::Ack) -> bool {
    ack.status == pb::AckStatus::Accepted as i32
}

pub fn rejected_for(ack: &pb::Ack) -> pb::RejectReason {
    assert_eq!(
        ack.status,
        pb::AckStatus::Rejected as i32,
        "expected a rejection, got {ack:?}"
    );
    pb::RejectReason::try_from(ack.reason).unwrap()
}
