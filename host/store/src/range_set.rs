//! A union of key ranges that answers "is this key in any of them" in
//! logarithmic time, for the duplicate-key checks of transactions: a
//! request may carry thousands of deletes and puts, and checking each put
//! against each delete would cost their product.

use std::collections::{BTreeMap, BTreeSet};

use crate::KeyRange;

/// Disjoint, non-adjacent half-open intervals `[start, end)` by start; an
/// end of `None` is unbounded.
#[derive(Debug, Default)]
pub(crate) struct RangeSet {
    intervals: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Whether end `a` lies at or beyond end `b` (`None` is beyond all).
fn reaches(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

impl RangeSet {
    /// Adds the keys of `range`.
    pub(crate) fn insert(&mut self, range: &KeyRange) {
        let (start, end) = if range.is_single() {
            let mut successor = range.key.clone();
            successor.push(0);
            (range.key.clone(), Some(successor))
        } else if range.is_open_ended() {
            (range.key.clone(), None)
        } else if range.end > range.key {
            (range.key.clone(), Some(range.end.clone()))
        } else {
            return;
        };
        self.insert_interval(start, end);
    }

    fn insert_interval(&mut self, mut start: Vec<u8>, mut end: Option<Vec<u8>>) {
        if let Some((before, before_end)) = self.intervals.range(..=start.clone()).next_back()
            && reaches(before_end.as_deref(), Some(&start))
        {
            start = before.clone();
            if reaches(before_end.as_deref(), end.as_deref()) {
                end.clone_from(before_end);
            }
        }
        let swallowed: Vec<Vec<u8>> = self
            .intervals
            .range(start.clone()..)
            .take_while(|(next, _)| end.as_deref().is_none_or(|end| next.as_slice() <= end))
            .map(|(next, _)| next.clone())
            .collect();
        for next in swallowed {
            let next_end = self.intervals.remove(&next).flatten();
            if !reaches(end.as_deref(), next_end.as_deref()) {
                end = next_end;
            }
        }
        self.intervals.insert(start, end);
    }

    /// Adds every key of `other`.
    pub(crate) fn extend(&mut self, other: Self) {
        for (start, end) in other.intervals {
            self.insert_interval(start, end);
        }
    }

    /// Whether `key` lies in one of the ranges.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.intervals
            .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()
            .is_some_and(|(_, end)| end.as_deref().is_none_or(|end| key < end))
    }
}

/// Whether one of `keys` lies in `range`.
pub(crate) fn holds_any(keys: &BTreeSet<Vec<u8>>, range: &KeyRange) -> bool {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let start = Included(range.key.as_slice());
    if range.is_single() {
        keys.contains(&range.key)
    } else if range.is_open_ended() {
        keys.range::<[u8], _>((start, Unbounded)).next().is_some()
    } else if range.end > range.key {
        keys.range::<[u8], _>((start, Excluded(range.end.as_slice()))).next().is_some()
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..3, 0..3)
    }

    fn range() -> impl Strategy<Value = KeyRange> {
        let end = prop_oneof![Just(Vec::new()), Just(vec![0]), key()];
        (key(), end).prop_map(|(key, end)| KeyRange { key, end })
    }

    proptest! {
        #[test]
        fn answers_as_the_ranges_themselves(
            first in proptest::collection::vec(range(), 0..8),
            second in proptest::collection::vec(range(), 0..8),
            probes in proptest::collection::vec(key(), 0..16),
        ) {
            let mut set = RangeSet::default();
            first.iter().for_each(|range| set.insert(range));
            let mut other = RangeSet::default();
            second.iter().for_each(|range| other.insert(range));
            set.extend(other);
            for probe in probes.iter().chain(first.iter().chain(&second).flat_map(|r| [&r.key, &r.end])) {
                let expected = first.iter().chain(&second).any(|range| range.contains(probe));
                prop_assert_eq!(set.contains(probe), expected, "{:?}", probe);
            }
            let keys: BTreeSet<Vec<u8>> = probes.iter().cloned().collect();
            for range in first.iter().chain(&second) {
                prop_assert_eq!(holds_any(&keys, range), keys.iter().any(|key| range.contains(key)), "{:?}", range);
            }
            let starts: Vec<_> = set.intervals.iter().collect();
            for pair in starts.windows(2) {
                prop_assert!(pair[0].1.as_ref().is_some_and(|end| end < pair[1].0), "disjoint and apart: {:?}", pair);
            }
        }
    }
}
