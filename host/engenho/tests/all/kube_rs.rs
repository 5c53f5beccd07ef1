//! Goal: kube-rs, the Rust Kubernetes client, works against `engenho up`.
//! Method: a real node; a kube-rs client built from the node's kubeconfig
//! lists, watches, creates, patches and server-side applies ConfigMaps.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

use crate::support::{EngenhoNode, kube_client};

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"made-by": "kube-rs"}},
        "data": {"value": value},
    }))
    .expect("a ConfigMap")
}

#[test]
fn kube_rs_lists_watches_creates_patches_and_applies() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-rs");
    node.start_ready(&[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = kube_client(&node).await;
        let configmaps: Api<ConfigMap> = Api::default_namespaced(client.clone());

        let created = configmaps.create(&PostParams::default(), &configmap("first", "1")).await.expect("create");
        assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
        let duplicate = configmaps.create(&PostParams::default(), &configmap("first", "1")).await;
        match duplicate {
            Err(kube::Error::Api(status)) => assert_eq!((status.code, status.reason.as_str()), (409, "AlreadyExists")),
            other => panic!("a second create must be refused: {other:?}"),
        }

        let listed = configmaps.list(&ListParams::default().labels("made-by=kube-rs")).await.expect("list");
        assert_eq!(listed.items.len(), 1);
        let version = listed.metadata.resource_version.clone().expect("list resourceVersion");

        let mut events = configmaps.watch(&WatchParams::default().timeout(20), &version).await.expect("watch").boxed();
        configmaps.create(&PostParams::default(), &configmap("second", "2")).await.expect("create");
        let patch = serde_json::json!({"data": {"value": "patched"}});
        let patched =
            configmaps.patch("first", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("merge patch");
        assert_eq!(patched.data.as_ref().and_then(|d| d.get("value")).map(String::as_str), Some("patched"));
        configmaps.delete("second", &Default::default()).await.expect("delete");

        let mut seen = Vec::new();
        while seen.len() < 3 {
            let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
                .await
                .expect("an event in time")
                .expect("a well-formed event")
                .expect("the watch stays open");
            let name = match &event {
                WatchEvent::Added(cm) | WatchEvent::Modified(cm) | WatchEvent::Deleted(cm) => cm.metadata.name.clone(),
                _ => None,
            };
            // The namespace's CA bundle, which its controller keeps.
            if name.as_deref() == Some("kube-root-ca.crt") {
                continue;
            }
            seen.push(match event {
                WatchEvent::Added(cm) => format!("added {}", cm.metadata.name.unwrap_or_default()),
                WatchEvent::Modified(cm) => format!("modified {}", cm.metadata.name.unwrap_or_default()),
                WatchEvent::Deleted(cm) => format!("deleted {}", cm.metadata.name.unwrap_or_default()),
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(error) => panic!("watch error {error:?}"),
            });
        }
        assert_eq!(seen, ["added second", "modified first", "deleted second"]);

        let gone = configmaps.get("second").await;
        assert!(matches!(gone, Err(kube::Error::Api(ref status)) if status.code == 404), "{gone:?}");
        let remaining: Vec<String> = configmaps
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .filter_map(|cm| cm.metadata.name)
            .filter(|name| name != "kube-root-ca.crt")
            .collect();
        assert_eq!(remaining, ["first"]);

        let applied = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "applied"},
            "data": {"owner": "kube-rs"},
        });
        let params = PatchParams::apply("kube-rs-test");
        let created = configmaps.patch("applied", &params, &Patch::Apply(&applied)).await.expect("apply creates");
        let managers: Vec<_> =
            created.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
        assert_eq!(managers, ["kube-rs-test"]);
        let mut changed = applied.clone();
        changed["data"]["owner"] = serde_json::json!("someone else");
        let refused = configmaps.patch("applied", &PatchParams::apply("other"), &Patch::Apply(&changed)).await;
        match refused {
            Err(kube::Error::Api(status)) => assert_eq!((status.code, status.reason.as_str()), (409, "Conflict")),
            other => panic!("a conflicting apply must be refused: {other:?}"),
        }
        let forced = configmaps
            .patch("applied", &PatchParams::apply("other").force(), &Patch::Apply(&changed))
            .await
            .expect("forced apply");
        assert_eq!(forced.data.and_then(|d| d.get("owner").cloned()).as_deref(), Some("someone else"));
    });
    node.stop();
}
