//! HTTPS for the HTTP server: a [`Listener`] over [`TlsIncoming`], which hands the server
//! only connections whose TLS handshake completed (under the server's connection cap and
//! idle deadline; handshakes bounded in time and number; plaintext clients answered with a
//! `400` that says to use `https://`).

use std::net::SocketAddr;

use axum::serve::Listener;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::limits::ConnectionLimit;
use crate::tls::incoming::{Protocol, TlsConnection, TlsIncoming};

pub struct TlsListener {
    incoming: TlsIncoming,
}

impl TlsListener {
    /// Starts accepting on `tcp` under `limit` at once.
    pub fn new(tcp: TcpListener, limit: ConnectionLimit, acceptor: TlsAcceptor) -> TlsListener {
        TlsListener {
            incoming: TlsIncoming::spawn(tcp, limit, acceptor, Protocol::Http1),
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsConnection;
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
