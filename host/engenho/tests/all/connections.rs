//! Goal: connections that never speak, or stop speaking, cannot lock real
//! clients out of the API server, and the server closes them by itself,
//! while a client's idle keep-alive connection stays usable for as long as
//! clients pool one.
//! Method: a real node; 1,500 silent TCP connections from this test, then a
//! real `kubectl`; TLS connections (this test's own rustls client) that send
//! nothing, or go quiet after one request, must be closed by the server,
//! the latter only after its idle timeout.

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{EngenhoNode, Kubectl};

/// Silent connections the flood opens: more than the server's pending
/// handshake places.
const FLOOD_CONNECTIONS: usize = 1_500;

/// Threads that open the flood's connections, so that it is opened in
/// well under a second even when a few connects are retried.
const FLOOD_THREADS: usize = 15;

/// How long `kubectl get ns` may take behind the flood.
const KUBECTL_BEHIND_FLOOD_MAX: Duration = Duration::from_secs(5);

/// How long from the start of the flood until `kubectl get ns` has its
/// answer: opening the flood (a few of its connects are retried after a
/// second when the listen backlog overflows on a loaded machine) and the
/// command.
const LOCKED_OUT_MAX: Duration = Duration::from_secs(9);

/// How long the server may take to close a connection that never sent a
/// byte: its handshake timeout (3 s) and a margin.
const SILENT_CLOSE_MAX: Duration = Duration::from_secs(6);

#[test]
fn a_flood_of_silent_connections_neither_locks_kubectl_out_nor_stays_open() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "conn-flood");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok(&["get", "ns"]);

    let flood_started = Instant::now();
    let flood = open_silent_connections(&node.api);
    let flood_took = flood_started.elapsed();
    let kubectl_started = Instant::now();
    let namespaces = kubectl.ok(&["get", "ns"]);
    let (kubectl_took, locked_out) = (kubectl_started.elapsed(), flood_started.elapsed());
    assert!(namespaces.contains("kube-system"), "{namespaces}");
    assert!(
        kubectl_took < KUBECTL_BEHIND_FLOOD_MAX && locked_out < LOCKED_OUT_MAX,
        "opening {FLOOD_CONNECTIONS} silent connections took {flood_took:?}, kubectl then took {kubectl_took:?}"
    );

    for (index, (opened, mut stream)) in flood.into_iter().enumerate() {
        let left = SILENT_CLOSE_MAX.saturating_sub(opened.elapsed()).max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).expect("read timeout");
        let mut buffer = [0; 16];
        match stream.read(&mut buffer) {
            Ok(0) => {}
            Ok(read) => panic!("silent connection {index} was sent {read} bytes"),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(error) => panic!("silent connection {index} still open after {:?}: {error}", opened.elapsed()),
        }
    }
    kubectl.ok(&["get", "ns"]);
    node.stop();
}

/// Opens [`FLOOD_CONNECTIONS`] TCP connections to `address` from
/// [`FLOOD_THREADS`] threads at once; each comes with when it was opened.
fn open_silent_connections(address: &str) -> Vec<(Instant, TcpStream)> {
    let openers: Vec<_> = (0..FLOOD_THREADS)
        .map(|_| {
            let address = address.to_owned();
            std::thread::spawn(move || {
                (0..FLOOD_CONNECTIONS / FLOOD_THREADS)
                    .map(|_| {
                        let stream = TcpStream::connect(&address).expect("connect to the API");
                        (Instant::now(), stream)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    openers.into_iter().flat_map(|opener| opener.join().expect("an opener thread")).collect()
}

/// A TLS client that trusts the node's cluster CA and offers `alpn`.
fn tls_connector(node: &EngenhoNode, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let ca = CertificateDer::from_pem_file(node.dir.join("pki/ca.crt")).expect("the cluster CA");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("a CA certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// How long a keep-alive connection stays quiet in the test that it is kept:
/// longer than the 5 s a new connection has to send its first request.
const KEEP_ALIVE_QUIET: Duration = Duration::from_secs(8);

/// The least time a connection with no request in flight is kept: the
/// server's idle timeout (120 s) less a margin, beyond the 90 s clients
/// pool idle connections.
const IDLE_OPEN_MIN: Duration = Duration::from_secs(110);

/// The most time the server may take to close a connection with no request
/// in flight: its idle timeout and the shutdown grace, with a margin.
const IDLE_CLOSE_MAX: Duration = Duration::from_secs(135);

/// Reads one HTTP/1.1 answer to `GET /healthz` (its body `ok`) within
/// `limit`, leaving the connection open.
async fn read_answer(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>, limit: Duration) -> String {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    while !received.ends_with(b"ok") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) => panic!("closed before the answer ended: {}", String::from_utf8_lossy(&received)),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Ok(Err(error)) => panic!("reading the answer: {error}"),
            Err(_) => panic!("no whole answer within {limit:?}: {}", String::from_utf8_lossy(&received)),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Reads until the server closes the connection; returns how long that took
/// and what was read.
async fn read_until_closed(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    limit: Duration,
) -> (Duration, String) {
    let (took, received) = read_bytes_until_closed(stream, limit).await;
    (took, String::from_utf8_lossy(&received).into_owned())
}

/// Reads until the server closes the connection (within `limit` in all);
/// returns how long that took and the bytes read.
async fn read_bytes_until_closed(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    limit: Duration,
) -> (Duration, Vec<u8>) {
    read_answering(stream, limit, false).await
}

/// Reads HTTP/2 frames as [`read_bytes_until_closed`] does, answering each
/// PING as a client's HTTP/2 stack does.
async fn read_frames_answering_pings(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    limit: Duration,
) -> (Duration, Vec<u8>) {
    read_answering(stream, limit, true).await
}

async fn read_answering(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    limit: Duration,
    answer_pings: bool,
) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    let mut parsed = 0;
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (started.elapsed(), received),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => panic!("connection still open after {limit:?}; read {}", String::from_utf8_lossy(&received)),
        }
        while let Some(header) = received.get(parsed..parsed + 9).filter(|_| answer_pings) {
            let length = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let (kind, flags) = (header[3], header[4]);
            let Some(payload) = received.get(parsed + 9..parsed + 9 + length) else { break };
            if kind == PING && flags & PING_ACK == 0 {
                let mut ack = vec![0, 0, 8, PING, PING_ACK, 0, 0, 0, 0];
                ack.extend_from_slice(payload);
                stream.write_all(&ack).await.expect("answer a PING");
            }
            parsed += 9 + length;
        }
    }
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
fn http2_preface() -> Vec<u8> {
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    bytes
}

/// A HEADERS frame on stream 1 for `GET path` that ends the stream, with
/// `authorization` if given (HPACK: indexed `:method GET` and `:scheme
/// https`, literals with indexed names, no Huffman coding; each value
/// shorter than 127 bytes).
fn http2_get(path: &str, authorization: Option<&str>) -> Vec<u8> {
    let literal = |block: &mut Vec<u8>, name_index: &[u8], value: &str| {
        block.extend_from_slice(name_index);
        block.push(u8::try_from(value.len()).ok().filter(|l| *l < 127).expect("a short value"));
        block.extend_from_slice(value.as_bytes());
    };
    let mut block = vec![0x82, 0x87];
    literal(&mut block, &[0x04], path);
    literal(&mut block, &[0x01], "127.0.0.1");
    if let Some(authorization) = authorization {
        literal(&mut block, &[0x0f, 0x08], authorization);
    }
    let length = u8::try_from(block.len()).expect("a short header block");
    let mut frame = vec![0, 0, length, 1, 0x05, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    frame
}

/// The types of the HTTP/2 frames in `bytes`, in order.
fn http2_frame_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        types.push(rest[3]);
        rest = rest.get(9 + length..).unwrap_or_default();
    }
    types
}

/// HTTP/2 frame types.
const HEADERS: u8 = 1;
const GOAWAY: u8 = 7;
const PING: u8 = 6;

/// The flag of a PING frame that answers one.
const PING_ACK: u8 = 1;

#[test]
fn http2_connections_with_no_open_stream_are_closed_by_the_server() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "conn-h2-idle");
    node.start_ready(&[]);
    let connector = tls_connector(&node, b"h2");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let connect = || async {
            let tcp = tokio::net::TcpStream::connect(&node.api).await.expect("connect to the API");
            let name = ServerName::try_from("127.0.0.1").expect("a server name");
            connector.connect(name.to_owned(), tcp).await.expect("TLS handshake")
        };
        // The preface and no request: closed after the header-read timeout.
        let mut silent = connect().await;
        silent.write_all(&http2_preface()).await.expect("write");
        // One request answered, then no stream open: closed after the idle
        // timeout (120 s), with a GOAWAY first; this client answers the
        // server's PINGs, as HTTP/2 clients do, so the connection stays up
        // until then.
        let mut served = connect().await;
        served.write_all(&http2_preface()).await.expect("write");
        served.write_all(&http2_get("/healthz", None)).await.expect("write");

        let (silent_took, silent_frames) = read_bytes_until_closed(&mut silent, Duration::from_secs(10)).await;
        assert!(silent_took < Duration::from_secs(8), "an HTTP/2 connection without requests stayed {silent_took:?}");
        assert!(http2_frame_types(&silent_frames).contains(&GOAWAY), "{silent_frames:?}");
        let (served_took, served_frames) = read_frames_answering_pings(&mut served, IDLE_CLOSE_MAX).await;
        let types = http2_frame_types(&served_frames);
        let answered = types.iter().position(|t| *t == HEADERS);
        let going_away = types.iter().rposition(|t| *t == GOAWAY);
        assert!(answered.is_some() && going_away > answered, "frames {types:?}");
        assert!(served_took >= IDLE_OPEN_MIN, "closed before clients let it go: after {served_took:?}");
    });
    node.stop();
}

#[test]
fn tls_connections_are_closed_without_requests_and_kept_between_them() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "conn-idle");
    node.start_ready(&[]);
    let connector = tls_connector(&node, b"http/1.1");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let connect = || async {
            let tcp = tokio::net::TcpStream::connect(&node.api).await.expect("connect to the API");
            let name = ServerName::try_from("127.0.0.1").expect("a server name");
            connector.connect(name.to_owned(), tcp).await.expect("TLS handshake")
        };

        // Never sends a request: closed after the header-read timeout (5 s).
        let mut silent = connect().await;
        // Sends headers that never end: closed after the same timeout.
        let mut partial = connect().await;
        partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: engenho\r\n").await.expect("write");
        // One request, then quiet on a keep-alive connection for longer
        // than the first request was given: still open (clients pool idle
        // connections for 90 s), and it serves the next request.
        let mut keep_alive = connect().await;
        keep_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: engenho\r\n\r\n").await.expect("write");

        let (silent_took, _) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
        assert!(silent_took < Duration::from_secs(8), "a silent TLS connection stayed {silent_took:?}");
        let (partial_took, _) = read_until_closed(&mut partial, Duration::from_secs(10)).await;
        assert!(partial_took < Duration::from_secs(8), "a half-sent request stayed {partial_took:?}");
        let first = read_answer(&mut keep_alive, Duration::from_secs(10)).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        let mut byte = [0; 1];
        let quiet = tokio::time::timeout(KEEP_ALIVE_QUIET, keep_alive.read(&mut byte)).await;
        assert!(quiet.is_err(), "a keep-alive connection quiet for less than {KEEP_ALIVE_QUIET:?} ended: {quiet:?}");
        let second = b"GET /healthz HTTP/1.1\r\nHost: engenho\r\nConnection: close\r\n\r\n";
        keep_alive.write_all(second).await.expect("write");
        let (_, answered) = read_until_closed(&mut keep_alive, Duration::from_secs(10)).await;
        assert!(answered.starts_with("HTTP/1.1 200") && answered.ends_with("ok"), "{answered}");
    });
    node.stop();
}

#[test]
fn http2_peers_that_stop_answering_pings_are_dropped_with_their_watches() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "conn-h2-ping");
    node.start_ready(&[]);
    let token = std::fs::read_to_string(node.dir.join("admin-token")).expect("the admin token");
    let connector = tls_connector(&node, b"h2");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&node.api).await.expect("connect to the API");
        let name = ServerName::try_from("127.0.0.1").expect("a server name");
        let mut watching = connector.connect(name.to_owned(), tcp).await.expect("TLS handshake");
        watching.write_all(&http2_preface()).await.expect("write");
        let authorization = format!("Bearer {}", token.trim());
        let watch = http2_get("/api/v1/namespaces/default/configmaps?watch=true", Some(&authorization));
        watching.write_all(&watch).await.expect("write");
        // The watch stays open (30 minutes by default), but this peer never
        // answers a PING: the server closes it after its ping interval
        // (30 s) and timeout (20 s).
        let (took, frames) = read_bytes_until_closed(&mut watching, Duration::from_secs(75)).await;
        let types = http2_frame_types(&frames);
        assert!(types.contains(&HEADERS) && types.contains(&PING), "frames {types:?}");
        assert!(took > Duration::from_secs(40), "closed after {took:?}");
    });
    node.stop();
}
