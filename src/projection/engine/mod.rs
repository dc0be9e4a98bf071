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
//!
//! # Layout
//!
//! - this file: [`Projection`]: applying entries and answering queries;
//! - `tracks`: one service's and one probe's step functions, and the sweep
//!   that turns probe runs, maintenance and definitions into the service state;
//! - `consistency`: the invariants above checked from scratch, and a
//!   projection assembled from stored parts (a decoded snapshot).

mod consistency;
mod tracks;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;

use super::model::{
    AvailabilityReport, Incident, Interval, Maintenance, ProbeSummary, ProjectionInput,
    RegisteredProbe, ServiceSpec, State, Status,
};
use super::runs::{self, Run};
use super::semantics::{self, StateMeasures};
use crate::governance::{Change, Effect, Governance, Position};
use tracks::Rollup;
pub(super) use tracks::{
    Definition, MaintenanceWindow, ProbeTrack, RetainedObservation, ServiceTrack,
};

/// DESIGN.md's default `max_lateness` (1 h), used when the genesis names none.
const DEFAULT_MAX_LATENESS_MS: i64 = 3_600_000;

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
    /// Every probe the prefix registered, by probe id.
    pub(super) registered_probes: BTreeMap<String, RegisteredProbe>,
    /// The admin keys and proposals of the prefix.
    pub(super) governance: Governance,
}

/// Where a maintenance window lives: `services[service].maintenance[window]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MaintenancePosition {
    pub(super) service: usize,
    pub(super) window: usize,
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
            registered_probes: BTreeMap::new(),
            governance: Governance::empty(1),
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
            ProjectionInput::Genesis { genesis, .. } => {
                self.governance = Governance::new(&genesis);
            }
            ProjectionInput::Governance { step, .. } => {
                let at = Position { index, received_at };
                if let Some(Effect::InForce {
                    change,
                    proposer,
                    approved_by,
                    ..
                }) = self.governance.apply(at, step)
                {
                    self.apply_probe_change(at, change, proposer, approved_by);
                }
            }
        }
    }

    /// A probe registration or revocation that took effect at `at`.
    fn apply_probe_change(
        &mut self,
        at: Position,
        change: Change,
        proposer: String,
        approved_by: Vec<String>,
    ) {
        match change {
            Change::RegisterProbe {
                probe_id, location, ..
            } => {
                self.registered_probes.insert(
                    probe_id.into_string(),
                    RegisteredProbe {
                        location,
                        registered_index: at.index,
                        registered_at: at.received_at,
                        registered_by: proposer,
                        approved_by,
                        revoked_at: None,
                    },
                );
            }
            Change::RevokeProbe { probe_id, .. } => {
                if let Some(probe) = self.registered_probes.get_mut(probe_id.as_str()) {
                    probe.revoked_at.get_or_insert(at.received_at);
                }
            }
            Change::AddAdminKey(_) | Change::RevokeAdminKey { .. } => {}
        }
    }

    /// The admin keys and proposals of the prefix.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// Records that the log entry at `index` has no effect on projections
    /// (the genesis), so that
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

    /// When the service was first defined (the `received_at` read for its first
    /// definition), or `None` when it never was.
    pub fn defined_at(&self, service_id: &str) -> Option<i64> {
        self.service(service_id)
            .map(|service| service.definitions[0].received_at)
    }

    /// Every probe that ever reported on the service, sorted by probe id.
    pub fn probes_for(&self, service_id: &str) -> Option<Vec<ProbeSummary>> {
        let service = self.service(service_id)?;
        Some(
            service
                .probes
                .iter()
                .filter_map(|(probe_id, probe)| {
                    let registered = self.registered_probes.get(probe_id);
                    probe.latest.map(|latest| ProbeSummary {
                        probe_id: probe_id.clone(),
                        last_observed_at: latest.observed_at,
                        last_status: latest.status,
                        registration: registered.cloned(),
                    })
                })
                .collect(),
        )
    }

    /// Every probe the prefix registered, by probe id (revoked ones included).
    pub fn registered_probes(&self) -> impl Iterator<Item = (&str, &RegisteredProbe)> + '_ {
        self.registered_probes
            .iter()
            .map(|(probe_id, probe)| (probe_id.as_str(), probe))
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
                let open = !followed_by_known_state && !observed_since;
                Incident {
                    start: run.start,
                    end: run.end,
                    open,
                    probes: service.probes_down_within(run.start, run.end),
                    last_observed_at: latest_observed_at.filter(|_| open),
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

    fn service(&self, service_id: &str) -> Option<&ServiceTrack> {
        self.service_positions
            .get(service_id)
            .map(|&position| &self.services[position])
    }

    fn define_service(&mut self, received_at: i64, spec: ServiceSpec) {
        match self.service_positions.get(spec.service_id.as_str()) {
            Some(&position) => self.services[position].redefine(Definition { received_at, spec }),
            None => {
                self.service_positions
                    .insert(spec.service_id.to_string(), self.services.len());
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
            .staleness_ms();
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
