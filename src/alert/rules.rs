//! The alert rules and the policy that says which apply to a service: plain values,
//! checked when built (the TOML file in `config` is one way to build them).

use std::collections::BTreeMap;

/// One kind of alert, per service. The order here is the order alerts are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The service state is DOWN (by its quorum policy) for at least `for`.
    Outage,
    /// The service state is UNKNOWN (every probe silent or stale) for at least `for`.
    NoData,
    /// The SRE workbook's fast page: burn rate ≥ 14.4 over 1 h and over 5 min.
    SloBurn1h,
    /// The slow page: burn rate ≥ 6 over 6 h and over 30 min.
    SloBurn6h,
    /// The ticket: burn rate ≥ 1 over 3 d and over 6 h.
    SloBurn3d,
}

/// Who an alert is for: someone now, or someone in working hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Page,
    Ticket,
}

/// A multi-window burn-rate condition: the burn rate over both windows ending at the
/// evaluation instant is at least `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindows {
    pub long_ms: i64,
    pub short_ms: i64,
    pub threshold: f64,
}

/// What is on for one service: `for` of the state rules, and the rules enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRules {
    /// How long the state must hold before `outage` or `no_data` fires (≥ 0).
    pub for_ms: i64,
    /// Sorted, without repeats.
    pub enabled: Vec<Rule>,
}

/// Every service's rules: the defaults, per-service overrides, the burn windows, and the
/// step on which burn rates are evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPolicy {
    pub defaults: ServiceRules,
    /// Overrides by service id (a service not listed gets `defaults`).
    pub services: BTreeMap<String, ServiceRules>,
    /// The windows of `SloBurn1h`, `SloBurn6h`, `SloBurn3d`, in that order.
    pub burn: [BurnWindows; 3],
    /// Burn-rate windows end on multiples of this (ms since the epoch), so a burn alert's
    /// state changes only on those instants and its history is a finite list.
    pub burn_step_ms: i64,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// DESIGN.md's default `for` of the state rules: 1 min.
pub const DEFAULT_FOR_MS: i64 = MINUTE_MS;
/// Burn rates are evaluated on whole minutes.
pub const DEFAULT_BURN_STEP_MS: i64 = MINUTE_MS;

impl Rule {
    pub const ALL: [Rule; 5] = [
        Rule::Outage,
        Rule::NoData,
        Rule::SloBurn1h,
        Rule::SloBurn6h,
        Rule::SloBurn3d,
    ];

    /// The name in configuration, JSON, the wire and Alertmanager's `alertname` label.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Outage => "outage",
            Rule::NoData => "no_data",
            Rule::SloBurn1h => "slo_burn_1h",
            Rule::SloBurn6h => "slo_burn_6h",
            Rule::SloBurn3d => "slo_burn_3d",
        }
    }

    pub fn parse(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.name() == name)
    }

    /// One of the SLO burn-rate rules.
    pub fn is_burn(self) -> bool {
        self.burn_position().is_some()
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::Outage | Rule::SloBurn1h | Rule::SloBurn6h => Severity::Page,
            Rule::NoData | Rule::SloBurn3d => Severity::Ticket,
        }
    }

    /// The position of a burn rule's windows in [`AlertPolicy::burn`].
    fn burn_position(self) -> Option<usize> {
        match self {
            Rule::Outage | Rule::NoData => None,
            Rule::SloBurn1h => Some(0),
            Rule::SloBurn6h => Some(1),
            Rule::SloBurn3d => Some(2),
        }
    }
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

impl Default for ServiceRules {
    fn default() -> Self {
        ServiceRules {
            for_ms: DEFAULT_FOR_MS,
            enabled: Rule::ALL.to_vec(),
        }
    }
}

impl Default for AlertPolicy {
    /// DESIGN.md's rules: every alert on, `for` 1 min, the workbook's windows.
    fn default() -> Self {
        AlertPolicy {
            defaults: ServiceRules::default(),
            services: BTreeMap::new(),
            burn: [
                BurnWindows {
                    long_ms: HOUR_MS,
                    short_ms: 5 * MINUTE_MS,
                    threshold: 14.4,
                },
                BurnWindows {
                    long_ms: 6 * HOUR_MS,
                    short_ms: 30 * MINUTE_MS,
                    threshold: 6.0,
                },
                BurnWindows {
                    long_ms: 72 * HOUR_MS,
                    short_ms: 6 * HOUR_MS,
                    threshold: 1.0,
                },
            ],
            burn_step_ms: DEFAULT_BURN_STEP_MS,
        }
    }
}

impl AlertPolicy {
    /// The rules of `service_id`: its override, else the defaults.
    pub fn rules_for(&self, service_id: &str) -> &ServiceRules {
        self.services.get(service_id).unwrap_or(&self.defaults)
    }

    /// The windows of a burn rule; `None` for the state rules.
    pub fn burn_windows(&self, rule: Rule) -> Option<BurnWindows> {
        rule.burn_position().map(|position| self.burn[position])
    }

    /// The burn-rate grid point at or before `t`.
    pub fn burn_instant(&self, t: i64) -> i64 {
        let step = self.burn_step_ms.max(1);
        t.div_euclid(step).saturating_mul(step)
    }
}
