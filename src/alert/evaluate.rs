//! Alert math: which alerts fire at an instant, and which fired over a window, as pure
//! functions of a projection (one log prefix) and an [`AlertPolicy`].
//!
//! - *outage* fires at `t` when the service state is DOWN over all of `[t - for, t]`: for
//!   a DOWN run starting at `s`, from `s + for` to the run's end.
//! - *no data* fires at `t` when the state is UNKNOWN over all of `[t - for, t]`, counted
//!   from the service's first definition at the earliest (a service nobody defined yet is
//!   not "without data").
//! - a *burn* rule fires at a grid instant `g` (a multiple of `burn_step_ms`) when the
//!   burn rate over `[g - long, g)` and over `[g - short, g)` are both at least its
//!   threshold, and it keeps that state until the next grid instant. The burn rate over a
//!   window is `(down / (up + down)) / (1 - slo_target)` from the report of that window
//!   (maintenance and unknown time excluded; the target in force at its last instant);
//!   no measured time means no burn rate, and a zero budget (target 1) an infinite rate
//!   once anything was down.

use super::rules::{AlertPolicy, BurnWindows, Rule};
use crate::projection::{Projection, State};

/// One alert episode of one service: firing from `since`, until `until`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub service_id: String,
    pub agency: String,
    pub rule: Rule,
    /// When it began to fire.
    pub since: i64,
    /// When it stopped firing; `None` while it still fires at the instant asked about (the
    /// evaluation instant, or the last instant of a history window).
    pub until: Option<i64>,
    pub figures: Figures,
}

/// The numbers behind an alert, at the instant asked about (for a history episode: the
/// instant it began to fire).
#[derive(Debug, Clone, PartialEq)]
pub enum Figures {
    /// `outage` and `no_data`: the state holds since `state_since`, and `for_ms` is the rule's.
    State {
        state: State,
        state_since: i64,
        for_ms: i64,
    },
    /// A burn rule: both windows, the threshold and the SLO target used.
    Burn {
        slo_target: f64,
        threshold: f64,
        long: BurnFigure,
        short: BurnFigure,
    },
}

/// The measure of one burn-rate window `[end - window_ms, end)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnFigure {
    pub window_ms: i64,
    pub up_ms: u64,
    pub down_ms: u64,
    /// `None` when nothing was measured (`up_ms + down_ms == 0`).
    pub burn_rate: Option<f64>,
}

/// The burn rate of a window: `(down / (up + down)) / (1 - slo_target)`; `None` when
/// nothing was measured; with no budget (`slo_target >= 1`), infinite once anything was
/// down and 0 otherwise.
pub fn burn_rate(up_ms: u64, down_ms: u64, slo_target: f64) -> Option<f64> {
    let measured = up_ms.checked_add(down_ms)?;
    if measured == 0 {
        return None;
    }
    let budget = 1.0 - slo_target;
    if budget <= 0.0 {
        return Some(if down_ms > 0 { f64::INFINITY } else { 0.0 });
    }
    Some((down_ms as f64 / measured as f64) / budget)
}

/// Every alert firing at `at`, service by service (in order of first definition), each
/// in rule order.
pub fn firing_at(projection: &Projection, policy: &AlertPolicy, at: i64) -> Vec<Alert> {
    projection
        .services()
        .flat_map(|spec| firing_for(projection, policy, &spec.service_id, at))
        .collect()
}

/// The first instant after `now` at which [`firing_at`] may answer otherwise with no new
/// entry in the prefix: a state rule's `for` elapsing, or the next burn-rate grid point.
/// (When the service state itself changes is the caller's to bound.)
pub fn firing_holds_until(projection: &Projection, policy: &AlertPolicy, now: i64) -> i64 {
    let mut until = i64::MAX;
    let longest = policy.burn.iter().map(|w| w.long_ms).max().unwrap_or(0);
    for spec in projection.services() {
        let service_id: &str = &spec.service_id;
        let rules = policy.rules_for(service_id);
        // Burn rates move only while DOWN time is inside their windows: with none in the
        // longest window and the service not DOWN now, they stay 0 until its state changes.
        let burning = projection
            .state_since(service_id, now)
            .is_some_and(|(state, _)| state == crate::projection::State::Down)
            || projection
                .report(service_id, now.saturating_sub(longest), now)
                .is_some_and(|report| report.down_ms > 0);
        for &rule in &rules.enabled {
            if rule.is_burn() {
                if burning {
                    let next = policy
                        .burn_instant(now)
                        .saturating_add(policy.burn_step_ms.max(1));
                    until = until.min(next);
                }
            } else if let Some((state, Some(since))) = projection.state_since(service_id, now) {
                let watched = match rule {
                    Rule::NoData => crate::projection::State::Unknown,
                    _ => crate::projection::State::Down,
                };
                if state != watched {
                    continue;
                }
                let fires = since.saturating_add(rules.for_ms);
                if fires > now {
                    until = until.min(fires);
                }
            }
        }
    }
    until
}

/// The alerts of one service firing at `at`; empty for an undefined service.
pub fn firing_for(
    projection: &Projection,
    policy: &AlertPolicy,
    service_id: &str,
    at: i64,
) -> Vec<Alert> {
    let Some(agency) = projection.spec(service_id).map(|spec| spec.agency.clone()) else {
        return Vec::new();
    };
    let rules = policy.rules_for(service_id);
    let mut alerts = Vec::new();
    for &rule in &rules.enabled {
        let fired = match policy.burn_windows(rule) {
            None => state_rule_at(projection, service_id, rule, rules.for_ms, at),
            Some(windows) => burn_rule_at(projection, policy, service_id, windows, at),
        };
        if let Some((since, figures)) = fired {
            alerts.push(Alert {
                service_id: service_id.to_owned(),
                agency: agency.clone(),
                rule,
                since,
                until: None,
                figures,
            });
        }
    }
    alerts
}

/// Every episode of the service's alerts that fired at some instant of `[start, end)`,
/// whole (its `since` may be before `start`), by rule then time. An episode still firing
/// at `end - 1` has no `until`. Empty for an undefined service or an empty window.
pub fn history(
    projection: &Projection,
    policy: &AlertPolicy,
    service_id: &str,
    start: i64,
    end: i64,
) -> Vec<Alert> {
    let Some(agency) = projection.spec(service_id).map(|spec| spec.agency.clone()) else {
        return Vec::new();
    };
    if start >= end {
        return Vec::new();
    }
    let rules = policy.rules_for(service_id);
    let mut alerts = Vec::new();
    for &rule in &rules.enabled {
        let episodes = match policy.burn_windows(rule) {
            None => state_rule_history(projection, service_id, rule, rules.for_ms, start, end),
            Some(windows) => burn_rule_history(projection, policy, service_id, windows, start, end),
        };
        alerts.extend(episodes.into_iter().map(|(since, until, figures)| Alert {
            service_id: service_id.to_owned(),
            agency: agency.clone(),
            rule,
            since,
            until,
            figures,
        }));
    }
    alerts
}

/// The burn rates of the service's burn rules at `at` (at its grid instant), long and short
/// window, whether or not the rules are enabled (for `/metrics`); `None` for an undefined
/// service.
pub fn burn_rates(
    projection: &Projection,
    policy: &AlertPolicy,
    service_id: &str,
    at: i64,
) -> Option<Vec<(Rule, BurnFigure, BurnFigure)>> {
    projection.spec(service_id)?;
    let instant = policy.burn_instant(at);
    Some(
        Rule::ALL
            .into_iter()
            .filter_map(|rule| {
                let windows = policy.burn_windows(rule)?;
                let (_, long, short) = burn_figures(projection, service_id, windows, instant)?;
                Some((rule, long, short))
            })
            .collect(),
    )
}

/// The state a state rule watches.
fn watched_state(rule: Rule) -> State {
    if rule == Rule::NoData {
        State::Unknown
    } else {
        State::Down
    }
}

/// Since when the state `rule` watches holds at `t` (no data counted from the first
/// definition), or `None` when it does not hold at `t`.
fn watched_state_since(
    projection: &Projection,
    service_id: &str,
    rule: Rule,
    t: i64,
) -> Option<i64> {
    let (state, since) = projection.state_since(service_id, t)?;
    if state != watched_state(rule) {
        return None;
    }
    match rule {
        Rule::NoData => {
            let defined_at = projection.defined_at(service_id)?;
            Some(since.unwrap_or(i64::MIN).max(defined_at))
        }
        _ => since,
    }
}

fn state_rule_at(
    projection: &Projection,
    service_id: &str,
    rule: Rule,
    for_ms: i64,
    at: i64,
) -> Option<(i64, Figures)> {
    let state_since = watched_state_since(projection, service_id, rule, at)?;
    let fires_from = state_since.saturating_add(for_ms);
    (fires_from <= at).then_some((
        fires_from,
        Figures::State {
            state: watched_state(rule),
            state_since,
            for_ms,
        },
    ))
}

type Episode = (i64, Option<i64>, Figures);

fn state_rule_history(
    projection: &Projection,
    service_id: &str,
    rule: Rule,
    for_ms: i64,
    start: i64,
    end: i64,
) -> Vec<Episode> {
    let lookback = start.saturating_sub(for_ms);
    let Some(timeline) = projection.timeline(service_id, lookback, end) else {
        return Vec::new();
    };
    let defined_at = projection.defined_at(service_id).unwrap_or(i64::MIN);
    let state = watched_state(rule);
    timeline
        .iter()
        .filter(|interval| interval.state == state)
        .filter_map(|interval| {
            let state_since = if interval.start == lookback {
                watched_state_since(projection, service_id, rule, lookback)?
            } else if rule == Rule::NoData {
                interval.start.max(defined_at)
            } else {
                interval.start
            };
            let fires_from = state_since.saturating_add(for_ms);
            if fires_from >= interval.end || interval.end <= start {
                return None;
            }
            let until = (interval.end < end).then_some(interval.end);
            Some((
                fires_from,
                until,
                Figures::State {
                    state,
                    state_since,
                    for_ms,
                },
            ))
        })
        .collect()
}

/// The slo target and both windows' figures ending at `instant`.
fn burn_figures(
    projection: &Projection,
    service_id: &str,
    windows: BurnWindows,
    instant: i64,
) -> Option<(f64, BurnFigure, BurnFigure)> {
    let long = projection.report(service_id, instant.saturating_sub(windows.long_ms), instant)?;
    let short = projection.report(
        service_id,
        instant.saturating_sub(windows.short_ms),
        instant,
    )?;
    let figure = |window_ms, up_ms, down_ms| BurnFigure {
        window_ms,
        up_ms,
        down_ms,
        burn_rate: burn_rate(up_ms, down_ms, long.slo_target),
    };
    Some((
        long.slo_target,
        figure(windows.long_ms, long.up_ms, long.down_ms),
        figure(windows.short_ms, short.up_ms, short.down_ms),
    ))
}

/// The figures at the grid instant `instant` when the burn rule fires there.
fn burn_fires(
    projection: &Projection,
    service_id: &str,
    windows: BurnWindows,
    instant: i64,
) -> Option<Figures> {
    let (slo_target, long, short) = burn_figures(projection, service_id, windows, instant)?;
    let over = |figure: &BurnFigure| {
        figure
            .burn_rate
            .is_some_and(|rate| rate >= windows.threshold)
    };
    (over(&long) && over(&short)).then_some(Figures::Burn {
        slo_target,
        threshold: windows.threshold,
        long,
        short,
    })
}

/// The first grid instant of the firing stretch through the firing instant `instant`.
fn burn_episode_start(
    projection: &Projection,
    service_id: &str,
    windows: BurnWindows,
    step: i64,
    instant: i64,
) -> i64 {
    let mut first = instant;
    while let Some(earlier) = first.checked_sub(step) {
        if burn_fires(projection, service_id, windows, earlier).is_none() {
            break;
        }
        first = earlier;
    }
    first
}

fn burn_rule_at(
    projection: &Projection,
    policy: &AlertPolicy,
    service_id: &str,
    windows: BurnWindows,
    at: i64,
) -> Option<(i64, Figures)> {
    let instant = policy.burn_instant(at);
    let figures = burn_fires(projection, service_id, windows, instant)?;
    let step = policy.burn_step_ms.max(1);
    let since = burn_episode_start(projection, service_id, windows, step, instant);
    Some((since, figures))
}

fn burn_rule_history(
    projection: &Projection,
    policy: &AlertPolicy,
    service_id: &str,
    windows: BurnWindows,
    start: i64,
    end: i64,
) -> Vec<Episode> {
    // No DOWN time anywhere the long windows reach: no burn, nothing to walk through.
    let reach = start.saturating_sub(windows.long_ms);
    if projection
        .report(service_id, reach, end)
        .is_none_or(|report| report.down_ms == 0)
    {
        return Vec::new();
    }
    let step = policy.burn_step_ms.max(1);
    let mut episodes: Vec<Episode> = Vec::new();
    let mut open: Option<(i64, Figures)> = None;
    let mut instant = policy.burn_instant(start);
    while instant < end {
        match (
            burn_fires(projection, service_id, windows, instant),
            open.take(),
        ) {
            (Some(figures), None) => {
                let since = if instant <= start {
                    burn_episode_start(projection, service_id, windows, step, instant)
                } else {
                    instant
                };
                let figures = if since == instant {
                    figures
                } else {
                    burn_fires(projection, service_id, windows, since).unwrap_or(figures)
                };
                open = Some((since, figures));
            }
            (Some(_), Some(episode)) => open = Some(episode),
            (None, Some((since, figures))) => episodes.push((since, Some(instant), figures)),
            (None, None) => {}
        }
        let Some(next) = instant.checked_add(step) else {
            break;
        };
        instant = next;
    }
    if let Some((since, figures)) = open {
        episodes.push((since, None, figures));
    }
    episodes
}
