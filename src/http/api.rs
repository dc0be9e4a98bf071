//! The JSON API under `/api/v1/`: the same answers as the gRPC `QueryService` and
//! `LogService.GetCheckpoint`, from the same [`crate::query`] code. Times are RFC 3339 UTC
//! with milliseconds, durations are milliseconds (`_ms`), and every answer computed from the
//! projections names the checkpointed prefix (`tree_size`, `checkpoint`) it reflects.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::cache::Fresh;
use super::error::{ApiError, HttpError};
use super::params::WindowParams;
use super::view;
use super::HttpState;
use crate::domain::format_millis;
use crate::domain::{Quorum, Status};
use crate::governance::{AdminRecord, ProposalStatus};
use crate::projection::{
    self, Incident, Interval, Maintenance, ProbeSummary, State as ServiceState,
};
use crate::query::{self, ServiceStatus};

#[derive(Debug, Serialize)]
pub struct ServicesResponse {
    pub services: Vec<ServiceJson>,
    pub tree_size: u64,
    pub checkpoint: String,
}

#[derive(Debug, Serialize)]
pub struct ServiceResponse {
    pub service: ServiceJson,
    pub probes: Vec<ProbeJson>,
    pub maintenance: Vec<MaintenanceJson>,
    pub tree_size: u64,
    pub checkpoint: String,
}

#[derive(Debug, Serialize)]
pub struct ServiceJson {
    pub service_id: String,
    pub name: String,
    pub agency: String,
    pub slo_target: f64,
    pub quorum: QuorumJson,
    pub staleness_ms: i64,
    /// `up`, `down`, `unknown` or `maintenance`, at the ledger's current time.
    pub state: &'static str,
    /// Since when the state holds; absent when nothing was ever known.
    pub state_since: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct QuorumJson {
    /// `any`, `majority`, `all` or `at_least`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_least: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct ProbeJson {
    pub probe_id: String,
    pub location: String,
    pub last_status: &'static str,
    pub last_observed_at: String,
    pub revoked: bool,
    /// Where and when the registration took effect, and who signed it (the proposer first).
    pub registered_index: Option<u64>,
    pub registered_at: Option<String>,
    pub registered_by: Option<String>,
    pub approved_by: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct MaintenanceJson {
    pub maintenance_id: String,
    /// The effective window: it starts no earlier than it was scheduled, and a cancel cuts it.
    pub start: String,
    pub end: String,
    pub cancelled: bool,
}

/// DESIGN.md's `AvailabilityReport`: the service, the report's own fields, and the prefix
/// it was computed from.
#[derive(Debug, Serialize)]
pub struct AvailabilityJson {
    pub service_id: String,
    #[serde(flatten)]
    pub report: projection::AvailabilityReport,
    pub tree_size: u64,
    pub checkpoint: String,
}

#[derive(Debug, Serialize)]
pub struct IncidentsResponse {
    pub service_id: String,
    pub start: String,
    pub end: String,
    pub incidents: Vec<Incident>,
    pub tree_size: u64,
    pub checkpoint: String,
}

#[derive(Debug, Serialize)]
pub struct TimelineResponse {
    pub service_id: String,
    pub start: String,
    pub end: String,
    pub intervals: Vec<IntervalJson>,
    pub tree_size: u64,
    pub checkpoint: String,
}

#[derive(Debug, Serialize)]
pub struct IntervalJson {
    pub start: String,
    pub end: String,
    pub state: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CheckpointResponse {
    pub tree_size: u64,
    /// The C2SP signed note.
    pub checkpoint: String,
    /// `<origin>+<key id>+<public key>`: what auditors pin to verify the note.
    pub verifier_key: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct CheckpointParams {
    pub tree_size: Option<u64>,
}

/// `GET /api/v1/services`: rendered once per prefix and change of state, as the status
/// page is.
pub async fn services(State(state): State<HttpState>, request: HeaderMap) -> Response {
    let now = state.projections.now();
    let tree_size = state.projections.read().tree_size;
    let renderer = state.clone();
    let rendered = state
        .caches
        .services
        .get_or_render(tree_size, now, move || {
            let published = renderer.projections.read();
            let response = ServicesResponse {
                services: query::services(&published, now)
                    .iter()
                    .map(service_json)
                    .collect(),
                tree_size: published.tree_size,
                checkpoint: published.checkpoint.clone(),
            };
            let body = serde_json::to_vec(&response)
                .map_err(|e| HttpError::internal(format!("encoding the answer: {e}")))?;
            Ok::<_, ApiError>(Fresh {
                tree_size: published.tree_size,
                until: view::states_hold_until(&published, now),
                content_type: "application/json",
                body,
            })
        })
        .await;
    match rendered {
        Ok(rendered) => rendered.respond(&request, state.api_audience()),
        Err(error) => error.into_response(),
    }
}

/// `GET /api/v1/services/{service_id}`
pub async fn service(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
) -> Result<Json<ServiceResponse>, ApiError> {
    let now = state.projections.now();
    let published = state.projections.read();
    let status = query::service(&published, &service_id, now)?;
    let projection = &published.projection;
    let probes = projection
        .probes_for(&service_id)
        .unwrap_or_default()
        .into_iter()
        .map(probe_json)
        .collect();
    let maintenance = projection
        .maintenance(&service_id)
        .unwrap_or_default()
        .iter()
        .map(maintenance_json)
        .collect();
    Ok(Json(ServiceResponse {
        service: service_json(&status),
        probes,
        maintenance,
        tree_size: published.tree_size,
        checkpoint: published.checkpoint.clone(),
    }))
}

/// `GET /api/v1/services/{service_id}/availability?window=…`
pub async fn availability(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
    params: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Json<AvailabilityJson>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let window = params.window_spec()?;
    let report = state
        .at_prefix(params.tree_size, move |published| {
            let report = query::availability(published, &service_id, &window)?;
            Ok(AvailabilityJson {
                service_id,
                report,
                tree_size: published.tree_size,
                checkpoint: published.checkpoint.clone(),
            })
        })
        .await?;
    Ok(Json(report))
}

/// `GET /api/v1/services/{service_id}/incidents?window=…`
pub async fn incidents(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
    params: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Json<IncidentsResponse>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let window = params.window_spec()?;
    let response = state
        .at_prefix(params.tree_size, move |published| {
            let found = query::incidents(published, &service_id, &window)?;
            Ok(IncidentsResponse {
                start: format_millis(found.start),
                end: format_millis(found.end),
                incidents: found.value,
                tree_size: published.tree_size,
                checkpoint: published.checkpoint.clone(),
                service_id,
            })
        })
        .await?;
    Ok(Json(response))
}

/// `GET /api/v1/services/{service_id}/timeline?window=…` (the published prefix only, as
/// `GetTimeline`).
pub async fn timeline(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
    params: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Json<TimelineResponse>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    if params.tree_size.is_some() {
        return Err(HttpError::bad_request(
            "timeline answers from the published prefix only; drop tree_size",
        )
        .into());
    }
    let window = params.window_spec()?;
    let published = state.projections.read();
    let found = query::timeline(&published, &service_id, &window)?;
    Ok(Json(TimelineResponse {
        start: format_millis(found.start),
        end: format_millis(found.end),
        intervals: found.value.iter().map(interval_json).collect(),
        tree_size: published.tree_size,
        checkpoint: published.checkpoint.clone(),
        service_id,
    }))
}

#[derive(Debug, Serialize)]
pub struct AdminKeysResponse {
    pub keys: Vec<AdminRecord>,
    /// How many distinct admin keys a change of who may write needs.
    pub threshold: u32,
    pub tree_size: u64,
    pub checkpoint: String,
}

#[derive(Debug, Serialize)]
pub struct ProposalsResponse {
    pub proposals: Vec<ProposalStatus>,
    pub threshold: u32,
    pub tree_size: u64,
    pub checkpoint: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProposalParams {
    pub tree_size: Option<u64>,
    /// Only the pending proposals.
    #[serde(default)]
    pub pending: bool,
}

/// `GET /api/v1/admin-keys[?tree_size=N]`: every admin key the prefix named, with who
/// added and revoked it.
pub async fn admin_keys(
    State(state): State<HttpState>,
    params: Result<Query<CheckpointParams>, QueryRejection>,
) -> Result<Json<AdminKeysResponse>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let response = state
        .at_prefix(params.tree_size, move |published| {
            let governance = published.projection.governance();
            Ok(AdminKeysResponse {
                keys: governance.admins().to_vec(),
                threshold: governance.threshold(),
                tree_size: published.tree_size,
                checkpoint: published.checkpoint.clone(),
            })
        })
        .await?;
    Ok(Json(response))
}

/// `GET /api/v1/proposals[?pending=true][&tree_size=N]`: who proposed and who approved
/// each change of who may write.
pub async fn proposals(
    State(state): State<HttpState>,
    params: Result<Query<ProposalParams>, QueryRejection>,
) -> Result<Json<ProposalsResponse>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let response = state
        .at_prefix(params.tree_size, move |published| {
            Ok(ProposalsResponse {
                proposals: query::proposals(published, params.pending),
                threshold: published.projection.governance().threshold(),
                tree_size: published.tree_size,
                checkpoint: published.checkpoint.clone(),
            })
        })
        .await?;
    Ok(Json(response))
}

#[derive(Debug, Serialize)]
pub struct EntryResponse {
    pub index: u64,
    /// The entry's stored bytes (an encoded `LogEntry`), base64: what the tree hashes.
    pub entry: String,
    /// RFC 6962 leaf hash of those bytes, hex; recompute it yourself.
    pub leaf_hash: String,
}

#[derive(Debug, Serialize)]
pub struct InclusionProofResponse {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    /// RFC 9162 inclusion proof, hex hashes from the leaf up.
    pub proof: Vec<String>,
    /// The signed checkpoint at `tree_size`, whose root the proof leads to.
    pub checkpoint: String,
}

#[derive(Debug, Serialize)]
pub struct ConsistencyProofResponse {
    pub first: u64,
    pub second: u64,
    /// RFC 9162 consistency proof, hex hashes.
    pub proof: Vec<String>,
    pub first_checkpoint: String,
    pub second_checkpoint: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ConsistencyParams {
    pub first: u64,
    /// Default: the latest checkpoint.
    pub second: Option<u64>,
}

fn hex_hashes(hashes: &[crate::merkle::Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// The bytes of entry `index`, off the async threads (a read of the store).
async fn entry_bytes(state: &HttpState, index: u64) -> Result<Vec<u8>, ApiError> {
    let ledger = state.ledger.clone();
    let read = tokio::task::spawn_blocking(move || {
        let end = index.checked_add(1).ok_or_else(|| {
            crate::log::ReadError::OutOfRange(format!("there is no entry {index}"))
        })?;
        ledger
            .entries(index..end)?
            .next()
            .transpose()?
            .map(|(_, bytes)| bytes)
            .ok_or_else(|| crate::log::ReadError::NotFound(format!("there is no entry {index}")))
    })
    .await
    .map_err(|_| HttpError::internal("reading the entry failed"))?;
    Ok(read?)
}

/// `GET /api/v1/entries/{index}`: an entry's stored bytes and leaf hash.
pub async fn entry(
    State(state): State<HttpState>,
    index: Result<Path<u64>, PathRejection>,
) -> Result<Json<EntryResponse>, ApiError> {
    let Path(index) = index.map_err(bad_index)?;
    let bytes = entry_bytes(&state, index).await?;
    Ok(Json(EntryResponse {
        index,
        leaf_hash: hex::encode(crate::merkle::leaf_hash(&bytes)),
        entry: {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        },
    }))
}

/// `GET /api/v1/entries/{index}/inclusion-proof[?tree_size=N]`: the entry's inclusion
/// proof in the tree the checkpoint at `tree_size` (default: the latest) signs.
pub async fn inclusion_proof(
    State(state): State<HttpState>,
    index: Result<Path<u64>, PathRejection>,
    params: Result<Query<CheckpointParams>, QueryRejection>,
) -> Result<Json<InclusionProofResponse>, ApiError> {
    let Path(index) = index.map_err(bad_index)?;
    let Query(params) = params.map_err(bad_query)?;
    let checkpoint = match params.tree_size {
        None => state.ledger.checkpoint(),
        Some(size) => state.ledger.checkpoint_at(size)?,
    };
    let ledger = state.ledger.clone();
    let tree_size = checkpoint.tree_size;
    let (proof, leaf) =
        tokio::task::spawn_blocking(move || ledger.inclusion_proof(index, tree_size))
            .await
            .map_err(|_| HttpError::internal("computing the proof failed"))??;
    Ok(Json(InclusionProofResponse {
        index,
        tree_size,
        leaf_hash: hex::encode(leaf),
        proof: hex_hashes(&proof),
        checkpoint: checkpoint.note,
    }))
}

/// `GET /api/v1/consistency-proof?first=A[&second=B]`: the proof that the tree of the
/// checkpoint at `second` (default: the latest) extends the one at `first`.
pub async fn consistency_proof(
    State(state): State<HttpState>,
    params: Result<Query<ConsistencyParams>, QueryRejection>,
) -> Result<Json<ConsistencyProofResponse>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let first = state.ledger.checkpoint_at(params.first)?;
    let second = match params.second {
        None => state.ledger.checkpoint(),
        Some(size) => state.ledger.checkpoint_at(size)?,
    };
    let ledger = state.ledger.clone();
    let (first_size, second_size) = (first.tree_size, second.tree_size);
    let proof = tokio::task::spawn_blocking(move || {
        if first_size == second_size {
            return Ok(Vec::new());
        }
        ledger.consistency_proof(first_size, second_size)
    })
    .await
    .map_err(|_| HttpError::internal("computing the proof failed"))??;
    Ok(Json(ConsistencyProofResponse {
        first: first_size,
        second: second_size,
        proof: hex_hashes(&proof),
        first_checkpoint: first.note,
        second_checkpoint: second.note,
    }))
}

/// `GET /api/v1/checkpoint[?tree_size=N]`: the latest signed checkpoint, or the one signed
/// at exactly `tree_size`, with the verifier key.
pub async fn checkpoint(
    State(state): State<HttpState>,
    params: Result<Query<CheckpointParams>, QueryRejection>,
) -> Result<Json<CheckpointResponse>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let checkpoint = match params.tree_size {
        None => state.ledger.checkpoint(),
        Some(size) => state.ledger.checkpoint_at(size)?,
    };
    Ok(Json(CheckpointResponse {
        tree_size: checkpoint.tree_size,
        checkpoint: checkpoint.note,
        verifier_key: state.verifier_key.clone(),
    }))
}

/// `?service_id=…&at=RFC3339` and a history window (as [`WindowParams`]; default the last
/// 24 h) and `tree_size`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertsParams {
    pub service_id: Option<String>,
    pub at: Option<String>,
    pub window: Option<String>,
    pub month: Option<String>,
    pub time_zone: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub tree_size: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct AlertsResponse {
    /// The instant of `firing`.
    pub at: String,
    /// Every alert firing at `at` (see `alert::notification::alert_json`).
    pub firing: Vec<serde_json::Value>,
    /// The window of `history`.
    pub start: String,
    pub end: String,
    /// Every episode that fired during `[start, end)`, whole.
    pub history: Vec<serde_json::Value>,
    pub tree_size: u64,
    pub checkpoint: String,
}

/// `GET /api/v1/alerts`: what fires now (or at `at`), since when, with the figures, and
/// what fired during the window; the same answer as `ListAlerts`.
pub async fn alerts(
    State(state): State<HttpState>,
    params: Result<Query<AlertsParams>, QueryRejection>,
) -> Result<Json<AlertsResponse>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let window_params = WindowParams {
        window: params.window,
        month: params.month,
        time_zone: params.time_zone,
        start: params.start,
        end: params.end,
        tree_size: params.tree_size,
    };
    let window = if window_params.window.is_none()
        && window_params.month.is_none()
        && window_params.start.is_none()
        && window_params.end.is_none()
    {
        crate::window::WindowSpec::Last24Hours
    } else {
        window_params.window_spec()?
    };
    let at = match &params.at {
        Some(at) => super::params::parse_time(at, "at")?,
        None => state.projections.now(),
    };
    let alerting = state.alerting.clone();
    let service_id = params.service_id;
    let response = state
        .at_prefix(params.tree_size, move |published| {
            let found = query::alerts(
                published,
                alerting.policy(),
                service_id.as_deref(),
                at,
                &window,
            )?;
            let json = |alerts: &[crate::alert::Alert]| {
                alerts
                    .iter()
                    .map(|alert| crate::alert::notification::alert_json(alert, alerting.link()))
                    .collect()
            };
            Ok(AlertsResponse {
                at: format_millis(found.at),
                firing: json(&found.firing),
                start: format_millis(found.history.start),
                end: format_millis(found.history.end),
                history: json(&found.history.value),
                tree_size: published.tree_size,
                checkpoint: published.checkpoint.clone(),
            })
        })
        .await?;
    Ok(Json(response))
}

/// Any other path under `/api/`.
pub async fn not_found() -> ApiError {
    ApiError(HttpError::not_found(
        "no such API route; see the README for /api/v1/services, …/availability, …/incidents, …/timeline, /api/v1/alerts and /api/v1/checkpoint",
    ))
}

fn bad_index(_: PathRejection) -> HttpError {
    HttpError::bad_request("an entry index is a whole number, e.g. /api/v1/entries/42")
}

fn bad_query(rejection: QueryRejection) -> HttpError {
    HttpError::bad_request(rejection.body_text())
}

pub fn state_name(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Up => "up",
        ServiceState::Down => "down",
        ServiceState::Unknown => "unknown",
        ServiceState::Maintenance => "maintenance",
    }
}

fn service_json(status: &ServiceStatus) -> ServiceJson {
    let spec = &status.spec;
    let (kind, at_least) = match spec.quorum {
        Quorum::Any => ("any", None),
        Quorum::Majority => ("majority", None),
        Quorum::All => ("all", None),
        Quorum::AtLeast(k) => ("at_least", Some(k)),
    };
    ServiceJson {
        service_id: spec.service_id.to_string(),
        name: spec.name.clone(),
        agency: spec.agency.clone(),
        slo_target: spec.slo_target,
        quorum: QuorumJson { kind, at_least },
        staleness_ms: spec.staleness_ms(),
        state: state_name(status.state),
        state_since: status.since.map(format_millis),
    }
}

fn probe_json(probe: ProbeSummary) -> ProbeJson {
    ProbeJson {
        last_status: match probe.last_status {
            Status::Up => "up",
            Status::Down => "down",
        },
        last_observed_at: format_millis(probe.last_observed_at),
        probe_id: probe.probe_id,
        location: probe
            .registration
            .as_ref()
            .map(|r| r.location.clone())
            .unwrap_or_default(),
        revoked: probe
            .registration
            .as_ref()
            .is_some_and(|r| r.revoked_at.is_some()),
        registered_index: probe.registration.as_ref().map(|r| r.registered_index),
        registered_at: probe
            .registration
            .as_ref()
            .map(|r| format_millis(r.registered_at)),
        registered_by: probe.registration.as_ref().map(|r| r.registered_by.clone()),
        approved_by: probe
            .registration
            .map(|r| r.approved_by)
            .unwrap_or_default(),
    }
}

fn maintenance_json(window: &Maintenance) -> MaintenanceJson {
    MaintenanceJson {
        maintenance_id: window.maintenance_id.clone(),
        start: format_millis(window.start),
        end: format_millis(window.end),
        cancelled: window.cancelled,
    }
}

fn interval_json(interval: &Interval) -> IntervalJson {
    IntervalJson {
        start: format_millis(interval.start),
        end: format_millis(interval.end),
        state: state_name(interval.state),
    }
}
