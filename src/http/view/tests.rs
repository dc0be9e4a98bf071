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
