//! The read token on gRPC: a tower layer in front of every service that refuses a call
//! to a guarded method without `authorization: Bearer <token>` (UNAUTHENTICATED).
//!
//! Deny by default: every method needs the token except those listed in [`is_open`] —
//! ingest and admin (authenticated by their signatures), health, reflection, and
//! `LogService/GetCheckpoint` (a checkpoint is public by design: it is what auditors and
//! witnesses compare, and the status page prints it). A service added later is guarded
//! without anyone remembering to.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready};
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::pb;
use crate::read_token::ReadToken;

/// Whether `path` (`/package.Service/Method`) may be called without the read token.
pub(super) fn is_open(path: &str) -> bool {
    let service = path
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .map(|(service, _)| service)
        .unwrap_or("");
    service == pb::ingest_service_server::SERVICE_NAME
        || service == pb::admin_service_server::SERVICE_NAME
        || service == "grpc.health.v1.Health"
        || service.starts_with("grpc.reflection.")
        || path == format!("/{}/GetCheckpoint", pb::log_service_server::SERVICE_NAME)
}

/// Guards the read methods with `token`; without a token it lets everything through.
#[derive(Clone, Debug)]
pub(super) struct ReadAuthLayer {
    pub token: Option<Arc<ReadToken>>,
}

impl<S> Layer<S> for ReadAuthLayer {
    type Service = ReadAuth<S>;

    fn layer(&self, inner: S) -> ReadAuth<S> {
        ReadAuth {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct ReadAuth<S> {
    inner: S,
    token: Option<Arc<ReadToken>>,
}

impl<S, B, ResBody> Service<http::Request<B>> for ReadAuth<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(token) = &self.token {
            if !is_open(request.uri().path()) {
                let authorization = request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .map(http::HeaderValue::as_bytes);
                if let Err(denied) = token.check(authorization) {
                    tracing::debug!(path = %request.uri().path(), %denied, "read token refused");
                    let response = super::status::read_token_denied(denied).into_http();
                    return Either::Left(futures_util::future::ready(Ok(response)));
                }
            }
        }
        Either::Right(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::is_open;

    #[test]
    fn only_writes_health_reflection_and_checkpoints_are_open() {
        for open in [
            "/uptime.ledger.v1.IngestService/Submit",
            "/uptime.ledger.v1.IngestService/SubmitStream",
            "/uptime.ledger.v1.AdminService/Apply",
            "/uptime.ledger.v1.LogService/GetCheckpoint",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(is_open(open), "{open}");
        }
        for guarded in [
            "/uptime.ledger.v1.LogService/GetEntries",
            "/uptime.ledger.v1.LogService/GetCheckpointX",
            "/uptime.ledger.v1.LogService/Subscribe",
            "/uptime.ledger.v1.QueryService/GetAvailability",
            "/uptime.ledger.v1.QueryService/WatchStates",
            "/uptime.ledger.v1.NewService/Anything",
            "/uptime.ledger.v1.IngestServiceX/Submit",
            "/",
            "",
            "/grpc.health.v1.Health",
        ] {
            assert!(!is_open(guarded), "{guarded}");
        }
    }
}
