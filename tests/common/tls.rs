//! Certificates made in the test with rcgen, written as PEM files in a temporary
//! directory: a CA, the ledger's server certificate (`localhost`, `127.0.0.1`), and client
//! certificates whose DNS names are probe ids.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use uptime_ledger::tls::{ClientTls, ServerTls};

/// A test CA and the files it issued.
pub struct TestPki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM): what clients trust and `--client-ca` names.
    pub ca_file: PathBuf,
    /// The CA certificate (DER), for tests that speak TLS themselves.
    pub ca_der: Vec<u8>,
    /// The ledger's certificate and key (PEM), for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestPki {
    /// A new CA named `name`, with a server certificate for the ledger.
    pub fn new(name: &str) -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, certificate.pem()).unwrap();
        let mut pki = TestPki {
            ca_der: certificate.der().to_vec(),
            issuer: Issuer::new(params, key),
            ca_file,
            server_cert: PathBuf::new(),
            server_key: PathBuf::new(),
            dir,
        };
        let (cert, key) = pki.issue(
            "server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        pki.server_cert = cert;
        pki.server_key = key;
        pki
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client certificate whose DNS subject alternative names are `names` (probe ids),
    /// and whose common name is `file_stem` (which the ledger must ignore).
    pub fn client_cert(&self, file_stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        self.issue(file_stem, names, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        file_stem: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, file_stem);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.path().join(format!("{file_stem}.pem"));
        let key_file = self.dir.path().join(format!("{file_stem}-key.pem"));
        std::fs::write(&cert_file, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    /// The ledger's TLS; with `mtls`, ingest requires client certificates from this CA.
    pub fn server_tls(&self, mtls: bool) -> ServerTls {
        let client_ca = mtls.then_some(self.ca_file.as_path());
        ServerTls::load(&self.server_cert, &self.server_key, client_ca).unwrap()
    }

    /// A client trusting this CA, presenting no certificate.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls::load(Some(&self.ca_file), None, None).unwrap()
    }

    /// A client trusting this CA and presenting a new certificate naming `names`.
    pub fn client_tls_as(&self, names: &[&str]) -> ClientTls {
        let stem = format!("client-{}", names.join("+"));
        let (cert, key) = self.client_cert(&stem, names);
        ClientTls::load(Some(&self.ca_file), Some(&cert), Some(&key)).unwrap()
    }
}
