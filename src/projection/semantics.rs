//! The SLA rules of DESIGN.md ("Projections and SLA semantics (exact)"), one
//! small pure function each.
//!
//! The engine composes these rules incrementally; the table tests at the
//! bottom pin each rule on its own, with the edge cases the design calls out.

use super::model::{AvailabilityReport, Quorum, State};

/// The measure of each state inside a report window, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateMeasures {
    pub up_ms: u64,
    pub down_ms: u64,
    pub unknown_ms: u64,
    pub maintenance_ms: u64,
}

/// The first instant at which an observation made at `observed_at` is no
/// longer fresh: it is fresh on `[observed_at, observed_at + staleness)`.
///
/// A non-positive staleness makes the observation never fresh; saturating at
/// the end of representable time keeps absurd inputs from overflowing.
pub fn fresh_until(observed_at: i64, staleness_ms: i64) -> i64 {
    observed_at.saturating_add(staleness_ms.max(0))
}

/// The interval on which one observation sets its probe's state: from its
/// `observed_at` until it goes stale or the probe's next observation (in event
/// time) takes over, whichever comes first. It may be empty.
pub fn observation_interval(
    observed_at: i64,
    staleness_ms: i64,
    next_observed_at: Option<i64>,
) -> (i64, i64) {
    let stale_at = fresh_until(observed_at, staleness_ms);
    let end = next_observed_at.map_or(stale_at, |next| next.min(stale_at));
    (observed_at, end)
}

/// Whether the quorum policy calls the service DOWN when `probes_up` fresh
/// probes say UP and `probes_down` say DOWN (at least one probe is fresh).
pub fn quorum_reports_down(quorum: Quorum, probes_up: u32, probes_down: u32) -> bool {
    // u64 so that 2 * D and U + D cannot overflow.
    let (up, down) = (u64::from(probes_up), u64::from(probes_down));
    match quorum {
        Quorum::Any => down >= 1,
        Quorum::Majority => 2 * down > up + down,
        Quorum::All => down == up + down,
        Quorum::AtLeast(required) => down >= u64::from(required),
    }
}

/// The service state at one instant from the counts of fresh probes, the
/// quorum policy in force then and whether a maintenance window covers it.
pub fn service_state(
    quorum: Quorum,
    probes_up: u32,
    probes_down: u32,
    in_maintenance: bool,
) -> State {
    if in_maintenance {
        State::Maintenance
    } else if probes_up == 0 && probes_down == 0 {
        State::Unknown
    } else if quorum_reports_down(quorum, probes_up, probes_down) {
        State::Down
    } else {
        State::Up
    }
}

/// Where a maintenance window for `[start, end)` scheduled by an entry
/// received at `scheduled_at` takes effect: `[max(start, scheduled_at), end)`,
/// so that maintenance is never declared retroactively. It may be empty.
pub fn effective_maintenance(start: i64, end: i64, scheduled_at: i64) -> (i64, i64) {
    (start.max(scheduled_at), end)
}

/// An effective maintenance window after a cancel received at `cancelled_at`:
/// it ends at `max(cancelled_at, effective start)`, never later than before.
pub fn cut_by_cancel(effective: (i64, i64), cancelled_at: i64) -> (i64, i64) {
    let (start, end) = effective;
    (start, end.min(cancelled_at.max(start)))
}

/// The position of the service definition in force at `t`, among definitions
/// in log order whose `received_at` never decreases.
///
/// A definition is in force from its `received_at` until the next one; the
/// first also covers all earlier times. Of several received in the same
/// millisecond the one with the highest log index (the last) is in force.
/// `None` only when there is no definition at all.
pub fn definition_in_force_at<T>(
    definitions: &[T],
    received_at: impl Fn(&T) -> i64,
    t: i64,
) -> Option<usize> {
    if definitions.is_empty() {
        return None;
    }
    let received_by_t = definitions.partition_point(|definition| received_at(definition) <= t);
    Some(received_by_t.saturating_sub(1))
}

/// The availability report for `[start, end)` from the measure of each state
/// in it. Every engine and the reference implementation use this one formula,
/// so equal integer measures give bit-identical reports.
pub fn availability_report(
    start: i64,
    end: i64,
    measures: StateMeasures,
    slo_target: f64,
    incident_count: u64,
) -> AvailabilityReport {
    let measured_ms = measures.up_ms + measures.down_ms;
    let observable_ms = measured_ms + measures.unknown_ms;
    let availability = (measured_ms > 0).then(|| measures.up_ms as f64 / measured_ms as f64);
    let coverage = (observable_ms > 0).then(|| measured_ms as f64 / observable_ms as f64);
    let error_budget_ms = (1.0 - slo_target) * measured_ms as f64;
    AvailabilityReport {
        start,
        end,
        up_ms: measures.up_ms,
        down_ms: measures.down_ms,
        unknown_ms: measures.unknown_ms,
        maintenance_ms: measures.maintenance_ms,
        availability,
        coverage,
        slo_target,
        slo_met: availability.is_some_and(|value| value >= slo_target),
        error_budget_ms,
        error_budget_remaining_ms: error_budget_ms - measures.down_ms as f64,
        incident_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_table() {
        // (policy, fresh UP, fresh DOWN, expected service state)
        let table = [
            (Quorum::Any, 3, 0, State::Up),
            (Quorum::Any, 2, 1, State::Down),
            (Quorum::Majority, 2, 1, State::Up),
            (Quorum::Majority, 1, 1, State::Up), // 2D == K is a tie: UP
            (Quorum::Majority, 2, 2, State::Up),
            (Quorum::Majority, 1, 2, State::Down),
            (Quorum::Majority, 0, 1, State::Down),
            (Quorum::All, 0, 3, State::Down),
            (Quorum::All, 1, 2, State::Up),
            (Quorum::All, 0, 1, State::Down),
            (Quorum::AtLeast(2), 1, 2, State::Down),
            (Quorum::AtLeast(2), 3, 1, State::Up),
            (Quorum::AtLeast(5), 0, 3, State::Up), // k > K can never be DOWN
            (Quorum::AtLeast(0), 3, 0, State::Down), // D >= 0 holds whenever a probe is fresh
            (Quorum::Any, 0, 0, State::Unknown),
            (Quorum::AtLeast(0), 0, 0, State::Unknown),
        ];
        for (quorum, up, down, expected) in table {
            assert_eq!(
                service_state(quorum, up, down, false),
                expected,
                "{quorum:?} U={up} D={down}"
            );
        }
    }

    #[test]
    fn maintenance_overrides_every_state() {
        for (up, down) in [(0, 0), (1, 0), (0, 1)] {
            assert_eq!(
                service_state(Quorum::Any, up, down, true),
                State::Maintenance
            );
        }
    }

    #[test]
    fn freshness_ends_exactly_at_observed_at_plus_staleness() {
        assert_eq!(fresh_until(1_000, 90_000), 91_000);
        assert_eq!(fresh_until(1_000, 0), 1_000);
        assert_eq!(fresh_until(1_000, -5), 1_000);
        assert_eq!(fresh_until(i64::MAX - 1, 10), i64::MAX);
        // (observed_at, staleness, next observation, interval the observation governs)
        let table = [
            (100, 50, None, (100, 150)),
            (100, 50, Some(120), (100, 120)),
            (100, 50, Some(150), (100, 150)),
            (100, 50, Some(400), (100, 150)),
            (100, 0, None, (100, 100)),
        ];
        for (observed_at, staleness, next, expected) in table {
            assert_eq!(observation_interval(observed_at, staleness, next), expected);
        }
    }

    #[test]
    fn maintenance_windows_are_never_retroactive() {
        // (start, end, scheduled_at, cancelled_at, effective window)
        let table = [
            (100, 200, 50, None, (100, 200)),
            (100, 200, 150, None, (150, 200)), // retroactive start cut to received_at
            (100, 200, 250, None, (250, 200)), // entirely in the past: empty
            (100, 200, 50, Some(80), (100, 100)), // cancelled before start: empty
            (100, 200, 50, Some(130), (100, 130)), // cancelled during
            (100, 200, 50, Some(300), (100, 200)), // cancelled after the end: unchanged
            (100, 200, 150, Some(160), (150, 160)), // retroactive, then cancelled
        ];
        for (start, end, scheduled_at, cancelled_at, expected) in table {
            let effective = effective_maintenance(start, end, scheduled_at);
            let window = cancelled_at.map_or(effective, |cancelled_at| {
                cut_by_cancel(effective, cancelled_at)
            });
            assert_eq!(
                window, expected,
                "[{start}, {end}) scheduled at {scheduled_at}, cancelled at {cancelled_at:?}"
            );
        }
    }

    #[test]
    fn definition_in_force_covers_earlier_times_and_ties_go_to_the_last() {
        let received = [100, 200, 200, 300];
        let at = |t| definition_in_force_at(&received, |r| *r, t);
        assert_eq!(at(-5), Some(0)); // the first definition covers earlier times
        assert_eq!(at(100), Some(0));
        assert_eq!(at(199), Some(0));
        assert_eq!(at(200), Some(2)); // same received_at: the higher log index wins
        assert_eq!(at(299), Some(2));
        assert_eq!(at(300), Some(3));
        assert_eq!(definition_in_force_at(&[] as &[i64], |r| *r, 0), None);
    }

    #[test]
    fn report_formulas() {
        let measures = StateMeasures {
            up_ms: 900,
            down_ms: 100,
            unknown_ms: 500,
            maintenance_ms: 500,
        };
        let report = availability_report(0, 2_000, measures, 0.95, 2);
        assert_eq!(report.availability, Some(0.9));
        assert_eq!(report.coverage, Some(1_000.0 / 1_500.0));
        assert!(!report.slo_met);
        assert_eq!(report.error_budget_ms, (1.0 - 0.95) * 1_000.0);
        assert_eq!(
            report.error_budget_remaining_ms,
            (1.0 - 0.95) * 1_000.0 - 100.0
        );
        assert_eq!(report.incident_count, 2);

        let met = availability_report(
            0,
            1_000,
            StateMeasures {
                up_ms: 1_000,
                ..Default::default()
            },
            1.0,
            0,
        );
        assert!(met.slo_met); // availability >= target, equality included

        let nothing_measured = availability_report(
            0,
            10,
            StateMeasures {
                unknown_ms: 10,
                ..Default::default()
            },
            0.99,
            0,
        );
        assert_eq!(
            (nothing_measured.availability, nothing_measured.coverage),
            (None, Some(0.0))
        );
        assert!(!nothing_measured.slo_met);

        let all_maintenance = availability_report(
            0,
            10,
            StateMeasures {
                maintenance_ms: 10,
                ..Default::default()
            },
            0.99,
            0,
        );
        assert_eq!(
            (all_maintenance.availability, all_maintenance.coverage),
            (None, None)
        );
        assert_eq!(all_maintenance.error_budget_ms, 0.0);
    }
}
