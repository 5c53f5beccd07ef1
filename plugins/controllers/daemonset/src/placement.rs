//! Which nodes a daemon pod belongs on: the template's `nodeSelector` and
//! required node affinity pick the nodes, and the pod must tolerate their
//! `NoSchedule` and `NoExecute` taints, with the tolerations Kubernetes
//! gives every daemon pod.

use engenho_controller::nodes::Node;
use engenho_controller::pods::Toleration;
use serde_json::{Value, json};

/// What a node means for the set's pod there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// A pod should be made there.
    pub should_run: bool,
    /// A pod already there may stay (its taints do not evict it).
    pub should_continue: bool,
}

/// The tolerations Kubernetes adds to every daemon pod (and, with host
/// networking, one more): daemons run through node trouble.
pub fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let mut tolerations = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        tolerations.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    tolerations.into_iter().map(|(key, effect)| json!({"key": key, "operator": "Exists", "effect": effect})).collect()
}

/// `spec`'s tolerations with the daemon tolerations it lacks added, as
/// Kubernetes' `AddOrUpdateDaemonPodTolerations` does.
pub fn with_daemon_tolerations(spec: &Value) -> Vec<Value> {
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let host_network = spec["hostNetwork"].as_bool().unwrap_or(false);
    for toleration in daemon_tolerations(host_network) {
        tolerations.retain(|t| t["key"] != toleration["key"] || t["effect"] != toleration["effect"]);
        tolerations.push(toleration);
    }
    tolerations
}

/// Where the pod of `template` (a pod template) fits on `node`.
pub fn fit(template: &Value, node: &Node) -> Fit {
    let spec = &template["spec"];
    if !selector_matches(spec, node) || !affinity_matches(spec, node) {
        return Fit { should_run: false, should_continue: false };
    }
    let tolerations: Vec<Toleration> =
        with_daemon_tolerations(spec).into_iter().filter_map(|t| serde_json::from_value(t).ok()).collect();
    let untolerated = |effect: &str| {
        node.spec.taints.iter().filter(|t| t.effect == effect).any(|t| !tolerations.iter().any(|o| o.tolerates(t)))
    };
    let evicted = untolerated("NoExecute");
    Fit { should_run: !evicted && !untolerated("NoSchedule"), should_continue: !evicted }
}

/// Whether the node has every label of the pod's `nodeSelector`.
fn selector_matches(spec: &Value, node: &Node) -> bool {
    let Some(wanted) = spec["nodeSelector"].as_object() else { return true };
    wanted
        .iter()
        .all(|(key, value)| value.as_str().is_some_and(|v| node.metadata.labels.get(key).is_some_and(|l| l == v)))
}

/// Whether the node satisfies one of the pod's required node affinity
/// terms (or the pod requires none).
fn affinity_matches(spec: &Value, node: &Node) -> bool {
    let required = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let Some(terms) = required["nodeSelectorTerms"].as_array() else { return true };
    terms.iter().any(|term| term_matches(term, node))
}

/// Whether `node` satisfies every requirement of one term; a term with
/// none matches no node.
fn term_matches(term: &Value, node: &Node) -> bool {
    let expressions = term["matchExpressions"].as_array().map_or(&[][..], Vec::as_slice);
    let fields = term["matchFields"].as_array().map_or(&[][..], Vec::as_slice);
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let label = |key: &str| node.metadata.labels.get(key).map(String::as_str);
    let field = |key: &str| (key == "metadata.name").then_some(node.metadata.name.as_str());
    expressions.iter().all(|r| requirement_matches(r, label(r["key"].as_str().unwrap_or_default())))
        && fields.iter().all(|r| requirement_matches(r, field(r["key"].as_str().unwrap_or_default())))
}

/// Whether `value` (the node's, if it has one) meets one node selector
/// requirement.
fn requirement_matches(requirement: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> =
        requirement["values"].as_array().map_or_else(Vec::new, |v| v.iter().filter_map(Value::as_str).collect());
    let number = |text: &str| text.parse::<i64>().ok();
    match requirement["operator"].as_str().unwrap_or_default() {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" if values.len() == 1 => {
            let (Some(have), Some(bound)) = (value.and_then(number), number(values[0])) else { return false };
            if requirement["operator"] == "Gt" { have > bound } else { have < bound }
        }
        _ => false,
    }
}

/// `affinity` (the template's) with its required node affinity replaced by
/// the one term naming `node`, as Kubernetes places daemon pods.
pub fn pinned_affinity(affinity: &Value, node: &str) -> Value {
    let mut affinity = if affinity.is_object() { affinity.clone() } else { json!({}) };
    if !affinity["nodeAffinity"].is_object() {
        affinity["nodeAffinity"] = json!({});
    }
    affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}],
    });
    affinity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
            .expect("a node")
    }

    fn template(spec: Value) -> Value {
        json!({"spec": spec})
    }

    #[test]
    fn the_node_selector_and_required_affinity_pick_nodes() {
        let spec = template(json!({
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]},
            ]}}},
        }));
        assert!(fit(&spec, &node("a", json!({"disk": "ssd", "cpus": "8"}), json!([]))).should_run);
        assert!(!fit(&spec, &node("a", json!({"disk": "ssd", "cpus": "2"}), json!([]))).should_run);
        assert!(fit(&spec, &node("special", json!({"disk": "ssd"}), json!([]))).should_run);
        let off = fit(&spec, &node("a", json!({"disk": "hdd", "cpus": "8"}), json!([])));
        assert_eq!(off, Fit { should_run: false, should_continue: false });
        assert!(fit(&template(json!({})), &node("any", json!({}), json!([]))).should_run);
    }

    #[test]
    fn taints_keep_pods_off_unless_tolerated_and_no_execute_evicts() {
        let plain = template(json!({}));
        let no_schedule = node("a", json!({}), json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]));
        assert_eq!(fit(&plain, &no_schedule), Fit { should_run: false, should_continue: true });
        let no_execute = node("a", json!({}), json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]));
        assert_eq!(fit(&plain, &no_execute), Fit { should_run: false, should_continue: false });
        let tolerant = template(json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]}));
        assert!(fit(&tolerant, &no_execute).should_run);
        let everything = template(json!({"tolerations": [{"operator": "Exists"}]}));
        assert!(fit(&everything, &no_execute).should_run);
        let soft = node("a", json!({}), json!([{"key": "x", "effect": "PreferNoSchedule"}]));
        assert!(fit(&plain, &soft).should_run);
    }

    #[test]
    fn daemon_pods_tolerate_node_trouble_and_unschedulable_nodes() {
        let trouble = node(
            "a",
            json!({}),
            json!([
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"},
            ]),
        );
        assert!(fit(&template(json!({})), &trouble).should_run);
        let network =
            node("a", json!({}), json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]));
        assert!(!fit(&template(json!({})), &network).should_run);
        assert!(fit(&template(json!({"hostNetwork": true})), &network).should_run);
        let mut cordoned = node("a", json!({}), json!([]));
        cordoned.spec.unschedulable = true;
        assert!(fit(&template(json!({})), &cordoned).should_run);
    }

    #[test]
    fn daemon_tolerations_are_added_once() {
        let spec = json!({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}, {"key": "mine"}]});
        let tolerations = with_daemon_tolerations(&spec);
        assert_eq!(tolerations.len(), 7);
        assert_eq!(tolerations[0]["key"], "mine");
        assert!(tolerations.iter().all(|t| t.get("tolerationSeconds").is_none()));
    }

    #[test]
    fn a_pinned_affinity_names_the_node_and_keeps_preferences() {
        let affinity = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}, "podAffinity": {}});
        let pinned = pinned_affinity(&affinity, "n1");
        let term = &pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0];
        assert_eq!(term["matchFields"][0], json!({"key": "metadata.name", "operator": "In", "values": ["n1"]}));
        assert_eq!(pinned["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 1);
        assert!(pinned["podAffinity"].is_object());
        assert!(pinned_affinity(&Value::Null, "n1")["nodeAffinity"].is_object());
    }
}
