//! Admission control for ingest: what keeps one probe, or everyone at once, from
//! overwhelming the writer.
//!
//! - **Load shedding.** At most `max_inflight_submits` units of ingest work are in flight
//!   (a `Submit` call from before its body is decoded until it is answered; one chunk of a
//!   `SubmitStream`). Beyond that the answer is `UNAVAILABLE` at once — no queue grows, no
//!   client waits for a deadline — and nothing is stored. Well-behaved clients (the probe
//!   agent) back off and retry; the ledger answers `DUPLICATE` for anything it already had.
//! - **Per-probe rate limit.** A token bucket per probe (`probe_rate` observations/s,
//!   `probe_burst` deep), charged only for observations whose signature verified, so nobody
//!   can spend another probe's budget by putting its id in unsigned junk, and the buckets are
//!   bounded by the registered probes. A batch that one of its probes cannot afford is
//!   refused whole with `RESOURCE_EXHAUSTED` and a `google.rpc.RetryInfo` saying when it
//!   would fit; no token is taken and nothing is stored. The refusal is for the call, not
//!   per event: an `Ack` REJECTED is final (the probe agent dead-letters it, and DESIGN.md
//!   fixes the reasons), while "too fast" is a reason to retry the same bytes later.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::http;

use crate::domain::ProbeId;
use crate::limits::Limits;
use crate::log::VerifiedBatch;
use crate::metrics::{LedgerMetrics, RefusedCall};

/// The path of the unary `Submit` RPC, shed before its body is decoded.
pub const SUBMIT_PATH: &str = "/uptime.ledger.v1.IngestService/Submit";

/// Shared by every connection of one server.
pub struct Admission {
    inflight: Arc<Semaphore>,
    max_inflight: usize,
    rate: Option<ProbeRateLimit>,
}

impl Admission {
    pub fn new(limits: &Limits) -> Admission {
        Admission {
            inflight: Arc::new(Semaphore::new(limits.max_inflight_submits)),
            max_inflight: limits.max_inflight_submits,
            rate: (limits.probe_rate > 0.0)
                .then(|| ProbeRateLimit::new(limits.probe_rate, limits.probe_burst)),
        }
    }

    /// One unit of ingest work, or UNAVAILABLE at once when `max_inflight_submits` are
    /// already in flight. The unit is released when the permit is dropped.
    pub fn try_enter(&self) -> Result<OwnedSemaphorePermit, Overloaded> {
        self.inflight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded {
                max_inflight: self.max_inflight,
            })
    }

    /// Units of ingest work in flight now.
    pub fn inflight(&self) -> usize {
        self.max_inflight - self.inflight.available_permits()
    }

    /// Holds `count` units as if that many submissions were in flight: for tests that need
    /// a saturated server without racing real load against it.
    pub fn occupy(&self, count: usize) -> Option<OwnedSemaphorePermit> {
        self.inflight
            .clone()
            .try_acquire_many_owned(u32::try_from(count).ok()?)
            .ok()
    }

    /// Charges each verified probe in `batch` for its observations, all or nothing;
    /// refused when one of them is over its rate.
    pub fn charge(&self, batch: &VerifiedBatch) -> Result<(), RateLimited> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.take(&batch.verified_probes(), Instant::now())
    }
}

/// Per-probe token buckets. Hand-written rather than `governor`: a batch must be charged to
/// several probes atomically (all or none), which a keyed limiter checking one key at a time
/// does not offer, and the whole thing is a mutex over a small map — the lock is held for a
/// few arithmetic operations per probe in a batch.
pub struct ProbeRateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<ProbeId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Why a call was shed: `max_inflight` submissions were already in flight (UNAVAILABLE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ledger is overloaded: {max_inflight} submissions are already in flight; nothing from this one was stored, retry with backoff")]
pub struct Overloaded {
    pub max_inflight: usize,
}

/// Why a batch was refused by the rate limit (RESOURCE_EXHAUSTED, with RetryInfo when it
/// can fit later).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", match retry_after {
    Some(delay) => format!("probe {probe_id} is over its rate limit of {rate} observations/s (burst {burst}): this call carries {requested} of its observations; nothing from it was stored, retry in {} ms", delay.as_millis().max(1)),
    None => format!("this call carries {requested} observations of probe {probe_id}, more than its burst of {burst}; nothing from it was stored, split the batch"),
})]
pub struct RateLimited {
    pub probe_id: ProbeId,
    pub requested: usize,
    pub rate: f64,
    pub burst: u32,
    /// When the request would fit; `None` when it never can (more than the burst at once).
    pub retry_after: Option<Duration>,
}

impl ProbeRateLimit {
    pub fn new(rate: f64, burst: u32) -> ProbeRateLimit {
        ProbeRateLimit {
            rate,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `count` tokens from each probe's bucket at `now`, or none at all.
    pub fn take(&self, demands: &[(ProbeId, usize)], now: Instant) -> Result<(), RateLimited> {
        if demands.is_empty() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("rate limit lock");
        let mut refilled = Vec::with_capacity(demands.len());
        for (probe_id, count) in demands {
            let bucket = buckets.get(probe_id).copied().unwrap_or(Bucket {
                tokens: self.burst,
                updated: now,
            });
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            let tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
            let wanted = *count as f64;
            if wanted > tokens {
                let retry_after = (wanted <= self.burst)
                    .then(|| Duration::from_secs_f64((wanted - tokens) / self.rate));
                return Err(RateLimited {
                    probe_id: probe_id.clone(),
                    requested: *count,
                    rate: self.rate,
                    burst: self.burst as u32,
                    retry_after,
                });
            }
            refilled.push((probe_id, tokens - wanted));
        }
        for (probe_id, tokens) in refilled {
            buckets.insert(
                probe_id.clone(),
                Bucket {
                    tokens,
                    updated: now,
                },
            );
        }
        Ok(())
    }
}

/// A tower layer for the gRPC server: takes a unit of ingest work for each `Submit` call
/// before its body is decoded (so a flood of large requests is refused before it costs
/// memory) and holds it until the call is answered.
#[derive(Clone)]
pub struct ShedSubmitsLayer {
    pub admission: Arc<Admission>,
    /// Counts the calls it sheds.
    pub metrics: Arc<LedgerMetrics>,
}

impl<S> tower::Layer<S> for ShedSubmitsLayer {
    type Service = ShedSubmits<S>;

    fn layer(&self, inner: S) -> ShedSubmits<S> {
        ShedSubmits {
            inner,
            admission: self.admission.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ShedSubmits<S> {
    inner: S,
    admission: Arc<Admission>,
    metrics: Arc<LedgerMetrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for ShedSubmits<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SUBMIT_PATH {
            return Box::pin(self.inner.call(request));
        }
        match self.admission.try_enter() {
            Ok(permit) => {
                let answer = self.inner.call(request);
                Box::pin(async move {
                    let response = answer.await;
                    drop(permit);
                    response
                })
            }
            Err(overloaded) => {
                tracing::warn!("ingest overloaded: a Submit call was shed");
                self.metrics.record_refused_call(RefusedCall::Overloaded);
                let status = super::status::overloaded(overloaded);
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::StatusExt;

    fn probe(id: &str) -> ProbeId {
        ProbeId::parse(id).unwrap()
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limit = ProbeRateLimit::new(10.0, 100);
        let t0 = Instant::now();
        limit.take(&[(probe("a"), 100)], t0).unwrap();
        let refused = limit.take(&[(probe("a"), 1)], t0).unwrap_err();
        assert_eq!(refused.retry_after, Some(Duration::from_millis(100)));
        // 0.5 s later: 5 tokens.
        let later = t0 + Duration::from_millis(500);
        assert!(limit.take(&[(probe("a"), 6)], later).is_err());
        limit.take(&[(probe("a"), 5)], later).unwrap();
        // Never more than the burst, however long the pause.
        let much_later = later + Duration::from_secs(3600);
        assert!(limit.take(&[(probe("a"), 101)], much_later).is_err());
        limit.take(&[(probe("a"), 100)], much_later).unwrap();
    }

    #[test]
    fn a_batch_is_charged_to_every_probe_or_to_none() {
        let limit = ProbeRateLimit::new(1.0, 10);
        let t0 = Instant::now();
        limit.take(&[(probe("a"), 8)], t0).unwrap();
        // b could pay, a cannot: neither is charged.
        let refused = limit
            .take(&[(probe("b"), 10), (probe("a"), 3)], t0)
            .unwrap_err();
        assert_eq!(refused.probe_id, probe("a"));
        assert_eq!(refused.requested, 3);
        limit.take(&[(probe("b"), 10)], t0).unwrap();
        limit.take(&[(probe("a"), 2)], t0).unwrap();
    }

    #[test]
    fn more_than_the_burst_at_once_can_never_fit() {
        let limit = ProbeRateLimit::new(1000.0, 10);
        let refused = limit.take(&[(probe("a"), 11)], Instant::now()).unwrap_err();
        assert_eq!(refused.retry_after, None);
        let status = super::super::status::rate_limited(&refused);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("split the batch"));
    }

    #[test]
    fn a_refusal_carries_retry_info() {
        let limit = ProbeRateLimit::new(2.0, 4);
        let t0 = Instant::now();
        limit.take(&[(probe("a"), 4)], t0).unwrap();
        let refused = limit.take(&[(probe("a"), 3)], t0).unwrap_err();
        let status = super::super::status::rate_limited(&refused);
        assert_eq!(status.code(), Code::ResourceExhausted);
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(1500)));
    }
}
