//! The engine against a deliberately naive reference implementation of
//! DESIGN.md's rules, on random histories with late and out-of-order
//! observations, duplicate instants, policy changes and maintenance.
//!
//! The reference keeps every input and evaluates each rule by its direct
//! definition at the start of every elementary interval (between two
//! consecutive instants where anything could change). It shares only the
//! report formula with the engine, so equal integer measures must give
//! bit-identical reports.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::model::{
    AvailabilityReport, Incident, Interval, ProbeSummary, ProjectionInput, Quorum, RegisteredProbe,
    ServiceSpec, State, Status,
};
use super::semantics::{availability_report, StateMeasures};
use super::test_inputs;
use super::{Projection, ProjectionConfig};
use crate::domain::ServiceId;
use crate::governance::{Change, Step as GovernanceStep};

pub(crate) const MAX_LATENESS_MS: i64 = 60;
pub(crate) const SERVICE_IDS: [&str; 3] = ["s0", "s1", "s2"];

/// The log as the rules read it: every input kept, nothing precomputed.
pub(crate) struct NaiveLog {
    service_order: Vec<String>,
    /// Per service, its definitions in log order with the `received_at` read.
    pub(crate) definitions: BTreeMap<String, Vec<(i64, ServiceSpec)>>,
    observations: Vec<NaiveObservation>,
    maintenance: Vec<NaiveMaintenance>,
    /// Per probe, where it was registered and whether it is revoked.
    registered: BTreeMap<String, RegisteredProbe>,
}

struct NaiveObservation {
    index: u64,
    service_id: String,
    probe_id: String,
    observed_at: i64,
    status: Status,
}

struct NaiveMaintenance {
    maintenance_id: String,
    service_id: String,
    start: i64,
    end: i64,
    scheduled_at: i64,
    cancelled_at: Option<i64>,
}

impl NaiveLog {
    pub(crate) fn from_inputs(inputs: &[ProjectionInput]) -> NaiveLog {
        let mut log = NaiveLog {
            service_order: Vec::new(),
            definitions: BTreeMap::new(),
            observations: Vec::new(),
            maintenance: Vec::new(),
            registered: BTreeMap::new(),
        };
        let mut clock = i64::MIN;
        let mut last_index: Option<u64> = None;
        for input in inputs {
            if last_index.is_some_and(|last| input.index() <= last) {
                continue;
            }
            last_index = Some(input.index());
            clock = clock.max(input.received_at());
            let index = input.index();
            match input.clone() {
                ProjectionInput::DefineService { spec, .. } => {
                    if !log.definitions.contains_key(spec.service_id.as_str()) {
                        log.service_order.push(spec.service_id.to_string());
                    }
                    log.definitions
                        .entry(spec.service_id.to_string())
                        .or_default()
                        .push((clock, spec));
                }
                ProjectionInput::Observation {
                    index,
                    probe_id,
                    service_id,
                    observed_at,
                    status,
                    ..
                } => {
                    if log.definitions.contains_key(&service_id)
                        && observed_at >= clock - MAX_LATENESS_MS
                    {
                        log.observations.push(NaiveObservation {
                            index,
                            service_id,
                            probe_id,
                            observed_at,
                            status,
                        });
                    }
                }
                ProjectionInput::ScheduleMaintenance {
                    maintenance_id,
                    service_id,
                    start,
                    end,
                    ..
                } => {
                    let known = log
                        .maintenance
                        .iter()
                        .any(|window| window.maintenance_id == maintenance_id);
                    if log.definitions.contains_key(&service_id) && !known {
                        log.maintenance.push(NaiveMaintenance {
                            maintenance_id,
                            service_id,
                            start,
                            end,
                            scheduled_at: clock,
                            cancelled_at: None,
                        });
                    }
                }
                ProjectionInput::Governance {
                    step:
                        GovernanceStep::Propose {
                            change:
                                Change::RegisterProbe {
                                    probe_id, location, ..
                                },
                            ..
                        },
                    ..
                } => {
                    // The naive reference: threshold 1, every registration at once (the
                    // governance rule itself is tested in `governance`).
                    log.registered.insert(
                        probe_id.to_string(),
                        RegisteredProbe {
                            location,
                            registered_index: index,
                            registered_at: clock,
                            registered_by: "admin".into(),
                            approved_by: vec!["admin".into()],
                            revoked_at: None,
                        },
                    );
                }
                ProjectionInput::Governance {
                    step:
                        GovernanceStep::Propose {
                            change: Change::RevokeProbe { probe_id, .. },
                            ..
                        },
                    ..
                } => {
                    if let Some(probe) = log.registered.get_mut(probe_id.as_str()) {
                        probe.revoked_at.get_or_insert(clock);
                    }
                }
                ProjectionInput::Governance { .. } | ProjectionInput::Genesis { .. } => {}
                ProjectionInput::CancelMaintenance { maintenance_id, .. } => {
                    if let Some(window) = log
                        .maintenance
                        .iter_mut()
                        .find(|window| window.maintenance_id == maintenance_id)
                    {
                        window.cancelled_at.get_or_insert(clock);
                    }
                }
            }
        }
        log
    }

    pub(crate) fn spec_at(&self, service_id: &str, t: i64) -> &ServiceSpec {
        let definitions = &self.definitions[service_id];
        let in_force = definitions
            .iter()
            .rev()
            .find(|(received_at, _)| *received_at <= t);
        &in_force.unwrap_or(&definitions[0]).1
    }

    fn observations_of<'a>(
        &'a self,
        service_id: &'a str,
    ) -> impl Iterator<Item = &'a NaiveObservation> + 'a {
        self.observations
            .iter()
            .filter(move |observation| observation.service_id == service_id)
    }

    fn probe_ids(&self, service_id: &str) -> BTreeSet<String> {
        self.observations_of(service_id)
            .map(|observation| observation.probe_id.clone())
            .collect()
    }

    fn probe_state(&self, service_id: &str, probe_id: &str, t: i64) -> Option<Status> {
        let latest = self
            .observations_of(service_id)
            .filter(|observation| observation.probe_id == probe_id && observation.observed_at <= t)
            .max_by_key(|observation| (observation.observed_at, observation.index))?;
        let staleness = self.spec_at(service_id, latest.observed_at).staleness_ms();
        (i128::from(t) < i128::from(latest.observed_at) + i128::from(staleness))
            .then_some(latest.status)
    }

    fn maintenance_windows<'a>(
        &'a self,
        service_id: &'a str,
    ) -> impl Iterator<Item = (i64, i64)> + 'a {
        self.maintenance
            .iter()
            .filter(move |window| window.service_id == service_id)
            .map(|window| {
                let start = window.start.max(window.scheduled_at);
                let end = match window.cancelled_at {
                    Some(cancelled_at) => window.end.min(cancelled_at.max(start)),
                    None => window.end,
                };
                (start, end)
            })
    }

    pub(crate) fn state(&self, service_id: &str, t: i64) -> State {
        if self
            .maintenance_windows(service_id)
            .any(|(start, end)| start <= t && t < end)
        {
            return State::Maintenance;
        }
        let (mut up, mut down) = (0u32, 0u32);
        for probe_id in self.probe_ids(service_id) {
            match self.probe_state(service_id, &probe_id, t) {
                Some(Status::Up) => up += 1,
                Some(Status::Down) => down += 1,
                None => {}
            }
        }
        if up + down == 0 {
            return State::Unknown;
        }
        let is_down = match self.spec_at(service_id, t).quorum {
            Quorum::Any => down >= 1,
            Quorum::Majority => 2 * down > up + down,
            Quorum::All => down == up + down,
            Quorum::AtLeast(required) => down >= required,
        };
        if is_down {
            State::Down
        } else {
            State::Up
        }
    }

    /// Every instant at which the service state could change, plus `extra`.
    fn boundaries(&self, service_id: &str, extra: &[i64]) -> Vec<i64> {
        let mut boundaries: BTreeSet<i64> = extra.iter().copied().collect();
        for observation in self.observations_of(service_id) {
            let staleness = self
                .spec_at(service_id, observation.observed_at)
                .staleness_ms();
            boundaries.insert(observation.observed_at);
            boundaries.insert(observation.observed_at.saturating_add(staleness.max(0)));
        }
        for (received_at, _) in &self.definitions[service_id] {
            boundaries.insert(*received_at);
        }
        for (start, end) in self.maintenance_windows(service_id) {
            boundaries.insert(start);
            boundaries.insert(end);
        }
        boundaries.into_iter().collect()
    }

    /// Elementary intervals, each with the state at its start (which holds throughout).
    fn elementary(&self, service_id: &str, extra: &[i64]) -> Vec<(i64, i64, State)> {
        let boundaries = self.boundaries(service_id, extra);
        boundaries
            .windows(2)
            .map(|pair| (pair[0], pair[1], self.state(service_id, pair[0])))
            .collect()
    }

    fn down_stretches(&self, service_id: &str) -> Vec<(i64, i64)> {
        let mut stretches: Vec<(i64, i64)> = Vec::new();
        for (start, end, state) in self.elementary(service_id, &[]) {
            if state != State::Down {
                continue;
            }
            match stretches.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => stretches.push((start, end)),
            }
        }
        stretches
    }

    fn report(&self, service_id: &str, start: i64, end: i64) -> Option<AvailabilityReport> {
        self.definitions.get(service_id)?;
        let mut measures = StateMeasures::default();
        for (piece_start, piece_end, state) in self.elementary(service_id, &[start, end]) {
            if piece_start < start || piece_end > end {
                continue;
            }
            let length = (piece_end - piece_start) as u64;
            match state {
                State::Up => measures.up_ms += length,
                State::Down => measures.down_ms += length,
                State::Unknown => measures.unknown_ms += length,
                State::Maintenance => measures.maintenance_ms += length,
            }
        }
        let incident_count = self
            .down_stretches(service_id)
            .iter()
            .filter(|(down_start, down_end)| *down_start < end && *down_end > start)
            .count() as u64;
        let slo_target = self.spec_at(service_id, end - 1).slo_target;
        Some(availability_report(
            start,
            end,
            measures,
            slo_target,
            incident_count,
        ))
    }

    fn incidents(&self, service_id: &str, start: i64, end: i64) -> Option<Vec<Incident>> {
        self.definitions.get(service_id)?;
        let incidents = self
            .down_stretches(service_id)
            .into_iter()
            .filter(|(down_start, down_end)| *down_start < end && *down_end > start)
            .map(|(down_start, down_end)| {
                let mut probes = BTreeSet::new();
                for (piece_start, _, _) in self.elementary(service_id, &[]) {
                    if down_start <= piece_start && piece_start < down_end {
                        for probe_id in self.probe_ids(service_id) {
                            if self.probe_state(service_id, &probe_id, piece_start)
                                == Some(Status::Down)
                            {
                                probes.insert(probe_id);
                            }
                        }
                    }
                }
                let observed_since = self
                    .observations_of(service_id)
                    .any(|observation| observation.observed_at >= down_end);
                let open = self.state(service_id, down_end) == State::Unknown && !observed_since;
                Incident {
                    start: down_start,
                    end: down_end,
                    open,
                    probes: probes.into_iter().collect(),
                    last_observed_at: self
                        .observations_of(service_id)
                        .map(|observation| observation.observed_at)
                        .max()
                        .filter(|_| open),
                }
            })
            .collect();
        Some(incidents)
    }

    fn timeline(&self, service_id: &str, start: i64, end: i64) -> Option<Vec<Interval>> {
        self.definitions.get(service_id)?;
        let mut intervals: Vec<Interval> = Vec::new();
        for (piece_start, piece_end, state) in self.elementary(service_id, &[start, end]) {
            if piece_start < start || piece_end > end {
                continue;
            }
            match intervals.last_mut() {
                Some(last) if last.state == state => last.end = piece_end,
                _ => intervals.push(Interval {
                    start: piece_start,
                    end: piece_end,
                    state,
                }),
            }
        }
        Some(intervals)
    }

    fn probes_for(&self, service_id: &str) -> Option<Vec<ProbeSummary>> {
        self.definitions.get(service_id)?;
        let summaries = self
            .probe_ids(service_id)
            .into_iter()
            .map(|probe_id| {
                let latest = self
                    .observations_of(service_id)
                    .filter(|observation| observation.probe_id == probe_id)
                    .max_by_key(|observation| (observation.observed_at, observation.index))
                    .unwrap();
                ProbeSummary {
                    last_observed_at: latest.observed_at,
                    last_status: latest.status,
                    registration: self.registered.get(&probe_id).cloned(),
                    probe_id,
                }
            })
            .collect();
        Some(summaries)
    }
}

/// One step of a random history; times are relative to the ledger clock.
#[derive(Debug, Clone)]
enum Step {
    Define {
        service: usize,
        quorum: Quorum,
        staleness_ms: i64,
        slo_target: f64,
    },
    Observe {
        service: usize,
        probe: usize,
        lateness_ms: i64,
        status: Status,
    },
    Schedule {
        service: usize,
        start_offset_ms: i64,
        length_ms: i64,
    },
    Cancel {
        which: usize,
    },
    Register {
        probe: usize,
        location: usize,
    },
    Revoke {
        probe: usize,
    },
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let quorum = prop_oneof![
        Just(Quorum::Any),
        Just(Quorum::Majority),
        Just(Quorum::All),
        (0u32..=4).prop_map(Quorum::AtLeast),
    ];
    let status = prop_oneof![Just(Status::Up), Just(Status::Down)];
    prop_oneof![
        1 => (0..3usize, quorum, prop::sample::select(vec![0i64, 5, 20, 45, 90, 150]), prop::sample::select(vec![0.5, 0.9, 0.99, 1.0]))
            .prop_map(|(service, quorum, staleness_ms, slo_target)| Step::Define { service, quorum, staleness_ms, slo_target }),
        8 => (0..3usize, 0..4usize, -20i64..=MAX_LATENESS_MS + 15, status)
            .prop_map(|(service, probe, lateness_ms, status)| Step::Observe { service, probe, lateness_ms, status }),
        1 => (0..3usize, -80i64..=80, 1i64..=120)
            .prop_map(|(service, start_offset_ms, length_ms)| Step::Schedule { service, start_offset_ms, length_ms }),
        1 => (0..8usize).prop_map(|which| Step::Cancel { which }),
        1 => (0..4usize, 0..3usize).prop_map(|(probe, location)| Step::Register { probe, location }),
        1 => (0..4usize).prop_map(|probe| Step::Revoke { probe }),
    ]
}

/// A random history: steps, each after a clock move (sometimes backwards) and
/// a log index gap (entries that are not projection inputs).
pub(crate) fn history_strategy() -> impl Strategy<Value = Vec<ProjectionInput>> {
    prop::collection::vec((step_strategy(), -10i64..=30, 1u64..=2), 1..70).prop_map(|steps| {
        let mut inputs = vec![
            test_inputs::genesis(0, 1, &["admin"]),
            define_input(1, 1_000, 0, Quorum::Majority, 45, 0.99),
        ];
        let (mut clock, mut index, mut scheduled) = (1_000i64, 1u64, 0usize);
        for (step, clock_move, index_gap) in steps {
            clock += clock_move;
            index += index_gap;
            inputs.push(match step {
                Step::Define {
                    service,
                    quorum,
                    staleness_ms,
                    slo_target,
                } => define_input(index, clock, service, quorum, staleness_ms, slo_target),
                Step::Observe {
                    service,
                    probe,
                    lateness_ms,
                    status,
                } => ProjectionInput::Observation {
                    index,
                    received_at: clock,
                    probe_id: format!("p{probe}"),
                    service_id: SERVICE_IDS[service].to_string(),
                    // Rounded so that several observations share an instant.
                    observed_at: (clock - lateness_ms).div_euclid(5) * 5,
                    status,
                },
                Step::Schedule {
                    service,
                    start_offset_ms,
                    length_ms,
                } => {
                    scheduled += 1;
                    ProjectionInput::ScheduleMaintenance {
                        index,
                        received_at: clock,
                        maintenance_id: format!("m{}", scheduled - 1),
                        service_id: SERVICE_IDS[service].to_string(),
                        start: clock + start_offset_ms,
                        end: clock + start_offset_ms + length_ms,
                    }
                }
                Step::Cancel { which } => ProjectionInput::CancelMaintenance {
                    index,
                    received_at: clock,
                    maintenance_id: format!("m{}", which % (scheduled + 1)),
                },
                Step::Register { probe, location } => {
                    test_inputs::register(
                        index,
                        clock,
                        "admin",
                        &format!("p{probe}"),
                        &format!("city {location}"),
                    )
                    .0
                }
                Step::Revoke { probe } => {
                    test_inputs::revoke(index, clock, "admin", &format!("p{probe}")).0
                }
            });
        }
        inputs
    })
}

fn define_input(
    index: u64,
    received_at: i64,
    service: usize,
    quorum: Quorum,
    staleness_ms: i64,
    slo_target: f64,
) -> ProjectionInput {
    let service_id = SERVICE_IDS[service].to_string();
    ProjectionInput::DefineService {
        index,
        received_at,
        spec: ServiceSpec {
            name: format!("service {service_id}"),
            agency: "agency".to_string(),
            service_id: ServiceId::parse_owned(service_id).unwrap(),
            slo_target,
            quorum,
            staleness: std::time::Duration::from_millis(staleness_ms.unsigned_abs()),
        },
    }
}

pub(crate) fn project(inputs: &[ProjectionInput]) -> Projection {
    let mut projection = Projection::new(ProjectionConfig {
        max_lateness_ms: MAX_LATENESS_MS,
    });
    for input in inputs {
        projection.apply(input.clone());
    }
    projection
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_naive_reference(
        inputs in history_strategy(),
        windows in prop::collection::vec((800i64..3_200, 1i64..1_500), 1..6),
    ) {
        let projection = project(&inputs);
        prop_assert_eq!(projection.check_consistency(), Ok(()));
        let naive = NaiveLog::from_inputs(&inputs);
        let listed: Vec<&str> = projection.services().map(|spec| spec.service_id.as_str()).collect();
        prop_assert_eq!(listed, naive.service_order.iter().map(String::as_str).collect::<Vec<_>>());
        let mut windows: Vec<(i64, i64)> = windows.into_iter().map(|(start, length)| (start, start + length)).collect();
        windows.push((i64::MIN / 4, i64::MAX / 4));
        for service_id in SERVICE_IDS.iter().copied().chain(["undefined"]) {
            prop_assert_eq!(projection.probes_for(service_id), naive.probes_for(service_id));
            for &(start, end) in &windows {
                prop_assert_eq!(projection.report(service_id, start, end), naive.report(service_id, start, end), "report {} [{}, {})", service_id, start, end);
                prop_assert_eq!(projection.incidents(service_id, start, end), naive.incidents(service_id, start, end), "incidents {} [{}, {})", service_id, start, end);
                prop_assert_eq!(projection.timeline(service_id, start, end), naive.timeline(service_id, start, end), "timeline {} [{}, {})", service_id, start, end);
            }
            if naive.definitions.contains_key(service_id) {
                for t in (800..3_200).step_by(7) {
                    prop_assert_eq!(projection.current_state(service_id, t), naive.state(service_id, t), "state {} at {}", service_id, t);
                }
            }
        }
    }

    #[test]
    fn snapshot_then_rest_equals_everything(inputs in history_strategy(), split in 0.0f64..=1.0) {
        let split = ((inputs.len() as f64) * split) as usize;
        let prefix = project(&inputs[..split]);
        let mut resumed = Projection::decode(&prefix.encode()).expect("a fresh snapshot decodes");
        for input in &inputs[split..] {
            resumed.apply(input.clone());
        }
        let whole = project(&inputs);
        prop_assert_eq!(resumed.check_consistency(), Ok(()));
        prop_assert_eq!(resumed.encode(), whole.encode());
        prop_assert_eq!(resumed.applied_index(), whole.applied_index());
        for service_id in SERVICE_IDS {
            prop_assert_eq!(resumed.report(service_id, 0, 5_000), whole.report(service_id, 0, 5_000));
            prop_assert_eq!(resumed.incidents(service_id, 0, 5_000), whole.incidents(service_id, 0, 5_000));
        }
    }
}

/// Times a year of three probes every 10 s (9.46 million observations) with
/// a five-minute outage seen by two probes every day. No timed assertions:
/// run with `cargo test --release -- --ignored --nocapture year_of`.
#[test]
#[ignore]
fn year_of_three_probes_every_ten_seconds() {
    use std::time::Instant;

    const DAY_MS: i64 = 86_400_000;
    let mut projection = Projection::new(ProjectionConfig::default());
    projection.apply(define_input(0, 0, 0, Quorum::Majority, 90_000, 0.999));
    let service_id = SERVICE_IDS[0].to_string();
    let probe_ids = ["p0", "p1", "p2"].map(String::from);
    let mut index = 1;
    let started = Instant::now();
    for observed_at in (0..365 * DAY_MS).step_by(10_000) {
        let outage_start = (observed_at / DAY_MS) * DAY_MS
            + (observed_at / DAY_MS * 7_919_000) % (DAY_MS - 600_000);
        let in_outage = (outage_start..outage_start + 300_000).contains(&observed_at);
        for (probe, probe_id) in probe_ids.iter().enumerate() {
            let status = if in_outage && probe < 2 {
                Status::Down
            } else {
                Status::Up
            };
            index += 1;
            projection.apply(ProjectionInput::Observation {
                index,
                received_at: observed_at + 40,
                probe_id: probe_id.clone(),
                service_id: service_id.clone(),
                observed_at,
                status,
            });
        }
    }
    let applying = started.elapsed();
    let observations = index - 1;
    println!(
        "applied {observations} observations in {applying:?}: {:.0} per second",
        observations as f64 / applying.as_secs_f64()
    );

    let timed = |label: &str, start: i64, end: i64| {
        let repetitions = 10_000;
        let started = Instant::now();
        let mut report = None;
        for _ in 0..repetitions {
            report = projection.report(&service_id, std::hint::black_box(start), end);
        }
        println!(
            "report over {label}: {:?} each; {:?}",
            started.elapsed() / repetitions,
            report.unwrap()
        );
    };
    timed("365 days", 0, 365 * DAY_MS);
    timed("1 day", 200 * DAY_MS, 201 * DAY_MS);
    println!(
        "retained runs {}, retained observations {}, about {} heap bytes",
        projection.retained_runs(),
        projection.retained_observations(),
        projection.approximate_heap_bytes()
    );

    let started = Instant::now();
    let snapshot = projection.encode();
    let encoding = started.elapsed();
    let started = Instant::now();
    let decoded = Projection::decode(&snapshot).unwrap();
    println!(
        "snapshot {} bytes, encoded in {encoding:?}, decoded and checked in {:?}",
        snapshot.len(),
        started.elapsed()
    );
    assert_eq!(decoded.encode(), snapshot);
    assert_eq!(
        projection
            .incidents(&service_id, 0, 365 * DAY_MS)
            .unwrap()
            .len(),
        365
    );
}
