//! The evidence file (docs/evidence.md): one JSON object, read and written by these serde
//! types. Reading checks only the shape; [`super::verify`] decides what it proves.

use serde::{Deserialize, Serialize};

/// The `format` of an evidence file this version writes and reads.
pub const EVIDENCE_FORMAT: &str = "uptime-ledger-evidence/1";

/// One evidence file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    /// The checkpoint key the bundle was checked against, as `serve` prints it
    /// (`<origin>+<key id>+<base64 key>`).
    pub verifier_key: String,
    /// The C2SP signed note of the checkpoint every inclusion proof leads to.
    pub checkpoint: String,
    pub service_id: String,
    pub window: Window,
    /// The availability report over the window, as the producer computed it from the
    /// prefix the checkpoint signs (not provable from the bundle alone).
    pub report: serde_json::Value,
    pub incidents: Vec<BundleIncident>,
    /// Indexes of the service's definitions in force during the window.
    pub service_specs: Vec<u64>,
    /// Every entry the bundle relies on, by index, each once.
    pub entries: Vec<BundleEntry>,
}

/// A half-open window `[start, end)`, RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// An incident as the projection reports it, with the observations behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleIncident {
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub duration_ms: i64,
    pub open: bool,
    pub probes: Vec<String>,
    /// Indexes of the DOWN observations of the service behind the incident.
    pub observations: Vec<u64>,
}

/// One log entry: its exact stored bytes and its inclusion proof against the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleEntry {
    pub index: u64,
    /// The stored entry bytes (an encoded `LogEntry`), standard base64 with padding.
    pub entry: String,
    /// RFC 9162 inclusion path from the leaf's sibling up, each hash lowercase hex.
    pub inclusion_proof: Vec<String>,
}
