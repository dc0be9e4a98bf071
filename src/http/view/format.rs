//! How the pages write states, figures, durations, dates and windows.

use crate::domain::Quorum;
use crate::projection::State;
use crate::window::WindowSpec;

use super::model::StateBadge;
use super::zone::DisplayZone;

pub(super) const MONTH_NAMES: [&str; 12] = [
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

/// How a window is named on the page (a range's ends in `zone`).
pub fn window_label(window: &WindowSpec, zone: &DisplayZone) -> String {
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
            format!("{} to {}", zone.time(*start).text, zone.time(*end).text)
        }
    }
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

pub(super) fn quorum_text(quorum: Quorum) -> String {
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

pub(super) fn optional_percent(ratio: Option<f64>) -> String {
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

/// A calendar day as shown: `27 Nov 2026`.
pub(super) fn date_text(date: jiff::civil::Date) -> String {
    date.strftime("%-d %b %Y").to_string()
}
