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
            let share = i128::from(MAX_NODE_SCORE) * i128::from(score) / i128::from(highest);
            let share = share.clamp(0, i128::from(MAX_NODE_SCORE));
            let share = if reversed { i128::from(MAX_NODE_SCORE) - share } else { share };
            u32::try_from(share).unwrap_or(0)
        })
        .collect()
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
