use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn leader(id: u64) -> MemberView {
    MemberView {
        id,
        voter: true,
        leader: true,
        raft_silent: Duration::ZERO,
        lag: Some(0),
        gossip: Liveness::Live { for_: 600 * SECOND },
        flapping: false,
        quarantined: false,
        since_shift: None,
        lowering: false,
    }
}

fn healthy(id: u64, voter: bool) -> MemberView {
    MemberView { leader: false, voter, raft_silent: Duration::from_millis(100), ..leader(id) }
}

fn dead(id: u64, voter: bool, for_: Duration) -> MemberView {
    MemberView { raft_silent: for_, gossip: Liveness::Dead { for_ }, lag: None, ..healthy(id, voter) }
}

fn view(members: Vec<MemberView>) -> View {
    View { quorum_ack_age: Some(Duration::from_millis(100)), members, workers: Vec::new() }
}

fn worker(name: &str, live_for: Duration) -> WorkerView {
    WorkerView { name: name.into(), gossip: Liveness::Live { for_: live_for }, flapping: false, raised: None }
}

fn raise(members: Vec<MemberView>, workers: Vec<WorkerView>) -> Option<String> {
    plan_raise(&View { workers, ..view(members) }, &Policy::default()).map(|r| r.worker)
}

fn decide(members: Vec<MemberView>) -> Option<(u64, Action)> {
    plan(&view(members), &Policy::default()).map(|d| (d.node, d.action))
}

#[test]
fn voter_targets_follow_the_node_count() {
    let targets: Vec<usize> = (1..=8).map(|n| VoterTarget::Auto.for_nodes(n)).collect();
    assert_eq!(targets, [1, 1, 3, 3, 3, 3, 5, 5]);
    assert_eq!(VoterTarget::Fixed(5).for_nodes(3), 3);
    assert_eq!("auto".parse(), Ok(VoterTarget::Auto));
    assert_eq!("3".parse(), Ok(VoterTarget::Fixed(3)));
    assert!("0".parse::<VoterTarget>().is_err());
}

#[test]
fn a_settled_cluster_is_left_alone() {
    assert_eq!(decide(vec![leader(1)]), None);
    assert_eq!(decide(vec![leader(1), healthy(2, false)]), None);
    assert_eq!(decide(vec![leader(1), healthy(2, true), healthy(3, true), healthy(4, false)]), None);
}

#[test]
fn the_third_node_brings_promotions_one_at_a_time() {
    let mut members = vec![leader(1), healthy(2, false), healthy(3, false)];
    members[2].lag = Some(5);
    assert_eq!(decide(members.clone()), Some((2, Action::Promote)), "the most caught-up learner first");
    members[1].voter = true;
    members[1].since_shift = Some(Duration::ZERO);
    assert_eq!(decide(members), Some((3, Action::Promote)));
}

#[test]
fn a_failed_voter_is_replaced_then_demoted_then_removed() {
    let policy = Policy::default();
    let failed = dead(2, true, 2 * SECOND);
    let members = vec![leader(1), failed.clone(), healthy(3, true), healthy(4, false)];
    assert_eq!(decide(members), Some((4, Action::Promote)), "the voter count is restored first");
    let members = vec![leader(1), failed.clone(), healthy(3, true), healthy(4, true)];
    assert_eq!(decide(members), Some((2, Action::Demote)), "then the failed voter is the surplus");
    let gone = dead(2, false, policy.remove_after);
    let members = vec![leader(1), gone, healthy(3, true), healthy(4, true)];
    assert_eq!(decide(members), Some((2, Action::Remove)));
}

#[test]
fn a_voter_dead_to_only_one_view_is_not_replaced() {
    let mut raft_only = dead(2, true, 5 * SECOND);
    raft_only.gossip = Liveness::Live { for_: 60 * SECOND };
    assert_eq!(decide(vec![leader(1), raft_only, healthy(3, true), healthy(4, false)]), None);
    let mut gossip_only = dead(2, true, 5 * SECOND);
    gossip_only.raft_silent = Duration::from_millis(100);
    assert_eq!(decide(vec![leader(1), gossip_only, healthy(3, true), healthy(4, false)]), None);
    let within_grace = dead(2, true, Duration::from_millis(500));
    assert_eq!(decide(vec![leader(1), within_grace, healthy(3, true), healthy(4, false)]), None);
}

#[test]
fn nothing_is_decided_from_a_minority_view() {
    let members = vec![leader(1), healthy(2, false), healthy(3, false)];
    let stale = View { quorum_ack_age: Some(10 * SECOND), ..view(members.clone()) };
    assert_eq!(plan(&stale, &Policy::default()), None, "no quorum acknowledged the leader lately");
    let deposed = View { quorum_ack_age: None, ..view(members) };
    assert_eq!(plan(&deposed, &Policy::default()), None, "not the leader");
    let members =
        vec![leader(1), dead(2, true, 20 * SECOND), dead(3, true, 20 * SECOND), healthy(4, false), healthy(5, false)];
    assert_eq!(decide(members), None, "gossip holds only one of three voters live");
}

#[test]
fn no_change_leaves_reachable_voters_short_of_a_quorum() {
    // Five voters, two failed, six nodes: three voters wanted, and
    // demoting a failed one keeps three of four reachable.
    let policy = Policy::default();
    let long = policy.remove_after + SECOND;
    let members = vec![
        leader(1),
        healthy(2, true),
        healthy(3, true),
        dead(4, true, long),
        dead(5, true, long),
        healthy(6, false),
    ];
    assert_eq!(decide(members), Some((5, Action::Demote)));
    // Three voters, one unreachable but not failed (gossip says live), one
    // failed: removing the failed one would leave one of two reachable.
    let mut unreachable = healthy(2, true);
    unreachable.raft_silent = 3 * SECOND;
    let members = vec![leader(1), unreachable, dead(3, true, long)];
    assert_eq!(decide(members), None);
}

#[test]
fn a_trailing_or_unreachable_learner_is_not_promoted() {
    let mut trailing = healthy(2, false);
    trailing.lag = Some(Policy::default().lag_max + 1);
    let mut unknown = healthy(3, false);
    unknown.lag = None;
    let mut silent = healthy(4, false);
    silent.raft_silent = 2 * SECOND;
    assert_eq!(decide(vec![leader(1), trailing.clone(), unknown.clone(), silent.clone()]), None);
    trailing.lag = Some(10);
    assert_eq!(decide(vec![leader(1), trailing, unknown, silent]), Some((2, Action::Promote)));
}

#[test]
fn a_node_shifts_at_most_once_per_interval() {
    let mut recent = healthy(2, false);
    recent.since_shift = Some(30 * SECOND);
    let other = healthy(3, false);
    assert_eq!(decide(vec![leader(1), recent.clone(), other.clone()]), Some((3, Action::Promote)));
    let mut other_recent = other;
    other_recent.since_shift = Some(59 * SECOND);
    assert_eq!(decide(vec![leader(1), recent.clone(), other_recent.clone()]), None);
    recent.since_shift = Some(60 * SECOND);
    assert_eq!(decide(vec![leader(1), recent, other_recent]), Some((2, Action::Promote)));
}

#[test]
fn flapping_nodes_are_quarantined_then_restored() {
    let mut flapping = healthy(2, false);
    flapping.flapping = true;
    assert_eq!(decide(vec![leader(1), flapping.clone(), healthy(3, false)]), Some((2, Action::Quarantine)));
    flapping.quarantined = true;
    assert_eq!(
        decide(vec![leader(1), flapping.clone(), healthy(3, false)]),
        Some((3, Action::Promote)),
        "the other learner is promoted instead"
    );
    flapping.flapping = false;
    flapping.gossip = Liveness::Live { for_: 10 * SECOND };
    assert_eq!(decide(vec![leader(1), flapping.clone()]), None, "not yet stable");
    flapping.gossip = Liveness::Live { for_: 60 * SECOND };
    assert_eq!(decide(vec![leader(1), flapping]), Some((2, Action::Restore)));
}

#[test]
fn surplus_voters_are_demoted_never_the_leader() {
    let members = vec![leader(1), healthy(2, true), healthy(3, true)];
    let after_shrink = vec![leader(1), healthy(2, true)];
    assert_eq!(decide(members), None);
    assert_eq!(decide(after_shrink), Some((2, Action::Demote)), "two nodes want one voter");
    let mut quarantined = healthy(3, true);
    quarantined.quarantined = true;
    quarantined.flapping = true;
    let members = vec![leader(1), healthy(2, true), quarantined, healthy(4, true), healthy(5, true), healthy(6, false)];
    assert_eq!(decide(members), Some((3, Action::Demote)), "six nodes want three voters: the quarantined goes first");
}

#[test]
fn the_tracker_sees_flapping_within_its_window() {
    let mut tracker = LivenessTracker::new(FlapPolicy { window: 60 * SECOND, revivals: 3, outage_min: SECOND });
    let start = Instant::now();
    let at = |seconds: u64| start + Duration::from_secs(seconds);
    assert!(!tracker.observe("a", false, at(0)), "never seen live: unknown");
    assert_eq!(tracker.liveness("a", at(0)), Liveness::Unknown);
    assert!(tracker.observe("a", true, at(0)));
    assert!(!tracker.observe("a", true, at(1)));
    for cycle in 0..3 {
        tracker.observe("a", false, at(10 + cycle * 10));
        assert!(!tracker.flapping("a", at(10 + cycle * 10)));
        tracker.observe("a", true, at(15 + cycle * 10));
    }
    assert!(tracker.flapping("a", at(40)));
    assert_eq!(tracker.liveness("a", at(40)), Liveness::Live { for_: 5 * SECOND });
    assert!(!tracker.flapping("a", at(100)), "the revivals have left the window");
    assert_eq!(tracker.liveness("b", at(40)), Liveness::Unknown);
    tracker.retain(|name| name != "a");
    assert_eq!(tracker.liveness("a", at(40)), Liveness::Unknown);
}

#[test]
fn a_flicker_shorter_than_an_outage_is_no_revival() {
    let mut tracker = LivenessTracker::new(FlapPolicy { window: 60 * SECOND, revivals: 2, outage_min: SECOND });
    let start = Instant::now();
    let at = |millis: u64| start + Duration::from_millis(millis);
    tracker.observe("a", true, at(0));
    for cycle in 0..5 {
        tracker.observe("a", false, at(1000 + cycle * 1000));
        tracker.observe("a", true, at(1500 + cycle * 1000));
    }
    assert!(!tracker.flapping("a", at(6000)));
    tracker.observe("a", false, at(7000));
    tracker.observe("a", true, at(8000));
    tracker.observe("a", false, at(9000));
    tracker.observe("a", true, at(10_000));
    assert!(tracker.flapping("a", at(10_000)), "two outages of a second");
}

#[test]
fn role_records_round_trip_with_exact_ids() {
    let record = RoleRecord {
        id: u64::MAX - 1,
        name: "n1".into(),
        role: Role::Voter,
        action: Action::Promote,
        reason: "r".into(),
        quarantined: false,
        at_ms: 1,
        shifted_at_ms: Some(1),
        term: 2,
    };
    let json: serde_json::Value = serde_json::from_slice(&record.encode()).expect("JSON");
    assert_eq!(json["id"], (u64::MAX - 1).to_string());
    assert_eq!(json["action"], "promote");
    assert_eq!(RoleRecord::decode(&record.encode()).expect("decodes"), record);
    assert!(role_record_key(255).ends_with("00000000000000ff"));
}

fn member() -> impl Strategy<Value = MemberView> {
    let gossip = prop_oneof![
        Just(Liveness::Unknown),
        (0u64..120).prop_map(|s| Liveness::Live { for_: Duration::from_secs(s) }),
        (0u64..900).prop_map(|s| Liveness::Dead { for_: Duration::from_secs(s) }),
    ];
    (
        any::<bool>(),
        0u64..3000,
        proptest::option::of(0u64..2000),
        gossip,
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0u64..120),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(voter, silent_ms, lag, gossip, flapping, quarantined, shift, lowering)| MemberView {
            id: 0,
            voter,
            leader: false,
            raft_silent: Duration::from_millis(silent_ms * if silent_ms > 2500 { 400 } else { 1 }),
            lag,
            gossip,
            flapping,
            quarantined,
            since_shift: shift.map(Duration::from_secs),
            lowering: lowering && !voter,
        })
}

fn any_worker() -> impl Strategy<Value = WorkerView> {
    (0u64..200, any::<bool>(), any::<bool>(), proptest::option::of(0u64..120)).prop_map(
        |(seconds, live, flapping, raised)| WorkerView {
            name: String::new(),
            gossip: if live {
                Liveness::Live { for_: Duration::from_secs(seconds) }
            } else {
                Liveness::Dead { for_: Duration::from_secs(seconds) }
            },
            flapping,
            raised: raised.map(Duration::from_secs),
        },
    )
}

fn any_view() -> impl Strategy<Value = View> {
    let members = proptest::collection::vec(member(), 1..9);
    let workers = proptest::collection::vec(any_worker(), 0..4);
    (members, workers, proptest::option::of(0u64..3000)).prop_map(|(mut members, mut workers, ack)| {
        for (index, member) in members.iter_mut().enumerate() {
            member.id = index as u64 + 1;
        }
        for (index, worker) in workers.iter_mut().enumerate() {
            worker.name = format!("w-{index}");
        }
        members[0].leader = true;
        members[0].voter = true;
        members[0].raft_silent = Duration::ZERO;
        View { quorum_ack_age: ack.map(Duration::from_millis), members, workers }
    })
}

proptest! {
    /// Whatever the cluster looks like, a raise is decided from a majority
    /// view only, only while the healthy replicas are short of the voter
    /// target and no raise is under way, and only of a live, steady worker.
    #[test]
    fn every_raise_keeps_the_guardrails(view in any_view()) {
        let policy = Policy::default();
        let Some(raise) = plan_raise(&view, &policy) else { return Ok(()) };
        prop_assert!(view.quorum_ack_age.is_some_and(|age| age <= policy.quorum_ack_max));
        let healthy = view.members.iter().filter(|m| m.dead_for() < policy.dead_grace).count();
        prop_assert!(healthy < policy.voters.for_nodes(view.nodes()));
        prop_assert!(!view.workers.iter().any(|w| w.raised.is_some_and(|since| since < policy.raise_timeout)));
        let worker = view.workers.iter().find(|w| w.name == raise.worker).expect("a worker");
        let live = matches!(worker.gossip, Liveness::Live { .. });
        prop_assert!(live && !worker.flapping);
    }

    /// Whatever the cluster looks like, a decision keeps every guardrail.
    #[test]
    fn every_decision_keeps_the_guardrails(view in any_view()) {
        let policy = Policy::default();
        let Some(decision) = plan(&view, &policy) else { return Ok(()) };
        let target = view.members.iter().find(|m| m.id == decision.node).expect("a member");
        let voters: Vec<u64> = view.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
        prop_assert!(view.quorum_ack_age.is_some_and(|age| age <= policy.quorum_ack_max));
        let gossip_live = view.members.iter()
            .filter(|m| m.voter && (m.leader || matches!(m.gossip, Liveness::Live { .. })))
            .count();
        prop_assert!(gossip_live >= quorum(voters.len()), "decided from a minority view");
        prop_assert!(!target.leader, "the leader never changes itself");
        if decision.action.changes_membership() {
            prop_assert!(target.may_shift(&policy), "shifted within the interval");
            let after: Vec<u64> = match decision.action {
                Action::Promote => voters.iter().copied().chain([target.id]).collect(),
                _ => voters.iter().copied().filter(|id| *id != target.id).collect(),
            };
            let reachable = |id: u64| view.members.iter().any(|m| m.id == id && m.reachable(&policy));
            prop_assert!(quorum_safe(&voters, &after, reachable), "below quorum: {decision:?}");
        }
        if decision.action == Action::Lower {
            prop_assert!(!target.voter && !view.members.iter().any(|m| m.lowering), "one lowering, of a learner");
            let learners = view.members.iter().filter(|m| !m.voter && m.dead_for() < policy.dead_grace).count();
            prop_assert!(learners > policy.standbys, "a standby lowered within the standby count");
            prop_assert!(target.may_shift(&policy));
        }
        if decision.action == Action::Promote {
            prop_assert!(!target.voter && !target.quarantined && !target.flapping && !target.lowering);
            prop_assert!(target.lag.is_some_and(|lag| lag <= policy.lag_max), "a trailing learner promoted");
            prop_assert!(target.reachable(&policy));
        }
    }
}

#[test]
fn a_worker_is_raised_when_the_healthy_replicas_fall_short() {
    // Goal: with a voter dead and no learner to promote, the worker live
    // longest becomes a standby; none while the replicas suffice.
    let failed = vec![leader(1), healthy(2, true), dead(3, true, 10 * SECOND)];
    let workers = vec![worker("w-young", 5 * SECOND), worker("w-old", 500 * SECOND)];
    assert_eq!(raise(failed.clone(), workers.clone()), Some("w-old".into()));
    let settled = vec![leader(1), healthy(2, true), healthy(3, true)];
    assert_eq!(raise(settled, workers.clone()), None, "three healthy replicas for three voters");
    let dead_worker = WorkerView { gossip: Liveness::Dead { for_: SECOND }, ..worker("w-dead", SECOND) };
    let flapping = WorkerView { flapping: true, ..worker("w-flap", 900 * SECOND) };
    assert_eq!(raise(failed.clone(), vec![dead_worker, flapping]), None, "never a dead or flapping worker");
    let minority = View { quorum_ack_age: None, workers: workers.clone(), ..view(failed.clone()) };
    assert_eq!(plan_raise(&minority, &Policy::default()), None, "never from a minority view");
}

#[test]
fn one_raise_at_a_time_until_it_joins_or_times_out() {
    let failed = vec![leader(1), healthy(2, true), dead(3, true, 10 * SECOND)];
    let pending = WorkerView { raised: Some(5 * SECOND), ..worker("w-1", 500 * SECOND) };
    assert_eq!(raise(failed.clone(), vec![pending.clone(), worker("w-2", 9 * SECOND)]), None);
    let expired = WorkerView { raised: Some(Policy::default().raise_timeout), ..pending };
    assert_eq!(raise(failed, vec![expired, worker("w-2", 9 * SECOND)]), Some("w-1".into()), "tried again");
}

#[test]
fn live_workers_count_toward_the_voter_target() {
    // Three replicas and four live workers are seven nodes: five voters
    // wanted, so workers are raised (and, as learners, promoted).
    let replicas = vec![leader(1), healthy(2, true), healthy(3, true)];
    let workers: Vec<WorkerView> = (0..4).map(|i| worker(&format!("w-{i}"), (10 + i) * SECOND)).collect();
    assert_eq!(raise(replicas.clone(), workers.clone()), Some("w-3".into()));
    let mut grown = replicas;
    grown.push(healthy(4, false));
    let more = View { workers: workers[..3].to_vec(), ..view(grown) };
    assert_eq!(plan(&more, &Policy::default()).map(|d| (d.node, d.action)), Some((4, Action::Promote)));
}

#[test]
fn surplus_learners_are_lowered_to_workers_one_at_a_time() {
    // Goal: three voters and three learners keep two standbys: the
    // quarantined learner goes first, then the one trailing most; none
    // while one is being lowered, while voters are short, or within the
    // standby count.
    let mut members = vec![leader(1), healthy(2, true), healthy(3, true)];
    members.extend([healthy(4, false), healthy(5, false), healthy(6, false)]);
    members[4].lag = Some(40);
    assert_eq!(decide(members.clone()), Some((5, Action::Lower)), "the learner trailing most");
    (members[5].quarantined, members[5].flapping) = (true, true);
    assert_eq!(decide(members.clone()), Some((6, Action::Lower)), "a quarantined learner first");
    let mut lowering = members.clone();
    lowering[5].lowering = true;
    assert_eq!(decide(lowering), None, "one lowering at a time");
    assert_eq!(decide(members[..5].to_vec()), None, "two standbys are kept");
    let mut short = members.clone();
    short[2] = dead(3, true, 5 * SECOND);
    assert_ne!(decide(short).map(|d| d.1), Some(Action::Lower), "never while voters are short");
}
