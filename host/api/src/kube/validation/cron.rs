//! Standard cron schedules, as CronJobs name them: five fields (minute,
//! hour, day of month, month, day of week) or a descriptor (`@daily`),
//! parsed into the sets of values each field allows, with the errors
//! Kubernetes' cron parser reports, and the next time a schedule fires.

use std::fmt;

/// Why a schedule does not parse, in the words Kubernetes reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronError {
    /// Nothing was given.
    Empty,
    /// Not five fields: the fields given.
    FieldCount(Vec<String>),
    /// An `@` name that is not a descriptor.
    Descriptor(String),
    /// A range with more than one `-`.
    Hyphens(String),
    /// A range with more than one `/`.
    Slashes(String),
    /// A part that is neither a number nor a name (malformed, or too large).
    NotNumber(String, bool),
    /// A negative number.
    Negative(i64, String),
    /// A range starting below its field's minimum: start, minimum, range.
    BelowMinimum(u32, u32, String),
    /// A range ending above its field's maximum: end, maximum, range.
    AboveMaximum(u32, u32, String),
    /// A range whose start is past its end: start, end, range.
    Reversed(u32, u32, String),
    /// A step of zero.
    ZeroStep(String),
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty spec string"),
            Self::FieldCount(fields) => {
                write!(f, "expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" "))
            }
            Self::Descriptor(name) => write!(f, "unrecognized descriptor: {name}"),
            Self::Hyphens(part) => write!(f, "too many hyphens: {part}"),
            Self::Slashes(part) => write!(f, "too many slashes: {part}"),
            Self::NotNumber(part, syntax) => {
                let why = if *syntax { "invalid syntax" } else { "value out of range" };
                write!(f, "failed to parse int from {part}: strconv.Atoi: parsing {part:?}: {why}")
            }
            Self::Negative(number, part) => write!(f, "negative number ({number}) not allowed: {part}"),
            Self::BelowMinimum(start, min, part) => {
                write!(f, "beginning of range ({start}) below minimum ({min}): {part}")
            }
            Self::AboveMaximum(end, max, part) => write!(f, "end of range ({end}) above maximum ({max}): {part}"),
            Self::Reversed(start, end, part) => {
                write!(f, "beginning of range ({start}) beyond end of range ({end}): {part}")
            }
            Self::ZeroStep(part) => write!(f, "step of range should be a positive number: {part}"),
        }
    }
}

impl std::error::Error for CronError {}

/// The values one field allows, as a bit set (bit n: value n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Set(u64);

impl Set {
    /// Whether the field allows `value`.
    pub fn contains(self, value: u32) -> bool {
        value < 64 && self.0 & (1 << value) != 0
    }

    /// The values the field allows, smallest first.
    pub fn values(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |&value| self.contains(value))
    }
}

/// A parsed schedule: the minutes, hours, days of the month, months and
/// days of the week (0 is Sunday) it fires at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Minutes, 0–59.
    pub minutes: Set,
    /// Hours, 0–23.
    pub hours: Set,
    /// Days of the month, 1–31.
    pub days_of_month: Set,
    /// Months, 1–12.
    pub months: Set,
    /// Days of the week, 0–6 from Sunday.
    pub days_of_week: Set,
    /// Whether the day of month or the day of week field was `*` (then a
    /// day must match both; otherwise either, as Vixie cron does).
    pub any_day: bool,
}

/// A field's bounds and names.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds { min: 0, max: 59, names: &[] };
const HOURS: Bounds = Bounds { min: 0, max: 23, names: &[] };
const DAYS_OF_MONTH: Bounds = Bounds { min: 1, max: 31, names: &[] };
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &["", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
const DAYS_OF_WEEK: Bounds = Bounds { min: 0, max: 6, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

/// How many years ahead [`Schedule::next_after`] looks before it gives up
/// (a schedule like `0 0 30 2 *` never fires).
const SEARCH_YEARS: i64 = 5;

impl Schedule {
    /// Parses a standard schedule: five fields or a descriptor (`@hourly`,
    /// `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`,
    /// `@annually`).
    ///
    /// # Errors
    /// The [`CronError`] of the first part that does not parse.
    pub fn parse(spec: &str) -> Result<Self, CronError> {
        if spec.is_empty() {
            return Err(CronError::Empty);
        }
        if spec.starts_with('@') {
            let fields = match spec {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                other => return Err(CronError::Descriptor(other.to_owned())),
            };
            return Self::parse(fields);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let [minutes, hours, days_of_month, months, days_of_week] = fields.as_slice() else {
            return Err(CronError::FieldCount(fields.iter().map(|f| (*f).to_owned()).collect()));
        };
        let (minutes, _) = field(minutes, &MINUTES)?;
        let (hours, _) = field(hours, &HOURS)?;
        let (days_of_month, dom_star) = field(days_of_month, &DAYS_OF_MONTH)?;
        let (months, _) = field(months, &MONTHS)?;
        let (days_of_week, dow_star) = field(days_of_week, &DAYS_OF_WEEK)?;
        Ok(Self { minutes, hours, days_of_month, months, days_of_week, any_day: dom_star || dow_star })
    }

    /// Whether the schedule fires on the day `day` of `month`, a
    /// `weekday` (0 is Sunday).
    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let (by_month, by_week) = (self.days_of_month.contains(day), self.days_of_week.contains(weekday));
        if self.any_day { by_month && by_week } else { by_month || by_week }
    }

    /// The first time, in seconds since the Unix epoch (UTC), strictly
    /// after `after` at which the schedule fires; `None` when it fires in
    /// none of the next five years.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut time = after.div_euclid(60) * 60 + 60;
        let limit = civil(time).year + SEARCH_YEARS;
        loop {
            let now = civil(time);
            if now.year > limit {
                return None;
            }
            let midnight = time - i64::from(now.hour) * 3600 - i64::from(now.minute) * 60;
            if !self.months.contains(now.month) {
                let (year, month) = if now.month == 12 { (now.year + 1, 1) } else { (now.year, now.month + 1) };
                time = days_from_civil(year, month, 1) * 86_400;
            } else if !self.day_matches(now.day, now.weekday) {
                time = midnight + 86_400;
            } else if !self.hours.contains(now.hour) {
                time = midnight + i64::from(now.hour + 1) * 3600;
            } else if !self.minutes.contains(now.minute) {
                time += 60;
            } else {
                return Some(time);
            }
        }
    }
}

/// Parses one field: its comma-separated ranges; also whether it starts
/// with `*` or `?` (without a step above 1).
fn field(text: &str, bounds: &Bounds) -> Result<(Set, bool), CronError> {
    let mut bits = 0;
    let mut star = false;
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (range, starred) = range(part, bounds)?;
        bits |= range;
        star |= starred;
    }
    Ok((Set(bits), star))
}

/// Parses one range: `*`, `n`, `n-m`, each with an optional `/step`.
fn range(part: &str, bounds: &Bounds) -> Result<(u64, bool), CronError> {
    let pieces: Vec<&str> = part.split('/').collect();
    let ends: Vec<&str> = pieces[0].split('-').collect();
    let (mut start, mut end, mut star) = if ends[0] == "*" || ends[0] == "?" {
        (bounds.min, bounds.max, true)
    } else {
        let start = number_or_name(ends[0], bounds)?;
        match ends.len() {
            1 => (start, start, false),
            2 => (start, number_or_name(ends[1], bounds)?, false),
            _ => return Err(CronError::Hyphens(part.to_owned())),
        }
    };
    let step = match pieces.len() {
        1 => 1,
        2 => {
            let step = number(pieces[1])?;
            if ends.len() == 1 && !star {
                end = bounds.max;
            }
            if ends.len() == 1 && star && step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(CronError::Slashes(part.to_owned())),
    };
    if start < bounds.min {
        return Err(CronError::BelowMinimum(start, bounds.min, part.to_owned()));
    }
    if end > bounds.max {
        return Err(CronError::AboveMaximum(end, bounds.max, part.to_owned()));
    }
    if start > end {
        return Err(CronError::Reversed(start, end, part.to_owned()));
    }
    if step == 0 {
        return Err(CronError::ZeroStep(part.to_owned()));
    }
    let mut bits = 0;
    while start <= end {
        bits |= 1 << start;
        start = start.saturating_add(step);
    }
    Ok((bits, star))
}

/// A field's value by number or by name (`jan`, `mon`; any case).
fn number_or_name(text: &str, bounds: &Bounds) -> Result<u32, CronError> {
    let lower = text.to_ascii_lowercase();
    match bounds.names.iter().position(|name| !name.is_empty() && *name == lower) {
        Some(index) => Ok(u32::try_from(index).expect("few names")),
        None => number(text),
    }
}

/// A non-negative number, as Go's `strconv.Atoi` reads it.
fn number(text: &str) -> Result<u32, CronError> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CronError::NotNumber(text.to_owned(), true));
    }
    let number: i64 = text.parse().map_err(|_| CronError::NotNumber(text.to_owned(), false))?;
    if number < 0 {
        return Err(CronError::Negative(number, text.to_owned()));
    }
    Ok(u32::try_from(number).unwrap_or(u32::MAX))
}

/// A UTC time's calendar fields.
#[derive(Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    weekday: u32,
}

/// The calendar fields of `seconds` since the Unix epoch, in UTC.
fn civil(seconds: i64) -> Civil {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = u32::try_from((days + 4).rem_euclid(7)).expect("below 7");
    let hour = u32::try_from(of_day / 3600).expect("below 24");
    let minute = u32::try_from(of_day % 3600 / 60).expect("below 60");
    Civil { year, month, day, hour, minute, weekday }
}

/// The date of a day counted from 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("a day of the month");
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("a month");
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day, counted from 1970-01-01, of a date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> i64 {
        days_from_civil(year, month, day) * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60
    }

    fn error(spec: &str) -> String {
        Schedule::parse(spec).expect_err("refused").to_string()
    }

    #[test]
    fn fields_parse_into_sets() {
        let schedule = Schedule::parse("*/15 9-17 1,15 jan-MAR mon-fri").expect("parses");
        assert_eq!(schedule.minutes.values().collect::<Vec<_>>(), [0, 15, 30, 45]);
        assert_eq!(schedule.hours.values().collect::<Vec<_>>(), (9..=17).collect::<Vec<_>>());
        assert_eq!(schedule.days_of_month.values().collect::<Vec<_>>(), [1, 15]);
        assert_eq!(schedule.months.values().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(schedule.days_of_week.values().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert!(!schedule.any_day);
        assert_eq!(Schedule::parse("5/20 * * * *").expect("parses").minutes.values().collect::<Vec<_>>(), [5, 25, 45]);
        assert_eq!(Schedule::parse("@weekly"), Schedule::parse("0 0 * * 0"));
        assert_eq!(Schedule::parse("@annually"), Schedule::parse("0 0 1 1 *"));
        assert!(Schedule::parse("@midnight").expect("parses").any_day);
    }

    #[test]
    fn errors_are_kubernetes_words() {
        assert_eq!(error(""), "empty spec string");
        assert_eq!(error("bad"), "expected exactly 5 fields, found 1: [bad]");
        assert_eq!(error("* * * * * *"), "expected exactly 5 fields, found 6: [* * * * * *]");
        assert_eq!(error("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert_eq!(error("70 * * * *"), "end of range (70) above maximum (59): 70");
        assert_eq!(error("* * 0 * *"), "beginning of range (0) below minimum (1): 0");
        assert_eq!(error("5-2 * * * *"), "beginning of range (5) beyond end of range (2): 5-2");
        assert_eq!(error("*/0 * * * *"), "step of range should be a positive number: */0");
        assert_eq!(error("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(error("1/2/3 * * * *"), "too many slashes: 1/2/3");
        assert_eq!(error("x * * * *"), "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
        assert_eq!(error("* * * * 7"), "end of range (7) above maximum (6): 7");
    }

    #[test]
    fn next_after_finds_the_next_minute_that_matches() {
        let hourly = Schedule::parse("@hourly").expect("parses");
        assert_eq!(hourly.next_after(at(2026, 12, 31, 23, 30)), Some(at(2027, 1, 1, 0, 0)));
        assert_eq!(hourly.next_after(at(2026, 1, 1, 5, 0)), Some(at(2026, 1, 1, 6, 0)), "strictly after");
        let leap = Schedule::parse("0 12 29 2 *").expect("parses");
        assert_eq!(leap.next_after(at(2025, 3, 1, 0, 0)), Some(at(2028, 2, 29, 12, 0)));
        assert_eq!(Schedule::parse("0 0 30 2 *").expect("parses").next_after(0), None);
        let quarter = Schedule::parse("*/15 * * * *").expect("parses");
        assert_eq!(quarter.next_after(at(2026, 6, 1, 10, 7) + 31), Some(at(2026, 6, 1, 10, 15)));
    }

    #[test]
    fn day_of_month_and_day_of_week_match_either_unless_one_is_a_star() {
        // 2026-03-01 is a Sunday. The 13th or any Friday (Vixie cron's OR).
        let either = Schedule::parse("0 0 13 * 5").expect("parses");
        assert_eq!(either.next_after(at(2026, 3, 1, 0, 0)), Some(at(2026, 3, 6, 0, 0)));
        assert_eq!(either.next_after(at(2026, 3, 12, 0, 0)), Some(at(2026, 3, 13, 0, 0)));
        // With a star for the day of month, only Fridays.
        let fridays = Schedule::parse("0 0 * * fri").expect("parses");
        assert_eq!(fridays.next_after(at(2026, 3, 6, 0, 0)), Some(at(2026, 3, 13, 0, 0)));
        assert_eq!(fridays.next_after(at(2026, 3, 13, 0, 0)), Some(at(2026, 3, 20, 0, 0)));
    }

    #[test]
    fn calendar_conversions_agree() {
        assert_eq!(civil(0), Civil { year: 1970, month: 1, day: 1, hour: 0, minute: 0, weekday: 4 });
        assert_eq!(civil(at(2000, 2, 29, 13, 59)).weekday, 2);
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panic(spec in "[-*/,?0-9a-zA-Z@ ]{0,40}") {
            let _ = Schedule::parse(&spec);
        }

        #[test]
        fn next_after_is_the_first_matching_minute(
            minute in 0u32..60, hour in 0u32..24, day in 1u32..29, start in 0i64..4_000_000_000,
        ) {
            let schedule = Schedule::parse(&format!("{minute} {hour} {day} * *")).expect("parses");
            let next = schedule.next_after(start).expect("fires monthly");
            prop_assert!(next > start && next - start <= 32 * 86_400);
            let fields = civil(next);
            prop_assert_eq!((fields.minute, fields.hour, fields.day), (minute, hour, day));
            prop_assert_eq!(next % 60, 0);
            // No earlier minute after `start` matches.
            let mut probe = start.div_euclid(60) * 60 + 60;
            while probe < next {
                let c = civil(probe);
                prop_assert!(!(c.minute == minute && c.hour == hour && c.day == day));
                probe += 60;
            }
        }

        #[test]
        fn days_round_trip(days in -1_000_000i64..1_000_000) {
            let (year, month, day) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
