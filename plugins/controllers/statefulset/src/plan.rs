//! What one reconcile of a StatefulSet does, decided from what was read:
//! which claims and pods to create, which pods to delete, in which order,
//! as Kubernetes' `StatefulSetControl` decides it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engenho_controller::kinds::{PERSISTENT_VOLUME_CLAIMS, PODS};
use engenho_controller::{Propagation, Write};
use serde_json::{Value, json};

use crate::identity;
use crate::model::{Claim, Pod, StatefulSet};

/// A revision the plan makes pods from.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The ControllerRevision's name, the pods' `controller-revision-hash`.
    pub name: String,
    /// The pod template it records.
    pub template: Value,
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
        if pod.is_finished() {
            if !pod.is_terminating() {
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
        if pod.is_terminating() || !pod.is_running_and_ready() {
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
        if pod.is_terminating() {
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
        if pod.revision() != input.update.name && !pod.is_terminating() {
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
