//! Plans for Jobs in the situations Kubernetes' job controller meets.

use chrono::{DateTime, Utc};
use engenho_controller::EventType;
use engenho_controller::meta::format_time;
use serde_json::json;

use super::*;
use crate::plan::plan;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a time")
}

fn job(spec: Value) -> Job {
    let mut job: Job = serde_json::from_value(json!({
        "metadata": {"name": "pi", "namespace": "ns", "uid": "job-uid"},
        "spec": spec,
    }))
    .expect("a job");
    job.spec.template = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}});
    job
}

fn pod(name: &str, phase: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "uid": format!("uid-{name}"), "finalizers": [TRACKING_FINALIZER],
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"phase": phase},
    }))
    .expect("a pod")
}

fn indexed_pod(name: &str, phase: &str, index: i32) -> Pod {
    let mut pod = pod(name, phase);
    pod.metadata.annotations.insert(model::COMPLETION_INDEX.into(), index.to_string());
    pod
}

fn reasons(plan: &plan::Plan) -> Vec<&str> {
    plan.events.iter().map(|e| e.reason.as_str()).collect()
}

#[test]
fn a_new_job_starts_parallelism_pods_bounded_by_completions() {
    // Goal: active = min(parallelism, remaining completions); start time set.
    let plan = plan(&job(json!({"parallelism": 3, "completions": 2})), &[], now());
    assert_eq!(plan.creates.len(), 2);
    assert_eq!(plan.status.active, 2);
    assert_eq!(plan.status.start_time.as_deref(), Some(format_time(now()).as_str()));
    let one_done = plan::plan(&job(json!({"parallelism": 3, "completions": 5})), &[pod("a", "Succeeded")], now());
    assert_eq!(one_done.creates.len(), 3);
    assert_eq!(one_done.status.uncounted_terminated_pods.succeeded, vec!["uid-a"]);
    assert_eq!(one_done.releases, vec!["a"]);
}

#[test]
fn excess_active_pods_are_deleted() {
    let pods = [pod("a", "Running"), pod("b", "Running"), pod("c", "Running")];
    let plan = plan(&job(json!({"parallelism": 1, "completions": 4})), &pods, now());
    assert_eq!(plan.deletes.len(), 2);
    assert_eq!(plan.status.active, 1);
    assert_eq!(plan.status.terminating, Some(2));
}

#[test]
fn a_job_completes_after_its_pods_are_counted() {
    // Goal: 1.32 order: SuccessCriteriaMet once enough pods succeeded; Complete,
    // completionTime and the Completed event only once they are counted.
    let mut job = job(json!({"completions": 1}));
    let first = plan(&job, &[pod("a", "Succeeded")], now());
    assert!(first.status.has("SuccessCriteriaMet"));
    assert!(!first.status.has("Complete"));
    assert!(first.events.is_empty());
    job.status = first.status;
    let mut released = pod("a", "Succeeded");
    released.metadata.finalizers.clear();
    let second = plan(&job, &[released], now());
    assert_eq!(second.status.succeeded, 1);
    let complete = second.status.condition("Complete").expect("complete");
    assert_eq!(complete.reason, "CompletionsReached");
    assert_eq!(second.status.completion_time.as_deref(), Some(format_time(now()).as_str()));
    assert_eq!(reasons(&second), vec!["Completed"]);
    assert_eq!(second.events[0].message, "Job completed");
}

#[test]
fn a_job_without_completions_completes_on_its_first_success_once_none_run() {
    let job = job(json!({"parallelism": 2}));
    let running = plan(&job, &[pod("a", "Succeeded"), pod("b", "Running")], now());
    assert!(running.creates.is_empty());
    assert!(!running.status.has("SuccessCriteriaMet"));
    let done = plan(&job, &[pod("a", "Succeeded"), pod("b", "Succeeded")], now());
    assert!(done.status.has("SuccessCriteriaMet"));
}

#[test]
fn failures_beyond_the_backoff_limit_fail_the_job() {
    // Goal: FailureTarget first, active pods deleted; Failed with its event
    // once the failures are counted and no pod is terminating.
    let mut job = job(json!({"completions": 1, "backoffLimit": 1}));
    let pods = [pod("a", "Failed"), pod("b", "Failed"), pod("c", "Running")];
    let first = plan(&job, &pods, now());
    let target = first.status.condition("FailureTarget").expect("failure target");
    assert_eq!(target.reason, "BackoffLimitExceeded");
    assert_eq!(target.message, "Job has reached the specified backoff limit");
    assert_eq!(first.deletes.len(), 1);
    assert!(first.creates.is_empty());
    assert!(!first.status.has("Failed"));
    job.status = first.status;
    let second = plan(&job, &[], now());
    assert_eq!(second.status.failed, 2);
    assert!(second.status.has("Failed"));
    assert_eq!(reasons(&second), vec!["BackoffLimitExceeded"]);
    assert_eq!(second.events[0].event_type, EventType::Warning);
    assert!(second.status.completion_time.is_none());
}

#[test]
fn a_failed_pod_is_replaced_only_after_the_backoff_delay() {
    let job = job(json!({"completions": 1, "backoffLimit": 6}));
    let mut failed = pod("a", "Failed");
    failed.status.conditions.push(engenho_controller::meta::Condition {
        type_: "Ready".into(),
        status: "False".into(),
        last_transition_time: Some(format_time(now() - chrono::Duration::seconds(4))),
        ..Default::default()
    });
    let waiting = plan(&job, std::slice::from_ref(&failed), now());
    assert!(waiting.creates.is_empty());
    assert_eq!(waiting.requeue, Some(Duration::from_secs(6)));
    let later = plan(&job, &[failed], now() + chrono::Duration::seconds(6));
    assert_eq!(later.creates.len(), 1);
}

#[test]
fn restarts_beyond_the_limit_fail_an_on_failure_job() {
    let mut job = job(json!({"backoffLimit": 2}));
    job.spec.template["spec"]["restartPolicy"] = json!("OnFailure");
    let mut running = pod("a", "Running");
    running
        .status
        .container_statuses
        .push(engenho_controller::pods::ContainerStatus { restart_count: 2, ..Default::default() });
    let plan = plan(&job, &[running], now());
    assert!(plan.status.has("FailureTarget"));
    assert_eq!(plan.deletes.len(), 1);
}

#[test]
fn the_active_deadline_fails_the_job_and_is_waited_for() {
    let mut job = job(json!({"activeDeadlineSeconds": 60}));
    job.status.start_time = Some(format_time(now() - chrono::Duration::seconds(20)));
    let before = plan(&job, &[pod("a", "Running")], now());
    assert_eq!(before.requeue, Some(Duration::from_secs(40)));
    let after = plan(&job, &[pod("a", "Running")], now() + chrono::Duration::seconds(40));
    let target = after.status.condition("FailureTarget").expect("failure target");
    assert_eq!(target.reason, "DeadlineExceeded");
    assert_eq!(target.message, "Job was active longer than specified deadline");
    assert_eq!(after.deletes.len(), 1);
}

#[test]
fn suspending_deletes_active_pods_and_resuming_restarts_the_clock() {
    let mut job = job(json!({"suspend": true, "completions": 2}));
    let suspended = plan(&job, &[pod("a", "Running")], now());
    assert_eq!(suspended.deletes.len(), 1);
    assert!(suspended.creates.is_empty());
    assert!(suspended.status.has("Suspended"));
    assert_eq!(reasons(&suspended), vec!["Suspended"]);
    job.status = suspended.status;
    job.spec.suspend = Some(false);
    let later = now() + chrono::Duration::seconds(100);
    let resumed = plan(&job, &[], later);
    let condition = resumed.status.conditions.iter().find(|c| c.type_ == "Suspended").expect("a condition");
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", "JobResumed"));
    assert_eq!(resumed.status.start_time.as_deref(), Some(format_time(later).as_str()));
    assert_eq!(reasons(&resumed), vec!["Resumed"]);
    // A deadline that the time suspended would have passed does not fail the resumed Job.
    job.spec.active_deadline_seconds = Some(50);
    job.status.start_time = Some(format_time(now()));
    let resumed = plan(&job, &[], later);
    assert!(!resumed.status.has("FailureTarget"));
    assert_eq!(resumed.requeue, Some(Duration::from_secs(50)));
    assert_eq!(resumed.creates.len(), 1);
}

#[test]
fn an_indexed_job_fills_the_missing_indexes_and_records_completed_ones() {
    let job = job(json!({"completionMode": "Indexed", "completions": 5, "parallelism": 3}));
    let pods = [indexed_pod("p0", "Succeeded", 0), indexed_pod("p2", "Running", 2), indexed_pod("dup", "Running", 2)];
    let plan = plan(&job, &pods, now());
    assert_eq!(plan.status.completed_indexes, "0");
    assert_eq!(plan.status.succeeded, 1);
    assert_eq!(plan.deletes.len(), 1);
    let made: Vec<&str> = plan.creates.iter().filter_map(|p| p["metadata"]["generateName"].as_str()).collect();
    assert_eq!(made, vec!["pi-1-", "pi-3-"]);
}

#[test]
fn an_indexed_job_completes_when_every_index_succeeded() {
    let mut job = job(json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3}));
    job.status.completed_indexes = "0-1".into();
    job.status.succeeded = 2;
    let plan = plan(&job, &[indexed_pod("p2", "Succeeded", 2)], now());
    assert_eq!(plan.status.completed_indexes, "0-2");
    assert!(plan.status.has("SuccessCriteriaMet"));
    assert!(plan.status.has("Complete"));
    assert_eq!(reasons(&plan), vec!["Completed"]);
}

#[test]
fn a_finished_job_expires_after_its_time_to_live() {
    let mut job = job(json!({"ttlSecondsAfterFinished": 30}));
    job.status.completion_time = Some(format_time(now()));
    assert_eq!(expiry(&job, &job.status, now()), Some(Duration::from_secs(30)));
    assert_eq!(expiry(&job, &job.status, now() + chrono::Duration::seconds(31)), Some(Duration::ZERO));
    job.spec.ttl_seconds_after_finished = None;
    assert_eq!(expiry(&job, &job.status, now()), None);
}

#[test]
fn a_status_written_back_keeps_fields_the_controller_does_not_manage() {
    let status: JobStatus = serde_json::from_value(json!({"active": 1, "failedIndexes": "3"})).expect("a status");
    let written = serde_json::to_value(&status).expect("encodes");
    assert_eq!(written["failedIndexes"], "3");
    assert_eq!(written["uncountedTerminatedPods"], json!({}));
    assert!(written.get("succeeded").is_none());
}

#[test]
fn orphans_are_pods_of_another_job_of_the_same_name() {
    let mut metadata = ObjectMeta::default();
    metadata.owner_references.push(engenho_controller::meta::OwnerReference {
        kind: "Job".into(),
        name: "pi".into(),
        uid: "old".into(),
        controller: Some(true),
        ..Default::default()
    });
    assert!(is_orphan(&metadata, "pi", "new"));
    assert!(is_orphan(&metadata, "pi", ""));
    assert!(!is_orphan(&metadata, "pi", "old"));
    let Write::Patch { patch, .. } = release_write(&Pod { metadata, ..Default::default() }) else { panic!("a patch") };
    assert_eq!(patch["metadata"]["finalizers"], json!([]));
}

#[test]
fn configuration_is_empty() {
    let (_, interests) = Jobs::configure("").expect("configures");
    assert_eq!(interests.len(), 2);
    assert!(Jobs::configure(r#"{"x": 1}"#).is_err());
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A pod in one of the states a Job's pod can be in.
    fn any_pod(n: usize) -> impl Strategy<Value = Pod> {
        (0..5u8, any::<bool>(), any::<bool>()).prop_map(move |(state, deleting, ready)| {
            let phase = ["Pending", "Running", "Succeeded", "Failed", "Running"][usize::from(state)];
            let mut pod = pod(&format!("p{n}"), phase);
            if deleting {
                pod.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
            }
            if ready {
                pod.status.conditions.push(engenho_controller::meta::Condition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                });
            }
            pod
        })
    }

    fn any_pods() -> impl Strategy<Value = Vec<Pod>> {
        (0..8usize).prop_flat_map(|len| (0..len).map(any_pod).collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn active_pods_never_exceed_parallelism_and_suspension_stops_them(
            parallelism in 0..5i32,
            completions in proptest::option::of(0..6i32),
            suspend in any::<bool>(),
            pods in any_pods(),
        ) {
            // Goal: whatever the pods, a plan that makes pods ends with at
            // most `parallelism` active; a suspended Job ends with none.
            let job = job(json!({"parallelism": parallelism, "completions": completions, "suspend": suspend, "backoffLimit": 100}));
            let plan = plan(&job, &pods, now());
            let active = pods.iter().filter(|p| p.is_active()).count();
            let after = active + plan.creates.len() - plan.deletes.len();
            prop_assert!(plan.creates.is_empty() || after <= usize::try_from(parallelism).unwrap_or(0));
            if suspend {
                prop_assert!(plan.creates.is_empty());
                prop_assert_eq!(after, 0);
            }
            prop_assert!(plan.creates.is_empty() || plan.deletes.is_empty() || job.spec.is_indexed());
        }

        #[test]
        fn every_finished_pod_is_counted_exactly_once(pods in any_pods(), vanish in any::<bool>()) {
            // Goal: replaying reconciles (writing the planned status, then
            // removing the released finalizers, some pods then vanishing)
            // counts each finished pod once and keeps the count.
            let mut job = job(json!({"parallelism": 0, "completions": 100, "backoffLimit": 100}));
            let mut pods = pods;
            let succeeded = pods.iter().filter(|p| p.succeeded()).count();
            let failed = pods.iter().filter(|p| tracking::counts_as_failed(&job, p) && !p.succeeded()).count();
            for round in 0..4 {
                let plan = plan(&job, &pods, now());
                job.status = plan.status;
                for pod in pods.iter_mut().filter(|p| plan.releases.contains(&p.metadata.name)) {
                    pod.metadata.finalizers.clear();
                }
                if vanish && round == 1 {
                    pods.retain(|p| p.is_tracked());
                }
            }
            prop_assert!(job.status.uncounted_terminated_pods.is_empty());
            prop_assert_eq!(job.status.succeeded, tracking::count(succeeded));
            prop_assert_eq!(job.status.failed, tracking::count(failed));
        }
    }
}
