//! Kubernetes' defaults of the built-in kinds (pods and the pod templates
//! of workloads among them, a new pod's phase and QoS class too), filled
//! in before admission and again before storing (so that
//! writes of the server's own loops get them too): only fields that are
//! missing, so applying them twice changes nothing.

use serde_json::{Map, Value, json};

use super::resources::ResourceType;

/// Fills the missing fields of `object`, of kind `t`, that Kubernetes
/// defaults.
pub fn apply(t: &ResourceType, object: &mut Value) {
    let Some(fields) = object.as_object_mut() else { return };
    match (t.group, t.plural) {
        ("", "persistentvolumes") => {
            let spec = child(fields, "spec");
            fill(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            fill(spec, "volumeMode", json!("Filesystem"));
            fill(child(fields, "status"), "phase", json!("Pending"));
        }
        ("", "pods") => {
            pod_spec(child(fields, "spec"));
            let qos = qos_class(fields.get("spec").unwrap_or(&Value::Null));
            let status = child(fields, "status");
            fill(status, "phase", json!("Pending"));
            fill(status, "qosClass", json!(qos));
        }
        ("", "podtemplates") => pod_spec(child(child(fields, "template"), "spec")),
        ("", "secrets") => fill(fields, "type", json!("Opaque")),
        ("", "endpoints") => {
            for subset in fields.get_mut("subsets").and_then(Value::as_array_mut).into_iter().flatten() {
                ports_protocol(subset.get_mut("ports"));
            }
        }
        ("discovery.k8s.io", "endpointslices") => ports_protocol(fields.get_mut("ports")),
        ("apps", "deployments") => {
            let spec = child(fields, "spec");
            fill(spec, "replicas", json!(1));
            fill(spec, "revisionHistoryLimit", json!(10));
            fill(spec, "progressDeadlineSeconds", json!(600));
            let strategy = child(spec, "strategy");
            fill(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                let rolling = child(strategy, "rollingUpdate");
                fill(rolling, "maxUnavailable", json!("25%"));
                fill(rolling, "maxSurge", json!("25%"));
            }
            template_spec(spec);
        }
        ("apps", "replicasets") => {
            let spec = child(fields, "spec");
            fill(spec, "replicas", json!(1));
            template_spec(spec);
        }
        ("apps", "statefulsets") => {
            let spec = child(fields, "spec");
            fill(spec, "replicas", json!(1));
            fill(spec, "podManagementPolicy", json!("OrderedReady"));
            fill(spec, "revisionHistoryLimit", json!(10));
            let strategy = child(spec, "updateStrategy");
            fill(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                fill(child(strategy, "rollingUpdate"), "partition", json!(0));
            }
            let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
            fill(retention, "whenDeleted", json!("Retain"));
            fill(retention, "whenScaled", json!("Retain"));
            template_spec(spec);
        }
        ("apps", "daemonsets") => {
            let spec = child(fields, "spec");
            fill(spec, "revisionHistoryLimit", json!(10));
            let strategy = child(spec, "updateStrategy");
            fill(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                let rolling = child(strategy, "rollingUpdate");
                fill(rolling, "maxUnavailable", json!(1));
                fill(rolling, "maxSurge", json!(0));
            }
            template_spec(spec);
        }
        ("batch", "jobs") => job_spec(child(fields, "spec")),
        ("batch", "cronjobs") => {
            let spec = child(fields, "spec");
            fill(spec, "concurrencyPolicy", json!("Allow"));
            fill(spec, "suspend", json!(false));
            fill(spec, "successfulJobsHistoryLimit", json!(3));
            fill(spec, "failedJobsHistoryLimit", json!(1));
            job_spec(child(child(spec, "jobTemplate"), "spec"));
        }
        ("", "persistentvolumeclaims") => {
            fill(child(fields, "spec"), "volumeMode", json!("Filesystem"));
            fill(child(fields, "status"), "phase", json!("Pending"));
        }
        ("", "replicationcontrollers") => replication_controller(fields),
        ("autoscaling", "horizontalpodautoscalers") => {
            let v2 = fields.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v2");
            let spec = child(fields, "spec");
            fill(spec, "minReplicas", json!(1));
            if v2 && spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty) {
                spec.insert(
                    "metrics".into(),
                    json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]),
                );
            }
        }
        ("networking.k8s.io", "networkpolicies") => network_policy(child(fields, "spec")),
        ("scheduling.k8s.io", "priorityclasses") => fill(fields, "preemptionPolicy", json!("PreemptLowerPriority")),
        ("storage.k8s.io", "storageclasses") => {
            fill(fields, "reclaimPolicy", json!("Delete"));
            fill(fields, "volumeBindingMode", json!("Immediate"));
        }
        ("storage.k8s.io", "csidrivers") => {
            let spec = child(fields, "spec");
            for (field, value) in [
                ("attachRequired", json!(true)),
                ("podInfoOnMount", json!(false)),
                ("storageCapacity", json!(false)),
                ("fsGroupPolicy", json!("ReadWriteOnceWithFSType")),
                ("requiresRepublish", json!(false)),
                ("volumeLifecycleModes", json!(["Persistent"])),
                ("seLinuxMount", json!(false)),
            ] {
                fill(spec, field, value);
            }
        }
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations" | "mutatingwebhookconfigurations") => {
            let mutating = t.plural == "mutatingwebhookconfigurations";
            for webhook in fields.get_mut("webhooks").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(webhook) = webhook.as_object_mut() {
                    webhook_defaults(webhook, mutating);
                }
            }
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            let spec = child(fields, "spec");
            fill(spec, "failurePolicy", json!("Fail"));
            let constraints = child(spec, "matchConstraints");
            match_defaults(constraints);
            for rule in constraints.get_mut("resourceRules").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(rule) = rule.as_object_mut() {
                    fill(rule, "scope", json!("*"));
                }
            }
        }
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => {
            fill(child(fields, "spec"), "matchingPrecedence", json!(1000))
        }
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => priority_level(child(fields, "spec")),
        _ => {}
    }
}

/// A pod's quality of service class, as Kubernetes computes it from its
/// containers' requests and limits of CPU and memory.
fn qos_class(spec: &Value) -> &'static str {
    let containers = ["initContainers", "containers"]
        .into_iter()
        .flat_map(|field| spec.get(field).and_then(Value::as_array).into_iter().flatten());
    let (mut any, mut guaranteed) = (false, true);
    for container in containers {
        for resource in ["cpu", "memory"] {
            let request = container.pointer(&format!("/resources/requests/{resource}"));
            let limit = container.pointer(&format!("/resources/limits/{resource}"));
            any |= request.is_some() || limit.is_some();
            guaranteed &= limit.is_some() && request.is_none_or(|r| Some(r) == limit);
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// The object at `field` of `fields`, made one if it is missing.
fn child<'a>(fields: &'a mut Map<String, Value>, field: &str) -> &'a mut Map<String, Value> {
    let slot = fields.entry(field).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("made an object")
}

/// Sets `field` to `value` where it is missing or null.
fn fill(fields: &mut Map<String, Value>, field: &str, value: Value) {
    if fields.get(field).is_none_or(Value::is_null) {
        fields.insert(field.into(), value);
    }
}

/// A pod spec's defaults, as Kubernetes' `SetDefaults_PodSpec` and
/// `SetDefaults_Container` give them.
fn pod_spec(spec: &mut Map<String, Value>) {
    fill(spec, "restartPolicy", json!("Always"));
    fill(spec, "dnsPolicy", json!("ClusterFirst"));
    fill(spec, "terminationGracePeriodSeconds", json!(30));
    fill(spec, "schedulerName", json!("default-scheduler"));
    fill(spec, "securityContext", json!({}));
    fill(spec, "enableServiceLinks", json!(true));
    for field in ["initContainers", "containers"] {
        for container in spec.get_mut(field).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(container) = container.as_object_mut() else { continue };
            let image = container.get("image").and_then(Value::as_str).unwrap_or_default();
            // An image without a tag, or tagged `latest`, is pulled always.
            let name = image.rsplit('/').next().unwrap_or_default();
            let latest = !image.contains('@') && name.split_once(':').is_none_or(|(_, tag)| tag == "latest");
            fill(container, "imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" }));
            fill(container, "terminationMessagePath", json!("/dev/termination-log"));
            fill(container, "terminationMessagePolicy", json!("File"));
            fill(container, "resources", json!({}));
            for port in container.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(port) = port.as_object_mut() {
                    fill(port, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// `protocol: TCP` on each port of `ports` that names none.
fn ports_protocol(ports: Option<&mut Value>) {
    for port in ports.and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(port) = port.as_object_mut() {
            fill(port, "protocol", json!("TCP"));
        }
    }
}

/// The pod spec of a workload's `template`.
fn template_spec(spec: &mut Map<String, Value>) {
    pod_spec(child(child(spec, "template"), "spec"));
}

/// A Job's defaults (and its pod template's): one completion only when
/// neither completions nor parallelism is given, as Kubernetes.
fn job_spec(spec: &mut Map<String, Value>) {
    let unset = |field: &str| spec.get(field).is_none_or(Value::is_null);
    if unset("parallelism") && unset("completions") {
        spec.insert("completions".into(), json!(1));
    }
    fill(spec, "parallelism", json!(1));
    fill(spec, "backoffLimit", json!(6));
    fill(spec, "completionMode", json!("NonIndexed"));
    fill(spec, "suspend", json!(false));
    fill(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    template_spec(spec);
}

/// The label of a Job's pods that holds its uid.
const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// The label of a Job's pods that holds its name.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Gives a new Job, of uid `uid`, that does not pick its selector itself
/// the selector and template labels Kubernetes generates: the job's name
/// and uid under their current and legacy labels, selected by uid.
pub fn job_selector(job: &mut Value, uid: &str) {
    let Some(fields) = job.as_object_mut() else { return };
    let name = fields.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default();
    let name = name.to_owned();
    let spec = child(fields, "spec");
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let labels = child(child(child(spec, "template"), "metadata"), "labels");
    for (label, value) in [
        (JOB_NAME_LABEL, &name),
        ("job-name", &name),
        (CONTROLLER_UID_LABEL, &uid.to_owned()),
        ("controller-uid", &uid.to_owned()),
    ] {
        fill(labels, label, json!(value));
    }
    fill(child(child(spec, "selector"), "matchLabels"), CONTROLLER_UID_LABEL, json!(uid));
}

fn replication_controller(fields: &mut Map<String, Value>) {
    let labels = fields
        .get("spec")
        .and_then(|spec| spec.pointer("/template/metadata/labels"))
        .and_then(Value::as_object)
        .cloned();
    let spec = child(fields, "spec");
    fill(spec, "replicas", json!(1));
    template_spec(spec);
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        if spec.get("selector").and_then(Value::as_object).is_none_or(Map::is_empty) {
            spec.insert("selector".into(), Value::Object(labels.clone()));
        }
        let metadata = child(fields, "metadata");
        if metadata.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty) {
            metadata.insert("labels".into(), Value::Object(labels));
        }
    }
}

fn network_policy(spec: &mut Map<String, Value>) {
    if spec.get("policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        let mut types = vec![json!("Ingress")];
        if spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty()) {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    for direction in ["ingress", "egress"] {
        for rule in spec.get_mut(direction).and_then(Value::as_array_mut).into_iter().flatten() {
            for port in rule.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(port) = port.as_object_mut() {
                    fill(port, "protocol", json!("TCP"));
                }
            }
        }
    }
}

fn match_defaults(fields: &mut Map<String, Value>) {
    fill(fields, "matchPolicy", json!("Equivalent"));
    fill(fields, "namespaceSelector", json!({}));
    fill(fields, "objectSelector", json!({}));
}

fn webhook_defaults(webhook: &mut Map<String, Value>, mutating: bool) {
    fill(webhook, "failurePolicy", json!("Fail"));
    fill(webhook, "timeoutSeconds", json!(10));
    match_defaults(webhook);
    if mutating {
        fill(webhook, "reinvocationPolicy", json!("Never"));
    }
    for rule in webhook.get_mut("rules").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(rule) = rule.as_object_mut() {
            fill(rule, "scope", json!("*"));
        }
    }
    if let Some(service) =
        webhook.get_mut("clientConfig").and_then(|c| c.get_mut("service")).and_then(Value::as_object_mut)
    {
        fill(service, "port", json!(443));
    }
}

fn priority_level(spec: &mut Map<String, Value>) {
    if spec.get("type").and_then(Value::as_str) != Some("Limited") {
        return;
    }
    let limited = child(spec, "limited");
    fill(limited, "nominalConcurrencyShares", json!(30));
    fill(limited, "lendablePercent", json!(0));
    let response = child(limited, "limitResponse");
    if response.get("type").and_then(Value::as_str) == Some("Queue") {
        let queuing = child(response, "queuing");
        fill(queuing, "queues", json!(64));
        fill(queuing, "handSize", json!(8));
        fill(queuing, "queueLengthLimit", json!(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::Registry;

    #[test]
    fn jobs_get_a_generated_selector_unless_manual() {
        let mut job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {}}}});
        job_selector(&mut job, "u-1");
        assert_eq!(job["spec"]["selector"], json!({"matchLabels": {CONTROLLER_UID_LABEL: "u-1"}}));
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({JOB_NAME_LABEL: "j", "job-name": "j", CONTROLLER_UID_LABEL: "u-1", "controller-uid": "u-1"})
        );
        let mut manual = json!({"metadata": {"name": "j"}, "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
        let before = manual.clone();
        job_selector(&mut manual, "u-1");
        assert_eq!(manual, before);
    }

    fn defaulted(group: &str, plural: &str, mut object: Value) -> Value {
        let registry = Registry::built_in();
        let t = registry.find_plural(group, plural).expect("served");
        apply(t, &mut object);
        let again = object.clone();
        apply(t, &mut object);
        assert_eq!(object, again, "defaults fill only what is missing");
        object
    }

    #[test]
    fn kinds_get_kubernetes_defaults() {
        let rc = defaulted(
            "",
            "replicationcontrollers",
            json!({"spec": {"template": {"metadata": {"labels": {"app": "a"}}}}}),
        );
        assert_eq!((&rc["spec"]["replicas"], &rc["spec"]["selector"]["app"]), (&json!(1), &json!("a")));
        assert_eq!(rc["metadata"]["labels"]["app"], "a");
        let pod = |resources: Value| {
            let pod = defaulted("", "pods", json!({"spec": {"containers": [{"name": "a", "resources": resources}]}}));
            (pod["status"]["phase"].clone(), pod["status"]["qosClass"].clone())
        };
        assert_eq!(pod(json!({})), (json!("Pending"), json!("BestEffort")));
        assert_eq!(pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}})), (json!("Pending"), json!("Guaranteed")));
        assert_eq!(pod(json!({"requests": {"cpu": "1"}})), (json!("Pending"), json!("Burstable")));
        let deployment = defaulted(
            "apps",
            "deployments",
            json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}}),
        );
        assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let template = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            (&template["schedulerName"], &template["restartPolicy"]),
            (&json!("default-scheduler"), &json!("Always"))
        );
        assert_eq!(template["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(template["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(template["containers"][1]["ports"][0]["protocol"], "TCP");
        let job = defaulted("batch", "jobs", json!({"spec": {"template": {"spec": {"containers": []}}}}));
        // Always, as Kubernetes defaults it: a Job's validation refuses it.
        assert_eq!(
            (&job["spec"]["backoffLimit"], &job["spec"]["template"]["spec"]["restartPolicy"]),
            (&json!(6), &json!("Always"))
        );
        let parallel = defaulted("batch", "jobs", json!({"spec": {"parallelism": 3}}));
        assert_eq!((&parallel["spec"]["parallelism"], &parallel["spec"]["completions"]), (&json!(3), &Value::Null));
        assert_eq!(defaulted("", "secrets", json!({}))["type"], "Opaque");
        let slice = defaulted("discovery.k8s.io", "endpointslices", json!({"ports": [{"port": 80}]}));
        assert_eq!(slice["ports"][0]["protocol"], "TCP");
        let pv = defaulted("", "persistentvolumes", json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}));
        assert_eq!(
            (&pv["spec"]["persistentVolumeReclaimPolicy"], &pv["spec"]["volumeMode"]),
            (&json!("Delete"), &json!("Filesystem"))
        );
        let hpa =
            defaulted("autoscaling", "horizontalpodautoscalers", json!({"apiVersion": "autoscaling/v2", "spec": {}}));
        assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
        let policy =
            defaulted("networking.k8s.io", "networkpolicies", json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}));
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(policy["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        let hooks = defaulted(
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            json!({"webhooks": [{"name": "a.b.c", "clientConfig": {"service": {"name": "s", "namespace": "n"}}, "rules": [{}]}]}),
        );
        let hook = &hooks["webhooks"][0];
        assert_eq!(
            (&hook["failurePolicy"], &hook["timeoutSeconds"], &hook["reinvocationPolicy"]),
            (&json!("Fail"), &json!(10), &json!("Never"))
        );
        assert_eq!((&hook["rules"][0]["scope"], &hook["clientConfig"]["service"]["port"]), (&json!("*"), &json!(443)));
    }
}
