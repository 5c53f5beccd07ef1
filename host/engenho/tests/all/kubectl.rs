//! Goal: the installed kubectl works against `engenho up` unchanged.
//! Method: start a real node, drive it with the real kubectl (own HOME each),
//! and check what kubectl prints, as a user would.

use std::time::Duration;

use crate::support::{EngenhoNode, Kubectl, wait_for};

/// Leaves out the namespace's CA bundle (`kube-root-ca.crt`), which the
/// service-account controller keeps in every namespace.
const NOT_CA_BUNDLE: &str = "metadata.name!=kube-root-ca.crt";

const CONFIGMAP: &str = r#"{
  "apiVersion": "v1",
  "kind": "ConfigMap",
  "metadata": {"name": "settings", "labels": {"app": "web"}},
  "data": {"colour": "blue", "size": "3"}
}"#;

#[test]
fn discovery_version_and_default_namespaces() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-discovery");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    let version = kubectl.ok(&["version"]);
    assert!(version.contains("Server Version: v1.32."), "{version}");

    let namespaces = kubectl.ok(&["get", "namespaces"]);
    let names: Vec<&str> = namespaces.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, ["default", "kube-node-lease", "kube-public", "kube-system"], "{namespaces}");
    assert!(namespaces.lines().next().is_some_and(|h| h.split_whitespace().eq(["NAME", "STATUS", "AGE"])));
    assert!(namespaces.contains("Active"));

    let resources = kubectl.ok(&["api-resources"]);
    for expected in ["pods", "deployments", "customresourcedefinitions", "leases", "clusterroles"] {
        assert!(resources.lines().any(|l| l.starts_with(expected)), "{expected} missing:\n{resources}");
    }
    let versions = kubectl.ok(&["api-versions"]);
    for expected in ["v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1"] {
        assert!(versions.lines().any(|l| l == expected), "{expected} missing:\n{versions}");
    }
    node.stop();
}

#[test]
fn create_get_and_delete_through_kubectl() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-crud");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    // Only the namespace's CA bundle, which its controller keeps.
    assert!(kubectl.ok(&["get", "configmaps", "--field-selector", NOT_CA_BUNDLE]).is_empty());
    let created = kubectl.ok_with(&["create", "--validate=false", "-f", "-"], Some(CONFIGMAP));
    assert_eq!(created.trim(), "configmap/settings created");
    let again = kubectl.fails(&["create", "--validate=false", "-f", "-"], Some(CONFIGMAP));
    assert!(again.contains("Error from server (AlreadyExists)"), "{again}");
    assert!(again.contains("configmaps \"settings\" already exists"), "{again}");

    let table = kubectl.ok(&["get", "configmaps", "--field-selector", NOT_CA_BUNDLE]);
    assert!(table.lines().next().is_some_and(|h| h.split_whitespace().eq(["NAME", "DATA", "AGE"])), "{table}");
    assert!(table.lines().nth(1).is_some_and(|row| row.split_whitespace().take(2).eq(["settings", "2"])), "{table}");

    let json: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "configmap", "settings", "-o", "json"])).expect("json");
    assert_eq!(json["data"]["colour"], "blue");
    assert_eq!(json["metadata"]["namespace"], "default");
    assert_eq!(json["metadata"]["uid"].as_str().map(str::len), Some(36));
    assert!(json["metadata"]["resourceVersion"].as_str().is_some_and(|rv| rv.parse::<i64>().is_ok()));
    assert!(json["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    let labels = kubectl.ok(&["get", "cm", "-A", "--show-labels"]);
    assert!(labels.contains("default") && labels.contains("app=web"), "{labels}");
    assert_eq!(
        kubectl.ok(&["get", "cm", "--field-selector", NOT_CA_BUNDLE, "-o", "name"]).trim(),
        "configmap/settings"
    );

    let missing = kubectl.fails(&["get", "configmap", "nope"], None);
    assert!(missing.contains("Error from server (NotFound): configmaps \"nope\" not found"), "{missing}");
    let no_namespace = kubectl.fails(&["create", "--validate=false", "-n", "nowhere", "-f", "-"], Some(CONFIGMAP));
    assert!(no_namespace.contains("namespaces \"nowhere\" not found"), "{no_namespace}");
    let bad_name = CONFIGMAP.replace("\"settings\"", "\"Not_Valid\"");
    let invalid = kubectl.fails(&["create", "--validate=false", "-f", "-"], Some(&bad_name));
    assert!(invalid.contains("is invalid") && invalid.contains("metadata.name"), "{invalid}");

    assert_eq!(kubectl.ok(&["delete", "configmap", "settings"]).trim(), "configmap \"settings\" deleted");
    let gone = kubectl.fails(&["get", "configmap", "settings"], None);
    assert!(gone.contains("NotFound"), "{gone}");
    node.stop();
}

/// Goal: a `List` file (as `kubectl get -o json` writes one) applies with
/// kubectl's default validation: each item is created, and an item with a
/// field its kind does not have is refused by the server's strict field
/// validation. Method: a real node; `kubectl apply -f` of two List files.
#[test]
fn list_files_apply_with_strict_validation() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-lists");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}, "data": {"b": "2"}}]}"#;
    let applied = kubectl.ok_with(&["apply", "-f", "-"], Some(list));
    assert_eq!(applied.lines().collect::<Vec<_>>(), ["configmap/first created", "configmap/second created"]);
    let exported = kubectl.ok(&["get", "configmaps", "first", "second", "-o", "json"]);
    let unchanged = kubectl.ok_with(&["apply", "-f", "-"], Some(&exported));
    assert!(unchanged.contains("configmap/first") && unchanged.contains("configmap/second"), "{unchanged}");
    let typo = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "third"}, "dataa": {"c": "3"}}]}"#;
    let refused = kubectl.fails(&["apply", "-f", "-"], Some(typo));
    assert!(refused.contains("unknown field \"dataa\""), "{refused}");
    node.stop();
}

#[test]
fn tokens_are_required_and_everything_survives_a_restart() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-restart");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["create", "--validate=false", "-f", "-"], Some(CONFIGMAP));
    let unauthorized = kubectl.fails(&["--token=wrong", "get", "namespaces"], None);
    assert!(unauthorized.contains("Unauthorized"), "{unauthorized}");
    let kubeconfig = std::fs::read_to_string(node.dir.join("kubeconfig")).expect("kubeconfig");

    node.stop();
    node.start_ready(&[]);
    assert_eq!(std::fs::read_to_string(node.dir.join("kubeconfig")).expect("kubeconfig"), kubeconfig);
    let after = Kubectl::for_node(&node);
    assert!(after.ok(&["get", "configmap", "settings"]).contains("settings"));
    assert_eq!(after.ok(&["get", "namespaces", "-o", "name"]).lines().count(), 4);
    node.stop();
}

fn configmap(name: &str, labels: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "{name}", "labels": {labels}}}, "data": {{"a": "1"}}}}"#
    )
}

#[test]
fn labels_patches_selectors_and_paging() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-patch");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    for (name, labels) in [("one", r#"{"tier": "front"}"#), ("two", r#"{"tier": "back"}"#), ("three", "{}")] {
        kubectl.ok_with(&["create", "--validate=false", "-f", "-"], Some(&configmap(name, labels)));
    }

    assert_eq!(kubectl.ok(&["label", "cm", "three", "tier=front"]).trim(), "configmap/three labeled");
    assert_eq!(kubectl.ok(&["annotate", "cm", "three", "note=hi"]).trim(), "configmap/three annotated");
    let front = kubectl.ok(&["get", "cm", "-l", "tier=front", "-o", "name"]);
    assert_eq!(front.lines().collect::<Vec<_>>(), ["configmap/one", "configmap/three"]);
    let not_front =
        kubectl.ok(&["get", "cm", "-l", "tier notin (front)", "--field-selector", NOT_CA_BUNDLE, "-o", "name"]);
    assert_eq!(not_front.trim(), "configmap/two");
    let by_name =
        kubectl.ok(&["get", "cm", "--field-selector", &format!("metadata.name!=one,{NOT_CA_BUNDLE}"), "-o", "name"]);
    assert_eq!(by_name.lines().collect::<Vec<_>>(), ["configmap/three", "configmap/two"]);
    let unsupported = kubectl.fails(&["get", "cm", "--field-selector", "data.a=1"], None);
    assert!(unsupported.contains("field label not supported: data.a"), "{unsupported}");

    kubectl.ok(&["patch", "cm", "one", "--type=json", "-p", r#"[{"op": "add", "path": "/data/b", "value": "2"}]"#]);
    kubectl.ok(&["patch", "cm", "one", "--type=merge", "-p", r#"{"data": {"a": null}}"#]);
    kubectl.ok(&["patch", "cm", "one", "-p", r#"{"data": {"c": "3"}}"#]);
    assert_eq!(kubectl.ok(&["get", "cm", "one", "-o", "jsonpath={.data}"]), r#"{"b":"2","c":"3"}"#);
    let failing =
        kubectl.fails(&["patch", "cm", "one", "--type=json", "-p", r#"[{"op": "remove", "path": "/nope"}]"#], None);
    assert!(failing.contains("is invalid"), "{failing}");

    let stale = kubectl.ok(&["get", "cm", "two", "-o", "json"]);
    kubectl.ok(&["label", "cm", "two", "bumped=yes"]);
    let conflict = kubectl.fails(&["replace", "--validate=false", "-f", "-"], Some(&stale));
    assert!(conflict.contains("Error from server (Conflict)"), "{conflict}");
    assert!(conflict.contains("the object has been modified"), "{conflict}");

    let paged = kubectl.ok(&["get", "cm", "--chunk-size=1", "-o", "name", "-v=6"]);
    let ours = |l: &&str| l.starts_with("configmap/") && *l != "configmap/kube-root-ca.crt";
    assert_eq!(paged.lines().filter(ours).count(), 3, "{paged}");
    let logged = kubectl.run(&["get", "cm", "--chunk-size=1", "-v=6"], None);
    let requests = String::from_utf8_lossy(&logged.stderr);
    let listed = paged.lines().filter(|l| l.starts_with("configmap/")).count();
    assert_eq!(requests.matches("continue=").count(), listed - 1, "one page per ConfigMap: {requests}");
    node.stop();
}

#[test]
fn watch_streams_changes_to_kubectl() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-watch");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["create", "--validate=false", "-f", "-"], Some(&configmap("first", "{}")));

    let mut watch = kubectl.spawn(&["get", "cm", "-w", "--field-selector", NOT_CA_BUNDLE, "-o", "name"]);
    crate::support::wait_for("the watch to list the first object", std::time::Duration::from_secs(10), || {
        watch.output().contains("configmap/first")
    });
    kubectl.ok_with(&["create", "--validate=false", "-f", "-"], Some(&configmap("second", "{}")));
    kubectl.ok(&["label", "cm", "first", "seen=yes"]);
    kubectl.ok(&["delete", "cm", "second"]);
    crate::support::wait_for("three more events", std::time::Duration::from_secs(10), || {
        watch.output().lines().count() >= 4
    });
    let lines: Vec<String> = watch.output().lines().map(str::to_owned).collect();
    // The list, then ADDED second, MODIFIED first, DELETED second.
    assert_eq!(lines, ["configmap/first", "configmap/second", "configmap/first", "configmap/second"]);

    let mut by_name = kubectl.spawn(&["get", "cm", "first", "-w", "-o", "jsonpath={.metadata.labels.seen}{\"\\n\"}"]);
    crate::support::wait_for("the synthetic ADDED", std::time::Duration::from_secs(10), || {
        by_name.output().contains("yes")
    });
    drop(watch);
    drop(by_name);
    node.stop();
}

const DEPLOYMENT_YAML: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports:
        - containerPort: 80
";

#[test]
fn apply_diff_and_explain_use_the_openapi_documents() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-apply");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    let apply = |manifest: &str| kubectl.ok_with(&["apply", "-f", "-"], Some(manifest));
    assert_eq!(apply(DEPLOYMENT_YAML).trim(), "deployment.apps/web created");
    assert_eq!(apply(DEPLOYMENT_YAML).trim(), "deployment.apps/web unchanged");
    let changed = DEPLOYMENT_YAML.replace("nginx:1.27", "nginx:1.28");
    let dry = kubectl.ok_with(&["apply", "--dry-run=server", "-f", "-"], Some(&changed));
    assert_eq!(dry.trim(), "deployment.apps/web configured (server dry run)");
    assert_eq!(
        kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]),
        "nginx:1.27"
    );

    let diff = kubectl.run(&["diff", "-f", "-"], Some(&changed));
    assert_eq!(diff.status.code(), Some(1), "{}", String::from_utf8_lossy(&diff.stderr));
    let shown = String::from_utf8_lossy(&diff.stdout);
    let removed = shown.lines().any(|l| l.starts_with('-') && l.ends_with("image: nginx:1.27"));
    let added = shown.lines().any(|l| l.starts_with('+') && l.ends_with("image: nginx:1.28"));
    assert!(removed && added, "{shown}");
    assert!(!shown.contains("resourceVersion"), "dry-run keeps the resource version: {shown}");
    let generation = kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.generation}"]);
    assert_eq!(generation, "1", "diff changed nothing");

    assert_eq!(apply(&changed).trim(), "deployment.apps/web configured");
    let deployment: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "deploy", "web", "-o", "json"])).expect("json");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.28");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
    assert_eq!(deployment["metadata"]["generation"], 2);
    let table = kubectl.ok(&["get", "deployments"]);
    assert!(
        table.lines().next().is_some_and(|h| h.split_whitespace().eq([
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE"
        ])),
        "{table}"
    );

    let created = kubectl.ok_with(&["create", "-f", "-"], Some(&DEPLOYMENT_YAML.replace("name: web\n", "name: api\n")));
    assert_eq!(created.trim(), "deployment.apps/api created");
    let invalid = kubectl.fails(&["apply", "-f", "-"], Some(&DEPLOYMENT_YAML.replace("replicas: 2", "replicas: many")));
    assert!(invalid.contains("is invalid: spec.replicas: Invalid value"), "{invalid}");

    let explained = kubectl.ok(&["explain", "pod"]);
    assert!(
        explained.contains("KIND:       Pod") && explained.contains("Pod is a collection of containers"),
        "{explained}"
    );
    let containers = kubectl.ok(&["explain", "pod.spec.containers"]);
    assert!(containers.contains("FIELD: containers <[]Container>"), "{containers}");
    assert!(containers.contains("image"), "{containers}");
    node.stop();
}

#[test]
fn scale_finalizers_and_graceful_deletion() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-delete");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["apply", "-f", "-"], Some(DEPLOYMENT_YAML));

    assert_eq!(kubectl.ok(&["scale", "deployment", "web", "--replicas=5"]).trim(), "deployment.apps/web scaled");
    assert_eq!(kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "5");
    let stale = kubectl.fails(&["scale", "deployment", "web", "--replicas=1", "--resource-version=1"], None);
    assert!(stale.contains("Expected resource version to be 1"), "{stale}");
    let scale: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale"]))
            .expect("json");
    assert_eq!((scale["kind"].as_str(), scale["status"]["selector"].as_str()), (Some("Scale"), Some("app=web")));

    let held = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(held));
    kubectl.ok(&["delete", "cm", "held", "--wait=false"]);
    let marked = kubectl.ok(&["get", "cm", "held", "-o", "jsonpath={.metadata.deletionTimestamp}"]);
    assert!(marked.ends_with('Z'), "marked for deletion, kept for its finalizer: {marked:?}");
    kubectl.ok(&["patch", "cm", "held", "--type=json", "-p", r#"[{"op": "remove", "path": "/metadata/finalizers"}]"#]);
    assert!(kubectl.fails(&["get", "cm", "held"], None).contains("NotFound"), "the last finalizer's removal deletes");

    let dry_run = "/apis/apps/v1/namespaces/default/deployments/web?dryRun=All&propagationPolicy=Foreground";
    let marked = kubectl.ok(&["delete", "--raw", dry_run]);
    assert!(marked.contains(r#""foregroundDeletion""#), "held for its dependents: {marked}");
    kubectl.ok(&["delete", "deployment", "web", "--cascade=foreground", "--timeout=30s"]);
    assert!(kubectl.fails(&["get", "deploy", "web"], None).contains("NotFound"), "no dependents: it goes");

    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound"},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 12, "containers": [{"name": "a", "image": "busybox"}]}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(pod));
    kubectl.ok(&["delete", "pod", "bound", "--wait=false"]);
    assert_eq!(kubectl.ok(&["get", "pod", "bound", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds}"]), "12");
    kubectl.ok(&["delete", "pod", "bound", "--grace-period=0", "--force"]);
    assert!(kubectl.fails(&["get", "pod", "bound"], None).contains("NotFound"));
    let unbound = pod.replace("\"nodeName\": \"n1\", ", "").replace("bound", "free");
    kubectl.ok_with(&["apply", "-f", "-"], Some(&unbound));
    assert_eq!(kubectl.ok(&["delete", "pod", "free"]).trim(), "pod \"free\" deleted");
    node.stop();
}

#[test]
fn server_side_apply_tracks_managers_and_conflicts() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-ssa");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let server_side = |manager: &str, manifest: &str, force: bool| {
        let mut args = vec!["apply", "--server-side", "--field-manager", manager, "-f", "-"];
        if force {
            args.push("--force-conflicts");
        }
        kubectl.run(&args, Some(manifest))
    };

    let created = server_side("alice", DEPLOYMENT_YAML, false);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert_eq!(String::from_utf8_lossy(&created.stdout).trim(), "deployment.apps/web serverside-applied");
    let same = server_side("bob", DEPLOYMENT_YAML, false);
    assert!(same.status.success(), "equal values are shared, not conflicts");

    let scaled = DEPLOYMENT_YAML.replace("replicas: 2", "replicas: 4");
    let conflict = server_side("bob", &scaled, false);
    assert!(!conflict.status.success());
    let message = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        message.contains("Apply failed with 1 conflict: conflict with \"alice\" using apps/v1: .spec.replicas"),
        "{message}"
    );
    assert_eq!(kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "2");

    let forced = server_side("bob", &scaled, true);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert_eq!(kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "4");
    let managers = kubectl.ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation} {end}",
    ]);
    // The deployment controller's revision annotation is its own update.
    let appliers: Vec<&str> = managers.split_whitespace().filter(|m| *m != "deployment-controller/Update").collect();
    assert_eq!(appliers, ["alice/Apply", "bob/Apply"]);

    let unlabeled = scaled.replacen("  labels: {app: web}\n", "", 1);
    for manager in ["alice", "bob"] {
        let applied = server_side(manager, &unlabeled, false);
        assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    }
    let labels = kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"]);
    assert!(labels.is_empty(), "labels no manager applies any more are removed: {labels}");
    let all = kubectl.ok(&["get", "deploy", "web", "-o", "json"]);
    assert!(!all.contains("\"labels\": {}"), "no empty map is left behind: {all}");
    node.stop();
}

#[test]
fn kubectl_create_sends_protobuf_and_auth_can_i_answers() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-protobuf");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    assert_eq!(kubectl.ok(&["create", "namespace", "team"]).trim(), "namespace/team created");
    let created = [
        (vec!["create", "configmap", "settings", "--from-literal=colour=blue"], "configmap/settings created"),
        (vec!["create", "secret", "generic", "password", "--from-literal=pw=s3cret"], "secret/password created"),
        (vec!["create", "serviceaccount", "robot"], "serviceaccount/robot created"),
        (
            vec!["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=80"],
            "deployment.apps/web created",
        ),
        (vec!["create", "deployment", "idle", "--image=nginx:1.27", "--replicas=0"], "deployment.apps/idle created"),
        (vec!["create", "service", "clusterip", "web", "--tcp=80:8080"], "service/web created"),
        (vec!["create", "job", "once", "--image=busybox", "--", "echo", "hi"], "job.batch/once created"),
        (
            vec!["create", "cronjob", "often", "--image=busybox", "--schedule=*/5 * * * *"],
            "cronjob.batch/often created",
        ),
    ];
    for (args, expected) in created {
        let mut args = args;
        args.splice(1..1, ["-n", "team"]);
        assert_eq!(kubectl.ok(&args).trim(), expected, "{args:?}");
    }
    let get = |what: &str, path: &str| kubectl.ok(&["get", what, "-n", "team", "-o", &format!("jsonpath={path}")]);
    assert_eq!(get("cm/settings", "{.data.colour}"), "blue");
    assert_eq!(get("secret/password", "{.data.pw}"), "czNjcmV0");
    assert_eq!(get("deploy/web", "{.spec.replicas} {.spec.template.spec.containers[0].image}"), "3 nginx:1.27");
    assert_eq!(get("deploy/web", "{.spec.template.spec.containers[0].ports[0].containerPort}"), "80");
    assert_eq!(get("deploy/idle", "{.spec.replicas}"), "0", "an explicit zero survives");
    assert_eq!(get("svc/web", "{.spec.ports[0].port}:{.spec.ports[0].targetPort} {.spec.type}"), "80:8080 ClusterIP");
    assert_eq!(get("job/once", "{.spec.template.spec.containers[0].command}"), r#"["echo","hi"]"#);
    assert_eq!(get("cronjob/often", "{.spec.schedule}"), "*/5 * * * *");
    let spec = kubectl.ok(&["get", "deploy", "web", "-n", "team", "-o", "json"]);
    assert!(!spec.contains("hostPID") && !spec.contains("\"paused\""), "zero values stay out: {spec}");

    assert_eq!(kubectl.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert_eq!(kubectl.ok(&["auth", "can-i", "delete", "nodes", "-A"]).trim(), "yes");
    node.stop();
}

#[test]
fn bad_input_gets_a_status_and_stores_nothing() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-bad-input");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let post = |body: &str| {
        kubectl.fails(&["create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", "-"], Some(body))
    };

    let typo = DEPLOYMENT_YAML.replace("replicas: 2", "replicass: 2");
    let strict = kubectl.fails(&["apply", "-f", "-"], Some(&typo));
    assert!(strict.contains("Error from server (BadRequest)"), "{strict}");
    assert!(strict.contains("strict decoding error: unknown field \"spec.replicass\""), "{strict}");
    let warned = kubectl.run(&["apply", "--validate=warn", "-f", "-"], Some(&typo));
    assert!(warned.status.success());
    assert!(String::from_utf8_lossy(&warned.stderr).contains("Warning: unknown field \"spec.replicass\""));
    kubectl.ok(&["delete", "deployment", "web"]);

    let big = format!(
        r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "big"}}, "data": {{"a": "{}"}}}}"#,
        "a".repeat(3 * 1024 * 1024)
    );
    let too_large = post(&big);
    assert!(too_large.contains("RequestEntityTooLarge") || too_large.contains("too large"), "{too_large}");
    let malformed = post(r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x""#);
    assert!(malformed.contains("could not be decoded as JSON"), "{malformed}");
    let wrong_kind = post(r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}"#);
    assert!(wrong_kind.contains("do not match the endpoint's v1 ConfigMap"), "{wrong_kind}");
    let wrong_type = post(r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": 1}}"#);
    assert!(wrong_type.contains("is invalid: data.a: Invalid value"), "{wrong_type}");
    let bad_namespace = kubectl.fails(&["create", "namespace", "Not_Valid"], None);
    assert!(bad_namespace.contains("is invalid") && bad_namespace.contains("RFC 1123"), "{bad_namespace}");

    let stored = kubectl.ok(&["get", "configmaps,deployments", "--field-selector", NOT_CA_BUNDLE, "-o", "name"]);
    assert!(stored.trim().is_empty(), "nothing was stored: {stored}");
    node.stop();
}

#[test]
fn describe_edit_rollout_and_printing() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-describe");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["apply", "-f", "-"], Some(DEPLOYMENT_YAML));
    let worker = r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1",
        "labels": {"node-role.kubernetes.io/worker": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.0",
        "machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "k", "osImage": "o",
        "containerRuntimeVersion": "c", "kubeProxyVersion": "p", "operatingSystem": "linux", "architecture": "amd64"}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(worker));
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": "10.1.0.7"}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(pod));
    let uid = kubectl.ok(&["get", "pod", "p1", "-o", "jsonpath={.metadata.uid}"]);
    let event = format!(
        r#"{{"apiVersion": "v1", "kind": "Event", "metadata": {{"name": "p1.1"}}, "reason": "Scheduled",
        "message": "assigned to n1", "type": "Normal",
        "involvedObject": {{"kind": "Pod", "name": "p1", "namespace": "default", "uid": "{uid}"}}}}"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&event));

    let described = kubectl.ok(&["describe", "pod", "p1"]);
    assert!(described.contains("Node:") && described.contains("n1"), "{described}");
    assert!(described.contains("Scheduled") && described.contains("assigned to n1"), "events: {described}");
    let node_described = kubectl.ok(&["describe", "node", "n1"]);
    assert!(node_described.contains("default") && node_described.contains("p1"), "pods on the node: {node_described}");
    assert!(kubectl.ok(&["describe", "deployment", "web"]).contains("nginx:1.27"));

    let wide = kubectl.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.lines().next().is_some_and(|h| h.contains("IP") && h.contains("NODE")), "{wide}");
    assert!(wide.contains("10.1.0.7") && wide.contains("Running"), "{wide}");
    let nodes = kubectl.ok(&["get", "nodes"]);
    let row: Vec<&str> =
        nodes.lines().find(|l| l.starts_with("n1 ")).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    assert_eq!(row.len(), 5, "{nodes}");
    assert_eq!((row[0], row[1], row[2], row[4]), ("n1", "Ready", "worker", "v1.32.0"), "{nodes}");
    let columns = kubectl.ok(&["get", "pods", "-o", "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName"]);
    assert_eq!(columns.lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>()), Some(vec!["p1", "n1"]));
    assert!(kubectl.ok(&["get", "pods", "--sort-by=.metadata.name"]).contains("p1"));
    assert!(kubectl.ok(&["get", "pods", "-o", "yaml"]).contains("kind: List"));

    assert_eq!(kubectl.ok(&["rollout", "restart", "deployment/web"]).trim(), "deployment.apps/web restarted");
    let restarted = kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.metadata.annotations}"]);
    assert!(restarted.contains("kubectl.kubernetes.io/restartedAt"), "{restarted}");
    assert_eq!(
        kubectl.ok(&["set", "image", "deployment/web", "app=nginx:1.29"]).trim(),
        "deployment.apps/web image updated"
    );
    let edited = kubectl
        .command(&["edit", "deployment/web"])
        .env("EDITOR", "sed -i s/nginx:1.29/nginx:1.30/")
        .output()
        .expect("kubectl edit");
    assert!(edited.status.success(), "{}", String::from_utf8_lossy(&edited.stderr));
    assert_eq!(
        kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]),
        "nginx:1.30"
    );
    node.stop();
}

#[test]
fn binding_eviction_drain_and_logs() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-pods");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let worker = r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(worker));
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "a", "image": "busybox"}]}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(pod));

    let unscheduled = kubectl.fails(&["logs", "p1"], None);
    assert!(unscheduled.contains("not scheduled"), "{unscheduled}");
    let bind = |node: &str| {
        let binding = format!(
            r#"{{"apiVersion": "v1", "kind": "Binding", "metadata": {{"name": "p1"}}, "target": {{"kind": "Node", "name": "{node}"}}}}"#
        );
        kubectl.run(&["create", "--raw", "/api/v1/namespaces/default/pods/p1/binding", "-f", "-"], Some(&binding))
    };
    assert!(bind("n1").status.success());
    assert_eq!(kubectl.ok(&["get", "pod", "p1", "-o", "jsonpath={.spec.nodeName}"]), "n1");
    let again = bind("n2");
    assert!(String::from_utf8_lossy(&again.stderr).contains("pod p1 is already assigned to node \"n1\""));
    // n1 is a Node object only: no member of the cluster keeps its logs.
    let no_agent = kubectl.fails(&["logs", "p1"], None);
    assert!(no_agent.contains("ServiceUnavailable") && no_agent.contains("not a member of the cluster"), "{no_agent}");

    let drained = kubectl.ok(&["drain", "n1", "--force", "--grace-period=0", "--timeout=30s"]);
    assert!(drained.contains("pod/p1 evicted") && drained.contains("node/n1 drained"), "{drained}");
    assert_eq!(kubectl.ok(&["get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}"]), "true");
    assert!(kubectl.fails(&["get", "pod", "p1"], None).contains("NotFound"));
    node.stop();
}

#[test]
fn rbac_service_account_tokens_and_truthful_can_i() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-rbac");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let whoami =
        kubectl.ok(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
    assert_eq!(whoami, r#"admin ["system:masters","system:authenticated"]"#);
    let defaults = kubectl.ok(&["get", "clusterroles", "-o", "name"]);
    for role in ["cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user"] {
        assert!(defaults.contains(&format!("clusterrole.rbac.authorization.k8s.io/{role}\n")), "{defaults}");
    }

    kubectl.ok(&["create", "serviceaccount", "reader"]);
    kubectl.ok(&["create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods"]);
    kubectl.ok(&["create", "rolebinding", "reader", "--role=pod-reader", "--serviceaccount=default:reader"]);
    let reader = "--as=system:serviceaccount:default:reader";
    assert_eq!(kubectl.ok(&["auth", "can-i", "list", "pods", reader]).trim(), "yes");
    assert_eq!(kubectl.fails_with_stdout(&["auth", "can-i", "delete", "pods", reader]).trim(), "no");
    assert_eq!(kubectl.fails_with_stdout(&["auth", "can-i", "list", "pods", "-n", "kube-system", reader]).trim(), "no");
    assert_eq!(kubectl.fails_with_stdout(&["auth", "can-i", "list", "secrets", reader]).trim(), "no");

    let token = kubectl.ok(&["create", "token", "reader", "--duration=20m"]);
    let token = format!("--token={}", token.trim());
    kubectl.ok(&["run", "p1", "--image=busybox"]);
    assert_eq!(kubectl.ok(&[&token, "get", "pods", "-o", "name"]).trim(), "pod/p1");
    assert_eq!(
        kubectl.ok(&[&token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]),
        "system:serviceaccount:default:reader"
    );
    let denied = kubectl.fails(&[&token, "delete", "pod", "p1"], None);
    assert!(
        denied.contains(
            "Error from server (Forbidden): pods \"p1\" is forbidden: User \"system:serviceaccount:default:reader\" \
             cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{denied}"
    );
    let other_namespace = kubectl.fails(&[&token, "get", "configmaps", "-n", "kube-system"], None);
    assert!(other_namespace.contains("cannot list resource \"configmaps\""), "{other_namespace}");
    let rules = kubectl.ok(&[&token, "auth", "can-i", "--list"]);
    assert!(rules.lines().any(|l| l.starts_with("pods ") && l.contains("[get list watch]")), "{rules}");
    let escalate = kubectl.fails(&[&token, "get", "pods", "--as=admin"], None);
    assert!(escalate.contains("cannot impersonate resource \"users\""), "{escalate}");

    kubectl.ok(&["create", "role", "role-admin", "--verb=create,update,patch", "--resource=roles,rolebindings"]);
    kubectl.ok(&["create", "rolebinding", "role-admin", "--role=role-admin", "--serviceaccount=default:reader"]);
    kubectl.ok(&[&token, "create", "role", "pod-getter", "--verb=get", "--resource=pods"]);
    kubectl.ok(&[&token, "create", "rolebinding", "pod-getter", "--role=pod-getter", "--user=jane"]);
    let escalation =
        kubectl.fails(&[&token, "create", "role", "pod-deleter", "--verb=delete", "--resource=pods"], None);
    assert!(
        escalation.contains("is attempting to grant RBAC permissions not currently held: {delete pods in \"\"}"),
        "{escalation}"
    );
    let binding =
        kubectl.fails(&[&token, "create", "rolebinding", "root", "--clusterrole=cluster-admin", "--user=jane"], None);
    assert!(binding.contains("not currently held"), "{binding}");

    kubectl.ok(&[
        "create",
        "clusterrolebinding",
        "reader-view",
        "--clusterrole=view",
        "--serviceaccount=default:reader",
    ]);
    kubectl.ok(&["create", "deployment", "web", "--image=nginx", "-n", "kube-system"]);
    assert_eq!(kubectl.ok(&[&token, "get", "deployments", "-A", "-o", "name"]).trim(), "deployment.apps/web");

    let garbage = kubectl.fails(&["--token=not-a-token", "get", "pods"], None);
    assert!(garbage.contains("Unauthorized"), "{garbage}");

    node.stop();
    node.start_ready(&[]);
    assert_eq!(kubectl.ok(&[&token, "get", "pods", "-o", "name"]).trim(), "pod/p1", "the signing key survives");
    kubectl.ok(&["delete", "serviceaccount", "reader"]);
    let orphaned = kubectl.fails(&[&token, "get", "pods"], None);
    assert!(orphaned.contains("Unauthorized"), "a token dies with its account: {orphaned}");
    node.stop();
}

#[test]
fn owners_take_their_dependents_and_namespaces_their_contents() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-gc");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let owned = |owner: &str, dependent: &str| {
        kubectl.ok(&["create", "configmap", owner]);
        let uid = kubectl.ok(&["get", "configmap", owner, "-o", "jsonpath={.metadata.uid}"]);
        let dependent = format!(
            r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "{dependent}", "ownerReferences":
            [{{"apiVersion": "v1", "kind": "ConfigMap", "name": "{owner}", "uid": "{uid}", "blockOwnerDeletion": true}}]}}}}"#
        );
        kubectl.ok_with(&["apply", "-f", "-"], Some(&dependent));
    };
    let gone = |what: &str| !kubectl.run(&["get", "configmap", what], None).status.success();

    owned("background", "background-child");
    kubectl.ok(&["delete", "configmap", "background"]);
    wait_for("the background dependent to go", Duration::from_secs(20), || gone("background-child"));

    owned("foreground", "foreground-child");
    kubectl.ok(&["delete", "configmap", "foreground", "--cascade=foreground", "--timeout=30s"]);
    assert!(gone("foreground") && gone("foreground-child"), "the owner waited for its blocking dependent");

    owned("orphaning", "orphan");
    kubectl.ok(&["delete", "configmap", "orphaning", "--cascade=orphan", "--timeout=30s"]);
    assert!(gone("orphaning"));
    assert_eq!(kubectl.ok(&["get", "configmap", "orphan", "-o", "jsonpath={.metadata.ownerReferences}"]), "");

    let dangling = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dangling", "ownerReferences":
        [{"apiVersion": "v1", "kind": "ConfigMap", "name": "nobody", "uid": "0b0d1e5-no-such-owner"}]}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(dangling));
    wait_for("a dependent of no owner to go", Duration::from_secs(20), || gone("dangling"));

    kubectl.ok(&["create", "namespace", "team"]);
    kubectl.ok(&["create", "deployment", "web", "--image=nginx", "-n", "team"]);
    let held = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "namespace": "team",
        "finalizers": ["example.com/hold"]}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(held));
    kubectl.ok(&["delete", "namespace", "team", "--wait=false"]);
    wait_for("the deployment to go with its namespace", Duration::from_secs(20), || {
        kubectl.ok(&["get", "deployments", "-n", "team", "-o", "name"]).is_empty()
    });
    assert_eq!(kubectl.ok(&["get", "namespace", "team", "-o", "jsonpath={.status.phase}"]), "Terminating");
    let refused = kubectl.fails(&["create", "configmap", "late", "-n", "team"], None);
    assert!(refused.contains("unable to create new content in namespace team because it is being terminated"));
    kubectl.ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "team",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/metadata/finalizers"}]"#,
    ]);
    wait_for("the emptied namespace to go", Duration::from_secs(20), || {
        !kubectl.run(&["get", "namespace", "team"], None).status.success()
    });

    let kept = kubectl.fails(&["delete", "namespace", "default"], None);
    assert!(kept.contains("this namespace may not be deleted"), "{kept}");
    node.stop();
}

const WIDGET_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {
    "group": "example.com",
    "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
    "versions": [{
      "name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}},
      "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {
          "size": {"type": "integer", "minimum": 1, "description": "How big the widget is."},
          "colour": {"type": "string"}}},
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}
    }]
  }
}"#;

#[test]
fn custom_resource_definitions_are_served_dynamically() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-crd");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["apply", "-f", "-"], Some(WIDGET_CRD));
    kubectl.ok(&["wait", "--for=condition=established", "crd/widgets.example.com", "--timeout=30s"]);
    let resources = kubectl.ok(&["api-resources", "--api-group=example.com"]);
    assert!(resources.contains("widgets") && resources.contains("wd") && resources.contains("Widget"), "{resources}");

    let widget = |name: &str, spec: &str| {
        format!(
            r#"{{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {{"name": "{name}"}}, "spec": {spec}}}"#
        )
    };
    let created = kubectl.ok_with(&["apply", "-f", "-"], Some(&widget("w1", r#"{"size": 3, "colour": "red"}"#)));
    assert_eq!(created.trim(), "widget.example.com/w1 created");
    let table = kubectl.ok(&["get", "wd"]);
    assert!(table.lines().next().is_some_and(|h| h.contains("SIZE")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("w1") && l.contains(" 3 ")), "{table}");
    let wrong_type = kubectl.fails(&["apply", "-f", "-"], Some(&widget("w2", r#"{"size": "three"}"#)));
    assert!(wrong_type.contains("is invalid") && wrong_type.contains("spec.size"), "{wrong_type}");
    let unknown = kubectl.fails(&["apply", "-f", "-"], Some(&widget("w2", r#"{"size": 2, "sise": 2}"#)));
    assert!(unknown.contains("unknown field \"spec.sise\""), "{unknown}");
    let ignored = widget("w3", r#"{"size": 2, "sise": 2}"#);
    kubectl.ok_with(&["apply", "--validate=false", "-f", "-"], Some(&ignored));
    assert_eq!(
        kubectl.ok(&["get", "wd", "w3", "-o", "jsonpath={.spec}"]),
        r#"{"size":2}"#,
        "unknown fields are pruned"
    );
    let explained = kubectl.ok(&["explain", "widget.spec.size"]);
    assert!(explained.contains("How big the widget is."), "{explained}");

    kubectl.ok(&["patch", "wd", "w1", "--type=merge", "-p", r#"{"spec": {"size": 5}}"#]);
    kubectl.ok(&["patch", "wd", "w1", "--subresource=status", "--type=merge", "-p", r#"{"status": {"ready": true}}"#]);
    assert_eq!(kubectl.ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.size} {.status.ready}"]), "5 true");

    kubectl.ok(&["delete", "crd", "widgets.example.com", "--timeout=30s"]);
    wait_for("the widgets to stop being served", Duration::from_secs(20), || {
        !kubectl.run(&["get", "--raw", "/apis/example.com/v1/widgets"], None).status.success()
    });
    kubectl.ok_with(&["apply", "-f", "-"], Some(WIDGET_CRD));
    kubectl.ok(&["wait", "--for=condition=established", "crd/widgets.example.com", "--timeout=30s"]);
    let listed = kubectl.ok(&["get", "--raw", "/apis/example.com/v1/widgets"]);
    assert!(listed.contains(r#""items":[]"#), "the widgets went with their definition: {listed}");
    node.stop();
}

/// A kind served at two versions; `storage` names the one objects are
/// stored at.
fn gadget_crd(storage: &str) -> String {
    let version = |name: &str| {
        format!(
            r#"{{"name": "{name}", "served": true, "storage": {}, "schema": {{"openAPIV3Schema": {{"type": "object",
               "properties": {{"spec": {{"type": "object", "properties": {{"size": {{"type": "integer"}}}}}}}}}}}}}}"#,
            name == storage
        )
    };
    format!(
        r#"{{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
             "metadata": {{"name": "gadgets.example.com"}},
             "spec": {{"group": "example.com", "scope": "Namespaced",
                       "names": {{"plural": "gadgets", "kind": "Gadget"}},
                       "versions": [{}, {}]}}}}"#,
        version("v1"),
        version("v1beta1")
    )
}

#[test]
fn custom_kinds_serve_every_version_from_one_storage_version() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "kube-crd-versions");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["apply", "-f", "-"], Some(&gadget_crd("v1")));
    kubectl.ok(&["wait", "--for=condition=established", "crd/gadgets.example.com", "--timeout=30s"]);
    let old =
        r#"{"apiVersion": "example.com/v1beta1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}}"#;
    assert_eq!(kubectl.ok_with(&["apply", "-f", "-"], Some(old)).trim(), "gadget.example.com/g1 created");

    let api_version = |path: &str| -> String {
        let object: serde_json::Value = serde_json::from_str(&kubectl.ok(&["get", "--raw", path])).expect("json");
        object["apiVersion"].as_str().expect("apiVersion").to_owned()
    };
    assert_eq!(api_version("/apis/example.com/v1/namespaces/default/gadgets/g1"), "example.com/v1");
    assert_eq!(api_version("/apis/example.com/v1beta1/namespaces/default/gadgets/g1"), "example.com/v1beta1");
    let listed = kubectl.ok(&["get", "--raw", "/apis/example.com/v1beta1/namespaces/default/gadgets"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed["items"][0]["apiVersion"], "example.com/v1beta1", "{listed}");
    let stored = node.local_value("/registry/example.com/gadgets/default/g1").expect("stored");
    assert!(stored.contains(r#""apiVersion":"example.com/v1""#), "stored at the storage version: {stored}");
    let stored_versions =
        || kubectl.ok(&["get", "crd", "gadgets.example.com", "-o", "jsonpath={.status.storedVersions}"]);
    assert_eq!(stored_versions(), r#"["v1"]"#);

    let before = kubectl.ok(&["get", "gadget", "g1", "-o", "jsonpath={.metadata.resourceVersion}"]);
    kubectl.ok(&["patch", "gadgets.v1.example.com", "g1", "--type=merge", "-p", r#"{"spec": {"size": 2}}"#]);
    let watched = kubectl.ok(&[
        "get",
        "--raw",
        &format!(
            "/apis/example.com/v1beta1/namespaces/default/gadgets?watch=1&resourceVersion={before}&timeoutSeconds=1"
        ),
    ]);
    let event: serde_json::Value = serde_json::from_str(watched.lines().next().expect("an event")).expect("json");
    assert_eq!((event["type"].as_str(), event["object"]["spec"]["size"].as_i64()), (Some("MODIFIED"), Some(2)));
    assert_eq!(event["object"]["apiVersion"], "example.com/v1beta1", "watched at the version asked: {event}");

    let two_storage = gadget_crd("v1").replace("gadget", "doodad").replace(r#""storage": false"#, r#""storage": true"#);
    let refused = kubectl.fails(&["create", "-f", "-"], Some(&two_storage));
    assert!(refused.contains("is invalid") && refused.contains("spec.versions"), "{refused}");

    kubectl.ok_with(&["apply", "-f", "-"], Some(&gadget_crd("v1beta1")));
    wait_for("v1beta1 to join the stored versions", Duration::from_secs(20), || {
        stored_versions() == r#"["v1","v1beta1"]"#
    });
    node.stop();
}
