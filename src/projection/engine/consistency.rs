//! The engine's invariants (listed in the [`engine`](super) docs) checked from
//! scratch, and a projection assembled from its stored parts, as a decoded
//! snapshot does before it is checked.

use std::collections::BTreeMap;

use super::tracks::{
    governed_runs, sweep_service_state, Definition, ProbeTrack, Rollup, ServiceTrack, END_OF_TIME,
};
use super::{MaintenancePosition, Projection, ProjectionConfig};
use crate::projection::model::RegisteredProbe;
use crate::projection::runs;

impl Projection {
    /// Validates every invariant listed in the engine's module docs, recomputing the
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
            if self.service_positions.get(service_id.as_str()) != Some(&position) {
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
    pub(in crate::projection) fn from_parts(
        config: ProjectionConfig,
        applied_index: Option<u64>,
        latest_received_at: Option<i64>,
        services: Vec<ServiceTrack>,
        registered_probes: BTreeMap<String, RegisteredProbe>,
        governance: crate::governance::Governance,
    ) -> Result<Projection, String> {
        let mut projection = Projection::new(config);
        projection.applied_index = applied_index;
        projection.latest_received_at = latest_received_at;
        projection.registered_probes = registered_probes;
        projection.governance = governance;
        for (position, service) in services.iter().enumerate() {
            let service_id = &service
                .definitions
                .first()
                .ok_or("a service has no definition")?
                .spec
                .service_id;
            if projection
                .service_positions
                .insert(service_id.to_string(), position)
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
}

impl ServiceTrack {
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
