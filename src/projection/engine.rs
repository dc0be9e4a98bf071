//! The incremental projection: applies log entries one at a time and answers
//! reports, incidents and timelines for any window in O(log n).
//!
//! # How it is kept
//!
//! For each (service, probe), the probe state is a step function stored as
//! runs ([`Run`]), plus the raw observations that a late observation may
//! still land between (those inside the lateness window). For each service,
//! the service state is a second step function (the timeline) with a rollup
//! per run: the up, down and maintenance milliseconds and the DOWN runs
//! before it. A report is two binary searches and a subtraction.
//!
//! # Why updates stay cheap
//!
//! Every entry changes the past only from a bounded instant on: an
//! observation from its `observed_at` to the probe's next observation, a
//! definition from its `received_at`, a maintenance window from its effective
//! start. Each of these instants is at or after the *finality horizon*
//! (newest `received_at` − `max_lateness`), so only the tail of each step
//! function is ever recomputed and spliced; everything before the horizon is
//! final. The raw observations kept are exactly those at or after the
//! horizon, which is what makes the next-observation lookup exact.
//!
//! # Invariants (checked by [`Projection::check_consistency`])
//!
//! - Runs are canonical: sorted, non-overlapping, no two touching runs equal.
//! - A probe's runs from its oldest retained observation on are exactly what
//!   the retained observations produce.
//! - A service's timeline is exactly the sweep of its probes' runs, its
//!   maintenance and its definitions; its rollups are the prefix sums of it.
//! - Definitions of a service are in log order with non-decreasing
//!   `received_at`, and there is at least one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::mem::size_of;

use super::model::{
    AvailabilityReport, Incident, Interval, Maintenance, ProbeSummary, ProjectionInput, Quorum,
    ServiceSpec, State, Status,
};
use super::runs::{self, Run};
use super::semantics::{self, StateMeasures};

/// DESIGN.md's default `max_lateness` (1 h), used when the genesis names none.
const DEFAULT_MAX_LATENESS_MS: i64 = 3_600_000;

/// The end of representable time, standing for "until further notice".
const END_OF_TIME: i64 = i64::MAX;

/// What the projection needs from the genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionConfig {
    /// The genesis `max_lateness`. An observation older than the newest
    /// `received_at` minus this can no longer change anything; the projection
    /// therefore keeps raw observations only for this long. A log accepted
    /// under a bound no larger than this projects exactly per DESIGN.md.
    pub max_lateness_ms: i64,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            max_lateness_ms: DEFAULT_MAX_LATENESS_MS,
        }
    }
}

/// The state of every service, derived from a log prefix. Pure: it never
/// reads the clock and does no I/O.
#[derive(Debug, Clone)]
pub struct Projection {
    pub(super) config: ProjectionConfig,
    pub(super) applied_index: Option<u64>,
    /// The running maximum of `received_at`, which is how the projection reads
    /// every entry's `received_at` (see [`Projection::apply`]).
    pub(super) latest_received_at: Option<i64>,
    /// In order of first definition, which is the order `services()` lists.
    pub(super) services: Vec<ServiceTrack>,
    pub(super) service_positions: HashMap<String, usize>,
    pub(super) maintenance_positions: HashMap<String, MaintenancePosition>,
}

/// Where a maintenance window lives: `services[service].maintenance[window]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MaintenancePosition {
    pub(super) service: usize,
    pub(super) window: usize,
}

/// Everything known about one service.
#[derive(Debug, Clone)]
pub(super) struct ServiceTrack {
    /// Never empty; log order, `received_at` non-decreasing.
    pub(super) definitions: Vec<Definition>,
    /// Keyed by probe id, so iteration (and incident probe lists) is sorted.
    pub(super) probes: BTreeMap<String, ProbeTrack>,
    /// In scheduling order.
    pub(super) maintenance: Vec<MaintenanceWindow>,
    /// Derived: the union of the effective maintenance windows.
    maintenance_union: Vec<(i64, i64)>,
    /// Derived: the service state as canonical runs (never UNKNOWN: gaps are).
    timeline: Vec<Run<State>>,
    /// Derived: `rollups[i]` sums `timeline[..i]`.
    rollups: Vec<Rollup>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Definition {
    pub(super) received_at: i64,
    pub(super) spec: ServiceSpec,
}

/// One probe's history for one service.
#[derive(Debug, Clone, Default)]
pub(super) struct ProbeTrack {
    /// The probe state as canonical runs (never UNKNOWN: gaps are).
    pub(super) runs: Vec<Run<Status>>,
    /// The observations at or after the finality horizon, by `observed_at`,
    /// one per instant. Older ones are dropped lazily on the next observation.
    pub(super) recent: VecDeque<RetainedObservation>,
    /// The latest observation in event time (kept when `recent` is drained).
    pub(super) latest: Option<RetainedObservation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RetainedObservation {
    pub(super) observed_at: i64,
    pub(super) status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MaintenanceWindow {
    pub(super) maintenance_id: String,
    /// Already `max(start, received_at)` and cut by a cancel; may be empty.
    pub(super) effective_start: i64,
    pub(super) effective_end: i64,
    pub(super) cancelled: bool,
}

/// Measures of the timeline before some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Rollup {
    up_ms: u64,
    down_ms: u64,
    maintenance_ms: u64,
    /// DOWN runs started before the instant (each is one incident).
    incidents: u64,
}

impl Projection {
    /// The projection of the empty log. A negative `max_lateness` reads as 0.
    pub fn new(config: ProjectionConfig) -> Projection {
        Projection {
            config: ProjectionConfig {
                max_lateness_ms: config.max_lateness_ms.max(0),
            },
            applied_index: None,
            latest_received_at: None,
            services: Vec::new(),
            service_positions: HashMap::new(),
            maintenance_positions: HashMap::new(),
        }
    }

    /// The configuration in use; a decoded snapshot carries the one it was
    /// built with, which the caller compares with the genesis.
    pub fn config(&self) -> ProjectionConfig {
        self.config
    }

    /// Applies one log entry. Entries must come in log-index order; one at or
    /// below [`Projection::applied_index`] was already applied and is ignored.
    ///
    /// Each entry's `received_at` is read as the running maximum over the
    /// prefix, so time never goes backwards in the projection (the ledger
    /// stamps non-decreasing times; this keeps the rules sound if it did not).
    /// Entries that do not apply are ignored, never an error: an observation,
    /// maintenance or cancel for an undefined service or unknown maintenance
    /// id, a second schedule of a maintenance id, a second cancel, and an
    /// observation older than the finality horizon (one the ledger's
    /// `max_lateness` bound rejects).
    pub fn apply(&mut self, input: ProjectionInput) {
        let index = input.index();
        if self.applied_index.is_some_and(|applied| index <= applied) {
            return;
        }
        self.applied_index = Some(index);
        let received_at = self
            .latest_received_at
            .map_or(input.received_at(), |latest| {
                latest.max(input.received_at())
            });
        self.latest_received_at = Some(received_at);
        match input {
            ProjectionInput::DefineService { spec, .. } => self.define_service(received_at, spec),
            ProjectionInput::Observation {
                probe_id,
                service_id,
                observed_at,
                status,
                ..
            } => self.record_observation(
                received_at,
                &service_id,
                probe_id,
                RetainedObservation {
                    observed_at,
                    status,
                },
            ),
            ProjectionInput::ScheduleMaintenance {
                maintenance_id,
                service_id,
                start,
                end,
                ..
            } => self.schedule_maintenance(received_at, maintenance_id, &service_id, start, end),
            ProjectionInput::CancelMaintenance { maintenance_id, .. } => {
                self.cancel_maintenance(received_at, &maintenance_id)
            }
        }
    }

    /// Records that the log entry at `index` has no effect on projections
    /// (genesis, probe registration or revocation), so that
    /// [`Projection::applied_index`] names the whole prefix read.
    pub fn advance_applied_index(&mut self, index: u64) {
        if self.applied_index.is_none_or(|applied| index > applied) {
            self.applied_index = Some(index);
        }
    }

    /// The log index of the last entry applied: the projection is a function
    /// of the prefix `[0, applied_index]`.
    pub fn applied_index(&self) -> Option<u64> {
        self.applied_index
    }

    /// The latest spec of every service, in order of first definition.
    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> + '_ {
        self.services
            .iter()
            .map(|service| &service.latest_definition().spec)
    }

    /// The latest spec of a service, or `None` when it was never defined.
    pub fn spec(&self, service_id: &str) -> Option<&ServiceSpec> {
        self.service(service_id)
            .map(|service| &service.latest_definition().spec)
    }

    /// Every probe that ever reported on the service, sorted by probe id.
    pub fn probes_for(&self, service_id: &str) -> Option<Vec<ProbeSummary>> {
        let service = self.service(service_id)?;
        Some(
            service
                .probes
                .iter()
                .filter_map(|(probe_id, probe)| {
                    probe.latest.map(|latest| ProbeSummary {
                        probe_id: probe_id.clone(),
                        last_observed_at: latest.observed_at,
                        last_status: latest.status,
                    })
                })
                .collect(),
        )
    }

    /// The service's maintenance windows in scheduling order, each as in force
    /// (effective start, cut by a cancel); `None` for an undefined service.
    pub fn maintenance(&self, service_id: &str) -> Option<Vec<Maintenance>> {
        let service = self.service(service_id)?;
        Some(
            service
                .maintenance
                .iter()
                .map(|window| Maintenance {
                    maintenance_id: window.maintenance_id.clone(),
                    start: window.effective_start,
                    end: window.effective_end,
                    cancelled: window.cancelled,
                })
                .collect(),
        )
    }

    /// The service state at instant `at`. A service never defined is UNKNOWN
    /// at every instant (callers tell "not found" apart with [`Projection::spec`]).
    pub fn current_state(&self, service_id: &str, at: i64) -> State {
        self.service(service_id)
            .and_then(|service| runs::value_at(&service.timeline, at))
            .unwrap_or(State::Unknown)
    }

    /// The state at `at` and since when it holds: the start of the timeline run
    /// containing `at`, or for UNKNOWN the end of the last run before `at`
    /// (`None` when nothing was known before). `None` for an undefined service.
    pub fn state_since(&self, service_id: &str, at: i64) -> Option<(State, Option<i64>)> {
        let service = self.service(service_id)?;
        let following = service.timeline.partition_point(|run| run.start <= at);
        Some(
            match following.checked_sub(1).map(|i| &service.timeline[i]) {
                Some(run) if at < run.end => (run.value, Some(run.start)),
                Some(run) => (State::Unknown, Some(run.end)),
                None => (State::Unknown, None),
            },
        )
    }

    /// The availability report over `[start, end)`, or `None` for an undefined
    /// service. An inverted window is read as the empty window at `start`
    /// (the RPC layer rejects it before asking). O(log n) for any window.
    pub fn report(&self, service_id: &str, start: i64, end: i64) -> Option<AvailabilityReport> {
        let service = self.service(service_id)?;
        let end = end.max(start);
        let before_end = service.rollup_before(end);
        let before_start = service.rollup_before(start);
        let up_ms = before_end.up_ms - before_start.up_ms;
        let down_ms = before_end.down_ms - before_start.down_ms;
        let maintenance_ms = before_end.maintenance_ms - before_start.maintenance_ms;
        let measures = StateMeasures {
            up_ms,
            down_ms,
            maintenance_ms,
            unknown_ms: end.abs_diff(start) - up_ms - down_ms - maintenance_ms,
        };
        let slo_target = service.definition_at(end.saturating_sub(1)).spec.slo_target;
        let incident_count = service.incidents_intersecting(start, end);
        Some(semantics::availability_report(
            start,
            end,
            measures,
            slo_target,
            incident_count,
        ))
    }

    /// The incidents intersecting `[start, end)`, each whole (not cut to the
    /// window), by start time; `None` for an undefined service.
    pub fn incidents(&self, service_id: &str, start: i64, end: i64) -> Option<Vec<Incident>> {
        let service = self.service(service_id)?;
        if start >= end {
            // An empty or inverted window intersects nothing.
            return Some(Vec::new());
        }
        let latest_observed_at = service.latest_observed_at();
        let first = service.timeline.partition_point(|run| run.end <= start);
        let incidents = service.timeline[first..]
            .iter()
            .enumerate()
            .take_while(|(_, run)| run.start < end)
            .filter(|(_, run)| run.value == State::Down)
            .map(|(offset, run)| {
                let followed_by_known_state = service
                    .timeline
                    .get(first + offset + 1)
                    .is_some_and(|next| next.start == run.end);
                let observed_since = latest_observed_at.is_some_and(|latest| latest >= run.end);
                Incident {
                    start: run.start,
                    end: run.end,
                    open: !followed_by_known_state && !observed_since,
                    probes: service.probes_down_within(run.start, run.end),
                }
            })
            .collect();
        Some(incidents)
    }

    /// The service state over `[start, end)` as intervals that cover the
    /// window exactly (UNKNOWN included), cut to it, adjacent equal states
    /// merged; `None` for an undefined service.
    pub fn timeline(&self, service_id: &str, start: i64, end: i64) -> Option<Vec<Interval>> {
        let service = self.service(service_id)?;
        if start >= end {
            return Some(Vec::new());
        }
        let mut intervals = Vec::new();
        let mut covered_until = start;
        let first = service.timeline.partition_point(|run| run.end <= start);
        for run in service.timeline[first..]
            .iter()
            .take_while(|run| run.start < end)
        {
            let piece_start = run.start.max(start);
            if covered_until < piece_start {
                intervals.push(Interval {
                    start: covered_until,
                    end: piece_start,
                    state: State::Unknown,
                });
            }
            covered_until = run.end.min(end);
            intervals.push(Interval {
                start: piece_start,
                end: covered_until,
                state: run.value,
            });
        }
        if covered_until < end {
            intervals.push(Interval {
                start: covered_until,
                end,
                state: State::Unknown,
            });
        }
        Some(intervals)
    }

    /// Probe runs plus timeline runs held in memory: what grows with state
    /// changes (a steady probe costs O(1) runs however long it runs).
    pub fn retained_runs(&self) -> usize {
        self.services
            .iter()
            .map(|service| {
                service.timeline.len()
                    + service
                        .probes
                        .values()
                        .map(|probe| probe.runs.len())
                        .sum::<usize>()
            })
            .sum()
    }

    /// Raw observations held in memory: at most those within `max_lateness`
    /// of the newest `received_at`, independent of history length.
    pub fn retained_observations(&self) -> usize {
        self.services
            .iter()
            .flat_map(|service| service.probes.values())
            .map(|probe| probe.recent.len())
            .sum()
    }

    /// An estimate of the heap the projection holds, for metrics: probe runs
    /// take 24 bytes each, timeline runs 56 (with their rollup), retained
    /// observations 16.
    pub fn approximate_heap_bytes(&self) -> usize {
        let per_service = |service: &ServiceTrack| {
            let probes: usize = service
                .probes
                .iter()
                .map(|(probe_id, probe)| {
                    probe_id.len()
                        + size_of::<ProbeTrack>()
                        + probe.runs.capacity() * size_of::<Run<Status>>()
                        + probe.recent.capacity() * size_of::<RetainedObservation>()
                })
                .sum();
            size_of::<ServiceTrack>()
                + probes
                + service.definitions.capacity() * size_of::<Definition>()
                + service.maintenance.capacity() * size_of::<MaintenanceWindow>()
                + service.timeline.capacity() * size_of::<Run<State>>()
                + service.rollups.capacity() * size_of::<Rollup>()
        };
        self.services.iter().map(per_service).sum()
    }

    /// Validates every invariant listed in the module docs, recomputing the
    /// derived timelines and rollups from scratch. O(n); for tests and for
    /// checking a decoded snapshot.
    pub fn check_consistency(&self) -> Result<(), String> {
        if self.service_positions.len() != self.services.len() {
            return Err("service index does not match the services".to_string());
        }
        for (position, service) in self.services.iter().enumerate() {
            let service_id = &service
                .definitions
                .first()
                .ok_or_else(|| format!("service {position} has no definition"))?
                .spec
                .service_id;
            if self.service_positions.get(service_id) != Some(&position) {
                return Err(format!(
                    "service {service_id} is not indexed at its position"
                ));
            }
            service
                .check_consistency()
                .map_err(|problem| format!("service {service_id}: {problem}"))?;
        }
        let window_count: usize = self
            .services
            .iter()
            .map(|service| service.maintenance.len())
            .sum();
        if window_count != self.maintenance_positions.len() {
            return Err("maintenance index does not match the windows".to_string());
        }
        for (maintenance_id, position) in &self.maintenance_positions {
            let indexed = self
                .services
                .get(position.service)
                .and_then(|service| service.maintenance.get(position.window))
                .is_some_and(|window| &window.maintenance_id == maintenance_id);
            if !indexed {
                return Err(format!(
                    "maintenance {maintenance_id} is not indexed at its position"
                ));
            }
        }
        Ok(())
    }

    /// Builds a projection from its stored parts, deriving the rest.
    pub(super) fn from_parts(
        config: ProjectionConfig,
        applied_index: Option<u64>,
        latest_received_at: Option<i64>,
        services: Vec<ServiceTrack>,
    ) -> Result<Projection, String> {
        let mut projection = Projection::new(config);
        projection.applied_index = applied_index;
        projection.latest_received_at = latest_received_at;
        for (position, service) in services.iter().enumerate() {
            let service_id = &service
                .definitions
                .first()
                .ok_or("a service has no definition")?
                .spec
                .service_id;
            if projection
                .service_positions
                .insert(service_id.clone(), position)
                .is_some()
            {
                return Err(format!("service {service_id} appears twice"));
            }
            for (window, maintenance) in service.maintenance.iter().enumerate() {
                let position = MaintenancePosition {
                    service: position,
                    window,
                };
                if projection
                    .maintenance_positions
                    .insert(maintenance.maintenance_id.clone(), position)
                    .is_some()
                {
                    return Err(format!(
                        "maintenance {} appears twice",
                        maintenance.maintenance_id
                    ));
                }
            }
        }
        projection.services = services;
        Ok(projection)
    }

    fn service(&self, service_id: &str) -> Option<&ServiceTrack> {
        self.service_positions
            .get(service_id)
            .map(|&position| &self.services[position])
    }

    fn define_service(&mut self, received_at: i64, spec: ServiceSpec) {
        match self.service_positions.get(&spec.service_id) {
            Some(&position) => self.services[position].redefine(Definition { received_at, spec }),
            None => {
                self.service_positions
                    .insert(spec.service_id.clone(), self.services.len());
                let definition = Definition { received_at, spec };
                self.services.push(ServiceTrack::from_parts(
                    vec![definition],
                    BTreeMap::new(),
                    Vec::new(),
                ));
            }
        }
    }

    fn record_observation(
        &mut self,
        received_at: i64,
        service_id: &str,
        probe_id: String,
        observation: RetainedObservation,
    ) {
        let finality_horizon = received_at.saturating_sub(self.config.max_lateness_ms);
        if observation.observed_at < finality_horizon {
            return;
        }
        let Some(&position) = self.service_positions.get(service_id) else {
            return;
        };
        let service = &mut self.services[position];
        let staleness_ms = service
            .definition_at(observation.observed_at)
            .spec
            .staleness_ms;
        let probe = service.probes.entry(probe_id).or_default();
        if let Some((from, to)) = probe.record(observation, staleness_ms, finality_horizon) {
            service.recompute_timeline(from, to);
        }
    }

    fn schedule_maintenance(
        &mut self,
        received_at: i64,
        maintenance_id: String,
        service_id: &str,
        start: i64,
        end: i64,
    ) {
        if self.maintenance_positions.contains_key(&maintenance_id) {
            return;
        }
        let Some(&service_position) = self.service_positions.get(service_id) else {
            return;
        };
        let service = &mut self.services[service_position];
        let (effective_start, effective_end) =
            semantics::effective_maintenance(start, end, received_at);
        let position = MaintenancePosition {
            service: service_position,
            window: service.maintenance.len(),
        };
        self.maintenance_positions
            .insert(maintenance_id.clone(), position);
        service.maintenance.push(MaintenanceWindow {
            maintenance_id,
            effective_start,
            effective_end,
            cancelled: false,
        });
        if effective_start < effective_end {
            service.rebuild_maintenance_union();
            service.recompute_timeline(effective_start, effective_end);
        }
    }

    fn cancel_maintenance(&mut self, cancelled_at: i64, maintenance_id: &str) {
        let Some(&position) = self.maintenance_positions.get(maintenance_id) else {
            return;
        };
        let service = &mut self.services[position.service];
        let window = &mut service.maintenance[position.window];
        if window.cancelled {
            return;
        }
        window.cancelled = true;
        let previous_end = window.effective_end;
        let (start, end) =
            semantics::cut_by_cancel((window.effective_start, window.effective_end), cancelled_at);
        window.effective_end = end;
        if start < previous_end && end < previous_end {
            service.rebuild_maintenance_union();
            service.recompute_timeline(end, previous_end);
        }
    }
}

impl ServiceTrack {
    /// A service from its stored parts, with the derived parts computed.
    pub(super) fn from_parts(
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

    fn latest_definition(&self) -> &Definition {
        &self.definitions[self.definitions.len() - 1]
    }

    fn definition_at(&self, t: i64) -> &Definition {
        &self.definitions[definition_position_at(&self.definitions, t)]
    }

    fn latest_observed_at(&self) -> Option<i64> {
        self.probes
            .values()
            .filter_map(|probe| probe.latest)
            .map(|latest| latest.observed_at)
            .max()
    }

    /// A new definition changes the staleness of observations made from its
    /// `received_at` on and the quorum from then on; nothing before.
    fn redefine(&mut self, definition: Definition) {
        let in_force_from = definition.received_at;
        self.definitions.push(definition);
        for probe in self.probes.values_mut() {
            probe.restale_from(in_force_from, &self.definitions);
        }
        self.recompute_timeline(in_force_from, END_OF_TIME);
    }

    fn rebuild_maintenance_union(&mut self) {
        self.maintenance_union = runs::union_of(
            self.maintenance
                .iter()
                .map(|window| (window.effective_start, window.effective_end)),
        );
    }

    /// Recomputes the service state on `[from, to)` from the probes' runs and
    /// splices it in, then brings the rollups after the splice up to date.
    fn recompute_timeline(&mut self, from: i64, to: i64) {
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
    fn rollup_before(&self, t: i64) -> Rollup {
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
    fn incidents_intersecting(&self, start: i64, end: i64) -> u64 {
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

    fn probes_down_within(&self, start: i64, end: i64) -> Vec<String> {
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

    fn check_consistency(&self) -> Result<(), String> {
        let service_id = &self.definitions[0].spec.service_id;
        if self
            .definitions
            .iter()
            .any(|definition| &definition.spec.service_id != service_id)
        {
            return Err("definitions name different services".to_string());
        }
        if self
            .definitions
            .windows(2)
            .any(|pair| pair[0].received_at > pair[1].received_at)
        {
            return Err("definitions go back in time".to_string());
        }
        for (probe_id, probe) in &self.probes {
            probe
                .check_consistency(&self.definitions)
                .map_err(|problem| format!("probe {probe_id}: {problem}"))?;
        }
        let union = runs::union_of(
            self.maintenance
                .iter()
                .map(|window| (window.effective_start, window.effective_end)),
        );
        if union != self.maintenance_union {
            return Err("maintenance union is stale".to_string());
        }
        runs::check_canonical(&self.timeline).map_err(|problem| format!("timeline: {problem}"))?;
        let from_scratch = sweep_service_state(
            &self.definitions,
            &self.probes,
            &self.maintenance_union,
            i64::MIN,
            END_OF_TIME,
        );
        if from_scratch != self.timeline {
            return Err("timeline differs from a recomputation from scratch".to_string());
        }
        let mut rollup = Rollup::default();
        if self.rollups.len() != self.timeline.len() {
            return Err("rollups do not match the timeline".to_string());
        }
        for (run, stored) in self.timeline.iter().zip(&self.rollups) {
            if *stored != rollup {
                return Err(format!(
                    "rollup at {} differs from the prefix sum",
                    run.start
                ));
            }
            rollup = rollup.including(run);
        }
        Ok(())
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
    fn record(
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

    fn check_consistency(&self, definitions: &[Definition]) -> Result<(), String> {
        runs::check_canonical(&self.runs)?;
        if self
            .recent
            .iter()
            .zip(self.recent.iter().skip(1))
            .any(|(a, b)| a.observed_at >= b.observed_at)
        {
            return Err("retained observations are not strictly ordered".to_string());
        }
        match (self.recent.back(), self.latest) {
            (Some(newest), latest) if latest != Some(*newest) => {
                return Err("latest observation is not the newest retained one".to_string())
            }
            (None, None) if !self.runs.is_empty() => {
                return Err("runs without any observation".to_string())
            }
            _ => {}
        }
        if let Some(oldest) = self.recent.front() {
            let expected = governed_runs(self.recent.iter(), definitions);
            if runs::clipped(&self.runs, oldest.observed_at, END_OF_TIME) != expected {
                return Err("runs differ from the retained observations".to_string());
            }
        }
        Ok(())
    }
}

impl Rollup {
    fn including(self, run: &Run<State>) -> Rollup {
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
fn governed_runs<'a>(
    observations: impl Iterator<Item = &'a RetainedObservation>,
    definitions: &[Definition],
) -> Vec<Run<Status>> {
    let mut runs = Vec::new();
    let mut observations = observations.peekable();
    while let Some(observation) = observations.next() {
        let staleness_ms = definitions
            [definition_position_at(definitions, observation.observed_at)]
        .spec
        .staleness_ms;
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
fn sweep_service_state(
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

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
            Ledger {
                projection: Projection::new(ProjectionConfig { max_lateness_ms }),
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
                service_id: service_id.to_string(),
                name: format!("{service_id} service"),
                agency: "agency".to_string(),
                slo_target,
                quorum,
                staleness_ms,
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
                probes: vec!["p1".to_string()]
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
        let open = Incident {
            start: 100_000,
            end: 220_000,
            open: true,
            probes: vec!["p1".to_string()],
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
                probes: vec!["p2".to_string()]
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
                            service_id,
                            name: String::new(),
                            agency: String::new(),
                            slo_target,
                            quorum,
                            staleness_ms,
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
}
