//! The alerting of `serve`: [`Alerting`] holds the policy and starts one task that
//! evaluates the published prefix into the outbox and one delivery task per receiver
//! (`delivery`).
//!
//! Evaluation runs when the published tree size changed (polled every 250 ms) and every
//! `evaluation_interval` (state changes with time alone, when observations go stale), at
//! the ledger's current time. It compares what fires with the outbox's open alerts: a new
//! alert is a *fired* transition, an open alert no longer firing a *resolved* one; both are
//! written, with one outbox entry per receiver, in one flushed transaction before anything
//! is sent.
//!
//! Delivery runs on its own tasks and its own database, so a receiver that is slow, hangs
//! or is down never holds a lock that ingest or queries take.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::sync::{watch, Notify};

use super::config::{AlertsConfig, Receiver, ReceiverKind};
use super::delivery::{deliver, Delivery};
use super::evaluate::firing_at;
use super::notification::{
    alert_json, alertmanager_body, webhook_body, webhook_id, Prefix, Transition,
};
use super::outbox::{Batch, OpenAlert, Outbox, OutboxEntry, OutboxError};
use super::rules::AlertPolicy;
use crate::clock::{Clock, SystemClock};
use crate::domain::format_millis;
use crate::projector::Projections;

/// How often the evaluator looks for a new published prefix.
const PREFIX_POLL: Duration = Duration::from_millis(250);

/// The alert policy in force, and (with receivers) the outbox and its delivery tasks.
pub struct Alerting {
    config: AlertsConfig,
    outbox: Option<Arc<Outbox>>,
    /// Per receiver name, in config order.
    counters: BTreeMap<String, Arc<DeliveryCounters>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What one receiver's delivery did since the start (for `/metrics`).
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub expired: AtomicU64,
    pub reposts: AtomicU64,
}

impl Alerting {
    /// The policy only: alerts are computed and served, nothing is sent (no `--alerts`, or a
    /// file without receivers, and tests of the queries).
    pub fn policy_only(config: AlertsConfig) -> Arc<Alerting> {
        let (stop, _) = watch::channel(false);
        Arc::new(Alerting {
            config,
            outbox: None,
            counters: BTreeMap::new(),
            stop,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Opens the outbox in `data_dir/alerts` and starts evaluating and delivering. Without
    /// receivers this is [`Alerting::policy_only`]. Must run inside a Tokio runtime.
    pub fn start(
        config: AlertsConfig,
        data_dir: &Path,
        projections: Arc<Projections>,
        ledger_key: SigningKey,
    ) -> Result<Arc<Alerting>, OutboxError> {
        if config.receivers.is_empty() {
            return Ok(Alerting::policy_only(config));
        }
        let outbox = Arc::new(Outbox::open(&data_dir.join("alerts"))?);
        let (stop, stopped) = watch::channel(false);
        let counters: BTreeMap<String, Arc<DeliveryCounters>> = config
            .receivers
            .iter()
            .map(|receiver| (receiver.name.clone(), Arc::default()))
            .collect();
        let wake: BTreeMap<String, Arc<Notify>> = config
            .receivers
            .iter()
            .map(|receiver| (receiver.name.clone(), Arc::new(Notify::new())))
            .collect();
        let client = reqwest::Client::builder()
            .timeout(config.delivery.timeout)
            .build()
            .map_err(|e| OutboxError::from_message(format!("HTTP client: {e}")))?;
        let mut tasks = Vec::new();
        for receiver in &config.receivers {
            tasks.push(tokio::spawn(deliver(Delivery {
                receiver: receiver.clone(),
                outbox: outbox.clone(),
                client: client.clone(),
                key: ledger_key.clone(),
                counters: counters[&receiver.name].clone(),
                wake: wake[&receiver.name].clone(),
                expiry_ms: millis(config.delivery.expiry),
                max_backoff: config.delivery.max_backoff,
                repost_interval: config.delivery.repost_interval,
                stopped: stopped.clone(),
            })));
        }
        tasks.push(tokio::spawn(evaluate_loop(
            config.clone(),
            outbox.clone(),
            projections,
            wake.into_values().collect(),
            stopped,
        )));
        Ok(Arc::new(Alerting {
            config,
            outbox: Some(outbox),
            counters,
            stop,
            tasks: Mutex::new(tasks),
        }))
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.config.policy
    }

    /// Where notifications go, in config order.
    pub fn receivers(&self) -> &[Receiver] {
        &self.config.receivers
    }

    /// Where alerts link to (the status page), if configured.
    pub fn link(&self) -> Option<&str> {
        self.config.link.as_deref()
    }

    /// Each receiver's name and counters, in config order.
    pub fn counters(&self) -> impl Iterator<Item = (&str, &DeliveryCounters)> + '_ {
        self.config.receivers.iter().filter_map(|receiver| {
            self.counters
                .get(&receiver.name)
                .map(|counters| (receiver.name.as_str(), counters.as_ref()))
        })
    }

    /// Entries waiting in the outbox and the wall-clock time of the oldest; `None` without
    /// receivers.
    pub fn outbox_depth(&self) -> Option<(usize, Option<i64>)> {
        self.outbox.as_ref().map(|outbox| outbox.depth())
    }

    /// Stops evaluating and delivering; what is in the outbox stays for the next start.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for task in tasks {
            let _ = task.await;
        }
    }
}

pub(super) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

async fn evaluate_loop(
    config: AlertsConfig,
    outbox: Arc<Outbox>,
    projections: Arc<Projections>,
    wake: Vec<Arc<Notify>>,
    mut stopped: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let mut poll = tokio::time::interval(PREFIX_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut evaluated: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = stopped.changed() => return,
        }
        let tree_size = projections.read().tree_size;
        let due = evaluated.is_none_or(|(size, at)| {
            size != tree_size || at.elapsed() >= config.delivery.evaluation_interval
        });
        if !due {
            continue;
        }
        evaluated = Some((tree_size, Instant::now()));
        let (config, outbox, projections) = (config.clone(), outbox.clone(), projections.clone());
        let written =
            tokio::task::spawn_blocking(move || evaluate_once(&config, &outbox, &projections))
                .await;
        match written {
            Ok(Ok(true)) => wake.iter().for_each(|notify| notify.notify_one()),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot write alert transitions; retrying"),
            Err(error) => tracing::error!(%error, "the alert evaluation failed"),
        }
    }
}

/// One evaluation: the transitions since the outbox's open alerts, written. True when
/// anything was written.
fn evaluate_once(
    config: &AlertsConfig,
    outbox: &Outbox,
    projections: &Projections,
) -> Result<bool, OutboxError> {
    let now = projections.now();
    let (firing, tree_size, checkpoint) = {
        let published = projections.read();
        (
            firing_at(&published.projection, &config.policy, now),
            published.tree_size,
            published.checkpoint.clone(),
        )
    };
    let open: BTreeMap<(String, String), OpenAlert> = outbox.open_alerts()?.into_iter().collect();
    let wall_now = SystemClock.now_millis();
    let prefix = Prefix {
        tree_size,
        checkpoint: &checkpoint,
    };
    let mut batch = Batch::default();
    let mut firing_keys = BTreeSet::new();
    for alert in &firing {
        let key = (alert.service_id.clone(), alert.rule.name().to_owned());
        match open.get(&key) {
            // The same episode (a burn episode's start may move when late observations
            // change the windows: it stays the same episode).
            Some(open)
                if alert.rule.is_burn() || open.alert["since"] == format_millis(alert.since) =>
            {
                firing_keys.insert(key);
                continue;
            }
            // A state rule's episode ended and another began between two evaluations: the
            // old one resolves below, and the new one fires.
            Some(_) => {}
            None => {
                firing_keys.insert(key.clone());
            }
        }
        let value = alert_json(alert, config.link.as_deref());
        let entries = entries_for(config, &value, Transition::Fired, now, &prefix, wall_now);
        batch.entries.extend(entries);
        batch.opened.push((
            key.0,
            key.1,
            OpenAlert {
                alert: value,
                tree_size,
                checkpoint: checkpoint.clone(),
            },
        ));
    }
    // Resolutions are written before the firings of the same batch's entries would be
    // sent: a receiver sees an episode end before the next begins.
    let mut resolutions = Batch::default();
    for (key, open_alert) in &open {
        if firing_keys.contains(key) {
            continue;
        }
        let mut value = open_alert.alert.clone();
        value["until"] = serde_json::Value::String(format_millis(now));
        let entries = entries_for(config, &value, Transition::Resolved, now, &prefix, wall_now);
        resolutions.entries.extend(entries);
        resolutions.closed.push(key.clone());
    }
    resolutions.entries.append(&mut batch.entries);
    resolutions.opened = batch.opened;
    let batch = resolutions;
    if batch.opened.is_empty() && batch.closed.is_empty() {
        return Ok(false);
    }
    tracing::info!(
        fired = batch.opened.len(),
        resolved = batch.closed.len(),
        tree_size,
        "alert transitions"
    );
    outbox.write(batch)?;
    Ok(true)
}

/// One outbox entry per receiver for a transition of `alert`.
fn entries_for(
    config: &AlertsConfig,
    alert: &serde_json::Value,
    transition: Transition,
    at: i64,
    prefix: &Prefix,
    wall_now: i64,
) -> Vec<OutboxEntry> {
    let id = webhook_id(alert, transition);
    config
        .receivers
        .iter()
        .map(|receiver| OutboxEntry {
            receiver: receiver.name.clone(),
            webhook_id: id.clone(),
            body: match receiver.kind {
                ReceiverKind::Alertmanager { .. } => alertmanager_body([(alert, prefix.clone())]),
                ReceiverKind::Webhook { .. } => webhook_body(alert, transition, at, prefix),
            },
            created_at: wall_now,
            next_attempt_at: wall_now,
            attempts: 0,
        })
        .collect()
}
