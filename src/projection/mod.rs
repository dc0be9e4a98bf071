//! The pure SLA core: service state, quorum, measures and incidents, derived
//! from the log. The server, the `audit` command and the tests all use this
//! one implementation. It does no I/O and never reads the clock: every
//! answer is a function of the log prefix applied.
//!
//! # Layout
//!
//! - [`model`]: the inputs (one per relevant log entry) and the answers.
//! - [`semantics`]: each rule of DESIGN.md ("Projections and SLA semantics")
//!   as a small pure function.
//! - `runs`: step functions of time stored as runs, spliced in place.
//! - [`engine`]: [`Projection`], which applies entries incrementally and
//!   answers any window in O(log n).
//! - `snapshot`: the versioned binary snapshot ([`Projection::encode`],
//!   [`Projection::decode`]).
//!
//! # Decisions where DESIGN.md is silent
//!
//! - Each entry's `received_at` is read as the running maximum over the
//!   prefix, so time never goes backwards (identical to DESIGN.md when the
//!   ledger stamps non-decreasing times, as it should).
//! - Finality horizon = that `received_at` − `max_lateness` (from genesis, via
//!   [`ProjectionConfig`]). An observation older than it is ignored — ingest
//!   rejects it as `TOO_LATE` anyway — so the past before it is final.
//! - Ties broken by log index: of two observations of one (service, probe)
//!   with the same `observed_at`, the higher index is the probe's observation
//!   at that instant; of two definitions with the same `received_at`, the
//!   higher index is in force from then on; the first schedule of a
//!   maintenance id and the first cancel of it count, later ones are ignored.
//! - Inputs that do not apply are ignored, never an error: anything for a
//!   service not defined earlier in the log, a cancel of an unknown id, and
//!   an entry whose index is not above `applied_index` (already applied).
//! - The spec in force before a service's first definition is that first
//!   definition (its staleness, quorum and SLO target).
//! - A zero staleness makes an observation never fresh; times saturate at
//!   the ends of `i64` instead of overflowing.
//! - `AT_LEAST(0)` is DOWN whenever a probe is fresh (`D >= 0`), by the
//!   formula; `AT_LEAST(k)` with k > K fresh probes is UP.
//! - An incident is open when the service is UNKNOWN right after it ends
//!   and no observation of the service, by any probe, has
//!   `observed_at >= end`. DOWN ending because a DOWN probe went stale while
//!   another still reported, because maintenance began, or because a later
//!   observation exists, is closed.
//! - An incident's probes are those whose own state was DOWN at some instant
//!   inside it, sorted by probe id.
//! - A timeline covers its window exactly, UNKNOWN stretches included.
//! - An undefined service: `report`, `incidents`, `timeline` and `probes_for`
//!   answer `None`, `current_state` answers UNKNOWN. An inverted window is
//!   the empty window at its start.
//! - `services()` lists each service's latest spec, in order of first
//!   definition; `probes_for` lists every probe that ever reported, with its
//!   latest observation in event time (revoked probes included).

pub mod engine;
pub mod model;
mod runs;
pub mod semantics;
mod snapshot;

#[cfg(test)]
pub(crate) mod reference_tests;
#[cfg(test)]
pub(crate) mod test_inputs;

pub use engine::{Projection, ProjectionConfig};
pub use model::{
    AvailabilityReport, Incident, Interval, Maintenance, ProbeSummary, ProjectionInput, Quorum,
    RegisteredProbe, ServiceSpec, State, Status,
};
pub use snapshot::DecodeError;
