//! Talking to a ledger: connecting, signing envelopes, verifying what a ledger serves, and
//! turning its query answers into the projection core's plain values. The CLI (`admin`,
//! `log`, `report`, `audit`) and the integration tests use these; a probe author can read
//! them as the reference for producing valid envelopes.

use ed25519_dalek::SigningKey;
use tonic::codegen::http;
use tonic::transport::{Channel, Endpoint};

use crate::audit::{AuditError, AuditedPrefix, PrefixAudit, AUDIT_CHUNK};
use crate::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use crate::crypto::{self, SigningContext};
use crate::domain::{AdminCommand, Observation};
use crate::entry::{self, InvalidInput};
use crate::merkle::{self, Hash, TileAppender};
use crate::pb;
use crate::pb::log_service_client::LogServiceClient;
use crate::projection::{AvailabilityReport, Incident};
use crate::tls::ClientTls;
use crate::window::WindowSpec;

/// How a client reaches a ledger beyond its address: TLS settings (for `https://`) and the
/// read token, if the ledger has one.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    pub tls: ClientTls,
    /// Sent as `authorization: Bearer <token>` on every request.
    pub read_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("{address} is not an https:// address, but a CA file or client certificate was given: TLS settings need https://")]
    TlsSettingsWithoutHttps { address: String },
    #[error(transparent)]
    Token(#[from] crate::read_token::TokenError),
}

/// Connects to `address` (`http://host:port`, `https://host:port`, or `host:port`). An
/// `https` address uses TLS, trusting the Mozilla root certificates built into the binary.
pub async fn connect(address: &str) -> Result<Channel, tonic::transport::Error> {
    let mut endpoint = plain_endpoint(address)?;
    if is_https(&endpoint) {
        endpoint = endpoint.tls_config(ClientTls::default().tonic_config())?;
    }
    endpoint.connect().await
}

/// Connects as `options` say: an `https` address trusts the CA file instead of the
/// built-in roots when one is given, and presents the client certificate if any; the read
/// token goes with every request.
pub async fn connect_with(
    address: &str,
    options: &ConnectOptions,
) -> Result<LedgerChannel, ConnectError> {
    let authorization = match &options.read_token {
        None => None,
        Some(token) => Some(bearer(token)?),
    };
    let channel = connect_tls(address, &options.tls).await?;
    Ok(LedgerChannel {
        channel,
        authorization,
    })
}

/// Connects with `tls` for an `https` address (no read token).
pub async fn connect_tls(address: &str, tls: &ClientTls) -> Result<Channel, ConnectError> {
    Ok(endpoint(address, tls)?.connect().await?)
}

fn plain_endpoint(address: &str) -> Result<Endpoint, tonic::transport::Error> {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    Ok(Endpoint::from_shared(uri)?.tcp_nodelay(true))
}

fn is_https(endpoint: &Endpoint) -> bool {
    endpoint.uri().scheme_str() == Some("https")
}

fn endpoint(address: &str, tls: &ClientTls) -> Result<Endpoint, ConnectError> {
    let endpoint = plain_endpoint(address)?;
    if is_https(&endpoint) {
        Ok(endpoint.tls_config(tls.tonic_config())?)
    } else if tls.is_custom() {
        Err(ConnectError::TlsSettingsWithoutHttps {
            address: address.to_owned(),
        })
    } else {
        Ok(endpoint)
    }
}

fn bearer(token: &str) -> Result<http::HeaderValue, crate::read_token::TokenError> {
    crate::read_token::validate(token)?;
    let mut value = http::HeaderValue::try_from(format!("Bearer {token}"))
        .expect("a validated token is visible ASCII");
    value.set_sensitive(true);
    Ok(value)
}

/// A channel to a ledger that sends the read token (when there is one) with every request.
/// Any tonic client takes it in place of a [`Channel`]; a plain `Channel` converts into one
/// without a token.
#[derive(Clone, Debug)]
pub struct LedgerChannel {
    channel: Channel,
    authorization: Option<http::HeaderValue>,
}

impl From<Channel> for LedgerChannel {
    fn from(channel: Channel) -> LedgerChannel {
        LedgerChannel {
            channel,
            authorization: None,
        }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for LedgerChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = tonic::transport::channel::ResponseFuture;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(authorization) = &self.authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, authorization.clone());
        }
        self.channel.call(request)
    }
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
    #[error("gRPC: {:?}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("entry {index}: {detail}")]
    Entry { index: u64, detail: String },
    #[error("the {served} entries served hash to root {computed}, but the checkpoint signs root {signed} at tree size {tree_size}: an entry was changed, removed or reordered")]
    RootMismatch {
        tree_size: u64,
        served: u64,
        computed: String,
        signed: String,
    },
}

/// An entry proven to be in a signed tree: its bytes, leaf hash and inclusion proof.
#[derive(Debug)]
pub struct ProvenEntry {
    pub entry: Vec<u8>,
    pub leaf_hash: Hash,
    pub proof: Vec<Hash>,
}

/// Why a proof from the ledger does not hold.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("gRPC: {:?}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("the ledger served no entry {0}")]
    MissingEntry(u64),
    #[error("the proof holds a hash of {0} bytes instead of 32")]
    BadHash(usize),
    #[error("the proof does not verify against the signed checkpoint: {0}")]
    Invalid(#[from] crate::merkle::VerifyError),
}

fn hashes(proof: Vec<Vec<u8>>) -> Result<Vec<Hash>, ProofError> {
    proof
        .into_iter()
        .map(|hash| Hash::try_from(hash.as_slice()).map_err(|_| ProofError::BadHash(hash.len())))
        .collect()
}

/// Fetches entry `index` and its inclusion proof at the checkpoint's size, and checks
/// them against the checkpoint's root (the leaf hash is computed here, not taken).
pub async fn prove_inclusion(
    log: &mut LogServiceClient<LedgerChannel>,
    index: u64,
    checkpoint: &Checkpoint,
) -> Result<ProvenEntry, ProofError> {
    let mut stream = log
        .get_entries(pb::GetEntriesRequest {
            start: index,
            end: index.saturating_add(1),
        })
        .await?
        .into_inner();
    let entry = stream
        .message()
        .await?
        .filter(|served| served.index == index)
        .ok_or(ProofError::MissingEntry(index))?
        .entry;
    let proof = log
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            index,
            tree_size: checkpoint.tree_size,
        })
        .await?
        .into_inner()
        .proof;
    let proof = hashes(proof)?;
    let leaf_hash = merkle::leaf_hash(&entry);
    merkle::verify_inclusion(
        &leaf_hash,
        index,
        checkpoint.tree_size,
        &proof,
        &checkpoint.root_hash,
    )?;
    Ok(ProvenEntry {
        entry,
        leaf_hash,
        proof,
    })
}

/// Fetches the consistency proof between two checkpoints and checks it.
pub async fn prove_consistency(
    log: &mut LogServiceClient<LedgerChannel>,
    first: &Checkpoint,
    second: &Checkpoint,
) -> Result<Vec<Hash>, ProofError> {
    let proof = if first.tree_size == second.tree_size {
        Vec::new()
    } else {
        hashes(
            log.get_consistency_proof(pb::GetConsistencyProofRequest {
                first: first.tree_size,
                second: second.tree_size,
            })
            .await?
            .into_inner()
            .proof,
        )?
    };
    merkle::verify_consistency(
        first.tree_size,
        second.tree_size,
        &first.root_hash,
        &second.root_hash,
        &proof,
    )?;
    Ok(proof)
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

/// Entries `[0, tree_size)` as served, and the Merkle root they hash to.
#[derive(Debug)]
pub struct DownloadedEntries {
    pub entries: Vec<Vec<u8>>,
    pub root: Hash,
}

/// Fetches the latest checkpoint, checks its signature against the pinned `verifier`,
/// downloads every entry it covers, checks each decodes at its index, and recomputes the
/// Merkle root from the served bytes.
pub async fn verify_log(
    channel: impl Into<LedgerChannel>,
    verifier: &NoteVerifier,
) -> Result<VerifiedLog, VerifyLogError> {
    let mut log = LogServiceClient::new(channel.into());
    let (checkpoint, note) = fetch_checkpoint(&mut log, verifier).await?;
    let downloaded = download_entries(&mut log, checkpoint.tree_size, || {}).await?;
    check_root(&checkpoint, &downloaded)?;
    Ok(VerifiedLog {
        checkpoint,
        note,
        entries: downloaded.entries,
    })
}

/// Fetches the latest checkpoint and checks its signature against the pinned `verifier`;
/// returns it with its signed note.
pub async fn fetch_checkpoint(
    log: &mut LogServiceClient<LedgerChannel>,
    verifier: &NoteVerifier,
) -> Result<(Checkpoint, String), VerifyLogError> {
    let note = log
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await?
        .into_inner()
        .checkpoint;
    let checkpoint = open_checkpoint(&note, verifier)?;
    Ok((checkpoint, note))
}

/// Downloads entries `[0, tree_size)`, checks that each decodes and is the entry of its
/// index, and hashes them into a Merkle root. Calls `on_entry` after each entry (progress).
pub async fn download_entries(
    log: &mut LogServiceClient<LedgerChannel>,
    tree_size: u64,
    mut on_entry: impl FnMut(),
) -> Result<DownloadedEntries, VerifyLogError> {
    let mut stream = EntryStream::open(log, tree_size).await?;
    let mut entries = Vec::new();
    loop {
        let chunk = stream.next_chunk(AUDIT_CHUNK, &mut on_entry).await?;
        if chunk.is_empty() {
            break;
        }
        entries.extend(chunk);
    }
    Ok(DownloadedEntries {
        entries,
        root: stream.root(),
    })
}

/// The entries `[0, tree_size)` as the server streams them, each checked to decode and to
/// be the entry of its index, and hashed into the Merkle tree as it passes, so a caller
/// can look at them a chunk at a time instead of holding the whole log.
struct EntryStream {
    stream: tonic::Streaming<pb::GetEntriesResponse>,
    /// The entries asked for; a server that sends more is refused at the first extra one.
    tree_size: u64,
    appender: TileAppender,
    /// Leaf hashes not yet handed to the appender (it takes them in batches).
    leaves: Vec<Hash>,
    next_index: u64,
}

impl EntryStream {
    async fn open(
        log: &mut LogServiceClient<LedgerChannel>,
        tree_size: u64,
    ) -> Result<EntryStream, VerifyLogError> {
        let stream = log
            .get_entries(pb::GetEntriesRequest {
                start: 0,
                end: tree_size,
            })
            .await?
            .into_inner();
        Ok(EntryStream {
            stream,
            tree_size,
            appender: TileAppender::new(),
            leaves: Vec::new(),
            next_index: 0,
        })
    }

    /// The next at most `max` entries (fewer at the end of the stream, none after it).
    async fn next_chunk(
        &mut self,
        max: usize,
        mut on_entry: impl FnMut(),
    ) -> Result<Vec<Vec<u8>>, VerifyLogError> {
        let mut chunk = Vec::with_capacity(max.min(4096));
        while chunk.len() < max {
            let Some(message) = self.stream.message().await? else {
                break;
            };
            let expected = self.next_index;
            if expected == self.tree_size {
                return Err(VerifyLogError::Entry {
                    index: expected,
                    detail: format!(
                        "the server sent more than the {} entries asked for",
                        self.tree_size
                    ),
                });
            }
            if message.index != expected {
                return Err(VerifyLogError::Entry {
                    index: expected,
                    detail: format!("the server sent entry {} instead", message.index),
                });
            }
            let decoded =
                entry::decode_entry(&message.entry).map_err(|e| VerifyLogError::Entry {
                    index: expected,
                    detail: e.to_string(),
                })?;
            if decoded.index != expected {
                return Err(VerifyLogError::Entry {
                    index: expected,
                    detail: format!("the entry says it is entry {}", decoded.index),
                });
            }
            self.leaves.push(merkle::leaf_hash(&message.entry));
            if self.leaves.len() == 4096 {
                self.appender.append(&self.leaves);
                self.leaves.clear();
            }
            self.next_index += 1;
            chunk.push(message.entry);
            on_entry();
        }
        Ok(chunk)
    }

    /// Entries received so far.
    fn received(&self) -> u64 {
        self.next_index
    }

    /// The Merkle root of the entries received so far.
    fn root(&mut self) -> Hash {
        self.appender.append(&self.leaves);
        self.leaves.clear();
        self.appender.root()
    }
}

/// Checks that the downloaded entries are exactly the tree `checkpoint` signs.
pub fn check_root(
    checkpoint: &Checkpoint,
    downloaded: &DownloadedEntries,
) -> Result<(), VerifyLogError> {
    check_served_root(
        checkpoint,
        downloaded.entries.len() as u64,
        &downloaded.root,
    )
}

/// Checks that `served` entries hashing to `root` are exactly the tree `checkpoint` signs.
fn check_served_root(
    checkpoint: &Checkpoint,
    served: u64,
    root: &Hash,
) -> Result<(), VerifyLogError> {
    if served != checkpoint.tree_size || *root != checkpoint.root_hash {
        return Err(VerifyLogError::RootMismatch {
            tree_size: checkpoint.tree_size,
            served,
            computed: hex::encode(root),
            signed: hex::encode(checkpoint.root_hash),
        });
    }
    Ok(())
}

/// Which step of [`download_and_audit`] a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStep {
    /// Entries downloaded, decoded and hashed.
    Download,
    /// Entries judged by the ingest rules, their signatures verified, applied.
    Verify,
}

/// Why [`download_and_audit`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LogAuditError {
    #[error(transparent)]
    Download(#[from] VerifyLogError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{root}; auditing the entries served: {audit}")]
    Both {
        root: VerifyLogError,
        audit: AuditError,
    },
}

/// The `audit` command's check of a log prefix: streams the entries the checkpoint covers,
/// hashing them into the Merkle root as they pass, and audits them a chunk at a time as
/// they arrive (ingest rules, signatures on every core while the next chunk downloads,
/// the projection), so memory holds a few chunks, never the log. When the entries do not
/// hash to the signed root, the audit still runs over them to name the first bad entry;
/// after the first failure the rest is only hashed.
///
/// `progress(step, n)` reports `n` more entries done; the steps alternate a chunk at a
/// time, each first reporting 0 entries as it starts.
pub async fn download_and_audit(
    log: &mut LogServiceClient<LedgerChannel>,
    checkpoint: &Checkpoint,
    verifier: &NoteVerifier,
    mut progress: impl FnMut(AuditStep, u64),
) -> Result<AuditedPrefix, LogAuditError> {
    let mut stream = EntryStream::open(log, checkpoint.tree_size).await?;
    let mut audit = Ok(PrefixAudit::new(verifier));
    loop {
        progress(AuditStep::Download, 0);
        let chunk = stream
            .next_chunk(AUDIT_CHUNK, || progress(AuditStep::Download, 1))
            .await?;
        if chunk.is_empty() {
            break;
        }
        // After a failure the rest is only downloaded and hashed, to tell whether the
        // served entries are the signed tree at all.
        let running = match audit {
            Ok(running) => running,
            Err(error) => {
                audit = Err(error);
                continue;
            }
        };
        progress(AuditStep::Verify, 0);
        let entries = chunk.len() as u64;
        // Judging is CPU work: off the async workers. The chunk's signatures go on being
        // verified in the background while the next chunk downloads.
        audit = tokio::task::spawn_blocking(move || running.check_entries(&chunk))
            .await
            .expect("the audit of a chunk panicked");
        if audit.is_ok() {
            progress(AuditStep::Verify, entries);
        }
    }
    let served = stream.received();
    let root = check_served_root(checkpoint, served, &stream.root());
    // `finish` waits for the last chunk's signatures: off the async workers too.
    let checkpoint_copy = checkpoint.clone();
    let audited =
        tokio::task::spawn_blocking(move || audit.and_then(|audit| audit.finish(&checkpoint_copy)))
            .await
            .expect("the end of the audit panicked");
    match (root, audited) {
        (Ok(()), Ok(audited)) => Ok(audited),
        (Ok(()), Err(audit)) => Err(audit.into()),
        (Err(root), Err(audit)) => Err(LogAuditError::Both { root, audit }),
        (Err(root), Ok(_)) => Err(root.into()),
    }
}

/// The wire form of a window.
pub fn window_to_pb(spec: &WindowSpec) -> pb::Window {
    use pb::window::Window;
    let window = match spec {
        WindowSpec::Range { start, end } => Window::Range(pb::TimeRange {
            start: Some(entry::millis_timestamp(*start)),
            end: Some(entry::millis_timestamp(*end)),
        }),
        WindowSpec::Last24Hours => Window::Named(pb::NamedWindow::Last24h as i32),
        WindowSpec::Last7Days => Window::Named(pb::NamedWindow::Last7d as i32),
        WindowSpec::Last30Days => Window::Named(pb::NamedWindow::Last30d as i32),
        WindowSpec::Last90Days => Window::Named(pb::NamedWindow::Last90d as i32),
        WindowSpec::Month {
            year,
            month,
            time_zone,
        } => Window::Month(pb::CalendarMonth {
            year: *year,
            month: u32::from(*month),
            time_zone: time_zone.clone(),
        }),
    };
    pb::Window {
        window: Some(window),
    }
}

/// A served availability report as the projection core's plain value, with the tree size
/// and signed checkpoint it says it was computed from.
pub fn availability_report_from_pb(
    report: &pb::AvailabilityReport,
) -> Result<(AvailabilityReport, u64, String), InvalidInput> {
    Ok((
        AvailabilityReport {
            start: entry::timestamp_millis(report.start.as_ref(), "start")?,
            end: entry::timestamp_millis(report.end.as_ref(), "end")?,
            up_ms: report.up_ms,
            down_ms: report.down_ms,
            unknown_ms: report.unknown_ms,
            maintenance_ms: report.maintenance_ms,
            availability: report.availability,
            coverage: report.coverage,
            slo_target: report.slo_target,
            slo_met: report.slo_met,
            error_budget_ms: report.error_budget_ms,
            error_budget_remaining_ms: report.error_budget_remaining_ms,
            incident_count: report.incident_count,
        },
        report.tree_size,
        report.checkpoint.clone(),
    ))
}

/// A served incident as the projection core's plain value.
/// A served alert as the domain's, for comparison with a recomputed one.
pub fn alert_from_pb(alert: &pb::Alert) -> Result<crate::alert::Alert, InvalidInput> {
    use crate::alert::{BurnFigure, Figures, Rule};
    use crate::projection::State;
    let rule = match pb::AlertRule::try_from(alert.rule) {
        Ok(pb::AlertRule::Outage) => Rule::Outage,
        Ok(pb::AlertRule::NoData) => Rule::NoData,
        Ok(pb::AlertRule::SloBurn1h) => Rule::SloBurn1h,
        Ok(pb::AlertRule::SloBurn6h) => Rule::SloBurn6h,
        Ok(pb::AlertRule::SloBurn3d) => Rule::SloBurn3d,
        _ => return Err(InvalidInput(format!("unknown alert rule {}", alert.rule))),
    };
    let burn_window = |figure: Option<&pb::BurnWindowFigures>| {
        let figure = figure.ok_or_else(|| InvalidInput("a burn alert without a window".into()))?;
        Ok::<_, InvalidInput>(BurnFigure {
            window_ms: i64::try_from(figure.window_ms)
                .map_err(|_| InvalidInput("a burn window out of range".into()))?,
            up_ms: figure.up_ms,
            down_ms: figure.down_ms,
            burn_rate: figure.burn_rate,
        })
    };
    let figures = match &alert.figures {
        Some(pb::alert::Figures::State(figures)) => Figures::State {
            state: match pb::ServiceState::try_from(figures.state) {
                Ok(pb::ServiceState::Down) => State::Down,
                Ok(pb::ServiceState::Unknown) => State::Unknown,
                _ => return Err(InvalidInput(format!("an alert on state {}", figures.state))),
            },
            state_since: entry::timestamp_millis(figures.state_since.as_ref(), "state_since")?,
            for_ms: i64::try_from(figures.for_ms)
                .map_err(|_| InvalidInput("`for` out of range".into()))?,
        },
        Some(pb::alert::Figures::Burn(figures)) => Figures::Burn {
            slo_target: figures.slo_target,
            threshold: figures.threshold,
            long: burn_window(figures.long_window.as_ref())?,
            short: burn_window(figures.short_window.as_ref())?,
        },
        None => return Err(InvalidInput("an alert without figures".into())),
    };
    Ok(crate::alert::Alert {
        service_id: alert.service_id.clone(),
        agency: alert.agency.clone(),
        rule,
        since: entry::timestamp_millis(alert.since.as_ref(), "alert since")?,
        until: alert
            .until
            .as_ref()
            .map(|until| entry::timestamp_millis(Some(until), "alert until"))
            .transpose()?,
        figures,
    })
}

pub fn incident_from_pb(incident: &pb::Incident) -> Result<Incident, InvalidInput> {
    Ok(Incident {
        start: entry::timestamp_millis(incident.start.as_ref(), "incident start")?,
        end: entry::timestamp_millis(incident.end.as_ref(), "incident end")?,
        open: incident.open,
        probes: incident.probes.clone(),
        last_observed_at: incident
            .last_observed_at
            .as_ref()
            .map(|at| entry::timestamp_millis(Some(at), "incident last_observed_at"))
            .transpose()?,
    })
}
