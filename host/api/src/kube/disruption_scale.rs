//! The scale of the controllers that own a disruption budget's pods, as
//! Kubernetes' disruption controller finds it: a pod's controller is the
//! Deployment over its ReplicaSet, else the ReplicaSet, the
//! ReplicationController or the StatefulSet its controller reference
//! names (kind and uid both matching); each controller counts its
//! `spec.replicas` once, however many pods it owns.

use std::collections::BTreeMap;

use serde_json::Value;

use super::objects::ObjectStore;
use super::resources::Registry;
use super::status::ApiError;

/// The controller kinds whose scale a budget counts, with their group and
/// plural.
const SCALED_KINDS: [(&str, &str, &str); 4] = [
    ("apps", "deployments", "Deployment"),
    ("apps", "replicasets", "ReplicaSet"),
    ("", "replicationcontrollers", "ReplicationController"),
    ("apps", "statefulsets", "StatefulSet"),
];

/// One controller of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Controller {
    kind: String,
    replicas: i64,
    /// The uid of the controller that controls this one, if any.
    controlled_by_opt: Option<(String, String)>,
}

/// The controllers of one namespace, by uid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controllers {
    by_uid: BTreeMap<String, Controller>,
}

/// The controller reference of `object`: its kind and uid.
fn controller_of(object: &Value) -> Option<(String, String)> {
    let references = object.pointer("/metadata/ownerReferences").and_then(Value::as_array)?;
    let reference = references.iter().find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    let text = |field: &str| reference.get(field).and_then(Value::as_str).map(str::to_owned);
    Some((text("kind")?, text("uid")?))
}

impl Controllers {
    /// The controllers among `objects` (each carrying its `kind`).
    pub fn new(objects: impl IntoIterator<Item = Value>) -> Self {
        let mut by_uid = BTreeMap::new();
        for object in objects {
            let Some(uid) = object.pointer("/metadata/uid").and_then(Value::as_str) else { continue };
            let Some(kind) = object.get("kind").and_then(Value::as_str) else { continue };
            let replicas = object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let controller = Controller { kind: kind.to_owned(), replicas, controlled_by_opt: controller_of(&object) };
            by_uid.insert(uid.to_owned(), controller);
        }
        Self { by_uid }
    }

    /// Reads the controllers of `namespace` from the store.
    ///
    /// # Errors
    /// Store failures.
    pub fn read(objects: &ObjectStore, registry: &Registry, namespace: &str) -> Result<Self, ApiError> {
        let mut found = Vec::new();
        for (group, plural, kind) in SCALED_KINDS {
            let t = registry.find_plural(group, plural).expect("controller kinds are built in");
            for mut object in objects.list_at(t, Some(namespace), 0)?.items {
                object["kind"] = Value::from(kind);
                found.push(object);
            }
        }
        Ok(Self::new(found))
    }

    /// The controller named by `reference` (kind and uid), if present.
    fn named(&self, (kind, uid): &(String, String)) -> Option<(&str, &Controller)> {
        self.by_uid.get_key_value(uid).filter(|(_, c)| c.kind == *kind).map(|(uid, c)| (uid.as_str(), c))
    }

    /// The sum of the scale of the controllers owning `pods`; pods with no
    /// controller reference are left out, as Kubernetes leaves them.
    ///
    /// # Errors
    /// Kubernetes' message naming the first pod whose controller is not
    /// one of these.
    pub fn expected<'a>(&self, pods: impl IntoIterator<Item = &'a Value>) -> Result<i64, String> {
        let mut scale: BTreeMap<&str, i64> = BTreeMap::new();
        for pod in pods {
            let Some(reference) = controller_of(pod) else { continue };
            let found = self.named(&reference).map(|(uid, controller)| {
                let deployment = (controller.kind == "ReplicaSet")
                    .then_some(controller.controlled_by_opt.as_ref())
                    .flatten()
                    .filter(|(kind, _)| kind == "Deployment")
                    .and_then(|owner| self.named(owner));
                deployment.unwrap_or((uid, controller))
            });
            let Some((uid, controller)) = found else {
                let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                return Err(format!("found no controllers for pod {name:?}"));
            };
            scale.insert(uid, controller.replicas);
        }
        Ok(scale.values().fold(0_i64, |sum, replicas| sum.saturating_add(*replicas)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn owned(name: &str, kind: &str, uid: &str) -> Value {
        json!({"metadata": {"name": name, "uid": format!("{name}-uid"),
            "ownerReferences": [{"kind": kind, "name": "x", "uid": uid, "controller": true}]}})
    }

    fn controller(kind: &str, uid: &str, replicas: i64, owner: Option<(&str, &str)>) -> Value {
        let mut object = json!({"kind": kind, "metadata": {"uid": uid}, "spec": {"replicas": replicas}});
        if let Some((kind, uid)) = owner {
            object["metadata"]["ownerReferences"] = json!([{"kind": kind, "uid": uid, "controller": true}]);
        }
        object
    }

    #[test]
    fn a_deployment_counts_over_its_replica_sets() {
        let controllers = Controllers::new([
            controller("Deployment", "d", 4, None),
            controller("ReplicaSet", "rs-old", 1, Some(("Deployment", "d"))),
            controller("ReplicaSet", "rs-new", 3, Some(("Deployment", "d"))),
            controller("StatefulSet", "s", 2, None),
        ]);
        let pods = [
            owned("a", "ReplicaSet", "rs-old"),
            owned("b", "ReplicaSet", "rs-new"),
            owned("c", "StatefulSet", "s"),
            json!({"metadata": {"name": "bare"}}),
        ];
        assert_eq!(controllers.expected(&pods), Ok(6), "the Deployment's 4 once, the StatefulSet's 2");
    }

    #[test]
    fn a_replica_set_without_its_deployment_counts_itself() {
        let controllers = Controllers::new([controller("ReplicaSet", "rs", 3, Some(("Deployment", "gone")))]);
        assert_eq!(controllers.expected(&[owned("a", "ReplicaSet", "rs")]), Ok(3));
    }

    #[test]
    fn a_pod_whose_controller_is_missing_fails_the_count() {
        let controllers = Controllers::new([controller("ReplicaSet", "rs", 3, None)]);
        let wrong_kind = owned("a", "StatefulSet", "rs");
        assert_eq!(controllers.expected(&[wrong_kind]), Err("found no controllers for pod \"a\"".to_owned()));
        let job = owned("b", "Job", "j");
        assert_eq!(controllers.expected(&[job]), Err("found no controllers for pod \"b\"".to_owned()));
    }

    proptest! {
        /// Goal: each controller counts once, whatever number of its pods
        /// a budget covers. Method: random pods spread over random
        /// ReplicaSets; the expected count is the sum over the sets that
        /// own at least one pod.
        #[test]
        fn each_controller_counts_once(sizes in prop::collection::vec(0_i64..50, 1..8), owners in prop::collection::vec(any::<prop::sample::Index>(), 0..40)) {
            let controllers = Controllers::new(
                sizes.iter().enumerate().map(|(i, size)| controller("ReplicaSet", &format!("rs{i}"), *size, None)),
            );
            let chosen: Vec<usize> = owners.iter().map(|o| o.index(sizes.len())).collect();
            let pods: Vec<Value> = chosen.iter().enumerate().map(|(i, o)| owned(&format!("p{i}"), "ReplicaSet", &format!("rs{o}"))).collect();
            let used: std::collections::BTreeSet<usize> = chosen.into_iter().collect();
            prop_assert_eq!(controllers.expected(&pods), Ok(used.iter().map(|i| sizes[*i]).sum::<i64>()));
        }
    }
}
