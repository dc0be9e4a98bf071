//! The agent: runs every check on its own schedule, signs and spools each result, keeps
//! delivery going, logs a one-line summary every minute, and shuts down without losing
//! anything.
//!
//! Each check is its own task, so a slow check never delays another. A result is signed
//! inside the spool's append, with the seq the spool allocates (see [`Spool::append`]).
//! Shutdown: the check tasks stop scheduling, a run in flight finishes (it is bounded by
//! its timeout) and is spooled, then delivery gets `drain_timeout` to empty the spool;
//! whatever it could not deliver stays spooled for the next start.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures_util::future::join_all;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::checks::{CheckResult, CheckSetupError, Checker};
use super::config::ProbeConfig;
use super::delivery::{Delivery, SharedSpool};
use super::spool::{
    Appended, Spool, SpoolConfig, SpoolError, SpooledObservation, DEFAULT_SEGMENT_BYTES,
};
use super::{Counters, CountersSnapshot};
use crate::clock::Clock;
use crate::crypto::{self, SigningContext};
use crate::domain::{Millis, Observation, ProbeId, ServiceId, Status};
use crate::entry;

/// How often the summary line is logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// A run starts up to this fraction of the interval after its slot.
const JITTER_FRACTION: f64 = 0.1;

/// Run every check on its schedule until shut down, or every check once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Continuous,
    Once,
}

pub struct Agent {
    pub config: ProbeConfig,
    pub key: SigningKey,
    /// Stamps `observed_at`, and picks a new spool's first seq.
    pub clock: Arc<dyn Clock>,
    /// How long delivery keeps trying when the agent stops (after `--once`, or on SIGTERM).
    pub drain_timeout: Duration,
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    /// Counts since the agent started.
    pub totals: CountersSnapshot,
    /// Observations still in the spool at exit (delivered by the next start).
    pub pending: usize,
    /// In `Mode::Once`: every check's result and what became of it, in config order.
    pub once_results: Vec<OnceResult>,
}

#[derive(Debug)]
pub struct OnceResult {
    pub service_id: ServiceId,
    pub result: CheckResult,
    pub appended: Appended,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    CheckSetup(#[from] CheckSetupError),
    #[error("cannot set up TLS to the ledger: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Agent {
    /// Runs until `shutdown` resolves (in `Mode::Continuous`) or every check has run once
    /// (in `Mode::Once`), then drains delivery. An error means the spool failed: what was
    /// spooled before it is safe, but the agent cannot keep its promises and stops.
    pub async fn run(
        self,
        mode: Mode,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunReport, AgentError> {
        let checkers = self
            .config
            .checks
            .iter()
            .cloned()
            .map(Checker::new)
            .collect::<Result<Vec<_>, _>>()?;
        let files = &self.config.tls;
        let tls = crate::tls::ClientTls::load(
            files.ca_file.as_deref(),
            files.cert_file.as_deref(),
            files.key_file.as_deref(),
        )?;
        let spool_config = SpoolConfig {
            dir: self.config.spool_dir.clone(),
            max_pending: self.config.spool_max_observations,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        };
        // A new spool starts its seqs at the current time in microseconds (as `submit`
        // does), so a probe whose spool was lost does not restart below seqs the ledger
        // already holds.
        let first_seq_if_new = u64::try_from(self.clock.now_millis()).unwrap_or(0) * 1000;
        let spool =
            tokio::task::spawn_blocking(move || Spool::open(spool_config, first_seq_if_new))
                .await
                .expect("opening the spool does not panic")?;
        tracing::info!(
            probe_id = %self.config.probe_id,
            ledger = %self.config.ledger,
            checks = checkers.len(),
            spool = %self.config.spool_dir.display(),
            pending = spool.pending_count(),
            next_seq = spool.next_seq(),
            "probe agent started"
        );
        let spool: SharedSpool = Arc::new(Mutex::new(spool));
        let counters = Arc::new(Counters::default());
        let wake = Arc::new(Notify::new());
        let (drain, drain_receiver) = watch::channel(None);
        let mut delivery = tokio::spawn(
            Delivery {
                ledger: self.config.ledger.clone(),
                tls,
                spool: spool.clone(),
                counters: counters.clone(),
                wake: wake.clone(),
            }
            .run(drain_receiver),
        );
        let recorder = Recorder {
            probe_id: self.config.probe_id.clone(),
            key: Arc::new(self.key),
            spool: spool.clone(),
            counters: counters.clone(),
            wake,
            clock: self.clock.clone(),
        };

        let mut failure: Option<SpoolError> = None;
        let mut once_results = Vec::new();
        let mut delivery_done = false;
        match mode {
            Mode::Once => {
                let clock = &recorder.clock;
                let runs = join_all(checkers.iter().map(|checker| async move {
                    let observed_at = clock.now_millis();
                    (checker, observed_at, checker.run().await)
                }))
                .await;
                for (checker, observed_at, result) in runs {
                    let service_id = checker.config().service_id.clone();
                    match recorder.record(&service_id, observed_at, &result).await {
                        Ok(appended) => once_results.push(OnceResult {
                            service_id,
                            result,
                            appended,
                        }),
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
            }
            Mode::Continuous => {
                let (stop, stopped) = watch::channel(false);
                let (fatal, mut fatal_errors) = mpsc::channel::<SpoolError>(1);
                let mut tasks = JoinSet::new();
                for checker in checkers {
                    tasks.spawn(check_loop(
                        checker,
                        recorder.clone(),
                        stopped.clone(),
                        fatal.clone(),
                    ));
                }
                drop(fatal);
                let summary = tokio::spawn(summarize_every_minute(counters.clone(), spool.clone()));
                tokio::select! {
                    () = shutdown => tracing::info!("shutdown requested: finishing the checks in flight and flushing the spool"),
                    Some(error) = fatal_errors.recv() => failure = Some(error),
                    delivered = &mut delivery => {
                        delivery_done = true;
                        failure = delivered.expect("delivery does not panic").err();
                    }
                }
                let _ = stop.send(true);
                while let Some(joined) = tasks.join_next().await {
                    joined.expect("a check task does not panic");
                }
                if let Ok(error) = fatal_errors.try_recv() {
                    failure.get_or_insert(error);
                }
                summary.abort();
            }
        }

        if !delivery_done {
            let _ = drain.send(Some(Instant::now() + self.drain_timeout));
            if let Err(error) = delivery.await.expect("delivery does not panic") {
                failure.get_or_insert(error);
            }
        }
        let pending = spool.lock().expect("spool lock").pending_count();
        let totals = counters.snapshot();
        tracing::info!(
            "probe agent stopped; since start: {}",
            totals.summary(pending)
        );
        if let Some(error) = failure {
            return Err(error.into());
        }
        Ok(RunReport {
            totals,
            pending,
            once_results,
        })
    }
}

/// Turns check results into signed, spooled observations.
#[derive(Clone)]
struct Recorder {
    probe_id: ProbeId,
    key: Arc<SigningKey>,
    spool: SharedSpool,
    counters: Arc<Counters>,
    /// Tells delivery there is something new.
    wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
}

impl Recorder {
    async fn record(
        &self,
        service_id: &ServiceId,
        observed_at: Millis,
        result: &CheckResult,
    ) -> Result<Appended, SpoolError> {
        Counters::add(&self.counters.checks_run, 1);
        if result.status == Status::Down {
            Counters::add(&self.counters.checks_down, 1);
        }
        let unsigned = Observation {
            probe_id: self.probe_id.clone(),
            service_id: service_id.clone(),
            seq: 0,
            observed_at,
            status: result.status,
            latency_ms: result.latency_ms(),
            detail: result.detail.clone(),
        };
        let (spool, key) = (self.spool.clone(), self.key.clone());
        let appended = tokio::task::spawn_blocking(move || {
            spool.lock().expect("spool lock").append(|seq| {
                let observation = Observation { seq, ..unsigned };
                let body = entry::encode_observation(&observation);
                let signature = crypto::sign(&key, SigningContext::Observation, &body);
                SpooledObservation {
                    seq,
                    body,
                    signature,
                }
            })
        })
        .await
        .expect("appending to the spool does not panic")?;
        match appended {
            Appended::Spooled { seq } => {
                Counters::add(&self.counters.spooled, 1);
                tracing::debug!(seq, %service_id, status = ?result.status, detail = %result.detail, "spooled");
                self.wake.notify_one();
            }
            Appended::Full => {
                Counters::add(&self.counters.dropped, 1);
                tracing::warn!(
                    %service_id,
                    status = ?result.status,
                    detail = %result.detail,
                    "the spool is full of undelivered observations: this result is dropped (not signed, no seq); the oldest are kept"
                );
            }
        }
        Ok(appended)
    }
}

/// Runs one check on its schedule until `stop`; a run in flight is finished and spooled.
async fn check_loop(
    checker: Checker,
    recorder: Recorder,
    mut stop: watch::Receiver<bool>,
    fatal: mpsc::Sender<SpoolError>,
) {
    let service_id = checker.config().service_id.clone();
    let mut schedule = Schedule::new(Instant::now(), checker.config().interval, rand::random());
    let mut last_status = None;
    loop {
        let run_at = schedule.next_run(Instant::now(), rand::random());
        tokio::select! {
            () = tokio::time::sleep_until(run_at) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let observed_at = recorder.clock.now_millis();
        let result = checker.run().await;
        if last_status != Some(result.status) {
            tracing::info!(probe_id = %recorder.probe_id, %service_id, status = ?result.status, detail = %result.detail, latency_ms = result.latency_ms(), "service state seen by this probe");
            last_status = Some(result.status);
        }
        if let Err(error) = recorder.record(&service_id, observed_at, &result).await {
            tracing::error!(%service_id, %error, "cannot spool a result; the agent stops");
            let _ = fatal.send(error).await;
            return;
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Logs the summary line every minute: what happened in that minute, and what is pending.
async fn summarize_every_minute(counters: Arc<Counters>, spool: SharedSpool) {
    let mut ticker = tokio::time::interval_at(Instant::now() + SUMMARY_EVERY, SUMMARY_EVERY);
    let mut previous = counters.snapshot();
    loop {
        ticker.tick().await;
        let now = counters.snapshot();
        let pending = spool.lock().expect("spool lock").pending_count();
        tracing::info!("last minute: {}", now.since(&previous).summary(pending));
        previous = now;
    }
}

/// When a check runs: on a grid of `interval` that starts at a random phase, each run up to
/// a tenth of the interval after its grid point, so that probes started together spread
/// out and do not drift back into step. Missed grid points (a run slower than the
/// interval, a suspended process) are skipped, not made up in a burst.
#[derive(Debug)]
struct Schedule {
    next_slot: Instant,
    interval: Duration,
}

impl Schedule {
    /// `phase` in `[0, 1)`: where in the first interval the grid starts.
    fn new(start: Instant, interval: Duration, phase: f64) -> Schedule {
        Schedule {
            next_slot: start + interval.mul_f64(phase.clamp(0.0, 1.0)),
            interval,
        }
    }

    /// The next run's time; `jitter` in `[0, 1)`.
    fn next_run(&mut self, now: Instant, jitter: f64) -> Instant {
        if now >= self.next_slot + self.interval {
            let behind = (now - self.next_slot).as_nanos() / self.interval.as_nanos();
            let skipped = u32::try_from(behind).unwrap_or(u32::MAX);
            self.next_slot += self.interval.saturating_mul(skipped);
        }
        let run_at = self.next_slot
            + self
                .interval
                .mul_f64(JITTER_FRACTION * jitter.clamp(0.0, 1.0));
        self.next_slot += self.interval;
        run_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_the_grid_with_bounded_jitter() {
        let start = Instant::now();
        let interval = Duration::from_secs(10);
        let mut schedule = Schedule::new(start, interval, 0.5);
        assert_eq!(
            schedule.next_run(start, 0.0),
            start + Duration::from_secs(5)
        );
        assert_eq!(
            schedule.next_run(start, 0.5),
            start + Duration::from_millis(15_500)
        );
        // Jitter never accumulates: the grid stays where it was.
        assert_eq!(
            schedule.next_run(start, 0.0),
            start + Duration::from_secs(25)
        );
    }

    #[test]
    fn a_late_run_happens_once_and_missed_slots_are_skipped() {
        let start = Instant::now();
        let interval = Duration::from_secs(10);
        let mut schedule = Schedule::new(start, interval, 0.0);
        assert_eq!(schedule.next_run(start, 0.0), start);
        // The run took 12 s: the 10 s slot is late but still due, at once.
        assert_eq!(
            schedule.next_run(start + Duration::from_secs(12), 0.0),
            start + Duration::from_secs(10)
        );
        // The process was suspended for a minute: no burst of catch-up runs.
        let woke = start + Duration::from_secs(75);
        assert_eq!(
            schedule.next_run(woke, 0.0),
            start + Duration::from_secs(70)
        );
        assert_eq!(
            schedule.next_run(woke, 0.0),
            start + Duration::from_secs(80)
        );
    }
}
