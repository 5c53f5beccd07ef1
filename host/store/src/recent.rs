//! The newest raft log entries, kept decoded in memory.
//!
//! A leader reads every entry it appends once per follower (to send it) and
//! once more to apply it; serving those reads from memory spares each one a
//! journal range read and a decode.

use std::collections::VecDeque;

/// Entries kept at most.
pub const RECENT_ENTRIES_MAX: usize = 1024;

/// Encoded bytes of the entries kept, at most.
pub const RECENT_BYTES_MAX: usize = 16 * 1024 * 1024;

/// A contiguous run of the log's newest entries (of type `T`), each under
/// its index, bounded by [`RECENT_ENTRIES_MAX`] and [`RECENT_BYTES_MAX`].
///
/// The log keeps it a suffix of itself: every append is pushed, a truncation
/// or a purge drops what it removes, and an append that does not follow the
/// newest entry kept starts the run anew.
#[derive(Debug)]
pub struct RecentEntries<T> {
    /// Each entry with its index and encoded size, oldest first.
    entries: VecDeque<(u64, usize, T)>,
    bytes: usize,
}

impl<T: Clone> RecentEntries<T> {
    /// An empty run.
    pub fn new() -> Self {
        Self { entries: VecDeque::new(), bytes: 0 }
    }

    /// Adds the entry at `index` (`size` encoded bytes) as the newest one,
    /// then drops the oldest entries beyond the bounds.
    pub fn push(&mut self, index: u64, size: usize, entry: T) {
        if self.entries.back().is_some_and(|(newest, _, _)| newest + 1 != index) {
            self.clear();
        }
        self.entries.push_back((index, size, entry));
        self.bytes += size;
        while self.entries.len() > RECENT_ENTRIES_MAX || self.bytes > RECENT_BYTES_MAX {
            self.pop_oldest();
        }
    }

    /// Drops the entries at `index` and after.
    pub fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|(newest, _, _)| *newest >= index) {
            let (_, size, _) = self.entries.pop_back().expect("an entry was just seen");
            self.bytes -= size;
        }
    }

    /// Drops the entries at `index` and before.
    pub fn purge_to(&mut self, index: u64) {
        while self.entries.front().is_some_and(|(oldest, _, _)| *oldest <= index) {
            self.pop_oldest();
        }
    }

    /// Drops every entry.
    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Copies of the entries from `start` up to (not including) `end`, if
    /// every one of them is kept; `None` sends the reader to the log.
    pub fn get(&self, start: u64, end: u64) -> Option<Vec<T>> {
        let (oldest, _, _) = self.entries.front()?;
        let (newest, _, _) = self.entries.back()?;
        if start < *oldest || end > newest + 1 || start > end {
            return None;
        }
        let from = usize::try_from(start - oldest).ok()?;
        let count = usize::try_from(end - start).ok()?;
        Some(self.entries.range(from..from + count).map(|(_, _, entry)| entry.clone()).collect())
    }

    fn pop_oldest(&mut self) {
        if let Some((_, size, _)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }
}

impl<T: Clone> Default for RecentEntries<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Append { count: u64, size: usize },
        Truncate { back: u64 },
        Purge { ahead: u64 },
        Get { start: u64, len: u64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1..8u64, prop_oneof![1..64usize, Just(RECENT_BYTES_MAX / 3)])
                .prop_map(|(count, size)| Step::Append { count, size }),
            1 => (0..10u64).prop_map(|back| Step::Truncate { back }),
            1 => (0..10u64).prop_map(|ahead| Step::Purge { ahead }),
            4 => (0..40u64, 0..12u64).prop_map(|(start, len)| Step::Get { start, len }),
        ]
    }

    proptest! {
        /// Whatever the run answers equals the log it mirrors, and it stays
        /// within its bounds.
        #[test]
        fn answers_only_what_the_log_holds(steps in proptest::collection::vec(step(), 1..200)) {
            let mut log: BTreeMap<u64, (usize, String)> = BTreeMap::new();
            let mut recent = RecentEntries::new();
            let mut next = 1u64;
            for step in steps {
                match step {
                    Step::Append { count, size } => {
                        for _ in 0..count {
                            let entry = format!("entry {next} of {size} bytes");
                            log.insert(next, (size, entry.clone()));
                            recent.push(next, size, entry);
                            next += 1;
                        }
                    }
                    Step::Truncate { back } => {
                        let from = next.saturating_sub(back).max(1);
                        log.retain(|index, _| *index < from);
                        recent.truncate_from(from);
                        next = from;
                    }
                    Step::Purge { ahead } => {
                        let first = log.keys().next().copied().unwrap_or(next);
                        let to = first + ahead;
                        log.retain(|index, _| *index > to);
                        recent.purge_to(to);
                        next = next.max(to + 1);
                    }
                    Step::Get { start, len } => {
                        let start = next.saturating_sub(start).max(1);
                        if let Some(got) = recent.get(start, start + len) {
                            let want: Vec<String> =
                                log.range(start..start + len).map(|(_, (_, entry))| entry.clone()).collect();
                            prop_assert_eq!(got, want);
                        }
                    }
                }
                prop_assert!(recent.entries.len() <= RECENT_ENTRIES_MAX);
                prop_assert!(recent.bytes <= RECENT_BYTES_MAX);
                prop_assert_eq!(recent.bytes, recent.entries.iter().map(|(_, size, _)| size).sum::<usize>());
            }
        }
    }

    #[test]
    fn serves_the_newest_entries_and_sends_older_reads_to_the_log() {
        let mut recent = RecentEntries::new();
        for index in 1..=RECENT_ENTRIES_MAX as u64 + 10 {
            recent.push(index, 1, index);
        }
        let newest = RECENT_ENTRIES_MAX as u64 + 10;
        assert_eq!(recent.get(newest - 1, newest + 1), Some(vec![newest - 1, newest]));
        assert_eq!(recent.get(1, 3), None, "evicted entries are read from the log");
        assert_eq!(recent.get(newest, newest + 2), None, "entries beyond the newest are read from the log");
    }

    #[test]
    fn an_append_after_a_gap_starts_anew() {
        let mut recent = RecentEntries::new();
        recent.push(1, 1, "a");
        recent.push(2, 1, "b");
        recent.push(7, 1, "g");
        assert_eq!(recent.get(1, 2), None);
        assert_eq!(recent.get(7, 8), Some(vec!["g"]));
    }
}
