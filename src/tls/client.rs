//! The clients' TLS: which CA to trust for an `https://` ledger, and the client
//! certificate to present (mutual TLS, for a probe delivering to a ledger with
//! `--client-ca`).

use std::path::Path;
use std::sync::Arc;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::{pem, provider, TlsError};

/// What a client uses for TLS. The default trusts the Mozilla roots built into the binary
/// and presents no certificate.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// PEM of the CA certificates to trust *instead of* the built-in roots.
    ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate (chain) and its key.
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca_pem.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Reads and checks the files: the CA certificates must be usable trust anchors, and
    /// the key must belong to the certificate. A certificate needs its key and vice versa.
    pub fn load(
        ca_file: Option<&Path>,
        cert_file: Option<&Path>,
        key_file: Option<&Path>,
    ) -> Result<ClientTls, TlsError> {
        let ca_pem = match ca_file {
            None => None,
            Some(path) => Some(pem::trust_anchors("CA file", path)?.0),
        };
        let identity = match (cert_file, key_file) {
            (None, None) => None,
            (Some(cert_file), Some(key_file)) => {
                let cert = pem::certificates("client certificate", cert_file)?;
                let key = pem::private_key("client key", key_file)?;
                rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(Arc::new(rustls::RootCertStore::empty()))
                    .with_client_auth_cert(cert.parsed, key.parsed)
                    .map_err(|error| TlsError::KeyMismatch {
                        cert: cert_file.to_owned(),
                        key: key_file.to_owned(),
                        reason: error.to_string(),
                    })?;
                Some((cert.bytes, key.bytes))
            }
            _ => return Err(TlsError::IncompleteIdentity),
        };
        Ok(ClientTls { ca_pem, identity })
    }

    /// True when anything differs from the default (a CA file or a client certificate):
    /// such settings only make sense for an `https://` ledger.
    pub fn is_custom(&self) -> bool {
        self.ca_pem.is_some() || self.identity.is_some()
    }

    /// tonic's client TLS config.
    pub fn tonic_config(&self) -> ClientTlsConfig {
        let config = match &self.ca_pem {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}
