//! The annotations a Deployment keeps on its ReplicaSets and itself:
//! revisions, revision history, the counts a ReplicaSet was sized for, and
//! the Deployment's own annotations copied to its ReplicaSets.

use std::collections::BTreeMap;

use engenho_controller::replicasets::ReplicaSet;

/// The revision of a ReplicaSet (and of its Deployment: its newest).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The revisions a ReplicaSet had before a rollback made it new again.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's count when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's count plus its surge when the ReplicaSet was last sized.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Annotations of a Deployment never copied to its ReplicaSets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// The revision of `set`, 0 when absent or invalid.
pub fn of(set: &ReplicaSet) -> i64 {
    annotation_number(&set.metadata.annotations, REVISION).unwrap_or(0)
}

/// The annotation `key` of `annotations` as a number, if it is one.
pub fn annotation_number(annotations: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    annotations.get(key).and_then(|value| value.parse().ok())
}

/// Copies `deployment`'s annotations (but its own bookkeeping) onto
/// `set`'s, overwriting; whether any changed.
pub fn copy_annotations(deployment: &BTreeMap<String, String>, set: &mut BTreeMap<String, String>) -> bool {
    let mut changed = false;
    for (key, value) in deployment.iter().filter(|(key, _)| !NOT_COPIED.contains(&key.as_str())) {
        if set.get(key) != Some(value) {
            set.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    changed
}

/// Gives `set` the revision `revision` if its own is older, moving the
/// old one to its revision history (a rollback); whether it changed
/// (Kubernetes' `SetNewReplicaSetAnnotations`).
pub fn set_revision(set: &mut BTreeMap<String, String>, revision: i64) -> bool {
    let old_opt = set.get(REVISION).cloned();
    let old = old_opt.as_deref().and_then(|text| text.parse::<i64>().ok()).unwrap_or(0);
    if old >= revision {
        return false;
    }
    set.insert(REVISION.into(), revision.to_string());
    if let Some(old_text) = old_opt {
        let history = match set.get(REVISION_HISTORY) {
            Some(history) if !history.is_empty() => format!("{history},{old_text}"),
            _ => old_text,
        };
        set.insert(REVISION_HISTORY.into(), history);
    }
    true
}

/// Records the counts `desired` and `most` a ReplicaSet is sized for;
/// whether they changed.
pub fn set_replicas(set: &mut BTreeMap<String, String>, desired: i64, most: i64) -> bool {
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, most)] {
        let value = value.to_string();
        if set.get(key) != Some(&value) {
            set.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_rollback_moves_the_old_revision_into_the_history() {
        // Goal: revision 1 made new again as revision 3 keeps "1" in its
        // history; later as 5 it keeps "1,3"; a lower revision changes
        // nothing.
        let mut set = map(&[(REVISION, "1")]);
        assert!(set_revision(&mut set, 3));
        assert_eq!(set[REVISION], "3");
        assert_eq!(set[REVISION_HISTORY], "1");
        assert!(set_revision(&mut set, 5));
        assert_eq!(set[REVISION_HISTORY], "1,3");
        assert!(!set_revision(&mut set, 4));
        let mut fresh = BTreeMap::new();
        assert!(set_revision(&mut fresh, 1));
        assert!(!fresh.contains_key(REVISION_HISTORY));
    }

    #[test]
    fn annotations_are_copied_but_the_bookkeeping() {
        let deployment = map(&[
            ("kubernetes.io/change-cause", "v2"),
            (REVISION, "7"),
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
        ]);
        let mut set = map(&[(REVISION, "2")]);
        assert!(copy_annotations(&deployment, &mut set));
        assert_eq!(set, map(&[("kubernetes.io/change-cause", "v2"), (REVISION, "2")]));
        assert!(!copy_annotations(&deployment, &mut set));
        assert!(set_replicas(&mut set, 3, 4));
        assert!(!set_replicas(&mut set, 3, 4));
        assert_eq!(set[MAX_REPLICAS], "4");
    }
}
