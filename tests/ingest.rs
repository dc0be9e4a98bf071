//! Ingest over real gRPC: every rejection reason (typed, nothing stored), duplicates,
//! equivocation, mixed batches, streaming, restarts.

mod common;

use common::*;
use prost::Message;
use uptime_ledger::domain::{Command, ProbeId, Status};
use uptime_ledger::pb;
use uptime_ledger::pb::RejectReason;

/// A ledger with service `svc`, probe `p1` (key 1) and revoked probe `gone` (key 2).
async fn ledger_with_probe() -> TestLedger {
    let mut ledger = TestLedger::start().await;
    ledger.define_service("svc").await;
    ledger.register_probe("p1", &key(1)).await;
    ledger.register_probe("gone", &key(2)).await;
    ledger
        .apply(Command::RevokeProbe {
            probe_id: ProbeId::parse("gone").unwrap(),
            reason: "decommissioned".into(),
        })
        .await
        .unwrap();
    ledger
}

/// Submits one observation, expects the rejection `reason`, and checks nothing was stored.
async fn assert_rejected(ledger: &TestLedger, signed: pb::SignedObservation, reason: RejectReason) {
    let before = ledger.tree_size();
    let acks = ledger.submit(vec![signed]).await;
    assert_eq!(acks.len(), 1);
    assert_eq!(rejected_for(&acks[0]), reason, "{}", acks[0].message);
    assert!(!acks[0].message.is_empty(), "a rejection explains itself");
    assert_eq!(
        ledger.tree_size(),
        before,
        "a rejected observation stores nothing"
    );
}

#[tokio::test]
async fn every_rejection_reason_is_typed_and_stores_nothing() {
    let ledger = ledger_with_probe().await;
    let p1 = key(1);

    // INVALID: undecodable body, bad id, unspecified status, oversized detail.
    assert_rejected(
        &ledger,
        pb::SignedObservation {
            body: vec![0xff; 9],
            signature: vec![0; 64],
        },
        RejectReason::Invalid,
    )
    .await;
    let mut bad_id = pb::Observation::decode(
        observation(&p1, "p1", "svc", 1, T0, Status::Up)
            .body
            .as_slice(),
    )
    .unwrap();
    bad_id.probe_id = "P1 upper".into();
    assert_rejected(&ledger, sign_raw(&p1, &bad_id), RejectReason::Invalid).await;
    let mut unspecified = bad_id.clone();
    unspecified.probe_id = "p1".into();
    unspecified.status = pb::Status::Unspecified as i32;
    assert_rejected(&ledger, sign_raw(&p1, &unspecified), RejectReason::Invalid).await;
    let mut long_detail = unspecified.clone();
    long_detail.status = pb::Status::Up as i32;
    long_detail.detail = "x".repeat(257);
    assert_rejected(&ledger, sign_raw(&p1, &long_detail), RejectReason::Invalid).await;

    // UNKNOWN_PROBE, PROBE_REVOKED, UNKNOWN_SERVICE.
    assert_rejected(
        &ledger,
        observation(&key(9), "ghost", "svc", 1, T0, Status::Up),
        RejectReason::UnknownProbe,
    )
    .await;
    assert_rejected(
        &ledger,
        observation(&key(2), "gone", "svc", 1, T0, Status::Up),
        RejectReason::ProbeRevoked,
    )
    .await;
    assert_rejected(
        &ledger,
        observation(&p1, "p1", "nope", 1, T0, Status::Up),
        RejectReason::UnknownService,
    )
    .await;

    // BAD_SIGNATURE: another key, a truncated signature, a command-context signature.
    assert_rejected(
        &ledger,
        observation(&key(3), "p1", "svc", 1, T0, Status::Up),
        RejectReason::BadSignature,
    )
    .await;
    let mut short = observation(&p1, "p1", "svc", 1, T0, Status::Up);
    short.signature.truncate(63);
    assert_rejected(&ledger, short, RejectReason::BadSignature).await;
    let mut wrong_context = observation(&p1, "p1", "svc", 1, T0, Status::Up);
    wrong_context.signature = uptime_ledger::crypto::sign(
        &p1,
        uptime_ledger::crypto::SigningContext::Command,
        &wrong_context.body,
    )
    .to_vec();
    assert_rejected(&ledger, wrong_context, RejectReason::BadSignature).await;

    // TOO_LATE / TOO_EARLY with the default bounds (1 h, 30 s), boundaries included.
    let hour = 3_600_000;
    assert_rejected(
        &ledger,
        observation(&p1, "p1", "svc", 1, T0 - hour - 1, Status::Up),
        RejectReason::TooLate,
    )
    .await;
    assert_rejected(
        &ledger,
        observation(&p1, "p1", "svc", 1, T0 + 30_001, Status::Up),
        RejectReason::TooEarly,
    )
    .await;
    let acks = ledger
        .submit(vec![
            observation(&p1, "p1", "svc", 1, T0 - hour, Status::Up),
            observation(&p1, "p1", "svc", 2, T0 + 30_000, Status::Up),
        ])
        .await;
    assert!(
        acks.iter().all(accepted),
        "the bounds themselves are accepted: {acks:?}"
    );

    // Sequence: accepted seq 10; then STALE_SEQ for an unseen lower seq, EQUIVOCATION for
    // other bytes at seq 10, DUPLICATE (with the original index) for the same bytes.
    let original = observation(&p1, "p1", "svc", 10, T0, Status::Up);
    let acks = ledger.submit(vec![original.clone()]).await;
    assert!(accepted(&acks[0]));
    let index = acks[0].index;
    assert_rejected(
        &ledger,
        observation(&p1, "p1", "svc", 5, T0, Status::Up),
        RejectReason::StaleSeq,
    )
    .await;
    assert_rejected(
        &ledger,
        observation(&p1, "p1", "svc", 10, T0, Status::Down),
        RejectReason::Equivocation,
    )
    .await;
    let before = ledger.tree_size();
    let acks = ledger.submit(vec![original]).await;
    assert_eq!(acks[0].status, pb::AckStatus::Duplicate as i32);
    assert_eq!(acks[0].index, index);
    assert_eq!(ledger.tree_size(), before);
}

fn sign_raw(
    key: &ed25519_dalek::SigningKey,
    observation: &pb::Observation,
) -> pb::SignedObservation {
    let body = observation.encode_to_vec();
    let signature = uptime_ledger::crypto::sign(
        key,
        uptime_ledger::crypto::SigningContext::Observation,
        &body,
    )
    .to_vec();
    pb::SignedObservation { body, signature }
}

#[tokio::test]
async fn a_mixed_batch_is_judged_event_by_event_in_order() {
    let ledger = ledger_with_probe().await;
    let p1 = key(1);
    let first = observation(&p1, "p1", "svc", 1, T0, Status::Up);
    let before = ledger.tree_size();
    // Enough events to take the batch-verification path (with bad signatures mixed in).
    let mut batch = vec![
        first.clone(),
        observation(&key(9), "ghost", "svc", 2, T0, Status::Up),
        first.clone(),
        observation(&p1, "p1", "svc", 1, T0, Status::Down),
        observation(&key(4), "p1", "svc", 3, T0, Status::Down),
    ];
    for seq in 4..20 {
        batch.push(observation(&p1, "p1", "svc", seq, T0, Status::Down));
    }
    let acks = ledger.submit(batch).await;
    assert_eq!(acks.len(), 21);
    assert!(accepted(&acks[0]));
    assert_eq!(rejected_for(&acks[1]), RejectReason::UnknownProbe);
    assert_eq!(
        acks[2].status,
        pb::AckStatus::Duplicate as i32,
        "a resend inside the same batch is a duplicate"
    );
    assert_eq!(acks[2].index, acks[0].index);
    assert_eq!(rejected_for(&acks[3]), RejectReason::Equivocation);
    assert_eq!(rejected_for(&acks[4]), RejectReason::BadSignature);
    for (offset, ack) in acks[5..].iter().enumerate() {
        assert!(accepted(ack), "{ack:?}");
        assert_eq!(
            ack.index,
            acks[0].index + 1 + offset as u64,
            "accepted events get consecutive indexes"
        );
    }
    assert_eq!(ledger.tree_size(), before + 17);
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_whole() {
    let ledger = ledger_with_probe().await;
    let p1 = key(1);
    let observations = (0..uptime_ledger::rpc::MAX_SUBMIT_BATCH as u64 + 1)
        .map(|seq| observation(&p1, "p1", "svc", seq + 1, T0, Status::Up))
        .collect();
    let before = ledger.tree_size();
    let status = ledger
        .ingest()
        .await
        .submit(pb::SubmitRequest { observations })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(ledger.tree_size(), before);
}

#[tokio::test]
async fn submit_stream_acknowledges_in_order() {
    let ledger = ledger_with_probe().await;
    let p1 = key(1);
    let mut requests = Vec::new();
    for seq in 1..=300u64 {
        requests.push(pb::SubmitStreamRequest {
            observation: Some(observation(&p1, "p1", "svc", seq, T0, Status::Up)),
        });
    }
    // Every 50th is a resend of the previous one: a duplicate, in place.
    requests.insert(150, requests[149].clone());
    requests.push(pb::SubmitStreamRequest { observation: None });
    let mut acks = ledger
        .ingest()
        .await
        .submit_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    while let Some(response) = acks.message().await.unwrap() {
        received.push(response.ack.unwrap());
    }
    assert_eq!(received.len(), 302);
    let first = received[0].index;
    for (i, ack) in received[..150].iter().enumerate() {
        assert!(accepted(ack));
        assert_eq!(ack.index, first + i as u64);
    }
    assert_eq!(received[150].status, pb::AckStatus::Duplicate as i32);
    assert_eq!(received[150].index, received[149].index);
    for (i, ack) in received[151..301].iter().enumerate() {
        assert!(accepted(ack));
        assert_eq!(ack.index, first + 150 + i as u64);
    }
    assert_eq!(
        rejected_for(&received[301]),
        RejectReason::Invalid,
        "an empty request is invalid, not fatal"
    );
}

#[tokio::test]
async fn restart_keeps_seq_state_and_the_same_tree() {
    let mut ledger = ledger_with_probe().await;
    let p1 = key(1);
    let acks = ledger
        .submit(
            (1..=40)
                .map(|seq| observation(&p1, "p1", "svc", seq, T0, Status::Up))
                .collect(),
        )
        .await;
    assert!(acks.iter().all(accepted));
    let size = ledger.tree_size();
    let root = ledger.ledger().root(size).unwrap();

    ledger.restart().await;
    assert_eq!(ledger.tree_size(), size);
    assert_eq!(ledger.ledger().root(size).unwrap(), root);

    let resend = ledger
        .submit(vec![observation(&p1, "p1", "svc", 7, T0, Status::Up)])
        .await;
    assert_eq!(resend[0].status, pb::AckStatus::Duplicate as i32);
    assert_eq!(resend[0].index, acks[6].index);
    let equivocation = ledger
        .submit(vec![observation(&p1, "p1", "svc", 40, T0, Status::Down)])
        .await;
    assert_eq!(rejected_for(&equivocation[0]), RejectReason::Equivocation);
    let revoked = ledger
        .submit(vec![observation(&key(2), "gone", "svc", 1, T0, Status::Up)])
        .await;
    assert_eq!(
        rejected_for(&revoked[0]),
        RejectReason::ProbeRevoked,
        "the registry is rebuilt from the log"
    );

    ledger.clock.advance(1000);
    let more = ledger
        .submit(vec![observation(
            &p1,
            "p1",
            "svc",
            41,
            T0 + 1000,
            Status::Down,
        )])
        .await;
    assert!(accepted(&more[0]));
    assert_eq!(more[0].index, size, "ingest continues at the next index");
    let checkpoint = ledger.wait_for_checkpoint().await;
    assert_eq!(checkpoint.tree_size, size + 1);
    let proof = ledger
        .log()
        .await
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            first: size,
            second: size + 1,
        })
        .await
        .unwrap()
        .into_inner();
    let proof: Vec<[u8; 32]> = proof
        .proof
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect();
    let new_root = ledger.ledger().root(size + 1).unwrap();
    uptime_ledger::merkle::verify_consistency(size, size + 1, &root, &new_root, &proof).unwrap();
}

#[tokio::test]
async fn an_oversized_request_is_resource_exhausted_and_stores_nothing() {
    let ledger = ledger_with_probe().await;
    let before = ledger.tree_size();
    let huge = pb::SignedObservation {
        body: vec![0; uptime_ledger::rpc::MAX_DECODE_BYTES + 1],
        signature: vec![0; 64],
    };
    let status = ledger
        .ingest()
        .await
        .submit(pb::SubmitRequest {
            observations: vec![huge],
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::ResourceExhausted,
        "{}",
        status.message()
    );
    assert_eq!(ledger.tree_size(), before);
    // The server is fine afterwards.
    let acks = ledger
        .submit(vec![observation(&key(1), "p1", "svc", 1, T0, Status::Up)])
        .await;
    assert!(accepted(&acks[0]));
}

/// The dedupe index keeps a probe's (seq, index) pairs in stored blocks of 64 and the newest
/// ones in memory (rebuilt from the log on start): every earlier seq is found wherever it
/// lives — in a block, in the in-memory tail, earlier in the same batch — before and after a
/// restart, and a seq in a gap is STALE_SEQ.
#[tokio::test]
async fn earlier_seqs_are_found_in_blocks_in_the_tail_and_in_the_batch_across_restarts() {
    let mut ledger = ledger_with_probe().await;
    let p1 = key(1);
    // Odd seqs 1..=299: 150 observations, so two full blocks of 64 and a tail of 22, sent
    // in batches that do not line up with the blocks.
    let seqs: Vec<u64> = (1..300).step_by(2).collect();
    let mut index_of = std::collections::HashMap::new();
    for batch in seqs.chunks(37) {
        let acks = ledger
            .submit(
                batch
                    .iter()
                    .map(|&seq| observation(&p1, "p1", "svc", seq, T0, Status::Up))
                    .collect(),
            )
            .await;
        for (&seq, ack) in batch.iter().zip(&acks) {
            assert!(accepted(ack), "seq {seq}: {}", ack.message);
            index_of.insert(seq, ack.index);
        }
    }

    for restarted in [false, true] {
        if restarted {
            ledger.restart().await;
        }
        let size = ledger.tree_size();
        // The first block, the second block, the tail.
        for seq in [1, 127, 129, 255, 257, 299] {
            let acks = ledger
                .submit(vec![observation(&p1, "p1", "svc", seq, T0, Status::Up)])
                .await;
            assert_eq!(
                acks[0].status,
                pb::AckStatus::Duplicate as i32,
                "seq {seq} (restarted: {restarted}): {}",
                acks[0].message
            );
            assert_eq!(acks[0].index, index_of[&seq], "seq {seq}");
            let changed = ledger
                .submit(vec![observation(&p1, "p1", "svc", seq, T0, Status::Down)])
                .await;
            assert_eq!(
                rejected_for(&changed[0]),
                RejectReason::Equivocation,
                "seq {seq}"
            );
            let gap = ledger
                .submit(vec![observation(&p1, "p1", "svc", seq + 1, T0, Status::Up)])
                .await;
            if seq < 299 {
                assert_eq!(
                    rejected_for(&gap[0]),
                    RejectReason::StaleSeq,
                    "seq {}",
                    seq + 1
                );
            } else if !restarted {
                assert!(accepted(&gap[0]), "300 is above the last seq");
                index_of.insert(300, gap[0].index);
            } else {
                assert_eq!(
                    gap[0].status,
                    pb::AckStatus::Duplicate as i32,
                    "300, from the tail rebuilt on start"
                );
                assert_eq!(gap[0].index, index_of[&300]);
            }
        }
        if !restarted {
            assert_eq!(ledger.tree_size(), size + 1, "only seq 300 was stored");
        } else {
            assert_eq!(ledger.tree_size(), size, "nothing was stored");
        }
    }

    // Within one batch: a new seq, then its resend and a changed copy.
    let acks = ledger
        .submit(vec![
            observation(&p1, "p1", "svc", 301, T0, Status::Up),
            observation(&p1, "p1", "svc", 301, T0, Status::Up),
            observation(&p1, "p1", "svc", 301, T0, Status::Down),
        ])
        .await;
    assert!(accepted(&acks[0]));
    assert_eq!(acks[1].status, pb::AckStatus::Duplicate as i32);
    assert_eq!(acks[1].index, acks[0].index);
    assert_eq!(rejected_for(&acks[2]), RejectReason::Equivocation);
}
