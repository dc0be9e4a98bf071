//! Admission control over real gRPC: the per-probe rate limit (RESOURCE_EXHAUSTED with
//! RetryInfo, the whole call refused, other probes unaffected, nothing stored) and load
//! shedding (UNAVAILABLE at once, nothing stored, reads unaffected).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use tonic_types::StatusExt;
use uptime_ledger::domain::Status;
use uptime_ledger::limits::Limits;
use uptime_ledger::pb;

/// A ledger with service `svc` and probes `p1` (key 1) and `p2` (key 2) under `limits`.
async fn ledger_with(limits: Limits) -> TestLedger {
    let mut ledger = TestLedger::start_with_limits(limits).await;
    ledger.define_service("svc").await;
    ledger.register_probe("p1", &key(1)).await;
    ledger.register_probe("p2", &key(2)).await;
    ledger
}

fn batch(probe: &str, key_seed: u8, seqs: std::ops::Range<u64>) -> Vec<pb::SignedObservation> {
    seqs.map(|seq| observation(&key(key_seed), probe, "svc", seq, T0, Status::Up))
        .collect()
}

async fn try_submit(
    ledger: &TestLedger,
    observations: Vec<pb::SignedObservation>,
) -> Result<Vec<pb::Ack>, tonic::Status> {
    ledger
        .ingest()
        .await
        .submit(pb::SubmitRequest { observations })
        .await
        .map(|response| response.into_inner().acks)
}

#[tokio::test]
async fn a_probe_over_its_rate_is_refused_whole_with_retry_info_and_stores_nothing() {
    // Slow refill (one token per 2 s), so the steps below run well within one token.
    let ledger = ledger_with(Limits {
        probe_rate: 0.5,
        probe_burst: 5,
        ..Limits::default()
    })
    .await;

    // The burst goes through.
    let acks = ledger.submit(batch("p1", 1, 1..6)).await;
    assert!(acks.iter().all(accepted), "{acks:?}");
    let size = ledger.tree_size();

    // Two more at once: over the rate. The call is refused whole, with a RetryInfo.
    let refused = try_submit(&ledger, batch("p1", 1, 6..8)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("probe p1"),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("nothing from it was stored"));
    let retry = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo with a delay");
    assert!(
        retry > Duration::from_secs(2) && retry <= Duration::from_secs(4),
        "{retry:?}"
    );
    assert_eq!(
        ledger.tree_size(),
        size,
        "nothing from a refused call is stored"
    );

    // Another probe is not affected.
    let acks = ledger.submit(batch("p2", 2, 1..4)).await;
    assert!(acks.iter().all(accepted), "{acks:?}");
    let size = ledger.tree_size();

    // A batch mixing p2 (who could pay) with p1 (who cannot) is refused whole, and p2 is
    // not charged for it: its remaining two tokens are still there afterwards.
    let mut mixed = batch("p2", 2, 4..5);
    mixed.extend(batch("p1", 1, 6..8));
    let refused = try_submit(&ledger, mixed).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(ledger.tree_size(), size);
    let acks = ledger.submit(batch("p2", 2, 4..6)).await;
    assert!(acks.iter().all(accepted), "{acks:?}");
    let size = ledger.tree_size();

    // Junk that merely names p1 (bad signatures) is judged on its own and costs p1 nothing.
    let forged = batch("p1", 9, 100..110);
    let acks = ledger.submit(forged).await;
    assert!(acks
        .iter()
        .all(|ack| rejected_for(ack) == pb::RejectReason::BadSignature));
    assert_eq!(ledger.tree_size(), size);

    // More than the burst at once can never fit: the message says to split the batch.
    let refused = try_submit(&ledger, batch("p1", 1, 10..16))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("split the batch"), "{refused:?}");
    assert!(refused.get_details_retry_info().is_none());
    assert_eq!(ledger.tree_size(), size);

    // Operators see the three refused calls in /metrics, by reason; the forged
    // observations were judged one by one, so they are rejections, not refused calls.
    let metrics = ledger.metrics().await;
    assert_eq!(metrics.refused_calls("rate_limited"), 3.0);
    assert_eq!(metrics.refused_calls("overloaded"), 0.0);
    assert_eq!(
        metrics.value(
            "uptime_ledger_ingest_rejections_total",
            &[("reason", "bad_signature")]
        ),
        10.0
    );

    // After the advertised delay, the same bytes are accepted.
    tokio::time::sleep(retry + Duration::from_millis(50)).await;
    let acks = ledger.submit(batch("p1", 1, 6..8)).await;
    assert!(acks.iter().all(accepted), "{acks:?}");
    assert_eq!(ledger.tree_size(), size + 2);
}

#[tokio::test]
async fn a_stream_over_the_rate_ends_with_resource_exhausted_and_stores_nothing_after() {
    let ledger = ledger_with(Limits {
        probe_rate: 0.5,
        probe_burst: 3,
        ..Limits::default()
    })
    .await;
    let acks = ledger.submit(batch("p1", 1, 1..4)).await;
    assert!(acks.iter().all(accepted));
    let size = ledger.tree_size();

    let requests = batch("p1", 1, 4..6)
        .into_iter()
        .map(|signed| pb::SubmitStreamRequest {
            observation: Some(signed),
        });
    let mut responses = ledger
        .ingest()
        .await
        .submit_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let error = match responses.message().await {
        Ok(Some(response)) => panic!("no ack expected, got {response:?}"),
        Ok(None) => panic!("the stream ended without an error"),
        Err(status) => status,
    };
    assert_eq!(error.code(), Code::ResourceExhausted, "{error:?}");
    assert_eq!(ledger.tree_size(), size);
    assert_eq!(ledger.metrics().await.refused_calls("rate_limited"), 1.0);
}

#[tokio::test]
async fn overload_is_shed_at_once_with_unavailable_and_stores_nothing() {
    let ledger = ledger_with(Limits {
        max_inflight_submits: 4,
        ..Limits::default()
    })
    .await;
    let size = ledger.tree_size();

    // Saturate ingest: every unit of admission is taken.
    let held = ledger.admission.occupy(4).expect("four free units");
    let started = Instant::now();
    let refused = try_submit(&ledger, batch("p1", 1, 1..3)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("overloaded"), "{refused:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shedding answers at once, took {:?}",
        started.elapsed()
    );

    let requests = batch("p1", 1, 1..3)
        .into_iter()
        .map(|signed| pb::SubmitStreamRequest {
            observation: Some(signed),
        });
    let mut responses = ledger
        .ingest()
        .await
        .submit_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let error = responses.message().await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert_eq!(
        ledger.tree_size(),
        size,
        "nothing from a shed call is stored"
    );
    // Both shed calls are counted: the Submit by the layer, the stream by its reader.
    let metrics = ledger.metrics().await;
    assert_eq!(metrics.refused_calls("overloaded"), 2.0);
    assert_eq!(metrics.refused_calls("rate_limited"), 0.0);

    // Reads are not shed.
    ledger
        .log()
        .await
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await
        .expect("reads still work");

    // Once load drops, the same observations go through.
    drop(held);
    let acks = ledger.submit(batch("p1", 1, 1..3)).await;
    assert!(acks.iter().all(accepted), "{acks:?}");
    assert_eq!(ledger.admission.inflight(), 0);
}

#[tokio::test]
async fn under_real_overload_each_call_is_either_answered_or_shed_and_only_answers_are_stored() {
    let mut ledger = ledger_with(Limits {
        max_inflight_submits: 2,
        probe_rate: 0.0,
        ..Limits::default()
    })
    .await;
    for probe in 3..=8u8 {
        ledger
            .register_probe(&format!("p{probe}"), &key(probe))
            .await;
    }
    let size = ledger.tree_size();
    let channel = ledger.channel().await;
    let calls = (1..=8u8).flat_map(|probe| {
        let channel = channel.clone();
        (0..4u64).map(move |round| {
            let mut client = pb::ingest_service_client::IngestServiceClient::new(channel.clone());
            let observations = batch(
                &format!("p{probe}"),
                probe,
                round * 100 + 1..round * 100 + 101,
            );
            async move {
                client
                    .submit(pb::SubmitRequest { observations })
                    .await
                    .map(|r| r.into_inner().acks)
            }
        })
    });
    let results = futures_util::future::join_all(calls).await;
    let mut accepted_count = 0u64;
    let mut shed = 0;
    for result in results {
        match result {
            Ok(acks) => {
                assert_eq!(acks.len(), 100);
                // Rounds of one probe may overtake each other: lower seqs are then stale.
                accepted_count += acks.iter().filter(|ack| accepted(ack)).count() as u64;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                shed += 1;
            }
        }
    }
    assert!(accepted_count > 0);
    assert_eq!(
        ledger.tree_size(),
        size + accepted_count,
        "exactly the accepted observations are stored ({shed} calls shed)"
    );
    assert_eq!(
        ledger.metrics().await.refused_calls("overloaded"),
        shed as f64
    );
}
