//! Goal: each built-in admission policy decides as documented.
//! Method: the real components from host/plugin-artifacts, called through
//! the plugin host with reviews of pods as the API server sends them.

use engenho_wasm::{AdmissionPolicy, Decision, Limits, Operation, PluginHost, Review, UserInfo, digest_of};
use serde_json::{Value, json};

/// `work` run to its end, as the API server's runtime runs plugin calls.
fn block_on<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(work)
}

fn policy(host: &PluginHost, name: &str, config: Value) -> AdmissionPolicy {
    let bytes = engenho_plugin_artifacts::plugin(name).expect("built");
    block_on(AdmissionPolicy::load(host, name, &digest_of(bytes), bytes, &config.to_string(), Limits::default()))
        .expect("loads")
}

fn admit(host: &PluginHost, policy: &AdmissionPolicy, namespace: &str, spec: Value) -> Decision {
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace}, "spec": spec});
    let review = Review {
        uid: "u".into(),
        operation: Operation::Create,
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
        subresource: String::new(),
        namespace: namespace.into(),
        name: "p".into(),
        user: UserInfo { username: "admin".into(), uid: String::new(), groups: Vec::new() },
        dry_run: false,
        object: pod.to_string(),
        old_object: String::new(),
    };
    block_on(policy.admit(host, &review)).expect("decides")
}

#[test]
fn pod_security_refuses_what_the_baseline_forbids() {
    let host = PluginHost::new(None).expect("host");
    let baseline = policy(&host, "pod-security", json!({"exemptNamespaces": ["kube-system"]}));
    let refused = |spec: Value| {
        let decision = admit(&host, &baseline, "default", spec);
        assert!(!decision.allowed);
        decision.reason
    };
    assert!(refused(json!({"hostNetwork": true, "containers": [{"name": "a"}]})).contains("hostNetwork=true"));
    assert!(refused(json!({"hostPID": true, "containers": [{"name": "a"}]})).contains("hostPID=true"));
    assert!(
        refused(json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}], "containers": [{"name": "a"}]}))
            .contains("hostPath volumes (volumes [\"root\"])")
    );
    let capabilities =
        json!({"containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}]});
    assert_eq!(
        refused(capabilities),
        "violates PodSecurity \"baseline\": non-default capabilities (container \"a\" must not include [\"NET_ADMIN\"] in \
         securityContext.capabilities.add)"
    );
    assert!(
        refused(json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}]}]}))
            .contains("hostPort")
    );
    let init = json!({"initContainers": [{"name": "i", "securityContext": {"privileged": true}}], "containers": [{"name": "a"}]});
    assert!(refused(init).contains("container \"i\" must not set securityContext.privileged=true"));

    let fine = json!({"containers": [{"name": "a", "ports": [{"containerPort": 80}],
        "securityContext": {"privileged": false, "capabilities": {"add": ["NET_BIND_SERVICE"]}}}]});
    assert!(admit(&host, &baseline, "default", fine).allowed);
    assert!(
        admit(&host, &baseline, "kube-system", json!({"hostNetwork": true, "containers": [{"name": "a"}]})).allowed
    );
}

#[test]
fn resource_defaults_patch_only_what_is_missing() {
    let host = PluginHost::new(None).expect("host");
    let defaults = policy(
        &host,
        "resource-defaults",
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}),
    );
    let patch = |spec: Value| -> Value {
        let decision = admit(&host, &defaults, "default", spec);
        assert!(decision.allowed);
        if decision.patch.is_empty() { json!([]) } else { serde_json::from_str(&decision.patch).expect("a JSON patch") }
    };
    assert_eq!(
        patch(json!({"containers": [{"name": "a"}]})),
        json!([
            {"op": "add", "path": "/spec/containers/0/resources", "value": {}},
            {"op": "add", "path": "/spec/containers/0/resources/requests", "value": {"cpu": "100m", "memory": "128Mi"}},
            {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"memory": "512Mi"}},
        ])
    );
    let partial =
        json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}}]});
    assert_eq!(
        patch(partial),
        json!([{"op": "add", "path": "/spec/containers/0/resources/requests/memory", "value": "128Mi"}])
    );
    let complete = json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}]});
    assert_eq!(patch(complete), json!([]));

    let bytes = engenho_plugin_artifacts::plugin("resource-defaults").expect("built");
    let config = r#"{"requests": {"cpu": 1}}"#;
    let refused = block_on(AdmissionPolicy::load(&host, "d", &digest_of(bytes), bytes, config, Limits::default()));
    assert!(refused.err().expect("a number is no quantity").to_string().contains("quantities are strings"));
}

#[test]
fn image_allowlist_wants_digests_from_allowed_sources() {
    let host = PluginHost::new(None).expect("host");
    let allowlist = policy(&host, "image-allowlist", json!({"allowedPrefixes": ["registry.example.com/"]}));
    let digest = "b".repeat(64);
    let image = |image: String| json!({"containers": [{"name": "a", "image": image}]});
    let decide = |spec: Value| admit(&host, &allowlist, "default", spec);
    assert!(decide(image(format!("registry.example.com/app@sha256:{digest}"))).allowed);
    let tagged = decide(image("registry.example.com/app:1.0".into()));
    assert_eq!(tagged.reason, "image \"registry.example.com/app:1.0\" is not pinned by a sha256 digest");
    let elsewhere = decide(image(format!("docker.io/app@sha256:{digest}")));
    assert!(elsewhere.reason.ends_with("is not from an allowed source"), "{}", elsewhere.reason);
    let short = decide(image("registry.example.com/app@sha256:abc".into()));
    assert!(!short.allowed, "a digest is 64 hex digits");
}
