use super::*;

const DAY_MS: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

#[test]
fn a_day_lists_its_incidents_by_time_with_dates_outside_the_day() {
    // 2026-11-28T00:00:00Z.
    let day = 1_795_824_000_000;
    let incident = |start: i64, end: i64, open: bool| Incident {
        start,
        end,
        open,
        probes: vec!["p1".into()],
        last_observed_at: open.then_some(end - 30_000),
    };
    let minute = 60_000;
    let one = [incident(
        day + 14 * 60 * minute + 2 * minute,
        day + 14 * 60 * minute + 49 * minute,
        false,
    )];
    let utc = DisplayZone::utc();
    let whole_day = (day, day + DAY_MS);
    assert_eq!(
        incidents_text(&one, 1, whole_day, &utc),
        ", 1 incident: 14:02–14:49 UTC (47 min)"
    );
    // Across midnight on both sides; the last one still open (its latest evidence 30 s
    // before its data runs out): no end is shown for it.
    let many = [
        incident(day - 20 * minute, day + 20 * minute, false),
        incident(day + 60 * minute, day + 61 * minute, false),
        incident(day + 120 * minute, day + 121 * minute, false),
        incident(day + DAY_MS - 10 * minute, day + DAY_MS + 5 * minute, true),
    ];
    assert_eq!(
        incidents_text(&many, 4, whole_day, &utc),
        ", 4 incidents: 27 Nov 23:40–00:20 UTC (40 min), 01:00–01:01 UTC (1 min), \
         02:00–02:01 UTC (1 min), and 1 more"
    );
    assert_eq!(
        incidents_text(&many[3..], 1, whole_day, &utc),
        ", 1 incident: from 23:50 UTC, ongoing (14 min 30 s so far)"
    );
    // In Nairobi (UTC+3) the same incident is in the morning, named in local time.
    let nairobi = DisplayZone::named("Africa/Nairobi").unwrap();
    let local_day = (day - 3 * HOUR, day + DAY_MS - 3 * HOUR);
    assert_eq!(
        incidents_text(&one, 1, local_day, &nairobi),
        ", 1 incident: 17:02–17:49 EAT (47 min)"
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
fn days_are_calendar_days_of_the_zone() {
    // 2026-11-27T13:45Z → the bar of 27 Nov starts at midnight UTC.
    let midnight = 1_795_737_600_000;
    let at = midnight + 13 * HOUR + 45 * 60_000;
    let utc = DisplayZone::utc();
    let (start, end, date) = utc.day_before(at, 0);
    assert_eq!((start, end), (midnight, midnight + DAY_MS));
    assert_eq!(format::date_text(date), "27 Nov 2026");
    assert_eq!(utc.time(at).text, "2026-11-27 13:45 UTC");
    // 22:30 UTC is already the 28th in Nairobi, whose day starts at 21:00 UTC.
    let nairobi = DisplayZone::named("Africa/Nairobi").unwrap();
    let late = midnight + 22 * HOUR + 30 * 60_000;
    let (start, end, date) = nairobi.day_before(late, 0);
    assert_eq!(
        (start, end),
        (midnight + 21 * HOUR, midnight + 21 * HOUR + DAY_MS)
    );
    assert_eq!(format::date_text(date), "28 Nov 2026");
    assert_eq!(nairobi.time(late).text, "2026-11-28 01:30 EAT");
    assert_eq!(nairobi.time(late).iso, "2026-11-27T22:30:00.000Z");
    assert_eq!(nairobi.describe(late), "Africa/Nairobi (EAT, UTC+03)");
    // A day when clocks change is 25 hours long (Berlin, 25 Oct 2026).
    let berlin = DisplayZone::named("Europe/Berlin").unwrap();
    let (start, end, _) = berlin.day_before(1_792_915_200_000, 0);
    assert_eq!(end - start, 25 * HOUR);
}

#[test]
fn an_unknown_zone_is_refused_by_name() {
    let error = DisplayZone::named("Mars/Olympus_Mons").unwrap_err();
    assert!(error.to_string().contains("Mars/Olympus_Mons"), "{error}");
}
