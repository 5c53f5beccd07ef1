//! What gossip has said of each node over time: live or dead since when,
//! and whether its liveness flaps.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// A node's liveness as gossip reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Gossip has not heard of it.
    Unknown,
    /// Live, for this long.
    Live {
        /// Time since it was last seen becoming live.
        for_: Duration,
    },
    /// Dead, for this long.
    Dead {
        /// Time since it was last seen dying.
        for_: Duration,
    },
}

/// When liveness flaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapPolicy {
    /// Revivals (dead, then live again) counted within this window.
    pub window: Duration,
    /// A node revived this many times within the window flaps.
    pub revivals: usize,
    /// A revival counts only after an outage of at least this long (the
    /// failure detector may flicker for a moment as a node comes back).
    pub outage_min: Duration,
}

impl Default for FlapPolicy {
    fn default() -> Self {
        Self { window: Duration::from_secs(5 * 60), revivals: 3, outage_min: Duration::from_secs(1) }
    }
}

/// One node's record.
#[derive(Debug, Clone)]
struct Track {
    live: bool,
    since: Instant,
    revivals: VecDeque<Instant>,
}

/// Follows gossip's reports of every node, by name.
#[derive(Debug, Clone, Default)]
pub struct LivenessTracker {
    policy: FlapPolicy,
    nodes: BTreeMap<String, Track>,
}

impl LivenessTracker {
    /// A tracker that calls flapping what `policy` says.
    pub fn new(policy: FlapPolicy) -> Self {
        Self { policy, nodes: BTreeMap::new() }
    }

    /// Takes gossip's report at `now` that `node` is live or dead. Returns
    /// whether that is a change: a node first seen live counts as one; a
    /// node never seen live stays unknown (gossip lists nodes it has only
    /// heard of as dead).
    pub fn observe(&mut self, node: &str, live: bool, now: Instant) -> bool {
        let Some(track) = self.nodes.get_mut(node) else {
            if live {
                self.nodes.insert(node.to_owned(), Track { live, since: now, revivals: VecDeque::new() });
            }
            return live;
        };
        if track.live == live {
            return false;
        }
        if live && now.saturating_duration_since(track.since) >= self.policy.outage_min {
            track.revivals.push_back(now);
            if track.revivals.len() > self.policy.revivals {
                track.revivals.pop_front();
            }
        }
        track.live = live;
        track.since = now;
        true
    }

    /// Forgets the nodes gossip no longer knows.
    pub fn retain(&mut self, known: impl Fn(&str) -> bool) {
        self.nodes.retain(|name, _| known(name));
    }

    /// `node`'s liveness at `now`.
    pub fn liveness(&self, node: &str, now: Instant) -> Liveness {
        match self.nodes.get(node) {
            None => Liveness::Unknown,
            Some(track) if track.live => Liveness::Live { for_: now.saturating_duration_since(track.since) },
            Some(track) => Liveness::Dead { for_: now.saturating_duration_since(track.since) },
        }
    }

    /// Whether `node` was revived [`FlapPolicy::revivals`] times within the
    /// window before `now`.
    pub fn flapping(&self, node: &str, now: Instant) -> bool {
        let Some(track) = self.nodes.get(node) else { return false };
        let recent =
            track.revivals.iter().filter(|at| now.saturating_duration_since(**at) <= self.policy.window).count();
        recent >= self.policy.revivals
    }
}
