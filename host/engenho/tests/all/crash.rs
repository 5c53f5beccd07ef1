//! Goal: every write the store acknowledged survives `kill -9` at any
//! moment, of a lone node or of a cluster's leader. Method: concurrent gRPC
//! clients stream writes at a real node; the node is killed at a random
//! moment, restarted, and every acknowledged write is read back; repeated
//! over many rounds on the same data directories.

use std::collections::BTreeMap;
use std::time::Duration;

use engenho_api::etcd::proto::etcdserverpb::{PutRequest, RangeRequest, kv_client::KvClient};
use rand::Rng;
use tonic::transport::Channel;

use crate::support::{EngenhoNode, wait_for};

const ROUNDS: usize = 12;
const WRITERS: usize = 4;

/// What one writer had acknowledged when the node died.
#[derive(Default)]
struct Acknowledged {
    /// Unique keys written once each.
    keys: Vec<String>,
    /// The last acknowledged value of the writer's hot key.
    hot: Option<u64>,
}

async fn write_until_failure(channel: Channel, round: usize, writer: usize, hot_start: u64) -> Acknowledged {
    let mut acknowledged = Acknowledged::default();
    let mut client = KvClient::new(channel);
    for i in 0u64.. {
        let key = format!("crash/{round}/{writer}/{i}");
        let unique = tonic::Request::new(PutRequest {
            key: key.clone().into_bytes(),
            value: key.clone().into_bytes(),
            ..PutRequest::default()
        });
        if client.put(unique).await.is_err() {
            return acknowledged;
        }
        acknowledged.keys.push(key);
        let counter = hot_start + i + 1;
        let hot = PutRequest {
            key: format!("hot/{writer}").into_bytes(),
            value: counter.to_string().into_bytes(),
            ..PutRequest::default()
        };
        if client.put(tonic::Request::new(hot)).await.is_err() {
            return acknowledged;
        }
        acknowledged.hot = Some(counter);
    }
    unreachable!("the loop ends at the first failed write")
}

/// Every writer's key and value on a node: a linearizable read, or the
/// node's own applied state when `serializable`.
async fn read_all(channel: Channel, serializable: bool) -> BTreeMap<String, String> {
    let mut client = KvClient::new(channel);
    let request = RangeRequest { key: b"0".to_vec(), range_end: vec![0], serializable, ..RangeRequest::default() };
    let response = client.range(request).await.expect("range after restart").into_inner();
    // The writers' keys; the node's own (objects, components) start with `/`.
    response
        .kvs
        .into_iter()
        .filter(|kv| !kv.key.starts_with(b"/"))
        .map(|kv| (String::from_utf8(kv.key).expect("utf-8 key"), String::from_utf8(kv.value).expect("utf-8 value")))
        .collect()
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "crashy");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let mut ledger = Ledger::default();
    for round in 0..ROUNDS {
        node.start_ready(&[]);
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let start = ledger.hot_floor.get(&writer).copied().unwrap_or(0);
                runtime.spawn(write_until_failure(node.etcd_channel(), round, writer, start))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(150..900)));
        node.kill();
        for (writer, task) in writers.into_iter().enumerate() {
            ledger.record(writer, runtime.block_on(task).expect("writer task"));
        }
        node.start_ready(&[]);
        let stored = runtime.block_on(read_all(node.etcd_channel(), false));
        ledger.check(&stored, &format!("round {round}"));
        node.kill();
    }
    assert!(ledger.keys.len() > ROUNDS * WRITERS, "the writers got writes acknowledged ({})", ledger.keys.len());
}

/// Writes acknowledged over the rounds, and checks of what a node stores.
#[derive(Default)]
struct Ledger {
    keys: Vec<String>,
    hot_floor: BTreeMap<usize, u64>,
}

impl Ledger {
    fn record(&mut self, writer: usize, acknowledged: Acknowledged) {
        self.keys.extend(acknowledged.keys);
        if let Some(hot) = acknowledged.hot {
            self.hot_floor.insert(writer, hot);
        }
    }

    /// Panics unless `stored` holds every acknowledged write; raises each
    /// hot key's floor to what is stored (an unacknowledged write may have
    /// committed too).
    fn check(&mut self, stored: &BTreeMap<String, String>, what: &str) {
        for key in &self.keys {
            assert_eq!(stored.get(key), Some(key), "acknowledged write {key} lost ({what})");
        }
        for (writer, floor) in self.hot_floor.clone() {
            let value: u64 = stored[&format!("hot/{writer}")].parse().expect("counter");
            assert!(value == floor || value == floor + 1, "hot/{writer} is {value}, acknowledged {floor} ({what})");
            self.hot_floor.insert(writer, value);
        }
    }
}

#[test]
fn acknowledged_writes_survive_the_leaders_kill_9() {
    const CLUSTER_ROUNDS: usize = 4;
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes: Vec<EngenhoNode> = Vec::new();
    for name in ["c1", "c2", "c3"] {
        let mut node = EngenhoNode::new(root.path(), name);
        let mut args = nodes.first().map(EngenhoNode::join_args).unwrap_or_default();
        args.extend(["--snapshot-logs".into(), "500".into()]);
        node.start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
        nodes.push(node);
    }
    crate::support::wait_voters(&nodes[0], 3);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let mut ledger = Ledger::default();
    for round in 0..CLUSTER_ROUNDS {
        let mut leader = None;
        wait_for("a leader", Duration::from_secs(10), || {
            leader = nodes.iter().position(EngenhoNode::is_leader);
            leader.is_some()
        });
        let leader = leader.expect("a leader");
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let start = ledger.hot_floor.get(&writer).copied().unwrap_or(0);
                runtime.spawn(write_until_failure(nodes[leader].etcd_channel(), round, writer, start))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(300..1200)));
        nodes[leader].kill();
        for (writer, task) in writers.into_iter().enumerate() {
            ledger.record(writer, runtime.block_on(task).expect("writer task"));
        }
        let survivors: Vec<usize> = (0..nodes.len()).filter(|&i| i != leader).collect();
        wait_for("a new leader", Duration::from_secs(10), || survivors.iter().any(|&i| nodes[i].is_leader()));
        let stored = runtime.block_on(read_all(nodes[survivors[0]].etcd_channel(), false));
        ledger.check(&stored, &format!("cluster after round {round}"));

        nodes[leader].start_ready(&["--snapshot-logs", "500"]);
        let newest = stored.clone();
        wait_for("the old leader to catch up", Duration::from_secs(20), || {
            let local = runtime.block_on(read_all(nodes[leader].etcd_channel(), true));
            newest.iter().all(|(key, value)| local.get(key) == Some(value))
        });
    }
    assert!(
        ledger.keys.len() > CLUSTER_ROUNDS * WRITERS,
        "the writers got writes acknowledged ({})",
        ledger.keys.len()
    );
}
