//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): over the content
//! `{webhook-id}.{webhook-timestamp}.{body}`, `v1a,` + base64 of an Ed25519 signature by the
//! ledger's key (receivers verify with the key in the verifier key they already pin), and
//! optionally `v1,` + base64 of HMAC-SHA256 with a shared secret. Pure.
//!
//! The ledger key also signs checkpoint notes and nothing else; a signed webhook content
//! never contains a newline (the body is compact JSON, which escapes them), while a note
//! is at least three lines, so one can never be taken for the other.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` header value for `body` sent as `webhook_id` at `timestamp`
/// (seconds since the epoch): `v1a,…` and, with a secret, ` v1,…`.
pub fn signature_header(
    key: &SigningKey,
    secret: Option<&[u8]>,
    webhook_id: &str,
    timestamp: i64,
    body: &str,
) -> String {
    let content = signed_content(webhook_id, timestamp, body);
    let mut header = format!(
        "v1a,{}",
        STANDARD.encode(key.sign(content.as_bytes()).to_bytes())
    );
    if let Some(secret) = secret {
        header.push_str(" v1,");
        header.push_str(&STANDARD.encode(hmac_sha256(secret, content.as_bytes())));
    }
    header
}

/// What is signed: `{webhook-id}.{webhook-timestamp}.{body}`.
pub fn signed_content(webhook_id: &str, timestamp: i64, body: &str) -> String {
    format!("{webhook_id}.{timestamp}.{body}")
}

fn hmac_sha256(secret: &[u8], content: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(content);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

    #[test]
    fn v1_matches_the_specification_example() {
        // The example of the Standard Webhooks specification (its reference libraries'
        // test vector).
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        let header = signature_header(
            &SigningKey::from_bytes(&[7; 32]),
            Some(&secret),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        let v1 = header
            .split(' ')
            .find_map(|s| s.strip_prefix("v1,"))
            .unwrap();
        assert_eq!(v1, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn v1a_verifies_with_the_public_key_and_nothing_else() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let header = signature_header(&key, None, "msg_1", 10, "{}");
        assert!(!header.contains(" v1,"));
        let signature = STANDARD
            .decode(header.strip_prefix("v1a,").unwrap())
            .unwrap();
        let signature = Signature::from_slice(&signature).unwrap();
        let public = key.verifying_key();
        assert!(public.verify(b"msg_1.10.{}", &signature).is_ok());
        assert!(public.verify(b"msg_1.11.{}", &signature).is_err());
    }
}
