//! Kubernetes resource quantities (`500m`, `128Mi`, `1e3`): parsed to an
//! exact count of billionths, added and compared exactly, and written back
//! in Kubernetes' canonical form (`1000m` → `1`, `1024Mi` → `1Gi`).

use std::cmp::Ordering;
use std::fmt;

/// Billionths in one unit.
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest magnitude kept, in billionths (far above any real
/// resource: 2^100 is about 10^21 units).
const NANOS_MAX: i128 = 1 << 100;

/// The message Kubernetes gives for text that is not a quantity.
pub const QUANTITY_FORMAT_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// How a quantity is written: with binary suffixes (`Ki`), decimal ones
/// (`k`, `m`), or a decimal exponent (`e3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`.
    BinarySi,
    /// `n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`.
    #[default]
    DecimalSi,
    /// `e3`, `E-6`.
    DecimalExponent,
}

/// A resource quantity: an exact number of billionths and the format it
/// was written in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

/// Why text is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not have a quantity's form.
    #[error("{QUANTITY_FORMAT_MESSAGE}")]
    Malformed,
    /// The number is beyond what is kept.
    #[error("unable to parse numeric part of quantity")]
    OutOfRange,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Quantity {
    /// A whole number of units, written in decimal.
    pub fn from_units(units: i64) -> Self {
        Self { nanos: i128::from(units) * NANOS_PER_UNIT, format: Format::DecimalSi }
    }

    /// Zero, in `format`.
    pub fn zero(format: Format) -> Self {
        Self { nanos: 0, format }
    }

    /// Parses a quantity as Kubernetes does; digits below a billionth
    /// round up.
    ///
    /// # Errors
    /// Text that is not a quantity, or a number beyond 2^100 billionths.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let text = text.trim();
        let number_end = text
            .char_indices()
            .find(|&(index, c)| !(c.is_ascii_digit() || c == '.' || (index == 0 && matches!(c, '+' | '-'))))
            .map_or(text.len(), |(index, _)| index);
        let (number, suffix) = text.split_at(number_end);
        let (negative, digits) = match number.as_bytes().first() {
            Some(b'-') => (true, &number[1..]),
            Some(b'+') => (false, &number[1..]),
            _ => (false, number),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(QuantityError::Malformed);
        }
        let (multiplier, exponent, format) = suffix_scale(suffix)?;
        // The number as an integer `mantissa` times 10^-scale.
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .filter(|m| *m <= NANOS_MAX)
                .ok_or(QuantityError::OutOfRange)?;
        }
        let scale = i32::try_from(fraction.len()).map_err(|_| QuantityError::OutOfRange)?;
        let nanos = scaled(mantissa, multiplier, exponent + 9 - scale)?;
        Ok(Self { nanos: if negative { -nanos } else { nanos }, format })
    }

    /// The sum, in this quantity's format (the other's when this one is
    /// zero, as Kubernetes adds).
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        let format = if self.is_zero() { other.format } else { self.format };
        Self { nanos: self.nanos.saturating_add(other.nanos).clamp(-NANOS_MAX, NANOS_MAX), format }
    }

    /// The difference, in this quantity's format (the other's when this
    /// one is zero, as Kubernetes subtracts).
    #[must_use]
    pub fn minus(self, other: Self) -> Self {
        let format = if self.is_zero() { other.format } else { self.format };
        Self { nanos: self.nanos.saturating_sub(other.nanos).clamp(-NANOS_MAX, NANOS_MAX), format }
    }

    /// Rounded up to a whole number of units (a claim's storage is counted
    /// in whole bytes).
    #[must_use]
    pub fn whole_units_up(self) -> Self {
        Self { nanos: div_ceil(self.nanos, NANOS_PER_UNIT) * NANOS_PER_UNIT, format: self.format }
    }

    /// The larger of two quantities (the first when equal).
    #[must_use]
    pub fn max_of(self, other: Self) -> Self {
        if other.nanos > self.nanos { other } else { self }
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// Whether the quantity is zero.
    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }

    /// Whether the quantity is a whole number of units.
    pub fn is_whole(self) -> bool {
        self.nanos % NANOS_PER_UNIT == 0
    }

    /// Thousandths, rounded up.
    pub fn milli_value(self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }
}

/// `value / divisor`, rounded toward positive infinity.
fn div_ceil(value: i128, divisor: i128) -> i128 {
    let quotient = value.div_euclid(divisor);
    if value.rem_euclid(divisor) == 0 { quotient } else { quotient + 1 }
}

/// `mantissa × multiplier × 10^exponent`, rounded up; out of range past
/// [`NANOS_MAX`].
fn scaled(mantissa: i128, multiplier: i128, exponent: i32) -> Result<i128, QuantityError> {
    let value = mantissa.checked_mul(multiplier).ok_or(QuantityError::OutOfRange)?;
    let value = if exponent >= 0 {
        let factor = 10i128.checked_pow(exponent.unsigned_abs()).ok_or(QuantityError::OutOfRange)?;
        value.checked_mul(factor).ok_or(QuantityError::OutOfRange)?
    } else {
        match 10i128.checked_pow(exponent.unsigned_abs()) {
            Some(divisor) => div_ceil(value, divisor),
            None => i128::from(value > 0),
        }
    };
    if value > NANOS_MAX { Err(QuantityError::OutOfRange) } else { Ok(value) }
}

/// What a suffix multiplies by, as (multiplier, decimal exponent, format).
fn suffix_scale(suffix: &str) -> Result<(i128, i32, Format), QuantityError> {
    let decimal = |exponent| Ok((1, exponent, Format::DecimalSi));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => {
            if let Some(power) = BINARY_SUFFIXES.iter().position(|s| *s == suffix) {
                let multiplier = 1024i128.pow(u32::try_from(power + 1).expect("six suffixes"));
                return Ok((multiplier, 0, Format::BinarySi));
            }
            let exponent = suffix.strip_prefix(['e', 'E']).ok_or(QuantityError::Malformed)?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
                return Err(QuantityError::Malformed);
            }
            let exponent: i32 = exponent.parse().map_err(|_| QuantityError::Malformed)?;
            Ok((1, exponent, Format::DecimalExponent))
        }
    }
}

/// Binary suffixes, by power of 1024 (from 1).
const BINARY_SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// Decimal suffixes by power of 1000, from 10^-9.
const DECIMAL_SUFFIXES: [&str; 10] = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];

impl fmt::Display for Quantity {
    /// Kubernetes' canonical form: the largest suffix that keeps the
    /// number whole; binary quantities below 1024 or with fractions are
    /// written in decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let units = magnitude / NANOS_PER_UNIT.unsigned_abs();
        let whole = magnitude.is_multiple_of(NANOS_PER_UNIT.unsigned_abs());
        if self.format == Format::BinarySi && whole && units >= 1024 {
            let mut amount = units;
            let mut power = 0;
            while power < BINARY_SUFFIXES.len() && amount.is_multiple_of(1024) {
                amount /= 1024;
                power += 1;
            }
            let suffix = if power == 0 { "" } else { BINARY_SUFFIXES[power - 1] };
            return write!(f, "{sign}{amount}{suffix}");
        }
        // Decimal: magnitude × 10^-9, as amount × 1000^(index - 3).
        let mut amount = magnitude;
        let mut index = 0;
        while index + 1 < DECIMAL_SUFFIXES.len() && amount.is_multiple_of(1000) {
            amount /= 1000;
            index += 1;
        }
        if self.format == Format::DecimalExponent {
            let exponent = (index as i32 - 3) * 3;
            return if exponent == 0 { write!(f, "{sign}{amount}") } else { write!(f, "{sign}{amount}e{exponent}") };
        }
        write!(f, "{sign}{amount}{}", DECIMAL_SUFFIXES[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).expect(text)
    }

    #[test]
    fn quantities_print_in_canonical_form() {
        for (given, canonical) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("100m", "100m"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("0", "0"),
            ("-1", "-1"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
            ("1n", "1n"),
            ("0.1n", "1n"),
            ("128Mi", "128Mi"),
            ("+3", "3"),
        ] {
            assert_eq!(q(given).to_string(), canonical, "{given}");
        }
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in ["", "abc", "1.2.3", "1x", "Mi", "1e", "1ee3", "-", ".", "1 Mi"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Quantity::parse("1e999").err(), Some(QuantityError::OutOfRange));
    }

    #[test]
    fn arithmetic_is_exact_across_suffixes() {
        assert_eq!(q("100m").plus(q("900m")), q("1"));
        assert_eq!(q("1Gi").plus(q("-512Mi")).to_string(), "512Mi");
        assert_eq!(q("1").plus(q("1Ki")).to_string(), "1025");
        assert_eq!(q("0").plus(q("2Gi")).to_string(), "2Gi", "a sum from zero takes the other's format");
        assert_eq!(q("3Gi").minus(q("1Gi")).to_string(), "2Gi");
        assert_eq!(q("1.5").whole_units_up().to_string(), "2");
        assert!(q("1") < q("1001m"));
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("1n").milli_value(), 1, "thousandths round up");
    }

    fn canonical_text() -> impl Strategy<Value = String> {
        let suffix =
            prop::sample::select(vec!["", "n", "u", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "e3", "e-3"]);
        (0u64..1_000_000, suffix).prop_map(|(n, s)| format!("{n}{s}"))
    }

    proptest! {
        #[test]
        fn parse_and_print_round_trip(text in canonical_text()) {
            let parsed = q(&text);
            let printed = parsed.to_string();
            let again = q(&printed);
            prop_assert_eq!(again, parsed);
            prop_assert_eq!(again.to_string(), printed);
        }

        #[test]
        fn sums_match_the_milli_values(a in 0u64..10_000_000, b in 0u64..10_000_000) {
            let (left, right) = (q(&format!("{a}m")), q(&format!("{b}m")));
            let sum = left.plus(right);
            prop_assert_eq!(sum.milli_value(), i128::from(a) + i128::from(b));
            prop_assert_eq!(sum.plus(q(&format!("-{b}m"))), left);
            prop_assert!(sum >= left && sum >= right);
        }

        #[test]
        fn no_text_panics_the_parser(text in ".{0,24}") {
            let _ = Quantity::parse(&text).map(|parsed| parsed.to_string());
        }
    }
}
