//! Schedules fire when cron fires them.

use proptest::prelude::*;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("a time").with_timezone(&Utc)
}

/// The UTC time at a date's hour and minute.
fn time(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    let date = NaiveDate::from_ymd_opt(year, month, day).expect("a date");
    date.and_hms_opt(hour, minute, 0).expect("a time").and_utc()
}

fn values(field: Field) -> Vec<u32> {
    (0..64).filter(|v| field.allows(*v)).collect()
}

/// The fields of a five-field schedule.
fn fields(spec: &str) -> Fields {
    match Schedule::parse(spec).expect("parses") {
        Schedule::Fields(fields) => fields,
        every => panic!("{spec} is an interval: {every:?}"),
    }
}

fn error(spec: &str) -> String {
    Schedule::parse(spec).expect_err("refused").to_string()
}

fn next(schedule: &str, after: &str) -> Option<String> {
    let schedule = Schedule::parse(schedule).expect("parses");
    schedule.next_after(at(after)).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[test]
fn the_next_time_is_the_first_matching_minute_strictly_after() {
    assert_eq!(next("*/15 * * * *", "2026-12-05T04:00:00Z").as_deref(), Some("2026-12-05T04:15:00Z"));
    assert_eq!(next("*/15 * * * *", "2026-12-05T04:14:59Z").as_deref(), Some("2026-12-05T04:15:00Z"));
    assert_eq!(next("0 3 * * *", "2026-12-05T04:00:00Z").as_deref(), Some("2026-12-06T03:00:00Z"));
    assert_eq!(next("30 2 1 * *", "2026-12-05T00:00:00Z").as_deref(), Some("2027-01-01T02:30:00Z"));
    assert_eq!(next("0 0 29 feb *", "2026-03-01T00:00:00Z").as_deref(), Some("2028-02-29T00:00:00Z"));
    assert_eq!(next("0 0 30 2 *", "2026-03-01T00:00:00Z"), None);
}

#[test]
fn descriptors_stand_for_their_five_fields() {
    assert_eq!(next("@hourly", "2026-12-05T04:10:00Z").as_deref(), Some("2026-12-05T05:00:00Z"));
    assert_eq!(next("@daily", "2026-12-05T04:10:00Z").as_deref(), Some("2026-12-06T00:00:00Z"));
    assert_eq!(next("@midnight", "2026-12-05T04:10:00Z").as_deref(), Some("2026-12-06T00:00:00Z"));
    // 2026-12-05 is a Saturday.
    assert_eq!(next("@weekly", "2026-12-05T04:10:00Z").as_deref(), Some("2026-12-06T00:00:00Z"));
    assert_eq!(next("@monthly", "2026-12-05T04:10:00Z").as_deref(), Some("2027-01-01T00:00:00Z"));
    assert_eq!(next("@yearly", "2026-12-05T04:10:00Z").as_deref(), Some("2027-01-01T00:00:00Z"));
    assert_eq!(next("@annually", "2026-12-05T04:10:00Z").as_deref(), Some("2027-01-01T00:00:00Z"));
}

#[test]
fn restricted_day_fields_match_either_and_a_starred_one_requires_both() {
    // Either the 10th or a Monday: Monday 2026-12-07 comes first.
    assert_eq!(next("0 0 10 * mon", "2026-12-05T00:00:00Z").as_deref(), Some("2026-12-07T00:00:00Z"));
    // Every Monday (day of month starred): both must hold, so the day of month does not narrow.
    assert_eq!(next("0 0 * * mon", "2026-12-05T00:00:00Z").as_deref(), Some("2026-12-07T00:00:00Z"));
    // A stepped star restricts: the 1st, 11th, 21st, 31st, or a Monday.
    assert_eq!(next("0 0 */10 * mon", "2026-12-05T00:00:00Z").as_deref(), Some("2026-12-07T00:00:00Z"));
    assert_eq!(next("0 0 */10 * mon", "2026-12-28T00:00:00Z").as_deref(), Some("2026-12-31T00:00:00Z"));
    // Both stars: every day.
    assert_eq!(next("0 0 * * *", "2026-12-05T00:00:00Z").as_deref(), Some("2026-12-06T00:00:00Z"));
    // A restricted day of month with a starred weekday: only the 10th.
    assert_eq!(next("0 0 10 * *", "2026-12-05T00:00:00Z").as_deref(), Some("2026-12-10T00:00:00Z"));
}

#[test]
fn malformed_schedules_are_refused() {
    for bad in ["", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "@often"] {
        assert!(Schedule::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn fields_parse_into_sets() {
    let schedule = fields("*/15 9-17 1,15 jan-MAR mon-fri");
    assert_eq!(values(schedule.minutes), [0, 15, 30, 45]);
    assert_eq!(values(schedule.hours), (9..=17).collect::<Vec<_>>());
    assert_eq!(values(schedule.days_of_month), [1, 15]);
    assert_eq!(values(schedule.months), [1, 2, 3]);
    assert_eq!(values(schedule.days_of_week), [1, 2, 3, 4, 5]);
    assert!(!schedule.days_of_month.star && !schedule.days_of_week.star);
    assert_eq!(values(fields("5/20 * * * *").minutes), [5, 25, 45]);
    assert_eq!(Schedule::parse("@weekly"), Schedule::parse("0 0 * * 0"));
    assert_eq!(Schedule::parse("@annually"), Schedule::parse("0 0 1 1 *"));
    let midnight = fields("@midnight");
    assert!(midnight.days_of_month.star && midnight.days_of_week.star);
}

#[test]
fn every_fires_a_fixed_interval_after_in_whole_seconds() {
    assert_eq!(next("@every 1h30m", "2026-12-05T04:00:00Z").as_deref(), Some("2026-12-05T05:30:00Z"));
    assert_eq!(next("@every 90s", "2026-12-05T04:00:10.750Z").as_deref(), Some("2026-12-05T04:01:40Z"));
    assert_eq!(Schedule::parse("@every 1.5h"), Schedule::parse("@every 90m"));
    assert_eq!(Schedule::parse("@every 2500ms"), Ok(Schedule::Every(Duration::seconds(2))), "whole seconds");
    for short in ["@every 0", "@every 10ms", "@every -5m", "@every 999999us"] {
        assert_eq!(Schedule::parse(short), Ok(Schedule::Every(Duration::seconds(1))), "{short}: at least a second");
    }
    assert_eq!(Schedule::parse("@every 1\u{b5}s"), Schedule::parse("@every 1us"));
}

#[test]
fn every_refuses_what_go_refuses_in_go_words() {
    assert_eq!(error("@every 1"), "failed to parse duration @every 1: time: missing unit in duration \"1\"");
    assert_eq!(error("@every 1x"), "failed to parse duration @every 1x: time: unknown unit \"x\" in duration \"1x\"");
    assert_eq!(
        error("@every 1h-"),
        "failed to parse duration @every 1h-: time: unknown unit \"h-\" in duration \"1h-\""
    );
    assert_eq!(
        error("@every 1..5h"),
        "failed to parse duration @every 1..5h: time: missing unit in duration \"1..5h\""
    );
    for bad in ["", "h", ".h", "1h.", " 1h", "9223372036854775808h", "3000000h"] {
        assert_eq!(
            error(&format!("@every {bad}")),
            format!("failed to parse duration @every {bad}: time: invalid duration \"{bad}\""),
        );
    }
    assert_eq!(error("@every"), "unrecognized descriptor: @every");
}

#[test]
fn errors_are_kubernetes_words() {
    assert_eq!(error(""), "empty spec string");
    assert_eq!(error("bad"), "expected exactly 5 fields, found 1: [bad]");
    assert_eq!(error("* * * * * *"), "expected exactly 5 fields, found 6: [* * * * * *]");
    assert_eq!(error("   "), "expected exactly 5 fields, found 0: []");
    assert_eq!(error(" @daily"), "expected exactly 5 fields, found 1: [@daily]");
    assert_eq!(error("@fortnightly"), "unrecognized descriptor: @fortnightly");
    assert_eq!(error("@Daily"), "unrecognized descriptor: @Daily");
    assert_eq!(error("@daily "), "unrecognized descriptor: @daily ");
    assert_eq!(error("70 * * * *"), "end of range (70) above maximum (59): 70");
    assert_eq!(error("* * 0 * *"), "beginning of range (0) below minimum (1): 0");
    assert_eq!(error("5-2 * * * *"), "beginning of range (5) beyond end of range (2): 5-2");
    assert_eq!(error("*/0 * * * *"), "step of range should be a positive number: */0");
    assert_eq!(error("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(error("1/2/3 * * * *"), "too many slashes: 1/2/3");
    assert_eq!(error("x * * * *"), "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
    assert_eq!(error("* * * * 7"), "end of range (7) above maximum (6): 7");
    assert_eq!(error("* 24 * 13 *"), "end of range (24) above maximum (23): 24", "the first field refused");
}

#[test]
fn next_after_finds_the_next_minute_that_matches() {
    let hourly = Schedule::parse("@hourly").expect("parses");
    assert_eq!(hourly.next_after(time(2026, 12, 31, 23, 30)), Some(time(2027, 1, 1, 0, 0)));
    assert_eq!(hourly.next_after(time(2026, 1, 1, 5, 0)), Some(time(2026, 1, 1, 6, 0)), "strictly after");
    let leap = Schedule::parse("0 12 29 2 *").expect("parses");
    assert_eq!(leap.next_after(time(2025, 3, 1, 0, 0)), Some(time(2028, 2, 29, 12, 0)));
    assert_eq!(Schedule::parse("0 0 30 2 *").expect("parses").next_after(DateTime::UNIX_EPOCH), None);
    let quarter = Schedule::parse("*/15 * * * *").expect("parses");
    let after = time(2026, 6, 1, 10, 7) + Duration::seconds(31);
    assert_eq!(quarter.next_after(after), Some(time(2026, 6, 1, 10, 15)));
}

#[test]
fn day_of_month_and_day_of_week_match_either_unless_one_is_a_star() {
    // 2026-03-01 is a Sunday. The 13th or any Friday (Vixie cron's OR).
    let either = Schedule::parse("0 0 13 * 5").expect("parses");
    assert_eq!(either.next_after(time(2026, 3, 1, 0, 0)), Some(time(2026, 3, 6, 0, 0)));
    assert_eq!(either.next_after(time(2026, 3, 12, 0, 0)), Some(time(2026, 3, 13, 0, 0)));
    // With a star for the day of month, only Fridays.
    let fridays = Schedule::parse("0 0 * * fri").expect("parses");
    assert_eq!(fridays.next_after(time(2026, 3, 6, 0, 0)), Some(time(2026, 3, 13, 0, 0)));
    assert_eq!(fridays.next_after(time(2026, 3, 13, 0, 0)), Some(time(2026, 3, 20, 0, 0)));
}

#[test]
fn calendar_conversions_agree() {
    // 1970-01-01 is a Thursday; 2000-02-29 a Tuesday.
    let thursdays = Schedule::parse("0 0 * * thu").expect("parses");
    assert_eq!(thursdays.next_after(DateTime::UNIX_EPOCH - Duration::minutes(1)), Some(DateTime::UNIX_EPOCH));
    let tuesdays = Schedule::parse("59 13 * * tue").expect("parses");
    assert_eq!(tuesdays.next_after(time(2000, 2, 29, 13, 58)), Some(time(2000, 2, 29, 13, 59)));
    let wednesdays = Schedule::parse("59 13 * * wed").expect("parses");
    assert_eq!(wednesdays.next_after(time(2000, 2, 29, 13, 58)), Some(time(2000, 3, 1, 13, 59)));
}

/// A random valid field within `min..=max`.
fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (min..=max).prop_map(|v| v.to_string()),
        (min..=max, 1u32..10).prop_map(move |(a, s)| format!("{a}-{max}/{s}")),
        (1u32..20).prop_map(|s| format!("*/{s}")),
        proptest::collection::vec(min..=max, 1..4).prop_map(|vs| vs
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")),
    ]
}

fn schedule() -> impl Strategy<Value = String> {
    (field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 6))
        .prop_map(|(m, h, dom, mon, dow)| format!("{m} {h} {dom} {mon} {dow}"))
}

proptest! {
    #[test]
    fn any_text_parses_or_is_refused_without_panic(spec in "[-*/,?0-9a-zA-Z@ ]{0,40}") {
        let _ = Schedule::parse(&spec);
    }

    #[test]
    fn any_interval_parses_to_whole_seconds_or_is_refused_without_panic(
        interval in "[-+.0-9hmsnuµμx ]{0,24}",
        from in 0i64..4_000_000_000,
    ) {
        if let Ok(Schedule::Every(every)) = Schedule::parse(&format!("@every {interval}")) {
            prop_assert!(every >= Duration::seconds(1));
            prop_assert_eq!(every.subsec_nanos(), 0);
            let from = DateTime::from_timestamp(from, 0).expect("a time");
            prop_assert_eq!(Schedule::Every(every).next_after(from), from.checked_add_signed(every));
        }
    }

    #[test]
    fn go_durations_of_whole_units_read_as_their_sum(hours in 0i64..1000, minutes in 0i64..1000, seconds in 0i64..1000) {
        let text = format!("@every {hours}h{minutes}m{seconds}s");
        let expected = Duration::seconds((hours * 3600 + minutes * 60 + seconds).max(1));
        prop_assert_eq!(Schedule::parse(&text), Ok(Schedule::Every(expected)));
    }

    #[test]
    fn next_after_is_the_first_matching_minute(
        minute in 0u32..60, hour in 0u32..24, day in 1u32..29, start in 0i64..4_000_000_000,
    ) {
        let schedule = Schedule::parse(&format!("{minute} {hour} {day} * *")).expect("parses");
        let start = DateTime::from_timestamp(start, 0).expect("a time");
        let next = schedule.next_after(start).expect("fires monthly");
        prop_assert!(next > start && next - start <= Duration::days(32));
        prop_assert_eq!((next.minute(), next.hour(), next.day(), next.second()), (minute, hour, day, 0));
        // No earlier minute after `start` matches.
        let mut probe = start.with_second(0).expect("a minute") + Duration::minutes(1);
        while probe < next {
            prop_assert!(!(probe.minute() == minute && probe.hour() == hour && probe.day() == day));
            probe += Duration::minutes(1);
        }
    }

    #[test]
    fn every_day_is_reached_by_its_date_and_by_its_weekday(days in -1_000_000i64..1_000_000) {
        // Goal: next_after walks months and days to any date, far past or
        // future, from the year before, and reads its weekday right.
        let midnight = DateTime::UNIX_EPOCH + Duration::days(days);
        let new_year = time(midnight.year(), 1, 1, 0, 0) - Duration::minutes(1);
        let by_date = Schedule::parse(&format!("0 0 {} {} *", midnight.day(), midnight.month())).expect("parses");
        prop_assert_eq!(by_date.next_after(new_year), Some(midnight));
        let weekday = midnight.weekday().num_days_from_sunday();
        let by_weekday = Schedule::parse(&format!("0 0 * * {weekday}")).expect("parses");
        prop_assert_eq!(by_weekday.next_after(midnight - Duration::minutes(1)), Some(midnight));
    }

    #[test]
    fn the_next_time_is_after_the_input_matches_and_skips_no_match(
        text in schedule(),
        seconds in 0i64..4_000_000_000,
    ) {
        // Goal: next_after is strictly later, fires, and no earlier minute
        // fires (checked over the first day after the input).
        let parsed = fields(&text);
        let from = DateTime::from_timestamp(seconds, 0).expect("a time");
        if let Some(next) = parsed.next_after(from) {
            prop_assert!(next > from);
            prop_assert!(parsed.matches(next));
            prop_assert_eq!(next.second(), 0);
            let mut probe = from.with_second(0).expect("a minute") + Duration::minutes(1);
            let horizon = next.min(from + Duration::days(1));
            while probe < horizon {
                prop_assert!(!parsed.matches(probe), "{} matches before {}", probe, next);
                probe += Duration::minutes(1);
            }
        }
    }
}
