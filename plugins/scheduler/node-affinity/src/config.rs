//! The plugin's configuration: kube-scheduler's `NodeAffinityArgs`, with
//! node selector terms in Kubernetes' JSON form.

use engenho_scheduler::matching::node_term_is_valid;
use engenho_scheduler::{NodeOperator, NodeRequirement, NodeSelectorTerm, PreferredNodeTerm};
use serde::Deserialize;

/// `NodeAffinityArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    /// Node affinity every pod of the profile gets, on top of its own.
    #[serde(default)]
    added_affinity: Option<AddedAffinity>,
}

/// A `v1.NodeAffinity`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddedAffinity {
    #[serde(default, rename = "requiredDuringSchedulingIgnoredDuringExecution")]
    required: Option<NodeSelector>,
    #[serde(default, rename = "preferredDuringSchedulingIgnoredDuringExecution")]
    preferred: Vec<PreferredTerm>,
}

/// A `v1.NodeSelector`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeSelector {
    node_selector_terms: Vec<Term>,
}

/// A `v1.NodeSelectorTerm`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Term {
    #[serde(default)]
    match_expressions: Vec<Requirement>,
    #[serde(default)]
    match_fields: Vec<Requirement>,
}

/// A `v1.NodeSelectorRequirement`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Requirement {
    key: String,
    operator: Operator,
    #[serde(default)]
    values: Vec<String>,
}

/// A node selector operator, spelled as in Kubernetes.
#[derive(Debug, Clone, Copy, Deserialize)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// A `v1.PreferredSchedulingTerm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreferredTerm {
    weight: i32,
    preference: Term,
}

impl Term {
    fn into_term(self) -> NodeSelectorTerm {
        let requirements = |requirements: Vec<Requirement>| {
            requirements
                .into_iter()
                .map(|requirement| NodeRequirement {
                    key: requirement.key,
                    operator: match requirement.operator {
                        Operator::In => NodeOperator::In,
                        Operator::NotIn => NodeOperator::NotIn,
                        Operator::Exists => NodeOperator::Exists,
                        Operator::DoesNotExist => NodeOperator::DoesNotExist,
                        Operator::Gt => NodeOperator::Gt,
                        Operator::Lt => NodeOperator::Lt,
                    },
                    values: requirement.values,
                })
                .collect()
        };
        NodeSelectorTerm {
            match_expressions: requirements(self.match_expressions),
            match_fields: requirements(self.match_fields),
        }
    }
}

/// A term checked as the API server checks one.
fn checked(term: Term, path: &str) -> Result<NodeSelectorTerm, String> {
    let term = term.into_term();
    if !node_term_is_valid(&term) {
        return Err(format!(
            "invalid configuration: {path}: a requirement is invalid (In and NotIn need values, Exists and \
             DoesNotExist none, Gt and Lt one integer; matchFields only metadata.name with In or NotIn and one value)"
        ));
    }
    Ok(term)
}

impl Args {
    /// The added required terms (`None`: none added) and preferred terms.
    ///
    /// # Errors
    /// An invalid term or weight, naming its path.
    pub fn added_affinity(self) -> Result<(Option<Vec<NodeSelectorTerm>>, Vec<PreferredNodeTerm>), String> {
        let Some(added) = self.added_affinity else { return Ok((None, Vec::new())) };
        const BASE: &str = "addedAffinity";
        let required = match added.required {
            None => None,
            Some(selector) => {
                let path = format!("{BASE}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
                if selector.node_selector_terms.is_empty() {
                    return Err(format!("invalid configuration: {path}: must have at least one term"));
                }
                let terms = selector.node_selector_terms.into_iter().enumerate();
                Some(terms.map(|(i, term)| checked(term, &format!("{path}[{i}]"))).collect::<Result<Vec<_>, _>>()?)
            }
        };
        let mut preferred = Vec::with_capacity(added.preferred.len());
        for (i, term) in added.preferred.into_iter().enumerate() {
            let path = format!("{BASE}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            if !(1..=100).contains(&term.weight) {
                return Err(format!("invalid configuration: {path}.weight: {} is not in 1..=100", term.weight));
            }
            let preference = checked(term.preference, &format!("{path}.preference"))?;
            preferred.push(PreferredNodeTerm { weight: term.weight, preference });
        }
        Ok((required, preferred))
    }
}
