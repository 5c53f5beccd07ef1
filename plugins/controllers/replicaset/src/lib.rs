//! Controller: each ReplicaSet runs as many pods as it asks for, as
//! kube-controller-manager's replicaset controller keeps them. It adopts
//! the orphan pods its selector picks and releases the ones it no longer
//! picks, creates pods from its template in slow-start batches or deletes
//! the least useful ones, and reports the counts of its pods and the
//! `ReplicaFailure` condition in its status.
//!
//! Configuration (JSON, optional): `{"burstReplicas": 500}`, the most pods
//! one reconcile creates or deletes.

pub mod plan;
pub mod pods;

use std::collections::HashSet;
use std::sync::Arc;

use engenho_controller::kinds::{PODS, REPLICA_SETS};
use engenho_controller::meta::ObjectMeta;
use engenho_controller::pods::Pod;
use engenho_controller::replicasets::ReplicaSet;
use engenho_controller::{
    ApiError, Cluster, Controller, EventType, Interest, Key, Level, ObjectRef, Outcome, Selector, Trigger, Write,
};
use serde::Deserialize;
use serde_json::json;

use crate::plan::{ManageFailure, Scale};

/// The most pods one reconcile creates or deletes, unless configured.
pub const DEFAULT_BURST_REPLICAS: usize = 500;

/// The controller's configuration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The most pods one reconcile creates or deletes.
    #[serde(default = "default_burst")]
    burst_replicas: usize,
}

fn default_burst() -> usize {
    DEFAULT_BURST_REPLICAS
}

/// Keeps each ReplicaSet's pods.
pub struct ReplicaSets {
    burst_replicas: usize,
}

impl Controller for ReplicaSets {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        let config: Config = match config.trim() {
            "" => Config { burst_replicas: DEFAULT_BURST_REPLICAS },
            text => serde_json::from_str(text).map_err(|e| format!("invalid configuration: {e}"))?,
        };
        if config.burst_replicas == 0 {
            return Err("invalid configuration: burstReplicas must be positive".into());
        }
        let interests = vec![
            Interest::new(REPLICA_SETS, [Trigger::Itself]),
            Interest::new(PODS, [Trigger::Owners(REPLICA_SETS), Trigger::Selecting(REPLICA_SETS)]),
        ];
        Ok((Self { burst_replicas: config.burst_replicas }, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        self.sync(cluster, key).into()
    }
}

impl ReplicaSets {
    fn sync<C: Cluster>(&self, cluster: &C, key: &Key) -> Result<Outcome, ApiError> {
        let Some(rs) = cluster.get_shared::<ReplicaSet>(&REPLICA_SETS, &key.namespace, &key.name)? else {
            return Ok(Outcome::Done);
        };
        if rs.metadata.is_deleting() {
            return Ok(Outcome::Done);
        }
        if rs.spec.selector.is_empty() {
            cluster.log(Level::Warn, &format!("replicaset {}/{} has an empty selector", key.namespace, key.name));
            return Ok(Outcome::Done);
        }
        let pods = candidate_pods(cluster, &rs)?;
        let claims = plan::claims(&rs, pods.iter().map(|(pod, selected)| (&**pod, *selected)));
        let mut owned = claims.owned.clone();
        let mut claim_error_opt = None;
        let ownership: Vec<Write> = claims
            .adopt
            .iter()
            .map(|pod| patch_pod(pod, plan::adoption_patch(&rs, pod)))
            .chain(claims.release.iter().map(|pod| patch_pod(pod, plan::release_patch(&rs, pod))))
            .collect();
        for (index, answer) in cluster.apply(ownership).into_iter().enumerate() {
            match answer {
                Ok(_) => {
                    if let Some(adopted) = claims.adopt.get(index) {
                        owned.push(adopted);
                    }
                }
                Err(error) if error.is_not_found() => {}
                Err(error) => claim_error_opt = Some(error),
            }
        }
        let active: Vec<&Pod> = owned.into_iter().filter(|pod| pod.is_active()).collect();
        let failure_opt = self.manage(cluster, &rs, &active);
        let now = cluster.now();
        let status = plan::status(&rs, &active, now, failure_opt.as_ref());
        if status != rs.status {
            cluster.write(Write::status_patch(REPLICA_SETS, &rs.metadata, json!(status)))?;
        }
        if let Some(failure) = failure_opt {
            return Ok(Outcome::Failed(failure.message));
        }
        if let Some(error) = claim_error_opt {
            return Err(error);
        }
        Ok(plan::availability_requeue(&rs, &active, now).map_or(Outcome::Done, Outcome::RequeueAfter))
    }

    /// Creates or deletes pods until `active` matches what `rs` asks for;
    /// the first failure, if any.
    fn manage<C: Cluster>(&self, cluster: &C, rs: &ReplicaSet, active: &[&Pod]) -> Option<ManageFailure> {
        let regarding = || ObjectRef::to(&REPLICA_SETS, &rs.metadata);
        match plan::scale(rs.replicas().max(0), active.len(), self.burst_replicas) {
            Scale::Hold => None,
            Scale::Create(count) => {
                let regarding = regarding();
                let mut failure_opt = None;
                plan::slow_start(count, |size| {
                    let writes = (0..size)
                        .map(|_| Write::Create {
                            kind: PODS,
                            namespace: rs.metadata.namespace.clone(),
                            object: plan::pod_from_template(rs),
                        })
                        .collect();
                    let mut created = 0;
                    for answer in cluster.apply(writes) {
                        match answer {
                            Ok(stored) => {
                                created += 1;
                                let name = stored_name(&stored);
                                cluster.emit(
                                    &regarding,
                                    EventType::Normal,
                                    "SuccessfulCreate",
                                    &format!("Created pod: {name}"),
                                );
                            }
                            Err(error) => {
                                let message = format!("Error creating: {}", error.message);
                                cluster.emit(&regarding, EventType::Warning, "FailedCreate", &message);
                                failure_opt
                                    .get_or_insert(ManageFailure { reason: "FailedCreate", message: error.message });
                            }
                        }
                    }
                    created
                });
                failure_opt
            }
            Scale::Delete(count) => {
                let regarding = regarding();
                let owned: Vec<Pod> = active.iter().map(|pod| (*pod).clone()).collect();
                let victims = pods::to_delete(&owned, count, cluster.now());
                let writes = victims.iter().map(|pod| Write::delete(PODS, &pod.metadata)).collect();
                let mut failure_opt = None;
                for (pod, answer) in victims.iter().zip(cluster.apply(writes)) {
                    let name = &pod.metadata.name;
                    match answer {
                        Ok(_) => cluster.emit(
                            &regarding,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {name}"),
                        ),
                        Err(error) if error.is_not_found() => {}
                        Err(error) => {
                            let message = format!("Error deleting: {}", error.message);
                            cluster.emit(&regarding, EventType::Warning, "FailedDelete", &message);
                            failure_opt.get_or_insert(ManageFailure { reason: "FailedDelete", message: error.message });
                        }
                    }
                }
                failure_opt
            }
        }
    }
}

/// The pods of `rs`'s namespace its selector picks and those it controls,
/// each once, with whether its selector picks it.
fn candidate_pods<C: Cluster>(cluster: &C, rs: &ReplicaSet) -> Result<Vec<(Arc<Pod>, bool)>, ApiError> {
    let namespace = &rs.metadata.namespace;
    let selected = Selector { labels: rs.spec.selector.to_text(), ..Selector::namespace(namespace) };
    let owned = Selector::owned_by(namespace, &rs.metadata.uid);
    let read = cluster.list_shared_union::<Pod>(&PODS, &selected, &owned)?;
    let mut pods: Vec<(Arc<Pod>, bool)> = read.first.into_iter().map(|pod| (pod, true)).collect();
    if !read.only_second.is_empty() {
        // A pod that changed between the two listings counts as first listed.
        let known: HashSet<&str> = pods.iter().map(|(pod, _)| pod.metadata.uid.as_str()).collect();
        let others: Vec<(Arc<Pod>, bool)> = read
            .only_second
            .into_iter()
            .filter(|pod| !known.contains(pod.metadata.uid.as_str()))
            .map(|pod| {
                let picks = rs.spec.selector.matches(&pod.metadata.labels);
                (pod, picks)
            })
            .collect();
        pods.extend(others);
    }
    Ok(pods)
}

/// A merge patch of `pod`.
fn patch_pod(pod: &Pod, patch: serde_json::Value) -> Write {
    Write::Patch {
        kind: PODS,
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        subresource: String::new(),
        patch,
    }
}

/// The name of a stored object the API answered, or `?` when it has none.
fn stored_name(stored: &str) -> String {
    #[derive(Deserialize)]
    struct Stored {
        #[serde(default)]
        metadata: ObjectMeta,
    }
    serde_json::from_str::<Stored>(stored).map(|s| s.metadata.name).unwrap_or_else(|_| "?".into())
}

engenho_controller::export_controller!(ReplicaSets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_sets_the_burst() {
        let (controller, interests) = ReplicaSets::configure("").expect("configures");
        assert_eq!(controller.burst_replicas, DEFAULT_BURST_REPLICAS);
        assert_eq!(interests.len(), 2);
        let (controller, _) = ReplicaSets::configure(r#"{"burstReplicas": 20}"#).expect("configures");
        assert_eq!(controller.burst_replicas, 20);
        assert!(ReplicaSets::configure(r#"{"burstReplicas": 0}"#).is_err());
        assert!(ReplicaSets::configure(r#"{"other": 1}"#).is_err());
    }

    #[test]
    fn stored_names_are_read_from_the_answer() {
        assert_eq!(stored_name(r#"{"metadata": {"name": "web-abcde"}}"#), "web-abcde");
        assert_eq!(stored_name("not json"), "?");
    }
}
