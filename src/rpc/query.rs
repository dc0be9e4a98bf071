//! `QueryService`: availability, incidents, timelines and state changes, from the
//! projector's published projection.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{convert, status};
use crate::alert::notifier::Alerting;
use crate::pb;
use crate::pb::query_service_server::QueryService;
use crate::projector::{Projections, Published};
use crate::query::{self, QueryError};
use crate::window::WindowSpec;

/// Every answer comes from the projector's published prefix (or an earlier one): nothing
/// here reads the writer's live state.
pub struct QueryApi {
    pub projections: Arc<Projections>,
    /// The alert rules `ListAlerts` answers under.
    pub alerting: Arc<Alerting>,
}

type StateStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchStatesResponse, Status>> + Send>>;

impl QueryApi {
    /// Runs `answer` on the published projection, or on the prefix `tree_size` when one is
    /// asked for (0 = the published one). Callers decode and check the request first: an
    /// earlier prefix may cost a replay of the log.
    async fn with_prefix<T: Send + 'static>(
        &self,
        tree_size: u64,
        answer: impl FnOnce(&Published) -> Result<T, QueryError> + Send + 'static,
    ) -> Result<T, Status> {
        let tree_size = (tree_size != 0).then_some(tree_size);
        query::at_prefix(&self.projections, tree_size, answer)
            .await
            .map_err(status::query_error)
    }
}

fn window_spec(window: Option<pb::Window>) -> Result<WindowSpec, QueryError> {
    convert::window_spec(window).map_err(QueryError::BadWindow)
}

fn prefix(published: &Published) -> Option<pb::LogPrefix> {
    Some(pb::LogPrefix {
        tree_size: published.tree_size,
        checkpoint: published.checkpoint.clone(),
    })
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    async fn list_services(
        &self,
        _request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let now = self.projections.now();
        let published = self.projections.read();
        let services = query::services(&published, now)
            .iter()
            .map(convert::service_summary)
            .collect();
        Ok(Response::new(pb::ListServicesResponse {
            services,
            prefix: prefix(&published),
        }))
    }

    async fn get_service(
        &self,
        request: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::GetServiceResponse>, Status> {
        let service_id = request.into_inner().service_id;
        let now = self.projections.now();
        let published = self.projections.read();
        let service = query::service(&published, &service_id, now).map_err(status::query_error)?;
        let probes = published
            .projection
            .probes_for(&service_id)
            .unwrap_or_default()
            .into_iter()
            .map(convert::probe_report)
            .collect();
        Ok(Response::new(pb::GetServiceResponse {
            service: Some(convert::service_summary(&service)),
            probes,
            prefix: prefix(&published),
        }))
    }

    async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::GetAvailabilityResponse>, Status> {
        let request = request.into_inner();
        let window = window_spec(request.window).map_err(status::query_error)?;
        let report = self
            .with_prefix(request.tree_size, move |published| {
                let report = query::availability(published, &request.service_id, &window)?;
                Ok(convert::availability_report(
                    &request.service_id,
                    &report,
                    published,
                ))
            })
            .await?;
        Ok(Response::new(pb::GetAvailabilityResponse {
            report: Some(report),
        }))
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        let request = request.into_inner();
        let window = window_spec(request.window).map_err(status::query_error)?;
        let response = self
            .with_prefix(request.tree_size, move |published| {
                let incidents = query::incidents(published, &request.service_id, &window)?;
                Ok(pb::ListIncidentsResponse {
                    start: Some(crate::entry::millis_timestamp(incidents.start)),
                    end: Some(crate::entry::millis_timestamp(incidents.end)),
                    incidents: incidents.value.into_iter().map(convert::incident).collect(),
                    prefix: prefix(published),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_timeline(
        &self,
        request: Request<pb::GetTimelineRequest>,
    ) -> Result<Response<pb::GetTimelineResponse>, Status> {
        let request = request.into_inner();
        let published = self.projections.read();
        let timeline = window_spec(request.window)
            .and_then(|window| query::timeline(&published, &request.service_id, &window))
            .map_err(status::query_error)?;
        Ok(Response::new(pb::GetTimelineResponse {
            start: Some(crate::entry::millis_timestamp(timeline.start)),
            end: Some(crate::entry::millis_timestamp(timeline.end)),
            intervals: timeline
                .value
                .into_iter()
                .map(convert::state_interval)
                .collect(),
            prefix: prefix(&published),
        }))
    }

    async fn list_admin_keys(
        &self,
        request: Request<pb::ListAdminKeysRequest>,
    ) -> Result<Response<pb::ListAdminKeysResponse>, Status> {
        let request = request.into_inner();
        let response = self
            .with_prefix(request.tree_size, move |published| {
                let governance = published.projection.governance();
                Ok(pb::ListAdminKeysResponse {
                    keys: governance.admins().iter().map(convert::admin_key).collect(),
                    threshold: governance.threshold(),
                    prefix: prefix(published),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn list_proposals(
        &self,
        request: Request<pb::ListProposalsRequest>,
    ) -> Result<Response<pb::ListProposalsResponse>, Status> {
        let request = request.into_inner();
        let response = self
            .with_prefix(request.tree_size, move |published| {
                let governance = published.projection.governance();
                Ok(pb::ListProposalsResponse {
                    proposals: query::proposals(published, request.pending_only)
                        .into_iter()
                        .map(convert::proposal)
                        .collect(),
                    threshold: governance.threshold(),
                    prefix: prefix(published),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let request = request.into_inner();
        let window = match request.window {
            None => WindowSpec::Last24Hours,
            window => window_spec(window).map_err(status::query_error)?,
        };
        let at = match request.at {
            None => self.projections.now(),
            Some(at) => crate::entry::timestamp_millis(Some(&at), "at")
                .map_err(|e| status::invalid_argument(e.0))?,
        };
        let service_id = (!request.service_id.is_empty()).then_some(request.service_id);
        let alerting = self.alerting.clone();
        let response = self
            .with_prefix(request.tree_size, move |published| {
                let alerts = query::alerts(
                    published,
                    alerting.policy(),
                    service_id.as_deref(),
                    at,
                    &window,
                )?;
                Ok(pb::ListAlertsResponse {
                    at: Some(crate::entry::millis_timestamp(alerts.at)),
                    firing: alerts.firing.iter().map(convert::alert).collect(),
                    start: Some(crate::entry::millis_timestamp(alerts.history.start)),
                    end: Some(crate::entry::millis_timestamp(alerts.history.end)),
                    history: alerts.history.value.iter().map(convert::alert).collect(),
                    prefix: prefix(published),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    type WatchStatesStream = StateStream;

    async fn watch_states(
        &self,
        request: Request<pb::WatchStatesRequest>,
    ) -> Result<Response<StateStream>, Status> {
        let wanted = request.into_inner().service_ids;
        let (current, mut changes) = self.projections.subscribe();
        let (sender, receiver) = mpsc::channel(16);
        let projections = self.projections.clone();
        tokio::spawn(async move {
            let selected =
                |service_id: &str| wanted.is_empty() || wanted.iter().any(|w| w == service_id);
            for change in current.into_iter().filter(|c| selected(&c.service_id)) {
                if sender
                    .send(Ok(convert::state_change(change, &projections)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            loop {
                tokio::select! {
                    received = changes.recv() => match received {
                        Ok(change) if selected(&change.service_id) => {
                            if sender.send(Ok(convert::state_change(change, &projections))).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let _ = sender.send(Err(status::watch_lagged(missed))).await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
