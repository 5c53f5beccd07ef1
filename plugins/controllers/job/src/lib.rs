//! Controller: Jobs run pods until enough succeed, as kube-controller-manager's
//! job controller (Kubernetes 1.32) runs them, and are deleted
//! `ttlSecondsAfterFinished` after they finish (which Kubernetes leaves to
//! its separate ttl-after-finished controller).
//!
//! Each reconcile of an unfinished Job reads the Job and the pods it
//! controls, plans (see [`plan`]), deletes and makes pods (new pods in
//! slow-start batches of 1, 2, 4, …), writes the status, and only then
//! removes the tracking finalizer from the finished pods that status
//! records (see [`tracking`]). A finished Job's remaining finalizers are
//! removed, and so are those of pods whose Job is gone.
//!
//! Configuration: none (empty, or `{}`).

pub mod backoff;
pub mod indexes;
pub mod model;
pub mod plan;
pub mod template;
pub mod tracking;

use std::time::Duration;

use engenho_controller::kinds::{JOBS, PODS};
use engenho_controller::meta::ObjectMeta;
use engenho_controller::pods::{self, Pod};
use engenho_controller::{
    ApiError, Cluster, Controller, EventType, Interest, Key, ObjectRef, Outcome, Propagation, Selector, Trigger, Write,
    encode,
};
use serde_json::{Value, json};

use crate::model::{JOB_NAME_LABEL, Job, JobPod, JobStatus, TRACKING_FINALIZER};
use crate::plan::Doomed;

/// Runs Jobs.
pub struct Jobs;

impl Controller for Jobs {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        match config.trim() {
            "" | "{}" => {}
            other => return Err(format!("the job controller takes no configuration, got {other}")),
        }
        let interests = vec![Interest::new(JOBS, [Trigger::Itself]), Interest::new(PODS, [Trigger::Owners(JOBS)])];
        Ok((Self, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        sync(cluster, &key.namespace, &key.name).into()
    }
}

engenho_controller::export_controller!(Jobs);

/// Reconciles the Job `name` in `namespace`.
fn sync<C: Cluster>(cluster: &C, namespace: &str, name: &str) -> Result<Outcome, ApiError> {
    let Some(raw) = cluster.get(&JOBS, namespace, name)? else {
        release_orphans(cluster, namespace, name, "")?;
        return Ok(Outcome::Done);
    };
    let mut object: Value = serde_json::from_str(&raw).map_err(|e| malformed(name, &e))?;
    let job: Job = serde_json::from_value(object.clone()).map_err(|e| malformed(name, &e))?;
    if job.metadata.is_deleting() {
        release_orphans(cluster, namespace, name, "")?;
        return Ok(Outcome::Done);
    }
    release_orphans(cluster, namespace, name, &job.metadata.uid)?;
    let pods: Vec<Pod> = pods::controlled_by(cluster, &job.metadata)?;
    if job.status.is_finished() {
        release(cluster, pods.iter().filter(|p| p.is_tracked()))?;
        return after_finish(cluster, &job, &job.status);
    }
    let mut plan = plan::plan(&job, &pods, cluster.now());
    let regarding = ObjectRef::to(&JOBS, &job.metadata);
    let mut failures = delete_pods(cluster, &regarding, &plan.deletes);
    let (made, failed) = create_pods(cluster, &regarding, &plan.creates);
    failures.extend(failed);
    plan.status.active = plan.status.active.saturating_sub(tracking::count(plan.creates.len() - made));
    if plan.status != job.status {
        object["status"] = encode(&plan.status)?;
        cluster.write(Write::UpdateStatus { kind: JOBS, namespace: namespace.to_owned(), object })?;
    }
    release(cluster, pods.iter().filter(|p| plan.releases.contains(&p.metadata.name)))?;
    for event in &plan.events {
        cluster.emit(&regarding, event.event_type, &event.reason, &event.message);
    }
    if !failures.is_empty() {
        return Ok(Outcome::Failed(failures.join("; ")));
    }
    if plan.status.is_finished() {
        return after_finish(cluster, &job, &plan.status);
    }
    Ok(plan.requeue.map_or(Outcome::Done, Outcome::RequeueAfter))
}

/// The error for a Job that does not read as one.
fn malformed(name: &str, error: &serde_json::Error) -> ApiError {
    ApiError::internal(format!("job {name} is malformed: {error}"))
}

/// Deletes `doomed` pods, with an event for each; the failures, in words.
fn delete_pods<C: Cluster>(cluster: &C, regarding: &ObjectRef, doomed: &[Doomed]) -> Vec<String> {
    let writes = doomed
        .iter()
        .map(|pod| Write::Delete {
            kind: PODS,
            namespace: regarding.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            propagation: Propagation::Background,
        })
        .collect();
    let mut failures = Vec::new();
    for (pod, answer) in doomed.iter().zip(cluster.apply(writes)) {
        match answer {
            Ok(_) => {
                cluster.emit(regarding, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {}", pod.name))
            }
            Err(error) if error.is_not_found() => {}
            Err(error) => {
                cluster.emit(
                    regarding,
                    EventType::Warning,
                    "FailedDelete",
                    &format!("Error deleting: {}", error.message),
                );
                failures.push(format!("deleting pod {}: {error}", pod.name));
            }
        }
    }
    failures
}

/// Makes `pods` in slow-start batches (1, 2, 4, …), stopping after a batch
/// with a failure; how many were made, and the failures in words.
fn create_pods<C: Cluster>(cluster: &C, regarding: &ObjectRef, pods: &[Value]) -> (usize, Vec<String>) {
    let (mut made, mut start, mut size) = (0, 0, 1);
    let mut failures = Vec::new();
    while start < pods.len() && failures.is_empty() {
        let end = (start + size).min(pods.len());
        let writes = pods[start..end]
            .iter()
            .map(|pod| Write::Create { kind: PODS, namespace: regarding.namespace.clone(), object: pod.clone() })
            .collect();
        for answer in cluster.apply(writes) {
            match answer {
                Ok(stored) => {
                    made += 1;
                    let name = serde_json::from_str::<Value>(&stored)
                        .ok()
                        .and_then(|v| v["metadata"]["name"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    cluster.emit(regarding, EventType::Normal, "SuccessfulCreate", &format!("Created pod: {name}"));
                }
                Err(error) => {
                    let message = format!("Error creating: {}", error.message);
                    cluster.emit(regarding, EventType::Warning, "FailedCreate", &message);
                    failures.push(format!("creating a pod: {error}"));
                }
            }
        }
        start = end;
        size *= 2;
    }
    (made, failures)
}

/// Removes the tracking finalizer from `pods`.
///
/// # Errors
/// The first removal that failed for another reason than the pod being gone.
fn release<'a, C: Cluster>(cluster: &C, pods: impl Iterator<Item = &'a Pod>) -> Result<(), ApiError> {
    let writes: Vec<Write> = pods.map(release_write).collect();
    for answer in cluster.apply(writes) {
        match answer {
            Err(error) if !error.is_not_found() => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

/// The patch that removes the tracking finalizer from `pod`, as of the
/// version it was read at.
fn release_write(pod: &Pod) -> Write {
    let finalizers: Vec<&String> = pod.metadata.finalizers.iter().filter(|f| *f != TRACKING_FINALIZER).collect();
    Write::Patch {
        kind: PODS,
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        subresource: String::new(),
        patch: json!({"metadata": {"finalizers": finalizers, "resourceVersion": pod.metadata.resource_version}}),
    }
}

/// Releases the tracked pods labelled with the Job's name whose controlling
/// Job of that name is not the one with `live_uid` (empty: none is live).
fn release_orphans<C: Cluster>(cluster: &C, namespace: &str, name: &str, live_uid: &str) -> Result<(), ApiError> {
    let selector =
        Selector { namespace: namespace.to_owned(), labels: format!("{JOB_NAME_LABEL}={name}"), ..Default::default() };
    let pods: Vec<Pod> = cluster.list_as(&PODS, &selector)?;
    release(cluster, pods.iter().filter(|p| p.is_tracked() && is_orphan(&p.metadata, name, live_uid)))
}

/// Whether a pod's controlling Job `name` is not the live one.
fn is_orphan(metadata: &ObjectMeta, name: &str, live_uid: &str) -> bool {
    metadata.controller().is_some_and(|c| c.kind == "Job" && c.name == name && c.uid != live_uid)
}

/// What to do with a Job that finished: delete it once its time to live
/// is over, or look again then.
fn after_finish<C: Cluster>(cluster: &C, job: &Job, status: &JobStatus) -> Result<Outcome, ApiError> {
    match expiry(job, status, cluster.now()) {
        None => Ok(Outcome::Done),
        Some(wait) if !wait.is_zero() => Ok(Outcome::RequeueAfter(wait)),
        Some(_) => match cluster.write(Write::delete(JOBS, &job.metadata)) {
            Err(error) if !error.is_not_found() => Err(error),
            _ => Ok(Outcome::Done),
        },
    }
}

/// How long until a finished Job expires (zero: it has), if it has a time to live.
pub fn expiry(job: &Job, status: &JobStatus, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let ttl = job.spec.ttl_seconds_after_finished?;
    let finished = status.finished_at()?;
    let expires = finished.checked_add_signed(chrono::Duration::seconds(ttl))?;
    Some((expires - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
