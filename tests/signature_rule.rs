//! The one signature rule (DESIGN.md "Which signatures are valid"): the public edge-case
//! vectors judged by it, signatures that only the cofactored equation accepts refused
//! alone and inside batches of honest ones (as a pure function and over real `Submit` and
//! `SubmitStream`, with nothing stored), and each verdict the same whatever batch it is in.

mod common;

use std::time::Duration;

use proptest::prelude::*;

use common::forge::{
    satisfies_cofactored_equation, torsioned_observation, torsioned_signature, TORSION_OF_ORDER,
};
use common::*;
use uptime_ledger::crypto::{self, PublicKey, SigningContext};
use uptime_ledger::domain::{
    AdminCommand, AdminKey, Command, Genesis, ProbeId, Quorum, RejectReason, ServiceId,
    ServiceSpec, Status,
};
use uptime_ledger::entry;
use uptime_ledger::log::{verify_batches, verify_envelopes, Envelope, Registry};
use uptime_ledger::pb;

fn hex_bytes(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

/// The rule's verdict on a raw (key, message, signature).
fn rule(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    PublicKey::from_bytes(key).is_ok_and(|key| key.verify_message(message, signature))
}

#[test]
fn cctv_vectors_are_valid_exactly_when_they_have_no_flag() {
    let vectors: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string("testdata/ed25519/ed25519vectors.json").unwrap(),
    )
    .unwrap();
    assert_eq!(vectors.len(), 914);
    let mut valid = 0;
    for vector in &vectors {
        let flags: Vec<&str> = vector["flags"]
            .as_array()
            .map(|flags| flags.iter().map(|f| f.as_str().unwrap()).collect())
            .unwrap_or_default();
        let verdict = rule(
            &hex_bytes(vector["key"].as_str().unwrap()),
            vector["msg"].as_str().unwrap().as_bytes(),
            &hex_bytes(vector["sig"].as_str().unwrap()),
        );
        assert_eq!(
            verdict,
            flags.is_empty(),
            "vector {} with flags {flags:?}",
            vector["number"]
        );
        valid += usize::from(verdict);
    }
    assert_eq!(valid, 1, "the file has one vector without edge cases");
}

#[test]
fn speccheck_cases_are_all_refused_and_case_3_by_the_key_rule() {
    let cases: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string("testdata/ed25519/speccheck-cases.json").unwrap(),
    )
    .unwrap();
    assert_eq!(cases.len(), 12);
    for (number, case) in cases.iter().enumerate() {
        let key = hex_bytes(case["pub_key"].as_str().unwrap());
        let message = hex_bytes(case["message"].as_str().unwrap());
        let signature = hex_bytes(case["signature"].as_str().unwrap());
        assert!(!rule(&key, &message, &signature), "speccheck case {number}");
    }
    // Case 3 verifies under both equations; only its key (with a small-order component)
    // makes it invalid, and the key rule says so.
    let case = &cases[3];
    let key = hex_bytes(case["pub_key"].as_str().unwrap());
    assert_eq!(
        PublicKey::from_bytes(&key).unwrap_err(),
        crypto::WeakKey::MixedOrder
    );
    let dalek = ed25519_dalek::VerifyingKey::from_bytes(&key.try_into().unwrap()).unwrap();
    let signature =
        ed25519_dalek::Signature::from_slice(&hex_bytes(case["signature"].as_str().unwrap()))
            .unwrap();
    assert!(dalek
        .verify_strict(&hex_bytes(case["message"].as_str().unwrap()), &signature)
        .is_ok());
}

/// A registry with service `svc` and probes `p0`…`p3` (keys 40…43).
fn registry() -> Registry {
    let admin = key(30);
    let mut registry = Registry::new(Genesis {
        origin: "test.example/log".into(),
        ledger_public_key: PublicKey::from(&key(31)),
        admin_keys: vec![AdminKey {
            name: "admin".into(),
            public_key: PublicKey::from(&admin),
        }],
        max_lateness: Duration::from_secs(3600),
        max_skew: Duration::from_secs(30),
        admin_threshold: 1,
        previous_log: None,
    });
    let mut commands = vec![Command::DefineService(ServiceSpec {
        service_id: ServiceId::parse("svc").unwrap(),
        name: "Service".into(),
        agency: "Agency".into(),
        slo_target: 0.99,
        quorum: Quorum::Majority,
        staleness: Duration::from_secs(90),
    })];
    for probe in 0..4u8 {
        commands.push(Command::RegisterProbe {
            probe_id: ProbeId::parse(&format!("p{probe}")).unwrap(),
            public_key: PublicKey::from(&key(40 + probe)),
            location: String::new(),
        });
    }
    for (seq, command) in commands.into_iter().enumerate() {
        let command = AdminCommand {
            seq: seq as u64 + 1,
            issued_at: T0,
            command,
        };
        let at = uptime_ledger::governance::Position {
            index: seq as u64 + 1,
            received_at: T0,
        };
        registry.apply(at, "admin", &entry::encode_command(&command), &[], &command);
    }
    registry
}

/// Observation `n` of probe `p{n % 4}`, honestly signed.
fn honest(n: u64) -> pb::SignedObservation {
    let probe = (n % 4) as u8;
    observation(
        &key(40 + probe),
        &format!("p{probe}"),
        "svc",
        n + 1,
        T0,
        Status::Up,
    )
}

/// Observation `n`, signed with `R` carrying a point of order `order`.
fn torsioned(n: u64, order: u32) -> pb::SignedObservation {
    let torsion = TORSION_OF_ORDER
        .iter()
        .find(|(o, _)| *o == order)
        .unwrap()
        .1;
    torsioned_observation(&key(40 + (n % 4) as u8), &honest(n), torsion, n)
}

fn envelope(signed: &pb::SignedObservation) -> Envelope {
    Envelope {
        body: signed.body.clone(),
        signature: signed.signature.clone(),
    }
}

fn reasons(
    verdicts: Vec<
        Result<uptime_ledger::log::VerifiedObservation, uptime_ledger::domain::Rejection>,
    >,
) -> Vec<Option<RejectReason>> {
    verdicts
        .into_iter()
        .map(|verdict| verdict.err().map(|rejection| rejection.reason))
        .collect()
}

/// The forged signatures are real cofactored-valid signatures, and hash-derived batch
/// verification (ed25519-dalek's `verify_batch`) accepts some of them: the tests below
/// would catch a verifier that let a batch decide.
#[test]
fn the_forgeries_fool_batch_verification() {
    let probe = key(40);
    let mut accepted_by_batch = 0;
    for nonce in 0..64u64 {
        let honest: Vec<pb::SignedObservation> = (0..15).map(|n| honest(n * 4)).collect();
        let message = crypto::signed_message(SigningContext::Observation, &honest[0].body);
        let forged = torsioned_signature(&probe, &message, 4, nonce);
        assert!(satisfies_cofactored_equation(&probe, &message, &forged));
        assert!(!PublicKey::from(&probe).verify_message(&message, &forged));
        let mut messages: Vec<Vec<u8>> = honest
            .iter()
            .map(|o| crypto::signed_message(SigningContext::Observation, &o.body))
            .collect();
        let mut signatures: Vec<ed25519_dalek::Signature> = honest
            .iter()
            .map(|o| ed25519_dalek::Signature::from_slice(&o.signature).unwrap())
            .collect();
        messages.push(message);
        signatures.push(ed25519_dalek::Signature::from_bytes(&forged));
        let keys = vec![probe.verifying_key(); messages.len()];
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        accepted_by_batch +=
            usize::from(ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok());
    }
    assert!(
        accepted_by_batch > 0,
        "verify_batch accepted none of 64 order-2 forgeries"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Each signature's verdict alone equals its verdict inside any batch, and a torsioned
    /// signature is BAD_SIGNATURE wherever it stands.
    #[test]
    fn a_verdict_is_the_same_alone_and_in_any_batch(
        size in 1usize..=256,
        forged in proptest::collection::vec((any::<proptest::sample::Index>(), prop_oneof![Just(2u32), Just(4), Just(8)]), 1..4),
        split in any::<proptest::sample::Index>(),
    ) {
        let registry = registry();
        let mut batch: Vec<pb::SignedObservation> = (0..size as u64).map(honest).collect();
        let mut forged_at = Vec::new();
        for (position, order) in forged {
            let position = position.index(batch.len() + 1);
            batch.insert(position, torsioned(1000 + position as u64, order));
            forged_at.iter_mut().for_each(|p: &mut usize| if *p >= position { *p += 1 });
            forged_at.push(position);
        }
        let envelopes: Vec<Envelope> = batch.iter().map(envelope).collect();
        let alone: Vec<Option<RejectReason>> = envelopes
            .iter()
            .map(|e| reasons(verify_envelopes(&registry, vec![e.clone()])).pop().unwrap())
            .collect();
        for (position, verdict) in alone.iter().enumerate() {
            if forged_at.contains(&position) {
                prop_assert_eq!(*verdict, Some(RejectReason::BadSignature));
            } else {
                prop_assert_eq!(*verdict, None);
            }
        }
        prop_assert_eq!(reasons(verify_envelopes(&registry, envelopes.clone())), alone.clone());
        // Split in two requests taken together, as the verification pool takes them.
        let split = split.index(envelopes.len() + 1);
        let together: Vec<Option<RejectReason>> = verify_batches(vec![
            (&registry, envelopes[..split].to_vec()),
            (&registry, envelopes[split..].to_vec()),
        ])
        .into_iter()
        .flat_map(reasons)
        .collect();
        prop_assert_eq!(together, alone);
    }
}

/// Batch sizes around every threshold the ingest path has had, up to 256.
const BATCH_SIZES: [usize; 9] = [1, 2, 7, 8, 9, 31, 64, 255, 256];

/// Honest batches of `size` with a forgery of each order at pseudo-random positions.
fn mixed_batch(size: usize, base: u64) -> (Vec<pb::SignedObservation>, Vec<usize>) {
    let mut batch: Vec<pb::SignedObservation> =
        (0..size as u64).map(|n| honest(base + n)).collect();
    let mut forged_at: Vec<usize> = Vec::new();
    for (i, (order, _)) in TORSION_OF_ORDER.iter().enumerate() {
        let position = ((base as usize).wrapping_mul(7919) + i * 104_729) % (batch.len() + 1);
        batch.insert(position, torsioned(base + 10_000 + i as u64, *order));
        forged_at.iter_mut().for_each(|p| {
            if *p >= position {
                *p += 1
            }
        });
        forged_at.push(position);
    }
    (batch, forged_at)
}

async fn ledger_with_probes() -> TestLedger {
    let mut ledger = TestLedger::start().await;
    ledger.define_service("svc").await;
    for probe in 0..4u8 {
        ledger
            .register_probe(&format!("p{probe}"), &key(40 + probe))
            .await;
    }
    ledger
}

/// Checks the acks of a mixed batch: forgeries BAD_SIGNATURE, the rest ACCEPTED, and
/// the log grew by exactly the honest ones.
fn check_acks(acks: &[pb::Ack], forged_at: &[usize], before: u64, after: u64) {
    for (position, ack) in acks.iter().enumerate() {
        if forged_at.contains(&position) {
            assert_eq!(rejected_for(ack), pb::RejectReason::BadSignature, "{ack:?}");
        } else {
            assert!(accepted(ack), "honest neighbour at {position}: {ack:?}");
        }
    }
    assert_eq!(
        after - before,
        (acks.len() - forged_at.len()) as u64,
        "only the honest observations are stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_are_refused_over_submit_and_nothing_of_them_is_stored() {
    let ledger = ledger_with_probes().await;
    let mut base = 0;
    for size in BATCH_SIZES {
        let (batch, forged_at) = mixed_batch(size, base);
        base += 100_000;
        let before = ledger.tree_size();
        let acks = ledger.submit(batch).await;
        check_acks(&acks, &forged_at, before, ledger.tree_size());
    }
    // A forgery alone.
    let before = ledger.tree_size();
    let acks = ledger.submit(vec![torsioned(5_000_000, 8)]).await;
    check_acks(&acks, &[0], before, ledger.tree_size());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_are_refused_over_submit_stream_and_nothing_of_them_is_stored() {
    let ledger = ledger_with_probes().await;
    let mut base = 0;
    for size in BATCH_SIZES {
        let (batch, forged_at) = mixed_batch(size, base);
        base += 100_000;
        let before = ledger.tree_size();
        let requests: Vec<pb::SubmitStreamRequest> = batch
            .into_iter()
            .map(|observation| pb::SubmitStreamRequest {
                observation: Some(observation),
            })
            .collect();
        let mut responses = ledger
            .ingest()
            .await
            .submit_stream(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut acks = Vec::new();
        while let Some(response) = responses.message().await.unwrap() {
            acks.push(response.ack.unwrap());
        }
        check_acks(&acks, &forged_at, before, ledger.tree_size());
    }
}
