//! What a reconcile of one CronJob does, decided from the CronJob, its
//! Jobs and the time: the Jobs to delete and make, the status to write,
//! the events, and when to look again.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron_schedule::Schedule;
use engenho_controller::EventType;
use engenho_controller::kinds::CRON_JOBS;
use engenho_controller::meta::{OwnerReference, format_time, parse_time};
use serde_json::{Map, Value, json};

use crate::model::{CronJob, CronJobStatus, Job, JobReference, SCHEDULED_TIMESTAMP};
use crate::times::{self, Missed};

/// How long after a scheduled time the CronJob is looked at again.
pub const NEXT_SCHEDULE_MARGIN: Duration = Duration::from_millis(100);

/// An event to record about the CronJob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub event_type: EventType,
    /// The reason, e.g. `SawCompletedJob`.
    pub reason: String,
    /// The message.
    pub message: String,
}

impl Event {
    fn normal(reason: &str, message: String) -> Self {
        Self { event_type: EventType::Normal, reason: reason.into(), message }
    }

    fn warning(reason: &str, message: String) -> Self {
        Self { event_type: EventType::Warning, reason: reason.into(), message }
    }
}

/// A Job to make, for its scheduled time.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The time it is scheduled for.
    pub scheduled: DateTime<Utc>,
    /// The Job.
    pub job: Value,
}

/// What one reconcile does.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The status to write (the Job made, if any, is added once made).
    pub status: CronJobStatus,
    /// Running Jobs to delete before making the next one (`Replace`).
    pub replaced: Vec<JobReference>,
    /// The Job to make.
    pub run: Option<Run>,
    /// Finished Jobs beyond the history limits, to delete.
    pub expired: Vec<JobReference>,
    /// Events to record.
    pub events: Vec<Event>,
    /// When to reconcile again, if nothing else queues the CronJob.
    pub requeue: Option<Duration>,
}

/// The plan for `cron` with the Jobs it controls at `now`.
pub fn plan(cron: &CronJob, jobs: &[Job], now: DateTime<Utc>) -> Plan {
    let mut plan = Plan { status: cron.status.clone(), ..Plan::default() };
    track_jobs(cron, jobs, &mut plan);
    plan.expired = expired(cron, jobs);
    if !cron.metadata.is_deleting() {
        schedule(cron, now, &mut plan);
    }
    plan
}

/// Brings `status.active` and `lastSuccessfulTime` up to date with the Jobs.
fn track_jobs(cron: &CronJob, jobs: &[Job], plan: &mut Plan) {
    for reference in &cron.status.active {
        match jobs.iter().find(|j| j.metadata.uid == reference.uid) {
            None => {
                plan.events.push(Event::normal("MissingJob", format!("Active job went missing: {}", reference.name)))
            }
            Some(job) => {
                if let Some(condition) = job.finished() {
                    let message = format!("Saw completed job: {}, condition: {condition}", job.metadata.name);
                    plan.events.push(Event::normal("SawCompletedJob", message));
                }
            }
        }
    }
    let running: Vec<&Job> = jobs.iter().filter(|j| j.finished().is_none()).collect();
    let uids: BTreeSet<&str> = running.iter().map(|j| j.metadata.uid.as_str()).collect();
    let mut active: Vec<JobReference> =
        cron.status.active.iter().filter(|r| uids.contains(r.uid.as_str())).cloned().collect();
    let mut adopted: Vec<&&Job> = running.iter().filter(|j| !active.iter().any(|r| r.uid == j.metadata.uid)).collect();
    adopted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    active.extend(adopted.into_iter().map(|j| j.reference()));
    plan.status.active = active;
    let last = cron.status.last_successful_time.as_deref().and_then(parse_time);
    let latest = jobs.iter().filter_map(Job::completed_at).max();
    if let Some(latest) = latest.filter(|t| last.is_none_or(|last| *t > last)) {
        plan.status.last_successful_time = Some(format_time(latest));
    }
}

/// The finished Jobs beyond the history limits, oldest first.
fn expired(cron: &CronJob, jobs: &[Job]) -> Vec<JobReference> {
    let limits =
        [("Complete", cron.spec.successful_jobs_history_limit), ("Failed", cron.spec.failed_jobs_history_limit)];
    let mut doomed = Vec::new();
    for (condition, limit) in limits {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Job> = jobs.iter().filter(|j| j.finished() == Some(condition)).collect();
        let keep = usize::try_from(limit).unwrap_or(0);
        if finished.len() <= keep {
            continue;
        }
        // Oldest start first; Jobs that never started go last; ties by name.
        finished.sort_by_key(|j| {
            let start = j.status.start_time.as_deref().and_then(parse_time);
            (start.is_none(), start, j.metadata.name.clone())
        });
        let excess = finished.len() - keep;
        doomed.extend(finished.into_iter().take(excess).map(Job::reference));
    }
    doomed
}

/// Decides whether a Job is due, and when to look again.
fn schedule(cron: &CronJob, now: DateTime<Utc>, plan: &mut Plan) {
    let spec = &cron.spec;
    if let Some(zone) = spec.time_zone.as_deref().filter(|z| !matches!(*z, "UTC" | "Etc/UTC")) {
        let message = format!("invalid timeZone: {zone:?}: only UTC is supported");
        plan.events.push(Event::warning("UnknownTimeZone", message));
        return;
    }
    if spec.suspend == Some(true) {
        return;
    }
    let schedule = match Schedule::parse(&spec.schedule) {
        Ok(schedule) => schedule,
        Err(error) => {
            let message = format!("unparseable schedule: {:?} : {error}", spec.schedule);
            plan.events.push(Event::warning("UnparseableSchedule", message));
            return;
        }
    };
    let last = cron.status.last_schedule_time.as_deref().and_then(parse_time);
    let mut earliest = last.or_else(|| cron.metadata.created()).unwrap_or(now);
    if let Some(deadline) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - chrono::Duration::seconds(deadline));
    }
    let (due, missed) = match times::most_recent(&schedule, earliest, now) {
        Ok(found) => found,
        Err(error) => {
            let message = format!("invalid schedule: {} : {error}", spec.schedule);
            plan.events.push(Event::warning("InvalidSchedule", message));
            return;
        }
    };
    if missed == Missed::Many {
        let message = "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew";
        plan.events.push(Event::warning("TooManyMissedTimes", message.into()));
    }
    plan.requeue = schedule.next_after(now).map(|next| until(next, now) + NEXT_SCHEDULE_MARGIN);
    let Some(due) = due else { return };
    start(cron, due, now, plan);
}

/// Starts the run due at `due`, unless it is too late, already made, or
/// forbidden by a running one.
fn start(cron: &CronJob, due: DateTime<Utc>, now: DateTime<Utc>, plan: &mut Plan) {
    let spec = &cron.spec;
    let deadline = spec.starting_deadline_seconds.map(|s| due + chrono::Duration::seconds(s));
    if deadline.is_some_and(|d| d < now) {
        let message = format!("Missed scheduled time to start a job: {}", due.format("%a, %d %b %Y %H:%M:%S %z"));
        plan.events.push(Event::warning("MissSchedule", message));
        return;
    }
    let name = job_name(&cron.metadata.name, due);
    let last = cron.status.last_schedule_time.as_deref().and_then(parse_time);
    if plan.status.active.iter().any(|r| r.name == name) || last == Some(due) {
        return;
    }
    match spec.concurrency_policy() {
        "Forbid" if !plan.status.active.is_empty() => {
            let message = "Not starting job because prior execution is running and concurrency policy is Forbid";
            plan.events.push(Event::normal("JobAlreadyActive", message.into()));
            return;
        }
        "Replace" => plan.replaced = std::mem::take(&mut plan.status.active),
        _ => {}
    }
    plan.run = Some(Run { scheduled: due, job: job_for(cron, due) });
}

/// The time from `now` until `then` (zero when it has passed).
fn until(then: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (then - now).to_std().unwrap_or(Duration::ZERO)
}

/// The name of the Job scheduled for `time`: the CronJob's name and the
/// time in minutes since the epoch.
pub fn job_name(cron: &str, time: DateTime<Utc>) -> String {
    format!("{cron}-{}", time.timestamp().div_euclid(60))
}

/// The Job the CronJob makes for `scheduled`, from its template.
pub fn job_for(cron: &CronJob, scheduled: DateTime<Utc>) -> Value {
    let template = &cron.spec.job_template;
    let mut metadata = Map::new();
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(map)) = template["metadata"].get(field) {
            metadata.insert(field.to_owned(), Value::Object(map.clone()));
        }
    }
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    annotations[SCHEDULED_TIMESTAMP] = json!(format_time(scheduled));
    metadata.insert("name".into(), json!(job_name(&cron.metadata.name, scheduled)));
    metadata.insert("namespace".into(), json!(cron.metadata.namespace));
    let owner = OwnerReference::controlled_by(&CRON_JOBS, "CronJob", &cron.metadata);
    metadata.insert("ownerReferences".into(), json!([owner]));
    let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec})
}
