//! Counting finished pods exactly once, with the tracking finalizer.
//!
//! A finished pod that still has the finalizer is first recorded in
//! `status.uncountedTerminatedPods` (an Indexed Job's succeeded pods go
//! straight into `status.completedIndexes`, which dedupes by index); only
//! once that status is written is the finalizer removed. A later reconcile
//! finds the recorded uid without a tracked pod (the finalizer is gone, or
//! the pod with it) and moves it into `succeeded` or `failed` in the same
//! status write that drops it from the uncounted list. A pod without the
//! finalizer is never recorded again, so no pod is counted twice, and a pod
//! deleted after being recorded is still counted.

use std::collections::{BTreeMap, BTreeSet};

use engenho_controller::pods::Pod;

use crate::indexes;
use crate::model::{Job, JobPod, UncountedTerminatedPods};

/// At most this many pods are newly recorded in one status write, as Kubernetes bounds it.
pub const MAX_UNCOUNTED_PODS: usize = 500;

/// What the counts are once the finished pods are recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracking {
    /// Pods counted as succeeded (`status.succeeded`).
    pub succeeded: i32,
    /// Pods counted as failed (`status.failed`).
    pub failed: i32,
    /// Finished pods recorded, not yet counted.
    pub uncounted: UncountedTerminatedPods,
    /// Succeeded indexes of an Indexed Job.
    pub completed_indexes: BTreeSet<i32>,
    /// Names of pods whose finalizer may go once the status is written.
    pub releases: Vec<String>,
}

impl Tracking {
    /// Succeeded pods, counted or recorded.
    pub fn succeeded_total(&self) -> i32 {
        self.succeeded.saturating_add(count(self.uncounted.succeeded.len()))
    }

    /// Failed pods, counted or recorded.
    pub fn failed_total(&self) -> i32 {
        self.failed.saturating_add(count(self.uncounted.failed.len()))
    }
}

/// A count as the API's `int32`.
pub fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Whether `pod` counts as failed: it failed, or (unless the Job replaces
/// only failed pods) it is being deleted without having succeeded.
pub fn counts_as_failed(job: &Job, pod: &Pod) -> bool {
    pod.status.phase == "Failed" || (!job.spec.replaces_only_failed() && pod.is_terminating())
}

/// The counts of `job` once its finished `pods` are recorded.
pub fn track(job: &Job, pods: &[Pod]) -> Tracking {
    let previous = &job.status.uncounted_terminated_pods;
    let tracked: BTreeMap<&str, &Pod> =
        pods.iter().filter(|p| p.is_tracked()).map(|p| (p.metadata.uid.as_str(), p)).collect();
    let mut tracking = Tracking { succeeded: job.status.succeeded, failed: job.status.failed, ..Tracking::default() };
    for uid in &previous.succeeded {
        if tracked.contains_key(uid.as_str()) {
            tracking.uncounted.succeeded.push(uid.clone());
        } else {
            tracking.succeeded = tracking.succeeded.saturating_add(1);
        }
    }
    for uid in &previous.failed {
        if tracked.contains_key(uid.as_str()) {
            tracking.uncounted.failed.push(uid.clone());
        } else {
            tracking.failed = tracking.failed.saturating_add(1);
        }
    }
    let completions = job.spec.completions.unwrap_or(0);
    let indexed = job.spec.is_indexed();
    if indexed {
        tracking.completed_indexes = indexes::parse(&job.status.completed_indexes, completions);
    }
    let mut budget = MAX_UNCOUNTED_PODS;
    for (uid, pod) in tracked {
        let recorded_succeeded = previous.succeeded.iter().any(|u| u == uid);
        let recorded_failed = previous.failed.iter().any(|u| u == uid);
        if recorded_succeeded || recorded_failed {
            tracking.releases.push(pod.metadata.name.clone());
            continue;
        }
        if budget == 0 {
            break;
        }
        let valid_index = pod.completion_index().filter(|i| *i < completions);
        if pod.succeeded() {
            if indexed {
                tracking.completed_indexes.extend(valid_index);
            } else {
                tracking.uncounted.succeeded.push(uid.to_owned());
            }
        } else if counts_as_failed(job, pod) {
            if !indexed || valid_index.is_some() {
                tracking.uncounted.failed.push(uid.to_owned());
            }
        } else {
            continue;
        }
        budget -= 1;
        tracking.releases.push(pod.metadata.name.clone());
    }
    if indexed {
        tracking.succeeded = count(tracking.completed_indexes.len());
    }
    tracking
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pod(name: &str, phase: &str, tracked: bool) -> Pod {
        let finalizers: Vec<&str> = if tracked { vec![crate::model::TRACKING_FINALIZER] } else { vec![] };
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "finalizers": finalizers},
            "status": {"phase": phase},
        }))
        .expect("a pod")
    }

    #[test]
    fn a_finished_pod_is_recorded_then_counted_once() {
        // Goal: a pod moves from uncounted to the counter exactly once, and
        // is never recorded again once its finalizer is gone.
        let mut job = Job::default();
        let first = track(&job, &[pod("a", "Succeeded", true), pod("b", "Failed", true), pod("c", "Running", true)]);
        assert_eq!(first.uncounted.succeeded, vec!["uid-a"]);
        assert_eq!(first.uncounted.failed, vec!["uid-b"]);
        assert_eq!((first.succeeded, first.failed), (0, 0));
        assert_eq!((first.succeeded_total(), first.failed_total()), (1, 1));
        assert_eq!(first.releases, vec!["a", "b"]);
        job.status.uncounted_terminated_pods = first.uncounted.clone();
        // The finalizers are gone (and `b` is deleted): both are counted.
        let second = track(&job, &[pod("a", "Succeeded", false), pod("c", "Running", true)]);
        assert_eq!((second.succeeded, second.failed), (1, 1));
        assert!(second.uncounted.is_empty());
        assert!(second.releases.is_empty());
        job.status.succeeded = second.succeeded;
        job.status.failed = second.failed;
        job.status.uncounted_terminated_pods = second.uncounted;
        let third = track(&job, &[pod("a", "Succeeded", false)]);
        assert_eq!((third.succeeded, third.failed), (1, 1));
    }

    #[test]
    fn a_recorded_pod_whose_finalizer_stayed_is_released_again_not_counted() {
        let mut job = Job::default();
        job.status.uncounted_terminated_pods.succeeded = vec!["uid-a".into()];
        let again = track(&job, &[pod("a", "Succeeded", true)]);
        assert_eq!(again.uncounted.succeeded, vec!["uid-a"]);
        assert_eq!(again.succeeded, 0);
        assert_eq!(again.releases, vec!["a"]);
    }

    #[test]
    fn a_deleted_unfinished_pod_counts_as_failed_unless_only_failed_pods_are_replaced() {
        let mut deleting = pod("d", "Running", true);
        deleting.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        let mut job = Job::default();
        assert_eq!(track(&job, std::slice::from_ref(&deleting)).uncounted.failed, vec!["uid-d"]);
        job.spec.pod_replacement_policy = Some("Failed".into());
        assert!(track(&job, &[deleting]).uncounted.is_empty());
    }

    #[test]
    fn indexed_successes_go_to_completed_indexes() {
        let mut job = Job::default();
        job.spec.completion_mode = Some("Indexed".into());
        job.spec.completions = Some(3);
        job.status.completed_indexes = "0".into();
        let mut one = pod("one", "Succeeded", true);
        one.metadata.annotations.insert(crate::model::COMPLETION_INDEX.into(), "1".into());
        let mut again = pod("again", "Succeeded", true);
        again.metadata.annotations.insert(crate::model::COMPLETION_INDEX.into(), "0".into());
        let tracking = track(&job, &[one, again]);
        assert_eq!(tracking.completed_indexes, [0, 1].into());
        assert_eq!(tracking.succeeded, 2);
        assert!(tracking.uncounted.is_empty());
        assert_eq!(tracking.releases.len(), 2);
    }
}
