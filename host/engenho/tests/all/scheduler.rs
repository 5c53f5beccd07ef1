//! Goal: the scheduler places pods as kube-scheduler's default profile
//! would, with the built-in WASM plugins: a deployment's pods are bound
//! across the nodes that take them (never the tainted one); a pod whose
//! requests fit one node only lands there; required node affinity picks its
//! node; required anti-affinity on the hostname spreads replicas; a hard
//! topology spread constraint spreads them evenly over zones; a pod that
//! fits nowhere stays Pending with kube-scheduler's message on its
//! `PodScheduled` condition and a `FailedScheduling` Event (as `kubectl
//! describe pod` shows); a pod naming no profile stays Pending and says why.
//! Method: a real `engenho up` node; Nodes registered with `kubectl apply`
//! (capacity, labels, taints) and made Ready through their status; every
//! step waits, with a deadline, on what kubectl shows.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::{EngenhoNode, Kubectl, wait_for};

pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Registers Node `name` with `cpu` allocatable, `zone`, and `taints`
/// (JSON), and reports it Ready.
pub(crate) fn register_node(kubectl: &Kubectl, name: &str, cpu: &str, zone: &str, taints: &str) {
    let node = format!(
        r#"{{"apiVersion": "v1", "kind": "Node",
  "metadata": {{"name": "{name}", "labels": {{"kubernetes.io/hostname": "{name}", "topology.kubernetes.io/zone": "{zone}"}}}},
  "spec": {{"taints": {taints}}}}}"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&node));
    let status = format!(
        r#"{{"status":{{"capacity":{{"cpu":"{cpu}","memory":"8Gi","pods":"110"}},"allocatable":{{"cpu":"{cpu}","memory":"8Gi","pods":"110"}},"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady"}}]}}}}"#
    );
    kubectl.ok(&["patch", "node", name, "--subresource=status", "--type=merge", "-p", &status]);
}

/// The node each pod labelled `selector` is bound to (empty: not bound).
pub(crate) fn bindings(kubectl: &Kubectl, selector: &str) -> Vec<String> {
    let list = kubectl.json(&["get", "pods", "-l", selector, "-o", "json"]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items.iter().map(|pod| pod["spec"]["nodeName"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until `count` pods labelled `selector` are bound; their nodes.
pub(crate) fn wait_bound(kubectl: &Kubectl, selector: &str, count: usize) -> Vec<String> {
    let mut nodes = Vec::new();
    wait_for(&format!("{count} pods {selector} bound"), DEADLINE, || {
        nodes = bindings(kubectl, selector);
        nodes.len() == count && nodes.iter().all(|n| !n.is_empty())
    });
    nodes
}

pub(crate) fn pod(name: &str, spec_extra: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "labels": {{"app": "{name}"}}}},
  "spec": {{"containers": [{{"name": "c", "image": "nginx:1.27"{spec_extra}}}]}}}}"#
    )
}

pub(crate) fn pod_with_spec(name: &str, container_extra: &str, spec_extra: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "labels": {{"app": "{name}"}}}},
  "spec": {{"containers": [{{"name": "c", "image": "nginx:1.27"{container_extra}}}]{spec_extra}}}}}"#
    )
}

pub(crate) fn condition(pod: &Value, kind: &str) -> Option<Value> {
    pod["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind).cloned()
}

/// A node `name` under `root`, its default profile active, with three
/// Nodes: `small` (2 CPUs, zone a), `large` (4, zone b) and `gpu` (8, zone
/// c, tainted `dedicated=gpu:NoSchedule`).
fn three_nodes(root: &std::path::Path, name: &str) -> (EngenhoNode, Kubectl) {
    let mut node = EngenhoNode::new(root, name);
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    wait_for("the default profile active", DEADLINE, || {
        let profile = kubectl.run(&["get", "schedulerprofile", "default-scheduler", "-o", "json"], None);
        let profile: Value = serde_json::from_slice(&profile.stdout).unwrap_or(Value::Null);
        profile["status"]["conditions"][0]["status"] == "True"
    });
    register_node(&kubectl, "small", "2", "a", "[]");
    register_node(&kubectl, "large", "4", "b", "[]");
    register_node(&kubectl, "gpu", "8", "c", r#"[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]"#);
    (node, kubectl)
}

#[test]
fn the_default_profile_places_pods_as_kube_scheduler_does() {
    let root = tempfile::tempdir().expect("temporary directory");
    let (mut node, kubectl) = three_nodes(root.path(), "scheduler");

    // A deployment's pods go to the untainted nodes, spread by the scores.
    kubectl.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"]);
    let nodes = wait_bound(&kubectl, "app=web", 4);
    assert!(nodes.iter().all(|n| n == "small" || n == "large"), "a pod went to the tainted node: {nodes:?}");
    let distinct: BTreeSet<&String> = nodes.iter().collect();
    assert_eq!(distinct.len(), 2, "the least allocated and balanced scores spread the pods: {nodes:?}");

    // Requests that fit only the large node.
    let big = r#", "resources": {"requests": {"cpu": "3"}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("big", big)));
    assert_eq!(wait_bound(&kubectl, "app=big", 1), vec!["large".to_owned()]);
    let big = kubectl.json(&["get", "pod", "big", "-o", "json"]);
    assert_eq!(condition(&big, "PodScheduled").map(|c| c["status"].clone()), Some("True".into()), "{big}");
    wait_for("the Scheduled event", DEADLINE, || {
        kubectl.ok(&["describe", "pod", "big"]).contains("Successfully assigned default/big to large")
    });

    // Tolerating the taint and asking for the zone by required affinity.
    let affinity = r#", "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
          {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["c"]}]}]}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod_with_spec("trainer", "", affinity)));
    assert_eq!(wait_bound(&kubectl, "app=trainer", 1), vec!["gpu".to_owned()]);

    // Required anti-affinity on the hostname: one replica per node.
    let spread = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "spread"},
      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "spread"}},
        "template": {"metadata": {"labels": {"app": "spread"}}, "spec": {
          "containers": [{"name": "c", "image": "nginx:1.27"}],
          "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "spread"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(spread));
    let spread_nodes = wait_bound(&kubectl, "app=spread", 2);
    assert_ne!(spread_nodes[0], spread_nodes[1], "anti-affinity puts the replicas apart: {spread_nodes:?}");

    // A hard topology spread over zones, counting only the zones whose
    // nodes the pods tolerate: six replicas, three per zone.
    let zoned = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "zoned"},
      "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "zoned"}},
        "template": {"metadata": {"labels": {"app": "zoned"}}, "spec": {
          "containers": [{"name": "c", "image": "nginx:1.27"}],
          "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
            "labelSelector": {"matchLabels": {"app": "zoned"}}}]}}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(zoned));
    let zoned_nodes = wait_bound(&kubectl, "app=zoned", 6);
    let in_zone_a = zoned_nodes.iter().filter(|n| *n == "small").count();
    assert_eq!((in_zone_a, zoned_nodes.len() - in_zone_a), (3, 3), "spread over zones a and b: {zoned_nodes:?}");

    // A pod that fits nowhere.
    let huge = r#", "resources": {"requests": {"cpu": "100"}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("huge", huge)));
    // The test node's own Node is tainted apart (HOST_NODE_APART).
    let expected = "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
                    1 node(s) had untolerated taint {engenho.io/test-host: }, 2 Insufficient cpu. \
                    preemption: 0/4 nodes are available: 2 No preemption victims found for incoming pod, \
                    2 Preemption is not helpful for scheduling..";
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + DEADLINE;
    while !(last["status"] == "False" && last["reason"] == "Unschedulable" && last["message"] == expected) {
        assert!(std::time::Instant::now() < deadline, "the unfittable pod's condition: {last}");
        std::thread::sleep(Duration::from_millis(50));
        let pod = kubectl.json(&["get", "pod", "huge", "-o", "json"]);
        last = condition(&pod, "PodScheduled").unwrap_or_default();
    }
    let described = kubectl.ok(&["describe", "pod", "huge"]);
    assert!(described.contains("FailedScheduling"), "{described}");
    assert!(described.contains(expected), "{described}");
    assert_eq!(bindings(&kubectl, "app=huge"), vec![String::new()]);

    // A pod naming no profile.
    let unknown = r#", "schedulerName": "no-such-scheduler""#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod_with_spec("orphan", "", unknown)));
    wait_for("the pod naming no profile told so", DEADLINE, || {
        let pod = kubectl.json(&["get", "pod", "orphan", "-o", "json"]);
        condition(&pod, "PodScheduled").is_some_and(|c| {
            c["reason"] == "SchedulerProfileNotFound"
                && c["message"].as_str().is_some_and(|m| m.contains("no-such-scheduler"))
        })
    });
    assert_eq!(bindings(&kubectl, "app=orphan"), vec![String::new()]);
    node.stop();
}

/// A candidate for the default profile: no taint check (the gpu node takes
/// anyone) and resources scored MostAllocated (pods packed), with
/// `annotations` (YAML flow mapping).
fn candidate_profile(annotations: &str, extra_plugin: &str) -> String {
    format!(
        r#"apiVersion: engenho.io/v1alpha1
kind: SchedulerProfile
metadata:
  name: default-scheduler
  annotations: {annotations}
spec:
  schedulerName: default-scheduler
  plugins:
  - {{name: node-name, weight: 0}}
  - {{name: node-unschedulable, weight: 0}}
  - {{name: node-affinity, weight: 2}}
  - {{name: node-resources-fit, weight: 1, config: {{scoringStrategy: {{type: MostAllocated}}}}}}
{extra_plugin}"#
    )
}

/// What a trial must leave as it found it.
#[derive(Debug, PartialEq, Eq)]
struct ClusterState {
    /// Every pod's name, resourceVersion and nodeName.
    pods: Vec<(String, String, String)>,
    /// Every Event's name and resourceVersion.
    events: Vec<(String, String)>,
}

fn cluster_state(kubectl: &Kubectl) -> ClusterState {
    let pods = kubectl.json(&["get", "pods", "-A", "-o", "json"]);
    let pods = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let text = |pointer: &str| p.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
            (text("/metadata/name"), text("/metadata/resourceVersion"), text("/spec/nodeName"))
        })
        .collect();
    let events = kubectl.json(&["get", "events", "-A", "-o", "json"]);
    let events = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                e["metadata"]["resourceVersion"].to_string(),
            )
        })
        .collect();
    ClusterState { pods, events }
}

/// Goal: `engenho scheduler try` and a server-side dry run of a
/// SchedulerProfile show where pods would go under a candidate profile,
/// with per-plugin scores for the pods asked about, and change nothing: a
/// pod that fits nowhere today (it does not tolerate the only node big
/// enough) is placed by a candidate without the taint check; with every
/// pod placed again, MostAllocated packs the bound pods together; a
/// candidate naming an unknown plugin is refused with its name; a caller
/// who may not list pods and nodes is refused. Method: a real `engenho up`
/// node with three registered Nodes, pods bound by the default profile and
/// one pending; the CLI through `$KUBECONFIG`, and `kubectl apply
/// --dry-run=server -o yaml`; pods and Events compared before and after.
#[test]
fn a_candidate_profile_is_tried_without_binding_anything() {
    let root = tempfile::tempdir().expect("temporary directory");
    let (mut node, kubectl) = three_nodes(root.path(), "trial");
    let one_cpu = r#", "resources": {"requests": {"cpu": "1"}}"#;
    for name in ["web-a", "web-b"] {
        kubectl.ok_with(&["apply", "-f", "-"], Some(&pod(name, one_cpu)));
        wait_bound(&kubectl, &format!("app={name}"), 1);
    }
    let six_cpus = r#", "resources": {"requests": {"cpu": "6"}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("trainer", six_cpus)));
    wait_for("the trainer found no node", DEADLINE, || {
        let pod = kubectl.json(&["get", "pod", "trainer", "-o", "json"]);
        condition(&pod, "PodScheduled").is_some_and(|c| c["reason"] == "Unschedulable")
    });
    let before = cluster_state(&kubectl);

    let engenho = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_engenho"))
            .args(args)
            .env("KUBECONFIG", node.dir.join("kubeconfig"))
            .output()
            .expect("run engenho")
    };
    let profile = root.path().join("candidate.yaml");
    std::fs::write(&profile, candidate_profile("{}", "")).expect("write the candidate");
    let profile_path = profile.to_str().expect("utf-8 path");

    // The pending pod goes to the gpu node; the bound ones are not tried.
    let output = engenho(&["scheduler", "try", profile_path, "--explain", "default/trainer"]);
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    let trainer_line = printed.lines().find(|l| l.starts_with("default/trainer ")).unwrap_or_default();
    let columns: Vec<&str> = trainer_line.split_whitespace().collect();
    assert_eq!(columns, ["default/trainer", "<pending>", "gpu"], "{printed}");
    assert!(
        printed.contains("1 pods of scheduler \"default-scheduler\": 0 same, 0 moved, 1 newly placed"),
        "{printed}"
    );
    assert!(printed.contains("default/trainer: chosen gpu"), "{printed}");
    let header = printed.lines().find(|l| l.starts_with("NODE ")).unwrap_or_default();
    assert!(header.contains("NODE-RESOURCES-FIT") && header.contains("TOTAL"), "{printed}");
    let gpu_row = printed.lines().find(|l| l.starts_with("gpu*")).unwrap_or_default();
    assert!(gpu_row.contains("fits") && gpu_row.contains("x1"), "the fit plugin's verdict and score: {printed}");
    let small_row = printed.lines().find(|l| l.starts_with("small ")).unwrap_or_default();
    assert!(small_row.contains("unfit") && small_row.ends_with(" -"), "an unfit node has no total: {printed}");
    assert!(printed.contains("small: node-resources-fit: Insufficient cpu"), "{printed}");

    // Every pod placed again: MostAllocated packs the web pods together
    // (on the small node, or beside the trainer when it goes first).
    let output = engenho(&["scheduler", "try", profile_path, "--all"]);
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("3 pods of scheduler \"default-scheduler\""), "{printed}");
    let trial_of = |pod: &str| {
        let line = printed.lines().find(|l| l.starts_with(&format!("default/{pod} ")));
        line.map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_owned())
    };
    assert_eq!(trial_of("trainer").as_deref(), Some("gpu"), "{printed}");
    let placed: Vec<String> = ["web-a", "web-b"]
        .iter()
        .map(|web| {
            let today = &before.pods.iter().find(|(name, ..)| name == web).expect("bound").2;
            trial_of(web).unwrap_or_else(|| today.clone())
        })
        .collect();
    assert_eq!(placed[0], placed[1], "MostAllocated packs the web pods together: {printed}");

    // The same through kubectl: the report under status.trial.
    let annotations = r#"{"scheduler.engenho.io/try-all": "true", "scheduler.engenho.io/explain": "default/trainer"}"#;
    let yaml = kubectl
        .ok_with(&["apply", "--dry-run=server", "-f", "-", "-o", "yaml"], Some(&candidate_profile(annotations, "")));
    let applied: Value = serde_yaml::from_str(&yaml).expect("kubectl prints YAML");
    let trial = &applied["status"]["trial"];
    assert_eq!(trial["summary"]["pods"], 3, "{yaml}");
    assert_eq!(trial["summary"]["placed"], 1, "{yaml}");
    assert_eq!(trial["allPods"], true, "{yaml}");
    let trainer = trial["pods"].as_array().into_iter().flatten().find(|p| p["name"] == "trainer").expect("{yaml}");
    assert_eq!((&trainer["trial"], &trainer["result"]), (&Value::from("gpu"), &Value::from("Placed")), "{yaml}");
    let explained = &trial["explanations"][0];
    assert_eq!(explained["chosen"], "gpu", "{yaml}");
    let gpu = explained["nodes"].as_array().into_iter().flatten().find(|n| n["name"] == "gpu").expect("{yaml}");
    let fit = gpu["scores"].as_array().into_iter().flatten().find(|s| s["plugin"] == "node-resources-fit");
    assert!(fit.is_some_and(|s| s["weight"] == 1 && s["score"].is_u64()), "{yaml}");

    // Nothing changed: no binding, no Event, no pod written; the profile as it was.
    assert_eq!(cluster_state(&kubectl), before, "the trials wrote nothing");
    let profile_now = kubectl.json(&["get", "schedulerprofile", "default-scheduler", "-o", "json"]);
    assert_eq!(profile_now["spec"]["plugins"].as_array().map(Vec::len), Some(8), "the profile is unchanged");
    assert!(profile_now["status"].get("trial").is_none());

    // An unknown plugin is refused, named.
    let unknown = candidate_profile("{}", "  - {name: no-such-plugin, weight: 1}\n");
    std::fs::write(&profile, &unknown).expect("write the candidate");
    let output = engenho(&["scheduler", "try", profile_path]);
    let refused = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(refused.contains("no-such-plugin") && refused.contains("no such Plugin"), "{refused}");
    let refused = kubectl.fails(&["apply", "--dry-run=server", "-f", "-"], Some(&unknown));
    assert!(refused.contains("spec.plugins[4].name") && refused.contains("no-such-plugin"), "{refused}");

    // A caller who may write profiles but not list pods and nodes learns why not.
    let role = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "profile-writer"},
      "rules": [{"apiGroups": ["engenho.io"], "resources": ["schedulerprofiles"], "verbs": ["get", "list", "create", "update", "patch"]}]}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(role));
    kubectl.ok(&["create", "clusterrolebinding", "profile-writer", "--clusterrole=profile-writer", "--user=jane"]);
    let refused =
        kubectl.fails(&["apply", "--dry-run=server", "--as=jane", "-f", "-"], Some(&candidate_profile("{}", "")));
    assert!(
        refused.contains("Forbidden") && refused.contains("\"pods\"") && refused.contains("\"nodes\""),
        "{refused}"
    );
    node.stop();
}
