//! `LogService`: raw entries, checkpoints and Merkle proofs, for auditors and
//! microservices.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::status;
use crate::log::Ledger;
use crate::pb;
use crate::pb::log_service_server::LogService;

/// Entries read ahead of a slow reader; beyond this the reading task waits.
const ENTRY_BUFFER: usize = 256;

pub struct LogApi {
    pub ledger: Arc<Ledger>,
}

type EntryStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::GetEntriesResponse, Status>> + Send>>;
type SubscribeStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl LogService for LogApi {
    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let tree_size = request.into_inner().tree_size;
        let checkpoint = if tree_size == 0 {
            self.ledger.checkpoint()
        } else {
            self.ledger
                .checkpoint_at(tree_size)
                .map_err(status::read_error)?
        };
        Ok(Response::new(pb::GetCheckpointResponse {
            checkpoint: checkpoint.note,
            tree_size: checkpoint.tree_size,
            verifier_key: self.ledger.verifier().to_string(),
        }))
    }

    type GetEntriesStream = EntryStream;

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<EntryStream>, Status> {
        let request = request.into_inner();
        let end = match request.end {
            0 => self.ledger.tree_size(),
            end => end,
        };
        let entries = self
            .ledger
            .entries(request.start..end)
            .map_err(status::read_error)?;
        let (sender, receiver) = mpsc::channel(ENTRY_BUFFER);
        // sled reads block; keep them off the async workers.
        tokio::task::spawn_blocking(move || {
            for item in entries {
                let message = item
                    .map(|(index, entry)| pb::GetEntriesResponse { index, entry })
                    .map_err(status::read_error);
                let failed = message.is_err();
                if sender.blocking_send(message).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let request = request.into_inner();
        let (proof, leaf_hash) = self
            .ledger
            .inclusion_proof(request.index, request.tree_size)
            .map_err(status::read_error)?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            index: request.index,
            tree_size: request.tree_size,
            proof: proof.iter().map(|h| h.to_vec()).collect(),
            leaf_hash: leaf_hash.to_vec(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let request = request.into_inner();
        let proof = self
            .ledger
            .consistency_proof(request.first, request.second)
            .map_err(status::read_error)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            first: request.first,
            second: request.second,
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<SubscribeStream>, Status> {
        let mut next = request.into_inner().start;
        let ledger = self.ledger.clone();
        let mut sizes = ledger.watch_tree_size();
        let (sender, receiver) = mpsc::channel(ENTRY_BUFFER);
        tokio::spawn(async move {
            loop {
                let size = *sizes.borrow_and_update();
                while next < size {
                    let chunk_end = size.min(next + ENTRY_BUFFER as u64);
                    let ledger = ledger.clone();
                    let start = next;
                    let chunk = tokio::task::spawn_blocking(move || {
                        ledger.entries_from(start, chunk_end).collect::<Vec<_>>()
                    })
                    .await;
                    let Ok(chunk) = chunk else { return };
                    for item in chunk {
                        let message = item
                            .map(|(index, entry)| pb::SubscribeResponse { index, entry })
                            .map_err(status::read_error);
                        let failed = message.is_err();
                        if sender.send(message).await.is_err() || failed {
                            return;
                        }
                    }
                    next = chunk_end;
                }
                tokio::select! {
                    changed = sizes.changed() => if changed.is_err() { return },
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
