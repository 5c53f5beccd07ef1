//! Controller: a StatefulSet keeps `replicas` pods named `<set>-<ordinal>`,
//! each with a stable hostname under the set's Service and its own claims
//! from the set's claim templates, made and removed in ordinal order (or
//! all at once with the `Parallel` policy) and rolled to a new template
//! from the highest ordinal down, as kube-controller-manager's statefulset
//! controller keeps them. The set's templates are recorded as
//! ControllerRevisions.
//!
//! Configuration: none (empty, or `{}`).

mod identity;
mod model;
mod plan;
mod status;

use std::collections::BTreeMap;

use engenho_controller::kinds::{CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS, PODS, STATEFUL_SETS};
use engenho_controller::pods::{self, Pod};
use engenho_controller::revisions;
use engenho_controller::{
    ApiError, Cluster, Controller, EventType, Interest, Key, ObjectRef, Outcome, Selector, Trigger, Write,
};
use serde::Deserialize;
use serde_json::json;

use crate::model::{Claim, StatefulSet};
use crate::plan::{Action, Input, Plan, Version};

/// The controller's configuration: nothing to set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

/// Keeps StatefulSets' pods, claims and revisions.
pub struct StatefulSets;

impl Controller for StatefulSets {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        if !config.trim().is_empty() {
            serde_json::from_str::<Config>(config).map_err(|e| format!("invalid configuration: {e}"))?;
        }
        let interests = vec![
            Interest::new(STATEFUL_SETS, [Trigger::Itself]),
            Interest::new(PODS, [Trigger::Owners(STATEFUL_SETS), Trigger::Selecting(STATEFUL_SETS)]),
            Interest::new(PERSISTENT_VOLUME_CLAIMS, [Trigger::Owners(STATEFUL_SETS)]),
            Interest::new(CONTROLLER_REVISIONS, [Trigger::Owners(STATEFUL_SETS)]),
        ];
        Ok((Self, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        sync(cluster, &key.namespace, &key.name).into()
    }
}

/// Reconciles the set `namespace/name`.
fn sync<C: Cluster>(cluster: &C, namespace: &str, name: &str) -> Result<Outcome, ApiError> {
    let Some(set) = cluster.get_as::<StatefulSet>(&STATEFUL_SETS, namespace, name)? else { return Ok(Outcome::Done) };
    if set.spec.selector.is_empty() {
        return Ok(Outcome::Failed(format!("StatefulSet {name} has an empty selector and selects no pods")));
    }
    let pods: Vec<Pod> = pods::controlled_by(cluster, &set.metadata)?;
    let history = revisions::controlled_by(cluster, &set.metadata)?;
    let claims: BTreeMap<String, Claim> = cluster
        .list_as::<Claim>(&PERSISTENT_VOLUME_CLAIMS, &Selector::namespace(namespace))?
        .into_iter()
        .map(|c| (c.metadata.name.clone(), c))
        .collect();
    let update = match revisions::ensure_update_revision(cluster, &set, &history)? {
        Ok(update) => Version::of(&update),
        Err(outcome) => return Ok(outcome),
    };
    let current = history
        .iter()
        .find(|r| r.metadata.name == set.status.current_revision)
        .map_or_else(|| update.clone(), Version::of);
    let now = cluster.now();
    let plan = plan::plan(&Input { set: &set, pods: &pods, claims: &claims, current: &current, update: &update, now });
    let failure = apply(cluster, &set, &plan);
    // Live: the current and update revisions, and those whose name labels
    // a pod.
    let live = [current.name.as_str(), update.name.as_str()];
    revisions::prune(cluster, &set, &history, |r| {
        live.contains(&r.metadata.name.as_str()) || pods.iter().any(|p| p.revision() == r.metadata.name)
    })?;
    let status = status::status(&set, &pods, &current.name, &update.name, now);
    if status != set.status {
        cluster.write(Write::status_patch(STATEFUL_SETS, &set.metadata, json!(status)))?;
    }
    Ok(match (failure, plan.blocked, plan.requeue) {
        (Some(error), _, _) | (None, Some(error), _) => Outcome::Failed(error),
        (None, None, Some(after)) => Outcome::RequeueAfter(after),
        (None, None, None) => Outcome::Done,
    })
}

/// Makes the plan's steps in order, each step's writes at once, recording
/// an event for each; stops after a step with a failure, and answers the
/// first failure's message.
fn apply<C: Cluster>(cluster: &C, set: &StatefulSet, plan: &Plan) -> Option<String> {
    let regarding = ObjectRef::to(&STATEFUL_SETS, &set.metadata);
    for step in &plan.steps {
        let writes = step.iter().map(|a| a.write.clone()).collect();
        let answers = cluster.apply(writes);
        let mut failure = None;
        for (action, answer) in step.iter().zip(answers) {
            match answer {
                Ok(_) => record_success(cluster, &regarding, action),
                Err(error) => {
                    let message = format!("{}{}", action.failure, error.message);
                    cluster.emit(&regarding, EventType::Warning, &format!("Failed{}", action.verb), &message);
                    failure.get_or_insert(message);
                }
            }
        }
        if failure.is_some() {
            return failure;
        }
    }
    None
}

/// The Normal event of an action that worked, if it makes one.
fn record_success<C: Cluster>(cluster: &C, regarding: &ObjectRef, action: &Action) {
    if !action.success.is_empty() {
        cluster.emit(regarding, EventType::Normal, &format!("Successful{}", action.verb), &action.success);
    }
}

engenho_controller::export_controller!(StatefulSets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_empty_and_names_the_watched_kinds() {
        let (_, interests) = StatefulSets::configure("").expect("configures");
        let kinds: Vec<&str> = interests.iter().map(|i| i.kind.plural.as_ref()).collect();
        assert_eq!(kinds, vec!["statefulsets", "pods", "persistentvolumeclaims", "controllerrevisions"]);
        assert!(StatefulSets::configure("{}").is_ok());
        assert!(StatefulSets::configure(r#"{"workers": 2}"#).is_err());
    }
}
