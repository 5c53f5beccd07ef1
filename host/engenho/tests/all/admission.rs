//! Goal: admission policies run as signed components in the API server's
//! write path, and swap live.
//! Method: a real node, driven by the real kubectl (and kube-rs for load);
//! policies pushed through the API and signed with the node's bootstrap
//! signer key.

use std::time::Duration;

use engenho_api::kube::plugins::SigningKey;

use crate::support::{EngenhoNode, Kubectl, wait_for};

const PRIVILEGED: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
    "spec": {"containers": [{"name": "a", "image": "busybox", "securityContext": {"privileged": true}}]}}"#;

/// The node's bootstrap plugin signer.
pub fn signer(node: &EngenhoNode) -> SigningKey {
    SigningKey::load_or_create(&node.dir.join("pki").join("plugin-signer.key")).expect("the bootstrap signer")
}

/// The Plugin in `text` (JSON) with its spec signed by `key`.
pub fn signed(key: &SigningKey, text: &str) -> String {
    let mut plugin: serde_json::Value = serde_json::from_str(text).expect("a Plugin as JSON");
    let name = plugin["metadata"]["name"].as_str().expect("a name").to_owned();
    plugin["spec"]["signature"] = key.sign_plugin(&name, &plugin["spec"]).expect("a Plugin's spec").into();
    plugin.to_string()
}

#[test]
fn built_in_policies_refuse_mutate_and_follow_their_configuration() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "admission");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let plugins = kubectl.ok(&["get", "plugins"]);
    for name in ["pod-security", "resource-defaults", "image-allowlist", "required-labels"] {
        assert!(plugins.lines().any(|l| l.starts_with(name) && l.contains("True")), "{plugins}");
    }

    let refused = kubectl.fails(&["apply", "-f", "-"], Some(PRIVILEGED));
    assert!(
        refused.contains(
            "Error from server (Forbidden): error when creating \"STDIN\": pods \"root\" is forbidden: denied by \
             pod-security: violates PodSecurity \"baseline\": privileged (container \"a\" must not set \
             securityContext.privileged=true)"
        ),
        "{refused}"
    );
    let dry = kubectl.fails(&["apply", "--dry-run=server", "-f", "-"], Some(PRIVILEGED));
    assert!(dry.contains("denied by pod-security"), "dry runs are admitted too: {dry}");

    kubectl.ok(&["run", "plain", "--image=busybox"]);
    assert_eq!(
        kubectl.ok(&["get", "pod", "plain", "-o", "jsonpath={.spec.containers[0].resources}"]),
        r#"{"limits":{"memory":"512Mi"},"requests":{"cpu":"100m","memory":"128Mi"}}"#
    );

    kubectl.ok(&["create", "configmap", "before"]);
    kubectl.ok(&[
        "patch",
        "plugin",
        "required-labels",
        "--type=merge",
        "-p",
        r#"{"spec": {"config": {"labels": ["team"]}}}"#,
    ]);
    wait_for("the new configuration to decide", Duration::from_secs(20), || {
        !kubectl.run(&["create", "configmap", "probe", "--dry-run=server"], None).status.success()
    });
    let unlabelled = kubectl.fails(&["create", "configmap", "after"], None);
    assert!(unlabelled.contains("denied by required-labels: missing required labels: team"), "{unlabelled}");
    let labelled =
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after", "labels": {"team": "a"}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(labelled));

    kubectl.ok(&["create", "namespace", "strict"]);
    // Until the namespace opts in, its pods may name any image.
    kubectl.ok(&["run", "before", "--image=nginx", "--labels=team=a", "-n", "strict"]);
    kubectl.ok(&["label", "namespace", "strict", "engenho.io/image-policy=enforce"]);
    let unpinned = kubectl.fails(&["run", "web", "--image=nginx", "--labels=team=a", "-n", "strict"], None);
    assert!(
        unpinned.contains("denied by image-allowlist: image \"nginx\" is not pinned by a sha256 digest"),
        "{unpinned}"
    );
    let pinned = format!("--image=nginx@sha256:{}", "a".repeat(64));
    kubectl.ok(&["run", "web", &pinned, "--labels=team=a", "-n", "strict"]);
    node.stop();
}

#[test]
fn unsigned_and_mis_signed_plugins_are_refused_on_their_status() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "signatures");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let bytes = engenho_plugin_artifacts::plugin("misbehaving").expect("built");
    let digest = engenho_wasm::digest_of(bytes);
    let file = root.path().join("misbehaving.wasm");
    std::fs::write(&file, bytes).expect("component file");
    let url = format!("/apis/engenho.io/v1alpha1/components/{digest}");
    kubectl.ok(&["replace", "--raw", &url, "-f", file.to_str().expect("path")]);
    let wrong = kubectl.fails(
        &["replace", "--raw", "/apis/engenho.io/v1alpha1/components/0000", "-f", file.to_str().expect("path")],
        None,
    );
    assert!(wrong.contains("not to the digest 0000"), "{wrong}");

    let plugin = |name: &str| {
        format!(
            r#"{{"apiVersion": "engenho.io/v1alpha1", "kind": "Plugin", "metadata": {{"name": "{name}"}},
            "spec": {{"world": "admission-policy", "digest": "{digest}", "config": {{"mode": "loop"}},
            "admission": {{"rules": [{{"apiGroups": [""], "resources": ["secrets"], "operations": ["CREATE"]}}]}}}}}}"#
        )
    };
    let stranger = SigningKey::from_text(&SigningKey::generate().expect("key")).expect("key");
    kubectl.ok_with(&["apply", "-f", "-"], Some(&signed(&stranger, &plugin("forged"))));
    let status = || {
        kubectl.ok(&[
            "get",
            "plugin",
            "forged",
            "-o",
            "jsonpath={.status.conditions[0].status} {.status.conditions[0].message}",
        ])
    };
    wait_for("the forged plugin's refusal", Duration::from_secs(20), || status().starts_with("False"));
    assert!(status().contains("does not verify against any trusted signer"), "{}", status());
    kubectl.ok(&["create", "secret", "generic", "s1", "--from-literal=a=b"]);

    let warner =
        plugin("warner").replace(r#""mode": "loop""#, r#""mode": "warn""#).replace(r#""secrets""#, r#""configmaps""#);
    let warner = signed(&signer(&node), &warner);
    kubectl.ok_with(&["apply", "-f", "-"], Some(&warner));
    wait_for("the warning plugin to be active", Duration::from_secs(20), || {
        kubectl.ok(&["get", "plugin", "warner", "-o", "jsonpath={.status.conditions[0].status}"]) == "True"
    });
    let output = kubectl.run(&["create", "configmap", "risky"], None);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Warning: warner: ConfigMap risky looks risky"), "warnings reach the client: {stderr}");
    let log = node.log_text();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("plugin=\"warner\"")
            && l.contains("ConfigMap risky looks risky")),
        "plugin log lines reach the node's log, tagged: {log}"
    );

    let reacher = plugin("reacher")
        .replace(r#""mode": "loop"}"#, r#""mode": "reach"}, "grants": {"environment": {"GREETING": "hi"}}"#)
        .replace(r#""secrets""#, r#""services""#);
    let reacher = signed(&signer(&node), &reacher);
    kubectl.ok_with(&["apply", "-f", "-"], Some(&reacher));
    wait_for("the granted plugin to be active", Duration::from_secs(20), || {
        kubectl.ok(&["get", "plugin", "reacher", "-o", "jsonpath={.status.conditions[0].status}"]) == "True"
    });
    let output = kubectl.run(&["create", "service", "clusterip", "granted", "--tcp=80:80"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Warning: reacher: environment: hi") && stderr.contains("Warning: reacher: file: no file"),
        "granted the environment, not the filesystem: {stderr}"
    );

    let looping: serde_json::Value = serde_json::from_str(&plugin("looping")).expect("JSON");
    let genuine = signer(&node).sign_plugin("looping", &looping["spec"]).expect("signed");
    kubectl.ok_with(&["apply", "-f", "-"], Some(&signed(&signer(&node), &plugin("looping"))));
    wait_for("the signed plugin to be active", Duration::from_secs(20), || {
        kubectl.ok(&["get", "plugin", "looping", "-o", "jsonpath={.status.conditions[0].status}"]) == "True"
    });
    let failed = kubectl.fails(&["create", "secret", "generic", "s2", "--from-literal=a=b"], None);
    assert!(
        failed.contains("admission plugin \"looping\" failed: plugin looping ran past its 100ms deadline"),
        "{failed}"
    );
    let tampered = format!(
        r#"{{"spec": {{"failurePolicy": "Ignore", "signature": "{}"}}}}"#,
        stranger.sign_plugin("looping", &looping["spec"]).expect("signed")
    );
    kubectl.ok(&["patch", "plugin", "looping", "--type=merge", "-p", &tampered]);
    let looping = || kubectl.ok(&["get", "plugin", "looping", "-o", "jsonpath={.status.conditions[0].status}"]);
    wait_for("the tampered update's refusal", Duration::from_secs(20), || looping() == "False");
    let kept = kubectl.fails(&["create", "secret", "generic", "s2", "--from-literal=a=b"], None);
    assert!(kept.contains("ran past its 100ms deadline"), "a refused update leaves the old version running: {kept}");
    let signed = format!(r#"{{"spec": {{"failurePolicy": "Ignore", "signature": "{genuine}"}}}}"#);
    kubectl.ok(&["patch", "plugin", "looping", "--type=merge", "-p", &signed]);
    wait_for("the failure policy to be Ignore", Duration::from_secs(20), || {
        kubectl.run(&["create", "secret", "generic", "s3", "--from-literal=a=b"], None).status.success()
    });
    node.stop();
}

/// Goal: a policy swaps under load with no failed request, and every
/// decision comes from the old or the new version.
/// Method: 16 kube-rs clients make 10,000 dry-run creates of an unlabelled
/// ConfigMap while the required-labels policy's configuration swaps 20
/// times between requiring nothing (allowed) and requiring `never`
/// (denied with that reason).
#[test]
fn policies_swap_live_under_load() {
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};

    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "swap");
    node.start_ready(&[]);
    let kubeconfig = Kubeconfig::read_from(node.dir.join("kubeconfig")).expect("kubeconfig");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (allowed, denied, swaps) = runtime.block_on(async {
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let remaining = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(10_000));
        let mut workers = Vec::new();
        for worker in 0..16 {
            let (client, remaining) = (client.clone(), remaining.clone());
            workers.push(tokio::spawn(async move {
                let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::default_namespaced(client);
                let params = PostParams { dry_run: true, ..PostParams::default() };
                let (mut allowed, mut denied) = (0, 0);
                while remaining
                    .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |n| {
                        n.checked_sub(1)
                    })
                    .is_ok()
                {
                    let object =
                        serde_json::from_value(serde_json::json!({"metadata": {"name": format!("w{worker}")}}))
                            .expect("a ConfigMap");
                    match configmaps.create(&params, &object).await {
                        Ok(_) => allowed += 1,
                        Err(kube::Error::Api(status))
                            if status.code == 403
                                && status
                                    .message
                                    .ends_with("denied by required-labels: missing required labels: never") =>
                        {
                            denied += 1
                        }
                        Err(other) => panic!("a request failed during the swaps: {other:?}"),
                    }
                }
                (allowed, denied)
            }));
        }
        let plugins: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource {
                group: "engenho.io".into(),
                version: "v1alpha1".into(),
                api_version: "engenho.io/v1alpha1".into(),
                kind: "Plugin".into(),
                plural: "plugins".into(),
            },
        );
        let mut swaps = 0;
        while swaps < 20 {
            let labels = if swaps % 2 == 0 { serde_json::json!(["never"]) } else { serde_json::json!([]) };
            let patch = serde_json::json!({"spec": {"config": {"labels": labels}}});
            plugins.patch("required-labels", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("swap");
            swaps += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (mut allowed, mut denied) = (0, 0);
        for worker in workers {
            let (a, d) = worker.await.expect("a worker");
            allowed += a;
            denied += d;
        }
        (allowed, denied, swaps)
    });
    assert_eq!(allowed + denied, 10_000, "every request answered by one of the versions");
    assert!(allowed > 0 && denied > 0, "both versions decided: {allowed} allowed, {denied} denied");
    assert_eq!(swaps, 20);
    node.stop();
}

/// Goal: a plugin author goes from `engenho plugin new` to a policy that
/// decides in the cluster, with the CLI alone.
/// Method: scaffold, test and build the crate with cargo, trust a new
/// signer key, push the component, and watch kubectl's next create.
#[test]
fn an_author_scaffolds_builds_signs_and_pushes_a_policy() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "author");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let engenho = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_engenho"))
            .args(args)
            .current_dir(root.path())
            .env("KUBECONFIG", node.dir.join("kubeconfig"))
            .output()
            .expect("run engenho");
        assert!(output.status.success(), "engenho {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    };
    engenho(&["plugin", "new", "no-tmp"]);
    let crate_dir = root.path().join("no-tmp");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scaffold");
    let cargo = |args: &[&str]| {
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(args)
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo {args:?} in the scaffolded crate");
    };
    cargo(&["test"]);
    cargo(&["build", "--release", "--target", "wasm32-wasip2"]);
    let component = target.join("wasm32-wasip2/release/no_tmp.wasm");
    let component = component.to_str().expect("path");
    assert!(engenho(&["plugin", "inspect", component]).contains("world:  admission-policy"));

    let public = engenho(&["plugin", "keygen", "--out", "author.key"]);
    let signer = format!(
        r#"{{"apiVersion": "engenho.io/v1alpha1", "kind": "PluginSigner", "metadata": {{"name": "author"}},
            "spec": {{"publicKey": "{}"}}}}"#,
        public.trim()
    );
    kubectl.ok_with(&["create", "-f", "-"], Some(&signer));
    let pushed = engenho(&[
        "plugin",
        "push",
        "--key",
        "author.key",
        "--name",
        "no-tmp",
        "--rule",
        r#""":configmaps:CREATE"#,
        "--config",
        r#"{"forbiddenPrefix": "tmp-"}"#,
        component,
    ]);
    assert!(pushed.starts_with("plugin/no-tmp pushed: "), "{pushed}");
    wait_for("the pushed policy to decide", Duration::from_secs(20), || {
        !kubectl.run(&["create", "configmap", "tmp-probe", "--dry-run=server"], None).status.success()
    });
    let refused = kubectl.fails(&["create", "configmap", "tmp-a"], None);
    assert!(refused.contains("denied by no-tmp: names starting with \"tmp-\" are not allowed"), "{refused}");
    kubectl.ok(&["create", "configmap", "kept"]);
    let listed = engenho(&["plugin", "list"]);
    assert!(listed.lines().any(|l| l.starts_with("no-tmp") && l.contains("True")), "{listed}");
    node.stop();
}
