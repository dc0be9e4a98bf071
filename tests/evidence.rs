//! Evidence that outlives the ledger, with the real binary against a real ledger over real
//! gRPC: `report --evidence` writes a bundle that `verify-evidence` accepts after the
//! ledger is stopped and refuses, with the reason, once an entry byte, a proof hash, the
//! checkpoint or the key is changed; `export --raw` audited with `audit --from-export`
//! gives the online audit's verdict and counts, and a tampered export is refused naming
//! the entry. The reference verifier in docs/ (Python) accepts and refuses the same files.

mod common;

use common::process::{failure, run as cli, stdout};

use std::path::Path;

use common::*;
use uptime_ledger::domain::Status;

const MINUTE: i64 = 60_000;

/// `passport` (majority of p1, p2, p3; staleness 90 s): one observation per probe per
/// minute from T0-10m to T0-1m; p1 and p2 see DOWN at T0-5m and T0-4m, so the service is
/// DOWN on [T0-5m, T0-3m). `tax` is defined too, with no observations.
async fn populated() -> (TestLedger, String) {
    let mut ledger = TestLedger::start().await;
    ledger.define_service("passport").await;
    ledger.define_service("tax").await;
    for (probe_id, seed) in [("p1", 11), ("p2", 12), ("p3", 13)] {
        ledger.register_probe(probe_id, &key(seed)).await;
    }
    let mut observations = Vec::new();
    for (seq, minute) in (-10i64..=-1).enumerate() {
        for (probe_id, seed) in [("p1", 11), ("p2", 12), ("p3", 13)] {
            let down = probe_id != "p3" && (minute == -5 || minute == -4);
            observations.push(observation(
                &key(seed),
                probe_id,
                "passport",
                seq as u64 + 1,
                T0 + minute * MINUTE,
                if down { Status::Down } else { Status::Up },
            ));
        }
    }
    assert!(ledger.submit(observations).await.iter().all(accepted));
    let verifier_key = ledger.wait_for_checkpoint().await.verifier_key;
    (ledger, verifier_key)
}

/// Another valid verifier key for the same origin (the ledger's key is seed 1).
fn other_key() -> String {
    let key = uptime_ledger::crypto::PublicKey::from(&common::key(99));
    uptime_ledger::checkpoint::NoteVerifier::new(ORIGIN, key)
        .unwrap()
        .to_string()
}

fn edit_json(path: &Path, to: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut bundle);
    std::fs::write(to, serde_json::to_string_pretty(&bundle).unwrap()).unwrap();
}

/// The carried entry with this index.
fn entry_mut(bundle: &mut serde_json::Value, index: u64) -> &mut serde_json::Value {
    bundle["entries"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|entry| entry["index"] == index)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evidence_bundle_is_verified_offline_and_every_tampering_is_refused() {
    let (mut ledger, verifier_key) = populated().await;
    let tree_size = ledger.tree_size();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passport.evidence.json");
    let path = file.to_str().unwrap();
    let window = "2026-11-26T23:45:00Z..2026-11-27T00:05:00Z";
    let written = stdout(
        &cli(&[
            "report",
            "--ledger",
            &ledger.address,
            "--service",
            "passport",
            "--window",
            window,
            "--evidence",
            path,
            "--verifier-key",
            &verifier_key,
        ])
        .await,
    );
    assert!(written.contains("1 incident(s)"), "{written}");
    assert!(
        written.contains(&format!("checkpoint of {ORIGIN} at tree size {tree_size}")),
        "{written}"
    );
    // An undefined service is refused naming the defined ones.
    let refused = failure(
        &cli(&[
            "report",
            "--ledger",
            &ledger.address,
            "--service",
            "pasport",
            "--evidence",
            path,
            "--verifier-key",
            &verifier_key,
        ])
        .await,
    );
    assert!(
        refused.contains("service \"pasport\" is not defined; the log defines: passport, tax"),
        "{refused}"
    );
    ledger.stop().await;

    // With the ledger gone.
    let verified = stdout(&cli(&["verify-evidence", path, "--verifier-key", &verifier_key]).await);
    assert!(
        verified.contains(&format!(
            "evidence verified: {ORIGIN} at tree size {tree_size}"
        )),
        "{verified}"
    );
    // p1 and p2 each saw DOWN twice: four observations, at T0-5m and T0-4m.
    assert!(
        verified.contains(
            "1. DOWN from 2026-11-26T23:55:00.000Z until 2026-11-26T23:57:00.000Z: 4 signed DOWN observations by p1, p2, observed 2026-11-26T23:55:00.000Z to 2026-11-26T23:56:00.000Z"
        ),
        "{verified}"
    );
    assert!(verified.contains("What it cannot prove:"), "{verified}");
    assert!(verified.contains("export --raw"), "{verified}");
    let unpinned = stdout(&cli(&["verify-evidence", path]).await);
    assert!(
        unpinned.contains("Warning: no --verifier-key given"),
        "{unpinned}"
    );

    let tampered = dir.path().join("tampered.json");
    let tampered_path = tampered.to_str().unwrap();
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let observation = bundle["incidents"][0]["observations"][0].as_u64().unwrap();
    let refusal = |edit: Box<dyn FnOnce(&mut serde_json::Value)>| {
        edit_json(&file, &tampered, edit);
        async {
            failure(
                &cli(&[
                    "verify-evidence",
                    tampered_path,
                    "--verifier-key",
                    &verifier_key,
                ])
                .await,
            )
        }
    };

    // An entry byte: the observation's detail text changed in its stored bytes.
    let error = refusal(Box::new(move |bundle| {
        let entry = entry_mut(bundle, observation);
        let mut bytes = base64_decode(entry["entry"].as_str().unwrap());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        entry["entry"] = base64_encode(&bytes).into();
    }))
    .await;
    assert!(
        error.contains(&format!("entry {observation}: its inclusion proof does not lead to the checkpoint's root (tree size {tree_size})")),
        "{error}"
    );
    // A proof hash.
    let error = refusal(Box::new(move |bundle| {
        entry_mut(bundle, observation)["inclusion_proof"][0] = hex::encode([1u8; 32]).into();
    }))
    .await;
    assert!(
        error.contains(&format!(
            "entry {observation}: its inclusion proof does not lead"
        )),
        "{error}"
    );
    // The checkpoint: another tree size under the same signature.
    let error = refusal(Box::new(move |bundle| {
        let note = bundle["checkpoint"].as_str().unwrap().replacen(
            &format!("\n{tree_size}\n"),
            &format!("\n{}\n", tree_size + 1),
            1,
        );
        bundle["checkpoint"] = note.into();
    }))
    .await;
    assert!(
        error.contains("the checkpoint does not verify with key")
            && error.contains("checkpoint signature does not verify with key"),
        "{error}"
    );
    // The key: the file's key swapped for another, and another key pinned.
    let other = other_key();
    let swapped = other.clone();
    let error = refusal(Box::new(move |bundle| {
        bundle["verifier_key"] = swapped.into();
    }))
    .await;
    assert!(
        error.contains(&format!(
            "the file was checked against key {other}, not the pinned key {verifier_key}"
        )),
        "{error}"
    );
    let error = failure(&cli(&["verify-evidence", path, "--verifier-key", &other]).await);
    assert!(
        error.contains(&format!(
            "the file was checked against key {verifier_key}, not the pinned key {other}"
        )),
        "{error}"
    );
    // An observation dropped: the incident names an entry the file does not carry.
    let error = refusal(Box::new(move |bundle| {
        bundle["entries"]
            .as_array_mut()
            .unwrap()
            .retain(|entry| entry["index"] != observation);
    }))
    .await;
    assert!(
        error.contains(&format!(
            "the file names entry {observation} as a DOWN observation behind incident 1"
        )),
        "{error}"
    );

    reference_verifier(&file, &tampered, &verifier_key);
}

/// The Python reference verifier of docs/evidence.md accepts the bundle and refuses a
/// changed entry byte; skipped (and said so) where python3 or `cryptography` is missing.
fn reference_verifier(good: &Path, tampered: &Path, verifier_key: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/verify_evidence.py");
    let has_cryptography = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_cryptography {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with cryptography is missing under CI: .ci/run installs it with pip"
        );
        say_skipped(
            "reference_verifier",
            "python3 with the cryptography package is not installed",
        );
        return;
    }
    let run = |file: &Path| {
        std::process::Command::new("python3")
            .args([script, file.to_str().unwrap(), verifier_key])
            .output()
            .unwrap()
    };
    let accepted = run(good);
    assert!(
        accepted.status.success(),
        "{}{}",
        String::from_utf8_lossy(&accepted.stdout),
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("OK"));
    edit_json(good, tampered, |bundle| {
        let entry = &mut bundle["entries"][1];
        let mut bytes = base64_decode(entry["entry"].as_str().unwrap());
        bytes[0] ^= 1;
        entry["entry"] = base64_encode(&bytes).into();
    });
    let refused = run(tampered);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("inclusion proof"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_of_a_raw_export_equals_the_online_audit() {
    let (mut ledger, verifier_key) = populated().await;
    let online = stdout(
        &cli(&[
            "audit",
            "--ledger",
            &ledger.address,
            "--verifier-key",
            &verifier_key,
        ])
        .await,
    );
    let export = stdout(
        &cli(&[
            "export",
            "--ledger",
            &ledger.address,
            "--raw",
            "--verifier-key",
            &verifier_key,
        ])
        .await,
    );
    ledger.stop().await;
    let tree_size = ledger.tree_size();
    assert_eq!(export.lines().count() as u64, tree_size + 1);
    let header: serde_json::Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "uptime-ledger-raw-export/1");
    assert_eq!(header["verifier_key"], verifier_key.as_str());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.jsonl");
    std::fs::write(&file, &export).unwrap();
    let path = file.to_str().unwrap();
    let offline = stdout(
        &cli(&[
            "audit",
            "--from-export",
            path,
            "--verifier-key",
            &verifier_key,
        ])
        .await,
    );
    // The verdict, the tree, the counts: line for line.
    let head = |text: &str| text.lines().take(3).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(head(&offline), head(&online), "{offline}\n{online}");
    assert!(
        offline.contains("no server's reports were compared"),
        "{offline}"
    );

    // One character of one entry's bytes changed.
    let mut lines: Vec<String> = export.lines().map(str::to_owned).collect();
    let mut entry: serde_json::Value = serde_json::from_str(&lines[10]).unwrap();
    let mut bytes = base64_decode(entry["entry"].as_str().unwrap());
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    entry["entry"] = base64_encode(&bytes).into();
    lines[10] = entry.to_string();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let error = failure(
        &cli(&[
            "audit",
            "--from-export",
            path,
            "--verifier-key",
            &verifier_key,
        ])
        .await,
    );
    assert!(
        error.contains("audit failed: entry 9: the signature of probe ")
            && error.contains("does not verify; and the "),
        "{error}"
    );
    // Pinned to another key.
    let error = failure(
        &cli(&[
            "audit",
            "--from-export",
            path,
            "--verifier-key",
            &other_key(),
        ])
        .await,
    );
    assert!(
        error.contains(&format!(
            "the export was verified against key {verifier_key}, not the pinned key"
        )),
        "{error}"
    );
}
