//! The set's history as ControllerRevisions: each records the pod template
//! (as the patch `{"spec":{"template":{…,"$patch":"replace"}}}`), is named
//! `<set>-<hash>` and numbered in order, as Kubernetes' history package
//! keeps them.

use engenho_controller::kinds::{CONTROLLER_REVISIONS, STATEFUL_SETS};
use engenho_controller::meta::OwnerReference;
use serde_json::{Value, json};

use crate::model::{Pod, REVISION_LABEL, Revision, StatefulSet};

/// The characters a hash is spelled with (no vowels, no look-alikes), as
/// Kubernetes' `rand.SafeEncodeString` spells it.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The longest name prefix a revision keeps, so `<prefix>-<hash>` fits.
const NAME_PREFIX_LENGTH_MAX: usize = 223;

/// The revisions kept beyond the live ones when the set names no limit.
const HISTORY_LIMIT_DEFAULT: i32 = 10;

/// 32-bit FNV-1a of `bytes`.
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193))
}

/// The hash naming a revision with `data`, salted by the collision count.
pub fn hash(data: &Value, collision_count: Option<i32>) -> String {
    let mut bytes = data.to_string().into_bytes();
    if let Some(count) = collision_count {
        bytes.extend_from_slice(&count.to_le_bytes());
    }
    fnv32a(&bytes)
        .to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// `<prefix>-<hash>`, the prefix cut short enough for a valid name.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let cut = prefix.char_indices().nth(NAME_PREFIX_LENGTH_MAX).map_or(prefix, |(at, _)| &prefix[..at]);
    format!("{cut}-{hash}")
}

/// The patch a revision of `set` records: its pod template, replacing.
pub fn patch(set: &StatefulSet) -> Value {
    let mut template = set.spec.template.clone();
    if let Some(fields) = template.as_object_mut() {
        fields.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// The revision the set's template makes, numbered `number`.
pub fn new_revision(set: &StatefulSet, number: i64) -> Value {
    let data = patch(set);
    let hash = hash(&data, set.status.collision_count);
    let mut labels = set.spec.template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), json!(hash));
    let owner = OwnerReference::controlled_by(&STATEFUL_SETS, "StatefulSet", &set.metadata);
    json!({
        "apiVersion": CONTROLLER_REVISIONS.api_version(),
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(&set.metadata.name, &hash),
            "namespace": set.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "data": data,
        "revision": number,
    })
}

/// What the history needs so the set's template has a revision.
#[derive(Debug, Clone)]
pub enum UpdateRevision {
    /// The newest revision records the template already.
    Current(Revision),
    /// An older revision records it; it is renumbered (here, already) to
    /// be the newest.
    Renumber(Revision),
    /// No revision records it; this one is created.
    Create(Value),
}

/// The revision for `set`'s template among `revisions` (the set's own, in
/// any order), as Kubernetes picks it: the newest equal one, made newest
/// if it is not; else a new one numbered after the newest.
pub fn update_revision(set: &StatefulSet, revisions: &[Revision]) -> UpdateRevision {
    let data = patch(set);
    let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let equal = revisions.iter().filter(|r| r.data == data).max_by_key(|r| r.revision);
    match equal {
        Some(found) if found.revision == newest => UpdateRevision::Current(found.clone()),
        Some(found) => {
            let mut renumbered = found.clone();
            renumbered.revision = newest + 1;
            UpdateRevision::Renumber(renumbered)
        }
        None => UpdateRevision::Create(new_revision(set, newest + 1)),
    }
}

/// The revisions to delete so at most `revisionHistoryLimit` revisions
/// that no pod, nor the current or update revision, uses remain: the
/// oldest first.
pub fn to_prune<'a>(set: &StatefulSet, revisions: &'a [Revision], pods: &[Pod], live: &[&str]) -> Vec<&'a Revision> {
    let limit = usize::try_from(set.spec.revision_history_limit.unwrap_or(HISTORY_LIMIT_DEFAULT).max(0)).unwrap_or(0);
    let mut history: Vec<&Revision> = revisions
        .iter()
        .filter(|r| !live.contains(&r.metadata.name.as_str()))
        .filter(|r| !pods.iter().any(|p| p.revision() == r.metadata.name))
        .collect();
    history.sort_by_key(|r| r.revision);
    let excess = history.len().saturating_sub(limit);
    history.truncate(excess);
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_controller::meta::ObjectMeta;

    fn set(image: &str) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: "ns".into(),
                uid: "u1".into(),
                ..ObjectMeta::default()
            },
            spec: crate::model::Spec {
                template: json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}),
                ..crate::model::Spec::default()
            },
            ..StatefulSet::default()
        }
    }

    fn revision(set: &StatefulSet, number: i64) -> Revision {
        serde_json::from_value(new_revision(set, number)).expect("a revision")
    }

    #[test]
    fn hashes_are_safe_stable_and_salted_by_collisions() {
        let data = patch(&set("a"));
        assert_eq!(hash(&data, None), hash(&data, None));
        assert_ne!(hash(&data, None), hash(&data, Some(1)));
        assert_ne!(hash(&data, None), hash(&patch(&set("b")), None));
        assert!(hash(&data, None).bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), NAME_PREFIX_LENGTH_MAX + 2);
    }

    #[test]
    fn a_revision_records_the_template_as_a_replacing_patch() {
        let object = new_revision(&set("a"), 3);
        assert_eq!(object["data"]["spec"]["template"]["$patch"], "replace");
        assert_eq!(object["revision"], 3);
        assert_eq!(object["metadata"]["labels"]["app"], "web");
        let name = object["metadata"]["name"].as_str().expect("a name");
        assert_eq!(name, format!("web-{}", object["metadata"]["labels"][REVISION_LABEL].as_str().expect("hash")));
        assert_eq!(object["metadata"]["ownerReferences"][0]["controller"], true);
        let read: Revision = serde_json::from_value(object).expect("a revision");
        assert_eq!(read.template(), set("a").spec.template);
    }

    #[test]
    fn the_newest_equal_revision_is_reused_or_renumbered_else_one_is_made() {
        let a = revision(&set("a"), 1);
        let b = revision(&set("b"), 2);
        assert!(
            matches!(update_revision(&set("b"), &[a.clone(), b.clone()]), UpdateRevision::Current(r) if r.revision == 2)
        );
        assert!(
            matches!(update_revision(&set("a"), &[a.clone(), b.clone()]), UpdateRevision::Renumber(r) if r.revision == 3)
        );
        let UpdateRevision::Create(object) = update_revision(&set("c"), &[a, b]) else { panic!("a new revision") };
        assert_eq!(object["revision"], 3);
    }

    #[test]
    fn history_beyond_the_limit_goes_oldest_first_sparing_live_revisions() {
        let mut owner = set("a");
        owner.spec.revision_history_limit = Some(1);
        let revisions: Vec<Revision> =
            ["a", "b", "c", "d"].iter().zip(1..).map(|(i, n)| revision(&set(i), n)).collect();
        let live = [revisions[3].metadata.name.as_str()];
        let pruned = to_prune(&owner, &revisions, &[], &live);
        assert_eq!(pruned.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![1, 2]);
    }
}
