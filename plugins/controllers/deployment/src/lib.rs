//! Controller: each Deployment rolls its pods out through ReplicaSets, as
//! kube-controller-manager's deployment controller does. A ReplicaSet per
//! pod template (named `<deployment>-<pod-template-hash>`), revisions and
//! rollbacks in the `deployment.kubernetes.io/revision` annotations,
//! RollingUpdate within `maxSurge` and `maxUnavailable` or Recreate,
//! proportional scaling mid-rollout, pausing, cleanup of old revisions
//! beyond `revisionHistoryLimit`, and the status and conditions
//! `kubectl rollout status` reads.
//!
//! Configuration: none (empty, or `{}`).

pub mod hash;
pub mod model;
pub mod plan;
pub mod revision;
pub mod rollout;
pub mod status;

use std::time::Duration;

use engenho_controller::kinds::{DEPLOYMENTS, PODS, REPLICA_SETS};
use engenho_controller::pods::Pod;
use engenho_controller::replicasets::ReplicaSet;
use engenho_controller::{ApiError, Cluster, Controller, Interest, Key, ObjectRef, Outcome, Selector, Trigger, Write};

use crate::model::Deployment;
use crate::plan::{Event, Plan};

/// How soon a Deployment is reconciled again after it adopted or released
/// ReplicaSets.
const AFTER_CLAIMS: Duration = Duration::from_millis(100);

/// Rolls Deployments out.
pub struct Deployments;

impl Controller for Deployments {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        match config.trim() {
            "" | "{}" => {}
            other => return Err(format!("invalid configuration: the deployment controller takes none, not {other}")),
        }
        let interests = vec![
            Interest::new(DEPLOYMENTS, [Trigger::Itself]),
            Interest::new(REPLICA_SETS, [Trigger::Owners(DEPLOYMENTS), Trigger::Selecting(DEPLOYMENTS)]),
            // Read only: whether a Recreate rollout's old pods are gone.
            Interest::new(PODS, []),
        ];
        Ok((Self, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        sync(cluster, key).into()
    }
}

fn sync<C: Cluster>(cluster: &C, key: &Key) -> Result<Outcome, ApiError> {
    let Some(deployment) = cluster.get_as::<Deployment>(&DEPLOYMENTS, &key.namespace, &key.name)? else {
        return Ok(Outcome::Done);
    };
    let sets: Vec<ReplicaSet> = cluster.list_as(&REPLICA_SETS, &Selector::namespace(&key.namespace))?;
    let pods: Vec<Pod> = if deployment.spec.selector.is_empty() || deployment.spec.strategy.is_rolling() {
        Vec::new()
    } else {
        let selector = Selector { labels: deployment.spec.selector.to_text(), ..Selector::namespace(&key.namespace) };
        cluster.list_as(&PODS, &selector)?
    };
    let now = cluster.now();
    let plan = plan::plan(&deployment, &sets, &pods, now);
    let regarding = ObjectRef::to(&DEPLOYMENTS, &deployment.metadata);
    let emit = |event: &Event| cluster.emit(&regarding, event.event_type, event.reason, &event.message);
    let Plan { ownership, create_opt, changes, deployment: deployment_steps, events, requeue_opt, failure_opt } = plan;
    if !ownership.is_empty() {
        first_error(cluster.apply(ownership))?;
        return Ok(Outcome::RequeueAfter(AFTER_CLAIMS));
    }
    events.iter().for_each(emit);
    if let Some(create) = create_opt {
        let name = match &create.write {
            Write::Create { object, .. } => object["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        match cluster.write(create.write) {
            Ok(_) => create.event_opt.iter().for_each(emit),
            Err(error) if error.is_conflict() => return Err(error),
            Err(error) => {
                let (write_opt, event) = plan::create_failed(&deployment, &name, &error.message, now);
                emit(&event);
                if let Some(write) = write_opt {
                    cluster.write(write)?;
                }
                return Ok(Outcome::Failed(event.message));
            }
        }
    }
    run(cluster, changes, &emit)?;
    run(cluster, deployment_steps, &emit)?;
    if let Some(failure) = failure_opt {
        return Ok(Outcome::Failed(failure));
    }
    Ok(requeue_opt.map_or(Outcome::Done, Outcome::RequeueAfter))
}

/// Makes `steps` concurrently, recording the event of each that succeeded;
/// the first error but a missing object's.
fn run<C: Cluster>(cluster: &C, steps: Vec<plan::Step>, emit: &impl Fn(&Event)) -> Result<(), ApiError> {
    let (writes, events): (Vec<Write>, Vec<Option<Event>>) = steps.into_iter().map(|s| (s.write, s.event_opt)).unzip();
    let answers = cluster.apply(writes);
    for (answer, event_opt) in answers.iter().zip(&events) {
        if answer.is_ok() {
            event_opt.iter().for_each(emit);
        }
    }
    first_error(answers)
}

/// The first error among `answers` but a missing object's.
fn first_error(answers: Vec<Result<String, ApiError>>) -> Result<(), ApiError> {
    answers.into_iter().filter_map(Result::err).find(|error| !error.is_not_found()).map_or(Ok(()), Err)
}

engenho_controller::export_controller!(Deployments);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_empty_and_names_three_kinds() {
        let (_, interests) = Deployments::configure("").expect("configures");
        assert_eq!(interests.len(), 3);
        assert!(interests[2].triggers.is_empty());
        assert!(Deployments::configure(r#"{"x": 1}"#).is_err());
    }
}
