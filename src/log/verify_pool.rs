//! Signature verification off the async threads, batched across requests.
//!
//! One thread per core takes the batches that queued up while it was busy — all of them, up
//! to [`COALESCE_SIGNATURES`] — and verifies them together ([`super::verify_batches`]):
//! natural batching, like the writer's group commit. An idle pool takes a batch at once, so
//! a lone request waits for nothing; under load the batches grow, and an Ed25519 batch costs
//! less per signature the larger it is (about 30 µs per signature in batches of 32, 20 µs
//! in batches of 256 on the benchmark machine), so the cores fall behind later. Batches are
//! taken in arrival order and never split.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{verify_batches, Envelope, Registry, VerifiedObservation};
use crate::domain::Rejection;

/// Signatures one thread takes together, at most (a single larger batch is taken whole).
const COALESCE_SIGNATURES: usize = 256;

type Verdicts = Vec<Result<VerifiedObservation, Rejection>>;

struct Job {
    registry: Arc<Registry>,
    envelopes: Vec<Envelope>,
    reply: oneshot::Sender<Verdicts>,
}

/// The verification threads; they stop when the pool is dropped.
pub struct VerifyPool {
    jobs: Mutex<Sender<Job>>,
}

impl VerifyPool {
    /// Starts `threads` verification threads.
    pub fn start(threads: usize) -> std::io::Result<VerifyPool> {
        let (jobs, queue) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("verify-{n}"))
                .spawn(move || work(&queue))?;
        }
        Ok(VerifyPool {
            jobs: Mutex::new(jobs),
        })
    }

    /// Ingest rules 1–3 for `envelopes` under `registry`; `None` if the batch could not be
    /// verified (the pool is gone, or verification panicked).
    pub async fn verify(
        &self,
        registry: Arc<Registry>,
        envelopes: Vec<Envelope>,
    ) -> Option<Verdicts> {
        let (reply, verdicts) = oneshot::channel();
        let job = Job {
            registry,
            envelopes,
            reply,
        };
        self.jobs.lock().ok()?.send(job).ok()?;
        verdicts.await.ok()
    }
}

/// One verification thread: takes what is queued, verifies it, answers; until the pool goes.
fn work(queue: &Mutex<Receiver<Job>>) {
    while let Some(jobs) = take(queue) {
        // Verification runs on untrusted bytes and is fuzzed not to panic; if it ever did,
        // the callers get `None` (their reply senders drop) and this thread carries on.
        let verified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut registries = Vec::with_capacity(jobs.len());
            let mut batches = Vec::with_capacity(jobs.len());
            let mut replies = Vec::with_capacity(jobs.len());
            for job in jobs {
                registries.push(job.registry);
                batches.push(job.envelopes);
                replies.push(job.reply);
            }
            let batches = registries
                .iter()
                .map(|registry| registry.as_ref())
                .zip(batches)
                .collect();
            for (reply, verdicts) in replies.into_iter().zip(verify_batches(batches)) {
                let _ = reply.send(verdicts);
            }
        }));
        if verified.is_err() {
            tracing::error!("signature verification panicked; its requests were refused");
        }
    }
}

/// Waits for the next batch, then takes whatever else is already queued, up to
/// [`COALESCE_SIGNATURES`] in all. `None` once the pool is dropped.
fn take(queue: &Mutex<Receiver<Job>>) -> Option<Vec<Job>> {
    let queue = queue.lock().ok()?;
    let first = queue.recv().ok()?;
    let mut signatures = first.envelopes.len();
    let mut jobs = vec![first];
    while signatures < COALESCE_SIGNATURES {
        match queue.try_recv() {
            Ok(job) => {
                signatures += job.envelopes.len();
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    Some(jobs)
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
            ledger_public_key: SigningKey::from_bytes(&[8; 32]).verifying_key(),
            admin_keys: vec![AdminKey {
                name: "admin".into(),
                public_key: admin.verifying_key(),
            }],
            max_lateness: Duration::from_secs(3600),
            max_skew: Duration::from_secs(30),
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
                public_key: probe_key(n).verifying_key(),
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
            registry.apply(seq as u64 + 1, "admin", &body, &command);
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

    #[test]
    fn a_thread_takes_what_is_queued_up_to_the_limit_and_never_splits_a_batch() {
        let (jobs, queue) = mpsc::channel();
        let registry = Arc::new(registry(true));
        for size in [200, 100, 50, 300] {
            let (reply, _) = oneshot::channel();
            jobs.send(Job {
                registry: registry.clone(),
                envelopes: envelopes(1, size),
                reply,
            })
            .unwrap();
        }
        let queue = Mutex::new(queue);
        let sizes =
            |jobs: Vec<Job>| -> Vec<usize> { jobs.iter().map(|job| job.envelopes.len()).collect() };
        assert_eq!(sizes(take(&queue).unwrap()), vec![200, 100]);
        assert_eq!(sizes(take(&queue).unwrap()), vec![50, 300]);
        drop(jobs);
        assert!(take(&queue).is_none());
    }
}
