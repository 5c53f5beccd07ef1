//! Storage kinds: storage classes, CSI drivers and nodes, volume
//! attachments and storage capacities.

use serde_json::{Value, json};

use super::super::Column;
use super::cells::{AGE, CREATED_AT, NAME, column, count, items, text, text_or};
use super::descriptions as doc;

/// The annotations that mark the default storage class.
const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] =
    ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"];

/// The columns of a `storage.k8s.io` kind.
pub(super) fn columns(plural: &str) -> Option<Vec<Column>> {
    let columns = match plural {
        "storageclasses" => vec![
            Column { cell: storage_class_name, ..NAME },
            column("Provisioner", "string", doc::SC_PROVISIONER, |o| json!(text(o, "/provisioner"))),
            column("ReclaimPolicy", "string", doc::SC_RECLAIM_POLICY, |o| {
                json!(text_or(o, "/reclaimPolicy", "Delete"))
            }),
            column("VolumeBindingMode", "string", doc::SC_BINDING_MODE, |o| {
                json!(text_or(o, "/volumeBindingMode", "Immediate"))
            }),
            column("AllowVolumeExpansion", "string", doc::SC_EXPANSION, |o| {
                json!(flag(o, "/allowVolumeExpansion", false))
            }),
            AGE,
        ],
        "csidrivers" => vec![
            NAME,
            column("AttachRequired", "boolean", doc::CSI_ATTACH_REQUIRED, |o| {
                json!(flag(o, "/spec/attachRequired", true))
            }),
            column("PodInfoOnMount", "boolean", doc::CSI_POD_INFO, |o| json!(flag(o, "/spec/podInfoOnMount", false))),
            column("StorageCapacity", "boolean", doc::CSI_STORAGE_CAPACITY, |o| {
                json!(flag(o, "/spec/storageCapacity", false))
            }),
            column("TokenRequests", "string", doc::CSI_TOKEN_REQUESTS, |o| json!(token_requests(o))),
            column("RequiresRepublish", "boolean", doc::CSI_REQUIRES_REPUBLISH, |o| {
                json!(flag(o, "/spec/requiresRepublish", false))
            }),
            column("Modes", "string", doc::CSI_MODES, |o| {
                let modes: Vec<&str> =
                    items(o, "/spec/volumeLifecycleModes").iter().filter_map(Value::as_str).collect();
                json!(if modes.is_empty() { "<none>".to_owned() } else { modes.join(",") })
            }),
            AGE,
        ],
        "csinodes" => vec![
            NAME,
            column("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node", |o| {
                json!(count(o, "/spec/drivers"))
            }),
            AGE,
        ],
        "volumeattachments" => vec![
            NAME,
            Column {
                format: "name",
                ..column("Attacher", "string", doc::VA_ATTACHER, |o| json!(text(o, "/spec/attacher")))
            },
            column("PV", "string", doc::VA_PV, |o| json!(text(o, "/spec/source/persistentVolumeName"))),
            column("Node", "string", doc::VA_NODE, |o| json!(text(o, "/spec/nodeName"))),
            column("Attached", "boolean", doc::VA_ATTACHED, |o| json!(flag(o, "/status/attached", false))),
            AGE,
        ],
        // kube-apiserver serves these with its default table.
        "csistoragecapacities" => vec![NAME, CREATED_AT],
        _ => return None,
    };
    Some(columns)
}

/// The boolean at `pointer`, or `absent`.
fn flag(object: &Value, pointer: &str, absent: bool) -> bool {
    object.pointer(pointer).and_then(Value::as_bool).unwrap_or(absent)
}

/// The class's name, with ` (default)` after the default class.
fn storage_class_name(class: &Value) -> Value {
    let name = text(class, "/metadata/name");
    let annotations = class.pointer("/metadata/annotations");
    let default = DEFAULT_CLASS_ANNOTATIONS
        .iter()
        .any(|key| annotations.and_then(|a| a.get(*key)).and_then(Value::as_str) == Some("true"));
    json!(if default { format!("{name} (default)") } else { name.to_owned() })
}

/// The `TOKENREQUESTS` cell: the audiences, or `<unset>`.
fn token_requests(driver: &Value) -> String {
    match driver.pointer("/spec/tokenRequests").and_then(Value::as_array) {
        Some(requests) => requests.iter().map(|r| text(r, "/audience")).collect::<Vec<_>>().join(","),
        None => "<unset>".to_owned(),
    }
}
