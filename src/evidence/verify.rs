//! Checking an evidence file with no ledger: the checkpoint's signature, every entry's
//! leaf hash and inclusion proof against it, every signature by the keys the bundle's own
//! proven entries establish, and that each incident's observations are DOWN observations
//! of the service by its probes, fresh during it. [`Findings::statement`] says what that
//! proves and what it cannot. Any input is refused with a reason, never a panic.

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::bundle::{Bundle, EVIDENCE_FORMAT};
use crate::checkpoint::{open_checkpoint, Checkpoint, CheckpointError, NoteVerifier};
use crate::crypto::{PublicKey, SigningContext};
use crate::domain::{format_millis, parse_millis, Command, Millis, Status};
use crate::entry::{self, DecodedEntry, Payload};
use crate::merkle::{self, Hash, VerifyError};

/// Why an evidence file proves nothing. Each names what was wrong and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvidenceError {
    #[error("not an evidence file: {0}")]
    NotABundle(String),
    #[error("the file says format {0:?}; this verifier reads {EVIDENCE_FORMAT}")]
    Format(String),
    #[error("the file's verifier_key is not a verifier key: {0}")]
    BadKey(CheckpointError),
    #[error("the file was checked against key {bundle}, not the pinned key {pinned}: it is not evidence about the log you pinned")]
    KeyNotPinned { bundle: String, pinned: String },
    #[error("the checkpoint does not verify with key {key}: {error}")]
    Checkpoint { key: String, error: CheckpointError },
    #[error("{field} is not a time: {detail}")]
    BadTime { field: String, detail: String },
    #[error("entry {index} appears twice")]
    Duplicate { index: u64 },
    #[error("entry {index}: {detail}")]
    Malformed { index: u64, detail: String },
    #[error("entry {index}: its inclusion proof does not lead to the checkpoint's root (tree size {tree_size}): {error}; the entry or its proof was altered")]
    NotIncluded {
        index: u64,
        tree_size: u64,
        error: VerifyError,
    },
    #[error("the file does not carry entry 0, the genesis, which names the ledger key and the first admin keys")]
    NoGenesis,
    #[error("entry 0 is not a genesis")]
    NotGenesis,
    #[error("the genesis names origin {genesis_origin:?} with ledger key {genesis_key}, but the checkpoint key is for {key_origin:?} with key {key}")]
    GenesisMismatch {
        genesis_origin: String,
        genesis_key: String,
        key_origin: String,
        key: String,
    },
    #[error("entry {index}: signed by admin key {signer:?}, which is neither in the genesis nor added by an earlier entry of the file")]
    UnknownAdmin { index: u64, signer: String },
    #[error("entry {index}: an observation by probe {probe}, whose registration is not among the file's earlier entries")]
    UnregisteredProbe { index: u64, probe: String },
    #[error("entry {index}: the signature of {signer}'s {kind} does not verify")]
    BadSignature {
        index: u64,
        kind: &'static str,
        signer: String,
    },
    #[error("the file names entry {index} as {role}, but does not carry it")]
    Missing { index: u64, role: String },
    #[error("entry {index} is named as {role}, but {reason}")]
    WrongRole {
        index: u64,
        role: String,
        reason: String,
    },
    #[error("the file carries no definition of service {0}")]
    NoDefinition(String),
}

/// What a bundle proves, once every check has passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub verifier_key: String,
    pub checkpoint: Checkpoint,
    pub service_id: String,
    pub window: (Millis, Millis),
    /// Entries whose inclusion was proven.
    pub entries: usize,
    /// Signatures verified (every entry but the genesis).
    pub signatures: usize,
    /// Indexes of the service's definitions carried.
    pub specs: Vec<u64>,
    /// Each probe behind an incident, with the index of its registration.
    pub probes: BTreeMap<String, u64>,
    pub incidents: Vec<ProvenIncident>,
    /// The report as the file states it (not provable from the file).
    pub report: serde_json::Value,
}

/// An incident and the proven DOWN observations behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenIncident {
    pub start: Millis,
    pub end: Millis,
    pub open: bool,
    pub probes: Vec<String>,
    pub observations: usize,
    /// The earliest and latest `observed_at` among them.
    pub observed: Option<(Millis, Millis)>,
}

/// Checks the evidence file `text`. `pinned` is the checkpoint key obtained out of band,
/// if any; without it the file's own key is used, which proves only that whoever holds
/// that key signed.
pub fn verify_bundle(text: &str, pinned: Option<&NoteVerifier>) -> Result<Findings, EvidenceError> {
    let bundle: Bundle =
        serde_json::from_str(text).map_err(|e| EvidenceError::NotABundle(e.to_string()))?;
    if bundle.format != EVIDENCE_FORMAT {
        return Err(EvidenceError::Format(bundle.format));
    }
    let verifier: NoteVerifier = bundle.verifier_key.parse().map_err(EvidenceError::BadKey)?;
    if let Some(pinned) = pinned {
        if pinned != &verifier {
            return Err(EvidenceError::KeyNotPinned {
                bundle: bundle.verifier_key,
                pinned: pinned.to_string(),
            });
        }
    }
    let checkpoint = open_checkpoint(&bundle.checkpoint, &verifier).map_err(|error| {
        EvidenceError::Checkpoint {
            key: bundle.verifier_key.clone(),
            error,
        }
    })?;
    let window = (
        time("window.start", &bundle.window.start)?,
        time("window.end", &bundle.window.end)?,
    );

    let mut entries = BTreeMap::new();
    for carried in &bundle.entries {
        let decoded = proven_entry(carried, &checkpoint)?;
        if entries.insert(carried.index, decoded).is_some() {
            return Err(EvidenceError::Duplicate {
                index: carried.index,
            });
        }
    }
    let signatures = check_signatures(&entries, &verifier)?;

    let specs = &bundle.service_specs;
    let mut staleness = None;
    for index in specs {
        let role = format!("a definition of service {}", bundle.service_id);
        match &entry_for(&entries, *index, &role)?.payload {
            Payload::Command { command, .. } => match &command.command {
                Command::DefineService(spec) if spec.service_id.as_str() == bundle.service_id => {
                    staleness = staleness.max(Some(spec.staleness_ms()));
                }
                _ => return Err(wrong_role(*index, &role, "it is another command")),
            },
            _ => return Err(wrong_role(*index, &role, "it is not a command")),
        }
    }
    let staleness =
        staleness.ok_or_else(|| EvidenceError::NoDefinition(bundle.service_id.clone()))?;

    let mut probes = BTreeMap::new();
    let mut incidents = Vec::new();
    for (number, incident) in bundle.incidents.iter().enumerate() {
        let field = |name: &str| format!("incident {}'s {name}", number + 1);
        let (start, end) = (
            time(&field("start"), &incident.start)?,
            time(&field("end"), &incident.end)?,
        );
        let role = format!(
            "a DOWN observation behind incident {} ({} to {})",
            number + 1,
            format_millis(start),
            format_millis(end)
        );
        let mut observed: Option<(Millis, Millis)> = None;
        let mut seen = std::collections::BTreeSet::new();
        for index in &incident.observations {
            if !seen.insert(*index) {
                return Err(wrong_role(*index, &role, "it is listed twice"));
            }
            let Payload::Observation { observation, .. } =
                &entry_for(&entries, *index, &role)?.payload
            else {
                return Err(wrong_role(*index, &role, "it is not an observation"));
            };
            let at = observation.observed_at;
            let reason = if observation.service_id.as_str() != bundle.service_id {
                Some(format!("it observes service {}", observation.service_id))
            } else if observation.status != Status::Down {
                Some("it says UP".to_owned())
            } else if !incident
                .probes
                .iter()
                .any(|p| p == observation.probe_id.as_str())
            {
                Some(format!(
                    "its probe {} is not among the incident's probes",
                    observation.probe_id
                ))
            } else if at >= end || at.saturating_add(staleness) <= start {
                Some(format!(
                    "it was observed at {}, not fresh during the incident",
                    format_millis(at)
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(wrong_role(*index, &role, &reason));
            }
            observed = Some(observed.map_or((at, at), |(a, b)| (a.min(at), b.max(at))));
            let registration = registration_of(&entries, observation.probe_id.as_str(), *index);
            if let Some(registration) = registration {
                probes.insert(observation.probe_id.to_string(), registration);
            }
        }
        incidents.push(ProvenIncident {
            start,
            end,
            open: incident.open,
            probes: incident.probes.clone(),
            observations: incident.observations.len(),
            observed,
        });
    }
    Ok(Findings {
        verifier_key: bundle.verifier_key,
        checkpoint,
        service_id: bundle.service_id,
        window,
        entries: entries.len(),
        signatures,
        specs: specs.clone(),
        probes,
        incidents,
        report: bundle.report,
    })
}

fn time(field: &str, text: &str) -> Result<Millis, EvidenceError> {
    parse_millis(text).map_err(|detail| EvidenceError::BadTime {
        field: field.to_owned(),
        detail,
    })
}

fn wrong_role(index: u64, role: &str, reason: &str) -> EvidenceError {
    EvidenceError::WrongRole {
        index,
        role: role.to_owned(),
        reason: reason.to_owned(),
    }
}

fn entry_for<'a>(
    entries: &'a BTreeMap<u64, DecodedEntry>,
    index: u64,
    role: &str,
) -> Result<&'a DecodedEntry, EvidenceError> {
    entries.get(&index).ok_or_else(|| EvidenceError::Missing {
        index,
        role: role.to_owned(),
    })
}

/// The carried entry decoded, once its bytes are proven to be leaf `index` of the tree.
fn proven_entry(
    carried: &super::bundle::BundleEntry,
    checkpoint: &Checkpoint,
) -> Result<DecodedEntry, EvidenceError> {
    let index = carried.index;
    let malformed = |detail: String| EvidenceError::Malformed { index, detail };
    let bytes = BASE64
        .decode(carried.entry.as_bytes())
        .map_err(|e| malformed(format!("its bytes are not base64: {e}")))?;
    let proof = carried
        .inclusion_proof
        .iter()
        .map(|hash| {
            hex::decode(hash)
                .ok()
                .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
                .ok_or_else(|| malformed(format!("proof hash {hash:?} is not 32 bytes of hex")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&bytes),
        index,
        checkpoint.tree_size,
        &proof,
        &checkpoint.root_hash,
    )
    .map_err(|error| EvidenceError::NotIncluded {
        index,
        tree_size: checkpoint.tree_size,
        error,
    })?;
    let decoded =
        entry::decode_entry(&bytes).map_err(|e| malformed(format!("it does not decode: {e}")))?;
    if decoded.index != index {
        return Err(malformed(format!("it says it is entry {}", decoded.index)));
    }
    Ok(decoded)
}

/// Verifies every signature in log order: commands by the admin keys of the genesis and
/// of earlier AddAdminKey entries, observations by the key of the probe's latest earlier
/// registration. Returns how many were verified.
fn check_signatures(
    entries: &BTreeMap<u64, DecodedEntry>,
    verifier: &NoteVerifier,
) -> Result<usize, EvidenceError> {
    let genesis = match entries.get(&0).map(|entry| &entry.payload) {
        None => return Err(EvidenceError::NoGenesis),
        Some(Payload::Genesis(genesis)) => genesis,
        Some(_) => return Err(EvidenceError::NotGenesis),
    };
    if genesis.origin != verifier.name() || &genesis.ledger_public_key != verifier.public_key() {
        return Err(EvidenceError::GenesisMismatch {
            genesis_origin: genesis.origin.clone(),
            genesis_key: hex::encode(genesis.ledger_public_key.as_bytes()),
            key_origin: verifier.name().to_owned(),
            key: hex::encode(verifier.public_key().as_bytes()),
        });
    }
    let mut admins: HashMap<String, PublicKey> = genesis
        .admin_keys
        .iter()
        .map(|key| (key.name.clone(), key.public_key.clone()))
        .collect();
    let mut probes: HashMap<String, PublicKey> = HashMap::new();
    let mut verified = 0;
    for (index, entry) in entries {
        let index = *index;
        match &entry.payload {
            Payload::Genesis(_) if index == 0 => {}
            Payload::Genesis(_) => {
                return Err(EvidenceError::Malformed {
                    index,
                    detail: "it is a second genesis".to_owned(),
                })
            }
            Payload::Command {
                signer,
                body,
                signature,
                command,
            } => {
                let key = admins
                    .get(signer)
                    .ok_or_else(|| EvidenceError::UnknownAdmin {
                        index,
                        signer: signer.clone(),
                    })?;
                if !key.verify(SigningContext::Command, body, signature) {
                    return Err(EvidenceError::BadSignature {
                        index,
                        kind: "command",
                        signer: format!("admin {signer}"),
                    });
                }
                match &command.command {
                    Command::AddAdminKey(key) => {
                        admins.insert(key.name.clone(), key.public_key.clone());
                    }
                    Command::RegisterProbe {
                        probe_id,
                        public_key,
                        ..
                    } => {
                        probes.insert(probe_id.to_string(), public_key.clone());
                    }
                    _ => {}
                }
            }
            Payload::Observation {
                body,
                signature,
                observation,
            } => {
                let probe = observation.probe_id.to_string();
                let key = probes
                    .get(&probe)
                    .ok_or_else(|| EvidenceError::UnregisteredProbe {
                        index,
                        probe: probe.clone(),
                    })?;
                if !key.verify(SigningContext::Observation, body, signature) {
                    return Err(EvidenceError::BadSignature {
                        index,
                        kind: "observation",
                        signer: format!("probe {probe}"),
                    });
                }
            }
        }
        if index != 0 {
            verified += 1;
        }
    }
    Ok(verified)
}

/// The index of the latest registration of `probe` before `before` among the entries.
fn registration_of(entries: &BTreeMap<u64, DecodedEntry>, probe: &str, before: u64) -> Option<u64> {
    entries
        .range(..before)
        .rev()
        .find(|(_, entry)| {
            matches!(&entry.payload, Payload::Command { command, .. }
                if matches!(&command.command, Command::RegisterProbe { probe_id, .. } if probe_id.as_str() == probe))
        })
        .map(|(index, _)| *index)
}

impl Findings {
    /// What the file proves and what it cannot, for people.
    pub fn statement(&self) -> String {
        let c = &self.checkpoint;
        let mut out = format!(
            "evidence verified: {} at tree size {}, root {}\n",
            c.origin,
            c.tree_size,
            hex::encode(c.root_hash)
        );
        out.push_str(&format!(
            "  checkpoint signed by {}\n  service {}, window [{}, {})\n",
            self.verifier_key,
            self.service_id,
            format_millis(self.window.0),
            format_millis(self.window.1)
        ));
        out.push_str(&format!(
            "  {} entries proven included in that tree, {} signatures verified\n",
            self.entries, self.signatures
        ));
        out.push_str(&format!(
            "  service definitions carried: entries {}\n",
            join(&self.specs)
        ));
        for (probe, registration) in &self.probes {
            out.push_str(&format!(
                "  probe {probe}: key registered by entry {registration}\n"
            ));
        }
        out.push_str(&format!("  incidents: {}\n", self.incidents.len()));
        for (number, incident) in self.incidents.iter().enumerate() {
            // An open incident's `end` is where the data runs out, which may be after the
            // checkpoint: it is never printed as an end.
            let end = if incident.open {
                "ongoing (no end in the data)".to_owned()
            } else {
                format!("until {}", format_millis(incident.end))
            };
            let observed = incident.observed.map_or(String::new(), |(first, last)| {
                format!(
                    ", observed {} to {}",
                    format_millis(first),
                    format_millis(last)
                )
            });
            out.push_str(&format!(
                "    {}. DOWN from {} {}: {} signed DOWN observations by {}{observed}\n",
                number + 1,
                format_millis(incident.start),
                end,
                incident.observations,
                if incident.probes.is_empty() {
                    "no probe".to_owned()
                } else {
                    incident.probes.join(", ")
                },
            ));
        }
        out.push_str(
            "\nWhat this file proves:\n\
             - the checkpoint was signed by the key above (pin that key out of band: --verifier-key);\n\
             - every entry in the file is in the log at its index under that checkpoint;\n\
             - each incident's DOWN observations were signed by the registered probe keys, are of\n\
             \x20 this service, and were fresh during the incident;\n\
             - the service definitions and probe registrations were signed by admin keys of the log.\n\
             \nWhat it cannot prove:\n\
             - that no contrary (UP) observation, revocation, maintenance window or other\n\
             \x20 definition exists elsewhere in the log, nor the approvals a registration needed:\n\
             \x20 that takes the full prefix;\n\
             - the report's figures, which are computed from the full prefix.\n\
             To check those, get the whole prefix with `uptime-ledger export --raw` and audit it\n\
             offline with `uptime-ledger audit --from-export FILE --verifier-key KEY`.\n",
        );
        out
    }
}

fn join(indexes: &[u64]) -> String {
    indexes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
