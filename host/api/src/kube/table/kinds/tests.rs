//! Each kind's columns and cells against realistic objects, as
//! kube-apiserver prints them.

use k8s_openapi::chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::columns;

/// The cells of one object of `group`/`plural`.
fn cells(group: &str, plural: &str, object: &Value) -> Vec<Value> {
    columns(group, plural).expect("a built-in kind").iter().map(|c| (c.cell)(object)).collect()
}

/// The column names of `group`/`plural`, wide ones in brackets.
fn names(group: &str, plural: &str) -> Vec<String> {
    let columns = columns(group, plural).expect("a built-in kind");
    columns.iter().map(|c| if c.priority == 0 { c.name.to_owned() } else { format!("[{}]", c.name) }).collect()
}

/// A time `hours` ago in RFC 3339.
fn hours_ago(hours: i64) -> String {
    (Utc::now() - Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn metadata(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": hours_ago(3)})
}

#[test]
fn services_print_type_addresses_and_ports() {
    assert_eq!(names("", "services"), ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "[Selector]"]);
    let node_port = json!({"metadata": metadata("web"), "spec": {
        "type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
        "selector": {"app": "web", "tier": "front"},
        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}});
    assert_eq!(
        cells("", "services", &node_port),
        [
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80:30080/TCP,443/TCP"),
            json!("3h"),
            json!("app=web,tier=front")
        ]
    );
    let pending = json!({"metadata": metadata("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 53, "protocol": "UDP", "nodePort": 31053}]}});
    assert_eq!(cells("", "services", &pending)[3..5], [json!("<pending>"), json!("53:31053/UDP")]);
    let served = json!({"metadata": metadata("lb"), "spec": {"type": "LoadBalancer", "externalIPs": ["192.0.2.9"]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}}});
    assert_eq!(cells("", "services", &served)[3], json!("203.0.113.7,lb.example.com,192.0.2.9"));
    let external =
        json!({"metadata": metadata("db"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    assert_eq!(cells("", "services", &external)[2..5], [json!("<none>"), json!("db.example.com"), json!("<none>")]);
}

#[test]
fn endpoints_and_slices_list_three_addresses() {
    let endpoints = json!({"metadata": metadata("web"), "subsets": [{
        "addresses": [{"ip": "10.1.0.1"}, {"ip": "10.1.0.2"}], "ports": [{"port": 8080}, {"port": 9090}]}]});
    assert_eq!(cells("", "endpoints", &endpoints)[1], json!("10.1.0.1:8080,10.1.0.2:8080,10.1.0.1:9090 + 1 more..."));
    assert_eq!(cells("", "endpoints", &json!({"metadata": metadata("none")}))[1], json!("<none>"));
    assert_eq!(names("discovery.k8s.io", "endpointslices"), ["Name", "AddressType", "Ports", "Endpoints", "Age"]);
    let slice = json!({"metadata": metadata("web-abc"), "addressType": "IPv4",
        "ports": [{"port": 8080}, {"name": "metrics"}], "endpoints": [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2"]}]});
    assert_eq!(
        cells("discovery.k8s.io", "endpointslices", &slice)[1..4],
        [json!("IPv4"), json!("8080,metrics"), json!("10.1.0.1,10.1.0.2")]
    );
    let empty = json!({"metadata": metadata("empty"), "addressType": "IPv6"});
    assert_eq!(cells("discovery.k8s.io", "endpointslices", &empty)[2..4], [json!("<unset>"), json!("<unset>")]);
}

#[test]
fn events_of_both_apis_print_alike() {
    assert_eq!(
        names("", "events"),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "[Subobject]",
            "[Source]",
            "Message",
            "[First Seen]",
            "[Count]",
            "[Name]"
        ]
    );
    assert_eq!(names("", "events"), names("events.k8s.io", "events"));
    let core = json!({"metadata": metadata("web.17a"), "type": "Warning", "reason": "BackOff", "message": " Back-off restarting \n",
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "source": {"component": "kubelet", "host": "n1"}, "firstTimestamp": hours_ago(5), "lastTimestamp": hours_ago(3), "count": 4});
    let expected = [
        json!("3h"),
        json!("Warning"),
        json!("BackOff"),
        json!("pod/web"),
        json!("spec.containers{app}"),
        json!("kubelet, n1"),
        json!("Back-off restarting"),
        json!("5h"),
        json!(4),
        json!("web.17a"),
    ];
    assert_eq!(cells("", "events", &core), expected);
    let new = json!({"metadata": metadata("web.17a"), "type": "Warning", "reason": "BackOff", "note": "Back-off restarting",
        "regarding": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "reportingController": "kubelet", "reportingInstance": "n1",
        "deprecatedFirstTimestamp": hours_ago(5), "deprecatedLastTimestamp": hours_ago(3), "deprecatedCount": 4});
    assert_eq!(cells("events.k8s.io", "events", &new), expected);
    let single = json!({"metadata": metadata("ns.1"), "type": "Normal", "reason": "Created", "eventTime": "2020-01-01T00:00:00.000000Z",
        "involvedObject": {"kind": "Namespace"}, "series": {"count": 7, "lastObservedTime": hours_ago(3)}});
    let row = cells("", "events", &single);
    assert_eq!([&row[0], &row[3], &row[8]], [&json!("3h"), &json!("namespace"), &json!(7)]);
}

#[test]
fn volumes_and_claims_print_binding() {
    assert_eq!(
        names("", "persistentvolumeclaims"),
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "[VolumeMode]"
        ]
    );
    let bound = json!({"metadata": metadata("data"), "spec": {"volumeName": "pv-1", "storageClassName": "fast", "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": "5Gi"}}}, "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        cells("", "persistentvolumeclaims", &bound),
        [
            json!("data"),
            json!("Bound"),
            json!("pv-1"),
            json!("10Gi"),
            json!("RWO"),
            json!("fast"),
            json!("<unset>"),
            json!("3h"),
            json!("Filesystem")
        ]
    );
    let pending = json!({"metadata": metadata("wait"), "spec": {"resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}});
    assert_eq!(
        cells("", "persistentvolumeclaims", &pending)[1..6],
        [json!("Pending"), json!(""), json!(""), json!(""), json!("")]
    );
    assert_eq!(
        names("", "persistentvolumes")[..6],
        ["Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim"]
    );
    let volume = json!({"metadata": {"name": "pv-1", "creationTimestamp": hours_ago(3), "deletionTimestamp": hours_ago(0),
        "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadOnlyMany"], "persistentVolumeReclaimPolicy": "Retain",
        "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "fast"}, "status": {"phase": "Bound"}});
    assert_eq!(
        cells("", "persistentvolumes", &volume),
        [
            json!("pv-1"),
            json!("10Gi"),
            json!("ROX,RWX"),
            json!("Retain"),
            json!("Terminating"),
            json!("default/data"),
            json!("legacy"),
            json!("<unset>"),
            json!(""),
            json!("3h"),
            json!("<unset>")
        ]
    );
}

#[test]
fn core_templates_controllers_accounts_and_components() {
    let template = json!({"metadata": metadata("t"), "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}});
    assert_eq!(names("", "podtemplates"), ["Name", "Containers", "Images", "Pod Labels"]);
    assert_eq!(
        cells("", "podtemplates", &template),
        [json!("t"), json!("app,log"), json!("nginx:1,busybox"), json!("app=web")]
    );
    let controller = json!({"metadata": metadata("rc"), "spec": {"replicas": 3, "selector": {"app": "web"},
        "template": template["template"]}, "status": {"replicas": 3, "readyReplicas": 2}});
    assert_eq!(
        cells("", "replicationcontrollers", &controller),
        [
            json!("rc"),
            json!(3),
            json!(3),
            json!(2),
            json!("3h"),
            json!("app,log"),
            json!("nginx:1,busybox"),
            json!("app=web")
        ]
    );
    let account = json!({"metadata": metadata("default"), "secrets": [{"name": "token"}]});
    assert_eq!(cells("", "serviceaccounts", &account), [json!("default"), json!(1), json!("3h")]);
    let component = json!({"metadata": {"name": "etcd-0"}, "conditions": [{"type": "Healthy", "status": "False", "message": "", "error": "timeout"}]});
    assert_eq!(
        cells("", "componentstatuses", &component),
        [json!("etcd-0"), json!("Unhealthy"), json!(""), json!("timeout")]
    );
}

#[test]
fn replica_sets_stateful_sets_and_daemon_sets() {
    let spec = json!({"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}], "nodeSelector": {"disk": "ssd"}}}});
    let set = json!({"metadata": metadata("web-5d"), "spec": spec, "status": {"replicas": 3, "readyReplicas": 1}});
    assert_eq!(
        names("apps", "replicasets"),
        ["Name", "Desired", "Current", "Ready", "Age", "[Containers]", "[Images]", "[Selector]"]
    );
    assert_eq!(
        cells("apps", "replicasets", &set),
        [json!("web-5d"), json!(3), json!(3), json!(1), json!("3h"), json!("app"), json!("nginx:1"), json!("app=web")]
    );
    assert_eq!(names("apps", "statefulsets"), ["Name", "Ready", "Age", "[Containers]", "[Images]"]);
    assert_eq!(cells("apps", "statefulsets", &set)[1], json!("1/3"));
    let daemons = json!({"metadata": metadata("agent"), "spec": spec, "status": {"desiredNumberScheduled": 2,
        "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}});
    assert_eq!(
        cells("apps", "daemonsets", &daemons)[..8],
        [json!("agent"), json!(2), json!(2), json!(1), json!(2), json!(1), json!("disk=ssd"), json!("3h")]
    );
    let revision = json!({"metadata": {"name": "web-7c", "creationTimestamp": hours_ago(3),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}, "revision": 2});
    assert_eq!(
        cells("apps", "controllerrevisions", &revision),
        [json!("web-7c"), json!("statefulset.apps/web"), json!(2), json!("3h")]
    );
}

#[test]
fn jobs_print_status_completions_and_duration() {
    assert_eq!(
        names("batch", "jobs"),
        ["Name", "Status", "Completions", "Duration", "Age", "[Containers]", "[Images]", "[Selector]"]
    );
    let complete = json!({"metadata": metadata("pi"), "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {"succeeded": 1, "startTime": "2024-05-01T10:00:00Z", "completionTime": "2024-05-01T10:00:42Z",
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
    assert_eq!(
        cells("batch", "jobs", &complete)[..5],
        [json!("pi"), json!("Complete"), json!("1/1"), json!("42s"), json!("3h")]
    );
    let running = json!({"metadata": metadata("queue"), "spec": {"parallelism": 4}, "status": {"startTime": hours_ago(3), "active": 4}});
    assert_eq!(cells("batch", "jobs", &running)[1..4], [json!("Running"), json!("0/1 of 4"), json!("3h")]);
    let new = json!({"metadata": metadata("new"), "spec": {"completions": 3, "suspend": true},
        "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
    assert_eq!(cells("batch", "jobs", &new)[1..4], [json!("Suspended"), json!("0/3"), json!("")]);
}

#[test]
fn cron_jobs_print_schedule_and_last_run() {
    assert_eq!(
        names("batch", "cronjobs"),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "[Containers]",
            "[Images]",
            "[Selector]"
        ]
    );
    let never = json!({"metadata": metadata("nightly"), "spec": {"schedule": "0 3 * * *", "suspend": false,
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "backup", "image": "restic"}]}}}}}});
    assert_eq!(
        cells("batch", "cronjobs", &never),
        [
            json!("nightly"),
            json!("0 3 * * *"),
            json!("<none>"),
            json!("False"),
            json!(0),
            json!("<none>"),
            json!("3h"),
            json!("backup"),
            json!("restic"),
            json!("<none>")
        ]
    );
    let ran = json!({"metadata": metadata("hourly"), "spec": {"schedule": "@hourly", "timeZone": "Etc/UTC"},
        "status": {"active": [{"name": "hourly-1"}], "lastScheduleTime": hours_ago(3)}});
    assert_eq!(cells("batch", "cronjobs", &ran)[2..6], [json!("Etc/UTC"), json!("<unset>"), json!(1), json!("3h")]);
}

#[test]
fn autoscalers_print_targets_of_v1_and_v2() {
    assert_eq!(
        names("autoscaling", "horizontalpodautoscalers"),
        ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]
    );
    let v1 = json!({"metadata": metadata("web"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
        "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 80},
        "status": {"currentReplicas": 3, "currentCPUUtilizationPercentage": 40}});
    assert_eq!(
        cells("autoscaling", "horizontalpodautoscalers", &v1),
        [json!("web"), json!("Deployment/web"), json!("cpu: 40%/80%"), json!("2"), json!(10), json!(3), json!("3h")]
    );
    let v2 = json!({"metadata": metadata("api"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 5,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
            {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}]},
        "status": {"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 55}}}]}});
    assert_eq!(
        cells("autoscaling", "horizontalpodautoscalers", &v2)[2..4],
        [json!("cpu: 55%/80%, <unknown>/1k + 1 more..."), json!("<unset>")]
    );
    let fresh = json!({"metadata": metadata("fresh"), "spec": {"maxReplicas": 3, "metrics": [
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 70}}}]}});
    assert_eq!(cells("autoscaling", "horizontalpodautoscalers", &fresh)[2], json!("memory: <unknown>/70%"));
}

#[test]
fn networking_kinds() {
    let ingress = json!({"metadata": metadata("shop"), "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example"]}],
        "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"}, {"host": "d.example"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
    assert_eq!(names("networking.k8s.io", "ingresses"), ["Name", "Class", "Hosts", "Address", "Ports", "Age"]);
    assert_eq!(
        cells("networking.k8s.io", "ingresses", &ingress)[..5],
        [
            json!("shop"),
            json!("nginx"),
            json!("a.example,b.example,c.example + 2 more..."),
            json!("203.0.113.9"),
            json!("80, 443")
        ]
    );
    let plain = json!({"metadata": metadata("any"), "spec": {"rules": [{}]}});
    assert_eq!(
        cells("networking.k8s.io", "ingresses", &plain)[1..5],
        [json!("<none>"), json!("*"), json!(""), json!("80")]
    );
    let class = json!({"metadata": metadata("nginx"), "spec": {"controller": "k8s.io/ingress-nginx",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external"}}});
    assert_eq!(
        cells("networking.k8s.io", "ingressclasses", &class)[1..3],
        [json!("k8s.io/ingress-nginx"), json!("IngressParameters.k8s.example.com/external")]
    );
    let policy = json!({"metadata": metadata("deny"), "spec": {"podSelector": {}}});
    assert_eq!(cells("networking.k8s.io", "networkpolicies", &policy)[1], json!("<none>"));
}

#[test]
fn storage_kinds() {
    let class = json!({"metadata": {"name": "standard", "creationTimestamp": hours_ago(3),
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path"});
    assert_eq!(
        cells("storage.k8s.io", "storageclasses", &class),
        [
            json!("standard (default)"),
            json!("rancher.io/local-path"),
            json!("Delete"),
            json!("Immediate"),
            json!(false),
            json!("3h")
        ]
    );
    let driver = json!({"metadata": metadata("csi.example"), "spec": {"attachRequired": false, "tokenRequests": [{"audience": "vault"}],
        "volumeLifecycleModes": ["Persistent", "Ephemeral"]}});
    assert_eq!(
        cells("storage.k8s.io", "csidrivers", &driver)[..7],
        [
            json!("csi.example"),
            json!(false),
            json!(false),
            json!(false),
            json!("vault"),
            json!(false),
            json!("Persistent,Ephemeral")
        ]
    );
    let attachment = json!({"metadata": metadata("csi-1"), "spec": {"attacher": "csi.example", "nodeName": "n1",
        "source": {"persistentVolumeName": "pv-1"}}, "status": {"attached": true}});
    assert_eq!(
        cells("storage.k8s.io", "volumeattachments", &attachment)[1..5],
        [json!("csi.example"), json!("pv-1"), json!("n1"), json!(true)]
    );
    let node = json!({"metadata": metadata("n1"), "spec": {"drivers": [{"name": "a"}, {"name": "b"}]}});
    assert_eq!(cells("storage.k8s.io", "csinodes", &node)[1], json!(2));
    let capacity = json!({"metadata": {"name": "cap", "creationTimestamp": "2024-05-01T10:00:00+02:00"}});
    assert_eq!(names("storage.k8s.io", "csistoragecapacities"), ["Name", "Created At"]);
    assert_eq!(cells("storage.k8s.io", "csistoragecapacities", &capacity)[1], json!("2024-05-01T08:00:00Z"));
}

#[test]
fn rbac_kinds() {
    let rbac = "rbac.authorization.k8s.io";
    assert_eq!(names(rbac, "roles"), ["Name", "Created At"]);
    assert_eq!(names(rbac, "rolebindings"), ["Name", "Role", "Age", "[Users]", "[Groups]", "[ServiceAccounts]"]);
    let binding = json!({"metadata": metadata("readers"), "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [
        {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}, {"kind": "Group", "name": "devs"},
        {"kind": "ServiceAccount", "namespace": "ci", "name": "runner"}]});
    assert_eq!(
        cells(rbac, "clusterrolebindings", &binding),
        [
            json!("readers"),
            json!("ClusterRole/view"),
            json!("3h"),
            json!("alice, bob"),
            json!("devs"),
            json!("ci/runner")
        ]
    );
    assert_eq!(names("apiextensions.k8s.io", "customresourcedefinitions"), ["Name", "Created At"]);
}

#[test]
fn cluster_machinery_kinds() {
    let lease = json!({"metadata": metadata("n1"), "spec": {"holderIdentity": "n1"}});
    assert_eq!(cells("coordination.k8s.io", "leases", &lease), [json!("n1"), json!("n1"), json!("3h")]);
    let runtime = json!({"metadata": metadata("wasi"), "handler": "wasi"});
    assert_eq!(cells("node.k8s.io", "runtimeclasses", &runtime)[1], json!("wasi"));
    let priority =
        json!({"metadata": metadata("high"), "value": 1000, "globalDefault": true, "preemptionPolicy": "Never"});
    assert_eq!(
        names("scheduling.k8s.io", "priorityclasses"),
        ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    );
    assert_eq!(
        cells("scheduling.k8s.io", "priorityclasses", &priority),
        [json!("high"), json!(1000), json!(true), json!("3h"), json!("Never")]
    );
    let local =
        json!({"metadata": metadata("v1.apps"), "status": {"conditions": [{"type": "Available", "status": "True"}]}});
    assert_eq!(cells("apiregistration.k8s.io", "apiservices", &local)[1..3], [json!("Local"), json!("True")]);
    let remote = json!({"metadata": metadata("v1beta1.metrics.k8s.io"), "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
        "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
    assert_eq!(
        cells("apiregistration.k8s.io", "apiservices", &remote)[1..3],
        [json!("kube-system/metrics-server"), json!("False (MissingEndpoints)")]
    );
    let schema = json!({"metadata": metadata("exempt"), "spec": {"priorityLevelConfiguration": {"name": "exempt"}, "matchingPrecedence": 1},
        "status": {"conditions": [{"type": "Dangling", "status": "False"}]}});
    assert_eq!(
        cells("flowcontrol.apiserver.k8s.io", "flowschemas", &schema)[1..4],
        [json!("exempt"), json!(1), json!("<none>")]
    );
    assert_eq!(cells("flowcontrol.apiserver.k8s.io", "flowschemas", &schema)[5], json!("False"));
    let level = json!({"metadata": metadata("workload-low"), "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 100,
        "limitResponse": {"type": "Queue", "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}});
    assert_eq!(
        cells("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", &level)[1..6],
        [json!("Limited"), json!(100), json!(128), json!(6), json!(50)]
    );
    let exempt = json!({"metadata": metadata("exempt"), "spec": {"type": "Exempt"}});
    assert_eq!(cells("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", &exempt)[2], json!("<none>"));
}

#[test]
fn admission_and_certificate_kinds() {
    let admission = "admissionregistration.k8s.io";
    let hooks = json!({"metadata": metadata("policy"), "webhooks": [{"name": "a"}, {"name": "b"}]});
    assert_eq!(cells(admission, "mutatingwebhookconfigurations", &hooks)[1], json!(2));
    let policy = json!({"metadata": metadata("replicas"), "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "validations": [{"expression": "true"}]}});
    assert_eq!(cells(admission, "validatingadmissionpolicies", &policy)[1..3], [json!(1), json!("v1/ConfigMap")]);
    let named = json!({"metadata": metadata("b"), "spec": {"policyName": "replicas", "paramRef": {"name": "limits"}}});
    assert_eq!(
        cells(admission, "validatingadmissionpolicybindings", &named)[1..3],
        [json!("replicas"), json!("*/limits")]
    );
    let selected = json!({"metadata": metadata("b"), "spec": {"policyName": "replicas", "paramRef": {"selector": {"matchLabels": {"env": "prod"}}}}});
    assert_eq!(
        cells(admission, "validatingadmissionpolicybindings", &selected)[2],
        json!(
            "&LabelSelector{MatchLabels:map[string]string{env: prod,},MatchExpressions:[]LabelSelectorRequirement{},}"
        )
    );
    assert_eq!(
        names("certificates.k8s.io", "certificatesigningrequests"),
        ["Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"]
    );
    let approved = json!({"metadata": metadata("node-csr"), "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
        "username": "system:node:n1", "expirationSeconds": 86400}, "status": {"certificate": "LS0t", "conditions": [{"type": "Approved", "status": "True"}]}});
    assert_eq!(
        cells("certificates.k8s.io", "certificatesigningrequests", &approved)[2..6],
        [
            json!("kubernetes.io/kube-apiserver-client-kubelet"),
            json!("system:node:n1"),
            json!("24h"),
            json!("Approved,Issued")
        ]
    );
    let pending = json!({"metadata": metadata("new"), "spec": {"username": "alice"}});
    assert_eq!(
        cells("certificates.k8s.io", "certificatesigningrequests", &pending)[4..6],
        [json!("<none>"), json!("Pending")]
    );
}

#[test]
fn unknown_kinds_have_no_columns_here() {
    assert!(columns("example.com", "widgets").is_none());
    assert!(columns("", "pods").is_none());
}
