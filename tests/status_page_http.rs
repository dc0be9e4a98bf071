//! The status page on the day everyone looks, over real HTTP on port 0: it is rendered
//! once per state and served from memory with `ETag`, `304` and `Cache-Control`; its
//! gzip and brotli forms decode to the same bytes; its bytes change exactly when what it
//! shows changes; times are shown in the configured zone while the JSON stays RFC 3339 UTC;
//! the Atom feeds of a scripted outage parse in an independent parser (PyPI `feedparser`)
//! with stable entry ids; the badges give the 30-day availability.

mod common;

use std::io::Read;
use std::process::Command;

use axum::body::Bytes;
use axum::http::HeaderMap;
use common::*;
use uptime_ledger::domain::{MaintenanceId, ServiceId, Status};
use uptime_ledger::http::{DisplayZone, HttpState};

const SERVICE: &str = "gov.portal";
const PROBE: &str = "nairobi-1";
const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
/// `define_service`'s staleness.
const STALENESS: i64 = 90 * SECOND;

/// An answer as bytes, with every header.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// `GET address + path` with `headers`, the body as it came on the wire.
async fn get(address: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = axum::http::Request::get(format!("{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A ledger with one service watched by one probe, which saw it up at `T0 + 1 min`; the
/// clock stands there.
async fn one_service() -> (TestLedger, u64) {
    let mut ledger = TestLedger::start().await;
    ledger.define_service(SERVICE).await;
    ledger.register_probe(PROBE, &key(1)).await;
    let mut seq = 0;
    observe(&mut ledger, &mut seq, T0 + MINUTE, Status::Up).await;
    (ledger, seq)
}

/// The probe observes `status` at `at` (the clock moves there first).
async fn observe(ledger: &mut TestLedger, seq: &mut u64, at: i64, status: Status) {
    *seq += 1;
    ledger.clock.set(at);
    let acks = ledger
        .submit(vec![observation(&key(1), PROBE, SERVICE, *seq, at, status)])
        .await;
    assert!(accepted(&acks[0]), "{acks:?}");
    ledger.wait_for_projection().await;
}

async fn renders(ledger: &TestLedger) -> f64 {
    ledger
        .metrics()
        .await
        .value("uptime_ledger_http_renders_total", &[])
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn the_page_is_served_from_memory_compressed_with_validators() {
    let (ledger, _) = one_service().await;
    let address = &ledger.http_address;

    let plain = get(address, "/", &[]).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(
        plain.header("cache-control"),
        "public, max-age=5, stale-while-revalidate=30"
    );
    assert_eq!(plain.header("vary"), "accept-encoding");
    assert_eq!(plain.header("content-encoding"), "");
    let etag = plain.header("etag").to_owned();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{etag}");
    assert!(plain.text().contains("Service gov.portal"));

    // Both compressed forms decode to the very same page, with the same tag.
    let br = get(address, "/", &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!(br.header("content-encoding"), "br");
    assert_eq!(unbrotli(&br.body), plain.body);
    assert_eq!(br.header("etag"), etag);
    let gzip = get(address, "/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzip.header("content-encoding"), "gzip");
    assert_eq!(gunzip(&gzip.body), plain.body);
    assert!(
        br.body.len() * 5 <= plain.body.len(),
        "brotli {} bytes for {} bytes of page",
        br.body.len(),
        plain.body.len()
    );

    // A client (or CDN) that holds the page revalidates for an empty 304.
    let revalidated = get(address, "/", &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.header("etag"), etag);
    assert_eq!(
        get(address, "/", &[("if-none-match", "W/\"other\"")])
            .await
            .status,
        200
    );

    // A rush of requests for one state renders nothing more.
    let before = renders(&ledger).await;
    for _ in 0..20 {
        assert_eq!(get(address, "/", &[]).await.body, plain.body);
    }
    assert_eq!(renders(&ledger).await, before);

    // The JSON API carries the same validators; its services list is cached the same way.
    for path in [
        "/api/v1/services",
        "/api/v1/services/gov.portal/availability?window=24h",
        "/api/v1/badge/gov.portal",
    ] {
        let answer = get(address, path, &[]).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(
            answer.header("cache-control"),
            "public, max-age=5, stale-while-revalidate=30",
            "{path}"
        );
        let etag = answer.header("etag");
        assert!(etag.starts_with("W/\""), "{path}: {etag:?}");
        let again = get(address, path, &[("if-none-match", etag)]).await;
        assert_eq!(again.status, 304, "{path}");
        let compressed = get(address, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(compressed.header("content-encoding"), "gzip", "{path}");
        assert_eq!(gunzip(&compressed.body), answer.body, "{path}");
    }
}

#[tokio::test]
async fn the_page_changes_exactly_when_what_it_shows_changes() {
    let (mut ledger, mut seq) = one_service().await;
    let address = ledger.http_address.clone();
    let seen_at = T0 + MINUTE;
    let page = || async { get(&address, "/", &[]).await };

    let first = page().await;
    assert!(first.text().contains("Operational"), "{}", first.text());
    let renders_first = renders(&ledger).await;
    // Time passes, but the state shown holds until the observation goes stale: the same
    // bytes, from memory.
    for at in [seen_at + SECOND, seen_at + MINUTE, seen_at + STALENESS - 1] {
        ledger.clock.set(at);
        let later = page().await;
        assert_eq!(later.body, first.body, "at +{} ms", at - seen_at);
        assert_eq!(later.header("etag"), first.header("etag"));
    }
    assert_eq!(renders(&ledger).await, renders_first);

    // At the staleness limit the service's state becomes unknown: new bytes, a new tag.
    ledger.clock.set(seen_at + STALENESS);
    let stale = page().await;
    assert_ne!(stale.body, first.body);
    assert_ne!(stale.header("etag"), first.header("etag"));
    assert!(stale.text().contains("No fresh data"), "{}", stale.text());
    assert!(
        stale.text().contains("No alert is firing"),
        "{}",
        stale.text()
    );
    // Just before the no-data alert's `for` (1 min) elapses, nothing else changes; at it,
    // the alert fires with no new entry: new bytes.
    ledger.clock.set(seen_at + STALENESS + MINUTE - 1);
    assert_eq!(page().await.body, stale.body);
    ledger.clock.set(seen_at + STALENESS + MINUTE);
    let firing = page().await;
    assert_ne!(firing.body, stale.body);
    assert!(firing.text().contains("no_data"), "{}", firing.text());
    let stale = firing;

    // A new prefix shows a new state (and names the new tree size).
    observe(&mut ledger, &mut seq, seen_at + 3 * MINUTE, Status::Down).await;
    let down = page().await;
    assert_ne!(down.body, stale.body);
    assert!(down.text().contains("Down"), "{}", down.text());
    let tree_size = ledger.projections().read().tree_size;
    assert!(
        down.text().contains(&format!("tree size {tree_size}")),
        "{}",
        down.text()
    );
    // One render per state shown: first, stale, the alert firing, down (and the services
    // list was not asked).
    assert_eq!(renders(&ledger).await, renders_first + 3.0);
}

#[tokio::test]
async fn times_are_shown_in_the_configured_zone_and_the_json_stays_utc() {
    let (ledger, _) = one_service().await;
    let seen_at = T0 + MINUTE;
    // A second HTTP server over the same ledger, showing Nairobi time.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nairobi = format!("http://{}", listener.local_addr().unwrap());
    let state = HttpState::new(ledger.ledger().clone(), ledger.projections().clone())
        .with_time_zone(DisplayZone::named("Africa/Nairobi").unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(uptime_ledger::http::serve_maybe_tls(
        listener,
        None,
        state,
        ledger.limits.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    let local = |zone: &str, format: &str| {
        jiff::Timestamp::from_millisecond(seen_at)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get(zone).unwrap())
            .strftime(format)
            .to_string()
    };
    let page = get(&nairobi, "/", &[]).await;
    let text = page.text();
    assert!(
        text.contains("Times are in Africa/Nairobi (EAT, UTC+03)"),
        "{text}"
    );
    // The probe saw the service up at 00:01 UTC: 03:01 in Nairobi.
    let since = format!("since {}", local("Africa/Nairobi", "%Y-%m-%d %H:%M EAT"));
    assert!(since.ends_with("03:01 EAT"), "{since}");
    assert!(text.contains(&since), "{since} not in {text}");
    let service = get(&nairobi, "/services/gov.portal", &[]).await;
    assert!(service.text().contains("times in Africa/Nairobi"));
    assert!(service.text().contains(&since));

    // The default server says UTC, and the JSON API is RFC 3339 UTC on both.
    let utc = get(&ledger.http_address, "/", &[]).await;
    assert!(utc.text().contains("Times are in UTC."));
    assert!(utc
        .text()
        .contains(&format!("since {}", local("UTC", "%Y-%m-%d %H:%M UTC"))));
    for address in [&nairobi, &ledger.http_address] {
        let json: serde_json::Value =
            serde_json::from_slice(&get(address, "/api/v1/services", &[]).await.body).unwrap();
        assert_eq!(
            json["services"][0]["state_since"],
            uptime_ledger::domain::format_millis(seen_at)
        );
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // `serve` refuses a zone the time zone database does not know, naming it.
    let output = Command::new(common::process::BINARY)
        .args(["serve", "--time-zone", "Africa/Atlantis"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown time zone \"Africa/Atlantis\""),
        "{stderr}"
    );
}

/// The feed at `path` as PyPI's `feedparser` reads it, or `None` when it is not installed
/// (outside CI).
fn feedparser(bytes: &[u8]) -> Option<serde_json::Value> {
    const SCRIPT: &str = r#"
import json, sys
import feedparser
d = feedparser.parse(sys.stdin.buffer.read())
print(json.dumps({
  "bozo": bool(d.bozo), "error": str(d.get("bozo_exception", "")), "version": d.version,
  "id": d.feed.get("id"), "title": d.feed.get("title"), "updated": d.feed.get("updated"),
  "entries": [{"id": e.id, "title": e.title, "updated": e.updated,
               "category": e.tags[0].term, "link": e.link, "summary": e.summary}
              for e in d.entries]}))
"#;
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.contains("No module named 'feedparser'") {
        assert!(
            std::env::var_os("CI").is_none(),
            "feedparser is missing under CI: .ci/run installs it with pip"
        );
        return None;
    }
    assert!(output.status.success(), "feedparser: {stderr}");
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[tokio::test]
async fn the_atom_feeds_follow_a_scripted_outage_in_feedparser() {
    let (mut ledger, mut seq) = one_service().await;
    let address = ledger.http_address.clone();
    let start = T0 + 2 * MINUTE;
    // Maintenance declared for tomorrow, then the service goes down.
    ledger.clock.set(start - SECOND);
    ledger
        .apply(uptime_ledger::domain::Command::ScheduleMaintenance {
            maintenance_id: MaintenanceId::parse("portal-upgrade").unwrap(),
            service_id: ServiceId::parse(SERVICE).unwrap(),
            start: T0 + 24 * 60 * MINUTE,
            end: T0 + 26 * 60 * MINUTE,
            reason: "database upgrade".into(),
        })
        .await
        .unwrap();
    // Down, seen once a minute (within the staleness) until it is back at +3 min.
    observe(&mut ledger, &mut seq, start, Status::Down).await;
    observe(&mut ledger, &mut seq, start + MINUTE, Status::Down).await;

    let feed = get(&address, "/feed.atom", &[]).await;
    assert_eq!(feed.status, 200);
    assert_eq!(
        feed.header("content-type"),
        "application/atom+xml; charset=utf-8"
    );
    assert!(feed.header("etag").starts_with("W/\""));
    let Some(open) = feedparser(&feed.body) else {
        say_skipped(
            "the_atom_feeds_follow_a_scripted_outage_in_feedparser",
            "no feedparser for python3 (pip install feedparser)",
        );
        return;
    };
    assert_eq!(open["bozo"], false, "{open}");
    assert_eq!(open["version"], "atom10");
    assert!(open["id"].as_str().unwrap().starts_with("urn:uuid:"));
    let entries = open["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{open}");
    let incident = entries
        .iter()
        .find(|e| e["category"] == "incident")
        .unwrap();
    assert_eq!(incident["title"], "Service gov.portal is down");
    assert_eq!(
        incident["updated"],
        uptime_ledger::domain::format_millis(start)
    );
    let maintenance = entries
        .iter()
        .find(|e| e["category"] == "maintenance")
        .unwrap();
    assert!(
        maintenance["summary"]
            .as_str()
            .unwrap()
            .contains("portal-upgrade"),
        "{maintenance}"
    );

    // It comes back: the same entry (same id) closes, updated when the outage ended.
    let end = start + 3 * MINUTE;
    observe(&mut ledger, &mut seq, start + 2 * MINUTE, Status::Down).await;
    observe(&mut ledger, &mut seq, end, Status::Up).await;
    let closed = feedparser(&get(&address, "/feed.atom", &[]).await.body).unwrap();
    assert_eq!(closed["bozo"], false, "{closed}");
    assert_eq!(closed["id"], open["id"]);
    let entries = closed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{closed}");
    let closed_incident = entries
        .iter()
        .find(|e| e["category"] == "incident")
        .unwrap();
    assert_eq!(closed_incident["id"], incident["id"]);
    assert_eq!(
        closed_incident["title"],
        "Service gov.portal was down for 3 min"
    );
    assert_eq!(
        closed_incident["updated"],
        uptime_ledger::domain::format_millis(end)
    );
    // The entry links to the service's page over the outage.
    assert!(
        closed_incident["link"]
            .as_str()
            .unwrap()
            .contains("/services/gov.portal?start="),
        "{closed_incident}"
    );
    assert_eq!(closed["updated"], uptime_ledger::domain::format_millis(end));

    // The service's own feed has the same entries; an unknown service's is a 404.
    let own = get(&address, "/services/gov.portal/feed.atom", &[]).await;
    let own = feedparser(&own.body).unwrap();
    assert_eq!(own["bozo"], false);
    assert_ne!(own["id"], closed["id"]);
    let ids = |feed: &serde_json::Value| -> Vec<String> {
        feed["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&own), ids(&closed));
    assert_eq!(
        get(&address, "/services/nope/feed.atom", &[]).await.status,
        404
    );
}

#[tokio::test]
async fn badges_give_the_30_day_availability() {
    let (mut ledger, mut seq) = one_service().await;
    // Up for 9 minutes (an observation a minute, within the staleness), down for 1: 90%
    // of the measured time.
    for minute in 2..10 {
        observe(&mut ledger, &mut seq, T0 + minute * MINUTE, Status::Up).await;
    }
    observe(&mut ledger, &mut seq, T0 + 10 * MINUTE, Status::Down).await;
    observe(&mut ledger, &mut seq, T0 + 11 * MINUTE, Status::Up).await;
    let address = &ledger.http_address;
    let availability: serde_json::Value = serde_json::from_slice(
        &get(
            address,
            "/api/v1/services/gov.portal/availability?window=30d",
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(availability["availability"], 0.9);

    let badge = get(address, "/api/v1/badge/gov.portal", &[]).await;
    assert_eq!(badge.header("content-type"), "application/json");
    let badge: serde_json::Value = serde_json::from_slice(&badge.body).unwrap();
    assert_eq!(
        badge,
        serde_json::json!({
            "schemaVersion": 1,
            "label": "availability 30d",
            "message": "90.00%",
            "color": "red",
            "cacheSeconds": 300,
        })
    );
    let svg = get(address, "/services/gov.portal/badge.svg", &[]).await;
    assert_eq!(svg.status, 200);
    assert_eq!(svg.header("content-type"), "image/svg+xml");
    assert!(svg
        .text()
        .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg
        .text()
        .contains("aria-label=\"availability 30d: 90.00%\""));
    assert!(svg.text().contains(">90.00%</text>"));

    let unknown = get(address, "/api/v1/badge/nope", &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("content-type"), "application/json");
    assert_eq!(
        get(address, "/services/nope/badge.svg", &[]).await.status,
        404
    );
}

/// With a read token the JSON API's answers are private (no shared cache may hand them to
/// someone without the token), while the badge stays public for shields.io.
#[tokio::test]
async fn behind_the_read_token_answers_are_private_but_badges_stay_public() {
    let mut ledger = TestLedger::start_secured(TestSecurity {
        read_token: Some("a-read-token-of-enough-length".into()),
        ..TestSecurity::default()
    })
    .await;
    ledger.define_service(SERVICE).await;
    ledger.wait_for_projection().await;
    let address = &ledger.http_address;
    let token = "Bearer a-read-token-of-enough-length";
    let services = get(address, "/api/v1/services", &[("authorization", token)]).await;
    assert_eq!(services.status, 200);
    assert_eq!(
        services.header("cache-control"),
        "private, max-age=5, stale-while-revalidate=30"
    );
    assert_eq!(get(address, "/api/v1/services", &[]).await.status, 401);
    let badge = get(address, "/api/v1/badge/gov.portal", &[]).await;
    assert_eq!(badge.status, 200);
    assert_eq!(
        badge.header("cache-control"),
        "public, max-age=5, stale-while-revalidate=30"
    );
    let page = get(address, "/", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.header("cache-control").starts_with("public"));
}
