//! One scheduling cycle of a profile, as kube-scheduler runs it: filter a
//! sample of nodes (enough to score, found from a rotating start), score the
//! feasible ones with every scoring plugin, weigh and sum, pick the best
//! (ties at random); or say why no node fits, in kube-scheduler's words.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use engenho_scheduler as sdk;
use engenho_wasm::{PluginError, PluginHost, PodRecord, SchedulerInstance, checked_scores, checked_verdicts};

use super::table::Table;

/// Nodes below which every node is looked at.
const NODES_TO_FIND_MIN: usize = 100;

/// The default share of nodes scored at most, as kube-scheduler's adaptive
/// `percentageOfNodesToScore`: 50% less 1% per 125 nodes, at least 5%.
fn adaptive_percentage(nodes: usize) -> usize {
    50usize.saturating_sub(nodes / 125).max(5)
}

/// How many feasible nodes a cycle looks for before it stops filtering.
pub fn nodes_to_find(nodes: usize, percentage: Option<u32>) -> usize {
    if nodes < NODES_TO_FIND_MIN || percentage == Some(100) {
        return nodes;
    }
    let percentage = percentage.map_or_else(|| adaptive_percentage(nodes), |p| p as usize).clamp(1, 100);
    (nodes * percentage / 100).max(NODES_TO_FIND_MIN)
}

/// How many more nodes to filter when `still` feasible nodes are wanted and
/// `fitting` of the `looked` nodes filtered so far fit: enough at the share
/// of nodes that fit so far (at first, all of them), with a quarter more
/// for the unfit, at least 20. A pod that few nodes fit is judged in few
/// large calls rather than many small ones.
fn next_chunk(still: usize, looked: usize, fitting: usize) -> usize {
    let at_the_share_so_far = if looked == 0 { still } else { still.saturating_mul(looked).div_ceil(fitting.max(1)) };
    at_the_share_so_far.max(16).saturating_mul(5) / 4
}

/// How a plugin of a profile runs: as a component instance, or compiled
/// into the host (the same plugin crate behind the SDK's [`sdk::Judge`]),
/// which is how the host measures what the component boundary costs.
pub enum Runner {
    /// A configured component instance.
    Component(SchedulerInstance),
    /// A configured plugin compiled into the host.
    Native {
        /// The plugin's name, for its errors.
        name: String,
        /// The plugin and its table.
        judge: Box<dyn sdk::Judge>,
        /// Which calls it takes part in.
        abilities: sdk::Abilities,
    },
}

impl Runner {
    /// Which calls the plugin takes part in.
    pub fn abilities(&self) -> sdk::Abilities {
        match self {
            Self::Component(instance) => instance.abilities(),
            Self::Native { abilities, .. } => *abilities,
        }
    }

    /// The bytes of linear memory the plugin holds: a component's memories;
    /// nothing for a native plugin, whose memory is the host's.
    pub fn memory_bytes(&self) -> usize {
        match self {
            Self::Component(instance) => instance.memory_bytes(),
            Self::Native { .. } => 0,
        }
    }

    async fn prepare(
        &mut self,
        host: &PluginHost,
        changes: &[sdk::Change],
        pod: &Judged<'_>,
    ) -> Result<sdk::Plan, PluginError> {
        match self {
            Self::Component(instance) => instance.prepare(host, changes, pod.record()).await,
            Self::Native { judge, .. } => Ok(judge.prepare(changes, pod.pod)),
        }
    }

    async fn filter(
        &mut self,
        host: &PluginHost,
        pod: &sdk::Pod,
        candidates: &[u32],
        assumptions: &sdk::Assumptions,
    ) -> Result<sdk::Verdicts, PluginError> {
        match self {
            Self::Component(instance) => instance.filter(host, candidates, assumptions).await,
            Self::Native { name, judge, .. } => {
                checked_verdicts(name, judge.filter(pod, candidates, assumptions), candidates.len())
            }
        }
    }

    async fn score(&mut self, host: &PluginHost, pod: &sdk::Pod, nodes: &[u32]) -> Result<Vec<u32>, PluginError> {
        match self {
            Self::Component(instance) => instance.score(host, nodes).await,
            Self::Native { name, judge, .. } => checked_scores(name, judge.score(pod, nodes), nodes.len()),
        }
    }
}

/// The pod a cycle judges: as native plugins read it and, shared once a
/// component first needs it, as component instances keep it.
struct Judged<'a> {
    pod: &'a sdk::Pod,
    record: OnceLock<PodRecord>,
}

impl<'a> Judged<'a> {
    /// `pod`, not yet converted.
    fn new(pod: &'a sdk::Pod) -> Self {
        Self { pod, record: OnceLock::new() }
    }

    fn record(&self) -> &PodRecord {
        self.record.get_or_init(|| PodRecord::new(self.pod))
    }
}

/// A plugin of a profile: how it runs, what it weighs, and how far it has
/// read the table.
pub struct PluginRun {
    /// The plugin's name in the profile.
    pub name: String,
    /// Its weight in the sum of scores.
    pub weight: u32,
    runner: Runner,
    /// The table changes it has seen.
    cursor: u64,
    /// Which calls the pod last prepared needs.
    plan: sdk::Plan,
    time: PluginTime,
}

/// The time a plugin's calls have taken, by kind of call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginTime {
    /// Bringing its table up to date and taking the pod.
    pub prepare: Duration,
    /// Filtering.
    pub filter: Duration,
    /// Scoring.
    pub score: Duration,
}

impl PluginRun {
    /// Plugin `name`'s component `instance`, weighing `weight`, yet to see
    /// the table.
    pub fn new(name: String, weight: u32, instance: SchedulerInstance) -> Self {
        Self::with_runner(name, weight, Runner::Component(instance))
    }

    /// Plugin `name` run by `runner`, weighing `weight`, yet to see the
    /// table.
    pub fn with_runner(name: String, weight: u32, runner: Runner) -> Self {
        Self { name, weight, runner, cursor: 0, plan: sdk::Plan::FULL, time: PluginTime::default() }
    }

    /// How it runs.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// How far it has read the table.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The time its calls have taken so far.
    pub fn time(&self) -> PluginTime {
        self.time
    }

    /// Its verdicts on `candidates` for `pod` under `assumptions`.
    async fn filter(
        &mut self,
        host: &PluginHost,
        pod: &sdk::Pod,
        candidates: &[u32],
        assumptions: &sdk::Assumptions,
    ) -> Result<sdk::Verdicts, CycleError> {
        let started = Instant::now();
        let verdicts = self.runner.filter(host, pod, candidates, assumptions).await;
        self.time.filter += started.elapsed();
        verdicts.map_err(|error| CycleError { plugin: self.name.clone(), error })
    }

    /// Its scores of `nodes` for `pod`.
    async fn score(&mut self, host: &PluginHost, pod: &sdk::Pod, nodes: &[u32]) -> Result<Vec<u32>, CycleError> {
        let started = Instant::now();
        let scores = self.runner.score(host, pod, nodes).await;
        self.time.score += started.elapsed();
        scores.map_err(|error| CycleError { plugin: self.name.clone(), error })
    }

    /// Whether the cycle asks it to filter: when the pod's plan needs it,
    /// and under any assumptions (which the plan did not see).
    fn filters(&self, assumptions: &sdk::Assumptions) -> bool {
        self.runner.abilities().filters
            && (self.plan.filter || !assumptions.without.is_empty() || !assumptions.extra.is_empty())
    }

    /// Brings its copy of the table up to date (the whole table at first,
    /// the changes since after) and gives it the pod the cycle judges;
    /// keeps the plan it answers.
    async fn prepare(&mut self, host: &PluginHost, table: &Table, pod: &Judged<'_>) -> Result<(), CycleError> {
        let started = Instant::now();
        let planned = self.plan_with(host, table, pod).await;
        self.time.prepare += started.elapsed();
        self.plan = planned.map_err(|error| CycleError { plugin: self.name.clone(), error })?;
        Ok(())
    }

    async fn plan_with(
        &mut self,
        host: &PluginHost,
        table: &Table,
        pod: &Judged<'_>,
    ) -> Result<sdk::Plan, PluginError> {
        let reads_pods = self.runner.abilities().reads_pods;
        let plan = if self.cursor == 0 {
            self.runner.prepare(host, &table.snapshot(reads_pods), pod).await?
        } else if reads_pods {
            self.runner.prepare(host, table.changes_since(self.cursor), pod).await?
        } else {
            let nodes: Vec<sdk::Change> = table
                .changes_since(self.cursor)
                .iter()
                .filter(|c| matches!(c, sdk::Change::NodeSet(..) | sdk::Change::NodeRemoved(_)))
                .cloned()
                .collect();
            self.runner.prepare(host, &nodes, pod).await?
        };
        self.cursor = table.cursor();
        Ok(plan)
    }
}

/// Why no node fits a pod: how many nodes there are and, per reason, how
/// many nodes gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FitError {
    /// The nodes of the cluster.
    pub nodes: usize,
    /// Each reason and the number of nodes that gave it.
    pub reasons: BTreeMap<String, usize>,
    /// Nodes where evicting pods would not help.
    pub unresolvable: Vec<u32>,
    /// What preemption made of it, when it could not help (kube-scheduler's
    /// words: `preemption: 0/5 nodes are available: …`).
    pub preemption: Option<String>,
}

impl fmt::Display for FitError {
    /// kube-scheduler's words: `0/5 nodes are available: 2 Insufficient
    /// cpu, 3 node(s) had untolerated taint {a: b}.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        write!(f, "{}", nodes_available(self.nodes, &self.reasons))?;
        match &self.preemption {
            Some(preemption) => write!(f, " {preemption}."),
            None => Ok(()),
        }
    }
}

/// `0/5 nodes are available: 2 Insufficient cpu, 3 node(s) had untolerated
/// taint {a: b}.`: each reason with the nodes that gave it, in order.
pub fn nodes_available(nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut reasons: Vec<String> = reasons.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
    reasons.sort();
    format!("0/{nodes} nodes are available: {}.", reasons.join(", "))
}

/// What a cycle decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The pod goes to the node at this index.
    Place(u32),
    /// No node fits.
    Unfit(FitError),
}

/// A failure of a plugin during a cycle (not a verdict): it names the
/// plugin.
#[derive(Debug, thiserror::Error)]
#[error("scheduler plugin {plugin}: {error}")]
pub struct CycleError {
    /// The plugin's name in the profile.
    pub plugin: String,
    /// What went wrong.
    #[source]
    pub error: PluginError,
}

/// One filtering plugin's verdict on each node it was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVerdicts {
    /// The plugin's name in the profile.
    pub plugin: String,
    /// One verdict per node, in the order asked.
    pub verdicts: sdk::Verdicts,
}

/// One scoring plugin's score of each node it was asked about, and what
/// the score weighs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginScores {
    /// The plugin's name in the profile.
    pub plugin: String,
    /// Its weight in the sum (0: scored, but it counts for nothing).
    pub weight: u32,
    /// One score (0 to 100) per node, in the order asked.
    pub scores: Vec<u32>,
}

/// The plugins of a profile, running a cycle at a time.
pub struct Cycle {
    plugins: Vec<PluginRun>,
    percentage: Option<u32>,
    next_start: usize,
    random: u64,
}

impl Cycle {
    /// A cycle over `plugins`, scoring `percentage` of the nodes at most
    /// (`None`: kube-scheduler's adaptive share).
    pub fn new(plugins: Vec<PluginRun>, percentage: Option<u32>) -> Self {
        Self { plugins, percentage, next_start: 0, random: 0x9e37_79b9_7f4a_7c15 }
    }

    /// The plugins, in order.
    pub fn plugins(&self) -> &[PluginRun] {
        &self.plugins
    }

    /// The oldest table change a plugin has yet to see.
    pub fn oldest_cursor(&self) -> Option<u64> {
        self.plugins.iter().map(|p| p.cursor).min()
    }

    /// Finds a node for `pod` in `table` (under `assumptions`).
    ///
    /// # Errors
    /// A plugin failed (trapped, ran past its deadline, answered nonsense).
    pub async fn decide(
        &mut self,
        host: &PluginHost,
        table: &Table,
        pod: &sdk::Pod,
        assumptions: &sdk::Assumptions,
    ) -> Result<Decision, CycleError> {
        self.prepare(host, table, pod).await?;
        let nodes: Vec<u32> = table.real_nodes().collect();
        let (feasible, fit_error) = self.filter(host, &nodes, pod, assumptions).await?;
        match feasible.as_slice() {
            [] => Ok(Decision::Unfit(fit_error)),
            [only] => Ok(Decision::Place(*only)),
            _ => self.score(host, pod, &feasible).await.map(Decision::Place),
        }
    }

    /// Whether `pod` fits on node `node` under `assumptions`, by every
    /// filtering plugin it needs. The plugins must have been given `pod` on
    /// the table as it stands ([`Cycle::prepare`] or [`Cycle::decide`]
    /// first): preemption asks this many times of one pod.
    ///
    /// # Errors
    /// A plugin failed.
    pub async fn fits(
        &mut self,
        host: &PluginHost,
        pod: &sdk::Pod,
        node: u32,
        assumptions: &sdk::Assumptions,
    ) -> Result<bool, CycleError> {
        for plugin in self.plugins.iter_mut().filter(|p| p.filters(assumptions)) {
            let verdicts = plugin.filter(host, pod, &[node], assumptions).await?;
            if verdicts.by_candidate() != [0] {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every filtering plugin's verdict on every one of `nodes` for `pod`
    /// (under `assumptions`), each plugin asked about every node rather than
    /// only those the plugins before it kept, and whether or not the pod's
    /// plan skips it: what a cycle's filter step would have heard, in full.
    ///
    /// # Errors
    /// A plugin failed.
    pub async fn filter_every_node(
        &mut self,
        host: &PluginHost,
        table: &Table,
        pod: &sdk::Pod,
        nodes: &[u32],
        assumptions: &sdk::Assumptions,
    ) -> Result<Vec<PluginVerdicts>, CycleError> {
        self.prepare(host, table, pod).await?;
        let mut answers = Vec::with_capacity(self.plugins.len());
        for plugin in self.plugins.iter_mut().filter(|p| p.runner.abilities().filters) {
            let verdicts = plugin.filter(host, pod, nodes, assumptions).await?;
            debug_assert_eq!(verdicts.len(), nodes.len());
            answers.push(PluginVerdicts { plugin: plugin.name.clone(), verdicts });
        }
        Ok(answers)
    }

    /// Every scoring plugin's scores of `nodes` for `pod`, with its weight,
    /// weightless plugins and those the pod's plan skips included: the
    /// terms of a cycle's weighted sum. The plugins must have been given
    /// `pod` ([`Cycle::filter_every_node`] or [`Cycle::decide`] first).
    ///
    /// # Errors
    /// A plugin failed.
    pub async fn score_by_plugin(
        &mut self,
        host: &PluginHost,
        pod: &sdk::Pod,
        nodes: &[u32],
    ) -> Result<Vec<PluginScores>, CycleError> {
        let mut answers = Vec::with_capacity(self.plugins.len());
        if nodes.is_empty() {
            return Ok(answers);
        }
        for plugin in self.plugins.iter_mut().filter(|p| p.runner.abilities().scores) {
            let scores = plugin.score(host, pod, nodes).await?;
            debug_assert_eq!(scores.len(), nodes.len());
            answers.push(PluginScores { plugin: plugin.name.clone(), weight: plugin.weight, scores });
        }
        Ok(answers)
    }

    /// Brings every plugin's table up to date and gives each `pod`, as
    /// every cycle starts.
    ///
    /// # Errors
    /// A plugin failed.
    pub async fn prepare(&mut self, host: &PluginHost, table: &Table, pod: &sdk::Pod) -> Result<(), CycleError> {
        let judged = Judged::new(pod);
        for plugin in &mut self.plugins {
            plugin.prepare(host, table, &judged).await?;
        }
        Ok(())
    }

    /// The feasible nodes found (enough of them), and why the others failed.
    async fn filter(
        &mut self,
        host: &PluginHost,
        nodes: &[u32],
        pod: &sdk::Pod,
        assumptions: &sdk::Assumptions,
    ) -> Result<(Vec<u32>, FitError), CycleError> {
        let wanted = nodes_to_find(nodes.len(), self.percentage);
        let mut fit_error = FitError { nodes: nodes.len(), ..FitError::default() };
        let mut feasible = Vec::new();
        if nodes.is_empty() {
            return Ok((feasible, fit_error));
        }
        let start = self.next_start % nodes.len();
        let mut looked = 0;
        while feasible.len() < wanted && looked < nodes.len() {
            let chunk = next_chunk(wanted - feasible.len(), looked, feasible.len());
            let mut candidates: Vec<u32> =
                (looked..(looked + chunk).min(nodes.len())).map(|i| nodes[(start + i) % nodes.len()]).collect();
            looked += candidates.len();
            for plugin in self.plugins.iter_mut().filter(|p| p.filters(assumptions)) {
                if candidates.is_empty() {
                    break;
                }
                let verdicts = plugin.filter(host, pod, &candidates, assumptions).await?;
                let mut kept = Vec::with_capacity(candidates.len());
                let mut refused = vec![0; verdicts.refusals().len()];
                for (node, at) in candidates.into_iter().zip(verdicts.by_candidate()) {
                    let Some(refusal) = at.checked_sub(1).map(|at| at as usize) else {
                        kept.push(node);
                        continue;
                    };
                    refused[refusal] += 1;
                    if matches!(verdicts.refusals()[refusal], sdk::Verdict::Unresolvable(_)) {
                        fit_error.unresolvable.push(node);
                    }
                }
                for (refusal, nodes) in verdicts.refusals().iter().zip(refused) {
                    for reason in refusal.reasons() {
                        *fit_error.reasons.entry(reason.clone()).or_default() += nodes;
                    }
                }
                candidates = kept;
            }
            feasible.extend(candidates);
        }
        feasible.truncate(wanted.max(1));
        self.next_start = (start + looked) % nodes.len();
        Ok((feasible, fit_error))
    }

    /// The best of `feasible` by the weighted sum of every scoring plugin's
    /// scores; ties broken at random.
    async fn score(&mut self, host: &PluginHost, pod: &sdk::Pod, feasible: &[u32]) -> Result<u32, CycleError> {
        let mut totals = vec![0u64; feasible.len()];
        for plugin in self.plugins.iter_mut().filter(|p| p.runner.abilities().scores && p.plan.score && p.weight > 0) {
            let scores = plugin.score(host, pod, feasible).await?;
            for (total, score) in totals.iter_mut().zip(scores) {
                *total += u64::from(score) * u64::from(plugin.weight);
            }
        }
        let best = totals.iter().copied().max().unwrap_or(0);
        let mut chosen = feasible[0];
        let mut ties = 0u64;
        for (node, total) in feasible.iter().zip(&totals) {
            if *total == best {
                ties += 1;
                if self.next_random().is_multiple_of(ties) {
                    chosen = *node;
                }
            }
        }
        Ok(chosen)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: ties need no more than an even spread.
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_clusters_look_at_every_node_and_large_ones_at_a_share() {
        assert_eq!(nodes_to_find(50, None), 50);
        assert_eq!(nodes_to_find(500, None), 230);
        assert_eq!(nodes_to_find(5_000, None), 500);
        assert_eq!(nodes_to_find(100_000, None), 5_000);
        assert_eq!(nodes_to_find(5_000, Some(100)), 5_000);
        assert_eq!(nodes_to_find(5_000, Some(1)), 100);
    }

    #[test]
    fn chunks_grow_with_the_share_of_nodes_refused() {
        // First: what is wanted and a quarter more.
        assert_eq!(next_chunk(500, 0, 0), 625);
        assert_eq!(next_chunk(3, 0, 0), 20);
        // Half of the nodes fit: twice what is still wanted, and a quarter.
        assert_eq!(next_chunk(100, 625, 312), 251);
        // None fit yet: every node that is left, in one call.
        assert!(next_chunk(500, 625, 0) >= 5_000);
        assert_eq!(next_chunk(usize::MAX, 2, 1), usize::MAX / 4);
    }

    /// A native plugin that fits every node and scores each by its index,
    /// or answers one verdict short.
    struct Answers {
        short: bool,
    }

    impl sdk::Judge for Answers {
        fn prepare(&mut self, _: &[sdk::Change], _: &sdk::Pod) -> sdk::Plan {
            sdk::Plan::FULL
        }

        fn filter(&mut self, _: &sdk::Pod, candidates: &[u32], _: &sdk::Assumptions) -> sdk::Verdicts {
            let answered = candidates.len() - usize::from(self.short);
            (0..answered).map(|_| sdk::Verdict::Fits).collect()
        }

        fn score(&mut self, _: &sdk::Pod, nodes: &[u32]) -> Vec<u32> {
            nodes.iter().map(|&index| index * 60).collect()
        }
    }

    fn native(name: &str, short: bool) -> PluginRun {
        let abilities =
            sdk::Abilities { filters: true, scores: true, reads_pods: false, pod_parts: sdk::PodParts::ALL };
        let runner = Runner::Native { name: name.into(), judge: Box::new(Answers { short }), abilities };
        PluginRun::with_runner(name.into(), 1, runner)
    }

    #[tokio::test]
    async fn native_plugins_are_held_to_the_components_answers() {
        // Goal: a plugin compiled into the host decides as a component
        // does, and answers of the wrong length or above 100 fail the
        // cycle naming the plugin, as a component's do. Method: a native
        // judge over a table of two nodes.
        let host = PluginHost::new(None).expect("the plugin engine");
        let mut table = Table::new();
        for name in ["a", "b"] {
            table.set_node(sdk::Node { name: name.into(), ..sdk::Node::default() });
        }
        let (pod, assumptions) = (sdk::Pod::default(), sdk::Assumptions::default());
        let mut fine = Cycle::new(vec![native("fine", false)], None);
        let decision = fine.decide(&host, &table, &pod, &assumptions).await.expect("a decision");
        assert_eq!(decision, Decision::Place(1), "node 1 scores 60, node 0 scores 0");
        let mut short = Cycle::new(vec![native("short", true)], None);
        let error = short.decide(&host, &table, &pod, &assumptions).await.expect_err("one verdict short");
        assert_eq!(error.plugin, "short");
        assert!(error.to_string().contains("1 verdicts for 2 candidate nodes"), "{error}");
        table.set_node(sdk::Node { name: "c".into(), ..sdk::Node::default() });
        let error = fine.decide(&host, &table, &pod, &assumptions).await.expect_err("a score of 120");
        assert!(error.to_string().contains("a score of 120, above 100"), "{error}");
    }

    /// A native plugin whose plan skips both calls, and whose calls, were
    /// they made, would refuse every node and prefer node 0.
    struct Skipping;

    impl sdk::Judge for Skipping {
        fn prepare(&mut self, _: &[sdk::Change], _: &sdk::Pod) -> sdk::Plan {
            sdk::Plan { filter: false, score: false }
        }

        fn filter(&mut self, _: &sdk::Pod, candidates: &[u32], _: &sdk::Assumptions) -> sdk::Verdicts {
            candidates.iter().map(|_| sdk::Verdict::Unfit(vec!["refused".into()])).collect()
        }

        fn score(&mut self, _: &sdk::Pod, nodes: &[u32]) -> Vec<u32> {
            nodes.iter().map(|&index| if index == 0 { 100 } else { 0 }).collect()
        }
    }

    #[tokio::test]
    async fn a_plan_skips_calls_except_under_assumptions() {
        // Goal: a plugin whose plan skips the filter and the score is not
        // asked either in a plain cycle, but is asked to filter under
        // assumptions, which its plan did not see.
        let host = PluginHost::new(None).expect("the plugin engine");
        let mut table = Table::new();
        for name in ["a", "b"] {
            table.set_node(sdk::Node { name: name.into(), ..sdk::Node::default() });
        }
        let abilities =
            sdk::Abilities { filters: true, scores: true, reads_pods: false, pod_parts: sdk::PodParts::ALL };
        let skipping = Runner::Native { name: "skipping".into(), judge: Box::new(Skipping), abilities };
        let plugins = vec![native("fine", false), PluginRun::with_runner("skipping".into(), 100, skipping)];
        let mut cycle = Cycle::new(plugins, None);
        let pod = sdk::Pod::default();
        let decision = cycle.decide(&host, &table, &pod, &sdk::Assumptions::default()).await.expect("a decision");
        assert_eq!(decision, Decision::Place(1), "neither refused by the skipped filter nor won by its score");
        let assumed = sdk::Assumptions { without: vec!["gone".into()], extra: Vec::new() };
        let decision = cycle.decide(&host, &table, &pod, &assumed).await.expect("a decision");
        assert!(matches!(decision, Decision::Unfit(_)), "under assumptions the filter is asked: {decision:?}");
    }

    #[test]
    fn fit_errors_read_as_kube_scheduler_writes_them() {
        let mut error = FitError { nodes: 5, ..FitError::default() };
        error.reasons.insert("node(s) had untolerated taint {dedicated: gpu}".into(), 2);
        error.reasons.insert("Insufficient cpu".into(), 3);
        assert_eq!(
            error.to_string(),
            "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu."
        );
        assert_eq!(FitError::default().to_string(), "no nodes available to schedule pods");
    }
}
