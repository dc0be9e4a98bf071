//! `IngestService`: probes submit signed observations.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::admission::{Admission, Overloaded, RateLimited};
use super::client_cert::{self, CertificateRefusal};
use super::{convert, status};
use crate::domain::Outcome;
use crate::log::{Ledger, WriteError, MAX_EVENTS_PER_COMMIT};
use crate::metrics::RefusedCall;
use crate::pb;
use crate::pb::ingest_service_server::IngestService;

/// Most observations in one `Submit` request.
pub const MAX_SUBMIT_BATCH: usize = 4096;
/// Observations a stream hands to the ledger at once (whatever has already arrived).
const STREAM_CHUNK: usize = 512;
/// Chunks of one stream waiting to become durable; beyond this the stream stops reading,
/// which pushes back on the probe through HTTP/2 flow control.
const STREAM_CHUNKS_IN_FLIGHT: usize = 16;

const _: () = assert!(MAX_SUBMIT_BATCH <= MAX_EVENTS_PER_COMMIT);

pub struct IngestApi {
    pub ledger: Arc<Ledger>,
    pub admission: Arc<Admission>,
    /// Mutual TLS (`--client-ca`): each request needs a client certificate naming the
    /// probe of every observation in it (see `client_cert`).
    pub require_client_cert: bool,
}

impl IngestApi {
    /// The probe names the request's client certificate vouches for, when they are required.
    fn certified_names<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<Arc<[String]>>, IngestRefusal> {
        if !self.require_client_cert {
            return Ok(None);
        }
        let names = client_cert::certified_names(request)?;
        Ok(Some(names.into()))
    }

    /// `Submit` up to its answer; a refusal is counted by the caller, once.
    async fn submit_once(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Vec<Outcome>, IngestRefusal> {
        let names = self.certified_names(&request)?;
        let observations = request.into_inner().observations;
        if observations.len() > MAX_SUBMIT_BATCH {
            return Err(IngestRefusal::TooManyObservations {
                got: observations.len(),
            });
        }
        let envelopes: Vec<_> = observations.into_iter().map(convert::envelope).collect();
        if let Some(names) = &names {
            client_cert::check_probe_ids(names, &envelopes)?;
        }
        let batch = self.ledger.verify(envelopes).await?;
        self.admission.charge(&batch)?;
        Ok(self.ledger.enqueue(batch).await?.outcomes().await?)
    }
}

/// Why a whole ingest call (a `Submit`, or a `SubmitStream`) was refused; its status is
/// `status::ingest_refusal`'s. Counted in `/metrics` exactly once per call, where the call
/// is answered.
#[derive(Debug, thiserror::Error)]
pub enum IngestRefusal {
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Certificate(#[from] CertificateRefusal),
    #[error("a Submit request may carry at most {MAX_SUBMIT_BATCH} observations, got {got}; split the batch")]
    TooManyObservations { got: usize },
    /// The ledger could not take the batch (writes stopped, shutting down, disk full).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A stream's chunk after one that was refused: not the call's own refusal.
    #[error("an earlier part of this stream was refused; nothing after it was stored")]
    EarlierChunkRefused,
    /// The stream's own transport or decoding failed (or the client went away): not a
    /// refusal by the ledger.
    #[error("{}", .0.message())]
    Transport(Status),
    /// The task that submitted a stream's chunk panicked.
    #[error("submission task failed: {0}")]
    TaskFailed(String),
}

impl IngestRefusal {
    /// The `reason` it is counted under; `None` for what is not the ledger's refusal.
    fn counted_as(&self) -> Option<RefusedCall> {
        match self {
            IngestRefusal::Overloaded(_) => Some(RefusedCall::Overloaded),
            IngestRefusal::RateLimited(_) => Some(RefusedCall::RateLimited),
            IngestRefusal::Certificate(_) => Some(RefusedCall::ClientCertificate),
            IngestRefusal::TooManyObservations { .. } => Some(RefusedCall::InvalidRequest),
            IngestRefusal::Write(WriteError::Unavailable(_)) => Some(RefusedCall::Unavailable),
            IngestRefusal::Write(WriteError::DiskFull(_)) => Some(RefusedCall::DiskFull),
            IngestRefusal::EarlierChunkRefused
            | IngestRefusal::Transport(_)
            | IngestRefusal::TaskFailed(_) => None,
        }
    }

    /// Counts the refusal and gives the status to answer with.
    fn answer(self, ledger: &Ledger) -> Status {
        if let Some(reason) = self.counted_as() {
            ledger.metrics().record_refused_call(reason);
        }
        status::ingest_refusal(self)
    }
}

type AckStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::SubmitStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for IngestApi {
    /// Its unit of admission was taken before the body was decoded (`ShedSubmitsLayer`).
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let outcomes = self
            .submit_once(request)
            .await
            .map_err(|refusal| refusal.answer(&self.ledger))?;
        Ok(Response::new(pb::SubmitResponse {
            acks: outcomes.into_iter().map(convert::ack).collect(),
        }))
    }

    type SubmitStreamStream = AckStream;

    async fn submit_stream(
        &self,
        request: Request<Streaming<pb::SubmitStreamRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let names = self
            .certified_names(&request)
            .map_err(|refusal| refusal.answer(&self.ledger))?;
        let inbound = request.into_inner();
        let (acks, acks_out) =
            mpsc::channel::<Result<pb::SubmitStreamResponse, Status>>(STREAM_CHUNK);
        let (pending, mut pending_in) = mpsc::channel(STREAM_CHUNKS_IN_FLIGHT);

        // Reader: hand each chunk of arrived observations to the ledger without waiting for
        // the previous chunk, so several chunks share group commits. Chunks are verified in
        // parallel but pass admission and enter the writer's queue strictly in stream order
        // (a later chunk overtaking an earlier one would make the earlier seqs stale).
        let ledger = self.ledger.clone();
        let admission = self.admission.clone();
        tokio::spawn(async move {
            let mut chunks = inbound.ready_chunks(STREAM_CHUNK);
            let (first_turn, mut turn) = oneshot::channel();
            let _ = first_turn.send(true);
            while let Some(chunk) = chunks.next().await {
                let mut envelopes = Vec::with_capacity(chunk.len());
                let mut failure = None;
                for message in chunk {
                    match message {
                        Ok(message) => match message.observation {
                            Some(signed) => envelopes.push(convert::envelope(signed)),
                            None => envelopes.push(crate::log::Envelope {
                                body: Vec::new(),
                                signature: Vec::new(),
                            }),
                        },
                        Err(status) => {
                            failure = Some(status);
                            break;
                        }
                    }
                }
                if let Some(names) = &names {
                    if let Err(refusal) = client_cert::check_probe_ids(names, &envelopes) {
                        // Nothing of this chunk reaches the ledger; the stream ends here.
                        let _ = pending.send(Err(refusal.into())).await;
                        return;
                    }
                }
                if !envelopes.is_empty() {
                    let unit = match admission.try_enter() {
                        Ok(unit) => unit,
                        Err(overloaded) => {
                            tracing::warn!("ingest overloaded: a SubmitStream was ended");
                            let _ = pending.send(Err(overloaded.into())).await;
                            return;
                        }
                    };
                    let (next_turn, following) = oneshot::channel();
                    let previous = std::mem::replace(&mut turn, following);
                    let submitted = tokio::spawn(submit_in_turn(
                        ledger.clone(),
                        admission.clone(),
                        envelopes,
                        (previous, next_turn),
                        unit,
                    ));
                    if pending.send(Ok(submitted)).await.is_err() {
                        return;
                    }
                }
                if let Some(status) = failure {
                    // The stream's own transport or decoding failed (or the client went
                    // away): not a refusal by the ledger, so not counted.
                    let _ = pending.send(Err(IngestRefusal::Transport(status))).await;
                    return;
                }
            }
        });

        // Writer: answer chunks strictly in the order they were read; the first failure
        // ends the stream, and only it is counted (the chunks after it fail with it).
        let ledger = self.ledger.clone();
        tokio::spawn(async move {
            while let Some(next) = pending_in.recv().await {
                let submitted = match next {
                    Ok(submitted) => submitted,
                    Err(refusal) => {
                        let _ = acks.send(Err(refusal.answer(&ledger))).await;
                        return;
                    }
                };
                let outcomes = match submitted.await {
                    Ok(Ok(outcomes)) => outcomes,
                    Ok(Err(refusal)) => {
                        let _ = acks.send(Err(refusal.answer(&ledger))).await;
                        return;
                    }
                    Err(join_error) => {
                        let refusal = IngestRefusal::TaskFailed(join_error.to_string());
                        let _ = acks.send(Err(refusal.answer(&ledger))).await;
                        return;
                    }
                };
                for outcome in outcomes {
                    let response = pb::SubmitStreamResponse {
                        ack: Some(convert::ack(outcome)),
                    };
                    if acks.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(acks_out))))
    }
}

/// One chunk of a stream: verified at once, then — once the previous chunk has passed
/// admission and been queued (`turn.0` says whether it was) — charged to its probes and
/// queued, which lets the next chunk go (`turn.1`). After a refused chunk every later
/// chunk of the stream is refused too, so nothing after the error is stored.
async fn submit_in_turn(
    ledger: Arc<Ledger>,
    admission: Arc<Admission>,
    envelopes: Vec<crate::log::Envelope>,
    turn: (oneshot::Receiver<bool>, oneshot::Sender<bool>),
    _unit: OwnedSemaphorePermit,
) -> Result<Vec<Outcome>, IngestRefusal> {
    let (previous, next) = turn;
    let verified = ledger.verify(envelopes).await;
    let go = previous.await.unwrap_or(false);
    let queued = async {
        if !go {
            return Err(IngestRefusal::EarlierChunkRefused);
        }
        let batch = verified?;
        admission.charge(&batch)?;
        Ok(ledger.enqueue(batch).await?)
    }
    .await;
    let _ = next.send(queued.is_ok());
    Ok(queued?.outcomes().await?)
}
