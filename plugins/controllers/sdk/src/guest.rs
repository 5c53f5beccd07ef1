//! The component side: the `controller-plugin` world's bindings, a
//! [`Cluster`] over its imports, and the glue [`crate::export_controller!`]
//! expands to.

use std::any::Any;
use std::cell::RefCell;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{
    ApiError, Cluster, Controller, Decoded, EventType, Key, Kind, Level, ObjectRef, Propagation, Selector, Trigger,
    Write,
};

/// The world's generated bindings.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "controller-plugin",
        path: "../../../wit",
        pub_export_macro: true,
        default_bindings_module: "engenho_controller::guest::bindings",
        runtime_path: "engenho_controller::guest::wit_bindgen_rt",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt as wit_bindgen_rt;

/// The component's `memcmp`: word-wise instead of wasi-libc's bytewise.
use engenho_guest_memcmp as _;

use bindings::engenho::plugins::{api_client as wit, events as wit_events, log as wit_log};
pub use bindings::exports::engenho::plugins::controller::{
    Guest as ControllerGuest, Interest, ObjectKey, Outcome, Trigger as WitTrigger,
};

thread_local! {
    /// The configured controller of this instance.
    static CONTROLLER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// What this instance's reconciles decoded, kept across them.
static DECODED: LazyLock<Decoded> = LazyLock::new(Decoded::default);

/// Configures `C` from `config` and keeps it for the instance's reconciles.
///
/// # Errors
/// The controller's own refusal of the configuration.
pub fn configure<C: Controller>(config: &str) -> Result<Vec<Interest>, String> {
    let (controller, interests) = C::configure(config)?;
    CONTROLLER.with(|slot| *slot.borrow_mut() = Some(Box::new(controller)));
    Ok(interests.into_iter().map(interest).collect())
}

/// Reconciles `key` with the configured `C`.
pub fn reconcile<C: Controller>(key: ObjectKey) -> Outcome {
    let key = Key { kind: kind_from(key.kind), namespace: key.namespace, name: key.name };
    let outcome = CONTROLLER.with(|slot| {
        let slot = slot.borrow();
        match slot.as_ref().and_then(|c| c.downcast_ref::<C>()) {
            Some(controller) => controller.reconcile(&Imports, &key),
            None => crate::Outcome::Failed("the controller was not configured".into()),
        }
    });
    match outcome {
        crate::Outcome::Done => Outcome::Done,
        crate::Outcome::RequeueAfter(after) => {
            Outcome::RequeueAfter(u32::try_from(after.as_millis()).unwrap_or(u32::MAX).max(1))
        }
        crate::Outcome::Failed(reason) => Outcome::Failed(reason),
    }
}

/// The cluster as the component's imports serve it.
struct Imports;

impl Cluster for Imports {
    fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<String>, ApiError> {
        wit::get(kind_ref(kind), namespace, name).map_err(api_error)
    }

    fn get_version(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<u64>, ApiError> {
        wit::get_version(kind_ref(kind), namespace, name).map_err(api_error)
    }

    fn list_versions(&self, kind: &Kind, selector: &Selector) -> Result<Vec<u64>, ApiError> {
        let selector = wit::Selector {
            namespace: &selector.namespace,
            labels: &selector.labels,
            owner_uid: &selector.owner_uid,
            node_name: &selector.node_name,
        };
        wit::list_versions(kind_ref(kind), selector).map_err(api_error)
    }

    fn fetch(&self, kind: &Kind, versions: &[u64]) -> Result<Vec<Option<String>>, ApiError> {
        wit::fetch(kind_ref(kind), versions).map_err(api_error)
    }

    fn decoded(&self) -> &Decoded {
        &DECODED
    }

    fn apply(&self, writes: Vec<Write>) -> Vec<Result<String, ApiError>> {
        if writes.is_empty() {
            return Vec::new();
        }
        let bodies: Vec<String> = writes.iter().map(body).collect();
        let writes: Vec<wit::Write<'_>> = writes.iter().zip(&bodies).map(|(w, body)| write(w, body)).collect();
        wit::apply(&writes).into_iter().map(|answer| answer.map_err(api_error)).collect()
    }

    fn emit(&self, regarding: &ObjectRef, event_type: EventType, reason: &str, message: &str) {
        let regarding = wit_events::ObjectRef {
            kind: kind_ref(&regarding.kind),
            namespace: &regarding.namespace,
            name: &regarding.name,
            uid: &regarding.uid,
        };
        let event_type = match event_type {
            EventType::Normal => wit_events::EventType::Normal,
            EventType::Warning => wit_events::EventType::Warning,
        };
        wit_events::emit(regarding, event_type, reason, message);
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => wit_log::Level::Debug,
            Level::Info => wit_log::Level::Info,
            Level::Warn => wit_log::Level::Warn,
            Level::Error => wit_log::Level::Error,
        };
        wit_log::log(level, message);
    }

    fn now(&self) -> DateTime<Utc> {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO);
        DateTime::<Utc>::from_timestamp(
            i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            since_epoch.subsec_nanos(),
        )
        .unwrap_or_default()
    }
}

fn kind_ref(kind: &Kind) -> wit::KindRefParam<'_> {
    wit::KindRefParam { group: &kind.group, version: &kind.version, plural: &kind.plural }
}

fn kind_result(kind: Kind) -> wit::KindRefResult {
    wit::KindRefResult { group: kind.group.into(), version: kind.version.into(), plural: kind.plural.into() }
}

fn kind_from(kind: wit::KindRefResult) -> Kind {
    Kind { group: kind.group.into(), version: kind.version.into(), plural: kind.plural.into() }
}

fn api_error(error: wit::ApiError) -> ApiError {
    ApiError { code: error.code, reason: error.reason, message: error.message }
}

fn interest(interest: crate::Interest) -> Interest {
    let triggers = interest
        .triggers
        .into_iter()
        .map(|trigger| match trigger {
            Trigger::Itself => WitTrigger::Itself,
            Trigger::Owners(kind) => WitTrigger::Owners(kind_result(kind)),
            Trigger::Selecting(kind) => WitTrigger::Selecting(kind_result(kind)),
            Trigger::Every(kind) => WitTrigger::Every(kind_result(kind)),
            Trigger::SameName(kind) => WitTrigger::SameName(kind_result(kind)),
            Trigger::Namespace => WitTrigger::Namespace,
        })
        .collect();
    Interest { kind: kind_result(interest.kind), triggers, changes: interest.changes }
}

/// The JSON text a write carries (none for a deletion).
fn body(write: &Write) -> String {
    match write {
        Write::Create { object, .. } | Write::Update { object, .. } | Write::UpdateStatus { object, .. } => {
            object.to_string()
        }
        Write::Patch { patch, .. } => patch.to_string(),
        Write::Delete { .. } => String::new(),
    }
}

/// `write` as the import takes it, carrying `body` (see [`body`]).
fn write<'a>(write: &'a Write, body: &'a str) -> wit::Write<'a> {
    let object_write =
        |kind: &'a Kind, namespace: &'a str| wit::ObjectWrite { kind: kind_ref(kind), namespace, object: body };
    match write {
        Write::Create { kind, namespace, .. } => wit::Write::Create(object_write(kind, namespace)),
        Write::Update { kind, namespace, .. } => wit::Write::Update(object_write(kind, namespace)),
        Write::UpdateStatus { kind, namespace, .. } => wit::Write::UpdateStatus(object_write(kind, namespace)),
        Write::Patch { kind, namespace, name, subresource, .. } => {
            wit::Write::Patch(wit::PatchWrite { kind: kind_ref(kind), namespace, name, subresource, patch: body })
        }
        Write::Delete { kind, namespace, name, uid, propagation } => wit::Write::Delete(wit::Deletion {
            kind: kind_ref(kind),
            namespace,
            name,
            uid,
            propagation: match propagation {
                Propagation::Background => wit::Propagation::Background,
                Propagation::Foreground => wit::Propagation::Foreground,
                Propagation::Orphan => wit::Propagation::Orphan,
            },
        }),
    }
}
