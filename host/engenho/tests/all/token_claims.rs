//! Goal: service-account tokens are checked for when they were issued and
//! from when they are valid, and the key that signs them is never readable
//! through the Kubernetes API.
//! Method: a real node; tokens signed with the cluster's key (read from the
//! store through the etcd endpoint, as only an operator can) with `iat` or
//! `nbf` ahead are refused by the real kubectl with 401; then every served
//! resource is listed as admin and no list holds the key.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::Ed25519KeyPair;

use crate::support::{EngenhoNode, Kubectl};

/// Where the node keeps the service-account signing key (base64 PKCS #8).
const SIGNING_KEY: &str = "/engenho/serviceaccounts/signing-key";

/// A token for service account `default/clock` (uid `uid`) signed with
/// `key`, issued at `iat` and valid from `nbf` for ten minutes.
fn token(key: &Ed25519KeyPair, uid: &str, iat: i64, nbf: i64) -> String {
    let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let header = part(serde_json::json!({"alg": "EdDSA", "typ": "JWT"}));
    let body = part(serde_json::json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:default:clock",
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "iat": iat, "nbf": nbf, "exp": iat.max(nbf) + 600,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "clock", "uid": uid}},
    }));
    let signed = format!("{header}.{body}");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()).as_ref()))
}

fn now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit i64")
}

#[test]
fn tokens_from_the_future_are_refused_and_the_signing_key_is_not_served() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "token-claims");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok(&["create", "serviceaccount", "clock"]);
    let issued = kubectl.ok(&["create", "token", "clock"]);
    assert!(kubectl.ok(&["--token", issued.trim(), "auth", "whoami"]).contains("system:serviceaccount:default:clock"));
    let stored = node.local_value(SIGNING_KEY).expect("the signing key is kept in the store");
    let key = Ed25519KeyPair::from_pkcs8(&STANDARD.decode(&stored).expect("base64")).expect("an Ed25519 key");
    let uid = kubectl.ok(&["get", "serviceaccount", "clock", "-o", "jsonpath={.metadata.uid}"]);

    let whoami = |token: &str| kubectl.run(&["--token", token, "auth", "whoami"], None);
    let now = now();
    assert!(whoami(&token(&key, &uid, now, now)).status.success(), "a token of now is accepted");
    for (what, iat, nbf) in [("issued in the future", now + 3600, now), ("not valid yet", now, now + 3600)] {
        let refused = whoami(&token(&key, &uid, iat, nbf));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && stderr.contains("Unauthorized"), "a token {what}: {stderr}");
    }

    let material = [stored.clone(), STANDARD.encode(&stored)];
    let resources = kubectl.ok(&["api-resources", "--verbs=list", "-o", "name"]);
    let mut listed = 0;
    for resource in resources.lines().filter(|r| !r.is_empty()) {
        let everything = kubectl.ok(&["get", resource, "-A", "-o", "json"]);
        assert!(!material.iter().any(|m| everything.contains(m.as_str())), "{resource} holds the signing key");
        listed += 1;
    }
    assert!(listed > 20, "every served resource was listed: {resources}");
    for path in ["/api", "/apis", "/version", "/openapi/v3", "/api/v1"] {
        let answer = kubectl.ok(&["get", "--raw", path]);
        assert!(!material.iter().any(|m| answer.contains(m.as_str())), "{path} holds the signing key");
    }
    node.stop();
}
