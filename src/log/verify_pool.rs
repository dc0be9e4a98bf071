//! Signature verification off the async threads.
//!
//! One thread per core takes the requests that queued up while it was busy and verifies
//! them ([`super::verify_batches`]), like the writer's group commit: an idle pool takes a
//! request at once, so a lone request waits for nothing, and under load one wake-up serves
//! several requests. Each signature is judged on its own by the signature rule, so what a
//! thread takes together never changes a verdict. Requests are taken in arrival order and
//! never split; a thread stops taking once it holds [`COALESCE_SIGNATURES`] or more, and
//! leaves a share of the queue to each idle thread, so a burst is spread over the cores
//! instead of verified on one while the other waits. Requests whose caller has gone
//! (deadline, disconnect) are dropped unverified.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use super::{verify_batches, Envelope, Registry, VerifiedObservation};
use crate::domain::Rejection;

/// A thread stops taking requests once it holds this many signatures (the last request
/// taken may carry it past; a request is never split).
const COALESCE_SIGNATURES: usize = 256;

type Verdicts = Vec<Result<VerifiedObservation, Rejection>>;

struct Job {
    registry: Arc<Registry>,
    envelopes: Vec<Envelope>,
    reply: oneshot::Sender<Verdicts>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for work.
    idle: usize,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// The verification threads; they finish what is queued and stop when the pool is dropped.
pub struct VerifyPool {
    shared: Arc<Shared>,
}

impl VerifyPool {
    /// Starts `threads` verification threads.
    pub fn start(threads: usize) -> std::io::Result<VerifyPool> {
        let shared = Arc::new(Shared::default());
        for n in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("verify-{n}"))
                .spawn(move || work(&shared))?;
        }
        Ok(VerifyPool { shared })
    }

    /// Ingest rules 1–3 for `envelopes` under `registry`; `None` if the batch could not be
    /// verified (verification panicked).
    pub async fn verify(
        &self,
        registry: Arc<Registry>,
        envelopes: Vec<Envelope>,
    ) -> Option<Verdicts> {
        let (reply, verdicts) = oneshot::channel();
        self.shared.queue.lock().ok()?.jobs.push_back(Job {
            registry,
            envelopes,
            reply,
        });
        self.shared.ready.notify_one();
        verdicts.await.ok()
    }
}

impl Drop for VerifyPool {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.closed = true;
        }
        self.shared.ready.notify_all();
    }
}

/// One verification thread: takes what is queued, verifies it, answers; until the pool goes.
fn work(shared: &Shared) {
    while let Some(jobs) = take(shared) {
        // Verification runs on untrusted bytes and is fuzzed not to panic; if it ever did,
        // the callers get `None` (their reply senders drop) and this thread carries on.
        let verified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (batches, replies): (Vec<_>, Vec<_>) = jobs
                .into_iter()
                .map(|job| ((job.registry, job.envelopes), job.reply))
                .unzip();
            for (reply, verdicts) in replies.into_iter().zip(verify_batches(batches)) {
                let _ = reply.send(verdicts);
            }
        }));
        if verified.is_err() {
            tracing::error!("signature verification panicked; its requests were refused");
        }
    }
}

/// Waits for work, then takes requests in arrival order: its share of the queue (the queue
/// split evenly between this thread and the idle ones), at least one request, and no more
/// once it holds [`COALESCE_SIGNATURES`]. `None` once the pool is dropped and the queue is
/// empty.
fn take(shared: &Shared) -> Option<Vec<Job>> {
    let mut queue = shared.queue.lock().ok()?;
    loop {
        while queue.jobs.is_empty() {
            if queue.closed {
                return None;
            }
            queue.idle += 1;
            queue = shared.ready.wait(queue).ok()?;
            queue.idle -= 1;
        }
        let share = queue.jobs.len().div_ceil(queue.idle + 1);
        let mut jobs = Vec::new();
        let mut signatures = 0;
        while jobs.len() < share && signatures < COALESCE_SIGNATURES {
            let Some(job) = queue.jobs.pop_front() else {
                break;
            };
            // A caller that has gone (deadline, disconnect) needs no answer.
            if !job.reply.is_closed() {
                signatures += job.envelopes.len();
                jobs.push(job);
            }
        }
        if !queue.jobs.is_empty() && queue.idle > 0 {
            shared.ready.notify_one();
        }
        if !jobs.is_empty() {
            return Some(jobs);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::crypto::{self, SigningContext};
    use crate::domain::{
        AdminCommand, AdminKey, Command, Genesis, Observation, ProbeId, Quorum, RejectReason,
        ServiceId, ServiceSpec, Status,
    };
    use crate::entry;

    fn probe_key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    /// A registry with service `svc` and probes `p1`, `p2` (keys 1 and 2), or only `p1`.
    fn registry(with_p2: bool) -> Registry {
        let admin = SigningKey::from_bytes(&[9; 32]);
        let mut registry = Registry::new(Genesis {
            origin: "test.example/log".into(),
            ledger_public_key: crate::crypto::PublicKey::from(&SigningKey::from_bytes(&[8; 32])),
            admin_keys: vec![AdminKey {
                name: "admin".into(),
                public_key: crate::crypto::PublicKey::from(&admin),
            }],
            max_lateness: Duration::from_secs(3600),
            max_skew: Duration::from_secs(30),
            admin_threshold: 1,
            previous_log: None,
        });
        let mut commands = vec![Command::DefineService(ServiceSpec {
            service_id: ServiceId::parse("svc").unwrap(),
            name: "Service".into(),
            agency: "Agency".into(),
            slo_target: 0.99,
            quorum: Quorum::Majority,
            staleness: Duration::from_secs(90),
        })];
        for n in 1..=if with_p2 { 2 } else { 1 } {
            commands.push(Command::RegisterProbe {
                probe_id: ProbeId::parse(&format!("p{n}")).unwrap(),
                public_key: crate::crypto::PublicKey::from(&probe_key(n)),
                location: "here".into(),
            });
        }
        for (seq, command) in commands.into_iter().enumerate() {
            let command = AdminCommand {
                seq: seq as u64 + 1,
                issued_at: 0,
                command,
            };
            let body = entry::encode_command(&command);
            let at = crate::governance::Position {
                index: seq as u64 + 1,
                received_at: 0,
            };
            registry.apply(at, "admin", &body, &[], &command);
        }
        registry
    }

    /// `count` observations from probe `pN`, signed with key `N`.
    fn envelopes(probe: u8, count: u64) -> Vec<Envelope> {
        (1..=count)
            .map(|seq| {
                let body = entry::encode_observation(&Observation {
                    probe_id: ProbeId::parse(&format!("p{probe}")).unwrap(),
                    service_id: ServiceId::parse("svc").unwrap(),
                    seq,
                    observed_at: 1_000 * seq as i64,
                    status: Status::Up,
                    latency_ms: 5,
                    detail: String::new(),
                });
                let signature =
                    crypto::sign(&probe_key(probe), SigningContext::Observation, &body).to_vec();
                Envelope { body, signature }
            })
            .collect()
    }

    fn reasons(verdicts: &Verdicts) -> Vec<Option<RejectReason>> {
        verdicts
            .iter()
            .map(|v| v.as_ref().err().map(|rejection| rejection.reason))
            .collect()
    }

    /// Three batches as the pool gets them: all good; one bad signature; a probe the
    /// registry it arrived under does not know. Each gets exactly its own verdicts.
    fn three_batches() -> (Registry, Registry, [Vec<Envelope>; 3]) {
        let mut second = envelopes(2, 10);
        second[6].signature =
            crypto::sign(&probe_key(1), SigningContext::Observation, &second[6].body).to_vec();
        (
            registry(true),
            registry(false),
            [envelopes(1, 20), second, envelopes(2, 5)],
        )
    }

    fn check(verdicts: &[Verdicts]) {
        assert_eq!(reasons(&verdicts[0]), vec![None; 20]);
        let mut second = vec![None; 10];
        second[6] = Some(RejectReason::BadSignature);
        assert_eq!(reasons(&verdicts[1]), second);
        assert_eq!(
            reasons(&verdicts[2]),
            vec![Some(RejectReason::UnknownProbe); 5]
        );
    }

    #[test]
    fn batches_verified_together_get_their_own_verdicts() {
        let (with_p2, without_p2, [a, b, c]) = three_batches();
        let verdicts = verify_batches(vec![(&with_p2, a), (&with_p2, b), (&without_p2, c)]);
        check(&verdicts);
    }

    #[tokio::test]
    async fn the_pool_answers_each_request() {
        let pool = VerifyPool::start(2).unwrap();
        let (with_p2, without_p2, [a, b, c]) = three_batches();
        let (with_p2, without_p2) = (Arc::new(with_p2), Arc::new(without_p2));
        let (a, b, c) = tokio::join!(
            pool.verify(with_p2.clone(), a),
            pool.verify(with_p2, b),
            pool.verify(without_p2, c)
        );
        check(&[a.unwrap(), b.unwrap(), c.unwrap()]);
    }

    fn queued(sizes: &[u64]) -> (Shared, Vec<oneshot::Receiver<Verdicts>>) {
        let registry = Arc::new(registry(true));
        let shared = Shared::default();
        let mut receivers = Vec::new();
        for &size in sizes {
            let (reply, receiver) = oneshot::channel();
            receivers.push(receiver);
            shared.queue.lock().unwrap().jobs.push_back(Job {
                registry: registry.clone(),
                envelopes: envelopes(1, size),
                reply,
            });
        }
        (shared, receivers)
    }

    fn sizes(jobs: Option<Vec<Job>>) -> Vec<usize> {
        jobs.unwrap()
            .iter()
            .map(|job| job.envelopes.len())
            .collect()
    }

    #[test]
    fn a_thread_takes_what_is_queued_until_the_limit_and_never_splits_a_request() {
        let (shared, _receivers) = queued(&[200, 100, 50, 300, 10]);
        assert_eq!(sizes(take(&shared)), vec![200, 100]);
        assert_eq!(sizes(take(&shared)), vec![50, 300]);
        assert_eq!(sizes(take(&shared)), vec![10]);
        shared.queue.lock().unwrap().closed = true;
        assert!(take(&shared).is_none());
    }

    #[test]
    fn idle_threads_get_a_share_and_callers_that_left_are_skipped() {
        let (shared, mut receivers) = queued(&[32, 32, 32, 32, 32, 32]);
        // One other thread waits for work: this one takes half of the queue.
        shared.queue.lock().unwrap().idle = 1;
        assert_eq!(sizes(take(&shared)), vec![32, 32, 32]);
        // The callers of the 4th and 5th requests gave up: they are dropped unverified.
        receivers.drain(3..5);
        shared.queue.lock().unwrap().idle = 0;
        assert_eq!(sizes(take(&shared)), vec![32]);
        assert!(shared.queue.lock().unwrap().jobs.is_empty());
    }
}
