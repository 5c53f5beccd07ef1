//! Goal: a single engenho node serves etcd's v3 API the way etcd does, as
//! seen by the real `etcdctl` 3.4. Method: start `engenho up`, drive it with
//! etcdctl, and compare outputs with what etcd prints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{EngenhoNode, wait_for};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("etcdctl json output")
}

fn single_node() -> (tempfile::TempDir, EngenhoNode) {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "solo");
    node.start_ready(&[]);
    (root, node)
}

#[test]
fn put_get_delete_with_prefixes_and_revisions() {
    let (_root, node) = single_node();
    assert_eq!(node.etcdctl_ok(&["put", "app/a", "1"]), "OK\n");
    node.etcdctl_ok(&["put", "app/b", "2"]);
    node.etcdctl_ok(&["put", "apple", "3"]);
    let first = json(&node.etcdctl_ok(&["get", "app/a", "-w", "json"]));
    let first_revision = first["kvs"][0]["mod_revision"].as_i64().expect("mod revision");
    node.etcdctl_ok(&["put", "app/a", "10"]);

    assert_eq!(node.etcdctl_ok(&["get", "app/", "--prefix"]), "app/a\n10\napp/b\n2\n");
    assert_eq!(node.etcdctl_ok(&["get", "app", "--prefix", "--keys-only"]), "app/a\n\napp/b\n\napple\n\n");
    let limited = json(&node.etcdctl_ok(&["get", "app/", "--prefix", "--limit=1", "-w", "json"]));
    assert_eq!((limited["count"].as_i64(), limited["more"].as_bool()), (Some(2), Some(true)), "{limited}");
    assert_eq!(node.etcdctl_ok(&["get", "app/", "--prefix", "--limit=1"]), "app/a\n10\n");
    assert_eq!(node.etcdctl_ok(&["get", "app/a", &format!("--rev={first_revision}")]), "app/a\n1\n");
    assert_eq!(
        node.etcdctl_ok(&["get", "app/", "--prefix", "--sort-by=VALUE", "--order=DESCEND"]),
        "app/b\n2\napp/a\n10\n"
    );
    assert_eq!(node.etcdctl_ok(&["get", "app/a", "app/c"]), "app/a\n10\napp/b\n2\n", "explicit range end");

    let latest = json(&node.etcdctl_ok(&["get", "app/a", "-w", "json"]));
    let kv = &latest["kvs"][0];
    assert_eq!(kv["version"], 2);
    assert_eq!(kv["create_revision"].as_i64(), Some(first_revision));

    assert_eq!(node.etcdctl_ok(&["del", "app/", "--prefix"]), "2\n");
    assert_eq!(node.etcdctl_ok(&["get", "app/", "--prefix"]), "");
    assert_eq!(node.etcdctl_ok(&["del", "apple", "--prev-kv"]), "1\napple\n3\n");
    assert_eq!(
        node.etcdctl_ok(&["get", "app/a", &format!("--rev={first_revision}")]),
        "app/a\n1\n",
        "history outlives deletion"
    );
}

#[test]
fn txn_compares_and_branches_atomically() {
    let (_root, node) = single_node();
    node.etcdctl_ok(&["put", "cfg", "v1"]);
    let run_txn = |script: &str| {
        let output = crate::support::etcdctl(&node, &["txn"], Some(script.as_bytes()));
        assert!(output.status.success(), "txn failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let succeeded = run_txn("value(\"cfg\") = \"v1\"\n\nput cfg v2\nput cfg-log changed\n\nput cfg-log unchanged\n\n");
    assert_eq!(succeeded, "SUCCESS\n\nOK\n\nOK\n");
    let failed = run_txn("value(\"cfg\") = \"v1\"\n\nput cfg v3\n\nget cfg\n\n");
    assert_eq!(failed, "FAILURE\n\ncfg\nv2\n");
    let missing = run_txn("version(\"nope\") = \"0\"\n\nput nope created\n\n\n");
    assert_eq!(missing, "SUCCESS\n\nOK\n");
    assert_eq!(node.etcdctl_ok(&["get", "cfg-log", "--print-value-only"]), "changed\n");
    // The node's own loops write too, so the store's revision may move:
    // what the refused txn named must not.
    let cfg_before = json(&node.etcdctl_ok(&["get", "cfg", "-w", "json"]))["kvs"].clone();
    let duplicate = crate::support::etcdctl(&node, &["txn"], Some(b"\nput d 1\nput d 2\nput cfg v4\n\n\n"));
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("duplicate key given in txn request"));
    let cfg_after = json(&node.etcdctl_ok(&["get", "cfg", "-w", "json"]))["kvs"].clone();
    assert_eq!(cfg_before, cfg_after, "a refused txn changes nothing");
    assert_eq!(node.etcdctl_ok(&["get", "d"]), "", "a refused txn writes none of its keys");
}

#[test]
fn only_clients_with_a_certificate_of_the_cluster_are_served() {
    let (_root, node) = single_node();
    node.etcdctl_ok(&["put", "secret", "value"]);
    let pki = node.pki();
    let anonymous = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://{}", node.etcd))
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .args(["--dial-timeout=2s", "--command-timeout=4s", "get", "secret"])
        .output()
        .expect("etcdctl");
    assert!(!anonymous.status.success(), "no client certificate: refused");
    assert!(anonymous.stdout.is_empty(), "nothing read without a certificate");
    let plaintext = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=http://{}", node.etcd))
        .args(["--dial-timeout=2s", "--command-timeout=4s", "get", "secret"])
        .output()
        .expect("etcdctl");
    assert!(!plaintext.status.success() && plaintext.stdout.is_empty(), "plaintext: refused");
    let handshake = crate::support::openssl_s_client(&node.etcd, "h2", &pki.join("ca.crt"), None);
    assert!(handshake.contains("alert certificate required"), "refused at the handshake: {handshake}");
    assert_eq!(node.etcdctl_ok(&["get", "secret", "--print-value-only"]), "value\n");
}

/// Reads lines from a running `etcdctl watch` until `expected` lines came.
fn watch_lines(node: &EngenhoNode, args: &[&str], expected: usize, act: impl FnOnce()) -> Vec<String> {
    let mut child = crate::support::etcdctl_command(node)
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcdctl watch");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    act();
    let mut lines = Vec::new();
    while lines.len() < expected {
        match receiver.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn watch_streams_live_and_past_events_with_prev_kv() {
    let (_root, node) = single_node();
    node.etcdctl_ok(&["put", "w/a", "0"]);
    // The key's own revision: the node may write other keys meanwhile.
    let got = json(&node.etcdctl_ok(&["get", "w/a", "-w", "json"]));
    let start = got["kvs"][0]["mod_revision"].as_i64().expect("revision");
    let live = watch_lines(&node, &["w/", "--prefix", "--prev-kv"], 10, || {
        node.etcdctl_ok(&["put", "w/a", "1"]);
        node.etcdctl_ok(&["put", "x/ignored", "1"]);
        node.etcdctl_ok(&["del", "w/a"]);
    });
    assert_eq!(live, ["PUT", "w/a", "0", "w/a", "1", "DELETE", "w/a", "1", "w/a", ""]);
    let past = watch_lines(&node, &["w/a", &format!("--rev={start}")], 9, || {});
    assert_eq!(past, ["PUT", "w/a", "0", "PUT", "w/a", "1", "DELETE", "w/a", ""]);
}

#[test]
fn leases_are_kept_alive_and_expire_with_their_keys() {
    let (_root, node) = single_node();
    let granted = node.etcdctl_ok(&["lease", "grant", "3"]);
    let id = granted.split_whitespace().nth(1).expect("lease id").to_owned();
    assert_eq!(granted, format!("lease {id} granted with TTL(3s)\n"));
    node.etcdctl_ok(&["put", "session", "alive", &format!("--lease={id}")]);
    node.etcdctl_ok(&["put", "plain", "stays"]);
    let ttl = node.etcdctl_ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.contains("granted with TTL(3s)") && ttl.contains("attached keys([session])"), "{ttl}");
    assert!(node.etcdctl_ok(&["lease", "list"]).contains(&id));

    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(1));
        let renewed = node.etcdctl_ok(&["lease", "keep-alive", "--once", &id]);
        assert_eq!(renewed, format!("lease {id} keepalived with TTL(3)\n"));
    }
    assert_eq!(node.local_value("session").as_deref(), Some("alive"), "kept alive past its first TTL");

    wait_for("the lease to expire", Duration::from_secs(10), || node.local_value("session").is_none());
    assert_eq!(node.etcdctl_ok(&["lease", "timetolive", &id]), format!("lease {id} already expired\n"));
    assert_eq!(node.local_value("plain").as_deref(), Some("stays"));
    let revoked = node.etcdctl_ok(&["lease", "grant", "60"]);
    let revoked_id = revoked.split_whitespace().nth(1).expect("lease id").to_owned();
    node.etcdctl_ok(&["put", "doomed", "x", &format!("--lease={revoked_id}")]);
    node.etcdctl_ok(&["lease", "revoke", &revoked_id]);
    assert_eq!(node.local_value("doomed"), None);
}

#[test]
fn compaction_drops_history_and_cancels_stale_watches() {
    let (_root, node) = single_node();
    // The node's own loops write too: each put's revision is read back.
    let revisions: Vec<i64> = (1..=5)
        .map(|value| {
            let put = json(&node.etcdctl_ok(&["put", "k", &value.to_string(), "-w", "json"]));
            put["header"]["revision"].as_i64().expect("revision")
        })
        .collect();
    let (third, fourth) = (revisions[2], revisions[3]);
    assert_eq!(node.etcdctl_ok(&["get", "k", &format!("--rev={third}"), "--print-value-only"]), "3\n");
    assert_eq!(node.etcdctl_ok(&["compact", &fourth.to_string()]), format!("compacted revision {fourth}\n"));
    let stale = node.etcdctl(&["get", "k", &format!("--rev={third}")]);
    assert!(String::from_utf8_lossy(&stale.stderr).contains("required revision has been compacted"));
    assert_eq!(node.etcdctl_ok(&["get", "k", &format!("--rev={fourth}"), "--print-value-only"]), "4\n");
    let watch = node.etcdctl(&["watch", "k", &format!("--rev={third}")]);
    let printed = format!("{}{}", String::from_utf8_lossy(&watch.stdout), String::from_utf8_lossy(&watch.stderr));
    assert!(printed.contains("required revision has been compacted"), "{printed}");
}

#[test]
fn status_and_members_describe_the_node_and_restart_keeps_data() {
    let (_root, mut node) = single_node();
    let status = json(&node.etcdctl_ok(&["endpoint", "status", "-w", "json"]));
    let status = &status[0]["Status"];
    assert_eq!(status["leader"], status["header"]["member_id"], "a single node leads");
    assert_eq!(status["version"], "3.4.0");
    let members = json(&node.etcdctl_ok(&["member", "list", "-w", "json"]));
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(members["members"][0]["name"], "solo");
    let health = node.etcdctl(&["endpoint", "health"]);
    assert!(health.status.success());
    let printed = format!("{}{}", String::from_utf8_lossy(&health.stdout), String::from_utf8_lossy(&health.stderr));
    assert!(printed.contains("is healthy"), "{printed}");

    node.etcdctl_ok(&["put", "durable", "yes"]);
    let before = json(&node.etcdctl_ok(&["get", "durable", "-w", "json"]));
    node.stop();
    node.start_ready(&[]);
    let after = json(&node.etcdctl_ok(&["get", "durable", "-w", "json"]));
    assert_eq!(before["kvs"], after["kvs"], "the key keeps its value and revisions");
    // A start writes (the API server registers its address again), so the
    // store's revision may only have grown.
    let revision = |reply: &serde_json::Value| reply["header"]["revision"].as_i64().expect("a revision");
    assert!(revision(&after) >= revision(&before), "{before} then {after}");
    assert_eq!(before["header"]["member_id"], after["header"]["member_id"], "the node keeps its identity");
}

#[test]
fn history_is_bounded_by_automatic_compaction() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "bounded");
    node.start_ready(&["--history-revisions", "5", "--compaction-interval", "1"]);
    for value in 0..20 {
        node.etcdctl_ok(&["put", "churn", &value.to_string()]);
    }
    let revision =
        json(&node.etcdctl_ok(&["get", "churn", "-w", "json"]))["header"]["revision"].as_i64().expect("revision");
    wait_for("automatic compaction", Duration::from_secs(10), || {
        let old = node.etcdctl(&["get", "churn", &format!("--rev={}", revision - 10)]);
        String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted")
    });
    // The node's own writers (its Lease, its controllers) move the head on
    // meanwhile: the kept window ends at the head as it is now, and every
    // revision from the last put on holds its value.
    let head =
        json(&node.etcdctl_ok(&["get", "churn", "-w", "json"]))["header"]["revision"].as_i64().expect("revision");
    let kept = revision.max(head - 3);
    assert_eq!(node.etcdctl_ok(&["get", "churn", &format!("--rev={kept}"), "--print-value-only"]), "19\n");
    assert_eq!(node.etcdctl_ok(&["get", "churn", "--print-value-only"]), "19\n");
}

#[test]
fn a_node_with_open_watches_stops_on_sigterm() {
    let (_root, mut node) = single_node();
    let mut watch = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", node.etcd))
        .args(["watch", "forever"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcdctl watch");
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    node.stop();
    assert!(started.elapsed() < Duration::from_secs(15), "stopped in {:?}", started.elapsed());
    let _ = watch.kill();
    let _ = watch.wait();
}
