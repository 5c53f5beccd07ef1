//! A linearizability checker for histories of a key-value store: reads,
//! writes and compare-and-swaps, each with the time it was called and the
//! time it returned (none when its outcome is unknown: a timeout, a killed
//! client). A history is linearizable when every operation can be given a
//! single instant between its call and its return such that, taken in
//! that order, each read sees the latest write and each compare-and-swap
//! succeeds exactly when the value matched. Keys are independent
//! registers, so each key's operations are checked alone (linearizability
//! is compositional). The search is Wing and Gong's, with Lowe's
//! memoization of (operations linearized, register value) as porcupine
//! does: exponential at worst, fast on histories whose operations overlap
//! little. An operation of unknown outcome may take effect at any instant
//! after its call, or never; a read of unknown outcome says nothing and is
//! left out.

use std::collections::{BTreeMap, HashSet};

/// What an operation did, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A read that returned `value` (none: the key was absent).
    Read {
        /// The key.
        key: String,
        /// What it returned.
        value: Option<String>,
    },
    /// A write of `value`.
    Write {
        /// The key.
        key: String,
        /// The value written.
        value: String,
    },
    /// Set `new` if the value is `expected` (none: absent); `succeeded`
    /// is what the store answered.
    Cas {
        /// The key.
        key: String,
        /// The value it had to hold.
        expected: Option<String>,
        /// The value to set.
        new: String,
        /// Whether the store said it swapped.
        succeeded: bool,
    },
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Self::Read { key, .. } | Self::Write { key, .. } | Self::Cas { key, .. } => key,
        }
    }

    /// The register's value after this operation at `state`, when the
    /// operation is consistent with `state`.
    fn apply(&self, state: &Option<String>) -> Option<Option<String>> {
        match self {
            Self::Read { value, .. } => (value == state).then(|| state.clone()),
            Self::Write { value, .. } => Some(Some(value.clone())),
            Self::Cas { expected, new, succeeded: true, .. } => (expected == state).then(|| Some(new.clone())),
            Self::Cas { expected, succeeded: false, .. } => (expected != state).then(|| state.clone()),
        }
    }
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it was called.
    pub call: u64,
    /// When it returned; none when its outcome is unknown.
    pub ret: Option<u64>,
    /// What it did.
    pub op: Op,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key:?}: no order of its {operations} operations explains what the clients saw")]
pub struct Anomaly {
    /// The key whose operations admit no linearization.
    pub key: String,
    /// How many operations it had.
    pub operations: usize,
}

/// Checks `history`.
///
/// # Errors
/// The first key (in key order) whose operations admit no linearization.
pub fn check(history: &[Event]) -> Result<(), Anomaly> {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in history {
        let unknown_read = event.ret.is_none() && matches!(event.op, Op::Read { .. });
        if !unknown_read {
            by_key.entry(event.op.key()).or_default().push(event);
        }
    }
    for (key, events) in by_key {
        if !Search::new(&events).run() {
            return Err(Anomaly { key: key.to_owned(), operations: events.len() });
        }
    }
    Ok(())
}

/// The search for one key's linearization.
struct Search<'a> {
    events: Vec<&'a Event>,
    done: Vec<bool>,
    seen: HashSet<(Vec<u64>, Option<String>)>,
}

impl<'a> Search<'a> {
    fn new(events: &[&'a Event]) -> Self {
        let mut events = events.to_vec();
        events.sort_by_key(|event| event.call);
        let done = vec![false; events.len()];
        Self { events, done, seen: HashSet::new() }
    }

    fn run(&mut self) -> bool {
        let mut frames: Vec<Frame> = vec![Frame::new(self, None)];
        while let Some(frame) = frames.last_mut() {
            if self.events.iter().zip(&self.done).all(|(event, done)| *done || event.ret.is_none()) {
                return true;
            }
            let Some(index) = frame.candidates.pop() else {
                let finished = frames.pop().expect("a frame");
                if let Some(index) = finished.taken {
                    self.done[index] = false;
                }
                continue;
            };
            let state = frame.state.clone();
            let Some(next) = self.events[index].op.apply(&state) else { continue };
            self.done[index] = true;
            if self.seen.insert((self.bits(), next.clone())) {
                let mut child = Frame::new(self, Some(index));
                child.state = next;
                frames.push(child);
            } else {
                self.done[index] = false;
            }
        }
        false
    }

    fn bits(&self) -> Vec<u64> {
        let mut bits = vec![0u64; self.done.len().div_ceil(64)];
        for (index, done) in self.done.iter().enumerate() {
            if *done {
                bits[index / 64] |= 1 << (index % 64);
            }
        }
        bits
    }
}

/// One step of the search: the register's value, the operation taken to
/// reach it, and the operations that may come next.
struct Frame {
    state: Option<String>,
    taken: Option<usize>,
    candidates: Vec<usize>,
}

impl Frame {
    /// The operations not yet taken that may be linearized next: those
    /// called before every remaining completed operation returned.
    fn new(search: &Search<'_>, taken: Option<usize>) -> Self {
        let pending = || search.events.iter().enumerate().filter(|(index, _)| !search.done[*index]);
        let first_return = pending().filter_map(|(_, event)| event.ret).min().unwrap_or(u64::MAX);
        let candidates =
            pending().filter(|(_, event)| event.call <= first_return).map(|(index, _)| index).rev().collect();
        Self { state: None, taken, candidates }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn read(call: u64, ret: u64, value: Option<&str>) -> Event {
        Event { call, ret: Some(ret), op: Op::Read { key: "k".into(), value: value.map(str::to_owned) } }
    }

    fn write(call: u64, ret: Option<u64>, value: &str) -> Event {
        Event { call, ret, op: Op::Write { key: "k".into(), value: value.into() } }
    }

    fn cas(call: u64, ret: u64, expected: Option<&str>, new: &str, succeeded: bool) -> Event {
        let op = Op::Cas { key: "k".into(), expected: expected.map(str::to_owned), new: new.into(), succeeded };
        Event { call, ret: Some(ret), op }
    }

    #[test]
    fn known_good_histories_pass_and_known_bad_ones_are_named() {
        // Goal: sequential and overlapping histories that have an order
        // pass; a stale read, a lost write, two winning CASes on one value
        // and a read of a value never written are each found.
        let good = [
            vec![write(0, Some(1), "a"), read(2, 3, Some("a")), cas(4, 5, Some("a"), "b", true), read(6, 7, Some("b"))],
            vec![write(0, Some(10), "a"), read(1, 2, None), read(3, 4, Some("a")), read(5, 6, Some("a"))],
            vec![write(0, Some(5), "a"), write(1, Some(6), "b"), read(7, 8, Some("a"))],
            vec![write(0, None, "a"), read(5, 6, None)],
            vec![write(0, None, "a"), read(5, 6, Some("a"))],
            vec![cas(0, 1, None, "a", true), cas(2, 3, None, "b", false)],
        ];
        for history in &good {
            assert_eq!(check(history), Ok(()), "{history:?}");
        }
        let bad = [
            vec![write(0, Some(1), "a"), read(2, 3, None)],
            vec![write(0, Some(1), "a"), write(2, Some(3), "b"), read(4, 5, Some("a"))],
            vec![cas(0, 10, None, "a", true), cas(1, 11, None, "b", true)],
            vec![write(0, Some(1), "a"), read(2, 3, Some("z"))],
            vec![read(0, 1, Some("a")), write(2, Some(3), "a")],
        ];
        for history in &bad {
            let anomaly = check(history).expect_err("not linearizable");
            assert_eq!((anomaly.key.as_str(), anomaly.operations), ("k", history.len()), "{history:?}");
        }
        let mut two_keys = good[0].clone();
        two_keys.push(Event { call: 0, ret: Some(1), op: Op::Read { key: "other".into(), value: Some("x".into()) } });
        assert_eq!(check(&two_keys).expect_err("a read of nothing written").key, "other");
    }

    /// A history of `count` operations on 8 keys run one at a time, each
    /// widened to overlap its neighbours, from a fixed seed.
    fn large_history(count: usize) -> Vec<Event> {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut values: BTreeMap<String, Option<String>> = BTreeMap::new();
        (0..count)
            .map(|index| {
                let key = format!("k{}", next() % 8);
                let value = values.entry(key.clone()).or_default();
                let instant = 1_000 + 100 * index as u64;
                let (call, ret) = (instant - next() % 300, Some(instant + next() % 300));
                let op = match next() % 3 {
                    0 => Op::Read { key, value: value.clone() },
                    1 => {
                        *value = Some(format!("v{index}"));
                        Op::Write { key, value: format!("v{index}") }
                    }
                    _ => {
                        let expected = value.clone();
                        *value = Some(format!("c{index}"));
                        Op::Cas { key, expected, new: format!("c{index}"), succeeded: true }
                    }
                };
                Event { call, ret, op }
            })
            .collect()
    }

    #[test]
    fn ten_thousand_operations_are_checked_and_one_bad_read_is_found() {
        // Goal: a history of the size the fault tests make passes, and
        // changing one read's value in it is found on its key.
        let history = large_history(10_000);
        assert_eq!(check(&history), Ok(()));
        let mut corrupted = history;
        let at = corrupted.iter().rposition(|e| matches!(e.op, Op::Read { .. })).expect("a read");
        let Op::Read { key, .. } = corrupted[at].op.clone() else { unreachable!("a read") };
        corrupted[at].op = Op::Read { key: key.clone(), value: Some("never written".into()) };
        assert_eq!(check(&corrupted).expect_err("found").key, key);
    }

    proptest! {
        #[test]
        fn histories_of_a_real_register_are_linearizable(
            steps in proptest::collection::vec((0u8..3, 0u8..4, 0u64..250, 0u64..250), 1..120),
        ) {
            // Goal: a history made by running operations one at a time on
            // a register, each given a call before and a return after its
            // instant (overlapping freely), always passes.
            let mut value: Option<String> = None;
            let mut history = Vec::new();
            for (index, (kind, argument, before, after)) in steps.into_iter().enumerate() {
                let instant = 1_000 + 100 * index as u64;
                let (call, ret) = (instant - before, Some(instant + after));
                let argument = format!("v{argument}");
                let op = match kind {
                    0 => Op::Read { key: "k".into(), value: value.clone() },
                    1 => {
                        value = Some(argument.clone());
                        Op::Write { key: "k".into(), value: argument }
                    }
                    _ => {
                        let expected = Some(argument.clone());
                        let succeeded = value == expected;
                        if succeeded {
                            value = Some(format!("{argument}+"));
                        }
                        Op::Cas { key: "k".into(), expected, new: format!("{argument}+"), succeeded }
                    }
                };
                history.push(Event { call, ret, op });
            }
            prop_assert_eq!(check(&history), Ok(()));
        }
    }
}
