//! One receiver's delivery from the outbox.
//!
//! Delivery sends each receiver's entries in the order written, each attempt with a
//! timeout; a failure waits `backoff` (doubling from 1 s up to `max_backoff`, times a
//! random factor in (0.5, 1]) before the next attempt, and holds the later entries back so
//! a receiver never sees a resolution before its alert. An entry older than `expiry` is
//! dropped (counted). An Alertmanager receiver is also sent every open alert again each
//! `repost_interval`, as Alertmanager expects of a client.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rand::Rng;
use tokio::sync::{watch, Notify};

use super::config::{Receiver, ReceiverKind};
use super::notification::{alertmanager_body, Prefix};
use super::notifier::{millis, DeliveryCounters};
use super::outbox::{Outbox, OutboxError};
use super::signing::signature_header;
use crate::clock::{Clock, SystemClock};

/// The first retry delay (before jitter).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// One receiver's delivery task and what it needs.
pub(super) struct Delivery {
    pub(super) receiver: Receiver,
    pub(super) outbox: Arc<Outbox>,
    pub(super) client: reqwest::Client,
    pub(super) key: SigningKey,
    pub(super) counters: Arc<DeliveryCounters>,
    pub(super) wake: Arc<Notify>,
    pub(super) expiry_ms: i64,
    pub(super) max_backoff: Duration,
    pub(super) repost_interval: Duration,
    pub(super) stopped: watch::Receiver<bool>,
}

pub(super) async fn deliver(mut delivery: Delivery) {
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
