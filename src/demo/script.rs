//! What the demo's simulated government services do, as a pure function of time: which
//! services exist, which probes watch them, and when each probe sees each service fail.
//! The backfilled history and the live simulated endpoints both ask [`Script::health`],
//! so the past and the present follow one script.
//!
//! Times are relative to the demo's anchor `A` (the moment the demo was first started):
//!
//! | service | past (backfilled) | live (after `A`) |
//! |---|---|---|
//! | e-services portal | full outage of 47 min two days ago | — |
//! | passport applications | full outage of 85 min yesterday | full outage `[A+90s, A+6m)`: an incident opens, then closes |
//! | business registration | flapping for 2 h yesterday (5 min down, 10 min up) | flapping for 15 min (1 min down every 2.5 min) |
//! | driving licences | the mobile network times out 07:00–09:30 UTC each day | the mobile network times out `[A, A+10m)`: quorum keeps it UP |
//! | tax filing | — | planned maintenance `[A+3m, A+13m)`, declared at start, answers 503 |
//! | certificate of good conduct | two probes saw 20 min down yesterday (`AT_LEAST(2)`: an incident) | — |

use crate::domain::{Millis, Quorum};

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// One simulated government service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoService {
    pub service_id: &'static str,
    pub name: &'static str,
    pub agency: &'static str,
    pub slo_target: f64,
    pub quorum: Quorum,
}

/// One in-process probe, at one vantage point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoProbe {
    pub probe_id: &'static str,
    pub location: &'static str,
}

pub const SERVICES: [DemoService; 6] = [
    DemoService {
        service_id: "ecitizen.portal",
        name: "National e-services portal",
        agency: "Ministry of Digital Government",
        slo_target: 0.999,
        quorum: Quorum::Majority,
    },
    DemoService {
        service_id: "immigration.passport",
        name: "Passport applications",
        agency: "Department of Immigration",
        slo_target: 0.995,
        quorum: Quorum::Majority,
    },
    DemoService {
        service_id: "registry.business",
        name: "Business registration",
        agency: "Companies Registry",
        slo_target: 0.99,
        quorum: Quorum::Majority,
    },
    DemoService {
        service_id: "transport.driving-licence",
        name: "Driving licences",
        agency: "Transport Authority",
        slo_target: 0.99,
        quorum: Quorum::Majority,
    },
    DemoService {
        service_id: "revenue.tax-filing",
        name: "Tax filing",
        agency: "Revenue Authority",
        slo_target: 0.995,
        quorum: Quorum::All,
    },
    DemoService {
        service_id: "police.good-conduct",
        name: "Certificate of good conduct",
        agency: "National Police Service",
        slo_target: 0.99,
        quorum: Quorum::AtLeast(2),
    },
];

pub const PROBES: [DemoProbe; 3] = [
    DemoProbe {
        probe_id: "capital-dc",
        location: "Capital city data centre",
    },
    DemoProbe {
        probe_id: "mobile-net",
        location: "Mobile network, northern region",
    },
    DemoProbe {
        probe_id: "coast-isp",
        location: "Coastal fibre ISP",
    },
];

/// Index of the mobile-network probe (the one that sees the partial outage).
const MOBILE: usize = 1;

/// What a probe gets from a simulated endpoint at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// HTTP 200.
    Up,
    /// HTTP 503: the service is down.
    Unavailable,
    /// HTTP 503 during the planned maintenance window.
    Maintenance,
    /// No answer before the probe's timeout (the network path is broken).
    Timeout,
}

impl Health {
    pub fn is_up(self) -> bool {
        self == Health::Up
    }
}

/// The planned maintenance window the demo declares in advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedMaintenance {
    pub service: usize,
    pub maintenance_id: &'static str,
    pub start: Millis,
    pub end: Millis,
    pub reason: &'static str,
}

/// The script, anchored at the demo's first start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    pub anchor: Millis,
}

impl Script {
    pub fn new(anchor: Millis) -> Script {
        Script { anchor }
    }

    /// The maintenance window: tax filing, `[A+3m, A+13m)`.
    pub fn maintenance(&self) -> PlannedMaintenance {
        PlannedMaintenance {
            service: 4,
            maintenance_id: "tax-upgrade-1",
            start: self.anchor + 3 * MINUTE,
            end: self.anchor + 13 * MINUTE,
            reason: "database upgrade, announced on the portal a week ahead",
        }
    }

    /// What probe `probe` gets from service `service` at `t` (indexes into [`PROBES`] and
    /// [`SERVICES`]).
    pub fn health(&self, service: usize, probe: usize, t: Millis) -> Health {
        let a = self.anchor;
        let within = |start: Millis, length: Millis| start <= t && t < start + length;
        let maintenance = self.maintenance();
        match service {
            // e-services portal: one full outage two days ago.
            0 if within(a - 2 * DAY + 3 * HOUR + 17 * MINUTE, 47 * MINUTE) => Health::Unavailable,
            // Passport applications: a long outage yesterday, a short one just after start.
            1 if within(a - DAY - 5 * HOUR, 85 * MINUTE) => Health::Unavailable,
            1 if within(a + 90 * SECOND, 4 * MINUTE + 30 * SECOND) => Health::Unavailable,
            // Business registration flaps: yesterday for two hours, and just after start.
            2 if within(a - 20 * HOUR, 2 * HOUR)
                && (t - (a - 20 * HOUR)).rem_euclid(15 * MINUTE) < 5 * MINUTE =>
            {
                Health::Unavailable
            }
            2 if within(a, 15 * MINUTE) && (t - a).rem_euclid(150 * SECOND) >= 90 * SECOND => {
                Health::Unavailable
            }
            // Driving licences: only the mobile network fails, every morning and at start.
            3 if probe == MOBILE && (within(a, 10 * MINUTE) || (t < a && morning_rush(t))) => {
                Health::Timeout
            }
            // Tax filing: down for its planned maintenance (declared in advance).
            4 if within(maintenance.start, maintenance.end - maintenance.start) => {
                Health::Maintenance
            }
            // Certificate of good conduct: two of the three probes saw it fail yesterday.
            5 if probe != MOBILE && within(a - DAY + 2 * HOUR, 20 * MINUTE) => Health::Unavailable,
            _ => Health::Up,
        }
    }
}

/// 07:00–09:30 UTC, when the mobile network's path to the driving-licence service fails.
fn morning_rush(t: Millis) -> bool {
    let time_of_day = t.rem_euclid(DAY);
    (7 * HOUR..9 * HOUR + 30 * MINUTE).contains(&time_of_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Millis = 1_790_000_000_000;

    fn down_ms(script: &Script, service: usize, probe: usize, from: Millis, to: Millis) -> Millis {
        (from..to)
            .step_by(SECOND as usize)
            .filter(|&t| !script.health(service, probe, t).is_up())
            .count() as Millis
            * SECOND
    }

    #[test]
    fn every_service_has_its_scripted_trouble() {
        let s = Script::new(A);
        // Portal: 47 minutes, seen by every probe, two days ago.
        for probe in 0..3 {
            assert_eq!(down_ms(&s, 0, probe, A - 3 * DAY, A), 47 * MINUTE);
        }
        // Passport: 85 minutes yesterday, 4.5 minutes live.
        assert_eq!(down_ms(&s, 1, 0, A - 3 * DAY, A), 85 * MINUTE);
        assert_eq!(down_ms(&s, 1, 2, A, A + HOUR), 4 * MINUTE + 30 * SECOND);
        // Business registration: 8 flaps of 5 minutes yesterday, 6 of 1 minute live.
        assert_eq!(down_ms(&s, 2, 1, A - 3 * DAY, A), 40 * MINUTE);
        assert_eq!(down_ms(&s, 2, 1, A, A + HOUR), 6 * MINUTE);
        // Driving licences: only the mobile network, 2.5 h a day and 10 minutes live.
        assert_eq!(down_ms(&s, 3, 0, A - 3 * DAY, A + HOUR), 0);
        assert_eq!(down_ms(&s, 3, 2, A - 3 * DAY, A + HOUR), 0);
        assert_eq!(down_ms(&s, 3, MOBILE, A, A + HOUR), 10 * MINUTE);
        let day = (A - 2 * DAY) - (A - 2 * DAY).rem_euclid(DAY);
        assert_eq!(down_ms(&s, 3, MOBILE, day, day + DAY), 150 * MINUTE);
        // Tax filing: exactly the maintenance window.
        let m = s.maintenance();
        assert_eq!(m.service, 4);
        assert_eq!(down_ms(&s, 4, 0, A - 3 * DAY, A + DAY), m.end - m.start);
        assert_eq!(s.health(4, 0, m.start), Health::Maintenance);
        assert_eq!(s.health(4, 0, m.end), Health::Up);
        // Good conduct: two probes for 20 minutes, never the mobile network.
        assert_eq!(down_ms(&s, 5, 0, A - 3 * DAY, A), 20 * MINUTE);
        assert_eq!(down_ms(&s, 5, MOBILE, A - 3 * DAY, A + DAY), 0);
    }

    #[test]
    fn the_mobile_network_times_out_and_the_others_answer() {
        let s = Script::new(A);
        assert_eq!(s.health(3, MOBILE, A + MINUTE), Health::Timeout);
        assert_eq!(s.health(3, 0, A + MINUTE), Health::Up);
        assert_eq!(s.health(1, 0, A + 2 * MINUTE), Health::Unavailable);
    }
}
