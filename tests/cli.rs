//! The real binary: keys interoperate with openssl, the CLI drives a served ledger,
//! a tampered data directory refuses to start, SIGTERM under load loses nothing, and
//! HTTP is served next to gRPC with JSON logs on request.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{self, Served, BINARY};
use common::{accepted, observation};
use uptime_ledger::crypto;
use uptime_ledger::domain::Status;
use uptime_ledger::pb;

fn serve(data_dir: &Path) -> Served {
    serve_with(data_dir, &[])
}

fn serve_with(data_dir: &Path, extra_args: &[&str]) -> Served {
    process::serve_with(data_dir, "127.0.0.1:0", extra_args)
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(BINARY).args(args).output().unwrap()
}

fn assert_ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn keygen_keys_are_read_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.pem");
    assert_ok(&cli(&["keygen", "--out", path.to_str().unwrap()]));
    let private = Command::new("openssl")
        .args(["pkey", "-noout", "-text", "-in"])
        .arg(&path)
        .output();
    let Ok(private) = private else {
        common::say_skipped("the openssl key interop test", "openssl is not installed");
        return;
    };
    assert!(
        private.status.success(),
        "{}",
        String::from_utf8_lossy(&private.stderr)
    );
    assert!(String::from_utf8_lossy(&private.stdout).contains("ED25519"));
    let public = Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text", "-in"])
        .arg(crypto::public_key_path(&path))
        .output()
        .unwrap();
    assert!(public.status.success());
    // And the other way: a key openssl generated is read by the ledger.
    let openssl_key = dir.path().join("openssl.pem");
    let generated = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&openssl_key)
        .status()
        .unwrap();
    assert!(generated.success());
    crypto::read_signing_key(&openssl_key).unwrap();
    // keygen never overwrites.
    assert!(!cli(&["keygen", "--out", path.to_str().unwrap()])
        .status
        .success());
}

#[test]
fn the_cli_drives_a_ledger_and_a_tampered_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = serve(&data);
    let address = served.address.clone();
    let admin_key = data.join("keys/admin.pem");
    let admin = |extra: &[&str]| {
        let mut args = vec![
            "admin",
            "--ledger",
            &address,
            "--key",
            admin_key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        assert_ok(&cli(&args))
    };
    admin(&[
        "define-service",
        "--service-id",
        "ecitizen.passport",
        "--name",
        "Passport applications",
        "--agency",
        "Immigration",
        "--slo-target",
        "0.995",
        "--quorum",
        "at-least:2",
    ]);
    let probe_key = dir.path().join("probe.pem");
    assert_ok(&cli(&["keygen", "--out", probe_key.to_str().unwrap()]));
    let probe_pub = crypto::public_key_path(&probe_key);
    admin(&[
        "register-probe",
        "--probe-id",
        "nbo-1",
        "--public-key",
        probe_pub.to_str().unwrap(),
        "--location",
        "Nairobi",
    ]);
    let submitted = assert_ok(&cli(&[
        "submit",
        "--ledger",
        &address,
        "--key",
        probe_key.to_str().unwrap(),
        "--probe-id",
        "nbo-1",
        "--service-id",
        "ecitizen.passport",
        "--status",
        "down",
        "--detail",
        "HTTP 503",
        "--seq",
        "1",
    ]));
    assert!(submitted.contains("accepted at index 3"), "{submitted}");
    let rejected = cli(&[
        "submit",
        "--ledger",
        &address,
        "--key",
        probe_key.to_str().unwrap(),
        "--probe-id",
        "nbo-1",
        "--service-id",
        "unknown.service",
        "--status",
        "up",
    ]);
    assert!(!rejected.status.success());
    assert!(String::from_utf8_lossy(&rejected.stderr).contains("REJECT_REASON_UNKNOWN_SERVICE"));

    let entries = assert_ok(&cli(&["log", "--ledger", &address, "entries"]));
    assert!(
        entries.contains("genesis")
            && entries.contains("nbo-1 -> ecitizen.passport seq=1")
            && entries.contains("HTTP 503"),
        "{entries}"
    );
    // Commands read the way `admin` takes them, one line each, the key in hex.
    assert!(
        entries.contains(
            "define-service ecitizen.passport name=\"Passport applications\" agency=\"Immigration\" slo_target=0.995 quorum=at-least:2"
        ),
        "{entries}"
    );
    let probe_key_hex = hex::encode(crypto::read_public_key(&probe_pub).unwrap().as_bytes());
    assert!(
        entries.contains(&format!(
            "register-probe nbo-1 public_key={probe_key_hex} location=\"Nairobi\""
        )),
        "{entries}"
    );
    assert_eq!(entries.lines().count(), 4, "{entries}");
    // A refused command names the gRPC code and the server's reason.
    let refused = cli(&[
        "admin",
        "--ledger",
        &address,
        "--key",
        admin_key.to_str().unwrap(),
        "revoke-probe",
        "--probe-id",
        "nobody",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("NotFound: probe nobody is not registered"),
        "{stderr}"
    );
    let checkpoint = assert_ok(&cli(&["log", "--ledger", &address, "checkpoint"]));
    let verifier_key = checkpoint
        .lines()
        .find_map(|l| l.strip_prefix("verifier key: "))
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(1200));
    let verified = assert_ok(&cli(&[
        "log",
        "--ledger",
        &address,
        "verify",
        "--verifier-key",
        &verifier_key,
    ]));
    assert!(verified.starts_with("OK: 4 entries"), "{verified}");

    let (exit, stderr) = served.terminate();
    assert!(exit.success(), "SIGTERM shuts down cleanly: {stderr}");

    // An insider changes one byte of a stored entry (through sled, so sled's own checksums
    // still pass): the ledger must refuse to start and say why.
    {
        // Entries are stored in chunks under the key prefix `c` (src/log/sled_store.rs).
        let db = sled::open(data.join("log")).unwrap();
        let (key, mut chunk) = db
            .scan_prefix([b'c'])
            .map(Result::unwrap)
            .map(|(key, value)| (key, value.to_vec()))
            .find(|(_, value)| value.windows(3).any(|w| w == b"503"))
            .expect("the entry that holds the detail 503");
        let at = chunk.windows(3).position(|w| w == b"503").unwrap();
        chunk[at] = b'2';
        db.insert(key, chunk).unwrap();
        db.flush().unwrap();
    }
    let refused = Command::new(BINARY)
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("do not match the latest signed checkpoint"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = serve(&data);
    let admin = crypto::read_signing_key(&data.join("keys/admin.pem")).unwrap();
    let channel = uptime_ledger::client::connect(&served.address)
        .await
        .unwrap();
    let mut admin_client = pb::admin_service_client::AdminServiceClient::new(channel.clone());
    let now = uptime_ledger::clock::Clock::now_millis(&uptime_ledger::clock::SystemClock);
    let commands = [uptime_ledger::domain::Command::DefineService(
        uptime_ledger::domain::ServiceSpec {
            service_id: uptime_ledger::domain::ServiceId::parse("svc").unwrap(),
            name: "svc".into(),
            agency: String::new(),
            slo_target: 0.99,
            quorum: uptime_ledger::domain::Quorum::Majority,
            staleness: Duration::from_secs(90),
        },
    )]
    .into_iter()
    .chain(
        (0..4u8).map(|p| uptime_ledger::domain::Command::RegisterProbe {
            probe_id: uptime_ledger::domain::ProbeId::parse(&format!("p{p}")).unwrap(),
            public_key: uptime_ledger::crypto::PublicKey::from(&common::key(p)),
            location: String::new(),
        }),
    );
    for (seq, command) in commands.enumerate() {
        let signed = uptime_ledger::client::sign_command(
            "admin",
            &admin,
            &uptime_ledger::domain::AdminCommand {
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
            .unwrap();
    }

    // Four probes submit batches as fast as they can, recording every accepted ack.
    let acknowledged = Arc::new(Mutex::new(Vec::<(u64, Vec<u8>)>::new()));
    let mut clients = Vec::new();
    for p in 0..4u8 {
        let channel = channel.clone();
        let acknowledged = acknowledged.clone();
        clients.push(tokio::spawn(async move {
            let mut ingest = pb::ingest_service_client::IngestServiceClient::new(channel);
            let key = common::key(p);
            let mut seq = 0;
            loop {
                let batch: Vec<pb::SignedObservation> = (0..50)
                    .map(|_| {
                        seq += 1;
                        observation(&key, &format!("p{p}"), "svc", seq, now, Status::Up)
                    })
                    .collect();
                let Ok(response) = ingest
                    .submit(pb::SubmitRequest {
                        observations: batch.clone(),
                    })
                    .await
                else {
                    return;
                };
                let mut acknowledged = acknowledged.lock().unwrap();
                for (ack, signed) in response.into_inner().acks.iter().zip(batch) {
                    assert!(accepted(ack), "{ack:?}");
                    acknowledged.push((ack.index, signed.body));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (exit, stderr) = tokio::task::spawn_blocking(move || served.terminate())
        .await
        .unwrap();
    assert!(exit.success(), "exit 0 after SIGTERM: {stderr}");
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "the load ran: {} acks",
        acknowledged.len()
    );

    let served = serve(&data);
    let channel = uptime_ledger::client::connect(&served.address)
        .await
        .unwrap();
    let mut log = pb::log_service_client::LogServiceClient::new(channel);
    let mut stream = log
        .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut stored = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        stored.push(message.entry);
    }
    for (index, body) in &acknowledged {
        let entry = stored
            .get(*index as usize)
            .unwrap_or_else(|| panic!("acknowledged entry {index} is missing"));
        match uptime_ledger::entry::decode_entry(entry).unwrap().payload {
            uptime_ledger::entry::Payload::Observation {
                body: stored_body, ..
            } => assert_eq!(&stored_body, body),
            other => panic!("entry {index} is {other:?}"),
        }
    }
    let (exit, _) = served.terminate();
    assert!(exit.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_http_next_to_grpc_and_logs_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(&dir.path().join("data"), &["--log-format", "json"]);
    let http = served.http_address.clone();
    assert!(http.starts_with("http://127.0.0.1:"), "{http}");
    assert_eq!(common::http_get(&http, "/healthz").await.status, 200);
    assert_eq!(common::http_get(&http, "/readyz").await.status, 200);
    let page = common::http_get(&http, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No services are defined yet"));
    let metrics = common::http_get(&http, "/metrics").await;
    assert!(
        metrics.body.contains("uptime_ledger_log_tree_size 1"),
        "{}",
        metrics.body
    );
    let checkpoint = common::http_get(&http, "/api/v1/checkpoint").await.json();
    assert_eq!(checkpoint["tree_size"], 1);

    let (exit, stderr) = tokio::task::spawn_blocking(move || served.terminate())
        .await
        .unwrap();
    assert!(exit.success(), "SIGTERM stops both servers: {stderr}");
    // Every line on stderr is a JSON object — logs, the generated keys' notices and the
    // banner alike — so a log collector never meets a plain line.
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{stderr}"))
        })
        .collect();
    assert!(
        logs.iter().all(|log| log["timestamp"].is_string()
            && log["level"].is_string()
            && log["fields"]["message"].is_string()),
        "{stderr}"
    );
    let banner = logs
        .iter()
        .find(|log| log["fields"]["message"] == process::SERVE_BANNER)
        .unwrap_or_else(|| panic!("no banner: {stderr}"));
    assert_eq!(banner["fields"]["status_page"], format!("{http}/"));
    assert!(banner["fields"]["verifier_key"]
        .as_str()
        .unwrap()
        .starts_with("uptime-ledger.local/log+"));
    assert!(logs.iter().any(|log| log["fields"]["message"]
        == "generated the ledger's checkpoint key: ".to_owned()
            + dir.path().join("data/keys/ledger.pem").to_str().unwrap()));
    assert!(
        logs.iter()
            .any(|log| log["fields"]["message"] == "shut down cleanly"),
        "{stderr}"
    );
    let refused = tokio::net::TcpStream::connect(http.trim_start_matches("http://")).await;
    assert!(refused.is_err(), "the HTTP port is closed after shutdown");
}

#[test]
fn with_json_logs_a_panic_and_the_final_error_are_json_lines_too() {
    let dir = tempfile::tempdir().unwrap();
    // The first projection snapshot is written while starting: a panic there ends `serve`.
    let mut command = process::serve_command_with(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--log-format", "json"],
    );
    command.env("FAILPOINTS", "projector::snapshot=1*panic");
    let mut served = process::Process::spawn(command);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while served.try_wait().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not exit after the panic:\n{}",
            served.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (exit, stderr) = served.wait();
    assert!(!exit.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{stderr}"))
        })
        .collect();
    let panic = lines
        .iter()
        .find(|line| {
            line["level"] == "ERROR"
                && line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("panicked at") && m.contains("projector::snapshot"))
        })
        .unwrap_or_else(|| panic!("no JSON panic report:\n{stderr}"));
    assert_eq!(panic["target"], "uptime_ledger::console");
}

/// `serve --admin-key` with a key of small order (a SubjectPublicKeyInfo PEM that
/// OpenSSL would read) exits before creating a log, saying which key and why; so does
/// `admin register-probe` with such a key file, before sending anything.
#[test]
fn weak_keys_are_refused_at_genesis_and_by_the_admin_cli() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    // The point of order 2, (0, -1), in the SPKI DER of an Ed25519 key.
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    let mut order_two = [0xffu8; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    der.extend_from_slice(&order_two);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let weak = dir.path().join("weak.pub");
    std::fs::write(&weak, pem).unwrap();
    let data = dir.path().join("data");
    let output = Command::new(BINARY)
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--admin-key")
        .arg(format!("ops={}", weak.display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--admin-key ops") && stderr.contains("small order"),
        "{stderr}"
    );
    assert!(!data.join("log").exists(), "no log was created");

    let admin_key = dir.path().join("admin.pem");
    assert_ok(&cli(&["keygen", "--out", admin_key.to_str().unwrap()]));
    let output = cli(&[
        "admin",
        "--ledger",
        "http://127.0.0.1:1",
        "--key",
        admin_key.to_str().unwrap(),
        "register-probe",
        "--probe-id",
        "weak",
        "--public-key",
        weak.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("weak Ed25519 public key"), "{stderr}");
}
