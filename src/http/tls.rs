//! HTTPS for the HTTP server: an axum [`Listener`] that accepts TCP connections and hands
//! axum only those whose TLS handshake completed.
//!
//! Handshakes run on their own tasks, each bounded by [`HANDSHAKE_TIMEOUT`], so a client
//! that connects and stalls delays nobody else; at most [`MAX_PENDING_HANDSHAKES`] run at
//! once, after which new connections wait in the kernel's backlog.

use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::tls::HANDSHAKE_TIMEOUT;

/// Handshakes in progress at most.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

type Handshake = Option<(TlsStream<TcpStream>, SocketAddr)>;

pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Handshake>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        TlsListener {
            tcp,
            acceptor,
            handshakes: JoinSet::new(),
        }
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        // Small TLS records would otherwise wait for the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some((tls, peer)),
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "HTTPS: TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "HTTPS: TLS handshake timed out");
                    None
                }
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_PENDING_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, peer)) => self.start_handshake(stream, peer),
                    Err(error) => accept_error(error).await,
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A failed `accept`: a connection that went away before we took it is nothing; anything
/// else (out of file descriptors, say) is logged and retried after a pause, as axum does.
async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "HTTPS: accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
