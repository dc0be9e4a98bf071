//! Alerts end to end, with real components: a real ledger on port 0 (and the real binary
//! for the crash test), a real webhook receiver over HTTP verifying every signature, and a
//! real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on a loopback port.
//!
//! - `ListAlerts` and `/api/v1/alerts` give the same alerts, from the prefix, with figures;
//!   their refusals are typed.
//! - Webhooks: signed (`v1a` checked with the verifier key, `v1` with the specification's
//!   HMAC written out in the test), held in the outbox while the receiver refuses, then
//!   delivered once per `webhook-id`, also across a restart.
//! - A receiver that hangs does not slow ingest (ack latency measured beside).
//! - `serve` SIGKILLed with undelivered notifications delivers them after its restart.
//! - Alertmanager shows the alert with its labels, resolves it after recovery, and keeps a
//!   silenced one suppressed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::durability::{provision, serve_command, Running};
use common::receiver::{verify_signatures, Mode, Receiver};
use common::*;
use uptime_ledger::alert::config::{self, AlertsConfig};
use uptime_ledger::clock::{Clock, SystemClock};
use uptime_ledger::domain::{format_millis, Status};
use uptime_ledger::pb;
use uptime_ledger::pb::query_service_client::QueryServiceClient;

const S: i64 = 1000;
/// The webhook secret of the tests' receivers (`whsec_` + base64 of these 24 bytes).
const SECRET: &[u8; 24] = b"a shared secret, 24 byte";

fn secret_setting() -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SECRET)
    )
}

fn alerts_config(text: &str) -> AlertsConfig {
    config::parse(text, "alerts.toml").unwrap()
}

fn webhook_config(receiver: &Receiver, extra: &str) -> String {
    format!(
        "rules = [\"outage\"]\n{extra}\n[delivery]\nevaluation_interval = \"100ms\"\nmax_backoff = \"300ms\"\ntimeout = \"2s\"\n\n[[receiver]]\nname = \"hooks\"\nwebhook = \"{}\"\nsecret = \"{}\"\n",
        receiver.url,
        secret_setting()
    )
}

/// Waits up to `limit` for `done`, polling every 50 ms.
async fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `svc` with one probe `p1` (key 1), majority, staleness 90 s, SLO 0.99.
async fn one_probe_service(ledger: &mut TestLedger) {
    ledger.define_service("svc").await;
    ledger.register_probe("p1", &key(1)).await;
}

fn range(start: i64, end: i64) -> Option<pb::Window> {
    Some(pb::Window {
        window: Some(pb::window::Window::Range(pb::TimeRange {
            start: Some(uptime_ledger::entry::millis_timestamp(start)),
            end: Some(uptime_ledger::entry::millis_timestamp(end)),
        })),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_alerts_and_the_json_api_give_the_same_alerts_with_their_figures() {
    let mut ledger = TestLedger::start_with_alerts(alerts_config("for = \"30s\"\n")).await;
    one_probe_service(&mut ledger).await;
    // UP every 10 s over [T0, T0 + 10 min), DOWN over [T0 + 2 min, T0 + 5 min).
    ledger.clock.set(T0 + 600 * S);
    let observations = (0..60)
        .map(|step| {
            let at = T0 + step * 10 * S;
            let down = (120 * S..300 * S).contains(&(at - T0));
            let status = if down { Status::Down } else { Status::Up };
            observation(&key(1), "p1", "svc", step as u64 + 1, at, status)
        })
        .collect();
    assert!(ledger.submit(observations).await.iter().all(accepted));
    let tree_size = ledger.wait_for_projection().await;

    let mut query = QueryServiceClient::new(ledger.channel().await);
    let answer = query
        .list_alerts(pb::ListAlertsRequest {
            service_id: "svc".into(),
            at: Some(uptime_ledger::entry::millis_timestamp(T0 + 200 * S)),
            window: range(T0, T0 + 600 * S),
            tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.prefix.as_ref().unwrap().tree_size, tree_size);
    let rules: Vec<i32> = answer.firing.iter().map(|alert| alert.rule).collect();
    // At T0 + 200 s: DOWN for 80 s (outage), and 80 s of 200 s down burns the 1 % budget
    // 40 times over the 1 h window, 16 times over the 5 min one.
    assert_eq!(
        rules,
        vec![
            pb::AlertRule::Outage as i32,
            pb::AlertRule::SloBurn1h as i32,
            pb::AlertRule::SloBurn6h as i32,
            pb::AlertRule::SloBurn3d as i32
        ]
    );
    let outage = &answer.firing[0];
    assert_eq!(outage.since.as_ref().unwrap().seconds * 1000, T0 + 150 * S);
    assert_eq!(outage.severity, pb::AlertSeverity::Page as i32);
    assert!(outage.until.is_none());
    let Some(pb::alert::Figures::Burn(burn)) = &answer.firing[1].figures else {
        panic!("a burn alert carries burn figures");
    };
    let long = burn.long_window.as_ref().unwrap();
    // The grid instant is T0 + 180 s: [T0 - 1 h, T0 + 180 s) holds 120 s up, 60 s down.
    assert_eq!((long.up_ms, long.down_ms), (120_000, 60_000));
    assert_eq!(burn.threshold, 14.4);
    let history: Vec<(i32, i64, Option<i64>)> = answer
        .history
        .iter()
        .map(|alert| {
            (
                alert.rule,
                alert.since.as_ref().unwrap().seconds * 1000,
                alert.until.as_ref().map(|until| until.seconds * 1000),
            )
        })
        .collect();
    assert_eq!(
        history[0],
        (
            pb::AlertRule::Outage as i32,
            T0 + 150 * S,
            Some(T0 + 300 * S)
        )
    );

    // The JSON API answers the same from the same code.
    let json = ledger
        .http_get(&format!(
            "/api/v1/alerts?service_id=svc&at={}&start={}&end={}&tree_size={tree_size}",
            format_millis(T0 + 200 * S),
            format_millis(T0),
            format_millis(T0 + 600 * S)
        ))
        .await;
    assert_eq!(json.status, 200, "{}", json.body);
    let json = json.json();
    assert_eq!(json["tree_size"], tree_size);
    assert_eq!(
        json["firing"].as_array().unwrap().len(),
        answer.firing.len()
    );
    assert_eq!(json["firing"][0]["alert"], "outage");
    assert_eq!(json["firing"][0]["since"], format_millis(T0 + 150 * S));
    assert_eq!(
        json["firing"][0]["figures"]["state_since"],
        format_millis(T0 + 120 * S)
    );
    assert_eq!(json["firing"][1]["figures"]["long"]["down_ms"], 60_000);
    assert_eq!(
        json["history"].as_array().unwrap().len(),
        answer.history.len()
    );
    assert_eq!(json["history"][0]["until"], format_millis(T0 + 300 * S));

    // Refusals, typed.
    let unknown = query
        .list_alerts(pb::ListAlertsRequest {
            service_id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let inverted = query
        .list_alerts(pb::ListAlertsRequest {
            window: range(T0 + S, T0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(inverted.code(), tonic::Code::InvalidArgument);
    let bad_at = query
        .list_alerts(pb::ListAlertsRequest {
            at: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_at.code(), tonic::Code::InvalidArgument);
    let no_such_prefix = query
        .list_alerts(pb::ListAlertsRequest {
            tree_size: tree_size + 1_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        no_such_prefix.code(),
        tonic::Code::NotFound,
        "{no_such_prefix:?}"
    );
    assert_eq!(
        ledger
            .http_get("/api/v1/alerts?service_id=nope")
            .await
            .status,
        404
    );
    assert_eq!(
        ledger.http_get("/api/v1/alerts?at=yesterday").await.status,
        400
    );
    assert_eq!(
        ledger.http_get("/api/v1/alerts?window=1y").await.status,
        400
    );

    // The status page lists what fires now (T0 + 10 min): the 6 h burn rule, whose 30 min
    // window still holds the outage's 3 minutes.
    let page = ledger.http_get("/").await;
    assert!(page.body.contains("Alerts firing"), "{}", page.body);
    assert!(page.body.contains("slo_burn_6h"), "{}", page.body);
    assert!(!page.body.contains("<td>outage</td>"), "{}", page.body);

    // Burn rates are gauges, per service and window.
    let metrics = ledger.metrics().await;
    assert!(
        metrics
            .get(
                "uptime_ledger_service_burn_rate",
                &[("service_id", "svc"), ("window", "1h")]
            )
            .is_some(),
        "{}",
        metrics.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_delivered_once_per_id_after_the_receiver_comes_back() {
    let receiver = Receiver::start(Mode::Refuse).await;
    let mut ledger =
        TestLedger::start_with_alerts(alerts_config(&webhook_config(&receiver, "for = \"10s\"")))
            .await;
    let verifier_key = ledger.ledger().verifier().to_string();
    one_probe_service(&mut ledger).await;
    assert!(ledger
        .submit(vec![observation(&key(1), "p1", "svc", 1, T0, Status::Up)])
        .await
        .iter()
        .all(accepted));
    // DOWN from T0 + 20 s; at T0 + 31 s it has been DOWN for 11 s: the outage fires (since
    // T0 + 30 s). The receiver refuses, so the transition waits in the outbox.
    ledger.clock.set(T0 + 20 * S);
    ledger
        .submit(vec![observation(
            &key(1),
            "p1",
            "svc",
            2,
            T0 + 20 * S,
            Status::Down,
        )])
        .await;
    ledger.clock.set(T0 + 31 * S);
    ledger.wait_for_projection().await;
    wait_until(Duration::from_secs(10), "a refused attempt", || {
        receiver.attempts() >= 2
    })
    .await;
    // UP again at T0 + 60 s: resolved, also held.
    ledger.clock.set(T0 + 60 * S);
    ledger
        .submit(vec![observation(
            &key(1),
            "p1",
            "svc",
            3,
            T0 + 60 * S,
            Status::Up,
        )])
        .await;
    ledger.wait_for_projection().await;
    let metrics = ledger.metrics().await;
    wait_until(Duration::from_secs(10), "retries", || {
        receiver.attempts() >= 4
    })
    .await;
    assert!(receiver.accepted().is_empty());
    assert!(
        metrics
            .get(
                "uptime_ledger_alert_delivery_failures_total",
                &[("receiver", "hooks")]
            )
            .unwrap()
            >= 1.0
    );

    // The receiver comes back: both transitions, in order, each once.
    receiver.set_mode(Mode::Accept);
    wait_until(Duration::from_secs(10), "two deliveries", || {
        receiver.accepted().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let delivered = receiver.accepted();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_ne!(delivered[0].id, delivered[1].id);
    for delivery in &delivered {
        verify_signatures(delivery, &verifier_key, SECRET);
    }
    let (fired, resolved) = (delivered[0].json(), delivered[1].json());
    assert_eq!(fired["type"], "alert.fired");
    assert_eq!(resolved["type"], "alert.resolved");
    assert_eq!(fired["data"]["alert"]["alert"], "outage");
    assert_eq!(fired["data"]["alert"]["service_id"], "svc");
    assert_eq!(fired["data"]["alert"]["since"], format_millis(T0 + 30 * S));
    assert_eq!(
        resolved["data"]["alert"]["until"],
        format_millis(T0 + 60 * S)
    );
    // The body names the prefix; its checkpoint verifies with the same pinned key.
    let verifier: uptime_ledger::checkpoint::NoteVerifier = verifier_key.parse().unwrap();
    let checkpoint = uptime_ledger::checkpoint::open_checkpoint(
        fired["data"]["checkpoint"].as_str().unwrap(),
        &verifier,
    )
    .unwrap();
    assert_eq!(
        checkpoint.tree_size,
        fired["data"]["tree_size"].as_u64().unwrap()
    );

    let metrics = ledger.metrics().await;
    assert_eq!(
        metrics.get(
            "uptime_ledger_alert_deliveries_total",
            &[("receiver", "hooks")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metrics.get("uptime_ledger_alert_outbox_depth", &[]),
        Some(0.0)
    );

    // A restart evaluates the same prefix again: nothing is sent twice.
    ledger.restart().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.accepted().len(), 2);

    // DOWN again from T0 + 100 s (firing from T0 + 110 s); then one prefix holds UP at
    // T0 + 120 s and DOWN at T0 + 121 s, seen 14 s later: that episode resolved and
    // another fired (since T0 + 131 s) between two evaluations, and both are sent.
    ledger.clock.set(T0 + 111 * S);
    ledger
        .submit(vec![observation(
            &key(1),
            "p1",
            "svc",
            4,
            T0 + 100 * S,
            Status::Down,
        )])
        .await;
    wait_until(Duration::from_secs(10), "the second outage", || {
        receiver.accepted().len() >= 3
    })
    .await;
    ledger.clock.set(T0 + 135 * S);
    ledger
        .submit(vec![
            observation(&key(1), "p1", "svc", 5, T0 + 120 * S, Status::Up),
            observation(&key(1), "p1", "svc", 6, T0 + 121 * S, Status::Down),
        ])
        .await;
    wait_until(Duration::from_secs(10), "five deliveries", || {
        receiver.accepted().len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = receiver.accepted();
    let seen: Vec<(String, String)> = delivered
        .iter()
        .map(|delivery| {
            let body = delivery.json();
            let alert = &body["data"]["alert"];
            (
                body["type"].as_str().unwrap().to_owned(),
                alert["since"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let event = |kind: &str, since: i64| (kind.to_owned(), format_millis(since));
    assert_eq!(
        seen,
        vec![
            event("alert.fired", T0 + 30 * S),
            event("alert.resolved", T0 + 30 * S),
            event("alert.fired", T0 + 110 * S),
            event("alert.resolved", T0 + 110 * S),
            event("alert.fired", T0 + 131 * S),
        ]
    );
    let ids: std::collections::BTreeSet<&str> = delivered
        .iter()
        .map(|delivery| delivery.id.as_str())
        .collect();
    assert_eq!(ids.len(), 5, "one webhook-id per transition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_its_receiver_refuses_past_the_expiry_is_dropped_and_counted() {
    let receiver = Receiver::start(Mode::Refuse).await;
    let text = webhook_config(&receiver, "for = \"0s\"")
        .replace("[delivery]\n", "[delivery]\nexpiry = \"1s\"\n");
    let mut ledger = TestLedger::start_with_alerts(alerts_config(&text)).await;
    one_probe_service(&mut ledger).await;
    ledger
        .submit(vec![observation(&key(1), "p1", "svc", 1, T0, Status::Down)])
        .await;
    wait_until(Duration::from_secs(10), "a refused attempt", || {
        receiver.attempts() >= 1
    })
    .await;
    let started = Instant::now();
    loop {
        let metrics = ledger.metrics().await;
        let expired = metrics.get(
            "uptime_ledger_alert_expired_total",
            &[("receiver", "hooks")],
        );
        if expired == Some(1.0) {
            assert_eq!(
                metrics.get("uptime_ledger_alert_outbox_depth", &[]),
                Some(0.0)
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            metrics.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Given up on: a receiver back now gets nothing.
    receiver.set_mode(Mode::Accept);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(receiver.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_does_not_slow_ingest() {
    let receiver = Receiver::start(Mode::Hang).await;
    let text =
        webhook_config(&receiver, "for = \"0s\"").replace("timeout = \"2s\"", "timeout = \"30s\"");
    let mut ledger = TestLedger::start_with_alerts(alerts_config(&text)).await;
    one_probe_service(&mut ledger).await;
    let mut seq = 0;
    let mut before = Vec::new();
    for _ in 0..30 {
        seq += 1;
        before.push(timed_submit(&ledger, seq, Status::Up).await);
    }
    // DOWN: the outage fires at once; its delivery hangs in the receiver.
    ledger.clock.advance(S);
    seq += 1;
    timed_submit(&ledger, seq, Status::Down).await;
    wait_until(Duration::from_secs(10), "a hanging delivery", || {
        receiver.attempts() >= 1
    })
    .await;
    let mut during = Vec::new();
    for _ in 0..30 {
        seq += 1;
        during.push(timed_submit(&ledger, seq, Status::Down).await);
    }
    before.sort();
    during.sort();
    let (before, during) = (before[15], during[15]);
    eprintln!("median ack latency: {before:?} before, {during:?} with a delivery hanging");
    assert!(
        during < before * 5 + Duration::from_millis(50),
        "ack latency {during:?} with a hanging receiver against {before:?} before"
    );
    assert!(receiver.accepted().is_empty());
}

/// Submits p1's observation `seq` of `svc` and returns how long the ack took.
async fn timed_submit(ledger: &TestLedger, seq: u64, status: Status) -> Duration {
    let observation = observation(&key(1), "p1", "svc", seq, T0, status);
    let started = Instant::now();
    assert!(ledger.submit(vec![observation]).await.iter().all(accepted));
    started.elapsed()
}

fn write_alerts_file(dir: &Path, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("alerts.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_with_undelivered_notifications_delivers_them_after_restart() {
    let receiver = Receiver::start(Mode::Refuse).await;
    let (_temp, data) = durability::temp_data();
    let alerts = write_alerts_file(&data, &webhook_config(&receiver, "for = \"0s\""));
    let serve = || {
        let mut command: Command = serve_command(&data.join("ledger"));
        command.args(["--alerts", &alerts]);
        command
    };
    let running = Running::start(serve());
    let mut probes = provision(&running, &data.join("ledger"), 1).await;
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(running.channel().await);
    let down = probes[0].observe(Status::Down, "connection refused");
    ingest
        .submit(pb::SubmitRequest {
            observations: vec![down],
        })
        .await
        .unwrap();
    wait_until(Duration::from_secs(15), "a refused attempt", || {
        receiver.attempts() >= 1
    })
    .await;
    let verifier_key = running.verifier.to_string();
    running.kill();

    receiver.set_mode(Mode::Accept);
    let restarted = Running::start(serve());
    wait_until(
        Duration::from_secs(15),
        "the delivery after restart",
        || !receiver.accepted().is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let delivered = receiver.accepted();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    verify_signatures(&delivered[0], &verifier_key, SECRET);
    let body = delivered[0].json();
    assert_eq!(body["type"], "alert.fired");
    assert_eq!(body["data"]["alert"]["service_id"], "svc");
    drop(restarted);
}

#[test]
fn serve_refuses_an_alerts_file_with_a_mistake_naming_its_line() {
    let (_temp, data) = durability::temp_data();
    let alerts = write_alerts_file(
        &data,
        "for = \"1m\"\n\n[service.tax]\nrules = [\"outage\", \"outgae\"]\n",
    );
    let output = serve_command(&data.join("ledger"))
        .args(["--alerts", &alerts])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "alerts.toml line 4: unknown rule \"outgae\", expected one of outage, no_data"
        ),
        "{stderr}"
    );
    assert!(!data.join("ledger").join("alerts").exists());
}

/// A real Alertmanager on a loopback port with a throwaway config and storage; killed on drop.
struct Alertmanager {
    url: String,
    process: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

impl Alertmanager {
    /// `None` (and a notice) when the binary is missing outside CI; under CI it must exist.
    async fn start() -> Option<Alertmanager> {
        if !Path::new(ALERTMANAGER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{ALERTMANAGER} is missing (.ci/run installs prometheus-alertmanager)"
            );
            say_skipped(
                "alertmanager",
                "no /usr/bin/prometheus-alertmanager (apt-get install prometheus-alertmanager)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let alertmanager = Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            process,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(format!("{}/-/ready", alertmanager.url)).await {
                if response.status().is_success() {
                    return Some(alertmanager);
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "Alertmanager did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn alerts(&self) -> Vec<serde_json::Value> {
        let body = reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Silences alerts whose `service_id` is `service_id` for an hour; returns its id.
    async fn silence(&self, service_id: &str) -> String {
        let now = SystemClock.now_millis();
        let silence = serde_json::json!({
            "matchers": [{"name": "service_id", "value": service_id, "isRegex": false, "isEqual": true}],
            "startsAt": format_millis(now - 60 * S),
            "endsAt": format_millis(now + 3_600 * S),
            "createdBy": "tests/alerts.rs",
            "comment": "planned work",
        });
        let response = reqwest::Client::new()
            .post(format!("{}/api/v2/silences", self.url))
            .header("content-type", "application/json")
            .body(silence.to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let response: serde_json::Value = serde_json::from_str(&response).unwrap();
        response["silenceID"].as_str().unwrap().to_owned()
    }
}

fn find<'a>(alerts: &'a [serde_json::Value], service_id: &str) -> Option<&'a serde_json::Value> {
    alerts
        .iter()
        .find(|alert| alert["labels"]["service_id"] == service_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_shows_the_alert_resolves_it_and_keeps_a_silence() {
    let Some(alertmanager) = Alertmanager::start().await else {
        return;
    };
    let text = format!(
        "rules = [\"outage\"]\nfor = \"0s\"\nlink = \"https://status.example.gov\"\n[delivery]\nevaluation_interval = \"100ms\"\nrepost_interval = \"1s\"\nmax_backoff = \"300ms\"\n[[receiver]]\nname = \"am\"\nalertmanager = \"{}\"\n",
        alertmanager.url
    );
    let mut ledger = TestLedger::start_with_alerts(alerts_config(&text)).await;
    // Alertmanager keeps real time: so does the ledger's clock here.
    let now = || SystemClock.now_millis();
    ledger.clock.set(now());
    ledger.define_service("svc").await;
    ledger.define_service("quiet").await;
    ledger.register_probe("p1", &key(1)).await;
    let silence = alertmanager.silence("quiet").await;
    let at = now();
    ledger.clock.set(at);
    let down = vec![
        observation(&key(1), "p1", "svc", 1, at, Status::Down),
        observation(&key(1), "p1", "quiet", 2, at, Status::Down),
    ];
    assert!(ledger.submit(down).await.iter().all(accepted));
    ledger.wait_for_projection().await;

    let mut alerts = Vec::new();
    let started = Instant::now();
    while find(&alerts, "svc").is_none() || find(&alerts, "quiet").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no alerts in Alertmanager: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        alerts = alertmanager.alerts().await;
    }
    let svc = find(&alerts, "svc").unwrap();
    assert_eq!(
        svc["labels"],
        serde_json::json!({"alertname": "outage", "service_id": "svc", "agency": "Ministry of Tests", "severity": "page"})
    );
    assert_eq!(svc["status"]["state"], "active");
    assert_eq!(
        svc["annotations"]["link"],
        "https://status.example.gov/services/svc"
    );
    assert!(svc["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("DOWN"));
    let quiet = find(&alerts, "quiet").unwrap();
    assert_eq!(quiet["status"]["state"], "suppressed");
    assert_eq!(quiet["status"]["silencedBy"], serde_json::json!([silence]));

    // While firing, the alerts are posted again every repost_interval (1 s here).
    let started = Instant::now();
    loop {
        let metrics = ledger.metrics().await;
        let reposts = metrics.get("uptime_ledger_alert_reposts_total", &[("receiver", "am")]);
        if reposts.is_some_and(|reposts| reposts >= 1.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no re-post: {}",
            metrics.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Recovery: the ledger posts endsAt and Alertmanager stops listing the alert.
    ledger.clock.set(now());
    let up = vec![observation(&key(1), "p1", "svc", 3, now(), Status::Up)];
    ledger.clock.set(now());
    assert!(ledger.submit(up).await.iter().all(accepted));
    let started = Instant::now();
    while find(&alertmanager.alerts().await, "svc").is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the alert was not resolved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        ledger.clock.set(now());
    }
    assert!(find(&alertmanager.alerts().await, "quiet").is_some());
    let metrics = ledger.metrics().await;
    assert!(
        metrics
            .get(
                "uptime_ledger_alert_deliveries_total",
                &[("receiver", "am")]
            )
            .unwrap()
            >= 3.0
    );
}
