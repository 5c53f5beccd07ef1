//! Pods and Nodes as JSON turned into the records scheduler plugins read:
//! once per change of the object, never per scheduling call.

use std::collections::{BTreeMap, HashMap};

use engenho_control::quantity::Quantity;
use engenho_scheduler as sdk;
use serde_json::Value;

/// The label every node carries with its own name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The record of `node` (a Node object).
pub fn node(node: &Value) -> sdk::Node {
    let spec = node.get("spec");
    sdk::Node {
        name: text(node.pointer("/metadata/name")),
        labels: labels(node.pointer("/metadata/labels")),
        taints: items(spec.and_then(|s| s.get("taints"))).filter_map(taint).collect(),
        unschedulable: spec.and_then(|s| s.get("unschedulable")).and_then(Value::as_bool).unwrap_or(false),
        allocatable: resources(node.pointer("/status/allocatable")),
    }
}

/// The record of `pod` (a Pod object) in a namespace labelled
/// `namespace_labels`. Its affinity terms name the namespaces they cover:
/// `namespaces_selected` resolves a term's `namespaceSelector` to the
/// namespaces it selects now.
pub fn pod(
    pod: &Value,
    namespace_labels: &BTreeMap<String, String>,
    namespaces_selected: &dyn Fn(&sdk::LabelSelector) -> Vec<String>,
) -> sdk::Pod {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let namespace = text(pod.pointer("/metadata/namespace"));
    let labels = labels(pod.pointer("/metadata/labels"));
    let affinity = spec.get("affinity");
    let terms =
        |which: &str| pod_affinity(affinity.and_then(|a| a.get(which)), &namespace, &labels, namespaces_selected);
    sdk::Pod {
        uid: text(pod.pointer("/metadata/uid")),
        name: text(pod.pointer("/metadata/name")),
        namespace_labels: namespace_labels.iter().map(|(k, v)| label(k, v)).collect(),
        requests: requests(spec),
        priority: spec.get("priority").and_then(Value::as_i64).and_then(|p| i32::try_from(p).ok()).unwrap_or(0),
        node_name: text(spec.get("nodeName")),
        node_selector: self::labels(spec.get("nodeSelector")),
        node_affinity: affinity.and_then(|a| a.get("nodeAffinity")).map(node_affinity),
        tolerations: items(spec.get("tolerations")).map(toleration).collect(),
        pod_affinity: terms("podAffinity"),
        pod_anti_affinity: terms("podAntiAffinity"),
        spread_constraints: items(spec.get("topologySpreadConstraints"))
            .filter_map(|c| spread_constraint(c, &labels))
            .collect(),
        default_spread_selector: None,
        namespace,
        labels,
    }
}

/// The profile a pod names when it names none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// The scheduler profile `pod` names (`spec.schedulerName`).
pub fn scheduler_name(pod: &Value) -> &str {
    pod.pointer("/spec/schedulerName").and_then(Value::as_str).unwrap_or(DEFAULT_SCHEDULER_NAME)
}

/// Whether `pod` has run to its end (`Succeeded` or `Failed`): it holds
/// no node's room.
pub fn finished(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

/// Whether `pod` waits on scheduling gates: it is not to be placed yet.
pub fn gated(pod: &Value) -> bool {
    pod.pointer("/spec/schedulingGates").and_then(Value::as_array).is_some_and(|g| !g.is_empty())
}

/// What gives a pod of a namespace, with labels, its default spread
/// selector (`None`: it has none).
pub type DefaultSpread = dyn Fn(&str, &BTreeMap<String, String>) -> Option<sdk::LabelSelector> + Send + Sync;

/// The labels of every namespace, by name: what a pod's record reads.
pub type NamespaceLabels = HashMap<String, BTreeMap<String, String>>;

/// The record of `pod` as the scheduler keeps it: its namespace's labels
/// from `namespaces`, its affinity terms' namespace selectors resolved
/// against them, and the selector `default_spread` gives it (what default
/// topology spread constraints count).
pub fn pod_record(pod: &Value, namespaces: &NamespaceLabels, default_spread: &DefaultSpread) -> sdk::Pod {
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
    let empty = BTreeMap::new();
    let labels = namespaces.get(namespace).unwrap_or(&empty);
    let selected = |selector: &sdk::LabelSelector| {
        namespaces.iter().filter(|(_, l)| selects(selector, l)).map(|(n, _)| n.clone()).collect()
    };
    let mut record = self::pod(pod, labels, &selected);
    let pod_labels: BTreeMap<String, String> = record.labels.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
    record.default_spread_selector = default_spread(namespace, &pod_labels);
    record
}

/// What a pod requests, as kube-scheduler counts it: its containers' sum
/// (with restartable init containers, which run beside them), or the
/// largest init container (with the restartable ones started before it)
/// when that is larger; plus the pod's overhead; `pods` is 1.
pub fn requests(spec: &Value) -> sdk::Resources {
    let mut containers = Amounts::default();
    for container in items(spec.get("containers")) {
        containers.add(&Amounts::of(container.pointer("/resources/requests")));
    }
    let (mut sidecars, mut init_peak) = (Amounts::default(), Amounts::default());
    for init in items(spec.get("initContainers")) {
        let amounts = Amounts::of(init.pointer("/resources/requests"));
        if init.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            sidecars.add(&amounts);
            init_peak.raise(&sidecars);
        } else {
            let mut running = amounts;
            running.add(&sidecars);
            init_peak.raise(&running);
        }
    }
    containers.add(&sidecars);
    containers.raise(&init_peak);
    containers.add(&Amounts::of(spec.get("overhead")));
    containers.into_resources(1)
}

/// Amounts of resources by name, as the scheduler counts them.
#[derive(Default)]
struct Amounts(BTreeMap<String, u64>);

impl Amounts {
    /// The amounts of a `requests`-like map.
    fn of(map: Option<&Value>) -> Self {
        let mut amounts = Self::default();
        for (name, value) in map.and_then(Value::as_object).into_iter().flatten() {
            if let Some(amount) = value.as_str().and_then(|v| amount(name, v)) {
                amounts.0.insert(name.clone(), amount);
            }
        }
        amounts
    }

    fn add(&mut self, other: &Self) {
        for (name, amount) in &other.0 {
            let entry = self.0.entry(name.clone()).or_default();
            *entry = entry.saturating_add(*amount);
        }
    }

    fn raise(&mut self, other: &Self) {
        for (name, amount) in &other.0 {
            let entry = self.0.entry(name.clone()).or_default();
            *entry = (*entry).max(*amount);
        }
    }

    fn into_resources(mut self, pods: u64) -> sdk::Resources {
        let mut take = |name: &str| self.0.remove(name).unwrap_or(0);
        let (milli_cpu, memory, ephemeral_storage) = (take("cpu"), take("memory"), take("ephemeral-storage"));
        let counted = take("pods");
        sdk::Resources {
            milli_cpu,
            memory,
            ephemeral_storage,
            pods: if pods == 0 { counted } else { pods },
            extended: self
                .0
                .into_iter()
                .filter(|(name, _)| is_extended(name))
                .map(|(name, amount)| sdk::ExtendedResource { name, amount })
                .collect(),
        }
    }
}

/// Whether resource `name` is one the scheduler counts beside CPU, memory,
/// storage and pods: an extended resource (a domain-qualified name outside
/// `kubernetes.io/`) or a hugepage size.
fn is_extended(name: &str) -> bool {
    name.starts_with("hugepages-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests."))
}

/// `text` as an amount of resource `name`: millicores for CPU, whole
/// units (rounded up) for everything else; none when it is not a quantity
/// or is negative.
fn amount(name: &str, text: &str) -> Option<u64> {
    let quantity = Quantity::parse(text).ok().filter(|q| !q.is_negative())?;
    let value = if name == "cpu" { quantity.milli_value() } else { quantity.whole_units_up().milli_value() / 1000 };
    u64::try_from(value).ok()
}

/// The resources of an `allocatable`-like map (`pods` as given).
fn resources(map: Option<&Value>) -> sdk::Resources {
    Amounts::of(map).into_resources(0)
}

fn text(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn items(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    items(value).filter_map(Value::as_str).map(str::to_owned).collect()
}

fn label(key: &str, value: &str) -> sdk::Label {
    sdk::Label { key: key.to_owned(), value: value.to_owned() }
}

fn labels(map: Option<&Value>) -> Vec<sdk::Label> {
    map.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| label(k, v.as_str().unwrap_or_default()))
        .collect()
}

fn effect(text: &str) -> Option<sdk::TaintEffect> {
    match text {
        "NoSchedule" => Some(sdk::TaintEffect::NoSchedule),
        "PreferNoSchedule" => Some(sdk::TaintEffect::PreferNoSchedule),
        "NoExecute" => Some(sdk::TaintEffect::NoExecute),
        _ => None,
    }
}

fn taint(taint: &Value) -> Option<sdk::Taint> {
    Some(sdk::Taint {
        key: text(taint.get("key")),
        value: text(taint.get("value")),
        effect: effect(taint.get("effect")?.as_str()?)?,
    })
}

fn toleration(toleration: &Value) -> sdk::Toleration {
    sdk::Toleration {
        key: text(toleration.get("key")),
        operator: match toleration.get("operator").and_then(Value::as_str) {
            Some("Exists") => sdk::TolerationOperator::Exists,
            _ => sdk::TolerationOperator::Equal,
        },
        value: text(toleration.get("value")),
        effect: toleration.get("effect").and_then(Value::as_str).and_then(effect),
    }
}

/// A `metav1.LabelSelector` as requirements; none when it is absent (a
/// selector that selects nothing where Kubernetes reads a missing one so).
pub fn label_selector(selector: Option<&Value>) -> Option<sdk::LabelSelector> {
    let selector = selector.filter(|s| !s.is_null())?;
    let mut requirements: sdk::LabelSelector = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(key, value)| sdk::SelectorRequirement {
            key: key.clone(),
            operator: sdk::SelectorOperator::In,
            values: vec![value.as_str().unwrap_or_default().to_owned()],
        })
        .collect();
    for expression in items(selector.get("matchExpressions")) {
        let operator = match expression.get("operator").and_then(Value::as_str) {
            Some("In") => sdk::SelectorOperator::In,
            Some("NotIn") => sdk::SelectorOperator::NotIn,
            Some("Exists") => sdk::SelectorOperator::Exists,
            Some("DoesNotExist") => sdk::SelectorOperator::DoesNotExist,
            _ => continue,
        };
        requirements.push(sdk::SelectorRequirement {
            key: text(expression.get("key")),
            operator,
            values: strings(expression.get("values")),
        });
    }
    Some(requirements)
}

/// Whether `selector` selects an object labelled `labels`.
pub fn selects(selector: &sdk::LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|r| {
        let value = labels.get(&r.key);
        match r.operator {
            sdk::SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
            sdk::SelectorOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
            sdk::SelectorOperator::Exists => value.is_some(),
            sdk::SelectorOperator::DoesNotExist => value.is_none(),
        }
    })
}

fn node_requirements(requirements: Option<&Value>) -> Vec<sdk::NodeRequirement> {
    items(requirements)
        .filter_map(|r| {
            let operator = match r.get("operator").and_then(Value::as_str)? {
                "In" => sdk::NodeOperator::In,
                "NotIn" => sdk::NodeOperator::NotIn,
                "Exists" => sdk::NodeOperator::Exists,
                "DoesNotExist" => sdk::NodeOperator::DoesNotExist,
                "Gt" => sdk::NodeOperator::Gt,
                "Lt" => sdk::NodeOperator::Lt,
                _ => return None,
            };
            Some(sdk::NodeRequirement { key: text(r.get("key")), operator, values: strings(r.get("values")) })
        })
        .collect()
}

fn node_term(term: &Value) -> sdk::NodeSelectorTerm {
    sdk::NodeSelectorTerm {
        match_expressions: node_requirements(term.get("matchExpressions")),
        match_fields: node_requirements(term.get("matchFields")),
    }
}

fn node_affinity(affinity: &Value) -> sdk::NodeAffinity {
    let required = affinity
        .get("requiredDuringSchedulingIgnoredDuringExecution")
        .filter(|r| !r.is_null())
        .map(|r| items(r.get("nodeSelectorTerms")).map(node_term).collect());
    let preferred = items(affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))
        .map(|p| sdk::PreferredNodeTerm {
            weight: weight(p),
            preference: p.get("preference").map(node_term).unwrap_or_default(),
        })
        .collect();
    sdk::NodeAffinity { required, preferred }
}

fn weight(weighted: &Value) -> i32 {
    weighted.get("weight").and_then(Value::as_i64).and_then(|w| i32::try_from(w).ok()).unwrap_or(0)
}

/// A pod's (anti-)affinity term, its namespaces resolved as Kubernetes
/// reads them: the listed ones, those `namespaceSelector` selects, and the
/// pod's own when the term names neither. A term's `matchLabelKeys` and
/// `mismatchLabelKeys` join its selector with the pod's values.
fn affinity_term(
    term: &Value,
    namespace: &str,
    labels: &[sdk::Label],
    namespaces_selected: &dyn Fn(&sdk::LabelSelector) -> Vec<String>,
) -> sdk::PodAffinityTerm {
    let mut namespaces = strings(term.get("namespaces"));
    let namespace_selector = label_selector(term.get("namespaceSelector"));
    if let Some(selector) = &namespace_selector {
        namespaces.extend(namespaces_selected(selector));
    }
    if namespaces.is_empty() && namespace_selector.is_none() {
        namespaces.push(namespace.to_owned());
    }
    namespaces.sort();
    namespaces.dedup();
    let mut selector = label_selector(term.get("labelSelector"));
    if let Some(selector) = &mut selector {
        join_label_keys(selector, term.get("matchLabelKeys"), labels, sdk::SelectorOperator::In);
        join_label_keys(selector, term.get("mismatchLabelKeys"), labels, sdk::SelectorOperator::NotIn);
    }
    sdk::PodAffinityTerm { selector, namespaces, namespace_selector, topology_key: text(term.get("topologyKey")) }
}

/// Adds to `selector` a requirement per key of `keys` that the pod
/// carries: its value, compared with `operator`.
fn join_label_keys(
    selector: &mut sdk::LabelSelector,
    keys: Option<&Value>,
    labels: &[sdk::Label],
    operator: sdk::SelectorOperator,
) {
    for key in items(keys).filter_map(Value::as_str) {
        if let Some(label) = labels.iter().find(|l| l.key == key) {
            selector.push(sdk::SelectorRequirement {
                key: key.to_owned(),
                operator,
                values: vec![label.value.clone()],
            });
        }
    }
}

fn pod_affinity(
    affinity: Option<&Value>,
    namespace: &str,
    labels: &[sdk::Label],
    namespaces_selected: &dyn Fn(&sdk::LabelSelector) -> Vec<String>,
) -> sdk::PodAffinity {
    let Some(affinity) = affinity else { return sdk::PodAffinity::default() };
    sdk::PodAffinity {
        required: items(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
            .map(|t| affinity_term(t, namespace, labels, namespaces_selected))
            .collect(),
        preferred: items(affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))
            .map(|p| sdk::WeightedPodAffinityTerm {
                weight: weight(p),
                term: affinity_term(
                    p.get("podAffinityTerm").unwrap_or(&Value::Null),
                    namespace,
                    labels,
                    namespaces_selected,
                ),
            })
            .collect(),
    }
}

fn spread_constraint(constraint: &Value, labels: &[sdk::Label]) -> Option<sdk::SpreadConstraint> {
    let policy = |field: &str, default: sdk::InclusionPolicy| match constraint.get(field).and_then(Value::as_str) {
        Some("Honor") => sdk::InclusionPolicy::Honor,
        Some("Ignore") => sdk::InclusionPolicy::Ignore,
        _ => default,
    };
    let mut selector = label_selector(constraint.get("labelSelector"));
    if let Some(selector) = &mut selector {
        join_label_keys(selector, constraint.get("matchLabelKeys"), labels, sdk::SelectorOperator::In);
    }
    Some(sdk::SpreadConstraint {
        max_skew: u32::try_from(constraint.get("maxSkew")?.as_u64()?).ok()?,
        topology_key: text(constraint.get("topologyKey")),
        when_unsatisfiable: match constraint.get("whenUnsatisfiable").and_then(Value::as_str) {
            Some("ScheduleAnyway") => sdk::UnsatisfiableAction::ScheduleAnyway,
            _ => sdk::UnsatisfiableAction::DoNotSchedule,
        },
        selector,
        min_domains: constraint
            .get("minDomains")
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0),
        node_affinity_policy: policy("nodeAffinityPolicy", sdk::InclusionPolicy::Honor),
        node_taints_policy: policy("nodeTaintsPolicy", sdk::InclusionPolicy::Ignore),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_take_the_larger_of_containers_and_init_containers_plus_overhead() {
        let spec = json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m", "example.com/gpu": "1"}}},
            ],
            "initContainers": [
                {"name": "setup", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}},
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
            ],
            "overhead": {"cpu": "10m"},
        });
        let requests = requests(&spec);
        // max(100m + 200m + 50m sidecar, 1 init) + 10m overhead.
        assert_eq!(requests.milli_cpu, 1010);
        assert_eq!(requests.memory, 64 << 20);
        assert_eq!(requests.pods, 1);
        assert_eq!(requests.extended, vec![sdk::ExtendedResource { name: "example.com/gpu".into(), amount: 1 }]);
    }

    #[test]
    fn a_sidecar_started_before_an_init_container_counts_beside_it() {
        let spec = json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "800m"}}},
            ],
        });
        assert_eq!(requests(&spec).milli_cpu, 1300);
    }

    #[test]
    fn nodes_carry_allocatable_taints_and_cordons() {
        let node = node(&json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "spec": {"unschedulable": true, "taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                {"key": "broken", "effect": "Sometimes"}]},
            "status": {"allocatable": {"cpu": "3500m", "memory": "8Gi", "pods": "110", "ephemeral-storage": "10Gi"}},
        }));
        assert_eq!(node.name, "n1");
        assert!(node.unschedulable);
        assert_eq!(node.taints.len(), 1);
        assert_eq!(node.allocatable.milli_cpu, 3500);
        assert_eq!(node.allocatable.memory, 8 << 30);
        assert_eq!(node.allocatable.pods, 110);
        assert_eq!(node.allocatable.ephemeral_storage, 10 << 30);
    }

    #[test]
    fn affinity_terms_resolve_their_namespaces() {
        let pod = pod(
            &json!({
                "metadata": {"name": "p", "namespace": "web", "uid": "u", "labels": {"app": "web", "rev": "7"}},
                "spec": {"affinity": {
                    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": HOSTNAME_LABEL,
                         "matchLabelKeys": ["rev"]},
                        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone",
                         "namespaceSelector": {"matchLabels": {"team": "a"}}}]}}},
            }),
            &BTreeMap::new(),
            &|_| vec!["a1".into(), "a2".into()],
        );
        let terms = &pod.pod_anti_affinity.required;
        assert_eq!(terms[0].namespaces, vec!["web".to_owned()]);
        assert_eq!(terms[0].selector.as_ref().map(Vec::len), Some(2));
        assert_eq!(terms[1].namespaces, vec!["a1".to_owned(), "a2".to_owned()]);
        assert!(terms[1].namespace_selector.is_some());
    }

    #[test]
    fn a_missing_label_selector_selects_nothing_and_an_empty_one_everything() {
        assert_eq!(label_selector(None), None);
        assert_eq!(label_selector(Some(&json!({}))), Some(Vec::new()));
    }
}
