//! The probe agent, end to end: the real binary checks real HTTP and TCP servers started
//! here on 127.0.0.1:0, signs, spools and delivers to a real `serve` (wall clock, real
//! sled), and the tests read what arrived back from the log.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use common::process::{serve_with, Process, Served, BINARY};
use uptime_ledger::client;
use uptime_ledger::crypto;
use uptime_ledger::domain::{
    AdminCommand, Command as AdminAction, Observation, ProbeId, Quorum, ServiceId, ServiceSpec,
    Status,
};
use uptime_ledger::entry::{self, Payload};
use uptime_ledger::pb;
use uptime_ledger::probe::spool::{Spool, SpoolConfig, DEFAULT_SEGMENT_BYTES};
use uptime_ledger::tls::ClientTls;

const PROBE_ID: &str = "nbo-1";
/// Enough for the debug-build binary to start and do a few things on a loaded 2-core box.
const PATIENCE: Duration = Duration::from_secs(30);

/// A ledger run by the real binary, restartable on the same port (the probe's config
/// names it).
struct Ledger {
    served: Option<Served>,
    data_dir: PathBuf,
    port: u16,
    extra: Vec<String>,
    admin: SigningKey,
    /// How the tests connect: the test CA for a ledger serving TLS.
    tls: ClientTls,
}

impl Ledger {
    fn start(data_dir: &Path, extra: &[&str]) -> Ledger {
        Ledger::start_tls(data_dir, extra, ClientTls::default())
    }

    /// A ledger started with TLS flags in `extra`, reached with `tls`.
    fn start_tls(data_dir: &Path, extra: &[&str], tls: ClientTls) -> Ledger {
        let served = serve_with(data_dir, "127.0.0.1:0", extra);
        let admin = crypto::read_signing_key(&data_dir.join("keys/admin.pem")).unwrap();
        Ledger {
            port: served.port(),
            served: Some(served),
            data_dir: data_dir.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            admin,
            tls,
        }
    }

    fn address(&self) -> String {
        let scheme = if self.tls.is_custom() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let (exit, stderr) = self.served.take().expect("running").terminate();
        assert!(exit.success(), "the ledger stops cleanly: {stderr}");
    }

    fn restart(&mut self) {
        assert!(self.served.is_none(), "stop it first");
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let served = serve_with(&self.data_dir, &format!("127.0.0.1:{}", self.port), &extra);
        assert_eq!(served.port(), self.port);
        self.served = Some(served);
    }

    /// Defines each service and registers the probe's key, as an operator would.
    async fn set_up(&self, services: &[&str], probe_key: &SigningKey) {
        let mut commands: Vec<AdminAction> = services
            .iter()
            .map(|service_id| {
                AdminAction::DefineService(ServiceSpec {
                    service_id: ServiceId::parse(service_id).unwrap(),
                    name: format!("Service {service_id}"),
                    agency: "Ministry of Tests".into(),
                    slo_target: 0.99,
                    quorum: Quorum::Majority,
                    staleness: Duration::from_secs(90),
                })
            })
            .collect();
        commands.push(AdminAction::RegisterProbe {
            probe_id: ProbeId::parse(PROBE_ID).unwrap(),
            public_key: uptime_ledger::crypto::PublicKey::from(probe_key),
            location: "test".into(),
        });
        let mut admin = pb::admin_service_client::AdminServiceClient::new(
            client::connect_tls(&self.address(), &self.tls)
                .await
                .unwrap(),
        );
        for (n, command) in commands.into_iter().enumerate() {
            let signed = client::sign_command(
                "admin",
                &self.admin,
                &AdminCommand {
                    seq: n as u64 + 1,
                    issued_at: now_millis(),
                    command,
                },
            );
            admin
                .apply(pb::ApplyRequest {
                    command: Some(signed),
                })
                .await
                .unwrap();
        }
    }

    /// Every observation of the probe in the log, in log order.
    async fn observations(&self) -> Vec<Observation> {
        let mut log = pb::log_service_client::LogServiceClient::new(
            client::connect_tls(&self.address(), &self.tls)
                .await
                .unwrap(),
        );
        let mut stream = log
            .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
            .await
            .unwrap()
            .into_inner();
        let mut observations = Vec::new();
        while let Some(message) = stream.message().await.unwrap() {
            if let Payload::Observation { observation, .. } =
                entry::decode_entry(&message.entry).unwrap().payload
            {
                if observation.probe_id.as_str() == PROBE_ID {
                    observations.push(observation);
                }
            }
        }
        observations
    }

    /// Polls the log until `done` holds for the probe's observations.
    fn wait_for_log(
        &self,
        runtime: &Runtime,
        what: &str,
        mut done: impl FnMut(&[Observation]) -> bool,
    ) -> Vec<Observation> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let observations = runtime.block_on(self.observations());
            if done(&observations) {
                return observations;
            }
            assert!(
                Instant::now() < deadline,
                "the log never showed {what}: {observations:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A probe key in `dir` and a config file naming `ledger`, its spool and `checks` (TOML).
fn write_probe_config(dir: &Path, ledger: &str, checks: &str) -> (PathBuf, SigningKey) {
    let key_path = dir.join("probe.pem");
    let key = match crypto::read_signing_key(&key_path) {
        Ok(key) => key,
        Err(_) => crypto::generate_key_files(&key_path).unwrap(),
    };
    let config = dir.join("probe.toml");
    std::fs::write(
        &config,
        format!(
            "probe_id = \"{PROBE_ID}\"\nkey_file = \"probe.pem\"\nledger = \"{ledger}\"\nspool_dir = \"spool\"\n\n{checks}"
        ),
    )
    .unwrap();
    (config, key)
}

fn probe_command(config: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(["probe", "--config"])
        .arg(config)
        .args(extra)
        .env("RUST_LOG", "info,uptime_ledger::probe=debug")
        .env("NO_COLOR", "1");
    command
}

/// The seqs the probe logged as spooled, in the order it logged them.
fn spooled_seqs(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|line| line.split(" spooled seq=").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// Asserts the log holds each seq once and the seqs are contiguous; returns them sorted.
fn assert_contiguous_and_unique(observations: &[Observation]) -> Vec<u64> {
    let seqs: Vec<u64> = observations.iter().map(|o| o.seq).collect();
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(
        unique.len(),
        seqs.len(),
        "a seq is in the log twice: {seqs:?}"
    );
    let sorted: Vec<u64> = unique.into_iter().collect();
    assert_eq!(sorted, seqs, "the log holds the probe's seqs in order");
    for pair in sorted.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "a gap in the seqs: {sorted:?}");
    }
    sorted
}

/// After the probe has exited: its spool is empty, the log ends at the spool's last seq,
/// and nothing was dead-lettered.
fn assert_spool_fully_delivered(dir: &Path, last_logged_seq: u64) {
    let spool = Spool::open(
        SpoolConfig {
            dir: dir.join("spool"),
            max_pending: 1,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        },
        1,
    )
    .unwrap();
    assert_eq!(spool.pending_count(), 0, "everything spooled was delivered");
    assert_eq!(
        spool.next_seq(),
        last_logged_seq + 1,
        "the log ends at the spool's last seq"
    );
    let dead_letters = std::fs::read_to_string(dir.join("spool/dead-letter.jsonl")).unwrap();
    assert_eq!(dead_letters, "", "nothing was rejected");
}

/// A tiny HTTP/1.1 server: each path is one behaviour a watched service can have.
async fn start_http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (connection, _) = listener.accept().await.unwrap();
            tokio::spawn(answer(connection));
        }
    });
    address
}

async fn answer(mut connection: TcpStream) {
    let mut request = Vec::new();
    let mut buffer = [0; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match connection.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (status, headers, body) = match path.as_str() {
        "/ok" => ("200 OK", "", "status: ok"),
        "/unavailable" => ("503 Service Unavailable", "", "down for maintenance"),
        "/wrong-body" => ("200 OK", "", "<html>we are upgrading our systems</html>"),
        "/moved" => ("301 Moved Permanently", "Location: /ok\r\n", ""),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ("200 OK", "", "status: ok")
        }
        "/hang" => {
            // Accepts the request and never answers.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        _ => ("404 Not Found", "", "no such page"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    let _ = connection.write_all(response.as_bytes()).await;
    let _ = connection.shutdown().await;
}

/// A port on 127.0.0.1 that nothing listens on.
async fn refused_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn each_check_reports_up_or_down_with_the_reason() {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let web = runtime.block_on(start_http_server());
    let refused = runtime.block_on(refused_address());
    let (open_tcp, open_port) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        (listener, address)
    });
    let ledger = Ledger::start(&dir.path().join("ledger"), &[]);

    let http = |service: &str, url: String, extra: &str| {
        format!(
            "[[check]]\nservice_id = \"{service}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"30s\"\ntimeout = \"500ms\"\n{extra}\n"
        )
    };
    let tcp = |service: &str, address: SocketAddr| {
        format!(
            "[[check]]\nservice_id = \"{service}\"\nkind = \"tcp\"\naddress = \"{address}\"\ninterval = \"30s\"\ntimeout = \"500ms\"\n\n"
        )
    };
    let checks = [
        http(
            "web.ok",
            format!("http://{web}/ok"),
            "body_contains = \"ok\"",
        ),
        http("web.unavailable", format!("http://{web}/unavailable"), ""),
        http("web.hang", format!("http://{web}/hang"), ""),
        http("web.refused", format!("http://{refused}/ok"), ""),
        http(
            "web.wrong-body",
            format!("http://{web}/wrong-body"),
            "body_contains = \"status: ok\"",
        ),
        http(
            "web.moved",
            format!("http://{web}/moved"),
            "expect_status = [200]",
        ),
        http(
            "web.slow",
            format!("http://{web}/slow"),
            "max_latency = \"100ms\"",
        ),
        tcp("tcp.open", open_port),
        tcp("tcp.closed", refused),
    ]
    .concat();
    let services = [
        "web.ok",
        "web.unavailable",
        "web.hang",
        "web.refused",
        "web.wrong-body",
        "web.moved",
        "web.slow",
        "tcp.open",
        "tcp.closed",
    ];
    let (config, key) = write_probe_config(dir.path(), &ledger.address(), &checks);
    runtime.block_on(ledger.set_up(&services, &key));

    let output = probe_command(&config, &["--once"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("delivered 9, rejected 0 (too_late 0), dropped 0, still spooled 0"),
        "{stdout}"
    );

    let observations = runtime.block_on(ledger.observations());
    assert_contiguous_and_unique(&observations);
    let seen: BTreeMap<&str, (Status, &str)> = observations
        .iter()
        .map(|o| (o.service_id.as_str(), (o.status, o.detail.as_str())))
        .collect();
    let expected: BTreeMap<&str, (Status, &str)> = [
        ("web.ok", (Status::Up, "HTTP 200")),
        ("web.unavailable", (Status::Down, "HTTP 503")),
        ("web.hang", (Status::Down, "timeout after 500ms")),
        ("web.refused", (Status::Down, "connection refused")),
        ("web.wrong-body", (Status::Down, "body mismatch")),
        ("web.moved", (Status::Down, "HTTP 301")),
        ("tcp.open", (Status::Up, "connected")),
        ("tcp.closed", (Status::Down, "connection refused")),
    ]
    .into_iter()
    .collect();
    for (service, want) in &expected {
        assert_eq!(seen.get(service), Some(want), "{service}: {observations:?}");
    }
    let (status, detail) = seen["web.slow"];
    assert_eq!(status, Status::Down);
    assert!(
        detail.starts_with("slow: ") && detail.contains("over max_latency 100ms"),
        "{detail}"
    );
    let hang = observations
        .iter()
        .find(|o| o.service_id.as_str() == "web.hang")
        .unwrap();
    assert!((500..2000).contains(&hang.latency_ms), "{hang:?}");
    drop(open_tcp);
}

#[test]
fn observations_made_while_the_ledger_is_down_arrive_once_in_order() {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let web = runtime.block_on(start_http_server());
    let mut ledger = Ledger::start(&dir.path().join("ledger"), &[]);
    let checks = format!(
        "[[check]]\nservice_id = \"web.ok\"\nkind = \"http\"\nurl = \"http://{web}/ok\"\ninterval = \"50ms\"\ntimeout = \"50ms\"\n"
    );
    let (config, key) = write_probe_config(dir.path(), &ledger.address(), &checks);
    runtime.block_on(ledger.set_up(&["web.ok"], &key));
    let mut probe = Process::spawn(probe_command(&config, &[]));
    ledger.wait_for_log(&runtime, "the probe's first observations", |o| o.len() >= 3);

    ledger.stop();
    let spooled_before_outage = spooled_seqs(&probe.stderr()).len();
    let during_outage: Vec<u64> =
        probe.wait_for_stderr("observations during the outage", PATIENCE, |stderr| {
            let seqs = spooled_seqs(stderr);
            (seqs.len() >= spooled_before_outage + 5
                && stderr.contains("cannot deliver to the ledger"))
            .then(|| seqs[spooled_before_outage..].to_vec())
        });
    ledger.restart();
    ledger.wait_for_log(
        &runtime,
        "the observations made during the outage",
        |logged| {
            let logged: BTreeSet<u64> = logged.iter().map(|o| o.seq).collect();
            during_outage.iter().all(|seq| logged.contains(seq))
        },
    );

    let (exit, stderr) = probe.terminate();
    assert!(exit.success(), "SIGTERM ends the probe with 0: {stderr}");
    assert!(stderr.contains("the ledger is reachable again"), "{stderr}");
    assert!(
        stderr.contains("probe agent stopped; since start: checks run"),
        "{stderr}"
    );
    let observations = runtime.block_on(ledger.observations());
    let logged = assert_contiguous_and_unique(&observations);
    let spooled = spooled_seqs(&stderr);
    assert_eq!(
        logged, spooled,
        "every spooled observation is in the log, once"
    );
    assert_spool_fully_delivered(dir.path(), *logged.last().unwrap());
}

#[test]
fn a_probe_killed_while_spooling_loses_and_repeats_nothing() {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let web = runtime.block_on(start_http_server());
    let ledger = Ledger::start(&dir.path().join("ledger"), &[]);
    let services = ["web.a", "web.b", "web.c"];
    let checks: String = services
        .iter()
        .map(|service| {
            format!(
                "[[check]]\nservice_id = \"{service}\"\nkind = \"http\"\nurl = \"http://{web}/ok\"\ninterval = \"20ms\"\ntimeout = \"20ms\"\n\n"
            )
        })
        .collect();
    let (config, key) = write_probe_config(dir.path(), &ledger.address(), &checks);
    runtime.block_on(ledger.set_up(&services, &key));

    let mut spooled = Vec::new();
    for round in 0..4 {
        let mut probe = Process::spawn(probe_command(&config, &[]));
        probe.wait_for_stderr("a stream of spooled observations", PATIENCE, |stderr| {
            (spooled_seqs(stderr).len() >= 15).then_some(())
        });
        let (exit, stderr) = if round < 3 {
            probe.kill()
        } else {
            let (exit, stderr) = probe.terminate();
            assert!(exit.success(), "{stderr}");
            (exit, stderr)
        };
        assert!(round == 3 || !exit.success());
        spooled.extend(spooled_seqs(&stderr));
    }

    let observations = runtime.block_on(ledger.observations());
    let logged = assert_contiguous_and_unique(&observations);
    let logged_set: BTreeSet<u64> = logged.iter().copied().collect();
    for seq in &spooled {
        assert!(
            logged_set.contains(seq),
            "spooled seq {seq} never reached the log"
        );
    }
    // A record can be durable without its log line (killed in between, at most one per
    // check and kill), never the reverse; the last run ends gracefully, so its last seq is
    // the log's.
    let unreported = logged.iter().filter(|seq| !spooled.contains(seq)).count();
    assert!(
        unreported <= 3 * services.len(),
        "{unreported} logged seqs were never reported spooled: {logged:?} vs {spooled:?}"
    );
    assert!(logged.first() <= spooled.iter().min());
    assert_eq!(logged.last(), spooled.iter().max());
    assert_spool_fully_delivered(dir.path(), *logged.last().unwrap());
}

#[test]
fn observations_too_old_for_the_ledger_are_dead_lettered_and_reported() {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let web = runtime.block_on(start_http_server());
    let mut ledger = Ledger::start(&dir.path().join("ledger"), &["--max-lateness", "1s"]);
    let checks = format!(
        "[[check]]\nservice_id = \"web.ok\"\nkind = \"http\"\nurl = \"http://{web}/ok\"\ninterval = \"30s\"\ntimeout = \"1s\"\n"
    );
    let (config, key) = write_probe_config(dir.path(), &ledger.address(), &checks);
    runtime.block_on(ledger.set_up(&["web.ok"], &key));
    ledger.stop();

    // The ledger is down: the observation stays spooled and --once says so.
    let offline = probe_command(&config, &["--once", "--drain-timeout", "300ms"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&offline.stdout);
    assert!(!offline.status.success());
    assert!(stdout.contains("still spooled 1"), "{stdout}");
    let old_seq: u64 = stdout
        .split("(seq ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .parse()
        .unwrap();

    // Let the spooled observation become older than the ledger's max_lateness.
    std::thread::sleep(Duration::from_millis(1100));
    ledger.restart();
    let online = probe_command(&config, &["--once"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&online.stdout);
    let stderr = String::from_utf8_lossy(&online.stderr);
    assert!(!online.status.success(), "a rejection makes --once fail");
    assert!(
        stdout.contains("delivered 1, rejected 1 (too_late 1)"),
        "{stdout}"
    );
    assert!(stderr.contains("reason=\"too_late\""), "{stderr}");

    let letters = std::fs::read_to_string(dir.path().join("spool/dead-letter.jsonl")).unwrap();
    let letters: Vec<serde_json::Value> = letters
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["seq"], old_seq);
    assert_eq!(letters[0]["reason"], "too_late");
    let observations = runtime.block_on(ledger.observations());
    assert_eq!(observations.len(), 1);
    assert_eq!(
        observations[0].seq,
        old_seq + 1,
        "the fresh observation was accepted"
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("probe.toml");
    std::fs::write(
        &config,
        "probe_id = \"nbo-1\"\nkey_file = \"probe.pem\"\nledger = \"http://127.0.0.1:1\"\nspool_dir = \"spool\"\n\n[[check]]\nservice_id = \"web.ok\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nintervall = \"30s\"\ntimeout = \"5s\"\n",
    )
    .unwrap();
    let output = probe_command(&config, &["--once"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("probe.toml line 10: unknown field `intervall`"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("spool").exists(),
        "nothing starts on a bad config"
    );
}

/// A ledger run by the binary with `--tls-cert/--tls-key/--client-ca` from `pki`, and the
/// probe's `[[check]]` of a TCP port that is open.
fn start_mtls_ledger(dir: &Path, pki: &common::tls::TestPki) -> Ledger {
    let (cert, key, ca) = (
        pki.server_cert.display().to_string(),
        pki.server_key.display().to_string(),
        pki.ca_file.display().to_string(),
    );
    Ledger::start_tls(
        &dir.join("ledger"),
        &["--tls-cert", &cert, "--tls-key", &key, "--client-ca", &ca],
        pki.client_tls(),
    )
}

/// The `[tls]` table of a probe config (absolute paths).
fn tls_table(ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        ca.display(),
        cert.display(),
        key.display()
    )
}

#[test]
fn a_probe_delivers_over_mutual_tls_with_its_own_certificate() {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = common::tls::TestPki::new("probe test CA");
    let ledger = start_mtls_ledger(dir.path(), &pki);
    assert!(ledger.address().starts_with("https://"));
    let (open_tcp, open_port) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        (listener, address)
    });
    let (cert, key) = pki.client_cert("probe-nbo-1", &[PROBE_ID]);
    let checks = format!(
        "[[check]]\nservice_id = \"tcp.open\"\nkind = \"tcp\"\naddress = \"{open_port}\"\ninterval = \"30s\"\ntimeout = \"500ms\"\n\n{}",
        tls_table(&pki.ca_file, &cert, &key)
    );
    let (config, probe_key) = write_probe_config(dir.path(), &ledger.address(), &checks);
    runtime.block_on(ledger.set_up(&["tcp.open"], &probe_key));

    let output = probe_command(&config, &["--once"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("delivered 1, rejected 0 (too_late 0), dropped 0, still spooled 0"),
        "{stdout}"
    );
    let observations = runtime.block_on(ledger.observations());
    assert_eq!(observations.len(), 1, "{observations:?}");
    assert_eq!(observations[0].status, Status::Up);
    assert_spool_fully_delivered(dir.path(), observations[0].seq);
    drop(open_tcp);
}

#[test]
fn a_probe_whose_certificate_names_another_probe_keeps_its_observations_spooled() {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = common::tls::TestPki::new("probe test CA");
    let ledger = start_mtls_ledger(dir.path(), &pki);
    let (open_tcp, open_port) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        (listener, address)
    });
    // Issued for another probe; its common name is this probe's id, which must not count.
    let (cert, key) = pki.client_cert(PROBE_ID, &["msa-1"]);
    let checks = format!(
        "[[check]]\nservice_id = \"tcp.open\"\nkind = \"tcp\"\naddress = \"{open_port}\"\ninterval = \"30s\"\ntimeout = \"500ms\"\n\n{}",
        tls_table(&pki.ca_file, &cert, &key)
    );
    let (config, probe_key) = write_probe_config(dir.path(), &ledger.address(), &checks);
    runtime.block_on(ledger.set_up(&["tcp.open"], &probe_key));

    let output = probe_command(&config, &["--once", "--drain-timeout", "1s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("delivered 0, rejected 0 (too_late 0), dropped 0, still spooled 1"),
        "{stdout}"
    );
    assert!(
        stderr.contains("PermissionDenied") && stderr.contains("client certificate is for msa-1"),
        "{stderr}"
    );
    assert!(runtime.block_on(ledger.observations()).is_empty());
    let dead_letters = std::fs::read_to_string(dir.path().join("spool/dead-letter.jsonl")).unwrap();
    assert_eq!(
        dead_letters, "",
        "a credentials problem is not the observation's fault"
    );
    drop(open_tcp);
}

#[test]
fn a_probe_tls_file_that_cannot_be_read_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let checks = format!(
        "[[check]]\nservice_id = \"tcp.open\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"30s\"\ntimeout = \"500ms\"\n\n[tls]\nca_file = \"{}\"\n",
        missing.display()
    );
    let (config, _) = write_probe_config(dir.path(), "https://127.0.0.1:1", &checks);
    let output = probe_command(&config, &["--once"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("cannot read the CA file {}", missing.display())),
        "{stderr}"
    );
}
