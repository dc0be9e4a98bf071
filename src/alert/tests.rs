//! The alert math: table tests of each rule, and the whole against a naive reference that
//! evaluates each rule by its definition, millisecond by millisecond, on random histories
//! (late and shuffled observations, maintenance, quorum and target changes).

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::evaluate::{
    burn_rate, firing_at, firing_for, firing_holds_until, history, BurnFigure, Figures,
};
use super::rules::{AlertPolicy, BurnWindows, Rule, ServiceRules};
use crate::domain::ServiceId;
use crate::projection::reference_tests::{history_strategy, project, NaiveLog, SERVICE_IDS};
use crate::projection::{
    Projection, ProjectionConfig, ProjectionInput, Quorum, ServiceSpec, State, Status,
};

const SERVICE: &str = "svc";

/// A policy on a millisecond scale: `for` 10 ms, burn windows of 100/20, 300/60, 600/150 ms.
fn small_policy(for_ms: i64, burn_step_ms: i64) -> AlertPolicy {
    AlertPolicy {
        defaults: ServiceRules {
            for_ms,
            enabled: Rule::ALL.to_vec(),
        },
        services: BTreeMap::new(),
        burn: [
            BurnWindows {
                long_ms: 100,
                short_ms: 20,
                threshold: 2.0,
            },
            BurnWindows {
                long_ms: 300,
                short_ms: 60,
                threshold: 1.5,
            },
            BurnWindows {
                long_ms: 600,
                short_ms: 150,
                threshold: 1.0,
            },
        ],
        burn_step_ms,
    }
}

/// One service defined at 0 (staleness 50 ms, SLO 0.9, majority), then `observations`
/// of (probe, observed_at, status), each received when it was observed.
fn scenario(observations: &[(&str, i64, Status)]) -> Projection {
    let mut projection = Projection::new(ProjectionConfig {
        max_lateness_ms: 1_000,
    });
    projection.apply(ProjectionInput::DefineService {
        index: 0,
        received_at: 0,
        spec: ServiceSpec {
            service_id: ServiceId::parse(SERVICE).unwrap(),
            name: "Service".into(),
            agency: "Agency".into(),
            slo_target: 0.9,
            quorum: Quorum::Majority,
            staleness: Duration::from_millis(50),
        },
    });
    for (offset, &(probe, observed_at, status)) in observations.iter().enumerate() {
        projection.apply(ProjectionInput::Observation {
            index: offset as u64 + 1,
            received_at: observed_at,
            probe_id: probe.into(),
            service_id: SERVICE.into(),
            observed_at,
            status,
        });
    }
    projection
}

/// A probe reporting `status` every 10 ms over `[from, to)`.
fn every_10ms(
    probe: &'static str,
    from: i64,
    to: i64,
    status: Status,
) -> Vec<(&'static str, i64, Status)> {
    (from..to).step_by(10).map(|t| (probe, t, status)).collect()
}

fn rules_firing(projection: &Projection, policy: &AlertPolicy, at: i64) -> Vec<(Rule, i64)> {
    firing_for(projection, policy, SERVICE, at)
        .into_iter()
        .map(|alert| (alert.rule, alert.since))
        .collect()
}

fn only(rules: &[Rule]) -> AlertPolicy {
    let mut policy = small_policy(10, 5);
    policy.defaults.enabled = rules.to_vec();
    policy
}

#[test]
fn burn_rate_is_the_error_ratio_over_the_budget() {
    assert_eq!(burn_rate(0, 0, 0.99), None);
    assert_eq!(burn_rate(100, 0, 0.99), Some(0.0));
    let rate = burn_rate(90, 10, 0.9).unwrap();
    assert!((rate - 1.0).abs() < 1e-12, "{rate}");
    let rate = burn_rate(999, 1, 0.999).unwrap();
    assert!((rate - 1.0).abs() < 1e-9, "{rate}");
    assert_eq!(burn_rate(5, 5, 1.0), Some(f64::INFINITY));
    assert_eq!(burn_rate(5, 0, 1.0), Some(0.0));
}

#[test]
fn an_outage_fires_after_for_and_resolves_when_down_stops() {
    let mut observations = every_10ms("p", 0, 100, Status::Up);
    observations.extend(every_10ms("p", 100, 200, Status::Down));
    observations.extend(every_10ms("p", 200, 300, Status::Up));
    let projection = scenario(&observations);
    let policy = only(&[Rule::Outage]);
    assert_eq!(rules_firing(&projection, &policy, 105), vec![]);
    assert_eq!(rules_firing(&projection, &policy, 109), vec![]);
    assert_eq!(
        rules_firing(&projection, &policy, 110),
        vec![(Rule::Outage, 110)]
    );
    assert_eq!(
        rules_firing(&projection, &policy, 199),
        vec![(Rule::Outage, 110)]
    );
    assert_eq!(rules_firing(&projection, &policy, 200), vec![]);
    let alerts = firing_for(&projection, &policy, SERVICE, 150);
    assert_eq!(
        alerts[0].figures,
        Figures::State {
            state: State::Down,
            state_since: 100,
            for_ms: 10
        }
    );
    assert_eq!(alerts[0].agency, "Agency");
    let episodes: Vec<_> = history(&projection, &policy, SERVICE, 0, 300)
        .into_iter()
        .map(|alert| (alert.rule, alert.since, alert.until))
        .collect();
    assert_eq!(episodes, vec![(Rule::Outage, 110, Some(200))]);
    // A window inside the episode sees it whole, still firing at its end.
    let inside: Vec<_> = history(&projection, &policy, SERVICE, 150, 160)
        .into_iter()
        .map(|alert| (alert.since, alert.until))
        .collect();
    assert_eq!(inside, vec![(110, None)]);
}

#[test]
fn what_fires_holds_until_the_instant_firing_holds_until_names() {
    let mut observations = every_10ms("p", 0, 100, Status::Up);
    observations.extend(every_10ms("p", 100, 200, Status::Down));
    observations.extend(every_10ms("p", 200, 260, Status::Up));
    let projection = scenario(&observations);
    let policy = small_policy(10, 5);
    let mut changes_seen = 0;
    for now in 0..400 {
        let until = firing_holds_until(&projection, &policy, now);
        assert!(until > now, "at {now}: {until}");
        // The service state's own next change is the caller's bound.
        let state_changes = projection
            .timeline(SERVICE, now, 400)
            .and_then(|intervals| intervals.first().map(|interval| interval.end))
            .unwrap_or(400);
        let firing = firing_at(&projection, &policy, now);
        for t in now..until.min(state_changes).min(400) {
            assert_eq!(
                firing_at(&projection, &policy, t),
                firing,
                "from {now} to {t}"
            );
        }
        if firing_at(&projection, &policy, until.min(399)) != firing {
            changes_seen += 1;
        }
    }
    assert!(changes_seen > 0, "the bound is reached by real changes");
    // With no DOWN time in the burn windows and the service not DOWN, only the state
    // rules bound it: a quiet service adds nothing.
    let quiet = scenario(&every_10ms("p", 0, 100, Status::Up));
    assert_eq!(firing_holds_until(&quiet, &policy, 50), i64::MAX);
}

#[test]
fn a_down_stretch_shorter_than_for_never_fires() {
    let mut observations = every_10ms("p", 0, 100, Status::Up);
    observations.push(("p", 100, Status::Down));
    observations.extend(every_10ms("p", 105, 200, Status::Up));
    let projection = scenario(&observations);
    let policy = only(&[Rule::Outage]);
    assert!(history(&projection, &policy, SERVICE, 0, 300).is_empty());
    assert_eq!(rules_firing(&projection, &policy, 104), vec![]);
}

#[test]
fn no_data_fires_when_every_probe_is_stale_and_counts_from_the_definition() {
    let observations = every_10ms("p", 100, 200, Status::Up);
    let projection = scenario(&observations);
    let policy = only(&[Rule::NoData]);
    // Defined at 0, nothing until 100: no data from 0, firing from 10.
    assert_eq!(
        rules_firing(&projection, &policy, 50),
        vec![(Rule::NoData, 10)]
    );
    assert_eq!(rules_firing(&projection, &policy, 150), vec![]);
    // The last observation (190) is stale from 240; firing from 250.
    assert_eq!(rules_firing(&projection, &policy, 245), vec![]);
    assert_eq!(
        rules_firing(&projection, &policy, 250),
        vec![(Rule::NoData, 250)]
    );
    let episodes: Vec<_> = history(&projection, &policy, SERVICE, -100, 400)
        .into_iter()
        .map(|alert| (alert.since, alert.until))
        .collect();
    assert_eq!(episodes, vec![(10, Some(100)), (250, None)]);
}

#[test]
fn maintenance_is_neither_down_nor_missing_data() {
    let mut projection = scenario(&every_10ms("p", 0, 100, Status::Down));
    // Received at 90 (the latest `received_at`): in force on [90, 1000).
    projection.apply(ProjectionInput::ScheduleMaintenance {
        index: 100,
        received_at: 90,
        maintenance_id: "m".into(),
        service_id: SERVICE.into(),
        start: 0,
        end: 1_000,
    });
    let policy = only(&[Rule::Outage, Rule::NoData]);
    assert_eq!(
        rules_firing(&projection, &policy, 89),
        vec![(Rule::Outage, 10)]
    );
    for at in [90, 140, 500, 999] {
        assert_eq!(rules_firing(&projection, &policy, at), vec![], "at {at}");
    }
    // Burn windows measure no maintenance time: nothing measured, no burn rate.
    let rates = super::evaluate::burn_rates(&projection, &policy, SERVICE, 300).unwrap();
    let (_, long, short) = rates[0];
    assert_eq!((long.up_ms, long.down_ms, long.burn_rate), (0, 0, None));
    assert_eq!(short.burn_rate, None);
}

#[test]
fn a_burn_alert_needs_both_windows_over_the_threshold() {
    // SLO 0.9: budget 10 %. Rule 1: 100/20 ms windows at burn 2 (20 % down).
    let mut observations = every_10ms("p", 0, 300, Status::Up);
    observations.extend(every_10ms("p", 300, 330, Status::Down));
    observations.extend(every_10ms("p", 330, 600, Status::Up));
    let projection = scenario(&observations);
    let policy = only(&[Rule::SloBurn1h]);
    // At 310: long window [210, 310) has 10 down of 100 (burn 1); not firing.
    assert_eq!(rules_firing(&projection, &policy, 310), vec![]);
    // At 320: long 20/100 = burn 2, short [300, 320) all down: firing.
    assert_eq!(
        rules_firing(&projection, &policy, 320),
        vec![(Rule::SloBurn1h, 320)]
    );
    assert_eq!(
        rules_firing(&projection, &policy, 324),
        vec![(Rule::SloBurn1h, 320)]
    );
    let alerts = firing_for(&projection, &policy, SERVICE, 340);
    let Figures::Burn {
        long,
        short,
        threshold,
        slo_target,
    } = alerts[0].figures
    else {
        panic!("a burn alert has burn figures");
    };
    assert_eq!((threshold, slo_target), (2.0, 0.9));
    assert_eq!((long.window_ms, long.up_ms, long.down_ms), (100, 70, 30));
    assert_eq!((short.up_ms, short.down_ms), (10, 10));
    // The short window recovers first: at 345, [325, 345) has 5 down of 20 (burn 2.5)…
    assert!(rules_firing(&projection, &policy, 345).len() == 1);
    // …at 350 only 0 of 20: resolved while the long window still burns.
    assert_eq!(rules_firing(&projection, &policy, 350), vec![]);
    let episodes: Vec<_> = history(&projection, &policy, SERVICE, 0, 600)
        .into_iter()
        .map(|alert| (alert.since, alert.until))
        .collect();
    assert_eq!(episodes, vec![(320, Some(350))]);
}

#[test]
fn per_service_rules_override_the_defaults_and_undefined_services_have_no_alerts() {
    let projection = scenario(&every_10ms("p", 0, 100, Status::Down));
    let mut policy = small_policy(10, 5);
    policy.services.insert(
        SERVICE.into(),
        ServiceRules {
            for_ms: 50,
            enabled: vec![Rule::Outage],
        },
    );
    assert_eq!(rules_firing(&projection, &policy, 49), vec![]);
    assert_eq!(
        rules_firing(&projection, &policy, 50),
        vec![(Rule::Outage, 50)]
    );
    assert!(firing_for(&projection, &policy, "nope", 50).is_empty());
    assert!(history(&projection, &policy, "nope", 0, 50).is_empty());
    assert_eq!(firing_at(&projection, &policy, 50).len(), 1);
}

#[test]
fn the_default_policy_is_the_sre_workbook() {
    let policy = AlertPolicy::default();
    assert_eq!(policy.defaults.for_ms, 60_000);
    let windows: Vec<_> = [Rule::SloBurn1h, Rule::SloBurn6h, Rule::SloBurn3d]
        .into_iter()
        .map(|rule| policy.burn_windows(rule).unwrap())
        .map(|w| (w.long_ms / 60_000, w.short_ms / 60_000, w.threshold))
        .collect();
    assert_eq!(
        windows,
        vec![(60, 5, 14.4), (360, 30, 6.0), (4_320, 360, 1.0)]
    );
    assert_eq!(policy.burn_windows(Rule::Outage), None);
    assert_eq!(policy.burn_instant(119_999), 60_000);
    assert_eq!(policy.burn_instant(-1), -60_000);
}

// ---- the naive reference ----

/// Times the reference covers; the random histories stay well inside.
const LO: i64 = 0;
const HI: i64 = 4_500;

/// The naive service state at each millisecond of `[LO, HI)`.
fn naive_states(naive: &NaiveLog, service_id: &str) -> Vec<State> {
    (LO..HI).map(|t| naive.state(service_id, t)).collect()
}

/// Does `rule` fire at each millisecond of `[LO, HI)`, by its definition, from the
/// states of `naive_states`.
fn naive_fires(
    naive: &NaiveLog,
    states: &[State],
    policy: &AlertPolicy,
    service_id: &str,
    rule: Rule,
) -> Vec<bool> {
    let state_at = |t: i64| {
        if t < LO {
            State::Unknown
        } else {
            states[(t - LO) as usize]
        }
    };
    let for_ms = policy.rules_for(service_id).for_ms;
    let defined_at = naive.definitions[service_id][0].0;
    let Some(windows) = policy.burn_windows(rule) else {
        let watched = if rule == Rule::NoData {
            State::Unknown
        } else {
            State::Down
        };
        return (LO..HI)
            .map(|t| {
                (rule != Rule::NoData || t - for_ms >= defined_at)
                    && (t - for_ms..=t).all(|s| state_at(s) == watched)
            })
            .collect();
    };
    // Milliseconds UP and DOWN before each instant, for windows reaching back past LO too.
    let (mut up_before, mut down_before) = (vec![0u64], vec![0u64]);
    for state in states {
        up_before.push(up_before.last().unwrap() + u64::from(*state == State::Up));
        down_before.push(down_before.last().unwrap() + u64::from(*state == State::Down));
    }
    let before = |counts: &[u64], t: i64| counts[(t.clamp(LO, HI) - LO) as usize];
    let burn = |window: i64, g: i64| {
        let up = before(&up_before, g) - before(&up_before, g - window);
        let down = before(&down_before, g) - before(&down_before, g - window);
        if up + down == 0 {
            return None;
        }
        let target = naive.spec_at(service_id, g - 1).slo_target;
        if target >= 1.0 {
            return Some(if down > 0 { f64::INFINITY } else { 0.0 });
        }
        Some(down as f64 / (up + down) as f64 / (1.0 - target))
    };
    (LO..HI)
        .map(|t| {
            let g = t.div_euclid(policy.burn_step_ms) * policy.burn_step_ms;
            let over = |w| burn(w, g).is_some_and(|b| b >= windows.threshold);
            over(windows.long_ms) && over(windows.short_ms)
        })
        .collect()
}

/// Maximal firing stretches `[since, until)` of a per-millisecond firing array.
fn stretches(fires: &[bool]) -> Vec<(i64, i64)> {
    let mut stretches = Vec::new();
    let mut open = None;
    for (offset, &firing) in fires.iter().enumerate() {
        let t = LO + offset as i64;
        match (firing, open) {
            (true, None) => open = Some(t),
            (false, Some(since)) => {
                stretches.push((since, t));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(since) = open {
        stretches.push((since, HI));
    }
    stretches
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn alerts_match_the_naive_reference(
        inputs in history_strategy(),
        for_ms in 0i64..40,
        burn_step_ms in prop::sample::select(vec![1i64, 5, 20]),
        windows in prop::collection::vec((300i64..3_600, 1i64..600), 1..4),
    ) {
        let projection = project(&inputs);
        let naive = NaiveLog::from_inputs(&inputs);
        let policy = small_policy(for_ms, burn_step_ms);
        for service_id in SERVICE_IDS {
            if !naive.definitions.contains_key(service_id) {
                prop_assert!(firing_for(&projection, &policy, service_id, 1_000).is_empty());
                continue;
            }
            let states = naive_states(&naive, service_id);
            for rule in Rule::ALL {
                let fires = naive_fires(&naive, &states, &policy, service_id, rule);
                let stretches = stretches(&fires);
                for t in (LO + 700..HI - 700).step_by(3) {
                    let engine = firing_for(&projection, &policy, service_id, t)
                        .into_iter()
                        .find(|alert| alert.rule == rule)
                        .map(|alert| alert.since);
                    let reference = stretches
                        .iter()
                        .find(|(since, until)| *since <= t && t < *until)
                        .map(|(since, _)| *since);
                    prop_assert_eq!(engine, reference, "{} {:?} at {}", service_id, rule, t);
                }
                for &(start, length) in &windows {
                    let end = start + length;
                    let engine: Vec<(i64, Option<i64>)> = history(&projection, &policy, service_id, start, end)
                        .into_iter()
                        .filter(|alert| alert.rule == rule)
                        .map(|alert| (alert.since, alert.until))
                        .collect();
                    let reference: Vec<(i64, Option<i64>)> = stretches
                        .iter()
                        .filter(|(since, until)| *since < end && *until > start)
                        .map(|&(since, until)| (since, (until < end).then_some(until)))
                        .collect();
                    prop_assert_eq!(engine, reference, "{} {:?} history [{}, {})", service_id, rule, start, end);
                }
            }
        }
    }
}

#[test]
fn burn_figures_are_reported_per_window() {
    let projection = scenario(&every_10ms("p", 0, 200, Status::Down));
    let policy = small_policy(10, 5);
    let rates = super::evaluate::burn_rates(&projection, &policy, SERVICE, 100).unwrap();
    assert_eq!(rates.len(), 3);
    let (rule, long, short): (Rule, BurnFigure, BurnFigure) = rates[0];
    assert_eq!(rule, Rule::SloBurn1h);
    assert_eq!((long.up_ms, long.down_ms), (0, 100));
    assert_eq!(short.burn_rate.map(|r| (r * 1e6).round()), Some(10.0 * 1e6));
    assert_eq!(
        super::evaluate::burn_rates(&projection, &policy, "nope", 100),
        None
    );
}
