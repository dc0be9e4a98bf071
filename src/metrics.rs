//! Prometheus metrics: what the ledger counts while it works ([`LedgerMetrics`]), and what
//! is read from the ledger and the projections on each scrape ([`registry`]).
//!
//! Names follow Prometheus conventions: the `uptime_ledger_` prefix, base units
//! (`_seconds`, `_ratio`), `_total` on counters (the encoder adds it), the domain's words
//! for labels (`service_id`, `probe_id`). The write path touches only handles registered up
//! front, one per label value: an event costs an atomic add or one short histogram lock,
//! never a label lookup or an allocation.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::domain::{Outcome, RejectReason};
use crate::log::Ledger;
use crate::projection::State;
use crate::projector::Projections;
use crate::window::WindowSpec;

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

    fn register(&self, registry: &mut Registry) {
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

/// The metrics registry a server exposes: the ledger's counters plus the gauges read on
/// each scrape.
pub fn registry(ledger: Arc<Ledger>, projections: Arc<Projections>) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    ledger.metrics().register(&mut registry);
    registry.register_collector(Box::new(ScrapeGauges {
        ledger,
        projections,
    }));
    registry
}

/// Gauges computed when scraped, from the ledger and the published projection.
struct ScrapeGauges {
    ledger: Arc<Ledger>,
    projections: Arc<Projections>,
}

impl fmt::Debug for ScrapeGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeGauges").finish_non_exhaustive()
    }
}

/// The windows of `uptime_ledger_service_availability_ratio`, by `window` label.
const AVAILABILITY_WINDOWS: [(&str, WindowSpec); 2] = [
    ("24h", WindowSpec::Last24Hours),
    ("30d", WindowSpec::Last30Days),
];

const STATES: [(State, &str); 4] = [
    (State::Up, "up"),
    (State::Down, "down"),
    (State::Unknown, "unknown"),
    (State::Maintenance, "maintenance"),
];

impl Collector for ScrapeGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let now = self.projections.now();
        let tree_size = self.ledger.tree_size();
        let checkpoint = self.ledger.checkpoint();
        let published_at = self
            .ledger
            .metrics()
            .checkpoint_published_at
            .load(Ordering::Relaxed);
        let gauge = |encoder: &mut DescriptorEncoder, name, help, unit, value: f64| {
            encoder
                .encode_descriptor(name, help, unit, MetricType::Gauge)?
                .encode_gauge(&value)
        };
        gauge(
            &mut encoder,
            "log_tree_size",
            "Durable entries in the log",
            None,
            tree_size as f64,
        )?;
        gauge(
            &mut encoder,
            "checkpoint_tree_size",
            "Tree size of the latest signed checkpoint",
            None,
            checkpoint.tree_size as f64,
        )?;
        gauge(
            &mut encoder,
            "checkpoint_age",
            "Time since the latest checkpoint was signed",
            Some(&Unit::Seconds),
            now.saturating_sub(published_at).max(0) as f64 / 1000.0,
        )?;
        gauge(
            &mut encoder,
            "log_writes_stopped",
            "1 when a failed flush stopped all writes until a restart, else 0",
            None,
            if self.ledger.write_failure().is_some() {
                1.0
            } else {
                0.0
            },
        )?;

        encoder
            .encode_descriptor(
                "projection_replayed_entries",
                "Log entries replayed to answer queries about an earlier checkpointed prefix (tree_size=N)",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&self.projections.replayed_for_queries(), None)?;

        let published = self.projections.read();
        gauge(
            &mut encoder,
            "projection_tree_size",
            "Tree size of the checkpointed prefix the projections reflect",
            None,
            published.tree_size as f64,
        )?;
        gauge(
            &mut encoder,
            "projector_lag_entries",
            "Durable entries the projections have not applied yet",
            None,
            tree_size.saturating_sub(published.tree_size) as f64,
        )?;

        let projection = &published.projection;
        let mut states = encoder.encode_descriptor(
            "service_state",
            "1 for the current state of each service, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for spec in projection.services() {
            let current = projection.current_state(&spec.service_id, now);
            for (state, label) in STATES {
                let labels = [("service_id", spec.service_id.as_str()), ("state", label)];
                states
                    .encode_family(&labels)?
                    .encode_gauge(&i64::from(state == current))?;
            }
        }

        let mut targets = encoder.encode_descriptor(
            "service_slo_target_ratio",
            "The SLO target of each service's latest definition",
            None,
            MetricType::Gauge,
        )?;
        for spec in projection.services() {
            targets
                .encode_family(&[("service_id", spec.service_id.as_str())])?
                .encode_gauge(&spec.slo_target)?;
        }

        let mut availability = encoder.encode_descriptor(
            "service_availability_ratio",
            "Availability up/(up+down) over the last 24 h and 30 d of the projected prefix; absent without data",
            None,
            MetricType::Gauge,
        )?;
        for spec in projection.services() {
            for (label, window) in &AVAILABILITY_WINDOWS {
                let value = crate::query::availability(&published, &spec.service_id, window)
                    .ok()
                    .and_then(|report| report.availability);
                if let Some(value) = value {
                    let labels = [("service_id", spec.service_id.as_str()), ("window", label)];
                    availability.encode_family(&labels)?.encode_gauge(&value)?;
                }
            }
        }

        let mut last_seen = std::collections::BTreeMap::<String, i64>::new();
        for spec in projection.services() {
            for probe in projection.probes_for(&spec.service_id).unwrap_or_default() {
                let seen = last_seen.entry(probe.probe_id).or_insert(i64::MIN);
                *seen = (*seen).max(probe.last_observed_at);
            }
        }
        let mut probe_ages = encoder.encode_descriptor(
            "probe_last_seen_age",
            "Time since each probe's latest observation (of any service) in the projected prefix",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (probe_id, observed_at) in &last_seen {
            probe_ages
                .encode_family(&[("probe_id", probe_id.as_str())])?
                .encode_gauge(&(now.saturating_sub(*observed_at) as f64 / 1000.0))?;
        }

        // Every probe the log registered, so that a probe that never reported shows up
        // (`uptime_ledger_probe_registered == 1 unless on(probe_id)
        // uptime_ledger_probe_last_seen_age_seconds`).
        let registry = self.ledger.registry();
        let mut registered = encoder.encode_descriptor(
            "probe_registered",
            "1 for each registered probe, 0 once it is revoked",
            None,
            MetricType::Gauge,
        )?;
        for (probe_id, record) in registry.probes() {
            registered
                .encode_family(&[("probe_id", probe_id.as_str())])?
                .encode_gauge(&i64::from(record.revoked.is_none()))?;
        }
        Ok(())
    }
}

/// The registry in the Prometheus text exposition format (version 0.0.4).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
