//! The scheduler's node table: every node by a stable index, the pods
//! placed on each (bound, or assumed while their binding is in flight),
//! what each node's pods request in all (kept as pods come and go, never
//! recomputed), and the log of changes that plugin instances replay to keep
//! their own copies current.

use std::collections::HashMap;
use std::sync::Arc;

use engenho_scheduler as sdk;

/// One node of the table.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    /// The node's record (a placeholder holds only the name).
    pub node: Arc<sdk::Node>,
    /// Whether a Node object stands behind it (a placeholder keeps the pods
    /// bound to a node the scheduler does not know, and is no candidate).
    pub real: bool,
    /// The uids of the pods placed on it.
    pub pods: Vec<String>,
    /// What those pods request in all.
    pub requested: Requested,
}

/// What the pods of a node request in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requested {
    /// CPU, in millicores.
    pub milli_cpu: u64,
    /// Memory, in bytes.
    pub memory: u64,
    /// Pods.
    pub pods: u64,
}

impl Requested {
    fn add(&mut self, r: &sdk::Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(r.milli_cpu);
        self.memory = self.memory.saturating_add(r.memory);
        self.pods = self.pods.saturating_add(1);
    }

    fn remove(&mut self, r: &sdk::Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(r.milli_cpu);
        self.memory = self.memory.saturating_sub(r.memory);
        self.pods = self.pods.saturating_sub(1);
    }
}

/// One placed pod.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The node's index.
    pub node: u32,
    /// The pod's record.
    pub pod: Arc<sdk::Pod>,
    /// Whether it is only assumed there (its binding in flight).
    pub assumed: bool,
}

/// The table, and the log of its changes since the oldest cursor still
/// reading it.
#[derive(Debug, Default)]
pub struct Table {
    nodes: Vec<Option<NodeEntry>>,
    free: Vec<u32>,
    by_name: HashMap<String, u32>,
    pods: HashMap<String, Placed>,
    log: Vec<sdk::Change>,
    /// The sequence number of `log[0]`.
    base: u64,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of the node named `name`, if it is in the table.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The node at `index`.
    pub fn node(&self, index: u32) -> Option<&NodeEntry> {
        self.nodes.get(index as usize).and_then(Option::as_ref)
    }

    /// The indexes of the nodes that stand for Node objects, in index order.
    pub fn real_nodes(&self) -> impl Iterator<Item = u32> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().filter(|n| n.real).and_then(|_| u32::try_from(i).ok()))
    }

    /// How many nodes stand for Node objects.
    pub fn real_count(&self) -> usize {
        self.nodes.iter().flatten().filter(|n| n.real).count()
    }

    /// Where the pod with `uid` is placed.
    pub fn placed(&self, uid: &str) -> Option<&Placed> {
        self.pods.get(uid)
    }

    /// How many pods are placed.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Sets node `node` (new, or changed).
    pub fn set_node(&mut self, node: sdk::Node) {
        let node = Arc::new(node);
        let index = match self.by_name.get(&node.name) {
            Some(&index) => index,
            None => self.allocate(&node.name),
        };
        let slot = &mut self.nodes[index as usize];
        match slot {
            Some(entry) => {
                entry.node = node.clone();
                entry.real = true;
            }
            None => {
                *slot = Some(NodeEntry {
                    node: node.clone(),
                    real: true,
                    pods: Vec::new(),
                    requested: Requested::default(),
                })
            }
        }
        self.log.push(sdk::Change::NodeSet(index, (*node).clone()));
    }

    /// Removes node `name`: its index is freed, or, while pods are still
    /// placed on it, it becomes a placeholder.
    pub fn remove_node(&mut self, name: &str) {
        let Some(&index) = self.by_name.get(name) else { return };
        let Some(entry) = self.nodes[index as usize].as_mut() else { return };
        if entry.pods.is_empty() {
            self.nodes[index as usize] = None;
            self.by_name.remove(name);
            self.free.push(index);
            self.log.push(sdk::Change::NodeRemoved(index));
        } else {
            entry.real = false;
            let placeholder = sdk::Node { name: name.to_owned(), ..sdk::Node::default() };
            entry.node = Arc::new(placeholder.clone());
            self.log.push(sdk::Change::NodeSet(index, placeholder));
        }
    }

    /// Places `pod` on node `node_name` (moving it if it was placed
    /// elsewhere); `assumed` while its binding is in flight. A placed pod's
    /// node name is its node's, so the bound pod a watch brings back is the
    /// one assumed, no change.
    pub fn place(&mut self, node_name: &str, pod: Arc<sdk::Pod>, assumed: bool) {
        let pod = if pod.node_name == node_name {
            pod
        } else {
            Arc::new(sdk::Pod { node_name: node_name.to_owned(), ..(*pod).clone() })
        };
        if let Some(placed) = self.pods.get(&pod.uid)
            && self.node(placed.node).is_some_and(|n| n.node.name == node_name)
            && *placed.pod == *pod
        {
            let uid = pod.uid.clone();
            if let Some(placed) = self.pods.get_mut(&uid) {
                placed.assumed = assumed;
            }
            return;
        }
        self.unplace(&pod.uid);
        let index = match self.by_name.get(node_name) {
            Some(&index) => index,
            None => {
                let index = self.allocate(node_name);
                let placeholder = sdk::Node { name: node_name.to_owned(), ..sdk::Node::default() };
                self.nodes[index as usize] = Some(NodeEntry {
                    node: Arc::new(placeholder.clone()),
                    real: false,
                    pods: Vec::new(),
                    requested: Requested::default(),
                });
                self.log.push(sdk::Change::NodeSet(index, placeholder));
                index
            }
        };
        if let Some(entry) = self.nodes[index as usize].as_mut() {
            entry.pods.push(pod.uid.clone());
            entry.requested.add(&pod.requests);
        }
        self.log.push(sdk::Change::PodPlaced(index, (*pod).clone()));
        self.pods.insert(pod.uid.clone(), Placed { node: index, pod, assumed });
    }

    /// Takes the pod with `uid` off its node; what it was.
    pub fn unplace(&mut self, uid: &str) -> Option<Placed> {
        let placed = self.pods.remove(uid)?;
        let index = placed.node;
        let mut freed = None;
        if let Some(entry) = self.nodes[index as usize].as_mut() {
            entry.pods.retain(|u| u != uid);
            entry.requested.remove(&placed.pod.requests);
            if !entry.real && entry.pods.is_empty() {
                freed = Some(entry.node.name.clone());
            }
        }
        self.log.push(sdk::Change::PodRemoved(uid.to_owned()));
        if let Some(name) = freed {
            self.nodes[index as usize] = None;
            self.by_name.remove(&name);
            self.free.push(index);
            self.log.push(sdk::Change::NodeRemoved(index));
        }
        Some(placed)
    }

    fn allocate(&mut self, name: &str) -> u32 {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.nodes.push(None);
                u32::try_from(self.nodes.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.by_name.insert(name.to_owned(), index);
        index
    }

    /// The sequence number the next change will get: a cursor that has
    /// seen everything so far.
    pub fn cursor(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// The changes from cursor `from` on.
    pub fn changes_since(&self, from: u64) -> &[sdk::Change] {
        let start = usize::try_from(from.saturating_sub(self.base)).unwrap_or(usize::MAX).min(self.log.len());
        &self.log[start..]
    }

    /// Forgets the changes before cursor `oldest` (every reader is past it).
    pub fn trim(&mut self, oldest: u64) {
        let drop = usize::try_from(oldest.saturating_sub(self.base)).unwrap_or(usize::MAX).min(self.log.len());
        self.log.drain(..drop);
        self.base += drop as u64;
    }

    /// The whole table as changes, for a fresh plugin instance: every node
    /// at its index, then every pod; pods only when `with_pods`.
    pub fn snapshot(&self, with_pods: bool) -> Vec<sdk::Change> {
        let mut changes: Vec<sdk::Change> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some(sdk::Change::NodeSet(u32::try_from(i).ok()?, (*n.as_ref()?.node).clone())))
            .collect();
        if with_pods {
            changes.extend(self.pods.values().map(|p| sdk::Change::PodPlaced(p.node, (*p.pod).clone())));
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> sdk::Node {
        sdk::Node { name: name.into(), ..sdk::Node::default() }
    }

    fn pod(uid: &str, cpu: u64) -> Arc<sdk::Pod> {
        Arc::new(sdk::Pod {
            uid: uid.into(),
            requests: sdk::Resources { milli_cpu: cpu, pods: 1, ..sdk::Resources::default() },
            ..sdk::Pod::default()
        })
    }

    #[test]
    fn requested_resources_follow_pods_as_they_come_and_go() {
        let mut table = Table::new();
        table.set_node(node("a"));
        table.set_node(node("b"));
        table.place("a", pod("p1", 100), false);
        table.place("a", pod("p2", 200), true);
        let a = table.index_of("a").expect("node a");
        assert_eq!(table.node(a).expect("node a").requested, Requested { milli_cpu: 300, memory: 0, pods: 2 });
        table.place("b", pod("p2", 200), false);
        assert_eq!(table.node(a).expect("node a").requested.milli_cpu, 100);
        table.unplace("p1");
        assert_eq!(table.node(a).expect("node a").requested, Requested::default());
        assert_eq!(table.real_count(), 2);
    }

    #[test]
    fn the_bound_pod_a_watch_brings_back_is_the_one_assumed() {
        // Goal: a pod assumed on a node, then seen bound there (its node
        // name set), changes nothing plugins replay; a pod is logged with
        // its node's name.
        let mut table = Table::new();
        table.set_node(node("a"));
        let cursor = table.cursor();
        table.place("a", pod("p", 100), true);
        let bound = Arc::new(sdk::Pod { node_name: "a".into(), ..(*pod("p", 100)).clone() });
        table.place("a", bound.clone(), false);
        let changes = table.changes_since(cursor);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(matches!(&changes[0], sdk::Change::PodPlaced(_, placed) if *placed == *bound));
        assert!(!table.placed("p").expect("placed").assumed);
    }

    #[test]
    fn a_pod_on_an_unknown_node_keeps_a_placeholder_that_is_no_candidate() {
        let mut table = Table::new();
        table.place("ghost", pod("p1", 100), false);
        assert_eq!(table.real_nodes().count(), 0);
        table.set_node(node("ghost"));
        assert_eq!(table.real_nodes().count(), 1);
        table.remove_node("ghost");
        assert_eq!(table.real_nodes().count(), 0);
        table.unplace("p1");
        assert!(table.index_of("ghost").is_none());
    }

    #[test]
    fn indexes_are_reused_and_the_log_replays_to_the_same_table() {
        let mut table = Table::new();
        table.set_node(node("a"));
        table.set_node(node("b"));
        table.remove_node("a");
        table.set_node(node("c"));
        assert_eq!(table.index_of("c"), Some(0));
        let cursor = table.cursor();
        table.place("c", pod("p", 1), false);
        assert_eq!(table.changes_since(cursor).len(), 1);
        table.trim(cursor);
        assert_eq!(table.changes_since(0).len(), 1);
        assert_eq!(table.snapshot(true).len(), 3);
        assert_eq!(table.snapshot(false).len(), 2);
    }
}
