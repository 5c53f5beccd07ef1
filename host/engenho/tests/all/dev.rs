//! Goal: `engenho dev --nodes 3` starts a three-node cluster on loopback
//! addresses of its own, says where each node is, passes what follows
//! `--` to every node, its nodes gossip with one another, and Ctrl-C stops
//! every node. Method: the real binary and the real kubectl; Ctrl-C sent
//! as a terminal sends it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Kubectl, collect, seed_precompiled_plugins, wait_for};

/// `engenho dev`, stopped (SIGTERM, then SIGKILL) when the test ends, so
/// that a failing test leaves no node running.
struct Dev(std::process::Child);

impl Dev {
    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.0.id()).expect("pid")).expect("a pid");
        let _ = rustix::process::kill_process(pid, signal);
    }

    fn exited(&mut self) -> bool {
        self.0.try_wait().expect("dev's state").is_some()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if !self.exited() {
            self.signal(rustix::process::Signal::TERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !self.exited() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

#[test]
fn dev_starts_a_cluster_and_stops_it_on_ctrl_c() {
    let root = tempfile::tempdir().expect("temporary directory");
    let first = format!("127.250.{}.1", std::process::id() % 200 + 1);
    for node in ["node-1", "node-2", "node-3"] {
        seed_precompiled_plugins(&root.path().join(node).join("plugins"));
    }
    let child = Command::new(env!("CARGO_BIN_EXE_engenho"))
        .args(["dev", "--nodes", "3", "--data-dir"])
        .arg(root.path())
        .args(["--first-ip", &first, "--", "--max-pods", "42"])
        .env("ENGENHO_LOG", "info,openraft=warn,lsm_tree=warn,fjall=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("engenho dev starts");
    let mut dev = Dev(child);
    let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    collect(dev.0.stdout.take().expect("stdout"), output.clone());
    let printed = || output.lock().expect("output").clone();
    wait_for("the nodes' table", Duration::from_secs(240), || {
        printed().contains("Ctrl-C stops them all") || dev.exited()
    });
    let table = printed();
    let kubeconfig = root.path().join("node-1").join("kubeconfig");
    assert!(table.contains(&format!("export KUBECONFIG={}", kubeconfig.display())), "{table}");
    let [a, b, c, _] = first.parse::<std::net::Ipv4Addr>().expect("ip").octets();
    for (index, name) in ["node-1", "node-2", "node-3"].iter().enumerate() {
        let api = format!("https://{a}.{b}.{}.1:6443", usize::from(c) + index);
        assert!(table.lines().any(|l| l.starts_with(name) && l.contains(&api)), "{name} at {api}: {table}");
    }

    let kubectl = Kubectl::for_kubeconfig(kubeconfig);
    wait_for("three Ready nodes", Duration::from_secs(60), || {
        let nodes = kubectl.json(&["get", "nodes", "-o", "json"]);
        let items = nodes["items"].as_array().cloned().unwrap_or_default();
        items.len() == 3
            && items.iter().all(|n| {
                n["status"]["capacity"]["pods"] == "42"
                    && n["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
    });

    // Every node gossips (sealed UDP on its peer port) and hears the
    // others.
    let log_of = |name: &str| std::fs::read_to_string(root.path().join(format!("{name}.log"))).unwrap_or_default();
    wait_for("gossip among the three nodes", Duration::from_secs(30), || {
        let first = log_of("node-1");
        first.contains("gossip: node-2 is live")
            && first.contains("gossip: node-3 is live")
            && log_of("node-3").contains("gossip: node-2 is live")
    });

    // engenho mesh status, through the kubeconfig: the three raft voters
    // (once the autopilot has promoted the two that joined as learners),
    // the leader among them, each live in gossip.
    let mesh_status = || {
        let status = Command::new(env!("CARGO_BIN_EXE_engenho"))
            .args(["mesh", "status"])
            .env("KUBECONFIG", root.path().join("node-1").join("kubeconfig"))
            .output()
            .expect("engenho mesh status");
        let shown = String::from_utf8_lossy(&status.stdout).into_owned();
        assert!(status.status.success(), "{shown}{}", String::from_utf8_lossy(&status.stderr));
        shown
    };
    let row_of = |shown: &str, name: &str| shown.lines().find(|l| l.starts_with(name)).map(str::to_owned);
    wait_for("three voters in mesh status", Duration::from_secs(60), || {
        let shown = mesh_status();
        ["node-1", "node-2", "node-3"].iter().all(|name| row_of(&shown, name).is_some_and(|row| row.contains("voter")))
    });
    let shown = mesh_status();
    for name in ["node-1", "node-2", "node-3"] {
        let row = row_of(&shown, name).unwrap_or_else(|| panic!("{name}: {shown}"));
        assert!(row.contains("voter") && row.contains("live"), "{row}");
    }
    assert_eq!(shown.matches("(leader)").count(), 1, "{shown}");
    assert!(shown.contains("last transitions:") && shown.contains("promote"), "{shown}");

    dev.signal(rustix::process::Signal::INT);
    wait_for("engenho dev to stop", Duration::from_secs(60), || dev.exited());
    assert!(dev.0.wait().expect("status").success(), "Ctrl-C is a clean stop");
    for (index, name) in ["node-1", "node-2", "node-3"].iter().enumerate() {
        let log = std::fs::read_to_string(root.path().join(format!("{name}.log"))).expect("the node's log");
        assert!(log.contains("stopping"), "{name} was stopped: {log}");
        let api = format!("{a}.{b}.{}.1:6443", usize::from(c) + index);
        assert!(std::net::TcpStream::connect(&api).is_err(), "{name} no longer listens on {api}");
    }
}
