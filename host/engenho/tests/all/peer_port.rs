//! Goal: the peer port carries raft, forwarded requests and joins for the
//! cluster's own nodes only, bounds what any client can make it hold, and
//! joins need both the secret and the CA the token pins. Method: real
//! nodes; `openssl s_client` without a certificate and with one from
//! another CA; TLS clients with the node's own certificate, a worker's
//! and the etcd client certificate sending malformed frames; plain TCP; a flood of
//! idle connections; joining nodes with wrong tokens.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use engenho_pki::{ClusterCa, Identity, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::support::{EngenhoNode, openssl_s_client, wait_for};

const RAFT_ALPN: &[u8] = b"engenho-raft/1";

/// Opens a TLS connection to the peer port with `identity` and ALPN
/// `alpn`, sends `bytes`, and returns what came back before the server
/// closed the connection, and how long that took.
async fn exchange(addr: &str, identity: &Identity, ca: &Path, alpn: &[u8], bytes: &[u8]) -> (Vec<u8>, Duration) {
    let ca = engenho_pki::load_certificate(ca).expect("CA");
    let config = engenho_pki::mutual_client_config(identity, &ca, &[alpn]).expect("client configuration");
    let mut stream =
        engenho_pki::dial_tls(&TlsConnector::from(config), addr, Duration::from_secs(5)).await.expect("handshake");
    stream.write_all(bytes).await.expect("send");
    stream.flush().await.expect("flush");
    let sent = Instant::now();
    let mut answer = Vec::new();
    // The server closes without close_notify: that ends the read too.
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection");
    (answer, sent.elapsed())
}

fn frame(announced: u32, body: &[u8]) -> Vec<u8> {
    let mut frame = announced.to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

#[test]
fn the_peer_port_serves_the_clusters_nodes_only() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "guarded");
    node.start_ready(&[]);
    node.etcdctl_ok(&["put", "before", "1"]);
    let pki = node.pki();
    let ca = pki.join("ca.crt");

    let anonymous = openssl_s_client(&node.peer, "engenho-raft/1", &ca, None);
    assert!(anonymous.contains("alert certificate required"), "no client certificate: {anonymous}");
    let other_ca = ClusterCa::create(&root.path().join("other-pki")).expect("another CA");
    let stranger = other_ca
        .issue(&Profile::Node { name: "guarded".into(), ip: "127.0.0.1".parse().expect("ip") })
        .expect("a node certificate of another cluster");
    let (certificate, key) = (root.path().join("stranger.crt"), root.path().join("stranger.key"));
    stranger.write(&certificate, &key).expect("write");
    let foreign = openssl_s_client(&node.peer, "engenho-raft/1", &ca, Some((&certificate, &key)));
    assert!(foreign.contains("SSL alert number"), "a certificate of another CA: {foreign}");

    let mut plain = TcpStream::connect(&node.peer).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    plain.write_all(&frame(8, &[0xff; 8])).expect("send");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(answer.is_empty() || answer[0] == 0x15, "plain TCP gets at most a TLS alert: {answer:?}");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client =
        Identity::load(&pki.join("etcd-client.crt"), &pki.join("etcd-client.key")).expect("load").expect("some");
    let (answer, _) = runtime.block_on(exchange(&node.peer, &client, &ca, RAFT_ALPN, &frame(8, &[0; 8])));
    assert!(answer.is_empty(), "a client certificate that is not a node's carries no raft frame");
    assert!(node.log_text().contains("client certificate is not a node's"));

    // A worker's certificate of this very cluster names a node, and still
    // carries neither raft nor gRPC: a worker holds no replica.
    let cluster_ca = ClusterCa::load(&pki).expect("load").expect("the node holds the CA");
    let worker = cluster_ca
        .issue(&Profile::Worker { name: "worker".into(), ip: "127.0.0.1".parse().expect("ip") })
        .expect("a worker's certificate");
    let (answer, _) = runtime.block_on(exchange(&node.peer, &worker, &ca, RAFT_ALPN, &frame(8, &[0; 8])));
    assert!(answer.is_empty(), "a worker's certificate carries no raft frame");
    let (answer, _) = runtime.block_on(exchange(&node.peer, &worker, &ca, b"h2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    assert!(answer.is_empty(), "a worker's certificate carries no gRPC");
    assert!(node.log_text().contains("is not a node's, or is a worker's"));

    let member = Identity::load(&pki.join("node.crt"), &pki.join("node.key")).expect("load").expect("some");
    let (answer, _) = runtime.block_on(exchange(&node.peer, &member, &ca, RAFT_ALPN, &frame(u32::MAX, &[])));
    assert!(answer.is_empty(), "a frame over the limit is refused unanswered");
    let (answer, _) = runtime.block_on(exchange(&node.peer, &member, &ca, RAFT_ALPN, &frame(8, &[0xff; 8])));
    assert!(answer.is_empty(), "an undecodable frame is refused unanswered");
    let mut nested = (1u64 << 60).to_le_bytes().to_vec();
    nested.extend_from_slice(&[0; 8]);
    let (answer, _) = runtime.block_on(exchange(&node.peer, &member, &ca, RAFT_ALPN, &frame(16, &nested)));
    assert!(answer.is_empty(), "a frame announcing more than it holds is refused unanswered");
    let (answer, idle) = runtime.block_on(exchange(&node.peer, &member, &ca, RAFT_ALPN, &[]));
    assert!(answer.is_empty());
    assert!(idle < Duration::from_secs(15), "an idle raft connection is closed after a few seconds, not {idle:?}");

    node.etcdctl_ok(&["put", "after", "2"]);
    assert_eq!(node.local_value("before").as_deref(), Some("1"));
    assert_eq!(node.local_value("after").as_deref(), Some("2"));
    node.stop();
}

#[test]
fn idle_connections_neither_stop_raft_nor_hold_the_port() {
    const IDLE_CONNECTIONS: usize = 1_500;
    let root = tempfile::tempdir().expect("temporary directory");
    let mut first = EngenhoNode::new(root.path(), "flooded-1");
    first.start_ready(&[]);
    let mut second = EngenhoNode::new(root.path(), "flooded-2");
    let join = first.join_args();
    second.start_ready(&join.iter().map(String::as_str).collect::<Vec<_>>());

    let idle: Vec<TcpStream> = [&first, &second]
        .iter()
        .flat_map(|node| (0..IDLE_CONNECTIONS).map(|_| TcpStream::connect(&node.peer).expect("connect")))
        .collect();
    // Raft must go on reaching the learner past the idle connections.
    for i in 0..20 {
        first.etcdctl_ok(&["put", &format!("flooded/{i}"), "v"]);
    }
    assert_eq!(second.etcdctl_ok(&["get", "flooded/19", "--print-value-only"]), "v\n");

    let pki = first.pki();
    let member = Identity::load(&pki.join("node.crt"), &pki.join("node.key")).expect("load").expect("some");
    let ca = engenho_pki::load_certificate(&pki.join("ca.crt")).expect("CA");
    let connector = TlsConnector::from(engenho_pki::mutual_client_config(&member, &ca, &[RAFT_ALPN]).expect("config"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let flooded_at = Instant::now();
    wait_for("a node's handshake past the idle connections", Duration::from_secs(20), || {
        runtime.block_on(engenho_pki::dial_tls(&connector, &first.peer, Duration::from_secs(2))).is_ok()
    });
    assert!(flooded_at.elapsed() < Duration::from_secs(12), "the idle connections held the port too long");
    drop(idle);
    first.stop();
    second.stop();
}

#[test]
fn joining_needs_the_secret_and_the_pinned_ca() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut seed = EngenhoNode::new(root.path(), "seed");
    seed.start_ready(&[]);
    let token = std::fs::read_to_string(seed.token_file()).expect("the join token");
    let (hash, secret) =
        token.trim().strip_prefix("K10").and_then(|t| t.split_once("::")).expect("K10<hash>::<secret>");
    let attempt_at = |name: &str, address: &str, token: &str| {
        let file = root.path().join(format!("{name}.token"));
        std::fs::write(&file, token).expect("token file");
        let mut node = EngenhoNode::new(root.path(), name);
        node.start(&["--join", address, "--token-file", file.to_str().expect("utf-8")]);
        assert!(!node.wait_exit().success(), "{name} must not join");
        node.log_text()
    };
    let attempt = |name: &str, token: &str| attempt_at(name, &seed.peer, token);

    let wrong_secret = attempt("wrong-secret", &format!("K10{hash}::not-the-secret"));
    assert!(wrong_secret.contains("the join secret does not match this cluster's"), "{wrong_secret}");
    let refusals = || seed.log_text().lines().filter(|line| line.contains("join refused")).count();
    assert_eq!(refusals(), 1, "the seed refused the wrong secret");

    let other_ca = ClusterCa::create(&root.path().join("other-pki")).expect("another CA");
    let wrong_ca = attempt("wrong-ca", &format!("K10{}::{secret}", other_ca.hash()));
    assert!(wrong_ca.contains("is not a member of the cluster the join token names"), "{wrong_ca}");
    assert_eq!(refusals(), 1, "the secret was never sent to it");
    let bare = attempt("bare-secret", secret);
    assert!(bare.contains("malformed join token"), "{bare}");
    // Nothing listens there: the node keeps dialing for a while, then says
    // so (not that the address is of another cluster).
    let started = Instant::now();
    let nobody = attempt_at("unreachable", "127.0.0.1:1", token.trim());
    assert!(nobody.contains("127.0.0.1:1 could not be reached within 10s"), "{nobody}");
    assert!(started.elapsed() < Duration::from_secs(30), "gave up in {:?}", started.elapsed());

    let mut member = EngenhoNode::new(root.path(), "member");
    let join = seed.join_args();
    member.start_ready(&join.iter().map(String::as_str).collect::<Vec<_>>());
    let pid = member.pid().expect("running");
    let command_line = std::fs::read(format!("/proc/{pid}/cmdline")).expect("command line");
    assert!(!String::from_utf8_lossy(&command_line).contains(secret), "the secret is not on the command line");
    assert_eq!(std::fs::read_to_string(member.token_file()).expect("token"), token.trim());
    assert_eq!(seed.etcdctl_ok(&["member", "list"]).lines().count(), 2);
    member.etcdctl_ok(&["put", "joined", "yes"]);
    assert_eq!(seed.etcdctl_ok(&["get", "joined", "--print-value-only"]), "yes\n");
}
