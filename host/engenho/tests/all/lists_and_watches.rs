//! Goal: lists and watches hold bounded memory on the server. A list
//! without `limit` is streamed, not built whole; a page ends early (with a
//! `continue` token) once its items are large; a user's watches are
//! bounded, the next one refused with 429 and `Retry-After`.
//! Method: a real node; curl for what kubectl hides (headers), kube-rs
//! watches as a service account, kubectl for the objects.

use std::process::{Command, Output};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::support::{EngenhoNode, Kubectl};

/// Large ConfigMaps made for the paging test: more bytes than one page
/// holds (16 MiB).
const LARGE_CONFIGMAPS: usize = 20;

/// Bytes of each large ConfigMap's value.
const LARGE_VALUE_BYTES: usize = 1_000_000;

/// The per-user watch bound of the server.
const WATCHES_PER_USER_MAX: usize = 100;

/// `curl` over HTTP/1.1 to `path` on `node` with `token`, headers included.
fn curl(node: &EngenhoNode, token: &str, path: &str, max_seconds: u32) -> Output {
    Command::new("curl")
        .args(["--http1.1", "-s", "-i", "--max-time", &max_seconds.to_string(), "--cacert"])
        .arg(node.dir.join("pki/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("https://{}{path}", node.api))
        .output()
        .expect("curl is installed")
}

fn admin_token(node: &EngenhoNode) -> String {
    std::fs::read_to_string(node.dir.join("admin-token")).expect("the admin token").trim().to_owned()
}

/// Splits an HTTP/1.1 response into its lower-cased head and its body.
fn head_and_body(output: &Output) -> (String, String) {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_lowercase(), body.to_owned())
}

#[test]
fn unlimited_lists_stream_and_large_pages_end_early() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "lists");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    for index in 0..LARGE_CONFIGMAPS {
        let configmap = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("large-{index:02}")},
            "data": {"value": "v".repeat(LARGE_VALUE_BYTES)},
        });
        let path = root.path().join("large.json");
        std::fs::write(&path, configmap.to_string()).expect("write the ConfigMap");
        kubectl.ok(&["create", "-f", path.to_str().expect("UTF-8 path")]);
    }
    let token = admin_token(&node);

    let whole = curl(&node, &token, "/api/v1/namespaces/default/configmaps", 60);
    let (head, body) = head_and_body(&whole);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked") && !head.contains("content-length"), "not streamed: {head}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("the streamed list is one JSON document");
    assert_eq!(list["kind"], "ConfigMapList");
    // The namespace's CA bundle (kube-root-ca.crt) is listed beside them.
    let large = |item: &&serde_json::Value| item["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("large-"));
    assert_eq!(list["items"].as_array().map(|items| items.iter().filter(large).count()), Some(LARGE_CONFIGMAPS));
    assert!(list["metadata"]["resourceVersion"].as_str().is_some_and(|v| !v.is_empty()));

    let mut names = Vec::new();
    let mut path = "/api/v1/namespaces/default/configmaps?limit=500".to_owned();
    let mut pages = 0;
    loop {
        let (head, body) = head_and_body(&curl(&node, &token, &path, 60));
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let page: serde_json::Value = serde_json::from_str(&body).expect("a page");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() < LARGE_CONFIGMAPS, "one page held every large ConfigMap");
        names.extend(
            items.iter().filter(large).map(|item| item["metadata"]["name"].as_str().unwrap_or_default().to_owned()),
        );
        pages += 1;
        match page["metadata"]["continue"].as_str() {
            Some(token) => path = format!("/api/v1/namespaces/default/configmaps?limit=500&continue={token}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..LARGE_CONFIGMAPS).map(|i| format!("large-{i:02}")).collect();
    assert_eq!(names, expected, "the pages ({pages}) hold every ConfigMap once, in order");

    // A watch from now sends the current objects first, read a chunk at a
    // time: every one of them, once, as ADDED.
    let watch = curl(&node, &token, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=3", 30);
    let (head, body) = head_and_body(&watch);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let added: Vec<String> = body
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["type"] == "ADDED")
        .filter_map(|event| event["object"]["metadata"]["name"].as_str().map(str::to_owned))
        .filter(|name| name.starts_with("large-"))
        .collect();
    assert_eq!(added, expected, "the watch's initial events");

    let names = kubectl.ok(&["get", "configmaps", "--chunk-size=0", "-o", "name"]);
    assert_eq!(names.lines().filter(|l| l.starts_with("configmap/large-")).count(), LARGE_CONFIGMAPS);
    let table = kubectl.ok(&["get", "configmaps", "--chunk-size=0"]);
    assert!(table.lines().next().is_some_and(|h| h.split_whitespace().eq(["NAME", "DATA", "AGE"])), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("large-")).count(), LARGE_CONFIGMAPS, "{table}");
    node.stop();
}

#[test]
fn watches_per_user_are_bounded_with_429_and_retry_after() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "watch-quota");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok(&["create", "serviceaccount", "watcher"]);
    kubectl.ok(&["create", "role", "watcher", "--verb=get,list,watch", "--resource=configmaps"]);
    kubectl.ok(&["create", "rolebinding", "watcher", "--role=watcher", "--serviceaccount=default:watcher"]);
    let token = kubectl.ok(&["create", "token", "watcher", "--duration=20m"]).trim().to_owned();
    let kubeconfig = std::fs::read_to_string(node.dir.join("kubeconfig")).expect("kubeconfig");
    let kubeconfig = kubeconfig.replace(&admin_token(&node), &token);
    let version = kubectl.ok(&["get", "configmaps", "-o", "jsonpath={.metadata.resourceVersion}"]);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let kubeconfig = Kubeconfig::from_yaml(&kubeconfig).expect("a kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
        let configmaps: Api<ConfigMap> = Api::default_namespaced(kube::Client::try_from(config).expect("client"));
        let params = WatchParams::default().timeout(120);
        let mut watches = Vec::new();
        for _ in 0..WATCHES_PER_USER_MAX {
            watches.push(configmaps.watch(&params, &version).await.expect("a watch within the bound").boxed());
        }

        let refused = curl(&node, &token, "/api/v1/namespaces/default/configmaps?watch=true", 5);
        let (head, body) = head_and_body(&refused);
        assert!(head.starts_with("http/1.1 429"), "{head}");
        assert!(head.contains("retry-after: 1"), "{head}");
        let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
        assert_eq!((status["kind"].as_str(), status["reason"].as_str()), (Some("Status"), Some("TooManyRequests")));
        assert_eq!(status["details"]["retryAfterSeconds"], 1);
        assert!(status["message"].as_str().is_some_and(|m| m.contains("system:serviceaccount:default:watcher")));

        let admin = curl(&node, &admin_token(&node), "/api/v1/namespaces/default/configmaps?watch=true", 1);
        assert!(head_and_body(&admin).0.starts_with("http/1.1 200"), "system:masters is exempt");

        kubectl.ok(&["create", "configmap", "seen"]);
        let event = tokio::time::timeout(Duration::from_secs(10), watches[0].next()).await;
        assert!(matches!(event, Ok(Some(Ok(_)))), "the open watches still deliver: {event:?}");

        watches.truncate(WATCHES_PER_USER_MAX - 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match configmaps.watch(&params, &version).await {
                Ok(watch) => break watches.push(watch.boxed()),
                Err(kube::Error::Api(status)) if status.code == 429 => {
                    assert!(std::time::Instant::now() < deadline, "a closed watch never freed its place");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
    });
    kubectl.ok(&["get", "configmap", "seen"]);
    node.stop();
}
