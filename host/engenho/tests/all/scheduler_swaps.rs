//! Goal: a SchedulerProfile swapped while pods are being scheduled takes
//! effect for the next cycle, and no pod is lost or bound twice: 5,000 pods
//! created in ten batches, the profile swapped before each batch, are all
//! bound, each exactly once (its `spec.nodeName` set once and never
//! changed), and every pod lands where the profile running when it was
//! placed says: a batch created after swap `i` lands in group `i` or in the
//! group of a later swap (pods still queued at a swap follow the new
//! profile), the last batch in the last group.
//! Method: a real `engenho up` node with 30 Node objects in ten groups
//! (label `group=g<i>`); the profile's node-affinity plugin requires the
//! group through its `addedAffinity` configuration; the swap is a `kubectl
//! apply` of the profile, awaited until its status has observed the new
//! generation; pods are created through kube-rs, 16 at a time, and every
//! change to them is followed by one watch from before the first.

use std::collections::HashMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::support::{EngenhoNode, Kubectl, wait_for};

const GROUPS: usize = 10;
const NODES_PER_GROUP: usize = 3;
const PODS_PER_BATCH: usize = 500;
const BINDING_DEADLINE: Duration = Duration::from_secs(300);

fn register(kubectl: &Kubectl, name: &str, group: usize) {
    let node = format!(
        r#"{{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": "{name}",
          "labels": {{"kubernetes.io/hostname": "{name}", "group": "g{group}"}}}}}}"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&node));
    let status = r#"{"status":{"capacity":{"cpu":"64","memory":"256Gi","pods":"2000"},
        "allocatable":{"cpu":"64","memory":"256Gi","pods":"2000"},
        "conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}"#;
    kubectl.ok(&["patch", "node", name, "--subresource=status", "--type=merge", "-p", status]);
}

/// The profile requiring group `group`, through node-affinity's
/// `addedAffinity`.
fn apply_profile(kubectl: &Kubectl, group: usize) {
    let required = json!({"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "group", "operator": "In", "values": [format!("g{group}")]}]}]});
    let profile = json!({
        "apiVersion": "engenho.io/v1alpha1", "kind": "SchedulerProfile", "metadata": {"name": "swapper"},
        "spec": {"schedulerName": "swapper", "plugins": [
            {"name": "node-unschedulable"},
            {"name": "taint-toleration", "weight": 3},
            {"name": "node-affinity", "weight": 2,
             "config": {"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}},
            {"name": "node-resources-fit"},
        ]},
    });
    kubectl.ok_with(&["apply", "-f", "-"], Some(&profile.to_string()));
    wait_for(&format!("the profile for group g{group} active"), Duration::from_secs(60), || {
        let profile = kubectl.json(&["get", "schedulerprofile", "swapper", "-o", "json"]);
        profile["status"]["observedGeneration"] == profile["metadata"]["generation"]
            && profile["status"]["conditions"][0]["reason"] == "Active"
    });
}

/// No node agent renews the Nodes' leases: the node lifecycle controller
/// soon taints them unreachable, and the pods tolerate that for good.
static UNREACHABLE_TOLERATIONS: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
    json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
           {"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
});

fn pod(batch: usize, index: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("b{batch}-{index}"), "labels": {"batch": batch.to_string()}},
        "spec": {"schedulerName": "swapper", "tolerations": UNREACHABLE_TOLERATIONS.clone(),
            "containers": [{"name": "c", "image": "nginx:1.27",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }))
    .expect("a Pod")
}

/// Every pod's successive node names, as one watch from `from` sees them,
/// until `total` pods are bound.
async fn follow_bindings(pods: Api<Pod>, from: String, total: usize) -> HashMap<String, Vec<String>> {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let mut version = from;
    loop {
        let params = WatchParams::default().timeout(60);
        let mut events = pods.watch(&params, &version).await.expect("watch").boxed();
        while let Some(event) = events.try_next().await.expect("watch event") {
            let pod = match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => pod,
                WatchEvent::Bookmark(bookmark) => {
                    version = bookmark.metadata.resource_version;
                    continue;
                }
                WatchEvent::Deleted(_) => continue,
                WatchEvent::Error(error) => panic!("the watch failed: {error:?}"),
            };
            version = pod.metadata.resource_version.clone().unwrap_or(version);
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            let nodes = seen.entry(pod.metadata.name.clone().unwrap_or_default()).or_default();
            if !node.is_empty() && nodes.last() != Some(&node) {
                nodes.push(node);
            }
            if seen.values().filter(|nodes| !nodes.is_empty()).count() == total {
                return seen;
            }
        }
    }
}

#[test]
fn five_thousand_pods_are_bound_once_each_while_the_profile_is_swapped_ten_times() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "swaps");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let mut group_of = HashMap::new();
    for group in 0..GROUPS {
        for n in 0..NODES_PER_GROUP {
            let name = format!("g{group}-n{n}");
            register(&kubectl, &name, group);
            group_of.insert(name, group);
        }
    }
    let kubeconfig = Kubeconfig::read_from(node.dir.join("kubeconfig")).expect("kubeconfig");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let seen = runtime.block_on(async {
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let pods: Api<Pod> = Api::default_namespaced(client);
        let listed = pods.list(&ListParams::default()).await.expect("list");
        let total = GROUPS * PODS_PER_BATCH;
        let from = listed.metadata.resource_version.unwrap_or_default();
        let follower = tokio::spawn(tokio::time::timeout(BINDING_DEADLINE, follow_bindings(pods.clone(), from, total)));

        for batch in 0..GROUPS {
            tokio::task::block_in_place(|| apply_profile(&kubectl, batch));
            stream::iter(0..PODS_PER_BATCH)
                .map(|index| {
                    let pods = pods.clone();
                    async move { pods.create(&PostParams::default(), &pod(batch, index)).await.expect("create") }
                })
                .buffer_unordered(16)
                .for_each(|_| async {})
                .await;
        }

        follower.await.expect("the watch").expect("every pod bound before the deadline")
    });

    let mut bound = 0;
    for batch in 0..GROUPS {
        for index in 0..PODS_PER_BATCH {
            let name = format!("b{batch}-{index}");
            let nodes = seen.get(&name).cloned().unwrap_or_default();
            assert_eq!(nodes.len(), 1, "{name} is bound exactly once: {nodes:?}");
            let group = group_of[&nodes[0]];
            assert!(group >= batch, "{name}, created after swap {batch}, was placed by an older profile (g{group})");
            if batch == GROUPS - 1 {
                assert_eq!(group, batch, "{name} follows the last profile");
            }
            bound += 1;
        }
    }
    assert_eq!(bound, GROUPS * PODS_PER_BATCH);
    node.stop();
}
