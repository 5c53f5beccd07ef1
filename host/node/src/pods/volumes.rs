//! A pod's volumes as directories under the pod's own directory, given to
//! its containers as WASI preopened directories: `emptyDir` (empty at the
//! pod's start, kept across restarts of its containers), `configMap`,
//! `secret` and `downwardAPI` (files written as the objects are when the
//! pod's containers are set up, read-only), and `projected` volumes of
//! those. Files are 0600 and directories 0700, owned by the node.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::spec::{self, ConfigError, Downward, Objects};
use engenho_runtime::Mount;

/// A volume made: where it is, and whether containers may only read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its directory on the node.
    pub dir: PathBuf,
    /// Whether it is read-only whatever a mount asks.
    pub read_only: bool,
}

/// Makes every volume of `pod` under `root` (the pod's volume directory):
/// the volumes by name.
///
/// # Errors
/// A kind of volume this node does not offer; a missing ConfigMap or
/// Secret that is not optional, or a missing key; a path that leaves the
/// volume; a file that cannot be written.
pub fn make(
    pod: &Value,
    objects: &Objects,
    node: &Downward,
    root: &Path,
) -> Result<BTreeMap<String, Volume>, ConfigError> {
    let mut volumes = BTreeMap::new();
    for volume in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or_default();
        let failed = |e: ConfigError| ConfigError(format!("MountVolume.SetUp failed for volume \"{name}\" : {}", e.0));
        if volume.get("emptyDir").is_some() {
            let dir = root.join("empty-dir").join(name);
            create_dir(&dir).map_err(failed)?;
            volumes.insert(name.to_owned(), Volume { dir, read_only: false });
            continue;
        }
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        if let Some(source) = volume.get("configMap") {
            files.extend(object_files(pod, objects, "configmap", source, "name").map_err(failed)?);
        } else if let Some(source) = volume.get("secret") {
            files.extend(object_files(pod, objects, "secret", source, "secretName").map_err(failed)?);
        } else if let Some(source) = volume.get("downwardAPI") {
            files.extend(downward_files(pod, source, node).map_err(failed)?);
        } else if let Some(projected) = volume.get("projected") {
            for source in projected["sources"].as_array().into_iter().flatten() {
                let made = if let Some(s) = source.get("configMap") {
                    object_files(pod, objects, "configmap", s, "name")
                } else if let Some(s) = source.get("secret") {
                    object_files(pod, objects, "secret", s, "name")
                } else if let Some(s) = source.get("downwardAPI") {
                    downward_files(pod, s, node)
                } else {
                    let kinds: Vec<&String> = source.as_object().into_iter().flatten().map(|(k, _)| k).collect();
                    Err(ConfigError(format!("projected sources of kind {kinds:?} are not offered on this node")))
                };
                files.extend(made.map_err(failed)?);
            }
        } else {
            let kinds: Vec<&String> =
                volume.as_object().into_iter().flatten().map(|(k, _)| k).filter(|k| *k != "name").collect();
            return Err(failed(ConfigError(format!(
                "volumes of kind {kinds:?} are not offered on this node (emptyDir, configMap, secret, downwardAPI and \
                 projected are)"
            ))));
        }
        let dir = root.join("files").join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| failed(ConfigError(format!("clearing {}: {e}", dir.display()))))?;
        }
        create_dir(&dir).map_err(failed)?;
        for (path, bytes) in files {
            let file = dir.join(relative(&path).map_err(failed)?);
            if let Some(parent) = file.parent() {
                create_dir(parent).map_err(failed)?;
            }
            write_file(&file, &bytes).map_err(failed)?;
        }
        volumes.insert(name.to_owned(), Volume { dir, read_only: true });
    }
    Ok(volumes)
}

/// The mounts of `container`: each of its `volumeMounts` on the volume it
/// names (`subPath` within it).
///
/// # Errors
/// A mount of a volume the pod lacks, or a `subPath` that leaves it.
pub fn mounts(container: &Value, volumes: &BTreeMap<String, Volume>) -> Result<Vec<Mount>, ConfigError> {
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap_or_default();
        let volume =
            volumes.get(name).ok_or_else(|| ConfigError(format!("volumeMount {name:?} names no volume of the pod")))?;
        let mut host = volume.dir.clone();
        if let Some(sub) = mount["subPath"].as_str().filter(|s| !s.is_empty()) {
            host = host.join(relative(sub)?);
            if !host.is_dir() {
                return Err(ConfigError(format!("subPath {sub:?} of volume {name:?} is not a directory")));
            }
        }
        let guest = mount["mountPath"].as_str().unwrap_or_default().to_owned();
        mounts.push(Mount { host, guest, read_only: volume.read_only || mount["readOnly"] == true });
    }
    Ok(mounts)
}

/// The files of a ConfigMap or Secret volume source: every key, or the
/// `items` it selects (at their paths).
fn object_files(
    pod: &Value,
    objects: &Objects,
    kind: &str,
    source: &Value,
    name_field: &str,
) -> Result<BTreeMap<String, Vec<u8>>, ConfigError> {
    let name = source[name_field].as_str().unwrap_or_default();
    let optional = source["optional"] == true;
    let Some(all) = spec::files_of(objects, kind, name)? else {
        if optional {
            return Ok(BTreeMap::new());
        }
        return Err(ConfigError(format!("{kind} \"{name}\" not found")));
    };
    let Some(items) = source["items"].as_array() else { return Ok(all) };
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let mut files = BTreeMap::new();
    for item in items {
        let key = item["key"].as_str().unwrap_or_default();
        let path = item["path"].as_str().unwrap_or(key);
        match all.get(key) {
            Some(bytes) => {
                files.insert(path.to_owned(), bytes.clone());
            }
            None if optional => {}
            None => {
                return Err(ConfigError(format!(
                    "configmap references non-existent config key: {key} ({namespace}/{name})"
                )));
            }
        }
    }
    Ok(files)
}

/// The files of a downward API volume source.
fn downward_files(pod: &Value, source: &Value, node: &Downward) -> Result<BTreeMap<String, Vec<u8>>, ConfigError> {
    let mut files = BTreeMap::new();
    for item in source["items"].as_array().into_iter().flatten() {
        let path = item["path"].as_str().unwrap_or_default();
        let value = if let Some(field) = item.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
            spec::field(pod, field)?
        } else if let Some(reference) = item.get("resourceFieldRef") {
            let container = reference["containerName"].as_str().unwrap_or_default();
            spec::resource_field(pod, container, reference, node)?
        } else {
            return Err(ConfigError(format!("downward API item {path:?} names no field")));
        };
        files.insert(path.to_owned(), value.into_bytes());
    }
    Ok(files)
}

/// `path` as a relative path that stays within its volume.
fn relative(path: &str) -> Result<PathBuf, ConfigError> {
    let candidate = Path::new(path);
    let stays = !path.is_empty() && candidate.components().all(|c| matches!(c, Component::Normal(_)));
    if stays {
        Ok(candidate.to_owned())
    } else {
        Err(ConfigError(format!("path {path:?} must be relative and may not contain '..'")))
    }
}

fn create_dir(dir: &Path) -> Result<(), ConfigError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ConfigError(format!("creating {}: {e}", dir.display())))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ConfigError(format!("writing {}: {e}", path.display())))?;
    file.write_all(bytes).map_err(|e| ConfigError(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn volumes_become_directories_and_mounts() {
        // Goal: ConfigMap keys (all, or the items chosen), Secret data
        // decoded, downward API fields, emptyDir; read-only where
        // Kubernetes says; subPath within the volume.
        let root = tempfile::tempdir().expect("dir");
        let pod = json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"volumes": [
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "picked", "configMap": {"name": "settings", "items": [{"key": "mode", "path": "conf/mode.txt"}]}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "scratch", "emptyDir": {}},
        ]}});
        let objects = Objects {
            config_maps: [("settings".to_owned(), json!({"data": {"mode": "fast", "level": "3"}}))].into(),
            secrets: [("creds".to_owned(), json!({"data": {"token": "czNjcjN0"}}))].into(),
            services: Vec::new(),
        };
        let volumes = make(&pod, &objects, &Downward::default(), root.path()).expect("made");
        let read = |volume: &str, file: &str| std::fs::read_to_string(volumes[volume].dir.join(file)).expect(file);
        assert_eq!((read("config", "mode"), read("config", "level")), ("fast".into(), "3".into()));
        assert_eq!(read("picked", "conf/mode.txt"), "fast");
        assert!(!volumes["picked"].dir.join("level").exists());
        assert_eq!(read("creds", "token"), "s3cr3t");
        assert_eq!(read("info", "name"), "web");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(volumes["creds"].dir.join("token")).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let container = json!({"name": "app", "volumeMounts": [
            {"name": "config", "mountPath": "/etc/config"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "scratch", "mountPath": "/ro", "readOnly": true},
            {"name": "picked", "mountPath": "/conf", "subPath": "conf"},
        ]});
        let mounts = mounts(&container, &volumes).expect("mounts");
        let summary: Vec<(&str, bool)> = mounts.iter().map(|m| (m.guest.as_str(), m.read_only)).collect();
        assert_eq!(summary, [("/etc/config", true), ("/scratch", false), ("/ro", true), ("/conf", true)]);
        assert_eq!(mounts[3].host, volumes["picked"].dir.join("conf"));
    }

    #[test]
    fn volumes_that_cannot_be_made_say_why() {
        // Goal: missing objects and keys, unknown kinds, escaping paths:
        // each refused with the volume named; optional ones made empty.
        let root = tempfile::tempdir().expect("dir");
        let make_one = |volume: Value| {
            let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"volumes": [volume]}});
            make(&pod, &Objects::default(), &Downward::default(), root.path()).map(|_| ())
        };
        let missing = make_one(json!({"name": "v", "configMap": {"name": "absent"}})).expect_err("missing");
        assert_eq!(missing.0, "MountVolume.SetUp failed for volume \"v\" : configmap \"absent\" not found");
        assert!(make_one(json!({"name": "v", "configMap": {"name": "absent", "optional": true}})).is_ok());
        let host = make_one(json!({"name": "v", "hostPath": {"path": "/etc"}})).expect_err("hostPath");
        assert!(host.0.contains("volumes of kind [\"hostPath\"] are not offered"), "{}", host.0);
        let token = make_one(json!({"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}));
        assert!(token.expect_err("token").0.contains("serviceAccountToken"));
        let escaping = make_one(
            json!({"name": "v", "downwardAPI": {"items": [{"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}}]}}),
        );
        assert!(escaping.expect_err("escapes").0.contains("may not contain '..'"));
        let unknown = mounts(&json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}), &BTreeMap::new());
        assert!(unknown.is_err());
    }
}
