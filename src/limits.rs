//! What the servers allow one client, and all clients together: the numbers, and the two
//! mechanisms the gRPC and HTTP servers share (a cap on accepted connections, and a read
//! deadline that drops clients who go silent).
//!
//! The per-probe rate limit and the ingest load shedding live in `rpc::admission`; their
//! numbers are here so that `serve` has one place for every limit.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Every limit of `serve`. `Default` is what `serve` uses without flags; tests shrink them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open gRPC connections at once; connection N+1 is accepted and closed at once.
    pub grpc_max_connections: usize,
    /// Open HTTP connections at once (the status page, JSON API, /metrics).
    pub http_max_connections: usize,
    /// Largest HTTP/2 header list (SETTINGS_MAX_HEADER_LIST_SIZE) a gRPC request may send,
    /// and the largest HTTP/1 request head; larger ones are refused.
    pub max_header_bytes: u32,
    /// A connection that sends nothing for this long is closed: a client that connects and
    /// goes silent (before or after the HTTP/2 preface, or between HTTP/1 requests) cannot
    /// hold a connection slot forever. Live gRPC clients answer the keepalive pings, so it
    /// must be longer than `keepalive_interval + keepalive_timeout`.
    pub idle_timeout: Duration,
    /// gRPC: ping a connection after this long without frames, and close it when the ping
    /// is not answered within `keepalive_timeout`.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Longest a unary gRPC call may take.
    pub grpc_request_timeout: Duration,
    /// HTTP/1: the whole request head must arrive within this after the connection opens or
    /// the previous response went out (slow-loris clients and idle keep-alives are closed).
    pub http_header_timeout: Duration,
    /// HTTP: longest a handler may take before the answer is 503.
    pub http_request_timeout: Duration,
    /// Sustained observations per second one probe may submit (0: no limit).
    pub probe_rate: f64,
    /// Observations one probe may submit at once above its sustained rate (bucket size).
    pub probe_burst: u32,
    /// `Submit` calls and `SubmitStream` chunks being decoded, verified or committed at once;
    /// beyond this, ingest answers UNAVAILABLE at once instead of queueing.
    pub max_inflight_submits: usize,
}

pub const DEFAULT_GRPC_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 512;
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 16 * 1024;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_GRPC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_PROBE_RATE: f64 = 100.0;
pub const DEFAULT_PROBE_BURST: u32 = 10_000;
pub const DEFAULT_MAX_INFLIGHT_SUBMITS: usize = 128;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            grpc_max_connections: DEFAULT_GRPC_MAX_CONNECTIONS,
            http_max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            grpc_request_timeout: DEFAULT_GRPC_REQUEST_TIMEOUT,
            http_header_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
            http_request_timeout: DEFAULT_HTTP_REQUEST_TIMEOUT,
            probe_rate: DEFAULT_PROBE_RATE,
            probe_burst: DEFAULT_PROBE_BURST,
            max_inflight_submits: DEFAULT_MAX_INFLIGHT_SUBMITS,
        }
    }
}

impl Limits {
    /// The same limits without the per-probe rate limit (benchmarks that backfill history).
    pub fn without_probe_rate() -> Limits {
        Limits {
            probe_rate: 0.0,
            ..Limits::default()
        }
    }

    /// Refuses combinations that cannot work, with a message naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.grpc_max_connections == 0 || self.http_max_connections == 0 {
            return Err("--max-connections and --http-max-connections must be at least 1".into());
        }
        if self.max_header_bytes < 1024 {
            return Err("--max-header-bytes must be at least 1024".into());
        }
        if self.keepalive_interval.is_zero() || self.keepalive_timeout.is_zero() {
            return Err("--keepalive-interval and --keepalive-timeout must be positive".into());
        }
        if self.idle_timeout <= self.keepalive_interval + self.keepalive_timeout {
            return Err(format!(
                "--idle-timeout ({}) must be longer than --keepalive-interval + --keepalive-timeout ({}), or idle but live clients would be dropped",
                humantime::format_duration(self.idle_timeout),
                humantime::format_duration(self.keepalive_interval + self.keepalive_timeout)
            ));
        }
        if self.grpc_request_timeout.is_zero()
            || self.http_header_timeout.is_zero()
            || self.http_request_timeout.is_zero()
        {
            return Err("request and header timeouts must be positive".into());
        }
        if !(self.probe_rate >= 0.0 && self.probe_rate.is_finite()) {
            return Err("--probe-rate must be a non-negative number (0 turns it off)".into());
        }
        if self.probe_rate > 0.0 && self.probe_burst == 0 {
            return Err("--probe-burst must be at least 1".into());
        }
        if self.max_inflight_submits == 0 {
            return Err("--max-inflight-submits must be at least 1".into());
        }
        Ok(())
    }
}

/// A cap on open connections, shared by everything one listener accepted.
#[derive(Clone)]
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    /// Connections refused so far (logged on the first and every 1000th, not each).
    refused: Arc<std::sync::atomic::AtomicU64>,
    max: usize,
    idle_timeout: Duration,
    what: &'static str,
}

impl ConnectionLimit {
    pub fn new(what: &'static str, max: usize, idle_timeout: Duration) -> ConnectionLimit {
        ConnectionLimit {
            slots: Arc::new(Semaphore::new(max)),
            refused: Arc::default(),
            max,
            idle_timeout,
            what,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Waits for the next connection that fits under the cap. Connections over the cap are
    /// accepted and closed at once (the client sees the connection close, not a hang), and
    /// accept errors (out of file descriptors) pause accepting briefly instead of spinning.
    pub async fn accept(&self, listener: &TcpListener) -> LimitedIo<TcpStream> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(server = self.what, %error, "accepting a connection failed; pausing 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                let refused = self
                    .refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                if refused % 1000 == 1 {
                    tracing::warn!(server = self.what, %peer, max = self.max, refused, "connection refused: too many open connections");
                }
                drop(stream);
                continue;
            };
            // Without this every response waits ~40 ms for the client's delayed ACK.
            let _ = stream.set_nodelay(true);
            return LimitedIo::new(stream, permit, self.idle_timeout);
        }
    }
}

/// An accepted connection holding its slot under the cap (released when the connection is
/// dropped) and closed with `TimedOut` when the client sends nothing for `idle_timeout`.
pub struct LimitedIo<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl<S> LimitedIo<S> {
    fn new(inner: S, slot: OwnedSemaphorePermit, idle_timeout: Duration) -> LimitedIo<S> {
        LimitedIo {
            inner,
            _slot: slot,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let deadline = Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client sent nothing for {}",
                        humantime::format_duration(this.idle_timeout)
                    ),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for LimitedIo<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_combinations_are_refused() {
        Limits::default().validate().unwrap();
        Limits::without_probe_rate().validate().unwrap();
        let short_idle = Limits {
            idle_timeout: Duration::from_secs(40),
            ..Limits::default()
        };
        assert!(short_idle
            .validate()
            .unwrap_err()
            .contains("--idle-timeout"));
        let no_burst = Limits {
            probe_burst: 0,
            ..Limits::default()
        };
        assert!(no_burst.validate().unwrap_err().contains("--probe-burst"));
        let nan_rate = Limits {
            probe_rate: f64::NAN,
            ..Limits::default()
        };
        assert!(nan_rate.validate().is_err());
    }
}
