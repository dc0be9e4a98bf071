//! Query parameters shared by the JSON API and the service page: which window, and which
//! log prefix. Times are read as RFC 3339 (`domain::parse_millis`) and written by
//! `domain::format_millis`.

use serde::Deserialize;

use super::error::HttpError;
use crate::window::WindowSpec;

/// The window when none is asked for.
pub const DEFAULT_WINDOW: WindowSpec = WindowSpec::Last30Days;

/// `?window=24h|7d|30d|90d`, or `?month=YYYY-MM[&time_zone=Area/City]`, or
/// `?start=RFC3339&end=RFC3339`; at most one form. `tree_size` asks for an earlier
/// checkpointed prefix (availability and incidents only).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WindowParams {
    pub window: Option<String>,
    pub month: Option<String>,
    pub time_zone: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub tree_size: Option<u64>,
}

impl WindowParams {
    /// The window asked for ([`DEFAULT_WINDOW`] when none is).
    pub fn window_spec(&self) -> Result<WindowSpec, HttpError> {
        let given = [
            self.window.is_some(),
            self.month.is_some(),
            self.start.is_some() || self.end.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            return Err(HttpError::bad_request(
                "give one of window=…, month=… or start=…&end=…, not several",
            ));
        }
        if self.time_zone.is_some() && self.month.is_none() {
            return Err(HttpError::bad_request(
                "time_zone applies only to month=YYYY-MM",
            ));
        }
        if let Some(window) = &self.window {
            return named_window(window);
        }
        if let Some(month) = &self.month {
            let (year, month) = parse_month(month)?;
            return Ok(WindowSpec::Month {
                year,
                month,
                time_zone: self.time_zone.clone().unwrap_or_default(),
            });
        }
        match (&self.start, &self.end) {
            (Some(start), Some(end)) => Ok(WindowSpec::Range {
                start: parse_time(start, "start")?,
                end: parse_time(end, "end")?,
            }),
            (None, None) => Ok(DEFAULT_WINDOW),
            _ => Err(HttpError::bad_request(
                "a range needs both start and end (RFC 3339, e.g. 2026-11-27T00:00:00Z)",
            )),
        }
    }
}

/// The `window=` value of a named window, and back.
pub const NAMED_WINDOWS: [(&str, WindowSpec); 4] = [
    ("24h", WindowSpec::Last24Hours),
    ("7d", WindowSpec::Last7Days),
    ("30d", WindowSpec::Last30Days),
    ("90d", WindowSpec::Last90Days),
];

fn named_window(text: &str) -> Result<WindowSpec, HttpError> {
    NAMED_WINDOWS
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, spec)| spec.clone())
        .ok_or_else(|| {
            HttpError::bad_request(format!(
                "unknown window {text:?}; use 24h, 7d, 30d or 90d, month=YYYY-MM, or start and end"
            ))
        })
}

fn parse_month(text: &str) -> Result<(i32, u8), HttpError> {
    let bad = || HttpError::bad_request(format!("month {text:?} is not YYYY-MM"));
    let (year, month) = text.split_once('-').ok_or_else(bad)?;
    if year.len() != 4 || month.len() != 2 {
        return Err(bad());
    }
    Ok((
        year.parse().map_err(|_| bad())?,
        month.parse().map_err(|_| bad())?,
    ))
}

/// Parses an RFC 3339 time to Unix milliseconds (sub-millisecond digits are dropped).
pub fn parse_time(text: &str, what: &str) -> Result<i64, HttpError> {
    crate::domain::parse_millis(text).map_err(|e| {
        // A `+` in a query string reads as a space: `+03:00` arrives as ` 03:00`.
        let hint = if text.contains(' ') {
            "; a `+` in a URL means a space: write an offset such as +03:00 as %2B03:00"
        } else {
            ""
        };
        HttpError::bad_request(format!("{what} {e}{hint}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::format_millis;

    fn params(pairs: &[(&str, &str)]) -> WindowParams {
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        axum::extract::Query::<WindowParams>::try_from_uri(
            &format!("http://x/?{query}").parse().unwrap(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn windows_parse_in_each_form() {
        let table: [(&[(&str, &str)], WindowSpec); 5] = [
            (&[], WindowSpec::Last30Days),
            (&[("window", "24h")], WindowSpec::Last24Hours),
            (&[("window", "90d")], WindowSpec::Last90Days),
            (
                &[("month", "2026-05"), ("time_zone", "Africa/Nairobi")],
                WindowSpec::Month {
                    year: 2026,
                    month: 5,
                    time_zone: "Africa/Nairobi".into(),
                },
            ),
            (
                &[
                    ("start", "2026-11-27T00:00:00Z"),
                    ("end", "2026-11-27T01:00:00%2B01:00"),
                ],
                WindowSpec::Range {
                    start: 1_795_737_600_000,
                    end: 1_795_737_600_000,
                },
            ),
        ];
        for (pairs, expected) in table {
            assert_eq!(params(pairs).window_spec().unwrap(), expected, "{pairs:?}");
        }
    }

    #[test]
    fn bad_windows_are_refused_with_a_reason() {
        let table: [&[(&str, &str)]; 6] = [
            &[("window", "1y")],
            &[("window", "24h"), ("month", "2026-05")],
            &[("month", "May")],
            &[("start", "2026-11-27T00:00:00Z")],
            &[("start", "yesterday"), ("end", "2026-11-27T00:00:00Z")],
            &[("time_zone", "Africa/Nairobi")],
        ];
        for pairs in table {
            let error = params(pairs).window_spec().unwrap_err();
            assert_eq!(
                error.status,
                axum::http::StatusCode::BAD_REQUEST,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn times_are_written_in_rfc3339_milliseconds() {
        assert_eq!(format_millis(1_795_737_600_000), "2026-11-27T00:00:00.000Z");
        assert_eq!(format_millis(1_795_737_600_042), "2026-11-27T00:00:00.042Z");
        assert_eq!(
            parse_time(&format_millis(1_795_737_600_042), "t").unwrap(),
            1_795_737_600_042
        );
    }
}
