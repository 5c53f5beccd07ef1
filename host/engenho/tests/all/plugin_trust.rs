//! Goal: the plugins' trust root (the PluginSigner objects) changes only
//! with its own permission, fails closed when it cannot be read, and
//! removing a signer unloads what it signed.
//! Method: a real node driven by the real kubectl, as the cluster admin and
//! as service accounts bound to the `admin` and `edit` roles.

use std::time::Duration;

use engenho_api::kube::plugins::SigningKey;

use crate::support::{EngenhoNode, Kubectl, wait_for};

/// How long a change of plugins or signers may take to reach admission.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

fn new_key() -> SigningKey {
    SigningKey::from_text(&SigningKey::generate().expect("key")).expect("key")
}

fn bootstrap_signer(node: &EngenhoNode) -> SigningKey {
    SigningKey::load_or_create(&node.dir.join("pki").join("plugin-signer.key")).expect("the bootstrap signer")
}

/// A Plugin of the misbehaving test component in `mode`, deciding creates
/// of `resource`, signed by `key`.
pub fn test_plugin(kubectl: &Kubectl, name: &str, mode: &str, resource: &str, key: &SigningKey) -> String {
    let digest = upload_test_component(kubectl);
    let mut plugin = serde_json::json!({"apiVersion": "engenho.io/v1alpha1", "kind": "Plugin",
        "metadata": {"name": name},
        "spec": {"world": "admission-policy", "digest": digest, "config": {"mode": mode},
            "admission": {"rules": [{"apiGroups": [""], "resources": [resource], "operations": ["CREATE"]}]}}});
    plugin["spec"]["signature"] = key.sign_plugin(name, &plugin["spec"]).expect("a Plugin's spec").into();
    plugin.to_string()
}

/// Uploads the misbehaving test component; its digest.
pub fn upload_test_component(kubectl: &Kubectl) -> String {
    upload_component(kubectl, "misbehaving")
}

/// Uploads the built plugin component `plugin` (as `kubectl replace --raw`
/// of its digest's URL); its digest.
pub fn upload_component(kubectl: &Kubectl, plugin: &str) -> String {
    let bytes = engenho_plugin_artifacts::plugin(plugin).expect("built");
    let digest = engenho_wasm::digest_of(bytes);
    let file = tempfile::NamedTempFile::new().expect("component file");
    std::fs::write(file.path(), bytes).expect("component file");
    let url = format!("/apis/engenho.io/v1alpha1/components/{digest}");
    kubectl.ok(&["replace", "--raw", &url, "-f", file.path().to_str().expect("path")]);
    digest
}

/// The Ready condition of Plugin `name`: status and message.
pub fn readiness(kubectl: &Kubectl, name: &str) -> String {
    kubectl.ok(&[
        "get",
        "plugin",
        name,
        "-o",
        "jsonpath={.status.conditions[0].status} {.status.conditions[0].message}",
    ])
}

/// A PluginSigner named `name` trusting `public_key`.
fn signer_object(name: &str, public_key: &str) -> String {
    serde_json::json!({"apiVersion": "engenho.io/v1alpha1", "kind": "PluginSigner", "metadata": {"name": name},
        "spec": {"publicKey": public_key}})
    .to_string()
}

/// Goal: namespace admins and the `admin`/`edit` roles anywhere cannot add
/// or remove a trusted signer; the signers' old home, a ConfigMap in
/// kube-system, grants nothing.
/// Method: service accounts bound to `admin` in kube-system, `edit` in
/// default and `admin` cluster-wide try to create, patch and delete
/// PluginSigners (403 each); the first also writes the ConfigMap, and a
/// plugin signed by the key it names stays refused.
#[test]
fn only_the_signers_permission_changes_the_trust_root() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "trust-rbac");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let intruder = new_key();
    let accounts = [
        ("kube-system", "ops", vec!["rolebinding", "ops", "--clusterrole=admin", "-n", "kube-system"]),
        ("default", "dev", vec!["rolebinding", "dev", "--clusterrole=edit", "-n", "default"]),
        ("default", "wide", vec!["clusterrolebinding", "wide", "--clusterrole=admin"]),
    ];
    for (namespace, account, binding) in &accounts {
        kubectl.ok(&["create", "serviceaccount", account, "-n", namespace]);
        let subject = format!("--serviceaccount={namespace}:{account}");
        let mut create = vec!["create"];
        create.extend(binding.iter().copied());
        create.push(&subject);
        kubectl.ok(&create);
        let token = kubectl.ok(&["create", "token", account, "-n", namespace, "--duration=20m"]);
        let token = format!("--token={}", token.trim());
        let user = format!("User \"system:serviceaccount:{namespace}:{account}\"");
        let added =
            kubectl.fails(&[&token, "create", "-f", "-"], Some(&signer_object("mine", &intruder.public_base64())));
        assert!(
            added.contains(&format!(
                "Error from server (Forbidden): error when creating \"STDIN\": pluginsigners.engenho.io is forbidden: \
                 {user} cannot create resource \"pluginsigners\" in API group \"engenho.io\" at the cluster scope"
            )),
            "{added}"
        );
        let patch = format!(r#"{{"spec": {{"publicKey": "{}"}}}}"#, intruder.public_base64());
        let changed =
            kubectl.fails(&[&token, "patch", "pluginsigner", "bootstrap", "--type=merge", "-p", &patch], None);
        // kubectl reads the object before it patches: the read is refused already.
        assert!(
            changed.contains("Error from server (Forbidden): pluginsigners.engenho.io \"bootstrap\" is forbidden"),
            "{changed}"
        );
        let removed = kubectl.fails(&[&token, "delete", "pluginsigner", "bootstrap"], None);
        assert!(
            removed.contains("(Forbidden)") && removed.contains("cannot delete resource \"pluginsigners\""),
            "{removed}"
        );
    }
    assert_eq!(kubectl.ok(&["get", "pluginsigners", "-o", "name"]).trim(), "pluginsigner.engenho.io/bootstrap");

    let ops = kubectl.ok(&["create", "token", "ops", "-n", "kube-system", "--duration=20m"]);
    let ops = format!("--token={}", ops.trim());
    let configmap = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "engenho-plugin-signers", "namespace": "kube-system"},
        "data": {"intruder": intruder.public_base64()}});
    kubectl.ok_with(&[&ops, "apply", "-f", "-"], Some(&configmap.to_string()));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&test_plugin(&kubectl, "smuggled", "warn", "services", &intruder)));
    wait_for("the smuggled plugin's refusal", SETTLE_TIMEOUT, || readiness(&kubectl, "smuggled").starts_with("False"));
    assert!(readiness(&kubectl, "smuggled").contains("does not verify against any trusted signer"));
    let output = kubectl.run(&["create", "service", "clusterip", "plain", "--tcp=80:80"], None);
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("smuggled"), "the refused plugin does not run");

    // The cluster admin holds the permission.
    kubectl.ok_with(&["create", "-f", "-"], Some(&signer_object("intruder", &intruder.public_base64())));
    wait_for("the plugin to be trusted", SETTLE_TIMEOUT, || readiness(&kubectl, "smuggled").starts_with("True"));
    node.stop();
}

/// Goal: while the trusted signers are missing or unreadable, policies
/// that fail closed refuse the requests they match, and the node keeps
/// serving the rest.
/// Method: delete the only PluginSigner and create pods (refused, with
/// the reason on the policies' status) and secrets (matched by no
/// policy: created); then a signer holding no key; then the bootstrap key
/// again, and pods are admitted as before.
#[test]
fn policies_that_fail_closed_refuse_while_the_signers_cannot_be_read() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "trust-closed");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok(&["run", "before", "--image=busybox"]);

    kubectl.ok(&["delete", "pluginsigner", "bootstrap"]);
    wait_for("pods to be refused", SETTLE_TIMEOUT, || {
        !kubectl.run(&["run", "probe", "--image=busybox", "--dry-run=server"], None).status.success()
    });
    let refused = kubectl.fails(&["run", "missing", "--image=busybox"], None);
    assert!(
        refused.contains(
            "admission plugin \"resource-defaults\" failed: the trusted plugin signers cannot be read: no \
             PluginSigner exists"
        ),
        "{refused}"
    );
    assert_eq!(
        readiness(&kubectl, "pod-security"),
        "False the trusted plugin signers cannot be read: no PluginSigner exists; the requests it matches are refused"
    );
    kubectl.ok(&["create", "secret", "generic", "unmatched", "--from-literal=a=b"]);

    kubectl.ok_with(&["create", "-f", "-"], Some(&signer_object("broken", "not a key")));
    wait_for("the unreadable signer to be named", SETTLE_TIMEOUT, || {
        readiness(&kubectl, "pod-security").contains("PluginSigner broken: spec.publicKey is not a base64 Ed25519")
    });
    let unreadable = kubectl.fails(&["run", "unreadable", "--image=busybox"], None);
    assert!(unreadable.contains("PluginSigner broken: spec.publicKey is not a base64 Ed25519"), "{unreadable}");

    kubectl.ok(&["delete", "pluginsigner", "broken"]);
    let public = bootstrap_signer(&node).public_base64();
    kubectl.ok_with(&["create", "-f", "-"], Some(&signer_object("bootstrap", &public)));
    wait_for("pods to be admitted again", SETTLE_TIMEOUT, || {
        kubectl.run(&["run", "probe", "--image=busybox", "--dry-run=server"], None).status.success()
    });
    assert!(readiness(&kubectl, "pod-security").starts_with("True"));
    node.stop();
    node.start_ready(&[]);
    assert_eq!(
        kubectl.ok(&["get", "pluginsigners", "-o", "name"]).trim(),
        "pluginsigner.engenho.io/bootstrap",
        "a restart adds no signer"
    );
    node.stop();
}

/// Goal: removing a signer unloads the plugins it signed; they are refused
/// on their status, as a plugin signed by a stranger is at its start.
/// Method: trust a second key, run a warning plugin it signed, delete the
/// signer, and watch the status and the warnings of the next creates.
#[test]
fn removing_a_signer_unloads_what_it_signed() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "trust-removal");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let author = new_key();
    kubectl.ok_with(&["create", "-f", "-"], Some(&signer_object("author", &author.public_base64())));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&test_plugin(&kubectl, "warner", "warn", "services", &author)));
    wait_for("the plugin to be active", SETTLE_TIMEOUT, || readiness(&kubectl, "warner").starts_with("True"));
    let warned = kubectl.run(&["create", "service", "clusterip", "first", "--tcp=80:80"], None);
    assert!(String::from_utf8_lossy(&warned.stderr).contains("Warning: warner: Service first looks risky"));

    kubectl.ok(&["delete", "pluginsigner", "author"]);
    wait_for("the plugin's refusal", SETTLE_TIMEOUT, || readiness(&kubectl, "warner").starts_with("False"));
    assert!(readiness(&kubectl, "warner").contains("does not verify against any trusted signer"));
    let quiet = kubectl.run(&["create", "service", "clusterip", "second", "--tcp=80:80"], None);
    assert!(quiet.status.success());
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("warner"), "the unloaded plugin does not run");
    assert!(readiness(&kubectl, "pod-security").starts_with("True"), "plugins of other signers keep running");
    node.stop();
}
