//! The evidence formats end to end in memory: a small signed log, its bundle and raw
//! export, verified, and every kind of tampering refused with its reason.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;

use super::raw::{entry_line, header_line};
use super::*;
use crate::audit::audit_prefix;
use crate::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use crate::client::{sign_command, sign_observation};
use crate::crypto::PublicKey;
use crate::domain::{
    AdminCommand, AdminKey, Command, Genesis, Millis, Observation, ProbeId, Quorum, ServiceId,
    ServiceSpec, Status,
};
use crate::entry;
use crate::merkle;
use crate::pb;

/// 2026-11-27T00:00:00Z.
const T0: Millis = 1_795_737_600_000;
const S: Millis = 1000;
const ORIGIN: &str = "evidence.test/log";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, PublicKey::from(&key(1))).unwrap()
}

/// A log: genesis (0), `passport` defined (1), p1 registered by `admin` (2), admin key
/// `second` added (3), p2 registered by `second` (4); then both probes UP, both DOWN twice,
/// both UP (5..=12). Majority of two: DOWN from T0+61 s (both DOWN) to T0+120 s.
fn log() -> Vec<Vec<u8>> {
    let genesis = Genesis {
        origin: ORIGIN.into(),
        ledger_public_key: PublicKey::from(&key(1)),
        admin_keys: vec![AdminKey {
            name: "admin".into(),
            public_key: PublicKey::from(&key(2)),
        }],
        max_lateness: Duration::from_secs(3600),
        max_skew: Duration::from_secs(30),
        admin_threshold: 1,
        previous_log: None,
    };
    let mut entries = vec![entry::encode_entry(
        0,
        T0,
        pb::log_entry::Payload::Genesis(entry::genesis_to_pb(&genesis)),
    )];
    let mut seq = 0;
    let mut command = |entries: &mut Vec<Vec<u8>>, signer: &str, seed: u8, command: Command| {
        seq += 1;
        let signed = sign_command(
            signer,
            &key(seed),
            &AdminCommand {
                seq,
                issued_at: T0,
                command,
            },
        );
        let index = entries.len() as u64;
        entries.push(entry::encode_entry(
            index,
            T0,
            pb::log_entry::Payload::Command(signed),
        ));
    };
    command(
        &mut entries,
        "admin",
        2,
        Command::DefineService(ServiceSpec {
            service_id: ServiceId::parse("passport").unwrap(),
            name: "Passport applications".into(),
            agency: "Immigration".into(),
            slo_target: 0.99,
            quorum: Quorum::Majority,
            staleness: Duration::from_secs(90),
        }),
    );
    let register = |probe: &str, seed: u8| Command::RegisterProbe {
        probe_id: ProbeId::parse(probe).unwrap(),
        public_key: PublicKey::from(&key(seed)),
        location: "Nairobi".into(),
    };
    command(&mut entries, "admin", 2, register("p1", 11));
    command(
        &mut entries,
        "admin",
        2,
        Command::AddAdminKey(AdminKey {
            name: "second".into(),
            public_key: PublicKey::from(&key(3)),
        }),
    );
    command(&mut entries, "second", 3, register("p2", 12));
    let observations = [
        ("p1", 11, 0, Status::Up),
        ("p2", 12, 0, Status::Up),
        ("p1", 11, 60, Status::Down),
        ("p2", 12, 61, Status::Down),
        ("p1", 11, 90, Status::Down),
        ("p2", 12, 91, Status::Down),
        ("p1", 11, 120, Status::Up),
        ("p2", 12, 121, Status::Up),
    ];
    for (n, (probe, seed, at, status)) in observations.into_iter().enumerate() {
        let observation = Observation {
            probe_id: ProbeId::parse(probe).unwrap(),
            service_id: ServiceId::parse("passport").unwrap(),
            seq: n as u64 + 1,
            observed_at: T0 + at * S,
            status,
            latency_ms: 20,
            detail: String::new(),
        };
        let index = entries.len() as u64;
        entries.push(entry::encode_entry(
            index,
            T0 + at * S,
            pb::log_entry::Payload::Observation(sign_observation(&key(seed), &observation)),
        ));
    }
    entries
}

/// The signed checkpoint of `entries` and its note.
fn checkpoint(entries: &[Vec<u8>]) -> (Checkpoint, String) {
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        tree_size: entries.len() as u64,
        root_hash: LeafTree::from_entries(entries).root(),
        extensions: Vec::new(),
    };
    let note = NoteSigner::new(ORIGIN, key(1))
        .unwrap()
        .sign_checkpoint(&checkpoint)
        .unwrap();
    (checkpoint, note)
}

const WINDOW: (Millis, Millis) = (T0, T0 + 200 * S);

fn bundle() -> Bundle {
    let entries = log();
    let (checkpoint, note) = checkpoint(&entries);
    let audited = audit_prefix(&entries, &checkpoint, &verifier()).unwrap();
    let report = audited
        .projection
        .report("passport", WINDOW.0, WINDOW.1)
        .unwrap();
    let incidents = audited
        .projection
        .incidents("passport", WINDOW.0, WINDOW.1)
        .unwrap();
    build_bundle(&BundleInputs {
        verifier: &verifier(),
        note: &note,
        checkpoint: &checkpoint,
        entries: &entries,
        service_id: "passport",
        window: WINDOW,
        report: &report,
        incidents: &incidents,
    })
    .unwrap()
}

fn verify(bundle: &Bundle) -> Result<Findings, EvidenceError> {
    verify_bundle(&serde_json::to_string(bundle).unwrap(), Some(&verifier()))
}

fn refusal(bundle: &Bundle) -> String {
    verify(bundle).unwrap_err().to_string()
}

#[test]
fn a_bundle_carries_the_incident_its_observations_and_the_keys_behind_them() {
    let bundle = bundle();
    assert_eq!(bundle.incidents.len(), 1);
    let incident = &bundle.incidents[0];
    assert_eq!(incident.start, "2026-11-27T00:01:01.000Z");
    assert_eq!(incident.end, "2026-11-27T00:02:00.000Z");
    assert_eq!(incident.probes, ["p1", "p2"]);
    // The four DOWN observations, not the UP ones.
    assert_eq!(incident.observations, [7, 8, 9, 10]);
    assert_eq!(bundle.service_specs, [1]);
    // Genesis, definition, both registrations, the addition of `second` (who registered
    // p2), and the observations.
    let carried: Vec<u64> = bundle.entries.iter().map(|e| e.index).collect();
    assert_eq!(carried, [0, 1, 2, 3, 4, 7, 8, 9, 10]);

    let findings = verify(&bundle).unwrap();
    assert_eq!(findings.checkpoint.tree_size, 13);
    assert_eq!((findings.entries, findings.signatures), (9, 8));
    assert_eq!(findings.incidents[0].observations, 4);
    assert_eq!(
        findings.incidents[0].observed,
        Some((T0 + 60 * S, T0 + 91 * S))
    );
    assert_eq!(
        findings.probes.into_iter().collect::<Vec<_>>(),
        [("p1".to_owned(), 2), ("p2".to_owned(), 4)]
    );
    let statement = verify(&bundle).unwrap().statement();
    assert!(
        statement.contains("4 signed DOWN observations by p1, p2"),
        "{statement}"
    );
    assert!(statement.contains("export --raw"), "{statement}");
    // An open incident is ongoing, never given the end where its data runs out.
    let mut open = bundle.clone();
    open.incidents[0].open = true;
    let statement = verify(&open).unwrap().statement();
    assert!(
        statement.contains(
            "1. DOWN from 2026-11-27T00:01:01.000Z ongoing (no end in the data): 4 signed"
        ),
        "{statement}"
    );
    assert!(!statement.contains("00:02:00"), "{statement}");
    // Without a pinned key, the file's own key is used.
    let text = serde_json::to_string(&bundle).unwrap();
    assert!(verify_bundle(&text, None).is_ok());
}

#[test]
fn a_changed_entry_byte_is_refused_naming_the_entry() {
    let mut bundle = bundle();
    let carried = bundle.entries.iter_mut().find(|e| e.index == 8).unwrap();
    let mut bytes = BASE64.decode(&carried.entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    carried.entry = BASE64.encode(&bytes);
    assert_eq!(
        refusal(&bundle),
        "entry 8: its inclusion proof does not lead to the checkpoint's root (tree size 13): the inclusion proof does not lead to the given root; the entry or its proof was altered"
    );
}

#[test]
fn a_changed_proof_hash_is_refused() {
    let mut bundle = bundle();
    let carried = bundle.entries.iter_mut().find(|e| e.index == 2).unwrap();
    carried.inclusion_proof[1] = hex::encode([7u8; 32]);
    assert!(refusal(&bundle).starts_with("entry 2: its inclusion proof does not lead"));
    let carried = bundle.entries.iter_mut().find(|e| e.index == 2).unwrap();
    carried.inclusion_proof[1] = "zz".into();
    assert_eq!(
        refusal(&bundle),
        "entry 2: proof hash \"zz\" is not 32 bytes of hex"
    );
    let mut bundle = self::bundle();
    let carried = bundle.entries.iter_mut().find(|e| e.index == 2).unwrap();
    carried.inclusion_proof.pop();
    assert!(refusal(&bundle).contains("fewer hashes than the tree sizes call for"));
}

#[test]
fn a_changed_checkpoint_is_refused() {
    let mut bundle = bundle();
    bundle.checkpoint = bundle.checkpoint.replacen("\n13\n", "\n14\n", 1);
    assert_eq!(
        refusal(&bundle),
        format!(
            "the checkpoint does not verify with key {}: checkpoint signature does not verify with key {ORIGIN}+{:08x}",
            verifier(),
            verifier().key_id()
        )
    );
}

#[test]
fn a_swapped_key_is_refused() {
    let other = NoteVerifier::new(ORIGIN, PublicKey::from(&key(9))).unwrap();
    // The file's key swapped for another: the checkpoint is not signed by it.
    let mut bundle = bundle();
    bundle.verifier_key = other.to_string();
    let text = serde_json::to_string(&bundle).unwrap();
    let error = verify_bundle(&text, None).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "the checkpoint does not verify with key {other}: "
        )) && error.contains(&format!("{ORIGIN}+{:08x}", other.key_id())),
        "{error}"
    );
    // A pinned key other than the file's.
    let bundle = self::bundle();
    let text = serde_json::to_string(&bundle).unwrap();
    assert_eq!(
        verify_bundle(&text, Some(&other)).unwrap_err().to_string(),
        format!("the file was checked against key {}, not the pinned key {other}: it is not evidence about the log you pinned", verifier())
    );
    // A checkpoint re-signed by another key that also claims the log: the genesis names
    // the real ledger key.
    let mut bundle = self::bundle();
    let text = bundle.checkpoint.split_once("\n\n").unwrap().0.to_owned() + "\n";
    let body = Checkpoint::parse_body(&text).unwrap();
    bundle.checkpoint = NoteSigner::new(ORIGIN, key(9))
        .unwrap()
        .sign_checkpoint(&body)
        .unwrap();
    bundle.verifier_key = other.to_string();
    let text = serde_json::to_string(&bundle).unwrap();
    let error = verify_bundle(&text, None).unwrap_err().to_string();
    assert!(
        error.starts_with("the genesis names origin \"evidence.test/log\" with ledger key"),
        "{error}"
    );
}

#[test]
fn a_forged_signature_is_refused() {
    // An observation replaced by one signed with another key, re-hashed into a new tree
    // and checkpoint by the ledger key: the proofs hold, the signature does not.
    let mut entries = log();
    let observation = Observation {
        probe_id: ProbeId::parse("p1").unwrap(),
        service_id: ServiceId::parse("passport").unwrap(),
        seq: 5,
        observed_at: T0 + 90 * S,
        status: Status::Down,
        latency_ms: 20,
        detail: String::new(),
    };
    entries[9] = entry::encode_entry(
        9,
        T0 + 90 * S,
        pb::log_entry::Payload::Observation(sign_observation(&key(66), &observation)),
    );
    let (checkpoint, note) = checkpoint(&entries);
    let incidents = [crate::projection::Incident {
        start: T0 + 61 * S,
        end: T0 + 120 * S,
        open: false,
        probes: vec!["p1".into(), "p2".into()],
        last_observed_at: None,
    }];
    let report = crate::projection::semantics::availability_report(
        WINDOW.0,
        WINDOW.1,
        Default::default(),
        0.99,
        1,
    );
    let bundle = build_bundle(&BundleInputs {
        verifier: &verifier(),
        note: &note,
        checkpoint: &checkpoint,
        entries: &entries,
        service_id: "passport",
        window: WINDOW,
        report: &report,
        incidents: &incidents,
    })
    .unwrap();
    assert_eq!(
        refusal(&bundle),
        "entry 9: the signature of probe p1's observation does not verify"
    );
}

#[test]
fn an_incident_must_list_down_observations_the_file_carries() {
    let mut bundle = bundle();
    bundle.incidents[0].observations.push(11);
    assert_eq!(
        refusal(&bundle),
        "the file names entry 11 as a DOWN observation behind incident 1 (2026-11-27T00:01:01.000Z to 2026-11-27T00:02:00.000Z), but does not carry it"
    );

    // An UP observation, carried with its proof, passed off as DOWN evidence.
    let entries = log();
    let tree = LeafTree::from_entries(&entries);
    let mut bundle = self::bundle();
    bundle.entries.push(bundle::BundleEntry {
        index: 11,
        entry: BASE64.encode(&entries[11]),
        inclusion_proof: tree
            .inclusion_proof(11)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect(),
    });
    bundle.incidents[0].observations.push(11);
    assert!(refusal(&bundle).ends_with("but it says UP"));

    // A DOWN observation of another incident's time.
    let mut bundle = self::bundle();
    bundle.incidents[0].start = "2026-11-27T00:05:00.000Z".into();
    bundle.incidents[0].end = "2026-11-27T00:06:00.000Z".into();
    assert!(refusal(&bundle).ends_with(
        "but it was observed at 2026-11-27T00:01:00.000Z, not fresh during the incident"
    ));

    let mut bundle = self::bundle();
    bundle.incidents[0].observations.push(7);
    assert!(refusal(&bundle).ends_with("but it is listed twice"));

    let mut bundle = self::bundle();
    bundle.incidents[0].probes = vec!["p1".into()];
    assert!(refusal(&bundle).ends_with("but its probe p2 is not among the incident's probes"));

    let mut bundle = self::bundle();
    bundle.service_specs = vec![2];
    assert_eq!(
        refusal(&bundle),
        "entry 2 is named as a definition of service passport, but it is another command"
    );
    bundle.service_specs = vec![];
    assert_eq!(
        refusal(&bundle),
        "the file carries no definition of service passport"
    );
}

#[test]
fn the_keys_behind_signatures_must_be_carried() {
    let mut bundle = bundle();
    bundle.entries.retain(|e| e.index != 4);
    assert_eq!(
        refusal(&bundle),
        "entry 8: an observation by probe p2, whose registration is not among the file's earlier entries"
    );
    let mut bundle = self::bundle();
    bundle.entries.retain(|e| e.index != 3);
    assert_eq!(
        refusal(&bundle),
        "entry 4: signed by admin key \"second\", which is neither in the genesis nor added by an earlier entry of the file"
    );
    let mut bundle = self::bundle();
    bundle.entries.retain(|e| e.index != 0);
    assert_eq!(
        refusal(&bundle),
        "the file does not carry entry 0, the genesis, which names the ledger key and the first admin keys"
    );
    let mut bundle = self::bundle();
    let copy = bundle.entries[1].clone();
    bundle.entries.push(copy);
    assert_eq!(refusal(&bundle), "entry 1 appears twice");
}

#[test]
fn malformed_files_are_refused_without_panicking() {
    for text in ["", "null", "[1]", "{\"format\": 3}"] {
        let error = verify_bundle(text, None).unwrap_err().to_string();
        assert!(error.starts_with("not an evidence file: "), "{error}");
    }
    let mut bundle = bundle();
    bundle.format = "other/1".into();
    assert_eq!(
        refusal(&bundle),
        "the file says format \"other/1\"; this verifier reads uptime-ledger-evidence/1"
    );
    let mut bundle = self::bundle();
    bundle.window.start = "yesterday".into();
    assert!(refusal(&bundle).starts_with("window.start is not a time: "));
    let mut bundle = self::bundle();
    bundle.verifier_key = "nonsense".into();
    assert!(refusal(&bundle).starts_with("the file's verifier_key is not a verifier key: "));
    let mut bundle = self::bundle();
    bundle.entries[1].entry = "***".into();
    assert!(refusal(&bundle).starts_with("entry 1: its bytes are not base64"));
    let mut bundle = self::bundle();
    bundle.entries[1].index = 99;
    assert!(refusal(&bundle).starts_with("entry 99: its inclusion proof does not lead"));
    // Every truncation of a valid file is refused, never a panic.
    let text = serde_json::to_string(&self::bundle()).unwrap();
    for cut in (0..text.len()).step_by(97) {
        assert!(verify_bundle(&text[..cut], None).is_err());
    }
}

#[test]
fn leaf_tree_proofs_verify_for_every_leaf_of_every_small_tree() {
    for size in 1..=33u64 {
        let leaves: Vec<_> = (0..size)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let tree = LeafTree::new(leaves.clone());
        let mut appender = merkle::TileAppender::new();
        appender.append(&leaves);
        assert_eq!(tree.root(), appender.root(), "size {size}");
        for index in 0..size {
            let proof = tree.inclusion_proof(index).unwrap();
            merkle::verify_inclusion(&leaves[index as usize], index, size, &proof, &tree.root())
                .unwrap();
        }
        assert!(tree.inclusion_proof(size).is_err());
    }
}

fn export(entries: &[Vec<u8>], note: &str) -> String {
    let mut text = header_line(&verifier(), note) + "\n";
    for (index, bytes) in entries.iter().enumerate() {
        text += &(entry_line(index as u64, bytes) + "\n");
    }
    text
}

#[test]
fn a_raw_export_audits_to_the_same_verdict_as_the_entries() {
    let entries = log();
    let (checkpoint, note) = checkpoint(&entries);
    let online = audit_prefix(&entries, &checkpoint, &verifier()).unwrap();
    let offline = audit_export(export(&entries, &note).as_bytes(), &verifier()).unwrap();
    assert_eq!(offline.audited.counts, online.counts);
    assert_eq!(offline.checkpoint, checkpoint);
    assert_eq!(offline.note, note);
    assert_eq!(
        offline
            .audited
            .projection
            .report("passport", WINDOW.0, WINDOW.1),
        online.projection.report("passport", WINDOW.0, WINDOW.1)
    );
}

#[test]
fn a_tampered_raw_export_is_refused_naming_the_entry() {
    let entries = log();
    let (_, note) = checkpoint(&entries);
    let audit = |text: &str| {
        audit_export(text.as_bytes(), &verifier())
            .unwrap_err()
            .to_string()
    };

    // A byte of an observation's signature.
    let mut tampered = entries.clone();
    let last = tampered[9].len() - 1;
    tampered[9][last] ^= 1;
    let error = audit(&export(&tampered, &note));
    assert!(
        error.starts_with("entry 9: the signature of probe p1's observation does not verify; and the 13 entries of the export hash to root"),
        "{error}"
    );

    // An entry left out.
    let text = export(&entries, &note);
    let lines: Vec<&str> = text.lines().collect();
    let without = [&lines[..5], &lines[6..]].concat().join("\n");
    assert_eq!(
        audit(&without),
        "entry 4: line 6 holds entry 5 in its place; entries are in index order from 0"
    );
    // One entry too many.
    let extra = text.clone() + &entry_line(13, &entries[12]) + "\n";
    assert_eq!(
        audit(&extra),
        "line 15: entry 13 is beyond the checkpoint's tree size 13"
    );
    // Not base64.
    let garbled = text.replacen("\"entry\":\"", "\"entry\":\"*", 2);
    assert!(audit(&garbled).starts_with("entry 0: its bytes are not base64"));

    // The header: a key other than the pinned one, a wrong format, nothing at all.
    let other = NoteVerifier::new(ORIGIN, PublicKey::from(&key(9))).unwrap();
    let error = audit_export(text.as_bytes(), &other)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!("the export was verified against key {}, not the pinned key {other}; pin the key you obtained from the ledger's operator, not the one in the file", verifier())
    );
    let wrong_format = text.replacen(RAW_EXPORT_FORMAT, "raw/0", 1);
    assert_eq!(
        audit(&wrong_format),
        "line 1 says format \"raw/0\"; this version reads uptime-ledger-raw-export/1"
    );
    assert_eq!(
        audit(""),
        "the export is empty; its first line is the header with the checkpoint"
    );
    assert!(audit("{}\n").starts_with("line 1 is not a raw export header: missing field"));
    // A checkpoint of another size under the same key: the signature fails.
    let forged = text.replacen("\\n13\\n", "\\n12\\n", 1);
    assert!(audit(&forged).starts_with(
        "the export's checkpoint is not signed by the pinned key: checkpoint signature does not verify"
    ));
}

#[test]
fn any_changed_byte_of_a_bundle_is_refused_or_harmless_never_a_panic() {
    let text = serde_json::to_string(&bundle()).unwrap();
    let mut refused = 0;
    for position in (0..text.len()).step_by(13) {
        let mut bytes = text.clone().into_bytes();
        bytes[position] ^= 0x04;
        let Ok(changed) = String::from_utf8(bytes) else {
            continue;
        };
        if verify_bundle(&changed, Some(&verifier())).is_err() {
            refused += 1;
        }
    }
    // Most positions are in signed or hashed data; a few (the report's figures, an
    // incident's duration_ms) are not proven and may change freely.
    assert!(refused > text.len() / 13 / 2, "{refused}");
}
