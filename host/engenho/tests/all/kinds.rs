//! Goal: every built-in kind of Kubernetes 1.32 is served as kube-apiserver
//! serves it: an application's manifests apply, list, explain and delete;
//! kinds served at two versions or under two groups are one object; the
//! read-only and create-only kinds say so in discovery; the server keeps
//! its APIServices and system PriorityClasses.
//! Method: a real node and the real kubectl, with a manifest holding one
//! object of every kind added beyond the first release's
//! (`manifests/every-kind.yaml`).

use std::time::Duration;

use crate::support::{EngenhoNode, Kubectl, wait_for};

const EVERY_KIND: &str = include_str!("manifests/every-kind.yaml");

/// Every (resource, namespace or "", name) of the manifest.
const OBJECTS: [(&str, &str, &str); 28] = [
    ("persistentvolumes", "", "kinds-pv"),
    ("persistentvolumeclaims", "default", "kinds-pvc"),
    ("podtemplates", "default", "kinds-template"),
    ("replicationcontrollers", "default", "kinds-rc"),
    ("controllerrevisions.apps", "default", "kinds-revision"),
    ("horizontalpodautoscalers.autoscaling", "default", "kinds-hpa"),
    ("horizontalpodautoscalers.autoscaling", "default", "kinds-hpa-v1"),
    ("ingressclasses.networking.k8s.io", "", "kinds-ingress-class"),
    ("ingresses.networking.k8s.io", "default", "kinds-ingress"),
    ("networkpolicies.networking.k8s.io", "default", "kinds-netpol"),
    ("priorityclasses.scheduling.k8s.io", "", "kinds-priority"),
    ("storageclasses.storage.k8s.io", "", "kinds-sc"),
    ("csidrivers.storage.k8s.io", "", "kinds.csi.example.com"),
    ("csinodes.storage.k8s.io", "", "kinds-node"),
    ("csistoragecapacities.storage.k8s.io", "default", "kinds-capacity"),
    ("volumeattachments.storage.k8s.io", "", "kinds-attachment"),
    ("certificatesigningrequests.certificates.k8s.io", "", "kinds-csr"),
    ("mutatingwebhookconfigurations.admissionregistration.k8s.io", "", "kinds-mutating"),
    ("validatingwebhookconfigurations.admissionregistration.k8s.io", "", "kinds-validating"),
    ("validatingadmissionpolicies.admissionregistration.k8s.io", "", "kinds-policy"),
    ("validatingadmissionpolicybindings.admissionregistration.k8s.io", "", "kinds-policy-binding"),
    ("events.events.k8s.io", "default", "kinds-event"),
    ("apiservices.apiregistration.k8s.io", "", "v1beta1.kinds.example.com"),
    ("prioritylevelconfigurations.flowcontrol.apiserver.k8s.io", "", "kinds-level"),
    ("flowschemas.flowcontrol.apiserver.k8s.io", "", "kinds-flow"),
    ("resourcequotas", "default", "kinds-quota"),
    ("limitranges", "default", "kinds-limits"),
    ("poddisruptionbudgets.policy", "default", "kinds-pdb"),
];

/// Column headers (words joined by one space) of some of the kinds.
const HEADERS: [(&str, &str); 9] = [
    ("persistentvolumeclaims", "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS"),
    ("horizontalpodautoscalers", "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE"),
    ("ingresses", "NAME CLASS HOSTS ADDRESS PORTS AGE"),
    ("priorityclasses", "NAME VALUE GLOBAL-DEFAULT AGE"),
    ("storageclasses", "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE"),
    ("certificatesigningrequests", "NAME AGE SIGNERNAME REQUESTOR REQUESTEDDURATION CONDITION"),
    ("poddisruptionbudgets", "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE"),
    ("resourcequotas", "NAME AGE REQUEST LIMIT"),
    ("apiservices", "NAME SERVICE AVAILABLE AGE"),
];

/// Every verb discovery may list.
const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

fn get_args<'a>(resource: &'a str, namespace: &'a str, name: &'a str) -> Vec<&'a str> {
    let mut args = vec!["get", resource, name, "-o", "name"];
    if !namespace.is_empty() {
        args.extend(["-n", namespace]);
    }
    args
}

#[test]
fn every_kind_applies_lists_explains_and_deletes() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kinds");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    let applied = kubectl.ok_with(&["apply", "-f", "-"], Some(EVERY_KIND));
    assert_eq!(applied.lines().filter(|l| l.ends_with(" created")).count(), OBJECTS.len(), "{applied}");
    let applied = kubectl.ok_with(&["apply", "--server-side", "-f", "-"], Some(EVERY_KIND));
    assert_eq!(applied.lines().filter(|l| l.ends_with(" serverside-applied")).count(), OBJECTS.len(), "{applied}");
    for (resource, namespace, name) in OBJECTS {
        let found = kubectl.ok(&get_args(resource, namespace, name));
        assert!(found.trim().ends_with(&format!("/{name}")), "{resource} {name}: {found}");
        // `events.events.k8s.io` would read as core events' fields.
        let explain: &[&str] = match resource {
            "events.events.k8s.io" => &["explain", "events", "--api-version=events.k8s.io/v1"],
            _ => &["explain", resource],
        };
        let kind = kubectl.ok(explain);
        assert!(kind.contains("KIND:") && kind.contains("DESCRIPTION:"), "explain {resource}: {kind}");
    }

    // kube-apiserver's columns, as kubectl prints them.
    for (resource, header) in HEADERS {
        let table = kubectl.ok(&["get", resource, "-A"]);
        let first = table.lines().next().unwrap_or_default();
        assert!(first.split_whitespace().collect::<Vec<_>>().join(" ").contains(header), "{resource}: {table}");
    }

    // One autoscaler, two versions: written at v1, read at v2, and back.
    let v1 =
        kubectl.ok(&["get", "--raw", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/kinds-hpa"]);
    let v1: serde_json::Value = serde_json::from_str(&v1).expect("json");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80, "{v1}");
    let v2 =
        kubectl.ok(&["get", "--raw", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/kinds-hpa-v1"]);
    let v2: serde_json::Value = serde_json::from_str(&v2).expect("json");
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 60, "{v2}");
    // One event, two groups.
    let core = kubectl.ok(&["get", "--raw", "/api/v1/namespaces/default/events/kinds-event"]);
    let core: serde_json::Value = serde_json::from_str(&core).expect("json");
    assert_eq!(
        (core["message"].as_str(), core["involvedObject"]["kind"].as_str()),
        (Some("every kind applied"), Some("ConfigMap"))
    );

    // kubectl sends the approval as protobuf.
    kubectl.ok(&["certificate", "approve", "kinds-csr"]);
    let condition = kubectl.ok(&["get", "csr", "kinds-csr", "-o", "jsonpath={.status.conditions[0].type}"]);
    assert_eq!(condition, "Approved");

    let deleted = kubectl.ok_with(&["delete", "-f", "-"], Some(EVERY_KIND));
    assert_eq!(deleted.lines().filter(|l| l.ends_with(" deleted")).count(), OBJECTS.len(), "{deleted}");
    for (resource, namespace, name) in OBJECTS {
        let gone = kubectl.fails(&get_args(resource, namespace, name), None);
        assert!(gone.contains("NotFound"), "{resource} {name}: {gone}");
    }
    node.stop();
}

#[test]
fn discovery_apiservices_and_system_objects_are_kube_apiservers() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kinds-system");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    let resources = kubectl.ok(&["api-resources", "-o", "wide", "--no-headers"]);
    // The wide listing's verbs column: `create` or `get,list,...`.
    let verbs_of = |name: &str| {
        let line = resources.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_default();
        let verbs = line.split_whitespace().find(|w| w.split(',').all(|v| VERBS.contains(&v)));
        verbs.unwrap_or_default().to_owned()
    };
    assert_eq!(verbs_of("tokenreviews"), "create", "{resources}");
    assert_eq!(verbs_of("localsubjectaccessreviews"), "create");
    assert_eq!(verbs_of("componentstatuses"), "get,list");
    assert_eq!(verbs_of("bindings"), "create");
    assert_eq!(verbs_of("horizontalpodautoscalers"), "create,delete,deletecollection,get,list,patch,update,watch");

    let statuses = kubectl.ok(&["get", "componentstatuses", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(statuses, "etcd-0");
    let refused = kubectl.fails(&["delete", "componentstatus", "etcd-0"], None);
    assert!(refused.contains("MethodNotAllowed") || refused.contains("not supported"), "{refused}");

    let token = kubectl.ok(&["config", "view", "--raw", "-o", "jsonpath={.users[0].user.token}"]);
    let review = |token: &str| {
        let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}});
        let reviewed = kubectl.ok_with(&["create", "-f", "-", "-o", "json"], Some(&body.to_string()));
        serde_json::from_str::<serde_json::Value>(&reviewed).expect("json")["status"].clone()
    };
    assert_eq!(review("not-a-token")["authenticated"], false);
    let status = review(&token);
    assert_eq!((&status["authenticated"], &status["user"]["username"]), (&true.into(), &"admin".into()), "{status}");

    // A Binding names the pod it binds.
    kubectl.ok(&["run", "bound", "--image=registry.example.com/app:1.0"]);
    let binding = serde_json::json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}});
    kubectl.ok_with(&["create", "-f", "-"], Some(&binding.to_string()));
    assert_eq!(kubectl.ok(&["get", "pod", "bound", "-o", "jsonpath={.spec.nodeName}"]), "node-a");

    let classes =
        kubectl.ok(&["get", "priorityclasses", "-o", "jsonpath={range .items[*]}{.metadata.name}={.value} {end}"]);
    assert!(classes.contains("system-node-critical=2000001000"), "{classes}");
    assert!(classes.contains("system-cluster-critical=2000000000"), "{classes}");

    let services = || kubectl.ok(&["get", "apiservices", "-o", "name"]);
    wait_for("the built-in APIServices", Duration::from_secs(20), || {
        let names = services();
        ["apiservice.apiregistration.k8s.io/v1.", "/v2.autoscaling", "/v1.autoscaling", "/v1.events.k8s.io"]
            .iter()
            .all(|n| names.contains(n))
    });
    let definition = serde_json::json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.kinds.example.com"},
        "spec": {"group": "kinds.example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    kubectl.ok_with(&["apply", "-f", "-"], Some(&definition.to_string()));
    wait_for("the custom group's APIService", Duration::from_secs(20), || services().contains("/v1.kinds.example.com"));
    kubectl.ok(&["delete", "crd", "gadgets.kinds.example.com"]);
    wait_for("the custom group's APIService to go", Duration::from_secs(20), || {
        !services().contains("/v1.kinds.example.com")
    });
    node.stop();
}

/// Invalid objects of the new kinds, each with the field path and message
/// kube-apiserver gives: (manifest, expected text of the refusal).
const INVALID: [(&str, &str); 16] = [
    (
        r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Sideways",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}"#,
        r#"spec.rules[0].http.paths[0].pathType: Unsupported value: "Sideways""#,
    ),
    (
        r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}}}"#,
        "spec.accessModes: Required value: at least 1 access mode is required",
    ),
    (
        r#"{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "bad"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/a"}, "nfs": {"server": "s", "path": "/b"}}}"#,
        "spec.nfs: Forbidden: may not specify more than 1 volume type",
    ),
    (
        r#"{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "system-mine"}, "value": 5}"#,
        "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only",
    ),
    (
        r#"{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "bad"}, "provisioner": ""}"#,
        "provisioner: Required value",
    ),
    (
        r#"{"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "bad"},
            "spec": {"request": "bm90IGEgY3NyCg==", "signerName": "example.com/signer", "usages": ["client auth"]}}"#,
        "spec.request: Invalid value",
    ),
    (
        r#"{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "bad"}, "webhooks": [{"name": "short.name", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://example.com"}}]}"#,
        "webhooks[0].name: Invalid value: \"short.name\": should be a domain with at least three segments",
    ),
    (
        r#"{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 5, "maxReplicas": 2}}"#,
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
    ),
    (
        r#"{"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"selector": {"app": "one"}, "template": {"metadata": {"labels": {"app": "two"}},
                "spec": {"containers": [{"name": "a", "image": "a"}]}}}}"#,
        "spec.template.metadata.labels: Invalid value",
    ),
    (
        r#"{"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "bad", "namespace": "default"},
            "reportingController": "c", "reportingInstance": "i", "action": "A", "reason": "R", "type": "Normal"}"#,
        "eventTime: Required value",
    ),
    (
        r#"{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.wrong.example.com"},
            "spec": {"group": "right.example.com", "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 100}}"#,
        "metadata.name: Invalid value",
    ),
    (
        r#"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"podSelector": {}, "policyTypes": ["Sideways"]}}"#,
        r#"spec.policyTypes[0]: Unsupported value: "Sideways""#,
    ),
    (
        r#"{"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "bad"},
            "spec": {"priorityLevelConfiguration": {"name": "x"}, "matchingPrecedence": 20000}}"#,
        "spec.matchingPrecedence: Invalid value: 20000: must be between 1 and 10000, inclusive",
    ),
    (
        r#"{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "bad"}, "spec": {"policyName": "p"}}"#,
        "spec.validationActions: Required value: at least one validation action is required",
    ),
    (
        r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}}"#,
        r#"spec.template.spec.restartPolicy: Unsupported value: "Always""#,
    ),
    (
        r#"{"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": "bad"},
            "spec": {"attacher": "a", "nodeName": "n", "source": {}}}"#,
        "spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName",
    ),
];

#[test]
fn invalid_objects_of_every_new_kind_are_refused_with_field_paths() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kinds-invalid");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    for (manifest, expected) in INVALID {
        let object: serde_json::Value = serde_json::from_str(manifest).expect("a manifest");
        let refused = kubectl.fails(&["create", "-f", "-"], Some(manifest));
        assert!(refused.contains("is invalid") && refused.contains(expected), "{expected}: {refused}");
        let kind = object["kind"].as_str().expect("kind").to_lowercase();
        let group = object["apiVersion"].as_str().expect("apiVersion").rsplit_once('/').map(|(g, _)| g);
        let resource = group.map_or_else(|| kind.clone(), |group| format!("{kind}.{group}"));
        let name = object["metadata"]["name"].as_str().expect("name");
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let gone = kubectl.fails(&get_args(&resource, namespace, name), None);
        assert!(gone.contains("NotFound"), "nothing stored for {resource}: {gone}");
    }
    node.stop();
}

/// Goal: pods take their priority from their PriorityClass, as
/// kube-apiserver's priority admission gives it, and a cluster has one
/// default class at most.
/// Method: classes and pods created with the real kubectl; the stored
/// pods' `spec.priority` and `spec.preemptionPolicy`, and the refusals.
#[test]
fn pods_take_their_priority_from_their_class() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kinds-priority");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let class = |name: &str, value: i64, default: bool| {
        let class = serde_json::json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": default, "preemptionPolicy": "Never"});
        kubectl.run(&["create", "-f", "-"], Some(&class.to_string()))
    };
    let pod = |name: &str, spec: serde_json::Value| {
        let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]}});
        pod["spec"].as_object_mut().expect("spec").extend(spec.as_object().cloned().unwrap_or_default());
        kubectl.run(&["create", "-f", "-"], Some(&pod.to_string()))
    };
    let priority_of = |name: &str| {
        kubectl.ok(&[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.spec.priority} {.spec.priorityClassName} {.spec.preemptionPolicy}",
        ])
    };
    assert!(class("high", 1000, false).status.success());
    assert!(pod("important", serde_json::json!({"priorityClassName": "high"})).status.success());
    assert_eq!(priority_of("important"), "1000 high Never");
    assert!(pod("plain", serde_json::json!({})).status.success());
    assert_eq!(priority_of("plain").trim(), "0");
    // Kubernetes' pod defaults come with it.
    let defaults = "{.spec.schedulerName} {.spec.restartPolicy} {.spec.dnsPolicy} \
        {.spec.containers[0].imagePullPolicy} {.status.phase} {.status.qosClass}";
    let plain = kubectl.ok(&["get", "pod", "plain", "-o", &format!("jsonpath={defaults}")]);
    assert_eq!(plain, "default-scheduler Always ClusterFirst IfNotPresent Pending BestEffort");

    let unknown = pod("lost", serde_json::json!({"priorityClassName": "nope"}));
    let refused = String::from_utf8_lossy(&unknown.stderr);
    assert!(refused.contains("no PriorityClass with name nope was found"), "{refused}");
    let forged = pod("forged", serde_json::json!({"priorityClassName": "high", "priority": 7}));
    let refused = String::from_utf8_lossy(&forged.stderr);
    assert!(refused.contains("the integer value of priority (7) must not be provided in pod spec"), "{refused}");

    // A class's value is fixed once it is created.
    let changed = kubectl.fails(&["patch", "priorityclass", "high", "-p", r#"{"value": 5}"#], None);
    assert!(changed.contains("value: Forbidden: may not be changed in an update."), "{changed}");
    assert!(class("everyone", 50, true).status.success());
    assert!(pod("defaulted", serde_json::json!({})).status.success());
    assert_eq!(priority_of("defaulted"), "50 everyone Never");
    let second = class("also-everyone", 60, true);
    let refused = String::from_utf8_lossy(&second.stderr);
    assert!(
        refused.contains("PriorityClass everyone is already marked as default. Only one default can exist"),
        "{refused}"
    );
    node.stop();
}
