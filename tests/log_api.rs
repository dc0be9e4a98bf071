//! The log over real gRPC: checkpoints verify with the published key, roots match the
//! served entries, proofs for random indexes and sizes verify, Subscribe follows the log.

mod common;

use common::process::run as cli;

use common::*;
use rand::{Rng, SeedableRng};
use uptime_ledger::checkpoint::{open_checkpoint, NoteVerifier};
use uptime_ledger::client;
use uptime_ledger::domain::Status;
use uptime_ledger::merkle::{self, Hash};
use uptime_ledger::pb;

/// A JSON array of hex hashes (the HTTP proof routes' form).
fn json_hashes(proof: &serde_json::Value) -> Vec<Hash> {
    proof
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

fn hashes(proof: &[Vec<u8>]) -> Vec<Hash> {
    proof
        .iter()
        .map(|h| h.as_slice().try_into().expect("32-byte hashes"))
        .collect()
}

/// A ledger with a few hundred observations, in several batches (so tiles span levels).
async fn populated() -> TestLedger {
    let mut ledger = TestLedger::start().await;
    ledger.define_service("svc").await;
    ledger.register_probe("p1", &key(1)).await;
    let mut seq = 0;
    for batch in [1usize, 7, 256, 3, 300] {
        let observations = (0..batch)
            .map(|_| {
                seq += 1;
                observation(
                    &key(1),
                    "p1",
                    "svc",
                    seq,
                    T0,
                    if seq % 5 == 0 {
                        Status::Down
                    } else {
                        Status::Up
                    },
                )
            })
            .collect();
        assert!(ledger.submit(observations).await.iter().all(accepted));
    }
    ledger
}

#[tokio::test]
async fn the_checkpoint_verifies_and_matches_the_served_entries() {
    let ledger = populated().await;
    let response = ledger.wait_for_checkpoint().await;
    let verifier: NoteVerifier = response.verifier_key.parse().unwrap();
    assert_eq!(verifier.name(), ORIGIN);
    let checkpoint = open_checkpoint(&response.checkpoint, &verifier).unwrap();
    assert_eq!(checkpoint.tree_size, ledger.tree_size());

    // An independent recomputation from GetEntries bytes.
    let verified = client::verify_log(ledger.channel().await, &verifier)
        .await
        .unwrap();
    assert_eq!(verified.entries.len() as u64, checkpoint.tree_size);
    let leaves: Vec<Hash> = verified
        .entries
        .iter()
        .map(|e| merkle::leaf_hash(e))
        .collect();
    assert_eq!(naive_root(&leaves), checkpoint.root_hash);

    // Every checkpoint stays retrievable at its size.
    let again = ledger
        .log()
        .await
        .get_checkpoint(pb::GetCheckpointRequest {
            tree_size: checkpoint.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.checkpoint, response.checkpoint);
    let genesis_checkpoint = ledger
        .log()
        .await
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        open_checkpoint(&genesis_checkpoint.checkpoint, &verifier)
            .unwrap()
            .tree_size,
        1
    );
    let missing = ledger
        .log()
        .await
        .get_checkpoint(pb::GetCheckpointRequest {
            tree_size: 1_000_000,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => merkle::empty_root(),
        1 => leaves[0],
        n => {
            // RFC 6962: split at the largest power of two smaller than n.
            let split = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            merkle::node_hash(&naive_root(&leaves[..split]), &naive_root(&leaves[split..]))
        }
    }
}

#[tokio::test]
async fn proofs_over_grpc_verify_for_random_indexes_and_sizes() {
    let ledger = populated().await;
    let size = ledger.tree_size();
    let mut log = ledger.log().await;
    let mut entries = Vec::new();
    let mut stream = log
        .get_entries(pb::GetEntriesRequest {
            start: 0,
            end: size,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(message) = stream.message().await.unwrap() {
        entries.push(message.entry);
    }
    let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(6962);
    for _ in 0..64 {
        let tree_size = rng.gen_range(1..=size);
        let index = rng.gen_range(0..tree_size);
        let first = rng.gen_range(1..=tree_size);
        let root = naive_root(&leaves[..tree_size as usize]);

        let inclusion = log
            .get_inclusion_proof(pb::GetInclusionProofRequest { index, tree_size })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(inclusion.leaf_hash, leaves[index as usize].to_vec());
        merkle::verify_inclusion(
            &leaves[index as usize],
            index,
            tree_size,
            &hashes(&inclusion.proof),
            &root,
        )
        .unwrap();

        let consistency = log
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                first,
                second: tree_size,
            })
            .await
            .unwrap()
            .into_inner();
        let first_root = naive_root(&leaves[..first as usize]);
        merkle::verify_consistency(
            first,
            tree_size,
            &first_root,
            &root,
            &hashes(&consistency.proof),
        )
        .unwrap();
    }

    for (request, code) in [
        (
            pb::GetInclusionProofRequest {
                index: size,
                tree_size: size,
            },
            tonic::Code::OutOfRange,
        ),
        (
            pb::GetInclusionProofRequest {
                index: 0,
                tree_size: size + 1,
            },
            tonic::Code::OutOfRange,
        ),
    ] {
        assert_eq!(
            log.get_inclusion_proof(request).await.unwrap_err().code(),
            code
        );
    }
    let bad = log
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            first: 0,
            second: size,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::OutOfRange);
    let beyond = log
        .get_entries(pb::GetEntriesRequest {
            start: 0,
            end: size + 1,
        })
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), tonic::Code::OutOfRange);
}

#[tokio::test]
async fn subscribe_serves_history_then_follows_the_log() {
    let ledger = populated().await;
    let size = ledger.tree_size();
    let mut stream = ledger
        .log()
        .await
        .subscribe(pb::SubscribeRequest { start: size - 2 })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.index, size - 2);
    assert_eq!(stream.message().await.unwrap().unwrap().index, size - 1);

    let acks = ledger
        .submit(vec![observation(
            &key(1),
            "p1",
            "svc",
            10_000,
            T0,
            Status::Down,
        )])
        .await;
    assert!(accepted(&acks[0]));
    let live = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(live.index, acks[0].index);
    let mut entries = ledger
        .log()
        .await
        .get_entries(pb::GetEntriesRequest {
            start: live.index,
            end: live.index + 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        entries.message().await.unwrap().unwrap().entry,
        live.entry,
        "Subscribe serves the stored bytes"
    );
}

#[tokio::test]
async fn proofs_over_http_and_the_cli_verify_against_the_signed_checkpoints() {
    use base64::Engine as _;
    let mut ledger = TestLedger::start().await;
    ledger.define_service("svc").await;
    ledger.register_probe("p1", &key(1)).await;
    let early = ledger.wait_for_checkpoint().await;
    let verifier: NoteVerifier = early.verifier_key.parse().unwrap();
    let observations = (1..=40)
        .map(|seq| observation(&key(1), "p1", "svc", seq, T0, Status::Up))
        .collect();
    assert!(ledger.submit(observations).await.iter().all(accepted));
    let late = ledger.wait_for_checkpoint().await;
    let latest = open_checkpoint(&late.checkpoint, &verifier).unwrap();

    // An entry's bytes and leaf hash, recomputed here.
    let entry = ledger.http_get("/api/v1/entries/20").await.json();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(entry["entry"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        entry["leaf_hash"].as_str().unwrap(),
        hex::encode(merkle::leaf_hash(&bytes))
    );
    // Its inclusion proof leads to the signed root of the latest checkpoint.
    let proof = ledger
        .http_get("/api/v1/entries/20/inclusion-proof")
        .await
        .json();
    let signed = open_checkpoint(proof["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(signed, latest);
    let path = json_hashes(&proof["proof"]);
    merkle::verify_inclusion(
        &merkle::leaf_hash(&bytes),
        20,
        signed.tree_size,
        &path,
        &signed.root_hash,
    )
    .unwrap();
    // The consistency proof between the two checkpoints verifies.
    let consistency = ledger
        .http_get(&format!(
            "/api/v1/consistency-proof?first={}",
            early.tree_size
        ))
        .await
        .json();
    let first =
        open_checkpoint(consistency["first_checkpoint"].as_str().unwrap(), &verifier).unwrap();
    let path = json_hashes(&consistency["proof"]);
    merkle::verify_consistency(
        first.tree_size,
        latest.tree_size,
        &first.root_hash,
        &latest.root_hash,
        &path,
    )
    .unwrap();
    // Bad requests say what is wrong.
    let missing = ledger.http_get("/api/v1/entries/100000").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let bad = ledger.http_get("/api/v1/entries/twenty").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("whole number"), "{}", bad.body);
    // Inside the batch of 40: no checkpoint was signed there.
    let unsigned = ledger
        .http_get(&format!(
            "/api/v1/entries/1/inclusion-proof?tree_size={}",
            latest.tree_size - 1
        ))
        .await;
    assert_eq!(unsigned.status, 404, "{}", unsigned.body);
    assert!(unsigned.body.contains("no checkpoint"), "{}", unsigned.body);

    // The CLI fetches and checks the same proofs, against a pinned key.
    let key = late.verifier_key.as_str();
    let output = cli(&[
        "log",
        "proof",
        "--ledger",
        &ledger.address,
        "--index",
        "20",
        "--verifier-key",
        key,
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "OK: entry 20 is in the log of {} entries",
            latest.tree_size
        )),
        "{stdout}"
    );
    let output = cli(&["log", "proof", "--ledger", &ledger.address, "--index", "20"]).await;
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("pin one obtained out of band"),
        "without a pinned key the CLI says what the proof is worth"
    );
    let from = early.tree_size.to_string();
    let output = cli(&[
        "log",
        "consistency",
        "--ledger",
        &ledger.address,
        "--from",
        &from,
        "--verifier-key",
        key,
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("extends the log of"), "{stdout}");
    // A key that did not sign the checkpoint is refused.
    let other = "other.example/log+00000000+AcHVHoSDvy/rQ6W0pvfHSfz4R0sQS1nnXnT4MoDTKqAN";
    let output = cli(&[
        "log",
        "proof",
        "--ledger",
        &ledger.address,
        "--index",
        "20",
        "--verifier-key",
        other,
    ])
    .await;
    assert!(!output.status.success());
    let output = cli(&[
        "log",
        "proof",
        "--ledger",
        &ledger.address,
        "--index",
        "100000",
    ])
    .await;
    assert!(!output.status.success());
}
