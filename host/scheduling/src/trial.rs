//! A trial of a scheduler profile: where the pods of a snapshot of the
//! cluster would go under a candidate profile, compared with where they
//! are. The trial keeps a node table of its own, built from the snapshot,
//! and fresh instances of the candidate's plugins; it places the pending
//! pods that name the profile (and, when asked, every pod bound under it,
//! as if it were placed again) one at a time in queue order, assuming each
//! placement in its table so that later pods see it. It writes nothing.
//!
//! What it does not model: pods that arrive, leave or are bound while it
//! runs (it sees one snapshot); preemption; the back-off of the queue
//! (every pod is tried once); other profiles placing pods between its own.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use engenho_scheduler as sdk;
use engenho_wasm::PluginHost;
use serde_json::Value;

use super::cycle::{Cycle, CycleError, Decision, PluginRun, PluginScores, PluginVerdicts};
use super::scheduler::ProfileSpec;
use super::table::Table;
use super::view;

/// Pods a trial explains at most.
pub const EXPLAINED_PODS_MAX: usize = 16;

/// Times a trial starts fresh instances after a plugin failed, at most;
/// after that, the pods left are reported failed with the last failure.
const RESTARTS_MAX: u32 = 3;

/// What a trial reads: the cluster's Nodes, Pods and Namespaces (JSON
/// objects) as of one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Node objects.
    pub nodes: Vec<Value>,
    /// Pod objects.
    pub pods: Vec<Value>,
    /// Namespace objects.
    pub namespaces: Vec<Value>,
}

/// A pod by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for PodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a trial is asked.
#[derive(Debug, Clone, Default)]
pub struct TrialRequest {
    /// The pods it places: those whose `spec.schedulerName` is this.
    pub scheduler_name: String,
    /// Whether the pods already bound are placed again too, not only the
    /// pending ones.
    pub all: bool,
    /// The pods whose every plugin verdict and score it reports (at most
    /// [`EXPLAINED_PODS_MAX`]).
    pub explain: Vec<PodName>,
}

/// Where the trial put a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// On this node.
    Placed(String),
    /// Nowhere: kube-scheduler's message of why.
    Unschedulable(String),
    /// Nowhere: a plugin failed (the failure, naming the plugin).
    Failed(String),
}

/// How a pod's trial placement compares with where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Comparison {
    /// Bound, and placed on the same node.
    Same,
    /// Bound, and placed on another node.
    Moved,
    /// Pending, and placed.
    Placed,
    /// Placed nowhere: no node fits.
    Unschedulable,
    /// Placed nowhere: a plugin failed.
    Failed,
}

/// One pod of the trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTrial {
    /// The pod.
    pub pod: PodName,
    /// The node it is bound to now (`None`: pending).
    pub today: Option<String>,
    /// Where the trial put it.
    pub outcome: Outcome,
}

impl PodTrial {
    /// How the trial's placement compares with where the pod is.
    pub fn comparison(&self) -> Comparison {
        match (&self.today, &self.outcome) {
            (Some(today), Outcome::Placed(node)) if today == node => Comparison::Same,
            (Some(_), Outcome::Placed(_)) => Comparison::Moved,
            (None, Outcome::Placed(_)) => Comparison::Placed,
            (_, Outcome::Unschedulable(_)) => Comparison::Unschedulable,
            (_, Outcome::Failed(_)) => Comparison::Failed,
        }
    }
}

/// One node as the plugins judged it for an explained pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeJudgement {
    /// The node.
    pub node: String,
    /// Each filtering plugin's verdict, in profile order.
    pub verdicts: Vec<(String, sdk::Verdict)>,
    /// Each scoring plugin's score and weight, in profile order (empty
    /// when the node is not feasible: only feasible nodes are scored).
    pub scores: Vec<(String, u32, u32)>,
    /// The weighted sum of the scores, when the node is feasible.
    pub total: Option<u64>,
}

impl NodeJudgement {
    /// Whether every filtering plugin lets the pod go there.
    pub fn feasible(&self) -> bool {
        self.verdicts.iter().all(|(_, v)| *v == sdk::Verdict::Fits)
    }
}

/// Every plugin's word on every node for one pod, and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The pod.
    pub pod: PodName,
    /// Why it was not explained (the trial does not place it), if so.
    pub not_placed: Option<String>,
    /// The nodes, in table order.
    pub nodes: Vec<NodeJudgement>,
    /// Where the trial put it.
    pub outcome: Option<Outcome>,
}

/// Counts of the pods a trial placed, by [`Comparison`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Pods the trial placed (or tried to).
    pub pods: usize,
    /// On the node they are bound to.
    pub same: usize,
    /// On another node than the one they are bound to.
    pub moved: usize,
    /// Pending pods placed.
    pub placed: usize,
    /// Pods no node fits.
    pub unschedulable: usize,
    /// Pods a plugin failed on.
    pub failed: usize,
}

/// What a trial found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every pod it placed, in the order it placed them.
    pub pods: Vec<PodTrial>,
    /// The pods asked about, in the order asked.
    pub explanations: Vec<Explanation>,
}

impl Report {
    /// The pods counted by how they compare.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary { pods: self.pods.len(), ..Summary::default() };
        for pod in &self.pods {
            let count = match pod.comparison() {
                Comparison::Same => &mut summary.same,
                Comparison::Moved => &mut summary.moved,
                Comparison::Placed => &mut summary.placed,
                Comparison::Unschedulable => &mut summary.unschedulable,
                Comparison::Failed => &mut summary.failed,
            };
            *count += 1;
        }
        summary
    }
}

/// Why a trial could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// More pods were to be explained than a trial explains.
    #[error("{asked} pods asked to be explained; a trial explains at most {EXPLAINED_PODS_MAX}")]
    TooManyExplained {
        /// How many were asked.
        asked: usize,
    },
    /// The profile has no plugins.
    #[error("the profile names no plugins")]
    NoPlugins,
    /// The candidate's plugin instances could not start.
    #[error("the profile's plugins could not start: {0}")]
    Start(#[source] CycleError),
}

/// A pod the trial places, and where it is now.
struct Candidate {
    record: Arc<sdk::Pod>,
    today: Option<String>,
    created: String,
}

/// Places the pods of `snapshot` that `request` names with `profile`, its
/// plugins fresh instances from `host` that leave the scheduler its share
/// ([`engenho_wasm::SCHEDULER_INSTANCES_SPARED`]); `default_spread` gives
/// pods their default spread selector, as the scheduler does.
///
/// # Errors
/// Too many pods to explain; no plugins; the plugin instances could not
/// start (the node keeps too many, or one refused its configuration).
pub async fn trial(
    host: &PluginHost,
    profile: &ProfileSpec,
    snapshot: &Snapshot,
    default_spread: &view::DefaultSpread,
    request: &TrialRequest,
) -> Result<Report, TrialError> {
    if request.explain.len() > EXPLAINED_PODS_MAX {
        return Err(TrialError::TooManyExplained { asked: request.explain.len() });
    }
    if profile.plugins.is_empty() {
        return Err(TrialError::NoPlugins);
    }
    let (table, candidates) = today(snapshot, default_spread, request);
    let cycle = start(host, profile).await.map_err(TrialError::Start)?;
    let mut run = Run { host, profile, table, cycle, restarts: 0, stopped: None };
    let mut report = Report { pods: Vec::with_capacity(candidates.len()), explanations: Vec::new() };
    let mut explained: BTreeMap<PodName, Explanation> = BTreeMap::new();
    for candidate in candidates {
        let pod = PodName { namespace: candidate.record.namespace.clone(), name: candidate.record.name.clone() };
        let explain = request.explain.contains(&pod);
        let (nodes, outcome) = run.place(&candidate.record, explain).await;
        if explain {
            let explanation = Explanation { pod: pod.clone(), not_placed: None, nodes, outcome: Some(outcome.clone()) };
            explained.insert(pod.clone(), explanation);
        }
        report.pods.push(PodTrial { pod, today: candidate.today, outcome });
    }
    report.explanations = request
        .explain
        .iter()
        .map(|pod| {
            explained.remove(pod).unwrap_or_else(|| Explanation {
                pod: pod.clone(),
                not_placed: Some(not_placed(snapshot, pod, request)),
                nodes: Vec::new(),
                outcome: None,
            })
        })
        .collect();
    assert_eq!(report.explanations.len(), request.explain.len(), "one explanation per pod asked about");
    Ok(report)
}

/// A trial under way: its table, its plugins, and how often they failed.
struct Run<'a> {
    host: &'a PluginHost,
    profile: &'a ProfileSpec,
    table: Table,
    cycle: Cycle,
    restarts: u32,
    /// The failure after which no pod is tried any more.
    stopped: Option<String>,
}

impl Run<'_> {
    /// Places `pod` (and assumes it where it goes); with `explain`, every
    /// plugin's word on every node first.
    async fn place(&mut self, pod: &Arc<sdk::Pod>, explain: bool) -> (Vec<NodeJudgement>, Outcome) {
        if let Some(failure) = &self.stopped {
            return (Vec::new(), Outcome::Failed(failure.clone()));
        }
        let judged = self.judge(pod, explain).await;
        match judged {
            Ok((nodes, Decision::Place(index))) => match self.table.node(index).map(|n| n.node.name.clone()) {
                Some(node) => {
                    self.table.place(&node, pod.clone(), true);
                    (nodes, Outcome::Placed(node))
                }
                None => (nodes, Outcome::Failed(format!("the cycle chose node index {index}, not in the table"))),
            },
            Ok((nodes, Decision::Unfit(fit_error))) => (nodes, Outcome::Unschedulable(fit_error.to_string())),
            Err(error) => {
                // The failed instance is in an unknown state: the pods left
                // get fresh ones, as the scheduler's would.
                let failure = error.to_string();
                self.restarts += 1;
                if self.restarts > RESTARTS_MAX {
                    self.stopped = Some(format!("{failure} (and {RESTARTS_MAX} fresh starts failed too)"));
                } else {
                    match start(self.host, self.profile).await {
                        Ok(fresh) => self.cycle = fresh,
                        Err(error) => self.stopped = Some(error.to_string()),
                    }
                }
                (Vec::new(), Outcome::Failed(failure))
            }
        }
    }

    async fn judge(&mut self, pod: &sdk::Pod, explain: bool) -> Result<(Vec<NodeJudgement>, Decision), CycleError> {
        let nodes = match explain {
            true => judgements(&mut self.cycle, self.host, &self.table, pod).await?,
            false => Vec::new(),
        };
        let decision = self.cycle.decide(self.host, &self.table, pod, &sdk::Assumptions::default()).await?;
        Ok((nodes, decision))
    }
}

/// The table as the cluster stands (less the pods to place again), and
/// the pods to place, in queue order: the highest priority first, then
/// the oldest.
fn today(snapshot: &Snapshot, default_spread: &view::DefaultSpread, request: &TrialRequest) -> (Table, Vec<Candidate>) {
    let namespaces: view::NamespaceLabels = snapshot
        .namespaces
        .iter()
        .map(|n| (text(n, "/metadata/name").to_owned(), string_map(n.pointer("/metadata/labels"))))
        .collect();
    let mut table = Table::new();
    for node in &snapshot.nodes {
        table.set_node(view::node(node));
    }
    let mut candidates = Vec::new();
    for pod in &snapshot.pods {
        if view::finished(pod) {
            continue;
        }
        let ours = view::scheduler_name(pod) == request.scheduler_name;
        let node = text(pod, "/spec/nodeName");
        let record = Arc::new(view::pod_record(pod, &namespaces, default_spread));
        let created = text(pod, "/metadata/creationTimestamp").to_owned();
        if !node.is_empty() {
            table.place(node, record.clone(), false);
            if ours && request.all {
                // Placed again as if pending: no node named yet.
                let again = sdk::Pod { node_name: String::new(), ..(*record).clone() };
                candidates.push(Candidate { record: Arc::new(again), today: Some(node.to_owned()), created });
            }
            continue;
        }
        let deleting = pod.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null());
        if ours && !deleting && !view::gated(pod) {
            candidates.push(Candidate { record, today: None, created });
        }
    }
    for candidate in candidates.iter().filter(|c| c.today.is_some()) {
        table.unplace(&candidate.record.uid);
    }
    candidates.sort_by(|a, b| {
        let key = |c: &Candidate| (Reverse(c.record.priority), c.created.clone(), c.record.namespace.clone());
        key(a).cmp(&key(b)).then_with(|| a.record.name.cmp(&b.record.name))
    });
    (table, candidates)
}

/// Every plugin's word on every node of `table` for `pod`.
async fn judgements(
    cycle: &mut Cycle,
    host: &PluginHost,
    table: &Table,
    pod: &sdk::Pod,
) -> Result<Vec<NodeJudgement>, CycleError> {
    let nodes: Vec<u32> = table.real_nodes().collect();
    let assumptions = sdk::Assumptions::default();
    let filters: Vec<PluginVerdicts> = cycle.filter_every_node(host, table, pod, &nodes, &assumptions).await?;
    let mut judgements: Vec<NodeJudgement> = nodes
        .iter()
        .enumerate()
        .map(|(i, &index)| NodeJudgement {
            node: table.node(index).map(|n| n.node.name.clone()).unwrap_or_default(),
            verdicts: filters.iter().map(|f| (f.plugin.clone(), f.verdicts[i].clone())).collect(),
            scores: Vec::new(),
            total: None,
        })
        .collect();
    let feasible: Vec<usize> = (0..nodes.len()).filter(|&i| judgements[i].feasible()).collect();
    let feasible_nodes: Vec<u32> = feasible.iter().map(|&i| nodes[i]).collect();
    let scores: Vec<PluginScores> = cycle.score_by_plugin(host, pod, &feasible_nodes).await?;
    for (k, &i) in feasible.iter().enumerate() {
        let judgement = &mut judgements[i];
        judgement.scores = scores.iter().map(|s| (s.plugin.clone(), s.scores[k], s.weight)).collect();
        judgement.total =
            Some(judgement.scores.iter().map(|(_, score, weight)| u64::from(*score) * u64::from(*weight)).sum());
    }
    Ok(judgements)
}

/// Why the trial does not place `pod`, which was asked about.
fn not_placed(snapshot: &Snapshot, pod: &PodName, request: &TrialRequest) -> String {
    let found = snapshot
        .pods
        .iter()
        .find(|p| text(p, "/metadata/namespace") == pod.namespace && text(p, "/metadata/name") == pod.name);
    let Some(found) = found else { return format!("no pod {pod}") };
    let scheduler_name = view::scheduler_name(found);
    if scheduler_name != request.scheduler_name {
        return format!("it names scheduler {scheduler_name:?}, not {:?}", request.scheduler_name);
    }
    if !text(found, "/spec/nodeName").is_empty() {
        return "it is bound, and only pending pods are placed (ask for all pods to place it again)".into();
    }
    "it is not waiting for a node (finished, deleting or gated)".into()
}

/// Fresh instances of the profile's plugins that leave the scheduler its
/// share, as a cycle.
async fn start(host: &PluginHost, profile: &ProfileSpec) -> Result<Cycle, CycleError> {
    let mut plugins = Vec::with_capacity(profile.plugins.len());
    for plugin in &profile.plugins {
        let instance = plugin
            .plugin
            .spare_instance(host)
            .await
            .map_err(|error| CycleError { plugin: plugin.name.clone(), error })?;
        plugins.push(PluginRun::new(plugin.name.clone(), plugin.weight, instance));
    }
    Ok(Cycle::new(plugins, profile.percentage_of_nodes_to_score))
}

fn string_map(map: Option<&Value>) -> BTreeMap<String, String> {
    let entries = map.and_then(Value::as_object).into_iter().flatten();
    entries.map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use engenho_wasm::{Limits, SCHEDULER_INSTANCES_MAX, SchedulerPlugin};
    use serde_json::json;

    use super::*;
    use crate::scheduler::ProfilePlugin;

    /// A profile of built-in plugin components: (name, weight, config).
    pub(crate) async fn profile(host: &PluginHost, plugins: &[(&str, u32, &str)]) -> ProfileSpec {
        let limits = Limits { deadline: Duration::from_secs(2), memory_bytes: 256 << 20, ..Limits::default() };
        let mut loaded = Vec::new();
        for (name, weight, config) in plugins {
            let bytes = engenho_plugin_artifacts::plugin(name).expect("a built-in scheduler plugin");
            let digest = engenho_wasm::digest_of(bytes);
            let plugin = SchedulerPlugin::load(host, name, &digest, bytes, config, limits).await.expect("loads");
            loaded.push(ProfilePlugin { name: (*name).to_owned(), weight: *weight, plugin: Arc::new(plugin) });
        }
        ProfileSpec { plugins: loaded, percentage_of_nodes_to_score: None }
    }

    fn node(name: &str, cpu: &str, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}})
    }

    /// A pod requesting `cpu`, bound to `node` unless it is empty.
    fn pod(name: &str, cpu: &str, node: &str, priority: i64, created: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "creationTimestamp": created},
            "spec": {"nodeName": node, "priority": priority,
                "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}})
    }

    fn snapshot(nodes: Vec<Value>, pods: Vec<Value>) -> Snapshot {
        Snapshot { nodes, pods, namespaces: vec![json!({"metadata": {"name": "default"}})] }
    }

    fn request(all: bool, explain: &[&str]) -> TrialRequest {
        TrialRequest {
            scheduler_name: view::DEFAULT_SCHEDULER_NAME.into(),
            all,
            explain: explain.iter().map(|n| PodName { namespace: "default".into(), name: (*n).into() }).collect(),
        }
    }

    fn no_spread(_: &str, _: &BTreeMap<String, String>) -> Option<sdk::LabelSelector> {
        None
    }

    fn outcome_of<'a>(report: &'a Report, name: &str) -> &'a PodTrial {
        report.pods.iter().find(|p| p.pod.name == name).expect("the pod is in the report")
    }

    /// Goal: pending pods are placed in queue order (priority, then age),
    /// each seeing the ones placed before it, and a pod that fits nowhere
    /// gets kube-scheduler's message. Method: two 2-CPU nodes, one of them
    /// half full with a bound pod; three pending pods of 1.5 CPU.
    #[tokio::test]
    async fn pending_pods_are_placed_in_queue_order_each_seeing_the_last() {
        let host = PluginHost::new(None).expect("the plugin engine");
        let profile = profile(&host, &[("node-resources-fit", 1, "")]).await;
        let nodes = vec![node("a", "2", json!([])), node("b", "2", json!([]))];
        let pods = vec![
            pod("bound", "1", "a", 0, "2025-01-01T00:00:00Z"),
            pod("late", "1500m", "", 0, "2025-01-01T00:00:03Z"),
            pod("early", "1500m", "", 0, "2025-01-01T00:00:01Z"),
            pod("urgent", "1500m", "", 100, "2025-01-01T00:00:02Z"),
        ];
        let report = trial(&host, &profile, &snapshot(nodes, pods), &no_spread, &request(false, &[])).await;
        let report = report.expect("the trial runs");
        let order: Vec<&str> = report.pods.iter().map(|p| p.pod.name.as_str()).collect();
        assert_eq!(order, ["urgent", "early", "late"], "the bound pod is not placed again");
        assert_eq!(outcome_of(&report, "urgent").outcome, Outcome::Placed("b".into()));
        let message = "0/2 nodes are available: 2 Insufficient cpu.";
        assert_eq!(outcome_of(&report, "early").outcome, Outcome::Unschedulable(message.into()));
        assert_eq!(outcome_of(&report, "late").comparison(), Comparison::Unschedulable);
        let summary = report.summary();
        assert_eq!((summary.pods, summary.placed, summary.unschedulable, summary.same), (3, 1, 2, 0));
    }

    /// Goal: with every pod placed again, bound pods leave the table first
    /// and are compared with where they are; a candidate that packs pods
    /// (MostAllocated) moves them to the fuller node, their `nodeName` no
    /// longer holding them; pods of another scheduler stay and count. Method: a 4-CPU node and an 8-CPU node
    /// half full with another scheduler's pod; two 1-CPU pods, one on each.
    #[tokio::test]
    async fn all_places_bound_pods_again_and_compares() {
        let host = PluginHost::new(None).expect("the plugin engine");
        let config = r#"{"scoringStrategy": {"type": "MostAllocated"}}"#;
        let profile = profile(&host, &[("node-name", 0, ""), ("node-resources-fit", 1, config)]).await;
        let nodes = vec![node("a", "4", json!([])), node("b", "8", json!([]))];
        let mut pods = vec![
            pod("one", "1", "b", 0, "2025-01-01T00:00:00Z"),
            pod("two", "1", "a", 0, "2025-01-01T00:00:01Z"),
            pod("other", "4", "b", 0, "2025-01-01T00:00:02Z"),
        ];
        pods[2]["spec"]["schedulerName"] = json!("another-scheduler");
        let report = trial(&host, &profile, &snapshot(nodes, pods), &no_spread, &request(true, &[])).await;
        let report = report.expect("the trial runs");
        assert_eq!(report.pods.len(), 2, "a pod of another scheduler is not placed again: {report:?}");
        assert_eq!(outcome_of(&report, "one").comparison(), Comparison::Same);
        assert_eq!(outcome_of(&report, "two").outcome, Outcome::Placed("b".into()));
        assert_eq!(outcome_of(&report, "two").today.as_deref(), Some("a"));
        let summary = report.summary();
        assert_eq!((summary.same, summary.moved, summary.placed), (1, 1, 0));
    }

    /// Goal: an explained pod gets every filtering plugin's verdict on every
    /// node, every scoring plugin's score and weight on the feasible ones,
    /// their weighted sum, and the node chosen is the best sum; a pod the
    /// trial does not place says why. Method: a tainted node and two
    /// untainted ones of different sizes.
    #[tokio::test]
    async fn explained_pods_show_every_verdict_and_score() {
        let host = PluginHost::new(None).expect("the plugin engine");
        let plugins = [("taint-toleration", 3, ""), ("node-resources-fit", 2, "")];
        let profile = profile(&host, &plugins).await;
        let taint = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let nodes = vec![node("gpu", "8", taint), node("small", "2", json!([])), node("large", "8", json!([]))];
        let pods =
            vec![pod("web", "1", "", 0, "2025-01-01T00:00:00Z"), pod("db", "1", "small", 0, "2025-01-01T00:00:00Z")];
        let asked = request(false, &["web", "db", "ghost"]);
        let report = trial(&host, &profile, &snapshot(nodes, pods), &no_spread, &asked).await.expect("runs");
        let [web, db, ghost] = report.explanations.as_slice() else { panic!("three explanations: {report:?}") };
        assert_eq!(web.nodes.len(), 3);
        let gpu = web.nodes.iter().find(|n| n.node == "gpu").expect("the gpu node");
        assert!(!gpu.feasible());
        assert_eq!(
            gpu.verdicts[0],
            (
                "taint-toleration".into(),
                sdk::Verdict::Unresolvable(vec!["node(s) had untolerated taint {dedicated: gpu}".into()])
            )
        );
        assert_eq!(gpu.verdicts[1].1, sdk::Verdict::Fits, "every plugin is asked about every node");
        assert_eq!(gpu.total, None);
        let best = web.nodes.iter().filter_map(|n| Some((n.total?, n.node.clone()))).max().expect("feasible nodes");
        assert_eq!(best.1, "large", "the least allocated node scores best: {web:?}");
        for judged in web.nodes.iter().filter(|n| n.feasible()) {
            assert_eq!(judged.scores.len(), 2);
            assert_eq!(judged.scores[0].2, 3);
            let sum: u64 = judged.scores.iter().map(|(_, s, w)| u64::from(*s) * u64::from(*w)).sum();
            assert_eq!(judged.total, Some(sum));
        }
        assert_eq!(web.outcome, Some(Outcome::Placed("large".into())));
        assert!(db.not_placed.as_deref().is_some_and(|m| m.contains("bound")), "{db:?}");
        assert_eq!(ghost.not_placed.as_deref(), Some("no pod default/ghost"));
    }

    /// Goal: a trial never takes the instances the scheduler needs. Method:
    /// hold all but the spared share of the node's scheduler instances; the
    /// trial is refused with the plugin named, and runs once they are
    /// given back.
    #[tokio::test]
    async fn a_trial_leaves_the_scheduler_its_share_of_instances() {
        let host = PluginHost::new(None).expect("the plugin engine");
        let profile = profile(&host, &[("node-name", 0, "")]).await;
        let held_count = SCHEDULER_INSTANCES_MAX - engenho_wasm::SCHEDULER_INSTANCES_SPARED;
        let mut held = Vec::new();
        for _ in 0..held_count {
            held.push(profile.plugins[0].plugin.instance(&host).await.expect("a free instance"));
        }
        let cluster = snapshot(vec![node("a", "2", json!([]))], vec![pod("p", "1", "", 0, "")]);
        let refused = trial(&host, &profile, &cluster, &no_spread, &request(false, &[])).await;
        let Err(TrialError::Start(error)) = refused else { panic!("the trial took a spared instance: {refused:?}") };
        assert_eq!(error.plugin, "node-name");
        assert!(matches!(error.error, engenho_wasm::PluginError::Busy { .. }), "{error}");
        held.pop();
        let report = trial(&host, &profile, &cluster, &no_spread, &request(false, &[])).await.expect("runs");
        assert_eq!(report.pods[0].outcome, Outcome::Placed("a".into()));
        assert_eq!(host.scheduler_instances_free(), engenho_wasm::SCHEDULER_INSTANCES_SPARED + 1);
    }
}
