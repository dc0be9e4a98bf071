//! Log entries → projection inputs: the one place the projection core's plain inputs are
//! made from decoded entries. The server's projector, `audit` and the tests all feed the
//! projection through here, so they cannot disagree about what an entry means.

use crate::domain::{duration_millis, Command, Genesis};
use crate::entry::{DecodedEntry, Payload, ProjectionEntry};
use crate::governance::Step;
use crate::projection::{ProjectionConfig, ProjectionInput};

/// What the projection needs from the genesis.
pub fn projection_config(genesis: &Genesis) -> ProjectionConfig {
    ProjectionConfig {
        max_lateness_ms: duration_millis(genesis.max_lateness),
    }
}

/// The projection input of an entry, or `None` when the entry does not affect projections.
pub fn projection_input(entry: &DecodedEntry) -> Option<ProjectionInput> {
    let index = entry.index;
    let received_at = entry.received_at;
    match &entry.payload {
        Payload::Genesis(genesis) => Some(ProjectionInput::Genesis {
            index,
            received_at,
            genesis: Box::new(genesis.clone()),
        }),
        Payload::Observation { observation, .. } => Some(ProjectionInput::Observation {
            index,
            received_at,
            probe_id: observation.probe_id.to_string(),
            service_id: observation.service_id.to_string(),
            observed_at: observation.observed_at,
            status: observation.status,
        }),
        Payload::Command {
            command,
            signer,
            body,
            signature,
        } => {
            if let Some(step) = Step::of(signer, body, signature, &command.command) {
                return Some(ProjectionInput::Governance {
                    index,
                    received_at,
                    step,
                });
            }
            match &command.command {
                Command::DefineService(spec) => Some(ProjectionInput::DefineService {
                    index,
                    received_at,
                    spec: spec.clone(),
                }),
                Command::ScheduleMaintenance {
                    maintenance_id,
                    service_id,
                    start,
                    end,
                    ..
                } => Some(ProjectionInput::ScheduleMaintenance {
                    index,
                    received_at,
                    maintenance_id: maintenance_id.to_string(),
                    service_id: service_id.to_string(),
                    start: *start,
                    end: *end,
                }),
                Command::CancelMaintenance { maintenance_id } => {
                    Some(ProjectionInput::CancelMaintenance {
                        index,
                        received_at,
                        maintenance_id: maintenance_id.to_string(),
                    })
                }
                // Steps of the governance, made above.
                Command::RegisterProbe { .. }
                | Command::RevokeProbe { .. }
                | Command::AddAdminKey(_)
                | Command::RevokeAdminKey { .. }
                | Command::ApproveCommand { .. } => None,
            }
        }
    }
}

/// Applies one decoded entry (in log order) to `projection`.
pub fn apply_entry(projection: &mut crate::projection::Projection, entry: &DecodedEntry) {
    match projection_input(entry) {
        Some(input) => projection.apply(input),
        None => projection.advance_applied_index(entry.index),
    }
}

/// Like [`apply_entry`], moving the entry's strings into the projection instead of
/// copying them (the rebuild path).
pub fn apply_owned_entry(projection: &mut crate::projection::Projection, entry: DecodedEntry) {
    match entry {
        DecodedEntry {
            index,
            received_at,
            payload: Payload::Observation { observation, .. },
        } => projection.apply(ProjectionInput::Observation {
            index,
            received_at,
            probe_id: observation.probe_id.into_string(),
            service_id: observation.service_id.into_string(),
            observed_at: observation.observed_at,
            status: observation.status,
        }),
        other => apply_entry(projection, &other),
    }
}

/// Applies one entry decoded by [`crate::entry::decode_for_projection`] (the rebuild path).
pub fn apply_projection_entry(
    projection: &mut crate::projection::Projection,
    entry: ProjectionEntry,
) {
    match entry {
        ProjectionEntry::Observation {
            index,
            received_at,
            probe_id,
            service_id,
            observed_at,
            status,
        } => projection.apply(ProjectionInput::Observation {
            index,
            received_at,
            probe_id: probe_id.into_string(),
            service_id: service_id.into_string(),
            observed_at,
            status,
        }),
        ProjectionEntry::Other(entry) => apply_owned_entry(projection, *entry),
    }
}
