//! The status page and the service page as plain values, computed from one published prefix.
//!
//! Pure: the caller passes the prefix, the registry (probe locations), the verifier key and
//! `now` (used only for current states and ages, as in `GetService`); the templates in
//! `templates/` only lay these values out. Every figure comes from [`crate::query`], so the
//! pages show the numbers the JSON API and gRPC give. Times are shown in UTC.

use crate::domain::{ProbeId, Quorum, Status};
use crate::log::Registry;
use crate::projection::{Incident, Maintenance, Projection, State};
use crate::projector::Published;
use crate::query::{self, ServiceStatus};
use crate::window::WindowSpec;

use super::params::NAMED_WINDOWS;
use crate::domain::format_millis;

const DAY_MS: i64 = 86_400_000;
/// Days shown as bars, ending with the day of the prefix's as-of time.
pub const DAYS_SHOWN: i64 = 90;
/// Incidents listed on the front page: those intersecting this window, newest first.
const RECENT_INCIDENTS_WINDOW: WindowSpec = WindowSpec::Last30Days;
const RECENT_INCIDENTS_SHOWN: usize = 10;
/// Calendar months offered on the service page, ending with the current one.
const MONTHS_OFFERED: usize = 12;
/// Timeline intervals listed in the table (newest first); the bar shows them all.
const TIMELINE_ROWS_SHOWN: usize = 100;
/// Below this availability a day below its target is marked as a major outage.
const POOR_DAY: f64 = 0.95;
/// Incidents a day's bar lists by time (the service page lists them all).
const INCIDENTS_PER_DAY: usize = 3;

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
    /// The day (UTC), e.g. `27 Nov 2026`.
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
    /// How long the state has held, e.g. `for 3 h 12 min`.
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
    pub now: TimeView,
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
    pub prefix: PrefixView,
}

/// The front page: every service by agency, recent incidents, planned maintenance.
pub fn status_page(published: &Published, verifier_key: &str, now: i64) -> StatusPage {
    let services = query::services(published, now);
    let mut agencies: Vec<AgencyView> = Vec::new();
    for status in &services {
        let card = service_card(published, status, now);
        match agencies.iter_mut().find(|a| a.name == status.spec.agency) {
            Some(agency) => agency.services.push(card),
            None => agencies.push(AgencyView {
                name: status.spec.agency.clone(),
                services: vec![card],
            }),
        }
    }

    let mut incidents = Vec::new();
    for status in &services {
        let found = query::incidents(published, &status.spec.service_id, &RECENT_INCIDENTS_WINDOW);
        if let Ok(found) = found {
            incidents.extend(
                found
                    .value
                    .iter()
                    .map(|incident| incident_row(status, incident)),
            );
        }
    }
    incidents.sort_by(|a, b| b.start.iso.cmp(&a.start.iso));
    incidents.truncate(RECENT_INCIDENTS_SHOWN);

    let mut maintenance: Vec<(i64, MaintenanceRow)> = services
        .iter()
        .flat_map(|status| {
            published
                .projection
                .maintenance(&status.spec.service_id)
                .unwrap_or_default()
                .into_iter()
                .filter(|window| window.start < window.end && window.end > now)
                .map(|window| (window.start, maintenance_row(status, &window, now)))
                .collect::<Vec<_>>()
        })
        .collect();
    maintenance.sort_by_key(|(start, _)| *start);

    StatusPage {
        headline: headline(&services),
        agencies,
        incidents,
        maintenance: maintenance.into_iter().map(|(_, row)| row).collect(),
        now: time_view(now),
        prefix: prefix_view(published, verifier_key),
    }
}

/// One service over `window`: an error for an undefined service or a window that does not
/// resolve.
pub fn service_page(
    published: &Published,
    registry: &Registry,
    verifier_key: &str,
    service_id: &str,
    window: &WindowSpec,
    now: i64,
) -> Result<ServicePage, query::QueryError> {
    let status = query::service(published, service_id, now)?;
    let report = query::availability(published, service_id, window)?;
    let timeline = query::timeline(published, service_id, window)?;
    let incidents = query::incidents(published, service_id, window)?;
    let projection = &published.projection;

    let width = (timeline.end - timeline.start).max(1) as f64;
    let segments: Vec<Segment> = timeline
        .value
        .iter()
        .map(|interval| Segment {
            state: state_badge(interval.state),
            start: time_view(interval.start),
            end: time_view(interval.end),
            duration: human_duration(interval.end - interval.start),
            percent: format!(
                "{:.4}",
                (interval.end - interval.start) as f64 * 100.0 / width
            ),
        })
        .collect();
    let timeline_rows: Vec<Segment> = segments
        .iter()
        .rev()
        .take(TIMELINE_ROWS_SHOWN)
        .cloned()
        .collect();

    let probes = projection
        .probes_for(service_id)
        .unwrap_or_default()
        .into_iter()
        .map(|probe| {
            let record = ProbeId::parse(&probe.probe_id)
                .ok()
                .and_then(|id| registry.probe(&id).cloned());
            ProbeRow {
                last_status: match probe.last_status {
                    Status::Up => "up",
                    Status::Down => "down",
                },
                last_observed_at: time_view(probe.last_observed_at),
                age: match now - probe.last_observed_at {
                    age if age < 1000 => "just now".into(),
                    age => format!("{} ago", human_duration(age)),
                },
                location: record
                    .as_ref()
                    .map(|r| r.location.clone())
                    .unwrap_or_default(),
                revoked: record.is_some_and(|r| r.revoked.is_some()),
                probe_id: probe.probe_id,
            }
        })
        .collect();

    let maintenance = projection
        .maintenance(service_id)
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|window| maintenance_row(&status, window, now))
        .collect();

    let (slo_class, slo_status) = match report.availability {
        None => ("none", "no data"),
        Some(_) if report.slo_met => ("met", "met"),
        Some(_) => ("missed", "missed"),
    };
    let remaining = report.error_budget_remaining_ms;
    let anchor = anchor(published, now);
    let card = service_card(published, &status, now);
    Ok(ServicePage {
        quorum: quorum_text(status.spec.quorum),
        staleness: human_duration(status.spec.staleness_ms),
        window_label: window_label(window),
        window_start: time_view(timeline.start),
        window_end: time_view(timeline.end),
        windows: NAMED_WINDOWS
            .iter()
            .map(|(name, spec)| Link {
                label: window_label(spec),
                href: format!("/services/{service_id}?window={name}"),
                current: spec == window,
            })
            .collect(),
        months: month_links(service_id, anchor, window),
        report: ReportView {
            availability: optional_percent(report.availability),
            coverage: optional_percent(report.coverage),
            slo_target: target_text(report.slo_target),
            slo_class,
            slo_status,
            up: human_duration(report.up_ms as i64),
            down: human_duration(report.down_ms as i64),
            unknown: human_duration(report.unknown_ms as i64),
            maintenance: human_duration(report.maintenance_ms as i64),
            error_budget: human_duration(report.error_budget_ms.round() as i64),
            error_budget_remaining: if remaining < 0.0 {
                format!("{} overspent", human_duration(-remaining.round() as i64))
            } else {
                human_duration(remaining.round() as i64)
            },
            incident_count: report.incident_count,
        },
        timeline_rows_hidden: segments.len() - timeline_rows.len(),
        timeline: segments,
        timeline_rows,
        incidents: incidents
            .value
            .iter()
            .rev()
            .map(|incident| incident_row(&status, incident))
            .collect(),
        probes,
        maintenance,
        notable_days: card.days.iter().filter(|day| day.notable).count(),
        card,
        prefix: prefix_view(published, verifier_key),
    })
}

fn headline(services: &[ServiceStatus]) -> String {
    let count = |state| services.iter().filter(|s| s.state == state).count();
    let (down, unknown, maintenance) = (
        count(State::Down),
        count(State::Unknown),
        count(State::Maintenance),
    );
    if services.is_empty() {
        return "No services are defined yet".into();
    }
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let mut parts = Vec::new();
    if down > 0 {
        parts.push(plural(down, "service is down", "services are down"));
    }
    if maintenance > 0 {
        parts.push(plural(maintenance, "in maintenance", "in maintenance"));
    }
    if unknown > 0 {
        parts.push(plural(unknown, "without fresh data", "without fresh data"));
    }
    if parts.is_empty() {
        "All services are operational".into()
    } else {
        parts.join(", ")
    }
}

fn service_card(published: &Published, status: &ServiceStatus, now: i64) -> ServiceCard {
    let spec = &status.spec;
    let figures = [
        ("24 h", WindowSpec::Last24Hours),
        ("30 d", WindowSpec::Last30Days),
        ("90 d", WindowSpec::Last90Days),
    ]
    .into_iter()
    .map(|(label, window)| {
        let availability = query::availability(published, &spec.service_id, &window)
            .ok()
            .and_then(|report| report.availability);
        figure(label, availability, spec.slo_target)
    })
    .collect();
    let first_day = day_start(anchor(published, now)) - (DAYS_SHOWN - 1) * DAY_MS;
    let days: Vec<DayBar> = (0..DAYS_SHOWN)
        .map(|day| day_bar(&published.projection, status, first_day + day * DAY_MS))
        .collect();
    ServiceCard {
        service_id: spec.service_id.clone(),
        name: spec.name.clone(),
        agency: spec.agency.clone(),
        state: state_badge(status.state),
        since: match status.since {
            Some(since) => format!("for {}", human_duration(now - since)),
            None => "no data yet".into(),
        },
        slo_target: target_text(spec.slo_target),
        figures,
        days_summary: days_summary(&days, spec.slo_target),
        days,
        first_day: day_text(first_day),
    }
}

fn figure(window: &'static str, availability: Option<f64>, target: f64) -> Figure {
    match availability {
        None => Figure {
            window,
            text: "—".into(),
            class: "none",
            note: "no data".into(),
        },
        Some(value) if value >= target => Figure {
            window,
            text: percent(value),
            class: "met",
            note: format!("meets the {} target", target_text(target)),
        },
        Some(value) => Figure {
            window,
            text: percent(value),
            class: "missed",
            note: format!("below the {} target", target_text(target)),
        },
    }
}

fn day_bar(projection: &Projection, status: &ServiceStatus, start: i64) -> DayBar {
    let service_id = &status.spec.service_id;
    let end = start + DAY_MS;
    let (class, detail, notable) = match projection.report(service_id, start, end) {
        None => ("none", "no data".to_owned(), false),
        Some(report) => {
            let mut detail = String::new();
            let class = match report.availability {
                Some(value) => {
                    detail.push_str(&format!("{} available", percent(value)));
                    if report.down_ms > 0 {
                        detail
                            .push_str(&format!(", down {}", human_duration(report.down_ms as i64)));
                    }
                    if value >= report.slo_target {
                        "met"
                    } else if value >= POOR_DAY {
                        "missed"
                    } else {
                        "poor"
                    }
                }
                None if report.maintenance_ms > 0 => {
                    detail.push_str("maintenance only");
                    "maintenance"
                }
                None => {
                    detail.push_str("no data");
                    "none"
                }
            };
            if report.availability.is_some() && report.maintenance_ms > 0 {
                detail.push_str(&format!(
                    ", maintenance {}",
                    human_duration(report.maintenance_ms as i64)
                ));
            }
            if report.incident_count > 0 {
                let incidents = projection
                    .incidents(service_id, start, end)
                    .unwrap_or_default();
                detail.push_str(&incidents_text(&incidents, report.incident_count, start));
            }
            let notable = matches!(class, "missed" | "poor")
                || report.incident_count > 0
                || report.maintenance_ms > 0;
            (class, detail, notable)
        }
    };
    DayBar {
        class,
        date: day_text(start),
        notable,
        detail,
        href: format!(
            "/services/{service_id}?start={}&end={}",
            format_millis(start),
            format_millis(end)
        ),
    }
}

/// `, 1 incident: 14:02–14:49 UTC (47 min)`; at most [`INCIDENTS_PER_DAY`] listed. An
/// incident is shown whole: an end outside the day carries its date
/// (`27 Nov 23:40–00:20 UTC (40 min)`).
fn incidents_text(incidents: &[Incident], count: u64, day: i64) -> String {
    let mut text = match count {
        1 => ", 1 incident".to_owned(),
        n => format!(", {n} incidents"),
    };
    let clock = |millis: i64| {
        let format = if (day..day + DAY_MS).contains(&millis) {
            "%H:%M"
        } else {
            "%-d %b %H:%M"
        };
        jiff::Timestamp::from_millisecond(millis)
            .map(|t| t.strftime(format).to_string())
            .unwrap_or_default()
    };
    let listed: Vec<String> = incidents
        .iter()
        .take(INCIDENTS_PER_DAY)
        .map(|incident| {
            format!(
                "{}–{} UTC ({}{})",
                clock(incident.start),
                clock(incident.end),
                human_duration(incident.end - incident.start),
                if incident.open { ", ongoing" } else { "" }
            )
        })
        .collect();
    if !listed.is_empty() {
        text.push_str(": ");
        text.push_str(&listed.join(", "));
        if incidents.len() > INCIDENTS_PER_DAY {
            text.push_str(&format!(
                ", and {} more",
                incidents.len() - INCIDENTS_PER_DAY
            ));
        }
    }
    text
}

fn days_summary(days: &[DayBar], target: f64) -> String {
    let count = |class: &str| days.iter().filter(|d| d.class == class).count();
    format!(
        "Last {DAYS_SHOWN} days: {} met the {} target, {} below it, {} without data",
        count("met"),
        target_text(target),
        count("missed") + count("poor"),
        count("none") + count("maintenance"),
    )
}

fn incident_row(status: &ServiceStatus, incident: &Incident) -> IncidentRow {
    IncidentRow {
        service_id: status.spec.service_id.clone(),
        service_name: status.spec.name.clone(),
        start: time_view(incident.start),
        end: time_view(incident.end),
        duration: human_duration(incident.end - incident.start),
        open: incident.open,
        probes: if incident.probes.is_empty() {
            "—".into()
        } else {
            incident.probes.join(", ")
        },
    }
}

fn maintenance_row(service: &ServiceStatus, window: &Maintenance, now: i64) -> MaintenanceRow {
    let (status, status_class) = if window.start >= window.end {
        ("cancelled", "cancelled")
    } else if window.end <= now {
        ("ended", "ended")
    } else if window.start <= now {
        ("in progress", "in-progress")
    } else {
        ("planned", "planned")
    };
    MaintenanceRow {
        service_id: service.spec.service_id.clone(),
        service_name: service.spec.name.clone(),
        maintenance_id: window.maintenance_id.clone(),
        start: time_view(window.start),
        end: time_view(window.end),
        duration: human_duration(window.end - window.start),
        status,
        status_class,
    }
}

fn prefix_view(published: &Published, verifier_key: &str) -> PrefixView {
    PrefixView {
        tree_size: published.tree_size,
        checkpoint: published.checkpoint.clone(),
        verifier_key: verifier_key.to_owned(),
        as_of: time_view(published.as_of),
    }
}

fn month_links(service_id: &str, anchor: i64, current: &WindowSpec) -> Vec<Link> {
    let Ok(time) = jiff::Timestamp::from_millisecond(anchor) else {
        return Vec::new();
    };
    let date = time.to_zoned(jiff::tz::TimeZone::UTC).date();
    let (mut year, mut month) = (i32::from(date.year()), date.month() as u8);
    let mut links = Vec::with_capacity(MONTHS_OFFERED);
    for _ in 0..MONTHS_OFFERED {
        let spec = WindowSpec::Month {
            year,
            month,
            time_zone: String::new(),
        };
        links.push(Link {
            label: format!("{} {year}", MONTH_NAMES[usize::from(month) - 1]),
            href: format!("/services/{service_id}?month={year:04}-{month:02}"),
            current: &spec == current,
        });
        (year, month) = if month == 1 {
            (year - 1, 12)
        } else {
            (year, month - 1)
        };
    }
    links
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// How a window is named on the page.
pub fn window_label(window: &WindowSpec) -> String {
    match window {
        WindowSpec::Last24Hours => "Last 24 hours".into(),
        WindowSpec::Last7Days => "Last 7 days".into(),
        WindowSpec::Last30Days => "Last 30 days".into(),
        WindowSpec::Last90Days => "Last 90 days".into(),
        WindowSpec::Month {
            year,
            month,
            time_zone,
        } => {
            let name = MONTH_NAMES
                .get(usize::from(*month).wrapping_sub(1))
                .copied()
                .unwrap_or("Month");
            if time_zone.is_empty() {
                format!("{name} {year} (UTC)")
            } else {
                format!("{name} {year} ({time_zone})")
            }
        }
        WindowSpec::Range { start, end } => {
            format!("{} to {}", time_view(*start).text, time_view(*end).text)
        }
    }
}

/// Where the bars and month links end: the prefix's as-of time, or `now` for a prefix
/// without entries.
fn anchor(published: &Published, now: i64) -> i64 {
    if published.as_of == i64::MIN {
        now
    } else {
        published.as_of
    }
}

fn day_start(at: i64) -> i64 {
    at.div_euclid(DAY_MS) * DAY_MS
}

pub fn state_badge(state: State) -> StateBadge {
    match state {
        State::Up => StateBadge {
            class: "up",
            label: "Operational",
            symbol: "✓",
        },
        State::Down => StateBadge {
            class: "down",
            label: "Down",
            symbol: "✕",
        },
        State::Unknown => StateBadge {
            class: "unknown",
            label: "No fresh data",
            symbol: "?",
        },
        State::Maintenance => StateBadge {
            class: "maintenance",
            label: "Maintenance",
            symbol: "⚒",
        },
    }
}

fn quorum_text(quorum: Quorum) -> String {
    match quorum {
        Quorum::Any => "down when any probe sees it down".into(),
        Quorum::Majority => "down when a majority of probes see it down".into(),
        Quorum::All => "down when every probe sees it down".into(),
        Quorum::AtLeast(k) => format!("down when at least {k} probes see it down"),
    }
}

/// A ratio as a percentage, rounded down to 0.01 so that 99.999% never shows as 100%.
pub fn percent(ratio: f64) -> String {
    if ratio >= 1.0 {
        return "100%".into();
    }
    format!("{:.2}%", ((ratio * 10_000.0) + 1e-9).floor() / 100.0)
}

fn optional_percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "—".into(), percent)
}

/// An SLO target as written by people: 0.999 → `99.9%`, 0.9995 → `99.95%`.
pub fn target_text(target: f64) -> String {
    let text = format!("{:.3}", target * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// A duration in the two largest units that matter: `45 s`, `12 min 5 s`, `3 h 12 min`,
/// `2 d 4 h`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    let seconds = ms / 1000;
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    let pair = |a: i64, a_unit: &str, b: i64, b_unit: &str| {
        if b == 0 {
            format!("{a} {a_unit}")
        } else {
            format!("{a} {a_unit} {b} {b_unit}")
        }
    };
    if days > 0 {
        pair(days, "d", hours, "h")
    } else if hours > 0 {
        pair(hours, "h", minutes, "min")
    } else if minutes > 0 {
        pair(minutes, "min", secs, "s")
    } else if seconds > 0 {
        format!("{seconds} s")
    } else {
        format!("{ms} ms")
    }
}

pub fn time_view(millis: i64) -> TimeView {
    let iso = format_millis(millis);
    let text = jiff::Timestamp::from_millisecond(millis)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| iso.clone());
    TimeView { iso, text }
}

fn day_text(millis: i64) -> String {
    jiff::Timestamp::from_millisecond(millis)
        .map(|t| t.strftime("%-d %b %Y").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_lists_its_incidents_by_time_with_dates_outside_the_day() {
        // 2026-11-28T00:00:00Z.
        let day = 1_795_824_000_000;
        let incident = |start: i64, end: i64, open: bool| Incident {
            start,
            end,
            open,
            probes: vec!["p1".into()],
        };
        let minute = 60_000;
        let one = [incident(
            day + 14 * 60 * minute + 2 * minute,
            day + 14 * 60 * minute + 49 * minute,
            false,
        )];
        assert_eq!(
            incidents_text(&one, 1, day),
            ", 1 incident: 14:02–14:49 UTC (47 min)"
        );
        // Across midnight on both sides; the last one still open.
        let many = [
            incident(day - 20 * minute, day + 20 * minute, false),
            incident(day + 60 * minute, day + 61 * minute, false),
            incident(day + 120 * minute, day + 121 * minute, false),
            incident(day + DAY_MS - 10 * minute, day + DAY_MS + 5 * minute, true),
        ];
        assert_eq!(
            incidents_text(&many, 4, day),
            ", 4 incidents: 27 Nov 23:40–00:20 UTC (40 min), 01:00–01:01 UTC (1 min), \
             02:00–02:01 UTC (1 min), and 1 more"
        );
        assert_eq!(
            incidents_text(&many[3..], 1, day),
            ", 1 incident: 23:50–29 Nov 00:05 UTC (15 min, ongoing)"
        );
    }

    #[test]
    fn percentages_round_down() {
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.99999), "99.99%");
        assert_eq!(percent(0.9995), "99.95%");
        assert_eq!(percent(500.0 / 600.0), "83.33%");
        assert_eq!(percent(0.0), "0.00%");
    }

    #[test]
    fn targets_read_as_people_write_them() {
        assert_eq!(target_text(0.999), "99.9%");
        assert_eq!(target_text(0.9995), "99.95%");
        assert_eq!(target_text(0.99), "99%");
    }

    #[test]
    fn durations_use_the_two_largest_units() {
        let table = [
            (250, "250 ms"),
            (45_000, "45 s"),
            (60_000, "1 min"),
            (725_000, "12 min 5 s"),
            (11_520_000, "3 h 12 min"),
            (187_200_000, "2 d 4 h"),
            (-5, "0 ms"),
        ];
        for (ms, expected) in table {
            assert_eq!(human_duration(ms), expected);
        }
    }

    #[test]
    fn days_are_utc_calendar_days() {
        // 2026-11-27T13:45Z → the bar of 27 Nov starts at midnight UTC.
        let at = 1_795_737_600_000 + 13 * 3_600_000 + 45 * 60_000;
        assert_eq!(day_start(at), 1_795_737_600_000);
        assert_eq!(day_text(day_start(at)), "27 Nov 2026");
        assert_eq!(time_view(at).text, "2026-11-27 13:45 UTC");
    }
}
