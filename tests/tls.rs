//! Transport security against a real ledger on 127.0.0.1:0 over real gRPC and HTTP(S),
//! with certificates made here (rcgen): TLS for both servers, mutual TLS for ingest
//! (the client certificate's DNS name must be the observation's probe id), and the read
//! token on the read APIs.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::Code;

use common::tls::TestPki;
use common::{accepted, http_get_with, key, observation, Metrics, TestLedger, TestSecurity, T0};
use uptime_ledger::client::{self, ConnectOptions, LedgerChannel};
use uptime_ledger::domain::Status;
use uptime_ledger::limits::Limits;
use uptime_ledger::pb;
use uptime_ledger::pb::ingest_service_client::IngestServiceClient;
use uptime_ledger::pb::log_service_client::LogServiceClient;
use uptime_ledger::pb::query_service_client::QueryServiceClient;
use uptime_ledger::tls::ClientTls;

const SERVICE: &str = "ecitizen.passport";
const TOKEN: &str = "read-token-0123456789abcdef";

/// A ledger with TLS from `pki` (and mutual TLS for ingest with `mtls`), a service and the
/// probes `nbo-1` (key 1) and `msa-1` (key 2).
async fn tls_ledger(pki: &TestPki, mtls: bool) -> TestLedger {
    let mut ledger = TestLedger::start_secured(TestSecurity {
        tls: Some(pki.server_tls(mtls)),
        client_tls: pki.client_tls(),
        read_token: None,
    })
    .await;
    set_up(&mut ledger).await;
    ledger
}

async fn set_up(ledger: &mut TestLedger) {
    ledger.define_service(SERVICE).await;
    ledger.register_probe("nbo-1", &key(1)).await;
    ledger.register_probe("msa-1", &key(2)).await;
}

fn by_nbo(seq: u64) -> pb::SignedObservation {
    observation(&key(1), "nbo-1", SERVICE, seq, T0, Status::Up)
}

fn by_msa(seq: u64) -> pb::SignedObservation {
    observation(&key(2), "msa-1", SERVICE, seq, T0, Status::Down)
}

async fn connect(ledger: &TestLedger, tls: ClientTls, token: Option<&str>) -> LedgerChannel {
    let options = ConnectOptions {
        tls,
        read_token: token.map(str::to_owned),
    };
    client::connect_with(&ledger.address, &options)
        .await
        .unwrap()
}

async fn submit(
    channel: LedgerChannel,
    observations: Vec<pb::SignedObservation>,
) -> Result<Vec<pb::Ack>, tonic::Status> {
    IngestServiceClient::new(channel)
        .submit(pb::SubmitRequest { observations })
        .await
        .map(|response| response.into_inner().acks)
}

/// The first answer of a `SubmitStream` carrying `observations`: its ack, or the status
/// that ended the stream.
async fn submit_stream(
    channel: LedgerChannel,
    observations: Vec<pb::SignedObservation>,
) -> Result<pb::Ack, tonic::Status> {
    let requests =
        tokio_stream::iter(
            observations
                .into_iter()
                .map(|observation| pb::SubmitStreamRequest {
                    observation: Some(observation),
                }),
        );
    let mut acks = IngestServiceClient::new(channel)
        .submit_stream(requests)
        .await?
        .into_inner();
    match acks.next().await {
        Some(Ok(response)) => Ok(response.ack.unwrap()),
        Some(Err(status)) => Err(status),
        None => panic!("the stream ended without an answer"),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

#[tokio::test]
async fn grpc_and_https_work_with_the_test_ca_and_not_without_it() {
    let pki = TestPki::new("test CA");
    let ledger = tls_ledger(&pki, false).await;
    assert!(ledger.address.starts_with("https://localhost:"));
    assert!(ledger.http_address.starts_with("https://localhost:"));

    // gRPC over TLS: ingest, the log, queries.
    let acks = ledger.submit(vec![by_nbo(1)]).await;
    assert!(accepted(&acks[0]), "{acks:?}");
    let checkpoint = ledger.wait_for_checkpoint().await;
    assert_eq!(checkpoint.tree_size, ledger.tree_size());
    let services = QueryServiceClient::new(ledger.channel().await)
        .list_services(pb::ListServicesRequest {})
        .await
        .unwrap()
        .into_inner()
        .services;
    assert_eq!(services.len(), 1);

    // HTTPS: the same CA.
    let (health, _) = http_get_with(&ledger.http_address, "/healthz", Some(&pki.ca_file), None)
        .await
        .unwrap();
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let (api, _) = http_get_with(
        &ledger.http_address,
        "/api/v1/services",
        Some(&pki.ca_file),
        None,
    )
    .await
    .unwrap();
    assert_eq!(api.status, 200, "{}", api.body);
    assert!(api.body.contains(SERVICE), "{}", api.body);
    // Over HTTPS every answer tells browsers to keep to HTTPS for a year.
    for response in [&health, &api] {
        assert_eq!(
            response.headers["strict-transport-security"],
            "max-age=31536000"
        );
    }

    // A client that trusts only the built-in roots, or another CA, refuses the server.
    let other = TestPki::new("another CA");
    for tls in [ClientTls::default(), other.client_tls()] {
        let error = client::connect_tls(&ledger.address, &tls)
            .await
            .unwrap_err();
        let chain = error_chain(&error);
        assert!(chain.contains("UnknownIssuer"), "{chain}");
    }
    let error = http_get_with(&ledger.http_address, "/healthz", Some(&other.ca_file), None)
        .await
        .unwrap_err();
    assert!(
        error_chain(&error).contains("UnknownIssuer"),
        "{}",
        error_chain(&error)
    );
}

#[tokio::test]
async fn a_plaintext_client_against_a_tls_server_fails_clearly() {
    let pki = TestPki::new("test CA");
    let ledger = tls_ledger(&pki, false).await;
    // gRPC: every call answers UNAVAILABLE saying to use TLS.
    let plain_grpc = ledger.address.replace("https://", "http://");
    let channel = client::connect(&plain_grpc).await.unwrap();
    let refused = LogServiceClient::new(channel.clone())
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("serves gRPC over TLS only: use an https:// address"),
        "{refused:?}"
    );
    let size = ledger.tree_size();
    let refused = IngestServiceClient::new(channel)
        .submit(pb::SubmitRequest {
            observations: vec![by_nbo(1)],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(ledger.tree_size(), size, "nothing was stored");
    // HTTP: 400 saying to use HTTPS.
    let plain_http = ledger.http_address.replace("https://", "http://");
    let (refused, _) = http_get_with(&plain_http, "/healthz", None, None)
        .await
        .unwrap();
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("HTTPS only"), "{}", refused.body);
    // The servers keep serving TLS clients.
    let (health, _) = http_get_with(&ledger.http_address, "/healthz", Some(&pki.ca_file), None)
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    let acks = ledger.submit(vec![by_nbo(1)]).await;
    assert!(accepted(&acks[0]));
}

#[tokio::test]
async fn a_stalled_tls_handshake_does_not_hold_up_other_clients() {
    let pki = TestPki::new("test CA");
    let ledger = tls_ledger(&pki, false).await;
    // Connected to both servers, never saying a word.
    let mut stalled = Vec::new();
    for address in [&ledger.http_address, &ledger.address] {
        let port = address.rsplit(':').next().unwrap();
        let stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        stalled.push(stream);
    }
    let started = std::time::Instant::now();
    let acks = ledger.submit(vec![by_nbo(1)]).await;
    assert!(accepted(&acks[0]));
    let (health, _) = http_get_with(&ledger.http_address, "/healthz", Some(&pki.ca_file), None)
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A TLS session to `address` (host:port of a test server) trusting only the test CA.
async fn tls_connect(
    pki: &TestPki,
    address: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone().into()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
}

fn host_port(url: &str) -> String {
    format!("127.0.0.1:{}", url.rsplit(':').next().unwrap())
}

#[tokio::test]
async fn connection_caps_and_the_header_timeout_hold_over_tls() {
    let pki = TestPki::new("test CA");
    // No client has connected yet (a closing connection would hold a slot for a moment).
    let ledger = TestLedger::start_secured_with(
        TestSecurity {
            tls: Some(pki.server_tls(false)),
            client_tls: pki.client_tls(),
            read_token: None,
        },
        Limits {
            grpc_max_connections: 2,
            http_max_connections: 2,
            http_header_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
    )
    .await;
    // One request on a new connection: did the server answer it?
    let answered = |server: &'static str| {
        let (ledger, pki) = (&ledger, &pki);
        async move {
            if server == "gRPC" {
                let Ok(channel) = client::connect_tls(&ledger.address, &pki.client_tls()).await
                else {
                    return false;
                };
                LogServiceClient::new(channel)
                    .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
                    .await
                    .is_ok()
            } else {
                http_get_with(&ledger.http_address, "/healthz", Some(&pki.ca_file), None)
                    .await
                    .is_ok_and(|(response, _)| response.status == 200)
            }
        }
    };

    for server in ["gRPC", "HTTPS"] {
        let url = if server == "gRPC" {
            &ledger.address
        } else {
            &ledger.http_address
        };
        // Two connections that never start their handshake fill the cap.
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(
                tokio::net::TcpStream::connect(host_port(url))
                    .await
                    .unwrap(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A third client is closed at once: it fails fast instead of hanging.
        let started = std::time::Instant::now();
        assert!(
            !answered(server).await,
            "{server}: a connection over the cap must be refused"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{server}: refused at once ({:?})",
            started.elapsed()
        );
        // Freed slots are reused.
        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if answered(server).await {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{server}: a freed slot was never reused"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // HTTPS: a kept-alive client that sends no next request head is closed after the
    // header timeout (1 s), as over plaintext.
    let mut idle = tls_connect(&pki, &host_port(&ledger.http_address))
        .await
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        let mut buffer = [0u8; 1024];
        while let Ok(n) = idle.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    assert!(closed.is_ok(), "the server must close an idle HTTPS client");
    assert!(
        String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&received)
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn mtls_a_probe_certified_for_its_own_id_is_accepted() {
    let pki = TestPki::new("test CA");
    let ledger = tls_ledger(&pki, true).await;
    let acks = submit(
        connect(&ledger, pki.client_tls_as(&["nbo-1"]), None).await,
        vec![by_nbo(1), by_nbo(2)],
    )
    .await
    .unwrap();
    assert!(acks.iter().all(accepted), "{acks:?}");
    let ack = submit_stream(
        connect(&ledger, pki.client_tls_as(&["nbo-1"]), None).await,
        vec![by_nbo(3)],
    )
    .await
    .unwrap();
    assert!(accepted(&ack), "{ack:?}");
    // A certificate may name several probes (one host running both).
    let acks = submit(
        connect(&ledger, pki.client_tls_as(&["nbo-1", "msa-1"]), None).await,
        vec![by_nbo(4), by_msa(1)],
    )
    .await
    .unwrap();
    assert!(acks.iter().all(accepted), "{acks:?}");
}

#[tokio::test]
async fn mtls_a_certificate_for_another_probe_is_refused_and_nothing_is_stored() {
    let pki = TestPki::new("test CA");
    let ledger = tls_ledger(&pki, true).await;
    let size = ledger.tree_size();
    let as_nbo = || async { connect(&ledger, pki.client_tls_as(&["nbo-1"]), None).await };

    // Another probe's observation, validly signed by that probe.
    let refused = submit(as_nbo().await, vec![by_msa(1)]).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("observation 0 of this request is by probe msa-1, but the client certificate is for nbo-1"),
        "{}",
        refused.message()
    );
    // One foreign observation refuses the whole request, its own ones too.
    let refused = submit(as_nbo().await, vec![by_nbo(1), by_msa(1)])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("observation 1"),
        "{}",
        refused.message()
    );
    // Streams too.
    let refused = submit_stream(as_nbo().await, vec![by_msa(1)])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // The common name does not count: this certificate's CN is `nbo-1`, its DNS name `x-1`.
    let (cert, key_file) = pki.client_cert("nbo-1", &["x-1"]);
    let cn_only = ClientTls::load(Some(&pki.ca_file), Some(&cert), Some(&key_file)).unwrap();
    let refused = submit(connect(&ledger, cn_only, None).await, vec![by_nbo(1)])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ledger.tree_size(), size, "nothing was stored");
    assert_eq!(
        scrape(&ledger, &pki)
            .await
            .refused_calls("client_certificate"),
        4.0
    );
    // The same observations, from the right probe, are new to the ledger.
    let acks = submit(as_nbo().await, vec![by_nbo(1)]).await.unwrap();
    assert!(accepted(&acks[0]), "{acks:?}");
    assert_eq!(acks[0].index, size);
}

#[tokio::test]
async fn mtls_ingest_without_a_client_certificate_is_unauthenticated() {
    let pki = TestPki::new("test CA");
    let ledger = tls_ledger(&pki, true).await;
    let size = ledger.tree_size();
    let refused = submit(
        connect(&ledger, pki.client_tls(), None).await,
        vec![by_nbo(1)],
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("requires a client certificate for ingest"),
        "{}",
        refused.message()
    );
    let refused = submit_stream(
        connect(&ledger, pki.client_tls(), None).await,
        vec![by_nbo(1)],
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(ledger.tree_size(), size, "nothing was stored");
    assert_eq!(
        scrape(&ledger, &pki)
            .await
            .refused_calls("client_certificate"),
        2.0
    );
}

/// `/metrics` over HTTPS.
async fn scrape(ledger: &TestLedger, pki: &TestPki) -> Metrics {
    let (response, _) = http_get_with(&ledger.http_address, "/metrics", Some(&pki.ca_file), None)
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    Metrics::parse(response.body)
}

#[tokio::test]
async fn mtls_a_client_certificate_from_another_ca_fails_the_handshake() {
    let pki = TestPki::new("test CA");
    let ledger = tls_ledger(&pki, true).await;
    let size = ledger.tree_size();
    let other = TestPki::new("another CA");
    let (cert, key_file) = other.client_cert("nbo-1", &["nbo-1"]);
    let foreign = ClientTls::load(Some(&pki.ca_file), Some(&cert), Some(&key_file)).unwrap();
    let failed = match client::connect_with(
        &ledger.address,
        &ConnectOptions {
            tls: foreign,
            read_token: None,
        },
    )
    .await
    {
        Err(error) => error_chain(&error),
        Ok(channel) => {
            let status = submit(channel, vec![by_nbo(1)]).await.unwrap_err();
            format!("{status:?}")
        }
    };
    assert!(
        failed.contains("UnknownCA")
            || failed.contains("unknown ca")
            || failed.contains("BadCertificate"),
        "{failed}"
    );
    assert_eq!(ledger.tree_size(), size, "nothing was stored");
}

#[tokio::test]
async fn mtls_reads_and_admin_work_with_or_without_a_client_certificate() {
    let pki = TestPki::new("test CA");
    // The set-up already applied admin commands without a client certificate.
    let mut ledger = tls_ledger(&pki, true).await;
    ledger.register_probe("ksm-1", &key(3)).await;
    for tls in [pki.client_tls(), pki.client_tls_as(&["nbo-1"])] {
        let channel = connect(&ledger, tls, None).await;
        let services = QueryServiceClient::new(channel.clone())
            .list_services(pb::ListServicesRequest {})
            .await
            .unwrap()
            .into_inner()
            .services;
        assert_eq!(services.len(), 1);
        let mut entries = LogServiceClient::new(channel)
            .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
            .await
            .unwrap()
            .into_inner();
        let mut count = 0;
        while entries.message().await.unwrap().is_some() {
            count += 1;
        }
        assert_eq!(count, ledger.tree_size());
    }
}

/// A plaintext ledger that requires the read token.
async fn token_ledger() -> TestLedger {
    let mut ledger = TestLedger::start_secured(TestSecurity {
        read_token: Some(TOKEN.into()),
        ..TestSecurity::default()
    })
    .await;
    set_up(&mut ledger).await;
    ledger
}

#[tokio::test]
async fn read_token_guards_grpc_queries_and_log_reads() {
    let ledger = token_ledger().await;
    // Ingest and admin (the set-up) need no token.
    let acks = ledger.submit(vec![by_nbo(1)]).await;
    assert!(accepted(&acks[0]), "{acks:?}");
    ledger.wait_for_projection().await;

    for (token, code, words) in [
        (None, Code::Unauthenticated, "needs a token"),
        (
            Some("wrong-token-0123456789abcdef"),
            Code::Unauthenticated,
            "not valid",
        ),
        (Some(TOKEN), Code::Ok, ""),
    ] {
        let channel = connect(&ledger, ClientTls::default(), token).await;
        let query = QueryServiceClient::new(channel.clone())
            .list_services(pb::ListServicesRequest {})
            .await;
        let entries = LogServiceClient::new(channel.clone())
            .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
            .await;
        let proof = LogServiceClient::new(channel.clone())
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                index: 0,
                tree_size: 1,
            })
            .await;
        for (what, result) in [
            ("ListServices", query.map(|_| ())),
            ("GetEntries", entries.map(|_| ())),
            ("GetInclusionProof", proof.map(|_| ())),
        ] {
            match (result, code) {
                (Ok(()), Code::Ok) => {}
                (Err(status), code) if status.code() == code => {
                    assert!(status.message().contains(words), "{what}: {status:?}");
                }
                (other, _) => panic!("{what} with {token:?}: {other:?}"),
            }
        }
        // Checkpoints are public, and so are health checks.
        LogServiceClient::new(channel.clone())
            .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
            .await
            .unwrap();
        let health = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, 1, "SERVING");
    }
}

#[tokio::test]
async fn read_token_guards_the_json_api_and_metrics_but_not_the_status_page() {
    let ledger = token_ledger().await;
    ledger.wait_for_projection().await;
    let get = |path: &'static str, token: Option<&'static str>| {
        let address = ledger.http_address.clone();
        async move { http_get_with(&address, path, None, token).await.unwrap() }
    };
    for path in [
        "/api/v1/services",
        "/api/v1/services/ecitizen.passport/availability",
        "/metrics",
    ] {
        let (missing, challenge) = get(path, None).await;
        assert_eq!(missing.status, 401, "{path}: {}", missing.body);
        assert_eq!(
            missing.json()["error"]["code"],
            "unauthorized",
            "{path}: {}",
            missing.body
        );
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer realm="uptime-ledger""#)
        );
        let (wrong, challenge) = get(path, Some("wrong-token-0123456789abcdef")).await;
        assert_eq!(wrong.status, 401, "{path}");
        assert!(challenge.unwrap().contains("invalid_token"));
        let (right, _) = get(path, Some(TOKEN)).await;
        assert_eq!(right.status, 200, "{path}: {}", right.body);
    }
    for path in [
        "/",
        "/services/ecitizen.passport",
        "/healthz",
        "/readyz",
        "/api/v1/checkpoint",
        "/assets/status.css",
    ] {
        let (open, _) = get(path, None).await;
        assert_eq!(open.status, 200, "{path}: {}", open.body);
    }
}

#[tokio::test]
async fn tls_mtls_and_read_token_together() {
    let pki = TestPki::new("test CA");
    let mut ledger = TestLedger::start_secured(TestSecurity {
        tls: Some(pki.server_tls(true)),
        client_tls: pki.client_tls(),
        read_token: Some(TOKEN.into()),
    })
    .await;
    set_up(&mut ledger).await;
    // A probe sends no token; an auditor sends no certificate.
    let acks = submit(
        connect(&ledger, pki.client_tls_as(&["nbo-1"]), None).await,
        vec![by_nbo(1)],
    )
    .await
    .unwrap();
    assert!(accepted(&acks[0]));
    let auditor = connect(&ledger, pki.client_tls(), Some(TOKEN)).await;
    QueryServiceClient::new(auditor)
        .list_services(pb::ListServicesRequest {})
        .await
        .unwrap();
    let (api, _) = http_get_with(
        &ledger.http_address,
        "/api/v1/services",
        Some(&pki.ca_file),
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(api.status, 200);
}

/// `uptime-ledger ARGS…` with the read token variable cleared (unless set in `env`).
fn cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(common::process::BINARY);
    command
        .args(args)
        .env_remove(uptime_ledger::read_token::ENV_VAR)
        .env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn serve_and_the_cli_speak_tls_and_carry_the_read_token() {
    let pki = TestPki::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("read-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    let served = common::process::serve_with(
        &dir.path().join("ledger"),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            &path(&pki.server_cert),
            "--tls-key",
            &path(&pki.server_key),
            "--read-token-file",
            &path(&token_file),
        ],
    );
    let address = served.address.clone();
    assert!(address.starts_with("https://127.0.0.1:"), "{address}");
    let ca = path(&pki.ca_file);

    // Without the token: a clear refusal. With it (file or environment): the answer.
    let refused = cli(&["export", "--ledger", &address, "--ca-file", &ca], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("needs a token"), "{stderr}");
    let exported = cli(
        &["export", "--ledger", &address, "--ca-file", &ca],
        &[(uptime_ledger::read_token::ENV_VAR, TOKEN)],
    );
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert!(String::from_utf8_lossy(&exported.stdout).contains("genesis"));
    let report = cli(
        &[
            "report",
            "--ledger",
            &address,
            "--ca-file",
            &ca,
            "--read-token-file",
            &path(&token_file),
        ],
        &[],
    );
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let wrong = cli(
        &["log", "--ledger", &address, "--ca-file", &ca, "entries"],
        &[(
            uptime_ledger::read_token::ENV_VAR,
            "wrong-token-0123456789abcdef",
        )],
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not valid"));
    // The checkpoint is public.
    let checkpoint = cli(
        &["log", "--ledger", &address, "--ca-file", &ca, "checkpoint"],
        &[],
    );
    assert!(
        checkpoint.status.success(),
        "{}",
        String::from_utf8_lossy(&checkpoint.stderr)
    );

    // Without the CA file the built-in roots do not know the test CA.
    let untrusted = cli(&["log", "--ledger", &address, "checkpoint"], &[]);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success());
    assert!(stderr.contains("cannot reach the ledger at"), "{stderr}");
    // TLS settings with a plaintext address are a mistake, said so.
    let plain = address.replace("https://", "http://");
    let mixed = cli(
        &["log", "--ledger", &plain, "--ca-file", &ca, "checkpoint"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert!(stderr.contains("TLS settings need https://"), "{stderr}");
    // A plaintext client is told to use TLS.
    let plaintext = cli(&["log", "--ledger", &plain, "checkpoint"], &[]);
    let stderr = String::from_utf8_lossy(&plaintext.stderr);
    assert!(!plaintext.status.success());
    assert!(stderr.contains("use an https:// address"), "{stderr}");
    let (exit, _) = served.terminate();
    assert!(exit.success());
}

#[test]
fn serve_refuses_unusable_tls_files_naming_them() {
    let pki = TestPki::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    let missing = dir.path().join("missing.pem");
    let (other_cert, _) = pki.client_cert("other", &["other"]);
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "--tls-cert".into(),
                path(&missing),
                "--tls-key".into(),
                path(&pki.server_key),
            ],
            format!("cannot read the TLS certificate {}", missing.display()),
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&pki.server_key),
                "--tls-key".into(),
                path(&pki.server_key),
            ],
            format!(
                "the TLS certificate {} holds no certificate",
                pki.server_key.display()
            ),
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&pki.server_cert),
                "--tls-key".into(),
                path(&pki.server_cert),
            ],
            format!(
                "the TLS key {} holds no private key",
                pki.server_cert.display()
            ),
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&other_cert),
                "--tls-key".into(),
                path(&pki.server_key),
            ],
            format!(
                "the certificate {} and the key {} cannot be used together",
                other_cert.display(),
                pki.server_key.display()
            ),
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&pki.server_cert),
                "--tls-key".into(),
                path(&pki.server_key),
                "--client-ca".into(),
                path(&missing),
            ],
            format!("cannot read the client CA {}", missing.display()),
        ),
        (
            vec!["--read-token".into(), "short".into()],
            "at least 16".into(),
        ),
    ];
    for (flags, words) in cases {
        let mut args = vec![
            "serve".to_owned(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            path(&dir.path().join("ledger")),
        ];
        args.extend(flags);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = cli(&args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr.contains(&words),
            "{args:?}: expected {words:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
