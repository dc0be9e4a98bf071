//! The servers' TLS: one certificate and key for gRPC and HTTP, and optionally a client CA
//! whose certificates gRPC accepts (mutual TLS for ingest).

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::{pem, provider, TlsError};

/// The servers' TLS configs, built from checked files.
#[derive(Clone)]
pub struct ServerTls {
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    client_ca: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_ca", &self.client_ca)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the certificate chain (leaf first) and its key, and the client CA
    /// certificates if any; checks that the key belongs to the certificate and that the CA
    /// certificates are usable trust anchors.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        client_ca_file: Option<&Path>,
    ) -> Result<ServerTls, TlsError> {
        let cert = pem::certificates("TLS certificate", cert_file)?;
        let key = pem::private_key("TLS key", key_file)?;
        let mismatch = |error: rustls::Error| TlsError::KeyMismatch {
            cert: cert_file.to_owned(),
            key: key_file.to_owned(),
            reason: error.to_string(),
        };
        let builder = || {
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
        };
        // HTTP: no client certificates, HTTP/1.1 only.
        let mut http = builder()
            .with_no_client_auth()
            .with_single_cert(cert.parsed.clone(), key.parsed.clone_key())
            .map_err(mismatch)?;
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        // gRPC: HTTP/2; with a client CA, a presented certificate must chain to it, but
        // presenting one is optional at the handshake (ingest requires it, see rpc).
        let grpc = match client_ca_file {
            None => builder().with_no_client_auth(),
            Some(path) => {
                let (_, roots) = pem::trust_anchors("client CA", path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|error| TlsError::Unusable {
                            what: "client CA",
                            path: path.to_owned(),
                            reason: error.to_string(),
                        })?;
                builder().with_client_cert_verifier(verifier)
            }
        };
        let mut grpc = grpc
            .with_single_cert(cert.parsed, key.parsed)
            .map_err(mismatch)?;
        grpc.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ServerTls {
            grpc: Arc::new(grpc),
            http: Arc::new(http),
            client_ca: client_ca_file.is_some(),
        })
    }

    /// Whether gRPC asks clients for a certificate (`--client-ca`). It is optional at the
    /// handshake (queries, log reads and admin commands work without one); ingest refuses
    /// a request without one.
    pub fn client_ca(&self) -> bool {
        self.client_ca
    }

    /// The gRPC server's acceptor: ALPN `h2`, and with a client CA, client certificates
    /// verified against it when presented.
    pub fn grpc(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.grpc.clone())
    }

    /// The HTTP server's acceptor (no client certificates; ALPN `http/1.1`).
    pub fn http(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.http.clone())
    }
}
