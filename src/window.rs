//! Resolving a requested window to an explicit half-open `[start, end)` in Unix ms.
//!
//! Reports are pure functions of a log prefix, so relative windows ("last 24 h") end at
//! the prefix's **as-of time** — the `received_at` of its last entry — never at the wall
//! clock: an auditor holding the same prefix resolves the same window. Calendar months
//! are resolved in an IANA time zone with the time zone database bundled into the binary
//! (jiff), so the answer does not depend on the host's tzdata.
//!
//! On the command line a window is written `last-24h`, `last-7d`, `last-30d`, `last-90d`,
//! `2026-10` (a calendar month in UTC), `2026-10@Africa/Nairobi` (in that time zone) or
//! `2026-11-01T00:00:00Z..2026-11-08T00:00:00Z` (explicit, half-open); see [`WindowSpec`]'s
//! `FromStr`.

use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::ToSpan;

use crate::domain::{parse_millis, Millis};

const DAY_MS: i64 = 86_400_000;

/// A window as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowSpec {
    Range {
        start: Millis,
        end: Millis,
    },
    Last24Hours,
    Last7Days,
    Last30Days,
    Last90Days,
    /// A calendar month in a time zone (empty = UTC).
    Month {
        year: i32,
        month: u8,
        time_zone: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("the window's start must be before its end")]
    Empty,
    #[error("unknown time zone {0:?}; use an IANA name such as Africa/Nairobi")]
    UnknownTimeZone(String),
    #[error("{0} is not a calendar month (year 1-9998, month 1-12)")]
    BadMonth(String),
}

/// The command-line syntax (module docs); the error says what is accepted.
impl FromStr for WindowSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<WindowSpec, String> {
        let syntax = "a window is last-24h, last-7d, last-30d, last-90d, a calendar month \
                      (2026-10 in UTC, 2026-10@Africa/Nairobi) or START..END in RFC 3339 \
                      (2026-11-01T00:00:00Z..2026-11-08T00:00:00Z)";
        match text {
            "last-24h" => return Ok(WindowSpec::Last24Hours),
            "last-7d" => return Ok(WindowSpec::Last7Days),
            "last-30d" => return Ok(WindowSpec::Last30Days),
            "last-90d" => return Ok(WindowSpec::Last90Days),
            _ => {}
        }
        if let Some((start, end)) = text.split_once("..") {
            let time = |part: &str| parse_millis(part).map_err(|e| format!("{e}; {syntax}"));
            let (start, end) = (time(start)?, time(end)?);
            if start >= end {
                return Err(format!(
                    "the window ends ({}) before it starts ({}): write START..END with START earlier",
                    crate::domain::format_millis(end),
                    crate::domain::format_millis(start)
                ));
            }
            return Ok(WindowSpec::Range { start, end });
        }
        let (month, time_zone) = text.split_once('@').unwrap_or((text, ""));
        let (year, month) = month
            .split_once('-')
            .and_then(|(year, month)| Some((year.parse().ok()?, month.parse().ok()?)))
            .ok_or_else(|| format!("{text:?} is not a window; {syntax}"))?;
        Ok(WindowSpec::Month {
            year,
            month,
            time_zone: time_zone.to_owned(),
        })
    }
}

/// Resolves `spec` to `[start, end)`; `as_of` is the prefix's last `received_at`.
pub fn resolve(spec: &WindowSpec, as_of: Millis) -> Result<(Millis, Millis), WindowError> {
    let last = |days: i64| Ok((as_of.saturating_sub(days * DAY_MS), as_of));
    match spec {
        WindowSpec::Range { start, end } if start < end => Ok((*start, *end)),
        WindowSpec::Range { .. } => Err(WindowError::Empty),
        WindowSpec::Last24Hours => last(1),
        WindowSpec::Last7Days => last(7),
        WindowSpec::Last30Days => last(30),
        WindowSpec::Last90Days => last(90),
        WindowSpec::Month {
            year,
            month,
            time_zone,
        } => month_window(*year, *month, time_zone),
    }
}

fn month_window(year: i32, month: u8, time_zone: &str) -> Result<(Millis, Millis), WindowError> {
    let zone = if time_zone.is_empty() {
        TimeZone::UTC
    } else {
        TimeZone::get(time_zone).map_err(|_| WindowError::UnknownTimeZone(time_zone.to_owned()))?
    };
    let bad_month = || WindowError::BadMonth(format!("{year}-{month:02}"));
    let year = i16::try_from(year).map_err(|_| bad_month())?;
    let month = i8::try_from(month).map_err(|_| bad_month())?;
    let first = Date::new(year, month, 1).map_err(|_| bad_month())?;
    let next = first.checked_add(1.month()).map_err(|_| bad_month())?;
    let start_of = |date: Date| -> Result<Millis, WindowError> {
        Ok(date
            .to_zoned(zone.clone())
            .map_err(|_| bad_month())?
            .timestamp()
            .as_millisecond())
    };
    Ok((start_of(first)?, start_of(next)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_windows_end_at_the_prefix_time() {
        assert_eq!(
            resolve(&WindowSpec::Last24Hours, 10 * DAY_MS).unwrap(),
            (9 * DAY_MS, 10 * DAY_MS)
        );
        assert_eq!(
            resolve(&WindowSpec::Last90Days, 100 * DAY_MS).unwrap(),
            (10 * DAY_MS, 100 * DAY_MS)
        );
    }

    #[test]
    fn explicit_windows_must_not_be_empty() {
        assert_eq!(
            resolve(&WindowSpec::Range { start: 5, end: 5 }, 0),
            Err(WindowError::Empty)
        );
        assert_eq!(
            resolve(&WindowSpec::Range { start: 1, end: 5 }, 0).unwrap(),
            (1, 5)
        );
    }

    #[test]
    fn months_follow_the_time_zone() {
        // Nairobi is UTC+3 all year: October 2026 starts 2026-09-30T21:00Z.
        let (start, end) = resolve(
            &WindowSpec::Month {
                year: 2026,
                month: 10,
                time_zone: "Africa/Nairobi".into(),
            },
            0,
        )
        .unwrap();
        assert_eq!(start, 1_790_802_000_000);
        assert_eq!(end - start, 31 * DAY_MS);
        // December wraps into the next year; UTC by default.
        let (start, end) = resolve(
            &WindowSpec::Month {
                year: 2025,
                month: 12,
                time_zone: String::new(),
            },
            0,
        )
        .unwrap();
        assert_eq!((start, end), (1_764_547_200_000, 1_767_225_600_000));
        // A month with a DST change is not a whole number of days long.
        let (start, end) = resolve(
            &WindowSpec::Month {
                year: 2026,
                month: 3,
                time_zone: "Europe/Tallinn".into(),
            },
            0,
        )
        .unwrap();
        assert_eq!(end - start, 31 * DAY_MS - 3_600_000);
    }

    #[test]
    fn command_line_syntax() {
        let parse = |text: &str| text.parse::<WindowSpec>();
        assert_eq!(parse("last-24h"), Ok(WindowSpec::Last24Hours));
        assert_eq!(parse("last-90d"), Ok(WindowSpec::Last90Days));
        assert_eq!(
            parse("2026-10@Africa/Nairobi"),
            Ok(WindowSpec::Month {
                year: 2026,
                month: 10,
                time_zone: "Africa/Nairobi".into()
            })
        );
        assert_eq!(
            parse("2025-12"),
            Ok(WindowSpec::Month {
                year: 2025,
                month: 12,
                time_zone: String::new()
            })
        );
        assert_eq!(
            parse("2025-12-01T00:00:00Z..2025-12-01T00:00:01.5Z"),
            Ok(WindowSpec::Range {
                start: 1_764_547_200_000,
                end: 1_764_547_201_500
            })
        );
        for bad in [
            "last-2d",
            "",
            "2026",
            "2026-xx",
            "yesterday..2026-12-01T00:00:00Z",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("last-24h"), "{bad:?}: {error}");
        }
        // An end before the start is refused here, before any request.
        let error = parse("2025-12-02T00:00:00Z..2025-12-01T00:00:00Z").unwrap_err();
        assert!(
            error.contains("ends") && error.contains("before it starts"),
            "{error}"
        );
        assert!(parse("2025-12-01T00:00:00Z..2025-12-01T00:00:00Z").is_err());
    }

    #[test]
    fn bad_zones_and_months_are_refused() {
        let zone = WindowSpec::Month {
            year: 2026,
            month: 1,
            time_zone: "Mars/Olympus".into(),
        };
        assert!(matches!(
            resolve(&zone, 0),
            Err(WindowError::UnknownTimeZone(_))
        ));
        let month = WindowSpec::Month {
            year: 2026,
            month: 13,
            time_zone: String::new(),
        };
        assert!(matches!(resolve(&month, 0), Err(WindowError::BadMonth(_))));
    }
}
