//! Completion indexes in Kubernetes' interval form (`0-2,4,7-9`), as
//! `status.completedIndexes` holds them.

use std::collections::BTreeSet;

/// The indexes `text` names that are below `completions`; malformed parts
/// are skipped, as Kubernetes skips them.
pub fn parse(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut indexes = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        let (Ok(first), Ok(last)) = (first, last) else { continue };
        let last = last.min(completions.saturating_sub(1));
        if first < 0 || first > last {
            continue;
        }
        indexes.extend(first..=last);
    }
    indexes
}

/// `indexes` in interval form, ascending.
pub fn format(indexes: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &index in indexes {
        run = match run {
            Some((first, last)) if last.checked_add(1) == Some(index) => Some((first, index)),
            Some(done) => {
                parts.push(interval(done));
                Some((index, index))
            }
            None => Some((index, index)),
        };
    }
    parts.extend(run.map(interval));
    parts.join(",")
}

fn interval((first, last): (i32, i32)) -> String {
    if first == last { first.to_string() } else { format!("{first}-{last}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip() {
        // Goal: the interval form Kubernetes writes reads back to the same set.
        let set: BTreeSet<i32> = [0, 1, 2, 4, 7, 8, 9].into();
        assert_eq!(format(&set), "0-2,4,7-9");
        assert_eq!(parse("0-2,4,7-9", 10), set);
        assert_eq!(format(&BTreeSet::new()), "");
        assert_eq!(format(&[5].into()), "5");
    }

    #[test]
    fn indexes_beyond_completions_and_garbage_are_dropped() {
        assert_eq!(parse("1-5,x,3-1,-2", 3), [1, 2].into());
        assert_eq!(parse("", 3), BTreeSet::new());
    }
}
