//! Mutual TLS for ingest (`serve --client-ca`): a probe proves who it is with a client
//! certificate issued by the operator's CA, and may submit only observations whose
//! `probe_id` is a name in that certificate.
//!
//! The name is the certificate's subject alternative name of type DNS (`dNSName`); the
//! subject's common name is ignored (RFC 9525 retires it for identity). A certificate
//! with several such names vouches for each. rustls has already verified the chain
//! against the CA at the handshake; this only reads the names.
//!
//! A request that breaks the rule is refused *as a whole* with a gRPC status, before the
//! ledger sees any of it, so nothing in it is stored: no certificate → UNAUTHENTICATED;
//! an observation of another probe → PERMISSION_DENIED. Not a per-event `REJECTED` ack:
//! the problem is the connection's credentials, not the observation (which may be
//! perfectly valid), and a probe dead-letters REJECTED observations for good, whereas a
//! failed request stays spooled and is delivered once the certificate is fixed.

use crate::entry;
use crate::log::Envelope;

/// Why a request's client certificate does not let it submit (`status::certificate_refusal`
/// gives the code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRefusal {
    #[error("this ledger requires a client certificate for ingest (--client-ca): connect over TLS with the probe's certificate (probe config [tls] cert_file/key_file)")]
    Missing,
    #[error("the client certificate cannot be read: {0}")]
    Unreadable(String),
    #[error("the client certificate names no probe: it needs a DNS subject alternative name equal to the probe id")]
    NamesNoProbe,
    #[error("observation {position} of this request is by probe {probe_id}, but the client certificate is for {}; nothing in the request was stored", names.join(", "))]
    OtherProbe {
        position: usize,
        probe_id: String,
        names: Vec<String>,
    },
}

/// The names the client certificate of `request`'s connection vouches for.
pub(super) fn certified_names<T>(
    request: &tonic::Request<T>,
) -> Result<Vec<String>, CertificateRefusal> {
    let certificates = request.peer_certs().unwrap_or_default();
    let Some(leaf) = certificates.first() else {
        return Err(CertificateRefusal::Missing);
    };
    let names = dns_names(leaf.as_ref()).map_err(CertificateRefusal::Unreadable)?;
    if names.is_empty() {
        return Err(CertificateRefusal::NamesNoProbe);
    }
    Ok(names)
}

/// The DNS subject alternative names of a DER certificate.
fn dns_names(der: &[u8]) -> Result<Vec<String>, String> {
    let der = rustls::pki_types::CertificateDer::from(der);
    let certificate = webpki::EndEntityCert::try_from(&der).map_err(|e| e.to_string())?;
    Ok(certificate
        .valid_dns_names()
        .map(str::to_owned)
        .collect::<Vec<_>>())
}

/// Refuses the request when an observation in it is by a probe the certificate does not
/// name. Bodies that do not decode are left to the ledger, which rejects them as
/// `INVALID` by the same decoder, so they are never stored either.
pub(super) fn check_probe_ids(
    names: &[String],
    envelopes: &[Envelope],
) -> Result<(), CertificateRefusal> {
    for (position, envelope) in envelopes.iter().enumerate() {
        let Ok(observation) = entry::decode_observation(&envelope.body) else {
            continue;
        };
        if !names
            .iter()
            .any(|name| name == observation.probe_id.as_str())
        {
            return Err(CertificateRefusal::OtherProbe {
                position,
                probe_id: observation.probe_id.to_string(),
                names: names.to_vec(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;
    use crate::domain::{Observation, ProbeId, ServiceId, Status as Up};

    fn envelope(probe_id: &str) -> Envelope {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let signed = client::sign_observation(
            &key,
            &Observation {
                probe_id: ProbeId::parse(probe_id).unwrap(),
                service_id: ServiceId::parse("svc").unwrap(),
                seq: 1,
                observed_at: 0,
                status: Up::Up,
                latency_ms: 1,
                detail: String::new(),
            },
        );
        Envelope {
            body: signed.body,
            signature: signed.signature,
        }
    }

    #[test]
    fn names_come_from_dns_subject_alternative_names_only() {
        let mut params =
            rcgen::CertificateParams::new(vec!["nbo-1".into(), "nbo-2.probes".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "msa-1");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        assert_eq!(
            dns_names(certificate.der()).unwrap(),
            vec!["nbo-1".to_owned(), "nbo-2.probes".to_owned()]
        );
        assert!(dns_names(b"not a certificate").is_err());
    }

    #[test]
    fn every_observation_must_be_by_a_named_probe() {
        let names = vec!["nbo-1".to_owned()];
        assert!(check_probe_ids(&names, &[envelope("nbo-1"), envelope("nbo-1")]).is_ok());
        let refused = check_probe_ids(&names, &[envelope("nbo-1"), envelope("msa-1")]).unwrap_err();
        let refused = super::super::status::certificate_refusal(refused);
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().contains("observation 1"),
            "{}",
            refused.message()
        );
        assert!(refused.message().contains("msa-1"), "{}", refused.message());
        // Undecodable bodies are the ledger's to reject (INVALID), never stored.
        let garbage = Envelope {
            body: vec![0xff, 0xff],
            signature: vec![],
        };
        assert!(check_probe_ids(&names, &[garbage]).is_ok());
        assert!(check_probe_ids(&[], &[]).is_ok());
    }

    #[test]
    fn a_request_without_a_certificate_is_unauthenticated() {
        let refused = certified_names(&tonic::Request::new(())).unwrap_err();
        assert_eq!(refused, CertificateRefusal::Missing);
        let refused = super::super::status::certificate_refusal(refused);
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
}
