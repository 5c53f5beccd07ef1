//! Schedules fire when cron fires them.

use proptest::prelude::*;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("a time").with_timezone(&Utc)
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
    assert!(Schedule::parse("@every 5m").is_err());
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
    fn the_next_time_is_after_the_input_matches_and_skips_no_match(
        text in schedule(),
        seconds in 0i64..4_000_000_000,
    ) {
        // Goal: next_after is strictly later, fires, and no earlier minute
        // fires (checked over the first day after the input).
        let parsed = Schedule::parse(&text).expect("a generated schedule parses");
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
