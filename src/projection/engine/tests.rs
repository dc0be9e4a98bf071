//! The engine's rules one by one, on small hand-written logs, and any input
//! absorbed without breaking an invariant (proptest).

use proptest::prelude::*;

use super::*;
use crate::domain::ServiceId;
use crate::projection::model::Quorum;
use crate::projection::test_inputs;
use std::time::Duration;

const SECOND: i64 = 1_000;

/// A log under construction: hands out increasing log indexes.
struct Ledger {
    projection: Projection,
    next_index: u64,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger::with_max_lateness(DEFAULT_MAX_LATENESS_MS)
    }

    fn with_max_lateness(max_lateness_ms: i64) -> Ledger {
        let mut projection = Projection::new(ProjectionConfig { max_lateness_ms });
        projection.apply(test_inputs::genesis(0, 1, &["admin"]));
        Ledger {
            projection,
            next_index: 1,
        }
    }

    fn index(&mut self) -> u64 {
        self.next_index += 1;
        self.next_index - 1
    }

    fn define(
        &mut self,
        received_at: i64,
        service_id: &str,
        quorum: Quorum,
        staleness_ms: i64,
        slo_target: f64,
    ) {
        let spec = ServiceSpec {
            service_id: ServiceId::parse(service_id).unwrap(),
            name: format!("{service_id} service"),
            agency: "agency".to_string(),
            slo_target,
            quorum,
            staleness: Duration::from_millis(staleness_ms.unsigned_abs()),
        };
        let index = self.index();
        self.projection.apply(ProjectionInput::DefineService {
            index,
            received_at,
            spec,
        });
    }

    fn observe(
        &mut self,
        received_at: i64,
        probe_id: &str,
        service_id: &str,
        observed_at: i64,
        status: Status,
    ) {
        let index = self.index();
        self.projection.apply(ProjectionInput::Observation {
            index,
            received_at,
            probe_id: probe_id.to_string(),
            service_id: service_id.to_string(),
            observed_at,
            status,
        });
    }

    /// Observations every `every` on `[from, to)`, each received when made.
    fn observe_every(
        &mut self,
        probe_id: &str,
        service_id: &str,
        from: i64,
        to: i64,
        every: i64,
        status: Status,
    ) {
        for observed_at in (from..to).step_by(every as usize) {
            self.observe(observed_at, probe_id, service_id, observed_at, status);
        }
    }

    fn schedule(
        &mut self,
        received_at: i64,
        maintenance_id: &str,
        service_id: &str,
        start: i64,
        end: i64,
    ) {
        let index = self.index();
        self.projection.apply(ProjectionInput::ScheduleMaintenance {
            index,
            received_at,
            maintenance_id: maintenance_id.to_string(),
            service_id: service_id.to_string(),
            start,
            end,
        });
    }

    fn cancel(&mut self, received_at: i64, maintenance_id: &str) {
        let index = self.index();
        self.projection.apply(ProjectionInput::CancelMaintenance {
            index,
            received_at,
            maintenance_id: maintenance_id.to_string(),
        });
    }

    fn state(&self, at: i64) -> State {
        self.projection.current_state("svc", at)
    }

    fn timeline(&self, start: i64, end: i64) -> Vec<(i64, i64, State)> {
        let intervals = self.projection.timeline("svc", start, end).unwrap();
        intervals
            .into_iter()
            .map(|interval| (interval.start, interval.end, interval.state))
            .collect()
    }

    fn report(&self, start: i64, end: i64) -> AvailabilityReport {
        self.projection.report("svc", start, end).unwrap()
    }
}

use State::{Down as D, Maintenance as M, Unknown as X, Up as U};

#[test]
fn staleness_boundary_is_exclusive() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 90 * SECOND, 0.99);
    ledger.observe(1_000, "p1", "svc", 1_000, Status::Up);
    assert_eq!(ledger.state(999), X);
    assert_eq!(ledger.state(1_000), U);
    assert_eq!(ledger.state(1_000 + 90 * SECOND - 1), U);
    assert_eq!(ledger.state(1_000 + 90 * SECOND), X); // exactly observed_at + staleness
}

#[test]
fn staleness_in_force_at_observed_at_governs_not_at_t() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 10 * SECOND, 0.99);
    ledger.observe(5 * SECOND, "p1", "svc", 5 * SECOND, Status::Up);
    ledger.define(10 * SECOND, "svc", Quorum::Any, 100 * SECOND, 0.99);
    // The observation at 5 s keeps its 10 s staleness although 100 s is in force at 14 s.
    assert_eq!(ledger.state(15 * SECOND - 1), U);
    assert_eq!(ledger.state(15 * SECOND), X);
    ledger.observe(20 * SECOND, "p1", "svc", 20 * SECOND, Status::Up);
    assert_eq!(ledger.state(120 * SECOND - 1), U);
    assert_eq!(ledger.state(120 * SECOND), X);
    // A shorter staleness from 130 s on does not shorten the observation at 125 s,
    // but one arriving late and made after 130 s uses it.
    ledger.observe(125 * SECOND, "p1", "svc", 125 * SECOND, Status::Up);
    ledger.define(130 * SECOND, "svc", Quorum::Any, SECOND, 0.99);
    assert_eq!(ledger.state(200 * SECOND), U);
    ledger.observe(140 * SECOND, "p1", "svc", 135 * SECOND, Status::Down);
    assert_eq!(
        ledger.timeline(120 * SECOND, 140 * SECOND),
        [
            (120 * SECOND, 125 * SECOND, X),
            (125 * SECOND, 135 * SECOND, U),
            (135 * SECOND, 136 * SECOND, D),
            (136 * SECOND, 140 * SECOND, X),
        ]
    );
}

#[test]
fn policy_change_does_not_rewrite_the_past() {
    let mut ledger = Ledger::new();
    let observe_minute = |ledger: &mut Ledger, from: i64| {
        for observed_at in (from..from + 60 * SECOND).step_by(10_000) {
            ledger.observe(observed_at, "p1", "svc", observed_at, Status::Up);
            ledger.observe(observed_at, "p2", "svc", observed_at, Status::Down);
        }
    };
    ledger.define(0, "svc", Quorum::Any, 15 * SECOND, 0.99);
    observe_minute(&mut ledger, 0);
    let before = ledger.report(0, 60 * SECOND);
    assert_eq!(before.down_ms, 60_000);
    ledger.define(60 * SECOND, "svc", Quorum::All, 15 * SECOND, 0.5);
    observe_minute(&mut ledger, 60 * SECOND);
    assert_eq!(ledger.report(0, 60 * SECOND), before); // last minute's outage stands
    let after = ledger.report(60 * SECOND, 120 * SECOND);
    assert_eq!(
        (after.up_ms, after.down_ms, after.slo_target),
        (60_000, 0, 0.5)
    );
}

#[test]
fn first_definition_covers_earlier_times() {
    let mut ledger = Ledger::new();
    ledger.define(100 * SECOND, "svc", Quorum::Any, 50 * SECOND, 0.9);
    ledger.define(200 * SECOND, "svc", Quorum::All, SECOND, 0.5);
    // Made before the service was defined, received later: first definition's staleness.
    ledger.observe(210 * SECOND, "p1", "svc", 30 * SECOND, Status::Down);
    assert_eq!(
        ledger.timeline(0, 100 * SECOND),
        [
            (0, 30 * SECOND, X),
            (30 * SECOND, 80 * SECOND, D),
            (80 * SECOND, 100 * SECOND, X)
        ]
    );
    assert_eq!(ledger.report(0, 50 * SECOND).slo_target, 0.9);
    assert_eq!(ledger.report(0, 200 * SECOND).slo_target, 0.9); // in force at end - 1
    assert_eq!(ledger.report(0, 200 * SECOND + 1).slo_target, 0.5);
}

#[test]
fn quorum_counts_only_fresh_probes() {
    // (policy, statuses of probes p0.., expected service state)
    let table: [(Quorum, &[Status], State); 9] = [
        (Quorum::Any, &[Status::Up, Status::Up, Status::Down], D),
        (Quorum::Majority, &[Status::Up, Status::Down], U),
        (
            Quorum::Majority,
            &[Status::Up, Status::Up, Status::Down, Status::Down],
            U,
        ),
        (
            Quorum::Majority,
            &[Status::Up, Status::Down, Status::Down],
            D,
        ),
        (Quorum::All, &[Status::Down, Status::Down, Status::Up], U),
        (Quorum::All, &[Status::Down, Status::Down], D),
        (
            Quorum::AtLeast(2),
            &[Status::Down, Status::Up, Status::Down],
            D,
        ),
        (
            Quorum::AtLeast(5),
            &[Status::Down, Status::Down, Status::Down],
            U,
        ),
        (Quorum::AtLeast(1), &[Status::Up], U),
    ];
    for (quorum, statuses, expected) in table {
        let mut ledger = Ledger::new();
        ledger.define(0, "svc", quorum, 30 * SECOND, 0.99);
        for (probe, status) in statuses.iter().enumerate() {
            ledger.observe(SECOND, &format!("p{probe}"), "svc", SECOND, *status);
        }
        assert_eq!(
            ledger.state(2 * SECOND),
            expected,
            "{quorum:?} {statuses:?}"
        );
    }
    // A stale UP probe does not count: MAJORITY of the one fresh probe, which is DOWN.
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Majority, 30 * SECOND, 0.99);
    ledger.observe(0, "p1", "svc", 0, Status::Up);
    ledger.observe(20 * SECOND, "p2", "svc", 20 * SECOND, Status::Down);
    assert_eq!(ledger.state(25 * SECOND), U);
    assert_eq!(ledger.state(30 * SECOND), D);
}

#[test]
fn overlapping_maintenance_windows_count_once() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 15 * SECOND, 0.99);
    ledger.schedule(0, "m1", "svc", 10 * SECOND, 30 * SECOND);
    ledger.schedule(0, "m2", "svc", 20 * SECOND, 40 * SECOND);
    ledger.observe_every("p1", "svc", 0, 50 * SECOND, 5 * SECOND, Status::Down);
    let report = ledger.report(0, 50 * SECOND);
    assert_eq!(
        (report.maintenance_ms, report.down_ms, report.incident_count),
        (30_000, 20_000, 2)
    );
    assert_eq!(
        ledger.timeline(0, 50 * SECOND),
        [(0, 10_000, D), (10_000, 40_000, M), (40_000, 50_000, D)]
    );
}

#[test]
fn cancel_cuts_maintenance_at_its_received_at() {
    // (cancel received at, expected maintenance within [0, 60 s))
    let table = [
        (5 * SECOND, 0),
        (25 * SECOND, 15_000),
        (50 * SECOND, 30_000),
    ];
    for (cancelled_at, expected_maintenance_ms) in table {
        let mut ledger = Ledger::new();
        ledger.define(0, "svc", Quorum::Any, 15 * SECOND, 0.99);
        ledger.schedule(0, "m1", "svc", 10 * SECOND, 40 * SECOND);
        ledger.observe_every("p1", "svc", 0, cancelled_at, 5 * SECOND, Status::Up);
        ledger.cancel(cancelled_at, "m1");
        ledger.cancel(cancelled_at + 1, "m1"); // a second cancel changes nothing
        ledger.observe_every(
            "p1",
            "svc",
            cancelled_at,
            60 * SECOND,
            5 * SECOND,
            Status::Up,
        );
        let report = ledger.report(0, 60 * SECOND);
        assert_eq!(
            report.maintenance_ms, expected_maintenance_ms,
            "cancelled at {cancelled_at}"
        );
        assert_eq!(report.up_ms, 60_000 - expected_maintenance_ms);
    }
}

#[test]
fn retroactive_maintenance_starts_at_received_at() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 15 * SECOND, 0.99);
    ledger.observe_every("p1", "svc", 0, 30 * SECOND, 5 * SECOND, Status::Down);
    ledger.schedule(30 * SECOND, "m1", "svc", 0, 60 * SECOND);
    ledger.schedule(30 * SECOND, "m1", "svc", 0, 90 * SECOND); // a reused id is ignored
    ledger.schedule(30 * SECOND, "m2", "svc", 0, 20 * SECOND); // wholly in the past: nothing
    assert_eq!(
        ledger.timeline(0, 80 * SECOND),
        [(0, 30_000, D), (30_000, 60_000, M), (60_000, 80_000, X)]
    );
    assert_eq!(ledger.report(0, 30 * SECOND).down_ms, 30_000);
}

#[test]
fn maintenance_lists_windows_as_in_force() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 15 * SECOND, 0.99);
    ledger.schedule(10 * SECOND, "m1", "svc", 0, 60 * SECOND);
    ledger.schedule(10 * SECOND, "m2", "svc", 100 * SECOND, 200 * SECOND);
    ledger.cancel(150 * SECOND, "m2");
    ledger.schedule(10 * SECOND, "m3", "other", 100 * SECOND, 200 * SECOND);
    let window = |id: &str, start, end, cancelled| Maintenance {
        maintenance_id: id.to_string(),
        start,
        end,
        cancelled,
    };
    assert_eq!(
        ledger.projection.maintenance("svc").unwrap(),
        [
            window("m1", 10_000, 60_000, false),
            window("m2", 100_000, 150_000, true)
        ]
    );
    assert_eq!(ledger.projection.maintenance("other"), None);
}

#[test]
fn late_observation_splits_a_run() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 90 * SECOND, 0.99);
    ledger.observe_every("p1", "svc", 0, 110 * SECOND, 10 * SECOND, Status::Up);
    ledger.observe(110 * SECOND, "p1", "svc", 45 * SECOND, Status::Down);
    assert_eq!(
        ledger.timeline(0, 200 * SECOND),
        [
            (0, 45_000, U),
            (45_000, 50_000, D), // until the next observation takes over
            (50_000, 190_000, U),
            (190_000, 200_000, X),
        ]
    );
    let incidents = ledger.projection.incidents("svc", 0, 200 * SECOND).unwrap();
    assert_eq!(
        incidents,
        [Incident {
            start: 45_000,
            end: 50_000,
            open: false,
            probes: vec!["p1".to_string()],
            last_observed_at: None,
        }]
    );
    assert_eq!(ledger.projection.retained_runs(), 3 + 3);
    // A late observation after the newest one, past its staleness, leaves a hole.
    ledger.observe(300 * SECOND, "p1", "svc", 250 * SECOND, Status::Up);
    assert_eq!(ledger.state(200 * SECOND), X);
    assert_eq!(ledger.state(250 * SECOND), U);
    ledger.projection.check_consistency().unwrap();
}

#[test]
fn the_probe_directory_is_the_one_of_the_prefix() {
    let mut ledger = Ledger::new();
    let index = ledger.index();
    ledger
        .projection
        .apply(test_inputs::register(index, 0, "admin", "p1", "Mombasa").0);
    ledger.define(0, "svc", Quorum::Any, 30 * SECOND, 0.99);
    ledger.observe(SECOND, "p1", "svc", SECOND, Status::Up);
    ledger.observe(SECOND, "p2", "svc", SECOND, Status::Up);
    let before = ledger.projection.probes_for("svc").unwrap();
    assert_eq!(
        before
            .iter()
            .map(|p| (
                p.probe_id.as_str(),
                p.registration.as_ref().map(|r| r.location.as_str()),
                p.registration.as_ref().and_then(|r| r.revoked_at)
            ))
            .collect::<Vec<_>>(),
        [("p1", Some("Mombasa"), None), ("p2", None, None)]
    );
    let index = ledger.index();
    ledger
        .projection
        .apply(test_inputs::revoke(index, 2 * SECOND, "admin", "p1").0);
    let summaries = ledger.projection.probes_for("svc").unwrap();
    assert!(summaries[0]
        .registration
        .as_ref()
        .unwrap()
        .revoked_at
        .is_some());
    let (probe_id, registered) = ledger.projection.registered_probes().next().unwrap();
    assert_eq!(
        (
            probe_id,
            registered.registered_by.as_str(),
            registered.revoked_at
        ),
        ("p1", "admin", Some(2 * SECOND))
    );
    // The past observations of a revoked probe stay.
    assert_eq!(ledger.timeline(SECOND, 2 * SECOND), [(1_000, 2_000, U)]);
}

#[test]
fn same_observed_at_is_decided_by_the_higher_index() {
    for (first, second) in [(Status::Up, Status::Down), (Status::Down, Status::Up)] {
        let mut ledger = Ledger::new();
        ledger.define(0, "svc", Quorum::Any, 30 * SECOND, 0.99);
        ledger.observe(10 * SECOND, "p1", "svc", 10 * SECOND, first);
        ledger.observe(11 * SECOND, "p1", "svc", 10 * SECOND, second);
        let expected = if second == Status::Up { U } else { D };
        assert_eq!(
            ledger.timeline(10 * SECOND, 40 * SECOND),
            [(10_000, 40_000, expected)]
        );
        let summary = &ledger.projection.probes_for("svc").unwrap()[0];
        assert_eq!(
            (summary.last_observed_at, summary.last_status),
            (10 * SECOND, second)
        );
    }
}

#[test]
fn reports_account_for_every_millisecond() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Majority, 20 * SECOND, 0.9);
    ledger.observe_every("p1", "svc", 0, 100 * SECOND, 10 * SECOND, Status::Up);
    ledger.observe_every(
        "p2",
        "svc",
        30 * SECOND,
        70 * SECOND,
        10 * SECOND,
        Status::Down,
    );
    ledger.observe_every(
        "p3",
        "svc",
        30 * SECOND,
        70 * SECOND,
        10 * SECOND,
        Status::Down,
    );
    ledger.schedule(80 * SECOND, "m1", "svc", 85 * SECOND, 95 * SECOND);
    for (start, end) in [
        (0, 1),
        (-50_000, 150_000),
        (12_345, 67_891),
        (30_000, 80_000),
        (90_000, 90_001),
    ] {
        let report = ledger.report(start, end);
        let total = report.up_ms + report.down_ms + report.unknown_ms + report.maintenance_ms;
        assert_eq!(total, (end - start) as u64, "[{start}, {end})");
    }
}

#[test]
fn window_in_the_future_is_unknown() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 90 * SECOND, 0.99);
    ledger.observe(0, "p1", "svc", 0, Status::Up);
    let report = ledger.report(1_000_000_000, 1_000_001_000);
    assert_eq!(
        (
            report.unknown_ms,
            report.availability,
            report.coverage,
            report.slo_met
        ),
        (1_000, None, Some(0.0), false)
    );
    assert_eq!(report.incident_count, 0);
    ledger.schedule(1, "m1", "svc", 1_000_000_000, 1_000_001_000);
    let all_maintenance = ledger.report(1_000_000_000, 1_000_001_000);
    assert_eq!(
        (all_maintenance.availability, all_maintenance.coverage),
        (None, None)
    );
}

#[test]
fn empty_and_inverted_windows_hold_nothing() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 90 * SECOND, 0.99);
    ledger.observe(0, "p1", "svc", 0, Status::Down);
    for (start, end) in [(10 * SECOND, 10 * SECOND), (20 * SECOND, 10 * SECOND)] {
        let report = ledger.report(start, end);
        assert_eq!(
            (report.end, report.down_ms, report.incident_count),
            (start, 0, 0)
        );
        assert_eq!(ledger.projection.incidents("svc", start, end).unwrap(), []);
        assert_eq!(ledger.timeline(start, end), []);
    }
}

#[test]
fn incidents_are_reported_whole_and_open_until_data_returns() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 30 * SECOND, 0.99);
    ledger.observe_every("p1", "svc", 0, 100 * SECOND, 10 * SECOND, Status::Up);
    ledger.observe_every(
        "p1",
        "svc",
        100 * SECOND,
        200 * SECOND,
        10 * SECOND,
        Status::Down,
    );
    // The last observation (190 s) is the latest evidence; `end` is where it goes stale.
    let open = Incident {
        start: 100_000,
        end: 220_000,
        open: true,
        probes: vec!["p1".to_string()],
        last_observed_at: Some(190_000),
    };
    assert_eq!(
        ledger
            .projection
            .incidents("svc", 150_000, 150_001)
            .unwrap(),
        std::slice::from_ref(&open)
    );
    assert_eq!(ledger.report(150_000, 150_001).incident_count, 1);
    assert_eq!(
        ledger
            .projection
            .incidents("svc", 220_000, 300_000)
            .unwrap(),
        []
    );
    // The probe comes back after a gap: the data did not run out, the incident is closed.
    ledger.observe(400 * SECOND, "p1", "svc", 400 * SECOND, Status::Up);
    let closed = Incident {
        open: false,
        last_observed_at: None,
        ..open
    };
    assert_eq!(
        ledger.projection.incidents("svc", 0, 500 * SECOND).unwrap(),
        [closed]
    );
}

#[test]
fn incident_ended_by_a_stale_down_probe_is_closed() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Any, 30 * SECOND, 0.99);
    ledger.observe(0, "p1", "svc", 0, Status::Up);
    ledger.observe(0, "p2", "svc", 0, Status::Down);
    ledger.observe(20 * SECOND, "p1", "svc", 20 * SECOND, Status::Up);
    // p2 goes stale at 30 s while p1 is still fresh: DOWN stopped, but not for lack of data.
    let incidents = ledger.projection.incidents("svc", 0, 60 * SECOND).unwrap();
    assert_eq!(
        incidents,
        [Incident {
            start: 0,
            end: 30_000,
            open: false,
            probes: vec!["p2".to_string()],
            last_observed_at: None,
        }]
    );
}

#[test]
fn undefined_services_and_ignored_inputs() {
    let mut ledger = Ledger::with_max_lateness(60 * SECOND);
    assert_eq!(ledger.projection.report("svc", 0, 1), None);
    ledger.observe(0, "p1", "svc", 0, Status::Down); // service not defined yet
    ledger.schedule(0, "m1", "svc", 0, 10);
    ledger.cancel(0, "nope");
    ledger.define(100 * SECOND, "svc", Quorum::Any, 90 * SECOND, 0.99);
    ledger.observe(200 * SECOND, "p1", "svc", 130 * SECOND, Status::Down); // beyond the finality horizon
    assert_eq!(
        ledger
            .projection
            .incidents("svc", i64::MIN, i64::MAX)
            .unwrap(),
        []
    );
    assert_eq!(ledger.projection.probes_for("svc").unwrap(), []);
    assert_eq!(ledger.projection.incidents("other", 0, 1), None);
    assert_eq!(ledger.projection.current_state("other", 0), X);
    // A replayed entry (index already applied) changes nothing.
    let applied = ledger.projection.applied_index().unwrap();
    ledger.projection.apply(ProjectionInput::Observation {
        index: applied,
        received_at: 200 * SECOND,
        probe_id: "p1".to_string(),
        service_id: "svc".to_string(),
        observed_at: 200 * SECOND,
        status: Status::Down,
    });
    assert_eq!(ledger.state(200 * SECOND), X);
    ledger.projection.advance_applied_index(applied + 10);
    assert_eq!(ledger.projection.applied_index(), Some(applied + 10));
}

#[test]
fn received_at_going_backwards_reads_as_the_running_maximum() {
    let mut ledger = Ledger::new();
    ledger.define(100 * SECOND, "svc", Quorum::Any, 90 * SECOND, 0.99);
    ledger.observe_every(
        "p1",
        "svc",
        100 * SECOND,
        200 * SECOND,
        10 * SECOND,
        Status::Up,
    );
    // Stamped 50 s, read as 190 s: the window cannot start before then.
    ledger.schedule(50 * SECOND, "m1", "svc", 60 * SECOND, 250 * SECOND);
    assert_eq!(
        ledger.timeline(100 * SECOND, 250 * SECOND),
        [(100_000, 190_000, U), (190_000, 250_000, M)]
    );
}

#[test]
fn steady_probes_cost_constant_memory() {
    let mut ledger = Ledger::new();
    ledger.define(0, "svc", Quorum::Majority, 90 * SECOND, 0.999);
    let day = 86_400 * SECOND;
    for observed_at in (0..day).step_by(10_000) {
        for probe in ["p1", "p2", "p3"] {
            ledger.observe(observed_at + 50, probe, "svc", observed_at, Status::Up);
        }
    }
    assert_eq!(ledger.projection.retained_runs(), 3 + 1);
    assert!(ledger.projection.retained_observations() <= 3 * 361);
    assert_eq!(ledger.report(0, day).up_ms, day as u64);
    ledger.projection.check_consistency().unwrap();
}

#[test]
fn services_list_latest_specs_in_definition_order() {
    let mut ledger = Ledger::new();
    ledger.define(0, "zeta", Quorum::Any, SECOND, 0.9);
    ledger.define(0, "alpha", Quorum::Any, SECOND, 0.9);
    ledger.define(5, "zeta", Quorum::All, SECOND, 0.95);
    let listed: Vec<(&str, f64)> = ledger
        .projection
        .services()
        .map(|spec| (spec.service_id.as_str(), spec.slo_target))
        .collect();
    assert_eq!(listed, [("zeta", 0.95), ("alpha", 0.9)]);
    assert_eq!(ledger.projection.spec("zeta").unwrap().quorum, Quorum::All);
}

fn any_input() -> impl Strategy<Value = ProjectionInput> {
    let time = prop_oneof![any::<i64>(), -1_000i64..1_000];
    let id = prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from);
    let status = prop_oneof![Just(Status::Up), Just(Status::Down)];
    let quorum = prop_oneof![
        Just(Quorum::Any),
        Just(Quorum::Majority),
        Just(Quorum::All),
        any::<u32>().prop_map(Quorum::AtLeast),
    ];
    prop_oneof![
        (
            any::<u64>(),
            time.clone(),
            id.clone(),
            quorum,
            time.clone(),
            any::<f64>()
        )
            .prop_map(
                |(index, received_at, service_id, quorum, staleness_ms, slo_target)| {
                    let spec = ServiceSpec {
                        service_id: ServiceId::parse_owned(service_id).unwrap(),
                        name: String::new(),
                        agency: String::new(),
                        slo_target,
                        quorum,
                        staleness: Duration::from_millis(staleness_ms.unsigned_abs()),
                    };
                    ProjectionInput::DefineService {
                        index,
                        received_at,
                        spec,
                    }
                }
            ),
        (
            any::<u64>(),
            time.clone(),
            id.clone(),
            id.clone(),
            time.clone(),
            status
        )
            .prop_map(
                |(index, received_at, probe_id, service_id, observed_at, status)| {
                    ProjectionInput::Observation {
                        index,
                        received_at,
                        probe_id,
                        service_id,
                        observed_at,
                        status,
                    }
                }
            ),
        (
            any::<u64>(),
            time.clone(),
            id.clone(),
            id.clone(),
            time.clone(),
            time.clone()
        )
            .prop_map(
                |(index, received_at, maintenance_id, service_id, start, end)| {
                    ProjectionInput::ScheduleMaintenance {
                        index,
                        received_at,
                        maintenance_id,
                        service_id,
                        start,
                        end,
                    }
                }
            ),
        (any::<u64>(), time, id).prop_map(|(index, received_at, maintenance_id)| {
            ProjectionInput::CancelMaintenance {
                index,
                received_at,
                maintenance_id,
            }
        }),
    ]
}

proptest! {
    /// Whatever the log holds (any times, any order of indexes, no
    /// lateness bound), the projection neither panics nor breaks an invariant.
    #[test]
    fn any_input_is_absorbed(
        inputs in prop::collection::vec(any_input(), 0..40),
        windows in prop::collection::vec((any::<i64>(), any::<i64>()), 1..4),
    ) {
        let mut projection = Projection::new(ProjectionConfig { max_lateness_ms: i64::MAX });
        let mut sorted = inputs;
        sorted.sort_by_key(|input| input.index() / 4); // mostly ordered, some replays
        for input in sorted {
            projection.apply(input);
        }
        prop_assert_eq!(projection.check_consistency(), Ok(()));
        for (start, end) in windows {
            for service_id in ["a", "b", "c"] {
                if let Some(report) = projection.report(service_id, start, end) {
                    let total = report.up_ms + report.down_ms + report.unknown_ms + report.maintenance_ms;
                    prop_assert_eq!(total, end.max(start).abs_diff(start));
                }
                projection.incidents(service_id, start, end);
                projection.timeline(service_id, start, end);
                projection.current_state(service_id, start);
            }
        }
        let decoded = Projection::decode(&projection.encode()).unwrap();
        prop_assert_eq!(decoded.encode(), projection.encode());
    }
}
