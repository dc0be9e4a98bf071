use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::*;
use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::client::{sign_command, sign_observation};
use crate::crypto::PublicKey;
use crate::domain::{
    AdminCommand, AdminKey, Command, MaintenanceId, Observation, ProbeId, Quorum, ServiceId,
    ServiceSpec, Status,
};
use crate::entry::{self, Payload};
use crate::merkle::{self, Hash};
use crate::pb;
use crate::projection::{AvailabilityReport, Incident};

/// 2026-11-27T00:00:00Z.
const T0: Millis = 1_795_737_600_000;
const ORIGIN: &str = "audit.test/log";
const SECOND: Millis = 1000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Builds a log entry by entry, signing like a real admin and real probes, without
/// any of the ledger's checks: what a dishonest operator could write.
struct LogBuilder {
    entries: Vec<Vec<u8>>,
    admin_seq: u64,
}

impl LogBuilder {
    /// A genesis (ledger key 1, admin key 2, max_lateness 1 h, max_skew 30 s), service
    /// `passport` and probes `p1` (key 11) and `p2` (key 12), all received at T0.
    fn new() -> LogBuilder {
        let genesis = Genesis {
            origin: ORIGIN.into(),
            ledger_public_key: crate::crypto::PublicKey::from(&key(1)),
            admin_keys: vec![AdminKey {
                name: "admin".into(),
                public_key: crate::crypto::PublicKey::from(&key(2)),
            }],
            max_lateness: Duration::from_secs(3600),
            max_skew: Duration::from_secs(30),
            admin_threshold: 1,
            previous_log: None,
        };
        let mut log = LogBuilder {
            entries: vec![entry::encode_entry(
                0,
                T0,
                pb::log_entry::Payload::Genesis(entry::genesis_to_pb(&genesis)),
            )],
            admin_seq: 0,
        };
        log.command(T0, define("passport"));
        log.command(T0, register("p1", 11));
        log.command(T0, register("p2", 12));
        log
    }

    fn next_index(&self) -> u64 {
        self.entries.len() as u64
    }

    fn command(&mut self, received_at: Millis, command: Command) -> u64 {
        self.admin_seq += 1;
        let command = AdminCommand {
            seq: self.admin_seq,
            issued_at: received_at,
            command,
        };
        self.signed_command(received_at, sign_command("admin", &key(2), &command))
    }

    fn signed_command(&mut self, received_at: Millis, signed: pb::SignedCommand) -> u64 {
        let index = self.next_index();
        self.entries.push(entry::encode_entry(
            index,
            received_at,
            pb::log_entry::Payload::Command(signed),
        ));
        index
    }

    /// An observation by probe `p<seed - 10>` signed with `key(seed)`, unless `signer`
    /// says otherwise.
    #[allow(clippy::too_many_arguments)]
    fn observation(
        &mut self,
        received_at: Millis,
        probe: &str,
        signer: u8,
        seq: u64,
        observed_at: Millis,
        status: Status,
    ) -> u64 {
        let observation = Observation {
            probe_id: ProbeId::parse(probe).unwrap(),
            service_id: ServiceId::parse("passport").unwrap(),
            seq,
            observed_at,
            status,
            latency_ms: 20,
            detail: String::new(),
        };
        let index = self.next_index();
        self.entries.push(entry::encode_entry(
            index,
            received_at,
            pb::log_entry::Payload::Observation(sign_observation(&key(signer), &observation)),
        ));
        index
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            tree_size: self.next_index(),
            root_hash: [0; 32],
            extensions: Vec::new(),
        }
    }

    fn audit(&self) -> Result<AuditedPrefix, AuditError> {
        audit_prefix(&self.entries, &self.checkpoint(), &verifier())
    }
}

fn verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, PublicKey::from(&key(1))).unwrap()
}

fn define(service_id: &str) -> Command {
    Command::DefineService(ServiceSpec {
        service_id: ServiceId::parse(service_id).unwrap(),
        name: "Passport applications".into(),
        agency: "Immigration".into(),
        slo_target: 0.99,
        quorum: Quorum::Majority,
        staleness: Duration::from_secs(90),
    })
}

fn register(probe_id: &str, seed: u8) -> Command {
    Command::RegisterProbe {
        probe_id: ProbeId::parse(probe_id).unwrap(),
        public_key: crate::crypto::PublicKey::from(&key(seed)),
        location: "Nairobi".into(),
    }
}

fn rejected_reason(result: Result<AuditedPrefix, AuditError>) -> (u64, RejectReason, String) {
    match result {
        Err(error @ AuditError::RejectedObservation { index, reason, .. }) => {
            (index, reason, error.to_string())
        }
        other => panic!("expected a rejected observation, got {other:?}"),
    }
}

#[test]
fn an_honest_log_passes_and_projects_like_the_server() {
    let mut log = LogBuilder::new();
    // p1: UP at +0 s, DOWN at +60 s, UP at +120 s (fresh for 90 s); maintenance from
    // +200 s to +300 s. One probe, so the service state is p1's.
    log.observation(T0, "p1", 11, 1, T0, Status::Up);
    log.observation(
        T0 + 60 * SECOND,
        "p1",
        11,
        2,
        T0 + 60 * SECOND,
        Status::Down,
    );
    log.observation(
        T0 + 120 * SECOND,
        "p1",
        11,
        5,
        T0 + 120 * SECOND,
        Status::Up,
    );
    log.command(
        T0 + 130 * SECOND,
        Command::ScheduleMaintenance {
            maintenance_id: MaintenanceId::parse("m1").unwrap(),
            service_id: ServiceId::parse("passport").unwrap(),
            start: T0 + 200 * SECOND,
            end: T0 + 300 * SECOND,
            reason: "upgrade".into(),
        },
    );
    let audited = log.audit().unwrap();
    assert_eq!(
        audited.counts,
        AuditCounts {
            entries: 8,
            observations: 3,
            commands: 4,
            signatures_verified: 7,
        }
    );
    assert_eq!(audited.as_of, T0 + 130 * SECOND);
    let report = audited
        .projection
        .report("passport", T0, T0 + 300 * SECOND)
        .unwrap();
    assert_eq!(
        (
            report.up_ms,
            report.down_ms,
            report.unknown_ms,
            report.maintenance_ms
        ),
        (140_000, 60_000, 0, 100_000)
    );
    let incidents = audited
        .projection
        .incidents("passport", T0, T0 + 300 * SECOND)
        .unwrap();
    assert_eq!(
        incidents,
        vec![Incident {
            start: T0 + 60 * SECOND,
            end: T0 + 120 * SECOND,
            open: false,
            probes: vec!["p1".into()],
            last_observed_at: None,
        }]
    );
}

#[test]
fn a_backdated_observation_is_caught_although_validly_signed() {
    let mut log = LogBuilder::new();
    log.observation(T0, "p1", 11, 1, T0, Status::Up);
    // Received two hours later but dated at T0: the ledger refuses this as TOO_LATE,
    // so only an operator writing the log directly can have put it there.
    let injected = log.observation(T0 + 7200 * SECOND, "p2", 12, 1, T0, Status::Down);
    let (index, reason, message) = rejected_reason(log.audit());
    assert_eq!((index, reason), (injected, RejectReason::TooLate));
    assert!(
        message.starts_with("entry 5: ") && message.contains("7200000 ms before received_at"),
        "{message}"
    );
}

#[test]
fn every_observation_rule_is_judged_at_its_position() {
    struct Case {
        name: &'static str,
        build: fn(&mut LogBuilder) -> u64,
        reason: RejectReason,
    }
    let cases = [
        Case {
            name: "dated too far ahead",
            build: |log| log.observation(T0, "p1", 11, 1, T0 + 31 * SECOND, Status::Up),
            reason: RejectReason::TooEarly,
        },
        Case {
            name: "unregistered probe",
            build: |log| log.observation(T0, "p9", 11, 1, T0, Status::Up),
            reason: RejectReason::UnknownProbe,
        },
        Case {
            name: "revoked probe",
            build: |log| {
                log.command(
                    T0,
                    Command::RevokeProbe {
                        probe_id: ProbeId::parse("p1").unwrap(),
                        reason: "stolen key".into(),
                    },
                );
                log.observation(T0, "p1", 11, 1, T0, Status::Up)
            },
            reason: RejectReason::ProbeRevoked,
        },
        Case {
            name: "seq replayed with other bytes",
            build: |log| {
                log.observation(T0, "p1", 11, 7, T0, Status::Up);
                log.observation(T0, "p1", 11, 7, T0, Status::Down)
            },
            reason: RejectReason::StaleSeq,
        },
        Case {
            name: "seq going down",
            build: |log| {
                log.observation(T0, "p1", 11, 7, T0, Status::Up);
                log.observation(T0, "p1", 11, 6, T0, Status::Up)
            },
            reason: RejectReason::StaleSeq,
        },
    ];
    for case in cases {
        let mut log = LogBuilder::new();
        let bad = (case.build)(&mut log);
        log.observation(T0 + SECOND, "p2", 12, 1, T0, Status::Up);
        let (index, reason, _) = rejected_reason(log.audit());
        assert_eq!((index, reason), (bad, case.reason), "{}", case.name);
    }
}

#[test]
fn an_observation_of_a_service_defined_only_later_is_caught() {
    let mut log = LogBuilder::new();
    let observation = |log: &mut LogBuilder| {
        let body = Observation {
            probe_id: ProbeId::parse("p1").unwrap(),
            service_id: ServiceId::parse("tax").unwrap(),
            seq: 1,
            observed_at: T0,
            status: Status::Up,
            latency_ms: 1,
            detail: String::new(),
        };
        let index = log.next_index();
        log.entries.push(entry::encode_entry(
            index,
            T0,
            pb::log_entry::Payload::Observation(sign_observation(&key(11), &body)),
        ));
        index
    };
    let bad = observation(&mut log);
    log.command(T0, define("tax"));
    let (index, reason, message) = rejected_reason(log.audit());
    assert_eq!((index, reason), (bad, RejectReason::UnknownService));
    assert!(message.contains("service tax is not defined"), "{message}");
}

#[test]
fn received_at_must_never_decrease() {
    let mut log = LogBuilder::new();
    log.observation(T0 + 10 * SECOND, "p1", 11, 1, T0, Status::Up);
    log.observation(T0 + 5 * SECOND, "p2", 12, 1, T0, Status::Up);
    let error = log.audit().unwrap_err();
    assert!(matches!(error, AuditError::TimeWentBack { index: 5, .. }));
    assert!(
        error
            .to_string()
            .starts_with("entry 5 was received at 2026-11-27T00:00:05.000Z, before entry 4"),
        "{error}"
    );
}

#[test]
fn a_bad_signature_is_named_precisely_among_thousands() {
    let mut log = LogBuilder::new();
    let mut bad = 0;
    for seq in 1..=3000u64 {
        let observed_at = T0 + seq as Millis;
        // Probe p2's observation signed with p1's key.
        let signer = if seq == 2345 { 11 } else { 12 };
        let index = log.observation(observed_at, "p2", signer, seq, observed_at, Status::Up);
        if seq == 2345 {
            bad = index;
        }
    }
    let error = log.audit().unwrap_err();
    assert_eq!(
        error,
        AuditError::BadSignature {
            index: bad,
            kind: "observation",
            signer: "probe p2".into()
        }
    );
    assert_eq!(
        error.to_string(),
        format!("entry {bad}: the signature of probe p2's observation does not verify")
    );
    // Honest, the same log verifies every signature.
    let mut log = LogBuilder::new();
    for seq in 1..=3000u64 {
        log.observation(T0, "p2", 12, seq, T0, Status::Up);
    }
    assert_eq!(log.audit().unwrap().counts.signatures_verified, 3003);
}

#[test]
fn the_earlier_of_a_bad_signature_and_a_broken_rule_is_reported() {
    let mut log = LogBuilder::new();
    let bad_signature = log.observation(T0, "p1", 12, 1, T0, Status::Up);
    log.observation(T0, "p9", 11, 1, T0, Status::Up);
    assert!(matches!(
        log.audit(),
        Err(AuditError::BadSignature { index, .. }) if index == bad_signature
    ));

    let mut log = LogBuilder::new();
    let broken_rule = log.observation(T0, "p9", 11, 1, T0, Status::Up);
    log.observation(T0, "p1", 12, 1, T0, Status::Up);
    assert_eq!(rejected_reason(log.audit()).0, broken_rule);
}

/// Audits `log` a few entries at a time, so chunks are verified in the background
/// while later ones are judged.
fn audit_in_chunks(log: &LogBuilder, chunk: usize) -> Result<AuditedPrefix, AuditError> {
    let mut audit = PrefixAudit::new(&verifier());
    for entries in log.entries.chunks(chunk) {
        audit = audit.check_entries(entries)?;
    }
    audit.finish(&log.checkpoint())
}

#[test]
fn across_chunks_the_earlier_of_a_bad_signature_and_a_broken_rule_is_reported() {
    // The bad signature is in one chunk, the broken rule in a later one, judged while
    // the first is still being verified.
    let mut log = LogBuilder::new();
    let mut bad_signature = 0;
    for seq in 1..=40u64 {
        let signer = if seq == 7 { 12 } else { 11 };
        let index = log.observation(T0, "p1", signer, seq, T0, Status::Up);
        if seq == 7 {
            bad_signature = index;
        }
    }
    log.observation(T0, "p9", 11, 1, T0, Status::Up);
    for chunk in [1, 5, 16, 1000] {
        assert!(
            matches!(
                audit_in_chunks(&log, chunk),
                Err(AuditError::BadSignature { index, .. }) if index == bad_signature
            ),
            "chunk {chunk}"
        );
    }

    // A bad signature in the last chunk is found by finish.
    let mut log = LogBuilder::new();
    for seq in 1..=40u64 {
        log.observation(T0, "p1", 11, seq, T0, Status::Up);
    }
    let last = log.observation(T0, "p1", 12, 41, T0, Status::Up);
    assert!(matches!(
        audit_in_chunks(&log, 8),
        Err(AuditError::BadSignature { index, .. }) if index == last
    ));

    // Honest, every signature is counted once, whatever the chunking.
    let mut log = LogBuilder::new();
    for seq in 1..=40u64 {
        log.observation(T0, "p1", 11, seq, T0, Status::Up);
    }
    for chunk in [1, 7, 1000] {
        assert_eq!(
            audit_in_chunks(&log, chunk)
                .unwrap()
                .counts
                .signatures_verified,
            43
        );
    }
}

#[test]
fn commands_are_judged_by_the_ledger_rules() {
    // Cancelling a maintenance that was never scheduled.
    let mut log = LogBuilder::new();
    let cancel = log.command(
        T0,
        Command::CancelMaintenance {
            maintenance_id: MaintenanceId::parse("never").unwrap(),
        },
    );
    let error = log.audit().unwrap_err();
    assert!(
        matches!(error, AuditError::RefusedCommand { index, refusal: CommandRefusal::NotFound(_) } if index == cancel)
    );
    assert!(
        error
            .to_string()
            .contains("maintenance never was never scheduled"),
        "{error}"
    );

    // The same signed command appended twice.
    let mut log = LogBuilder::new();
    let repeated = log.entries[1].clone();
    let signed = match entry::decode_entry(&repeated).unwrap().payload {
        Payload::Command {
            signer,
            body,
            signature,
            ..
        } => pb::SignedCommand {
            signer,
            body,
            signature,
        },
        _ => unreachable!(),
    };
    let index = log.signed_command(T0, signed);
    assert_eq!(
        log.audit().unwrap_err(),
        AuditError::RepeatedCommand { index, original: 1 }
    );

    // Signed by a key that is not the admin key of that name.
    let mut log = LogBuilder::new();
    let command = AdminCommand {
        seq: 99,
        issued_at: T0,
        command: define("tax"),
    };
    let forged = log.signed_command(T0, sign_command("admin", &key(3), &command));
    assert_eq!(
        log.audit().unwrap_err().to_string(),
        format!("entry {forged}: the signature of admin admin's command does not verify")
    );
}

#[test]
fn the_genesis_must_match_the_pinned_key() {
    let log = LogBuilder::new();
    let other = NoteVerifier::new(ORIGIN, PublicKey::from(&key(9))).unwrap();
    let error = audit_prefix(&log.entries, &log.checkpoint(), &other).unwrap_err();
    assert!(
        matches!(error, AuditError::GenesisMismatch { .. }),
        "{error}"
    );

    let mut log = LogBuilder::new();
    log.entries.remove(0);
    let error = log.audit().unwrap_err();
    assert!(
        matches!(
            error,
            AuditError::Misplaced {
                index: 0,
                claimed: 1
            }
        ),
        "{error}"
    );

    let mut log = LogBuilder::new();
    let genesis = log.entries[0].clone();
    let mut reencoded = entry::decode_entry(&genesis).unwrap();
    reencoded.index = 4;
    let Payload::Genesis(genesis) = reencoded.payload else {
        unreachable!()
    };
    log.entries.push(entry::encode_entry(
        4,
        T0,
        pb::log_entry::Payload::Genesis(entry::genesis_to_pb(&genesis)),
    ));
    assert_eq!(
        log.audit().unwrap_err(),
        AuditError::SecondGenesis { index: 4 }
    );
}

#[test]
fn the_whole_prefix_must_be_audited() {
    let log = LogBuilder::new();
    let mut checkpoint = log.checkpoint();
    checkpoint.tree_size += 1;
    assert_eq!(
        audit_prefix(&log.entries, &checkpoint, &verifier()).unwrap_err(),
        AuditError::WrongSize {
            entries: 4,
            tree_size: 5
        }
    );
    let mut corrupt = log.entries.clone();
    corrupt[2].truncate(10);
    assert!(matches!(
        audit_prefix(&corrupt, &log.checkpoint(), &verifier()),
        Err(AuditError::Undecodable { index: 2, .. })
    ));
}

fn report() -> AvailabilityReport {
    AvailabilityReport {
        start: T0,
        end: T0 + 600_000,
        up_ms: 480_000,
        down_ms: 120_000,
        unknown_ms: 0,
        maintenance_ms: 0,
        availability: Some(0.8),
        coverage: Some(1.0),
        slo_target: 0.99,
        slo_met: false,
        error_budget_ms: 6000.0,
        error_budget_remaining_ms: -114_000.0,
        incident_count: 1,
    }
}

#[test]
fn reports_are_compared_field_by_field() {
    assert_eq!(compare_report("passport", &report(), &report()), Ok(()));
    let served = AvailabilityReport {
        up_ms: 540_000,
        ..report()
    };
    let error = compare_report("passport", &served, &report()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "service passport: the server's availability report's up_ms is 540000, but the log gives 480000"
    );
    let served = AvailabilityReport {
        availability: None,
        ..report()
    };
    assert!(compare_report("passport", &served, &report())
        .unwrap_err()
        .to_string()
        .contains("availability is absent, but the log gives 0.8"));
    // JSON writes NaN like an absent value; the comparison still sees it.
    let nothing_measured = AvailabilityReport {
        availability: None,
        coverage: None,
        ..report()
    };
    for lie in [f64::NAN, f64::INFINITY] {
        let served = AvailabilityReport {
            availability: Some(lie),
            ..nothing_measured.clone()
        };
        assert!(compare_report("passport", &served, &nothing_measured).is_err());
    }
}

#[test]
fn incident_lists_and_prefixes_are_compared() {
    let incident = Incident {
        start: T0,
        end: T0 + 60_000,
        open: false,
        probes: vec!["p1".into()],
        last_observed_at: None,
    };
    let window = (T0, T0 + 600_000);
    let incidents = vec![incident.clone()];
    let same = compare_incidents("passport", window, &incidents, window, &incidents);
    assert_eq!(same, Ok(()));
    let error = compare_incidents("passport", window, &[], window, &incidents)
        .unwrap_err()
        .to_string();
    assert_eq!(error, "service passport: the server's incident list's number of incidents is 0, but the log gives 1");
    let shortened = Incident {
        end: T0 + 30_000,
        ..incident.clone()
    };
    let error = compare_incidents("passport", window, &[shortened], window, &[incident])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("incident 0 is [2026-11-27T00:00:00.000Z, 2026-11-27T00:00:30.000Z)"),
        "{error}"
    );
    let audited = LogPrefix {
        tree_size: 10,
        checkpoint: "note".into(),
    };
    let served = LogPrefix {
        tree_size: 9,
        ..audited.clone()
    };
    assert!(
        compare_prefix("passport", "GetAvailability", &served, &audited)
            .unwrap_err()
            .to_string()
            .contains("GetAvailability tree_size is 9, but the log gives 10")
    );
}

/// Leaf hashes in memory, answering any perfect subtree by hashing.
struct Leaves(Vec<Hash>);

impl merkle::SubtreeSource for Leaves {
    type Error = std::convert::Infallible;

    fn subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let mut level_hashes: Vec<Hash> =
            self.0[(index << level) as usize..((index + 1) << level) as usize].to_vec();
        while level_hashes.len() > 1 {
            level_hashes = level_hashes
                .chunks(2)
                .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                .collect();
        }
        Ok(level_hashes[0])
    }
}

#[test]
fn consistency_with_a_saved_checkpoint() {
    let leaves = Leaves((0..13u8).map(|i| merkle::leaf_hash(&[i])).collect());
    let checkpoint = |tree_size| Checkpoint {
        origin: ORIGIN.into(),
        tree_size,
        root_hash: merkle::root(&leaves, tree_size).unwrap(),
        extensions: Vec::new(),
    };
    let (saved, latest) = (checkpoint(5), checkpoint(13));
    let proof = merkle::consistency_proof(&leaves, 5, 13).unwrap();
    assert_eq!(check_consistency(&saved, &latest, &proof), Ok(()));
    assert_eq!(check_consistency(&latest, &latest, &[]), Ok(()));
    assert_eq!(
        check_consistency(&latest, &saved, &proof),
        Err(AuditError::RolledBack {
            saved: 13,
            latest: 5
        })
    );
    let forked = Checkpoint {
        root_hash: merkle::leaf_hash(b"another history"),
        ..checkpoint(5)
    };
    let error = check_consistency(&forked, &latest, &proof).unwrap_err();
    assert!(matches!(
        error,
        AuditError::Inconsistent {
            saved: 5,
            latest: 13,
            ..
        }
    ));
    assert!(error.to_string().contains("rewritten or forked"), "{error}");
}
