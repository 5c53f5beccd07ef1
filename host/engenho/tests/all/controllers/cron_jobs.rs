//! Goal: the built-in cronjob controller makes Jobs on schedule as
//! Kubernetes does: with `*/1 * * * *` a Job named
//! `<cronjob>-<minutes since the epoch>` within about a minute,
//! `lastScheduleTime` and `status.active` recorded; at the next minute a
//! CronJob allowing concurrency makes a second Job while one with
//! `concurrencyPolicy: Forbid`, its Job still running, makes none and
//! records a `JobAlreadyActive` event. A CronJob on `@every 5s` makes its
//! first Job within seconds.
//! Method: a real `engenho up` node and the kubelet stand-in keeping every
//! pod Running and Ready (so the Jobs never finish); each step waits (with
//! a deadline) on what kubectl shows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::kubelet::{Kubelet, Rule};
use crate::support::{EngenhoNode, Kubectl, wait_for};

/// A schedule of every minute takes up to a minute to come, and the
/// controller a moment more.
const MINUTE_AND_MORE: Duration = Duration::from_secs(75);

fn cron_job(name: &str, policy: &str, schedule: &str) -> String {
    format!(
        r#"{{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {{"name": "{name}"}},
  "spec": {{"schedule": "{schedule}", "concurrencyPolicy": "{policy}",
    "jobTemplate": {{"spec": {{"template": {{"spec": {{"restartPolicy": "Never",
      "containers": [{{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}}]}}}}}}}}}}}}"#
    )
}

/// The names of the Jobs `cron` controls.
fn jobs_of(kubectl: &Kubectl, cron: &str) -> Vec<String> {
    let list = kubectl.json(&["get", "jobs", "-o", "json"]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|job| job["metadata"]["ownerReferences"][0]["name"] == cron)
        .filter_map(|job| job["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

fn minutes_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after the epoch").as_secs() / 60
}

#[test]
fn cron_jobs_make_jobs_each_minute_unless_forbidden_to_overlap() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "cron-jobs");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let _kubelet = Kubelet::start(Kubectl::for_node(&node), vec![Rule::every_pod_ready()]);

    kubectl.ok_with(&["apply", "-f", "-"], Some(&cron_job("interval", "Allow", "@every 5s")));
    wait_for("a Job of the @every CronJob", Duration::from_secs(20), || !jobs_of(&kubectl, "interval").is_empty());
    kubectl.ok(&["delete", "cronjob", "interval"]);
    kubectl.ok_with(&["apply", "-f", "-"], Some(&cron_job("hello", "Allow", "*/1 * * * *")));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&cron_job("solo", "Forbid", "*/1 * * * *")));
    let created = minutes_now();
    wait_for("a Job of each CronJob", MINUTE_AND_MORE, || {
        jobs_of(&kubectl, "hello").len() == 1 && jobs_of(&kubectl, "solo").len() == 1
    });
    let first = jobs_of(&kubectl, "solo").remove(0);
    let minute: u64 = first.strip_prefix("solo-").and_then(|m| m.parse().ok()).expect("solo-<minutes>");
    assert!((created..=created + 1).contains(&minute), "{first} is scheduled the minute after {created}");
    wait_for("the solo CronJob's status", MINUTE_AND_MORE, || {
        let cron = kubectl.json(&["get", "cronjob", "solo", "-o", "json"]);
        cron["status"]["lastScheduleTime"].is_string() && cron["status"]["active"][0]["name"] == first.as_str()
    });
    let job = kubectl.json(&["get", "job", &first, "-o", "json"]);
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!((owner["kind"].as_str(), owner["controller"].as_bool()), (Some("CronJob"), Some(true)), "{job}");
    assert!(job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].is_string(), "{job}");

    wait_for("a second Job of the CronJob that allows overlap", MINUTE_AND_MORE, || {
        jobs_of(&kubectl, "hello").len() == 2
    });
    wait_for("the JobAlreadyActive event", MINUTE_AND_MORE, || {
        let events = kubectl.json(&["get", "events", "-o", "json"]);
        events["items"].as_array().is_some_and(|items| {
            items.iter().any(|e: &Value| e["reason"] == "JobAlreadyActive" && e["involvedObject"]["name"] == "solo")
        })
    });
    assert_eq!(jobs_of(&kubectl, "solo"), [first], "no second Job while the first runs");
    node.stop();
}
