//! What a reconcile of one unfinished Job does, decided from the Job, its
//! pods and the time: pods to make and delete, the status to write, the
//! finalizers to remove after it, the events, and when to look again.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engenho_controller::EventType;
use engenho_controller::meta::{Condition, format_time, parse_time, set_condition};
use engenho_controller::pods::Pod;
use serde_json::Value;

use crate::model::{Job, JobPod, JobStatus};
use crate::tracking::{Tracking, count, track};
use crate::{backoff, indexes, template};

/// At most this many pods are made or deleted in one reconcile.
pub const MAX_POD_CHANGES: usize = 500;

/// An event to record about the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub event_type: EventType,
    /// The reason, e.g. `Completed`.
    pub reason: String,
    /// The message.
    pub message: String,
}

/// A pod to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// Whether it was ready.
    pub ready: bool,
}

/// What one reconcile does.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The status to write (when it differs from the Job's).
    pub status: JobStatus,
    /// Pods to make, in order.
    pub creates: Vec<Value>,
    /// Active pods to delete.
    pub deletes: Vec<Doomed>,
    /// Pods whose tracking finalizer goes once the status is written.
    pub releases: Vec<String>,
    /// Events to record once the status is written.
    pub events: Vec<Event>,
    /// When to reconcile again, if nothing else queues the Job.
    pub requeue: Option<Duration>,
}

/// How the Job ends, once its pods are gone and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Finish {
    /// `SuccessCriteriaMet`, then `Complete`.
    Success { reason: String, message: String },
    /// `FailureTarget`, then `Failed`.
    Failure { reason: String, message: String },
}

/// The plan for `job` (unfinished, not being deleted) with its `pods` at `now`.
pub fn plan(job: &Job, pods: &[Pod], now: DateTime<Utc>) -> Plan {
    let spec = &job.spec;
    let tracking = track(job, pods);
    let mut plan = Plan { status: job.status.clone(), releases: tracking.releases.clone(), ..Plan::default() };
    if plan.status.start_time.is_none() && !spec.is_suspended() {
        plan.status.start_time = Some(format_time(now));
    }
    let active: Vec<&Pod> = pods.iter().filter(|p| p.is_active()).collect();
    let mut finish = interim_finish(&job.status);
    if finish.is_none() {
        finish = failure(job, &active, &tracking, &plan.status, now);
    }
    let mut created = 0;
    if finish.is_some() {
        plan.deletes = active.iter().map(|p| doomed(p)).collect();
    } else {
        manage(job, pods, &active, &tracking, now, &mut plan);
        created = plan.creates.len();
        let active_after = active.len() + created - plan.deletes.len();
        let succeeded = tracking.succeeded_total();
        let complete = match spec.completions {
            None => succeeded > 0 && active_after == 0,
            Some(completions) => succeeded >= completions && active_after == 0,
        };
        if complete {
            finish = Some(Finish::Success {
                reason: "CompletionsReached".into(),
                message: "Reached expected number of succeeded pods".into(),
            });
        } else {
            suspension(job, now, &mut plan);
        }
    }
    if spec.active_deadline_seconds.is_some() && finish.is_none() && !spec.is_suspended() {
        let deadline = deadline(job, &plan.status);
        plan.requeue = earliest(plan.requeue, deadline.map(|d| until(d, now)));
    }
    let terminating = pods.iter().filter(|p| p.is_terminating()).count() + plan.deletes.len();
    write_counts(&mut plan, &tracking, &active, created, terminating);
    if let Some(finish) = finish {
        conclude(job, finish, terminating, now, &mut plan);
    }
    plan
}

/// The interim condition the Job already has, as the way it ends.
fn interim_finish(status: &JobStatus) -> Option<Finish> {
    if let Some(c) = status.condition("FailureTarget") {
        return Some(Finish::Failure { reason: c.reason.clone(), message: c.message.clone() });
    }
    let c = status.condition("SuccessCriteriaMet")?;
    Some(Finish::Success { reason: c.reason.clone(), message: c.message.clone() })
}

/// Whether the Job has failed: too many failures, or past its deadline.
fn failure(job: &Job, active: &[&Pod], tracking: &Tracking, status: &JobStatus, now: DateTime<Utc>) -> Option<Finish> {
    let limit = job.spec.backoff_limit();
    let failed = tracking.failed_total();
    let new_failure = failed > job.status.failed;
    let restarts_exceeded = job.spec.restart_policy() == "OnFailure" && {
        let restarts = active.iter().map(|p| p.total_restarts()).fold(0, i32::saturating_add);
        if limit == 0 { restarts > 0 } else { restarts >= limit }
    };
    if (new_failure && failed > limit) || restarts_exceeded {
        return Some(Finish::Failure {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
        });
    }
    // A Job being resumed restarts its clock instead.
    let resuming = !job.spec.is_suspended() && status.has("Suspended");
    let past = !job.spec.is_suspended() && !resuming && deadline(job, status).is_some_and(|d| now >= d);
    past.then(|| Finish::Failure {
        reason: "DeadlineExceeded".into(),
        message: "Job was active longer than specified deadline".into(),
    })
}

/// When the Job's active deadline passes, if it has one and has started.
fn deadline(job: &Job, status: &JobStatus) -> Option<DateTime<Utc>> {
    let seconds = job.spec.active_deadline_seconds?;
    let start = status.start_time.as_deref().and_then(parse_time)?;
    start.checked_add_signed(chrono::Duration::seconds(seconds))
}

/// The time from `now` until `then` (zero when it has passed).
fn until(then: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (then - now).to_std().unwrap_or(Duration::ZERO)
}

/// The earlier of two requeues.
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `pod` as one to delete.
fn doomed(pod: &Pod) -> Doomed {
    Doomed { name: pod.metadata.name.clone(), uid: pod.metadata.uid.clone(), ready: pod.is_ready() }
}

/// Makes or deletes pods so the right number run (none while suspended).
fn manage(job: &Job, pods: &[Pod], active: &[&Pod], tracking: &Tracking, now: DateTime<Utc>, plan: &mut Plan) {
    let spec = &job.spec;
    if spec.is_suspended() {
        plan.deletes = active.iter().map(|p| doomed(p)).collect();
        return;
    }
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    let succeeded = tracking.succeeded_total();
    let want = match spec.completions {
        None if succeeded > 0 => active.len(),
        None => parallelism,
        Some(completions) => usize::try_from(completions.saturating_sub(succeeded)).unwrap_or(0).min(parallelism),
    };
    let mut keep: Vec<&Pod> = active.to_vec();
    if spec.is_indexed() {
        let (kept, extra) = valid_indexed(active, spec.completions.unwrap_or(0), &tracking.completed_indexes);
        plan.deletes.extend(extra.into_iter().map(doomed));
        keep = kept;
    }
    if keep.len() > want {
        // Not-ready pods go first, then the newest.
        keep.sort_by_key(|p| (p.is_ready(), std::cmp::Reverse(p.metadata.creation_timestamp.clone())));
        let excess = keep.len() - want;
        plan.deletes.extend(keep.drain(..excess).map(doomed));
        return;
    }
    let replacing = if spec.replaces_only_failed() { pods.iter().filter(|p| p.is_terminating()).count() } else { 0 };
    let missing = want.saturating_sub(keep.len() + replacing).min(MAX_POD_CHANGES);
    if missing == 0 {
        return;
    }
    let wait = backoff::remaining(pods, now);
    if !wait.is_zero() {
        plan.requeue = earliest(plan.requeue, Some(wait));
        return;
    }
    if spec.is_indexed() {
        let taken: BTreeSet<i32> = keep.iter().filter_map(|p| p.completion_index()).collect();
        let completions = spec.completions.unwrap_or(0);
        let free = (0..completions).filter(|i| !taken.contains(i) && !tracking.completed_indexes.contains(i));
        plan.creates = free.take(missing).map(|i| template::new_pod(job, Some(i))).collect();
    } else {
        plan.creates = (0..missing).map(|_| template::new_pod(job, None)).collect();
    }
}

/// An Indexed Job's active pods split into those to keep and those to
/// delete: no index, one out of range, one already succeeded, a duplicate.
fn valid_indexed<'a>(active: &[&'a Pod], completions: i32, done: &BTreeSet<i32>) -> (Vec<&'a Pod>, Vec<&'a Pod>) {
    let mut seen = BTreeSet::new();
    let mut sorted = active.to_vec();
    sorted.sort_by_key(|p| (!p.is_ready(), p.metadata.creation_timestamp.clone()));
    sorted
        .into_iter()
        .partition(|p| p.completion_index().is_some_and(|i| i < completions && !done.contains(&i) && seen.insert(i)))
}

/// Sets `Suspended` as the Job's suspension says, with its event.
fn suspension(job: &Job, now: DateTime<Utc>, plan: &mut Plan) {
    let suspended = plan.status.conditions.iter().any(|c| c.type_ == "Suspended" && c.status == "True");
    let (status, reason, message, event) = match (job.spec.is_suspended(), suspended) {
        (true, false) => ("True", "JobSuspended", "Job suspended", "Suspended"),
        (false, true) => ("False", "JobResumed", "Job resumed", "Resumed"),
        _ => return,
    };
    set_condition(&mut plan.status.conditions, condition("Suspended", status, reason, message, now));
    plan.events.push(Event { event_type: EventType::Normal, reason: event.into(), message: message.into() });
    if !job.spec.is_suspended() {
        // The deadline counts the time the Job is continuously active.
        plan.status.start_time = Some(format_time(now));
    }
}

/// A Job condition at `now`.
fn condition(type_: &str, status: &str, reason: &str, message: &str, now: DateTime<Utc>) -> Condition {
    let now = Some(format_time(now));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now.clone(),
        last_probe_time: now,
        ..Condition::default()
    }
}

/// The counters of the status to write.
fn write_counts(plan: &mut Plan, tracking: &Tracking, active: &[&Pod], created: usize, terminating: usize) {
    let status = &mut plan.status;
    let deleted: BTreeSet<&str> = plan.deletes.iter().map(|d| d.uid.as_str()).collect();
    let remaining = active.iter().filter(|p| !deleted.contains(p.metadata.uid.as_str()));
    status.active = count(active.len() + created - deleted.len().min(active.len()));
    status.ready = Some(count(remaining.filter(|p| p.is_ready()).count()));
    status.terminating = Some(count(terminating));
    status.succeeded = tracking.succeeded;
    status.failed = tracking.failed;
    status.uncounted_terminated_pods = tracking.uncounted.clone();
    if !tracking.completed_indexes.is_empty() || !status.completed_indexes.is_empty() {
        status.completed_indexes = indexes::format(&tracking.completed_indexes);
    }
}

/// Records how the Job ends: the interim condition at once, the final one
/// (with its event) once every pod is counted and none is terminating.
fn conclude(job: &Job, finish: Finish, terminating: usize, now: DateTime<Utc>, plan: &mut Plan) {
    let (interim, last, reason, message) = match &finish {
        Finish::Success { reason, message } => ("SuccessCriteriaMet", "Complete", reason, message),
        Finish::Failure { reason, message } => ("FailureTarget", "Failed", reason, message),
    };
    if !plan.status.has(interim) {
        set_condition(&mut plan.status.conditions, condition(interim, "True", reason, message, now));
    }
    if !plan.status.uncounted_terminated_pods.is_empty() || terminating > 0 {
        return;
    }
    set_condition(&mut plan.status.conditions, condition(last, "True", reason, message, now));
    plan.requeue = None;
    if matches!(finish, Finish::Success { .. }) {
        plan.status.completion_time = Some(format_time(now));
        if job.spec.completions.is_some_and(|c| plan.status.succeeded > c) {
            plan.events.push(Event {
                event_type: EventType::Warning,
                reason: "TooManySucceededPods".into(),
                message: "Too many succeeded pods running after completion count reached".into(),
            });
        }
        plan.events.push(Event {
            event_type: EventType::Normal,
            reason: "Completed".into(),
            message: "Job completed".into(),
        });
    } else {
        plan.events.push(Event { event_type: EventType::Warning, reason: reason.clone(), message: message.clone() });
    }
}
