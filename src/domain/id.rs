//! Identifiers: 1–64 characters of `[a-z0-9._-]` (DESIGN.md "Ingest rules").
//!
//! The narrow alphabet keeps ids safe in URLs, metric labels and storage keys (no byte of
//! an id is 0x00, which the log's key layout relies on).

use std::fmt;

/// The longest id, in characters (and bytes: the alphabet is ASCII).
pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {shown:?} is not 1-64 characters of [a-z0-9._-]")]
pub struct InvalidId {
    kind: &'static str,
    shown: String,
}

fn validate(kind: &'static str, value: &str) -> Result<(), InvalidId> {
    let valid_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c);
    if (1..=MAX_ID_LEN).contains(&value.len()) && value.bytes().all(valid_char) {
        Ok(())
    } else {
        // Show at most a prefix: the value may be attacker-sized.
        let shown: String = value.chars().take(MAX_ID_LEN + 1).collect();
        Err(InvalidId { kind, shown })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<$name, InvalidId> {
                validate($kind, value)?;
                Ok($name(value.to_owned()))
            }

            /// Like `parse`, keeping `value`'s allocation.
            pub fn parse_owned(value: String) -> Result<$name, InvalidId> {
                validate($kind, &value)?;
                Ok($name(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// An id reads as the text it is, wherever a `&str` is taken.
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// Names one probe (one vantage point), e.g. `nbo-1`.
    ProbeId,
    "probe_id"
);
id_type!(
    /// Names one watched government service, e.g. `ecitizen.passport`.
    ServiceId,
    "service_id"
);
id_type!(
    /// Names one admin key, e.g. `ops-alice`. Names are never reused.
    AdminName,
    "admin key name"
);

id_type!(
    /// Names one maintenance window, chosen by the operator.
    MaintenanceId,
    "maintenance_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "nbo-1", "ecitizen.passport", "x_y", &"a".repeat(64)] {
            assert!(ProbeId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in ["", "A", "nbo 1", "é", "a/b", "a\0b", &"a".repeat(65)] {
            assert!(ServiceId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
