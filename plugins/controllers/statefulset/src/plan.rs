//! What one reconcile of a StatefulSet does, decided from what was read:
//! which claims and pods to create, which pods to delete, in which order,
//! as Kubernetes' `StatefulSetControl` decides it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engenho_controller::kinds::{PERSISTENT_VOLUME_CLAIMS, PODS};
use engenho_controller::pods::Pod;
use engenho_controller::revisions::Revision;
use engenho_controller::{Propagation, Write};
use serde_json::{Value, json};

use crate::identity;
use crate::model::{Claim, StatefulPod, StatefulSet};

/// A revision the plan makes pods from.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The ControllerRevision's name, the pods' `controller-revision-hash`.
    pub name: String,
    /// The pod template it records.
    pub template: Value,
}

impl Version {
    /// The version `revision` records.
    pub fn of(revision: &Revision) -> Self {
        Self { name: revision.metadata.name.clone(), template: revision.template() }
    }
}

/// What the planner reads.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The set.
    pub set: &'a StatefulSet,
    /// The pods it controls.
    pub pods: &'a [Pod],
    /// The claims in its namespace, by name.
    pub claims: &'a BTreeMap<String, Claim>,
    /// The revision its pods were at before the update.
    pub current: &'a Version,
    /// The revision of its template.
    pub update: &'a Version,
    /// The time now.
    pub now: DateTime<Utc>,
}

/// One write and the event it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The write.
    pub write: Write,
    /// `Create`, `Delete` or `Update`: the event's reason is `Successful…`
    /// or `Failed…`.
    pub verb: &'static str,
    /// The event's message when it worked; no event when empty.
    pub success: String,
    /// The event's message when it failed, before the error.
    pub failure: String,
}

/// What one reconcile does: steps in order, the writes of a step made
/// concurrently, a step only after the one before succeeded whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The steps.
    pub steps: Vec<Vec<Action>>,
    /// Reconcile again after this long (a pod becomes available).
    pub requeue: Option<Duration>,
    /// Why the set cannot progress (e.g. a claim being deleted).
    pub blocked: Option<String>,
}

/// How far the pass over the pods got.
enum Flow {
    /// On to the next pod.
    Continue,
    /// Stop the pass: wait for what was done or seen.
    Wait,
}

/// The plan for `input`.
pub fn plan(input: &Input) -> Plan {
    let set = input.set;
    let mut plan = Plan::default();
    if set.metadata.is_deleting() {
        return plan;
    }
    let ordinals = set.ordinals();
    let mut replicas: Vec<(i32, Option<&Pod>)> = ordinals.clone().map(|o| (o, None)).collect();
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for pod in input.pods {
        let Some(ordinal) = set.ordinal_of(&pod.metadata.name) else { continue };
        match usize::try_from(ordinal - ordinals.start).ok().and_then(|i| replicas.get_mut(i)) {
            Some(slot) if ordinals.contains(&ordinal) => slot.1 = Some(pod),
            _ => condemned.push((ordinal, pod)),
        }
    }
    condemned.sort_by_key(|(ordinal, _)| std::cmp::Reverse(*ordinal));
    let mut claim_writes = Vec::new();
    let mut pod_writes = Vec::new();
    plan.steps.push(claim_owner_fixes(input, &replicas, &condemned));
    let flow = replica_pass(input, &replicas, &mut plan, &mut claim_writes, &mut pod_writes);
    plan.steps.push(claim_writes);
    plan.steps.push(pod_writes);
    if matches!(flow, Flow::Continue) {
        let flow = condemned_pass(input, &replicas, &condemned, &mut plan);
        if matches!(flow, Flow::Continue) && set.is_rolling() {
            plan.steps.push(rolling_update(input, &replicas).into_iter().collect());
        }
    }
    plan.steps.retain(|step| !step.is_empty());
    plan
}

/// Creates missing pods (with their claims) and replaces finished ones,
/// lowest ordinal first; in order (`OrderedReady`) it stops at the first
/// pod it touched or that is not yet running, ready and available.
fn replica_pass(
    input: &Input,
    replicas: &[(i32, Option<&Pod>)],
    plan: &mut Plan,
    claim_writes: &mut Vec<Action>,
    pod_writes: &mut Vec<Action>,
) -> Flow {
    let set = input.set;
    let ordered = set.is_ordered();
    let mut finished = false;
    for (index, (ordinal, found)) in replicas.iter().enumerate() {
        let Some(pod) = found else {
            let (claims, blocked) = missing_claims(input, *ordinal);
            if let Some(reason) = blocked {
                plan.blocked = Some(reason);
                if ordered {
                    return Flow::Wait;
                }
                continue;
            }
            claim_writes.extend(claims);
            pod_writes.push(create_pod(input, index, *ordinal));
            if ordered {
                return Flow::Wait;
            }
            continue;
        };
        if pod.is_terminal() {
            if !pod.metadata.is_deleting() {
                pod_writes.push(delete_pod(set, pod));
            }
            finished = true;
            if ordered {
                return Flow::Wait;
            }
            continue;
        }
        if !ordered {
            continue;
        }
        if pod.metadata.is_deleting() || !pod.is_running_and_ready() {
            return Flow::Wait;
        }
        if let Some(left) = pod.time_to_available(set.spec.min_ready_seconds, input.now).filter(|l| !l.is_zero()) {
            plan.requeue = left.to_std().ok();
            return Flow::Wait;
        }
    }
    if finished { Flow::Wait } else { Flow::Continue }
}

/// The claim creates the pod of `ordinal` needs, or why it cannot have
/// them yet (a claim of its name is being deleted).
fn missing_claims(input: &Input, ordinal: i32) -> (Vec<Action>, Option<String>) {
    let set = input.set;
    let pod_name = set.pod_name(ordinal);
    let mut creates = Vec::new();
    for (name, object) in identity::claims(set, ordinal) {
        match input.claims.get(&name) {
            Some(claim) if claim.metadata.is_deleting() => {
                return (Vec::new(), Some(format!("pvc {name} is being deleted")));
            }
            Some(_) => {}
            None => creates.push(Action {
                write: Write::Create {
                    kind: PERSISTENT_VOLUME_CLAIMS,
                    namespace: set.metadata.namespace.clone(),
                    object,
                },
                verb: "Create",
                success: format!("create Claim {name} Pod {pod_name} in StatefulSet {} success", set.metadata.name),
                failure: format!(
                    "create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: ",
                    set.metadata.name
                ),
            }),
        }
    }
    (creates, None)
}

/// The pod at `index` (of `ordinal`): at the current revision when it is
/// below the partition (or, without one, among the current replicas) of a
/// rolling update; else at the update revision.
fn create_pod(input: &Input, index: usize, ordinal: i32) -> Action {
    let set = input.set;
    let index = i32::try_from(index).unwrap_or(i32::MAX);
    let keeps_current = set.is_rolling()
        && match set.partition() {
            Some(partition) => index < partition,
            None => index < set.status.current_replicas,
        };
    let version = if keeps_current { input.current } else { input.update };
    let object = identity::pod(set, &version.template, &version.name, ordinal);
    pod_action(
        set,
        &set.pod_name(ordinal),
        "Create",
        Write::Create { kind: PODS, namespace: set.metadata.namespace.clone(), object },
    )
}

/// Deletes `pod` (only that incarnation of its name).
fn delete_pod(set: &StatefulSet, pod: &Pod) -> Action {
    pod_action(
        set,
        &pod.metadata.name,
        "Delete",
        Write::Delete {
            kind: PODS,
            namespace: set.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            propagation: Propagation::Background,
        },
    )
}

/// `write` of the pod `name`, with Kubernetes' pod event messages.
fn pod_action(set: &StatefulSet, name: &str, verb: &'static str, write: Write) -> Action {
    let lower = verb.to_lowercase();
    Action {
        write,
        verb,
        success: format!("{lower} Pod {name} in StatefulSet {} successful", set.metadata.name),
        failure: format!("{lower} Pod {name} in StatefulSet {} failed error: ", set.metadata.name),
    }
}

/// Deletes pods beyond the replicas, highest ordinal first; in order, one
/// at a time and only while every other pod is healthy (the first
/// unhealthy pod itself may go).
fn condemned_pass(input: &Input, replicas: &[(i32, Option<&Pod>)], condemned: &[(i32, &Pod)], plan: &mut Plan) -> Flow {
    let set = input.set;
    let ordered = set.is_ordered();
    let first_unhealthy = replicas
        .iter()
        .filter_map(|(_, pod)| *pod)
        .chain(condemned.iter().map(|(_, pod)| *pod))
        .find(|pod| !pod.is_healthy())
        .map(|pod| pod.metadata.uid.as_str());
    let mut deletes = Vec::new();
    for (_, pod) in condemned {
        if pod.metadata.is_deleting() {
            if ordered {
                break;
            }
            continue;
        }
        let first = first_unhealthy == Some(pod.metadata.uid.as_str());
        if ordered && !first {
            match pod.time_to_available(set.spec.min_ready_seconds, input.now) {
                None => break,
                Some(left) if !left.is_zero() => {
                    plan.requeue = left.to_std().ok();
                    break;
                }
                Some(_) => {}
            }
        }
        deletes.push(delete_pod(set, pod));
        if ordered {
            break;
        }
    }
    let waiting = !condemned.is_empty() && (ordered || !deletes.is_empty());
    plan.steps.push(deletes);
    if waiting { Flow::Wait } else { Flow::Continue }
}

/// The one pod a rolling update deletes now (to be recreated at the update
/// revision): the highest-ordinal pod at or above the partition not yet at
/// the update revision, once every pod above it is healthy.
fn rolling_update(input: &Input, replicas: &[(i32, Option<&Pod>)]) -> Option<Action> {
    let set = input.set;
    let from = usize::try_from(set.partition().unwrap_or(0)).unwrap_or(0);
    for (_, found) in replicas.iter().skip(from).rev() {
        let pod = (*found)?;
        if pod.revision() != input.update.name && !pod.metadata.is_deleting() {
            return Some(delete_pod(set, pod));
        }
        if !pod.is_healthy() {
            return None;
        }
    }
    None
}

/// The claim ownerReference fixes the retention policy asks for, as merge
/// patches of the claims' metadata (guarded by their resourceVersion).
fn claim_owner_fixes(input: &Input, replicas: &[(i32, Option<&Pod>)], condemned: &[(i32, &Pod)]) -> Vec<Action> {
    let set = input.set;
    let pods = replicas.iter().filter_map(|(o, p)| p.map(|p| (*o, p, false)));
    let pods = pods.chain(condemned.iter().map(|(o, p)| (*o, *p, true)));
    let mut fixes = Vec::new();
    for (ordinal, pod, is_condemned) in pods {
        for template in set.claim_template_names() {
            let name = set.claim_name(&template, ordinal);
            let Some(claim) = input.claims.get(&name).filter(|c| !c.metadata.is_deleting()) else { continue };
            let owners =
                identity::claim_owners(set, Some(&pod.metadata), is_condemned, &claim.metadata.owner_references);
            if owners == claim.metadata.owner_references {
                continue;
            }
            let patch = json!({"metadata": {
                "resourceVersion": claim.metadata.resource_version,
                "ownerReferences": owners,
            }});
            fixes.push(Action {
                write: Write::Patch {
                    kind: PERSISTENT_VOLUME_CLAIMS,
                    namespace: set.metadata.namespace.clone(),
                    name: name.clone(),
                    subresource: String::new(),
                    patch,
                },
                verb: "Update",
                success: String::new(),
                failure: format!(
                    "update Claim {name} for Pod {} in StatefulSet {} failed error: ",
                    pod.metadata.name, set.metadata.name
                ),
            });
        }
    }
    fixes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RetentionPolicy, Spec};
    use engenho_controller::meta::{Condition, ObjectMeta, OwnerReference, parse_time};
    use engenho_controller::revisions::REVISION_LABEL;

    const NOW: &str = "2026-12-05T04:00:00Z";

    fn now() -> DateTime<Utc> {
        parse_time(NOW).expect("a time")
    }

    fn set(replicas: i32) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: "ns".into(),
                uid: "u1".into(),
                ..ObjectMeta::default()
            },
            spec: Spec {
                replicas: Some(replicas),
                service_name: "nginx".into(),
                template: json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}),
                update_strategy: serde_json::from_value(
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                )
                .expect("a strategy"),
                volume_claim_templates: vec![json!({"metadata": {"name": "www"}, "spec": {}})],
                ..Spec::default()
            },
            ..StatefulSet::default()
        }
    }

    fn version(name: &str) -> Version {
        Version { name: name.into(), template: json!({"metadata": {"labels": {"app": "web", "v": name}}, "spec": {}}) }
    }

    /// A pod of `ordinal` at `revision`, in `phase`, ready or not.
    fn pod(ordinal: i32, revision: &str, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("web-{ordinal}"),
                "uid": format!("p{ordinal}"),
                "labels": {REVISION_LABEL: revision},
            },
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-12-05T03:59:00Z"}],
            },
        }))
        .expect("a pod")
    }

    fn healthy(ordinal: i32, revision: &str) -> Pod {
        pod(ordinal, revision, "Running", true)
    }

    fn claims(names: &[&str]) -> BTreeMap<String, Claim> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), Claim { metadata: ObjectMeta { name: (*n).into(), ..ObjectMeta::default() } }))
            .collect()
    }

    fn run(set: &StatefulSet, pods: &[Pod], claims: &BTreeMap<String, Claim>, current: &str, update: &str) -> Plan {
        plan(&Input { set, pods, claims, current: &version(current), update: &version(update), now: now() })
    }

    /// Each step's writes, as `create pods/web-0`-like lines.
    fn summary(plan: &Plan) -> Vec<Vec<String>> {
        plan.steps
            .iter()
            .map(|step| {
                step.iter()
                    .map(|action| match &action.write {
                        Write::Create { kind, object, .. } => {
                            format!("create {}/{}", kind.plural, object["metadata"]["name"].as_str().unwrap_or("?"))
                        }
                        Write::Delete { kind, name, .. } => format!("delete {}/{name}", kind.plural),
                        Write::Patch { kind, name, .. } => format!("patch {}/{name}", kind.plural),
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn ordered_creation_makes_the_claims_then_the_lowest_missing_pod_only() {
        // Goal: OrderedReady makes one pod at a time, its claim first.
        let plan = run(&set(3), &[], &BTreeMap::new(), "r1", "r1");
        assert_eq!(summary(&plan), vec![vec!["create persistentvolumeclaims/www-web-0"], vec!["create pods/web-0"]]);
        assert_eq!(plan.steps[1][0].success, "create Pod web-0 in StatefulSet web successful");
        assert_eq!(plan.steps[0][0].success, "create Claim www-web-0 Pod web-0 in StatefulSet web success");
        assert_eq!(plan.steps[1][0].verb, "Create");
    }

    #[test]
    fn ordered_creation_waits_for_its_predecessors_to_be_running_and_ready() {
        let claims = claims(&["www-web-0", "www-web-1"]);
        let pending = run(&set(3), &[pod(0, "r1", "Pending", false)], &claims, "r1", "r1");
        assert!(pending.steps.is_empty());
        let unready = run(&set(3), &[pod(0, "r1", "Running", false)], &claims, "r1", "r1");
        assert!(unready.steps.is_empty());
        let ready = run(&set(3), &[healthy(0, "r1"), healthy(1, "r1")], &claims, "r1", "r1");
        assert_eq!(summary(&ready), vec![vec!["create persistentvolumeclaims/www-web-2"], vec!["create pods/web-2"]]);
    }

    #[test]
    fn a_pod_ready_for_less_than_min_ready_seconds_holds_the_next_and_requeues() {
        // The pods turned ready a minute ago; two minutes are asked for.
        let mut owner = set(2);
        owner.spec.min_ready_seconds = 120;
        let plan = run(&owner, &[healthy(0, "r1")], &claims(&["www-web-0"]), "r1", "r1");
        assert!(plan.steps.is_empty());
        assert_eq!(plan.requeue, Some(Duration::from_secs(60)));
    }

    #[test]
    fn parallel_creation_makes_every_missing_pod_at_once() {
        let mut owner = set(3);
        owner.spec.pod_management_policy = "Parallel".into();
        let plan = run(&owner, &[pod(1, "r1", "Pending", false)], &claims(&["www-web-1"]), "r1", "r1");
        assert_eq!(
            summary(&plan),
            vec![
                vec!["create persistentvolumeclaims/www-web-0", "create persistentvolumeclaims/www-web-2"],
                vec!["create pods/web-0", "create pods/web-2"],
            ]
        );
    }

    #[test]
    fn ordinals_start_where_the_set_says() {
        let mut owner = set(2);
        owner.spec.ordinals.start = 5;
        let plan = run(&owner, &[], &BTreeMap::new(), "r1", "r1");
        assert_eq!(summary(&plan), vec![vec!["create persistentvolumeclaims/www-web-5"], vec!["create pods/web-5"]]);
        let Write::Create { object, .. } = &plan.steps[1][0].write else { panic!("a create") };
        assert_eq!(object["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "5");
    }

    #[test]
    fn a_failed_pod_is_deleted_and_nothing_else_happens_until_it_is_gone() {
        let claims = claims(&["www-web-0", "www-web-1"]);
        let plan = run(&set(2), &[pod(0, "r1", "Failed", false), healthy(1, "r1")], &claims, "r1", "r1");
        assert_eq!(summary(&plan), vec![vec!["delete pods/web-0"]]);
        assert_eq!(plan.steps[0][0].success, "delete Pod web-0 in StatefulSet web successful");
        let Write::Delete { uid, .. } = &plan.steps[0][0].write else { panic!("a delete") };
        assert_eq!(uid, "p0");
    }

    #[test]
    fn ordered_scale_down_removes_the_highest_ordinal_one_at_a_time() {
        let claims = claims(&["www-web-0", "www-web-1", "www-web-2"]);
        let pods = [healthy(0, "r1"), healthy(1, "r1"), healthy(2, "r1")];
        let plan = run(&set(1), &pods, &claims, "r1", "r1");
        assert_eq!(summary(&plan), vec![vec!["delete pods/web-2"]]);
        let mut terminating = pods.clone();
        terminating[2].metadata.deletion_timestamp = Some(NOW.into());
        assert!(run(&set(1), &terminating, &claims, "r1", "r1").steps.is_empty());
    }

    #[test]
    fn ordered_scale_down_waits_for_a_pod_to_be_available_unless_it_is_the_first_unhealthy_one() {
        // Goal: a condemned pod goes only when available, or when it is
        // the first unhealthy pod. Method: web-0 has been ready long, web-1
        // (condemned) for a minute of the two asked for.
        let mut owner = set(1);
        owner.spec.min_ready_seconds = 120;
        let claims = claims(&["www-web-0", "www-web-1", "www-web-2"]);
        let mut settled = healthy(0, "r1");
        settled.status.conditions[0].last_transition_time = Some("2026-12-05T00:00:00Z".into());
        let young = [settled.clone(), healthy(1, "r1")];
        let plan = run(&owner, &young, &claims, "r1", "r1");
        assert!(plan.steps.is_empty());
        assert_eq!(plan.requeue, Some(Duration::from_secs(60)));
        // Every condemned pod is unready; the highest is the first unhealthy one.
        let unready = [settled, pod(1, "r1", "Pending", false), pod(2, "r1", "Pending", false)];
        assert_eq!(summary(&run(&owner, &unready, &claims, "r1", "r1")), vec![vec!["delete pods/web-2"]]);
    }

    #[test]
    fn parallel_scale_down_removes_every_condemned_pod_at_once() {
        let mut owner = set(1);
        owner.spec.pod_management_policy = "Parallel".into();
        let claims = claims(&["www-web-0", "www-web-1", "www-web-2"]);
        let pods = [healthy(0, "r1"), pod(1, "r1", "Running", false), healthy(2, "r1")];
        assert_eq!(
            summary(&run(&owner, &pods, &claims, "r1", "r1")),
            vec![vec!["delete pods/web-2", "delete pods/web-1"]]
        );
    }

    #[test]
    fn a_rolling_update_replaces_the_highest_outdated_pod_once_those_above_are_healthy() {
        let claims = claims(&["www-web-0", "www-web-1", "www-web-2"]);
        let pods = [healthy(0, "r1"), healthy(1, "r1"), healthy(2, "r1")];
        assert_eq!(summary(&run(&set(3), &pods, &claims, "r1", "r2")), vec![vec!["delete pods/web-2"]]);
        let next = [healthy(0, "r1"), healthy(1, "r1"), healthy(2, "r2")];
        assert_eq!(summary(&run(&set(3), &next, &claims, "r1", "r2")), vec![vec!["delete pods/web-1"]]);
        let unready = [healthy(0, "r1"), healthy(1, "r1"), pod(2, "r2", "Running", false)];
        assert!(run(&set(3), &unready, &claims, "r1", "r2").steps.is_empty());
    }

    #[test]
    fn a_recreated_pod_takes_the_update_revision_above_the_partition_and_the_current_below() {
        let mut owner = set(3);
        owner.spec.update_strategy.rolling_update = Some(crate::model::RollingUpdate { partition: Some(2) });
        let claims = claims(&["www-web-0", "www-web-1", "www-web-2"]);
        let pods = [healthy(0, "r1"), healthy(1, "r1"), healthy(2, "r1")];
        assert_eq!(summary(&run(&owner, &pods, &claims, "r1", "r2")), vec![vec!["delete pods/web-2"]]);
        let done = [healthy(0, "r1"), healthy(1, "r1"), healthy(2, "r2")];
        assert!(run(&owner, &done, &claims, "r1", "r2").steps.is_empty());
        for (missing, revision) in [(0, "r1"), (2, "r2")] {
            let pods: Vec<Pod> = done.iter().filter(|p| p.metadata.name != format!("web-{missing}")).cloned().collect();
            let plan = run(&owner, &pods, &claims, "r1", "r2");
            let Write::Create { object, .. } = &plan.steps[0][0].write else { panic!("a create") };
            assert_eq!(object["metadata"]["labels"][REVISION_LABEL], revision);
            assert_eq!(object["metadata"]["labels"]["v"], revision);
        }
    }

    #[test]
    fn on_delete_leaves_outdated_pods_and_recreates_at_the_update_revision() {
        let mut owner = set(2);
        owner.spec.update_strategy = serde_json::from_value(json!({"type": "OnDelete"})).expect("a strategy");
        let claims = claims(&["www-web-0", "www-web-1"]);
        assert!(run(&owner, &[healthy(0, "r1"), healthy(1, "r1")], &claims, "r1", "r2").steps.is_empty());
        let plan = run(&owner, &[healthy(0, "r1")], &claims, "r1", "r2");
        let Write::Create { object, .. } = &plan.steps[0][0].write else { panic!("a create") };
        assert_eq!(object["metadata"]["labels"][REVISION_LABEL], "r2");
    }

    #[test]
    fn a_claim_being_deleted_blocks_its_pod() {
        let mut claims = claims(&["www-web-0"]);
        if let Some(claim) = claims.get_mut("www-web-0") {
            claim.metadata.deletion_timestamp = Some(NOW.into());
        }
        let plan = run(&set(1), &[], &claims, "r1", "r1");
        assert!(plan.steps.is_empty());
        assert_eq!(plan.blocked.as_deref(), Some("pvc www-web-0 is being deleted"));
    }

    #[test]
    fn scaled_away_claims_are_owned_by_their_pod_when_the_policy_deletes_them() {
        let mut owner = set(1);
        owner.spec.persistent_volume_claim_retention_policy =
            RetentionPolicy { when_deleted: "Retain".into(), when_scaled: "Delete".into() };
        let claims = claims(&["www-web-0", "www-web-1"]);
        let plan = run(&owner, &[healthy(0, "r1"), healthy(1, "r1")], &claims, "r1", "r1");
        assert_eq!(summary(&plan), vec![vec!["patch persistentvolumeclaims/www-web-1"], vec!["delete pods/web-1"]]);
        let Write::Patch { patch, .. } = &plan.steps[0][0].write else { panic!("a patch") };
        let owners: Vec<OwnerReference> =
            serde_json::from_value(patch["metadata"]["ownerReferences"].clone()).expect("owners");
        assert_eq!(owners.len(), 1);
        assert_eq!((owners[0].kind.as_str(), owners[0].uid.as_str()), ("Pod", "p1"));
    }

    #[test]
    fn a_set_being_deleted_is_left_alone() {
        let mut owner = set(3);
        owner.metadata.deletion_timestamp = Some(NOW.into());
        assert_eq!(run(&owner, &[], &BTreeMap::new(), "r1", "r1"), Plan::default());
    }

    #[test]
    fn the_ready_condition_is_read_from_the_pods_conditions() {
        let condition = Condition { type_: "Ready".into(), status: "True".into(), ..Condition::default() };
        assert!(
            healthy(0, "r1")
                .status
                .conditions
                .contains(&Condition { last_transition_time: Some("2026-12-05T03:59:00Z".into()), ..condition })
        );
    }
}
