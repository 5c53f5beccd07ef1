//! One field of a cron schedule: the values it allows, as a bit set.

/// What a field may hold.
pub struct Bounds {
    /// The field's name, for errors.
    pub name: &'static str,
    /// The smallest value.
    pub min: u32,
    /// The largest value.
    pub max: u32,
    /// Names standing for values (`jan` is 1), lower case.
    pub names: &'static [(&'static str, u32)],
}

/// Minutes, 0–59.
pub const MINUTES: Bounds = Bounds { name: "minute", min: 0, max: 59, names: &[] };
/// Hours, 0–23.
pub const HOURS: Bounds = Bounds { name: "hour", min: 0, max: 23, names: &[] };
/// Days of the month, 1–31.
pub const DAYS_OF_MONTH: Bounds = Bounds { name: "day of month", min: 1, max: 31, names: &[] };
/// Months, 1–12 or `jan`–`dec`.
pub const MONTHS: Bounds = Bounds {
    name: "month",
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
    name: "day of week",
    min: 0,
    max: 6,
    names: &[("sun", 0), ("mon", 1), ("tue", 2), ("wed", 3), ("thu", 4), ("fri", 5), ("sat", 6)],
};

/// The values a field allows, and whether it is unrestricted (`*` or `?`
/// without a step), which decides how the two day fields combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Bit `v` is set when value `v` is allowed.
    pub bits: u64,
    /// Whether the field is a bare `*` or `?`.
    pub star: bool,
}

impl Field {
    /// Whether `value` is allowed.
    pub fn allows(self, value: u32) -> bool {
        value < 64 && self.bits & (1 << value) != 0
    }
}

/// `text` (a comma-separated list of `*`, `?`, values, ranges, each with an
/// optional `/step`) read within `bounds`.
///
/// # Errors
/// A part that does not parse, a value out of range, a zero step.
pub fn parse(text: &str, bounds: &Bounds) -> Result<Field, String> {
    let mut field = Field { bits: 0, star: false };
    for part in text.split(',') {
        let (bits, star) = parse_part(part, bounds)?;
        field.bits |= bits;
        field.star |= star;
    }
    Ok(field)
}

/// One part of a list.
fn parse_part(part: &str, bounds: &Bounds) -> Result<(u64, bool), String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    let (start, end, mut star) = match range {
        "*" | "?" => (bounds.min, bounds.max, true),
        _ => match range.split_once('-') {
            Some((low, high)) => (value(low, bounds)?, value(high, bounds)?, false),
            // `N/step` runs from N to the field's end.
            None if step.is_some() => (value(range, bounds)?, bounds.max, false),
            None => {
                let single = value(range, bounds)?;
                (single, single, false)
            }
        },
    };
    let step = match step {
        None => 1,
        Some(text) => text.parse::<u32>().map_err(|_| format!("invalid step {text:?} in {} field", bounds.name))?,
    };
    if step == 0 {
        return Err(format!("step of zero in {} field {part:?}", bounds.name));
    }
    if start > end {
        return Err(format!("range {part:?} of {} field runs backwards", bounds.name));
    }
    if step > 1 {
        star = false;
    }
    let bits = (start..=end).step_by(step as usize).fold(0u64, |bits, v| bits | (1 << v));
    Ok((bits, star))
}

/// A value, by number or name, within `bounds`.
fn value(text: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    let number = match bounds.names.iter().find(|(name, _)| *name == lower) {
        Some((_, number)) => *number,
        None => text.parse::<u32>().map_err(|_| format!("invalid {} {text:?}", bounds.name))?,
    };
    if number < bounds.min || number > bounds.max {
        return Err(format!("{} {number} is outside {}-{}", bounds.name, bounds.min, bounds.max));
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(field: Field) -> Vec<u32> {
        (0..64).filter(|v| field.allows(*v)).collect()
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
        for bad in ["60", "5-1", "*/0", "x", "", "1-", "-1", "1/x", "7"] {
            let bounds = if bad == "7" { &DAYS_OF_WEEK } else { &MINUTES };
            assert!(parse(bad, bounds).is_err(), "{bad} should not parse");
        }
        assert!(parse("0", &DAYS_OF_MONTH).is_err());
        assert!(parse("13", &MONTHS).is_err());
    }
}
