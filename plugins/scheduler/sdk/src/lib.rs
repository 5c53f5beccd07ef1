//! What engenho's scheduler plugin components are written with.
//!
//! A plugin implements [`Plugin`]: it reads its configuration once, then
//! filters and scores nodes for one pod at a time over a [`Table`] of the
//! cluster's nodes and the pods placed on them. An [`Instance`] keeps the
//! plugin and its table together and answers the host's calls through the
//! [`Judge`] trait. On wasm32 the [`export_scheduler!`] macro makes the
//! plugin a component of the `scheduler-plugin` world
//! (`wit/scheduler.wit`); on other targets a host runs the same [`Instance`]
//! natively, which is how it compares a plugin compiled into itself with
//! the component.

extern crate self as engenho_scheduler;

pub mod matching;
pub mod normalization;
pub mod resources;
mod table;
mod topology;
mod types;

#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

#[cfg(target_arch = "wasm32")]
pub mod guest;

pub use table::{ByNumber, MAX_NODES, NodeEntry, NumberHasher, Requested, Table, TermUse, View};
pub use topology::Topology;
pub use types::*;

/// The reason a host reads for a node a plugin was asked about that is not
/// in its table.
pub const NODE_NOT_FOUND: &str = "node(s) were not found";

/// The highest score a node gets from one plugin.
pub const MAX_NODE_SCORE: u32 = 100;

/// Reads a plugin's JSON configuration as `T`; empty text reads as `{}`.
///
/// # Errors
/// `invalid configuration: ` and what did not parse (serde names the
/// field, e.g. ``unknown field `x` `` or ``invalid type ... at line 1``).
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = match config.trim() {
        "" => "{}",
        text => text,
    };
    serde_json::from_str(text).map_err(|error| format!("invalid configuration: {error}"))
}

/// Checks that `config` configures nothing: empty, or `{}`.
///
/// # Errors
/// `invalid configuration: ` and the field the plugin does not know, or
/// what did not parse.
pub fn parse_no_config(config: &str) -> Result<(), String> {
    let fields: serde_json::Map<String, serde_json::Value> = parse_config(config)?;
    match fields.keys().next() {
        Some(field) => Err(format!("invalid configuration: unknown field `{field}`, the plugin takes none")),
        None => Ok(()),
    }
}

/// A scheduler plugin: its configuration, and how it filters and scores
/// nodes for a pod.
///
/// Each call covers many nodes at once, so that a plugin works out what it
/// needs to know about the pod once per call (as kube-scheduler's PreFilter
/// and PreScore steps do) and then judges each node.
pub trait Plugin: Sized + Send + 'static {
    /// The plugin configured by `config` (JSON; empty or `{}` means the
    /// defaults), and the calls it takes part in.
    ///
    /// # Errors
    /// A configuration the plugin cannot use, in words that name the field.
    fn configure(config: &str) -> Result<(Self, Abilities), String>;

    /// Which of [`Plugin::filter`] and [`Plugin::score`] `pod` needs, on
    /// `table` as it stands (kube-scheduler's PreFilter and PreScore,
    /// which may skip): both, unless the plugin says otherwise.
    fn plan(&self, table: &Table, pod: &Pod) -> Plan {
        let _ = (table, pod);
        Plan::FULL
    }

    /// One verdict per node of `candidates`, in their order, for `pod`
    /// under `assumptions`. Every index in `candidates` names a node of
    /// `table`.
    fn filter(&self, table: &Table, pod: &Pod, candidates: &[u32], assumptions: &Assumptions) -> Verdicts;

    /// One score from 0 to [`MAX_NODE_SCORE`] per node of `nodes`, in their
    /// order, normalized across them. Every index in `nodes` names a node
    /// of `table`.
    fn score(&self, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32>;
}

/// What a host calls on a configured plugin, whether it runs as a
/// component or natively.
pub trait Judge: Send {
    /// Applies `changes` to the plugin's table, in order, then says which
    /// of [`Judge::filter`] and [`Judge::score`] `pod` needs.
    fn prepare(&mut self, changes: &[Change], pod: &Pod) -> Plan;

    /// One verdict per node of `candidates`, in their order, for `pod`
    /// (the pod last prepared).
    fn filter(&mut self, pod: &Pod, candidates: &[u32], assumptions: &Assumptions) -> Verdicts;

    /// One score from 0 to [`MAX_NODE_SCORE`] per node of `nodes`, in their
    /// order, for `pod` (the pod last prepared).
    fn score(&mut self, pod: &Pod, nodes: &[u32]) -> Vec<u32>;
}

/// A configured plugin and the node table it judges over.
pub struct Instance<P: Plugin> {
    plugin: P,
    table: Table,
}

impl<P: Plugin> Instance<P> {
    /// The plugin configured by `config`, with an empty table, and the
    /// calls it takes part in.
    ///
    /// # Errors
    /// The plugin's refusal of the configuration.
    pub fn configure(config: &str) -> Result<(Self, Abilities), String> {
        let (plugin, abilities) = P::configure(config)?;
        Ok((Self { plugin, table: Table::new() }, abilities))
    }

    /// The plugin.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }

    /// The node table as the changes so far made it.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Applies `changes` to the table in order, taking them rather than
    /// copying them (as [`Judge::prepare`], which borrows, must).
    pub fn apply(&mut self, changes: impl IntoIterator<Item = Change>) {
        for change in changes {
            self.table.apply(change);
        }
    }

    /// Which of the plugin's calls `pod` needs, on the table as it stands.
    pub fn plan(&self, pod: &Pod) -> Plan {
        self.plugin.plan(&self.table, pod)
    }
}

impl<P: Plugin> Judge for Instance<P> {
    fn prepare(&mut self, changes: &[Change], pod: &Pod) -> Plan {
        for change in changes {
            self.table.apply(change.clone());
        }
        self.plan(pod)
    }

    fn filter(&mut self, pod: &Pod, candidates: &[u32], assumptions: &Assumptions) -> Verdicts {
        let known: Vec<u32> = candidates.iter().copied().filter(|&index| self.table.has_node(index)).collect();
        let answers = self.plugin.filter(&self.table, pod, &known, assumptions);
        if answers.len() == known.len() && known.len() == candidates.len() {
            return answers;
        }
        // A plugin that answers for too few or too many nodes is held to
        // one verdict per node: missing ones refuse the node.
        let mut answers = answers.iter().take(known.len()).cloned();
        let mut known_answer =
            || answers.next().unwrap_or_else(|| Verdict::Unresolvable(vec!["the plugin gave no verdict".into()]));
        candidates
            .iter()
            .map(|&index| {
                if self.table.has_node(index) {
                    known_answer()
                } else {
                    Verdict::Unresolvable(vec![NODE_NOT_FOUND.into()])
                }
            })
            .collect()
    }

    fn score(&mut self, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
        let known: Vec<u32> = nodes.iter().copied().filter(|&index| self.table.has_node(index)).collect();
        let mut scores = self.plugin.score(&self.table, pod, &known);
        scores.resize(known.len(), 0);
        for score in &mut scores {
            *score = (*score).min(MAX_NODE_SCORE);
        }
        if known.len() == nodes.len() {
            return scores;
        }
        let mut scores = scores.into_iter();
        nodes.iter().map(|&index| if self.table.has_node(index) { scores.next().unwrap_or(0) } else { 0 }).collect()
    }
}

/// Makes `$plugin` (a [`Plugin`]) the component's export, on wasm32;
/// nothing elsewhere.
#[macro_export]
macro_rules! export_scheduler {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Export;

            impl $crate::guest::SchedulerGuest for Export {
                fn configure(config: String) -> Result<$crate::guest::WitAbilities, String> {
                    $crate::guest::configure::<$plugin>(&config)
                }

                fn prepare(
                    changes: Vec<$crate::guest::WitChange>,
                    pod: $crate::guest::WitPod,
                ) -> $crate::guest::WitPlan {
                    $crate::guest::prepare::<$plugin>(changes, pod)
                }

                fn filter(
                    candidates: Vec<u32>,
                    assumptions: $crate::guest::WitAssumptions,
                ) -> $crate::guest::WitVerdicts {
                    $crate::guest::filter::<$plugin>(candidates, assumptions)
                }

                fn score(nodes: Vec<u32>) -> Vec<u32> {
                    $crate::guest::score::<$plugin>(nodes)
                }
            }

    $crate::guest::bindings::export!(Export with_types_in $crate::guest::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::{node, pod};

    /// A plugin that refuses every node it is asked about and scores each
    /// node by its index, answering one item short, to test what the
    /// instance makes of its answers.
    struct ShortAnswers;

    impl Plugin for ShortAnswers {
        fn configure(config: &str) -> Result<(Self, Abilities), String> {
            if config == "bad" {
                return Err("bad configuration".into());
            }
            Ok((Self, Abilities { filters: true, scores: true, reads_pods: false, pod_parts: PodParts::ALL }))
        }

        fn filter(&self, _: &Table, _: &Pod, candidates: &[u32], _: &Assumptions) -> Verdicts {
            candidates.iter().skip(1).map(|_| Verdict::Unfit(vec!["no".into()])).collect()
        }

        fn score(&self, _: &Table, _: &Pod, nodes: &[u32]) -> Vec<u32> {
            nodes.iter().skip(1).map(|&index| index * 1000).collect()
        }
    }

    fn instance() -> Instance<ShortAnswers> {
        let (mut instance, _) = Instance::<ShortAnswers>::configure("{}").expect("configures");
        instance.apply([Change::NodeSet(0, node("a")), Change::NodeSet(2, node("c"))]);
        instance
    }

    #[test]
    fn configuration_text_is_read_as_json() {
        // Goal: empty text reads as `{}`; unknown fields and bad JSON are
        // refused with words that name the problem.
        assert_eq!(parse_no_config(""), Ok(()));
        assert_eq!(parse_no_config(" {} "), Ok(()));
        let unknown = parse_no_config(r#"{"weight": 1}"#).expect_err("unknown field");
        assert!(unknown.starts_with("invalid configuration: unknown field `weight`"), "{unknown}");
        assert!(parse_no_config("{").is_err());
        assert!(parse_no_config("[]").is_err());
    }

    #[test]
    fn configuration_errors_reach_the_host() {
        // Goal: the plugin's refusal is the instance's refusal.
        assert_eq!(Instance::<ShortAnswers>::configure("bad").err(), Some("bad configuration".to_owned()));
    }

    #[test]
    fn owned_and_borrowed_changes_make_the_same_table() {
        // Goal: `apply` (taking changes) and `prepare` (borrowing them)
        // leave the same table; a plugin that plans nothing of its own
        // needs both calls.
        let changes =
            vec![Change::NodeSet(0, node("a")), Change::PodPlaced(0, pod("p")), Change::NodeSet(3, node("d"))];
        let (mut taking, _) = Instance::<ShortAnswers>::configure("{}").expect("configures");
        let (mut borrowing, _) = Instance::<ShortAnswers>::configure("{}").expect("configures");
        taking.apply(changes.clone());
        assert_eq!(borrowing.prepare(&changes, &pod("q")), Plan::FULL);
        assert_eq!(taking.table().node_count(), 2);
        assert_eq!(taking.table().placement("p"), Some(0));
        assert_eq!(taking.table().node(0), borrowing.table().node(0));
        assert_eq!(taking.table().node(3), borrowing.table().node(3));
    }

    #[test]
    fn filter_answers_one_verdict_per_candidate() {
        // Goal: unknown nodes are refused as not found, and a plugin that
        // answers short is padded, so the host always gets one verdict per
        // candidate in order.
        let mut instance = instance();
        let verdicts = instance.filter(&pod("p"), &[0, 1, 2, 7], &Assumptions::default());
        assert_eq!(verdicts.len(), 4);
        assert!(matches!(&verdicts[0], Verdict::Unfit(_)));
        assert_eq!(verdicts[1], Verdict::Unresolvable(vec![NODE_NOT_FOUND.into()]));
        assert!(matches!(&verdicts[2], Verdict::Unresolvable(reasons) if reasons[0] == "the plugin gave no verdict"));
        assert_eq!(verdicts[3], Verdict::Unresolvable(vec![NODE_NOT_FOUND.into()]));
        assert!(instance.filter(&pod("p"), &[], &Assumptions::default()).is_empty());
    }

    mod verdicts {
        use proptest::prelude::*;

        use crate::{Verdict, Verdicts};

        /// One of a few verdicts, as plugins give them: mostly the same
        /// handful of reasons.
        fn verdict() -> impl Strategy<Value = Verdict> {
            (0..3u8, 0..24u8).prop_map(|(kind, reason)| {
                let reasons = vec![format!("reason {reason}")];
                match kind {
                    0 => Verdict::Fits,
                    1 => Verdict::Unfit(reasons),
                    _ => Verdict::Unresolvable(reasons),
                }
            })
        }

        proptest! {
            #[test]
            fn kept_compactly_they_read_back_as_given(given in proptest::collection::vec(verdict(), 0..200)) {
                // Goal: each candidate reads back its own verdict, in
                // order; no refusal that lets the pod fit is kept; each
                // of the first refusals is kept once.
                let verdicts: Verdicts = given.iter().cloned().collect();
                prop_assert_eq!(&verdicts, &given);
                prop_assert!(!verdicts.refusals().contains(&Verdict::Fits));
                let refusals = verdicts.refusals();
                for (at, refusal) in refusals.iter().enumerate().take(16) {
                    prop_assert!(!refusals[..at].contains(refusal), "{:?} kept twice", refusal);
                }
                let (refusals, by_candidate) = verdicts.clone().into_parts();
                prop_assert_eq!(Verdicts::from_parts(refusals, by_candidate), Ok(verdicts));
            }
        }

        #[test]
        fn parts_that_do_not_add_up_are_refused() {
            // Goal: a refusal that fits, or a candidate refused by a
            // refusal not given, is an error in words.
            let unfit = Verdict::Unfit(vec!["Insufficient cpu".into()]);
            assert_eq!(
                Verdicts::from_parts(vec![unfit.clone()], vec![0, 2]),
                Err("a candidate refused by refusal 2, of 1 given".to_owned())
            );
            assert!(Verdicts::from_parts(vec![Verdict::Fits], vec![1]).is_err());
            let verdicts = Verdicts::from_parts(vec![unfit.clone()], vec![1, 0, 1]).expect("adds up");
            assert_eq!(verdicts, vec![unfit.clone(), Verdict::Fits, unfit]);
            assert_eq!(verdicts.get(3), None);
        }
    }

    /// A plugin that answers one verdict too many, each refusing.
    struct ExtraAnswers;

    impl Plugin for ExtraAnswers {
        fn configure(_: &str) -> Result<(Self, Abilities), String> {
            Ok((Self, Abilities { filters: true, scores: false, reads_pods: false, pod_parts: PodParts::ALL }))
        }

        fn filter(&self, _: &Table, _: &Pod, candidates: &[u32], _: &Assumptions) -> Verdicts {
            (0..=candidates.len()).map(|_| Verdict::Unfit(vec!["extra".into()])).collect()
        }

        fn score(&self, _: &Table, _: &Pod, nodes: &[u32]) -> Vec<u32> {
            vec![0; nodes.len()]
        }
    }

    #[test]
    fn too_many_verdicts_are_cut_to_the_candidates_in_their_places() {
        // Goal: a plugin answering more verdicts than it was asked for
        // cannot shift them onto the candidates it was not asked about.
        let (mut instance, _) = Instance::<ExtraAnswers>::configure("{}").expect("configures");
        instance.apply([Change::NodeSet(0, node("a")), Change::NodeSet(2, node("c"))]);
        let verdicts = instance.filter(&pod("p"), &[0, 1, 2], &Assumptions::default());
        let extra = Verdict::Unfit(vec!["extra".into()]);
        assert_eq!(verdicts, vec![extra.clone(), Verdict::Unresolvable(vec![NODE_NOT_FOUND.into()]), extra]);
    }

    #[test]
    fn score_answers_one_bounded_score_per_node() {
        // Goal: scores are capped at 100, unknown nodes and missing answers
        // score 0.
        let mut instance = instance();
        assert_eq!(instance.score(&pod("p"), &[0, 2, 9]), vec![100, 0, 0]);
        assert_eq!(instance.score(&pod("p"), &[2, 0]), vec![0, 0]);
    }
}
