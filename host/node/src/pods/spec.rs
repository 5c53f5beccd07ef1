//! What a container's spec asks for, resolved against the objects it
//! names: the component its `image` refers to, its arguments, its
//! environment (`value`, `valueFrom`, `envFrom`, `$(VAR)` references) and
//! its limits. A ConfigMap or Secret that is missing, or lacks a key, is a
//! [`ConfigError`], as the kubelet's `CreateContainerConfigError`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use engenho_control::quantity::Quantity;
use serde_json::Value;

/// The image of the tlisp runner shipped with the node.
pub const TLISP_IMAGE: &str = "tlisp";

/// What a container's `image` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A stored component, by its hex BLAKE3 digest.
    Digest(String),
    /// The tlisp runner shipped with the node.
    Tlisp,
}

/// Parses `image`: `blake3:<64 hex>`, `<name>@blake3:<64 hex>` or `tlisp`.
///
/// # Errors
/// Anything else, with what an image must be.
pub fn image_ref(image: &str) -> Result<ImageRef, String> {
    if image == TLISP_IMAGE {
        return Ok(ImageRef::Tlisp);
    }
    let digest = image.rsplit_once('@').map_or(image, |(_, reference)| reference);
    match digest.strip_prefix("blake3:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(ImageRef::Digest(hex.to_owned()))
        }
        _ => Err(format!(
            "image {image:?} is not a component reference: give blake3:<64 lowercase hex> or \
             <name>@blake3:<64 lowercase hex> (engenho content push prints it), or \"tlisp\""
        )),
    }
}

/// The ConfigMaps and Secrets a pod's containers and volumes name, as
/// fetched from its namespace (a missing one is absent), and the Services
/// its environment names.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, Value>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Value>,
    /// The Services of the pod's namespace (when `enableServiceLinks` is
    /// not false) and `default/kubernetes`, whose addresses go into every
    /// container's environment.
    pub services: Vec<Value>,
}

/// The environment the Services of `services` give a container, as the
/// kubelet's service links: `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`,
/// `<NAME>_SERVICE_PORT_<PORT NAME>`, and the Docker-link variables
/// `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`, for each
/// Service with a cluster IP, in name order.
pub fn service_env(services: &[Value]) -> Vec<(String, String)> {
    let mut sorted: Vec<&Value> = services.iter().collect();
    sorted.sort_by_key(|s| s.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned());
    let variable = |text: &str| text.to_uppercase().replace('-', "_");
    let mut env = Vec::new();
    for service in sorted {
        let ip = service.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = variable(service.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default());
        let ports: Vec<&Value> =
            service.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten().collect();
        let Some(first) = ports.first() else { continue };
        env.push((format!("{name}_SERVICE_HOST"), ip.to_owned()));
        env.push((format!("{name}_SERVICE_PORT"), first["port"].to_string()));
        for port in &ports {
            if let Some(port_name) = port["name"].as_str().filter(|n| !n.is_empty()) {
                env.push((format!("{name}_SERVICE_PORT_{}", variable(port_name)), port["port"].to_string()));
            }
        }
        let link = |port: &Value| {
            let protocol = port["protocol"].as_str().unwrap_or("TCP").to_lowercase();
            (protocol.clone(), format!("{protocol}://{ip}:{}", port["port"]))
        };
        env.push((format!("{name}_PORT"), link(first).1));
        for port in &ports {
            let (protocol, url) = link(port);
            let prefix = format!("{name}_PORT_{}_{}", port["port"], protocol.to_uppercase());
            env.push((prefix.clone(), url));
            env.push((format!("{prefix}_PROTO"), protocol));
            env.push((format!("{prefix}_PORT"), port["port"].to_string()));
            env.push((format!("{prefix}_ADDR"), ip.to_owned()));
        }
    }
    env
}

/// The names of the ConfigMaps and of the Secrets that `pod` refers to.
pub fn referenced(pod: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut config_maps, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    let mut add = |kind: &str, name: Option<&str>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            if kind == "configMap" {
                config_maps.insert(name.to_owned())
            } else {
                secrets.insert(name.to_owned())
            };
        }
    };
    for container in containers(pod) {
        for entry in container["env"].as_array().into_iter().flatten() {
            add("configMap", entry.pointer("/valueFrom/configMapKeyRef/name").and_then(Value::as_str));
            add("secret", entry.pointer("/valueFrom/secretKeyRef/name").and_then(Value::as_str));
        }
        for source in container["envFrom"].as_array().into_iter().flatten() {
            add("configMap", source.pointer("/configMapRef/name").and_then(Value::as_str));
            add("secret", source.pointer("/secretRef/name").and_then(Value::as_str));
        }
    }
    for volume in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        add("configMap", volume.pointer("/configMap/name").and_then(Value::as_str));
        add("secret", volume.pointer("/secret/secretName").and_then(Value::as_str));
        for source in volume.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
            add("configMap", source.pointer("/configMap/name").and_then(Value::as_str));
            add("secret", source.pointer("/secret/name").and_then(Value::as_str));
        }
    }
    (config_maps, secrets)
}

/// Every container of `pod`, init containers first.
pub fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    let init = pod.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten();
    init.chain(pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten())
}

/// Why a container's configuration cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What the downward API reads besides the pod: the node's capacity
/// stands for limits a container does not set.
#[derive(Debug, Clone, Default)]
pub struct Downward {
    /// The node's CPU, thousandths of a core.
    pub cpu_millis: u64,
    /// The node's memory, bytes.
    pub memory_bytes: u64,
}

/// The value of a downward API `fieldRef` path of `pod`.
///
/// # Errors
/// A path the downward API does not offer.
pub fn field(pod: &Value, path: &str) -> Result<String, ConfigError> {
    let string = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
    let map_entry = |prefix: &str, pointer: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(pod.pointer(pointer).and_then(|m| m.get(key)).and_then(Value::as_str).unwrap_or_default().to_owned())
    };
    let map_text = |pointer: &str| {
        let map = pod.pointer(pointer).and_then(Value::as_object);
        let lines: Vec<String> =
            map.into_iter().flatten().map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default())).collect();
        lines.join("\n")
    };
    let ips = |pointer: &str| {
        let ips = pod.pointer(pointer).and_then(Value::as_array).into_iter().flatten();
        ips.filter_map(|ip| ip["ip"].as_str()).collect::<Vec<_>>().join(",")
    };
    Ok(match path {
        "metadata.name" => string("/metadata/name"),
        "metadata.namespace" => string("/metadata/namespace"),
        "metadata.uid" => string("/metadata/uid"),
        "metadata.labels" => map_text("/metadata/labels"),
        "metadata.annotations" => map_text("/metadata/annotations"),
        "spec.nodeName" => string("/spec/nodeName"),
        "spec.serviceAccountName" => string("/spec/serviceAccountName"),
        "status.hostIP" => string("/status/hostIP"),
        "status.hostIPs" => ips("/status/hostIPs"),
        "status.podIP" => string("/status/podIP"),
        "status.podIPs" => ips("/status/podIPs"),
        _ => match map_entry("metadata.labels['", "/metadata/labels")
            .or_else(|| map_entry("metadata.annotations['", "/metadata/annotations"))
        {
            Some(value) => value,
            None => return Err(ConfigError(format!("the downward API has no field {path:?}"))),
        },
    })
}

/// The value of a downward API `resourceFieldRef` of container
/// `container` (its `containerName` names another) of `pod`, divided by
/// its `divisor` and rounded up.
///
/// # Errors
/// An unknown resource or container, or a malformed divisor.
pub fn resource_field(pod: &Value, container: &str, reference: &Value, node: &Downward) -> Result<String, ConfigError> {
    let name = reference["containerName"].as_str().filter(|n| !n.is_empty()).unwrap_or(container);
    let spec = containers(pod)
        .find(|c| c["name"] == name)
        .ok_or_else(|| ConfigError(format!("resourceFieldRef names container {name:?}, which the pod lacks")))?;
    let resource = reference["resource"].as_str().unwrap_or_default();
    let (section, kind) = resource.split_once('.').unwrap_or(("", ""));
    let set = spec.pointer(&format!("/resources/{section}/{kind}")).and_then(Value::as_str).map(Quantity::parse);
    let milli = match (set, kind) {
        (Some(Ok(quantity)), _) => quantity.milli_value(),
        (Some(Err(error)), _) => return Err(ConfigError(format!("{resource} of container {name}: {error}"))),
        (None, "cpu") if section == "limits" => i128::from(node.cpu_millis),
        (None, "memory") if section == "limits" => i128::from(node.memory_bytes) * 1000,
        (None, "cpu" | "memory" | "ephemeral-storage") => 0,
        _ => return Err(ConfigError(format!("the downward API has no resource {resource:?}"))),
    };
    let divisor = match reference["divisor"].as_str() {
        Some(text) => Quantity::parse(text).map_err(|e| ConfigError(format!("divisor {text:?}: {e}")))?.milli_value(),
        None => 1000,
    };
    let divisor = divisor.max(1);
    Ok(((milli + divisor - 1) / divisor).to_string())
}

/// The environment of container `container` of `pod`, in order: the
/// Services' ([`service_env`]), `envFrom` sources, then `env` entries,
/// `$(VAR)` references expanded against what comes before.
///
/// # Errors
/// A missing ConfigMap, Secret or key that is not optional; a bad
/// downward API reference.
pub fn env(
    pod: &Value,
    container: &Value,
    objects: &Objects,
    node: &Downward,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = service_env(&objects.services);
    let name = container["name"].as_str().unwrap_or_default();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = source["prefix"].as_str().unwrap_or_default();
        let (kind, reference) = match (source.get("configMapRef"), source.get("secretRef")) {
            (Some(r), _) => ("configmap", r),
            (_, Some(r)) => ("secret", r),
            _ => continue,
        };
        let object_name = reference["name"].as_str().unwrap_or_default();
        let Some(data) = data_of(objects, kind, object_name)? else {
            if reference["optional"] == true {
                continue;
            }
            return Err(ConfigError(format!("{kind} \"{object_name}\" not found")));
        };
        env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
    }
    for entry in container["env"].as_array().into_iter().flatten() {
        let key = entry["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(from) = entry.get("valueFrom") {
            match value_from(pod, name, from, objects, node)? {
                Some(value) => value,
                None => continue,
            }
        } else {
            let raw = entry["value"].as_str().unwrap_or_default();
            expand(raw, |var| env.iter().rev().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
        };
        env.push((key, value));
    }
    Ok(env)
}

fn value_from(
    pod: &Value,
    container: &str,
    from: &Value,
    objects: &Objects,
    node: &Downward,
) -> Result<Option<String>, ConfigError> {
    if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
        return field(pod, path).map(Some);
    }
    if let Some(reference) = from.get("resourceFieldRef") {
        return resource_field(pod, container, reference, node).map(Some);
    }
    let (kind, reference, label) = match (from.get("configMapKeyRef"), from.get("secretKeyRef")) {
        (Some(r), _) => ("configmap", r, "ConfigMap"),
        (_, Some(r)) => ("secret", r, "Secret"),
        _ => return Err(ConfigError("an env valueFrom names no source".into())),
    };
    let (object_name, key) =
        (reference["name"].as_str().unwrap_or_default(), reference["key"].as_str().unwrap_or_default());
    let optional = reference["optional"] == true;
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    match data_of(objects, kind, object_name)? {
        Some(data) => match data.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional => Ok(None),
            None => Err(ConfigError(format!("couldn't find key {key} in {label} {namespace}/{object_name}"))),
        },
        None if optional => Ok(None),
        None => Err(ConfigError(format!("{kind} \"{object_name}\" not found"))),
    }
}

/// The data of ConfigMap or Secret (`kind`) `name`, as text; `None` when
/// it is missing.
///
/// # Errors
/// A Secret value that is not base64, or data that is not text.
pub fn data_of(objects: &Objects, kind: &str, name: &str) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    let files = match files_of(objects, kind, name)? {
        Some(files) => files,
        None => return Ok(None),
    };
    let mut data = BTreeMap::new();
    for (key, bytes) in files {
        let text =
            String::from_utf8(bytes).map_err(|_| ConfigError(format!("{kind} \"{name}\": key {key} is not text")))?;
        data.insert(key, text);
    }
    Ok(Some(data))
}

/// The keys and bytes of ConfigMap or Secret (`kind`) `name` (a
/// ConfigMap's `data` and `binaryData`, a Secret's `data` decoded and
/// `stringData`); `None` when it is missing.
///
/// # Errors
/// A value that is not base64 where it must be.
pub fn files_of(objects: &Objects, kind: &str, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, ConfigError> {
    let base64 = base64::engine::general_purpose::STANDARD;
    let decode = |key: &str, text: &str| {
        base64.decode(text).map_err(|e| ConfigError(format!("{kind} \"{name}\": key {key} is not base64: {e}")))
    };
    let mut files = BTreeMap::new();
    let strings = |object: &Value, field: &str| -> Vec<(String, String)> {
        let map = object.get(field).and_then(Value::as_object).into_iter().flatten();
        map.map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
    };
    if kind == "configmap" {
        let Some(object) = objects.config_maps.get(name) else { return Ok(None) };
        for (key, text) in strings(object, "data") {
            files.insert(key, text.into_bytes());
        }
        for (key, text) in strings(object, "binaryData") {
            files.insert(key.clone(), decode(&key, &text)?);
        }
    } else {
        let Some(object) = objects.secrets.get(name) else { return Ok(None) };
        for (key, text) in strings(object, "data") {
            files.insert(key.clone(), decode(&key, &text)?);
        }
        for (key, text) in strings(object, "stringData") {
            files.insert(key, text.into_bytes());
        }
    }
    Ok(Some(files))
}

/// `text` with each `$(NAME)` that `lookup` knows replaced, `$$` as `$`,
/// anything else kept (Kubernetes' expansion of env values and args).
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|r| r.split_once(')')) {
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The arguments of container `container`: its name (as the program's
/// name), then its `command` and `args`, each with `$(VAR)` expanded
/// against `env`.
pub fn args(container: &Value, env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut args = vec![container["name"].as_str().unwrap_or_default().to_owned()];
    for field in ["command", "args"] {
        for arg in container[field].as_array().into_iter().flatten().filter_map(Value::as_str) {
            args.push(expand(arg, lookup));
        }
    }
    args
}

/// The memory limit (bytes) and CPU limit (thousandths of a core) of
/// `container`, where set.
pub fn limits(container: &Value) -> (Option<u64>, Option<u64>) {
    let milli = |kind: &str| {
        let text = container.pointer(&format!("/resources/limits/{kind}")).and_then(Value::as_str)?;
        Quantity::parse(text).ok().map(Quantity::milli_value)
    };
    let memory = milli("memory").map(|m| u64::try_from((m + 999) / 1000).unwrap_or(u64::MAX));
    let cpu = milli("cpu").map(|m| u64::try_from(m).unwrap_or(u64::MAX).max(1));
    (memory, cpu)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "blake3:00",
                "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}]},
            "status": {"hostIP": "10.0.0.7"},
        })
    }

    #[test]
    fn images_are_component_references() {
        // Goal: digests with or without a name, and the tlisp runner; any
        // other image refused with what to give.
        let hex = "ab".repeat(32);
        assert_eq!(image_ref(&format!("blake3:{hex}")), Ok(ImageRef::Digest(hex.clone())));
        assert_eq!(image_ref(&format!("hello@blake3:{hex}")), Ok(ImageRef::Digest(hex.clone())));
        assert_eq!(image_ref("tlisp"), Ok(ImageRef::Tlisp));
        for bad in ["nginx:1.27", "blake3:abc", &format!("blake3:{}", hex.to_uppercase())] {
            let error = image_ref(bad).expect_err(bad);
            assert!(error.contains("blake3:<64 lowercase hex>"), "{error}");
        }
    }

    #[test]
    fn the_environment_resolves_every_source_in_order() {
        // Goal: envFrom first (with prefix), then env in order; valueFrom
        // ConfigMap and Secret keys, fields and resources; $(VAR) refers to
        // what comes before; optional sources may be missing.
        let objects = Objects {
            config_maps: [("settings".to_owned(), json!({"data": {"MODE": "fast", "LEVEL": "3"}}))].into(),
            secrets: [("creds".to_owned(), json!({"data": {"token": "czNjcjN0"}}))].into(),
            services: Vec::new(),
        };
        let container = json!({"name": "app", "resources": {"limits": {"memory": "64Mi"}},
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "gone", "optional": true}}],
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": true}}},
            {"name": "URL", "value": "http://$(POD).$(CFG_MODE)/$(UNKNOWN)/$$(POD)"},
        ]});
        let node = Downward { cpu_millis: 2000, memory_bytes: 1 << 30 };
        let env = env(&pod(), &container, &objects, &node).expect("resolves");
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("CFG_LEVEL", "3"),
                ("CFG_MODE", "fast"),
                ("POD", "web"),
                ("APP", "web"),
                ("TOKEN", "s3cr3t"),
                ("MEM_MI", "64"),
                ("CPU", "1"),
                ("URL", "http://web.fast/$(UNKNOWN)/$(POD)"),
            ]
        );
    }

    #[test]
    fn services_give_the_kubelets_link_variables() {
        // Goal: the kubelet's service-link variables for services with a
        // cluster IP; headless ones give none; a container's own env wins.
        let services = vec![
            json!({"metadata": {"name": "kubernetes"}, "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}),
            json!({"metadata": {"name": "my-db"}, "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 5432}]}}),
            json!({"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
        ];
        let env = service_env(&services);
        let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert_eq!(get("MY_DB_SERVICE_HOST"), Some("10.96.0.9"));
        assert_eq!(get("MY_DB_PORT_5432_TCP_PROTO"), Some("tcp"));
        assert!(env.iter().all(|(k, _)| !k.starts_with("HEADLESS")));
        let objects = Objects { services, ..Objects::default() };
        let container = json!({"name": "app", "env": [{"name": "MY_DB_SERVICE_HOST", "value": "override"}]});
        let resolved = super::env(&pod(), &container, &objects, &Downward::default()).expect("resolves");
        assert_eq!(resolved.last(), Some(&("MY_DB_SERVICE_HOST".to_owned(), "override".to_owned())));
    }

    #[test]
    fn missing_sources_are_config_errors_as_the_kubelet_words_them() {
        // Goal: the kubelet's messages for a missing object and key.
        let objects =
            Objects { config_maps: [("settings".to_owned(), json!({"data": {}}))].into(), ..Objects::default() };
        let node = Downward::default();
        let missing = json!({"name": "app", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]});
        assert_eq!(env(&pod(), &missing, &objects, &node), Err(ConfigError("configmap \"absent\" not found".into())));
        let key = json!({"name": "app", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}]});
        assert_eq!(
            env(&pod(), &key, &objects, &node),
            Err(ConfigError("couldn't find key k in ConfigMap shop/settings".into()))
        );
        let secret = json!({"name": "app", "envFrom": [{"secretRef": {"name": "absent"}}]});
        assert_eq!(env(&pod(), &secret, &objects, &node), Err(ConfigError("secret \"absent\" not found".into())));
        let field =
            json!({"name": "app", "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]});
        assert!(env(&pod(), &field, &objects, &node).is_err());
    }

    #[test]
    fn args_and_limits_come_from_the_spec() {
        // Goal: the container's name, then command and args, expanded;
        // limits as bytes and thousandths of a core.
        let container = json!({"name": "app", "command": ["run"], "args": ["--name=$(POD)", "x"],
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}});
        let env = vec![("POD".to_owned(), "web".to_owned())];
        assert_eq!(args(&container, &env), ["app", "run", "--name=web", "x"]);
        assert_eq!(limits(&container), (Some(64 << 20), Some(250)));
        assert_eq!(limits(&json!({"name": "app"})), (None, None));
        let (config_maps, secrets) = referenced(&json!({"spec": {
            "containers": [{"name": "a", "envFrom": [{"configMapRef": {"name": "one"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "two"}}, {"name": "p", "projected": {"sources": [{"configMap": {"name": "three"}}]}}]}}));
        assert_eq!(
            (config_maps.into_iter().collect::<Vec<_>>(), secrets.into_iter().collect::<Vec<_>>()),
            (vec!["one".to_owned(), "three".to_owned()], vec!["two".to_owned()])
        );
    }
}
