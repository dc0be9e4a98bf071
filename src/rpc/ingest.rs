//! `IngestService`: probes submit signed observations.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{client_cert, convert, status};
use crate::log::{Ledger, MAX_EVENTS_PER_COMMIT};
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
        Ok(Some(client_cert::certified_names(request)?.into()))
    }
}

type AckStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::SubmitStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let names = self.certified_names(&request)?;
        let observations = request.into_inner().observations;
        if observations.len() > MAX_SUBMIT_BATCH {
            return Err(status::invalid_argument(format!(
                "a Submit request may carry at most {MAX_SUBMIT_BATCH} observations, got {}; split the batch",
                observations.len()
            )));
        }
        let envelopes: Vec<_> = observations.into_iter().map(convert::envelope).collect();
        if let Some(names) = &names {
            client_cert::check_probe_ids(names, &envelopes)?;
        }
        let outcomes = self
            .ledger
            .submit(envelopes)
            .await
            .map_err(status::write_error)?;
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
        // the previous chunk, so several chunks share group commits.
        let ledger = self.ledger.clone();
        tokio::spawn(async move {
            let mut chunks = inbound.ready_chunks(STREAM_CHUNK);
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
                    if let Err(refused) = client_cert::check_probe_ids(names, &envelopes) {
                        // Nothing of this chunk reaches the ledger; the stream ends here.
                        let _ = pending.send(Err(refused)).await;
                        return;
                    }
                }
                if !envelopes.is_empty() {
                    let ledger = ledger.clone();
                    let submitted = tokio::spawn(async move { ledger.submit(envelopes).await });
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

        // Writer: answer chunks strictly in the order they were read.
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
                    Ok(Err(error)) => {
                        let _ = acks.send(Err(status::write_error(error))).await;
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
