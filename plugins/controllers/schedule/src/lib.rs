//! Cron schedules as Kubernetes' CronJobs write them (`spec.schedule`):
//! five fields (minute, hour, day of month, month, day of week) with lists,
//! ranges, steps and month and weekday names, a descriptor (`@hourly`,
//! `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually`), or
//! a fixed interval (`@every 90m`).
//! As in Vixie cron, when both day fields are restricted a day matching
//! either one is a match; when either is `*` both must match. Times are UTC.
//! Schedules are read, and refused with the same words, as Kubernetes' cron
//! parser (robfig/cron) reads them, so the API server's validation and the
//! CronJob controller agree.

mod duration;
mod error;
mod field;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Timelike, Utc};

pub use crate::error::CronError;
use crate::field::{DAYS_OF_MONTH, DAYS_OF_WEEK, Field, HOURS, MINUTES, MONTHS};

/// How many years ahead [`Schedule::next_after`] looks before it gives up
/// (a schedule such as `0 0 30 2 *` never fires).
pub const SEARCH_YEARS: i32 = 5;

/// A parsed cron schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Five fields: the minutes at which it fires.
    Fields(Fields),
    /// `@every <duration>`: a fixed interval after each time, in whole
    /// seconds, at least one (as Kubernetes' cron parser rounds it).
    Every(Duration),
}

/// The five fields of a schedule: the values each allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    minutes: Field,
    hours: Field,
    days_of_month: Field,
    months: Field,
    days_of_week: Field,
}

impl Schedule {
    /// Reads `text`: five fields, a descriptor (`@hourly`, `@daily`,
    /// `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`; exactly
    /// so spelled) or `@every ` and a Go duration (`1h30m`).
    ///
    /// # Errors
    /// The [`CronError`] of the first thing that does not parse.
    pub fn parse(text: &str) -> Result<Self, CronError> {
        if text.is_empty() {
            return Err(CronError::Empty);
        }
        if let Some(interval) = text.strip_prefix("@every ") {
            let every = duration::parse(interval)
                .map_err(|reason| CronError::Duration { schedule: text.to_owned(), reason })?;
            return Ok(Self::Every(every));
        }
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => return Err(CronError::Descriptor(other.to_owned())),
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minutes, hours, days_of_month, months, days_of_week] = fields[..] else {
            return Err(CronError::FieldCount(fields.iter().map(|field| (*field).to_owned()).collect()));
        };
        Ok(Self::Fields(Fields {
            minutes: field::parse(minutes, &MINUTES)?,
            hours: field::parse(hours, &HOURS)?,
            days_of_month: field::parse(days_of_month, &DAYS_OF_MONTH)?,
            months: field::parse(months, &MONTHS)?,
            days_of_week: field::parse(days_of_week, &DAYS_OF_WEEK)?,
        }))
    }

    /// The first time strictly after `time` at which the schedule fires, or
    /// `None` when it does not within [`SEARCH_YEARS`]: for fields, a whole
    /// minute; for an interval, `time` without its fraction of a second
    /// plus the interval.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Fields(fields) => fields.next_after(time),
            Self::Every(every) => time.with_nanosecond(0)?.checked_add_signed(*every),
        }
    }
}

impl Fields {
    /// Whether the schedule fires at `time`'s minute.
    pub fn matches(&self, time: DateTime<Utc>) -> bool {
        self.months.allows(time.month())
            && self.matches_day(time.date_naive())
            && self.hours.allows(time.hour())
            && self.minutes.allows(time.minute())
    }

    /// Whether the schedule fires on `date`.
    fn matches_day(&self, date: NaiveDate) -> bool {
        let by_month = self.days_of_month.allows(date.day());
        let by_week = self.days_of_week.allows(date.weekday().num_days_from_sunday());
        if self.days_of_month.star || self.days_of_week.star { by_month && by_week } else { by_month || by_week }
    }

    /// The first whole minute strictly after `time` at which the fields
    /// fire, or `None` when none does within [`SEARCH_YEARS`].
    fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = time.with_second(0)?.with_nanosecond(0)?.checked_add_signed(Duration::minutes(1))?;
        let limit = start.year().checked_add(SEARCH_YEARS)?;
        let mut date = start.date_naive();
        let mut first_day = true;
        while date.year() <= limit {
            if !self.months.allows(date.month()) {
                date = first_of_next_month(date)?;
                first_day = false;
                continue;
            }
            if self.matches_day(date) {
                let from = if first_day { start.time() } else { NaiveTime::MIN };
                if let Some(at) = self.first_time_from(from) {
                    return Some(date.and_time(at).and_utc());
                }
            }
            date = date.succ_opt()?;
            first_day = false;
        }
        None
    }

    /// The first hour and minute at or after `from` within one day.
    fn first_time_from(&self, from: NaiveTime) -> Option<NaiveTime> {
        (from.hour()..24).filter(|h| self.hours.allows(*h)).find_map(|hour| {
            let first_minute = if hour == from.hour() { from.minute() } else { 0 };
            let minute = (first_minute..60).find(|m| self.minutes.allows(*m))?;
            NaiveTime::from_hms_opt(hour, minute, 0)
        })
    }
}

/// The first day of the month after `date`'s.
fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    match date.month() {
        12 => NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1),
        month => NaiveDate::from_ymd_opt(date.year(), month + 1, 1),
    }
}

#[cfg(test)]
mod tests;
