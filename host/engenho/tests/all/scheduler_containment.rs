//! Goal: a scheduler plugin that traps, runs past its deadline or answers
//! the wrong number of verdicts harms only the pods of its profile: each
//! stays Pending with a `PodScheduled` condition and a `FailedScheduling`
//! Event that name the plugin, while the scheduler goes on placing other
//! pods; a new version that traps on its first cycles is rolled back by
//! itself, with the reason on the profile's status, and the version before
//! places the pods; a profile naming an unknown, wrongly signed or refusing
//! plugin is refused with the reason on its status.
//! Method: a real `engenho up` node with two Node objects; the
//! `misbehaving-scheduler` test component pushed and installed as signed
//! Plugins, its mode changed with `kubectl patch`; SchedulerProfiles and
//! pods applied with kubectl; every step waits, with a deadline, on what
//! kubectl shows.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admission::{signed, signer};
use crate::plugin_trust::upload_component;
use crate::scheduler::{DEADLINE, bindings, condition, pod_with_spec, register_node, wait_bound};
use crate::support::{EngenhoNode, Kubectl, wait_for};

/// Installs the misbehaving component (`digest`) as Plugin `name` in `mode`,
/// signed by the node's key (when `forged`, a signature made for another
/// name).
fn install(kubectl: &Kubectl, node: &EngenhoNode, digest: &str, name: &str, mode: &str, forged: bool) {
    let plugin = |name: &str| {
        format!(
            r#"{{"apiVersion": "engenho.io/v1alpha1", "kind": "Plugin", "metadata": {{"name": "{name}"}},
            "spec": {{"world": "scheduler-plugin", "digest": "{digest}", "config": {{"mode": "{mode}"}},
            "limits": {{"deadlineMillis": 200}}}}}}"#
        )
    };
    let signed = if forged {
        let mut object: Value =
            serde_json::from_str(&signed(&signer(node), &plugin("another"))).expect("a signed Plugin");
        object["metadata"]["name"] = name.into();
        object.to_string()
    } else {
        signed(&signer(node), &plugin(name))
    };
    kubectl.ok_with(&["apply", "-f", "-"], Some(&signed));
}

/// Applies profile `name` (its scheduler name too) running node-resources-fit
/// then `plugin`.
fn profile(kubectl: &Kubectl, name: &str, plugin: &str) {
    let profile = format!(
        r#"{{"apiVersion": "engenho.io/v1alpha1", "kind": "SchedulerProfile", "metadata": {{"name": "{name}"}},
        "spec": {{"schedulerName": "{name}", "plugins": [{{"name": "node-resources-fit"}}, {{"name": "{plugin}"}}]}}}}"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&profile));
}

/// The Ready condition of profile `name`: status, reason, message.
fn profile_condition(kubectl: &Kubectl, name: &str) -> (String, String, String) {
    let profile = kubectl.json(&["get", "schedulerprofile", name, "-o", "json"]);
    let text = |field: &str| profile["status"]["conditions"][0][field].as_str().unwrap_or_default().to_owned();
    (text("status"), text("reason"), text("message"))
}

/// A pod for scheduler `scheduler`, labelled `app=<name>`.
fn scheduled_by(kubectl: &Kubectl, name: &str, scheduler: &str) {
    let spec = format!(r#", "schedulerName": "{scheduler}""#);
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod_with_spec(name, "", &spec)));
}

/// The messages of pod `pod`'s events of `reason`.
fn events(kubectl: &Kubectl, pod: &str, reason: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={pod},reason={reason}");
    let listed = kubectl.json(&["get", "events", "--field-selector", &selector, "-o", "json"]);
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    items.iter().map(|e| e["message"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until pod `pod` is Pending with a `SchedulerError` condition whose
/// message holds `words`, and an Event saying the same.
fn wait_scheduler_error(kubectl: &Kubectl, pod: &str, words: &[&str]) {
    let says = |message: &str| words.iter().all(|w| message.contains(w));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let object: Value = kubectl.json(&["get", "pod", pod, "-o", "json"]);
        let scheduled = condition(&object, "PodScheduled").unwrap_or_default();
        let told = scheduled["reason"] == "SchedulerError" && scheduled["message"].as_str().is_some_and(says);
        let events = events(kubectl, pod, "FailedScheduling");
        if told && events.iter().any(|m| says(m)) {
            break;
        }
        assert!(Instant::now() < deadline, "{pod} was not told its plugin failed: {scheduled} {events:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(bindings(kubectl, &format!("app={pod}")), [""], "{pod} stays Pending");
}

#[test]
fn misbehaving_scheduler_plugins_are_contained_refused_and_rolled_back() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "sched-containment");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    register_node(&kubectl, "one", "4", "a", "[]");
    register_node(&kubectl, "two", "4", "b", "[]");
    let digest = upload_component(&kubectl, "misbehaving-scheduler");

    // A working version places the pods of its profile.
    install(&kubectl, &node, &digest, "probe", "ok", false);
    profile(&kubectl, "probing", "probe");
    wait_for("the probing profile active", DEADLINE, || profile_condition(&kubectl, "probing").1 == "Active");
    scheduled_by(&kubectl, "first", "probing");
    wait_bound(&kubectl, "app=first", 1);

    // A version that traps on its first cycles is rolled back; the version
    // before places the pods, the one that met the trap included.
    kubectl.ok(&["patch", "plugin", "probe", "--type=merge", "-p", r#"{"spec":{"config":{"mode":"trap"}}}"#]);
    let mut probes = 0;
    wait_for("the trapping version to be rolled back", DEADLINE, || {
        probes += 1;
        let name = format!("probe-{probes}");
        scheduled_by(&kubectl, &name, "probing");
        wait_bound(&kubectl, &format!("app={name}"), 1);
        profile_condition(&kubectl, "probing").1 == "RolledBack"
    });
    let (status, _, message) = profile_condition(&kubectl, "probing");
    assert_eq!(status, "False");
    assert!(
        message.contains("the one before it runs again") && message.contains("scheduler plugin probe"),
        "{message}"
    );
    scheduled_by(&kubectl, "after-rollback", "probing");
    wait_bound(&kubectl, "app=after-rollback", 1);
    let met_the_trap = format!("probe-{probes}");
    assert!(
        events(&kubectl, &met_the_trap, "FailedScheduling").iter().any(|m| m.contains("scheduler plugin probe")),
        "the pod that met the trap was told"
    );

    // Fresh profiles whose plugin traps, loops, miscounts or names a
    // refusal it does not give: their pods stay Pending and are told which
    // plugin failed.
    let modes =
        [("trapper", "trap"), ("looper", "loop"), ("miscounter", "wrong-count"), ("misnumberer", "bad-refusal")];
    for (plugin, mode) in modes {
        install(&kubectl, &node, &digest, plugin, mode, false);
        profile(&kubectl, plugin, plugin);
        wait_for(&format!("the {plugin} profile active"), DEADLINE, || {
            profile_condition(&kubectl, plugin).1 == "Active"
        });
        scheduled_by(&kubectl, &format!("{plugin}-pod"), plugin);
    }
    wait_scheduler_error(&kubectl, "trapper-pod", &["scheduler plugin trapper", "trap"]);
    wait_scheduler_error(&kubectl, "looper-pod", &["scheduler plugin looper", "deadline"]);
    // Two test Nodes and the node's own.
    wait_scheduler_error(
        &kubectl,
        "miscounter-pod",
        &["scheduler plugin miscounter", "2 verdicts for 3 candidate nodes"],
    );
    wait_scheduler_error(&kubectl, "misnumberer-pod", &["scheduler plugin misnumberer", "refusal 7, of 0 given"]);

    // Meanwhile the default profile goes on placing pods.
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod_with_spec("bystander", "", "")));
    wait_bound(&kubectl, "app=bystander", 1);

    // Unknown, wrongly signed and refusing plugins are refused on the status.
    profile(&kubectl, "ghostly", "no-such-plugin");
    install(&kubectl, &node, &digest, "forged", "ok", true);
    profile(&kubectl, "untrusted", "forged");
    install(&kubectl, &node, &digest, "refuser", "refuse", false);
    profile(&kubectl, "refusing", "refuser");
    for (name, words) in [
        ("ghostly", "plugin \"no-such-plugin\": no such Plugin"),
        ("untrusted", "plugin \"forged\": the signature over the name, world, digest"),
        ("refusing", "refused on purpose"),
    ] {
        wait_for(&format!("the {name} profile refused"), DEADLINE, || {
            let (status, reason, message) = profile_condition(&kubectl, name);
            status == "False" && reason == "Refused" && message.contains(words)
        });
    }
    node.stop();
}
