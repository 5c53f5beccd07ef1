//! Runs of the example toolbox component, as pods run it.

use std::sync::Arc;
use std::time::Duration;

use super::logs::{self, ReadOptions};
use super::*;

fn toolbox() -> &'static [u8] {
    engenho_plugin_artifacts::pod_component("toolbox").expect("the toolbox is built")
}

async fn image(runtime: &Arc<PodRuntime>) -> Image {
    let bytes = toolbox().to_vec();
    runtime.prepare(&engenho_wasm::digest_of(&bytes), bytes).await.expect("the toolbox prepares")
}

fn spec(args: &[&str]) -> ContainerSpec {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.insert(0, "toolbox".into());
    ContainerSpec { args, ..ContainerSpec::default() }
}

/// Runs `spec` to its end (at most a minute); its exit and its log.
async fn run(runtime: &Arc<PodRuntime>, spec: &ContainerSpec) -> (Exit, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("0.log");
    let log = ContainerLog::create(&path, logs::LOG_FILE_BYTES_MAX).expect("log");
    let container = runtime.start(&image(runtime).await, spec, &log).expect("starts");
    let exit = tokio::time::timeout(Duration::from_secs(60), container.wait()).await.expect("ends within a minute");
    let text = logs::read(&path, &ReadOptions::default()).expect("the log reads");
    (exit, String::from_utf8(text).expect("text"))
}

#[tokio::test]
async fn a_command_runs_with_its_arguments_and_environment() {
    // Goal: args and env reach the component; stdout and stderr reach the
    // log in order; success is Completed with code 0.
    let runtime = PodRuntime::new(None).expect("runtime");
    let mut spec = spec(&["echo", "hello", "pod", ";", "env", "GREETING", "MISSING", ";", "stderr", "oops"]);
    spec.env = vec![("GREETING".into(), "first".into()), ("GREETING".into(), "olá".into())];
    let (exit, log) = run(&runtime, &spec).await;
    assert_eq!(exit, Exit { code: 0, reason: ExitReason::Completed, message: None });
    assert_eq!(log, "hello pod\nGREETING=olá\nMISSING=\noops\n");
}

#[tokio::test]
async fn exits_and_traps_end_a_run_with_their_code() {
    // Goal: a non-zero exit is Error with code 1 (wasi:cli/exit 0.2
    // carries success or failure only); a panic (a trap) is Error with 134
    // and the trap in the log.
    let runtime = PodRuntime::new(None).expect("runtime");
    let (exit, log) = run(&runtime, &spec(&["echo", "bye", ";", "exit", "3"])).await;
    assert_eq!((exit.code, exit.reason), (1, ExitReason::Error));
    assert_eq!(log, "bye\n");
    let (exit, log) = run(&runtime, &spec(&["panic"])).await;
    assert_eq!((exit.code, exit.reason), (134, ExitReason::Error));
    assert!(log.contains("asked to panic") && log.contains("trapped:"), "{log}");
}

#[tokio::test]
async fn growing_past_the_memory_limit_is_oom_killed() {
    // Goal: the limit holds; the run ends as OOMKilled, 137.
    let runtime = PodRuntime::new(None).expect("runtime");
    let mut bomb = spec(&["grow", "64"]);
    bomb.memory_bytes = Some(16 << 20);
    let (exit, log) = run(&runtime, &bomb).await;
    assert_eq!((exit.code, exit.reason), (137, ExitReason::OomKilled), "{log}");
    assert!(log.contains("memory limit"), "{log}");
    let mut within = spec(&["grow", "8"]);
    within.memory_bytes = Some(32 << 20);
    assert_eq!(
        run(&runtime, &within).await,
        (Exit { code: 0, reason: ExitReason::Completed, message: None }, "grew 8 MiB\n".into())
    );
}

#[tokio::test]
async fn a_looping_or_sleeping_run_stops_when_told() {
    // Goal: a component that computes without end, or waits an hour in a
    // host call, stops when told.
    let runtime = PodRuntime::new(None).expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let log = ContainerLog::create(&dir.path().join("0.log"), logs::LOG_FILE_BYTES_MAX).expect("log");
    for step in [&["loop"][..], &["sleep", "3600000"]] {
        let container = runtime.start(&image(&runtime).await, &spec(step), &log).expect("starts");
        let stopper = container.stopper();
        let waiting = tokio::spawn(container.wait());
        tokio::task::yield_now().await;
        stopper.stop();
        let exit = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("stops").expect("task");
        assert_eq!((exit.code, exit.reason), (137, ExitReason::Stopped), "{step:?}");
    }
}

#[tokio::test]
async fn directories_are_given_read_only_or_writable() {
    // Goal: a mount's files read; a read-only mount refuses writes; a
    // writable one takes them.
    let runtime = PodRuntime::new(None).expect("runtime");
    let (config, scratch) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    std::fs::write(config.path().join("greeting"), "hi from a file").expect("write");
    let mounts = vec![
        Mount { host: config.path().to_owned(), guest: "/etc/config".into(), read_only: true },
        Mount { host: scratch.path().to_owned(), guest: "/scratch".into(), read_only: false },
    ];
    let mut reads =
        spec(&["cat", "/etc/config/greeting", ";", "write", "/scratch/out", "kept", ";", "ls", "/etc/config"]);
    reads.mounts = mounts.clone();
    let (exit, log) = run(&runtime, &reads).await;
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(log, "hi from a file\ngreeting\n");
    assert_eq!(std::fs::read_to_string(scratch.path().join("out")).expect("written"), "kept");
    let mut writes = spec(&["write", "/etc/config/greeting", "changed"]);
    writes.mounts = mounts;
    let (exit, log) = run(&runtime, &writes).await;
    assert_eq!(exit.code, 1, "{log}");
    assert!(log.contains("toolbox write"), "{log}");
    assert_eq!(std::fs::read_to_string(config.path().join("greeting")).expect("read"), "hi from a file");
}

#[tokio::test]
async fn components_that_cannot_run_as_pods_are_refused_precisely() {
    // Goal: bytes of another digest, a core module, a component of another
    // world: each a precise error; a prepared image needs no bytes again.
    let runtime = PodRuntime::new(None).expect("runtime");
    let bytes = toolbox().to_vec();
    let wrong = runtime.prepare(&"0".repeat(64), bytes.clone()).await.err().expect("a mismatch");
    assert!(matches!(wrong, RuntimeError::DigestMismatch { .. }), "{wrong}");
    let core = b"\0asm\x01\0\0\0".to_vec();
    let error = runtime.prepare(&engenho_wasm::digest_of(&core), core).await.err().expect("a core module");
    assert!(error.to_string().contains("core WebAssembly module, not a component"), "{error}");
    let policy = engenho_plugin_artifacts::plugin("pod-security").expect("built").to_vec();
    let error = runtime.prepare(&engenho_wasm::digest_of(&policy), policy).await.err().expect("another world");
    assert!(matches!(error, RuntimeError::WrongWorld { .. }), "{error}");
    assert!(error.to_string().contains("exports neither wasi:cli/run"), "{error}");
    let digest = engenho_wasm::digest_of(&bytes);
    assert!(runtime.prepared(&digest).is_none());
    runtime.prepare(&digest, bytes).await.expect("prepares");
    assert_eq!(runtime.prepared(&digest).map(|i| i.world()), Some(World::Command));
}

/// One HTTP/1.1 request to `address`; the response's status line and body.
async fn get(address: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_wasi_http_component_serves_its_port_until_stopped() {
    // Goal: each request runs the component with the container's env and
    // logs; a failing answer is the component's; stopping closes the port.
    let runtime = PodRuntime::new(None).expect("runtime");
    let bytes = engenho_plugin_artifacts::pod_component("hello-http").expect("built").to_vec();
    let image = runtime.prepare(&engenho_wasm::digest_of(&bytes), bytes).await.expect("prepares");
    assert_eq!(image.world(), World::Http);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("0.log");
    let log = ContainerLog::create(&path, logs::LOG_FILE_BYTES_MAX).expect("log");
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = free.local_addr().expect("address");
    drop(free);
    let spec = ContainerSpec { env: vec![("GREETING".into(), "a pod".into())], ..ContainerSpec::default() };
    let container = runtime.serve(&image, &spec, &log, &[address]).expect("serves");
    let (status, body) = get(address, "/hello?x=1").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("hello from a pod (GET /hello?x=1)\n"), "{body}");
    let (status, _) = get(address, "/fail").await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    let stopper = container.stopper();
    let waiting = tokio::spawn(container.wait());
    stopper.stop();
    let exit = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("stops").expect("task");
    assert_eq!(exit.reason, ExitReason::Stopped);
    assert!(tokio::net::TcpStream::connect(address).await.is_err(), "the port is closed");
    let text = String::from_utf8(logs::read(&path, &ReadOptions::default()).expect("log")).expect("text");
    assert_eq!(text, "GET /hello?x=1\nGET /fail\n");
    let command = runtime.start(&image, &spec, &log).err().expect("an http component is not a command");
    assert!(matches!(command, RuntimeError::Setup(_)), "{command}");
}
