//! revoada's autopilot: the raft leader's decision of which role change to
//! make next. The cluster's nodes are voters (the control plane), learners
//! (warm standby: full replicas that can be promoted at once), workers (no
//! replica) or gone; the autopilot keeps the voters at a target that
//! follows the number of nodes, promotes caught-up learners, demotes
//! surplus voters, replaces voters that raft and gossip both report dead,
//! removes members dead for long, quarantines nodes whose liveness flaps,
//! lowers surplus learners to workers, and raises a worker to standby when
//! the healthy replicas are too few for the voter target ([`plan_raise`]).
//!
//! [`plan`] is a pure function of a [`View`] (what the leader's raft and
//! gossip see now) and a [`Policy`]; it answers at most one [`Decision`],
//! and only one that keeps every guardrail:
//!
//! - one membership change at a time (the caller applies a decision and
//!   plans again only after it committed);
//! - never below quorum: the voters reachable now form a quorum of both the
//!   configuration before and the one after the change;
//! - never from a minority view: a quorum of voters acknowledged the leader
//!   recently, and gossip holds a quorum of voters live;
//! - at most one shift per node per [`Policy::shift_interval`];
//! - a learner that trails the leader's log by more than
//!   [`Policy::lag_max`] entries, or that raft cannot reach, is not
//!   promoted;
//! - a flapping node is quarantined (never promoted) until it has been
//!   live, without flapping, for [`Policy::stable_for`].

mod liveness;
mod record;

use std::time::Duration;

pub use liveness::{FlapPolicy, Liveness, LivenessTracker};
pub use record::{ROLE_RECORDS_PREFIX, RaiseRecord, Role, RoleRecord, role_record_key};

/// How many voters the cluster keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoterTarget {
    /// 1 voter for 1–2 nodes, 3 for 3–6, 5 for 7 or more.
    Auto,
    /// This many, or every node where there are fewer.
    Fixed(usize),
}

impl VoterTarget {
    /// The voters wanted among `nodes` members.
    pub fn for_nodes(self, nodes: usize) -> usize {
        match self {
            Self::Auto => match nodes {
                0 => 0,
                1..=2 => 1,
                3..=6 => 3,
                _ => 5,
            },
            Self::Fixed(voters) => voters.min(nodes),
        }
    }
}

impl VoterTarget {
    /// The most voters it ever wants, however many nodes there are.
    pub fn most(self) -> usize {
        match self {
            Self::Auto => 5,
            Self::Fixed(voters) => voters,
        }
    }
}

impl std::str::FromStr for VoterTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Self::Auto),
            number => match number.parse::<usize>() {
                Ok(voters) if voters >= 1 => Ok(Self::Fixed(voters)),
                _ => Err(format!("{text:?} is not a voter count: `auto` or a number of 1 or more")),
            },
        }
    }
}

/// The autopilot's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How many voters to keep.
    pub voters: VoterTarget,
    /// A member that gossip and raft both report dead this long has failed:
    /// a voter is replaced, then demoted.
    pub dead_grace: Duration,
    /// A member failed this long is removed from the cluster.
    pub remove_after: Duration,
    /// The least time between two shifts of one node.
    pub shift_interval: Duration,
    /// The most log entries a learner may trail the leader by and still be
    /// promoted.
    pub lag_max: u64,
    /// Raft reaches a member whose last answer to the leader is younger
    /// than this.
    pub contact_max: Duration,
    /// The leader acts only while a quorum of voters acknowledged it within
    /// this.
    pub quorum_ack_max: Duration,
    /// A quarantined node is restored once gossip has held it live, without
    /// flapping, this long.
    pub stable_for: Duration,
    /// A worker raised to standby that has not joined as a learner this
    /// long is given up on, and another may be raised.
    pub raise_timeout: Duration,
    /// Healthy learners kept beyond the voters; a surplus learner is
    /// lowered to a worker.
    pub standbys: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            voters: VoterTarget::Auto,
            dead_grace: Duration::from_secs(1),
            remove_after: Duration::from_secs(10 * 60),
            shift_interval: Duration::from_secs(60),
            lag_max: 1000,
            contact_max: Duration::from_secs(1),
            quorum_ack_max: Duration::from_millis(1500),
            stable_for: Duration::from_secs(60),
            raise_timeout: Duration::from_secs(60),
            standbys: 2,
        }
    }
}

/// One member of the raft group as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Raft node id.
    pub id: u64,
    /// Whether it votes.
    pub voter: bool,
    /// Whether it is the leader (the node deciding).
    pub leader: bool,
    /// Time since the leader last heard from it over raft (zero for the
    /// leader itself).
    pub raft_silent: Duration,
    /// Log entries it trails the leader by, when known.
    pub lag: Option<u64>,
    /// Its liveness as this node's gossip reports it.
    pub gossip: Liveness,
    /// Whether its gossip liveness flaps now.
    pub flapping: bool,
    /// Whether it is quarantined (recorded).
    pub quarantined: bool,
    /// Time since its role last shifted, when it ever did.
    pub since_shift: Option<Duration>,
    /// Whether it is being lowered to a worker (recorded, not yet
    /// removed).
    pub lowering: bool,
}

impl MemberView {
    /// Whether raft reaches it now.
    fn reachable(&self, policy: &Policy) -> bool {
        self.leader || self.raft_silent < policy.contact_max
    }

    /// How long gossip and raft have both reported it dead.
    fn dead_for(&self) -> Duration {
        if self.leader {
            return Duration::ZERO;
        }
        let gossip = match self.gossip {
            Liveness::Live { .. } => Duration::ZERO,
            Liveness::Dead { for_ } => for_,
            Liveness::Unknown => Duration::MAX,
        };
        gossip.min(self.raft_silent)
    }

    /// Whether it has failed: dead to both views for the grace period.
    fn failed(&self, policy: &Policy) -> bool {
        self.dead_for() >= policy.dead_grace
    }

    /// Whether its role may shift now.
    fn may_shift(&self, policy: &Policy) -> bool {
        self.since_shift.is_none_or(|since| since >= policy.shift_interval)
    }
}

/// A worker (a node with no replica, not a raft member) as the leader's
/// gossip sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    /// Node name.
    pub name: String,
    /// Its liveness.
    pub gossip: Liveness,
    /// Whether its liveness flaps now.
    pub flapping: bool,
    /// Time since it was raised to standby, if it was and has not joined.
    pub raised: Option<Duration>,
}

impl WorkerView {
    fn live(&self) -> bool {
        matches!(self.gossip, Liveness::Live { .. })
    }
}

/// What the leader sees of the cluster now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Time since a quorum of voters last acknowledged the leader (`None`
    /// when this node does not lead).
    pub quorum_ack_age: Option<Duration>,
    /// Every member of the raft group, the leader included.
    pub members: Vec<MemberView>,
    /// The workers gossip knows.
    pub workers: Vec<WorkerView>,
}

impl View {
    /// The nodes the voter target counts: every member, and every live
    /// worker.
    pub fn nodes(&self) -> usize {
        self.members.len() + self.workers.iter().filter(|w| w.live()).count()
    }

    /// Whether the leader may decide: a quorum of voters acknowledged it
    /// recently, and gossip holds a quorum of voters live.
    fn seen_by_majority(&self, policy: &Policy) -> bool {
        let voters: Vec<&MemberView> = self.members.iter().filter(|m| m.voter).collect();
        let majority_acked = self.quorum_ack_age.is_some_and(|age| age <= policy.quorum_ack_max);
        let gossip_live_voters =
            voters.iter().filter(|m| m.leader || matches!(m.gossip, Liveness::Live { .. })).count();
        majority_acked && gossip_live_voters >= quorum(voters.len())
    }
}

/// A worker to raise to standby: it becomes a replica and joins as a
/// learner (then the promotion rules apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    /// The worker's name.
    pub worker: String,
    /// Why, in words.
    pub reason: String,
}

/// A role change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A node joined as a learner (recorded when the leader admits it;
    /// never planned).
    Join,
    /// A learner becomes a voter.
    Promote,
    /// A voter becomes a learner.
    Demote,
    /// A member leaves the raft group.
    Remove,
    /// A node is kept from promotion while its liveness flaps.
    Quarantine,
    /// A quarantined node may be promoted again.
    Restore,
    /// A surplus learner is to become a worker: it gives up its replica
    /// once it reads this, and is then removed.
    Lower,
}

impl Action {
    /// Whether it changes raft's membership (quarantines are records only).
    pub fn changes_membership(self) -> bool {
        matches!(self, Self::Join | Self::Promote | Self::Demote | Self::Remove)
    }

    /// Its name, as role records and Events give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Promote => "promote",
            Self::Demote => "demote",
            Self::Remove => "remove",
            Self::Quarantine => "quarantine",
            Self::Restore => "restore",
            Self::Lower => "lower",
        }
    }
}

/// The change the autopilot makes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The node it changes.
    pub node: u64,
    /// What it does.
    pub action: Action,
    /// Why, in words.
    pub reason: String,
}

/// The most voters of `voters` members that may be unreachable with the
/// rest still a quorum; [`quorum`] is how many must answer.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Whether a membership change from voters `before` to `after` keeps a
/// quorum of both reachable, where `reachable` says which ids raft reaches.
pub fn quorum_safe(before: &[u64], after: &[u64], reachable: impl Fn(u64) -> bool) -> bool {
    let holds = |voters: &[u64]| {
        !voters.is_empty() && voters.iter().filter(|id| reachable(**id)).count() >= quorum(voters.len())
    };
    holds(before) && holds(after)
}

/// The one role change to make next, if any, keeping every guardrail.
pub fn plan(view: &View, policy: &Policy) -> Option<Decision> {
    if !view.seen_by_majority(policy) {
        return None;
    }
    quarantine_or_restore(view, policy)
        .or_else(|| promote(view, policy))
        .or_else(|| demote(view, policy))
        .or_else(|| remove(view, policy))
        .or_else(|| lower(view, policy))
}

/// Lowers one surplus learner to a worker while the healthy voters meet
/// the target and more than [`Policy::standbys`] healthy learners remain:
/// a quarantined one first, then the one trailing most; one at a time.
fn lower(view: &View, policy: &Policy) -> Option<Decision> {
    if view.members.iter().any(|m| m.lowering) {
        return None;
    }
    let target = policy.voters.for_nodes(view.nodes());
    let healthy_voters = view.members.iter().filter(|m| m.voter && !m.failed(policy)).count();
    let learners: Vec<&MemberView> = view
        .members
        .iter()
        .filter(|m| !m.voter && !m.failed(policy) && matches!(m.gossip, Liveness::Live { .. }))
        .collect();
    if healthy_voters < target || learners.len() <= policy.standbys {
        return None;
    }
    let candidate = learners
        .iter()
        .filter(|m| m.may_shift(policy))
        .max_by_key(|m| (m.quarantined, m.lag.unwrap_or(u64::MAX), m.id))?;
    let reason = format!("{} standbys for {} wanted", learners.len(), policy.standbys);
    Some(Decision { node: candidate.id, action: Action::Lower, reason })
}

/// The worker to raise to standby, if the healthy replicas (voters and
/// learners not failed) are fewer than the voter target and no raise is
/// under way: the live, steady worker live longest. Decided only from a
/// majority view, as [`plan`]'s changes are; the caller asks only when
/// [`plan`] has nothing to do.
pub fn plan_raise(view: &View, policy: &Policy) -> Option<Raise> {
    if !view.seen_by_majority(policy) {
        return None;
    }
    if view.workers.iter().any(|w| w.raised.is_some_and(|since| since < policy.raise_timeout)) {
        return None;
    }
    let target = policy.voters.for_nodes(view.nodes());
    let healthy = view.members.iter().filter(|m| !m.failed(policy)).count();
    if healthy >= target {
        return None;
    }
    let candidate = view
        .workers
        .iter()
        .filter(|w| !w.flapping && w.raised.is_none_or(|since| since >= policy.raise_timeout))
        .filter_map(|w| match w.gossip {
            Liveness::Live { for_ } => Some((for_, w)),
            _ => None,
        })
        .max_by(|(a, x), (b, y)| a.cmp(b).then_with(|| y.name.cmp(&x.name)))?
        .1;
    let reason = format!("{healthy} healthy replicas for {target} voters wanted with {} nodes", view.nodes());
    Some(Raise { worker: candidate.name.clone(), reason })
}

/// Quarantines a flapping node, or restores one that has been stable.
fn quarantine_or_restore(view: &View, policy: &Policy) -> Option<Decision> {
    view.members.iter().filter(|m| !m.leader).find_map(|m| {
        if m.flapping && !m.quarantined {
            let reason = "its liveness flaps; not promoted until it is stable".into();
            return Some(Decision { node: m.id, action: Action::Quarantine, reason });
        }
        let stable = matches!(m.gossip, Liveness::Live { for_ } if for_ >= policy.stable_for);
        if m.quarantined && !m.flapping && stable {
            let reason = format!("live without flapping for {:?}", policy.stable_for);
            return Some(Decision { node: m.id, action: Action::Restore, reason });
        }
        None
    })
}

/// Promotes the most caught-up eligible learner while fewer healthy voters
/// than the target remain.
fn promote(view: &View, policy: &Policy) -> Option<Decision> {
    let target = policy.voters.for_nodes(view.nodes());
    let healthy = view.members.iter().filter(|m| m.voter && !m.failed(policy)).count();
    if healthy >= target {
        return None;
    }
    let candidate = view
        .members
        .iter()
        .filter(|m| !m.voter && !m.quarantined && !m.flapping && !m.lowering && !m.failed(policy))
        .filter(|m| m.reachable(policy) && matches!(m.gossip, Liveness::Live { .. }) && m.may_shift(policy))
        .filter(|m| m.lag.is_some_and(|lag| lag <= policy.lag_max))
        .min_by_key(|m| (m.lag, m.id))?;
    let voters: Vec<u64> = view.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    let after: Vec<u64> = voters.iter().copied().chain([candidate.id]).collect();
    let reachable = |id: u64| view.members.iter().any(|m| m.id == id && m.reachable(policy));
    if !quorum_safe(&voters, &after, reachable) {
        return None;
    }
    let reason = if healthy < view.members.iter().filter(|m| m.voter).count() {
        format!("replaces a failed voter: {healthy} healthy of {target} voters")
    } else {
        format!("{healthy} of {target} voters for {} nodes", view.nodes())
    };
    Some(Decision { node: candidate.id, action: Action::Promote, reason })
}

/// Demotes one surplus voter: a failed one first, then a quarantined one,
/// then the one trailing most; never the leader.
fn demote(view: &View, policy: &Policy) -> Option<Decision> {
    let target = policy.voters.for_nodes(view.nodes());
    let voters: Vec<&MemberView> = view.members.iter().filter(|m| m.voter).collect();
    if voters.len() <= target {
        return None;
    }
    let ids: Vec<u64> = voters.iter().map(|m| m.id).collect();
    let reachable = |id: u64| view.members.iter().any(|m| m.id == id && m.reachable(policy));
    let mut surplus: Vec<&&MemberView> = voters.iter().filter(|m| !m.leader && m.may_shift(policy)).collect();
    surplus.sort_by_key(|m| (!m.failed(policy), !m.quarantined, std::cmp::Reverse(m.lag), std::cmp::Reverse(m.id)));
    surplus.into_iter().find_map(|m| {
        let after: Vec<u64> = ids.iter().copied().filter(|id| *id != m.id).collect();
        if !quorum_safe(&ids, &after, reachable) {
            return None;
        }
        let reason = if m.failed(policy) {
            format!(
                "dead to raft and gossip for {}s; {} voters for {target} wanted",
                m.dead_for().as_secs(),
                voters.len()
            )
        } else {
            format!("{} voters for {target} wanted with {} nodes", voters.len(), view.nodes())
        };
        Some(Decision { node: m.id, action: Action::Demote, reason })
    })
}

/// Removes a member failed for [`Policy::remove_after`].
fn remove(view: &View, policy: &Policy) -> Option<Decision> {
    let ids: Vec<u64> = view.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    let reachable = |id: u64| view.members.iter().any(|m| m.id == id && m.reachable(policy));
    view.members
        .iter()
        .filter(|m| !m.leader && m.dead_for() >= policy.remove_after && m.dead_for() >= policy.dead_grace)
        .filter(|m| m.may_shift(policy))
        .find_map(|m| {
            let after: Vec<u64> = ids.iter().copied().filter(|id| *id != m.id).collect();
            if !quorum_safe(&ids, &after, reachable) {
                return None;
            }
            let reason = format!("dead to raft and gossip for {}s", m.dead_for().as_secs());
            Some(Decision { node: m.id, action: Action::Remove, reason })
        })
}

#[cfg(test)]
mod tests;
