//! The servers' TLS: one certificate and key for gRPC and HTTP, and optionally a client CA
//! whose certificates gRPC accepts (mutual TLS for ingest).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::{pem, provider, TlsError};

/// Longest a TLS handshake may take; a client that stalls longer is dropped (handshakes
/// run apart from the accept loop, so a stalled one never delays the others).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The servers' TLS material, read and checked.
#[derive(Clone)]
pub struct ServerTls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    client_ca_pem: Option<Vec<u8>>,
    http: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_ca", &self.client_ca_pem.is_some())
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
        let mut http = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(cert.parsed, key.parsed)
            .map_err(|error| TlsError::KeyMismatch {
                cert: cert_file.to_owned(),
                key: key_file.to_owned(),
                reason: error.to_string(),
            })?;
        // The HTTP server speaks HTTP/1.1 only.
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client_ca_pem = match client_ca_file {
            None => None,
            Some(path) => {
                let (bytes, roots) = pem::trust_anchors("client CA", path)?;
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|error| TlsError::Unusable {
                        what: "client CA",
                        path: path.to_owned(),
                        reason: error.to_string(),
                    })?;
                Some(bytes)
            }
        };
        Ok(ServerTls {
            cert_pem: cert.bytes,
            key_pem: key.bytes,
            client_ca_pem,
            http: Arc::new(http),
        })
    }

    /// Whether gRPC asks clients for a certificate (`--client-ca`). It is optional at the
    /// handshake (queries, log reads and admin commands work without one); ingest refuses
    /// a request without one.
    pub fn client_ca(&self) -> bool {
        self.client_ca_pem.is_some()
    }

    /// tonic's TLS for the gRPC server: HTTP/2 (ALPN `h2`), and with a client CA, client
    /// certificates verified against it when presented.
    pub fn grpc(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca_pem {
            None => config,
            Some(ca) => config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(true),
        }
    }

    /// The HTTP server's acceptor (no client certificates; ALPN `http/1.1`).
    pub fn http(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.http.clone())
    }
}
