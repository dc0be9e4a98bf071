//! `/metrics`: the registry a server exposes, with the write path's counters
//! ([`crate::metrics::LedgerMetrics`]) and the gauges read from the ledger and the published
//! projection on each scrape, in the Prometheus text format.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::alert::notifier::{Alerting, DeliveryCounters};
use crate::clock::{Clock, SystemClock};
use crate::log::Ledger;
use crate::metrics::PREFIX;
use crate::projection::State;
use crate::projector::Projections;
use crate::window::WindowSpec;

/// The metrics registry a server exposes: the ledger's counters plus the gauges read on
/// each scrape.
pub fn registry(
    ledger: Arc<Ledger>,
    projections: Arc<Projections>,
    alerting: Arc<Alerting>,
) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    ledger.metrics().register(&mut registry);
    registry.register_collector(Box::new(AlertGauges {
        projections: projections.clone(),
        alerting,
    }));
    registry.register_collector(Box::new(ScrapeGauges {
        ledger,
        projections,
    }));
    registry
}

/// The alerts firing now, the burn rate of every service over each window the burn rules
/// use, and the outbox's deliveries, failures, depth and age.
struct AlertGauges {
    projections: Arc<Projections>,
    alerting: Arc<Alerting>,
}

impl fmt::Debug for AlertGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertGauges").finish_non_exhaustive()
    }
}

/// A delivery counter's name, help and how to read it.
type DeliveryCounter = (&'static str, &'static str, fn(&DeliveryCounters) -> u64);

/// A window length as Prometheus writes durations: `5m`, `1h`, `3d`, else milliseconds.
fn window_label(ms: i64) -> String {
    const UNITS: [(i64, &str); 3] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m")];
    UNITS
        .iter()
        .find(|(unit, _)| ms > 0 && ms % unit == 0)
        .map(|(unit, suffix)| format!("{}{suffix}", ms / unit))
        .unwrap_or_else(|| format!("{ms}ms"))
}

impl Collector for AlertGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let policy = self.alerting.policy();
        let now = self.projections.now();
        {
            let published = self.projections.read();
            let projection = &published.projection;
            let mut firing = encoder.encode_descriptor(
                "alert_firing",
                "1 for each alert firing now (alert = outage, no_data, slo_burn_1h, slo_burn_6h, slo_burn_3d)",
                None,
                MetricType::Gauge,
            )?;
            for alert in crate::alert::firing_at(projection, policy, now) {
                let labels = [
                    ("service_id", alert.service_id.as_str()),
                    ("alert", alert.rule.name()),
                    ("severity", alert.rule.severity().name()),
                ];
                firing.encode_family(&labels)?.encode_gauge(&1i64)?;
            }
            let mut burn = encoder.encode_descriptor(
                "service_burn_rate",
                "Error-budget burn rate (down/(up+down))/(1-slo_target) over each window ending on the last whole evaluation step; absent without data",
                None,
                MetricType::Gauge,
            )?;
            let instant = policy.burn_instant(now);
            let mut windows: Vec<i64> = policy
                .burn
                .iter()
                .flat_map(|w| [w.long_ms, w.short_ms])
                .collect();
            windows.sort_unstable();
            windows.dedup();
            for spec in projection.services() {
                for &window in &windows {
                    let Some(report) = projection.report(
                        &spec.service_id,
                        instant.saturating_sub(window),
                        instant,
                    ) else {
                        continue;
                    };
                    if let Some(rate) =
                        crate::alert::burn_rate(report.up_ms, report.down_ms, report.slo_target)
                    {
                        let label = window_label(window);
                        let labels = [
                            ("service_id", spec.service_id.as_str()),
                            ("window", label.as_str()),
                        ];
                        burn.encode_family(&labels)?.encode_gauge(&rate)?;
                    }
                }
            }
        }
        let counters: [DeliveryCounter; 4] = [
            (
                "alert_deliveries",
                "Notifications a receiver accepted (2xx)",
                |c| c.delivered.load(Ordering::Relaxed),
            ),
            (
                "alert_delivery_failures",
                "Delivery attempts that failed (error, timeout or non-2xx)",
                |c| c.failed_attempts.load(Ordering::Relaxed),
            ),
            (
                "alert_expired",
                "Notifications dropped undelivered after the configured expiry",
                |c| c.expired.load(Ordering::Relaxed),
            ),
            (
                "alert_reposts",
                "Re-posts of the firing alerts to an Alertmanager",
                |c| c.reposts.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, read) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (receiver, counters) in self.alerting.counters() {
                family
                    .encode_family(&[("receiver", receiver)])?
                    .encode_counter::<NoLabelSet, _, u64>(&read(counters), None)?;
            }
        }
        if let Some((depth, oldest)) = self.alerting.outbox_depth() {
            encoder
                .encode_descriptor(
                    "alert_outbox_depth",
                    "Notifications waiting in the outbox",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&(depth as i64))?;
            let age = oldest.map_or(0.0, |oldest| {
                SystemClock.now_millis().saturating_sub(oldest).max(0) as f64 / 1000.0
            });
            encoder
                .encode_descriptor(
                    "alert_outbox_oldest_age",
                    "Age of the oldest notification waiting in the outbox (0 when empty)",
                    Some(&Unit::Seconds),
                    MetricType::Gauge,
                )?
                .encode_gauge(&age)?;
        }
        Ok(())
    }
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
