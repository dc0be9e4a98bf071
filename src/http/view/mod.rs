//! The status page and the service page as plain values, computed from one published prefix.
//!
//! Pure: the caller passes the prefix, the verifier key and
//! `now` (used only for current states and ages, as in `GetService`); the templates in
//! `templates/` only lay these values out. Every figure comes from [`crate::query`], so the
//! pages show the numbers the JSON API and gRPC give. Times are shown in the server's
//! [`DisplayZone`], and the status page shows no time relative to `now`, so the same prefix
//! and the same current states give the same bytes ([`states_hold_until`] says how long).
//!
//! - [`model`]: the values the templates lay out;
//! - [`format`]: how states, figures, durations and windows are written;
//! - [`zone`]: the time zone times and days are shown in;
//! - [`feed`]: the Atom feeds of incidents and maintenance;
//! - [`badge`]: a service's 30-day availability badge;
//! - this module: the page builders.

mod badge;
mod feed;
mod format;
mod model;
mod zone;

pub use badge::{badge, Badge, BadgeSvg};
pub use feed::{feed, FeedEntry, FeedView};
pub use format::{human_duration, percent, state_badge, target_text, window_label};
pub use model::*;
pub use zone::{DisplayZone, UnknownZone};

use format::{optional_percent, quorum_text, MONTH_NAMES};

use super::params::NAMED_WINDOWS;
use crate::domain::{format_millis, Status};
use crate::projection::{Incident, Maintenance, Projection, State};
use crate::projector::Published;
use crate::query::{self, ServiceStatus};
use crate::window::WindowSpec;

/// How far ahead [`states_hold_until`] looks for a change of state.
const STATES_LOOKAHEAD: i64 = 86_400_000;
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

/// The front page: every service by agency, recent incidents, planned maintenance. It
/// depends on `now` only through the current states and the maintenance windows' status, so
/// it stays the same until [`states_hold_until`].
pub fn status_page(
    published: &Published,
    verifier_key: &str,
    zone: &DisplayZone,
    now: i64,
) -> StatusPage {
    let services = query::services(published, now);
    let mut agencies: Vec<AgencyView> = Vec::new();
    for status in &services {
        let card = service_card(published, status, zone, now);
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
                    .map(|incident| incident_row(status, incident, zone)),
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
                .map(|window| (window.start, maintenance_row(status, &window, zone, now)))
                .collect::<Vec<_>>()
        })
        .collect();
    maintenance.sort_by_key(|(start, _)| *start);

    StatusPage {
        headline: headline(&services),
        agencies,
        incidents,
        maintenance: maintenance.into_iter().map(|(_, row)| row).collect(),
        zone: zone.describe(anchor(published, now)),
        prefix: prefix_view(published, verifier_key, zone),
    }
}

/// Until when (exclusive) what the status page shows for `now` holds for this prefix: the
/// first time after `now` at which a service's state changes (an observation goes stale, a
/// maintenance window starts or ends) or a maintenance window's status does. `i64::MAX`
/// when nothing changes until new entries arrive.
pub fn states_hold_until(published: &Published, now: i64) -> i64 {
    let projection = &published.projection;
    let mut until = i64::MAX;
    for spec in projection.services() {
        let service_id: &str = &spec.service_id;
        if let Some(intervals) =
            projection.timeline(service_id, now, now.saturating_add(STATES_LOOKAHEAD))
        {
            if let Some(first) = intervals.first() {
                if first.end < now.saturating_add(STATES_LOOKAHEAD) {
                    until = until.min(first.end);
                }
            }
        }
        for window in projection.maintenance(service_id).unwrap_or_default() {
            for boundary in [window.start, window.end] {
                if boundary > now {
                    until = until.min(boundary);
                }
            }
        }
    }
    until.min(now.saturating_add(STATES_LOOKAHEAD))
}

/// One service over `window`: an error for an undefined service or a window that does not
/// resolve.
pub fn service_page(
    published: &Published,
    verifier_key: &str,
    service_id: &str,
    window: &WindowSpec,
    zone: &DisplayZone,
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
            start: zone.time(interval.start),
            end: zone.time(interval.end),
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
        .map(|probe| ProbeRow {
            last_status: match probe.last_status {
                Status::Up => "up",
                Status::Down => "down",
            },
            last_observed_at: zone.time(probe.last_observed_at),
            age: match now - probe.last_observed_at {
                age if age < 1000 => "just now".into(),
                age => format!("{} ago", human_duration(age)),
            },
            location: probe
                .registration
                .as_ref()
                .map(|r| r.location.clone())
                .unwrap_or_default(),
            revoked: probe
                .registration
                .as_ref()
                .is_some_and(|r| r.revoked_at.is_some()),
            registered: probe.registration.map(|r| Registration {
                at: zone.time(r.registered_at),
                approved_by: r
                    .approved_by
                    .into_iter()
                    .filter(|admin| *admin != r.registered_by)
                    .collect(),
                by: r.registered_by,
            }),
            probe_id: probe.probe_id,
        })
        .collect();

    let maintenance = projection
        .maintenance(service_id)
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|window| maintenance_row(&status, window, zone, now))
        .collect();

    let (slo_class, slo_status) = match report.availability {
        None => ("none", "no data"),
        Some(_) if report.slo_met => ("met", "met"),
        Some(_) => ("missed", "missed"),
    };
    let remaining = report.error_budget_remaining_ms;
    let anchor = anchor(published, now);
    let card = service_card(published, &status, zone, now);
    Ok(ServicePage {
        quorum: quorum_text(status.spec.quorum),
        staleness: human_duration(status.spec.staleness_ms()),
        window_label: window_label(window, zone),
        window_start: zone.time(timeline.start),
        window_end: zone.time(timeline.end),
        windows: NAMED_WINDOWS
            .iter()
            .map(|(name, spec)| Link {
                label: window_label(spec, zone),
                href: format!("/services/{service_id}?window={name}"),
                current: spec == window,
            })
            .collect(),
        months: month_links(service_id, anchor, window, zone),
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
            .map(|incident| incident_row(&status, incident, zone))
            .collect(),
        probes,
        maintenance,
        notable_days: card.days.iter().filter(|day| day.notable).count(),
        card,
        zone: zone.describe(anchor),
        prefix: prefix_view(published, verifier_key, zone),
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

fn service_card(
    published: &Published,
    status: &ServiceStatus,
    zone: &DisplayZone,
    now: i64,
) -> ServiceCard {
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
    let anchor = anchor(published, now);
    let days: Vec<DayBar> = (0..DAYS_SHOWN)
        .rev()
        .map(|before| {
            let (start, end, date) = zone.day_before(anchor, before);
            day_bar(&published.projection, status, zone, (start, end), date)
        })
        .collect();
    let first_day = zone.day_before(anchor, DAYS_SHOWN - 1).2;
    ServiceCard {
        service_id: spec.service_id.to_string(),
        name: spec.name.clone(),
        agency: spec.agency.clone(),
        state: state_badge(status.state),
        since: match status.since {
            Some(since) => format!("since {}", zone.time(since).text),
            None => "no data yet".into(),
        },
        slo_target: target_text(spec.slo_target),
        figures,
        days_summary: days_summary(&days, spec.slo_target),
        days,
        first_day: format::date_text(first_day),
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

fn day_bar(
    projection: &Projection,
    status: &ServiceStatus,
    zone: &DisplayZone,
    (start, end): (i64, i64),
    date: jiff::civil::Date,
) -> DayBar {
    let service_id = &status.spec.service_id;
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
                detail.push_str(&incidents_text(
                    &incidents,
                    report.incident_count,
                    (start, end),
                    zone,
                ));
            }
            let notable = matches!(class, "missed" | "poor")
                || report.incident_count > 0
                || report.maintenance_ms > 0;
            (class, detail, notable)
        }
    };
    DayBar {
        class,
        date: format::date_text(date),
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
/// (`27 Nov 23:40–00:20 UTC (40 min)`). Times are in `zone`, named by its abbreviation.
fn incidents_text(
    incidents: &[Incident],
    count: u64,
    (day_start, day_end): (i64, i64),
    zone: &DisplayZone,
) -> String {
    let mut text = match count {
        1 => ", 1 incident".to_owned(),
        n => format!(", {n} incidents"),
    };
    let clock = |millis: i64| {
        let format = if (day_start..day_end).contains(&millis) {
            "%H:%M"
        } else {
            "%-d %b %H:%M"
        };
        zone.strftime(millis, format)
    };
    let listed: Vec<String> = incidents
        .iter()
        .take(INCIDENTS_PER_DAY)
        .map(|incident| {
            match incident.last_observed_at.filter(|_| incident.open) {
                // Ongoing: no end is shown, only the latest evidence.
                Some(last) => format!(
                    "from {} {}, ongoing ({} so far)",
                    clock(incident.start),
                    zone.strftime(incident.start, "%Z"),
                    human_duration(last - incident.start)
                ),
                None => format!(
                    "{}–{} {} ({})",
                    clock(incident.start),
                    clock(incident.end),
                    zone.strftime(incident.start, "%Z"),
                    human_duration(incident.end - incident.start)
                ),
            }
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

fn incident_row(status: &ServiceStatus, incident: &Incident, zone: &DisplayZone) -> IncidentRow {
    IncidentRow {
        service_id: status.spec.service_id.to_string(),
        service_name: status.spec.name.clone(),
        start: zone.time(incident.start),
        end: zone.time(incident.end),
        // An open incident lasts, as far as the log shows, until its latest evidence: `end`
        // is where the data runs out, which may not have happened yet.
        duration: human_duration(
            incident.last_observed_at.unwrap_or(incident.end) - incident.start,
        ),
        open: incident.open,
        last_observed: incident.last_observed_at.map(|at| zone.time(at)),
        probes: if incident.probes.is_empty() {
            "—".into()
        } else {
            incident.probes.join(", ")
        },
    }
}

fn maintenance_row(
    service: &ServiceStatus,
    window: &Maintenance,
    zone: &DisplayZone,
    now: i64,
) -> MaintenanceRow {
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
        service_id: service.spec.service_id.to_string(),
        service_name: service.spec.name.clone(),
        maintenance_id: window.maintenance_id.clone(),
        start: zone.time(window.start),
        end: zone.time(window.end),
        duration: human_duration(window.end - window.start),
        status,
        status_class,
    }
}

fn prefix_view(published: &Published, verifier_key: &str, zone: &DisplayZone) -> PrefixView {
    PrefixView {
        tree_size: published.tree_size,
        checkpoint: published.checkpoint.clone(),
        verifier_key: verifier_key.to_owned(),
        as_of: zone.time(published.as_of),
    }
}

/// The last [`MONTHS_OFFERED`] calendar months in `zone`, ending with `anchor`'s.
fn month_links(
    service_id: &str,
    anchor: i64,
    current: &WindowSpec,
    zone: &DisplayZone,
) -> Vec<Link> {
    let date = zone.date(anchor);
    let (mut year, mut month) = (i32::from(date.year()), date.month() as u8);
    let (time_zone, zone_query) = if zone.is_utc() {
        (String::new(), String::new())
    } else {
        (
            zone.name().to_owned(),
            format!("&time_zone={}", zone.name()),
        )
    };
    let mut links = Vec::with_capacity(MONTHS_OFFERED);
    for _ in 0..MONTHS_OFFERED {
        let spec = WindowSpec::Month {
            year,
            month,
            time_zone: time_zone.clone(),
        };
        links.push(Link {
            label: format!("{} {year}", MONTH_NAMES[usize::from(month) - 1]),
            href: format!("/services/{service_id}?month={year:04}-{month:02}{zone_query}"),
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

/// Where the bars and month links end: the prefix's as-of time, or `now` for a prefix
/// without entries.
fn anchor(published: &Published, now: i64) -> i64 {
    if published.as_of == i64::MIN {
        now
    } else {
        published.as_of
    }
}

#[cfg(test)]
mod tests;
