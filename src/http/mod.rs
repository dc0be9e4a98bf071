//! The HTTP edge (axum): the public status page, the JSON API, Prometheus `/metrics`,
//! `/healthz` and `/readyz`, served next to gRPC from the same ledger and projections.
//!
//! - [`view`]: the pages, feeds and badges as plain values, computed from one published
//!   prefix (pure);
//! - `pages`: the HTML handlers and their compiled templates (`templates/`);
//! - `subscribe`: the Atom feeds and the availability badges;
//! - [`cache`]: answers rendered once per state and served from memory, precompressed,
//!   with `ETag`, `304` and `Cache-Control`;
//! - [`api`]: the JSON handlers under `/api/v1/`;
//! - [`params`]: window and prefix query parameters;
//! - [`metrics`]: `/metrics`, the write path's counters and the gauges read on each scrape;
//! - `error`: every error → status code + JSON or HTML, in one place.
//!
//! Every page and answer is computed under one read of the published projection, so it
//! reflects exactly one checkpointed prefix and names it. Answers the cache does not serve
//! precompressed are compressed (gzip, brotli) by tower-http's compression layer.

pub mod api;
pub mod cache;
mod error;
pub mod metrics;
mod pages;
pub mod params;
mod subscribe;
pub mod tls;
pub mod view;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::Listener;
use axum::Router;
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;

use crate::alert::notifier::Alerting;
use crate::limits::{ConnectionLimit, LimitedIo, Limits};
use crate::log::Ledger;
use crate::projector::{Projections, Published};
use crate::query::{self, QueryError};
use crate::read_token::ReadToken;

pub use error::HttpError;
pub use view::{DisplayZone, UnknownZone};

/// What every handler reads. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    ledger: Arc<Ledger>,
    projections: Arc<Projections>,
    /// Built once: the ledger's counters plus the gauges read on each scrape.
    metrics: Arc<prometheus_client::registry::Registry>,
    /// The checkpoint verifier key, shown on every page.
    verifier_key: String,
    /// When set, `/api/…` (but `/api/v1/checkpoint`) and `/metrics` need it as a bearer token.
    read_token: Option<Arc<ReadToken>>,
    /// The alert rules `/api/v1/alerts`, the status page and `/metrics` answer under, and the
    /// outbox's figures.
    alerting: Arc<Alerting>,
    /// Serving HTTPS (there is no mixed mode: with TLS on, plaintext HTTP is not served).
    https: bool,
    /// The zone the pages show times in (`serve --time-zone`).
    zone: Arc<DisplayZone>,
    caches: Arc<Caches>,
}

/// The answers rendered once per state (see [`cache`]).
struct Caches {
    status_page: cache::RenderCache,
    feed: cache::RenderCache,
    services: cache::RenderCache,
    /// Counts their renders (`/metrics`).
    renders: Counter,
}

/// The registry `/metrics` serves: the ledger's counters, the gauges read on each scrape,
/// and the render cache's counter.
fn metrics_registry(
    ledger: &Arc<Ledger>,
    projections: &Arc<Projections>,
    alerting: &Arc<Alerting>,
    renders: &Counter,
) -> prometheus_client::registry::Registry {
    let mut metrics = metrics::registry(ledger.clone(), projections.clone(), alerting.clone());
    metrics.register(
        "http_renders",
        "Answers rendered for the in-memory cache (status page, feed, services list): one per prefix or change of state, not one per request",
        renders.clone(),
    );
    metrics
}

impl HttpState {
    pub fn new(ledger: Arc<Ledger>, projections: Arc<Projections>) -> HttpState {
        let alerting = Alerting::policy_only(Default::default());
        let renders = Counter::default();
        let metrics = metrics_registry(&ledger, &projections, &alerting, &renders);
        HttpState {
            verifier_key: ledger.verifier().to_string(),
            ledger,
            projections,
            metrics: Arc::new(metrics),
            alerting,
            read_token: None,
            https: false,
            zone: Arc::new(DisplayZone::utc()),
            caches: Arc::new(Caches {
                status_page: cache::RenderCache::new(renders.clone()),
                feed: cache::RenderCache::new(renders.clone()),
                services: cache::RenderCache::new(renders.clone()),
                renders,
            }),
        }
    }

    /// Shows the pages' times in `zone` (UTC by default).
    pub fn with_time_zone(mut self, zone: DisplayZone) -> HttpState {
        self.zone = Arc::new(zone);
        self
    }

    /// Who may store the JSON API's answers: private behind the read token, so a shared
    /// cache never hands them to someone without it.
    fn api_audience(&self) -> cache::Audience {
        match self.read_token {
            Some(_) => cache::Audience::Private,
            None => cache::Audience::Public,
        }
    }

    /// Answers alerts under `alerting`'s rules and exposes its delivery metrics.
    pub fn with_alerting(mut self, alerting: Arc<Alerting>) -> HttpState {
        self.metrics = Arc::new(metrics_registry(
            &self.ledger,
            &self.projections,
            &alerting,
            &self.caches.renders,
        ));
        self.alerting = alerting;
        self
    }

    /// Served over HTTPS only: every answer tells browsers to keep to HTTPS (HSTS).
    fn https(mut self) -> HttpState {
        self.https = true;
        self
    }

    /// Guards the JSON API and `/metrics` with `token` (see [`needs_read_token`]).
    pub fn with_read_token(mut self, token: Option<Arc<ReadToken>>) -> HttpState {
        self.read_token = token;
        self
    }

    /// [`query::at_prefix`] on this server's projections.
    async fn at_prefix<T>(
        &self,
        tree_size: Option<u64>,
        answer: impl FnOnce(&Published) -> Result<T, QueryError>,
    ) -> Result<T, QueryError> {
        query::at_prefix(&self.projections, tree_size, answer).await
    }
}

/// Serves the HTTP routes (HTTP/1.1) on `listener` under `limits` until `shutdown`
/// resolves, then stops accepting, closes idle connections and lets in-flight requests
/// finish. With `tls`, HTTPS only (HTTP/1.1 inside TLS), under the same limits.
///
/// At most `http_max_connections` connections are open (more are accepted and closed at
/// once; a connection still in its TLS handshake counts); a request head must arrive within
/// `http_header_timeout` of the connection opening or of the previous response (slow-loris
/// clients and idle keep-alives are closed); a head is at most `max_header_bytes`; a
/// handler gets `http_request_timeout`, then the answer is 503.
pub async fn serve_maybe_tls(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: HttpState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = ConnectionLimit::new(
        "HTTP",
        limits.http_max_connections,
        limits.idle_timeout.max(limits.http_header_timeout),
    );
    match tls {
        None => {
            let plain = PlainListener {
                listener,
                connections,
            };
            serve_connections(plain, state, limits, shutdown).await
        }
        Some(acceptor) => {
            let tls = tls::TlsListener::new(listener, connections, acceptor);
            serve_connections(tls, state.https(), limits, shutdown).await
        }
    }
}

/// Plaintext connections under the connection cap.
struct PlainListener {
    listener: TcpListener,
    connections: ConnectionLimit,
}

impl Listener for PlainListener {
    type Io = LimitedIo<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let io = self.connections.accept(&self.listener).await;
            if let Ok(peer) = io.get_ref().peer_addr() {
                return (io, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// The accept loop of both: hyper's HTTP/1.1 with the header timeout and head size bound
/// (which `axum::serve` does not expose) and graceful shutdown.
async fn serve_connections<L: Listener>(
    mut listener: L,
    state: HttpState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state, limits.http_request_timeout);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.http_header_timeout)
        .max_buf_size((limits.max_header_bytes as usize).max(8192));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection closed with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("HTTP server: stopped accepting, finishing in-flight requests");
    graceful.shutdown().await;
    Ok(())
}

/// Answers 503 when the handler takes longer than `limit`.
async fn within(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "10")],
            format!(
                "The server took longer than {} to answer; try again later.\n",
                humantime::format_duration(limit)
            ),
        )
            .into_response(),
    }
}

/// Every route, with a handler timeout of `request_timeout`.
pub fn router(state: HttpState, request_timeout: Duration) -> Router {
    let api_audience = state.api_audience();
    let routes = Router::new()
        .route("/", get(pages::index))
        .route("/feed.atom", get(subscribe::feed))
        .route("/services/{service_id}", get(pages::service))
        .route(
            "/services/{service_id}/feed.atom",
            get(subscribe::service_feed),
        )
        .route(
            "/services/{service_id}/badge.svg",
            get(subscribe::badge_svg),
        )
        .route("/api/v1/badge/{service_id}", get(subscribe::badge_json))
        .route("/api/v1/services", get(api::services))
        .route("/api/v1/services/{service_id}", get(api::service))
        .route(
            "/api/v1/services/{service_id}/availability",
            get(api::availability),
        )
        .route(
            "/api/v1/services/{service_id}/incidents",
            get(api::incidents),
        )
        .route("/api/v1/services/{service_id}/timeline", get(api::timeline))
        .route("/api/v1/alerts", get(api::alerts))
        .route("/api/v1/checkpoint", get(api::checkpoint))
        .route("/api/v1/admin-keys", get(api::admin_keys))
        .route("/api/v1/proposals", get(api::proposals))
        .route("/api/v1/entries/{index}", get(api::entry))
        .route(
            "/api/v1/entries/{index}/inclusion-proof",
            get(api::inclusion_proof),
        )
        .route("/api/v1/consistency-proof", get(api::consistency_proof))
        .route("/api/{*rest}", get(api::not_found))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/assets/status.css", get(stylesheet))
        .route("/assets/status.js", get(script))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            conditional_api(api_audience, request, next)
        }))
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_read_token,
        ));
    let https = state.https;
    outer_layers(routes, https, request_timeout).with_state(state)
}

/// What every answer passes through, outermost last: `request_timeout` bounds a handler
/// (then `503`), and the logging and security headers wrap that, so the `503` carries
/// them too.
fn outer_layers<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    https: bool,
    request_timeout: Duration,
) -> Router<S> {
    routes
        .layer(middleware::from_fn(move |request, next| {
            within(request_timeout, request, next)
        }))
        .layer(middleware::from_fn(move |request, next| {
            log_and_secure(https, request, next)
        }))
}

/// `GET /metrics`: Prometheus text exposition format 0.0.4.
async fn metrics(State(state): State<HttpState>) -> Response {
    let text = metrics::encode(&state.metrics);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

/// `GET /healthz`: the process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the ledger accepts writes (503 with the reason once a failed flush has
/// stopped them; reads keep working, but probes should go elsewhere).
async fn readyz(State(state): State<HttpState>) -> Response {
    match state.ledger.write_failure() {
        None => "ready\n".into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the ledger stopped accepting writes: {reason}\n"),
        )
            .into_response(),
    }
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/status.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/status.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> error::PageError {
    error::PageError(HttpError::not_found("There is no page at this address."))
}

/// Every route is read-only: another method gets 405 with `Allow: GET, HEAD`, as JSON under
/// `/api/` and as a page elsewhere.
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let error = HttpError::method_not_allowed(format!(
        "{method} is not allowed here: everything this server offers is read with GET (or HEAD)"
    ));
    let mut response = if uri.path().starts_with("/api/") {
        error::ApiError(error).into_response()
    } else {
        error::PageError(error).into_response()
    };
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// Whether `path` needs the read token (when one is set): the machine-readable reads —
/// the JSON API and `/metrics`. The status pages, their feeds and badges, their assets,
/// `/healthz`, `/readyz`, `/api/v1/checkpoint` (a signed checkpoint is public by design,
/// and the page links it) and `/api/v1/badge/…` (what the page shows, fetched by
/// shields.io without credentials) stay open: citizens read the status page without
/// credentials.
pub fn needs_read_token(path: &str) -> bool {
    (path.starts_with("/api/")
        && path != "/api/v1/checkpoint"
        && !path.starts_with("/api/v1/badge/"))
        || path == "/metrics"
}

/// The JSON API's answers get validators ([`cache::validate_json`]); other paths pass.
async fn conditional_api(audience: cache::Audience, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/api/v1/") {
        cache::validate_json(audience, request, next).await
    } else {
        next.run(request).await
    }
}

/// Refuses a guarded request without the right `authorization: Bearer` token: 401 with a
/// JSON error and `WWW-Authenticate` (RFC 6750).
async fn require_read_token(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.read_token {
        if needs_read_token(request.uri().path()) {
            let authorization = request
                .headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            if let Err(denied) = token.check(authorization) {
                let mut response = error::ApiError(HttpError {
                    status: StatusCode::UNAUTHORIZED,
                    code: "unauthorized",
                    message: denied.to_string(),
                })
                .into_response();
                let challenge = match denied {
                    crate::read_token::Denied::Missing => r#"Bearer realm="uptime-ledger""#,
                    _ => r#"Bearer realm="uptime-ledger", error="invalid_token""#,
                };
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                return response;
            }
        }
    }
    next.run(request).await
}

/// Logs each request at debug level and sets headers every answer should carry: no
/// framing, no MIME sniffing, scripts and styles only from this server.
async fn log_and_secure(https: bool, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "http");
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    if https {
        // One year, the usual HSTS lifetime; no includeSubDomains or preload: the ledger's
        // host name says nothing about its neighbours.
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_handler_over_the_request_timeout_is_answered_503() {
        let app: Router = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/fast", get(|| async { "ok" }));
        let app = outer_layers(app, true, Duration::from_millis(100));
        let request = |path: &str| {
            Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let started = Instant::now();
        let slow = app.clone().oneshot(request("/slow")).await.unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(slow.headers().contains_key(header::RETRY_AFTER));
        assert!(started.elapsed() < Duration::from_secs(2));
        let fast = app.oneshot(request("/fast")).await.unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
        // The timeout's own answer carries the security headers too.
        for response in [&slow, &fast] {
            let headers = response.headers();
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
            assert_eq!(
                headers[header::STRICT_TRANSPORT_SECURITY],
                "max-age=31536000"
            );
        }
    }
}
