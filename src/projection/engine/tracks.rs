//! One service's and one probe's history inside the [`Projection`](super::Projection): the probe
//! state and the service timeline as step functions (runs), kept up to date by
//! recomputing and splicing only the span an entry changes, and the sweep that
//! derives the service state from probe runs, maintenance and definitions.

use std::collections::{BTreeMap, VecDeque};

use crate::projection::model::{Quorum, ServiceSpec, State, Status};
use crate::projection::runs::{self, Run};
use crate::projection::semantics;

/// The end of representable time, standing for "until further notice".
pub(super) const END_OF_TIME: i64 = i64::MAX;

/// Everything known about one service.
#[derive(Debug, Clone)]
pub(in crate::projection) struct ServiceTrack {
    /// Never empty; log order, `received_at` non-decreasing.
    pub(in crate::projection) definitions: Vec<Definition>,
    /// Keyed by probe id, so iteration (and incident probe lists) is sorted.
    pub(in crate::projection) probes: BTreeMap<String, ProbeTrack>,
    /// In scheduling order.
    pub(in crate::projection) maintenance: Vec<MaintenanceWindow>,
    /// Derived: the union of the effective maintenance windows.
    pub(super) maintenance_union: Vec<(i64, i64)>,
    /// Derived: the service state as canonical runs (never UNKNOWN: gaps are).
    pub(super) timeline: Vec<Run<State>>,
    /// Derived: `rollups[i]` sums `timeline[..i]`.
    pub(super) rollups: Vec<Rollup>,
}

#[derive(Debug, Clone, PartialEq)]
pub(in crate::projection) struct Definition {
    pub(in crate::projection) received_at: i64,
    pub(in crate::projection) spec: ServiceSpec,
}

/// One probe's history for one service.
#[derive(Debug, Clone, Default)]
pub(in crate::projection) struct ProbeTrack {
    /// The probe state as canonical runs (never UNKNOWN: gaps are).
    pub(in crate::projection) runs: Vec<Run<Status>>,
    /// The observations at or after the finality horizon, by `observed_at`,
    /// one per instant. Older ones are dropped lazily on the next observation.
    pub(in crate::projection) recent: VecDeque<RetainedObservation>,
    /// The latest observation in event time (kept when `recent` is drained).
    pub(in crate::projection) latest: Option<RetainedObservation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::projection) struct RetainedObservation {
    pub(in crate::projection) observed_at: i64,
    pub(in crate::projection) status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::projection) struct MaintenanceWindow {
    pub(in crate::projection) maintenance_id: String,
    /// Already `max(start, received_at)` and cut by a cancel; may be empty.
    pub(in crate::projection) effective_start: i64,
    pub(in crate::projection) effective_end: i64,
    pub(in crate::projection) cancelled: bool,
}

/// Measures of the timeline before some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Rollup {
    pub(super) up_ms: u64,
    pub(super) down_ms: u64,
    pub(super) maintenance_ms: u64,
    /// DOWN runs started before the instant (each is one incident).
    pub(super) incidents: u64,
}

impl ServiceTrack {
    /// A service from its stored parts, with the derived parts computed.
    pub(in crate::projection) fn from_parts(
        definitions: Vec<Definition>,
        probes: BTreeMap<String, ProbeTrack>,
        maintenance: Vec<MaintenanceWindow>,
    ) -> ServiceTrack {
        let mut service = ServiceTrack {
            definitions,
            probes,
            maintenance,
            maintenance_union: Vec::new(),
            timeline: Vec::new(),
            rollups: Vec::new(),
        };
        service.rebuild_maintenance_union();
        service.recompute_timeline(i64::MIN, END_OF_TIME);
        service
    }

    pub(super) fn latest_definition(&self) -> &Definition {
        &self.definitions[self.definitions.len() - 1]
    }

    pub(super) fn definition_at(&self, t: i64) -> &Definition {
        &self.definitions[definition_position_at(&self.definitions, t)]
    }

    pub(super) fn latest_observed_at(&self) -> Option<i64> {
        self.probes
            .values()
            .filter_map(|probe| probe.latest)
            .map(|latest| latest.observed_at)
            .max()
    }

    /// A new definition changes the staleness of observations made from its
    /// `received_at` on and the quorum from then on; nothing before.
    pub(super) fn redefine(&mut self, definition: Definition) {
        let in_force_from = definition.received_at;
        self.definitions.push(definition);
        for probe in self.probes.values_mut() {
            probe.restale_from(in_force_from, &self.definitions);
        }
        self.recompute_timeline(in_force_from, END_OF_TIME);
    }

    pub(super) fn rebuild_maintenance_union(&mut self) {
        self.maintenance_union = runs::union_of(
            self.maintenance
                .iter()
                .map(|window| (window.effective_start, window.effective_end)),
        );
    }

    /// Recomputes the service state on `[from, to)` from the probes' runs and
    /// splices it in, then brings the rollups after the splice up to date.
    pub(super) fn recompute_timeline(&mut self, from: i64, to: i64) {
        if from >= to {
            return;
        }
        let replacement = sweep_service_state(
            &self.definitions,
            &self.probes,
            &self.maintenance_union,
            from,
            to,
        );
        let first_changed = runs::replace_span(&mut self.timeline, from, to, &replacement);
        self.rollups.truncate(first_changed);
        let mut rollup = match first_changed.checked_sub(1) {
            Some(previous) => self.rollups[previous].including(&self.timeline[previous]),
            None => Rollup::default(),
        };
        for run in &self.timeline[first_changed..] {
            self.rollups.push(rollup);
            rollup = rollup.including(run);
        }
    }

    /// The measures of the timeline on `(-inf, t)`.
    pub(super) fn rollup_before(&self, t: i64) -> Rollup {
        let started_before = self.timeline.partition_point(|run| run.start < t);
        match started_before.checked_sub(1) {
            None => Rollup::default(),
            Some(last) => {
                let run = &self.timeline[last];
                self.rollups[last].including(&Run {
                    start: run.start,
                    end: run.end.min(t),
                    value: run.value,
                })
            }
        }
    }

    /// DOWN runs with `start < end` and `end > start`, by two prefix counts.
    pub(super) fn incidents_intersecting(&self, start: i64, end: i64) -> u64 {
        if start >= end {
            return 0;
        }
        let started_before_end = self.rollup_before(end).incidents;
        let ended_by_start = self.timeline.partition_point(|run| run.end <= start);
        let ended_before_start = match self.rollups.get(ended_by_start) {
            Some(rollup) => rollup.incidents,
            None => self.rollup_before(END_OF_TIME).incidents,
        };
        started_before_end - ended_before_start
    }

    pub(super) fn probes_down_within(&self, start: i64, end: i64) -> Vec<String> {
        self.probes
            .iter()
            .filter(|(_, probe)| {
                let first = probe.runs.partition_point(|run| run.end <= start);
                probe.runs[first..]
                    .iter()
                    .take_while(|run| run.start < end)
                    .any(|run| run.value == Status::Down)
            })
            .map(|(probe_id, _)| probe_id.clone())
            .collect()
    }
}

impl ProbeTrack {
    /// Adds one observation (replacing one at the same instant: the later log
    /// index wins) and returns where the probe state changed.
    ///
    /// The observation governs `[observed_at, next observed_at)` and nothing
    /// else: before it the earlier observations still rule, from the next one
    /// on the later ones do. Every observation that can follow an admissible
    /// one is at or after the horizon, hence still in `recent`.
    pub(super) fn record(
        &mut self,
        observation: RetainedObservation,
        staleness_ms: i64,
        finality_horizon: i64,
    ) -> Option<(i64, i64)> {
        while self
            .recent
            .front()
            .is_some_and(|retained| retained.observed_at < finality_horizon)
        {
            self.recent.pop_front();
        }
        if self
            .latest
            .is_none_or(|latest| observation.observed_at >= latest.observed_at)
        {
            self.latest = Some(observation);
        }
        // Observations mostly arrive in event-time order: then the new one goes last.
        let position = if self
            .recent
            .back()
            .is_none_or(|newest| newest.observed_at < observation.observed_at)
        {
            self.recent.len()
        } else {
            self.recent
                .partition_point(|retained| retained.observed_at < observation.observed_at)
        };
        match self.recent.get_mut(position) {
            Some(same_instant) if same_instant.observed_at == observation.observed_at => {
                same_instant.status = observation.status
            }
            _ => self.recent.insert(position, observation),
        }
        let next_observed_at = self.recent.get(position + 1).map(|next| next.observed_at);
        let (start, end) = semantics::observation_interval(
            observation.observed_at,
            staleness_ms,
            next_observed_at,
        );
        let governed = [Run {
            start,
            end,
            value: observation.status,
        }];
        let replacement: &[Run<Status>] = if start < end { &governed } else { &[] };
        self.replace_state(
            observation.observed_at,
            next_observed_at.unwrap_or(END_OF_TIME),
            replacement,
        )
    }

    /// Recomputes the probe state from the first observation made at or after
    /// `in_force_from` on, with the staleness now in force at each.
    fn restale_from(&mut self, in_force_from: i64, definitions: &[Definition]) {
        let first = self
            .recent
            .partition_point(|retained| retained.observed_at < in_force_from);
        let Some(from) = self.recent.get(first).map(|retained| retained.observed_at) else {
            return;
        };
        let replacement = governed_runs(self.recent.range(first..), definitions);
        // The caller recomputes the service from `in_force_from` on, which
        // covers whatever changed here.
        self.replace_state(from, END_OF_TIME, &replacement);
    }

    fn replace_state(
        &mut self,
        from: i64,
        to: i64,
        replacement: &[Run<Status>],
    ) -> Option<(i64, i64)> {
        if from >= to {
            return None;
        }
        let previous = runs::clipped(&self.runs, from, to);
        let changed = runs::differing_span(&previous, replacement)?;
        runs::replace_span(&mut self.runs, from, to, replacement);
        Some(changed)
    }
}

impl Rollup {
    pub(super) fn including(self, run: &Run<State>) -> Rollup {
        let length_ms = run.length_ms();
        let mut next = self;
        match run.value {
            State::Up => next.up_ms += length_ms,
            State::Down => {
                next.down_ms += length_ms;
                next.incidents += 1;
            }
            State::Maintenance => next.maintenance_ms += length_ms,
            State::Unknown => {}
        }
        next
    }
}

fn definition_position_at(definitions: &[Definition], t: i64) -> usize {
    semantics::definition_in_force_at(definitions, |definition| definition.received_at, t)
        .unwrap_or(0)
}

/// The probe state produced by consecutive observations (sorted, one per
/// instant), each with the staleness in force at its `observed_at`.
pub(super) fn governed_runs<'a>(
    observations: impl Iterator<Item = &'a RetainedObservation>,
    definitions: &[Definition],
) -> Vec<Run<Status>> {
    let mut runs = Vec::new();
    let mut observations = observations.peekable();
    while let Some(observation) = observations.next() {
        let staleness_ms = definitions
            [definition_position_at(definitions, observation.observed_at)]
        .spec
        .staleness_ms();
        let next_observed_at = observations.peek().map(|next| next.observed_at);
        let (start, end) = semantics::observation_interval(
            observation.observed_at,
            staleness_ms,
            next_observed_at,
        );
        runs::push_merged(
            &mut runs,
            Run {
                start,
                end,
                value: observation.status,
            },
        );
    }
    runs
}

/// The service state on `[from, to)` as canonical runs, by a sweep over the
/// instants where a probe state, the maintenance or the definition in force
/// changes. Costs the number of such instants plus a binary search per probe.
pub(super) fn sweep_service_state(
    definitions: &[Definition],
    probes: &BTreeMap<String, ProbeTrack>,
    maintenance_union: &[(i64, i64)],
    from: i64,
    to: i64,
) -> Vec<Run<State>> {
    let mut cursors: Vec<(&[Run<Status>], usize)> = probes
        .values()
        .map(|probe| {
            (
                probe.runs.as_slice(),
                probe.runs.partition_point(|run| run.end <= from),
            )
        })
        .collect();
    let mut maintenance_cursor = maintenance_union.partition_point(|window| window.1 <= from);
    let mut definition_position = definition_position_at(definitions, from);
    let mut swept = Vec::new();
    let mut t = from;
    while t < to {
        let mut next_change = to;
        let (mut probes_up, mut probes_down) = (0u32, 0u32);
        for (probe_runs, cursor) in &mut cursors {
            while probe_runs.get(*cursor).is_some_and(|run| run.end <= t) {
                *cursor += 1;
            }
            if let Some(run) = probe_runs.get(*cursor) {
                if run.start <= t {
                    match run.value {
                        Status::Up => probes_up += 1,
                        Status::Down => probes_down += 1,
                    }
                    next_change = next_change.min(run.end);
                } else {
                    next_change = next_change.min(run.start);
                }
            }
        }
        while maintenance_union
            .get(maintenance_cursor)
            .is_some_and(|window| window.1 <= t)
        {
            maintenance_cursor += 1;
        }
        let in_maintenance = match maintenance_union.get(maintenance_cursor) {
            Some(&(start, end)) if start <= t => {
                next_change = next_change.min(end);
                true
            }
            Some(&(start, _)) => {
                next_change = next_change.min(start);
                false
            }
            None => false,
        };
        while definitions
            .get(definition_position + 1)
            .is_some_and(|next| next.received_at <= t)
        {
            definition_position += 1;
        }
        if let Some(next) = definitions.get(definition_position + 1) {
            next_change = next_change.min(next.received_at);
        }
        let quorum = definitions
            .get(definition_position)
            .map_or(Quorum::Majority, |definition| definition.spec.quorum);
        let state = semantics::service_state(quorum, probes_up, probes_down, in_maintenance);
        if state != State::Unknown {
            runs::push_merged(
                &mut swept,
                Run {
                    start: t,
                    end: next_change,
                    value: state,
                },
            );
        }
        t = next_change;
    }
    swept
}
