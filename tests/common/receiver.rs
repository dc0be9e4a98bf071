//! A webhook receiver for the alert tests: a real HTTP server on 127.0.0.1:0 that records
//! what it accepts, and can refuse (503) or hang instead, and a check of the Standard
//! Webhooks signatures written from the specification, independent of the server's code.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use uptime_ledger::checkpoint::NoteVerifier;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 503 Service Unavailable.
    Refuse,
    /// Never answers.
    Hang,
}

/// One delivery the receiver accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Delivery {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    mode: Arc<Mutex<Mode>>,
    accepted: Arc<Mutex<Vec<Delivery>>>,
    attempts: Arc<Mutex<u64>>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            mode: Arc::new(Mutex::new(mode)),
            accepted: Arc::default(),
            attempts: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        receiver
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn accepted(&self) -> Vec<Delivery> {
        self.accepted.lock().unwrap().clone()
    }

    /// Every request that arrived, answered or not.
    pub fn attempts(&self) -> u64 {
        *self.attempts.lock().unwrap()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    *receiver.attempts.lock().unwrap() += 1;
    let mode = *receiver.mode.lock().unwrap();
    match mode {
        Mode::Refuse => StatusCode::SERVICE_UNAVAILABLE,
        Mode::Hang => std::future::pending().await,
        Mode::Accept => {
            let header = |name: &str| {
                headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            receiver.accepted.lock().unwrap().push(Delivery {
                id: header("webhook-id"),
                timestamp: header("webhook-timestamp"),
                signature: header("webhook-signature"),
                body,
            });
            StatusCode::NO_CONTENT
        }
    }
}

/// Checks both signatures of a delivery as a receiver would: `v1a` (Ed25519 over
/// `id.timestamp.body`) with the public key inside the ledger's verifier key, and `v1`
/// (HMAC-SHA256 with the shared secret, base64) by the specification's algorithm written
/// out here on SHA-256 (RFC 2104), not by the `hmac` crate the server uses.
pub fn verify_signatures(delivery: &Delivery, verifier_key: &str, secret: &[u8]) {
    let content = format!("{}.{}.{}", delivery.id, delivery.timestamp, delivery.body);
    let verifier: NoteVerifier = verifier_key.parse().unwrap();
    let mut v1a = None;
    let mut v1 = None;
    for signature in delivery.signature.split(' ') {
        if let Some(value) = signature.strip_prefix("v1a,") {
            v1a = Some(STANDARD.decode(value).unwrap());
        } else if let Some(value) = signature.strip_prefix("v1,") {
            v1 = Some(value.to_owned());
        }
    }
    let v1a = v1a.expect("a v1a signature");
    let signature = ed25519_dalek::Signature::from_slice(&v1a).unwrap();
    verifier
        .public_key()
        .verifying_key()
        .verify_strict(content.as_bytes(), &signature)
        .expect("v1a verifies with the ledger's verifier key");
    assert_eq!(
        v1.expect("a v1 signature"),
        STANDARD.encode(hmac_sha256(secret, content.as_bytes())),
        "v1 is HMAC-SHA256 of id.timestamp.body"
    );
}

/// RFC 2104 HMAC with SHA-256 (block size 64).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}
