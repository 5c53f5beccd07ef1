//! Controller: CronJobs make Jobs on their schedule, as kube-controller-manager's
//! cronjob controller (v2, Kubernetes 1.32) makes them.
//!
//! Each reconcile reads the CronJob and the Jobs it controls, plans (see
//! [`plan`]): the running Jobs (`status.active`, which also takes in
//! running Jobs the CronJob controls but had not recorded),
//! `lastSuccessfulTime`, the most recent scheduled time not yet run
//! (since `lastScheduleTime`, or creation), whether to make its Job
//! (`<cronjob>-<minutes since the epoch>`) given `startingDeadlineSeconds`,
//! `concurrencyPolicy` and `suspend`, and the finished Jobs beyond the
//! history limits. It deletes the Jobs a `Replace` run replaces, makes the
//! Job, writes the status, deletes the expired Jobs, and asks to be
//! reconciled again just after the next scheduled time. Schedules are read
//! in UTC; another `spec.timeZone` draws a warning and no runs.
//!
//! Configuration: none (empty, or `{}`).

pub mod model;
pub mod plan;
pub mod times;

use engenho_controller::kinds::{CRON_JOBS, JOBS};
use engenho_controller::meta::format_time;
use engenho_controller::{
    ApiError, Cluster, Controller, EventType, Interest, Key, ObjectRef, Outcome, Propagation, Selector, Trigger, Write,
    encode,
};
use serde_json::Value;

use crate::model::{CronJob, Job, JobReference};
use crate::plan::{Plan, Run};

/// Runs CronJobs.
pub struct CronJobs;

impl Controller for CronJobs {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        match config.trim() {
            "" | "{}" => {}
            other => return Err(format!("the cronjob controller takes no configuration, got {other}")),
        }
        let interests =
            vec![Interest::new(CRON_JOBS, [Trigger::Itself]), Interest::new(JOBS, [Trigger::Owners(CRON_JOBS)])];
        Ok((Self, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        sync(cluster, &key.namespace, &key.name).into()
    }
}

engenho_controller::export_controller!(CronJobs);

/// Reconciles the CronJob `name` in `namespace`.
fn sync<C: Cluster>(cluster: &C, namespace: &str, name: &str) -> Result<Outcome, ApiError> {
    let Some(raw) = cluster.get(&CRON_JOBS, namespace, name)? else { return Ok(Outcome::Done) };
    let mut object: Value = serde_json::from_str(&raw).map_err(|e| malformed(name, &e))?;
    let cron: CronJob = serde_json::from_value(object.clone()).map_err(|e| malformed(name, &e))?;
    let uid = &cron.metadata.uid;
    let jobs: Vec<Job> = cluster.list_as::<Job>(&JOBS, &Selector::owned_by(namespace, uid))?;
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| j.metadata.is_controlled_by(uid)).collect();
    let mut plan = plan::plan(&cron, &jobs, cluster.now());
    let regarding = ObjectRef::to(&CRON_JOBS, &cron.metadata);
    if let Err(failure) = delete_jobs(cluster, &regarding, &plan.replaced) {
        return Ok(Outcome::Failed(failure));
    }
    let mut failure = None;
    if let Some(run) = plan.run.take() {
        failure = make(cluster, &cron, run, &mut plan).err();
    }
    if plan.status != cron.status {
        object["status"] = encode(&plan.status)?;
        cluster.write(Write::UpdateStatus { kind: CRON_JOBS, namespace: namespace.to_owned(), object })?;
    }
    for event in &plan.events {
        cluster.emit(&regarding, event.event_type, &event.reason, &event.message);
    }
    let deleted = delete_jobs(cluster, &regarding, &plan.expired);
    match failure.or(deleted.err()) {
        Some(failure) => Ok(Outcome::Failed(failure)),
        None => Ok(plan.requeue.map_or(Outcome::Done, Outcome::RequeueAfter)),
    }
}

/// The error for a CronJob that does not read as one.
fn malformed(name: &str, error: &serde_json::Error) -> ApiError {
    ApiError::internal(format!("cronjob {name} is malformed: {error}"))
}

/// Makes the Job of `run` and records it in the status, with its event.
///
/// # Errors
/// Why it could not be made, in words (after a `FailedCreate` event).
fn make<C: Cluster>(cluster: &C, cron: &CronJob, run: Run, plan: &mut Plan) -> Result<(), String> {
    let name = run.job["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let write = Write::Create { kind: JOBS, namespace: cron.metadata.namespace.clone(), object: run.job };
    let made = match cluster.write(write) {
        Ok(stored) => {
            let message = format!("Created job {name}");
            plan.events.push(plan::Event { event_type: EventType::Normal, reason: "SuccessfulCreate".into(), message });
            serde_json::from_str::<Job>(&stored).ok()
        }
        Err(error) if error.is_conflict() && error.reason == "AlreadyExists" => {
            // Made before, by this controller if it controls it.
            let found = cluster.get_as::<Job>(&JOBS, &cron.metadata.namespace, &name).map_err(|e| e.to_string())?;
            found.filter(|j| j.metadata.is_controlled_by(&cron.metadata.uid))
        }
        Err(error) => {
            let message = format!("Error creating job: {}", error.message);
            plan.events.push(plan::Event { event_type: EventType::Warning, reason: "FailedCreate".into(), message });
            return Err(format!("creating job {name}: {error}"));
        }
    };
    let Some(job) = made else { return Ok(()) };
    if !plan.status.active.iter().any(|r| r.uid == job.metadata.uid) {
        plan.status.active.push(job.reference());
    }
    plan.status.last_schedule_time = Some(format_time(run.scheduled));
    Ok(())
}

/// Deletes `jobs` (their pods after them), with an event for each.
///
/// # Errors
/// The deletions that failed for another reason than the Job being gone, in words.
fn delete_jobs<C: Cluster>(cluster: &C, regarding: &ObjectRef, jobs: &[JobReference]) -> Result<(), String> {
    let writes = jobs
        .iter()
        .map(|job| Write::Delete {
            kind: JOBS,
            namespace: regarding.namespace.clone(),
            name: job.name.clone(),
            uid: job.uid.clone(),
            propagation: Propagation::Background,
        })
        .collect();
    let mut failures = Vec::new();
    for (job, answer) in jobs.iter().zip(cluster.apply(writes)) {
        match answer {
            Ok(_) => {
                cluster.emit(regarding, EventType::Normal, "SuccessfulDelete", &format!("Deleted job {}", job.name))
            }
            Err(error) if error.is_not_found() => {}
            Err(error) => {
                cluster.emit(regarding, EventType::Warning, "FailedDelete", &format!("Deleted job: {}", error.message));
                failures.push(format!("deleting job {}: {error}", job.name));
            }
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
}

#[cfg(test)]
mod tests;
