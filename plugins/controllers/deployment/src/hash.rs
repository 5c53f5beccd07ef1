//! The pod-template hash that names a Deployment's ReplicaSets and labels
//! their pods.

use serde_json::Value;

/// The label (on a ReplicaSet, its selector, its template and its pods)
/// naming the template a ReplicaSet runs.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The characters Kubernetes' `SafeEncodeString` maps bytes to: no vowels
/// (no words), no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The hash of `template` salted by `collision_count_opt`: FNV-1a (32 bits)
/// of the template's canonical JSON (keys sorted), then of the count's
/// four little-endian bytes if there is one, its decimal digits mapped
/// through the safe alphabet as Kubernetes' `ComputeHash` renders it.
pub fn template_hash(template: &Value, collision_count_opt: Option<i64>) -> String {
    let mut hash = Fnv1a::new();
    hash.write(without_hash_label(template).to_string().as_bytes());
    if let Some(count) = collision_count_opt {
        // Kubernetes hashes the count as an unsigned 32-bit number.
        hash.write(&(count as u32).to_le_bytes());
    }
    safe_encode(&hash.finish().to_string())
}

/// `text` with each byte replaced by a character of the safe alphabet.
fn safe_encode(text: &str) -> String {
    text.bytes().map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()])).collect()
}

/// Whether two pod templates are the same but for their
/// `pod-template-hash` label (Kubernetes' `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    without_hash_label(a) == without_hash_label(b)
}

/// `template` without its `pod-template-hash` label, and with what
/// Kubernetes' semantic equality does not tell apart removed: `null`
/// fields (a client's `creationTimestamp: null`), empty maps and empty
/// lists.
fn without_hash_label(template: &Value) -> Value {
    let mut template = template.clone();
    prune_empty(&mut template);
    if let Some(metadata) = template.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty() {
            metadata.remove("labels");
        }
    }
    template
}

/// Removes `null` fields, empty maps and empty lists inside `value`.
fn prune_empty(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for field in fields.values_mut() {
                prune_empty(field);
            }
            fields.retain(|_, field| !is_empty(field));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(fields) => fields.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// FNV-1a, 32 bits.
struct Fnv1a(u32);

impl Fnv1a {
    fn new() -> Self {
        Self(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u32::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    fn finish(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv1a_matches_its_reference_values() {
        let mut empty = Fnv1a::new();
        empty.write(b"");
        assert_eq!(empty.finish(), 0x811c_9dc5);
        let mut a = Fnv1a::new();
        a.write(b"a");
        assert_eq!(a.finish(), 0xe40c_292c);
    }

    #[test]
    fn hashes_are_safe_stable_and_salted() {
        // Goal: the hash ignores key order and the hash label, changes with
        // the template and with the collision count, and uses only the
        // safe alphabet.
        let template =
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
        let reordered =
            json!({"spec": {"containers": [{"image": "a", "name": "c"}]}, "metadata": {"labels": {"app": "web"}}});
        let labeled = json!({"metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: "x"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
        let hash = template_hash(&template, None);
        assert_eq!(hash, template_hash(&reordered, None));
        assert_eq!(hash, template_hash(&labeled, None));
        assert_ne!(hash, template_hash(&json!({"spec": {}}), None));
        assert_ne!(hash, template_hash(&template, Some(1)));
        assert!(hash.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert!((1..=10).contains(&hash.len()));
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn templates_compare_without_nulls_and_empty_fields() {
        let stored = json!({"metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: "x"}},
            "spec": {"containers": [{"name": "web", "resources": {}}], "volumes": []}});
        let client = json!({"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web"}]}});
        assert!(equal_ignore_hash(&stored, &client));
        assert_eq!(template_hash(&stored, None), template_hash(&client, None));
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let plain = json!({"metadata": {"labels": {"app": "web"}}, "spec": {}});
        let labeled = json!({"metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: "abc"}}, "spec": {}});
        assert!(equal_ignore_hash(&plain, &labeled));
        assert!(!equal_ignore_hash(&plain, &json!({"metadata": {"labels": {"app": "api"}}, "spec": {}})));
    }
}
