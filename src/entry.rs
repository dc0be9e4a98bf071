//! The log entry codec: protobuf bytes ⇄ domain types, in one place.
//!
//! The log stores encoded `LogEntry` messages and signatures cover encoded bodies, so this
//! is where the wire format meets the domain. Decoding validates everything DESIGN.md's
//! ingest rule 1 names; a stored entry that fails to decode means the data is corrupt.

use std::time::Duration;

use prost::Message;

use crate::crypto::PublicKey;
use crate::domain::{
    AdminCommand, AdminKey, AdminName, Command, Genesis, MaintenanceId, Millis, Observation,
    PreviousLog, ProbeId, Quorum, ServiceId, ServiceSpec, Status, DEFAULT_STALENESS,
    MAX_DETAIL_BYTES, MAX_TEXT_BYTES,
};
use crate::pb;

/// Earliest and latest instants a protobuf `Timestamp` may hold (0001-01-01 to 9999-12-31).
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;
/// Longest duration accepted in a spec or genesis: far beyond any sensible value, small
/// enough that millisecond arithmetic can never overflow.
const MAX_DURATION_SECONDS: i64 = 10 * 365 * 86_400;

/// Largest observation body accepted. The longest valid observation (two 64-character ids,
/// a 256-byte detail, every number at its widest) encodes to under 450 bytes; anything much
/// larger can only be padding in unknown fields, which would be stored and served forever.
pub const MAX_OBSERVATION_BODY_BYTES: usize = 1024;
/// Largest admin command body accepted (the longest valid one is under 1 KiB).
pub const MAX_COMMAND_BODY_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

fn invalid(message: impl Into<String>) -> InvalidInput {
    InvalidInput(message.into())
}

/// A decoded log entry. The signed bodies are kept exactly as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEntry {
    pub index: u64,
    pub received_at: Millis,
    pub payload: Payload,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Genesis(Genesis),
    Observation {
        body: Vec<u8>,
        signature: Vec<u8>,
        observation: Observation,
    },
    Command {
        signer: String,
        body: Vec<u8>,
        signature: Vec<u8>,
        command: AdminCommand,
    },
}

/// Decodes and validates an observation body (ingest rule 1).
pub fn decode_observation(body: &[u8]) -> Result<Observation, InvalidInput> {
    if body.len() > MAX_OBSERVATION_BODY_BYTES {
        return Err(invalid(format!(
            "observation body is {} bytes; at most {MAX_OBSERVATION_BODY_BYTES} are allowed",
            body.len()
        )));
    }
    let message = pb::Observation::decode(body)
        .map_err(|e| invalid(format!("observation body does not decode: {e}")))?;
    let probe_id = ProbeId::parse(&message.probe_id).map_err(|e| invalid(e.to_string()))?;
    let service_id = ServiceId::parse(&message.service_id).map_err(|e| invalid(e.to_string()))?;
    let observed_at = timestamp_millis(message.observed_at.as_ref(), "observed_at")?;
    let status = match pb::Status::try_from(message.status) {
        Ok(pb::Status::Up) => Status::Up,
        Ok(pb::Status::Down) => Status::Down,
        _ => {
            return Err(invalid(format!(
                "status must be STATUS_UP or STATUS_DOWN, got {}",
                message.status
            )))
        }
    };
    if message.detail.len() > MAX_DETAIL_BYTES {
        return Err(invalid(format!(
            "detail is {} bytes; at most {MAX_DETAIL_BYTES} are allowed",
            message.detail.len()
        )));
    }
    Ok(Observation {
        probe_id,
        service_id,
        seq: message.seq,
        observed_at,
        status,
        latency_ms: message.latency_ms,
        detail: message.detail,
    })
}

/// Encodes an observation body (what a probe signs).
pub fn encode_observation(observation: &Observation) -> Vec<u8> {
    pb::Observation {
        probe_id: observation.probe_id.to_string(),
        service_id: observation.service_id.to_string(),
        seq: observation.seq,
        observed_at: Some(millis_timestamp(observation.observed_at)),
        status: match observation.status {
            Status::Up => pb::Status::Up,
            Status::Down => pb::Status::Down,
        } as i32,
        latency_ms: observation.latency_ms,
        detail: observation.detail.clone(),
    }
    .encode_to_vec()
}

/// Decodes and validates an admin command body on its own (not against ledger state).
pub fn decode_command(body: &[u8]) -> Result<AdminCommand, InvalidInput> {
    if body.len() > MAX_COMMAND_BODY_BYTES {
        return Err(invalid(format!(
            "command body is {} bytes; at most {MAX_COMMAND_BODY_BYTES} are allowed",
            body.len()
        )));
    }
    let message = pb::AdminCommand::decode(body)
        .map_err(|e| invalid(format!("command body does not decode: {e}")))?;
    let issued_at = timestamp_millis(message.issued_at.as_ref(), "issued_at")?;
    let command = match message.command {
        None => return Err(invalid("the command is empty")),
        Some(pb::admin_command::Command::DefineService(define)) => {
            let spec = define
                .spec
                .ok_or_else(|| invalid("define_service needs a spec"))?;
            Command::DefineService(service_spec_from_pb(spec)?)
        }
        Some(pb::admin_command::Command::RegisterProbe(register)) => Command::RegisterProbe {
            probe_id: ProbeId::parse(&register.probe_id).map_err(|e| invalid(e.to_string()))?,
            public_key: PublicKey::from_bytes(&register.public_key).map_err(|weak| {
                invalid(format!(
                    "public_key is not an acceptable raw 32-byte Ed25519 public key: {weak}"
                ))
            })?,
            location: bounded_text(register.location, "location")?,
        },
        Some(pb::admin_command::Command::RevokeProbe(revoke)) => Command::RevokeProbe {
            probe_id: ProbeId::parse(&revoke.probe_id).map_err(|e| invalid(e.to_string()))?,
            reason: bounded_text(revoke.reason, "reason")?,
        },
        Some(pb::admin_command::Command::ScheduleMaintenance(schedule)) => {
            let start = timestamp_millis(schedule.start.as_ref(), "start")?;
            let end = timestamp_millis(schedule.end.as_ref(), "end")?;
            if start >= end {
                return Err(invalid("maintenance end must be after its start"));
            }
            Command::ScheduleMaintenance {
                maintenance_id: MaintenanceId::parse(&schedule.maintenance_id)
                    .map_err(|e| invalid(e.to_string()))?,
                service_id: ServiceId::parse(&schedule.service_id)
                    .map_err(|e| invalid(e.to_string()))?,
                start,
                end,
                reason: bounded_text(schedule.reason, "reason")?,
            }
        }
        Some(pb::admin_command::Command::CancelMaintenance(cancel)) => Command::CancelMaintenance {
            maintenance_id: MaintenanceId::parse(&cancel.maintenance_id)
                .map_err(|e| invalid(e.to_string()))?,
        },
        Some(pb::admin_command::Command::AddAdminKey(add)) => {
            let key = add
                .key
                .ok_or_else(|| invalid("add_admin_key needs a key"))?;
            AdminName::parse(&key.name).map_err(|e| invalid(e.to_string()))?;
            Command::AddAdminKey(AdminKey {
                public_key: PublicKey::from_bytes(&key.public_key).map_err(|weak| {
                    invalid(format!(
                        "admin key {:?} is not an acceptable raw 32-byte Ed25519 public key: {weak}",
                        key.name
                    ))
                })?,
                name: key.name,
            })
        }
        Some(pb::admin_command::Command::RevokeAdminKey(revoke)) => {
            if revoke.name.is_empty() {
                return Err(invalid("revoke_admin_key needs the name of the key"));
            }
            Command::RevokeAdminKey {
                name: bounded_text(revoke.name, "name")?,
                reason: bounded_text(revoke.reason, "reason")?,
            }
        }
        Some(pb::admin_command::Command::ApproveCommand(approve)) => Command::ApproveCommand {
            proposal_digest: approve.proposal_digest.as_slice().try_into().map_err(|_| {
                invalid(format!(
                    "proposal_digest is {} bytes; a SHA-256 digest is 32",
                    approve.proposal_digest.len()
                ))
            })?,
        },
    };
    Ok(AdminCommand {
        seq: message.seq,
        issued_at,
        command,
    })
}

/// Encodes an admin command body (what an admin signs).
pub fn encode_command(command: &AdminCommand) -> Vec<u8> {
    use pb::admin_command::Command as PbCommand;
    let inner = match &command.command {
        Command::DefineService(spec) => PbCommand::DefineService(pb::DefineService {
            spec: Some(service_spec_to_pb(spec)),
        }),
        Command::RegisterProbe {
            probe_id,
            public_key,
            location,
        } => PbCommand::RegisterProbe(pb::RegisterProbe {
            probe_id: probe_id.to_string(),
            public_key: public_key.to_bytes().to_vec(),
            location: location.clone(),
        }),
        Command::RevokeProbe { probe_id, reason } => PbCommand::RevokeProbe(pb::RevokeProbe {
            probe_id: probe_id.to_string(),
            reason: reason.clone(),
        }),
        Command::ScheduleMaintenance {
            maintenance_id,
            service_id,
            start,
            end,
            reason,
        } => PbCommand::ScheduleMaintenance(pb::ScheduleMaintenance {
            maintenance_id: maintenance_id.to_string(),
            service_id: service_id.to_string(),
            start: Some(millis_timestamp(*start)),
            end: Some(millis_timestamp(*end)),
            reason: reason.clone(),
        }),
        Command::CancelMaintenance { maintenance_id } => {
            PbCommand::CancelMaintenance(pb::CancelMaintenance {
                maintenance_id: maintenance_id.to_string(),
            })
        }
        Command::AddAdminKey(key) => PbCommand::AddAdminKey(pb::AddAdminKey {
            key: Some(admin_key_to_pb(key)),
        }),
        Command::RevokeAdminKey { name, reason } => PbCommand::RevokeAdminKey(pb::RevokeAdminKey {
            name: name.clone(),
            reason: reason.clone(),
        }),
        Command::ApproveCommand { proposal_digest } => {
            PbCommand::ApproveCommand(pb::ApproveCommand {
                proposal_digest: proposal_digest.to_vec(),
            })
        }
    };
    pb::AdminCommand {
        seq: command.seq,
        issued_at: Some(millis_timestamp(command.issued_at)),
        command: Some(inner),
    }
    .encode_to_vec()
}

pub fn service_spec_from_pb(spec: pb::ServiceSpec) -> Result<ServiceSpec, InvalidInput> {
    let service_id = ServiceId::parse(&spec.service_id).map_err(|e| invalid(e.to_string()))?;
    if !(spec.slo_target > 0.0 && spec.slo_target < 1.0) {
        return Err(invalid(format!(
            "slo_target must be strictly between 0 and 1 (e.g. 0.995), got {}",
            spec.slo_target
        )));
    }
    let policy = spec.quorum.unwrap_or_default();
    let quorum = match pb::QuorumKind::try_from(policy.kind) {
        Ok(pb::QuorumKind::Unspecified | pb::QuorumKind::Majority) => Quorum::Majority,
        Ok(pb::QuorumKind::Any) => Quorum::Any,
        Ok(pb::QuorumKind::All) => Quorum::All,
        Ok(pb::QuorumKind::AtLeast) if policy.at_least >= 1 => Quorum::AtLeast(policy.at_least),
        Ok(pb::QuorumKind::AtLeast) => {
            return Err(invalid("QUORUM_KIND_AT_LEAST needs at_least >= 1"))
        }
        Err(_) => return Err(invalid(format!("unknown quorum kind {}", policy.kind))),
    };
    let staleness = match spec.staleness {
        None => DEFAULT_STALENESS,
        Some(d) => match duration_from_pb(&d, "staleness")? {
            d if d.is_zero() => DEFAULT_STALENESS,
            d if d < Duration::from_millis(1) => {
                return Err(invalid("staleness must be at least 1 ms"))
            }
            d => d,
        },
    };
    Ok(ServiceSpec {
        service_id,
        name: bounded_text(spec.name, "name")?,
        agency: bounded_text(spec.agency, "agency")?,
        slo_target: spec.slo_target,
        quorum,
        staleness,
    })
}

pub fn service_spec_to_pb(spec: &ServiceSpec) -> pb::ServiceSpec {
    let (kind, at_least) = match spec.quorum {
        Quorum::Any => (pb::QuorumKind::Any, 0),
        Quorum::Majority => (pb::QuorumKind::Majority, 0),
        Quorum::All => (pb::QuorumKind::All, 0),
        Quorum::AtLeast(k) => (pb::QuorumKind::AtLeast, k),
    };
    pb::ServiceSpec {
        service_id: spec.service_id.to_string(),
        name: spec.name.clone(),
        agency: spec.agency.clone(),
        slo_target: spec.slo_target,
        quorum: Some(pb::QuorumPolicy {
            kind: kind as i32,
            at_least,
        }),
        staleness: Some(duration_to_pb(spec.staleness)),
    }
}

pub fn genesis_to_pb(genesis: &Genesis) -> pb::Genesis {
    pb::Genesis {
        origin: genesis.origin.clone(),
        ledger_public_key: genesis.ledger_public_key.to_bytes().to_vec(),
        admin_keys: genesis.admin_keys.iter().map(admin_key_to_pb).collect(),
        max_lateness: Some(duration_to_pb(genesis.max_lateness)),
        max_skew: Some(duration_to_pb(genesis.max_skew)),
        admin_threshold: genesis.admin_threshold,
        previous_log: genesis
            .previous_log
            .as_ref()
            .map(|previous| pb::PreviousLog {
                origin: previous.origin.clone(),
                tree_size: previous.tree_size,
                root_hash: previous.root_hash.to_vec(),
                ledger_public_key: previous.ledger_public_key.to_bytes().to_vec(),
            }),
    }
}

fn admin_key_to_pb(key: &AdminKey) -> pb::AdminKey {
    pb::AdminKey {
        name: key.name.clone(),
        public_key: key.public_key.to_bytes().to_vec(),
    }
}

pub fn genesis_from_pb(genesis: pb::Genesis) -> Result<Genesis, InvalidInput> {
    let ledger_public_key = PublicKey::from_bytes(&genesis.ledger_public_key).map_err(|weak| {
        invalid(format!(
            "genesis ledger_public_key is not an acceptable Ed25519 key: {weak}"
        ))
    })?;
    let admin_keys = genesis
        .admin_keys
        .into_iter()
        .map(|k| {
            Ok(AdminKey {
                public_key: PublicKey::from_bytes(&k.public_key).map_err(|weak| {
                    invalid(format!(
                        "genesis admin key {:?} is not an acceptable Ed25519 key: {weak}",
                        k.name
                    ))
                })?,
                name: k.name,
            })
        })
        .collect::<Result<Vec<_>, InvalidInput>>()?;
    let max_lateness = duration_from_pb(
        &genesis
            .max_lateness
            .ok_or_else(|| invalid("genesis needs max_lateness"))?,
        "max_lateness",
    )?;
    let max_skew = duration_from_pb(
        &genesis
            .max_skew
            .ok_or_else(|| invalid("genesis needs max_skew"))?,
        "max_skew",
    )?;
    let admin_threshold = genesis.admin_threshold.max(1);
    let previous_log = genesis
        .previous_log
        .map(|previous| {
            Ok::<_, InvalidInput>(PreviousLog {
                root_hash: previous.root_hash.as_slice().try_into().map_err(|_| {
                    invalid(format!(
                        "genesis previous_log root_hash is {} bytes; a SHA-256 hash is 32",
                        previous.root_hash.len()
                    ))
                })?,
                ledger_public_key: PublicKey::from_bytes(&previous.ledger_public_key).map_err(
                    |weak| {
                        invalid(format!(
                            "genesis previous_log ledger_public_key is not an acceptable Ed25519 key: {weak}"
                        ))
                    },
                )?,
                origin: previous.origin,
                tree_size: previous.tree_size,
            })
        })
        .transpose()?;
    Ok(Genesis {
        origin: genesis.origin,
        ledger_public_key,
        admin_keys,
        max_lateness,
        max_skew,
        admin_threshold,
        previous_log,
    })
}

/// Encodes a log entry: these bytes are stored, hashed and served unchanged.
pub fn encode_entry(index: u64, received_at: Millis, payload: pb::log_entry::Payload) -> Vec<u8> {
    pb::LogEntry {
        index,
        received_at: Some(millis_timestamp(received_at)),
        payload: Some(payload),
    }
    .encode_to_vec()
}

/// Decodes and validates a stored log entry.
pub fn decode_entry(bytes: &[u8]) -> Result<DecodedEntry, InvalidInput> {
    let entry =
        pb::LogEntry::decode(bytes).map_err(|e| invalid(format!("entry does not decode: {e}")))?;
    let received_at = timestamp_millis(entry.received_at.as_ref(), "received_at")?;
    let payload = match entry.payload {
        None => return Err(invalid("entry has no payload")),
        Some(pb::log_entry::Payload::Genesis(genesis)) => {
            Payload::Genesis(genesis_from_pb(genesis)?)
        }
        Some(pb::log_entry::Payload::Observation(signed)) => Payload::Observation {
            observation: decode_observation(&signed.body)?,
            body: signed.body,
            signature: signed.signature,
        },
        Some(pb::log_entry::Payload::Command(signed)) => Payload::Command {
            command: decode_command(&signed.body)?,
            signer: signed.signer,
            body: signed.body,
            signature: signed.signature,
        },
    };
    Ok(DecodedEntry {
        index: entry.index,
        received_at,
        payload,
    })
}

/// What projections read of an entry: an observation's facts without its signature,
/// latency and detail (the rebuild path decodes millions of these), or any other entry
/// fully decoded. [`decode_for_projection`] agrees with [`decode_entry`] on every field it
/// keeps (a property test checks it).
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectionEntry {
    Observation {
        index: u64,
        received_at: Millis,
        probe_id: ProbeId,
        service_id: ServiceId,
        observed_at: Millis,
        status: Status,
    },
    Other(Box<DecodedEntry>),
}

impl ProjectionEntry {
    pub fn received_at(&self) -> Millis {
        match self {
            ProjectionEntry::Observation { received_at, .. } => *received_at,
            ProjectionEntry::Other(entry) => entry.received_at,
        }
    }
}

/// `LogEntry` with only the observation payload's body (field numbers as in ledger.proto;
/// prost skips the fields left out, allocating nothing for them).
#[derive(Clone, PartialEq, prost::Message)]
struct LogEntryObservationView {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(message, optional, tag = "2")]
    received_at: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "4")]
    observation: Option<SignedObservationBodyView>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SignedObservationBodyView {
    /// A slice of the entry's own buffer (decoded from `Bytes`, prost copies nothing).
    #[prost(bytes = "bytes", tag = "1")]
    body: prost::bytes::Bytes,
}

/// `Observation` without `seq`, `latency_ms` and `detail`.
#[derive(Clone, PartialEq, prost::Message)]
struct ObservationFactsView {
    #[prost(string, tag = "1")]
    probe_id: String,
    #[prost(string, tag = "2")]
    service_id: String,
    #[prost(message, optional, tag = "4")]
    observed_at: Option<prost_types::Timestamp>,
    #[prost(enumeration = "pb::Status", tag = "5")]
    status: i32,
}

/// Decodes an entry for projections: observations through the lean views above, anything
/// else (or anything the views cannot take) through [`decode_entry`]. Takes the entry's
/// bytes by value so that the observation body is a slice of them, not a copy.
pub fn decode_for_projection(bytes: Vec<u8>) -> Result<ProjectionEntry, InvalidInput> {
    let bytes = prost::bytes::Bytes::from(bytes);
    let lean = LogEntryObservationView::decode(bytes.clone())
        .ok()
        .and_then(|entry| {
            let body = entry.observation?.body;
            let facts = ObservationFactsView::decode(body).ok()?;
            let status = match pb::Status::try_from(facts.status) {
                Ok(pb::Status::Up) => Status::Up,
                Ok(pb::Status::Down) => Status::Down,
                _ => return None,
            };
            Some(ProjectionEntry::Observation {
                index: entry.index,
                received_at: timestamp_millis(entry.received_at.as_ref(), "received_at").ok()?,
                probe_id: ProbeId::parse_owned(facts.probe_id).ok()?,
                service_id: ServiceId::parse_owned(facts.service_id).ok()?,
                observed_at: timestamp_millis(facts.observed_at.as_ref(), "observed_at").ok()?,
                status,
            })
        });
    match lean {
        Some(entry) => Ok(entry),
        // Not an observation, or malformed: the full decoder says which.
        None => decode_entry(&bytes).map(|entry| ProjectionEntry::Other(Box::new(entry))),
    }
}

/// A `Timestamp` truncated to whole milliseconds; refuses missing and out-of-range values.
pub fn timestamp_millis(
    timestamp: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Millis, InvalidInput> {
    let timestamp = timestamp.ok_or_else(|| invalid(format!("{field} is required")))?;
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&timestamp.seconds)
        || !(0..1_000_000_000).contains(&timestamp.nanos)
    {
        return Err(invalid(format!("{field} is not a valid timestamp")));
    }
    Ok(timestamp.seconds * 1000 + i64::from(timestamp.nanos / 1_000_000))
}

pub fn millis_timestamp(millis: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn duration_from_pb(
    duration: &prost_types::Duration,
    field: &str,
) -> Result<Duration, InvalidInput> {
    if duration.seconds < 0 || duration.nanos < 0 || duration.nanos >= 1_000_000_000 {
        return Err(invalid(format!("{field} must be a non-negative duration")));
    }
    if duration.seconds > MAX_DURATION_SECONDS {
        return Err(invalid(format!("{field} is longer than ten years")));
    }
    Ok(Duration::new(
        duration.seconds as u64,
        duration.nanos as u32,
    ))
}

pub fn duration_to_pb(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: duration.as_secs() as i64,
        nanos: duration.subsec_nanos() as i32,
    }
}

fn bounded_text(value: String, field: &str) -> Result<String, InvalidInput> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(invalid(format!(
            "{field} is {} bytes; at most {MAX_TEXT_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation() -> Observation {
        Observation {
            probe_id: ProbeId::parse("nbo-1").unwrap(),
            service_id: ServiceId::parse("ecitizen.passport").unwrap(),
            seq: 7,
            observed_at: 1_700_000_000_123,
            status: Status::Down,
            latency_ms: 42,
            detail: "HTTP 503".into(),
        }
    }

    #[test]
    fn a_genesis_naming_a_weak_key_does_not_decode() {
        use ed25519_dalek::SigningKey;
        let genesis = Genesis {
            origin: "test.example/log".into(),
            ledger_public_key: PublicKey::from(&SigningKey::from_bytes(&[1; 32])),
            admin_keys: vec![AdminKey {
                name: "ops".into(),
                public_key: PublicKey::from(&SigningKey::from_bytes(&[2; 32])),
            }],
            max_lateness: Duration::from_secs(3600),
            max_skew: Duration::from_secs(30),
            admin_threshold: 1,
            previous_log: None,
        };
        assert_eq!(genesis_from_pb(genesis_to_pb(&genesis)).unwrap(), genesis);
        // The identity point as the ledger key, then as an admin key.
        let mut identity = vec![0u8; 32];
        identity[0] = 1;
        let mut weak_ledger = genesis_to_pb(&genesis);
        weak_ledger.ledger_public_key = identity.clone();
        let error = genesis_from_pb(weak_ledger).unwrap_err();
        assert!(
            error.0.contains("ledger_public_key") && error.0.contains("small order"),
            "{}",
            error.0
        );
        let mut weak_admin = genesis_to_pb(&genesis);
        weak_admin.admin_keys[0].public_key = identity;
        let error = genesis_from_pb(weak_admin).unwrap_err();
        assert!(
            error.0.contains("\"ops\"") && error.0.contains("small order"),
            "{}",
            error.0
        );
    }

    #[test]
    fn the_longest_valid_bodies_fit_and_padded_ones_are_refused() {
        let longest = Observation {
            probe_id: ProbeId::parse(&"p".repeat(64)).unwrap(),
            service_id: ServiceId::parse(&"s".repeat(64)).unwrap(),
            seq: u64::MAX,
            observed_at: MAX_TIMESTAMP_SECONDS * 1000 + 999,
            status: Status::Down,
            latency_ms: u32::MAX,
            detail: "d".repeat(MAX_DETAIL_BYTES),
        };
        let body = encode_observation(&longest);
        assert!(body.len() < 450, "{} bytes", body.len());
        assert_eq!(decode_observation(&body).unwrap(), longest);

        // Valid protobuf: the same body followed by an unknown bytes field (number 99).
        let mut padded = body.clone();
        padded.extend_from_slice(&[0x9a, 0x06, 0x80, 0x08]);
        padded.extend_from_slice(&[0u8; 1024]);
        let error = decode_observation(&padded).unwrap_err();
        assert!(error.0.contains("at most 1024"), "{error}");

        let mut command = vec![0x9a, 0x06, 0x80, 0x20];
        command.extend_from_slice(&[0u8; 4096]);
        let error = decode_command(&command).unwrap_err();
        assert!(error.0.contains("at most 4096"), "{error}");
    }

    #[test]
    fn observation_round_trips() {
        let o = observation();
        assert_eq!(decode_observation(&encode_observation(&o)).unwrap(), o);
    }

    #[test]
    fn timestamps_truncate_to_milliseconds_and_handle_negative_times() {
        let ts = prost_types::Timestamp {
            seconds: 10,
            nanos: 999_999_999,
        };
        assert_eq!(timestamp_millis(Some(&ts), "t").unwrap(), 10_999);
        assert_eq!(
            millis_timestamp(-1),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_000_000
            }
        );
        assert_eq!(
            timestamp_millis(Some(&millis_timestamp(-1)), "t").unwrap(),
            -1
        );
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(timestamp_millis(Some(&bad), "t").is_err());
        assert!(timestamp_millis(None, "t").is_err());
    }

    #[test]
    fn invalid_observations_are_refused() {
        let mut o = observation();
        o.detail = "x".repeat(257);
        assert!(decode_observation(&encode_observation(&o)).is_err());
        let mut message =
            pb::Observation::decode(encode_observation(&observation()).as_slice()).unwrap();
        message.status = pb::Status::Unspecified as i32;
        assert!(decode_observation(&message.encode_to_vec()).is_err());
        assert!(decode_observation(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn slo_target_must_be_strictly_inside_zero_one() {
        for target in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let spec = pb::ServiceSpec {
                service_id: "svc".into(),
                slo_target: target,
                ..Default::default()
            };
            assert!(service_spec_from_pb(spec).is_err(), "{target}");
        }
    }

    #[test]
    fn unspecified_quorum_is_majority_and_zero_staleness_is_the_default() {
        let spec = service_spec_from_pb(pb::ServiceSpec {
            service_id: "svc".into(),
            slo_target: 0.99,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(spec.quorum, Quorum::Majority);
        assert_eq!(spec.staleness, DEFAULT_STALENESS);
    }

    proptest::proptest! {
        /// The projection's lean decoder agrees with the full one on every observation
        /// entry, and hands every other entry to it.
        #[test]
        fn the_projection_decoder_agrees_with_the_full_decoder(
            index in 0u64..u64::MAX / 2,
            received_at in -1_000_000_000_000i64..4_000_000_000_000,
            observed_at in -1_000_000_000_000i64..4_000_000_000_000,
            seq: u64,
            up: bool,
            latency_ms: u32,
            probe in "[a-z0-9][a-z0-9._-]{0,20}",
            service in "[a-z0-9][a-z0-9._-]{0,20}",
            detail in ".{0,40}",
        ) {
            let o = Observation {
                probe_id: ProbeId::parse(&probe).unwrap(),
                service_id: ServiceId::parse(&service).unwrap(),
                seq,
                observed_at,
                status: if up { Status::Up } else { Status::Down },
                latency_ms,
                detail,
            };
            let bytes = encode_entry(
                index,
                received_at,
                pb::log_entry::Payload::Observation(pb::SignedObservation {
                    body: encode_observation(&o),
                    signature: vec![7; 64],
                }),
            );
            let full = decode_entry(&bytes).unwrap();
            proptest::prop_assert_eq!(
                decode_for_projection(bytes.clone()).unwrap(),
                ProjectionEntry::Observation {
                    index: full.index,
                    received_at: full.received_at,
                    probe_id: o.probe_id.clone(),
                    service_id: o.service_id.clone(),
                    observed_at: o.observed_at,
                    status: o.status,
                }
            );
        }
    }

    #[test]
    fn the_projection_decoder_passes_other_entries_and_errors_through() {
        let command = AdminCommand {
            seq: 1,
            issued_at: 5,
            command: Command::CancelMaintenance {
                maintenance_id: MaintenanceId::parse("m1").unwrap(),
            },
        };
        let bytes = encode_entry(
            3,
            9,
            pb::log_entry::Payload::Command(pb::SignedCommand {
                signer: "admin".into(),
                body: encode_command(&command),
                signature: vec![1; 64],
            }),
        );
        assert_eq!(
            decode_for_projection(bytes.clone()).unwrap(),
            ProjectionEntry::Other(Box::new(decode_entry(&bytes).unwrap()))
        );
        // An observation with an invalid status is refused with the full decoder's reason.
        let mut o = pb::Observation {
            probe_id: "nbo-1".into(),
            service_id: "s".into(),
            observed_at: Some(millis_timestamp(1)),
            status: 0,
            ..Default::default()
        };
        let bad = |o: &pb::Observation| {
            encode_entry(
                1,
                1,
                pb::log_entry::Payload::Observation(pb::SignedObservation {
                    body: o.encode_to_vec(),
                    signature: vec![],
                }),
            )
        };
        let error = decode_for_projection(bad(&o)).unwrap_err();
        assert!(error.to_string().contains("status"), "{error}");
        o.status = pb::Status::Up as i32;
        o.probe_id = "NBO".into();
        assert!(decode_for_projection(bad(&o)).is_err());
    }
}
