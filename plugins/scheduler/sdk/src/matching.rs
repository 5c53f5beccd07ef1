//! Matching with Kubernetes' semantics: label selectors, node selector
//! terms, tolerations against taints, and pod affinity terms against pods.
//!
//! Requirements the API server would refuse (an `In` with no values, a
//! `Gt` whose value is not an integer, a field other than `metadata.name`)
//! match as kube-scheduler matches them: a label selector requirement
//! compares as written, a node selector term that holds one matches no
//! node.

use crate::{
    Label, LabelSelector, Node, NodeOperator, NodeRequirement, NodeSelectorTerm, Pod, PodAffinityTerm,
    SelectorOperator, SelectorRequirement, Taint, TaintEffect, Toleration, TolerationOperator,
};

/// The only node field a node selector term's `match_fields` may name.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// The value of the label `key` in `labels`.
pub fn label_value<'a>(labels: &'a [Label], key: &str) -> Option<&'a str> {
    labels.iter().find(|label| label.key == key).map(|label| label.value.as_str())
}

/// Whether `labels` satisfy one label selector requirement.
pub fn requirement_matches(requirement: &SelectorRequirement, labels: &[Label]) -> bool {
    let value = label_value(labels, &requirement.key);
    let listed = |value: &str| requirement.values.iter().any(|listed| listed == value);
    match requirement.operator {
        SelectorOperator::In => value.is_some_and(listed),
        SelectorOperator::NotIn => value.is_none_or(|value| !listed(value)),
        SelectorOperator::Exists => value.is_some(),
        SelectorOperator::DoesNotExist => value.is_none(),
    }
}

/// Whether `labels` satisfy every requirement of `selector` (an empty
/// selector selects everything).
pub fn selector_matches(selector: &LabelSelector, labels: &[Label]) -> bool {
    selector.iter().all(|requirement| requirement_matches(requirement, labels))
}

/// Whether `selector`, which may be absent (selecting nothing), selects
/// `labels`.
pub fn optional_selector_matches(selector: Option<&LabelSelector>, labels: &[Label]) -> bool {
    selector.is_some_and(|selector| selector_matches(selector, labels))
}

/// Whether every label of `node_selector` (a pod's `spec.nodeSelector`) is
/// on `labels` with the same value.
pub fn node_selector_matches(node_selector: &[Label], labels: &[Label]) -> bool {
    node_selector.iter().all(|wanted| label_value(labels, &wanted.key) == Some(wanted.value.as_str()))
}

/// Whether a node selector requirement is one the API accepts: `In` and
/// `NotIn` with values, `Exists` and `DoesNotExist` without, `Gt` and `Lt`
/// with one integer.
fn node_requirement_is_valid(requirement: &NodeRequirement) -> bool {
    match requirement.operator {
        NodeOperator::In | NodeOperator::NotIn => !requirement.values.is_empty(),
        NodeOperator::Exists | NodeOperator::DoesNotExist => requirement.values.is_empty(),
        NodeOperator::Gt | NodeOperator::Lt => {
            matches!(requirement.values.as_slice(), [bound] if bound.parse::<i64>().is_ok())
        }
    }
}

/// Whether `labels` satisfy one (valid) node selector requirement on
/// labels. `Gt` and `Lt` compare the label's value as a 64-bit integer; a
/// label that is not one does not match.
pub fn node_requirement_matches(requirement: &NodeRequirement, labels: &[Label]) -> bool {
    let value = label_value(labels, &requirement.key);
    let listed = |value: &str| requirement.values.iter().any(|listed| listed == value);
    let compare = |wanted: fn(i64, i64) -> bool| {
        let Some(Ok(actual)) = value.map(str::parse::<i64>) else { return false };
        match requirement.values.as_slice() {
            [bound] => bound.parse::<i64>().is_ok_and(|bound| wanted(actual, bound)),
            _ => false,
        }
    };
    match requirement.operator {
        NodeOperator::In => value.is_some_and(listed),
        NodeOperator::NotIn => value.is_none_or(|value| !listed(value)),
        NodeOperator::Exists => value.is_some(),
        NodeOperator::DoesNotExist => value.is_none(),
        NodeOperator::Gt => compare(|actual, bound| actual > bound),
        NodeOperator::Lt => compare(|actual, bound| actual < bound),
    }
}

/// Whether a node field requirement is one the API accepts: on
/// `metadata.name`, `In` or `NotIn`, exactly one value.
fn field_requirement_is_valid(requirement: &NodeRequirement) -> bool {
    requirement.key == NODE_NAME_FIELD
        && matches!(requirement.operator, NodeOperator::In | NodeOperator::NotIn)
        && requirement.values.len() == 1
}

/// Whether a node selector term is well formed (every requirement valid).
pub fn node_term_is_valid(term: &NodeSelectorTerm) -> bool {
    term.match_expressions.iter().all(node_requirement_is_valid)
        && term.match_fields.iter().all(field_requirement_is_valid)
}

/// Whether `node` matches a node selector term: an empty term, or one with
/// an invalid requirement, matches no node; field requirements are skipped
/// for a node without a name, as Kubernetes skips them.
pub fn node_term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    if !node_term_is_valid(term) {
        return false;
    }
    let labels_match =
        term.match_expressions.iter().all(|requirement| node_requirement_matches(requirement, &node.labels));
    let fields_match = node.name.is_empty()
        || term.match_fields.iter().all(|requirement| match (requirement.operator, requirement.values.as_slice()) {
            (NodeOperator::In, [name]) => *name == node.name,
            (NodeOperator::NotIn, [name]) => *name != node.name,
            _ => false,
        });
    labels_match && fields_match
}

/// Whether `node` matches any of `terms` (no terms: no node).
pub fn node_terms_match(terms: &[NodeSelectorTerm], node: &Node) -> bool {
    terms.iter().any(|term| node_term_matches(term, node))
}

/// Whether `node` satisfies `pod`'s node selector and required node
/// affinity (kube-scheduler's `RequiredNodeAffinity.Match`).
pub fn required_node_affinity_matches(pod: &Pod, node: &Node) -> bool {
    node_selector_matches(&pod.node_selector, &node.labels)
        && pod
            .node_affinity
            .as_ref()
            .and_then(|affinity| affinity.required.as_ref())
            .is_none_or(|terms| node_terms_match(terms, node))
}

/// Whether `toleration` tolerates `taint`, as Kubernetes'
/// `Toleration.ToleratesTaint`: the effect must agree unless the
/// toleration names none, the key unless it names none, and with `Equal`
/// the values (so an empty key with `Exists` tolerates every taint).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.is_some_and(|effect| effect != taint.effect) {
        return false;
    }
    if !toleration.key.is_empty() && toleration.key != taint.key {
        return false;
    }
    match toleration.operator {
        TolerationOperator::Equal => toleration.value == taint.value,
        TolerationOperator::Exists => true,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|toleration| tolerates(toleration, taint))
}

/// The first of `taints` whose effect `counts` and which no toleration
/// tolerates.
pub fn first_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    counts: impl Fn(TaintEffect) -> bool,
) -> Option<&'a Taint> {
    taints.iter().find(|taint| counts(taint.effect) && !tolerated(tolerations, taint))
}

/// Whether a taint with `effect` keeps pods off a node at filtering
/// (`NoSchedule` and `NoExecute`).
pub fn blocks_scheduling(effect: TaintEffect) -> bool {
    matches!(effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
}

/// Whether the pod affinity term `term` matches `pod`, as kube-scheduler's
/// `AffinityTerm.Matches`: `pod` is in one of the term's namespaces, or in
/// a namespace whose labels (`namespace_labels`) the term's namespace
/// selector selects, and the term's selector selects its labels.
pub fn affinity_term_matches(term: &PodAffinityTerm, pod: &Pod, namespace_labels: &[Label]) -> bool {
    let in_namespace = term.namespaces.contains(&pod.namespace)
        || optional_selector_matches(term.namespace_selector.as_ref(), namespace_labels);
    in_namespace && optional_selector_matches(term.selector.as_ref(), &pod.labels)
}

/// Whether the term `term` of the placed pod `owner` matches `pod`, whose
/// namespace has `pod.namespace_labels`. A term that names no namespace
/// and has no namespace selector is about `owner`'s own namespace, as
/// Kubernetes defaults it.
pub fn placed_term_matches(term: &PodAffinityTerm, owner: &Pod, pod: &Pod) -> bool {
    term_of_namespace_matches(term, &owner.namespace, pod)
}

/// Whether `term`, a term of a placed pod of namespace `owner_namespace`,
/// matches `pod`, as [`placed_term_matches`].
pub fn term_of_namespace_matches(term: &PodAffinityTerm, owner_namespace: &str, pod: &Pod) -> bool {
    if term.namespaces.is_empty() && term.namespace_selector.is_none() {
        return owner_namespace == pod.namespace && optional_selector_matches(term.selector.as_ref(), &pod.labels);
    }
    affinity_term_matches(term, pod, &pod.namespace_labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::{labels, node, node_requirement, pod, requirement, taint, toleration};

    fn expressions(requirements: Vec<NodeRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm { match_expressions: requirements, match_fields: Vec::new() }
    }

    #[test]
    fn label_selector_requirements() {
        // Goal: each operator as Kubernetes' labels.Requirement.Matches,
        // absent labels included; an empty selector selects everything.
        let set = labels(&[("app", "web"), ("tier", "front")]);
        use SelectorOperator::*;
        assert!(requirement_matches(&requirement("app", In, &["db", "web"]), &set));
        assert!(!requirement_matches(&requirement("app", In, &["db"]), &set));
        assert!(!requirement_matches(&requirement("missing", In, &["web"]), &set));
        assert!(!requirement_matches(&requirement("app", In, &[]), &set));
        assert!(requirement_matches(&requirement("app", NotIn, &["db"]), &set));
        assert!(!requirement_matches(&requirement("app", NotIn, &["web"]), &set));
        assert!(requirement_matches(&requirement("missing", NotIn, &["web"]), &set));
        assert!(requirement_matches(&requirement("tier", Exists, &[]), &set));
        assert!(!requirement_matches(&requirement("missing", Exists, &[]), &set));
        assert!(requirement_matches(&requirement("missing", DoesNotExist, &[]), &set));
        assert!(!requirement_matches(&requirement("app", DoesNotExist, &[]), &set));
        assert!(selector_matches(&Vec::new(), &set));
        assert!(selector_matches(&vec![requirement("app", In, &["web"]), requirement("tier", Exists, &[])], &set));
        assert!(!selector_matches(&vec![requirement("app", In, &["web"]), requirement("x", Exists, &[])], &set));
        assert!(!optional_selector_matches(None, &set));
        assert!(optional_selector_matches(Some(&Vec::new()), &set));
    }

    #[test]
    fn node_selector_terms() {
        // Goal: expressions with Gt/Lt as 64-bit integers, fields on
        // metadata.name, empty and invalid terms matching nothing, terms
        // ORed.
        let mut worker = node("worker-1");
        worker.labels = labels(&[("zone", "a"), ("cores", "16")]);
        use NodeOperator::*;
        let term = |requirements| expressions(requirements);
        assert!(node_term_matches(&term(vec![node_requirement("zone", In, &["a", "b"])]), &worker));
        assert!(!node_term_matches(&term(vec![node_requirement("zone", NotIn, &["a"])]), &worker));
        assert!(node_term_matches(&term(vec![node_requirement("gpu", NotIn, &["yes"])]), &worker));
        assert!(node_term_matches(&term(vec![node_requirement("cores", Gt, &["8"])]), &worker));
        assert!(!node_term_matches(&term(vec![node_requirement("cores", Gt, &["16"])]), &worker));
        assert!(node_term_matches(&term(vec![node_requirement("cores", Lt, &["17"])]), &worker));
        assert!(!node_term_matches(&term(vec![node_requirement("zone", Lt, &["5"])]), &worker));
        assert!(!node_term_matches(&term(vec![node_requirement("cores", Gt, &["x"])]), &worker));
        assert!(!node_term_matches(&term(vec![node_requirement("cores", Gt, &["1", "2"])]), &worker));
        assert!(!node_term_matches(&term(vec![node_requirement("missing", Lt, &["5"])]), &worker));
        // An invalid requirement spoils the whole term, even one that
        // would otherwise match.
        assert!(!node_term_matches(
            &term(vec![node_requirement("zone", In, &["a"]), node_requirement("zone", Exists, &["a"])]),
            &worker
        ));
        assert!(!node_term_matches(&NodeSelectorTerm::default(), &worker));
        let by_name = |operator, values: &[&str]| NodeSelectorTerm {
            match_expressions: Vec::new(),
            match_fields: vec![node_requirement(NODE_NAME_FIELD, operator, values)],
        };
        assert!(node_term_matches(&by_name(In, &["worker-1"]), &worker));
        assert!(!node_term_matches(&by_name(In, &["worker-2"]), &worker));
        assert!(node_term_matches(&by_name(NotIn, &["worker-2"]), &worker));
        assert!(!node_term_matches(&by_name(In, &["worker-1", "worker-2"]), &worker));
        assert!(!node_term_matches(&by_name(Exists, &[]), &worker));
        let mut other_field = by_name(In, &["worker-1"]);
        other_field.match_fields[0].key = "metadata.uid".into();
        assert!(!node_term_matches(&other_field, &worker));
        let terms = vec![NodeSelectorTerm::default(), term(vec![node_requirement("zone", In, &["a"])])];
        assert!(node_terms_match(&terms, &worker));
        assert!(!node_terms_match(&[], &worker));
    }

    #[test]
    fn required_node_affinity_combines_selector_and_terms() {
        // Goal: the node selector and the required terms must both hold;
        // no required terms means any node, an empty list none.
        let mut worker = node("w");
        worker.labels = labels(&[("disk", "ssd")]);
        let mut wanting = pod("p");
        assert!(required_node_affinity_matches(&wanting, &worker));
        wanting.node_selector = labels(&[("disk", "ssd")]);
        assert!(required_node_affinity_matches(&wanting, &worker));
        wanting.node_affinity = Some(crate::NodeAffinity { required: Some(Vec::new()), preferred: Vec::new() });
        assert!(!required_node_affinity_matches(&wanting, &worker));
        wanting.node_affinity = Some(crate::NodeAffinity {
            required: Some(vec![expressions(vec![node_requirement("disk", NodeOperator::In, &["ssd"])])]),
            preferred: Vec::new(),
        });
        assert!(required_node_affinity_matches(&wanting, &worker));
        wanting.node_selector = labels(&[("disk", "hdd")]);
        assert!(!required_node_affinity_matches(&wanting, &worker));
    }

    #[test]
    fn tolerations_against_taints() {
        // Goal: Kubernetes' ToleratesTaint, case by case.
        use TaintEffect::*;
        use TolerationOperator::*;
        let gpu = taint("gpu", "true", NoSchedule);
        assert!(tolerates(&toleration("", Exists, "", None), &gpu));
        assert!(tolerates(&toleration("", Exists, "", Some(NoSchedule)), &gpu));
        assert!(!tolerates(&toleration("", Exists, "", Some(NoExecute)), &gpu));
        assert!(tolerates(&toleration("gpu", Exists, "", None), &gpu));
        assert!(!tolerates(&toleration("tpu", Exists, "", None), &gpu));
        assert!(tolerates(&toleration("gpu", Equal, "true", None), &gpu));
        assert!(!tolerates(&toleration("gpu", Equal, "false", None), &gpu));
        assert!(!tolerates(&toleration("gpu", Equal, "true", Some(PreferNoSchedule)), &gpu));
        // An empty key with Equal compares only the value.
        assert!(tolerates(&toleration("", Equal, "true", None), &gpu));
        let taints = vec![taint("soft", "", PreferNoSchedule), gpu.clone(), taint("x", "", NoExecute)];
        let tolerations = vec![toleration("gpu", Exists, "", None)];
        assert_eq!(first_untolerated_taint(&taints, &tolerations, blocks_scheduling), Some(&taints[2]));
        assert_eq!(first_untolerated_taint(&taints, &[], blocks_scheduling), Some(&gpu));
        assert_eq!(first_untolerated_taint(&taints, &[toleration("", Exists, "", None)], |_| true), None);
    }

    #[test]
    fn pod_affinity_terms_against_pods() {
        // Goal: namespaces listed or selected by the namespace's labels,
        // and the selector on the pod's labels; absent selectors select
        // nothing, and a placed pod's term without namespaces is about its
        // own namespace.
        let mut target = pod("t");
        target.namespace = "shop".into();
        target.labels = labels(&[("app", "web")]);
        target.namespace_labels = labels(&[("team", "a")]);
        let selects_web = Some(vec![requirement("app", SelectorOperator::In, &["web"])]);
        let mut term = PodAffinityTerm {
            selector: selects_web.clone(),
            namespaces: vec!["shop".into()],
            namespace_selector: None,
            topology_key: "zone".into(),
        };
        assert!(affinity_term_matches(&term, &target, &target.namespace_labels));
        term.selector = None;
        assert!(!affinity_term_matches(&term, &target, &target.namespace_labels));
        term.selector = Some(Vec::new());
        assert!(affinity_term_matches(&term, &target, &target.namespace_labels));
        term.selector = selects_web;
        term.namespaces = vec!["other".into()];
        assert!(!affinity_term_matches(&term, &target, &target.namespace_labels));
        term.namespace_selector = Some(vec![requirement("team", SelectorOperator::In, &["a"])]);
        assert!(affinity_term_matches(&term, &target, &target.namespace_labels));
        assert!(!affinity_term_matches(&term, &target, &[]));
        term.namespace_selector = Some(Vec::new());
        assert!(affinity_term_matches(&term, &target, &[]));

        let mut owner = pod("o");
        owner.namespace = "shop".into();
        term.namespaces.clear();
        term.namespace_selector = None;
        assert!(placed_term_matches(&term, &owner, &target));
        owner.namespace = "elsewhere".into();
        assert!(!placed_term_matches(&term, &owner, &target));
        term.namespace_selector = Some(vec![requirement("team", SelectorOperator::Exists, &[])]);
        assert!(placed_term_matches(&term, &owner, &target));
    }
}
