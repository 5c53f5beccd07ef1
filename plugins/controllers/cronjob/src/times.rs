//! Which scheduled time is due: the most recent one not yet run, as
//! Kubernetes' CronJob controller finds it.

use chrono::{DateTime, Duration, Utc};
use cron_schedule::Schedule;

/// More missed times than this draws the `TooManyMissedTimes` warning.
pub const MANY_MISSED: i64 = 100;

/// At most this many scheduled times are walked to find the most recent.
const MAX_STEPS: usize = 100_000;

/// How many scheduled times were missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// At most one.
    None,
    /// A few (at most [`MANY_MISSED`]).
    Few,
    /// More than [`MANY_MISSED`].
    Many,
}

/// The most recent scheduled time after `earliest` and at or before `now`,
/// if there is one, and how many were missed.
///
/// # Errors
/// A schedule whose consecutive times are less than a second apart.
pub fn most_recent(
    schedule: &Schedule,
    earliest: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(Option<DateTime<Utc>>, Missed), String> {
    let Some(first) = schedule.next_after(earliest).filter(|t| *t <= now) else { return Ok((None, Missed::None)) };
    let Some(second) = schedule.next_after(first).filter(|t| *t <= now) else {
        return Ok((Some(first), Missed::None));
    };
    let gap = (second - first).num_seconds();
    if gap < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    let missed = (now - first).num_seconds() / gap + 1;
    let mut recent = second;
    if missed > 2 {
        // Jump near `now` by the first gap, then walk; when an irregular
        // schedule makes the jump overshoot, walk from the start instead.
        let jump = first.checked_add_signed(Duration::seconds((missed - 2).saturating_mul(gap)));
        if let Some(from) = jump.and_then(|t| schedule.next_after(t)).filter(|t| *t <= now) {
            recent = from;
        }
    }
    let mut steps = 0;
    while let Some(next) = schedule.next_after(recent).filter(|t| *t <= now && steps < MAX_STEPS) {
        recent = next;
        steps += 1;
    }
    let missed = if missed > MANY_MISSED { Missed::Many } else { Missed::Few };
    Ok((Some(recent), missed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("a time").with_timezone(&Utc)
    }

    #[test]
    fn the_most_recent_due_time_is_found_and_misses_are_counted() {
        let hourly = Schedule::parse("0 * * * *").expect("parses");
        let start = at("2026-12-05T04:00:00Z");
        assert_eq!(most_recent(&hourly, start, at("2026-12-05T04:59:00Z")), Ok((None, Missed::None)));
        assert_eq!(
            most_recent(&hourly, start, at("2026-12-05T05:00:00Z")),
            Ok((Some(at("2026-12-05T05:00:00Z")), Missed::None))
        );
        assert_eq!(
            most_recent(&hourly, start, at("2026-12-05T07:30:00Z")),
            Ok((Some(at("2026-12-05T07:00:00Z")), Missed::Few))
        );
        assert_eq!(
            most_recent(&hourly, start, at("2026-12-25T07:30:00Z")),
            Ok((Some(at("2026-12-25T07:00:00Z")), Missed::Many))
        );
    }

    #[test]
    fn an_irregular_schedule_still_finds_its_latest_time() {
        // Weekdays at 06:30, 10:30, 14:30: the weekend gap is longer than the first.
        let weekdays = Schedule::parse("30 6-16/4 * * 1-5").expect("parses");
        let (recent, _) = most_recent(&weekdays, at("2026-12-03T06:00:00Z"), at("2026-12-07T07:00:00Z")).expect("ok");
        assert_eq!(recent, Some(at("2026-12-07T06:30:00Z")));
        let every_minute = Schedule::parse("* * * * *").expect("parses");
        let (recent, missed) =
            most_recent(&every_minute, at("2000-01-01T00:00:00Z"), at("2026-12-05T04:00:30Z")).expect("ok");
        assert_eq!(recent, Some(at("2026-12-05T04:00:00Z")));
        assert_eq!(missed, Missed::Many);
    }
}
