//! Talking to a ledger: connecting, signing envelopes, and verifying what a ledger serves.
//! The CLI (`admin`, `log`) and the integration tests use these; a probe author can read
//! them as the reference for producing valid envelopes.

use ed25519_dalek::SigningKey;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use crate::crypto::{self, SigningContext};
use crate::domain::{AdminCommand, Observation};
use crate::entry;
use crate::merkle::{self, Hash, TileAppender};
use crate::pb;
use crate::pb::log_service_client::LogServiceClient;

/// Connects to `address` (`http://host:port`, `https://host:port`, or `host:port`). An
/// `https` address uses TLS, trusting the Mozilla root certificates built into the binary.
pub async fn connect(address: &str) -> Result<Channel, tonic::transport::Error> {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let mut endpoint = Endpoint::from_shared(uri)?;
    if endpoint.uri().scheme_str() == Some("https") {
        endpoint = endpoint.tls_config(ClientTlsConfig::new().with_webpki_roots())?;
    }
    endpoint.connect().await
}

pub fn sign_observation(key: &SigningKey, observation: &Observation) -> pb::SignedObservation {
    let body = entry::encode_observation(observation);
    let signature = crypto::sign(key, SigningContext::Observation, &body).to_vec();
    pb::SignedObservation { body, signature }
}

pub fn sign_command(signer: &str, key: &SigningKey, command: &AdminCommand) -> pb::SignedCommand {
    let body = entry::encode_command(command);
    let signature = crypto::sign(key, SigningContext::Command, &body).to_vec();
    pb::SignedCommand {
        signer: signer.to_owned(),
        body,
        signature,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyLogError {
    #[error("gRPC: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("entry {index}: {detail}")]
    Entry { index: u64, detail: String },
    #[error("the root over the served entries {computed} does not match the checkpoint's root {signed} at tree size {tree_size}")]
    RootMismatch {
        tree_size: u64,
        computed: String,
        signed: String,
    },
}

/// What `verify_log` established.
#[derive(Debug)]
pub struct VerifiedLog {
    pub checkpoint: Checkpoint,
    /// The signed note that was verified.
    pub note: String,
    /// Every entry's bytes, in index order, as served.
    pub entries: Vec<Vec<u8>>,
}

/// Fetches the latest checkpoint, checks its signature against the pinned `verifier`,
/// downloads every entry it covers, checks each decodes at its index, and recomputes the
/// Merkle root from the served bytes.
pub async fn verify_log(
    channel: Channel,
    verifier: &NoteVerifier,
) -> Result<VerifiedLog, VerifyLogError> {
    let mut log = LogServiceClient::new(channel);
    let note = log
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await?
        .into_inner()
        .checkpoint;
    let checkpoint = open_checkpoint(&note, verifier)?;
    let mut stream = log
        .get_entries(pb::GetEntriesRequest {
            start: 0,
            end: checkpoint.tree_size,
        })
        .await?
        .into_inner();
    let mut entries = Vec::new();
    let mut appender = TileAppender::new();
    let mut leaves: Vec<Hash> = Vec::new();
    while let Some(message) = stream.message().await? {
        let expected = entries.len() as u64;
        if message.index != expected {
            return Err(VerifyLogError::Entry {
                index: expected,
                detail: format!("the server sent entry {} instead", message.index),
            });
        }
        let decoded = entry::decode_entry(&message.entry).map_err(|e| VerifyLogError::Entry {
            index: expected,
            detail: e.to_string(),
        })?;
        if decoded.index != expected {
            return Err(VerifyLogError::Entry {
                index: expected,
                detail: format!("the entry says it is entry {}", decoded.index),
            });
        }
        leaves.push(merkle::leaf_hash(&message.entry));
        if leaves.len() == 4096 {
            appender.append(&leaves);
            leaves.clear();
        }
        entries.push(message.entry);
    }
    appender.append(&leaves);
    let computed = appender.root();
    if appender.size() != checkpoint.tree_size || computed != checkpoint.root_hash {
        return Err(VerifyLogError::RootMismatch {
            tree_size: checkpoint.tree_size,
            computed: hex::encode(computed),
            signed: hex::encode(checkpoint.root_hash),
        });
    }
    Ok(VerifiedLog {
        checkpoint,
        note,
        entries,
    })
}
