//! Goal: every write the store acknowledged survives `kill -9` at any
//! moment. Method: concurrent gRPC clients stream writes at a real node;
//! the node is killed at a random moment, restarted, and every acknowledged
//! write is read back; repeated over many rounds on one data directory.

use std::collections::BTreeMap;
use std::time::Duration;

use engenho_api::etcd::proto::etcdserverpb::{PutRequest, RangeRequest, kv_client::KvClient};
use rand::Rng;

use crate::support::EngenhoNode;

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

async fn write_until_failure(endpoint: String, round: usize, writer: usize, hot_start: u64) -> Acknowledged {
    let mut acknowledged = Acknowledged::default();
    let Ok(mut client) = KvClient::connect(format!("http://{endpoint}")).await else { return acknowledged };
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

async fn read_all(endpoint: &str) -> BTreeMap<String, String> {
    let mut client = KvClient::connect(format!("http://{endpoint}")).await.expect("connect after restart");
    let request = RangeRequest { key: vec![0], range_end: vec![0], ..RangeRequest::default() };
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
    let mut expected_keys: Vec<String> = Vec::new();
    let mut hot_floor: BTreeMap<usize, u64> = BTreeMap::new();
    let mut total = 0;
    for round in 0..ROUNDS {
        node.start_ready(&[]);
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let start = hot_floor.get(&writer).copied().unwrap_or(0);
                runtime.spawn(write_until_failure(node.etcd.clone(), round, writer, start))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(150..900)));
        node.kill();
        for (writer, task) in writers.into_iter().enumerate() {
            let acknowledged = runtime.block_on(task).expect("writer task");
            total += acknowledged.keys.len();
            expected_keys.extend(acknowledged.keys);
            if let Some(hot) = acknowledged.hot {
                hot_floor.insert(writer, hot);
            }
        }
        node.start_ready(&[]);
        let stored = runtime.block_on(read_all(&node.etcd));
        for key in &expected_keys {
            assert_eq!(stored.get(key), Some(key), "acknowledged write {key} lost in round {round}");
        }
        for (writer, floor) in hot_floor.clone() {
            let value: u64 = stored[&format!("hot/{writer}")].parse().expect("counter");
            assert!(value == floor || value == floor + 1, "hot/{writer} is {value}, acknowledged {floor}");
            hot_floor.insert(writer, value);
        }
        node.kill();
    }
    assert!(total > ROUNDS * WRITERS, "the writers got writes acknowledged ({total})");
}
