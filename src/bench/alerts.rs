//! The cost of alert evaluation per checkpoint: every rule of every service evaluated at
//! one instant (what the notifier does on each new prefix and tick), on a projection of
//! 100 services with three probes each, checked every minute for the longest burn window
//! (3 days), a tenth of the services in an ongoing outage (so their burn alerts fire and
//! walk back to where they began).

use std::time::{Duration, Instant};

use crate::alert::{firing_at, AlertPolicy};
use crate::domain::{Quorum, ServiceId, ServiceSpec, Status};
use crate::projection::{Projection, ProjectionConfig, ProjectionInput};

use super::Latency;

pub const SERVICES: usize = 100;
const PROBES: usize = 3;
const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertsResult {
    pub services: usize,
    pub history_hours: i64,
    pub inputs: u64,
    /// Alerts firing at the evaluation instant.
    pub firing: usize,
    /// One evaluation of every rule of every service.
    pub evaluation: Latency,
}

/// Builds the projection (3 days, or 6 hours with `quick`) and times `evaluations`
/// evaluations, each at a later minute.
pub fn run(quick: bool, evaluations: usize) -> AlertsResult {
    let history_hours: i64 = if quick { 6 } else { 72 };
    let end = history_hours * 60 * MINUTE_MS;
    let mut projection = Projection::new(ProjectionConfig::default());
    let mut index = 0u64;
    for service in 0..SERVICES {
        projection.apply(ProjectionInput::DefineService {
            index,
            received_at: 0,
            spec: ServiceSpec {
                service_id: ServiceId::parse_owned(format!("service-{service}"))
                    .expect("a valid id"),
                name: format!("Service {service}"),
                agency: format!("Agency {}", service % 10),
                slo_target: 0.999,
                quorum: Quorum::Majority,
                staleness: Duration::from_secs(90),
            },
        });
        index += 1;
    }
    // In outage for the last 20 minutes of the history: every tenth service.
    let in_outage =
        |service: usize, at: i64| service.is_multiple_of(10) && at >= end - 20 * MINUTE_MS;
    for at in (0..end).step_by(MINUTE_MS as usize) {
        for service in 0..SERVICES {
            for probe in 0..PROBES {
                let status = if in_outage(service, at) {
                    Status::Down
                } else {
                    Status::Up
                };
                projection.apply(ProjectionInput::Observation {
                    index,
                    received_at: at,
                    probe_id: format!("probe-{probe}"),
                    service_id: format!("service-{service}"),
                    observed_at: at,
                    status,
                });
                index += 1;
            }
        }
    }
    let policy = AlertPolicy::default();
    let mut samples = Vec::with_capacity(evaluations);
    let mut firing = 0;
    for evaluation in 0..evaluations {
        // Instants within the last minute of data, a different one each time.
        let at = end - MINUTE_MS + (evaluation as i64 * 997) % MINUTE_MS;
        let started = Instant::now();
        let alerts = firing_at(&projection, &policy, at);
        samples.push(started.elapsed());
        firing = alerts.len();
    }
    AlertsResult {
        services: SERVICES,
        history_hours,
        inputs: index,
        firing,
        evaluation: Latency::from_samples(&mut samples),
    }
}
