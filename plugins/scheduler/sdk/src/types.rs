//! The scheduler-plugin world's records (`wit/scheduler.wit`) as plain
//! Rust: what the host sends and what a plugin answers, the same on both
//! sides of the boundary.

/// An amount of a resource: millicores of CPU, bytes of memory or storage,
/// or a count.
pub type Quantity = u64;

/// A label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Label {
    /// The key, e.g. `topology.kubernetes.io/zone`.
    pub key: String,
    /// The value.
    pub value: String,
}

/// An extended resource (e.g. `example.com/gpu`), by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedResource {
    /// The resource's name.
    pub name: String,
    /// How much of it.
    pub amount: Quantity,
}

/// Amounts of every resource the scheduler counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    /// CPU, in millicores.
    pub milli_cpu: Quantity,
    /// Memory, in bytes.
    pub memory: Quantity,
    /// Ephemeral storage, in bytes.
    pub ephemeral_storage: Quantity,
    /// Pods (a node's allocatable count; 1 in a pod's requests).
    pub pods: Quantity,
    /// Extended resources, each named once.
    pub extended: Vec<ExtendedResource>,
}

/// How a taint repels pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    /// New pods that do not tolerate it are not scheduled there.
    NoSchedule,
    /// The scheduler avoids the node when it can.
    PreferNoSchedule,
    /// Running pods that do not tolerate it are evicted.
    NoExecute,
}

/// A node's taint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Taint {
    /// The taint's key.
    pub key: String,
    /// Its value, or empty.
    pub value: String,
    /// What it does.
    pub effect: TaintEffect,
}

/// How a toleration compares values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TolerationOperator {
    /// The taint's value must equal the toleration's.
    Equal,
    /// Any value (and, with an empty key, any key).
    Exists,
}

/// A pod's toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// The key tolerated; empty with `Exists` tolerates every taint.
    pub key: String,
    /// How values compare.
    pub operator: TolerationOperator,
    /// The value tolerated, for `Equal`.
    pub value: String,
    /// The effect tolerated; `None` tolerates every effect.
    pub effect: Option<TaintEffect>,
}

/// How a label selector requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorOperator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SelectorRequirement {
    /// The label key.
    pub key: String,
    /// How it compares.
    pub operator: SelectorOperator,
    /// The values, for `In` and `NotIn`.
    pub values: Vec<String>,
}

/// A label selector: every requirement must hold (`matchLabels` as `In`
/// requirements of one value). No requirements select every object.
pub type LabelSelector = Vec<SelectorRequirement>;

/// How a node selector requirement compares a node's label or field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOperator {
    /// The value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The value, as an integer, is greater than the one value.
    Gt,
    /// The value, as an integer, is less than the one value.
    Lt,
}

/// One requirement of a node selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRequirement {
    /// The label key (or, in `match_fields`, the field: `metadata.name`).
    pub key: String,
    /// How it compares.
    pub operator: NodeOperator,
    /// The values.
    pub values: Vec<String>,
}

/// A node selector term: every requirement must hold. A term with no
/// requirements selects no node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSelectorTerm {
    /// Requirements on the node's labels.
    pub match_expressions: Vec<NodeRequirement>,
    /// Requirements on the node's fields (only `metadata.name`).
    pub match_fields: Vec<NodeRequirement>,
}

/// A preferred node selector term and what it weighs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferredNodeTerm {
    /// Its weight, 1 to 100.
    pub weight: i32,
    /// The term.
    pub preference: NodeSelectorTerm,
}

/// `spec.affinity.nodeAffinity`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeAffinity {
    /// The terms of which a node must match one (`None`: any node).
    pub required: Option<Vec<NodeSelectorTerm>>,
    /// The terms that add their weight to a node that matches them.
    pub preferred: Vec<PreferredNodeTerm>,
}

/// A pod (anti-)affinity term: pods that match `selector`, in the
/// namespaces it names, in the same topology domain as the node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PodAffinityTerm {
    /// Which pods the term is about (`None`: no pod).
    pub selector: Option<LabelSelector>,
    /// The namespaces of those pods. For a pod being placed, the host has
    /// already resolved `namespaceSelector` and the default (the pod's own
    /// namespace) into this list.
    pub namespaces: Vec<String>,
    /// For a placed pod's term: namespaces whose labels match this also
    /// count (`None`: only `namespaces`).
    pub namespace_selector: Option<LabelSelector>,
    /// The node label whose value is the topology domain.
    pub topology_key: String,
}

/// A preferred pod (anti-)affinity term and what it weighs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedPodAffinityTerm {
    /// Its weight, 1 to 100.
    pub weight: i32,
    /// The term.
    pub term: PodAffinityTerm,
}

/// `spec.affinity.podAffinity` or `podAntiAffinity`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodAffinity {
    /// Terms every placement must satisfy.
    pub required: Vec<PodAffinityTerm>,
    /// Terms that weigh in a node's score.
    pub preferred: Vec<WeightedPodAffinityTerm>,
}

/// What a topology spread constraint does when it cannot be met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsatisfiableAction {
    /// The pod is not placed where the skew would grow past the bound.
    DoNotSchedule,
    /// Nodes that lower the skew score higher.
    ScheduleAnyway,
}

/// Whether a spread constraint's domain count looks at a property of the
/// nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InclusionPolicy {
    /// Only nodes the pod could go to by that property count.
    Honor,
    /// Every node counts.
    Ignore,
}

/// One of `spec.topologySpreadConstraints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConstraint {
    /// The most the number of matching pods may differ between two domains.
    pub max_skew: u32,
    /// The node label whose value is the domain.
    pub topology_key: String,
    /// What happens when the bound cannot be met.
    pub when_unsatisfiable: UnsatisfiableAction,
    /// Which pods count (`matchLabelKeys` already merged in; `None`: no pod).
    pub selector: Option<LabelSelector>,
    /// The fewest domains assumed to exist (0: not set).
    pub min_domains: u32,
    /// Whether the pod's node affinity and node selector narrow the domains
    /// counted.
    pub node_affinity_policy: InclusionPolicy,
    /// Whether the nodes' taints narrow the domains counted.
    pub node_taints_policy: InclusionPolicy,
}

/// A pod: the one being placed, or one already placed on a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pod {
    /// Its uid.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Vec<Label>,
    /// The labels of its namespace.
    pub namespace_labels: Vec<Label>,
    /// What it requests (`pods` is 1).
    pub requests: Resources,
    /// `spec.priority`.
    pub priority: i32,
    /// `spec.nodeName` when it names a node, else empty; a placed pod's is
    /// its node's name.
    pub node_name: String,
    /// `spec.nodeSelector`.
    pub node_selector: Vec<Label>,
    /// `spec.affinity.nodeAffinity`, when set.
    pub node_affinity: Option<NodeAffinity>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// `spec.affinity.podAffinity`.
    pub pod_affinity: PodAffinity,
    /// `spec.affinity.podAntiAffinity`.
    pub pod_anti_affinity: PodAffinity,
    /// `spec.topologySpreadConstraints`.
    pub spread_constraints: Vec<SpreadConstraint>,
    /// The selector of the pod's Services, ReplicaSets and StatefulSets
    /// together, for default spread constraints (`None`: it has none).
    pub default_spread_selector: Option<LabelSelector>,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Vec<Label>,
    /// Taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// What the node can give pods in all (`status.allocatable`).
    pub allocatable: Resources,
}

/// One change to a plugin's table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "the same shape as the WIT variant; changes come in batches, and a boxed pod would cost an allocation each"
)]
pub enum Change {
    /// A node at an index: new, or replacing the node there (its pods stay).
    NodeSet(u32, Node),
    /// The node at an index is gone, and the pods placed on it.
    NodeRemoved(u32),
    /// A pod is placed on the node at an index (its node name becomes the
    /// node's).
    PodPlaced(u32, Pod),
    /// The pod with this uid is no longer placed.
    PodRemoved(String),
}

/// A table as it would be: for one call, these pods count as gone and these
/// as placed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assumptions {
    /// Uids of placed pods that do not count.
    pub without: Vec<String>,
    /// Pods that count as placed, with their node's index.
    pub extra: Vec<(u32, Pod)>,
}

/// What a plugin says of one node in a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The pod may go there.
    Fits,
    /// The pod may not go there now, for these reasons (kube-scheduler's
    /// words); evicting pods might change that.
    Unfit(Vec<String>),
    /// The pod may not go there, and evicting pods would not change that.
    Unresolvable(Vec<String>),
}

impl Verdict {
    /// The reasons it gives (none where the pod fits).
    pub fn reasons(&self) -> &[String] {
        match self {
            Self::Fits => &[],
            Self::Unfit(reasons) | Self::Unresolvable(reasons) => reasons,
        }
    }
}

/// Distinct refusals a filter's answer keeps apart, at most; past this a
/// refusal is kept again rather than looked for (a plugin gives a handful).
const DISTINCT_REFUSALS_SOUGHT: usize = 16;

/// A filter's verdicts on its candidates, in their order, each distinct
/// refusal kept once: how an answer crosses from a component to the host
/// (one number per candidate, each reason once).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdicts {
    refusals: Vec<Verdict>,
    by_candidate: Vec<u32>,
}

/// The verdict [`Verdicts`] give where the pod fits.
const FITS: Verdict = Verdict::Fits;

impl Verdicts {
    /// Verdicts from their parts: `refusals` (none of them
    /// [`Verdict::Fits`]) and, per candidate, 0 where the pod fits, else
    /// which refusal applies (1 for the first).
    ///
    /// # Errors
    /// A refusal that lets the pod fit, or a candidate's number past the
    /// refusals, in words.
    pub fn from_parts(refusals: Vec<Verdict>, by_candidate: Vec<u32>) -> Result<Self, String> {
        if refusals.contains(&Verdict::Fits) {
            return Err("a refusal that refuses nothing".into());
        }
        if let Some(at) = by_candidate.iter().find(|at| **at as usize > refusals.len()) {
            return Err(format!("a candidate refused by refusal {at}, of {} given", refusals.len()));
        }
        Ok(Self { refusals, by_candidate })
    }

    /// Verdicts that let the pod fit on each of `candidates` candidates.
    pub fn all_fit(candidates: usize) -> Self {
        Self { refusals: Vec::new(), by_candidate: vec![0; candidates] }
    }

    /// The distinct refusals given.
    pub fn refusals(&self) -> &[Verdict] {
        &self.refusals
    }

    /// Per candidate, 0 where the pod fits, else which of
    /// [`Verdicts::refusals`] applies (1 for the first).
    pub fn by_candidate(&self) -> &[u32] {
        &self.by_candidate
    }

    /// Both parts, as [`Verdicts::from_parts`] takes them.
    pub fn into_parts(self) -> (Vec<Verdict>, Vec<u32>) {
        (self.refusals, self.by_candidate)
    }

    /// The number of candidates judged.
    pub fn len(&self) -> usize {
        self.by_candidate.len()
    }

    /// Whether no candidate was judged.
    pub fn is_empty(&self) -> bool {
        self.by_candidate.is_empty()
    }

    /// The verdict on the candidate at `position`, if there is one.
    pub fn get(&self, position: usize) -> Option<&Verdict> {
        let at = *self.by_candidate.get(position)?;
        Some(at.checked_sub(1).map_or(&FITS, |refusal| &self.refusals[refusal as usize]))
    }

    /// Each candidate's verdict, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Verdict> {
        self.by_candidate.iter().map(|at| at.checked_sub(1).map_or(&FITS, |refusal| &self.refusals[refusal as usize]))
    }

    /// Adds the verdict on the next candidate.
    pub fn push(&mut self, verdict: Verdict) {
        if matches!(verdict, Verdict::Fits) {
            self.by_candidate.push(0);
            return;
        }
        let found = match self.refusals.last() {
            Some(last) if *last == verdict => Some(self.refusals.len() - 1),
            _ => self.refusals.iter().take(DISTINCT_REFUSALS_SOUGHT).position(|refusal| *refusal == verdict),
        };
        let at = found.unwrap_or_else(|| {
            self.refusals.push(verdict);
            self.refusals.len() - 1
        });
        self.by_candidate.push(u32::try_from(at + 1).expect("fewer refusals than candidates"));
    }
}

impl FromIterator<Verdict> for Verdicts {
    fn from_iter<I: IntoIterator<Item = Verdict>>(verdicts: I) -> Self {
        let verdicts = verdicts.into_iter();
        let mut all = Self { refusals: Vec::new(), by_candidate: Vec::with_capacity(verdicts.size_hint().0) };
        verdicts.for_each(|verdict| all.push(verdict));
        all
    }
}

impl std::ops::Index<usize> for Verdicts {
    type Output = Verdict;

    fn index(&self, position: usize) -> &Verdict {
        self.get(position).expect("a verdict on every candidate asked about")
    }
}

impl PartialEq<Vec<Verdict>> for Verdicts {
    fn eq(&self, other: &Vec<Verdict>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// Which calls a plugin takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Abilities {
    /// It filters nodes.
    pub filters: bool,
    /// It scores nodes.
    pub scores: bool,
    /// It reads the pods placed on nodes.
    pub reads_pods: bool,
    /// The parts of pods it reads (the pod it judges, and placed pods).
    pub pod_parts: PodParts,
}

/// The parts of a pod a plugin reads, beyond its uid, namespace, name,
/// priority and `nodeName`: the others reach the plugin empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodParts {
    /// Its labels and its namespace's.
    pub labels: bool,
    /// What it requests.
    pub requests: bool,
    /// Its node selector and node affinity.
    pub node_rules: bool,
    /// Its tolerations.
    pub tolerations: bool,
    /// Its pod affinity and anti-affinity.
    pub affinities: bool,
    /// Its spread constraints and default spread selector.
    pub spread: bool,
}

impl PodParts {
    /// Every part.
    pub const ALL: Self =
        Self { labels: true, requests: true, node_rules: true, tolerations: true, affinities: true, spread: true };

    /// No part.
    pub const NONE: Self = Self {
        labels: false,
        requests: false,
        node_rules: false,
        tolerations: false,
        affinities: false,
        spread: false,
    };
}

impl Default for PodParts {
    /// Every part: a plugin that says nothing reads everything.
    fn default() -> Self {
        Self::ALL
    }
}

impl Pod {
    /// The pod as a plugin reading `parts` sees it: the other parts empty.
    #[must_use]
    pub fn trimmed(&self, parts: PodParts) -> Self {
        let kept = |read: bool| read.then_some(self);
        Self {
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            labels: kept(parts.labels).map(|pod| pod.labels.clone()).unwrap_or_default(),
            namespace_labels: kept(parts.labels).map(|pod| pod.namespace_labels.clone()).unwrap_or_default(),
            requests: kept(parts.requests).map(|pod| pod.requests.clone()).unwrap_or_default(),
            priority: self.priority,
            node_name: self.node_name.clone(),
            node_selector: kept(parts.node_rules).map(|pod| pod.node_selector.clone()).unwrap_or_default(),
            node_affinity: kept(parts.node_rules).and_then(|pod| pod.node_affinity.clone()),
            tolerations: kept(parts.tolerations).map(|pod| pod.tolerations.clone()).unwrap_or_default(),
            pod_affinity: kept(parts.affinities).map(|pod| pod.pod_affinity.clone()).unwrap_or_default(),
            pod_anti_affinity: kept(parts.affinities).map(|pod| pod.pod_anti_affinity.clone()).unwrap_or_default(),
            spread_constraints: kept(parts.spread).map(|pod| pod.spread_constraints.clone()).unwrap_or_default(),
            default_spread_selector: kept(parts.spread).and_then(|pod| pod.default_spread_selector.clone()),
        }
    }

    /// Whether `other` is this pod, its node name aside: the same pod once
    /// placed (a placed pod's node name is its node's).
    #[must_use]
    pub fn same_but_node_name(&self, other: &Self) -> bool {
        let Self {
            uid,
            namespace,
            name,
            labels,
            namespace_labels,
            requests,
            priority,
            node_name: _,
            node_selector,
            node_affinity,
            tolerations,
            pod_affinity,
            pod_anti_affinity,
            spread_constraints,
            default_spread_selector,
        } = self;
        *uid == other.uid
            && *namespace == other.namespace
            && *name == other.name
            && *labels == other.labels
            && *namespace_labels == other.namespace_labels
            && *requests == other.requests
            && *priority == other.priority
            && *node_selector == other.node_selector
            && *node_affinity == other.node_affinity
            && *tolerations == other.tolerations
            && *pod_affinity == other.pod_affinity
            && *pod_anti_affinity == other.pod_anti_affinity
            && *spread_constraints == other.spread_constraints
            && *default_spread_selector == other.default_spread_selector
    }
}

/// Which of a plugin's calls a pod needs: kube-scheduler's PreFilter and
/// PreScore, either of which may skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Filter the pod. Without it, as the table stands, the pod fits every
    /// node as far as the plugin is concerned (the host still asks under
    /// assumptions).
    pub filter: bool,
    /// Score the pod. Without it, the plugin adds the same to every node.
    pub score: bool,
}

impl Plan {
    /// Both calls.
    pub const FULL: Self = Self { filter: true, score: true };
}
