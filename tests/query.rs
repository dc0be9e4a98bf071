//! Projections over real gRPC: exact reports, incidents and timelines for a scripted
//! outage; windows; earlier prefixes; restart resumes from the snapshot; rebuild agrees;
//! WatchStates announces changes.

mod common;

use std::time::Duration;

use common::*;
use uptime_ledger::checkpoint::{open_checkpoint, NoteVerifier};
use uptime_ledger::domain::Status;
use uptime_ledger::pb;
use uptime_ledger::pb::query_service_client::QueryServiceClient;

const S: i64 = 1000;

/// Service `svc` (majority of 3 probes, 90 s staleness, SLO 0.99) observed every 10 s over
/// [T0, T0 + 600 s); probes p2 and p3 see DOWN during [T0 + 200 s, T0 + 300 s).
async fn scripted_outage() -> TestLedger {
    let mut ledger = TestLedger::start().await;
    ledger.define_service("svc").await;
    for (p, probe) in ["p1", "p2", "p3"].iter().enumerate() {
        ledger.register_probe(probe, &key(p as u8 + 1)).await;
    }
    ledger.clock.set(T0 + 600 * S);
    let mut batch = Vec::new();
    for step in 0..60 {
        let at = T0 + step * 10 * S;
        for (p, probe) in ["p1", "p2", "p3"].iter().enumerate() {
            let down = p > 0 && (200 * S..300 * S).contains(&(at - T0));
            let status = if down { Status::Down } else { Status::Up };
            batch.push(observation(
                &key(p as u8 + 1),
                probe,
                "svc",
                step as u64 + 1,
                at,
                status,
            ));
        }
    }
    assert!(ledger.submit(batch).await.iter().all(accepted));
    ledger.wait_for_projection().await;
    ledger
}

fn range(start: i64, end: i64) -> Option<pb::Window> {
    Some(pb::Window {
        window: Some(pb::window::Window::Range(pb::TimeRange {
            start: Some(uptime_ledger::entry::millis_timestamp(start)),
            end: Some(uptime_ledger::entry::millis_timestamp(end)),
        })),
    })
}

fn named(window: pb::NamedWindow) -> Option<pb::Window> {
    Some(pb::Window {
        window: Some(pb::window::Window::Named(window as i32)),
    })
}

async fn availability(
    ledger: &TestLedger,
    window: Option<pb::Window>,
    tree_size: u64,
) -> Result<pb::AvailabilityReport, tonic::Status> {
    QueryServiceClient::new(ledger.channel().await)
        .get_availability(pb::GetAvailabilityRequest {
            service_id: "svc".into(),
            window,
            tree_size,
        })
        .await
        .map(|r| r.into_inner().report.unwrap())
}

async fn incidents(ledger: &TestLedger, window: Option<pb::Window>) -> pb::ListIncidentsResponse {
    QueryServiceClient::new(ledger.channel().await)
        .list_incidents(pb::ListIncidentsRequest {
            service_id: "svc".into(),
            window,
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

fn millis(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    uptime_ledger::entry::timestamp_millis(timestamp.as_ref(), "t").unwrap()
}

#[tokio::test]
async fn reports_are_exact_and_name_their_signed_prefix() {
    let ledger = scripted_outage().await;
    let report = availability(&ledger, range(T0, T0 + 600 * S), 0)
        .await
        .unwrap();
    assert_eq!(
        (
            report.up_ms,
            report.down_ms,
            report.unknown_ms,
            report.maintenance_ms
        ),
        (500_000, 100_000, 0, 0)
    );
    assert_eq!(report.availability, Some(500.0 / 600.0));
    assert_eq!(report.coverage, Some(1.0));
    assert_eq!(report.slo_target, 0.99);
    assert!(!report.slo_met);
    // DESIGN.md's formulas, evaluated the same way in f64.
    assert_eq!(report.error_budget_ms, (1.0 - 0.99) * 600_000.0);
    assert_eq!(
        report.error_budget_remaining_ms,
        (1.0 - 0.99) * 600_000.0 - 100_000.0
    );
    assert_eq!(report.incident_count, 1);

    // The report names a signed checkpoint of exactly the prefix it reflects.
    let checkpoint = ledger
        .log()
        .await
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner();
    let verifier: NoteVerifier = checkpoint.verifier_key.parse().unwrap();
    let signed = open_checkpoint(&report.checkpoint, &verifier).unwrap();
    assert_eq!(signed.tree_size, report.tree_size);
    assert_eq!(report.tree_size, ledger.tree_size());

    // A window reaching past the data: UNKNOWN once staleness runs out (last check at 590 s).
    let report = availability(&ledger, range(T0 + 500 * S, T0 + 800 * S), 0)
        .await
        .unwrap();
    assert_eq!(
        (report.up_ms, report.down_ms, report.unknown_ms),
        (180_000, 0, 120_000)
    );
    assert_eq!(report.coverage, Some(180.0 / 300.0));

    // Named windows end at the prefix's last received_at (T0 + 600 s), not at the wall clock.
    let day = availability(&ledger, named(pb::NamedWindow::Last24h), 0)
        .await
        .unwrap();
    assert_eq!(
        (millis(&day.start), millis(&day.end)),
        (T0 + 600 * S - 86_400 * S, T0 + 600 * S)
    );
    assert_eq!((day.up_ms, day.down_ms), (500_000, 100_000));
    let month = availability(
        &ledger,
        Some(pb::Window {
            window: Some(pb::window::Window::Month(pb::CalendarMonth {
                year: 2026,
                month: 11,
                time_zone: "Africa/Nairobi".into(),
            })),
        }),
        0,
    )
    .await
    .unwrap();
    assert_eq!(
        millis(&month.start),
        1_793_480_400_000,
        "2026-11-01T00:00+03:00"
    );
    assert_eq!(
        (month.up_ms, month.down_ms),
        (580_000, 100_000),
        "UP until staleness runs out at 680 s"
    );
}

#[tokio::test]
async fn incidents_and_timelines_are_whole_and_exact() {
    let ledger = scripted_outage().await;
    // A window that only touches the middle of the outage still gets it whole.
    let listed = incidents(&ledger, range(T0 + 250 * S, T0 + 260 * S)).await;
    assert_eq!(listed.incidents.len(), 1);
    let incident = &listed.incidents[0];
    assert_eq!(
        (millis(&incident.start), millis(&incident.end)),
        (T0 + 200 * S, T0 + 300 * S)
    );
    assert!(!incident.open);
    assert_eq!(incident.probes, vec!["p2", "p3"]);
    assert!(incidents(&ledger, range(T0, T0 + 200 * S))
        .await
        .incidents
        .is_empty());

    let timeline = QueryServiceClient::new(ledger.channel().await)
        .get_timeline(pb::GetTimelineRequest {
            service_id: "svc".into(),
            window: range(T0 - 100 * S, T0 + 700 * S),
        })
        .await
        .unwrap()
        .into_inner();
    let pieces: Vec<(i64, i64, i32)> = timeline
        .intervals
        .iter()
        .map(|i| (millis(&i.start) - T0, millis(&i.end) - T0, i.state))
        .collect();
    use pb::ServiceState::*;
    assert_eq!(
        pieces,
        vec![
            (-100 * S, 0, Unknown as i32),
            (0, 200 * S, Up as i32),
            (200 * S, 300 * S, Down as i32),
            (300 * S, 680 * S, Up as i32),
            (680 * S, 700 * S, Unknown as i32),
        ]
    );

    // Services and the current state (the ledger clock is T0 + 600 s: UP since 300 s).
    let mut query = QueryServiceClient::new(ledger.channel().await);
    let services = query
        .list_services(pb::ListServicesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(services.services.len(), 1);
    let service = query
        .get_service(pb::GetServiceRequest {
            service_id: "svc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let summary = service.service.unwrap();
    assert_eq!(summary.state, Up as i32);
    assert_eq!(millis(&summary.state_since), T0 + 300 * S);
    assert_eq!(
        service
            .probes
            .iter()
            .map(|p| p.probe_id.as_str())
            .collect::<Vec<_>>(),
        vec!["p1", "p2", "p3"]
    );
    assert!(service
        .probes
        .iter()
        .all(|p| millis(&p.last_observed_at) == T0 + 590 * S && p.location == "test"));
}

#[tokio::test]
async fn bad_queries_get_clear_errors() {
    let ledger = scripted_outage().await;
    let mut query = QueryServiceClient::new(ledger.channel().await);
    let unknown = query
        .get_availability(pb::GetAvailabilityRequest {
            service_id: "nope".into(),
            window: range(T0, T0 + 1),
            tree_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(
        query
            .get_service(pb::GetServiceRequest {
                service_id: "nope".into()
            })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    for window in [
        range(T0, T0),
        None,
        Some(pb::Window {
            window: Some(pb::window::Window::Month(pb::CalendarMonth {
                year: 2026,
                month: 13,
                time_zone: String::new(),
            })),
        }),
        Some(pb::Window {
            window: Some(pb::window::Window::Month(pb::CalendarMonth {
                year: 2026,
                month: 1,
                time_zone: "Mars/Base".into(),
            })),
        }),
        Some(pb::Window {
            window: Some(pb::window::Window::Named(0)),
        }),
    ] {
        let status = availability(&ledger, window, 0).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{}",
            status.message()
        );
    }
    let no_checkpoint = availability(&ledger, range(T0, T0 + 1), 999_999)
        .await
        .unwrap_err();
    assert_eq!(no_checkpoint.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn an_earlier_prefix_is_reported_exactly() {
    let ledger = scripted_outage().await;
    let window = range(T0, T0 + 1200 * S);
    let before = availability(&ledger, window.clone(), 0).await.unwrap();

    // More history, arriving late (at T0 + 700 s about T0 + 650 s): a new outage.
    ledger.clock.set(T0 + 700 * S);
    let more: Vec<_> = (0..3)
        .map(|p| {
            observation(
                &key(p + 1),
                ["p1", "p2", "p3"][p as usize],
                "svc",
                100,
                T0 + 650 * S,
                Status::Down,
            )
        })
        .collect();
    assert!(ledger.submit(more).await.iter().all(accepted));
    ledger.wait_for_projection().await;
    let after = availability(&ledger, window.clone(), 0).await.unwrap();
    assert_ne!(after.down_ms, before.down_ms);

    let replayed = availability(&ledger, window, before.tree_size)
        .await
        .unwrap();
    assert_eq!(
        replayed, before,
        "a report at an earlier tree size is recomputed exactly"
    );
}

#[tokio::test]
async fn restart_resumes_from_the_snapshot_and_rebuild_agrees() {
    let mut ledger = scripted_outage().await;
    let size = ledger.tree_size();
    let window = range(T0 - 100 * S, T0 + 900 * S);
    let report = availability(&ledger, window.clone(), 0).await.unwrap();
    let listed = incidents(&ledger, window.clone()).await;

    ledger.restart().await;
    let start = ledger.projections().start_report().clone();
    assert_eq!(start.resumed_from, Some(size), "{start:?}");
    assert_eq!(start.replayed_entries, 0, "no replay after a clean restart");
    assert_eq!(
        availability(&ledger, window.clone(), 0).await.unwrap(),
        report
    );
    assert_eq!(incidents(&ledger, window.clone()).await, listed);

    ledger.restart_with(true).await;
    let start = ledger.projections().start_report().clone();
    assert_eq!(start.resumed_from, None);
    assert_eq!(start.replayed_entries, size);
    assert!(start.rebuild_reason.unwrap().contains("rebuild"));
    assert_eq!(
        availability(&ledger, window.clone(), 0).await.unwrap(),
        report
    );
    assert_eq!(incidents(&ledger, window).await, listed);
}

#[tokio::test]
async fn watch_states_announces_changes_and_drops_a_consumer_that_falls_behind() {
    let ledger = scripted_outage().await;
    let mut stream = QueryServiceClient::new(ledger.channel().await)
        .watch_states(pb::WatchStatesRequest {
            service_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(
        (first.service_id.as_str(), first.state),
        ("svc", pb::ServiceState::Up as i32)
    );

    let down: Vec<_> = (0..3)
        .map(|p| {
            observation(
                &key(p + 1),
                ["p1", "p2", "p3"][p as usize],
                "svc",
                200,
                T0 + 600 * S,
                Status::Down,
            )
        })
        .collect();
    assert!(ledger.submit(down).await.iter().all(accepted));
    let change = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(change.state, pb::ServiceState::Down as i32);
    assert_eq!(change.previous_state, pb::ServiceState::Up as i32);
    assert!(change.prefix.unwrap().tree_size >= ledger.tree_size());

    // A consumer that never reads: after more changes than the buffer (8 in tests) it is
    // told it lagged, and ingest was never held up by it.
    let (_, mut slow) = ledger.projections().subscribe();
    for flip in 0..12 {
        let seq = 301 + flip as u64;
        let status = if flip % 2 == 0 {
            Status::Up
        } else {
            Status::Down
        };
        let batch: Vec<_> = (0..3)
            .map(|p| {
                observation(
                    &key(p + 1),
                    ["p1", "p2", "p3"][p as usize],
                    "svc",
                    seq,
                    T0 + 600 * S + flip,
                    status,
                )
            })
            .collect();
        ledger.clock.advance(1);
        assert!(ledger.submit(batch).await.iter().all(accepted));
        ledger.wait_for_projection().await;
    }
    assert!(
        matches!(
            slow.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))
        ),
        "a consumer more than the buffer behind is told it lagged"
    );
}
