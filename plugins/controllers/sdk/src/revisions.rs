//! A workload's history as ControllerRevisions, as Kubernetes' history
//! package keeps it for DaemonSets and StatefulSets: each revision records
//! the pod template (as the patch `{"spec":{"template":{…,"$patch":"replace"}}}`),
//! is named `<owner>-<hash>` and numbered in order.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::kinds::CONTROLLER_REVISIONS;
use crate::meta::{ObjectMeta, OwnerReference};
use crate::{ApiError, Cluster, Kind, Outcome, Selector, Write, decode};

/// The pod label with the revision a pod was made from (a DaemonSet's
/// pods carry its hash, a StatefulSet's its name).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The characters a hash is spelled with (no vowels, no look-alikes), as
/// Kubernetes' `rand.SafeEncodeString` spells it.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The longest name prefix a revision keeps, so `<prefix>-<hash>` fits.
const NAME_PREFIX_LENGTH_MAX: usize = 223;

/// The revisions kept beyond the live ones when the owner names no limit.
const HISTORY_LIMIT_DEFAULT: i32 = 10;

/// A workload whose pod templates are recorded as revisions.
pub trait Owner {
    /// Its kind, e.g. `apps/v1` daemonsets.
    const KIND: Kind;
    /// Its kind's name, e.g. `DaemonSet`.
    const KIND_NAME: &'static str;

    /// Its metadata.
    fn metadata(&self) -> &ObjectMeta;

    /// Its pod template, as the API stores it.
    fn template(&self) -> &Value;

    /// The hash collisions its status counts.
    fn collision_count(&self) -> Option<i32>;

    /// How many revisions it keeps beyond the live ones (absent: 10).
    fn revision_history_limit(&self) -> Option<i32>;
}

/// Makes `$owner` a revisions [`Owner`] of kind `$kind` named
/// `$kind_name` (e.g. `"DaemonSet"`): a workload whose object has
/// `metadata`, `spec.template`, `spec.revision_history_limit` and
/// `status.collision_count`, as DaemonSets and StatefulSets have.
#[macro_export]
macro_rules! impl_revisions_owner {
    ($owner:ty, $kind:expr, $kind_name:literal) => {
        impl $crate::revisions::Owner for $owner {
            const KIND: $crate::Kind = $kind;
            const KIND_NAME: &'static str = $kind_name;

            fn metadata(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }

            fn template(&self) -> &$crate::serde_json::Value {
                &self.spec.template
            }

            fn collision_count(&self) -> Option<i32> {
                self.status.collision_count
            }

            fn revision_history_limit(&self) -> Option<i32> {
                self.spec.revision_history_limit
            }
        }
    };
}

/// A ControllerRevision.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Revision {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// The template patch it records.
    pub data: Value,
    /// Its number in the owner's history.
    pub revision: i64,
}

impl Revision {
    /// The hash it was named with: its `controller-revision-hash` label,
    /// or its name when it has none.
    pub fn hash(&self) -> &str {
        self.metadata.labels.get(REVISION_LABEL).unwrap_or(&self.metadata.name)
    }

    /// The pod template it records (without the patch directive).
    pub fn template(&self) -> Value {
        let mut template = self.data["spec"]["template"].clone();
        if let Some(fields) = template.as_object_mut() {
            fields.remove("$patch");
        }
        template
    }
}

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

/// The patch a revision of `owner` records: its pod template, replacing.
pub fn patch(owner: &impl Owner) -> Value {
    let mut template = owner.template().clone();
    if let Some(fields) = template.as_object_mut() {
        fields.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// The revision `owner`'s template makes, numbered `number`.
pub fn new_revision<O: Owner>(owner: &O, number: i64) -> Value {
    let data = patch(owner);
    let hash = hash(&data, owner.collision_count());
    let mut labels = owner.template()["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), json!(hash));
    let metadata = owner.metadata();
    let controller = OwnerReference::controlled_by(&O::KIND, O::KIND_NAME, metadata);
    json!({
        "apiVersion": CONTROLLER_REVISIONS.api_version(),
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(&metadata.name, &hash),
            "namespace": metadata.namespace,
            "labels": labels,
            "ownerReferences": [controller],
        },
        "data": data,
        "revision": number,
    })
}

/// What the history needs so the owner's template has a revision.
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

/// The revision for `owner`'s template among `revisions` (the owner's
/// own, in any order), as Kubernetes picks it: the newest equal one, made
/// newest if it is not; else a new one numbered after the newest.
pub fn update_revision(owner: &impl Owner, revisions: &[Revision]) -> UpdateRevision {
    let data = patch(owner);
    let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let equal = revisions.iter().filter(|r| r.data == data).max_by_key(|r| r.revision);
    match equal {
        Some(found) if found.revision == newest => UpdateRevision::Current(found.clone()),
        Some(found) => {
            let mut renumbered = found.clone();
            renumbered.revision = newest + 1;
            UpdateRevision::Renumber(renumbered)
        }
        None => UpdateRevision::Create(new_revision(owner, newest + 1)),
    }
}

/// The revisions to delete so at most the owner's history limit of
/// revisions that are not `live` remain: the oldest first.
pub fn to_prune<'a>(
    owner: &impl Owner,
    revisions: &'a [Revision],
    live: impl Fn(&Revision) -> bool,
) -> Vec<&'a Revision> {
    let limit = owner.revision_history_limit().unwrap_or(HISTORY_LIMIT_DEFAULT).max(0);
    let mut history: Vec<&Revision> = revisions.iter().filter(|r| !live(r)).collect();
    history.sort_by_key(|r| r.revision);
    let excess = history.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
    history.truncate(excess);
    history
}

/// The revisions the object `owner` describes controls, in its namespace.
///
/// # Errors
/// The list failed, or a revision did not decode.
pub fn controlled_by<C: Cluster>(cluster: &C, owner: &ObjectMeta) -> Result<Vec<Revision>, ApiError> {
    let owned = Selector::owned_by(&owner.namespace, &owner.uid);
    let revisions: Vec<Revision> = cluster.list_as(&CONTROLLER_REVISIONS, &owned)?;
    Ok(revisions.into_iter().filter(|r| r.metadata.is_controlled_by(&owner.uid)).collect())
}

/// The revision of `owner`'s template among `revisions`, created or
/// renumbered if it must be; or the outcome to answer at once (a hash
/// collision, counted in the owner's status so the next reconcile names
/// the revision with another hash).
///
/// # Errors
/// A write or read that failed.
pub fn ensure_update_revision<C: Cluster, O: Owner>(
    cluster: &C,
    owner: &O,
    revisions: &[Revision],
) -> Result<Result<Revision, Outcome>, ApiError> {
    let namespace = owner.metadata().namespace.clone();
    let found = match update_revision(owner, revisions) {
        UpdateRevision::Current(found) => found,
        UpdateRevision::Renumber(found) => {
            cluster.write(Write::Patch {
                kind: CONTROLLER_REVISIONS,
                namespace,
                name: found.metadata.name.clone(),
                subresource: String::new(),
                patch: json!({"revision": found.revision}),
            })?;
            found
        }
        UpdateRevision::Create(object) => {
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            match cluster.write(Write::Create { kind: CONTROLLER_REVISIONS, namespace: namespace.clone(), object }) {
                Ok(stored) => decode::<Revision>(&CONTROLLER_REVISIONS, &stored)?,
                Err(error) if error.is_conflict() => {
                    let existing = cluster.get_as::<Revision>(&CONTROLLER_REVISIONS, &namespace, &name)?;
                    match existing {
                        Some(existing) if existing.data == patch(owner) => existing,
                        _ => return count_collision(cluster, owner).map(Err),
                    }
                }
                Err(error) => return Err(error),
            }
        }
    };
    Ok(Ok(found))
}

/// Counts a revision name taken by another template in `owner`'s status;
/// the owner is reconciled again at once.
fn count_collision<C: Cluster, O: Owner>(cluster: &C, owner: &O) -> Result<Outcome, ApiError> {
    let count = owner.collision_count().unwrap_or(0).saturating_add(1);
    cluster.write(Write::status_patch(O::KIND, owner.metadata(), json!({"collisionCount": count})))?;
    Ok(Outcome::RequeueAfter(Duration::ZERO))
}

/// Deletes the revisions of `owner` beyond its history limit (see
/// [`to_prune`]); revisions already gone are no error.
///
/// # Errors
/// The first deletion that failed otherwise.
pub fn prune<C: Cluster>(
    cluster: &C,
    owner: &impl Owner,
    revisions: &[Revision],
    live: impl Fn(&Revision) -> bool,
) -> Result<(), ApiError> {
    let deletes: Vec<Write> = to_prune(owner, revisions, live)
        .into_iter()
        .map(|r| Write::delete(CONTROLLER_REVISIONS, &r.metadata))
        .collect();
    for answer in cluster.apply(deletes) {
        match answer {
            Err(error) if !error.is_not_found() => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::DAEMON_SETS;

    /// A workload of one pod template.
    #[derive(Debug, Clone, Default)]
    struct Set {
        metadata: ObjectMeta,
        spec: SetSpec,
        status: SetStatus,
    }

    /// What a [`Set`] asks for.
    #[derive(Debug, Clone, Default)]
    struct SetSpec {
        template: Value,
        revision_history_limit: Option<i32>,
    }

    /// What a [`Set`] reports.
    #[derive(Debug, Clone, Default)]
    struct SetStatus {
        collision_count: Option<i32>,
    }

    crate::impl_revisions_owner!(Set, DAEMON_SETS, "DaemonSet");

    fn set(image: &str) -> Set {
        Set {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: "ns".into(),
                uid: "u1".into(),
                ..ObjectMeta::default()
            },
            spec: SetSpec {
                template: json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}),
                ..SetSpec::default()
            },
            ..Set::default()
        }
    }

    fn revision(set: &Set, number: i64) -> Revision {
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
        assert_eq!(object["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        let read: Revision = serde_json::from_value(object).expect("a revision");
        assert_eq!(read.hash(), read.metadata.name.trim_start_matches("web-"));
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
        let live = revisions[3].metadata.name.clone();
        let pruned = to_prune(&owner, &revisions, |r| r.metadata.name == live);
        assert_eq!(pruned.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![1, 2]);
        owner.spec.revision_history_limit = None;
        assert!(to_prune(&owner, &revisions, |_| false).is_empty());
    }
}
