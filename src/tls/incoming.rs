//! Accepting TLS connections for the servers. Connections are taken under the server's
//! [`ConnectionLimit`] (the same cap and idle deadline as plaintext; a handshaking
//! connection holds its slot). Each handshake runs on its own task, bounded in time
//! ([`HANDSHAKE_TIMEOUT`]) and number ([`MAX_PENDING_HANDSHAKES`]; then new connections wait
//! in the kernel's backlog), so a client that connects and stalls delays nobody. A client that speaks plaintext to the TLS port (an `http://` address) is told so
//! in its own protocol — a gRPC `UNAVAILABLE` status, or an HTTP `400` — rather than having
//! its connection dropped with a "broken pipe".

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::HANDSHAKE_TIMEOUT;
use crate::limits::{ConnectionLimit, LimitedIo};

/// A connection whose TLS handshake completed, still under its server's connection cap
/// and idle deadline.
pub type TlsConnection = TlsStream<LimitedIo<TcpStream>>;

/// Handshakes in progress at most, per server.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// What the server speaks inside TLS, to answer a plaintext client in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http1,
}

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

const GRPC_REFUSAL: &str =
    "this ledger serves gRPC over TLS only: use an https:// address (grpcurl: leave out -plaintext)";
const HTTP_REFUSAL: &str = "This server speaks HTTPS only: use an https:// address.\n";

/// Connections whose TLS handshake completed, in the order they completed. Dropping it
/// stops accepting (and closes the listening socket).
pub struct TlsIncoming {
    connections: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    local_addr: Option<SocketAddr>,
}

impl TlsIncoming {
    /// Starts accepting on `listener` under `limit` (on a task of its own).
    pub fn spawn(
        listener: TcpListener,
        limit: ConnectionLimit,
        acceptor: TlsAcceptor,
        protocol: Protocol,
    ) -> TlsIncoming {
        let local_addr = listener.local_addr().ok();
        let (sender, connections) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, limit, acceptor, protocol, sender));
        TlsIncoming {
            connections,
            local_addr,
        }
    }

    /// The next connection; `None` never happens while this is alive.
    pub async fn next(&mut self) -> Option<(TlsConnection, SocketAddr)> {
        self.connections.recv().await
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.local_addr
            .ok_or_else(|| std::io::Error::other("the listener has no local address"))
    }
}

/// For tonic's `serve_with_incoming`.
impl tokio_stream::Stream for TlsIncoming {
    type Item = std::io::Result<TlsConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections
            .poll_recv(cx)
            .map(|next| next.map(|(stream, _)| Ok(stream)))
    }
}

async fn accept_loop(
    listener: TcpListener,
    limit: ConnectionLimit,
    acceptor: TlsAcceptor,
    protocol: Protocol,
    sender: mpsc::Sender<(TlsConnection, SocketAddr)>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            () = sender.closed() => return,
            permit = pending.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        // Over the cap, a connection is accepted and closed at once; accept errors pause.
        let stream = tokio::select! {
            () = sender.closed() => return,
            stream = limit.accept(&listener) => stream,
        };
        let Ok(peer) = stream.get_ref().peer_addr() else {
            continue;
        };
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = handshake(stream, peer, &acceptor, protocol);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Some(tls)) => {
                    let _ = sender.send((tls, peer)).await;
                }
                Ok(None) => {}
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn handshake(
    stream: LimitedIo<TcpStream>,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
    protocol: Protocol,
) -> Option<TlsConnection> {
    let mut first = [0u8; 1];
    match stream.get_ref().peek(&mut first).await {
        Ok(1) => {}
        _ => return None,
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        tracing::debug!(%peer, "a plaintext client on the TLS port; telling it to use TLS");
        match protocol {
            Protocol::Grpc => refuse_grpc(stream).await,
            Protocol::Http1 => refuse_http(stream).await,
        }
        return None;
    }
    match acceptor.accept(stream).await {
        Ok(tls) => Some(tls),
        Err(error) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
    }
}

/// Answers every request of a plaintext HTTP/2 connection with UNAVAILABLE and the reason
/// (bounded by the handshake timeout of the caller).
async fn refuse_grpc(stream: LimitedIo<TcpStream>) {
    let service = hyper::service::service_fn(|_request| async {
        Ok::<_, Infallible>(
            crate::rpc::status::plaintext_refused(GRPC_REFUSAL).into_http::<tonic::body::Body>(),
        )
    });
    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// Reads the request head (up to 8 KiB) and answers `400` with the reason, as Go's and
/// nginx's HTTPS servers do.
async fn refuse_http(mut stream: LimitedIo<TcpStream>) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{HTTP_REFUSAL}",
        HTTP_REFUSAL.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
