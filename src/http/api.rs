//! The JSON API under `/api/v1/`: the same answers as the gRPC `QueryService` and
//! `LogService.GetCheckpoint`, from the same [`crate::query`] code. Times are RFC 3339 UTC
//! with milliseconds, durations are milliseconds (`_ms`), and every answer computed from the
//! projections names the checkpointed prefix (`tree_size`, `checkpoint`) it reflects.

use axum::extract::rejection::QueryRejection;
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

/// Any other path under `/api/`.
pub async fn not_found() -> ApiError {
    ApiError(HttpError::not_found(
        "no such API route; see the README for /api/v1/services, …/availability, …/incidents, …/timeline and /api/v1/checkpoint",
    ))
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
        location: probe.location,
        revoked: probe.revoked,
        probe_id: probe.probe_id,
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
