//! Plans for CronJobs in the situations Kubernetes' cronjob controller meets.

use chrono::{DateTime, Utc};
use engenho_controller::EventType;
use serde_json::json;

use super::*;
use crate::plan::{job_name, plan};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("a time").with_timezone(&Utc)
}

fn cron(spec: Value, status: Value) -> CronJob {
    serde_json::from_value(json!({
        "metadata": {"name": "hello", "namespace": "ns", "uid": "cron-uid", "creationTimestamp": "2026-12-05T04:00:00Z"},
        "spec": spec,
        "status": status,
    }))
    .expect("a cronjob")
}

fn hourly(extra: Value) -> Value {
    let mut spec = json!({
        "schedule": "0 * * * *",
        "jobTemplate": {"metadata": {"labels": {"app": "hello"}}, "spec": {"template": {"spec": {"containers": []}}}},
    });
    if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, extra) {
        spec.extend(extra);
    }
    spec
}

fn job(name: &str, condition: Option<&str>, start: &str) -> Job {
    let conditions: Vec<Value> = condition.map(|c| json!({"type": c, "status": "True"})).into_iter().collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "status": {"conditions": conditions, "startTime": start, "completionTime": start},
    }))
    .expect("a job")
}

fn reasons(plan: &plan::Plan) -> Vec<&str> {
    plan.events.iter().map(|e| e.reason.as_str()).collect()
}

#[test]
fn nothing_runs_before_the_first_scheduled_time_and_the_controller_waits_for_it() {
    let plan = plan(&cron(hourly(json!({})), json!({})), &[], at("2026-12-05T04:30:00Z"));
    assert!(plan.run.is_none());
    assert_eq!(plan.requeue, Some(std::time::Duration::from_millis(30 * 60 * 1000 + 100)));
}

#[test]
fn a_due_time_makes_its_job_from_the_template() {
    // Goal: the Job is named by the scheduled minute, annotated with the
    // time, labelled from the template and controlled by the CronJob.
    let plan = plan(&cron(hourly(json!({})), json!({})), &[], at("2026-12-05T05:00:20Z"));
    let run = plan.run.expect("a run");
    assert_eq!(run.scheduled, at("2026-12-05T05:00:00Z"));
    let job = &run.job;
    assert_eq!(job["metadata"]["name"], format!("hello-{}", at("2026-12-05T05:00:00Z").timestamp() / 60));
    assert_eq!(job["metadata"]["annotations"][model::SCHEDULED_TIMESTAMP], "2026-12-05T05:00:00Z");
    assert_eq!(job["metadata"]["labels"]["app"], "hello");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "cron-uid");
    assert_eq!(job["spec"]["template"]["spec"]["containers"], json!([]));
}

#[test]
fn a_time_already_run_is_not_run_again() {
    let status = json!({"lastScheduleTime": "2026-12-05T05:00:00Z"});
    let plan = plan(&cron(hourly(json!({})), status), &[], at("2026-12-05T05:10:00Z"));
    assert!(plan.run.is_none());
    let name = job_name("hello", at("2026-12-05T05:00:00Z"));
    let running = job(&name, None, "2026-12-05T05:00:01Z");
    let status = json!({"active": [running.reference()]});
    let again = plan::plan(&cron(hourly(json!({})), status), &[running], at("2026-12-05T05:10:00Z"));
    assert!(again.run.is_none());
}

#[test]
fn a_start_past_its_deadline_is_missed() {
    let plan =
        plan(&cron(hourly(json!({"startingDeadlineSeconds": 3600})), json!({})), &[], at("2026-12-05T05:30:00Z"));
    assert!(plan.run.is_some());
    let late =
        plan::plan(&cron(hourly(json!({"startingDeadlineSeconds": 60})), json!({})), &[], at("2026-12-05T05:30:00Z"));
    assert!(late.run.is_none());
    assert_eq!(reasons(&late), Vec::<&str>::new());
    let status = json!({"lastScheduleTime": "2026-12-05T04:00:00Z"});
    let spec = hourly(json!({"schedule": "*/30 * * * *", "startingDeadlineSeconds": 1000}));
    let missed = plan::plan(&cron(spec, status), &[], at("2026-12-05T05:16:39Z"));
    assert!(missed.run.is_some(), "05:00 is within 1000 s");
}

#[test]
fn too_many_missed_times_warn() {
    let plan = plan(&cron(hourly(json!({})), json!({})), &[], at("2027-01-05T05:00:00Z"));
    assert_eq!(reasons(&plan), vec!["TooManyMissedTimes"]);
    assert_eq!(plan.run.map(|r| r.scheduled), Some(at("2027-01-05T05:00:00Z")));
}

#[test]
fn forbid_skips_while_a_job_runs_and_replace_deletes_it() {
    let running = job("hello-1", None, "2026-12-05T04:00:00Z");
    let status = json!({"active": [running.reference()]});
    let now = at("2026-12-05T05:00:10Z");
    let forbid = plan(
        &cron(hourly(json!({"concurrencyPolicy": "Forbid"})), status.clone()),
        std::slice::from_ref(&running),
        now,
    );
    assert!(forbid.run.is_none());
    assert_eq!(reasons(&forbid), vec!["JobAlreadyActive"]);
    let replace = plan(
        &cron(hourly(json!({"concurrencyPolicy": "Replace"})), status.clone()),
        std::slice::from_ref(&running),
        now,
    );
    assert!(replace.run.is_some());
    assert_eq!(replace.replaced.len(), 1);
    assert!(replace.status.active.is_empty());
    let allow = plan(&cron(hourly(json!({})), status), &[running], now);
    assert!(allow.run.is_some());
    assert!(allow.replaced.is_empty());
    assert_eq!(allow.status.active.len(), 1);
}

#[test]
fn suspended_and_foreign_time_zone_cronjobs_do_not_run() {
    let now = at("2026-12-05T05:00:10Z");
    let suspended = plan(&cron(hourly(json!({"suspend": true})), json!({})), &[], now);
    assert!(suspended.run.is_none());
    assert_eq!(suspended.requeue, None);
    let zoned = plan(&cron(hourly(json!({"timeZone": "Europe/Lisbon"})), json!({})), &[], now);
    assert!(zoned.run.is_none());
    assert_eq!(reasons(&zoned), vec!["UnknownTimeZone"]);
    assert_eq!(zoned.events[0].event_type, EventType::Warning);
    assert!(plan(&cron(hourly(json!({"timeZone": "UTC"})), json!({})), &[], now).run.is_some());
    let broken = plan(&cron(hourly(json!({"schedule": "every hour"})), json!({})), &[], now);
    assert_eq!(reasons(&broken), vec!["UnparseableSchedule"]);
    assert_eq!(
        broken.events[0].message,
        "unparseable schedule: \"every hour\" : expected exactly 5 fields, found 2: [every hour]"
    );
}

#[test]
fn finished_jobs_leave_the_active_list_and_set_the_last_success() {
    let done = job("hello-1", Some("Complete"), "2026-12-05T04:10:00Z");
    let gone = JobReference { name: "hello-0".into(), uid: "uid-hello-0".into(), ..Default::default() };
    let status = json!({"active": [done.reference(), gone]});
    let plan = plan(&cron(hourly(json!({})), status), &[done], at("2026-12-05T04:20:00Z"));
    assert!(plan.status.active.is_empty());
    assert_eq!(plan.status.last_successful_time.as_deref(), Some("2026-12-05T04:10:00Z"));
    assert_eq!(reasons(&plan), vec!["SawCompletedJob", "MissingJob"]);
    assert_eq!(plan.events[0].message, "Saw completed job: hello-1, condition: Complete");
}

#[test]
fn a_running_job_missing_from_the_status_is_taken_in() {
    let running = job("hello-7", None, "2026-12-05T04:10:00Z");
    let plan = plan(&cron(hourly(json!({})), json!({})), &[running], at("2026-12-05T04:20:00Z"));
    assert_eq!(plan.status.active.len(), 1);
    assert_eq!(plan.status.active[0].kind, "Job");
}

#[test]
fn the_oldest_finished_jobs_beyond_the_limits_are_deleted() {
    let jobs = [
        job("s3", Some("Complete"), "2026-12-05T03:00:00Z"),
        job("s1", Some("Complete"), "2026-12-05T01:00:00Z"),
        job("s2", Some("Complete"), "2026-12-05T02:00:00Z"),
        job("f1", Some("Failed"), "2026-12-05T01:30:00Z"),
        job("f2", Some("Failed"), "2026-12-05T02:30:00Z"),
        job("r", None, "2026-12-05T00:00:00Z"),
    ];
    let spec = hourly(json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}));
    let plan = plan(&cron(spec, json!({})), &jobs, at("2026-12-05T03:30:00Z"));
    let names: Vec<&str> = plan.expired.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["s1", "s2", "f1"]);
    let unlimited = plan::plan(&cron(hourly(json!({})), json!({})), &jobs, at("2026-12-05T03:30:00Z"));
    assert!(unlimited.expired.is_empty());
}

#[test]
fn configuration_is_empty() {
    let (_, interests) = CronJobs::configure("{}").expect("configures");
    assert_eq!(interests.len(), 2);
    assert!(CronJobs::configure("[]").is_err());
}
