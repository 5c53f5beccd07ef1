//! Controller: a DaemonSet runs one pod on every node that its template's
//! node selector, required node affinity and tolerations admit, and rolls
//! its pods to a new template within `maxUnavailable` (or `maxSurge`), as
//! kube-controller-manager's daemon controller keeps them. Pods name their
//! node by a required node affinity and the scheduler binds them. The
//! set's templates are recorded as ControllerRevisions.
//!
//! Configuration: none (empty, or `{}`).

mod model;
mod placement;
mod plan;
mod status;
mod template;

use std::sync::Arc;
use std::time::Duration;

use engenho_controller::kinds::{CONTROLLER_REVISIONS, DAEMON_SETS, NODES, PODS};
use engenho_controller::nodes::Node;
use engenho_controller::pods::{self, Pod};
use engenho_controller::revisions;
use engenho_controller::{
    ApiError, Cluster, Controller, EventType, Interest, Key, ObjectRef, Outcome, Propagation, Selector, Trigger, Write,
    decode,
};
use serde::Deserialize;
use serde_json::json;

use crate::model::DaemonSet;
use crate::plan::{Input, Plan};

/// The largest batch of pod creations sent at once.
const CREATE_BATCH_MAX: usize = 500;

/// The controller's configuration: nothing to set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

/// Keeps DaemonSets' pods and revisions.
pub struct DaemonSets;

impl Controller for DaemonSets {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        if !config.trim().is_empty() {
            serde_json::from_str::<Config>(config).map_err(|e| format!("invalid configuration: {e}"))?;
        }
        let interests = vec![
            Interest::new(DAEMON_SETS, [Trigger::Itself]),
            Interest::new(PODS, [Trigger::Owners(DAEMON_SETS)]),
            Interest::new(NODES, [Trigger::Every(DAEMON_SETS)]),
            Interest::new(CONTROLLER_REVISIONS, [Trigger::Owners(DAEMON_SETS)]),
        ];
        Ok((Self, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        sync(cluster, &key.namespace, &key.name).into()
    }
}

/// Reconciles the set `namespace/name`.
fn sync<C: Cluster>(cluster: &C, namespace: &str, name: &str) -> Result<Outcome, ApiError> {
    let Some(set) = cluster.get_as::<DaemonSet>(&DAEMON_SETS, namespace, name)? else { return Ok(Outcome::Done) };
    if set.spec.selector.is_empty() {
        return Ok(Outcome::Failed(format!("DaemonSet {name} has an empty selector and selects no pods")));
    }
    let pods: Vec<Pod> = pods::controlled_by(cluster, &set.metadata)?;
    let history = revisions::controlled_by(cluster, &set.metadata)?;
    let nodes: Vec<Arc<Node>> = cluster.list_shared::<Node>(&NODES, &Selector::default())?;
    let update = match revisions::ensure_update_revision(cluster, &set, &history)? {
        Ok(update) => update,
        Err(outcome) => return Ok(outcome),
    };
    let hash = update.hash().to_owned();
    let now = cluster.now();
    let plan = plan::plan(&Input { set: &set, nodes: &nodes, pods: &pods, hash: &hash, now });
    let failure = apply(cluster, &set, &hash, &plan);
    // Live: the update revision, and those whose hash labels a pod.
    revisions::prune(cluster, &set, &history, |r| {
        r.metadata.name == update.metadata.name || pods.iter().any(|p| p.revision() == r.hash())
    })?;
    let fits = plan::fits(&set, &nodes);
    let status = status::status(&set, &fits, &plan::pods_by_node(&pods), &hash, now);
    let settling = set.spec.min_ready_seconds > 0 && status.number_ready != status.number_available;
    if status != set.status {
        cluster.write(Write::status_patch(DAEMON_SETS, &set.metadata, json!(status)))?;
    }
    Ok(match failure {
        Some(error) => Outcome::Failed(error),
        None if settling => {
            Outcome::RequeueAfter(Duration::from_secs(u64::try_from(set.spec.min_ready_seconds).unwrap_or(1)))
        }
        None => Outcome::Done,
    })
}

/// The sizes of the slow-start batches `count` creations go in: 1, 2, 4, …
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut left = count;
    let mut size = 1;
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size = (size * 2).min(CREATE_BATCH_MAX);
    }
    batches
}

/// Makes the plan: creations in slow-start batches (none after a batch with
/// a failure), then the deletions at once; records each as an event and
/// answers the first failure's message.
fn apply<C: Cluster>(cluster: &C, set: &DaemonSet, hash: &str, plan: &Plan) -> Option<String> {
    let regarding = ObjectRef::to(&DAEMON_SETS, &set.metadata);
    let mut failure = None;
    let mut nodes = plan.create_on.iter();
    for size in slow_start_batches(plan.create_on.len()) {
        let writes: Vec<Write> = nodes
            .by_ref()
            .take(size)
            .map(|node| Write::Create {
                kind: PODS,
                namespace: set.metadata.namespace.clone(),
                object: template::pod(set, hash, node),
            })
            .collect();
        for answer in cluster.apply(writes) {
            match answer.and_then(|stored| decode::<Pod>(&PODS, &stored)) {
                Ok(pod) => {
                    let message = format!("Created pod: {}", pod.metadata.name);
                    cluster.emit(&regarding, EventType::Normal, "SuccessfulCreate", &message);
                }
                Err(error) => {
                    let message = format!("Error creating: {}", error.message);
                    cluster.emit(&regarding, EventType::Warning, "FailedCreate", &message);
                    failure.get_or_insert(message);
                }
            }
        }
        if failure.is_some() {
            break;
        }
    }
    let deletes: Vec<Write> = plan
        .delete
        .iter()
        .map(|(name, uid)| Write::Delete {
            kind: PODS,
            namespace: set.metadata.namespace.clone(),
            name: name.clone(),
            uid: uid.clone(),
            propagation: Propagation::Background,
        })
        .collect();
    for ((name, _), answer) in plan.delete.iter().zip(cluster.apply(deletes)) {
        match answer {
            Ok(_) => cluster.emit(&regarding, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}")),
            Err(error) if error.is_not_found() => {}
            Err(error) => {
                let message = format!("Error deleting: {}", error.message);
                cluster.emit(&regarding, EventType::Warning, "FailedDelete", &message);
                failure.get_or_insert(message);
            }
        }
    }
    failure
}

engenho_controller::export_controller!(DaemonSets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_start_slow_and_double() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    }

    #[test]
    fn configuration_is_empty_and_names_the_watched_kinds() {
        let (_, interests) = DaemonSets::configure("").expect("configures");
        let kinds: Vec<&str> = interests.iter().map(|i| i.kind.plural.as_ref()).collect();
        assert_eq!(kinds, vec!["daemonsets", "pods", "nodes", "controllerrevisions"]);
        assert!(DaemonSets::configure("{}").is_ok());
        assert!(DaemonSets::configure(r#"{"workers": 2}"#).is_err());
    }
}
