//! Goal: five nodes, each in a network namespace of its own, keep a
//! linearizable store and the autopilot's roles through real faults: the
//! cluster grows from one node to five (voters 1, 1, 3, 3, 3); the leader
//! is killed with `kill -9` (a new leader, writes resume, a learner is
//! promoted in its place); a learner is killed, and a worker (a sixth node,
//! no replica) is killed (no role change); the
//! leader and a learner are cut off from the rest with nftables (the
//! majority keeps serving and replaces the leader, the minority decides
//! nothing); every node is restarted in turn; the cluster shrinks back to
//! two nodes (voters 3 → 1). Meanwhile clients read, write and
//! compare-and-swap through etcd transactions on every node; the history
//! (at least 10,000 operations) is checked by `engenho-linearizability`,
//! and no term ever has two leaders. Method: the harness of `netns.rs`
//! (namespaces on a bridge, partitions as nftables drop rules); the test
//! is skipped, saying why, only where namespaces cannot be made.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engenho_api::etcd::proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest, compare, kv_client::KvClient,
    maintenance_client::MaintenanceClient, request_op,
};
use engenho_linearizability::{Event, Op};
use rand::Rng;
use tonic::transport::Channel;

use crate::netns::Network;
use crate::revoada::{exported_chain_verifies, members, mesh_status, wait_rounds};
use crate::support::{EngenhoNode, wait_for, wait_voters};

/// The autopilot's pace for this test: shifts 5 s apart at least, failed
/// members removed after 15 s (the defaults, 60 s and 10 min, have tests
/// of their own).
const SETTINGS: [&str; 4] = ["--shift-interval", "5s", "--remove-after", "15s"];

/// Keys the clients share.
const KEYS: usize = 16;

/// Concurrent clients.
const CLIENTS: usize = 4;

/// Operations the history holds at least.
const OPERATIONS_MIN: usize = 10_000;

/// Deadline of one client operation; past it the outcome is unknown.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Time allowed for any one fault's effect to show.
const FAULT_DEADLINE: Duration = Duration::from_secs(90);

/// What the clients saw, with times in nanoseconds since `start`.
struct History {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

impl History {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).expect("a test lasts less than centuries")
    }

    fn record(&self, call: u64, ret: Option<u64>, op: Op) {
        self.events.lock().expect("history lock").push(Event { call, ret, op });
    }

    fn len(&self) -> usize {
        self.events.lock().expect("history lock").len()
    }
}

/// One client: random reads, writes (of values unique to it) and
/// compare-and-swaps on random keys through random nodes, until `stop`.
async fn client(id: usize, channels: Vec<Channel>, history: Arc<History>, stop: Arc<AtomicBool>) {
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut serial = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (key, channel, choice) = {
            let mut rng = rand::rng();
            let key = format!("lin/{}", rng.random_range(0..KEYS));
            (key, channels[rng.random_range(0..channels.len())].clone(), rng.random_range(0..3))
        };
        let mut kv = KvClient::new(channel);
        let call = history.now();
        serial += 1;
        let value = format!("c{id}-{serial}");
        match choice {
            0 => {
                let read = RangeRequest { key: key.clone().into_bytes(), ..RangeRequest::default() };
                let answer = tokio::time::timeout(OPERATION_TIMEOUT, kv.range(read)).await;
                // A read that failed had no effect: it is left out.
                if let Ok(Ok(answer)) = answer {
                    let value =
                        answer.into_inner().kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                    seen.insert(key.clone(), value.clone());
                    history.record(call, Some(history.now()), Op::Read { key, value });
                }
            }
            1 => {
                let put = PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                };
                let answer = tokio::time::timeout(OPERATION_TIMEOUT, kv.put(put)).await;
                let ret = matches!(answer, Ok(Ok(_))).then(|| history.now());
                if ret.is_some() {
                    seen.insert(key.clone(), Some(value.clone()));
                }
                history.record(call, ret, Op::Write { key, value });
            }
            _ => {
                let expected = seen.get(&key).cloned().flatten();
                let compare = match &expected {
                    Some(old) => Compare {
                        key: key.clone().into_bytes(),
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Value as i32,
                        target_union: Some(compare::TargetUnion::Value(old.clone().into_bytes())),
                        ..Compare::default()
                    },
                    None => Compare {
                        key: key.clone().into_bytes(),
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Version as i32,
                        target_union: Some(compare::TargetUnion::Version(0)),
                        ..Compare::default()
                    },
                };
                let put = PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                };
                let txn = TxnRequest {
                    compare: vec![compare],
                    success: vec![RequestOp { request: Some(request_op::Request::RequestPut(put)) }],
                    failure: vec![],
                };
                let answer = tokio::time::timeout(OPERATION_TIMEOUT, kv.txn(txn)).await;
                let (ret, succeeded) = match answer {
                    Ok(Ok(answer)) => (Some(history.now()), answer.into_inner().succeeded),
                    // Unknown: it swapped at some point, or never.
                    _ => (None, true),
                };
                if ret.is_some() && succeeded {
                    seen.insert(key.clone(), Some(value.clone()));
                }
                history.record(call, ret, Op::Cas { key, expected, new: value, succeeded });
            }
        }
    }
}

/// Every (term, leader) any node reported while `stop` was false.
async fn observe_leaders(channels: Vec<Channel>, stop: Arc<AtomicBool>) -> BTreeMap<u64, BTreeSet<u64>> {
    let mut leaders: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        for channel in &channels {
            let mut maintenance = MaintenanceClient::new(channel.clone());
            let status = maintenance.status(StatusRequest {});
            if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_millis(500), status).await {
                let status = status.into_inner();
                if status.leader != 0 {
                    leaders.entry(status.raft_term).or_default().insert(status.leader);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    leaders
}

fn leader_of(nodes: &[EngenhoNode], alive: impl Fn(usize) -> bool) -> Option<usize> {
    (0..nodes.len()).filter(|i| alive(*i)).find(|&i| nodes[i].is_leader())
}

/// Voters listed by `node`, leaving out the member named `dead`.
fn live_voters(node: &EngenhoNode, dead: &str) -> usize {
    members(node).iter().filter(|(name, (_, voter))| *voter && name.as_str() != dead).count()
}

fn start_args(nodes: &[EngenhoNode]) -> Vec<String> {
    let mut args = nodes[0].join_args();
    args.extend(SETTINGS.iter().map(|a| (*a).to_owned()));
    args
}

#[test]
fn five_nodes_in_namespaces_shift_roles_through_kills_and_partitions() {
    let network = match Network::create(6) {
        Ok(network) => network,
        Err(reason) => {
            eprintln!("skipped: network namespaces cannot be made on this machine: {reason}");
            return;
        }
    };
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes: Vec<EngenhoNode> = (0..5)
        .map(|i| EngenhoNode::in_namespace(root.path(), &format!("ns-{i}"), network.namespace(i), &network.ip(i)))
        .collect();

    // Grow from one node to five: voters 1, 1, 3, 3, 3.
    nodes[0].start_ready(&SETTINGS);
    let join = start_args(&nodes);
    let join: Vec<&str> = join.iter().map(String::as_str).collect();
    for (index, voters) in [(1, 1), (2, 3), (3, 3), (4, 3)] {
        nodes[index].start_ready(&join);
        wait_for("the new member listed", FAULT_DEADLINE, || members(&nodes[0]).len() == index + 1);
        wait_voters(&nodes[0], voters);
    }
    wait_rounds(&nodes, 8);
    assert_eq!(members(&nodes[0]).values().filter(|(_, voter)| *voter).count(), 3, "five nodes keep three voters");

    // A worker joins from a sixth namespace: no replica, six nodes, still
    // three voters.
    let mut worker = EngenhoNode::in_namespace(root.path(), "ns-worker", network.namespace(5), &network.ip(5));
    worker.start_worker(&join);
    wait_for("the worker in gossip", FAULT_DEADLINE, || {
        mesh_status(&nodes[0])["gossipOnly"]
            .as_array()
            .is_some_and(|g| g.iter().any(|m| m["name"] == "ns-worker" && m["gossip"]["live"] == true))
    });
    assert!(!members(&nodes[0]).contains_key("ns-worker"), "a worker is no member");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let history = Arc::new(History { start: Instant::now(), events: Mutex::new(Vec::new()) });
    let stop = Arc::new(AtomicBool::new(false));
    let channels: Vec<Channel> = {
        let _entered = runtime.enter();
        nodes.iter().map(EngenhoNode::etcd_channel).collect()
    };
    let clients: Vec<_> =
        (0..CLIENTS).map(|id| runtime.spawn(client(id, channels.clone(), history.clone(), stop.clone()))).collect();
    let observer = runtime.spawn(observe_leaders(channels.clone(), stop.clone()));

    // kill -9 the leader: a new leader, writes resume, and a learner is
    // promoted so that three voters are alive again.
    let leader = leader_of(&nodes, |_| true).expect("a leader");
    let dead = nodes[leader].name.clone();
    nodes[leader].kill();
    let survivor = (leader + 1) % nodes.len();
    wait_for("a new leader", FAULT_DEADLINE, || leader_of(&nodes, |i| i != leader).is_some());
    nodes[survivor].etcdctl_ok(&["put", "after-kill", "yes"]);
    wait_for("three live voters again", FAULT_DEADLINE, || live_voters(&nodes[survivor], &dead) == 3);
    nodes[leader].start_ready(&SETTINGS);

    // Kill a learner: no role change.
    let learner = (0..5).find(|&i| members(&nodes[survivor]).get(&nodes[i].name).is_some_and(|(_, v)| !*v));
    let learner = learner.expect("a learner");
    let before = members(&nodes[survivor]);
    let gone = nodes[learner].name.clone();
    nodes[learner].kill();
    let watcher = leader_of(&nodes, |i| i != learner).expect("a leader");
    wait_for("gossip to see the learner dead", FAULT_DEADLINE, || {
        nodes[watcher].log_text().contains(&format!("gossip: {gone} is dead"))
    });
    wait_rounds(&nodes, 12);
    assert_eq!(members(&nodes[watcher]), before, "a dead learner changes no role");
    nodes[learner].start_ready(&SETTINGS);

    // Kill the worker: no role change either (it stays dead).
    let before = members(&nodes[watcher]);
    worker.kill();
    wait_for("gossip to see the worker dead", FAULT_DEADLINE, || {
        nodes[watcher].log_text().contains("gossip: ns-worker is dead")
    });
    wait_rounds(&nodes, 12);
    assert_eq!(members(&nodes[watcher]), before, "a dead worker changes no role");

    // Cut the leader and one learner off: the majority elects a leader,
    // keeps taking writes and promotes its learner; the minority decides
    // nothing.
    let leader = leader_of(&nodes, |_| true).expect("a leader");
    let listed = members(&nodes[leader]);
    let learner = (0..5).find(|&i| listed.get(&nodes[i].name).is_some_and(|(_, v)| !*v)).expect("a learner");
    let minority = [leader, learner];
    let decisions = |i: usize| nodes[i].log_text().matches("engenho::autopilot: autopilot node=").count();
    let decided_before: Vec<usize> = minority.iter().map(|&i| decisions(i)).collect();
    network.partition(&minority);
    let majority: Vec<usize> = (0..5).filter(|i| !minority.contains(i)).collect();
    wait_for("a leader on the majority side", FAULT_DEADLINE, || {
        leader_of(&nodes, |i| majority.contains(&i)).is_some()
    });
    nodes[majority[0]].etcdctl_ok(&["put", "during-partition", "majority"]);
    let cut_off = nodes[leader].name.clone();
    wait_for("the majority's voters restored", FAULT_DEADLINE, || live_voters(&nodes[majority[0]], &cut_off) == 3);
    network.heal();
    wait_for("one leader that every node follows", FAULT_DEADLINE, || {
        leader_of(&nodes, |_| true).is_some()
            && nodes.iter().all(|n| n.etcdctl(&["endpoint", "status"]).status.success())
    });
    let decided_after: Vec<usize> = minority.iter().map(|&i| decisions(i)).collect();
    assert_eq!(decided_after, decided_before, "the cut-off minority decided no role change");

    // Restart every node in turn: the cluster converges, and the chain of
    // every transition so far verifies.
    for index in 0..nodes.len() {
        nodes[index].stop();
        nodes[index].start_ready(&SETTINGS);
        wait_voters(&nodes[(index + 1) % 5], 3);
    }
    let (chain, _) = exported_chain_verifies(&nodes[0]);
    let entries = chain["entries"].as_array().map_or(0, Vec::len);
    assert!(entries >= 10, "the grown, killed, partitioned cluster's chain: {chain}");

    wait_for("enough operations", FAULT_DEADLINE, || history.len() >= OPERATIONS_MIN);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        runtime.block_on(client).expect("client task");
    }
    let leaders = runtime.block_on(observer).expect("observer task");
    let events = std::mem::take(&mut *history.events.lock().expect("history lock"));
    let unknown = events.iter().filter(|e| e.ret.is_none()).count();
    eprintln!("history: {} operations ({unknown} of unknown outcome) on {KEYS} keys", events.len());
    if let Err(anomaly) = engenho_linearizability::check(&events) {
        let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("non-linearizable-history.txt");
        let of_key: Vec<String> = events
            .iter()
            .filter(|e| match &e.op {
                Op::Read { key, .. } | Op::Write { key, .. } | Op::Cas { key, .. } => *key == anomaly.key,
            })
            .map(|e| format!("{e:?}"))
            .collect();
        let _ = std::fs::write(&kept, of_key.join("\n"));
        panic!("the history is not linearizable: {anomaly} (its operations: {})", kept.display());
    }
    for (term, seen) in &leaders {
        assert_eq!(seen.len(), 1, "term {term} had leaders {seen:?}");
    }

    // Shrink back to two nodes, one at a time: each stopped node is
    // replaced where it voted, then removed; two nodes keep one voter.
    for index in (2..5).rev() {
        let name = nodes[index].name.clone();
        nodes[index].stop();
        wait_for("the stopped node removed", FAULT_DEADLINE, || !members(&nodes[0]).contains_key(&name));
    }
    wait_voters(&nodes[0], 1);
    assert_eq!(members(&nodes[0]).len(), 2);
    nodes[1].etcdctl_ok(&["put", "after-shrink", "yes"]);
    assert_eq!(nodes[0].etcdctl_ok(&["get", "after-shrink", "--print-value-only"]), "yes\n");
}
