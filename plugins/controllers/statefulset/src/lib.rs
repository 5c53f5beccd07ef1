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
mod revision;
mod status;

use std::collections::BTreeMap;
use std::time::Duration;

use engenho_controller::kinds::{CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS, PODS, STATEFUL_SETS};
use engenho_controller::{
    ApiError, Cluster, Controller, EventType, Interest, Key, ObjectRef, Outcome, Propagation, Selector, Trigger, Write,
    decode,
};
use serde::Deserialize;
use serde_json::json;

use crate::model::{Claim, Pod, Revision, StatefulSet};
use crate::plan::{Action, Input, Plan, Version};
use crate::revision::UpdateRevision;

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
    let owned = Selector::owned_by(namespace, &set.metadata.uid);
    let pods: Vec<Pod> = cluster.list_as::<Pod>(&PODS, &owned)?;
    let pods: Vec<Pod> = pods.into_iter().filter(|p| p.metadata.is_controlled_by(&set.metadata.uid)).collect();
    let revisions: Vec<Revision> = cluster.list_as::<Revision>(&CONTROLLER_REVISIONS, &owned)?;
    let revisions: Vec<Revision> =
        revisions.into_iter().filter(|r| r.metadata.is_controlled_by(&set.metadata.uid)).collect();
    let claims: BTreeMap<String, Claim> = cluster
        .list_as::<Claim>(&PERSISTENT_VOLUME_CLAIMS, &Selector::namespace(namespace))?
        .into_iter()
        .map(|c| (c.metadata.name.clone(), c))
        .collect();
    let update = match update_revision(cluster, &set, &revisions)? {
        Ok(update) => update,
        Err(outcome) => return Ok(outcome),
    };
    let current = revisions
        .iter()
        .find(|r| r.metadata.name == set.status.current_revision)
        .map_or_else(|| update.clone(), |r| Version { name: r.metadata.name.clone(), template: r.template() });
    let now = cluster.now();
    let plan = plan::plan(&Input { set: &set, pods: &pods, claims: &claims, current: &current, update: &update, now });
    let failure = apply(cluster, &set, &plan);
    prune(cluster, &set, &revisions, &pods, [current.name.as_str(), update.name.as_str()])?;
    let status = status::status(&set, &pods, &current.name, &update.name, now);
    if status != set.status {
        cluster.write(Write::Patch {
            kind: STATEFUL_SETS,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            subresource: "status".into(),
            patch: json!({"status": status}),
        })?;
    }
    Ok(match (failure, plan.blocked, plan.requeue) {
        (Some(error), _, _) | (None, Some(error), _) => Outcome::Failed(error),
        (None, None, Some(after)) => Outcome::RequeueAfter(after),
        (None, None, None) => Outcome::Done,
    })
}

/// The update revision, made or renumbered if it must be; or the outcome
/// to answer at once (a hash collision, counted in the status).
fn update_revision<C: Cluster>(
    cluster: &C,
    set: &StatefulSet,
    revisions: &[Revision],
) -> Result<Result<Version, Outcome>, ApiError> {
    let namespace = set.metadata.namespace.clone();
    let found = match revision::update_revision(set, revisions) {
        UpdateRevision::Current(found) => found,
        UpdateRevision::Renumber(found) => {
            cluster.write(Write::Patch {
                kind: CONTROLLER_REVISIONS,
                namespace,
                name: found.metadata.name.clone(),
                subresource: String::new(),
                patch: json!({"revision": found.revision}),
            })?;
            found
        }
        UpdateRevision::Create(object) => {
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            match cluster.write(Write::Create { kind: CONTROLLER_REVISIONS, namespace: namespace.clone(), object }) {
                Ok(stored) => decode::<Revision>(&CONTROLLER_REVISIONS, &stored)?,
                Err(error) if error.is_conflict() => {
                    let existing = cluster.get_as::<Revision>(&CONTROLLER_REVISIONS, &namespace, &name)?;
                    match existing {
                        Some(existing) if existing.data == revision::patch(set) => existing,
                        _ => return count_collision(cluster, set).map(Err),
                    }
                }
                Err(error) => return Err(error),
            }
        }
    };
    Ok(Ok(Version { name: found.metadata.name.clone(), template: found.template() }))
}

/// Counts a revision name taken by another template, so the next reconcile
/// names the revision with another hash.
fn count_collision<C: Cluster>(cluster: &C, set: &StatefulSet) -> Result<Outcome, ApiError> {
    let count = set.status.collision_count.unwrap_or(0).saturating_add(1);
    cluster.write(Write::Patch {
        kind: STATEFUL_SETS,
        namespace: set.metadata.namespace.clone(),
        name: set.metadata.name.clone(),
        subresource: "status".into(),
        patch: json!({"status": {"collisionCount": count}}),
    })?;
    Ok(Outcome::RequeueAfter(Duration::ZERO))
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

/// Deletes the revisions beyond the set's history limit.
fn prune<C: Cluster>(
    cluster: &C,
    set: &StatefulSet,
    revisions: &[Revision],
    pods: &[Pod],
    live: [&str; 2],
) -> Result<(), ApiError> {
    let deletes: Vec<Write> = revision::to_prune(set, revisions, pods, &live)
        .into_iter()
        .map(|r| Write::Delete {
            kind: CONTROLLER_REVISIONS,
            namespace: set.metadata.namespace.clone(),
            name: r.metadata.name.clone(),
            uid: r.metadata.uid.clone(),
            propagation: Propagation::Background,
        })
        .collect();
    for answer in cluster.apply(deletes) {
        match answer {
            Err(error) if !error.is_not_found() => return Err(error),
            _ => {}
        }
    }
    Ok(())
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
