//! The Atom feeds (RFC 4287) of incidents and maintenance, for everyone or one service, as
//! plain values computed from one published prefix (pure; `templates/feed.xml` lays them
//! out).
//!
//! Entry ids are stable across prefixes: an incident is named by its log's origin, its
//! service and the millisecond it started; a maintenance window by its origin and
//! `maintenance_id`. Each becomes a name-based UUID (`urn:uuid:`, RFC 9562 version 8 over
//! SHA-256), so a reader that saw an incident open recognises it when it closes: the same
//! id, a later `updated`.

use sha2::{Digest, Sha256};

use super::format::human_duration;
use super::zone::DisplayZone;
use crate::domain::format_millis;
use crate::projection::{Incident, Maintenance};
use crate::projector::Published;
use crate::query::{self, QueryError, ServiceStatus};
use crate::window::WindowSpec;

/// Incidents in a feed: those intersecting this window.
const FEED_WINDOW: WindowSpec = WindowSpec::Last90Days;
/// At most this many entries, newest `updated` first.
pub const FEED_ENTRIES: usize = 50;

#[derive(Debug, Clone)]
pub struct FeedView {
    pub id: String,
    pub title: String,
    /// The newest entry's `updated` up to the prefix's as-of time, or that time when there
    /// is none.
    pub updated: String,
    /// The feed's own path (`rel="self"`).
    pub self_path: String,
    /// The page it summarises (`rel="alternate"`).
    pub page_path: String,
    pub entries: Vec<FeedEntry>,
}

#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub id: String,
    pub title: String,
    pub updated: String,
    /// `incident` or `maintenance`.
    pub category: &'static str,
    pub path: String,
    pub summary: String,
    /// For sorting: `updated` in milliseconds.
    updated_ms: i64,
}

/// The feed of every service (`service_id` `None`) or of one; an error for an undefined one.
pub fn feed(
    published: &Published,
    service_id: Option<&str>,
    zone: &DisplayZone,
) -> Result<FeedView, QueryError> {
    let origin = published.checkpoint.lines().next().unwrap_or_default();
    let services: Vec<ServiceStatus> = match service_id {
        // The state is not shown: the feed is the same whatever `now` is.
        Some(id) => vec![query::service(published, id, published.as_of)?],
        None => query::services(published, published.as_of),
    };
    let mut entries = Vec::new();
    for status in &services {
        let id: &str = &status.spec.service_id;
        if let Ok(found) = query::incidents(published, id, &FEED_WINDOW) {
            entries.extend(
                found
                    .value
                    .iter()
                    .map(|incident| incident_entry(origin, status, incident, zone)),
            );
        }
        let since = query::resolve(published, &FEED_WINDOW).map_or(i64::MIN, |(start, _)| start);
        entries.extend(
            published
                .projection
                .maintenance(id)
                .unwrap_or_default()
                .iter()
                .filter(|window| window.end > since || window.start > since)
                .map(|window| maintenance_entry(origin, status, window, zone)),
        );
    }
    entries.sort_by(|a, b| b.updated_ms.cmp(&a.updated_ms).then(a.id.cmp(&b.id)));
    entries.truncate(FEED_ENTRIES);
    // Maintenance entries are dated by their start, which may be ahead: the feed is dated
    // by its newest entry that is not, so its bytes stay the same from prefix to prefix
    // until an entry changes.
    let updated = entries
        .iter()
        .map(|entry| entry.updated_ms)
        .filter(|&at| at <= published.as_of)
        .max()
        .unwrap_or(published.as_of.max(0));
    let (title, self_path, page_path, scope) = match service_id {
        Some(id) => (
            format!("{}: incidents and maintenance", services[0].spec.name),
            format!("/services/{id}/feed.atom"),
            format!("/services/{id}"),
            format!("service/{id}"),
        ),
        None => (
            "Government services status: incidents and maintenance".to_owned(),
            "/feed.atom".to_owned(),
            "/".to_owned(),
            "all".to_owned(),
        ),
    };
    Ok(FeedView {
        id: stable_id(&[origin, "feed", &scope]),
        title,
        updated: format_millis(updated),
        self_path,
        page_path,
        entries,
    })
}

fn incident_entry(
    origin: &str,
    status: &ServiceStatus,
    incident: &Incident,
    zone: &DisplayZone,
) -> FeedEntry {
    let service_id: &str = &status.spec.service_id;
    let name = &status.spec.name;
    let duration = human_duration(incident.end - incident.start);
    let start = zone.time(incident.start).text;
    let end = zone.time(incident.end).text;
    let (title, summary, updated_ms) = if incident.open {
        (
            format!("{name} is down"),
            format!("{name} has been down since {start} (no data since {end}, {duration} so far)."),
            incident.start,
        )
    } else {
        (
            format!("{name} was down for {duration}"),
            format!("{name} was down from {start} to {end} ({duration})."),
            incident.end,
        )
    };
    let probes = if incident.probes.is_empty() {
        String::new()
    } else {
        format!(" Probes that saw it down: {}.", incident.probes.join(", "))
    };
    FeedEntry {
        id: stable_id(&[origin, "incident", service_id, &incident.start.to_string()]),
        title,
        updated: format_millis(updated_ms),
        category: "incident",
        path: format!(
            "/services/{service_id}?start={}&end={}",
            format_millis(incident.start),
            format_millis(incident.end.max(incident.start + 1))
        ),
        summary: summary + &probes,
        updated_ms,
    }
}

/// A window's entry is updated when it is scheduled to start, or when it was cancelled
/// (a cancel cuts its end to the cancel time).
fn maintenance_entry(
    origin: &str,
    status: &ServiceStatus,
    window: &Maintenance,
    zone: &DisplayZone,
) -> FeedEntry {
    let service_id: &str = &status.spec.service_id;
    let name = &status.spec.name;
    let start = zone.time(window.start).text;
    let end = zone.time(window.end).text;
    let (title, summary, updated_ms) = if window.cancelled {
        (
            format!("Maintenance of {name} cancelled"),
            format!(
                "Maintenance window {} of {name} was cancelled at {end}.",
                window.maintenance_id
            ),
            window.end,
        )
    } else {
        (
            format!("Maintenance of {name}: {start} to {end}"),
            format!(
                "Maintenance window {} of {name}: from {start} to {end} ({}). The service's state shows maintenance meanwhile.",
                window.maintenance_id,
                human_duration(window.end - window.start)
            ),
            window.start,
        )
    };
    FeedEntry {
        id: stable_id(&[origin, "maintenance", &window.maintenance_id]),
        title,
        updated: format_millis(updated_ms),
        category: "maintenance",
        path: format!("/services/{service_id}"),
        summary,
        updated_ms,
    }
}

/// `urn:uuid:` of a version 8 UUID from the SHA-256 of `parts` (each ended by a NUL byte).
fn stable_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).urn().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_urns_that_differ_per_part() {
        let a = stable_id(&["origin", "incident", "svc", "1"]);
        assert_eq!(a, stable_id(&["origin", "incident", "svc", "1"]));
        assert!(a.starts_with("urn:uuid:"), "{a}");
        assert_ne!(a, stable_id(&["origin", "incident", "svc", "2"]));
        // Parts are delimited: moving a character between parts changes the id.
        assert_ne!(stable_id(&["ab", "c"]), stable_id(&["a", "bc"]));
    }
}
