//! The interval of `@every <duration>`: a duration as Go's
//! `time.ParseDuration` reads it (`1h30m`, `1.5h`, `90s`, `300ms`), with its
//! error words, rounded as Kubernetes' cron parser rounds an interval.

use chrono::Duration;

/// Nanoseconds per unit Go durations name.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Nanoseconds in a second.
const SECOND: i64 = 1_000_000_000;

/// The interval `text` names: whole seconds, at least one.
///
/// # Errors
/// Go's words for a duration that does not parse.
pub fn parse(text: &str) -> Result<Duration, String> {
    let nanos = go_duration(text)?;
    let rounded = if nanos < SECOND { SECOND } else { nanos - nanos % SECOND };
    Ok(Duration::nanoseconds(rounded))
}

/// `text` as Go's `time.ParseDuration` reads it, in nanoseconds.
fn go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let limit = 1u64 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let whole = match rest[..digits].parse::<u64>() {
            _ if digits == 0 => 0,
            Ok(whole) if whole <= limit => whole,
            _ => return Err(invalid()),
        };
        rest = &rest[digits..];
        let (mut fraction, mut scale, mut fraction_digits) = (0u64, 1f64, 0);
        if let Some(after_point) = rest.strip_prefix('.') {
            fraction_digits = after_point.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_point.len());
            let mut overflowed = false;
            for digit in after_point[..fraction_digits].bytes() {
                if overflowed {
                    continue;
                }
                match fraction.checked_mul(10).and_then(|v| v.checked_add(u64::from(digit - b'0'))) {
                    Some(next) if next <= limit => {
                        fraction = next;
                        scale *= 10.0;
                    }
                    _ => overflowed = true,
                }
            }
            rest = &after_point[fraction_digits..];
        }
        if digits == 0 && fraction_digits == 0 {
            return Err(invalid());
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration \"{text}\""));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(&(_, per_unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("time: unknown unit \"{unit}\" in duration \"{text}\""));
        };
        if whole > limit / per_unit {
            return Err(invalid());
        }
        let mut value = whole * per_unit;
        if fraction > 0 {
            // As Go: the fraction's share, in floating point, truncated.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let share = (fraction as f64 * (per_unit as f64 / scale)) as u64;
            value = value.checked_add(share).filter(|v| *v <= limit).ok_or_else(invalid)?;
        }
        total = total.checked_add(value).filter(|v| *v <= limit).ok_or_else(invalid)?;
    }
    if negative {
        // 1 << 63 itself is i64::MIN's magnitude.
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}
