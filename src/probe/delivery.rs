//! Delivery: sends spooled observations to the ledger, oldest first, and settles each one
//! by its ack. The only place in the probe where protobuf types appear.
//!
//! One `Submit` request at a time, carrying up to [`MAX_BATCH`] of the oldest pending
//! observations; the acks come back in the same order. ACCEPTED and DUPLICATE settle an
//! observation as delivered; REJECTED moves it to the dead letters (never retried). When
//! the request fails as a whole (ledger down, network, timeout, a malformed answer) the
//! same observations are sent again after an exponential backoff with jitter — which is
//! safe, because the ledger answers DUPLICATE for bytes it already holds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::checks::{describe_failure, known_cause};
use super::spool::{Settlement, Spool, SpoolError, SpooledObservation};
use super::Counters;
use crate::client::{self, ConnectOptions, LedgerChannel};
use crate::domain::RejectReason;
use crate::entry;
use crate::pb;
use crate::pb::ingest_service_client::IngestServiceClient;

/// Observations per `Submit` request (the ledger takes up to 4096).
pub const MAX_BATCH: usize = 512;
/// Longest wait for a connection to the ledger.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the acks of one request.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The spool, shared by the check tasks (appending) and delivery (settling). A std mutex:
/// every operation is short and synchronous (at most one `fdatasync`), and the slow ones
/// run on blocking threads.
pub type SharedSpool = Arc<Mutex<Spool>>;

pub struct Delivery {
    pub ledger: String,
    /// TLS to an `https://` ledger (CA, client certificate), already read and checked.
    pub tls: crate::tls::ClientTls,
    pub spool: SharedSpool,
    pub counters: Arc<Counters>,
    /// Notified whenever something is spooled.
    pub wake: Arc<Notify>,
}

impl Delivery {
    /// Delivers until told to drain through `drain` (a deadline), then until the spool is
    /// empty or the deadline has passed; what is left stays spooled for the next start.
    /// Returns an error only when the spool fails (which is fatal for the agent). The
    /// sender of `drain` must outlive this call.
    pub async fn run(self, mut drain: watch::Receiver<Option<Instant>>) -> Result<(), SpoolError> {
        let mut ingest: Option<IngestServiceClient<LedgerChannel>> = None;
        let mut backoff = Backoff::default();
        loop {
            let deadline = *drain.borrow_and_update();
            let batch = self
                .spool
                .lock()
                .expect("spool lock")
                .oldest_pending(MAX_BATCH);
            if batch.is_empty() {
                if deadline.is_some() {
                    return Ok(());
                }
                tokio::select! {
                    () = self.wake.notified() => {}
                    changed = drain.changed() => if changed.is_err() { return Ok(()) },
                }
                continue;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(());
            }
            let attempt = self.submit(&mut ingest, &batch);
            let outcome = match deadline {
                None => attempt.await,
                Some(deadline) => tokio::time::timeout_at(deadline, attempt)
                    .await
                    .unwrap_or_else(|_| Err("the shutdown deadline passed".into())),
            };
            match outcome {
                Ok(settlements) => {
                    if backoff.failures() > 0 {
                        tracing::info!(ledger = %self.ledger, "the ledger is reachable again; delivering the spool");
                    }
                    backoff.reset();
                    self.settle(&batch, settlements).await?;
                }
                Err(Failure {
                    problem,
                    retry_after,
                }) => {
                    ingest = None;
                    // A ledger that says when to come back (rate limit) is not asked sooner.
                    let delay = backoff
                        .next_delay(rand::random::<f64>())
                        .max(retry_after.unwrap_or_default());
                    let pending = self.spool.lock().expect("spool lock").pending_count();
                    tracing::warn!(
                        ledger = %self.ledger,
                        %problem,
                        pending,
                        retry_in = %humantime::format_duration(round_to_millis(delay)),
                        "cannot deliver to the ledger; the observations stay spooled"
                    );
                    let mut wake_at = Instant::now() + delay;
                    if let Some(deadline) = deadline {
                        wake_at = wake_at.min(deadline);
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(wake_at) => {}
                        // Draining starts: try once more now rather than after the backoff.
                        changed = drain.changed() => if changed.is_err() { return Ok(()) },
                    }
                }
            }
        }
    }

    /// One `Submit` of `batch`, connecting first if needed: the settlement of each
    /// observation, or why the request as a whole failed.
    async fn submit(
        &self,
        ingest: &mut Option<IngestServiceClient<LedgerChannel>>,
        batch: &[SpooledObservation],
    ) -> Result<Vec<(u64, Settlement)>, Failure> {
        let connected = match ingest {
            Some(connected) => connected,
            None => {
                let options = ConnectOptions {
                    tls: self.tls.clone(),
                    read_token: None,
                };
                let connecting = client::connect_with(&self.ledger, &options);
                let channel = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                    .await
                    .map_err(|_| {
                        format!(
                            "no connection within {}",
                            humantime::format_duration(CONNECT_TIMEOUT)
                        )
                    })?
                    .map_err(|error| describe_failure(&error))?;
                ingest.insert(IngestServiceClient::new(channel))
            }
        };
        let request = pb::SubmitRequest {
            observations: batch
                .iter()
                .map(|observation| pb::SignedObservation {
                    body: observation.body.clone(),
                    signature: observation.signature.to_vec(),
                })
                .collect(),
        };
        let response = tokio::time::timeout(SUBMIT_TIMEOUT, connected.submit(request))
            .await
            .map_err(|_| {
                format!(
                    "no answer within {}",
                    humantime::format_duration(SUBMIT_TIMEOUT)
                )
            })?
            .map_err(|status| Failure {
                problem: known_cause(&status)
                    .unwrap_or_else(|| format!("{:?}: {}", status.code(), status.message())),
                retry_after: tonic_types::StatusExt::get_details_retry_info(&status)
                    .and_then(|info| info.retry_delay),
            })?;
        Ok(settlements(batch, &response.into_inner().acks)?)
    }

    /// Counts and logs the outcomes, then settles them in the spool (on a blocking thread:
    /// it syncs files).
    async fn settle(
        &self,
        batch: &[SpooledObservation],
        settlements: Vec<(u64, Settlement)>,
    ) -> Result<(), SpoolError> {
        for ((seq, settlement), observation) in settlements.iter().zip(batch) {
            match settlement {
                Settlement::Delivered => Counters::add(&self.counters.delivered, 1),
                Settlement::Rejected { reason, message } => {
                    Counters::add(&self.counters.rejected, 1);
                    if *reason == Some(RejectReason::TooLate) {
                        Counters::add(&self.counters.rejected_too_late, 1);
                    }
                    let service_id = entry::decode_observation(&observation.body)
                        .map(|o| o.service_id.to_string())
                        .unwrap_or_default();
                    tracing::warn!(
                        seq,
                        service_id,
                        reason = reason.map_or("unknown", RejectReason::as_str),
                        explanation = %message,
                        "the ledger rejected an observation; it is moved to the dead letters and not sent again"
                    );
                }
            }
        }
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || spool.lock().expect("spool lock").settle(&settlements))
            .await
            .expect("the settle task does not panic")
    }
}

/// Why a `Submit` failed as a whole, and how long the ledger asked us to wait, if it did
/// (`RESOURCE_EXHAUSTED` from the per-probe rate limit carries a `RetryInfo`).
struct Failure {
    problem: String,
    retry_after: Option<Duration>,
}

impl From<String> for Failure {
    fn from(problem: String) -> Failure {
        Failure {
            problem,
            retry_after: None,
        }
    }
}

impl From<&str> for Failure {
    fn from(problem: &str) -> Failure {
        problem.to_owned().into()
    }
}

/// Pairs each observation of `batch` with its ack. Any ack that is missing or has no
/// known status fails the whole batch (it is sent again; nothing is settled on a guess).
fn settlements(
    batch: &[SpooledObservation],
    acks: &[pb::Ack],
) -> Result<Vec<(u64, Settlement)>, String> {
    if acks.len() != batch.len() {
        return Err(format!(
            "the ledger answered {} acks for {} observations",
            acks.len(),
            batch.len()
        ));
    }
    batch
        .iter()
        .zip(acks)
        .map(|(observation, ack)| {
            let settlement = match pb::AckStatus::try_from(ack.status) {
                Ok(pb::AckStatus::Accepted | pb::AckStatus::Duplicate) => Settlement::Delivered,
                Ok(pb::AckStatus::Rejected) => {
                    let reason = reject_reason(ack.reason);
                    let message = match reason {
                        Some(_) => ack.message.clone(),
                        None => format!("(reject reason code {}) {}", ack.reason, ack.message),
                    };
                    Settlement::Rejected { reason, message }
                }
                _ => {
                    return Err(format!(
                        "the ledger answered an ack with status {} for seq {}",
                        ack.status, observation.seq
                    ))
                }
            };
            Ok((observation.seq, settlement))
        })
        .collect()
}

/// The domain's reason for a wire reason; `None` for one this probe does not know (a newer
/// ledger): still a rejection, dead-lettered with its code.
fn reject_reason(code: i32) -> Option<RejectReason> {
    Some(match pb::RejectReason::try_from(code).ok()? {
        pb::RejectReason::Unspecified => return None,
        pb::RejectReason::Invalid => RejectReason::Invalid,
        pb::RejectReason::BadSignature => RejectReason::BadSignature,
        pb::RejectReason::UnknownProbe => RejectReason::UnknownProbe,
        pb::RejectReason::ProbeRevoked => RejectReason::ProbeRevoked,
        pb::RejectReason::UnknownService => RejectReason::UnknownService,
        pb::RejectReason::StaleSeq => RejectReason::StaleSeq,
        pb::RejectReason::Equivocation => RejectReason::Equivocation,
        pb::RejectReason::TooLate => RejectReason::TooLate,
        pb::RejectReason::TooEarly => RejectReason::TooEarly,
    })
}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis() as u64)
}

/// Exponential backoff with jitter: after the n-th failure in a row, wait between half and
/// all of `min(INITIAL × 2ⁿ, MAX)`. The jitter keeps many probes from reconnecting in step
/// when the ledger comes back; the half that is fixed keeps a probe from hammering it.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub const INITIAL: Duration = Duration::from_millis(200);
    pub const MAX: Duration = Duration::from_secs(30);

    /// The wait after one more failure; `jitter` is uniform in `[0, 1)`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let ceiling = Self::INITIAL
            .saturating_mul(1 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spooled(seq: u64) -> SpooledObservation {
        SpooledObservation {
            seq,
            body: vec![1, 2, 3],
            signature: [0; 64],
        }
    }

    fn ack(status: pb::AckStatus, reason: i32, message: &str) -> pb::Ack {
        pb::Ack {
            status: status as i32,
            index: 7,
            reason,
            message: message.into(),
        }
    }

    #[test]
    fn acks_settle_their_observations_in_order() {
        let batch = [spooled(10), spooled(11), spooled(12), spooled(13)];
        let acks = [
            ack(pb::AckStatus::Accepted, 0, ""),
            ack(pb::AckStatus::Duplicate, 0, ""),
            ack(
                pb::AckStatus::Rejected,
                pb::RejectReason::TooLate as i32,
                "too old",
            ),
            ack(pb::AckStatus::Rejected, 99, "a reason from the future"),
        ];
        let settled = settlements(&batch, &acks).unwrap();
        assert_eq!(
            settled,
            vec![
                (10, Settlement::Delivered),
                (11, Settlement::Delivered),
                (
                    12,
                    Settlement::Rejected {
                        reason: Some(RejectReason::TooLate),
                        message: "too old".into()
                    }
                ),
                (
                    13,
                    Settlement::Rejected {
                        reason: None,
                        message: "(reject reason code 99) a reason from the future".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_short_or_unreadable_answer_settles_nothing() {
        let batch = [spooled(1), spooled(2)];
        assert!(settlements(&batch, &[ack(pb::AckStatus::Accepted, 0, "")]).is_err());
        let unspecified = [
            ack(pb::AckStatus::Accepted, 0, ""),
            ack(pb::AckStatus::Unspecified, 0, ""),
        ];
        assert!(settlements(&batch, &unspecified).is_err());
    }

    #[test]
    fn every_wire_reason_maps_to_the_same_domain_reason() {
        for reason in RejectReason::ALL {
            let wire = pb::RejectReason::from_str_name(&format!(
                "REJECT_REASON_{}",
                reason.as_str().to_uppercase()
            ))
            .unwrap();
            assert_eq!(reject_reason(wire as i32), Some(reason));
        }
        assert_eq!(reject_reason(0), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::default();
        let lowest: Vec<_> = (0..10).map(|_| backoff.next_delay(0.0)).collect();
        assert_eq!(lowest[0], Duration::from_millis(100));
        assert_eq!(lowest[1], Duration::from_millis(200));
        assert_eq!(lowest[2], Duration::from_millis(400));
        assert_eq!(lowest[9], Duration::from_secs(15));
        let mut highest = Backoff::default();
        assert_eq!(highest.next_delay(0.999_999).as_millis(), 199);
        for _ in 0..100 {
            assert!(highest.next_delay(0.999_999) <= Backoff::MAX);
        }
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(100));
    }
}
