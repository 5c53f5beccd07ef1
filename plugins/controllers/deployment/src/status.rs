//! A Deployment's status: counts summed over its ReplicaSets, and the
//! `Available`, `Progressing` and `ReplicaFailure` conditions with
//! Kubernetes' reasons and messages.

use std::time::Duration;

use chrono::{DateTime, Utc};
use engenho_controller::meta::{Condition, format_time, parse_time};
use engenho_controller::replicasets::ReplicaSet;

use crate::model::{Deployment, DeploymentStatus};
use crate::rollout::max_unavailable;

/// Condition: enough pods are available.
pub const AVAILABLE: &str = "Available";
/// Condition: how the rollout goes.
pub const PROGRESSING: &str = "Progressing";
/// Condition: a ReplicaSet cannot create or delete pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// `Progressing` reason: the new ReplicaSet was created.
pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
/// `Progressing` reason: the new ReplicaSet was found.
pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
/// `Progressing` reason: the rollout made progress.
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
/// `Progressing` reason: the rollout is done.
pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
/// `Progressing` reason: no progress within the deadline.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// `Progressing` reason: the deployment is paused.
pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
/// `Progressing` reason: the deployment was resumed.
pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";
/// `Progressing` reason: the new ReplicaSet could not be created.
pub const REPLICA_SET_CREATE_ERROR: &str = "ReplicaSetCreateError";

/// A deployment condition as Kubernetes' `NewDeploymentCondition` makes it.
pub fn condition(type_: &str, status: &str, reason: &str, message: String, now: DateTime<Utc>) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_update_time: Some(format_time(now)),
        last_transition_time: Some(format_time(now)),
        ..Condition::default()
    }
}

/// Sets `new` among `conditions` as Kubernetes' `SetDeploymentCondition`:
/// nothing changes when one of its type has its status and reason; its
/// transition time stays when the status holds.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    if let Some(current) = conditions.iter().find(|c| c.type_ == new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != new.type_);
    conditions.push(new);
}

/// The condition of `type_`, if there is one.
pub fn find<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// The status of `deployment` with the ReplicaSets `all` (`new_opt` the new
/// one among them) at `now`, as Kubernetes' `calculateStatus` makes it:
/// counts, and `Available` set from the pods available against the count
/// less `maxUnavailable`.
pub fn calculate(
    deployment: &Deployment,
    all: &[&ReplicaSet],
    new_opt: Option<&ReplicaSet>,
    now: DateTime<Utc>,
) -> DeploymentStatus {
    let available: i64 = all.iter().map(|set| set.status.available_replicas).sum();
    let asked: i64 = all.iter().map(|set| set.replicas()).sum();
    let mut status = DeploymentStatus {
        observed_generation: deployment.metadata.generation.unwrap_or(0),
        replicas: all.iter().map(|set| set.status.replicas).sum(),
        updated_replicas: new_opt.map_or(0, |set| set.status.replicas),
        ready_replicas: all.iter().map(|set| set.status.ready_replicas).sum(),
        available_replicas: available,
        unavailable_replicas: (asked - available).max(0),
        conditions: deployment.status.conditions.clone(),
        collision_count: deployment.status.collision_count,
    };
    let available_condition = if available >= deployment.spec.desired() - max_unavailable(deployment) {
        condition(AVAILABLE, "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into(), now)
    } else {
        condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status.conditions, available_condition);
    status
}

/// Whether `status` shows `deployment` rolled out: every pod updated and
/// available, at its generation (Kubernetes' `DeploymentComplete`).
pub fn is_complete(deployment: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = deployment.spec.desired();
    status.updated_replicas == desired
        && status.replicas == desired
        && status.available_replicas == desired
        && status.observed_generation >= deployment.metadata.generation.unwrap_or(0)
}

/// Whether `status` shows progress over the deployment's last one: more
/// updated, ready or available pods, or fewer old ones.
fn is_progressing(deployment: &Deployment, status: &DeploymentStatus) -> bool {
    let old = &deployment.status;
    status.updated_replicas > old.updated_replicas
        || status.replicas - status.updated_replicas < old.replicas - old.updated_replicas
        || status.ready_replicas > old.ready_replicas
        || status.available_replicas > old.available_replicas
}

/// Whether the rollout went without progress past its deadline at `now`.
fn is_timed_out(deployment: &Deployment, status: &DeploymentStatus, now: DateTime<Utc>) -> bool {
    let (Some(deadline), Some(progressing)) = (deployment.spec.progress_deadline(), find(status, PROGRESSING)) else {
        return false;
    };
    match progressing.reason.as_str() {
        NEW_REPLICA_SET_AVAILABLE => false,
        PROGRESS_DEADLINE_EXCEEDED => true,
        _ => progressing
            .last_update_time
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|since| since + chrono::Duration::seconds(deadline) < now),
    }
}

/// The status of a rollout (Kubernetes' `syncRolloutStatus`): the counts,
/// and `Progressing` as the rollout goes: `NewReplicaSetAvailable` when
/// complete, `ReplicaSetUpdated` on progress, `ProgressDeadlineExceeded`
/// past the deadline; no `Progressing` without a deadline. `ReplicaFailure`
/// mirrors the new ReplicaSet's, or else an old one's.
pub fn rollout(
    deployment: &Deployment,
    all: &[&ReplicaSet],
    new_opt: Option<&ReplicaSet>,
    now: DateTime<Utc>,
) -> DeploymentStatus {
    let mut status = calculate(deployment, all, new_opt, now);
    let deadline_opt = deployment.spec.progress_deadline();
    if deadline_opt.is_none() {
        status.conditions.retain(|c| c.type_ != PROGRESSING);
    }
    let current_opt = find(&deployment.status, PROGRESSING);
    let complete_before = status.replicas == status.updated_replicas
        && current_opt.is_some_and(|c| c.reason == NEW_REPLICA_SET_AVAILABLE);
    if deadline_opt.is_some() && !complete_before {
        let subject = match new_opt {
            Some(set) => format!("ReplicaSet \"{}\"", set.metadata.name),
            None => format!("Deployment \"{}\"", deployment.metadata.name),
        };
        if is_complete(deployment, &status) {
            let message = format!("{subject} has successfully progressed.");
            set_condition(
                &mut status.conditions,
                condition(PROGRESSING, "True", NEW_REPLICA_SET_AVAILABLE, message, now),
            );
        } else if is_progressing(deployment, &status) {
            let mut progressing =
                condition(PROGRESSING, "True", REPLICA_SET_UPDATED, format!("{subject} is progressing."), now);
            if let Some(current) = current_opt.filter(|c| c.status == "True") {
                progressing.last_transition_time = current.last_transition_time.clone();
            }
            status.conditions.retain(|c| c.type_ != PROGRESSING);
            status.conditions.push(progressing);
        } else if is_timed_out(deployment, &status, now) {
            let message = format!("{subject} has timed out progressing.");
            set_condition(
                &mut status.conditions,
                condition(PROGRESSING, "False", PROGRESS_DEADLINE_EXCEEDED, message, now),
            );
        }
    }
    let failure_of = |set: &ReplicaSet| set.status.conditions.iter().find(|c| c.type_ == REPLICA_FAILURE).cloned();
    // The new ReplicaSet's failure over the old ones'.
    let failure_opt = new_opt.and_then(failure_of).or_else(|| all.iter().find_map(|set| failure_of(set)));
    match failure_opt {
        Some(failure) => {
            let mut mirrored = condition(REPLICA_FAILURE, &failure.status, &failure.reason, failure.message, now);
            if let Some(since) = &failure.last_transition_time {
                mirrored.last_update_time = Some(since.clone());
                mirrored.last_transition_time = Some(since.clone());
            }
            set_condition(&mut status.conditions, mirrored);
        }
        None => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
    }
    status
}

/// When to look again for a rollout that may miss its deadline
/// (Kubernetes' `requeueStuckDeployment`): once the deadline passes since
/// the last progress, unless it is complete or already timed out.
pub fn deadline_requeue(deployment: &Deployment, status: &DeploymentStatus, now: DateTime<Utc>) -> Option<Duration> {
    let deadline = deployment.spec.progress_deadline()?;
    let progressing = find(status, PROGRESSING)?;
    if is_complete(deployment, status)
        || progressing.reason == PROGRESS_DEADLINE_EXCEEDED
        || progressing.reason == NEW_REPLICA_SET_AVAILABLE
    {
        return None;
    }
    let since = progressing.last_update_time.as_deref().and_then(parse_time)?;
    let left = (since + chrono::Duration::seconds(deadline) - now).to_std().unwrap_or(Duration::ZERO);
    Some(left + Duration::from_secs(1))
}

/// The `Progressing` condition pausing or resuming sets, if it changes
/// (Kubernetes' `checkPausedConditions`): `DeploymentPaused` while paused,
/// `DeploymentResumed` once resumed; a timed-out rollout keeps its
/// condition.
pub fn paused_condition(deployment: &Deployment, now: DateTime<Utc>) -> Option<Condition> {
    deployment.spec.progress_deadline()?;
    let current_opt = find(&deployment.status, PROGRESSING);
    if current_opt.is_some_and(|c| c.reason == PROGRESS_DEADLINE_EXCEEDED) {
        return None;
    }
    let paused_before = current_opt.is_some_and(|c| c.reason == DEPLOYMENT_PAUSED);
    match (deployment.spec.paused, paused_before) {
        (true, false) => Some(condition(PROGRESSING, "Unknown", DEPLOYMENT_PAUSED, "Deployment is paused".into(), now)),
        (false, true) => {
            Some(condition(PROGRESSING, "Unknown", DEPLOYMENT_RESUMED, "Deployment is resumed".into(), now))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::tests::{deployment, set};
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).expect("a time")
    }

    #[test]
    fn counts_sum_over_replica_sets() {
        let d = deployment(4, json!(1), json!(1));
        let old = set("old", 0, 2, 2);
        let new = set("new", 1, 3, 1);
        let status = calculate(&d, &[&old, &new], Some(&new), at("2026-01-01T00:01:00Z"));
        assert_eq!(
            (
                status.replicas,
                status.updated_replicas,
                status.ready_replicas,
                status.available_replicas,
                status.unavailable_replicas
            ),
            (5, 3, 3, 3, 2)
        );
        let available = find(&status, AVAILABLE).expect("Available");
        assert_eq!((available.status.as_str(), available.reason.as_str()), ("True", "MinimumReplicasAvailable"));
    }

    #[test]
    fn progress_is_reported_until_the_rollout_completes() {
        // Goal: a rollout with more updated pods says ReplicaSetUpdated and
        // keeps its transition time; a complete one says
        // NewReplicaSetAvailable with Kubernetes' message.
        let now = at("2026-01-01T00:01:00Z");
        let mut d = deployment(2, json!(1), json!(0));
        d.spec.progress_deadline_seconds = Some(600);
        d.status.conditions.push(condition(
            PROGRESSING,
            "True",
            NEW_REPLICA_SET_CREATED,
            "Created new replica set \"web-1\"".into(),
            at("2026-01-01T00:00:00Z"),
        ));
        let old = set("web-0", 0, 2, 2);
        let mut new = set("web-1", 1, 1, 0);
        let status = rollout(&d, &[&old, &new], Some(&new), now);
        let progressing = find(&status, PROGRESSING).expect("Progressing");
        assert_eq!(progressing.reason, REPLICA_SET_UPDATED);
        assert_eq!(progressing.message, "ReplicaSet \"web-1\" is progressing.");
        assert_eq!(progressing.last_transition_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(progressing.last_update_time.as_deref(), Some("2026-01-01T00:01:00Z"));
        new = set("web-1", 1, 2, 2);
        let done = set("web-0", 0, 0, 0);
        let status = rollout(&d, &[&done, &new], Some(&new), now);
        let progressing = find(&status, PROGRESSING).expect("Progressing");
        assert_eq!(progressing.reason, NEW_REPLICA_SET_AVAILABLE);
        assert_eq!(progressing.message, "ReplicaSet \"web-1\" has successfully progressed.");
        assert!(is_complete(&d, &status));
        assert_eq!(deadline_requeue(&d, &status, now), None);
    }

    #[test]
    fn a_rollout_without_progress_times_out_after_its_deadline() {
        let mut d = deployment(2, json!(1), json!(0));
        d.spec.progress_deadline_seconds = Some(60);
        d.status.conditions.push(condition(
            PROGRESSING,
            "True",
            REPLICA_SET_UPDATED,
            "x".into(),
            at("2026-01-01T00:00:00Z"),
        ));
        let old = set("web-0", 0, 2, 2);
        let new = set("web-1", 1, 1, 0);
        d.status = DeploymentStatus {
            conditions: d.status.conditions.clone(),
            ..calculate(&d, &[&old, &new], Some(&new), at("2026-01-01T00:00:00Z"))
        };
        let early = rollout(&d, &[&old, &new], Some(&new), at("2026-01-01T00:00:30Z"));
        assert_eq!(find(&early, PROGRESSING).expect("Progressing").reason, REPLICA_SET_UPDATED);
        assert_eq!(deadline_requeue(&d, &early, at("2026-01-01T00:00:30Z")), Some(Duration::from_secs(31)));
        let late = rollout(&d, &[&old, &new], Some(&new), at("2026-01-01T00:01:01Z"));
        let progressing = find(&late, PROGRESSING).expect("Progressing");
        assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", PROGRESS_DEADLINE_EXCEEDED));
        assert_eq!(progressing.message, "ReplicaSet \"web-1\" has timed out progressing.");
    }

    #[test]
    fn a_replica_set_failure_is_mirrored_and_cleared() {
        let now = at("2026-01-01T00:01:00Z");
        let d = deployment(2, json!(1), json!(0));
        let mut new = set("web-1", 1, 2, 0);
        new.status.conditions.push(Condition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: "FailedCreate".into(),
            message: "pods \"web-1-x\" is forbidden: exceeded quota".into(),
            last_transition_time: Some("2026-01-01T00:00:30Z".into()),
            ..Condition::default()
        });
        let status = rollout(&d, &[&new], Some(&new), now);
        let failure = find(&status, REPLICA_FAILURE).expect("ReplicaFailure");
        assert_eq!(
            (failure.reason.as_str(), failure.last_update_time.as_deref()),
            ("FailedCreate", Some("2026-01-01T00:00:30Z"))
        );
        let mut failed = d.clone();
        failed.status = status;
        let healed = set("web-1", 1, 2, 2);
        assert!(find(&rollout(&failed, &[&healed], Some(&healed), now), REPLICA_FAILURE).is_none());
    }

    #[test]
    fn pausing_and_resuming_set_progressing_unknown() {
        let now = at("2026-01-01T00:00:00Z");
        let mut d = deployment(2, json!(1), json!(0));
        d.spec.progress_deadline_seconds = Some(600);
        d.spec.paused = true;
        let paused = paused_condition(&d, now).expect("paused");
        assert_eq!(
            (paused.status.as_str(), paused.reason.as_str(), paused.message.as_str()),
            ("Unknown", DEPLOYMENT_PAUSED, "Deployment is paused")
        );
        d.status.conditions.push(paused);
        assert_eq!(paused_condition(&d, now), None);
        d.spec.paused = false;
        assert_eq!(paused_condition(&d, now).expect("resumed").reason, DEPLOYMENT_RESUMED);
    }
}
