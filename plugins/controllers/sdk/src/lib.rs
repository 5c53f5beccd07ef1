//! What engenho's controller components are written with.
//!
//! A controller implements [`Controller`]: it names the kinds it reads and
//! which changes queue which keys ([`Interest`]), and reconciles one key at
//! a time through a [`Cluster`]: cached reads, writes through the API
//! server's write path, events. On wasm32 the [`export_controller!`] macro
//! makes it a component of the `controller-plugin` world (`wit/controller.wit`);
//! on other targets the same code runs against any native [`Cluster`], which
//! is how a host measures a controller compiled into itself.

extern crate self as engenho_controller;

pub mod decoded;
pub mod kinds;
pub mod meta;
pub mod nodes;
pub mod pods;
pub mod replicasets;
pub mod revisions;
pub mod selector;

#[cfg(target_arch = "wasm32")]
pub mod guest;

/// `serde_json`, for the paths [`impl_revisions_owner!`] expands to.
#[doc(hidden)]
pub use serde_json;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use decoded::Decoded;

/// A kind: group, version and plural resource name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    /// API group (empty: the core group).
    pub group: Cow<'static, str>,
    /// Version, e.g. `v1`.
    pub version: Cow<'static, str>,
    /// Plural resource name, e.g. `replicasets`.
    pub plural: Cow<'static, str>,
}

impl Kind {
    /// A kind named by constants.
    pub const fn new(group: &'static str, version: &'static str, plural: &'static str) -> Self {
        Self { group: Cow::Borrowed(group), version: Cow::Borrowed(version), plural: Cow::Borrowed(plural) }
    }

    /// `group/version`, or `version` for the core group: an object's
    /// `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// One object to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace, or empty.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Why a call failed, as a Kubernetes `Status` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code, e.g. 404, 409 or 422.
    pub code: u16,
    /// Reason, e.g. `NotFound`, `Conflict` or `Invalid`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error of the controller's own making (an object that would not
    /// encode or decode), reported as a 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self { code: 500, reason: "InternalError".into(), message: message.into() }
    }

    /// Whether the object was not found.
    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }

    /// Whether the object changed since it was read, or exists already.
    pub fn is_conflict(&self) -> bool {
        self.code == 409
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Which cached objects a list returns; empty fields do not narrow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Only objects of this namespace.
    pub namespace: String,
    /// Only objects whose labels match this label selector (text form).
    pub labels: String,
    /// Only objects with an ownerReference to this uid.
    pub owner_uid: String,
    /// Only pods bound to this node.
    pub node_name: String,
}

impl Selector {
    /// Every object of one namespace.
    pub fn namespace(namespace: &str) -> Self {
        Self { namespace: namespace.to_owned(), ..Self::default() }
    }

    /// The objects an owner with `uid` owns, in its namespace.
    pub fn owned_by(namespace: &str, uid: &str) -> Self {
        Self { namespace: namespace.to_owned(), owner_uid: uid.to_owned(), ..Self::default() }
    }
}

/// How a deletion treats the object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents are deleted after the object.
    #[default]
    Background,
    /// The object stays until its blocking dependents are gone.
    Foreground,
    /// Dependents stay, their ownerReferences to the object removed.
    Orphan,
}

/// One write to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Creates `object` in `namespace`.
    Create {
        /// Its kind.
        kind: Kind,
        /// Its namespace (empty for cluster-scoped kinds).
        namespace: String,
        /// The object.
        object: Value,
    },
    /// Replaces an object with `object` (carrying the `resourceVersion`
    /// it was read at).
    Update {
        /// Its kind.
        kind: Kind,
        /// Its namespace (empty for cluster-scoped kinds).
        namespace: String,
        /// The object.
        object: Value,
    },
    /// Replaces an object's status with `object`'s.
    UpdateStatus {
        /// Its kind.
        kind: Kind,
        /// Its namespace (empty for cluster-scoped kinds).
        namespace: String,
        /// The object, with its new status.
        object: Value,
    },
    /// Merge-patches an object (or, with `subresource` `status`, its
    /// status).
    Patch {
        /// Its kind.
        kind: Kind,
        /// Its namespace (empty for cluster-scoped kinds).
        namespace: String,
        /// Its name.
        name: String,
        /// Empty, or `status`.
        subresource: String,
        /// The JSON merge patch.
        patch: Value,
    },
    /// Deletes an object.
    Delete {
        /// Its kind.
        kind: Kind,
        /// Its namespace (empty for cluster-scoped kinds).
        namespace: String,
        /// Its name.
        name: String,
        /// Only the object with this uid (empty: whichever has the name).
        uid: String,
        /// What becomes of its dependents.
        propagation: Propagation,
    },
}

impl Write {
    /// Merge-patches the status of the object of `kind` that `metadata`
    /// describes: `{"status": status}`.
    pub fn status_patch(kind: Kind, metadata: &meta::ObjectMeta, status: Value) -> Self {
        Self::Patch {
            kind,
            namespace: metadata.namespace.clone(),
            name: metadata.name.clone(),
            subresource: "status".into(),
            patch: serde_json::json!({"status": status}),
        }
    }

    /// Deletes the object of `kind` that `metadata` describes (only while
    /// it has that uid), its dependents in the background.
    pub fn delete(kind: Kind, metadata: &meta::ObjectMeta) -> Self {
        Self::Delete {
            kind,
            namespace: metadata.namespace.clone(),
            name: metadata.name.clone(),
            uid: metadata.uid.clone(),
            propagation: Propagation::Background,
        }
    }
}

/// Whether an event is routine or a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Routine, e.g. `SuccessfulCreate`.
    Normal,
    /// A problem, e.g. `FailedCreate`.
    Warning,
}

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

impl ObjectRef {
    /// The object of `kind` that `metadata` describes.
    pub fn to(kind: &Kind, metadata: &meta::ObjectMeta) -> Self {
        Self {
            kind: kind.clone(),
            namespace: metadata.namespace.clone(),
            name: metadata.name.clone(),
            uid: metadata.uid.clone(),
        }
    }
}

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail for whoever debugs the controller.
    Debug,
    /// Normal operation.
    Info,
    /// Something the operator should look at.
    Warn,
    /// A failure.
    Error,
}

/// Readings of one kind tried before giving up because the cache changed
/// between each listing and its fetch.
const LISTING_ATTEMPTS: usize = 3;

/// What the controller reads and writes: the cluster as its host serves it.
pub trait Cluster {
    /// The cached object `name` of `kind`, as JSON, if there is one.
    ///
    /// # Errors
    /// `kind` is not among the controller's interests.
    fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<String>, ApiError>;

    /// The version of the cached object `name` of `kind`'s entry (unique on
    /// the node, new whenever the object changes), if there is one.
    ///
    /// # Errors
    /// As [`Cluster::get`].
    fn get_version(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<u64>, ApiError>;

    /// The versions of the cached objects of `kind` that `selector` picks.
    ///
    /// # Errors
    /// `kind` is not among the controller's interests; a label selector
    /// that does not parse.
    fn list_versions(&self, kind: &Kind, selector: &Selector) -> Result<Vec<u64>, ApiError>;

    /// The cached objects of `kind` at `versions` (at most
    /// [`decoded::FETCH_VERSIONS_MAX`]), as JSON, in order; `None` for a
    /// version no longer cached.
    ///
    /// # Errors
    /// `kind` is not among the controller's interests.
    fn fetch(&self, kind: &Kind, versions: &[u64]) -> Result<Vec<Option<String>>, ApiError>;

    /// What the controller decoded before, kept across reconciles.
    fn decoded(&self) -> &Decoded;

    /// Makes `writes` concurrently; each one's stored object as JSON (empty
    /// for a deletion that removed the object at once) or its error.
    fn apply(&self, writes: Vec<Write>) -> Vec<Result<String, ApiError>>;

    /// Records an event about `regarding`.
    fn emit(&self, regarding: &ObjectRef, event_type: EventType, reason: &str, message: &str);

    /// Writes a line to the node's log.
    fn log(&self, level: Level, message: &str);

    /// The time now.
    fn now(&self) -> DateTime<Utc>;

    /// The cached object `name` of `kind`, decoded (once per version).
    ///
    /// # Errors
    /// As [`Cluster::get`]; an object that does not decode as `T`.
    fn get_shared<T>(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<Arc<T>>, ApiError>
    where
        Self: Sized,
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let versions = || Ok(self.get_version(kind, namespace, name)?.into_iter().collect());
        Ok(read(self, kind, versions)?.pop())
    }

    /// The cached object `name` of `kind`, decoded, as the controller's own
    /// copy.
    ///
    /// # Errors
    /// As [`Cluster::get_shared`].
    fn get_as<T>(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<T>, ApiError>
    where
        Self: Sized,
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Ok(self.get_shared::<T>(kind, namespace, name)?.map(|object| T::clone(&object)))
    }

    /// The cached objects of `kind` that `selector` picks, decoded (once
    /// per version: an object unchanged since an earlier reading is
    /// neither copied nor decoded again).
    ///
    /// # Errors
    /// As [`Cluster::list_versions`]; an object that does not decode as
    /// `T`; a 409 when the cache changed under each of a few listings.
    fn list_shared<T>(&self, kind: &Kind, selector: &Selector) -> Result<Vec<Arc<T>>, ApiError>
    where
        Self: Sized,
        T: DeserializeOwned + Send + Sync + 'static,
    {
        read(self, kind, || self.list_versions(kind, selector))
    }

    /// The cached objects of `kind` that `first` picks, and apart from
    /// them those that only `second` picks, decoded (each version once, as
    /// [`Cluster::list_shared`] reads them): the union of two selections,
    /// e.g. the pods a selector picks and the pods an owner controls. An
    /// object that changed between the two listings can be in both, at two
    /// versions.
    ///
    /// # Errors
    /// As [`Cluster::list_shared`].
    fn list_shared_union<T>(&self, kind: &Kind, first: &Selector, second: &Selector) -> Result<Union<T>, ApiError>
    where
        Self: Sized,
        T: DeserializeOwned + Send + Sync + 'static,
    {
        attempts(kind, || {
            let firsts = self.list_versions(kind, first)?;
            let seconds = self.list_versions(kind, second)?;
            self.decoded().union(kind, &firsts, &seconds, |versions| self.fetch(kind, versions))
        })
    }

    /// The cached objects of `kind` that `selector` picks, decoded, as the
    /// controller's own copies.
    ///
    /// # Errors
    /// As [`Cluster::list_shared`].
    fn list_as<T>(&self, kind: &Kind, selector: &Selector) -> Result<Vec<T>, ApiError>
    where
        Self: Sized,
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Ok(self.list_shared::<T>(kind, selector)?.iter().map(|object| T::clone(object)).collect())
    }

    /// Makes one write; the stored object as JSON (empty for a deletion
    /// that removed the object at once).
    ///
    /// # Errors
    /// Why the write failed.
    fn write(&self, write: Write) -> Result<String, ApiError>
    where
        Self: Sized,
    {
        self.apply(vec![write]).pop().unwrap_or_else(|| Err(ApiError::internal("the host answered no write")))
    }
}

/// What [`Cluster::list_shared_union`] and [`Decoded::union`] read.
#[derive(Debug)]
pub struct Union<T> {
    /// The objects the first selector picks.
    pub first: Vec<Arc<T>>,
    /// Apart from those, the objects only the second selector picks.
    pub only_second: Vec<Arc<T>>,
}

/// The objects of `kind` at the versions `list` answers, decoded once per
/// version; listed again when one went before its fetch.
///
/// # Errors
/// `list`'s and the fetch's; an object that does not decode as `T`; a 409
/// when the cache changed under each of [`LISTING_ATTEMPTS`] listings.
fn read<C, T>(cluster: &C, kind: &Kind, list: impl Fn() -> Result<Vec<u64>, ApiError>) -> Result<Vec<Arc<T>>, ApiError>
where
    C: Cluster,
    T: DeserializeOwned + Send + Sync + 'static,
{
    attempts(kind, || {
        let versions = list()?;
        cluster.decoded().many(kind, &versions, |versions| cluster.fetch(kind, versions))
    })
}

/// What `reading` of `kind` answers, read again (up to
/// [`LISTING_ATTEMPTS`] times) while it finds that the cache changed
/// between its listing and its fetch (`None`).
///
/// # Errors
/// `reading`'s; a 409 when the cache changed under each attempt.
fn attempts<R>(kind: &Kind, mut reading: impl FnMut() -> Result<Option<R>, ApiError>) -> Result<R, ApiError> {
    for _ in 0..LISTING_ATTEMPTS {
        if let Some(read) = reading()? {
            return Ok(read);
        }
    }
    Err(ApiError {
        code: 409,
        reason: "Conflict".into(),
        message: format!("the cached {} changed during each of {LISTING_ATTEMPTS} readings", kind.plural),
    })
}

/// `json`, an object of `kind`, decoded as `T`.
///
/// # Errors
/// A 500 naming the kind and the decoding error.
pub fn decode<T: DeserializeOwned>(kind: &Kind, json: &str) -> Result<T, ApiError> {
    serde_json::from_str(json).map_err(|e| ApiError::internal(format!("a cached {} did not decode: {e}", kind.plural)))
}

/// `value` as a JSON value, for a write.
///
/// # Errors
/// A 500 when it does not encode.
pub fn encode<T: Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(format!("an object did not encode: {e}")))
}

/// Which keys a change of an object queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The changed object's own key.
    Itself,
    /// The keys of its owners of this kind.
    Owners(Kind),
    /// The keys of the objects of this kind in its namespace whose
    /// `spec.selector` picks its labels.
    Selecting(Kind),
    /// The key of every object of this kind.
    Every(Kind),
    /// The key of the object of this kind with the changed object's name.
    SameName(Kind),
    /// The key of the changed object's namespace.
    Namespace,
}

/// A kind the controller reads, and which keys its changes queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interest {
    /// The kind.
    pub kind: Kind,
    /// The keys a change of one of its objects queues (none: read only).
    pub triggers: Vec<Trigger>,
    /// The fields (JSON pointers) whose change queues keys; empty: any
    /// change does. See [`Interest::on_changes_of`].
    pub changes: Vec<String>,
}

impl Interest {
    /// `kind`, whose changes queue `triggers`.
    pub fn new(kind: Kind, triggers: impl IntoIterator<Item = Trigger>) -> Self {
        Self { kind, triggers: triggers.into_iter().collect(), changes: Vec::new() }
    }

    /// Only an update changing one of `fields` (JSON pointers; under a list
    /// of objects, a segment that is not an index picks the element of that
    /// `type`, as `/status/conditions/Ready`) queues keys; an object
    /// appearing or going always does.
    #[must_use]
    pub fn on_changes_of<'a>(mut self, fields: impl IntoIterator<Item = &'a str>) -> Self {
        self.changes = fields.into_iter().map(str::to_owned).collect();
        self
    }
}

/// What became of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done until something queues it again.
    Done,
    /// Reconcile it again after this long.
    RequeueAfter(Duration),
    /// Failed; retried with backoff, and recorded as a warning event.
    Failed(String),
}

impl<E: std::fmt::Display> From<Result<Outcome, E>> for Outcome {
    fn from(result: Result<Outcome, E>) -> Self {
        result.unwrap_or_else(|error| Self::Failed(error.to_string()))
    }
}

/// A controller: what it watches, and how it reconciles one key.
pub trait Controller: Sized + 'static {
    /// The controller configured by `config` (JSON; empty means none) and
    /// the kinds it reads and watches.
    ///
    /// # Errors
    /// A configuration the controller cannot use, in words.
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String>;

    /// Brings the object of `key` (which may no longer exist) toward its
    /// desired state.
    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome;
}

/// Makes `$controller` (a [`Controller`]) the component's export, on
/// wasm32; nothing elsewhere.
#[macro_export]
macro_rules! export_controller {
    ($controller:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Export;

            impl $crate::guest::ControllerGuest for Export {
                fn configure(config: String) -> Result<Vec<$crate::guest::Interest>, String> {
                    $crate::guest::configure::<$controller>(&config)
                }

                fn reconcile(key: $crate::guest::ObjectKey) -> $crate::guest::Outcome {
                    $crate::guest::reconcile::<$controller>(key)
                }
            }

    $crate::guest::bindings::export!(Export with_types_in $crate::guest::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    const THINGS: Kind = Kind::new("", "v1", "things");

    #[derive(Debug, Clone, Deserialize, PartialEq)]
    struct Thing {
        name: String,
    }

    /// A cache of things by version, each selector a namespace holding
    /// versions; `churn` versions vanish between a listing and its fetch.
    #[derive(Default)]
    struct Cache {
        objects: RefCell<BTreeMap<u64, String>>,
        namespaces: BTreeMap<String, Vec<u64>>,
        churn: RefCell<u32>,
        fetches: RefCell<u32>,
        decoded: Decoded,
    }

    impl Cache {
        fn with(things: &[(u64, &str, &str)]) -> Self {
            let mut cache = Self::default();
            for (version, namespace, name) in things {
                cache.objects.borrow_mut().insert(*version, format!("{{\"name\":\"{name}\"}}"));
                cache.namespaces.entry((*namespace).to_owned()).or_default().push(*version);
            }
            cache
        }
    }

    impl Cluster for Cache {
        fn get(&self, _: &Kind, _: &str, _: &str) -> Result<Option<String>, ApiError> {
            Ok(None)
        }

        fn get_version(&self, _: &Kind, namespace: &str, _: &str) -> Result<Option<u64>, ApiError> {
            Ok(self.namespaces.get(namespace).and_then(|versions| versions.first().copied()))
        }

        fn list_versions(&self, _: &Kind, selector: &Selector) -> Result<Vec<u64>, ApiError> {
            Ok(self.namespaces.get(&selector.namespace).cloned().unwrap_or_default())
        }

        fn fetch(&self, _: &Kind, versions: &[u64]) -> Result<Vec<Option<String>>, ApiError> {
            *self.fetches.borrow_mut() += 1;
            let mut churn = self.churn.borrow_mut();
            if *churn > 0 {
                *churn -= 1;
                return Ok(versions.iter().map(|_| None).collect());
            }
            Ok(versions.iter().map(|v| self.objects.borrow().get(v).cloned()).collect())
        }

        fn decoded(&self) -> &Decoded {
            &self.decoded
        }

        fn apply(&self, writes: Vec<Write>) -> Vec<Result<String, ApiError>> {
            writes.iter().map(|_| Ok(String::new())).collect()
        }

        fn emit(&self, _: &ObjectRef, _: EventType, _: &str, _: &str) {}

        fn log(&self, _: Level, _: &str) {}

        fn now(&self) -> DateTime<Utc> {
            DateTime::<Utc>::default()
        }
    }

    fn names(things: &[Arc<Thing>]) -> Vec<&str> {
        things.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn readings_decode_each_version_once_and_list_again_when_one_goes() {
        let cache = Cache::with(&[(1, "a", "one"), (2, "a", "two"), (3, "b", "three")]);
        let listed = cache.list_shared::<Thing>(&THINGS, &Selector::namespace("a")).expect("read");
        assert_eq!(names(&listed), ["one", "two"]);
        let again = cache.list_as::<Thing>(&THINGS, &Selector::namespace("a")).expect("read");
        assert_eq!(again, [Thing { name: "one".into() }, Thing { name: "two".into() }]);
        assert_eq!(*cache.fetches.borrow(), 1, "unchanged versions are not fetched again");

        *cache.churn.borrow_mut() = 2;
        let read = cache.get_shared::<Thing>(&THINGS, "b", "three").expect("read on the third try");
        assert_eq!(read.map(|t| t.name.clone()).as_deref(), Some("three"));
        assert!(cache.get_shared::<Thing>(&THINGS, "none", "x").expect("read").is_none());

        let mut churning = Cache::with(&[(4, "c", "four")]);
        churning.churn = RefCell::new(LISTING_ATTEMPTS as u32);
        let error = churning.list_shared::<Thing>(&THINGS, &Selector::namespace("c")).expect_err("always changed");
        assert_eq!((error.code, error.reason.as_str()), (409, "Conflict"));
    }

    #[test]
    fn a_union_reads_each_version_once_and_keeps_the_first_selection_apart() {
        let cache = Cache::with(&[(1, "a", "one"), (2, "a", "two"), (2, "b", "two"), (3, "b", "three")]);
        let union = cache
            .list_shared_union::<Thing>(&THINGS, &Selector::namespace("a"), &Selector::namespace("b"))
            .expect("read");
        assert_eq!(names(&union.first), ["one", "two"]);
        assert_eq!(names(&union.only_second), ["three"]);
    }
}
