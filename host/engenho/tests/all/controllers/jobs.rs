//! Goal: the built-in job controller runs Jobs as Kubernetes does: a Job of
//! 5 completions and parallelism 2 never has more than 2 active pods and
//! ends `Complete` (`kubectl wait --for=condition=complete`) once 5 pods
//! succeeded; a Job whose pods fail, with backoffLimit 1, ends `Failed`
//! with reason `BackoffLimitExceeded` after 2 failed pods.
//! Method: a real `engenho up` node and the kubelet stand-in, which makes
//! the first Job's pods succeed and the second's fail; the parallelism is
//! judged at every event of a `kubectl get pods --watch` that ran
//! throughout the first Job.

use std::collections::BTreeSet;
use std::time::Duration;

use super::kubelet::{Kubelet, Rule};
use super::watch::events;
use crate::support::{EngenhoNode, Kubectl, wait_for};

fn job(name: &str, spec: &str) -> String {
    format!(
        r#"{{"apiVersion": "batch/v1", "kind": "Job", "metadata": {{"name": "{name}"}},
  "spec": {{{spec}, "template": {{"spec": {{"restartPolicy": "Never",
    "containers": [{{"name": "main", "image": "busybox:1.36", "command": ["true"]}}]}}}}}}}}"#
    )
}

#[test]
fn jobs_keep_their_parallelism_complete_and_fail_past_their_backoff_limit() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "jobs");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let _kubelet =
        Kubelet::start(Kubectl::for_node(&node), vec![Rule::job_succeeds("work"), Rule::job_fails("doomed")]);

    let mut watch =
        kubectl.spawn(&["get", "pods", "-l", "job-name=work", "--watch", "-o", "json", "--output-watch-events"]);
    kubectl.ok_with(&["apply", "-f", "-"], Some(&job("doomed", r#""backoffLimit": 1"#)));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&job("work", r#""completions": 5, "parallelism": 2"#)));
    kubectl.ok(&["wait", "--for=condition=complete", "job/work", "--timeout=60s"]);
    let work = kubectl.json(&["get", "job", "work", "-o", "json"]);
    assert_eq!(work["status"]["succeeded"], 5, "{work}");
    assert!(work["status"]["completionTime"].is_string(), "{work}");
    assert_eq!(work["status"]["active"].as_i64().unwrap_or(0), 0, "{work}");

    wait_for("the watch to see 5 pods succeed", Duration::from_secs(30), || {
        let output = watch.output();
        let succeeded: BTreeSet<String> = events(&output)
            .iter()
            .filter(|event| event.object["status"]["phase"] == "Succeeded")
            .map(|event| event.name().to_owned())
            .collect();
        succeeded.len() == 5
    });
    let mut active = BTreeSet::new();
    let mut created = BTreeSet::new();
    let mut most = 0;
    for event in events(&watch.output()) {
        let phase = &event.object["status"]["phase"];
        let finished = phase == "Succeeded" || phase == "Failed";
        created.insert(event.name().to_owned());
        if event.kind == "DELETED" || finished || !event.object["metadata"]["deletionTimestamp"].is_null() {
            active.remove(event.name());
        } else {
            active.insert(event.name().to_owned());
        }
        most = most.max(active.len());
    }
    drop(watch);
    assert_eq!(most, 2, "at most (and at some point) 2 active pods");
    assert_eq!(created.len(), 5, "one pod per completion: {created:?}");
    assert!(created.iter().all(|name| name.starts_with("work-")), "{created:?}");

    kubectl.ok(&["wait", "--for=condition=failed", "job/doomed", "--timeout=60s"]);
    let doomed = kubectl.json(&["get", "job", "doomed", "-o", "json"]);
    let failed = doomed["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Failed"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{doomed}");
    assert_eq!(failed["message"], "Job has reached the specified backoff limit", "{doomed}");
    assert_eq!(doomed["status"]["failed"], 2, "{doomed}");
    let described = kubectl.ok(&["describe", "job", "doomed"]);
    assert!(described.contains("BackoffLimitExceeded"), "{described}");
    node.stop();
}
