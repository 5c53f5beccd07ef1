//! A dry-run create or update (`?dryRun=All`) of a `SchedulerProfile`
//! answers with a trial of the profile (`engenho_scheduling::trial`) under
//! `status.trial`: where the cluster's pending pods that name its
//! `schedulerName` would go under it (and, with [`TRY_ALL_ANNOTATION`],
//! every pod bound under that name, as if placed again), compared with
//! today, with every plugin's verdicts and scores for the pods that
//! [`EXPLAIN_ANNOTATION`] names. Nothing is written.
//!
//! The report names every pod and node, so the caller must also be allowed
//! to list pods and nodes cluster-wide. One trial runs on a node at a time
//! (another is refused with 429 and `Retry-After`), for at most
//! [`TRIAL_DEADLINE`] (then 504), its plugin instances taken only while
//! the scheduler keeps its share of the node's.

use std::collections::BTreeMap;
use std::time::Duration;

use engenho_scheduling::trial::{self, Comparison, Explanation, NodeJudgement, Outcome, PodName, PodTrial};
use engenho_scheduling::{Report, Snapshot, TrialError, TrialRequest};
use engenho_wasm::{PluginError, SCHEDULER_INSTANCES_SPARED};
use serde_json::{Value, json};

use super::super::auth::UserInfo;
use super::super::handlers::ApiState;
use super::super::objects::WriteOptions;
use super::super::rbac::{Attributes, ResourceAttributes};
use super::super::resources::ResourceType;
use super::super::status::{ApiError, Cause};
use super::{GROUP, PROFILES_PLURAL, ProfileLoader, ProfileObject, ProfileRefused, TrustRoot, workload_selector};

/// The annotation that asks for every pod bound under the profile's
/// scheduler name to be placed again, not only the pending ones: `"true"`.
pub const TRY_ALL_ANNOTATION: &str = "scheduler.engenho.io/try-all";

/// The annotation that names the pods to explain: `namespace/name`, comma
/// separated.
pub const EXPLAIN_ANNOTATION: &str = "scheduler.engenho.io/explain";

/// Longest a trial runs.
pub const TRIAL_DEADLINE: Duration = Duration::from_secs(60);

/// Pods a report lists at most (the changed ones first); it counts the
/// others.
pub const REPORTED_PODS_MAX: usize = 500;

/// Nodes an explanation lists at most (the best totals first); it counts
/// the others.
pub const EXPLAINED_NODES_MAX: usize = 100;

/// What a busy node tells the client to wait before trying again.
const RETRY_AFTER_SECONDS: u32 = 5;

/// The node's trials: at most one at a time.
#[derive(Debug, Default)]
pub struct Trials {
    running: tokio::sync::Mutex<()>,
}

/// `object`, the answer to a write of kind `t` (of `subresource`), with a
/// trial's report under `status.trial` when the write is a dry run of a
/// `SchedulerProfile`; any other write's answer as it is.
///
/// # Errors
/// 403 when the author may not list pods and nodes cluster-wide; 400 for
/// annotations that do not parse; 422 naming a plugin that cannot be
/// loaded; 429 while another trial runs or the scheduler's instances are
/// short; 504 past [`TRIAL_DEADLINE`].
pub(in crate::kube) async fn answer(
    state: &ApiState,
    t: &ResourceType,
    subresource: Option<&str>,
    write: &WriteOptions,
    object: Value,
) -> Result<Value, ApiError> {
    if !write.dry_run || (t.group, t.plural) != (GROUP, PROFILES_PLURAL) || subresource.is_some_and(|s| !s.is_empty()) {
        return Ok(object);
    }
    let user = write.author.as_ref().ok_or_else(ApiError::unauthorized)?;
    authorize(state, user)?;
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let request = request_of(&object, &name)?;
    let Ok(_running) = state.scheduler_trials.running.try_lock() else {
        let busy = "a scheduler profile trial is running on this server; please try again later";
        return Err(ApiError::too_many_requests(busy).retry_after(RETRY_AFTER_SECONDS));
    };
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(TRIAL_DEADLINE, run(state, &object, &name, &request)).await.map_err(|_| {
        ApiError::timeout(format!("the trial of scheduler profile {name:?} ran past its {TRIAL_DEADLINE:?} deadline"))
    })??;
    let mut object = object;
    if !object.get("status").is_some_and(Value::is_object) {
        object["status"] = json!({});
    }
    let mut report = report;
    report["tookMillis"] = json!(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    object["status"]["trial"] = report;
    Ok(object)
}

/// 403 unless `user` may list pods and nodes cluster-wide: the report
/// names every one.
fn authorize(state: &ApiState, user: &UserInfo) -> Result<(), ApiError> {
    let mut missing = Vec::new();
    for resource in ["pods", "nodes"] {
        let attributes = Attributes {
            verb: "list".into(),
            resource: Some(ResourceAttributes { resource: resource.into(), ..ResourceAttributes::default() }),
            path: String::new(),
        };
        if state.authorizer.authorize(user, &attributes)?.is_none() {
            missing.push(format!("resource \"{resource}\""));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::forbidden_on(
        format!(
            "a trial of a scheduler profile reports every pod and node: User \"{}\" cannot list {} in API group \"\" \
             at the cluster scope",
            user.name,
            missing.join(" or ")
        ),
        GROUP,
        PROFILES_PLURAL,
        "",
    ))
}

/// The trial `object` asks for, from its annotations.
fn request_of(object: &Value, name: &str) -> Result<TrialRequest, ApiError> {
    let annotation =
        |key: &str| object.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str);
    let invalid = |key: &str, message: String| {
        let field = format!("metadata.annotations[{key}]");
        let cause = Cause { reason: "FieldValueInvalid".into(), message, field };
        ApiError::invalid(GROUP, "SchedulerProfile", name, vec![cause])
    };
    let all = match annotation(TRY_ALL_ANNOTATION).map(str::trim) {
        None | Some("false" | "") => false,
        Some("true") => true,
        Some(other) => return Err(invalid(TRY_ALL_ANNOTATION, format!("{other:?}: must be \"true\" or \"false\""))),
    };
    let mut explain = Vec::new();
    for entry in annotation(EXPLAIN_ANNOTATION).unwrap_or_default().split(',').map(str::trim).filter(|e| !e.is_empty())
    {
        let Some((namespace, pod)) = entry.split_once('/').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
            return Err(invalid(EXPLAIN_ANNOTATION, format!("{entry:?}: must be namespace/name")));
        };
        explain.push(PodName { namespace: namespace.to_owned(), name: pod.to_owned() });
    }
    if explain.len() > trial::EXPLAINED_PODS_MAX {
        let message = format!("{} pods: at most {} may be explained", explain.len(), trial::EXPLAINED_PODS_MAX);
        return Err(invalid(EXPLAIN_ANNOTATION, message));
    }
    let scheduler_name = object.pointer("/spec/schedulerName").and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(TrialRequest { scheduler_name, all, explain })
}

/// Loads the profile's plugins, reads the snapshot, runs the trial; its
/// report as JSON.
async fn run(state: &ApiState, object: &Value, name: &str, request: &TrialRequest) -> Result<Value, ApiError> {
    let registry = state.registry();
    let plugins_type =
        registry.find_plural(GROUP, "plugins").ok_or_else(|| ApiError::unavailable("the Plugin kind is not served"))?;
    // Loading configures a first instance of each plugin.
    spare_instances(state)?;
    let spec: ProfileObject = object
        .get("spec")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("the profile's spec could not be read: {e}")))?
        .unwrap_or_default();
    let trust = TrustRoot::read(&state.objects, &registry);
    let profile = ProfileLoader::default()
        .settle(state, &spec, plugins_type, &trust)
        .await
        .map_err(|refused| refusal(name, &refused))?;
    let (snapshot, revision, spread) = snapshot(state).await?;
    let spread = move |namespace: &str, labels: &BTreeMap<String, String>| {
        let mut together: engenho_scheduler::LabelSelector = Vec::new();
        for (_, selector) in
            spread.iter().filter(|(n, s)| n == namespace && engenho_scheduling::view::selects(s, labels))
        {
            together.extend(selector.iter().cloned());
        }
        (!together.is_empty()).then_some(together)
    };
    let report = engenho_scheduling::trial(&state.plugin_host, &profile, &snapshot, &spread, request)
        .await
        .map_err(|error| trial_error(name, &spec, &error))?;
    Ok(report_json(&report, revision, request))
}

/// 429 unless the scheduler keeps its share of the node's instances.
fn spare_instances(state: &ApiState) -> Result<(), ApiError> {
    let free = state.plugin_host.scheduler_instances_free();
    if free > SCHEDULER_INSTANCES_SPARED {
        return Ok(());
    }
    let message = format!(
        "{free} of this server's scheduler plugin instances are free, and {SCHEDULER_INSTANCES_SPARED} are kept for \
         the scheduler: a trial cannot start now"
    );
    Err(ApiError::too_many_requests(message).retry_after(RETRY_AFTER_SECONDS))
}

/// The Nodes, Pods and Namespaces as of one store revision, that revision,
/// and the selectors of the Services, ReplicaSets and StatefulSets of the
/// same revision by namespace (for default spreading).
async fn snapshot(
    state: &ApiState,
) -> Result<(Snapshot, i64, Vec<(String, engenho_scheduler::LabelSelector)>), ApiError> {
    let registry = state.registry();
    let kind = |group: &str, plural: &str| {
        registry.find_plural(group, plural).ok_or_else(|| ApiError::unavailable(format!("{plural} are not served")))
    };
    state.objects.read_barrier().await?;
    let nodes = state.objects.list_at(kind("", "nodes")?, None, 0)?;
    let revision = nodes.revision;
    let pods = state.objects.list_at(kind("", "pods")?, None, revision)?;
    let namespaces = state.objects.list_at(kind("", "namespaces")?, None, revision)?;
    let mut spread = Vec::new();
    for (group, plural) in [("", "services"), ("apps", "replicasets"), ("apps", "statefulsets")] {
        let Some(t) = registry.find_plural(group, plural) else { continue };
        for object in state.objects.list_at(t, None, revision)?.items {
            if let Some(selector) = workload_selector(plural == "services", &object) {
                let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
                spread.push((namespace.to_owned(), selector));
            }
        }
    }
    let snapshot = Snapshot { nodes: nodes.items, pods: pods.items, namespaces: namespaces.items };
    Ok((snapshot, revision, spread))
}

/// The Status of a profile whose plugins cannot be loaded: 422 naming the
/// plugin and its place in the spec.
fn refusal(name: &str, refused: &ProfileRefused) -> ApiError {
    match refused {
        ProfileRefused::Plugin { index, message, .. } => {
            let cause = Cause {
                reason: "FieldValueInvalid".into(),
                message: message.clone(),
                field: format!("spec.plugins[{index}].name"),
            };
            ApiError::invalid(GROUP, "SchedulerProfile", name, vec![cause])
        }
        ProfileRefused::NoPlugins => {
            let cause = Cause {
                reason: "FieldValueRequired".into(),
                message: refused.to_string(),
                field: "spec.plugins".into(),
            };
            ApiError::invalid(GROUP, "SchedulerProfile", name, vec![cause])
        }
        ProfileRefused::SignersUnknown(_) => ApiError::unavailable(refused.to_string()),
    }
}

/// The Status of a trial that could not run.
fn trial_error(name: &str, spec: &ProfileObject, error: &TrialError) -> ApiError {
    match error {
        TrialError::Start(cycle) if matches!(cycle.error, PluginError::Busy { .. }) => {
            ApiError::too_many_requests(error.to_string()).retry_after(RETRY_AFTER_SECONDS)
        }
        TrialError::Start(cycle) => {
            let index = spec.plugins.iter().position(|p| p.name == cycle.plugin).unwrap_or_default();
            let refused = ProfileRefused::Plugin { index, name: cycle.plugin.clone(), message: error.to_string() };
            refusal(name, &refused)
        }
        TrialError::TooManyExplained { .. } | TrialError::NoPlugins => ApiError::bad_request(error.to_string()),
    }
}

/// The report as `status.trial` holds it.
fn report_json(report: &Report, revision: i64, request: &TrialRequest) -> Value {
    let summary = report.summary();
    // The pods that change first: they are what a reader looks for.
    let mut pods: Vec<&PodTrial> = report.pods.iter().collect();
    pods.sort_by_key(|p| p.comparison() == Comparison::Same);
    let listed: Vec<Value> = pods.iter().take(REPORTED_PODS_MAX).map(|p| pod_json(p)).collect();
    json!({
        "revision": revision.to_string(),
        "schedulerName": request.scheduler_name,
        "allPods": request.all,
        "summary": {
            "pods": summary.pods,
            "same": summary.same,
            "moved": summary.moved,
            "placed": summary.placed,
            "unschedulable": summary.unschedulable,
            "failed": summary.failed,
        },
        "podsLeftOut": report.pods.len() - listed.len(),
        "pods": listed,
        "explanations": report.explanations.iter().map(explanation_json).collect::<Vec<_>>(),
    })
}

fn comparison_name(comparison: Comparison) -> &'static str {
    match comparison {
        Comparison::Same => "Same",
        Comparison::Moved => "Moved",
        Comparison::Placed => "Placed",
        Comparison::Unschedulable => "Unschedulable",
        Comparison::Failed => "Failed",
    }
}

/// The node and the message of an outcome.
fn outcome_parts(outcome: &Outcome) -> (Option<&str>, Option<&str>) {
    match outcome {
        Outcome::Placed(node) => (Some(node), None),
        Outcome::Unschedulable(message) | Outcome::Failed(message) => (None, Some(message)),
    }
}

fn pod_json(pod: &PodTrial) -> Value {
    let (node, message) = outcome_parts(&pod.outcome);
    let mut row = json!({
        "namespace": pod.pod.namespace,
        "name": pod.pod.name,
        "today": pod.today,
        "trial": node,
        "result": comparison_name(pod.comparison()),
    });
    if let Some(message) = message {
        row["message"] = json!(message);
    }
    row
}

fn explanation_json(explanation: &Explanation) -> Value {
    let mut nodes: Vec<&NodeJudgement> = explanation.nodes.iter().collect();
    nodes.sort_by_key(|n| std::cmp::Reverse(n.total));
    let listed: Vec<Value> = nodes.iter().take(EXPLAINED_NODES_MAX).map(|n| judgement_json(n)).collect();
    let mut entry = json!({
        "namespace": explanation.pod.namespace,
        "name": explanation.pod.name,
        "nodes": listed,
        "nodesLeftOut": explanation.nodes.len() - listed.len(),
    });
    if let Some(outcome) = &explanation.outcome {
        let (node, message) = outcome_parts(outcome);
        entry["chosen"] = json!(node);
        if let Some(message) = message {
            entry["message"] = json!(message);
        }
    }
    if let Some(reason) = &explanation.not_placed {
        entry["message"] = json!(format!("not placed by this trial: {reason}"));
    }
    entry
}

fn judgement_json(judgement: &NodeJudgement) -> Value {
    let verdicts: Vec<Value> = judgement
        .verdicts
        .iter()
        .map(|(plugin, verdict)| {
            let (name, reasons): (&str, &[String]) = match verdict {
                engenho_scheduler::Verdict::Fits => ("Fits", &[]),
                engenho_scheduler::Verdict::Unfit(reasons) => ("Unfit", reasons),
                engenho_scheduler::Verdict::Unresolvable(reasons) => ("Unresolvable", reasons),
            };
            json!({"plugin": plugin, "verdict": name, "reasons": reasons})
        })
        .collect();
    let scores: Vec<Value> = judgement
        .scores
        .iter()
        .map(|(plugin, score, weight)| json!({"plugin": plugin, "score": score, "weight": weight}))
        .collect();
    json!({
        "name": judgement.node,
        "feasible": judgement.feasible(),
        "filters": verdicts,
        "scores": scores,
        "total": judgement.total,
    })
}
