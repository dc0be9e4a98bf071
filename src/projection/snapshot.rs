//! A versioned, compact binary snapshot of a [`Projection`], so a restart
//! resumes from the snapshot's `applied_index` instead of replaying the log.
//!
//! The snapshot holds only what cannot be derived: the definitions, each
//! probe's runs and retained observations, and the maintenance windows. The
//! timelines and rollups are recomputed on decode, and the decoded projection
//! must pass [`Projection::check_consistency`]; a snapshot that fails any
//! check is rejected and the caller rebuilds from the log, which is always
//! possible because the log is the only source of truth.
//!
//! # Format, version 3 (all integers little-endian)
//!
//! ```text
//! magic "ULPJ" | version u32 | body | checksum u64 (FNV-1a 64 of everything before it)
//! body     = max_lateness_ms i64 | applied_index opt<u64> | latest_received_at opt<i64>
//!            | count u64 | service* | count u64 | registered* | governance
//! service  = count u64 | (received_at i64 | spec)*          -- definitions, at least one
//!            | count u64 | probe*  | count u64 | maintenance*
//! spec     = service_id str | name str | agency str | slo_target f64 | quorum | staleness_ms i64
//! quorum   = tag u8 (0 any, 1 majority, 2 all, 3 at least) | at_least u32
//! probe    = probe_id str | latest opt<observation>
//!            | count u64 | (start i64 | end i64 | status u8)* | count u64 | observation*
//! observation = observed_at i64 | status u8 (0 up, 1 down)
//! maintenance = maintenance_id str | effective_start i64 | effective_end i64 | cancelled u8
//! registered  = probe_id str | location str | registered_index u64 | registered_at i64
//!               | registered_by str | count u64 | approved_by str* | revoked_at opt<i64>
//! governance  = threshold u32 | count u64 | admin* | count u64 | proposal*
//! admin       = name str | public_key bytes | added opt<position>
//!               | count u64 | added_by str* | revoked opt<position reason str>
//! proposal    = proposer str | body bytes | signature bytes | proposed position
//!               | count u64 | (approver str | position)* | in_force opt<position>
//! position    = index u64 | received_at i64
//! str = length u32 | UTF-8 bytes;  bytes = length u32 | bytes;  opt<T> = 0u8 | 1u8 T
//!
//! A proposal's change is decoded from its body, and its digest recomputed.
//! ```
//!
//! Encoding is deterministic: equal projections encode to equal bytes.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::engine::{
    Definition, MaintenanceWindow, ProbeTrack, Projection, ProjectionConfig, RetainedObservation,
    ServiceTrack,
};
use super::model::{Quorum, RegisteredProbe, ServiceSpec, Status};
use super::runs::Run;
use crate::crypto::PublicKey;
use crate::domain::ServiceId;
use crate::entry;
use crate::governance::{self, AdminRecord, Change, Governance, Position, Proposal, Revocation};

const MAGIC: &[u8; 4] = b"ULPJ";
const FORMAT_VERSION: u32 = 3;
const HEADER_LEN: usize = MAGIC.len() + 4;
const CHECKSUM_LEN: usize = 8;

/// Why a snapshot cannot be used. Every variant means the same thing to the
/// caller: discard the snapshot and rebuild the projection from the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a projection snapshot")]
    NotASnapshot,
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("snapshot checksum mismatch: the bytes are corrupt")]
    ChecksumMismatch,
    #[error("snapshot ends early")]
    Truncated,
    #[error("snapshot is malformed: {0}")]
    Malformed(String),
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

impl Projection {
    /// The snapshot of this projection (format above).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer {
            bytes: Vec::with_capacity(self.approximate_heap_bytes() / 2 + 64),
        };
        writer.bytes.extend_from_slice(MAGIC);
        writer.u32(FORMAT_VERSION);
        writer.i64(self.config.max_lateness_ms);
        writer.optional(self.applied_index, Writer::u64);
        writer.optional(self.latest_received_at, Writer::i64);
        writer.count(self.services.len());
        for service in &self.services {
            writer.count(service.definitions.len());
            for definition in &service.definitions {
                writer.i64(definition.received_at);
                writer.spec(&definition.spec);
            }
            writer.count(service.probes.len());
            for (probe_id, probe) in &service.probes {
                writer.string(probe_id);
                writer.optional(probe.latest, Writer::observation);
                writer.count(probe.runs.len());
                for run in &probe.runs {
                    writer.i64(run.start);
                    writer.i64(run.end);
                    writer.status(run.value);
                }
                writer.count(probe.recent.len());
                for observation in &probe.recent {
                    writer.observation(*observation);
                }
            }
            writer.count(service.maintenance.len());
            for window in &service.maintenance {
                writer.string(&window.maintenance_id);
                writer.i64(window.effective_start);
                writer.i64(window.effective_end);
                writer.u8(u8::from(window.cancelled));
            }
        }
        writer.count(self.registered_probes.len());
        for (probe_id, probe) in &self.registered_probes {
            writer.string(probe_id);
            writer.string(&probe.location);
            writer.u64(probe.registered_index);
            writer.i64(probe.registered_at);
            writer.string(&probe.registered_by);
            writer.strings(&probe.approved_by);
            writer.optional(probe.revoked_at, Writer::i64);
        }
        writer.governance(&self.governance);
        let checksum = fnv1a64(&writer.bytes);
        writer.u64(checksum);
        writer.bytes
    }

    /// Reads a snapshot written by [`Projection::encode`], checking its
    /// version, checksum, structure and every projection invariant.
    pub fn decode(bytes: &[u8]) -> Result<Projection, DecodeError> {
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err(DecodeError::NotASnapshot);
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[MAGIC.len()..HEADER_LEN]);
        let version = u32::from_le_bytes(version);
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let (content, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let mut stored_checksum = [0u8; CHECKSUM_LEN];
        stored_checksum.copy_from_slice(checksum);
        if u64::from_le_bytes(stored_checksum) != fnv1a64(content) {
            return Err(DecodeError::ChecksumMismatch);
        }
        let mut reader = Reader {
            bytes: &content[HEADER_LEN..],
        };
        let config = ProjectionConfig {
            max_lateness_ms: reader.i64()?,
        };
        let applied_index = reader.optional(Reader::u64)?;
        let latest_received_at = reader.optional(Reader::i64)?;
        let service_count = reader.count(8)?;
        let mut services = Vec::with_capacity(service_count);
        for _ in 0..service_count {
            services.push(reader.service()?);
        }
        let registered_count = reader.count(21)?;
        let mut registered_probes = BTreeMap::new();
        for _ in 0..registered_count {
            let probe_id = reader.string()?;
            let probe = RegisteredProbe {
                location: reader.string()?,
                registered_index: reader.u64()?,
                registered_at: reader.i64()?,
                registered_by: reader.string()?,
                approved_by: reader.strings()?,
                revoked_at: reader.optional(Reader::i64)?,
            };
            if registered_probes.insert(probe_id, probe).is_some() {
                return Err(DecodeError::Malformed(
                    "a probe is registered twice".to_string(),
                ));
            }
        }
        let governance = reader.governance()?;
        if !reader.bytes.is_empty() {
            return Err(DecodeError::Malformed(
                "bytes after the governance".to_string(),
            ));
        }
        let projection = Projection::from_parts(
            config,
            applied_index,
            latest_received_at,
            services,
            registered_probes,
            governance,
        )
        .map_err(DecodeError::Malformed)?;
        projection
            .check_consistency()
            .map_err(DecodeError::Inconsistent)?;
        Ok(projection)
    }
}

/// FNV-1a, 64-bit: enough to catch corruption of a snapshot that is never
/// trusted beyond the process that wrote it (the log, not the snapshot, is
/// what auditors verify).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn i64(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn count(&mut self, count: usize) {
        self.u64(count as u64);
    }

    fn string(&mut self, value: &str) {
        // Ids and names are short (ingest caps ids at 64 characters); a
        // longer string is cut at a character boundary rather than panicking.
        let mut length = value.len().min(u32::MAX as usize);
        while !value.is_char_boundary(length) {
            length -= 1;
        }
        self.u32(length as u32);
        self.bytes.extend_from_slice(&value.as_bytes()[..length]);
    }

    fn optional<T>(&mut self, value: Option<T>, write: impl Fn(&mut Writer, T)) {
        match value {
            None => self.u8(0),
            Some(value) => {
                self.u8(1);
                write(self, value);
            }
        }
    }

    fn bytes(&mut self, value: &[u8]) {
        self.u32(value.len() as u32);
        self.bytes.extend_from_slice(value);
    }

    fn strings(&mut self, values: &[String]) {
        self.count(values.len());
        for value in values {
            self.string(value);
        }
    }

    fn position(&mut self, position: Position) {
        self.u64(position.index);
        self.i64(position.received_at);
    }

    fn governance(&mut self, governance: &Governance) {
        self.u32(governance.threshold());
        self.count(governance.admins().len());
        for admin in governance.admins() {
            self.string(&admin.name);
            self.bytes(admin.public_key.as_bytes());
            self.optional(admin.added, Writer::position);
            self.strings(&admin.added_by);
            self.optional(admin.revoked.as_ref(), |writer, revocation| {
                writer.position(revocation.at);
                writer.string(&revocation.reason);
            });
        }
        self.count(governance.proposals().len());
        for proposal in governance.proposals() {
            self.string(&proposal.proposer);
            self.bytes(&proposal.body);
            self.bytes(&proposal.signature);
            self.position(proposal.proposed);
            self.count(proposal.approvals.len());
            for (approver, at) in &proposal.approvals {
                self.string(approver);
                self.position(*at);
            }
            self.optional(proposal.in_force, Writer::position);
        }
    }

    fn status(&mut self, status: Status) {
        self.u8(match status {
            Status::Up => 0,
            Status::Down => 1,
        });
    }

    fn observation(&mut self, observation: RetainedObservation) {
        self.i64(observation.observed_at);
        self.status(observation.status);
    }

    fn spec(&mut self, spec: &ServiceSpec) {
        self.string(&spec.service_id);
        self.string(&spec.name);
        self.string(&spec.agency);
        self.u64(spec.slo_target.to_bits());
        let (tag, at_least) = match spec.quorum {
            Quorum::Any => (0, 0),
            Quorum::Majority => (1, 0),
            Quorum::All => (2, 0),
            Quorum::AtLeast(at_least) => (3, at_least),
        };
        self.u8(tag);
        self.u32(at_least);
        self.i64(spec.staleness_ms());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < length {
            return Err(DecodeError::Truncated);
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A count of items that take at least `least_item_len` bytes each,
    /// refused when the rest of the snapshot cannot hold that many (so a
    /// corrupt count never triggers a huge allocation).
    fn count(&mut self, least_item_len: usize) -> Result<usize, DecodeError> {
        let count = self.u64()?;
        match usize::try_from(count) {
            Ok(count) if count.saturating_mul(least_item_len) <= self.bytes.len() => Ok(count),
            _ => Err(DecodeError::Truncated),
        }
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let length = self.u32()? as usize;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| DecodeError::Malformed("a string is not UTF-8".to_string()))
    }

    fn optional<T>(
        &mut self,
        read: impl Fn(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            tag => Err(DecodeError::Malformed(format!("option tag {tag}"))),
        }
    }

    fn byte_string(&mut self) -> Result<Vec<u8>, DecodeError> {
        let length = self.u32()? as usize;
        Ok(self.take(length)?.to_vec())
    }

    fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        let count = self.count(4)?;
        (0..count).map(|_| self.string()).collect()
    }

    fn position(&mut self) -> Result<Position, DecodeError> {
        Ok(Position {
            index: self.u64()?,
            received_at: self.i64()?,
        })
    }

    fn governance(&mut self) -> Result<Governance, DecodeError> {
        let threshold = self.u32()?;
        let admin_count = self.count(15)?;
        let mut admins = Vec::with_capacity(admin_count);
        for _ in 0..admin_count {
            let name = self.string()?;
            let public_key = PublicKey::from_bytes(&self.byte_string()?)
                .map_err(|weak| DecodeError::Malformed(format!("admin key {name:?}: {weak}")))?;
            admins.push(AdminRecord {
                name,
                public_key,
                added: self.optional(Reader::position)?,
                added_by: self.strings()?,
                revoked: self.optional(|reader| {
                    Ok(Revocation {
                        at: reader.position()?,
                        reason: reader.string()?,
                    })
                })?,
            });
        }
        let proposal_count = self.count(45)?;
        let mut proposals = Vec::with_capacity(proposal_count);
        for _ in 0..proposal_count {
            let proposer = self.string()?;
            let body = self.byte_string()?;
            let signature = self.byte_string()?;
            let change = entry::decode_command(&body)
                .ok()
                .and_then(|command| Change::of(&command.command))
                .ok_or_else(|| {
                    DecodeError::Malformed("a proposal's body is not a gated command".to_string())
                })?;
            let proposed = self.position()?;
            let approval_count = self.count(20)?;
            let mut approvals = Vec::with_capacity(approval_count);
            for _ in 0..approval_count {
                approvals.push((self.string()?, self.position()?));
            }
            proposals.push(Proposal {
                digest: governance::digest(&body),
                proposer,
                body,
                signature,
                change,
                proposed,
                approvals,
                in_force: self.optional(Reader::position)?,
            });
        }
        Governance::from_parts(threshold, admins, proposals).map_err(DecodeError::Malformed)
    }

    fn status(&mut self) -> Result<Status, DecodeError> {
        match self.u8()? {
            0 => Ok(Status::Up),
            1 => Ok(Status::Down),
            tag => Err(DecodeError::Malformed(format!("status tag {tag}"))),
        }
    }

    fn observation(&mut self) -> Result<RetainedObservation, DecodeError> {
        Ok(RetainedObservation {
            observed_at: self.i64()?,
            status: self.status()?,
        })
    }

    fn spec(&mut self) -> Result<ServiceSpec, DecodeError> {
        let service_id = self.string()?;
        let name = self.string()?;
        let agency = self.string()?;
        let slo_target = f64::from_bits(self.u64()?);
        let quorum = match (self.u8()?, self.u32()?) {
            (0, _) => Quorum::Any,
            (1, _) => Quorum::Majority,
            (2, _) => Quorum::All,
            (3, at_least) => Quorum::AtLeast(at_least),
            (tag, _) => return Err(DecodeError::Malformed(format!("quorum tag {tag}"))),
        };
        let staleness_ms = self.i64()?;
        Ok(ServiceSpec {
            service_id: ServiceId::parse_owned(service_id)
                .map_err(|e| DecodeError::Malformed(e.to_string()))?,
            name,
            agency,
            slo_target,
            quorum,
            staleness: Duration::from_millis(u64::try_from(staleness_ms).map_err(|_| {
                DecodeError::Malformed(format!("staleness {staleness_ms} ms is negative"))
            })?),
        })
    }

    fn service(&mut self) -> Result<ServiceTrack, DecodeError> {
        let definition_count = self.count(8)?;
        if definition_count == 0 {
            return Err(DecodeError::Malformed(
                "a service has no definition".to_string(),
            ));
        }
        let mut definitions = Vec::with_capacity(definition_count);
        for _ in 0..definition_count {
            definitions.push(Definition {
                received_at: self.i64()?,
                spec: self.spec()?,
            });
        }
        let probe_count = self.count(4)?;
        let mut probes = BTreeMap::new();
        for _ in 0..probe_count {
            let probe_id = self.string()?;
            let latest = self.optional(Reader::observation)?;
            let run_count = self.count(17)?;
            let mut runs = Vec::with_capacity(run_count);
            for _ in 0..run_count {
                runs.push(Run {
                    start: self.i64()?,
                    end: self.i64()?,
                    value: self.status()?,
                });
            }
            let observation_count = self.count(9)?;
            let mut recent = VecDeque::with_capacity(observation_count);
            for _ in 0..observation_count {
                recent.push_back(self.observation()?);
            }
            if probes
                .insert(
                    probe_id.clone(),
                    ProbeTrack {
                        runs,
                        recent,
                        latest,
                    },
                )
                .is_some()
            {
                return Err(DecodeError::Malformed(format!(
                    "probe {probe_id} appears twice"
                )));
            }
        }
        let maintenance_count = self.count(4)?;
        let mut maintenance = Vec::with_capacity(maintenance_count);
        for _ in 0..maintenance_count {
            let maintenance_id = self.string()?;
            let effective_start = self.i64()?;
            let effective_end = self.i64()?;
            let cancelled = match self.u8()? {
                0 => false,
                1 => true,
                tag => return Err(DecodeError::Malformed(format!("cancelled flag {tag}"))),
            };
            maintenance.push(MaintenanceWindow {
                maintenance_id,
                effective_start,
                effective_end,
                cancelled,
            });
        }
        for definitions_pair in definitions.windows(2) {
            if definitions_pair[0].received_at > definitions_pair[1].received_at {
                return Err(DecodeError::Inconsistent(
                    "definitions go back in time".to_string(),
                ));
            }
        }
        Ok(ServiceTrack::from_parts(definitions, probes, maintenance))
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::ProjectionInput;
    use super::super::test_inputs;
    use super::*;

    fn sample_projection() -> Projection {
        let mut projection = Projection::new(ProjectionConfig::default());
        projection.apply(test_inputs::genesis(0, 2, &["admin", "ops", "gone"]));
        // probe-a: proposed by admin, approved by ops; a pending proposal for probe-c, with
        // an approval from a key revoked afterwards.
        let (register, digest) = test_inputs::register(1, 0, "admin", "probe-a", "Nairobi");
        projection.apply(register);
        projection.apply(test_inputs::approve(2, 0, "ops", digest));
        let (register, _) = test_inputs::register(3, 0, "gone", "probe-c", "Mombasa");
        projection.apply(register);
        let spec = ServiceSpec {
            service_id: ServiceId::parse("passports").unwrap(),
            name: "Passport applications".to_string(),
            agency: "Home Office".to_string(),
            slo_target: 0.999,
            quorum: Quorum::AtLeast(2),
            staleness: Duration::from_secs(90),
        };
        projection.apply(ProjectionInput::DefineService {
            index: 4,
            received_at: 0,
            spec,
        });
        for (index, observed_at) in (3..40).zip((0..).step_by(10_000)) {
            let status = if (100_000..200_000).contains(&observed_at) {
                Status::Down
            } else {
                Status::Up
            };
            for probe_id in ["probe-a", "probe-b"] {
                projection.apply(ProjectionInput::Observation {
                    index: index * 2 + u64::from(probe_id == "probe-b"),
                    received_at: observed_at,
                    probe_id: probe_id.to_string(),
                    service_id: "passports".to_string(),
                    observed_at,
                    status,
                });
            }
        }
        projection.apply(ProjectionInput::ScheduleMaintenance {
            index: 100,
            received_at: 380_000,
            maintenance_id: "upgrade".to_string(),
            service_id: "passports".to_string(),
            start: 400_000,
            end: 500_000,
        });
        let (revoke_admin, digest) = test_inputs::revoke_admin(101, 390_000, "admin", "gone");
        projection.apply(revoke_admin);
        projection.apply(test_inputs::approve(102, 390_000, "ops", digest));
        let (revoke, digest) = test_inputs::revoke(103, 390_000, "admin", "probe-a");
        projection.apply(revoke);
        projection.apply(test_inputs::approve(104, 390_000, "ops", digest));
        assert_eq!(projection.governance().proposals().len(), 4);
        assert!(projection
            .registered_probes()
            .next()
            .unwrap()
            .1
            .revoked_at
            .is_some());
        projection
    }

    #[test]
    fn a_snapshot_decodes_to_the_same_projection() {
        let projection = sample_projection();
        let snapshot = projection.encode();
        let decoded = Projection::decode(&snapshot).unwrap();
        assert_eq!(decoded.encode(), snapshot);
        assert_eq!(decoded.applied_index(), projection.applied_index());
        assert_eq!(decoded.config(), projection.config());
        assert_eq!(
            decoded.report("passports", 0, 600_000),
            projection.report("passports", 0, 600_000)
        );
        assert_eq!(
            decoded.incidents("passports", 0, 600_000),
            projection.incidents("passports", 0, 600_000)
        );
        let probes = decoded.probes_for("passports").unwrap();
        assert_eq!(probes, projection.probes_for("passports").unwrap());
        let registration = probes[0].registration.as_ref().unwrap();
        assert_eq!(
            (
                registration.location.as_str(),
                registration.registered_index,
                registration.approved_by.as_slice(),
                registration.revoked_at.is_some()
            ),
            (
                "Nairobi",
                2,
                ["admin".to_string(), "ops".to_string()].as_slice(),
                true
            )
        );
        assert_eq!(decoded.governance(), projection.governance());
        assert_eq!(
            Projection::decode(&Projection::new(ProjectionConfig::default()).encode())
                .unwrap()
                .applied_index(),
            None
        );
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let snapshot = sample_projection().encode();
        let mut flipped = snapshot.clone();
        flipped[HEADER_LEN + 20] ^= 0x10;
        assert_eq!(
            Projection::decode(&flipped).unwrap_err(),
            DecodeError::ChecksumMismatch
        );
        let mut newer = snapshot.clone();
        newer[MAGIC.len()] = FORMAT_VERSION as u8 + 1;
        assert_eq!(
            Projection::decode(&newer).unwrap_err(),
            DecodeError::UnsupportedVersion {
                found: FORMAT_VERSION + 1,
                supported: FORMAT_VERSION
            }
        );
        assert_eq!(
            Projection::decode(b"not a snapshot at all").unwrap_err(),
            DecodeError::NotASnapshot
        );
        assert_eq!(
            Projection::decode(&snapshot[..6]).unwrap_err(),
            DecodeError::NotASnapshot
        );
        // Cut short but with a valid checksum over what remains: the structure is checked too.
        let mut truncated = snapshot[..snapshot.len() - CHECKSUM_LEN - 5].to_vec();
        let checksum = fnv1a64(&truncated);
        truncated.extend_from_slice(&checksum.to_le_bytes());
        assert_eq!(
            Projection::decode(&truncated).unwrap_err(),
            DecodeError::Truncated
        );
    }

    #[test]
    fn a_well_formed_but_inconsistent_snapshot_is_refused() {
        let mut projection = sample_projection();
        let probe = projection.services[0].probes.get_mut("probe-a").unwrap();
        probe.runs.swap(0, 1);
        let error = Projection::decode(&projection.encode()).unwrap_err();
        assert!(matches!(error, DecodeError::Inconsistent(_)), "{error:?}");
    }
}
