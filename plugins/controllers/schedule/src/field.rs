//! One field of a cron schedule: the values it allows, as a bit set, read
//! as Kubernetes' cron parser reads it.

use crate::CronError;

/// What a field may hold.
pub struct Bounds {
    /// The smallest value.
    pub min: u32,
    /// The largest value.
    pub max: u32,
    /// Names standing for values (`jan` is 1), lower case.
    pub names: &'static [(&'static str, u32)],
}

/// Minutes, 0–59.
pub const MINUTES: Bounds = Bounds { min: 0, max: 59, names: &[] };
/// Hours, 0–23.
pub const HOURS: Bounds = Bounds { min: 0, max: 23, names: &[] };
/// Days of the month, 1–31.
pub const DAYS_OF_MONTH: Bounds = Bounds { min: 1, max: 31, names: &[] };
/// Months, 1–12 or `jan`–`dec`.
pub const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
/// Days of the week, 0–6 (Sunday is 0) or `sun`–`sat`.
pub const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[("sun", 0), ("mon", 1), ("tue", 2), ("wed", 3), ("thu", 4), ("fri", 5), ("sat", 6)],
};

/// The values a field allows, and whether it is unrestricted (a part that
/// is `*` or `?` without a step above 1), which decides how the two day
/// fields combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Bit `v` is set when value `v` is allowed.
    pub bits: u64,
    /// Whether a part of the field is a `*` or `?` without a step above 1.
    pub star: bool,
}

impl Field {
    /// Whether `value` is allowed.
    pub fn allows(self, value: u32) -> bool {
        value < 64 && self.bits & (1 << value) != 0
    }
}

/// `text` (a comma-separated list of `*`, `?`, values, ranges, each with an
/// optional `/step`; empty parts are skipped) read within `bounds`.
///
/// # Errors
/// The [`CronError`] of the first part that does not parse.
pub fn parse(text: &str, bounds: &Bounds) -> Result<Field, CronError> {
    let mut field = Field { bits: 0, star: false };
    for part in text.split(',').filter(|part| !part.is_empty()) {
        let (bits, star) = parse_part(part, bounds)?;
        field.bits |= bits;
        field.star |= star;
    }
    Ok(field)
}

/// One part of a list: `*`, `?`, `n` or `n-m`, with an optional `/step`.
/// A `*` or `?` ignores what follows a `-`; `n/step` runs from `n` to the
/// field's end.
fn parse_part(part: &str, bounds: &Bounds) -> Result<(u64, bool), CronError> {
    let pieces: Vec<&str> = part.split('/').collect();
    let ends: Vec<&str> = pieces[0].split('-').collect();
    let (min, max) = (u64::from(bounds.min), u64::from(bounds.max));
    let (mut start, mut end, mut star) = if ends[0] == "*" || ends[0] == "?" {
        (min, max, true)
    } else {
        let start = value(ends[0], bounds)?;
        match ends.len() {
            1 => (start, start, false),
            2 => (start, value(ends[1], bounds)?, false),
            _ => return Err(CronError::Hyphens(part.to_owned())),
        }
    };
    let step = match pieces.len() {
        1 => 1,
        2 => {
            let step = number(pieces[1])?;
            if ends.len() == 1 {
                end = max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(CronError::Slashes(part.to_owned())),
    };
    if start < min {
        return Err(CronError::BelowMinimum(start, bounds.min, part.to_owned()));
    }
    if end > max {
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

/// A value by name (`jan`, `mon`; any case) or by number.
fn value(text: &str, bounds: &Bounds) -> Result<u64, CronError> {
    let lower = text.to_ascii_lowercase();
    match bounds.names.iter().find(|(name, _)| *name == lower) {
        Some((_, number)) => Ok(u64::from(*number)),
        None => number(text),
    }
}

/// A non-negative number, as Go's `strconv.Atoi` reads it (an optional
/// sign, then decimal digits, within 64 bits).
fn number(text: &str) -> Result<u64, CronError> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CronError::NotNumber(text.to_owned(), true));
    }
    let number: i64 = text.parse().map_err(|_| CronError::NotNumber(text.to_owned(), false))?;
    u64::try_from(number).map_err(|_| CronError::Negative(number, text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(field: Field) -> Vec<u32> {
        (0..64).filter(|v| field.allows(*v)).collect()
    }

    fn error(text: &str, bounds: &Bounds) -> String {
        parse(text, bounds).expect_err("refused").to_string()
    }

    #[test]
    fn lists_ranges_steps_and_names_read_as_cron_reads_them() {
        assert_eq!(values(parse("1,5-7,*/20", &MINUTES).expect("parses")), vec![0, 1, 5, 6, 7, 20, 40]);
        assert_eq!(values(parse("10/15", &MINUTES).expect("parses")), vec![10, 25, 40, 55]);
        assert_eq!(values(parse("1-10/4", &MINUTES).expect("parses")), vec![1, 5, 9]);
        assert_eq!(values(parse("JAN,mar-May", &MONTHS).expect("parses")), vec![1, 3, 4, 5]);
        assert_eq!(values(parse("mon-fri", &DAYS_OF_WEEK).expect("parses")), vec![1, 2, 3, 4, 5]);
        assert!(parse("*", &HOURS).expect("parses").star);
        assert!(parse("?", &DAYS_OF_MONTH).expect("parses").star);
        assert!(!parse("*/2", &HOURS).expect("parses").star);
        assert!(parse("*/1", &HOURS).expect("parses").star);
    }

    #[test]
    fn malformed_fields_are_refused() {
        for bad in ["60", "5-1", "*/0", "x", "1-", "-1", "1/x", "7"] {
            let bounds = if bad == "7" { &DAYS_OF_WEEK } else { &MINUTES };
            assert!(parse(bad, bounds).is_err(), "{bad} should not parse");
        }
        assert!(parse("0", &DAYS_OF_MONTH).is_err());
        assert!(parse("13", &MONTHS).is_err());
    }

    #[test]
    fn empty_parts_are_skipped_and_a_star_ignores_its_range_end() {
        assert_eq!(parse("", &MINUTES), Ok(Field { bits: 0, star: false }));
        assert_eq!(values(parse(",5,,7,", &MINUTES).expect("parses")), vec![5, 7]);
        let starred = parse("*-5", &HOURS).expect("parses");
        assert_eq!((values(starred), starred.star), ((0..24).collect(), true));
        assert!(!parse("*-5/2", &HOURS).expect("parses").star, "a step above 1 restricts");
        assert!(parse("5,*", &HOURS).expect("parses").star);
    }

    #[test]
    fn numbers_are_read_as_go_reads_them() {
        assert_eq!(values(parse("+5", &MINUTES).expect("parses")), vec![5]);
        assert_eq!(values(parse("*/+30", &MINUTES).expect("parses")), vec![0, 30]);
        assert_eq!(error("*/-5", &MINUTES), "negative number (-5) not allowed: -5");
        assert_eq!(error("-1", &MINUTES), "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax");
        assert_eq!(error("5000000000", &MINUTES), "end of range (5000000000) above maximum (59): 5000000000");
        assert_eq!(
            error("99999999999999999999", &MINUTES),
            "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \"99999999999999999999\": value \
             out of range"
        );
        assert_eq!(error("70/5", &MINUTES), "beginning of range (70) beyond end of range (59): 70/5");
        assert_eq!(error("1/x", &MINUTES), "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
        assert_eq!(
            error("January", &MONTHS),
            "failed to parse int from January: strconv.Atoi: parsing \"January\": invalid syntax"
        );
    }
}
