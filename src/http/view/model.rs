//! The values the templates lay out: one struct per part of a page, every text already
//! formatted.

/// The checkpointed prefix a page reflects, and how to verify it.
#[derive(Debug, Clone)]
pub struct PrefixView {
    pub tree_size: u64,
    /// The signed checkpoint note.
    pub checkpoint: String,
    pub verifier_key: String,
    /// `received_at` of the prefix's last entry.
    pub as_of: TimeView,
}

/// A time as shown, with its machine-readable form for `<time datetime>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeView {
    pub iso: String,
    pub text: String,
}

/// A state as shown: never by colour alone, always with a word (and a symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBadge {
    /// CSS class suffix: `up`, `down`, `unknown`, `maintenance`.
    pub class: &'static str,
    pub label: &'static str,
    pub symbol: &'static str,
}

/// An availability figure over one window, compared with the SLO target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub window: &'static str,
    pub text: String,
    /// `met`, `missed` or `none`.
    pub class: &'static str,
    pub note: String,
}

/// One day's bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayBar {
    /// `met`, `missed`, `poor`, `maintenance` or `none`.
    pub class: &'static str,
    /// The day (in the page's zone), e.g. `27 Nov 2026`.
    pub date: String,
    /// The day's figures and incidents, for the title (hover) and the service page's list.
    pub detail: String,
    /// The service page over that day.
    pub href: String,
    /// Below target, or with an incident or maintenance: listed on the service page.
    pub notable: bool,
}

#[derive(Debug, Clone)]
pub struct ServiceCard {
    pub service_id: String,
    pub name: String,
    pub agency: String,
    pub state: StateBadge,
    /// Since when the state holds, e.g. `since 2026-11-27 14:02 EAT`.
    pub since: String,
    pub slo_target: String,
    /// 24 h, 30 d, 90 d.
    pub figures: Vec<Figure>,
    pub days: Vec<DayBar>,
    /// The bars in words (the accessible name of the bar chart).
    pub days_summary: String,
    pub first_day: String,
}

#[derive(Debug, Clone)]
pub struct AgencyView {
    pub name: String,
    pub services: Vec<ServiceCard>,
}

#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub service_id: String,
    pub service_name: String,
    pub start: TimeView,
    pub end: TimeView,
    pub duration: String,
    /// DOWN until the data ends: still going on as far as the log knows.
    pub open: bool,
    /// For an open incident, the newest observation: the latest evidence.
    pub last_observed: Option<TimeView>,
    pub probes: String,
}

#[derive(Debug, Clone)]
pub struct MaintenanceRow {
    pub service_id: String,
    pub service_name: String,
    pub maintenance_id: String,
    pub start: TimeView,
    pub end: TimeView,
    pub duration: String,
    /// `in progress`, `planned`, `ended` or `cancelled`.
    pub status: &'static str,
    /// The same as a CSS class suffix.
    pub status_class: &'static str,
}

/// The public status page.
#[derive(Debug, Clone)]
pub struct StatusPage {
    /// One line about every service, e.g. "All services are operational".
    pub headline: String,
    pub agencies: Vec<AgencyView>,
    pub incidents: Vec<IncidentRow>,
    pub maintenance: Vec<MaintenanceRow>,
    /// The zone times are shown in, e.g. `Africa/Nairobi (EAT, UTC+03:00)`.
    pub zone: String,
    pub prefix: PrefixView,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub label: String,
    pub href: String,
    pub current: bool,
}

#[derive(Debug, Clone)]
pub struct ReportView {
    pub availability: String,
    pub coverage: String,
    pub slo_target: String,
    /// `met`, `missed` or `none`, and the same in words.
    pub slo_class: &'static str,
    pub slo_status: &'static str,
    pub up: String,
    pub down: String,
    pub unknown: String,
    pub maintenance: String,
    pub error_budget: String,
    pub error_budget_remaining: String,
    pub incident_count: u64,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub state: StateBadge,
    pub start: TimeView,
    pub end: TimeView,
    pub duration: String,
    /// Share of the window, in percent, for the bar's widths.
    pub percent: String,
}

#[derive(Debug, Clone)]
pub struct ProbeRow {
    pub probe_id: String,
    pub location: String,
    pub last_status: &'static str,
    pub last_observed_at: TimeView,
    pub age: String,
    pub revoked: bool,
    pub registered: Option<Registration>,
}

/// When a probe's registration took effect, who proposed it and who approved it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub at: TimeView,
    pub by: String,
    /// The other admins whose approvals counted (empty when one signature sufficed).
    pub approved_by: Vec<String>,
}

/// One service's page over a chosen window.
#[derive(Debug, Clone)]
pub struct ServicePage {
    pub card: ServiceCard,
    /// Days of `card.days` listed under the bars (see [`DayBar::notable`]).
    pub notable_days: usize,
    pub quorum: String,
    pub staleness: String,
    pub window_label: String,
    pub window_start: TimeView,
    pub window_end: TimeView,
    pub windows: Vec<Link>,
    pub months: Vec<Link>,
    pub report: ReportView,
    pub timeline: Vec<Segment>,
    /// The newest intervals, newest first.
    pub timeline_rows: Vec<Segment>,
    pub timeline_rows_hidden: usize,
    pub incidents: Vec<IncidentRow>,
    pub probes: Vec<ProbeRow>,
    pub maintenance: Vec<MaintenanceRow>,
    /// The zone times are shown in.
    pub zone: String,
    pub prefix: PrefixView,
}
