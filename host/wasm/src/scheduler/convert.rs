//! The SDK's records into the world's, and the plugin's answers back.

use engenho_scheduler as sdk;

use super::wit;

pub(super) fn abilities(a: wit::Abilities) -> sdk::Abilities {
    let parts = a.pod_parts;
    sdk::Abilities {
        filters: a.filters,
        scores: a.scores,
        reads_pods: a.reads_pods,
        pod_parts: sdk::PodParts {
            labels: parts.contains(wit::PodParts::LABELS),
            requests: parts.contains(wit::PodParts::REQUESTS),
            node_rules: parts.contains(wit::PodParts::NODE_RULES),
            tolerations: parts.contains(wit::PodParts::TOLERATIONS),
            affinities: parts.contains(wit::PodParts::AFFINITIES),
            spread: parts.contains(wit::PodParts::SPREAD),
        },
    }
}

pub(super) fn refusal(r: wit::Refusal) -> sdk::Verdict {
    match r {
        wit::Refusal::Unfit(reasons) => sdk::Verdict::Unfit(reasons),
        wit::Refusal::Unresolvable(reasons) => sdk::Verdict::Unresolvable(reasons),
    }
}

/// `c`, its pod (if any) as a plugin reading `parts` takes it.
pub(super) fn change(c: &sdk::Change, parts: sdk::PodParts) -> wit::Change {
    match c {
        sdk::Change::NodeSet(index, n) => wit::Change::NodeSet(wit::NodeSlot { index: *index, node: node(n) }),
        sdk::Change::NodeRemoved(index) => wit::Change::NodeRemoved(*index),
        sdk::Change::PodPlaced(index, p) => wit::Change::PodPlaced(wit::Placement { node: *index, pod: pod(p, parts) }),
        sdk::Change::PodRemoved(uid) => wit::Change::PodRemoved(uid.clone()),
    }
}

/// `a`, its pods as a plugin reading `parts` takes them.
pub(super) fn assumptions(a: &sdk::Assumptions, parts: sdk::PodParts) -> wit::Assumptions {
    wit::Assumptions {
        without: a.without.clone(),
        extra: a.extra.iter().map(|(index, p)| wit::Placement { node: *index, pod: pod(p, parts) }).collect(),
    }
}

fn node(n: &sdk::Node) -> wit::Node {
    wit::Node {
        name: n.name.clone(),
        labels: labels(&n.labels),
        taints: n.taints.iter().map(taint).collect(),
        unschedulable: n.unschedulable,
        allocatable: resources(&n.allocatable),
    }
}

/// `p` as a plugin reading `parts` takes it: each part it does not read,
/// and each empty part, crosses as `none`.
pub(super) fn pod(p: &sdk::Pod, parts: sdk::PodParts) -> wit::Pod {
    let has_labels = !p.labels.is_empty() || !p.namespace_labels.is_empty();
    let has_node_rules = !p.node_selector.is_empty() || p.node_affinity.is_some();
    let affinity_terms = |a: &sdk::PodAffinity| !a.required.is_empty() || !a.preferred.is_empty();
    let has_affinities = affinity_terms(&p.pod_affinity) || affinity_terms(&p.pod_anti_affinity);
    let has_spread = !p.spread_constraints.is_empty() || p.default_spread_selector.is_some();
    wit::Pod {
        uid: p.uid.clone(),
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        priority: p.priority,
        node_name: p.node_name.clone(),
        labels: (parts.labels && has_labels)
            .then(|| wit::PodLabels { labels: labels(&p.labels), namespace_labels: labels(&p.namespace_labels) }),
        requests: parts.requests.then(|| resources(&p.requests)),
        node_rules: (parts.node_rules && has_node_rules).then(|| wit::NodeRules {
            node_selector: labels(&p.node_selector),
            node_affinity: p.node_affinity.as_ref().map(|a| wit::NodeAffinity {
                required: a.required.as_ref().map(|terms| terms.iter().map(node_term).collect()),
                preferred: a
                    .preferred
                    .iter()
                    .map(|t| wit::PreferredNodeTerm { weight: t.weight, preference: node_term(&t.preference) })
                    .collect(),
            }),
        }),
        tolerations: (parts.tolerations && !p.tolerations.is_empty())
            .then(|| p.tolerations.iter().map(toleration).collect()),
        affinities: (parts.affinities && has_affinities).then(|| wit::PodAffinities {
            pod_affinity: pod_affinity(&p.pod_affinity),
            pod_anti_affinity: pod_affinity(&p.pod_anti_affinity),
        }),
        spread: (parts.spread && has_spread).then(|| wit::PodSpread {
            constraints: p.spread_constraints.iter().map(spread).collect(),
            default_selector: p.default_spread_selector.as_ref().map(|s| selector(s)),
        }),
    }
}

fn labels(labels: &[sdk::Label]) -> Vec<wit::Label> {
    labels.iter().map(|l| wit::Label { key: l.key.clone(), value: l.value.clone() }).collect()
}

fn resources(r: &sdk::Resources) -> wit::Resources {
    wit::Resources {
        milli_cpu: r.milli_cpu,
        memory: r.memory,
        ephemeral_storage: r.ephemeral_storage,
        pods: r.pods,
        extended: r.extended.iter().map(|e| wit::ExtendedResource { name: e.name.clone(), amount: e.amount }).collect(),
    }
}

fn effect(e: sdk::TaintEffect) -> wit::TaintEffect {
    match e {
        sdk::TaintEffect::NoSchedule => wit::TaintEffect::NoSchedule,
        sdk::TaintEffect::PreferNoSchedule => wit::TaintEffect::PreferNoSchedule,
        sdk::TaintEffect::NoExecute => wit::TaintEffect::NoExecute,
    }
}

fn taint(t: &sdk::Taint) -> wit::Taint {
    wit::Taint { key: t.key.clone(), value: t.value.clone(), effect: effect(t.effect) }
}

fn toleration(t: &sdk::Toleration) -> wit::Toleration {
    wit::Toleration {
        key: t.key.clone(),
        operator: match t.operator {
            sdk::TolerationOperator::Equal => wit::TolerationOperator::Equal,
            sdk::TolerationOperator::Exists => wit::TolerationOperator::Exists,
        },
        value: t.value.clone(),
        effect: t.effect.map(effect),
    }
}

fn selector(s: &[sdk::SelectorRequirement]) -> Vec<wit::SelectorRequirement> {
    s.iter()
        .map(|r| wit::SelectorRequirement {
            key: r.key.clone(),
            operator: match r.operator {
                sdk::SelectorOperator::In => wit::SelectorOperator::In,
                sdk::SelectorOperator::NotIn => wit::SelectorOperator::NotIn,
                sdk::SelectorOperator::Exists => wit::SelectorOperator::Exists,
                sdk::SelectorOperator::DoesNotExist => wit::SelectorOperator::DoesNotExist,
            },
            values: r.values.clone(),
        })
        .collect()
}

fn node_requirements(requirements: &[sdk::NodeRequirement]) -> Vec<wit::NodeRequirement> {
    requirements
        .iter()
        .map(|r| wit::NodeRequirement {
            key: r.key.clone(),
            operator: match r.operator {
                sdk::NodeOperator::In => wit::NodeOperator::In,
                sdk::NodeOperator::NotIn => wit::NodeOperator::NotIn,
                sdk::NodeOperator::Exists => wit::NodeOperator::Exists,
                sdk::NodeOperator::DoesNotExist => wit::NodeOperator::DoesNotExist,
                sdk::NodeOperator::Gt => wit::NodeOperator::Gt,
                sdk::NodeOperator::Lt => wit::NodeOperator::Lt,
            },
            values: r.values.clone(),
        })
        .collect()
}

fn node_term(t: &sdk::NodeSelectorTerm) -> wit::NodeSelectorTerm {
    wit::NodeSelectorTerm {
        match_expressions: node_requirements(&t.match_expressions),
        match_fields: node_requirements(&t.match_fields),
    }
}

fn affinity_term(t: &sdk::PodAffinityTerm) -> wit::PodAffinityTerm {
    wit::PodAffinityTerm {
        selector: t.selector.as_ref().map(|s| selector(s)),
        namespaces: t.namespaces.clone(),
        namespace_selector: t.namespace_selector.as_ref().map(|s| selector(s)),
        topology_key: t.topology_key.clone(),
    }
}

fn pod_affinity(a: &sdk::PodAffinity) -> wit::PodAffinity {
    wit::PodAffinity {
        required: a.required.iter().map(affinity_term).collect(),
        preferred: a
            .preferred
            .iter()
            .map(|w| wit::WeightedPodAffinityTerm { weight: w.weight, term: affinity_term(&w.term) })
            .collect(),
    }
}

fn inclusion(p: sdk::InclusionPolicy) -> wit::InclusionPolicy {
    match p {
        sdk::InclusionPolicy::Honor => wit::InclusionPolicy::Honor,
        sdk::InclusionPolicy::Ignore => wit::InclusionPolicy::Ignore,
    }
}

fn spread(c: &sdk::SpreadConstraint) -> wit::SpreadConstraint {
    wit::SpreadConstraint {
        max_skew: c.max_skew,
        topology_key: c.topology_key.clone(),
        when_unsatisfiable: match c.when_unsatisfiable {
            sdk::UnsatisfiableAction::DoNotSchedule => wit::UnsatisfiableAction::DoNotSchedule,
            sdk::UnsatisfiableAction::ScheduleAnyway => wit::UnsatisfiableAction::ScheduleAnyway,
        },
        selector: c.selector.as_ref().map(|s| selector(s)),
        min_domains: c.min_domains,
        node_affinity_policy: inclusion(c.node_affinity_policy),
        node_taints_policy: inclusion(c.node_taints_policy),
    }
}
