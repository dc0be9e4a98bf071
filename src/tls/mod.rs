//! TLS material read from PEM files: the servers' certificate, key and client CA
//! (`serve --tls-cert/--tls-key/--client-ca`), and the clients' CA and certificate (the
//! probe's `[tls]` table, the CLI's `--ca-file`, `--client-cert`, `--client-key`).
//!
//! Everything is read and checked once, at start, so a wrong file is refused before
//! anything listens or connects, with an error that names the file and the reason. rustls
//! with the *ring* provider throughout, the same stack reqwest and tonic already use.

mod client;
pub mod incoming;
mod pem;
mod server;

use std::path::PathBuf;

pub use client::ClientTls;
pub use server::ServerTls;

/// Longest a TLS handshake may take; a client that stalls longer is dropped.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a TLS file cannot be used. Each variant names the file (`what` says which role it
/// plays: "TLS certificate", "client CA", …).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} {path} is not valid PEM: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the {what} {path} holds no certificate (expected a PEM `-----BEGIN CERTIFICATE-----` block)")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("the {what} {path} holds no private key (expected PEM `BEGIN PRIVATE KEY`, `BEGIN EC PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`)")]
    NoKey { what: &'static str, path: PathBuf },
    #[error("the {what} {path} cannot be used: {reason}")]
    Unusable {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the certificate {cert} and the key {key} cannot be used together: {reason}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error(
        "a client certificate needs its key and a key needs its certificate: give both or neither"
    )]
    IncompleteIdentity,
}

/// The rustls crypto provider every config here is built with.
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
