//! Answers to queries over a published projection, shared by the gRPC `QueryService` and the
//! HTTP JSON API and status page, so both give the same numbers from the same code.
//!
//! Everything here takes a [`Published`] prefix (and, for "current state" only, the ledger's
//! current time) and returns plain domain values; the RPC and HTTP edges convert them to
//! their wire formats and map [`QueryError`] to their status codes.

use crate::alert::{self, Alert, AlertPolicy};
use crate::governance::{ProposalState, ProposalStatus};
use crate::log::ReadError;
use crate::projection::{AvailabilityReport, Incident, Interval, Projection, ServiceSpec, State};
use crate::projector::{Projections, Published};
use crate::window::{self, WindowSpec};

/// Why a query has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The caller named a service the prefix never defined.
    #[error("service {0:?} is not defined")]
    UnknownService(String),
    /// The caller asked for a window that does not resolve (empty, bad month or zone).
    #[error("{0}")]
    BadWindow(String),
    /// The earlier prefix asked for cannot be read (no checkpoint at that size, storage).
    #[error(transparent)]
    Prefix(#[from] ReadError),
}

/// A service's latest spec and its state at the ledger's current time.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub spec: ServiceSpec,
    pub state: State,
    /// Since when the state holds; `None` when nothing was ever known.
    pub since: Option<i64>,
}

/// An answer for a resolved window `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Windowed<T> {
    pub start: i64,
    pub end: i64,
    pub value: T,
}

/// The status of `spec`'s service at `now`.
pub fn service_status(projection: &Projection, spec: &ServiceSpec, now: i64) -> ServiceStatus {
    let (state, since) = projection
        .state_since(&spec.service_id, now)
        .unwrap_or((State::Unknown, None));
    ServiceStatus {
        spec: spec.clone(),
        state,
        since,
    }
}

/// Every service's status at `now`, in order of first definition.
pub fn services(published: &Published, now: i64) -> Vec<ServiceStatus> {
    published
        .projection
        .services()
        .map(|spec| service_status(&published.projection, spec, now))
        .collect()
}

/// One service's status at `now`.
pub fn service(
    published: &Published,
    service_id: &str,
    now: i64,
) -> Result<ServiceStatus, QueryError> {
    let spec = published
        .projection
        .spec(service_id)
        .ok_or_else(|| QueryError::UnknownService(service_id.to_owned()))?;
    Ok(service_status(&published.projection, spec, now))
}

/// The prefix's proposals (only the pending ones if asked), their state as of the prefix's
/// last `received_at`.
pub fn proposals(published: &Published, pending_only: bool) -> Vec<ProposalStatus> {
    published
        .projection
        .governance()
        .proposal_statuses(published.as_of)
        .into_iter()
        .filter(|proposal| !pending_only || proposal.state == ProposalState::Pending)
        .collect()
}

/// Resolves `window` against the prefix: relative windows end at its as-of time.
pub fn resolve(published: &Published, window: &WindowSpec) -> Result<(i64, i64), QueryError> {
    window::resolve(window, published.as_of).map_err(|e| QueryError::BadWindow(e.to_string()))
}

/// The availability report of a service over `window`.
pub fn availability(
    published: &Published,
    service_id: &str,
    window: &WindowSpec,
) -> Result<AvailabilityReport, QueryError> {
    let (start, end) = resolve(published, window)?;
    published
        .projection
        .report(service_id, start, end)
        .ok_or_else(|| QueryError::UnknownService(service_id.to_owned()))
}

/// The incidents of a service intersecting `window`, each whole.
pub fn incidents(
    published: &Published,
    service_id: &str,
    window: &WindowSpec,
) -> Result<Windowed<Vec<Incident>>, QueryError> {
    let (start, end) = resolve(published, window)?;
    let value = published
        .projection
        .incidents(service_id, start, end)
        .ok_or_else(|| QueryError::UnknownService(service_id.to_owned()))?;
    Ok(Windowed { start, end, value })
}

/// The state timeline of a service over `window`, covering it exactly.
pub fn timeline(
    published: &Published,
    service_id: &str,
    window: &WindowSpec,
) -> Result<Windowed<Vec<Interval>>, QueryError> {
    let (start, end) = resolve(published, window)?;
    let value = published
        .projection
        .timeline(service_id, start, end)
        .ok_or_else(|| QueryError::UnknownService(service_id.to_owned()))?;
    Ok(Windowed { start, end, value })
}

/// Alerts of one prefix: what fires at `at`, and every episode that fired during the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerts {
    pub at: i64,
    pub firing: Vec<Alert>,
    pub history: Windowed<Vec<Alert>>,
}

/// The alerts of one service, or of every service (in order of first definition) when
/// `service_id` is `None`, under `policy`.
pub fn alerts(
    published: &Published,
    policy: &AlertPolicy,
    service_id: Option<&str>,
    at: i64,
    window: &WindowSpec,
) -> Result<Alerts, QueryError> {
    let (start, end) = resolve(published, window)?;
    let projection = &published.projection;
    let services: Vec<&str> = match service_id {
        Some(service_id) => {
            let spec = projection
                .spec(service_id)
                .ok_or_else(|| QueryError::UnknownService(service_id.to_owned()))?;
            vec![spec.service_id.as_str()]
        }
        None => projection
            .services()
            .map(|spec| spec.service_id.as_str())
            .collect(),
    };
    let firing = services
        .iter()
        .flat_map(|service_id| alert::firing_for(projection, policy, service_id, at))
        .collect();
    let history = services
        .iter()
        .flat_map(|service_id| alert::history(projection, policy, service_id, start, end))
        .collect();
    Ok(Alerts {
        at,
        firing,
        history: Windowed {
            start,
            end,
            value: history,
        },
    })
}

/// Runs `answer` on the published projection, or on the earlier checkpointed prefix
/// `tree_size` when one is asked for and it is not the published one
/// ([`Projections::earlier`]: recomputed from the log, one replay at a time).
pub async fn at_prefix<T>(
    projections: &Projections,
    tree_size: Option<u64>,
    answer: impl FnOnce(&Published) -> Result<T, QueryError>,
) -> Result<T, QueryError> {
    {
        let published = projections.read();
        match tree_size {
            None => return answer(&published),
            Some(size) if size == published.tree_size => return answer(&published),
            Some(_) => {}
        }
    }
    let published = projections.earlier(tree_size.unwrap_or_default()).await?;
    answer(&published)
}
