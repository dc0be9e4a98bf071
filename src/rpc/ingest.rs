//! `IngestService`: probes submit signed observations.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::admission::Admission;
use super::{client_cert, convert, status};
use crate::domain::Outcome;
use crate::log::{Ledger, VerifiedBatch, WriteError, MAX_EVENTS_PER_COMMIT};
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
    fn certified_names<T>(&self, request: &Request<T>) -> Result<Option<Arc<[String]>>, Status> {
        if !self.require_client_cert {
            return Ok(None);
        }
        let names = client_cert::certified_names(request)
            .map_err(|status| refused(&self.ledger, RefusedCall::ClientCertificate, status))?;
        Ok(Some(names.into()))
    }
}

/// Counts a call refused as a whole (nothing stored) and passes its status on.
fn refused(ledger: &Ledger, reason: RefusedCall, status: Status) -> Status {
    ledger.metrics().record_refused_call(reason);
    status
}

/// A write error that refused a whole call, counted by its cause.
fn refused_write(ledger: &Ledger, error: WriteError) -> Status {
    let reason = match error {
        WriteError::Unavailable(_) => RefusedCall::Unavailable,
        WriteError::DiskFull(_) => RefusedCall::DiskFull,
    };
    refused(ledger, reason, status::write_error(error))
}

/// Charges the batch's probes; a refusal is a rate-limited call.
fn charge(ledger: &Ledger, admission: &Admission, batch: &VerifiedBatch) -> Result<(), Status> {
    admission
        .charge(batch)
        .map_err(|status| refused(ledger, RefusedCall::RateLimited, status))
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
        let names = self.certified_names(&request)?;
        let observations = request.into_inner().observations;
        let ledger = &self.ledger;
        if observations.len() > MAX_SUBMIT_BATCH {
            let status = status::invalid_argument(format!(
                "a Submit request may carry at most {MAX_SUBMIT_BATCH} observations, got {}; split the batch",
                observations.len()
            ));
            return Err(refused(ledger, RefusedCall::InvalidRequest, status));
        }
        let envelopes: Vec<_> = observations.into_iter().map(convert::envelope).collect();
        if let Some(names) = &names {
            client_cert::check_probe_ids(names, &envelopes)
                .map_err(|status| refused(ledger, RefusedCall::ClientCertificate, status))?;
        }
        let write_refused = |error| refused_write(ledger, error);
        let batch = ledger.verify(envelopes).await.map_err(write_refused)?;
        charge(ledger, &self.admission, &batch)?;
        let outcomes = ledger
            .enqueue(batch)
            .await
            .map_err(write_refused)?
            .outcomes()
            .await
            .map_err(write_refused)?;
        Ok(Response::new(pb::SubmitResponse {
            acks: outcomes.into_iter().map(convert::ack).collect(),
        }))
    }

    type SubmitStreamStream = AckStream;

    async fn submit_stream(
        &self,
        request: Request<Streaming<pb::SubmitStreamRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let names = self.certified_names(&request)?;
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
                    if let Err(status) = client_cert::check_probe_ids(names, &envelopes) {
                        // Nothing of this chunk reaches the ledger; the stream ends here.
                        let status = refused(&ledger, RefusedCall::ClientCertificate, status);
                        let _ = pending.send(Err(status)).await;
                        return;
                    }
                }
                if !envelopes.is_empty() {
                    let unit = match admission.try_enter() {
                        Ok(unit) => unit,
                        Err(status) => {
                            tracing::warn!("ingest overloaded: a SubmitStream was ended");
                            let status = refused(&ledger, RefusedCall::Overloaded, status);
                            let _ = pending.send(Err(status)).await;
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
                    let _ = pending.send(Err(status)).await;
                    return;
                }
            }
        });

        // Writer: answer chunks strictly in the order they were read; the first failure
        // ends the stream.
        tokio::spawn(async move {
            while let Some(next) = pending_in.recv().await {
                let submitted = match next {
                    Ok(submitted) => submitted,
                    Err(status) => {
                        let _ = acks.send(Err(status)).await;
                        return;
                    }
                };
                let outcomes = match submitted.await {
                    Ok(Ok(outcomes)) => outcomes,
                    Ok(Err(status)) => {
                        let _ = acks.send(Err(status)).await;
                        return;
                    }
                    Err(join_error) => {
                        let _ = acks
                            .send(Err(Status::internal(format!(
                                "submission task failed: {join_error}"
                            ))))
                            .await;
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
) -> Result<Vec<Outcome>, Status> {
    let (previous, next) = turn;
    let verified = ledger.verify(envelopes).await;
    let go = previous.await.unwrap_or(false);
    let queued = async {
        if !go {
            return Err(Status::aborted(
                "an earlier part of this stream was refused; nothing after it was stored",
            ));
        }
        let batch = verified.map_err(|error| refused_write(&ledger, error))?;
        charge(&ledger, &admission, &batch)?;
        ledger
            .enqueue(batch)
            .await
            .map_err(|error| refused_write(&ledger, error))
    }
    .await;
    let _ = next.send(queued.is_ok());
    queued?
        .outcomes()
        .await
        .map_err(|error| refused_write(&ledger, error))
}
