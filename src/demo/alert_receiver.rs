//! The demo's webhook receiver: what an operator's endpoint would see. It checks each
//! delivery's `v1a` signature with the ledger's verifier key and reports the alert on the
//! terminal through the `report` callback; it answers 204 to a verified delivery and 401
//! otherwise.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::alert::signing::signed_content;
use crate::checkpoint::NoteVerifier;

/// The path deliveries are posted to.
pub const PATH: &str = "/alerts";

#[derive(Clone)]
struct Receiver {
    verifier: Arc<NoteVerifier>,
    report: Arc<dyn Fn(String) + Send + Sync>,
}

/// Serves the receiver on `listener` until `shutdown`, calling `report` with one line per
/// verified delivery.
pub async fn serve(
    listener: tokio::net::TcpListener,
    verifier: NoteVerifier,
    report: impl Fn(String) + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let receiver = Receiver {
        verifier: Arc::new(verifier),
        report: Arc::new(report),
    };
    let app = Router::new()
        .route(PATH, post(receive))
        .with_state(receiver);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let content = match timestamp.parse::<i64>() {
        Ok(timestamp) => signed_content(id, timestamp, &body),
        Err(_) => return StatusCode::BAD_REQUEST,
    };
    let verified = header("webhook-signature").split(' ').any(|signature| {
        signature
            .strip_prefix("v1a,")
            .and_then(|value| STANDARD.decode(value).ok())
            .is_some_and(|signature| {
                receiver
                    .verifier
                    .public_key()
                    .verify_message(content.as_bytes(), &signature)
            })
    });
    if !verified {
        (receiver.report)(format!(
            "webhook {id}: REFUSED, the v1a signature does not verify"
        ));
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let alert = &body["data"]["alert"];
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
    (receiver.report)(format!(
        "webhook {}: {} {} of {} since {}{} (tree size {}, v1a signature verified)",
        id,
        text(&body["type"]),
        text(&alert["alert"]),
        text(&alert["service_id"]),
        text(&alert["since"]),
        alert["until"]
            .as_str()
            .map(|until| format!(" until {until}"))
            .unwrap_or_default(),
        body["data"]["tree_size"],
    ));
    StatusCode::NO_CONTENT
}
