//! Writing a bundle: from an audited prefix's entries, choose the ones behind one
//! service's report and incidents, and attach each one's inclusion proof.
//!
//! Chosen, each once: the genesis (entry 0: the ledger key and the first admin keys); the
//! service's definitions in force from the earliest incident's start (or the window's,
//! if earlier) to the window's end; for each incident, the DOWN observations of the
//! service by the incident's probes that are fresh at some instant of it
//! (`observed_at < end` and `observed_at + staleness > start`, with the largest
//! staleness of the chosen definitions); the registration of each of their probes in
//! force at the observation; and, for every chosen command, the latest entry before it
//! that added its signer's key (none for a genesis key), transitively.

use std::collections::{BTreeSet, HashMap};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::bundle::{Bundle, BundleEntry, BundleIncident, Window, EVIDENCE_FORMAT};
use super::tree::LeafTree;
use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::domain::{format_millis, Command, Millis, Status};
use crate::entry::{self, DecodedEntry, Payload};
use crate::projection::{AvailabilityReport, Incident};

/// What a bundle is made from: a prefix that passed the audit, its checkpoint, and the
/// report and incidents recomputed from it.
pub struct BundleInputs<'a> {
    pub verifier: &'a NoteVerifier,
    /// The signed note of `checkpoint`.
    pub note: &'a str,
    pub checkpoint: &'a Checkpoint,
    /// Every entry `[0, tree_size)` of the checkpoint's tree.
    pub entries: &'a [Vec<u8>],
    pub service_id: &'a str,
    pub window: (Millis, Millis),
    pub report: &'a AvailabilityReport,
    pub incidents: &'a [Incident],
}

/// Why a bundle could not be written (the inputs are not an audited prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the entries are not the checkpoint's tree: {0}")]
    NotTheTree(String),
    #[error("entry {index} does not decode: {detail}")]
    Undecodable { index: u64, detail: String },
    #[error("the log defines no service {0:?}")]
    UndefinedService(String),
}

/// The bundle for `inputs`.
pub fn build_bundle(inputs: &BundleInputs<'_>) -> Result<Bundle, BuildError> {
    let tree = LeafTree::from_entries(inputs.entries);
    if tree.size() != inputs.checkpoint.tree_size || tree.root() != inputs.checkpoint.root_hash {
        return Err(BuildError::NotTheTree(format!(
            "{} entries with root {}, but the checkpoint signs {} entries with root {}",
            tree.size(),
            hex::encode(tree.root()),
            inputs.checkpoint.tree_size,
            hex::encode(inputs.checkpoint.root_hash)
        )));
    }
    let decoded = inputs
        .entries
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            entry::decode_entry(bytes).map_err(|e| BuildError::Undecodable {
                index: index as u64,
                detail: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let chosen = choose(&decoded, inputs)?;

    let mut entries = Vec::new();
    for index in chosen.all() {
        let proof = tree
            .inclusion_proof(index)
            .map_err(|e| BuildError::NotTheTree(e.to_string()))?;
        entries.push(BundleEntry {
            index,
            entry: BASE64.encode(&inputs.entries[index as usize]),
            inclusion_proof: proof.iter().map(hex::encode).collect(),
        });
    }
    Ok(Bundle {
        format: EVIDENCE_FORMAT.to_owned(),
        verifier_key: inputs.verifier.to_string(),
        checkpoint: inputs.note.to_owned(),
        service_id: inputs.service_id.to_owned(),
        window: Window {
            start: format_millis(inputs.window.0),
            end: format_millis(inputs.window.1),
        },
        report: serde_json::to_value(inputs.report)
            .map_err(|e| BuildError::NotTheTree(e.to_string()))?,
        incidents: inputs
            .incidents
            .iter()
            .zip(chosen.incidents)
            .map(|(incident, observations)| BundleIncident {
                start: format_millis(incident.start),
                end: format_millis(incident.end),
                duration_ms: incident.end.saturating_sub(incident.start),
                open: incident.open,
                probes: incident.probes.clone(),
                observations,
            })
            .collect(),
        service_specs: chosen.specs,
        entries,
    })
}

/// The indexes chosen.
struct Chosen {
    specs: Vec<u64>,
    incidents: Vec<Vec<u64>>,
    /// Registrations and admin key additions.
    supporting: BTreeSet<u64>,
}

impl Chosen {
    /// Every chosen index, once, ascending; the genesis first.
    fn all(&self) -> BTreeSet<u64> {
        let mut all = self.supporting.clone();
        all.insert(0);
        all.extend(&self.specs);
        all.extend(self.incidents.iter().flatten());
        all
    }
}

fn choose(decoded: &[DecodedEntry], inputs: &BundleInputs<'_>) -> Result<Chosen, BuildError> {
    let span_start = inputs
        .incidents
        .iter()
        .map(|incident| incident.start)
        .fold(inputs.window.0, Millis::min);
    let span_end = inputs.window.1;

    // The service's definitions, in log order, and the one in force at `span_start`.
    let definitions: Vec<(u64, Millis, i64)> = decoded
        .iter()
        .filter_map(|entry| match &entry.payload {
            Payload::Command {
                command:
                    crate::domain::AdminCommand {
                        command: Command::DefineService(spec),
                        ..
                    },
                ..
            } if spec.service_id.as_str() == inputs.service_id => {
                Some((entry.index, entry.received_at, spec.staleness_ms()))
            }
            _ => None,
        })
        .collect();
    if definitions.is_empty() {
        return Err(BuildError::UndefinedService(inputs.service_id.to_owned()));
    }
    let in_force_at_start = definitions
        .partition_point(|(_, received_at, _)| *received_at <= span_start)
        .saturating_sub(1);
    let specs: Vec<_> = definitions[in_force_at_start..]
        .iter()
        .enumerate()
        .filter(|(n, (_, received_at, _))| *n == 0 || *received_at < span_end)
        .map(|(_, definition)| *definition)
        .collect();
    let staleness = specs.iter().map(|(_, _, s)| *s).max().unwrap_or(0);

    let incidents: Vec<Vec<u64>> = inputs
        .incidents
        .iter()
        .map(|incident| {
            decoded
                .iter()
                .filter_map(|entry| match &entry.payload {
                    Payload::Observation { observation, .. }
                        if observation.service_id.as_str() == inputs.service_id
                            && observation.status == Status::Down
                            && incident
                                .probes
                                .iter()
                                .any(|probe| probe == observation.probe_id.as_str())
                            && observation.observed_at < incident.end
                            && observation.observed_at.saturating_add(staleness)
                                > incident.start =>
                    {
                        Some(entry.index)
                    }
                    _ => None,
                })
                .collect()
        })
        .collect();

    let mut supporting = BTreeSet::new();
    // The registration in force at each observation: the latest before it.
    let mut registrations: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut additions: HashMap<&str, Vec<u64>> = HashMap::new();
    for entry in decoded {
        if let Payload::Command { command, .. } = &entry.payload {
            match &command.command {
                Command::RegisterProbe { probe_id, .. } => registrations
                    .entry(probe_id.as_str())
                    .or_default()
                    .push(entry.index),
                Command::AddAdminKey(key) => additions
                    .entry(key.name.as_str())
                    .or_default()
                    .push(entry.index),
                _ => {}
            }
        }
    }
    let latest_before = |indexes: Option<&Vec<u64>>, before: u64| {
        indexes.and_then(|indexes| {
            let n = indexes.partition_point(|index| *index < before);
            n.checked_sub(1).map(|n| indexes[n])
        })
    };
    for index in incidents.iter().flatten() {
        if let Payload::Observation { observation, .. } = &decoded[*index as usize].payload {
            if let Some(registration) =
                latest_before(registrations.get(observation.probe_id.as_str()), *index)
            {
                supporting.insert(registration);
            }
        }
    }
    // The admin keys that signed the chosen commands: the latest addition of each before
    // the command (none for a genesis key), and so on back to the genesis keys.
    let mut work: Vec<u64> = supporting
        .iter()
        .copied()
        .chain(specs.iter().map(|(index, _, _)| *index))
        .collect();
    while let Some(index) = work.pop() {
        let Payload::Command { signer, .. } = &decoded[index as usize].payload else {
            continue;
        };
        if let Some(addition) = latest_before(additions.get(signer.as_str()), index) {
            if supporting.insert(addition) {
                work.push(addition);
            }
        }
    }
    Ok(Chosen {
        specs: specs.iter().map(|(index, _, _)| *index).collect(),
        incidents,
        supporting,
    })
}
