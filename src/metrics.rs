//! The write path's Prometheus counters: what ingest and the log's writer count while they
//! work ([`LedgerMetrics`]). The gauges read on each scrape live with `/metrics` in
//! [`crate::http::metrics`].
//!
//! Names follow Prometheus conventions: the `uptime_ledger_` prefix, base units
//! (`_seconds`, `_ratio`), `_total` on counters (the encoder adds it), the domain's words
//! for labels (`service_id`, `probe_id`). The write path touches only handles registered up
//! front, one per label value: an event costs an atomic add or one short histogram lock,
//! never a label lookup or an allocation.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::domain::{Outcome, RejectReason};

/// The prefix of every metric name.
pub const PREFIX: &str = "uptime_ledger";

/// Counters and histograms of ingest and the log's writer. The [`Ledger`] owns one.
pub struct LedgerMetrics {
    /// Indexed like [`OUTCOMES`].
    observations: [Counter; 3],
    /// Indexed like [`RejectReason::ALL`].
    rejections: [Counter; RejectReason::ALL.len()],
    observation_family: Family<[(&'static str, &'static str); 1], Counter>,
    rejection_family: Family<[(&'static str, &'static str); 1], Counter>,
    /// Indexed like [`RefusedCall::ALL`].
    refused_calls: [Counter; RefusedCall::ALL.len()],
    refused_call_family: Family<[(&'static str, &'static str); 1], Counter>,
    submit_events: Histogram,
    ack_duration: Histogram,
    commit_entries: Histogram,
    fsync_duration: Histogram,
    /// Ledger time (Unix ms) at which the latest checkpoint was published; for a log opened
    /// from disk, the `received_at` of its last entry (the checkpoint was signed no earlier).
    checkpoint_published_at: AtomicI64,
}

/// The `outcome` label values of `uptime_ledger_ingest_observations_total`.
const OUTCOMES: [&str; 3] = ["accepted", "duplicate", "rejected"];

/// Why an ingest call was refused as a whole: none of its observations was acknowledged
/// (after a failed flush some may be on disk, in doubt, which a resend settles as
/// `DUPLICATE`). For a `SubmitStream`, the refusal that ended the stream (its earlier
/// chunks were acknowledged). The `reason` label of
/// `uptime_ledger_ingest_refused_calls_total`. Not counted: a message over the size limit
/// (refused by the transport before ingest sees it), a stream's own transport or decoding
/// failure, and an internal failure (a panicked task, answered INTERNAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedCall {
    /// Shed at once: `max_inflight_submits` calls were already in flight (UNAVAILABLE).
    Overloaded,
    /// A probe of the call was over its rate limit (RESOURCE_EXHAUSTED).
    RateLimited,
    /// Writes have stopped after a failed flush, the ledger is shutting down, or
    /// verification failed internally (UNAVAILABLE).
    Unavailable,
    /// The ledger's disk is full (RESOURCE_EXHAUSTED).
    DiskFull,
    /// The request itself is malformed, e.g. more observations than one call may carry
    /// (INVALID_ARGUMENT).
    InvalidRequest,
    /// Mutual TLS: no usable client certificate, or one that does not name every probe
    /// of the call (UNAUTHENTICATED / PERMISSION_DENIED).
    ClientCertificate,
}

impl RefusedCall {
    pub const ALL: [RefusedCall; 6] = [
        RefusedCall::Overloaded,
        RefusedCall::RateLimited,
        RefusedCall::Unavailable,
        RefusedCall::DiskFull,
        RefusedCall::InvalidRequest,
        RefusedCall::ClientCertificate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusedCall::Overloaded => "overloaded",
            RefusedCall::RateLimited => "rate_limited",
            RefusedCall::Unavailable => "unavailable",
            RefusedCall::DiskFull => "disk_full",
            RefusedCall::InvalidRequest => "invalid_request",
            RefusedCall::ClientCertificate => "client_certificate",
        }
    }
}

impl LedgerMetrics {
    pub fn new(checkpoint_published_at: i64) -> LedgerMetrics {
        let observation_family = Family::default();
        let observations =
            OUTCOMES.map(|outcome| observation_family.get_or_create_owned(&[("outcome", outcome)]));
        let rejection_family = Family::default();
        let rejections = RejectReason::ALL
            .map(|reason| rejection_family.get_or_create_owned(&[("reason", reason.as_str())]));
        let refused_call_family = Family::default();
        let refused_calls = RefusedCall::ALL
            .map(|reason| refused_call_family.get_or_create_owned(&[("reason", reason.as_str())]));
        LedgerMetrics {
            observations,
            rejections,
            observation_family,
            rejection_family,
            refused_calls,
            refused_call_family,
            submit_events: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            ack_duration: Histogram::new(exponential_buckets(0.000_25, 2.0, 14)),
            commit_entries: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            fsync_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            checkpoint_published_at: AtomicI64::new(checkpoint_published_at),
        }
    }

    /// One `Submit` call was answered: its outcomes, and the time from the call to the
    /// answer (verification, queueing, group commit and fsync).
    pub fn record_submit(&self, outcomes: &[Outcome], elapsed: Duration) {
        for outcome in outcomes {
            match outcome {
                Outcome::Accepted { .. } => self.observations[0].inc(),
                Outcome::Duplicate { .. } => self.observations[1].inc(),
                Outcome::Rejected(rejection) => {
                    self.rejections[rejection.reason as usize].inc();
                    self.observations[2].inc()
                }
            };
        }
        self.submit_events.observe(outcomes.len() as f64);
        self.ack_duration.observe(elapsed.as_secs_f64());
    }

    /// One ingest call was refused as a whole (see [`RefusedCall`]).
    pub fn record_refused_call(&self, reason: RefusedCall) {
        self.refused_calls[reason as usize].inc();
    }

    /// One group commit made `entries` entries durable.
    pub fn record_commit(&self, entries: usize) {
        self.commit_entries.observe(entries as f64);
    }

    /// One flush (sled flush + fdatasync) took `elapsed`.
    pub fn record_fsync(&self, elapsed: Duration) {
        self.fsync_duration.observe(elapsed.as_secs_f64());
    }

    /// A new checkpoint was published at ledger time `at` (Unix ms).
    pub fn record_checkpoint(&self, at: i64) {
        self.checkpoint_published_at.store(at, Ordering::Relaxed);
    }

    /// Ledger time (Unix ms) at which the latest checkpoint was published.
    pub fn checkpoint_published_at(&self) -> i64 {
        self.checkpoint_published_at.load(Ordering::Relaxed)
    }

    /// Registers every counter and histogram in `registry` (the one `/metrics` serves).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ingest_observations",
            "Observations judged by ingest, by outcome",
            self.observation_family.clone(),
        );
        registry.register(
            "ingest_rejections",
            "Observations rejected by ingest, by reject reason",
            self.rejection_family.clone(),
        );
        registry.register(
            "ingest_refused_calls",
            "Ingest calls refused as a whole, none of their observations acknowledged (a Submit; a SubmitStream once, for the refusal that ended it), by reason",
            self.refused_call_family.clone(),
        );
        registry.register(
            "ingest_submit_batch_events",
            "Observations per Submit call (or per SubmitStream batch)",
            self.submit_events.clone(),
        );
        registry.register_with_unit(
            "ingest_ack_duration",
            "Time from receiving a batch of observations to acknowledging it (after fsync); refused calls are not included",
            Unit::Seconds,
            self.ack_duration.clone(),
        );
        registry.register(
            "log_commit_batch_entries",
            "Entries made durable per group commit",
            self.commit_entries.clone(),
        );
        registry.register_with_unit(
            "log_fsync_duration",
            "Time to make one group commit durable (sled flush and fdatasync)",
            Unit::Seconds,
            self.fsync_duration.clone(),
        );
    }
}

// `RejectReason as usize` indexes `rejections` and `RefusedCall as usize` indexes
// `refused_calls`: that holds while each ALL lists them in declaration order.
const _: () = {
    let mut i = 0;
    while i < RejectReason::ALL.len() {
        assert!(RejectReason::ALL[i] as usize == i);
        i += 1;
    }
    let mut i = 0;
    while i < RefusedCall::ALL.len() {
        assert!(RefusedCall::ALL[i] as usize == i);
        i += 1;
    }
};
