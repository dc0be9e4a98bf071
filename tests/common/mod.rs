//! Shared setup for the integration tests: a real ledger (real sled in a temporary
//! directory, real keys) served over real gRPC and HTTP on 127.0.0.1:0, with a manual clock.

#![allow(dead_code)]

pub mod durability;
pub mod forge;
pub mod process;
pub mod receiver;
pub mod seed;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use uptime_ledger::alert::config::AlertsConfig;
use uptime_ledger::alert::notifier::Alerting;
use uptime_ledger::client;
use uptime_ledger::clock::ManualClock;
use uptime_ledger::domain::{
    AdminCommand, AdminKey, Command, Observation, ProbeId, Quorum, ServiceId, ServiceSpec, Status,
};
use uptime_ledger::limits::Limits;
use uptime_ledger::log::{GenesisParams, Ledger, LedgerConfig};
use uptime_ledger::pb;
use uptime_ledger::pb::admin_service_client::AdminServiceClient;
use uptime_ledger::pb::ingest_service_client::IngestServiceClient;
use uptime_ledger::pb::log_service_client::LogServiceClient;
use uptime_ledger::projector::{Projections, ProjectorConfig};
use uptime_ledger::read_token::ReadToken;
use uptime_ledger::rpc::admission::Admission;
use uptime_ledger::rpc::RpcConfig;
use uptime_ledger::tls::{ClientTls, ServerTls};

/// Says on the terminal that a test did not run, and why. Written to the process's stderr
/// directly: libtest captures `eprintln!` of passing tests, which would hide the notice.
pub fn say_skipped(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// 2026-11-27T00:00:00Z, the tests' "now".
pub const T0: i64 = 1_795_737_600_000;
pub const ORIGIN: &str = "test.uptime-ledger/log";

/// Transport security of a test ledger (the default: plaintext, open reads).
#[derive(Clone, Default)]
pub struct TestSecurity {
    /// TLS for gRPC and HTTP (and with a client CA, mutual TLS for ingest).
    pub tls: Option<ServerTls>,
    /// What the ledger's own helpers (`channel`, `apply`, …) use to connect: the test CA.
    pub client_tls: ClientTls,
    /// The read token the ledger requires.
    pub read_token: Option<String>,
}

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub struct TestLedger {
    pub dir: PathBuf,
    pub clock: Arc<ManualClock>,
    ledger: Option<Arc<Ledger>>,
    projections: Option<Arc<Projections>>,
    pub address: String,
    /// `http://127.0.0.1:PORT` of the HTTP server (status page, JSON API, /metrics).
    pub http_address: String,
    pub admin: SigningKey,
    ledger_key: SigningKey,
    stop: Option<watch::Sender<bool>>,
    server: Option<JoinHandle<()>>,
    /// The servers' limits, and the ingest admission control they share.
    pub limits: Limits,
    pub admission: Arc<Admission>,
    pub admin_seq: u64,
    pub security: TestSecurity,
    /// The genesis parameters a restart reopens with (the test admin key by default).
    reopen: Option<GenesisParams>,
    /// The `--alerts` configuration alerting runs with (kept for restarts), and alerting.
    alerts: Option<AlertsConfig>,
    alerting: Option<Arc<Alerting>>,
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

    /// A fresh ledger with alerting under `alerts` (its outbox in the ledger's directory,
    /// notifications signed with the ledger key).
    pub async fn start_with_alerts(alerts: AlertsConfig) -> TestLedger {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let clock = Arc::new(ManualClock::new(T0));
        let ledger = open(&dir, clock.clone(), &key(200), &key(201)).expect("the ledger opens");
        let mut ledger = TestLedger::serve_configured(
            &dir,
            clock,
            ledger,
            key(200),
            key(201),
            Limits::default(),
            TestSecurity::default(),
            Some(alerts),
        )
        .await;
        ledger._temp = Some(temp);
        ledger
    }

    /// A fresh ledger served with `security` (addresses are `https://localhost:PORT` with TLS).
    pub async fn start_secured(security: TestSecurity) -> TestLedger {
        TestLedger::start_secured_with(security, Limits::default()).await
    }

    pub async fn start_secured_with(security: TestSecurity, limits: Limits) -> TestLedger {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let clock = Arc::new(ManualClock::new(T0));
        let ledger = open(&dir, clock.clone(), &key(200), &key(201)).expect("the ledger opens");
        let mut ledger = TestLedger::serve_configured(
            &dir,
            clock,
            ledger,
            key(200),
            key(201),
            limits,
            security,
            None,
        )
        .await;
        ledger._temp = Some(temp);
        ledger
    }

    /// A fresh ledger whose genesis accepts observations up to `max_lateness` old, so that
    /// a test can backfill history.
    pub async fn start_with_max_lateness(max_lateness: Duration) -> TestLedger {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let clock = Arc::new(ManualClock::new(T0));
        let ledger = open_with(
            &dir,
            clock.clone(),
            &key(200),
            &key(201),
            Some(max_lateness),
        )
        .expect("the ledger opens");
        let mut ledger = TestLedger::serve_opened(&dir, clock, ledger, key(200), key(201)).await;
        ledger._temp = Some(temp);
        ledger
    }

    /// A fresh ledger whose servers run under `limits`.
    pub async fn start_with_limits(limits: Limits) -> TestLedger {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let clock = Arc::new(ManualClock::new(T0));
        let ledger = open(&dir, clock.clone(), &key(200), &key(201)).expect("the ledger opens");
        let mut ledger =
            TestLedger::serve_opened_with(&dir, clock, ledger, key(200), key(201), limits).await;
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
        TestLedger::serve_opened(dir, clock, ledger, ledger_key, admin).await
    }

    async fn serve_opened(
        dir: &Path,
        clock: Arc<ManualClock>,
        ledger: Arc<Ledger>,
        ledger_key: SigningKey,
        admin: SigningKey,
    ) -> TestLedger {
        let limits = Limits::default();
        TestLedger::serve_opened_with(dir, clock, ledger, ledger_key, admin, limits).await
    }

    async fn serve_opened_with(
        dir: &Path,
        clock: Arc<ManualClock>,
        ledger: Arc<Ledger>,
        ledger_key: SigningKey,
        admin: SigningKey,
        limits: Limits,
    ) -> TestLedger {
        let security = TestSecurity::default();
        TestLedger::serve_configured(
            dir, clock, ledger, ledger_key, admin, limits, security, None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve_configured(
        dir: &Path,
        clock: Arc<ManualClock>,
        ledger: Arc<Ledger>,
        ledger_key: SigningKey,
        admin: SigningKey,
        limits: Limits,
        security: TestSecurity,
        alerts: Option<AlertsConfig>,
    ) -> TestLedger {
        let projections = start_projections(&ledger, dir, clock.clone(), false);
        let admission = Arc::new(Admission::new(&limits));
        let alerting = start_alerting(&alerts, dir, &projections, &ledger_key);
        let (address, http_address, stop, server) = serve(
            ledger.clone(),
            projections.clone(),
            limits.clone(),
            admission.clone(),
            &security,
            alerting.clone(),
        )
        .await;
        TestLedger {
            dir: dir.to_owned(),
            clock,
            ledger: Some(ledger),
            projections: Some(projections),
            address,
            http_address,
            admin,
            ledger_key,
            stop: Some(stop),
            server: Some(server),
            limits,
            admission,
            admin_seq: 1,
            security,
            reopen: None,
            alerts,
            alerting,
            _temp: None,
        }
    }

    /// A fresh ledger whose genesis is `genesis` (origin and ledger key as usual); restarts
    /// reopen it without checking the genesis flags again.
    pub async fn start_with_genesis(genesis: GenesisParams) -> TestLedger {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let clock = Arc::new(ManualClock::new(T0));
        let ledger =
            open_params(&dir, clock.clone(), &key(200), genesis).expect("the ledger opens");
        let mut ledger = TestLedger::serve_opened(&dir, clock, ledger, key(200), key(201)).await;
        ledger.reopen = Some(GenesisParams::default());
        ledger._temp = Some(temp);
        ledger
    }

    /// Stops the server and the ledger (flushing), then opens the same directory again.
    pub async fn restart(&mut self) {
        self.restart_with(false).await;
    }

    /// Restarts; with `rebuild`, projections ignore their snapshot.
    pub async fn restart_with(&mut self, rebuild: bool) {
        self.stop().await;
        self.projections = None;
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
        let ledger = match &self.reopen {
            Some(genesis) => open_params(
                &self.dir,
                self.clock.clone(),
                &self.ledger_key,
                genesis.clone(),
            ),
            None => open(&self.dir, self.clock.clone(), &self.ledger_key, &self.admin),
        }
        .expect("the ledger reopens");
        let projections = start_projections(&ledger, &self.dir, self.clock.clone(), rebuild);
        self.ledger = Some(ledger);
        self.projections = Some(projections.clone());
        self.admission = Arc::new(Admission::new(&self.limits));
        self.alerting = start_alerting(&self.alerts, &self.dir, &projections, &self.ledger_key);
        let (address, http_address, stop, server) = serve(
            self.ledger().clone(),
            projections,
            self.limits.clone(),
            self.admission.clone(),
            &self.security,
            self.alerting.clone(),
        )
        .await;
        self.address = address;
        self.http_address = http_address;
        self.stop = Some(stop);
        self.server = Some(server);
    }

    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        if let Some(alerting) = self.alerting.take() {
            alerting.shutdown().await;
        }
        if let Some(projections) = &self.projections {
            projections.shutdown().await;
        }
        if let Some(ledger) = &self.ledger {
            ledger.shutdown().await;
        }
    }

    pub fn projections(&self) -> &Arc<Projections> {
        self.projections
            .as_ref()
            .expect("the projections are running")
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        self.ledger.as_ref().expect("the ledger is running")
    }

    pub async fn channel(&self) -> Channel {
        client::connect_tls(&self.address, &self.security.client_tls)
            .await
            .unwrap()
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
            public_key: uptime_ledger::crypto::PublicKey::from(probe_key),
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

    /// Waits until the published projection reflects the whole log (up to its checkpoint).
    pub async fn wait_for_projection(&self) -> u64 {
        let checkpoint = self.wait_for_checkpoint().await;
        for _ in 0..200 {
            if self.projections().read().tree_size >= checkpoint.tree_size {
                return checkpoint.tree_size;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the projection did not reach tree size {} within 5 s",
            checkpoint.tree_size
        );
    }

    pub fn admin_keys(&self) -> Vec<AdminKey> {
        vec![AdminKey {
            name: "admin".into(),
            public_key: uptime_ledger::crypto::PublicKey::from(&self.admin),
        }]
    }
}

pub fn open(
    dir: &Path,
    clock: Arc<ManualClock>,
    ledger_key: &SigningKey,
    admin: &SigningKey,
) -> Result<Arc<Ledger>, uptime_ledger::log::OpenError> {
    open_with(dir, clock, ledger_key, admin, None)
}

fn open_with(
    dir: &Path,
    clock: Arc<ManualClock>,
    ledger_key: &SigningKey,
    admin: &SigningKey,
    max_lateness: Option<Duration>,
) -> Result<Arc<Ledger>, uptime_ledger::log::OpenError> {
    let genesis = GenesisParams {
        origin: Some(ORIGIN.into()),
        admin_keys: Some(vec![AdminKey {
            name: "admin".into(),
            public_key: uptime_ledger::crypto::PublicKey::from(admin),
        }]),
        max_lateness,
        ..GenesisParams::default()
    };
    open_params(dir, clock, ledger_key, genesis)
}

/// Opens (creating if needed) a ledger in `dir` with these genesis parameters.
pub fn open_params(
    dir: &Path,
    clock: Arc<ManualClock>,
    ledger_key: &SigningKey,
    genesis: GenesisParams,
) -> Result<Arc<Ledger>, uptime_ledger::log::OpenError> {
    Ledger::open(LedgerConfig {
        data_dir: dir.to_owned(),
        ledger_key: ledger_key.clone(),
        genesis,
        checkpoint_interval: Duration::from_millis(50),
        clock,
    })
}

pub fn start_projections(
    ledger: &Arc<Ledger>,
    dir: &Path,
    clock: Arc<ManualClock>,
    rebuild: bool,
) -> Arc<Projections> {
    Projections::start(
        ledger.clone(),
        ProjectorConfig {
            data_dir: dir.to_owned(),
            rebuild,
            snapshot_interval: Duration::from_millis(200),
            clock,
            state_change_buffer: 8,
        },
    )
    .expect("the projections start")
}

/// Alerting under `alerts` on `projections`, when there is a configuration.
fn start_alerting(
    alerts: &Option<AlertsConfig>,
    dir: &Path,
    projections: &Arc<Projections>,
    ledger_key: &SigningKey,
) -> Option<Arc<Alerting>> {
    alerts.as_ref().map(|config| {
        Alerting::start(config.clone(), dir, projections.clone(), ledger_key.clone())
            .expect("alerting starts")
    })
}

/// Serves gRPC and HTTP on two ports of 127.0.0.1 (named `localhost` with TLS, the test
/// certificate's name); both stop when `true` is sent.
async fn serve(
    ledger: Arc<Ledger>,
    projections: Arc<Projections>,
    limits: Limits,
    admission: Arc<Admission>,
    security: &TestSecurity,
    alerting: Option<Arc<Alerting>>,
) -> (String, String, watch::Sender<bool>, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (scheme, host) = match security.tls {
        Some(_) => ("https", "localhost"),
        None => ("http", "127.0.0.1"),
    };
    let port = |listener: &tokio::net::TcpListener| listener.local_addr().unwrap().port();
    let address = format!("{scheme}://{host}:{}", port(&listener));
    let http_address = format!("{scheme}://{host}:{}", port(&http_listener));
    let read_token = security
        .read_token
        .as_deref()
        .map(|token| Arc::new(ReadToken::new(token).unwrap()));
    let (stop, stopped) = watch::channel(false);
    let when_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|&stop| stop).await;
        }
    };
    let mut state = uptime_ledger::http::HttpState::new(ledger.clone(), projections.clone())
        .with_read_token(read_token.clone());
    if let Some(alerting) = &alerting {
        state = state.with_alerting(alerting.clone());
    }
    let http = uptime_ledger::http::serve_maybe_tls(
        http_listener,
        security.tls.as_ref().map(ServerTls::http),
        state,
        limits.clone(),
        when_stopped(),
    );
    let config = RpcConfig {
        limits,
        tls: security.tls.clone(),
        read_token,
        admission: Some(admission),
        alerting,
    };
    let grpc = uptime_ledger::rpc::serve(listener, ledger, projections, config, when_stopped());
    let server = tokio::spawn(async move {
        let (grpc, http) = tokio::join!(grpc, http);
        grpc.unwrap();
        http.unwrap();
    });
    (address, http_address, stop, server)
}

/// An HTTP response as the tests look at it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET address + path` over a real HTTP/1.1 connection.
pub async fn http_get(address: &str, path: &str) -> HttpResponse {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Empty<axum::body::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .get(format!("{address}{path}").parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    HttpResponse {
        status,
        content_type,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// `GET address + path` with reqwest: over HTTPS trusting only `ca_file` when given, and
/// with `authorization: Bearer TOKEN` when given. Also returns the `WWW-Authenticate`
/// header. An error is a failed connection or handshake.
pub async fn http_get_with(
    address: &str,
    path: &str,
    ca_file: Option<&Path>,
    token: Option<&str>,
) -> Result<(HttpResponse, Option<String>), reqwest::Error> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(ca_file) = ca_file {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file).unwrap()).unwrap();
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca);
    }
    let mut request = builder.build().unwrap().get(format!("{address}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let challenge = header("www-authenticate");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await?;
    Ok((
        HttpResponse {
            status,
            content_type,
            headers,
            body,
        },
        challenge,
    ))
}

impl TestLedger {
    /// `GET path` from this ledger's HTTP server.
    pub async fn http_get(&self, path: &str) -> HttpResponse {
        http_get(&self.http_address, path).await
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Metrics {
        metrics_at(&self.http_address).await
    }
}

/// `GET address/metrics` over plain HTTP, parsed.
pub async fn metrics_at(address: &str) -> Metrics {
    let response = http_get(address, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.body);
    Metrics::parse(response.body)
}

/// A `/metrics` scrape parsed as Prometheus text exposition.
pub struct Metrics {
    pub text: String,
    pub scrape: prometheus_parse::Scrape,
}

impl Metrics {
    pub fn parse(text: String) -> Metrics {
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"));
        Metrics { text, scrape }
    }

    /// The counter, gauge or untyped sample `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let sample = self.scrape.samples.iter().find(|s| {
            s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })?;
        match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(*v),
            other => panic!("{name} is {other:?}"),
        }
    }

    /// [`Metrics::get`], which must be there.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{}", self.text))
    }

    /// `uptime_ledger_ingest_refused_calls_total{reason}`.
    pub fn refused_calls(&self, reason: &str) -> f64 {
        self.value(
            "uptime_ledger_ingest_refused_calls_total",
            &[("reason", reason)],
        )
    }
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
