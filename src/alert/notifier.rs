//! The alerting tasks of `serve`: one evaluates the published prefix into the outbox, and
//! one per receiver delivers from it.
//!
//! - **Evaluation** runs when the published tree size changed (polled every 250 ms) and
//!   every `evaluation_interval` (state changes with time alone, when observations go
//!   stale), at the ledger's current time. It compares what fires with the outbox's open
//!   alerts: a new alert is a *fired* transition, an open alert no longer firing a
//!   *resolved* one; both are written, with one outbox entry per receiver, in one flushed
//!   transaction before anything is sent.
//! - **Delivery** sends each receiver's entries in the order written, each attempt with a
//!   timeout; a failure waits `backoff` (doubling from 1 s up to `max_backoff`, times a
//!   random factor in (0.5, 1]) before the next attempt, and holds the later entries back so
//!   a receiver never sees a resolution before its alert. An entry older than `expiry` is
//!   dropped (counted). An Alertmanager receiver is also sent every open alert again each
//!   `repost_interval`, as Alertmanager expects of a client.
//!
//! Delivery runs on its own tasks and its own database, so a receiver that is slow, hangs
//! or is down never holds a lock that ingest or queries take.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rand::Rng;
use tokio::sync::{watch, Notify};

use super::config::{AlertsConfig, Receiver, ReceiverKind};
use super::evaluate::firing_at;
use super::notification::{
    alert_json, alertmanager_body, webhook_body, webhook_id, Prefix, Transition,
};
use super::outbox::{Batch, OpenAlert, Outbox, OutboxEntry, OutboxError};
use super::rules::AlertPolicy;
use super::signing::signature_header;
use crate::clock::{Clock, SystemClock};
use crate::domain::format_millis;
use crate::projector::Projections;

/// How often the evaluator looks for a new published prefix.
const PREFIX_POLL: Duration = Duration::from_millis(250);
/// The first retry delay (before jitter).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

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

fn millis(duration: Duration) -> i64 {
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

/// One receiver's delivery task and what it needs.
struct Delivery {
    receiver: Receiver,
    outbox: Arc<Outbox>,
    client: reqwest::Client,
    key: SigningKey,
    counters: Arc<DeliveryCounters>,
    wake: Arc<Notify>,
    expiry_ms: i64,
    max_backoff: Duration,
    repost_interval: Duration,
    stopped: watch::Receiver<bool>,
}

async fn deliver(mut delivery: Delivery) {
    let mut last_repost = Instant::now();
    let mut stopping = delivery.stopped.clone();
    loop {
        // An attempt cut short by the stop leaves its entry in the outbox for the next start.
        let drained = tokio::select! {
            drained = delivery.drain() => drained,
            _ = stopping.changed() => return,
        };
        let wait = match drained {
            Ok(wait) => wait,
            Err(error) => {
                tracing::error!(receiver = %delivery.receiver.name, %error, "alert outbox");
                Duration::from_secs(1)
            }
        };
        let mut wait = wait;
        if let ReceiverKind::Alertmanager { .. } = delivery.receiver.kind {
            if last_repost.elapsed() >= delivery.repost_interval {
                tokio::select! {
                    () = delivery.repost() => {}
                    _ = stopping.changed() => return,
                }
                last_repost = Instant::now();
            }
            wait = wait.min(
                delivery
                    .repost_interval
                    .saturating_sub(last_repost.elapsed()),
            );
        }
        tokio::select! {
            _ = delivery.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = delivery.stopped.changed() => return,
        }
    }
}

impl Delivery {
    /// Sends what is due, in order, until an entry is not due or fails; returns how long
    /// to wait before trying again (unless woken).
    async fn drain(&mut self) -> Result<Duration, OutboxError> {
        let entries = {
            let (outbox, name) = (self.outbox.clone(), self.receiver.name.clone());
            tokio::task::spawn_blocking(move || outbox.entries(&name))
                .await
                .map_err(|e| OutboxError::from_message(e.to_string()))??
        };
        for (key, mut entry) in entries {
            if *self.stopped.borrow() {
                return Ok(Duration::ZERO);
            }
            let now = SystemClock.now_millis();
            if now.saturating_sub(entry.created_at) > self.expiry_ms {
                tracing::warn!(receiver = %self.receiver.name, webhook_id = %entry.webhook_id, attempts = entry.attempts, "alert notification expired undelivered");
                self.blocking(move |outbox| outbox.remove(&key)).await?;
                self.counters.expired.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if entry.next_attempt_at > now {
                return Ok(Duration::from_millis(
                    (entry.next_attempt_at - now).unsigned_abs(),
                ));
            }
            match self.send(&entry.webhook_id, &entry.body).await {
                Ok(()) => {
                    self.blocking(move |outbox| outbox.remove(&key)).await?;
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    self.counters
                        .failed_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    entry.attempts = entry.attempts.saturating_add(1);
                    let backoff = backoff(entry.attempts, self.max_backoff);
                    entry.next_attempt_at = now.saturating_add(millis(backoff));
                    tracing::warn!(receiver = %self.receiver.name, webhook_id = %entry.webhook_id, attempts = entry.attempts, %error, retry_in = ?backoff, "alert delivery failed");
                    self.blocking(move |outbox| outbox.reschedule(&key, &entry))
                        .await?;
                    return Ok(backoff);
                }
            }
        }
        Ok(Duration::from_secs(3600))
    }

    async fn blocking(
        &self,
        work: impl FnOnce(&Outbox) -> Result<(), OutboxError> + Send + 'static,
    ) -> Result<(), OutboxError> {
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || work(&outbox))
            .await
            .map_err(|e| OutboxError::from_message(e.to_string()))?
    }

    /// One attempt: 2xx is delivered, anything else (or no answer in time) failed.
    async fn send(&self, webhook_id: &str, body: &str) -> Result<(), String> {
        let request = match &self.receiver.kind {
            ReceiverKind::Alertmanager { url } => self.client.post(alertmanager_url(url)),
            ReceiverKind::Webhook { url, secret } => {
                let timestamp = SystemClock.now_millis().div_euclid(1000);
                let signature =
                    signature_header(&self.key, secret.as_deref(), webhook_id, timestamp, body);
                self.client
                    .post(url.clone())
                    .header("webhook-id", webhook_id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
            }
        };
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }

    /// Alertmanager: every open alert again, in one request (best effort; the next
    /// re-post tries again).
    async fn repost(&self) {
        let outbox = self.outbox.clone();
        let Ok(Ok(open)) = tokio::task::spawn_blocking(move || outbox.open_alerts()).await else {
            return;
        };
        if open.is_empty() {
            return;
        }
        let body = alertmanager_body(open.iter().map(|(_, open)| {
            (
                &open.alert,
                Prefix {
                    tree_size: open.tree_size,
                    checkpoint: &open.checkpoint,
                },
            )
        }));
        match self.send("", &body).await {
            Ok(()) => {
                self.counters.reposts.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(receiver = %self.receiver.name, %error, "re-posting firing alerts failed")
            }
        }
    }
}

/// `BASE/api/v2/alerts`.
fn alertmanager_url(base: &reqwest::Url) -> String {
    format!("{}/api/v2/alerts", base.as_str().trim_end_matches('/'))
}

/// The wait after the `attempts`-th failure: 1 s doubling, at most `max`, times a random
/// factor in (0.5, 1].
fn backoff(attempts: u32, max: Duration) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = doubled.min(max);
    capped.mul_f64(1.0 - rand::thread_rng().gen::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let max = Duration::from_secs(60);
        for attempts in 1..12 {
            let expected = Duration::from_secs(1 << (attempts - 1)).min(max);
            let wait = backoff(attempts, max);
            assert!(
                wait <= expected && wait >= expected / 2,
                "{attempts}: {wait:?}"
            );
        }
        assert!(backoff(u32::MAX, max) <= max);
    }

    #[test]
    fn alertmanager_alerts_are_posted_under_the_base_url() {
        let url = reqwest::Url::parse("http://127.0.0.1:9093/am/").unwrap();
        assert_eq!(
            alertmanager_url(&url),
            "http://127.0.0.1:9093/am/api/v2/alerts"
        );
    }
}
