//! `QueryService`: availability, incidents, timelines and state changes, from the
//! projector's published projection.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{convert, status};
use crate::log::Ledger;
use crate::pb;
use crate::pb::query_service_server::QueryService;
use crate::projector::{Projections, Published};
use crate::window;

pub struct QueryApi {
    pub ledger: Arc<Ledger>,
    pub projections: Arc<Projections>,
}

type StateStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchStatesResponse, Status>> + Send>>;

impl QueryApi {
    /// Runs `answer` on the published projection, or on the prefix `tree_size` (recomputed
    /// from the log) when one is asked for and it is not the published one.
    async fn with_prefix<T: Send + 'static>(
        &self,
        tree_size: u64,
        answer: impl FnOnce(&Published) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        {
            let published = self.projections.read();
            if tree_size == 0 || tree_size == published.tree_size {
                return answer(&published);
            }
        }
        let ledger = self.ledger.clone();
        let published =
            tokio::task::spawn_blocking(move || Projections::at_tree_size(&ledger, tree_size))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(status::read_error)?;
        answer(&published)
    }
}

fn resolve_window(window: Option<pb::Window>, as_of: i64) -> Result<(i64, i64), Status> {
    let spec = convert::window_spec(window).map_err(status::invalid_argument)?;
    window::resolve(&spec, as_of).map_err(|e| status::invalid_argument(e.to_string()))
}

fn unknown_service(service_id: &str) -> Status {
    Status::not_found(format!("service {service_id:?} is not defined"))
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
        let services = published
            .projection
            .services()
            .map(|spec| convert::service_summary(&published.projection, spec, now))
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
        let registry = self.ledger.registry();
        let published = self.projections.read();
        let spec = published
            .projection
            .spec(&service_id)
            .ok_or_else(|| unknown_service(&service_id))?;
        let probes = published
            .projection
            .probes_for(&service_id)
            .unwrap_or_default()
            .into_iter()
            .map(|probe| convert::probe_report(probe, &registry))
            .collect();
        Ok(Response::new(pb::GetServiceResponse {
            service: Some(convert::service_summary(&published.projection, spec, now)),
            probes,
            prefix: prefix(&published),
        }))
    }

    async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::GetAvailabilityResponse>, Status> {
        let request = request.into_inner();
        let report = self
            .with_prefix(request.tree_size, move |published| {
                let (start, end) = resolve_window(request.window, published.as_of)?;
                let report = published
                    .projection
                    .report(&request.service_id, start, end)
                    .ok_or_else(|| unknown_service(&request.service_id))?;
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
        let response = self
            .with_prefix(request.tree_size, move |published| {
                let (start, end) = resolve_window(request.window, published.as_of)?;
                let incidents = published
                    .projection
                    .incidents(&request.service_id, start, end)
                    .ok_or_else(|| unknown_service(&request.service_id))?;
                Ok(pb::ListIncidentsResponse {
                    start: Some(crate::entry::millis_timestamp(start)),
                    end: Some(crate::entry::millis_timestamp(end)),
                    incidents: incidents.into_iter().map(convert::incident).collect(),
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
        let (start, end) = resolve_window(request.window, published.as_of)?;
        let intervals = published
            .projection
            .timeline(&request.service_id, start, end)
            .ok_or_else(|| unknown_service(&request.service_id))?;
        Ok(Response::new(pb::GetTimelineResponse {
            start: Some(crate::entry::millis_timestamp(start)),
            end: Some(crate::entry::millis_timestamp(end)),
            intervals: intervals.into_iter().map(convert::state_interval).collect(),
            prefix: prefix(&published),
        }))
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
                            let _ = sender
                                .send(Err(Status::resource_exhausted(format!(
                                    "this WatchStates consumer fell {missed} changes behind and was disconnected; reconnect to get the current states"
                                ))))
                                .await;
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
