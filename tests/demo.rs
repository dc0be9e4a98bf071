//! `uptime-ledger demo`, the real binary: it sets up six services and three probes,
//! backfills history through the real ingest path, keeps its in-process probes delivering
//! live observations, stops cleanly on SIGTERM and resumes its data directory.

mod common;

use std::time::{Duration, Instant};

use common::http_get;
use common::process::demo;

const SERVICES: [(&str, &str); 6] = [
    ("ecitizen.portal", "National e-services portal"),
    ("immigration.passport", "Passport applications"),
    ("registry.business", "Business registration"),
    ("transport.driving-licence", "Driving licences"),
    ("revenue.tax-filing", "Tax filing"),
    ("police.good-conduct", "Certificate of good conduct"),
];

async fn json(address: &str, path: &str) -> serde_json::Value {
    let response = http_get(address, path).await;
    assert_eq!(response.status, 200, "GET {path}: {}", response.body);
    response.json()
}

async fn tree_size(address: &str) -> u64 {
    json(address, "/api/v1/checkpoint").await["tree_size"]
        .as_u64()
        .expect("the checkpoint has a tree size")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_backfills_runs_live_probes_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let started = std::time::SystemTime::now();
    let running = demo(
        &data_dir,
        &[
            "--history",
            "1d",
            "--check-interval",
            "1s",
            "--log-format",
            "json",
        ],
    );
    let stderr = running.process.stderr();
    // 1 day of 60-second checks, 6 services, 3 probes.
    assert!(stderr.contains("backfilled 25920 observations"), "{stderr}");

    let services = json(&running.http, "/api/v1/services").await;
    let listed: Vec<(&str, &str)> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service_id"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
            )
        })
        .collect();
    for service in SERVICES {
        assert!(listed.contains(&service), "{service:?} not in {listed:?}");
    }

    // The backfilled day: the flapping service and the two-probe outage (AT_LEAST(2)) cost
    // availability; the mobile network's daily timeouts are outvoted (MAJORITY).
    let day = "window=24h";
    let flapping = json(
        &running.http,
        &format!("/api/v1/services/registry.business/availability?{day}"),
    )
    .await;
    // The demo announces itself only once its projections include the whole backfill:
    // 10 setup commands (6 services, 3 probes, 1 maintenance window), then 25,920 checks.
    assert!(
        flapping["tree_size"].as_u64().unwrap() >= 10 + 25_920,
        "{flapping}"
    );
    let availability = flapping["availability"].as_f64().unwrap();
    assert!((0.95..0.99).contains(&availability), "{flapping}");
    let incidents = json(
        &running.http,
        &format!("/api/v1/services/police.good-conduct/incidents?{day}"),
    )
    .await;
    assert!(
        !incidents["incidents"].as_array().unwrap().is_empty(),
        "{incidents}"
    );
    let outvoted = json(
        &running.http,
        &format!("/api/v1/services/transport.driving-licence/availability?{day}"),
    )
    .await;
    assert_eq!(outvoted["down_ms"], 0, "{outvoted}");
    // The demo configures alerts (DATA_DIR/alerts.toml): the backfilled outage of good
    // conduct certificates fired an outage alert, which resolved.
    assert!(data_dir.join("alerts.toml").exists());
    let alerts = json(
        &running.http,
        &format!("/api/v1/alerts?service_id=police.good-conduct&{day}"),
    )
    .await;
    let outages: Vec<&serde_json::Value> = alerts["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|alert| alert["alert"] == "outage")
        .collect();
    assert!(
        outages.iter().any(|alert| alert["until"].is_string()),
        "{alerts}"
    );
    // The tax office's maintenance window was declared in advance.
    let tax = json(&running.http, "/api/v1/services/revenue.tax-filing").await;
    assert_eq!(
        tax["maintenance"][0]["maintenance_id"], "tax-upgrade-1",
        "{tax}"
    );

    // The in-process probes deliver live observations through the real ingest path.
    let backfilled = tree_size(&running.http).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tree_size(&running.http).await < backfilled + 18 {
        assert!(
            Instant::now() < deadline,
            "no live observations:\n{}",
            running.process.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status_page = http_get(&running.http, "/").await;
    assert_eq!(status_page.status, 200);
    for (_, name) in SERVICES {
        assert!(status_page.body.contains(name), "{name} not on the page");
    }

    // All three probes report live (newer than the demo's start), and the partial outage
    // is live too: in its first 10 minutes only the mobile network fails to reach driving
    // licences, and the other two outvote it. (Polled: on a loaded machine one check of a
    // healthy service may itself time out for a moment.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let licences = json(&running.http, "/api/v1/services/transport.driving-licence").await;
        let probes = licences["probes"].as_array().unwrap();
        let live = probes.iter().all(|probe| {
            let at = probe["last_observed_at"].as_str().unwrap();
            humantime::parse_rfc3339(at).unwrap() > started
        });
        let outvoted = probes.iter().all(|probe| {
            let expected = if probe["probe_id"] == "mobile-net" {
                "down"
            } else {
                "up"
            };
            probe["last_status"] == expected
        });
        if probes.len() == 3 && live && outvoted && licences["service"]["state"] == "up" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not three live probes with only mobile-net down and the service up: {licences}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (exit, stderr) = running.process.terminate();
    assert!(exit.success(), "{stderr}");
    assert!(stderr.contains("demo stopped"), "{stderr}");
    // `--log-format json`: every line on stderr is a JSON object (logs, progress, banner).
    for line in stderr.lines() {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{stderr}"));
        assert!(object["fields"]["message"].is_string(), "{line}");
    }

    // Resuming keeps the log and does not backfill again.
    let before = {
        let resumed = demo(&data_dir, &["--check-interval", "1s"]);
        let stderr = resumed.process.stderr();
        assert!(stderr.contains("resuming the demo"), "{stderr}");
        assert!(!stderr.contains("backfilling"), "{stderr}");
        let size = tree_size(&resumed.http).await;
        assert!(size > backfilled, "{size} <= {backfilled}");
        let (exit, stderr) = resumed.process.terminate();
        assert!(exit.success(), "{stderr}");
        // Text logs into a pipe carry no colour codes.
        assert!(!stderr.contains('\u{1b}'), "{stderr}");
        size
    };
    assert!(before > 0);
}

#[tokio::test]
async fn a_directory_with_an_interrupted_setup_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("log")).unwrap();
    let command = common::process::demo_command(dir.path(), &[]);
    let mut process = common::process::Process::spawn(command);
    let (exit, stderr) = process.wait();
    assert!(!exit.success());
    assert!(stderr.contains("no completed demo setup"), "{stderr}");
}
