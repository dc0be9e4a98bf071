//! The plain values at the projection's seam: what the projector feeds in (one
//! [`ProjectionInput`] per relevant log entry) and what queries hand back.
//!
//! All times are `i64` milliseconds since the Unix epoch (UTC); every interval
//! is half-open, `[start, end)`. Protobuf types never reach this module: the
//! RPC layer converts at its edge.

pub use crate::domain::{Genesis, Status};
pub use crate::governance::Step;

/// The state of a probe or a service at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Up,
    Down,
    Unknown,
    Maintenance,
}

pub use crate::domain::{Quorum, ServiceSpec};

/// One log entry that matters to projections, in log-index order.
///
/// The genesis and the commands that change who may write are inputs too, so that every
/// answer's probe directory (location, who proposed and approved it, revoked or not) and
/// its admin keys and proposals are the ones of the prefix the answer names; a revoked
/// probe's past observations stay.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectionInput {
    DefineService {
        index: u64,
        received_at: i64,
        spec: ServiceSpec,
    },
    Observation {
        index: u64,
        received_at: i64,
        probe_id: String,
        service_id: String,
        observed_at: i64,
        status: Status,
    },
    ScheduleMaintenance {
        index: u64,
        received_at: i64,
        maintenance_id: String,
        service_id: String,
        start: i64,
        end: i64,
    },
    CancelMaintenance {
        index: u64,
        received_at: i64,
        maintenance_id: String,
    },
    /// Entry 0: the first admin keys and the approval threshold.
    Genesis {
        index: u64,
        received_at: i64,
        genesis: Box<Genesis>,
    },
    /// A command that changes who may write (registering or revoking a probe, adding or
    /// revoking an admin key), or an approval of one; it takes effect by the
    /// [`crate::governance`] rule.
    Governance {
        index: u64,
        received_at: i64,
        step: Step,
    },
}

impl ProjectionInput {
    /// The log index of the entry this input came from.
    pub fn index(&self) -> u64 {
        match self {
            ProjectionInput::DefineService { index, .. }
            | ProjectionInput::Observation { index, .. }
            | ProjectionInput::ScheduleMaintenance { index, .. }
            | ProjectionInput::CancelMaintenance { index, .. }
            | ProjectionInput::Genesis { index, .. }
            | ProjectionInput::Governance { index, .. } => *index,
        }
    }

    /// When the ledger received the entry this input came from.
    pub fn received_at(&self) -> i64 {
        match self {
            ProjectionInput::DefineService { received_at, .. }
            | ProjectionInput::Observation { received_at, .. }
            | ProjectionInput::ScheduleMaintenance { received_at, .. }
            | ProjectionInput::CancelMaintenance { received_at, .. }
            | ProjectionInput::Genesis { received_at, .. }
            | ProjectionInput::Governance { received_at, .. } => *received_at,
        }
    }
}

/// A service's availability over `[start, end)` (DESIGN.md, "Availability report"): the
/// one type of this answer, written to JSON by its `Serialize` (times in RFC 3339) and to
/// protobuf at the RPC edge.
///
/// `up_ms + down_ms + unknown_ms + maintenance_ms == end - start`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AvailabilityReport {
    #[serde(serialize_with = "crate::domain::serialize_millis")]
    pub start: i64,
    #[serde(serialize_with = "crate::domain::serialize_millis")]
    pub end: i64,
    pub up_ms: u64,
    pub down_ms: u64,
    pub unknown_ms: u64,
    pub maintenance_ms: u64,
    /// `up / (up + down)`; absent when nothing was measured.
    pub availability: Option<f64>,
    /// `(up + down) / (window - maintenance)`; absent when the window is all maintenance.
    pub coverage: Option<f64>,
    /// The target of the spec in force at `end - 1`.
    pub slo_target: f64,
    pub slo_met: bool,
    pub error_budget_ms: f64,
    pub error_budget_remaining_ms: f64,
    /// Incidents intersecting the window, counted whole.
    pub incident_count: u64,
}

/// A maximal interval during which the service state was DOWN. In JSON (its
/// `Serialize`), times are RFC 3339 and `duration_ms` is `end - start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub start: i64,
    /// Where DOWN stopped.
    pub end: i64,
    /// True when DOWN stopped only because the data ran out: the service is
    /// UNKNOWN at `end` and no observation of it has `observed_at >= end`.
    pub open: bool,
    /// The probes whose own state was DOWN at some instant of the incident, sorted.
    pub probes: Vec<String>,
    /// For an open incident, the newest observation of the service: the latest evidence,
    /// where "so far" ends (`end` is where the data runs out, which may be in the future).
    pub last_observed_at: Option<i64>,
}

impl serde::Serialize for Incident {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut incident = serializer.serialize_struct("Incident", 6)?;
        incident.serialize_field("start", &crate::domain::format_millis(self.start))?;
        incident.serialize_field("end", &crate::domain::format_millis(self.end))?;
        incident.serialize_field("duration_ms", &self.end.saturating_sub(self.start))?;
        incident.serialize_field("open", &self.open)?;
        incident.serialize_field("probes", &self.probes)?;
        incident.serialize_field(
            "last_observed_at",
            &self.last_observed_at.map(crate::domain::format_millis),
        )?;
        incident.end()
    }
}

/// One piece of a service's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
    pub state: State,
}

/// A maintenance window of a service as it is in force: `[start, end)` is the effective
/// window (`max(start, received_at)`, cut by a cancel), so it may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub maintenance_id: String,
    pub start: i64,
    pub end: i64,
    pub cancelled: bool,
}

/// What the projection knows about one probe of one service: its latest
/// observation in event time (the highest `observed_at`, ties to the higher log index),
/// and its registration as of the same prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSummary {
    pub probe_id: String,
    pub last_observed_at: i64,
    pub last_status: Status,
    /// Its registration as of the prefix; `None` for a probe the prefix never registered.
    pub registration: Option<RegisteredProbe>,
}

/// A probe as the prefix registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredProbe {
    pub location: String,
    /// The entry at which the registration took effect, and its `received_at`.
    pub registered_index: u64,
    pub registered_at: i64,
    /// The admin key that proposed (signed) the registration.
    pub registered_by: String,
    /// The admin keys whose signatures counted when it took effect, in log order (the
    /// proposer first unless its key was revoked before then).
    pub approved_by: Vec<String>,
    /// The `received_at` of its revocation, if the prefix revoked it.
    pub revoked_at: Option<i64>,
}
