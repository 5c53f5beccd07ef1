//! Starting, stopping and killing `engenho up` processes on loopback
//! addresses of their own, and running `etcdctl` against them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a node may take to answer after start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A loopback address no other test in any test process uses: the second
/// octet comes from the process id, the third from a counter.
pub fn unique_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let counter = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(counter < 255, "too many nodes in one test process");
    format!("127.{}.{}.1", std::process::id() % 200 + 20, counter)
}

/// The built-in plugins compiled once for every test node, as a node keeps
/// them precompiled: the first call compiles them (the others wait), so
/// that dozens of nodes starting at once do not each compile them again.
fn precompiled_plugins() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("precompiled-plugins");
        let host = engenho_wasm::PluginHost::new(Some(dir.clone())).expect("the plugin engine");
        for (name, bytes) in engenho_plugin_artifacts::PLUGINS {
            let checked = engenho_wasm::AdmissionPolicy::check(&host, name, bytes)
                .or_else(|_| engenho_wasm::ControllerPlugin::check(&host, name, bytes))
                .or_else(|_| engenho_wasm::SchedulerPlugin::check(&host, name, bytes));
            checked.unwrap_or_else(|error| panic!("the built-in plugin {name} does not compile: {error}"));
        }
        dir
    })
}

/// Puts the precompiled built-in plugins in a node's plugin cache `cache`
/// (a node loads them from there instead of compiling them): those of this
/// build only, not what earlier builds left in the shared directory (on a
/// test's small disk they would not fit).
pub fn seed_precompiled_plugins(cache: &Path) {
    std::fs::create_dir_all(cache).expect("the node's plugin cache");
    let digests: Vec<String> =
        engenho_plugin_artifacts::PLUGINS.iter().map(|(_, bytes)| engenho_wasm::digest_of(bytes)).collect();
    for entry in std::fs::read_dir(precompiled_plugins()).expect("the precompiled plugins").flatten() {
        let target = cache.join(entry.file_name());
        let name = entry.file_name().to_string_lossy().into_owned();
        let current = digests.iter().any(|digest| name.starts_with(&format!("{digest}-")));
        if current && entry.path().extension().is_some_and(|e| e == "cwasm") && !target.exists() {
            std::fs::copy(entry.path(), &target).expect("seeding a node's plugin cache");
        }
    }
}

/// What a test node's own Node is registered with unless the test says
/// otherwise: a `NoSchedule` taint, so that pods go only to the Node
/// objects the tests make (the agent runs no pods yet) and a DaemonSet
/// covers only those.
pub const HOST_NODE_APART: [&str; 2] = ["--register-with-taints", "engenho.io/test-host:NoSchedule"];

/// One `engenho up` process and its data directory.
pub struct EngenhoNode {
    pub name: String,
    pub dir: PathBuf,
    pub etcd: String,
    pub peer: String,
    pub api: String,
    log: PathBuf,
    child: Option<Child>,
    /// Where the log stood when the latest start began.
    started_at: usize,
    /// The network namespace it runs in, if not the test's.
    netns: Option<String>,
}

impl EngenhoNode {
    /// A node named `name` keeping its data under `root`.
    pub fn new(root: &Path, name: &str) -> Self {
        Self::at(root, name, &unique_ip(), None)
    }

    /// A node named `name` keeping its data under `root`, run in network
    /// namespace `netns` at address `ip`.
    pub fn in_namespace(root: &Path, name: &str, netns: &str, ip: &str) -> Self {
        Self::at(root, name, ip, Some(netns.to_owned()))
    }

    fn at(root: &Path, name: &str, ip: &str, netns: Option<String>) -> Self {
        Self {
            name: name.to_owned(),
            dir: root.join(name),
            etcd: format!("{ip}:2379"),
            peer: format!("{ip}:2380"),
            api: format!("{ip}:6443"),
            log: root.join(format!("{name}.log")),
            child: None,
            started_at: 0,
            netns,
        }
    }

    /// Starts the process with extra `engenho up` arguments.
    pub fn start(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "node {} is already running", self.name);
        seed_precompiled_plugins(&self.dir.join("plugins"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open log");
        let started_at = self.log_text().len();
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_engenho")]);
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_engenho")),
        };
        let child = command
            .args(["up", "--data-dir"])
            .arg(&self.dir)
            .args(["--name", &self.name, "--etcd-addr", &self.etcd, "--peer-addr", &self.peer, "--api-addr", &self.api])
            .args(if extra.contains(&"--register-with-taints") { &[][..] } else { &HOST_NODE_APART[..] })
            .args(extra)
            .env("ENGENHO_LOG", "info,openraft=warn,lsm_tree=warn,fjall=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn engenho");
        self.child = Some(child);
        self.started_at = started_at;
    }

    /// Starts and waits until the node answers.
    pub fn start_ready(&mut self, extra: &[&str]) {
        self.start(extra);
        self.wait_ready();
    }

    /// Starts the process as a worker (`--worker`, with extra `engenho
    /// up` arguments) and waits until it reports itself ready.
    pub fn start_worker(&mut self, extra: &[&str]) {
        let mut args = vec!["--worker"];
        args.extend(extra);
        self.start(&args);
        self.wait_ready();
    }

    /// Waits until the node reports itself ready (joined or bootstrapped)
    /// for the latest start and its etcd endpoint answers; a worker, which
    /// has no etcd endpoint, once it reports itself ready.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("poll child")) {
                panic!("node {} exited with {status}; log:\n{}", self.name, self.log_text());
            }
            let log = self.log_text();
            let latest = log.get(self.started_at..).unwrap_or_default();
            if latest.contains("engenho worker ready") {
                return;
            }
            let ready = latest.contains("engenho node ready");
            if ready && self.etcdctl(&["endpoint", "status"]).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "node {} not ready in time; log:\n{}", self.name, self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id of the running node.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The node's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself (within [`READY_TIMEOUT`])
    /// and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the node was started");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("poll child") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("node {} did not exit in time; log:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("poll child") {
                assert!(status.success(), "node {} exited uncleanly: {status}; log:\n{}", self.name, self.log_text());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("node {} did not stop on SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `etcdctl` against this node.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        etcdctl(self, args, None)
    }

    /// The node's `pki/` directory.
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }

    /// The file holding the node's join token, for `--token-file`.
    pub fn token_file(&self) -> PathBuf {
        self.dir.join("join-token")
    }

    /// `engenho up` arguments that join the cluster through this node.
    pub fn join_args(&self) -> Vec<String> {
        let token_file = self.token_file().to_str().expect("utf-8 path").to_owned();
        vec!["--join".into(), self.peer.clone(), "--token-file".into(), token_file]
    }

    /// A gRPC channel to the node's etcd endpoint, as its administrator
    /// (the client certificate `engenho up` writes).
    pub fn etcd_channel(&self) -> tonic::transport::Channel {
        let config = engenho_pki::etcd_admin_client_config(&self.pki()).expect("the node's etcd client certificate");
        let endpoint = engenho_pki::grpc_endpoint(&self.etcd).expect("etcd endpoint");
        engenho_pki::grpc_channel(&endpoint.connect_timeout(Duration::from_secs(2)), config)
    }

    /// Runs `etcdctl` against this node and returns its standard output,
    /// failing the test if it fails.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        let output = self.etcdctl(args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} on {} failed: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Puts `key` = `value` through this node with `etcdctl`, again while
    /// the answer is etcd's "leader changed" (an election was under way: the
    /// write's outcome is unknown, and the same put again is harmless), for
    /// at most 10 s; fails the test on any other error.
    pub fn etcdctl_put(&self, key: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let output = self.etcdctl(&["put", key, value]);
            if output.status.success() {
                return;
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("leader changed") && Instant::now() < deadline,
                "etcdctl put {key} on {} failed: {stderr}",
                self.name
            );
        }
    }

    /// Reads one key's value (serializable: from this node's own replica).
    pub fn local_value(&self, key: &str) -> Option<String> {
        let out = self.etcdctl_ok(&["get", key, "--consistency=s", "--print-value-only"]);
        let value = out.trim_end_matches('\n');
        (!out.is_empty()).then(|| value.to_owned())
    }

    /// Whether this node reports itself as the raft leader.
    pub fn is_leader(&self) -> bool {
        let output = self.etcdctl(&["endpoint", "status", "-w", "json"]);
        if !output.status.success() {
            return false;
        }
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("status json");
        let status = &status[0]["Status"];
        status["leader"] == status["header"]["member_id"]
    }
}

/// The lines of a node's log a failing test shows.
const LOG_LINES_ON_FAILURE: usize = 60;

impl Drop for EngenhoNode {
    /// Kills the node; when the test is failing, shows the end of its log
    /// beside the failure, for a run whose data is gone afterwards.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_LINES_ON_FAILURE)..].join("\n");
            eprintln!("--- the last {LOG_LINES_ON_FAILURE} lines of node {}'s log ---\n{tail}", self.name);
        }
    }
}

/// Waits until `node` lists `voters` voting members: a joined node is a
/// learner until the leader's autopilot promotes it.
pub fn wait_voters(node: &EngenhoNode, voters: usize) {
    wait_for(&format!("{voters} voters"), Duration::from_secs(60), || {
        let listed = node.etcdctl(&["member", "list"]);
        let text = String::from_utf8_lossy(&listed.stdout);
        listed.status.success() && text.lines().filter(|line| line.ends_with("false")).count() == voters
    });
}

/// An `etcdctl` (API v3) command for `node`, over TLS with the node's
/// admin client certificate.
pub fn etcdctl_command(node: &EngenhoNode) -> Command {
    let pki = node.pki();
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://{}", node.etcd))
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("etcd-client.crt"))
        .arg("--key")
        .arg(pki.join("etcd-client.key"));
    command
}

/// Runs `etcdctl` against `node` with `stdin` as input.
pub fn etcdctl(node: &EngenhoNode, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = etcdctl_command(node)
        .args(["--dial-timeout=2s", "--command-timeout=15s"])
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is installed (the README's test command installs it)");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("etcdctl output")
}

/// Runs `openssl s_client` against `addr` offering `alpn`, with the given
/// certificate and key, sends nothing, and returns what it printed once the
/// server ended the connection.
pub fn openssl_s_client(addr: &str, alpn: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> String {
    let mut command = Command::new("openssl");
    command.args(["s_client", "-connect", addr, "-alpn", alpn, "-ign_eof", "-CAfile"]).arg(ca);
    if let Some((certificate, key)) = identity {
        command.arg("-cert").arg(certificate).arg("-key").arg(key);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("poll openssl").is_none() {
        assert!(Instant::now() < deadline, "the server kept the connection open");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("openssl output");
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The installed `kubectl`, with its own HOME (discovery cache) and the
/// node's kubeconfig.
pub struct Kubectl {
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// `kubectl` for `node`, which must have started once.
    pub fn for_node(node: &EngenhoNode) -> Self {
        Self::for_kubeconfig(node.dir.join("kubeconfig"))
    }

    /// `kubectl` with the kubeconfig at `kubeconfig`.
    pub fn for_kubeconfig(kubeconfig: PathBuf) -> Self {
        Self { home: tempfile::tempdir().expect("kubectl home"), kubeconfig }
    }

    /// `kubectl args` ready to run, for callers that set more (environment).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["--request-timeout=20s"])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs `kubectl args`, with `stdin` as input.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is installed");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs `kubectl args` and returns its standard output; fails the test
    /// if kubectl fails.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    /// Runs `kubectl args` (which should print JSON) and parses its output;
    /// fails the test if kubectl fails.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("kubectl prints JSON")
    }

    /// As [`Kubectl::ok`], with `stdin` as input.
    pub fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Waits (at most `timeout`, as kubectl spells it) for `deployment`'s
    /// rollout to finish and returns what kubectl printed; fails the test if
    /// it does not finish, showing where its ReplicaSets and pods stood and
    /// the namespace's latest events.
    pub fn rollout_status(&self, deployment: &str, timeout: &str) -> String {
        let target = format!("deployment/{deployment}");
        let output = self.run(&["rollout", "status", &target, &format!("--timeout={timeout}")], None);
        if output.status.success() {
            return String::from_utf8(output.stdout).expect("utf-8 output");
        }
        let show = |args: &[&str]| {
            let shown = self.run(args, None);
            let (stdout, stderr) = (String::from_utf8_lossy(&shown.stdout), String::from_utf8_lossy(&shown.stderr));
            format!("$ kubectl {}\n{stdout}{stderr}", args.join(" "))
        };
        let conditions = "jsonpath={range .items[*]}{.metadata.name} {.status.conditions}{\"\\n\"}{end}";
        panic!(
            "the rollout of {target} did not finish: {}{}\n{}\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            show(&["get", "replicasets,pods", "-o", "wide"]),
            show(&["get", "pods", "-o", conditions]),
            show(&["get", "events", "--sort-by=.lastTimestamp"]),
        );
    }

    /// Runs `kubectl args`, which must fail; returns its standard output
    /// (as `auth can-i` answers `no`).
    pub fn fails_with_stdout(&self, args: &[&str]) -> String {
        let output = self.run(args, None);
        assert!(!output.status.success(), "kubectl {args:?} succeeded: {}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs `kubectl args`, which must fail; returns its standard error.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin);
        assert!(!output.status.success(), "kubectl {args:?} succeeded: {}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8(output.stderr).expect("utf-8 output")
    }
}

/// A `kubectl` left running (a watch, a port-forward); killed on drop.
pub struct RunningKubectl {
    child: Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    errors: std::sync::Arc<std::sync::Mutex<String>>,
}

impl RunningKubectl {
    /// What it has printed so far.
    pub fn output(&mut self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// What it has printed on standard error so far.
    pub fn errors(&mut self) -> String {
        self.errors.lock().expect("output lock").clone()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("kubectl's state").is_some()
    }
}

/// Collects what `from` gives into `into` as it comes, on a thread.
pub fn collect(mut from: impl std::io::Read + Send + 'static, into: std::sync::Arc<std::sync::Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0; 4096];
        while let Ok(read) = from.read(&mut buffer) {
            if read == 0 {
                break;
            }
            into.lock().expect("output lock").push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    });
}

impl Drop for RunningKubectl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kubectl {
    /// Starts `kubectl args` and collects its standard output as it comes.
    pub fn spawn(&self, args: &[&str]) -> RunningKubectl {
        self.spawn_with(args, &[])
    }

    /// Starts `kubectl args` with `env` added to its environment and
    /// collects its output and errors as they come.
    pub fn spawn_with(&self, args: &[&str], env: &[(&str, &str)]) -> RunningKubectl {
        let mut child = Command::new("kubectl")
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is installed");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let errors = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        collect(child.stdout.take().expect("stdout"), output.clone());
        collect(child.stderr.take().expect("stderr"), errors.clone());
        RunningKubectl { child, output, errors }
    }
}

/// A kube-rs client of `node`'s API server, from its kubeconfig.
pub async fn kube_client(node: &EngenhoNode) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig = Kubeconfig::read_from(node.dir.join("kubeconfig")).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    kube::Client::try_from(config).expect("client")
}
