//! Builders for the records plugins' tests use.

use crate::{
    Label, Node, NodeRequirement, Pod, Resources, SelectorOperator, SelectorRequirement, Taint, TaintEffect,
    Toleration, TolerationOperator,
};

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(key, value)| Label { key: (*key).into(), value: (*value).into() }).collect()
}

/// A node named `name` with nothing else.
pub fn node(name: &str) -> Node {
    Node { name: name.into(), ..Node::default() }
}

/// A node named `name` with `labels`.
pub fn labelled_node(name: &str, pairs: &[(&str, &str)]) -> Node {
    Node { name: name.into(), labels: labels(pairs), ..Node::default() }
}

/// A node named `name` that can give `milli_cpu`, `memory` and `pods`.
pub fn sized_node(name: &str, milli_cpu: u64, memory: u64, pods: u64) -> Node {
    Node {
        name: name.into(),
        allocatable: Resources { milli_cpu, memory, pods, ..Resources::default() },
        ..Node::default()
    }
}

/// A pod of namespace `default` whose uid and name are `uid`, requesting
/// one pod.
pub fn pod(uid: &str) -> Pod {
    Pod {
        uid: uid.into(),
        namespace: "default".into(),
        name: uid.into(),
        requests: Resources { pods: 1, ..Resources::default() },
        ..Pod::default()
    }
}

/// A pod like [`pod`] with `labels`.
pub fn labelled_pod(uid: &str, pairs: &[(&str, &str)]) -> Pod {
    Pod { labels: labels(pairs), ..pod(uid) }
}

/// A pod like [`pod`] requesting `milli_cpu` and `memory`.
pub fn requesting_pod(uid: &str, milli_cpu: u64, memory: u64) -> Pod {
    let mut pod = pod(uid);
    pod.requests.milli_cpu = milli_cpu;
    pod.requests.memory = memory;
    pod
}

/// A taint.
pub fn taint(key: &str, value: &str, effect: TaintEffect) -> Taint {
    Taint { key: key.into(), value: value.into(), effect }
}

/// A toleration.
pub fn toleration(key: &str, operator: TolerationOperator, value: &str, effect: Option<TaintEffect>) -> Toleration {
    Toleration { key: key.into(), operator, value: value.into(), effect }
}

/// A label selector requirement.
pub fn requirement(key: &str, operator: SelectorOperator, values: &[&str]) -> SelectorRequirement {
    SelectorRequirement { key: key.into(), operator, values: values.iter().map(|value| (*value).into()).collect() }
}

/// A label selector of `matchLabels` pairs.
pub fn match_labels(pairs: &[(&str, &str)]) -> Vec<SelectorRequirement> {
    pairs.iter().map(|(key, value)| requirement(key, SelectorOperator::In, &[value])).collect()
}

/// A node selector requirement.
pub fn node_requirement(key: &str, operator: crate::NodeOperator, values: &[&str]) -> NodeRequirement {
    NodeRequirement { key: key.into(), operator, values: values.iter().map(|value| (*value).into()).collect() }
}
