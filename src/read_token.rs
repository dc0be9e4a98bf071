//! The optional bearer token that guards the read APIs (`serve --read-token`): gRPC
//! `QueryService` and `LogService` (except `GetCheckpoint`), and HTTP `/api/…` (except
//! `/api/v1/checkpoint`) and `/metrics`. Clients send `authorization: Bearer <token>`.
//!
//! Only a SHA-256 digest of the token is kept, and a presented token is compared by its
//! digest in constant time (`subtle`), so neither the token's bytes nor its length leak
//! through timing.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The environment variable both `serve` and the clients read the token from (so that it
/// does not show in `ps`).
pub const ENV_VAR: &str = "UPTIME_LEDGER_READ_TOKEN";

/// Shortest accepted token: 16 characters (`openssl rand -hex 32` makes 64).
pub const MIN_LEN: usize = 16;
/// Longest accepted token.
pub const MAX_LEN: usize = 1024;

/// A read token as the server holds it: only its digest.
#[derive(Clone)]
pub struct ReadToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ReadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadToken(…)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the read token is {0} characters long; use at least {MIN_LEN} (e.g. `openssl rand -hex 32`)")]
    TooShort(usize),
    #[error("the read token is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("the read token may only contain visible ASCII characters (no spaces)")]
    BadCharacter,
    #[error("cannot read the read token file {path}: {reason}")]
    File { path: String, reason: String },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this ledger's read API needs a token: send `authorization: Bearer <token>` (uptime-ledger clients: --read-token-file or {ENV_VAR})")]
    Missing,
    #[error("the authorization header is not `Bearer <token>`")]
    Malformed,
    #[error("the read token is not valid")]
    Wrong,
}

/// Checks a token's text: 16–1024 visible ASCII characters, so it is a valid header value
/// and cannot be trivially guessed. Used by clients too, before sending.
pub fn validate(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_LEN {
        return Err(TokenError::TooLong);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::BadCharacter);
    }
    if token.len() < MIN_LEN {
        return Err(TokenError::TooShort(token.len()));
    }
    Ok(())
}

/// Reads a token from a file: its text without surrounding whitespace (a trailing newline
/// is normal in such files).
pub fn read_file(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|error| TokenError::File {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    let token = text.trim().to_owned();
    validate(&token).map_err(|error| TokenError::File {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    Ok(token)
}

impl ReadToken {
    pub fn new(token: &str) -> Result<ReadToken, TokenError> {
        validate(token)?;
        Ok(ReadToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Checks the value of an `authorization` header (absent: `None`). The scheme is
    /// case-insensitive (RFC 9110 §11.1).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let value = authorization.ok_or(Denied::Missing)?;
        let value = std::str::from_utf8(value).map_err(|_| Denied::Malformed)?;
        let (scheme, presented) = value.trim().split_once(' ').ok_or(Denied::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Denied::Malformed);
        }
        let presented: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        if bool::from(presented.ct_eq(&self.digest)) {
            Ok(())
        } else {
            Err(Denied::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    #[test]
    fn the_right_token_passes_and_others_are_told_apart() {
        let token = ReadToken::new(TOKEN).unwrap();
        let header = format!("Bearer {TOKEN}");
        assert_eq!(token.check(Some(header.as_bytes())), Ok(()));
        let lower = format!("bearer {TOKEN}");
        assert_eq!(token.check(Some(lower.as_bytes())), Ok(()));
        assert_eq!(token.check(None), Err(Denied::Missing));
        assert_eq!(token.check(Some(b"Bearer")), Err(Denied::Malformed));
        let basic = format!("Basic {TOKEN}");
        assert_eq!(token.check(Some(basic.as_bytes())), Err(Denied::Malformed));
        assert_eq!(
            token.check(Some(b"Bearer \xff\xfe")),
            Err(Denied::Malformed)
        );
        let wrong = format!("Bearer {TOKEN}x");
        assert_eq!(token.check(Some(wrong.as_bytes())), Err(Denied::Wrong));
        let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
        assert_eq!(token.check(Some(prefix.as_bytes())), Err(Denied::Wrong));
    }

    #[test]
    fn weak_or_unsendable_tokens_are_refused() {
        assert_eq!(
            ReadToken::new("short").unwrap_err(),
            TokenError::TooShort(5)
        );
        assert_eq!(
            ReadToken::new("has a space in it, long enough").unwrap_err(),
            TokenError::BadCharacter
        );
        assert_eq!(
            ReadToken::new("üñíçødé-token-long-enough").unwrap_err(),
            TokenError::BadCharacter
        );
        assert_eq!(
            ReadToken::new(&"x".repeat(MAX_LEN + 1)).unwrap_err(),
            TokenError::TooLong
        );
        assert!(format!("{:?}", ReadToken::new(TOKEN).unwrap()).contains('…'));
    }

    #[test]
    fn a_token_file_is_trimmed_and_its_errors_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        assert_eq!(read_file(&path).unwrap(), TOKEN);
        std::fs::write(&path, "short\n").unwrap();
        let message = read_file(&path).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("at least 16"), "{message}");
        let missing = dir.path().join("missing");
        let message = read_file(&missing).unwrap_err().to_string();
        assert!(message.contains("missing"), "{message}");
    }
}
