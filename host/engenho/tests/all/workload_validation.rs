//! Goal: workloads, pods and Services are defaulted and validated as
//! kube-apiserver does it: invalid ones are refused with Kubernetes' 422
//! messages, shown by kubectl, and nothing is stored; valid ones get
//! Kubernetes' defaults, and a Job gets its generated selector and labels;
//! a Deployment's selector cannot change.
//! Method: a real `engenho up` node driven with the installed kubectl:
//! `kubectl apply` of invalid manifests (stderr checked, then `kubectl get`
//! finds nothing), then `kubectl create deployment` and `kubectl create
//! job`, reading the stored objects back as JSON, and a `kubectl patch`
//! of the Deployment's selector, refused as immutable.

use serde_json::Value;

use crate::support::{EngenhoNode, Kubectl};

const EMPTY_POD: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"},
    "spec": {"containers": []}}"#;

const NEGATIVE_DEPLOYMENT: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "negative"},
    "spec": {"replicas": -3, "selector": {"matchLabels": {"app": "negative"}},
    "template": {"metadata": {"labels": {"app": "negative"}},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}"#;

const MISMATCHED_DEPLOYMENT: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "mismatched"},
    "spec": {"selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "other"}},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}"#;

const BAD_CRON_JOB: &str = r#"{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "badcron"},
    "spec": {"schedule": "61 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
    "containers": [{"name": "run", "image": "busybox"}]}}}}}}"#;

const PORT_ZERO_SERVICE: &str = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "portzero"},
    "spec": {"ports": [{"port": 0}]}}"#;

fn json(kubectl: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl.ok(args)).expect("kubectl prints JSON")
}

#[test]
fn workloads_are_defaulted_and_validated_as_kubernetes_does() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "workload-validation");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    let refusals = [
        (EMPTY_POD, "pod/empty", "The Pod \"empty\" is invalid: spec.containers: Required value"),
        (
            NEGATIVE_DEPLOYMENT,
            "deployment/negative",
            "The Deployment \"negative\" is invalid: spec.replicas: Invalid value: -3: must be greater than or equal \
             to 0",
        ),
        (
            MISMATCHED_DEPLOYMENT,
            "deployment/mismatched",
            "The Deployment \"mismatched\" is invalid: spec.template.metadata.labels: Invalid value: \
             map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
        ),
        (
            BAD_CRON_JOB,
            "cronjob/badcron",
            "The CronJob \"badcron\" is invalid: spec.schedule: Invalid value: \"61 * * * *\": end of range (61) \
             above maximum (59): 61",
        ),
        (
            PORT_ZERO_SERVICE,
            "service/portzero",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ),
    ];
    for (manifest, object, message) in refusals {
        let stderr = kubectl.fails(&["apply", "-f", "-"], Some(manifest));
        assert!(stderr.contains(message), "{object}: {stderr}");
        let absent = kubectl.fails(&["get", object], None);
        assert!(absent.contains("NotFound") || absent.contains("not found"), "{object} was stored: {absent}");
    }

    kubectl.ok(&["create", "deployment", "web", "--image=nginx:1.27"]);
    let deployment = json(&kubectl, &["get", "deployment", "web", "-o", "json"]);
    let spec = &deployment["spec"];
    assert_eq!(
        spec["strategy"],
        serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!((&spec["revisionHistoryLimit"], &spec["progressDeadlineSeconds"]), (&10.into(), &600.into()));
    let pod = &spec["template"]["spec"];
    assert_eq!(
        (&pod["restartPolicy"], &pod["dnsPolicy"], &pod["terminationGracePeriodSeconds"], &pod["schedulerName"]),
        (&"Always".into(), &"ClusterFirst".into(), &30.into(), &"default-scheduler".into())
    );
    let container = &pod["containers"][0];
    assert_eq!(
        (&container["imagePullPolicy"], &container["terminationMessagePath"], &container["terminationMessagePolicy"]),
        (&"IfNotPresent".into(), &"/dev/termination-log".into(), &"File".into())
    );

    let relabel = r#"{"spec": {"selector": {"matchLabels": {"app": "other"}},
        "template": {"metadata": {"labels": {"app": "other"}}}}}"#;
    let immutable = kubectl.fails(&["patch", "deployment", "web", "-p", relabel], None);
    assert!(
        immutable.contains("spec.selector: Invalid value: ") && immutable.contains("field is immutable"),
        "{immutable}"
    );
    let kept = json(&kubectl, &["get", "deployment", "web", "-o", "json"]);
    assert_eq!(kept["spec"]["selector"], deployment["spec"]["selector"], "the refused patch stored nothing");

    kubectl.ok(&["create", "job", "j", "--image=busybox"]);
    let job = json(&kubectl, &["get", "job", "j", "-o", "json"]);
    let uid = job["metadata"]["uid"].as_str().expect("a uid");
    assert_eq!(
        job["spec"]["selector"],
        serde_json::json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    let labels = &job["spec"]["template"]["metadata"]["labels"];
    for (label, value) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("controller-uid", uid),
        ("batch.kubernetes.io/job-name", "j"),
        ("job-name", "j"),
    ] {
        assert_eq!(labels[label], value, "{labels}");
    }
    assert_eq!(
        (&job["spec"]["backoffLimit"], &job["spec"]["completions"], &job["spec"]["parallelism"]),
        (&6.into(), &1.into(), &1.into())
    );
    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
    node.stop();
}
