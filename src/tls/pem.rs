//! Reading certificates and keys from PEM files, with errors that name the file.

use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// A PEM file's bytes (tonic takes PEM) and what they hold.
pub(super) struct Pem<T> {
    pub bytes: Vec<u8>,
    pub parsed: T,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn bad_pem(what: &'static str, path: &Path, error: pem::Error) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// Every certificate in the file, in order (a chain: leaf first); at least one.
pub(super) fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Pem<Vec<CertificateDer<'static>>>, TlsError> {
    let bytes = read(what, path)?;
    let parsed = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad_pem(what, path, error))?;
    if parsed.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(Pem { bytes, parsed })
}

/// The first private key in the file (PKCS#8, SEC1 or PKCS#1).
pub(super) fn private_key(
    what: &'static str,
    path: &Path,
) -> Result<Pem<PrivateKeyDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let parsed = PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::NoKey {
            what,
            path: path.to_owned(),
        },
        error => bad_pem(what, path, error),
    })?;
    Ok(Pem { bytes, parsed })
}

/// The certificates of a CA file as trust anchors; each must parse as one.
pub(super) fn trust_anchors(
    what: &'static str,
    path: &Path,
) -> Result<(Vec<u8>, rustls::RootCertStore), TlsError> {
    let certificates = certificates(what, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates.parsed {
        roots.add(certificate).map_err(|error| TlsError::Unusable {
            what,
            path: path.to_owned(),
            reason: format!("a certificate in it is not a usable CA certificate: {error}"),
        })?;
    }
    Ok((certificates.bytes, roots))
}
