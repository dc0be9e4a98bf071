//! The time zone the pages write times in (`serve --time-zone`, UTC by default): every time
//! a page shows, the calendar days of its bars and the months it offers. The JSON API keeps
//! RFC 3339 UTC; only what people read is local.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::model::TimeView;
use crate::domain::format_millis;

/// An IANA time zone (from the bundled tzdb) with the name it was asked for by.
#[derive(Debug, Clone)]
pub struct DisplayZone {
    zone: TimeZone,
    name: String,
}

/// A zone name the bundled time zone database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown time zone {name:?}: use an IANA name such as Africa/Nairobi or Europe/Berlin, or UTC"
)]
pub struct UnknownZone {
    pub name: String,
}

impl DisplayZone {
    pub fn utc() -> DisplayZone {
        DisplayZone {
            zone: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    /// The IANA zone `name` (e.g. `Africa/Nairobi`), or an error naming it.
    pub fn named(name: &str) -> Result<DisplayZone, UnknownZone> {
        let zone = TimeZone::get(name).map_err(|_| UnknownZone { name: name.into() })?;
        Ok(DisplayZone {
            zone,
            name: name.into(),
        })
    }

    /// The IANA name, e.g. `Africa/Nairobi`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_utc(&self) -> bool {
        self.name == "UTC"
    }

    /// How the page names the zone, e.g. `Africa/Nairobi (EAT, UTC+03:00)` at `at`.
    pub fn describe(&self, at: i64) -> String {
        if self.is_utc() {
            return "UTC".into();
        }
        let offset = self.zone.to_offset(timestamp(at));
        format!("{} ({}, UTC{})", self.name, self.strftime(at, "%Z"), offset)
    }

    /// A time as shown: `2026-11-27 16:45 EAT`, with its RFC 3339 UTC form for `datetime`.
    pub fn time(&self, millis: i64) -> TimeView {
        let iso = format_millis(millis);
        let text = Timestamp::from_millisecond(millis)
            .map(|t| {
                t.to_zoned(self.zone.clone())
                    .strftime("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .unwrap_or_else(|_| iso.clone());
        TimeView { iso, text }
    }

    /// `at` written with a strftime `format` in this zone.
    pub fn strftime(&self, at: i64, format: &str) -> String {
        timestamp(at)
            .to_zoned(self.zone.clone())
            .strftime(format)
            .to_string()
    }

    /// The local calendar date of `at`.
    pub fn date(&self, at: i64) -> Date {
        timestamp(at).to_zoned(self.zone.clone()).date()
    }

    /// The first millisecond of `date` in this zone (local midnight, or the first time
    /// that exists that day).
    pub fn day_start(&self, date: Date) -> i64 {
        date.to_zoned(self.zone.clone())
            .and_then(|day| day.start_of_day())
            .map_or(i64::MIN, |start| start.timestamp().as_millisecond())
    }

    /// `[start, end)` of the local day `days_before` days before `at`'s day (a day of 23 or
    /// 25 hours where clocks change).
    pub fn day_before(&self, at: i64, days_before: i64) -> (i64, i64, Date) {
        let date = self.date(at);
        let day = date.checked_sub(days_before.days()).unwrap_or(date);
        let next = day.tomorrow().unwrap_or(day);
        (self.day_start(day), self.day_start(next), day)
    }
}

fn timestamp(millis: i64) -> Timestamp {
    Timestamp::from_millisecond(millis).unwrap_or(Timestamp::UNIX_EPOCH)
}
