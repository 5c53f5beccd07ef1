//! Volumes, claims and storage: kube-apiserver's rules for
//! PersistentVolumes, PersistentVolumeClaims, StorageClasses, CSINodes,
//! CSIStorageCapacities and VolumeAttachments.

use serde_json::Value;

use super::super::status::Cause;
use super::{forbidden, invalid, items, required, text, unsupported};
use engenho_control::quantity::Quantity;

/// Access modes a volume or claim may ask for.
const ACCESS_MODES: [&str; 4] = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];

/// The volume sources a PersistentVolume may name, one of them.
const VOLUME_SOURCES: [&str; 19] = [
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "rbd",
    "vsphereVolume",
];

fn access_modes(path: &str, spec: &Value, causes: &mut Vec<Cause>) {
    let modes = items(spec, "/accessModes");
    if modes.is_empty() {
        causes.push(required(format!("{path}.accessModes"), "at least 1 access mode is required"));
    }
    for mode in modes {
        let mode = mode.as_str().unwrap_or_default();
        if !ACCESS_MODES.contains(&mode) {
            causes.push(unsupported(format!("{path}.accessModes"), mode, &ACCESS_MODES));
        }
    }
}

fn volume_mode(path: &str, spec: &Value, causes: &mut Vec<Cause>) {
    let mode = text(spec, "/volumeMode");
    if !mode.is_empty() && !["Block", "Filesystem"].contains(&mode) {
        causes.push(unsupported(format!("{path}.volumeMode"), mode, &["Block", "Filesystem"]));
    }
}

/// A positive storage quantity at `field`, or why not.
fn storage_size(field: &str, value: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(value) = value else {
        causes.push(required(field, ""));
        return;
    };
    let shown = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
    match value.as_str().and_then(|v| Quantity::parse(v).ok()) {
        Some(size) if size > Quantity::default() => {}
        Some(_) => causes.push(invalid(field, &format!("{shown:?}"), "must be greater than zero")),
        None => causes.push(invalid(
            field,
            &format!("{shown:?}"),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        )),
    }
}

/// A PersistentVolume: capacity, access modes, exactly one volume source.
pub fn persistent_volume(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let capacity = spec.get("capacity").and_then(Value::as_object);
    match capacity {
        None => causes.push(required("spec.capacity", "")),
        Some(capacity) if capacity.len() != 1 || !capacity.contains_key("storage") => {
            let given: Vec<&String> = capacity.keys().collect();
            causes.push(unsupported("spec.capacity", &format!("{given:?}"), &["storage"]));
        }
        Some(capacity) => storage_size("spec.capacity[storage]", capacity.get("storage"), &mut causes),
    }
    access_modes("spec", spec, &mut causes);
    volume_mode("spec", spec, &mut causes);
    let sources: Vec<&str> =
        VOLUME_SOURCES.into_iter().filter(|s| spec.get(*s).is_some_and(|v| !v.is_null())).collect();
    match sources.as_slice() {
        [] => causes.push(required("spec", "must specify a volume type")),
        [_] => {}
        [_, more @ ..] => {
            for source in more {
                causes.push(forbidden(format!("spec.{source}"), "may not specify more than 1 volume type"));
            }
        }
    }
    if let Some(path) = spec.pointer("/hostPath/path").and_then(Value::as_str)
        && path.split('/').any(|part| part == "..")
    {
        causes.push(invalid("spec.hostPath.path", &format!("{path:?}"), "must not contain '..'"));
    }
    let policy = text(spec, "/persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !["Delete", "Recycle", "Retain"].contains(&policy) {
        causes.push(unsupported("spec.persistentVolumeReclaimPolicy", policy, &["Delete", "Recycle", "Retain"]));
    }
    causes
}

/// A PersistentVolumeClaim: access modes and a storage request.
pub fn persistent_volume_claim(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    access_modes("spec", spec, &mut causes);
    volume_mode("spec", spec, &mut causes);
    storage_size("spec.resources[storage]", spec.pointer("/resources/requests/storage"), &mut causes);
    causes
}

/// A StorageClass: a provisioner, and known policies.
pub fn storage_class(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if text(object, "/provisioner").is_empty() {
        causes.push(required("provisioner", ""));
    }
    let policy = text(object, "/reclaimPolicy");
    if !policy.is_empty() && !["Delete", "Retain"].contains(&policy) {
        causes.push(unsupported("reclaimPolicy", policy, &["Delete", "Retain"]));
    }
    let binding = text(object, "/volumeBindingMode");
    if !binding.is_empty() && !["Immediate", "WaitForFirstConsumer"].contains(&binding) {
        causes.push(unsupported("volumeBindingMode", binding, &["Immediate", "WaitForFirstConsumer"]));
    }
    causes
}

/// A CSINode: each driver named, with its node id.
pub fn csi_node(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (index, driver) in items(object, "/spec/drivers").iter().enumerate() {
        if text(driver, "/name").is_empty() {
            causes.push(required(format!("spec.drivers[{index}].name"), ""));
        }
        if text(driver, "/nodeID").is_empty() {
            causes.push(required(format!("spec.drivers[{index}].nodeID"), ""));
        }
    }
    causes
}

/// A CSIStorageCapacity: the storage class it describes.
pub fn csi_storage_capacity(object: &Value) -> Vec<Cause> {
    if text(object, "/storageClassName").is_empty() {
        return vec![required("storageClassName", "")];
    }
    Vec::new()
}

/// A VolumeAttachment: attacher, node and exactly one source.
pub fn volume_attachment(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if text(object, "/spec/attacher").is_empty() {
        causes.push(required("spec.attacher", ""));
    }
    if text(object, "/spec/nodeName").is_empty() {
        causes.push(required("spec.nodeName", ""));
    }
    let named = !text(object, "/spec/source/persistentVolumeName").is_empty();
    let inline = object.pointer("/spec/source/inlineVolumeSpec").is_some_and(|v| !v.is_null());
    if named == inline {
        causes.push(required("spec.source", "must specify exactly one of inlineVolumeSpec and persistentVolumeName"));
    }
    causes
}
