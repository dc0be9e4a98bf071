//! `/metrics`: the registry a server exposes, with the write path's counters
//! ([`crate::metrics::LedgerMetrics`]) and the gauges read from the ledger and the published
//! projection on each scrape, in the Prometheus text format.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::log::Ledger;
use crate::metrics::PREFIX;
use crate::projection::State;
use crate::projector::Projections;
use crate::window::WindowSpec;

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
        let published_at = self.ledger.metrics().checkpoint_published_at();
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

        // Every probe the prefix registered, so that a probe that never reported shows up
        // (`uptime_ledger_probe_registered == 1 unless on(probe_id)
        // uptime_ledger_probe_last_seen_age_seconds`).
        let mut registered = encoder.encode_descriptor(
            "probe_registered",
            "1 for each registered probe, 0 once it is revoked",
            None,
            MetricType::Gauge,
        )?;
        for (probe_id, probe) in published.projection.registered_probes() {
            registered
                .encode_family(&[("probe_id", probe_id)])?
                .encode_gauge(&i64::from(probe.revoked_at.is_none()))?;
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
