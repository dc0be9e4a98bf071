//! Plain domain types: identifiers, observations, admin commands and the genesis record.
//!
//! Everything here is validated on construction, so code that holds one of these types
//! never re-checks it. Protobuf types never appear here: `entry` converts between the wire
//! format and these types in one place.

mod id;

use std::time::Duration;

use crate::crypto::PublicKey;

pub use id::{AdminName, InvalidId, MaintenanceId, ProbeId, ServiceId};

/// Milliseconds since the Unix epoch, UTC: the one time unit of the domain (DESIGN.md:
/// "a Timestamp is truncated to whole milliseconds").
pub type Millis = i64;

/// The default freshness of an observation when a service spec says 0.
pub const DEFAULT_STALENESS: Duration = Duration::from_secs(90);
/// Default of `Genesis.max_lateness`: how far back an observation may be dated.
pub const DEFAULT_MAX_LATENESS: Duration = Duration::from_secs(3600);
/// Default of `Genesis.max_skew`: how far ahead of the ledger's clock an observation may be dated.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(30);
/// Longest `Observation.detail`, in bytes.
pub const MAX_DETAIL_BYTES: usize = 256;
/// Longest free-text field of an admin command (names, agencies, reasons, locations), in bytes.
pub const MAX_TEXT_BYTES: usize = 256;

/// What a probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Up,
    Down,
}

/// One decoded, validated check result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub probe_id: ProbeId,
    pub service_id: ServiceId,
    pub seq: u64,
    pub observed_at: Millis,
    pub status: Status,
    pub latency_ms: u32,
    pub detail: String,
}

/// How probes' states combine into a service state (DESIGN.md "Service state").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Quorum {
    /// DOWN as soon as one probe sees DOWN.
    Any,
    /// DOWN when more than half of the probes with a fresh observation see DOWN; an even
    /// split is UP. The default (also for `QUORUM_KIND_UNSPECIFIED`).
    #[default]
    Majority,
    /// DOWN only when every probe with a fresh observation sees DOWN.
    All,
    /// DOWN when at least this many probes see DOWN; always at least 1.
    AtLeast(u32),
}

/// A service definition as it was in force from the moment it was received.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub service_id: ServiceId,
    pub name: String,
    pub agency: String,
    /// Strictly between 0 and 1.
    pub slo_target: f64,
    pub quorum: Quorum,
    /// Already defaulted: never zero.
    pub staleness: Duration,
}

impl ServiceSpec {
    /// The staleness in milliseconds, as the projection measures time.
    pub fn staleness_ms(&self) -> i64 {
        duration_millis(self.staleness)
    }
}

/// One operator command, decoded and validated on its own (not yet against the ledger state).
#[derive(Debug, Clone, PartialEq)]
pub struct AdminCommand {
    pub seq: u64,
    pub issued_at: Millis,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    DefineService(ServiceSpec),
    RegisterProbe {
        probe_id: ProbeId,
        public_key: PublicKey,
        location: String,
    },
    RevokeProbe {
        probe_id: ProbeId,
        reason: String,
    },
    ScheduleMaintenance {
        maintenance_id: MaintenanceId,
        service_id: ServiceId,
        start: Millis,
        end: Millis,
        reason: String,
    },
    CancelMaintenance {
        maintenance_id: MaintenanceId,
    },
    AddAdminKey(AdminKey),
    RevokeAdminKey {
        name: String,
        reason: String,
    },
    ApproveCommand {
        /// SHA-256 of the proposed `SignedCommand.body`.
        proposal_digest: Digest,
    },
}

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Entry 0 of the log: the trust root.
#[derive(Debug, Clone, PartialEq)]
pub struct Genesis {
    pub origin: String,
    pub ledger_public_key: PublicKey,
    pub admin_keys: Vec<AdminKey>,
    pub max_lateness: Duration,
    pub max_skew: Duration,
    /// How many distinct admin keys a command changing who may write needs (at least 1).
    pub admin_threshold: u32,
    /// The log this one continues, if its checkpoint key was rotated.
    pub previous_log: Option<PreviousLog>,
}

/// The last checkpoint of the log a new log continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousLog {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Digest,
    pub ledger_public_key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKey {
    pub name: String,
    pub public_key: PublicKey,
}

/// Why a command cannot be applied in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    #[error("signer {0:?} is not an admin key of this ledger")]
    UnknownSigner(String),
    #[error("admin key {signer:?} was revoked at entry {index}; it signs nothing from then on")]
    RevokedSigner { signer: String, index: u64 },
    #[error("seq {got} is not above signer {signer:?}'s last seq {last}; use a higher seq")]
    StaleSeq { signer: String, last: u64, got: u64 },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

/// Why an observation was refused: the typed reasons of DESIGN.md "Ingest rules".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Invalid,
    BadSignature,
    UnknownProbe,
    ProbeRevoked,
    UnknownService,
    StaleSeq,
    Equivocation,
    TooLate,
    TooEarly,
}

impl RejectReason {
    /// Every reason, for metrics and exhaustive tests.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::Invalid,
        RejectReason::BadSignature,
        RejectReason::UnknownProbe,
        RejectReason::ProbeRevoked,
        RejectReason::UnknownService,
        RejectReason::StaleSeq,
        RejectReason::Equivocation,
        RejectReason::TooLate,
        RejectReason::TooEarly,
    ];

    /// The snake_case name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Invalid => "invalid",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::UnknownProbe => "unknown_probe",
            RejectReason::ProbeRevoked => "probe_revoked",
            RejectReason::UnknownService => "unknown_service",
            RejectReason::StaleSeq => "stale_seq",
            RejectReason::Equivocation => "equivocation",
            RejectReason::TooLate => "too_late",
            RejectReason::TooEarly => "too_early",
        }
    }
}

/// A refusal with a message a probe author can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// The ledger's answer for one submitted observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Appended at this index and durable.
    Accepted {
        index: u64,
    },
    /// The identical observation is already durable at this index.
    Duplicate {
        index: u64,
    },
    Rejected(Rejection),
}

/// Parses an RFC 3339 time with its offset (`2026-11-27T00:00:00Z`,
/// `2026-11-27T03:00:00+03:00`) to Unix milliseconds; digits below the millisecond are
/// dropped. A time without an offset is refused rather than guessed. The one parser behind
/// the CLI's times, its `--window START..END` and the HTTP API's `start`/`end`.
pub fn parse_millis(text: &str) -> Result<Millis, String> {
    text.parse::<jiff::Timestamp>()
        .map(|time| time.as_millisecond())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time such as 2026-11-27T00:00:00Z: {e}"))
}

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-11-27T00:00:00.000Z`),
/// the one way every time is written (CLI, JSON API, pages, errors). Times beyond the years
/// -9999..=9999, reachable only through saturated window ends, are written as those bounds.
pub fn format_millis(millis: Millis) -> String {
    match jiff::Timestamp::from_millisecond(millis) {
        Ok(time) => time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) if millis < 0 => "-9999-01-01T00:00:00.000Z".to_owned(),
        Err(_) => "9999-12-31T23:59:59.999Z".to_owned(),
    }
}

/// Serializes Unix milliseconds as [`format_millis`] writes them, for answers that derive
/// `Serialize` (`#[serde(serialize_with = "crate::domain::serialize_millis")]`).
pub fn serialize_millis<S: serde::Serializer>(
    millis: &Millis,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_millis(*millis))
}

/// Converts a duration to whole milliseconds, saturating (durations here are bounded by
/// validation, so saturation never changes a real value).
pub fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_their_offset_and_print_back_in_utc() {
        // 2026-11-27T00:00:00Z.
        let t0 = 1_795_737_600_000;
        assert_eq!(parse_millis("2026-11-27T00:00:00Z"), Ok(t0));
        assert_eq!(parse_millis("2026-11-27T03:00:00+03:00"), Ok(t0));
        assert_eq!(parse_millis("2026-11-27T00:00:00.123456Z"), Ok(t0 + 123));
        assert_eq!(parse_millis("1969-12-31T23:59:59Z"), Ok(-1000));
        assert_eq!(format_millis(t0 + 123), "2026-11-27T00:00:00.123Z");
        assert_eq!(format_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_millis(i64::MIN), "-9999-01-01T00:00:00.000Z");
        // No offset: refused, not guessed.
        let refused = parse_millis("2026-11-27T00:00:00").unwrap_err();
        assert!(refused.contains("not an RFC 3339 time"), "{refused}");
        assert!(parse_millis("yesterday").is_err());
    }
}
