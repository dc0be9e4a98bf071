//! Offline evidence: files that prove what a ledger held, checked without the ledger.
//! Pure: no network and no clock; the CLI (`export --raw`, `audit --from-export`,
//! `report --evidence`, `verify-evidence`) does the I/O. The formats are specified for
//! third-party verifiers in docs/evidence.md.
//!
//! - [`raw`]: the raw export (JSON Lines: a header with the checkpoint and the verifier
//!   key, then every entry's stored bytes) and its audit, through the same
//!   [`crate::audit::PrefixAudit`] as an online audit;
//! - [`bundle`]: the evidence file format (serde types only);
//! - [`build`]: choosing the entries behind one service's report and incidents, and
//!   writing the bundle with their inclusion proofs;
//! - [`verify`]: checking a bundle (checkpoint, inclusion proofs, signatures, the
//!   incidents' observations) and saying what it proves and what it cannot;
//! - [`tree`]: a prefix's leaf hashes in memory, answering inclusion proofs.

pub mod build;
pub mod bundle;
pub mod raw;
pub mod tree;
pub mod verify;

pub use build::{build_bundle, BundleInputs};
pub use bundle::{Bundle, EVIDENCE_FORMAT};
pub use raw::{audit_export, AuditedExport, ExportAuditError, RAW_EXPORT_FORMAT};
pub use tree::LeafTree;
pub use verify::{verify_bundle, EvidenceError, Findings};

#[cfg(test)]
mod tests;
