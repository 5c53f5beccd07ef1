//! Goal: `kubectl get` prints kube-apiserver's columns for the built-in
//! kinds engenho serves: the header line and the cells of a row, with
//! `-o wide` adding the wide columns.
//! Method: start a real node, create one object of each kind with the real
//! kubectl, and read `kubectl get` (plain and wide) back as a user would,
//! comparing the header and the row word by word.

use k8s_openapi::chrono::{Duration as Span, SecondsFormat, Utc};

use crate::support::{EngenhoNode, Kubectl};

/// A time `hours` ago in RFC 3339, which kubectl shows as `<hours>h`.
fn hours_ago(hours: i64) -> String {
    (Utc::now() - Span::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, nodePort: 30080, protocol: TCP, name: http}
  - {port: 443, protocol: TCP, name: https}
---
apiVersion: v1
kind: Service
metadata: {name: edge}
spec:
  type: LoadBalancer
  selector: {app: edge}
  ports: [{port: 53, protocol: UDP}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  timeZone: Etc/UTC
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: backup, image: restic}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: idle}
spec:
  replicas: 0
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec: {containers: [{name: app, image: nginx}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store}
spec:
  replicas: 0
  serviceName: store
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec: {containers: [{name: db, image: postgres}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {disk: none}
      containers: [{name: agent, image: fluentbit}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: runner, namespace: ci}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder}
---
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  suspend: true
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: perl}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: lock}
spec: {holderIdentity: leader-1}
"#;

/// The words of the first line (the header) of `table`.
fn header(table: &str) -> Vec<&str> {
    table.lines().next().unwrap_or_default().split_whitespace().collect()
}

/// The words of the row that starts with `name`.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    let row = table.lines().skip(1).find(|l| l.split_whitespace().next() == Some(name));
    row.unwrap_or_else(|| panic!("no row {name} in:\n{table}")).split_whitespace().collect()
}

#[test]
fn kubectl_get_prints_kube_apiserver_columns() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "columns");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["create", "-f", "-"], Some(OBJECTS));

    let services = kubectl.ok(&["get", "services", "-o", "wide"]);
    assert_eq!(header(&services), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]);
    let web = row(&services, "web");
    assert_eq!((web[1], web[3], web[6]), ("NodePort", "<none>", "app=web"), "{services}");
    assert!(web[2].starts_with("10.43."), "an allocated cluster IP: {services}");
    // The second port's node port is allocated at random from the range.
    let node_port = |cell: &str| {
        cell.split_once(':')
            .and_then(|(_, rest)| rest.split_once('/'))
            .and_then(|(port, _)| port.parse::<u16>().ok())
            .is_some_and(|port| (30000..=32767).contains(&port))
    };
    let ports: Vec<&str> = web[4].split(',').collect();
    assert_eq!(ports[0], "80:30080/TCP", "{services}");
    assert!(ports[1].starts_with("443:") && ports[1].ends_with("/TCP") && node_port(ports[1]), "{services}");
    let edge = row(&services, "edge");
    assert_eq!((edge[1], edge[3], edge[6]), ("LoadBalancer", "<pending>", "app=edge"), "{services}");
    assert!(edge[4].starts_with("53:") && edge[4].ends_with("/UDP") && node_port(edge[4]), "{services}");

    let cron_jobs = kubectl.ok(&["get", "cronjobs"]);
    assert_eq!(header(&cron_jobs), ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]);
    assert_eq!(row(&cron_jobs, "nightly")[1..10], ["0", "3", "*", "*", "*", "Etc/UTC", "True", "0", "<none>"]);

    let jobs = kubectl.ok(&["get", "jobs"]);
    assert_eq!(header(&jobs), ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    let pi = row(&jobs, "pi");
    assert!(["Running", "Suspended"].contains(&pi[1]) && pi[2] == "0/2", "{jobs}");

    let replica_sets = kubectl.ok(&["get", "replicasets", "-o", "wide"]);
    let wide_header = ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"];
    assert_eq!(header(&replica_sets), wide_header);
    let idle = row(&replica_sets, "idle");
    assert_eq!(
        (idle[1], idle[2], idle[3], &idle[5..]),
        ("0", "0", "0", &["app", "nginx", "app=idle"][..]),
        "{replica_sets}"
    );

    let stateful_sets = kubectl.ok(&["get", "statefulsets"]);
    assert_eq!(header(&stateful_sets), ["NAME", "READY", "AGE"]);
    assert_eq!(row(&stateful_sets, "store")[1], "0/0");

    let daemon_sets = kubectl.ok(&["get", "daemonsets"]);
    let daemon_header = ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"];
    assert_eq!(header(&daemon_sets), daemon_header);
    assert_eq!(row(&daemon_sets, "agent")[6], "disk=none", "{daemon_sets}");

    let bindings = kubectl.ok(&["get", "rolebindings", "-o", "wide"]);
    assert_eq!(header(&bindings), ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]);
    let readers = row(&bindings, "readers");
    assert_eq!((readers[1], readers[3], readers[4]), ("ClusterRole/view", "alice", "ci/runner"), "{bindings}");

    let accounts = kubectl.ok(&["get", "serviceaccounts", "builder"]);
    assert_eq!(header(&accounts), ["NAME", "SECRETS", "AGE"]);
    assert_eq!(row(&accounts, "builder")[1], "0");

    let roles = kubectl.ok(&["get", "clusterroles", "view"]);
    assert_eq!(header(&roles), ["NAME", "CREATED", "AT"]);
    assert!(row(&roles, "view")[1].ends_with('Z'), "{roles}");

    let leases = kubectl.ok(&["get", "leases", "lock"]);
    assert_eq!(header(&leases), ["NAME", "HOLDER", "AGE"]);
    assert_eq!(row(&leases, "lock")[1], "leader-1");
    events_print_like_kube_apiserver(&kubectl);
    node.stop();
}

/// A core event reads `LAST SEEN`, `TYPE`, `REASON`, `OBJECT`, `MESSAGE`.
fn events_print_like_kube_apiserver(kubectl: &Kubectl) {
    let event = format!(
        r#"{{"apiVersion": "v1", "kind": "Event", "metadata": {{"name": "web.17a"}},
        "involvedObject": {{"kind": "Pod", "name": "web", "namespace": "default"}},
        "reason": "BackOff", "message": "Back-off restarting", "type": "Warning",
        "firstTimestamp": "{}", "lastTimestamp": "{}", "count": 4, "source": {{"component": "kubelet"}}}}"#,
        hours_ago(5),
        hours_ago(3)
    );
    kubectl.ok_with(&["create", "-f", "-"], Some(&event));
    let events = kubectl.ok(&["get", "events"]);
    assert_eq!(header(&events), ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    let row = events.lines().find(|l| l.contains("BackOff")).unwrap_or_else(|| panic!("no event in:\n{events}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["3h", "Warning", "BackOff", "pod/web", "Back-off", "restarting"]
    );
    let wide = kubectl.ok(&["get", "events", "-o", "wide"]);
    let wide_header = [
        "LAST",
        "SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "SUBOBJECT",
        "SOURCE",
        "MESSAGE",
        "FIRST",
        "SEEN",
        "COUNT",
        "NAME",
    ];
    assert_eq!(header(&wide), wide_header);
    let row = wide.lines().find(|l| l.contains("BackOff")).unwrap_or_default();
    assert!(row.split_whitespace().rev().take(3).eq(["web.17a", "4", "5h"]), "{wide}");
}
