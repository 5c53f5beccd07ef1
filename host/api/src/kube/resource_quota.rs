//! ResourceQuota, as kube-apiserver's quota admission and the quota
//! controller keep it: what an object uses of its namespace's quotas,
//! the admission step that refuses a create (or an update that uses more:
//! a Service changing type, a claim asking more storage) past a quota and
//! charges `status.used` with the store's optimistic concurrency (so racing
//! writes cannot both take the last slot), and the recount of `status`
//! from the objects stored. A quota's scopes narrow the objects it counts
//! ([`super::quota_scope`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::client::{ApiClient, Refused};
use super::objects::{ObjectStore, WriteOptions};
use super::quota_scope;
use super::resources::{Registry, ResourceType};
use super::status::ApiError;
use engenho_control::quantity::{Format, Quantity};

/// Quantities by quota resource name (`pods`, `requests.cpu`).
pub type ResourceList = BTreeMap<String, Quantity>;

/// Times a charge is tried again when a quota changed under it.
const CHARGE_ATTEMPTS: usize = 10;

/// The compute resources a pod's containers must each state when a quota
/// limits them.
const COMPUTE_RESOURCES: [&str; 6] =
    ["cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];

/// What names a quota resource limited to one storage class:
/// `<class>.storageclass.storage.k8s.io/<resource>`.
const STORAGE_CLASS_INFIX: &str = ".storageclass.storage.k8s.io/";

/// The resources a claim uses, also counted per storage class.
const CLAIM_RESOURCES: [&str; 2] = ["persistentvolumeclaims", "requests.storage"];

/// Whether `resource` is a claim resource, of every class or of one.
fn claim_resource(resource: &str) -> bool {
    CLAIM_RESOURCES.contains(&resource)
        || CLAIM_RESOURCES.iter().any(|r| resource.strip_suffix(r).is_some_and(|s| s.ends_with(STORAGE_CLASS_INFIX)))
}

/// What a claim uses: itself and the storage it requests (in whole
/// bytes), each also under its storage class (the beta annotation first,
/// as Kubernetes reads it, then `spec.storageClassName`).
fn claim_usage(claim: &Value) -> ResourceList {
    let annotation = claim.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class");
    let class = annotation
        .or_else(|| claim.pointer("/spec/storageClassName"))
        .and_then(Value::as_str)
        .filter(|class| !class.is_empty());
    let mut used = ResourceList::new();
    let storage = claim
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(|text| Quantity::parse(text).ok())
        .map(Quantity::whole_units_up);
    if let Some(storage) = storage {
        used.insert("requests.storage".into(), storage);
    }
    if let Some(class) = class {
        used.insert(format!("{class}{STORAGE_CLASS_INFIX}persistentvolumeclaims"), Quantity::from_units(1));
        if let Some(storage) = storage {
            used.insert(format!("{class}{STORAGE_CLASS_INFIX}requests.storage"), storage);
        }
    }
    used
}

/// The quota resource `count/<resource>.<group>` of kind `t`.
fn count_name(t: &ResourceType) -> String {
    if t.group.is_empty() { format!("count/{}", t.plural) } else { format!("count/{}.{}", t.plural, t.group) }
}

/// Whether a pod has finished (it then uses no quota).
fn terminal(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

/// The quantities of a resource map, skipping what does not parse.
fn resource_list(map: Option<&Value>) -> ResourceList {
    let entries = map.and_then(Value::as_object).into_iter().flatten();
    entries.filter_map(|(name, value)| Some((name.clone(), Quantity::parse(value.as_str()?).ok()?))).collect()
}

/// What one container uses: its requests (a limit stands for a request
/// it lacks, as Kubernetes defaults it) as `requests.*` and bare names,
/// and its limits as `limits.*`.
fn container_usage(container: &Value) -> ResourceList {
    let requests = resource_list(container.pointer("/resources/requests"));
    let limits = resource_list(container.pointer("/resources/limits"));
    let mut used = ResourceList::new();
    for resource in ["cpu", "memory"] {
        if let Some(request) = requests.get(resource).or_else(|| limits.get(resource)) {
            used.insert(resource.to_owned(), *request);
            used.insert(format!("requests.{resource}"), *request);
        }
        if let Some(limit) = limits.get(resource) {
            used.insert(format!("limits.{resource}"), *limit);
        }
    }
    used
}

/// `a + b`, each resource in the format of the side that had it first
/// (of the other side when that was zero, as Kubernetes adds).
pub fn add(mut a: ResourceList, b: &ResourceList) -> ResourceList {
    for (name, quantity) in b {
        let sum = a.get(name).map_or(*quantity, |held| held.plus(*quantity));
        a.insert(name.clone(), sum);
    }
    a
}

/// What a pod uses: the sum over its containers, or the largest init
/// container where that is more.
fn pod_usage(pod: &Value) -> ResourceList {
    let containers = |field: &str| pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).cloned();
    let mut used = ResourceList::new();
    for container in containers("containers").into_iter().flatten() {
        used = add(used, &container_usage(&container));
    }
    for init in containers("initContainers").into_iter().flatten() {
        for (name, quantity) in container_usage(&init) {
            let larger = used.get(&name).map_or(quantity, |held| held.max_of(quantity));
            used.insert(name, larger);
        }
    }
    used
}

/// What `object` of kind `t` uses of a quota.
pub fn usage(t: &ResourceType, object: &Value) -> ResourceList {
    let one = || Quantity::from_units(1);
    let mut used = ResourceList::new();
    match (t.group, t.plural) {
        ("", "pods") if terminal(object) => return used,
        ("", "pods") => used = pod_usage(object),
        ("", "persistentvolumeclaims") => used = claim_usage(object),
        ("", "services") => {
            let ports = object.pointer("/spec/ports").and_then(Value::as_array).map_or(0, Vec::len);
            let ports = i64::try_from(ports).unwrap_or(i64::MAX);
            match object.pointer("/spec/type").and_then(Value::as_str) {
                Some("NodePort") => {
                    used.insert("services.nodeports".into(), Quantity::from_units(ports));
                }
                Some("LoadBalancer") => {
                    used.insert("services.loadbalancers".into(), one());
                    if object.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false)) {
                        used.insert("services.nodeports".into(), Quantity::from_units(ports));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    if t.group.is_empty()
        && matches!(
            t.plural,
            "pods"
                | "services"
                | "configmaps"
                | "secrets"
                | "persistentvolumeclaims"
                | "replicationcontrollers"
                | "resourcequotas"
        )
    {
        used.insert(t.plural.to_owned(), one());
    }
    used.insert(count_name(t), one());
    used
}

/// The quota resources whose usage objects of kind `t` make.
fn matches_kind(t: &ResourceType, resource: &str) -> bool {
    resource == count_name(t)
        || (t.group.is_empty() && resource == t.plural)
        || match (t.group, t.plural) {
            ("", "pods") => COMPUTE_RESOURCES.contains(&resource),
            ("", "services") => matches!(resource, "services.nodeports" | "services.loadbalancers"),
            ("", "persistentvolumeclaims") => claim_resource(resource),
            _ => false,
        }
}

/// `key=value` pairs in name order, as Kubernetes prints resource lists.
fn pretty(list: &ResourceList) -> String {
    list.iter().map(|(name, quantity)| format!("{name}={quantity}")).collect::<Vec<_>>().join(",")
}

/// A quota as admission reads it.
struct Held {
    name: String,
    hard: ResourceList,
    used: ResourceList,
    object: Value,
}

impl Held {
    fn read(object: Value) -> Self {
        Self {
            name: object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
            hard: resource_list(object.pointer("/status/hard")),
            used: resource_list(object.pointer("/status/used")),
            object,
        }
    }
}

/// What refuses a pod that leaves out a compute resource a quota limits:
/// `must specify limits.cpu for: a,b; requests.memory for: a`.
fn missing_compute(pod: &Value, required: &BTreeSet<&str>) -> Option<String> {
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for field in ["containers", "initContainers"] {
        for container in pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).into_iter().flatten() {
            let stated = container_usage(container);
            let name = container.get("name").and_then(Value::as_str).unwrap_or_default();
            for resource in required.iter().filter(|r| !stated.contains_key(**r)) {
                missing.entry(resource).or_default().insert(name.to_owned());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(resource, names)| format!("{resource} for: {}", names.iter().cloned().collect::<Vec<_>>().join(",")))
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// The quota charge of storing `object` of kind `t` in `namespace`, in
/// place of `old` for an update: refused (403, Kubernetes' message) when
/// it would pass a quota or leaves out a compute resource a quota limits;
/// otherwise every quota whose scopes match it has the usage (for an
/// update, only what it uses beyond `old`) added to `status.used`, each
/// write conditional on the quota being unchanged since it was read.
/// Quotas whose status the controller has not filled yet limit nothing,
/// as in Kubernetes.
///
/// # Errors
/// 403 as above; 409 when the quotas keep changing; store failures.
pub async fn charge(
    objects: &ObjectStore,
    registry: &Registry,
    t: &ResourceType,
    namespace: &str,
    (object, old): (&Value, Option<&Value>),
    dry_run: bool,
) -> Result<(), ApiError> {
    let quotas = registry.find("", "v1", "resourcequotas").expect("resource quotas are built in");
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let what = if t.group.is_empty() { t.plural.to_owned() } else { format!("{}.{}", t.plural, t.group) };
    let refuse = |message: String| {
        ApiError::forbidden_on(format!("{what} \"{name}\" is forbidden: {message}"), t.group, t.plural, name)
    };
    let delta = growth(usage(t, object), &old.map(|old| usage(t, old)).unwrap_or_default());
    let mut charged = BTreeSet::new();
    for attempt in 0..CHARGE_ATTEMPTS {
        // The first reading is this node's (as kube-apiserver reads its
        // cache); after a conflict, one at least as new as the leader's.
        if attempt > 0 {
            objects.read_barrier().await?;
        }
        let held: Vec<Held> = objects.list_at(quotas, Some(namespace), 0)?.items.into_iter().map(Held::read).collect();
        let mut updates = Vec::new();
        for quota in held.iter().filter(|quota| quota_scope::matches(t, &quota.object, object)) {
            let restricted: BTreeSet<&str> =
                quota.hard.keys().map(String::as_str).filter(|r| matches_kind(t, r)).collect();
            if t.plural == "pods" && t.group.is_empty() {
                let required: BTreeSet<&str> =
                    restricted.iter().copied().filter(|r| COMPUTE_RESOURCES.contains(r)).collect();
                if let Some(message) = missing_compute(object, &required) {
                    return Err(refuse(format!("failed quota: {}: {message}", quota.name)));
                }
            }
            if restricted.iter().any(|r| !quota.used.contains_key(*r)) {
                let names: Vec<&str> = restricted.iter().copied().collect();
                return Err(refuse(format!(
                    "status unknown for quota: {}, resources: {}",
                    quota.name,
                    names.join(",")
                )));
            }
            let requested: ResourceList =
                delta.iter().filter(|(r, _)| restricted.contains(r.as_str())).map(|(r, q)| (r.clone(), *q)).collect();
            if requested.is_empty() || charged.contains(&quota.name) {
                continue;
            }
            let used = add(quota.used.clone(), &requested);
            let exceeded: Vec<&String> =
                requested.keys().filter(|r| used.get(*r).zip(quota.hard.get(*r)).is_some_and(|(u, h)| u > h)).collect();
            if !exceeded.is_empty() {
                let mask = |list: &ResourceList| -> ResourceList {
                    exceeded.iter().filter_map(|r| Some(((*r).clone(), *list.get(*r)?))).collect()
                };
                return Err(refuse(format!(
                    "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                    quota.name,
                    pretty(&mask(&requested)),
                    pretty(&mask(&quota.used)),
                    pretty(&mask(&quota.hard))
                )));
            }
            updates.push((quota, used));
        }
        if dry_run {
            return Ok(());
        }
        let mut conflicted = false;
        for (quota, used) in updates {
            let mut object = quota.object.clone();
            object["status"]["used"] = to_json(&used);
            match objects.update(quotas, Some(namespace), &quota.name, object, &WriteOptions::default()).await {
                Ok(_) => {
                    charged.insert(quota.name.clone());
                }
                Err(error) if error.reason == "Conflict" => conflicted = true,
                Err(error) if error.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        if !conflicted {
            return Ok(());
        }
    }
    Err(ApiError::conflict("", "resourcequotas", namespace))
}

/// What `used` takes beyond `previous`: each resource's increase, without
/// those that did not grow.
fn growth(used: ResourceList, previous: &ResourceList) -> ResourceList {
    used.into_iter()
        .filter_map(|(resource, quantity)| {
            let grown = previous.get(&resource).map_or(quantity, |before| quantity.minus(*before));
            (!grown.is_zero() && !grown.is_negative()).then_some((resource, grown))
        })
        .collect()
}

/// A resource list as JSON, each quantity in canonical form.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter().map(|(name, quantity)| (name.clone(), json!(quantity.to_string()))).collect::<Map<_, _>>(),
    )
}

/// Recounts `status` of every quota in `namespace` from the objects
/// stored: `hard` from the spec, `used` summed over the objects of the
/// kinds the quota limits that its scopes match. Writes only what changed, conditional on the
/// quota being unchanged since it was read (a charge made meanwhile wins).
///
/// # Errors
/// Store failures.
pub async fn recount(
    objects: &ObjectStore,
    registry: &Registry,
    client: &ApiClient,
    namespace: &str,
) -> Result<(), Refused> {
    let quotas = registry.find("", "v1", "resourcequotas").expect("resource quotas are built in");
    objects.read_barrier().await?;
    let held = objects.list_at(quotas, Some(namespace), 0)?.items;
    let mut stored: BTreeMap<(&str, &str), Vec<(Value, ResourceList)>> = BTreeMap::new();
    for quota in held {
        let hard = resource_list(quota.pointer("/spec/hard"));
        let mut used = ResourceList::new();
        for resource in hard.keys() {
            let Some(t) = kind_of(registry, resource) else { continue };
            let counted = match stored.entry((t.group, t.plural)) {
                std::collections::btree_map::Entry::Occupied(held) => held.into_mut(),
                std::collections::btree_map::Entry::Vacant(empty) => {
                    let items = objects.list_at(t, Some(namespace), 0)?.items;
                    let usages = items.into_iter().map(|object| {
                        let used = usage(t, &object);
                        (object, used)
                    });
                    empty.insert(usages.collect())
                }
            };
            let total = counted
                .iter()
                .filter(|(object, _)| quota_scope::matches(t, &quota, object))
                .filter_map(|(_, usage)| usage.get(resource).copied())
                .reduce(Quantity::plus);
            used.insert(resource.clone(), total.unwrap_or_else(|| Quantity::zero(Format::DecimalSi)));
        }
        for resource in hard.keys() {
            used.entry(resource.clone()).or_insert_with(|| Quantity::zero(Format::DecimalSi));
        }
        let status = json!({"hard": to_json(&hard), "used": to_json(&used)});
        client.update_status_as_read(quotas, Some(namespace), quota, status).await?;
    }
    Ok(())
}

/// The kind whose objects make usage of quota resource `resource`.
fn kind_of<'r>(registry: &'r Registry, resource: &str) -> Option<&'r ResourceType> {
    let core = |plural| registry.find_plural("", plural);
    match resource {
        r if COMPUTE_RESOURCES.contains(&r) => core("pods"),
        "services.nodeports" | "services.loadbalancers" => core("services"),
        r if claim_resource(r) => core("persistentvolumeclaims"),
        r => match r.strip_prefix("count/") {
            Some(counted) => {
                let (plural, group) = counted.split_once('.').unwrap_or((counted, ""));
                registry.find_plural(group, plural)
            }
            None => core(r),
        },
    }
}

/// Whether a quota's `status.hard` is behind its `spec.hard` (it is new,
/// or its limits changed).
pub fn needs_recount(quota: &Value) -> bool {
    let hard = resource_list(quota.pointer("/spec/hard"));
    resource_list(quota.pointer("/status/hard")) != hard
        || hard.keys().any(|r| quota.pointer("/status/used").and_then(|u| u.get(r)).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_use_their_containers_requests_and_limits() {
        let registry = Registry::built_in();
        let pods = registry.find_plural("", "pods").expect("pods");
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]}});
        let used = usage(pods, &pod);
        let text = |r: &str| used.get(r).map(ToString::to_string);
        assert_eq!(text("pods").as_deref(), Some("1"));
        assert_eq!(text("count/pods").as_deref(), Some("1"));
        assert_eq!(text("requests.cpu").as_deref(), Some("2"), "the init container asks more");
        assert_eq!(text("requests.memory").as_deref(), Some("128Mi"));
        assert_eq!(text("limits.cpu").as_deref(), Some("1500m"));
        let required: BTreeSet<&str> = ["limits.memory", "requests.cpu"].into();
        assert_eq!(missing_compute(&pod, &required).as_deref(), Some("must specify limits.memory for: a,i"));
        let finished = json!({"status": {"phase": "Succeeded"}});
        assert!(usage(pods, &finished).is_empty());
        let deployments = registry.find_plural("apps", "deployments").expect("deployments");
        assert_eq!(usage(deployments, &json!({})).keys().collect::<Vec<_>>(), ["count/deployments.apps"]);
    }

    #[test]
    fn claims_use_their_storage_also_per_class() {
        let registry = Registry::built_in();
        let claims = registry.find_plural("", "persistentvolumeclaims").expect("claims");
        let claim = json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "gold"}},
            "spec": {"storageClassName": "silver", "resources": {"requests": {"storage": "1.5"}}}});
        let used = usage(claims, &claim);
        let text = |r: &str| used.get(r).map(ToString::to_string);
        assert_eq!(text("persistentvolumeclaims").as_deref(), Some("1"));
        assert_eq!(text("requests.storage").as_deref(), Some("2"), "storage counts in whole bytes");
        assert_eq!(text("gold.storageclass.storage.k8s.io/requests.storage").as_deref(), Some("2"));
        assert_eq!(text("gold.storageclass.storage.k8s.io/persistentvolumeclaims").as_deref(), Some("1"));
        assert!(!used.keys().any(|r| r.starts_with("silver")), "the annotation wins over the field");
        for resource in used.keys() {
            assert!(matches_kind(claims, resource), "{resource}");
            assert_eq!(kind_of(&registry, resource).map(|t| t.plural), Some("persistentvolumeclaims"));
        }
        assert!(!claim_resource("gold.storageclass.storage.k8s.io/limits.cpu"));
    }

    #[test]
    fn updates_are_charged_only_what_grew() {
        let registry = Registry::built_in();
        let services = registry.find_plural("", "services").expect("services");
        let ports = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}, {"port": 81}]}});
        let mut exposed = ports.clone();
        exposed["spec"]["type"] = json!("NodePort");
        let grown = growth(usage(services, &exposed), &usage(services, &ports));
        assert_eq!(pretty(&grown), "services.nodeports=2", "the service itself is not counted again");
        assert!(growth(usage(services, &ports), &usage(services, &exposed)).is_empty(), "shrinking is free");
        let claims = registry.find_plural("", "persistentvolumeclaims").expect("claims");
        let sized = |storage: &str| json!({"spec": {"resources": {"requests": {"storage": storage}}}});
        let grown = growth(usage(claims, &sized("3Gi")), &usage(claims, &sized("1Gi")));
        assert_eq!(pretty(&grown), "requests.storage=2Gi");
    }
}
