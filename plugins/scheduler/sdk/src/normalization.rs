//! Turning a plugin's raw node scores into scores from 0 to
//! [`MAX_NODE_SCORE`], as kube-scheduler's plugins normalize them.

use crate::MAX_NODE_SCORE;

/// kube-scheduler's `DefaultNormalizeScore`: each score as a share of the
/// highest (`100 × score / highest`, rounded down), or, `reversed`, 100
/// less that. When the highest is 0 (or below), every node scores 0, or
/// 100 `reversed`.
pub fn default_normalize(raw: &[i64], reversed: bool) -> Vec<u32> {
    let highest = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|&score| {
            if highest <= 0 {
                return if reversed { MAX_NODE_SCORE } else { 0 };
            }
            let share = u64::try_from(score).map_or(0, |score| mul_div(score, 100, highest.unsigned_abs()).min(100));
            let share = u32::try_from(share).unwrap_or(MAX_NODE_SCORE);
            if reversed { MAX_NODE_SCORE - share } else { share }
        })
        .collect()
}

/// `value × factor / divisor`, rounded down, as kube-scheduler's 64-bit
/// arithmetic computes it; where the product passes 64 bits, exact rather
/// than wrapped, and at most `u64::MAX`. 0 when `divisor` is 0.
///
/// Plugins scale by this rather than in 128 bits throughout: a component
/// divides 128-bit numbers in software, many times slower.
pub fn mul_div(value: u64, factor: u64, divisor: u64) -> u64 {
    if divisor == 0 {
        return 0;
    }
    match checked_mul(value, factor) {
        Some(product) => product / divisor,
        None => u64::try_from(u128::from(value) * u128::from(factor) / u128::from(divisor)).unwrap_or(u64::MAX),
    }
}

/// `a × b`, or `None` where it passes 64 bits. The operands' leading
/// zeros settle it first: Rust's own overflow check multiplies in 128 bits,
/// which a component does in software.
pub fn checked_mul(a: u64, b: u64) -> Option<u64> {
    if a.leading_zeros() + b.leading_zeros() >= u64::BITS { Some(a.wrapping_mul(b)) } else { a.checked_mul(b) }
}

/// `a × b`, saturating at the bounds of `i64`; the overflow settled by the
/// leading zeros first, as in [`checked_mul`].
pub fn saturating_mul(a: i64, b: i64) -> i64 {
    if a.unsigned_abs().leading_zeros() + b.unsigned_abs().leading_zeros() > u64::BITS {
        a.wrapping_mul(b)
    } else {
        a.saturating_mul(b)
    }
}

/// Each score placed between the lowest (0) and the highest (100),
/// rounded down; all 0 when they are all equal (as InterPodAffinity
/// normalizes).
pub fn min_max_normalize(raw: &[i64]) -> Vec<u32> {
    let lowest = raw.iter().copied().min().unwrap_or(0);
    let highest = raw.iter().copied().max().unwrap_or(0);
    let spread = i128::from(highest) - i128::from(lowest);
    raw.iter()
        .map(|&score| {
            if spread <= 0 {
                return 0;
            }
            let above = i128::from(score) - i128::from(lowest);
            // As kube-scheduler computes it: in floating point, then
            // truncated.
            let share = f64::from(MAX_NODE_SCORE) * (above as f64 / spread as f64);
            (share as u32).min(MAX_NODE_SCORE)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalization_divides_by_the_highest() {
        // Goal: DefaultNormalizeScore's integer shares, reversed or not,
        // and its all-zero case.
        assert_eq!(default_normalize(&[0, 1, 3], false), vec![0, 33, 100]);
        assert_eq!(default_normalize(&[0, 1, 3], true), vec![100, 67, 0]);
        assert_eq!(default_normalize(&[0, 0], false), vec![0, 0]);
        assert_eq!(default_normalize(&[0, 0], true), vec![100, 100]);
        assert_eq!(default_normalize(&[], true), Vec::<u32>::new());
        assert_eq!(default_normalize(&[i64::MAX, 1], false), vec![100, 0]);
    }

    #[test]
    fn scaling_is_exact_where_the_product_passes_64_bits() {
        // Goal: kube's 64-bit results where they fit, the exact quotient
        // where the product would overflow, saturation, no division by 0.
        assert_eq!(mul_div(1, 100, 3), 33);
        assert_eq!(mul_div(u64::MAX, 100, u64::MAX), 100);
        assert_eq!(mul_div(u64::MAX, u64::MAX, 1), u64::MAX);
        assert_eq!(mul_div(7, 100, 0), 0);
    }

    proptest::proptest! {
        #[test]
        fn scaling_equals_128_bit_arithmetic(value: u64, factor: u64, divisor in 1u64..) {
            let exact = u128::from(value) * u128::from(factor) / u128::from(divisor);
            proptest::prop_assert_eq!(u128::from(mul_div(value, factor, divisor)), exact.min(u128::from(u64::MAX)));
        }

        #[test]
        fn products_are_checked_as_rust_checks_them(a: u64, b: u64, shift in 0u32..64, c: i64, d: i64) {
            proptest::prop_assert_eq!(checked_mul(a, b), a.checked_mul(b));
            proptest::prop_assert_eq!(checked_mul(a >> shift, b >> (63 - shift)), (a >> shift).checked_mul(b >> (63 - shift)));
            proptest::prop_assert_eq!(saturating_mul(c, d), c.saturating_mul(d));
            proptest::prop_assert_eq!(saturating_mul(c >> shift, d >> (63 - shift)), (c >> shift).saturating_mul(d >> (63 - shift)));
        }

        #[test]
        fn normalized_shares_equal_128_bit_arithmetic(raw in proptest::collection::vec(proptest::num::i64::ANY, 0..20), reversed: bool) {
            let highest = raw.iter().copied().max().unwrap_or(0);
            let expected: Vec<u32> = raw
                .iter()
                .map(|&score| {
                    if highest <= 0 {
                        return if reversed { 100 } else { 0 };
                    }
                    let share = (100 * i128::from(score) / i128::from(highest)).clamp(0, 100) as u32;
                    if reversed { 100 - share } else { share }
                })
                .collect();
            proptest::prop_assert_eq!(default_normalize(&raw, reversed), expected);
        }
    }

    #[test]
    fn min_max_normalization_spreads_between_the_extremes() {
        // Goal: the lowest scores 0, the highest 100, the rest truncated
        // in between; equal scores all 0.
        assert_eq!(min_max_normalize(&[-5, 0, 5]), vec![0, 50, 100]);
        assert_eq!(min_max_normalize(&[1, 2, 4]), vec![0, 33, 100]);
        assert_eq!(min_max_normalize(&[7, 7]), vec![0, 0]);
        assert_eq!(min_max_normalize(&[i64::MIN, i64::MAX]), vec![0, 100]);
        assert!(min_max_normalize(&[]).is_empty());
    }
}
