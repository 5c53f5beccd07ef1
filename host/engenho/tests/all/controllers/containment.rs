//! Goal: a controller component that fails, traps, loops, asks the host
//! for more than it serves or refuses its configuration harms only its
//! own keys: a failing key is retried with
//! backoff and a warning Event names the controller and the error; the
//! API keeps serving; a new version that refuses its configuration is
//! refused and one that traps on its first calls is rolled back, each
//! with the reason on the Plugin's status, while the version before keeps
//! reconciling.
//! Method: a real `engenho up` node; the `misbehaving-controller` test
//! component pushed and installed as signed Plugins (its service account
//! bound to a ClusterRole for ConfigMaps and Events), its configuration
//! changed with `kubectl patch`; ConfigMaps labelled `probe=yes` are its
//! keys; everything observed with kubectl (annotations, Events, the
//! Plugins' status), waiting on conditions with deadlines.

use std::time::Duration;

use serde_json::Value;

use crate::admission::{signed, signer};
use crate::plugin_trust::upload_component;
use crate::support::{EngenhoNode, Kubectl, wait_for};

const LIMIT: Duration = Duration::from_secs(40);

fn json(kubectl: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl.ok(args)).expect("kubectl prints JSON")
}

fn install(kubectl: &Kubectl, node: &EngenhoNode, digest: &str, name: &str, config: &str) {
    let plugin = format!(
        r#"{{"apiVersion": "engenho.io/v1alpha1", "kind": "Plugin", "metadata": {{"name": "{name}"}},
        "spec": {{"world": "controller-plugin", "digest": "{digest}", "config": {config},
        "limits": {{"deadlineMillis": 200}}}}}}"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&signed(&signer(node), &plugin)));
}

fn condition(kubectl: &Kubectl, plugin: &str) -> (String, String, String) {
    let plugin = json(kubectl, &["get", "plugin", plugin, "-o", "json"]);
    let text = |field: &str| plugin["status"]["conditions"][0][field].as_str().unwrap_or_default().to_owned();
    (text("status"), text("reason"), text("message"))
}

fn probe(kubectl: &Kubectl, name: &str) {
    kubectl.ok(&["create", "configmap", name]);
    kubectl.ok(&["label", "configmap", name, "probe=yes"]);
}

fn reconciled_by(kubectl: &Kubectl, name: &str) -> String {
    let map = json(kubectl, &["get", "configmap", name, "-o", "json"]);
    map["metadata"]["annotations"]["probe/reconciled-by"].as_str().unwrap_or_default().to_owned()
}

fn events(kubectl: &Kubectl, object: &str, reason: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={object},reason={reason}");
    let listed = json(kubectl, &["get", "events", "--field-selector", &selector, "-o", "json"]);
    listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn misbehaving_controllers_are_contained_refused_and_rolled_back() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "containment");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let digest = upload_component(&kubectl, "misbehaving-controller");
    kubectl.ok(&[
        "create",
        "clusterrole",
        "probe",
        "--verb=get,list,watch,create,update,patch",
        "--resource=configmaps,events",
    ]);
    for account in ["probe-controller", "failer", "looper", "overfetcher"] {
        let subject = format!("--serviceaccount=kube-system:{account}");
        kubectl.ok(&["create", "clusterrolebinding", account, "--clusterrole=probe", &subject]);
    }

    // A working version reconciles as its own service account.
    install(&kubectl, &node, &digest, "probe-controller", r#"{"mode": "ok", "tag": "v1"}"#);
    wait_for("the probe to be active", LIMIT, || condition(&kubectl, "probe-controller").0 == "True");
    probe(&kubectl, "first");
    wait_for("v1 to reconcile the first probe", LIMIT, || reconciled_by(&kubectl, "first") == "v1");
    assert_eq!(events(&kubectl, "first", "Reconciled"), ["reconciled by v1"]);

    // A version that traps on its first calls is rolled back.
    kubectl.ok(&[
        "patch",
        "plugin",
        "probe-controller",
        "--type=merge",
        "-p",
        r#"{"spec":{"config":{"mode":"trap","tag":"v2"}}}"#,
    ]);
    wait_for("the trapping version to be swapped in", LIMIT, || {
        condition(&kubectl, "probe-controller").2.contains("is active") && !reconciled_by(&kubectl, "first").is_empty()
    });
    probe(&kubectl, "second");
    wait_for("the trapping version to be rolled back", LIMIT, || {
        condition(&kubectl, "probe-controller").1 == "RolledBack"
    });
    let (status, _, message) = condition(&kubectl, "probe-controller");
    assert_eq!(status, "False");
    assert!(message.contains("failed its first calls and was rolled back"), "{message}");
    wait_for("v1 to reconcile the second probe after the rollback", LIMIT, || {
        reconciled_by(&kubectl, "second") == "v1"
    });
    assert!(
        events(&kubectl, "second", "ReconcileError").iter().any(|m| m.contains("controller probe-controller")),
        "the trap is recorded on the object"
    );

    // A version that refuses its configuration is refused; v1 goes on.
    kubectl.ok(&[
        "patch",
        "plugin",
        "probe-controller",
        "--type=merge",
        "-p",
        r#"{"spec":{"config":{"mode":"refuse"}}}"#,
    ]);
    wait_for("the refusing version to be refused", LIMIT, || condition(&kubectl, "probe-controller").1 == "Refused");
    assert!(condition(&kubectl, "probe-controller").2.contains("refused on purpose"));
    probe(&kubectl, "third");
    wait_for("v1 to reconcile the third probe", LIMIT, || reconciled_by(&kubectl, "third") == "v1");

    // Controllers that fail, loop or over-ask: their keys are retried with backoff,
    // each failure recorded, and the API answers meanwhile.
    install(&kubectl, &node, &digest, "failer", r#"{"mode": "fail"}"#);
    install(&kubectl, &node, &digest, "looper", r#"{"mode": "loop"}"#);
    install(&kubectl, &node, &digest, "overfetcher", r#"{"mode": "overfetch"}"#);
    probe(&kubectl, "fourth");
    wait_for("the failures to be recorded", LIMIT, || {
        let failed = events(&kubectl, "fourth", "ReconcileFailed");
        let looped = events(&kubectl, "fourth", "ReconcileError");
        failed.iter().any(|m| m == "controller failer: failed on purpose")
            && failed.iter().any(|m| {
                m == "controller overfetcher: RequestEntityTooLarge (413): one fetch may ask for 10000 versions at most"
            })
            && looped.iter().any(|m| m.contains("controller looper") && m.contains("deadline"))
    });
    let started = std::time::Instant::now();
    kubectl.ok(&["get", "namespaces"]);
    assert!(started.elapsed() < Duration::from_secs(5), "the API answers while a controller loops");
    let failer_events = || -> Vec<Value> {
        let selector = "involvedObject.name=fourth,reason=ReconcileFailed";
        let listed = json(&kubectl, &["get", "events", "--field-selector", selector, "-o", "json"]);
        let failer = |event: &&Value| event["message"] == "controller failer: failed on purpose";
        listed["items"].as_array().into_iter().flatten().filter(failer).cloned().collect()
    };
    wait_for("a failing key to be retried", LIMIT, || {
        failer_events().first().is_some_and(|event| event["count"].as_i64().unwrap_or(0) >= 3)
    });
    assert_eq!(failer_events().len(), 1, "repeats are counted on one Event");
    node.stop();
}
