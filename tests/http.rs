//! The HTTP server on port 0 over real HTTP/1.1: every route's status, content type and
//! shape; the JSON API gives exactly the gRPC QueryService's numbers; errors are JSON with
//! fitting statuses; the pages show what citizens need and name a checkpoint that
//! verifies; `/metrics` parses as Prometheus text and covers what operators watch.

mod common;

use common::seed::{self, END, SERVICES};
use common::*;
use serde_json::Value;
use uptime_ledger::checkpoint::{open_checkpoint, NoteVerifier};
use uptime_ledger::domain::Status;
use uptime_ledger::pb;
use uptime_ledger::pb::query_service_client::QueryServiceClient;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn millis(text: &Value) -> i64 {
    text.as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond()
}

fn timestamp_millis(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    uptime_ledger::entry::timestamp_millis(timestamp.as_ref(), "t").unwrap()
}

fn rfc3339(millis: i64) -> String {
    uptime_ledger::domain::format_millis(millis)
}

fn assert_json(response: &HttpResponse, status: u16) -> Value {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.content_type, "application/json", "{response:?}");
    response.json()
}

fn assert_html(response: &HttpResponse, status: u16) -> &str {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.content_type, "text/html; charset=utf-8");
    &response.body
}

async fn grpc_availability(
    ledger: &TestLedger,
    service_id: &str,
    window: pb::window::Window,
    tree_size: u64,
) -> pb::AvailabilityReport {
    QueryServiceClient::new(ledger.channel().await)
        .get_availability(pb::GetAvailabilityRequest {
            service_id: service_id.into(),
            window: Some(pb::Window {
                window: Some(window),
            }),
            tree_size,
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap()
}

/// Every field of a JSON report equals the gRPC one, exactly.
fn assert_same_report(json: &Value, grpc: &pb::AvailabilityReport) {
    assert_eq!(json["service_id"], grpc.service_id.as_str());
    assert_eq!(millis(&json["start"]), timestamp_millis(&grpc.start));
    assert_eq!(millis(&json["end"]), timestamp_millis(&grpc.end));
    assert_eq!(json["up_ms"], grpc.up_ms);
    assert_eq!(json["down_ms"], grpc.down_ms);
    assert_eq!(json["unknown_ms"], grpc.unknown_ms);
    assert_eq!(json["maintenance_ms"], grpc.maintenance_ms);
    assert_eq!(json["availability"].as_f64(), grpc.availability);
    assert_eq!(json["coverage"].as_f64(), grpc.coverage);
    assert_eq!(json["slo_target"].as_f64(), Some(grpc.slo_target));
    assert_eq!(json["slo_met"], grpc.slo_met);
    assert_eq!(json["error_budget_ms"].as_f64(), Some(grpc.error_budget_ms));
    assert_eq!(
        json["error_budget_remaining_ms"].as_f64(),
        Some(grpc.error_budget_remaining_ms)
    );
    assert_eq!(json["incident_count"], grpc.incident_count);
    assert_eq!(json["tree_size"], grpc.tree_size);
    assert_eq!(json["checkpoint"], grpc.checkpoint.as_str());
}

#[tokio::test]
async fn the_json_api_gives_the_grpc_numbers() {
    let ledger = seed::government_services().await;
    let tree_size = ledger.projections().read().tree_size;

    let services = assert_json(&ledger.http_get("/api/v1/services").await, 200);
    let listed: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service_id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = SERVICES.iter().map(|s| s.service_id).collect();
    assert_eq!(listed, expected);
    assert_eq!(services["tree_size"], tree_size);
    let tax = &services["services"][5];
    assert_eq!(tax["state"], "down");
    assert_eq!(tax["quorum"]["kind"], "any");
    assert_eq!(millis(&tax["state_since"]), END - 2 * HOUR);
    assert_eq!(services["services"][6]["quorum"]["at_least"], 2);

    for service in &SERVICES {
        for (query, window) in [
            (
                "window=24h",
                pb::window::Window::Named(pb::NamedWindow::Last24h as i32),
            ),
            (
                "window=30d",
                pb::window::Window::Named(pb::NamedWindow::Last30d as i32),
            ),
            (
                "",
                pb::window::Window::Named(pb::NamedWindow::Last30d as i32),
            ),
            (
                "window=90d",
                pb::window::Window::Named(pb::NamedWindow::Last90d as i32),
            ),
            (
                "month=2027-01&time_zone=Africa/Nairobi",
                pb::window::Window::Month(pb::CalendarMonth {
                    year: 2027,
                    month: 1,
                    time_zone: "Africa/Nairobi".into(),
                }),
            ),
        ] {
            let path = format!(
                "/api/v1/services/{}/availability?{query}",
                service.service_id
            );
            let json = assert_json(&ledger.http_get(&path).await, 200);
            let grpc = grpc_availability(&ledger, service.service_id, window, 0).await;
            assert_same_report(&json, &grpc);
        }
    }

    // The portal's full outage, exactly: 3 h 20 min in the last 30 days.
    let path = format!(
        "/api/v1/services/ecitizen.portal/availability?start={}&end={}",
        rfc3339(END - 30 * DAY),
        rfc3339(END)
    );
    let report = assert_json(&ledger.http_get(&path).await, 200);
    assert_eq!(report["down_ms"], 200 * 60_000);
    assert_eq!(report["incident_count"], 1);
    assert_eq!(report["slo_met"], false);

    let incidents = assert_json(
        &ledger
            .http_get("/api/v1/services/ecitizen.portal/incidents?window=90d")
            .await,
        200,
    );
    assert_eq!(
        millis(&incidents["end"]) - millis(&incidents["start"]),
        90 * DAY
    );
    let incident = &incidents["incidents"][0];
    assert_eq!(incident["duration_ms"], 200 * 60_000);
    assert_eq!(incident["open"], false);
    assert_eq!(
        incident["probes"],
        serde_json::json!(["ksm-1", "msa-1", "nbo-1"])
    );
    let open = assert_json(
        &ledger
            .http_get("/api/v1/services/revenue.tax-filing/incidents?window=24h")
            .await,
        200,
    );
    assert_eq!(open["incidents"][0]["open"], true);
    assert_eq!(open["incidents"][0]["probes"], serde_json::json!(["nbo-1"]));

    let timeline = assert_json(
        &ledger
            .http_get("/api/v1/services/ntsa.driving-licence/timeline?window=90d")
            .await,
        200,
    );
    let intervals = timeline["intervals"].as_array().unwrap();
    assert_eq!(intervals.first().unwrap()["start"], timeline["start"]);
    assert_eq!(intervals.last().unwrap()["end"], timeline["end"]);
    for pair in intervals.windows(2) {
        assert_eq!(
            pair[0]["end"], pair[1]["start"],
            "intervals cover the window"
        );
    }
    let states: Vec<&str> = intervals
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"maintenance") && states.contains(&"down"),
        "{states:?}"
    );

    let service = assert_json(
        &ledger
            .http_get("/api/v1/services/ntsa.driving-licence")
            .await,
        200,
    );
    assert_eq!(service["service"]["name"], "Driving licence renewal");
    assert_eq!(service["probes"].as_array().unwrap().len(), 3);
    assert_eq!(service["probes"][0]["location"], "Kisumu");
    assert_eq!(service["probes"][0]["last_status"], "up");
    assert_eq!(
        service["maintenance"][1]["maintenance_id"],
        "ntsa-network-works"
    );
    assert_eq!(millis(&service["maintenance"][1]["start"]), END + DAY);
}

#[tokio::test]
async fn an_earlier_prefix_is_answered_as_grpc_answers_it() {
    let ledger = seed::government_services().await;
    let before = ledger.projections().read().tree_size;
    ledger.clock.set(END + HOUR);
    // Every probe reports the portal `status` at END + 1 h, with seq `seq`.
    let everywhere = |seq: u64, status: Status| -> Vec<pb::SignedObservation> {
        seed::PROBES
            .iter()
            .enumerate()
            .map(|(p, (probe_id, _))| {
                let probe_key = key(p as u8 + 1);
                let portal = "ecitizen.portal";
                observation(&probe_key, probe_id, portal, seq, END + HOUR, status)
            })
            .collect()
    };
    let down_everywhere = everywhere(1_000_000, Status::Down);
    assert!(ledger.submit(down_everywhere).await.iter().all(accepted));
    let after = ledger.wait_for_projection().await;
    assert!(after > before);

    let window = format!(
        "start={}&end={}",
        rfc3339(END - DAY),
        rfc3339(END + 2 * HOUR)
    );
    let range_pb = || {
        pb::window::Window::Range(pb::TimeRange {
            start: Some(uptime_ledger::entry::millis_timestamp(END - DAY)),
            end: Some(uptime_ledger::entry::millis_timestamp(END + 2 * HOUR)),
        })
    };
    let range = range_pb();
    let path = format!("/api/v1/services/ecitizen.portal/availability?{window}&tree_size={before}");
    let then = assert_json(&ledger.http_get(&path).await, 200);
    assert_same_report(
        &then,
        &grpc_availability(&ledger, "ecitizen.portal", range.clone(), before).await,
    );
    let path = format!("/api/v1/services/ecitizen.portal/availability?{window}");
    let now = assert_json(&ledger.http_get(&path).await, 200);
    assert_same_report(
        &now,
        &grpc_availability(&ledger, "ecitizen.portal", range, 0).await,
    );
    assert_eq!(then["tree_size"], before);
    assert_eq!(now["tree_size"], after);
    assert_ne!(
        then["down_ms"], now["down_ms"],
        "the new DOWN counts only in the later prefix"
    );

    let path = format!("/api/v1/services/ecitizen.portal/incidents?{window}&tree_size={before}");
    let incidents = assert_json(&ledger.http_get(&path).await, 200);
    assert_eq!(incidents["tree_size"], before);
    assert_eq!(incidents["incidents"], serde_json::json!([]));
    // Three answers (HTTP, gRPC, HTTP) about that prefix cost one replay of it.
    let replayed = || async {
        ledger
            .metrics()
            .await
            .value("uptime_ledger_projection_replayed_entries_total", &[])
    };
    assert_eq!(replayed().await, before as f64);

    // The log grows again; a question about the prefix in between extends the kept one
    // by the entries after it instead of replaying the whole log, and answers as gRPC does.
    let up_again = everywhere(1_000_001, Status::Up);
    assert!(ledger.submit(up_again).await.iter().all(accepted));
    let latest = ledger.wait_for_projection().await;
    assert!(latest > after);
    let path = format!("/api/v1/services/ecitizen.portal/availability?{window}&tree_size={after}");
    let between = assert_json(&ledger.http_get(&path).await, 200);
    // Exactly what the live projection answered when it was at that size.
    assert_eq!(between, now);
    assert_same_report(
        &between,
        &grpc_availability(&ledger, "ecitizen.portal", range_pb(), after).await,
    );
    assert_eq!(replayed().await, after as f64);
}

#[tokio::test]
async fn api_errors_are_json_with_fitting_statuses() {
    let ledger = seed::government_services().await;
    let table = [
        ("/api/v1/services/nope", 404, "not_found"),
        ("/api/v1/services/nope/availability", 404, "not_found"),
        ("/api/v1/services/nope/incidents?window=24h", 404, "not_found"),
        ("/api/v1/services/nope/timeline", 404, "not_found"),
        ("/api/v1/services/ecitizen.portal/availability?window=1y", 400, "bad_request"),
        ("/api/v1/services/ecitizen.portal/availability?month=2027-13", 400, "bad_request"),
        ("/api/v1/services/ecitizen.portal/availability?month=2027-01&time_zone=Mars/Olympus", 400, "bad_request"),
        ("/api/v1/services/ecitizen.portal/availability?start=2027-01-02T00:00:00Z&end=2027-01-01T00:00:00Z", 400, "bad_request"),
        ("/api/v1/services/ecitizen.portal/incidents?start=2027-01-01T00:00:00Z", 400, "bad_request"),
        ("/api/v1/services/ecitizen.portal/timeline?window=24h&month=2027-01", 400, "bad_request"),
        ("/api/v1/services/ecitizen.portal/availability?tree_size=many", 400, "bad_request"),
        ("/api/v1/services/ecitizen.portal/availability?tree_size=999999999", 404, "not_found"),
        ("/api/v1/checkpoint?tree_size=999999999", 404, "not_found"),
        ("/api/v1/nothing-here", 404, "not_found"),
    ];
    for (path, status, code) in table {
        let error = assert_json(&ledger.http_get(path).await, status);
        assert_eq!(error["error"]["status"], status, "{path}");
        assert_eq!(error["error"]["code"], code, "{path}");
        assert!(
            !error["error"]["message"].as_str().unwrap().is_empty(),
            "{path}"
        );
    }
    // An unescaped `+` in an offset arrives as a space: the error says how to write it.
    let plus = ledger
        .http_get("/api/v1/services/ecitizen.portal/availability?start=2027-01-01T00:00:00+03:00&end=2027-01-02T00:00:00Z")
        .await
        .json();
    let message = plus["error"]["message"].as_str().unwrap();
    assert!(message.contains("%2B03:00"), "{message}");
    let unknown = ledger.http_get("/api/v1/services/nope").await.json();
    assert_eq!(
        unknown["error"]["message"],
        "service \"nope\" is not defined"
    );

    // Everything is read-only: another method gets 405 with `Allow`, as JSON under /api/
    // and as a page elsewhere.
    let client = reqwest::Client::new();
    let size = ledger.tree_size();
    for (method, path, json) in [
        (reqwest::Method::POST, "/api/v1/services", true),
        (
            reqwest::Method::DELETE,
            "/api/v1/services/ecitizen.portal",
            true,
        ),
        (reqwest::Method::PUT, "/services/ecitizen.portal", false),
        (reqwest::Method::POST, "/", false),
    ] {
        let response = client
            .request(method.clone(), format!("{}{path}", ledger.http_address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], "GET, HEAD", "{method} {path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        if json {
            assert_eq!(content_type, "application/json", "{method} {path}");
            let error: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(error["error"]["code"], "method_not_allowed", "{body}");
        } else {
            assert!(content_type.starts_with("text/html"), "{method} {path}");
            assert!(body.contains("is not allowed here"), "{body}");
        }
    }
    assert_eq!(ledger.tree_size(), size);
}

#[tokio::test]
async fn the_checkpoint_json_verifies_with_its_verifier_key() {
    let ledger = seed::government_services().await;
    let latest = assert_json(&ledger.http_get("/api/v1/checkpoint").await, 200);
    let verifier: NoteVerifier = latest["verifier_key"].as_str().unwrap().parse().unwrap();
    assert_eq!(verifier.to_string(), ledger.ledger().verifier().to_string());
    let signed = open_checkpoint(latest["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(signed.tree_size, latest["tree_size"].as_u64().unwrap());

    // The prefix the status page names has its checkpoint at exactly that size.
    let published = ledger.projections().read().tree_size;
    let at = assert_json(
        &ledger
            .http_get(&format!("/api/v1/checkpoint?tree_size={published}"))
            .await,
        200,
    );
    let signed = open_checkpoint(at["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(signed.tree_size, published);
}

#[tokio::test]
async fn the_status_page_shows_every_service_and_the_prefix_it_reflects() {
    let ledger = seed::government_services().await;
    let response = ledger.http_get("/").await;
    let page = assert_html(&response, 200);
    for service in &SERVICES {
        assert!(page.contains(service.name), "{} is listed", service.name);
        assert!(
            page.contains(&format!("href=\"/services/{}\"", service.service_id)),
            "{} links to its page",
            service.service_id
        );
        let agency = service.agency.replace('&', "&#38;");
        assert!(page.contains(&agency), "{agency} heads its group");
    }
    // Grouped: the Department of Immigration appears once, as one heading.
    assert_eq!(page.matches(">Department of Immigration</h2>").count(), 1);
    // Current states in words, not colour alone.
    assert!(page.contains("1 service is down"));
    // Since when, as a time (the page shows nothing relative to the moment it is read).
    assert!(page.contains("Down <span class=\"since\">since 2027-02-25 11:30 UTC</span>"));
    // 90 daily bars per service, each with its figures as a title.
    assert_eq!(
        page.matches("<span class=\"day day-").count(),
        90 * SERVICES.len() + 5 // + the legend
    );
    assert!(page.contains("title=\"28 Nov 2026: 100% available\""));
    // The portal's outage day, figures in the title.
    assert!(page.contains(
        "title=\"28 Jan 2027: 86.11% available, down 3 h 20 min, 1 incident: 09:00–12:20 UTC (3 h 20 min)\""
    ));
    // 24 h / 30 d / 90 d against the target.
    assert!(
        page.contains("<dt>30 d</dt><dd>99.53% <span class=\"note\">below the 99.9% target</span>")
    );
    // Recent incidents and planned maintenance.
    assert!(page.contains("<span class=\"tag tag-open\">ongoing</span>"));
    assert!(page.contains("ntsa-network-works"));
    assert!(
        !page.contains("ntsa-db-upgrade"),
        "past maintenance is not planned maintenance"
    );

    // The foot names the checkpointed prefix and links to its verification.
    let published = ledger.projections().read();
    assert!(page.contains(&format!("tree size {}</strong>", published.tree_size)));
    let first_line = published.checkpoint.lines().next().unwrap();
    assert!(page.contains(first_line));
    assert!(page.contains(&format!(
        "href=\"/api/v1/checkpoint?tree_size={}\"",
        published.tree_size
    )));
    assert!(page.contains(&ledger.ledger().verifier().to_string()));
}

#[tokio::test]
async fn the_service_page_shows_windows_incidents_probes_and_budget() {
    let ledger = seed::government_services().await;
    let response = ledger.http_get("/services/ecitizen.portal").await;
    let page = assert_html(&response, 200);
    assert!(page.contains("<h1>National e-services portal</h1>"));
    assert!(page.contains("Last 30 days:"));
    assert!(page.contains("aria-current=\"page\">Last 30 days</a>"));
    assert!(page.contains("<dt>Error budget remaining</dt><dd>2 h 36 min overspent</dd>"));
    assert!(page.contains("<td data-label=\"Duration\" class=\"num\">3 h 20 min</td>"));
    assert!(page.contains("ksm-1, msa-1, nbo-1"));
    for (probe_id, location) in seed::PROBES {
        assert!(page.contains(&format!("<code>{probe_id}</code>")));
        assert!(page.contains(location));
    }
    // The bars' figures are also a list (keyboard, touch and screen readers reach it),
    // each day linking to the page over that day.
    assert!(page.contains("<details class=\"day-list\">"));
    let day =
        "/services/ecitizen.portal?start=2027-01-28T00:00:00.000Z&end=2027-01-29T00:00:00.000Z";
    assert!(page.contains(&format!(
        "<li><a href=\"{}\">28 Jan 2027</a>: 86.11% available, down 3 h 20 min, 1 incident: 09:00–12:20 UTC (3 h 20 min)</li>",
        day.replace('&', "&#38;")
    )), "{page}");
    let that_day = ledger.http_get(day).await;
    let that_day = assert_html(&that_day, 200);
    assert!(
        that_day.contains("<dt>Availability</dt><dd>86.11%</dd>"),
        "{that_day}"
    );

    let month = ledger
        .http_get("/services/ecitizen.portal?month=2027-01&time_zone=Africa/Nairobi")
        .await;
    let page = assert_html(&month, 200);
    assert!(page.contains("January 2027 (Africa/Nairobi)"));
    let utc_month = ledger
        .http_get("/services/ecitizen.portal?month=2027-01")
        .await;
    assert!(assert_html(&utc_month, 200).contains("aria-current=\"page\">January 2027</a>"));

    let maintenance = ledger
        .http_get("/services/ntsa.driving-licence?window=90d")
        .await;
    let page = assert_html(&maintenance, 200);
    assert!(page.contains("ntsa-db-upgrade") && page.contains("ntsa-network-works"));
    assert!(page.contains("<span class=\"tag tag-planned\">planned</span>"));
    assert!(page.contains("<span class=\"tag tag-ended\">ended</span>"));

    let bad = ledger.http_get("/services/ecitizen.portal?window=1y").await;
    assert!(assert_html(&bad, 400).contains("unknown window"));
    let earlier = ledger
        .http_get("/services/ecitizen.portal?tree_size=5")
        .await;
    assert_html(&earlier, 400);
    let unknown = ledger.http_get("/services/nope").await;
    assert!(assert_html(&unknown, 404).contains("service &#34;nope&#34; is not defined"));
    let nowhere = ledger.http_get("/no/such/page").await;
    assert_html(&nowhere, 404);
}

#[tokio::test]
async fn assets_health_and_readiness_answer() {
    let ledger = TestLedger::start().await;
    let css = ledger.http_get("/assets/status.css").await;
    assert_eq!(
        (css.status, css.content_type.as_str()),
        (200, "text/css; charset=utf-8")
    );
    let js = ledger.http_get("/assets/status.js").await;
    assert_eq!(
        (js.status, js.content_type.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    let health = ledger.http_get("/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = ledger.http_get("/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    // An empty ledger still has a page.
    let page = ledger.http_get("/").await;
    assert!(assert_html(&page, 200).contains("No services are defined yet"));
    // Every answer carries the security headers; HSTS only over HTTPS (tests/tls.rs).
    for response in [&page, &css, &health] {
        assert_eq!(response.headers["x-content-type-options"], "nosniff");
        let policy = response.headers["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(!response.headers.contains_key("strict-transport-security"));
    }
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_cover_what_operators_watch() {
    let mut ledger = TestLedger::start().await;
    ledger.define_service("svc").await;
    ledger.register_probe("p1", &key(1)).await;
    // Registered, never reported.
    ledger.register_probe("p2", &key(2)).await;
    let up = observation(&key(1), "p1", "svc", 1, T0 - 60_000, Status::Up);
    let acks = ledger
        .submit(vec![
            up.clone(),
            up,
            observation(&key(1), "p1", "nope", 2, T0, Status::Up),
            observation(&key(2), "p1", "svc", 3, T0, Status::Up),
            observation(&key(1), "p1", "svc", 4, T0 - 30_000, Status::Down),
        ])
        .await;
    assert_eq!(acks.len(), 5);
    ledger.wait_for_projection().await;

    let response = ledger.http_get("/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_strict_exposition_format(&response.body);
    let metrics = Metrics::parse(response.body.clone());
    let value = |name: &str, labels: &[(&str, &str)]| metrics.value(name, labels);
    let histogram_count = |name: &str| -> u64 {
        let sample = metrics
            .scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("no histogram {name}"));
        match &sample.value {
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.last().map_or(0, |b| b.count as u64)
            }
            other => panic!("{name} is {other:?}"),
        }
    };

    assert_eq!(
        value(
            "uptime_ledger_ingest_observations_total",
            &[("outcome", "accepted")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "uptime_ledger_ingest_observations_total",
            &[("outcome", "duplicate")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "uptime_ledger_ingest_observations_total",
            &[("outcome", "rejected")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "uptime_ledger_ingest_rejections_total",
            &[("reason", "unknown_service")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "uptime_ledger_ingest_rejections_total",
            &[("reason", "bad_signature")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "uptime_ledger_ingest_rejections_total",
            &[("reason", "too_late")]
        ),
        0.0
    );
    // No call was refused as a whole; every reason is there, at zero.
    for reason in [
        "overloaded",
        "rate_limited",
        "unavailable",
        "disk_full",
        "invalid_request",
        "client_certificate",
    ] {
        assert_eq!(metrics.refused_calls(reason), 0.0, "{reason}");
    }
    assert_eq!(
        histogram_count("uptime_ledger_ingest_submit_batch_events"),
        1
    );
    assert_eq!(
        histogram_count("uptime_ledger_ingest_ack_duration_seconds"),
        1
    );
    assert!(histogram_count("uptime_ledger_log_commit_batch_entries") >= 3);
    assert!(histogram_count("uptime_ledger_log_fsync_duration_seconds") >= 3);

    let tree_size = ledger.tree_size() as f64;
    assert_eq!(value("uptime_ledger_log_tree_size", &[]), tree_size);
    assert_eq!(value("uptime_ledger_checkpoint_tree_size", &[]), tree_size);
    assert_eq!(value("uptime_ledger_projection_tree_size", &[]), tree_size);
    assert_eq!(value("uptime_ledger_projector_lag_entries", &[]), 0.0);
    assert_eq!(value("uptime_ledger_checkpoint_age_seconds", &[]), 0.0);
    assert_eq!(value("uptime_ledger_log_writes_stopped", &[]), 0.0);
    assert_eq!(
        value(
            "uptime_ledger_service_state",
            &[("service_id", "svc"), ("state", "down")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "uptime_ledger_service_state",
            &[("service_id", "svc"), ("state", "up")]
        ),
        0.0
    );
    assert_eq!(
        value(
            "uptime_ledger_service_slo_target_ratio",
            &[("service_id", "svc")]
        ),
        0.99
    );

    // Time passes (on the injected clock): ages grow, the probe's observation goes stale.
    ledger.clock.advance(120_000);
    ledger.wait_for_checkpoint().await;
    let metrics = ledger.metrics().await;
    let gauge = |name: &str, labels: &[(&str, &str)]| metrics.value(name, labels);
    assert_eq!(
        gauge(
            "uptime_ledger_probe_last_seen_age_seconds",
            &[("probe_id", "p1")]
        ),
        150.0
    );
    // A probe that never reported has no age, but is listed as registered.
    assert_eq!(
        metrics.get(
            "uptime_ledger_probe_last_seen_age_seconds",
            &[("probe_id", "p2")]
        ),
        None
    );
    for probe in ["p1", "p2"] {
        assert_eq!(
            gauge("uptime_ledger_probe_registered", &[("probe_id", probe)]),
            1.0
        );
    }
    assert_eq!(gauge("uptime_ledger_checkpoint_age_seconds", &[]), 120.0);
    assert_eq!(
        gauge(
            "uptime_ledger_service_state",
            &[("service_id", "svc"), ("state", "unknown")]
        ),
        1.0
    );
    // The last 24 h (and 30 d) of the prefix end at its last `received_at`, T0 (time
    // passing adds no entry): UP from T0-60s, DOWN from T0-30s: 30 s up, 30 s down.
    assert_eq!(
        gauge(
            "uptime_ledger_service_availability_ratio",
            &[("service_id", "svc"), ("window", "24h")]
        ),
        0.5
    );
    assert_eq!(
        gauge(
            "uptime_ledger_service_availability_ratio",
            &[("service_id", "svc"), ("window", "30d")]
        ),
        0.5
    );

    // A revoked probe stays listed, at 0, once the published prefix includes the revocation
    // (and not before: the gauges describe one prefix).
    ledger
        .apply(uptime_ledger::domain::Command::RevokeProbe {
            probe_id: uptime_ledger::domain::ProbeId::parse("p2").unwrap(),
            reason: "lost".into(),
        })
        .await
        .unwrap();
    ledger.wait_for_projection().await;
    let metrics = ledger.metrics().await;
    assert_eq!(
        metrics.value("uptime_ledger_probe_registered", &[("probe_id", "p2")]),
        0.0
    );
    assert_eq!(
        metrics.value("uptime_ledger_probe_registered", &[("probe_id", "p1")]),
        1.0
    );
}

/// What `prometheus_parse` is lenient about, checked line by line with its own line
/// parser: every line is a HELP, a TYPE, a sample or empty; every sample's value is a
/// number; every sample belongs to a metric whose TYPE came before it.
fn assert_strict_exposition_format(text: &str) {
    use prometheus_parse::LineInfo;
    let mut typed: Vec<String> = Vec::new();
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Ignored => panic!("not exposition format: {line:?}"),
            LineInfo::Type {
                metric_name,
                metric_alias,
                ..
            } => typed.push(metric_alias.unwrap_or(metric_name)),
            LineInfo::Sample {
                metric_name, value, ..
            } => {
                assert!(
                    value.to_lowercase().parse::<f64>().is_ok(),
                    "not a number: {line:?}"
                );
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| metric_name.strip_suffix(suffix))
                    .filter(|base| typed.last().is_some_and(|t| t == base))
                    .unwrap_or(metric_name);
                assert_eq!(
                    typed.last().map(String::as_str),
                    Some(base),
                    "sample without its TYPE: {line:?}"
                );
                assert!(base.starts_with("uptime_ledger_"), "{line:?}");
            }
            LineInfo::Doc { .. } | LineInfo::Empty => {}
        }
    }
}
