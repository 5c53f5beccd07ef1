//! The node table a plugin instance keeps: the cluster's nodes by index and
//! the pods placed on each, with each node's requested resources summed as
//! pods come and go.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::matching::label_value;
use crate::resources::{extended_amount, non_zero_memory, non_zero_milli_cpu};
use crate::topology::{Domains, Topology};
use crate::{
    Assumptions, Change, LabelSelector, Node, Pod, PodAffinityTerm, Quantity, Resources, SelectorOperator, Taint,
};

/// The most nodes a table holds: changes naming an index at or past it are
/// ignored, so that a stray index cannot make the table allocate without
/// bound.
pub const MAX_NODES: u32 = 1 << 16;

/// What the pods placed on a node request, summed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requested {
    /// The pods' requests as given; `pods` counts the pods.
    pub total: Resources,
    /// CPU, counting a pod that requests none as requesting
    /// [`crate::resources::DEFAULT_MILLI_CPU_REQUEST`].
    pub non_zero_milli_cpu: Quantity,
    /// Memory, counting a pod that requests none as requesting
    /// [`crate::resources::DEFAULT_MEMORY_REQUEST`].
    pub non_zero_memory: Quantity,
}

impl Requested {
    /// Counts `pod` in.
    pub fn add(&mut self, pod: &Pod) {
        let requests = &pod.requests;
        self.total.milli_cpu = self.total.milli_cpu.saturating_add(requests.milli_cpu);
        self.total.memory = self.total.memory.saturating_add(requests.memory);
        self.total.ephemeral_storage = self.total.ephemeral_storage.saturating_add(requests.ephemeral_storage);
        self.total.pods = self.total.pods.saturating_add(1);
        for resource in requests.extended.iter().filter(|resource| resource.amount > 0) {
            match self.total.extended.iter_mut().find(|r| r.name == resource.name) {
                Some(sum) => sum.amount = sum.amount.saturating_add(resource.amount),
                None => self.total.extended.push(resource.clone()),
            }
        }
        self.non_zero_milli_cpu = self.non_zero_milli_cpu.saturating_add(non_zero_milli_cpu(requests));
        self.non_zero_memory = self.non_zero_memory.saturating_add(non_zero_memory(requests));
    }

    /// Counts `pod` out (it was counted in before).
    pub fn remove(&mut self, pod: &Pod) {
        let requests = &pod.requests;
        self.total.milli_cpu = self.total.milli_cpu.saturating_sub(requests.milli_cpu);
        self.total.memory = self.total.memory.saturating_sub(requests.memory);
        self.total.ephemeral_storage = self.total.ephemeral_storage.saturating_sub(requests.ephemeral_storage);
        self.total.pods = self.total.pods.saturating_sub(1);
        for resource in &requests.extended {
            if let Some(sum) = self.total.extended.iter_mut().find(|r| r.name == resource.name) {
                sum.amount = sum.amount.saturating_sub(resource.amount);
            }
        }
        self.total.extended.retain(|sum| sum.amount > 0);
        self.non_zero_milli_cpu = self.non_zero_milli_cpu.saturating_sub(non_zero_milli_cpu(requests));
        self.non_zero_memory = self.non_zero_memory.saturating_sub(non_zero_memory(requests));
    }

    /// How much of the extended resource `name` the pods request.
    pub fn extended(&self, name: &str) -> Quantity {
        extended_amount(&self.total.extended, name)
    }
}

/// A node of the table and the pods placed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    node: Node,
    pods: Vec<Pod>,
    requested: Requested,
    pods_with_required_anti_affinity: u32,
}

impl NodeEntry {
    fn new(node: Node) -> Self {
        Self { node, pods: Vec::new(), requested: Requested::default(), pods_with_required_anti_affinity: 0 }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The pods placed on it, in no particular order.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// What its pods request, summed.
    pub fn requested(&self) -> &Requested {
        &self.requested
    }

    /// How many of its pods have required pod anti-affinity terms.
    pub fn pods_with_required_anti_affinity(&self) -> u32 {
        self.pods_with_required_anti_affinity
    }

    /// Places `pod` last; its position.
    fn place(&mut self, pod: Pod) -> usize {
        self.requested.add(&pod);
        if !pod.pod_anti_affinity.required.is_empty() {
            self.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity.saturating_add(1);
        }
        self.pods.push(pod);
        self.pods.len() - 1
    }

    /// Takes out the pod at `position`; the last pod takes its place.
    fn unplace(&mut self, position: usize) -> Option<Pod> {
        if position >= self.pods.len() {
            return None;
        }
        let pod = self.pods.swap_remove(position);
        self.requested.remove(&pod);
        if !pod.pod_anti_affinity.required.is_empty() {
            self.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity.saturating_sub(1);
        }
        Some(pod)
    }
}

/// Hashes numbers the table gives out itself (node indexes, the numbers
/// placed pods are known by): a multiply, for nobody picks them to collide.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumberHasher(u64);

impl std::hash::Hasher for NumberHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, number: u32) {
        self.0 = (self.0 ^ u64::from(number)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Builds [`NumberHasher`]s: for maps and sets keyed by node indexes.
pub type ByNumber = std::hash::BuildHasherDefault<NumberHasher>;

/// Where a placed pod is: its node's index and its position among the
/// node's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    node: u32,
    position: usize,
}

/// The cluster's nodes by index, and the pods placed on each, as the host's
/// changes made them. Placed pods are also indexed by uid and by label, so
/// that a plugin can reach the pods a selector may pick without scanning
/// every pod.
#[derive(Debug, Clone, Default)]
pub struct Table {
    nodes: Vec<Option<NodeEntry>>,
    /// Whether each index holds a node, kept beside `nodes`: a check that
    /// reads a byte per node, not each node's entry.
    present: Vec<bool>,
    /// Placed pods by uid: the number each is known by in `slots` and in
    /// the label index.
    placements: HashMap<String, u32>,
    /// Where each placed pod is, by its number (`None`: free for reuse).
    slots: Vec<Option<Slot>>,
    /// Numbers free for the next pods placed.
    free_slots: Vec<u32>,
    /// Numbers of placed pods, by label key, then value: reading it hashes
    /// no uid.
    labelled: HashMap<String, HashMap<String, HashSet<u32, ByNumber>>>,
    /// Indexes of the nodes holding pods with required anti-affinity terms.
    with_required_anti_affinity: BTreeSet<u32>,
    /// The nodes' labels by key: each value numbered, and each node's.
    node_labels: HashMap<String, Domains>,
    /// The pod (anti-)affinity terms of placed pods, each distinct term of
    /// a namespace and use once, with how many of its owners each node
    /// holds.
    placed_terms: HashMap<(String, TermUse, PodAffinityTerm), HashMap<u32, u32>>,
    /// How many nodes are cordoned (`spec.unschedulable`).
    cordoned: usize,
    /// Each distinct taint of the nodes, with how many nodes carry it.
    taints: HashMap<Taint, u32>,
}

/// How a placed pod holds a pod (anti-)affinity term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TermUse {
    /// Required affinity.
    RequiredAffinity,
    /// Required anti-affinity.
    RequiredAntiAffinity,
    /// Preferred affinity, of this weight.
    PreferredAffinity(i32),
    /// Preferred anti-affinity, of this weight.
    PreferredAntiAffinity(i32),
}

/// Every pod (anti-)affinity term of `pod`, with how it holds it.
fn term_uses(pod: &Pod) -> impl Iterator<Item = (TermUse, &PodAffinityTerm)> {
    let required = pod.pod_affinity.required.iter().map(|term| (TermUse::RequiredAffinity, term));
    let repelling = pod.pod_anti_affinity.required.iter().map(|term| (TermUse::RequiredAntiAffinity, term));
    let preferred = pod.pod_affinity.preferred.iter().map(|w| (TermUse::PreferredAffinity(w.weight), &w.term));
    let unwanted = pod.pod_anti_affinity.preferred.iter().map(|w| (TermUse::PreferredAntiAffinity(w.weight), &w.term));
    required.chain(repelling).chain(preferred).chain(unwanted)
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one change. A change naming an index with no node (or past
    /// [`MAX_NODES`]), or a uid not placed, is ignored.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::NodeSet(index, node) => self.set_node(index, node),
            Change::NodeRemoved(index) => self.remove_node(index),
            Change::PodPlaced(index, pod) => self.place_pod(index, pod),
            Change::PodRemoved(uid) => {
                self.remove_pod(&uid);
            }
        }
    }

    fn set_node(&mut self, index: u32, node: Node) {
        if index >= MAX_NODES {
            return;
        }
        let slot = index as usize;
        if slot >= self.nodes.len() {
            self.nodes.resize_with(slot + 1, || None);
            self.present.resize(slot + 1, false);
        }
        self.present[slot] = true;
        let old = match &mut self.nodes[slot] {
            Some(entry) => Some(std::mem::replace(&mut entry.node, node)),
            empty => {
                *empty = Some(NodeEntry::new(node));
                None
            }
        };
        if let Some(old) = old {
            self.uncount_labels(index, &old);
            self.uncount_taints(&old);
            self.cordoned -= usize::from(old.unschedulable);
        }
        if let Some(Some(entry)) = self.nodes.get(slot) {
            self.cordoned += usize::from(entry.node.unschedulable);
            for taint in &entry.node.taints {
                *self.taints.entry(taint.clone()).or_default() += 1;
            }
            for label in &entry.node.labels {
                match self.node_labels.get_mut(&label.key) {
                    Some(domains) => domains.add(index, &label.value),
                    None => self.node_labels.entry(label.key.clone()).or_default().add(index, &label.value),
                }
            }
        }
    }

    /// Takes the labels of `node`, at `index`, out of the node label
    /// domains.
    fn uncount_labels(&mut self, index: u32, node: &Node) {
        for label in &node.labels {
            let Some(domains) = self.node_labels.get_mut(&label.key) else { continue };
            domains.remove(index, &label.value);
            if domains.is_empty() {
                self.node_labels.remove(&label.key);
            }
        }
    }

    /// Takes `node`'s taints out of the taint counts.
    fn uncount_taints(&mut self, node: &Node) {
        for taint in &node.taints {
            if let Some(count) = self.taints.get_mut(taint) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.taints.remove(taint);
                }
            }
        }
    }

    fn remove_node(&mut self, index: u32) {
        let Some(entry) = self.nodes.get_mut(index as usize).and_then(Option::take) else { return };
        self.present[index as usize] = false;
        self.uncount_labels(index, &entry.node);
        self.uncount_taints(&entry.node);
        self.cordoned -= usize::from(entry.node.unschedulable);
        self.with_required_anti_affinity.remove(&index);
        for pod in &entry.pods {
            self.forget_terms(pod, index);
            if let Some(number) = self.placements.remove(&pod.uid) {
                self.unindex(pod, number);
                self.free_slot(number);
            }
        }
        while matches!(self.nodes.last(), Some(None)) {
            self.nodes.pop();
            self.present.pop();
        }
    }

    fn place_pod(&mut self, index: u32, mut pod: Pod) {
        let Some(entry) = self.node(index) else { return };
        if pod.node_name != entry.node().name {
            pod.node_name.clone_from(&entry.node().name);
        }
        self.remove_pod(&pod.uid);
        if let Some(Some(entry)) = self.nodes.get_mut(index as usize) {
            let number = match self.free_slots.pop() {
                Some(number) => number,
                None => {
                    self.slots.push(None);
                    u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
                }
            };
            for label in &pod.labels {
                let numbers =
                    self.labelled.entry(label.key.clone()).or_default().entry(label.value.clone()).or_default();
                numbers.insert(number);
            }
            for (term_use, term) in term_uses(&pod) {
                let owners = self.placed_terms.entry((pod.namespace.clone(), term_use, term.clone())).or_default();
                *owners.entry(index).or_default() += 1;
            }
            let uid = pod.uid.clone();
            let position = entry.place(pod);
            self.placements.insert(uid, number);
            if let Some(slot) = self.slots.get_mut(number as usize) {
                *slot = Some(Slot { node: index, position });
            }
            if entry.pods_with_required_anti_affinity > 0 {
                self.with_required_anti_affinity.insert(index);
            }
        }
    }

    fn remove_pod(&mut self, uid: &str) -> Option<Pod> {
        let number = self.placements.remove(uid)?;
        let slot = self.slots.get(number as usize).copied().flatten()?;
        self.free_slot(number);
        let entry = self.nodes.get_mut(slot.node as usize)?.as_mut()?;
        let pod = entry.unplace(slot.position)?;
        if entry.pods_with_required_anti_affinity == 0 {
            self.with_required_anti_affinity.remove(&slot.node);
        }
        // The node's last pod now sits where the removed one was.
        if let Some(moved) = entry.pods.get(slot.position)
            && let Some(&moved_number) = self.placements.get(&moved.uid)
            && let Some(Some(moved_slot)) = self.slots.get_mut(moved_number as usize)
        {
            moved_slot.position = slot.position;
        }
        self.unindex(&pod, number);
        self.forget_terms(&pod, slot.node);
        Some(pod)
    }

    /// Takes `pod`'s terms on the node at `index` out of the grouped terms.
    fn forget_terms(&mut self, pod: &Pod, index: u32) {
        for (term_use, term) in term_uses(pod) {
            let key = (pod.namespace.clone(), term_use, term.clone());
            let Some(owners) = self.placed_terms.get_mut(&key) else { continue };
            if let Some(count) = owners.get_mut(&index) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    owners.remove(&index);
                }
            }
            if owners.is_empty() {
                self.placed_terms.remove(&key);
            }
        }
    }

    /// Frees the number of a pod no longer placed.
    fn free_slot(&mut self, number: u32) {
        if let Some(slot) = self.slots.get_mut(number as usize) {
            *slot = None;
            self.free_slots.push(number);
        }
    }

    /// Drops `pod`, placed as `number`, from the label index.
    fn unindex(&mut self, pod: &Pod, number: u32) {
        for label in &pod.labels {
            let Some(values) = self.labelled.get_mut(&label.key) else { continue };
            if let Some(numbers) = values.get_mut(&label.value) {
                numbers.remove(&number);
                if numbers.is_empty() {
                    values.remove(&label.value);
                }
            }
            if values.is_empty() {
                self.labelled.remove(&label.key);
            }
        }
    }

    /// The node at `index`, with its pods.
    pub fn node(&self, index: u32) -> Option<&NodeEntry> {
        self.nodes.get(index as usize)?.as_ref()
    }

    /// Whether the index holds a node (without reading the node).
    pub fn has_node(&self, index: u32) -> bool {
        self.present.get(index as usize).copied().unwrap_or(false)
    }

    /// The pod (anti-)affinity terms of the placed pods, each distinct term
    /// once with its owners' namespace, how they hold it and, by node
    /// index, how many of its owners the node holds: what attracts or
    /// repels a pod, without visiting every pod that has such terms.
    pub fn placed_terms(&self) -> impl Iterator<Item = (&str, TermUse, &PodAffinityTerm, &HashMap<u32, u32>)> {
        self.placed_terms
            .iter()
            .map(|((namespace, term_use, term), owners)| (namespace.as_str(), *term_use, term, owners))
    }

    /// The required anti-affinity terms of the placed pods, grouped as
    /// [`Table::placed_terms`].
    pub fn repelling_terms(&self) -> impl Iterator<Item = (&str, &PodAffinityTerm, &HashMap<u32, u32>)> {
        self.placed_terms()
            .filter(|(_, term_use, _, _)| *term_use == TermUse::RequiredAntiAffinity)
            .map(|(namespace, _, term, owners)| (namespace, term, owners))
    }

    /// The topology domains of the node label `key`: the values the nodes
    /// give it, each numbered, and each node's, read by index without
    /// looking at the nodes' labels.
    pub fn topology(&self, key: &str) -> Topology<'_> {
        Topology::new(self.node_labels.get(key))
    }

    /// The nodes holding pods with required pod anti-affinity terms, by
    /// index, without looking at the others.
    pub fn nodes_with_required_anti_affinity(&self) -> impl Iterator<Item = (u32, &NodeEntry)> {
        self.with_required_anti_affinity.iter().filter_map(|&index| Some((index, self.node(index)?)))
    }

    /// Every node, with its index, in index order.
    pub fn nodes(&self) -> impl Iterator<Item = (u32, &NodeEntry)> {
        self.nodes.iter().zip(0u32..).filter_map(|(entry, index)| entry.as_ref().map(|entry| (index, entry)))
    }

    /// Every distinct taint the nodes carry, each once, without looking at
    /// every node.
    pub fn taints(&self) -> impl Iterator<Item = &Taint> {
        self.taints.keys()
    }

    /// How many nodes are cordoned (`spec.unschedulable`).
    pub fn cordoned_nodes(&self) -> usize {
        self.cordoned
    }

    /// How many nodes the table holds.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|entry| entry.is_some()).count()
    }

    /// The index of the node the pod with `uid` is placed on.
    pub fn placement(&self, uid: &str) -> Option<u32> {
        self.slot_of(uid).map(|slot| slot.node)
    }

    /// The placed pod with `uid`, and its node's index.
    pub fn placed(&self, uid: &str) -> Option<(u32, &Pod)> {
        self.at_slot(*self.placements.get(uid)?)
    }

    /// Where the pod with `uid` is placed.
    fn slot_of(&self, uid: &str) -> Option<Slot> {
        self.slots.get(*self.placements.get(uid)? as usize).copied().flatten()
    }

    /// The placed pod known by `number`, and its node's index.
    fn at_slot(&self, number: u32) -> Option<(u32, &Pod)> {
        let slot = self.slots.get(number as usize).copied().flatten()?;
        let pod = self.node(slot.node)?.pods.get(slot.position)?;
        Some((slot.node, pod))
    }

    /// The placed pods whose label `key` is `value`, with their node's
    /// index.
    pub fn labelled(&self, key: &str, value: &str) -> impl Iterator<Item = (u32, &Pod)> {
        let numbers = self.labelled.get(key).and_then(|values| values.get(value)).into_iter().flatten();
        numbers.filter_map(|&number| self.at_slot(number))
    }

    /// How many pods are placed.
    pub fn pod_count(&self) -> usize {
        self.placements.len()
    }

    /// The table as it is.
    pub fn current(&self) -> View<'_> {
        View { table: self, extra: &[], hidden: HashSet::new() }
    }

    /// The table as `assumptions` would make it: the pods in `without`
    /// (and the placed pods `extra` names again) count as gone, the pods in
    /// `extra` count as placed on their node. Nothing is copied.
    pub fn assuming<'a>(&'a self, assumptions: &'a Assumptions) -> View<'a> {
        let hidden = assumptions
            .without
            .iter()
            .map(String::as_str)
            .chain(assumptions.extra.iter().map(|(_, pod)| pod.uid.as_str()))
            .filter(|uid| self.placements.contains_key(*uid))
            .collect();
        View { table: self, extra: &assumptions.extra, hidden }
    }
}

/// A table read under assumptions (see [`Table::assuming`]).
#[derive(Debug, Clone)]
pub struct View<'a> {
    table: &'a Table,
    extra: &'a [(u32, Pod)],
    hidden: HashSet<&'a str>,
}

impl<'a> View<'a> {
    /// The table underneath.
    pub fn table(&self) -> &'a Table {
        self.table
    }

    /// Whether the view differs from the table at all.
    pub fn assumes_anything(&self) -> bool {
        !self.hidden.is_empty() || !self.extra.is_empty()
    }

    /// The node at `index`.
    pub fn node(&self, index: u32) -> Option<&'a Node> {
        self.table.node(index).map(NodeEntry::node)
    }

    /// Every node, with its index, in index order.
    pub fn nodes(&self) -> impl Iterator<Item = (u32, &'a NodeEntry)> + use<'a> {
        self.table.nodes()
    }

    /// The pods that count as placed on the node at `index`.
    pub fn pods_on(&self, index: u32) -> impl Iterator<Item = &'a Pod> + '_ {
        let placed = self.table.node(index).map_or(&[][..], NodeEntry::pods);
        let extra = self.extra.iter().filter(move |(at, _)| *at == index).map(|(_, pod)| pod);
        placed.iter().filter(|pod| !self.hidden.contains(pod.uid.as_str())).chain(extra)
    }

    /// Every pod that counts as placed, with its node's index.
    pub fn pods(&self) -> impl Iterator<Item = (u32, &'a Pod)> + '_ {
        let extra = self.extra.iter().filter(|(at, _)| self.table.node(*at).is_some()).map(|(at, pod)| (*at, pod));
        self.table
            .nodes()
            .flat_map(|(index, entry)| entry.pods.iter().map(move |pod| (index, pod)))
            .filter(|(_, pod)| !self.hidden.contains(pod.uid.as_str()))
            .chain(extra)
    }

    /// The pods that count as placed and whose label `key` has one of
    /// `values`, with their node's index, found through the table's label
    /// index.
    pub fn pods_labelled<'s>(
        &'s self,
        key: &'s str,
        values: &'s [String],
    ) -> impl Iterator<Item = (u32, &'a Pod)> + 's {
        let distinct =
            values.iter().enumerate().filter(|(i, value)| !values[..*i].contains(value)).map(|(_, value)| value);
        let table = self.table;
        let placed = distinct
            .flat_map(move |value| table.labelled(key, value))
            .filter(|(_, pod)| self.hidden.is_empty() || !self.hidden.contains(pod.uid.as_str()));
        let extra = self
            .extra
            .iter()
            .filter(|(at, _)| table.node(*at).is_some())
            .filter(move |(_, pod)| {
                label_value(&pod.labels, key).is_some_and(|value| values.iter().any(|v| v == value))
            })
            .map(|(at, pod)| (*at, pod));
        placed.chain(extra)
    }

    /// The pods that count as placed and that `selector` may select, with
    /// their node's index: none for no selector; through the label index
    /// when the selector has an `In` requirement; else every pod. Callers
    /// still match each pod against the whole selector.
    pub fn pods_maybe_selected<'s>(
        &'s self,
        selector: Option<&'s LabelSelector>,
    ) -> Box<dyn Iterator<Item = (u32, &'a Pod)> + 's> {
        let Some(selector) = selector else { return Box::new(std::iter::empty()) };
        match selector.iter().find(|requirement| requirement.operator == SelectorOperator::In) {
            Some(requirement) => Box::new(self.pods_labelled(&requirement.key, &requirement.values)),
            None => Box::new(self.pods()),
        }
    }

    /// The indexes of the nodes where some pod that counts as placed may
    /// have required pod anti-affinity terms, each once, in order.
    pub fn nodes_maybe_with_required_anti_affinity(&self) -> BTreeSet<u32> {
        let mut nodes: BTreeSet<u32> = self.table.nodes_with_required_anti_affinity().map(|(index, _)| index).collect();
        let extra = self.extra.iter().filter(|(_, pod)| !pod.pod_anti_affinity.required.is_empty());
        nodes.extend(extra.map(|(at, _)| *at).filter(|at| self.table.node(*at).is_some()));
        nodes
    }

    /// What the pods that count as placed on the node at `index` request,
    /// summed (borrowed from the table when nothing is assumed there).
    pub fn requested_on(&self, index: u32) -> Cow<'a, Requested> {
        let Some(entry) = self.table.node(index) else { return Cow::Owned(Requested::default()) };
        if self.hidden.is_empty() && self.extra.is_empty() {
            return Cow::Borrowed(&entry.requested);
        }
        let hidden_here = || entry.pods.iter().filter(|pod| self.hidden.contains(pod.uid.as_str()));
        let extra_here = || self.extra.iter().filter(|(at, _)| *at == index).map(|(_, pod)| pod);
        if hidden_here().next().is_none() && extra_here().next().is_none() {
            return Cow::Borrowed(&entry.requested);
        }
        let mut requested = entry.requested.clone();
        hidden_here().for_each(|pod| requested.remove(pod));
        extra_here().for_each(|pod| requested.add(pod));
        Cow::Owned(requested)
    }

    /// How many pods count as placed on the node at `index`.
    pub fn pod_count_on(&self, index: u32) -> u64 {
        self.requested_on(index).total.pods
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExtendedResource;
    use crate::testsuite::{node, pod};

    fn requesting(uid: &str, milli_cpu: Quantity, memory: Quantity) -> Pod {
        let mut pod = pod(uid);
        pod.requests.milli_cpu = milli_cpu;
        pod.requests.memory = memory;
        pod.requests.pods = 1;
        pod.requests.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount: 1 }];
        pod
    }

    fn uids_on(view: &View<'_>, index: u32) -> Vec<String> {
        let mut uids: Vec<String> = view.pods_on(index).map(|pod| pod.uid.clone()).collect();
        uids.sort();
        uids
    }

    #[test]
    fn node_set_keeps_the_pods_and_node_removed_drops_them() {
        // Goal: replacing a node keeps its pods and sums; removing it
        // forgets its pods, so that a later node at the index starts empty.
        let mut table = Table::new();
        table.apply(Change::NodeSet(1, node("a")));
        table.apply(Change::PodPlaced(1, requesting("p", 100, 10)));
        table.apply(Change::NodeSet(1, node("a2")));
        let entry = table.node(1).expect("node 1");
        assert_eq!(entry.node().name, "a2");
        assert_eq!(entry.pods().len(), 1);
        assert_eq!(entry.requested().total.milli_cpu, 100);
        table.apply(Change::NodeRemoved(1));
        assert!(table.node(1).is_none());
        assert_eq!(table.placement("p"), None);
        assert_eq!(table.pod_count(), 0);
        table.apply(Change::NodeSet(1, node("b")));
        assert!(table.node(1).expect("node 1").pods().is_empty());
    }

    #[test]
    fn pods_are_summed_as_they_come_and_go() {
        // Goal: the per-node sums follow placements, removals and moves,
        // with non-zero defaults for pods that request nothing.
        let mut table = Table::new();
        table.apply(Change::NodeSet(0, node("a")));
        table.apply(Change::NodeSet(1, node("b")));
        table.apply(Change::PodPlaced(0, requesting("p", 100, 10)));
        table.apply(Change::PodPlaced(0, requesting("q", 0, 0)));
        assert!(table.node(0).expect("node 0").pods().iter().all(|p| p.node_name == "a"), "named by their node");
        let requested = table.node(0).expect("node 0").requested().clone();
        assert_eq!(requested.total.milli_cpu, 100);
        assert_eq!(requested.total.pods, 2);
        assert_eq!(requested.extended("example.com/gpu"), 2);
        assert_eq!(requested.non_zero_milli_cpu, 200);
        assert_eq!(requested.non_zero_memory, 10 + 200 * 1024 * 1024);
        // Placing a placed pod again moves it.
        table.apply(Change::PodPlaced(1, requesting("p", 100, 10)));
        assert_eq!(table.placement("p"), Some(1));
        assert_eq!(table.node(0).expect("node 0").requested().total.milli_cpu, 0);
        assert_eq!(table.node(1).expect("node 1").requested().total.milli_cpu, 100);
        table.apply(Change::PodRemoved("q".into()));
        assert_eq!(table.node(0).expect("node 0").requested(), &Requested::default());
    }

    #[test]
    fn unknown_indexes_and_uids_are_ignored() {
        // Goal: no change naming something absent panics or alters the
        // table, huge indexes included.
        let mut table = Table::new();
        table.apply(Change::NodeSet(0, node("a")));
        table.apply(Change::PodPlaced(0, pod("p")));
        let before = table.clone();
        table.apply(Change::PodPlaced(5, pod("q")));
        table.apply(Change::PodPlaced(5, pod("p")));
        table.apply(Change::PodRemoved("nobody".into()));
        table.apply(Change::NodeRemoved(u32::MAX));
        table.apply(Change::NodeSet(u32::MAX, node("huge")));
        table.apply(Change::NodeSet(MAX_NODES, node("huge")));
        assert_eq!(table.node_count(), 1);
        assert_eq!(table.placement("p"), before.placement("p"));
        assert_eq!(table.node(0), before.node(0));
        assert!(table.node(u32::MAX).is_none());
    }

    #[test]
    fn assumptions_hide_and_add_pods_without_copying() {
        // Goal: a view counts `without` pods as gone and `extra` pods as
        // placed (moving a placed pod when its uid is placed already).
        let mut table = Table::new();
        table.apply(Change::NodeSet(0, node("a")));
        table.apply(Change::NodeSet(1, node("b")));
        table.apply(Change::PodPlaced(
            0,
            Pod { labels: crate::testsuite::labels(&[("app", "web")]), ..requesting("p", 100, 10) },
        ));
        table.apply(Change::PodPlaced(0, requesting("q", 300, 10)));
        let assumptions = Assumptions {
            without: vec!["p".into(), "ghost".into()],
            extra: vec![
                (1, requesting("q", 300, 10)),
                (1, Pod { labels: crate::testsuite::labels(&[("app", "web")]), ..requesting("n", 50, 10) }),
                (9, requesting("x", 1, 1)),
            ],
        };
        let view = table.assuming(&assumptions);
        assert!(view.assumes_anything());
        assert!(uids_on(&view, 0).is_empty());
        assert_eq!(uids_on(&view, 1), vec!["n", "q"]);
        assert_eq!(view.requested_on(0).total.milli_cpu, 0);
        assert_eq!(view.requested_on(1).total.milli_cpu, 350);
        assert_eq!(view.pod_count_on(1), 2);
        assert_eq!(view.pod_count_on(7), 0);
        let wanted = vec!["web".to_owned()];
        let labelled: Vec<(u32, String)> =
            view.pods_labelled("app", &wanted).map(|(at, pod)| (at, pod.uid.clone())).collect();
        assert_eq!(labelled, vec![(1, "n".to_owned())]);
        let selector = vec![crate::testsuite::requirement("app", SelectorOperator::In, &["web"])];
        assert_eq!(view.pods_maybe_selected(Some(&selector)).count(), 1);
        assert_eq!(view.pods_maybe_selected(None).count(), 0);
        assert_eq!(view.pods_maybe_selected(Some(&Vec::new())).count(), 2);
        assert_eq!(view.pods().count(), 2);
        let current = table.current();
        assert!(!current.assumes_anything());
        assert_eq!(current.pods_labelled("app", &wanted).count(), 1);
        assert!(matches!(current.requested_on(0), Cow::Borrowed(_)));
        assert_eq!(uids_on(&current, 0), vec!["p", "q"]);
    }

    #[test]
    fn placed_anti_affinity_terms_are_grouped_by_term_and_namespace() {
        // Goal: pods sharing a term and a namespace share one group that
        // counts them per node; groups follow removals of pods and nodes.
        let repelling = |uid: &str, namespace: &str| {
            let mut pod = pod(uid);
            pod.namespace = namespace.into();
            let term = crate::PodAffinityTerm { topology_key: "zone".into(), ..crate::PodAffinityTerm::default() };
            pod.pod_anti_affinity.required = vec![term];
            pod
        };
        let groups = |table: &Table| {
            let mut groups: Vec<(String, Vec<(u32, u32)>)> = table
                .repelling_terms()
                .map(|(namespace, _, owners)| {
                    let mut owners: Vec<(u32, u32)> = owners.iter().map(|(i, n)| (*i, *n)).collect();
                    owners.sort_unstable();
                    (namespace.to_owned(), owners)
                })
                .collect();
            groups.sort();
            groups
        };
        let mut table = Table::new();
        table.apply(Change::NodeSet(0, node("a")));
        table.apply(Change::NodeSet(1, node("b")));
        table.apply(Change::PodPlaced(0, repelling("p1", "x")));
        table.apply(Change::PodPlaced(0, repelling("p2", "x")));
        table.apply(Change::PodPlaced(1, repelling("p3", "x")));
        table.apply(Change::PodPlaced(1, repelling("q1", "y")));
        assert_eq!(groups(&table), [("x".to_owned(), vec![(0, 2), (1, 1)]), ("y".to_owned(), vec![(1, 1)])]);
        table.apply(Change::PodRemoved("p1".into()));
        table.apply(Change::NodeRemoved(1));
        assert_eq!(groups(&table), [("x".to_owned(), vec![(0, 1)])]);
        table.apply(Change::PodRemoved("p2".into()));
        assert!(groups(&table).is_empty());
    }

    #[test]
    fn the_domains_of_a_label_follow_the_nodes() {
        // Goal: each value of a node label is listed while a node carries
        // it, and each node reads back its own: through a node's
        // relabelling and removal.
        use crate::testsuite::labelled_node;
        let zones = |table: &Table| {
            let topology = table.topology("zone");
            for (index, entry) in table.nodes() {
                let value = topology.domain(index).and_then(|domain| topology.value(domain));
                assert_eq!(value, label_value(&entry.node().labels, "zone"));
            }
            let mut zones: Vec<String> = topology.domains().map(|(_, value)| value.to_owned()).collect();
            zones.sort();
            zones
        };
        let mut table = Table::new();
        table.apply(Change::NodeSet(0, labelled_node("a", &[("zone", "z1")])));
        table.apply(Change::NodeSet(1, labelled_node("b", &[("zone", "z1")])));
        table.apply(Change::NodeSet(2, labelled_node("c", &[("zone", "z2")])));
        assert_eq!(zones(&table), ["z1", "z2"]);
        table.apply(Change::NodeSet(2, labelled_node("c", &[("zone", "z3")])));
        assert_eq!(zones(&table), ["z1", "z3"]);
        table.apply(Change::NodeRemoved(0));
        assert_eq!(zones(&table), ["z1", "z3"], "node b is still in z1");
        table.apply(Change::NodeRemoved(1));
        table.apply(Change::NodeSet(2, labelled_node("c", &[])));
        assert!(zones(&table).is_empty());
        assert!(table.topology("nothing").is_empty());
        assert_eq!(table.topology("nothing").domain(2), None);
    }

    #[test]
    fn nodes_count_their_pods_with_required_anti_affinity() {
        // Goal: the per-node counts and the indexes of nodes holding such
        // pods follow placements and removals, and a view also counts
        // assumed pods.
        let repelling = |uid: &str| {
            let mut pod = pod(uid);
            pod.pod_anti_affinity.required = vec![crate::PodAffinityTerm::default()];
            pod
        };
        let mut table = Table::new();
        table.apply(Change::NodeSet(0, node("a")));
        table.apply(Change::NodeSet(1, node("b")));
        table.apply(Change::PodPlaced(0, repelling("r1")));
        table.apply(Change::PodPlaced(0, repelling("r2")));
        table.apply(Change::PodPlaced(0, pod("calm")));
        table.apply(Change::PodRemoved("r2".into()));
        let entry = table.node(0).expect("node 0");
        assert_eq!(entry.pods_with_required_anti_affinity(), 1);
        let indexes = |nodes: BTreeSet<u32>| nodes.into_iter().collect::<Vec<_>>();
        assert_eq!(indexes(table.current().nodes_maybe_with_required_anti_affinity()), [0]);
        let assumptions = Assumptions { without: Vec::new(), extra: vec![(1, repelling("r3"))] };
        assert_eq!(indexes(table.assuming(&assumptions).nodes_maybe_with_required_anti_affinity()), [0, 1]);
        table.apply(Change::PodRemoved("r1".into()));
        assert_eq!(table.node(0).expect("node 0").pods_with_required_anti_affinity(), 0);
        assert!(table.nodes_with_required_anti_affinity().next().is_none());
        table.apply(Change::PodPlaced(1, repelling("r4")));
        table.apply(Change::NodeRemoved(1));
        assert!(table.nodes_with_required_anti_affinity().next().is_none(), "a removed node leaves the index");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A change over a few indexes (some past the nodes set) and a few
        /// uids, so that sequences revisit the same nodes and pods.
        fn change() -> impl Strategy<Value = Change> {
            let index = 0u32..6;
            let uid = (0u8..8).prop_map(|n| format!("pod-{n}"));
            prop_oneof![
                index.clone().prop_map(|i| {
                    let zone = format!("zone-{}", i % 3);
                    Change::NodeSet(i, crate::testsuite::labelled_node(&format!("node-{i}"), &[("zone", &zone)]))
                }),
                index.clone().prop_map(Change::NodeRemoved),
                (index, uid.clone(), 0u64..3000, 0u64..3, 0u64..2, 0u8..3, 0u8..4).prop_map(
                    |(i, uid, cpu, gpus, memory, app, terms)| {
                        let mut pod = requesting(&uid, cpu, memory);
                        pod.requests.extended[0].amount = gpus;
                        pod.labels = crate::testsuite::labels(&[("app", &format!("app-{app}"))]);
                        let term =
                            |key: &str| PodAffinityTerm { topology_key: key.into(), ..PodAffinityTerm::default() };
                        if terms & 1 != 0 {
                            pod.pod_anti_affinity.required = vec![term("zone")];
                        }
                        if terms & 2 != 0 {
                            let weighted = crate::WeightedPodAffinityTerm { weight: 5, term: term("host") };
                            pod.pod_affinity.preferred = vec![weighted];
                        }
                        Change::PodPlaced(i, pod)
                    }
                ),
                uid.prop_map(Change::PodRemoved),
            ]
        }

        /// What a node's pods request, summed from scratch.
        fn recomputed(entry: &NodeEntry) -> Requested {
            let mut requested = Requested::default();
            entry.pods().iter().for_each(|pod| requested.add(pod));
            requested.total.extended.retain(|sum| sum.amount > 0);
            requested.total.extended.sort_by(|a, b| a.name.cmp(&b.name));
            requested
        }

        proptest! {
            #[test]
            fn state_kept_incrementally_equals_state_recomputed(changes in prop::collection::vec(change(), 0..60)) {
                // Goal: whatever the order of changes, each node's running
                // sums equal its pods' requests summed anew, every placed
                // uid is on the node the table says, the label indexes
                // and the grouped (anti-)affinity terms equal what a scan
                // of the nodes and pods finds, and nothing panics.
                let mut table = Table::new();
                for change in changes {
                    table.apply(change);
                }
                let mut pods = 0;
                for (index, entry) in table.nodes() {
                    let mut kept = entry.requested().clone();
                    kept.total.extended.sort_by(|a, b| a.name.cmp(&b.name));
                    prop_assert_eq!(kept, recomputed(entry));
                    for pod in entry.pods() {
                        prop_assert_eq!(table.placed(&pod.uid), Some((index, pod)));
                    }
                    pods += entry.pods().len();
                }
                prop_assert_eq!(pods, table.pod_count());
                // Which indexes hold a node, read without the nodes.
                for index in 0..12 {
                    prop_assert_eq!(table.has_node(index), table.node(index).is_some(), "index {}", index);
                }
                // The label index finds exactly the pods a scan finds.
                let values = vec!["app-0".to_owned(), "app-2".to_owned(), "app-0".to_owned()];
                let view = table.current();
                let mut indexed: Vec<&str> = view.pods_labelled("app", &values).map(|(_, pod)| pod.uid.as_str()).collect();
                let mut scanned: Vec<&str> = view
                    .pods()
                    .filter(|(_, pod)| pod.labels.iter().any(|l| l.value == "app-0" || l.value == "app-2"))
                    .map(|(_, pod)| pod.uid.as_str())
                    .collect();
                indexed.sort_unstable();
                scanned.sort_unstable();
                prop_assert_eq!(indexed, scanned);
                // The grouped terms count exactly the terms the placed pods hold.
                let mut held: HashMap<(String, TermUse, PodAffinityTerm), HashMap<u32, u32>> = HashMap::new();
                for (index, entry) in table.nodes() {
                    for pod in entry.pods() {
                        for (term_use, term) in term_uses(pod) {
                            let key = (pod.namespace.clone(), term_use, term.clone());
                            *held.entry(key).or_default().entry(index).or_default() += 1;
                        }
                    }
                }
                let grouped: HashMap<(String, TermUse, PodAffinityTerm), HashMap<u32, u32>> = table
                    .placed_terms()
                    .map(|(namespace, term_use, term, owners)| ((namespace.to_owned(), term_use, term.clone()), owners.clone()))
                    .collect();
                prop_assert_eq!(grouped, held);
                // The zone's domains are exactly the nodes' zones, and each
                // node's domain is its zone's.
                let topology = table.topology("zone");
                for (index, entry) in table.nodes() {
                    let value = topology.domain(index).and_then(|domain| topology.value(domain));
                    prop_assert_eq!(value, label_value(&entry.node().labels, "zone"));
                }
                let mut listed: Vec<&str> = topology.domains().map(|(_, value)| value).collect();
                let mut zones: Vec<&str> = table
                    .nodes()
                    .filter_map(|(_, entry)| label_value(&entry.node().labels, "zone"))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                listed.sort_unstable();
                zones.sort_unstable();
                prop_assert_eq!(listed, zones);
            }
        }
    }
}
