//! The component side: the `scheduler-plugin` world's bindings, the
//! conversions from its records to this crate's, and the glue
//! [`crate::export_scheduler!`] expands to.

use std::any::Any;
use std::cell::RefCell;

use engenho_guest_memcmp as _;

use crate::{
    Abilities, Assumptions, Change, ExtendedResource, InclusionPolicy, Instance, Judge, Label, Node, NodeAffinity,
    NodeOperator, NodeRequirement, NodeSelectorTerm, Plan, Plugin, Pod, PodAffinity, PodAffinityTerm,
    PreferredNodeTerm, Resources, SelectorOperator, SelectorRequirement, SpreadConstraint, Taint, TaintEffect,
    Toleration, TolerationOperator, UnsatisfiableAction, Verdict, WeightedPodAffinityTerm,
};

/// The world's generated bindings.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "scheduler-plugin",
        path: "../../../wit",
        pub_export_macro: true,
        default_bindings_module: "engenho_scheduler::guest::bindings",
        runtime_path: "engenho_scheduler::guest::wit_bindgen_rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt as wit_bindgen_rt;

use bindings::engenho::plugins::scheduler_types as wit;
pub use bindings::exports::engenho::plugins::scheduler::{
    Abilities as WitAbilities, Assumptions as WitAssumptions, Change as WitChange, Guest as SchedulerGuest,
    Plan as WitPlan, Pod as WitPod, Verdicts as WitVerdicts,
};

/// The reason every node gets when the host filters before configuring.
const NOT_CONFIGURED: &str = "the plugin was not configured";

/// The reason every node gets when the host filters before it prepared a
/// pod.
const NOT_PREPARED: &str = "the plugin was given no pod";

thread_local! {
    /// The configured instance (an `Instance<P>`) of this component.
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };

    /// The pod last prepared: the one `filter` and `score` judge.
    static POD: RefCell<Option<Pod>> = const { RefCell::new(None) };
}

/// Runs `work` on the configured `Instance<P>`, if there is one.
fn with_instance<P: Plugin, T>(work: impl FnOnce(&mut Instance<P>) -> T) -> Option<T> {
    INSTANCE.with(|slot| slot.borrow_mut().as_mut().and_then(|any| any.downcast_mut::<Instance<P>>()).map(work))
}

/// Configures `P` from `config` with an empty table, replacing any earlier
/// instance.
///
/// # Errors
/// The plugin's own refusal of the configuration.
pub fn configure<P: Plugin>(config: &str) -> Result<WitAbilities, String> {
    let (instance, abilities) = Instance::<P>::configure(config)?;
    INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(instance)));
    let Abilities { filters, scores, reads_pods, pod_parts } = abilities;
    let mut parts = wit::PodParts::empty();
    for (read, part) in [
        (pod_parts.labels, wit::PodParts::LABELS),
        (pod_parts.requests, wit::PodParts::REQUESTS),
        (pod_parts.node_rules, wit::PodParts::NODE_RULES),
        (pod_parts.tolerations, wit::PodParts::TOLERATIONS),
        (pod_parts.affinities, wit::PodParts::AFFINITIES),
        (pod_parts.spread, wit::PodParts::SPREAD),
    ] {
        if read {
            parts = parts | part;
        }
    }
    Ok(WitAbilities { filters, scores, reads_pods, pod_parts: parts })
}

/// Applies `changes` to the instance's table (nothing before configure),
/// keeps `pod` for the calls that follow, and says which of them it needs.
pub fn prepare<P: Plugin>(changes: Vec<WitChange>, pod: WitPod) -> WitPlan {
    let pod = pod_from(pod);
    let plan = with_instance::<P, _>(|instance| {
        instance.apply(changes.into_iter().filter_map(change));
        instance.plan(&pod)
    })
    .unwrap_or(Plan::FULL);
    POD.with_borrow_mut(|prepared| *prepared = Some(pod));
    WitPlan { filter: plan.filter, score: plan.score }
}

/// One verdict per candidate for the prepared pod; before configure or
/// prepare, each refuses the node.
pub fn filter<P: Plugin>(candidates: Vec<u32>, assumptions: WitAssumptions) -> WitVerdicts {
    let assumptions = Assumptions {
        without: assumptions.without,
        extra: assumptions.extra.into_iter().map(|placement| (placement.node, pod_from(placement.pod))).collect(),
    };
    let verdicts = POD.with_borrow(|pod| {
        let Some(pod) = pod else {
            return candidates.iter().map(|_| Verdict::Unresolvable(vec![NOT_PREPARED.into()])).collect();
        };
        with_instance::<P, _>(|instance| instance.filter(pod, &candidates, &assumptions))
            .unwrap_or_else(|| candidates.iter().map(|_| Verdict::Unresolvable(vec![NOT_CONFIGURED.into()])).collect())
    });
    let (refusals, by_candidate) = verdicts.into_parts();
    let refusals = refusals
        .into_iter()
        .map(|refusal| match refusal {
            Verdict::Unfit(reasons) => wit::Refusal::Unfit(reasons),
            Verdict::Unresolvable(reasons) => wit::Refusal::Unresolvable(reasons),
            // `Verdicts` keeps no refusal that fits.
            Verdict::Fits => wit::Refusal::Unresolvable(Vec::new()),
        })
        .collect();
    WitVerdicts { refusals, by_candidate }
}

/// One score per node for the prepared pod; before configure or prepare,
/// every node scores 0.
pub fn score<P: Plugin>(nodes: Vec<u32>) -> Vec<u32> {
    POD.with_borrow(|pod| pod.as_ref().and_then(|pod| with_instance::<P, _>(|instance| instance.score(pod, &nodes))))
        .unwrap_or_else(|| vec![0; nodes.len()])
}

/// `change` as the table takes it: a placement of the pod last prepared
/// moves that pod into the table (nothing, when none was prepared).
fn change(change: WitChange) -> Option<Change> {
    Some(match change {
        wit::Change::NodeSet(slot) => Change::NodeSet(slot.index, node_from(slot.node)),
        wit::Change::NodeRemoved(index) => Change::NodeRemoved(index),
        wit::Change::PodPlaced(placement) => Change::PodPlaced(placement.node, pod_from(placement.pod)),
        wit::Change::PreparedPlaced(node) => Change::PodPlaced(node, POD.with_borrow_mut(Option::take)?),
        wit::Change::PodRemoved(uid) => Change::PodRemoved(uid),
    })
}

fn labels_from(labels: Vec<wit::Label>) -> Vec<Label> {
    labels.into_iter().map(|label| Label { key: label.key, value: label.value }).collect()
}

fn resources_from(resources: wit::Resources) -> Resources {
    Resources {
        milli_cpu: resources.milli_cpu,
        memory: resources.memory,
        ephemeral_storage: resources.ephemeral_storage,
        pods: resources.pods,
        extended: resources
            .extended
            .into_iter()
            .map(|resource| ExtendedResource { name: resource.name, amount: resource.amount })
            .collect(),
    }
}

fn effect_from(effect: wit::TaintEffect) -> TaintEffect {
    match effect {
        wit::TaintEffect::NoSchedule => TaintEffect::NoSchedule,
        wit::TaintEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
        wit::TaintEffect::NoExecute => TaintEffect::NoExecute,
    }
}

fn node_from(node: wit::Node) -> Node {
    Node {
        name: node.name,
        labels: labels_from(node.labels),
        taints: node
            .taints
            .into_iter()
            .map(|taint| Taint { key: taint.key, value: taint.value, effect: effect_from(taint.effect) })
            .collect(),
        unschedulable: node.unschedulable,
        allocatable: resources_from(node.allocatable),
    }
}

fn selector_from(selector: wit::LabelSelector) -> Vec<SelectorRequirement> {
    selector
        .into_iter()
        .map(|requirement| SelectorRequirement {
            key: requirement.key,
            operator: match requirement.operator {
                wit::SelectorOperator::In => SelectorOperator::In,
                wit::SelectorOperator::NotIn => SelectorOperator::NotIn,
                wit::SelectorOperator::Exists => SelectorOperator::Exists,
                wit::SelectorOperator::DoesNotExist => SelectorOperator::DoesNotExist,
            },
            values: requirement.values,
        })
        .collect()
}

fn node_requirements_from(requirements: Vec<wit::NodeRequirement>) -> Vec<NodeRequirement> {
    requirements
        .into_iter()
        .map(|requirement| NodeRequirement {
            key: requirement.key,
            operator: match requirement.operator {
                wit::NodeOperator::In => NodeOperator::In,
                wit::NodeOperator::NotIn => NodeOperator::NotIn,
                wit::NodeOperator::Exists => NodeOperator::Exists,
                wit::NodeOperator::DoesNotExist => NodeOperator::DoesNotExist,
                wit::NodeOperator::Gt => NodeOperator::Gt,
                wit::NodeOperator::Lt => NodeOperator::Lt,
            },
            values: requirement.values,
        })
        .collect()
}

fn node_term_from(term: wit::NodeSelectorTerm) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: node_requirements_from(term.match_expressions),
        match_fields: node_requirements_from(term.match_fields),
    }
}

fn node_affinity_from(affinity: wit::NodeAffinity) -> NodeAffinity {
    NodeAffinity {
        required: affinity.required.map(|terms| terms.into_iter().map(node_term_from).collect()),
        preferred: affinity
            .preferred
            .into_iter()
            .map(|term| PreferredNodeTerm { weight: term.weight, preference: node_term_from(term.preference) })
            .collect(),
    }
}

fn affinity_term_from(term: wit::PodAffinityTerm) -> PodAffinityTerm {
    PodAffinityTerm {
        selector: term.selector.map(selector_from),
        namespaces: term.namespaces,
        namespace_selector: term.namespace_selector.map(selector_from),
        topology_key: term.topology_key,
    }
}

fn pod_affinity_from(affinity: wit::PodAffinity) -> PodAffinity {
    PodAffinity {
        required: affinity.required.into_iter().map(affinity_term_from).collect(),
        preferred: affinity
            .preferred
            .into_iter()
            .map(|term| WeightedPodAffinityTerm { weight: term.weight, term: affinity_term_from(term.term) })
            .collect(),
    }
}

fn policy_from(policy: wit::InclusionPolicy) -> InclusionPolicy {
    match policy {
        wit::InclusionPolicy::Honor => InclusionPolicy::Honor,
        wit::InclusionPolicy::Ignore => InclusionPolicy::Ignore,
    }
}

fn spread_constraint_from(constraint: wit::SpreadConstraint) -> SpreadConstraint {
    SpreadConstraint {
        max_skew: constraint.max_skew,
        topology_key: constraint.topology_key,
        when_unsatisfiable: match constraint.when_unsatisfiable {
            wit::UnsatisfiableAction::DoNotSchedule => UnsatisfiableAction::DoNotSchedule,
            wit::UnsatisfiableAction::ScheduleAnyway => UnsatisfiableAction::ScheduleAnyway,
        },
        selector: constraint.selector.map(selector_from),
        min_domains: constraint.min_domains,
        node_affinity_policy: policy_from(constraint.node_affinity_policy),
        node_taints_policy: policy_from(constraint.node_taints_policy),
    }
}

/// `pod` as the SDK holds it: a part that crossed as `none` is empty.
fn pod_from(pod: wit::Pod) -> Pod {
    let (labels, namespace_labels) =
        pod.labels.map_or_else(Default::default, |labels| (labels.labels, labels.namespace_labels));
    let (node_selector, node_affinity) =
        pod.node_rules.map_or_else(Default::default, |rules| (rules.node_selector, rules.node_affinity));
    let (pod_affinity, pod_anti_affinity) = pod.affinities.map_or_else(Default::default, |affinities| {
        (pod_affinity_from(affinities.pod_affinity), pod_affinity_from(affinities.pod_anti_affinity))
    });
    let (spread_constraints, default_spread_selector) =
        pod.spread.map_or_else(Default::default, |spread| (spread.constraints, spread.default_selector));
    Pod {
        uid: pod.uid,
        namespace: pod.namespace,
        name: pod.name,
        labels: labels_from(labels),
        namespace_labels: labels_from(namespace_labels),
        requests: pod.requests.map(resources_from).unwrap_or_default(),
        priority: pod.priority,
        node_name: pod.node_name,
        node_selector: labels_from(node_selector),
        node_affinity: node_affinity.map(node_affinity_from),
        tolerations: pod
            .tolerations
            .unwrap_or_default()
            .into_iter()
            .map(|toleration| Toleration {
                key: toleration.key,
                operator: match toleration.operator {
                    wit::TolerationOperator::Equal => TolerationOperator::Equal,
                    wit::TolerationOperator::Exists => TolerationOperator::Exists,
                },
                value: toleration.value,
                effect: toleration.effect.map(effect_from),
            })
            .collect(),
        pod_affinity,
        pod_anti_affinity,
        spread_constraints: spread_constraints.into_iter().map(spread_constraint_from).collect(),
        default_spread_selector: default_spread_selector.map(selector_from),
    }
}
