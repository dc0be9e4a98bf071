//! The gRPC edge: tonic services over the ledger, the server's limits, health and
//! reflection. Protobuf types stop here; errors become `tonic::Status` only in `status`.

mod admin;
pub mod admission;
mod client_cert;
mod convert;
/// The wire form of admin keys and proposals, which `audit` compares with the server's.
pub use convert::{admin_key as admin_key_to_pb, proposal as proposal_to_pb};
mod ingest;
mod log;
mod query;
mod read_auth;
pub(crate) mod status;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::codegen::http;
use tonic::transport::Server;

use crate::limits::{ConnectionLimit, Limits};
use crate::log::Ledger;
use crate::pb;
use crate::projector::Projections;
use crate::read_token::ReadToken;
use crate::tls::incoming::{Protocol, TlsIncoming};
use crate::tls::ServerTls;

pub use ingest::MAX_SUBMIT_BATCH;

/// Largest request message the server decodes (a full `Submit` batch fits with room).
pub const MAX_DECODE_BYTES: usize = 4 * 1024 * 1024;
/// Concurrent HTTP/2 streams (RPCs) per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;
/// Streams a client may open and reset before the server answers them (HTTP/2 "rapid
/// reset", CVE-2023-44487); past this the connection is closed with ENHANCE_YOUR_CALM.
pub const MAX_PENDING_RESETS: usize = 20;

/// How the gRPC server runs: its limits, its transport security and, for tests, its
/// admission control. The default is plaintext, open reads and the default [`Limits`].
#[derive(Clone, Default)]
pub struct RpcConfig {
    /// What the server allows one client and all clients (connections, timeouts, headers,
    /// rates).
    pub limits: Limits,
    /// TLS on every connection; with a client CA, ingest needs a client certificate naming
    /// the probe (mutual TLS).
    pub tls: Option<ServerTls>,
    /// The bearer token the read methods require (see `read_auth`).
    pub read_token: Option<Arc<ReadToken>>,
    /// The ingest admission control; `None` builds one from `limits`. Tests pass their own
    /// and hold its units to saturate the server deterministically.
    pub admission: Option<Arc<admission::Admission>>,
    /// The alert rules `ListAlerts` answers under; `None`: the default rules.
    pub alerting: Option<Arc<crate::alert::notifier::Alerting>>,
}

/// Serves every gRPC service on `listener` as `config` says until `shutdown` resolves,
/// then stops accepting, reports NOT_SERVING and waits for in-flight RPCs to finish.
pub async fn serve(
    listener: TcpListener,
    ledger: Arc<Ledger>,
    projections: Arc<Projections>,
    config: RpcConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let RpcConfig {
        limits,
        tls,
        read_token,
        admission,
        alerting,
    } = config;
    let alerting = alerting
        .unwrap_or_else(|| crate::alert::notifier::Alerting::policy_only(Default::default()));
    let admission = admission.unwrap_or_else(|| Arc::new(admission::Admission::new(&limits)));
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::ingest_service_server::IngestServiceServer<ingest::IngestApi>>()
        .await;
    health
        .set_serving::<pb::admin_service_server::AdminServiceServer<admin::AdminApi>>()
        .await;
    health
        .set_serving::<pb::log_service_server::LogServiceServer<log::LogApi>>()
        .await;
    health
        .set_serving::<pb::query_service_server::QueryServiceServer<query::QueryApi>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");

    let ingest = pb::ingest_service_server::IngestServiceServer::new(ingest::IngestApi {
        ledger: ledger.clone(),
        admission: admission.clone(),
        require_client_cert: tls.as_ref().is_some_and(ServerTls::client_ca),
    })
    .max_decoding_message_size(MAX_DECODE_BYTES);
    let admin = pb::admin_service_server::AdminServiceServer::new(admin::AdminApi {
        ledger: ledger.clone(),
    })
    .max_decoding_message_size(MAX_DECODE_BYTES);
    let query = pb::query_service_server::QueryServiceServer::new(query::QueryApi {
        projections,
        alerting,
    })
    .max_decoding_message_size(64 * 1024);
    let metrics = ledger.metrics().clone();
    let log = pb::log_service_server::LogServiceServer::new(log::LogApi { ledger })
        .max_decoding_message_size(64 * 1024);

    let shutdown_health = health.clone();
    let shutdown = async move {
        shutdown.await;
        shutdown_health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        tracing::info!("gRPC server: stopped accepting, finishing in-flight requests");
    };

    let router = Server::builder()
        .timeout(limits.grpc_request_timeout)
        .layer(read_auth::ReadAuthLayer { token: read_token })
        .layer(tower::util::MapResponseLayer::new(
            oversized_is_resource_exhausted,
        ))
        .layer(admission::ShedSubmitsLayer { admission, metrics })
        // HTTP/2's default 64 KiB windows hold ~300 observations per connection: too few
        // to keep group commits full when a probe streams.
        .initial_stream_window_size(Some(1024 * 1024))
        .initial_connection_window_size(Some(4 * 1024 * 1024))
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .http2_max_header_list_size(Some(limits.max_header_bytes))
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        .trace_fn(|request| tracing::info_span!("rpc", path = %request.uri().path()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(admin)
        .add_service(log)
        .add_service(query);
    let connections =
        ConnectionLimit::new("gRPC", limits.grpc_max_connections, limits.idle_timeout);
    match &tls {
        None => {
            router
                .serve_with_incoming_shutdown(incoming(listener, connections), shutdown)
                .await
        }
        // Our own TLS acceptor rather than tonic's `tls_config` (which also wraps a passed-in
        // stream): it answers a plaintext client with a status saying to use TLS. The
        // connection cap and idle deadline apply as for plaintext.
        Some(tls) => {
            let incoming = TlsIncoming::spawn(listener, connections, tls.grpc(), Protocol::Grpc);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
}

/// Accepted connections under the connection cap, each closed when its client goes silent
/// (see [`ConnectionLimit::accept`]), with Nagle's algorithm off.
fn incoming(
    listener: TcpListener,
    connections: ConnectionLimit,
) -> impl tokio_stream::Stream<Item = std::io::Result<crate::limits::LimitedIo<tokio::net::TcpStream>>>
{
    futures_util::stream::unfold(
        (listener, connections),
        |(listener, connections)| async move {
            let accepted = connections.accept(&listener).await;
            Some((Ok(accepted), (listener, connections)))
        },
    )
}

/// tonic refuses a message over the decode limit with OUT_OF_RANGE; to a client that is
/// "you sent too much", which gRPC spells RESOURCE_EXHAUSTED. The status of such a refusal
/// is in the response headers (a trailers-only response), where this rewrites it.
fn oversized_is_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|status| status == "11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|message| message.to_str().ok())
        .is_some_and(|message| {
            message.contains("length%20too%20large") || message.contains("length too large")
        });
    if out_of_range && too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}
