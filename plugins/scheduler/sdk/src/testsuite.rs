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

/// A small deterministic generator (a linear congruential one), so that
/// tests can build varied records without a dependency.
pub struct Draws(u64);

impl Draws {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407))
    }

    /// A number below `bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        if bound == 0 { 0 } else { (self.0 >> 33) % bound }
    }

    /// One of `choices`.
    ///
    /// # Panics
    /// When `choices` is empty.
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        let index = usize::try_from(self.below(choices.len() as u64)).unwrap_or(0);
        choices[index]
    }

    /// An amount: often small, sometimes 0, sometimes the largest there is.
    pub fn amount(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX,
            _ => self.below(8000),
        }
    }

    fn labels(&mut self) -> Vec<Label> {
        let keys = ["app", "zone", "kubernetes.io/hostname", "topology.kubernetes.io/zone", "cores"];
        let values = ["a", "b", "c", "7", "-3", ""];
        let mut labels: Vec<Label> = Vec::new();
        for _ in 0..self.below(5) {
            let key = self.pick(&keys);
            if labels.iter().all(|label| label.key != key) {
                labels.push(Label { key: key.into(), value: (self.pick(&values)).into() });
            }
        }
        labels
    }

    fn selector(&mut self) -> Option<Vec<SelectorRequirement>> {
        use SelectorOperator::*;
        if self.below(4) == 0 {
            return None;
        }
        let operators = [In, NotIn, Exists, DoesNotExist];
        Some(
            (0..self.below(3))
                .map(|_| {
                    let operator = self.pick(&operators);
                    requirement(self.pick(&["app", "zone"]), operator, &[self.pick(&["a", "b"])])
                })
                .collect(),
        )
    }

    fn resources(&mut self) -> Resources {
        Resources {
            milli_cpu: self.amount(),
            memory: self.amount(),
            ephemeral_storage: self.amount(),
            pods: self.amount(),
            extended: vec![crate::ExtendedResource { name: "example.com/gpu".into(), amount: self.amount() }],
        }
    }

    fn affinity_term(&mut self) -> crate::PodAffinityTerm {
        crate::PodAffinityTerm {
            selector: self.selector(),
            namespaces: if self.below(2) == 0 { vec!["default".into()] } else { Vec::new() },
            namespace_selector: self.selector(),
            topology_key: (self.pick(&["zone", "kubernetes.io/hostname", "missing"])).into(),
        }
    }

    fn pod_affinity(&mut self) -> crate::PodAffinity {
        crate::PodAffinity {
            required: (0..self.below(2)).map(|_| self.affinity_term()).collect(),
            preferred: (0..self.below(2))
                .map(|_| crate::WeightedPodAffinityTerm {
                    weight: self.pick(&[1, 50, 100, 0, -5]),
                    term: self.affinity_term(),
                })
                .collect(),
        }
    }

    fn node_term(&mut self) -> crate::NodeSelectorTerm {
        use crate::NodeOperator::*;
        let operators = [In, NotIn, Exists, DoesNotExist, Gt, Lt];
        crate::NodeSelectorTerm {
            match_expressions: (0..self.below(3))
                .map(|_| {
                    let operator = self.pick(&operators);
                    let values: &[&str] = self.pick(&[&["a"][..], &["7"], &[], &["x", "y"]]);
                    node_requirement(self.pick(&["zone", "cores"]), operator, values)
                })
                .collect(),
            match_fields: (0..self.below(2))
                .map(|_| node_requirement("metadata.name", self.pick(&[In, NotIn, Exists]), &["node-1"]))
                .collect(),
        }
    }

    /// A node named `name` with drawn labels, taints, and allocatable.
    pub fn node(&mut self, name: &str) -> Node {
        let effects = [TaintEffect::NoSchedule, TaintEffect::PreferNoSchedule, TaintEffect::NoExecute];
        let mut node = Node { name: name.into(), labels: self.labels(), ..Node::default() };
        node.taints = (0..self.below(3)).map(|_| taint(self.pick(&["a", "b"]), "", self.pick(&effects))).collect();
        node.unschedulable = self.below(4) == 0;
        node.allocatable = self.resources();
        node
    }

    /// A pod with uid `uid` and drawn labels, requests, affinities,
    /// tolerations and spread constraints.
    pub fn pod(&mut self, uid: &str) -> Pod {
        use crate::{InclusionPolicy, SpreadConstraint, UnsatisfiableAction};
        let mut pod = Pod { uid: uid.into(), name: uid.into(), labels: self.labels(), ..Pod::default() };
        pod.namespace = (self.pick(&["default", "other"])).into();
        pod.namespace_labels = self.labels();
        pod.requests = self.resources();
        pod.node_name = (self.pick(&["", "", "node-1", "gone"])).into();
        pod.node_selector = if self.below(3) == 0 { self.labels() } else { Vec::new() };
        if self.below(2) == 0 {
            pod.node_affinity = Some(crate::NodeAffinity {
                required: match self.below(3) {
                    0 => None,
                    _ => Some((0..self.below(3)).map(|_| self.node_term()).collect()),
                },
                preferred: (0..self.below(3))
                    .map(|_| crate::PreferredNodeTerm { weight: self.pick(&[1, 100, 0]), preference: self.node_term() })
                    .collect(),
            });
        }
        let operators = [TolerationOperator::Equal, TolerationOperator::Exists];
        let effects = [None, Some(TaintEffect::NoSchedule), Some(TaintEffect::PreferNoSchedule)];
        pod.tolerations = (0..self.below(3))
            .map(|_| toleration(self.pick(&["a", "", "b"]), self.pick(&operators), "", self.pick(&effects)))
            .collect();
        pod.pod_affinity = self.pod_affinity();
        pod.pod_anti_affinity = self.pod_affinity();
        let actions = [UnsatisfiableAction::DoNotSchedule, UnsatisfiableAction::ScheduleAnyway];
        let policies = [InclusionPolicy::Honor, InclusionPolicy::Ignore];
        pod.spread_constraints = (0..self.below(3))
            .map(|_| SpreadConstraint {
                max_skew: self.pick(&[0, 1, 5, u32::MAX]),
                topology_key: (self.pick(&["zone", "kubernetes.io/hostname", "topology.kubernetes.io/zone"])).into(),
                when_unsatisfiable: self.pick(&actions),
                selector: self.selector(),
                min_domains: self.pick(&[0, 1, 3, u32::MAX]),
                node_affinity_policy: self.pick(&policies),
                node_taints_policy: self.pick(&policies),
            })
            .collect();
        pod.default_spread_selector = self.selector();
        pod
    }
}

/// Runs `P` configured by `config` over many drawn tables, pods and
/// assumptions, and checks that it answers one verdict per candidate and
/// one score from 0 to 100 per node, without panicking; that a call its
/// plan skips would have changed nothing (every node fits, every node
/// scores the same); and that it answers alike when every pod it sees is
/// trimmed to the parts it says it reads (its `Abilities::pod_parts`), as
/// the host sends them.
///
/// # Panics
/// When the plugin does not configure, answers the wrong number of items
/// or a score past 100, skips a call that mattered, or reads a part of a
/// pod it does not name.
pub fn assert_well_formed<P: crate::Plugin>(config: &str) {
    let (plugin, abilities) =
        P::configure(config).unwrap_or_else(|error| panic!("{config} does not configure: {error}"));
    let parts = abilities.pod_parts;
    for seed in 0..256 {
        let mut draws = Draws::new(seed);
        let (mut table, mut trimmed_table) = (crate::Table::new(), crate::Table::new());
        for index in 0..draws.below(6) as u32 {
            let node = draws.node(&format!("node-{index}"));
            trimmed_table.apply(crate::Change::NodeSet(index, node.clone()));
            table.apply(crate::Change::NodeSet(index, node));
        }
        for number in 0..draws.below(12) {
            let index = draws.below(7) as u32;
            let pod = draws.pod(&format!("placed-{number}"));
            trimmed_table.apply(crate::Change::PodPlaced(index, pod.trimmed(parts)));
            table.apply(crate::Change::PodPlaced(index, pod));
        }
        let known: Vec<u32> = table.nodes().map(|(index, _)| index).collect();
        let assumptions = crate::Assumptions {
            without: vec!["placed-0".into(), "placed-3".into()],
            extra: vec![(draws.below(7) as u32, draws.pod("extra"))],
        };
        let trimmed_assumptions = crate::Assumptions {
            without: assumptions.without.clone(),
            extra: assumptions.extra.iter().map(|(index, pod)| (*index, pod.trimmed(parts))).collect(),
        };
        for _ in 0..4 {
            let pod = draws.pod("incoming");
            let trimmed = pod.trimmed(parts);
            let plan = plugin.plan(&table, &pod);
            let unread = |what: &str| format!("{what} differs with pods trimmed to {parts:?} (seed {seed})");
            assert_eq!(plugin.plan(&trimmed_table, &trimmed), plan, "{}", unread("the plan"));
            for plain in [true, false] {
                let (assumed, trimmed_assumed) = if plain {
                    (crate::Assumptions::default(), crate::Assumptions::default())
                } else {
                    (assumptions.clone(), trimmed_assumptions.clone())
                };
                let verdicts = plugin.filter(&table, &pod, &known, &assumed);
                assert_eq!(verdicts.len(), known.len(), "one verdict per candidate (seed {seed})");
                let trimmed_verdicts = plugin.filter(&trimmed_table, &trimmed, &known, &trimmed_assumed);
                assert!(verdicts.iter().eq(trimmed_verdicts.iter()), "{}", unread("a verdict"));
                if plain && !plan.filter {
                    let refused = verdicts.iter().find(|verdict| **verdict != crate::Verdict::Fits);
                    assert_eq!(refused, None, "the plan skipped a filter that refuses (seed {seed})");
                }
            }
            let scores = plugin.score(&table, &pod, &known);
            assert_eq!(plugin.score(&trimmed_table, &trimmed, &known), scores, "{}", unread("a score"));
            assert_eq!(scores.len(), known.len(), "one score per node (seed {seed})");
            assert!(scores.iter().all(|&score| score <= crate::MAX_NODE_SCORE), "scores within 0..=100 (seed {seed})");
            if !plan.score {
                assert!(
                    scores.windows(2).all(|pair| pair[0] == pair[1]),
                    "the plan skipped a score that ranks (seed {seed})"
                );
            }
        }
    }
}
