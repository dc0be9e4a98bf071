//! HTTPS for the HTTP server: an axum [`Listener`] over [`TlsIncoming`], which hands axum
//! only connections whose TLS handshake completed (handshakes bounded in time and number,
//! plaintext clients answered with a `400` that says to use `https://`).

use std::net::SocketAddr;

use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::tls::incoming::{Protocol, TlsIncoming};

pub struct TlsListener {
    incoming: TlsIncoming,
}

impl TlsListener {
    /// Starts accepting on `tcp` at once.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        TlsListener {
            incoming: TlsIncoming::spawn(tcp, acceptor, Protocol::Http1),
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.next().await {
            Some(connection) => connection,
            // The accept task only ends once `incoming` is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.incoming.local_addr()
    }
}
