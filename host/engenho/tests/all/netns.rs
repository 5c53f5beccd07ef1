//! Network namespaces for fault tests: each node in a namespace of its
//! own, all on one bridge in the test's namespace (which holds an address
//! on it, so that etcdctl and kubectl reach every node), and partitions
//! made with nftables inside the namespaces. Everything is removed on
//! drop, also when the test fails.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A bridge and the namespaces on it.
pub struct Network {
    bridge: String,
    namespaces: Vec<String>,
    subnet: String,
}

/// Runs `ip` or `nft` (with `args`), returning whether it succeeded.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
}

impl Network {
    /// Makes `count` namespaces on a new bridge; the reason when this
    /// machine cannot (not root, no `ip` or `nft`).
    pub fn create(count: usize) -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let (pid, serial) = (std::process::id() % 10_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let subnet = format!("10.{}.{}", 100 + (pid % 100), (pid / 100 % 25) * 10 + serial % 10);
        let bridge = format!("eb{pid}x{serial}");
        let mut network = Self { bridge: bridge.clone(), namespaces: Vec::new(), subnet };
        run("nft", &["--version"])?;
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &format!("{}.254/24", network.subnet), "dev", &bridge])?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for index in 0..count {
            let namespace = format!("en{pid}x{serial}n{index}");
            run("ip", &["netns", "add", &namespace])?;
            network.namespaces.push(namespace.clone());
            let host_end = format!("ev{pid}x{serial}n{index}");
            run("ip", &["link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &namespace])?;
            run("ip", &["link", "set", &host_end, "master", &bridge, "up"])?;
            let inside = |args: &[&str]| run("ip", &[&["-n", &namespace], args].concat());
            inside(&["addr", "add", &format!("{}/24", network.ip(index)), "dev", "eth0"])?;
            inside(&["link", "set", "eth0", "up"])?;
            inside(&["link", "set", "lo", "up"])?;
            let nft = |args: &[&str]| run("ip", &[&["netns", "exec", &namespace, "nft"], args].concat());
            nft(&["add", "table", "inet", "faults"])?;
            nft(&["add", "chain", "inet", "faults", "input", "{ type filter hook input priority 0; }"])?;
            nft(&["add", "chain", "inet", "faults", "output", "{ type filter hook output priority 0; }"])?;
        }
        Ok(network)
    }

    /// The address of namespace `index`.
    pub fn ip(&self, index: usize) -> String {
        format!("{}.{}", self.subnet, index + 1)
    }

    /// The name of namespace `index`.
    pub fn namespace(&self, index: usize) -> &str {
        &self.namespaces[index]
    }

    /// Drops every packet between the namespaces of `side` and all the
    /// others (the test's own namespace still reaches both).
    pub fn partition(&self, side: &[usize]) {
        for (index, namespace) in self.namespaces.iter().enumerate() {
            let others: Vec<String> = (0..self.namespaces.len())
                .filter(|other| side.contains(other) != side.contains(&index))
                .map(|other| self.ip(other))
                .collect();
            if others.is_empty() {
                continue;
            }
            let set = format!("{{ {} }}", others.join(", "));
            for (chain, direction) in [("input", "saddr"), ("output", "daddr")] {
                let rule = ["netns", "exec", namespace, "nft", "add", "rule", "inet", "faults", chain, "ip", direction];
                run("ip", &[&rule[..], &[set.as_str(), "drop"]].concat()).expect("a partition rule");
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        for namespace in &self.namespaces {
            for chain in ["input", "output"] {
                run("ip", &["netns", "exec", namespace, "nft", "flush", "chain", "inet", "faults", chain])
                    .expect("flushing a partition");
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            let _ = run("ip", &["netns", "del", namespace]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}
