//! Goal: the built-in statefulset controller makes a StatefulSet's pods
//! as Kubernetes does: `web-0`, `web-1`, `web-2` in order, each made only
//! once the one before it is Ready, each with its claim `www-web-N` from
//! the claim template; `kubectl rollout status` finishes once all are
//! Ready; scaled down, the highest ordinal goes first and the claims stay.
//! Method: a real `engenho up` node and the kubelet stand-in marking every
//! pod Ready; the order is judged from the events of a
//! `kubectl get pods --watch` that ran from before the set was made.

use std::time::Duration;

use super::kubelet::{Kubelet, Rule};
use super::watch::{WatchEvent, events, is_ready};
use crate::support::{EngenhoNode, Kubectl, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);

const STATEFUL_SET: &str = r#"{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
  "spec": {"serviceName": "web", "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
        "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}]}},
    "volumeClaimTemplates": [{"metadata": {"name": "www"},
      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}"#;

/// The position of the first event in `stream` that `matches`.
fn first(stream: &[WatchEvent], matches: impl Fn(&WatchEvent) -> bool) -> Option<usize> {
    stream.iter().position(matches)
}

#[test]
fn a_stateful_set_makes_its_pods_in_order_with_their_claims_and_removes_the_highest_first() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "stateful-sets");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let _kubelet = Kubelet::start(Kubectl::for_node(&node), vec![Rule::every_pod_ready()]);

    let mut watch = kubectl.spawn(&["get", "pods", "-l", "app=web", "--watch", "-o", "json", "--output-watch-events"]);
    kubectl.ok_with(&["apply", "-f", "-"], Some(STATEFUL_SET));
    let status = kubectl.ok(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    assert!(status.contains("roll out complete: 3 new pods have been updated"), "{status}");
    wait_for("the watch to see web-2 Ready", DEADLINE, || {
        events(&watch.output()).iter().any(|event| event.name() == "web-2" && is_ready(&event.object))
    });
    let stream = events(&watch.output());
    for ordinal in 1..3 {
        let (previous, this) = (format!("web-{}", ordinal - 1), format!("web-{ordinal}"));
        let made = first(&stream, |e| e.name() == this).expect("the pod was made");
        let ready = first(&stream, |e| e.name() == previous && is_ready(&e.object)).expect("the pod before it Ready");
        assert!(ready < made, "{this} made (event {made}) only after {previous} was Ready (event {ready})");
    }

    for ordinal in 0..3 {
        let pod = kubectl.json(&["get", "pod", &format!("web-{ordinal}"), "-o", "json"]);
        assert_eq!(pod["spec"]["hostname"], format!("web-{ordinal}"), "{pod}");
        assert_eq!(pod["spec"]["subdomain"], "web", "{pod}");
        assert_eq!(pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"], format!("web-{ordinal}"));
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet", "{pod}");
        let volume = pod["spec"]["volumes"].as_array().and_then(|v| v.iter().find(|v| v["name"] == "www")).cloned();
        let claim = format!("www-web-{ordinal}");
        assert_eq!(volume.map(|v| v["persistentVolumeClaim"]["claimName"].clone()), Some(claim.clone().into()));
        let pvc = kubectl.json(&["get", "pvc", &claim, "-o", "json"]);
        assert_eq!(pvc["metadata"]["labels"]["app"], "web", "{pvc}");
    }

    kubectl.ok(&["scale", "statefulset", "web", "--replicas=1"]);
    wait_for("web-1 and web-2 gone", DEADLINE, || {
        kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).trim() == "pod/web-0"
    });
    wait_for("the watch to see web-1 go", DEADLINE, || {
        events(&watch.output()).iter().any(|event| event.name() == "web-1" && event.kind == "DELETED")
    });
    let stream = events(&watch.output());
    drop(watch);
    let gone = |name: &str| first(&stream, |e| e.name() == name && e.kind == "DELETED").expect("deleted");
    assert!(gone("web-2") < gone("web-1"), "web-2 is removed before web-1");
    let claims = kubectl.ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(
        claims.lines().collect::<Vec<_>>(),
        ["persistentvolumeclaim/www-web-0", "persistentvolumeclaim/www-web-1", "persistentvolumeclaim/www-web-2"],
        "the claims stay"
    );
    node.stop();
}
