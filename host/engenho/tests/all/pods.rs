//! Goal: the node agent runs `wasi` pods as Kubernetes defines a pod's
//! life: arguments, environment and volumes from the spec and the objects
//! it names; init containers first; phases, container states, restart
//! counts and CrashLoopBackOff; memory limits (OOMKilled); deadlines;
//! graceful deletion; precise waiting reasons for what cannot run; logs
//! through `kubectl logs`; and a node restart that takes its pods up again
//! with their restart counts. Method: a real `engenho up`, the real
//! kubectl, the example toolbox component pushed with `engenho content`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{EngenhoNode, Kubectl, RunningKubectl, kube_client, wait_for};

/// Longest a pod takes to reach a state the test waits for.
const POD_DEADLINE: Duration = Duration::from_secs(60);

/// Flags of a node whose own Node takes pods: no test taint, and no disk
/// pressure from a full test machine.
pub(crate) const RUNS_PODS: [&str; 4] = ["--register-with-taints", "", "--eviction-hard", "nodefs.available<1%"];

/// Pushes the toolbox component; its reference.
pub(crate) fn push_toolbox(node: &EngenhoNode) -> String {
    push(node, "toolbox", engenho_plugin_artifacts::pod_component("toolbox").expect("the toolbox is built"))
}

/// Pushes component `bytes` (saved as `name`); its reference.
pub(crate) fn push(node: &EngenhoNode, name: &str, bytes: &[u8]) -> String {
    let file = node.dir.join(format!("{name}.wasm"));
    std::fs::write(&file, bytes).expect("write the component");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_engenho"))
        .args(["content", "push"])
        .arg(&file)
        .env("KUBECONFIG", node.dir.join("kubeconfig"))
        .output()
        .expect("run engenho content push");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
}

/// A `wasi` pod on `node` running `image` with `args`, with `extra` merged
/// into its spec.
pub(crate) fn pod(name: &str, node: &str, image: &str, args: &[&str], extra: Value) -> String {
    let mut spec = serde_json::json!({
        "runtimeClassName": "wasi",
        "nodeName": node,
        "containers": [{"name": "app", "image": image, "args": args}],
    });
    merge(&mut spec, extra);
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}).to_string()
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (_, Value::Null) => {}
        (into, from) => *into = from,
    }
}

fn get_pod(kubectl: &Kubectl, name: &str) -> Value {
    kubectl.json(&["get", "pod", name, "-o", "json"])
}

/// Waits until pod `name` satisfies `condition`; the pod then.
pub(crate) fn wait_pod(kubectl: &Kubectl, name: &str, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let deadline = Instant::now() + POD_DEADLINE;
    while Instant::now() < deadline {
        last = get_pod(kubectl, name);
        if condition(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pod {name}: timed out waiting for {what}; last status: {}", last["status"]);
}

fn container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn waiting_reason(pod: &Value) -> Option<&str> {
    container_status(pod).pointer("/state/waiting/reason").and_then(Value::as_str)
}

/// A node named `name` that runs pods, kubectl for it, and the toolbox's
/// reference, pushed.
fn runner(root: &std::path::Path, name: &str) -> (EngenhoNode, Kubectl, String) {
    let mut node = EngenhoNode::new(root, name);
    node.start_ready(&RUNS_PODS);
    let kubectl = Kubectl::for_node(&node);
    let toolbox = push_toolbox(&node);
    (node, kubectl, toolbox)
}

#[test]
fn wasi_pods_live_as_kubernetes_defines() {
    let root = tempfile::tempdir().expect("temporary directory");
    let (node, kubectl, toolbox) = runner(root.path(), "runner");
    let name = node.name.clone();

    // A command with its arguments, environment and volumes.
    kubectl.ok(&["create", "configmap", "settings", "--from-literal=greeting=hello from a ConfigMap"]);
    kubectl.ok(&["create", "secret", "generic", "creds", "--from-literal=token=s3cr3t"]);
    let hello = pod(
        "hello",
        &name,
        &toolbox,
        &[],
        serde_json::json!({
            "restartPolicy": "Never",
            "containers": [{"name": "app", "image": toolbox,
                "args": ["cat", "/etc/config/greeting", ";", "env", "POD", "TOKEN", ";", "cat", "/info/name"],
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}, {"name": "info", "mountPath": "/info"}]}],
            "volumes": [{"name": "config", "configMap": {"name": "settings"}},
                        {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}],
        }),
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&hello));
    let done = wait_pod(&kubectl, "hello", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    let terminated = &container_status(&done)["state"]["terminated"];
    assert_eq!((terminated["exitCode"].as_i64(), terminated["reason"].as_str()), (Some(0), Some("Completed")));
    assert_eq!(container_status(&done)["imageID"], toolbox.as_str());
    assert_eq!(kubectl.ok(&["logs", "hello"]), "hello from a ConfigMap\nPOD=hello\nTOKEN=s3cr3t\nhello\n");
    assert_eq!(kubectl.ok(&["logs", "hello", "--tail", "1"]), "hello\n");
    let stamped = kubectl.ok(&["logs", "hello", "--timestamps", "--tail", "1"]);
    assert!(stamped.ends_with(" hello\n") && stamped.starts_with("20"), "{stamped}");
    assert!(
        kubectl.fails(&["logs", "hello", "-c", "nope"], None).contains("container nope is not valid for pod hello")
    );
    assert!(
        kubectl
            .fails(&["logs", "hello", "--previous"], None)
            .contains("previous terminated container \"app\" in pod \"hello\" not found")
    );

    // Services' addresses, as the kubelet's service links give them.
    let links = pod(
        "links",
        &name,
        &toolbox,
        &["env", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"],
        serde_json::json!({"restartPolicy": "Never"}),
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&links));
    wait_pod(&kubectl, "links", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    let cluster_ip = kubectl.ok(&["get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"]);
    assert_eq!(
        kubectl.ok(&["logs", "links"]),
        format!("KUBERNETES_SERVICE_HOST={cluster_ip}\nKUBERNETES_SERVICE_PORT=443\n")
    );

    // Init containers run first, in order, sharing an emptyDir.
    let init = pod(
        "init",
        &name,
        &toolbox,
        &[],
        serde_json::json!({
            "restartPolicy": "Never",
            "initContainers": [
                {"name": "first", "image": toolbox, "args": ["write", "/work/step", "first"], "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                {"name": "second", "image": toolbox, "args": ["cat", "/work/step", ";", "write", "/work/step", "second"], "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "containers": [{"name": "app", "image": toolbox, "args": ["cat", "/work/step"], "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "volumes": [{"name": "work", "emptyDir": {}}],
        }),
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&init));
    let done = wait_pod(&kubectl, "init", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    let inits = done["status"]["initContainerStatuses"].as_array().expect("init statuses");
    assert!(inits.iter().all(|s| s["state"]["terminated"]["exitCode"] == 0), "{inits:?}");
    assert_eq!(kubectl.ok(&["logs", "init", "-c", "second"]), "first\n");
    assert_eq!(kubectl.ok(&["logs", "init", "-c", "app"]), "second\n");

    // A crashing container restarts with growing back-off.
    kubectl.ok_with(
        &["apply", "-f", "-"],
        Some(&pod("crash", &name, &toolbox, &["echo", "starting", ";", "exit", "1"], Value::Null)),
    );
    let crashing = wait_pod(&kubectl, "crash", "two restarts and CrashLoopBackOff", |p| {
        container_status(p)["restartCount"].as_u64() >= Some(2) && waiting_reason(p) == Some("CrashLoopBackOff")
    });
    assert_eq!(crashing["status"]["phase"], "Running");
    assert_eq!(container_status(&crashing)["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(kubectl.ok(&["logs", "crash", "--previous"]), "starting\n");
    let table = kubectl.ok(&["get", "pod", "crash"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");

    // Memory past the limit ends the container as OOMKilled.
    let limits = serde_json::json!({"restartPolicy": "Never",
        "containers": [{"name": "app", "image": toolbox, "args": ["grow", "256"],
            "resources": {"limits": {"memory": "32Mi"}, "requests": {"memory": "32Mi"}}}]});
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("bomb", &name, &toolbox, &[], limits)));
    let bombed = wait_pod(&kubectl, "bomb", "Failed", |p| p["status"]["phase"] == "Failed");
    let terminated = &container_status(&bombed)["state"]["terminated"];
    assert_eq!((terminated["reason"].as_str(), terminated["exitCode"].as_i64()), (Some("OOMKilled"), Some(137)));

    // A pod past its activeDeadlineSeconds fails.
    kubectl.ok_with(
        &["apply", "-f", "-"],
        Some(&pod(
            "deadline",
            &name,
            &toolbox,
            &["loop"],
            serde_json::json!({"activeDeadlineSeconds": 2, "restartPolicy": "Never"}),
        )),
    );
    let expired = wait_pod(&kubectl, "deadline", "Failed", |p| p["status"]["phase"] == "Failed");
    assert_eq!(expired["status"]["reason"], "DeadlineExceeded");

    // A looping pod, deleted, is gone within its grace period.
    kubectl.ok_with(
        &["apply", "-f", "-"],
        Some(&pod("spin", &name, &toolbox, &["loop"], serde_json::json!({"terminationGracePeriodSeconds": 2}))),
    );
    wait_pod(&kubectl, "spin", "Running", |p| p["status"]["phase"] == "Running");
    let exec = kubectl.fails(&["exec", "spin", "--", "ls"], None);
    assert!(exec.contains("no shell or processes to exec into"), "{exec}");
    let asked = Instant::now();
    kubectl.ok(&["delete", "pod", "spin", "--wait=false"]);
    wait_for("the looping pod gone", Duration::from_secs(15), || {
        !kubectl.run(&["get", "pod", "spin"], None).status.success()
    });
    assert!(asked.elapsed() >= Duration::from_secs(1), "the grace period was given");

    // tlisp programs run in the runner shipped with the node: from a file
    // of a ConfigMap volume, or given with -e; errors fail the container.
    kubectl.ok(&[
        "create",
        "configmap",
        "program",
        "--from-literal=main.tlisp=(define (fact n) (if (< n 2) 1 (* n (fact (- n 1))))) (println (fact 20))",
    ]);
    let tlisp = |pod_name: &str, args: &[&str], extra: Value| {
        let mut spec = serde_json::json!({"runtimeClassName": "tlisp", "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "tlisp", "args": args}]});
        merge(&mut spec, extra);
        pod(pod_name, &name, "tlisp", &[], spec)
    };
    kubectl.ok_with(
        &["apply", "-f", "-"],
        Some(&tlisp(
            "fact",
            &["/program/main.tlisp"],
            serde_json::json!({
        "containers": [{"name": "main", "image": "tlisp", "args": ["/program/main.tlisp"],
            "volumeMounts": [{"name": "program", "mountPath": "/program"}]}],
        "volumes": [{"name": "program", "configMap": {"name": "program"}}]}),
        )),
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&tlisp("broken", &["-e", "(println 1) (car 5)"], Value::Null)));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&tlisp("unclosed", &["-e", "(println (+ 1 2)"], Value::Null)));
    wait_pod(&kubectl, "fact", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(kubectl.ok(&["logs", "fact"]), "2432902008176640000\n");
    for (name, error) in [("broken", "type mismatch"), ("unclosed", "syntax error")] {
        let failed = wait_pod(&kubectl, name, "Failed", |p| p["status"]["phase"] == "Failed");
        assert_eq!(container_status(&failed)["state"]["terminated"]["exitCode"], 1);
        let log = kubectl.ok(&["logs", name]);
        assert!(log.contains(error), "{name}: {log}");
    }

    // What cannot run waits with a precise reason and an Event.
    let unknown = format!("blake3:{}", "0".repeat(64));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("unknown", &name, &unknown, &[], Value::Null)));
    let waiting = wait_pod(&kubectl, "unknown", "ErrImagePull", |p| waiting_reason(p) == Some("ErrImagePull"));
    let message = container_status(&waiting)["state"]["waiting"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("is not stored in the cluster"), "{message}");
    assert_eq!(waiting["status"]["phase"], "Pending");
    let policy = push(&node, "pod-security", engenho_plugin_artifacts::plugin("pod-security").expect("built"));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("wrong-world", &name, &policy, &[], Value::Null)));
    let wrong = wait_pod(&kubectl, "wrong-world", "CreateContainerError", |p| {
        waiting_reason(p) == Some("CreateContainerError")
    });
    let message = container_status(&wrong)["state"]["waiting"]["message"].to_string();
    assert!(message.contains("exports neither wasi:cli/run"), "{message}");
    let garbage = push(&node, "garbage", b"these bytes are not a component");
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("garbage", &name, &garbage, &[], Value::Null)));
    let invalid =
        wait_pod(&kubectl, "garbage", "CreateContainerError", |p| waiting_reason(p) == Some("CreateContainerError"));
    let message = container_status(&invalid)["state"]["waiting"]["message"].to_string();
    assert!(message.contains("is not a loadable component"), "{message}");
    let missing = serde_json::json!({"containers": [{"name": "app", "image": toolbox,
        "envFrom": [{"configMapRef": {"name": "absent"}}]}]});
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("no-config", &name, &toolbox, &[], missing)));
    let config = wait_pod(&kubectl, "no-config", "CreateContainerConfigError", |p| {
        waiting_reason(p) == Some("CreateContainerConfigError")
    });
    assert_eq!(container_status(&config)["state"]["waiting"]["message"], "configmap \"absent\" not found");
    let events = kubectl.ok(&["get", "events", "--field-selector", "involvedObject.name=unknown"]);
    assert!(events.contains("is not stored in the cluster"), "{events}");
    // The others ran on, unaffected.
    assert_eq!(get_pod(&kubectl, "hello")["status"]["phase"], "Succeeded");
}

#[test]
fn a_restarted_node_takes_up_its_pods_with_their_restart_counts() {
    let root = tempfile::tempdir().expect("temporary directory");
    let (mut node, kubectl, toolbox) = runner(root.path(), "restarts");
    let name = node.name.clone();
    kubectl.ok_with(
        &["apply", "-f", "-"],
        Some(&pod("steady", &name, &toolbox, &["tick", "200", "1000000"], Value::Null)),
    );
    kubectl.ok_with(
        &["apply", "-f", "-"],
        Some(&pod("done", &name, &toolbox, &["echo", "once"], serde_json::json!({"restartPolicy": "OnFailure"}))),
    );
    wait_pod(&kubectl, "steady", "Running", |p| p["status"]["phase"] == "Running");
    wait_pod(&kubectl, "done", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    let mut follow = kubectl.spawn(&["logs", "-f", "steady"]);
    wait_for("followed lines", Duration::from_secs(10), || follow.output().contains("tick 3\n"));

    node.stop();
    node.start_ready(&RUNS_PODS);
    let steady = wait_pod(&kubectl, "steady", "running again after a restart", |p| {
        p["status"]["phase"] == "Running"
            && container_status(p)["restartCount"] == 1
            && container_status(p)["ready"] == true
    });
    assert_eq!(container_status(&steady)["lastState"]["terminated"]["reason"], "ContainerStatusUnknown");
    let previous = kubectl.ok(&["logs", "steady", "--previous", "--tail", "1"]);
    assert!(previous.starts_with("tick "), "{previous}");
    assert_eq!(get_pod(&kubectl, "done")["status"]["phase"], "Succeeded", "a finished pod does not run again");
    assert_eq!(container_status(&get_pod(&kubectl, "done"))["restartCount"], 0);
}

/// One HTTP/1.1 GET of `url` (`http://ip:port/path`); status code and body.
fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connects to the pod");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n").expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

/// `kubectl port-forward TARGET :PORT` with `env`, once it listens: the
/// running kubectl and the local address it forwards from.
fn port_forward(kubectl: &Kubectl, target: &str, port: &str, env: &[(&str, &str)]) -> (RunningKubectl, String) {
    let local = format!(":{port}");
    let mut forward = kubectl.spawn_with(&["port-forward", "--address", "127.0.0.1", target, &local], env);
    let mut address = None;
    wait_for("kubectl port-forward listening", POD_DEADLINE, || {
        address = forward
            .output()
            .lines()
            .find_map(|line| line.strip_prefix("Forwarding from "))
            .and_then(|line| line.split(" -> ").next())
            .map(str::to_owned);
        address.is_some() || forward.exited()
    });
    let address = address.unwrap_or_else(|| panic!("kubectl port-forward did not listen: {}", forward.errors()));
    (forward, address)
}

/// `kubectl port-forward TARGET :PORT` answers GETs of `/forwarded` with
/// `expected`, connection after connection: in the WebSocket tunnel
/// kubectl tries first, and in SPDY/3.1 directly.
pub(crate) fn forwards_in_both_protocols(kubectl: &Kubectl, target: &str, port: &str, expected: &str) {
    for env in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")]] {
        let (_forward, local) = port_forward(kubectl, target, port, env);
        for _ in 0..3 {
            let (code, body) = http_get(&local, "/forwarded");
            assert_eq!(code, 200, "{env:?}");
            assert!(body.contains(expected), "{env:?}: {body}");
        }
    }
}

/// Through kube-rs's port-forward (the WebSocket channel protocol), a GET
/// of `/kube-rs` on port 80 of `pod` and what port 9999's error channel
/// says.
fn kube_rs_port_forward(node: &EngenhoNode, pod: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::default_namespaced(kube_client(node).await);
        let mut forwarder = pods.portforward(pod, &[80, 9999]).await.expect("port-forward");
        let mut stream = forwarder.take_stream(80).expect("port 80");
        stream.write_all(b"GET /kube-rs HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n").await.expect("writes");
        let mut answer = Vec::new();
        let read = tokio::time::timeout(POD_DEADLINE, stream.read_to_end(&mut answer));
        read.await.expect("the answer in time").expect("reads");
        let errors = forwarder.take_error(9999).expect("port 9999's errors");
        let refused = tokio::time::timeout(POD_DEADLINE, errors).await.expect("port 9999's error in time");
        (String::from_utf8_lossy(&answer).into_owned(), refused.unwrap_or_default())
    })
}

#[test]
fn a_deployment_of_a_wasi_http_component_serves_on_its_pod_ips() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "serving");
    node.start_ready(&RUNS_PODS);
    let kubectl = Kubectl::for_node(&node);
    let hello = push(&node, "hello-http", engenho_plugin_artifacts::pod_component("hello-http").expect("built"));
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"runtimeClassName": "wasi",
                "containers": [{"name": "web", "image": format!("hello@{hello}"),
                    "ports": [{"name": "http", "containerPort": 80}],
                    "env": [{"name": "GREETING", "value": "a deployment"}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
                    "livenessProbe": {"tcpSocket": {"port": 80}}}]}}}});
    kubectl.ok_with(&["apply", "-f", "-"], Some(&deployment.to_string()));
    kubectl.rollout_status("web", "60s");
    let pods = kubectl.json(&["get", "pods", "-l", "app=web", "-o", "json"]);
    let ips: Vec<String> = pods["items"]
        .as_array()
        .expect("pods")
        .iter()
        .map(|p| p["status"]["podIP"].as_str().expect("a pod IP").to_owned())
        .collect();
    assert_eq!(ips.len(), 2);
    assert_ne!(ips[0], ips[1], "each pod has its own address");
    for ip in &ips {
        let (code, body) = http_get(&format!("{ip}:80"), "/greet");
        assert_eq!(code, 200);
        assert!(body.contains("hello from a deployment (GET /greet)"), "{body}");
    }
    let logs = kubectl.ok(&["logs", "deploy/web"]);
    assert!(logs.contains("GET /ready"), "{logs}");

    // kubectl port-forward reaches a pod's port through the API server.
    forwards_in_both_protocols(&kubectl, "deployment/web", "http", "hello from a deployment (GET /forwarded)");
    // A port nothing serves is answered on the error stream in the
    // kubelet's words, and kubectl gives up as it does with a kubelet.
    let (mut forward, local) = port_forward(&kubectl, "deployment/web", "9999", &[]);
    if let Ok(mut connection) = std::net::TcpStream::connect(&local) {
        use std::io::Read;
        connection.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let _ = connection.read_to_end(&mut Vec::new());
    }
    wait_for("kubectl to give up", POD_DEADLINE, || forward.exited());
    let errors = forward.errors();
    assert!(errors.contains("error forwarding port 9999 to pod web-") && errors.contains("dial tcp"), "{errors}");
    assert!(errors.contains("lost connection to pod"), "{errors}");
    // kube-rs asks for its ports in the query and speaks the WebSocket
    // channel protocol: a connection per port, errors on its channel.
    let name = pods["items"][0]["metadata"]["name"].as_str().expect("a name").to_owned();
    let (answer, refused) = kube_rs_port_forward(&node, &name);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("hello from a deployment (GET /kube-rs)"),
        "{answer}"
    );
    assert!(refused.contains(&format!("error forwarding port 9999 to pod {name}")), "{refused}");
    // Port-forwards are an upgrade, and a right of edit, not of view.
    let plain = kubectl.fails(&["get", "--raw", &format!("/api/v1/namespaces/default/pods/{name}/portforward")], None);
    assert!(plain.contains("unable to upgrade"), "{plain}");
    kubectl.ok(&["create", "serviceaccount", "viewer"]);
    kubectl.ok(&["create", "rolebinding", "viewer", "--clusterrole=view", "--serviceaccount=default:viewer"]);
    let token = kubectl.ok(&["create", "token", "viewer"]);
    let refused = kubectl.fails(&["--token", token.trim(), "port-forward", &format!("pod/{name}"), ":80"], None);
    assert!(refused.contains("cannot create resource \"pods/portforward\""), "{refused}");

    // A probe of a port nothing serves keeps the pod unready, and says so;
    // an exec probe cannot run against a component, and says why.
    let unready = pod(
        "unready",
        &node.name,
        &hello,
        &[],
        serde_json::json!({"containers": [{"name": "app",
        "image": hello, "ports": [{"containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 1}}]}),
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&unready));
    let execs = pod(
        "exec-probe",
        &node.name,
        &hello,
        &[],
        serde_json::json!({"containers": [{"name": "app",
        "image": hello, "readinessProbe": {"exec": {"command": ["true"]}}}]}),
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&execs));
    for (name, reason) in
        [("unready", "Readiness probe failed: dial tcp"), ("exec-probe", "exec probes are not supported")]
    {
        let running = wait_pod(&kubectl, name, "Running", |p| p["status"]["phase"] == "Running");
        assert_eq!(container_status(&running)["ready"], false);
        wait_for("the probe's Event", POD_DEADLINE, || {
            kubectl.ok(&["get", "events", "--field-selector", &format!("involvedObject.name={name}")]).contains(reason)
        });
        let ready = get_pod(&kubectl, name)["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(!ready, "{name} is not Ready");
    }
    let ip = get_pod(&kubectl, "unready")["status"]["podIP"].as_str().expect("ip").to_owned();
    assert_eq!(http_get(&format!("{ip}:8080"), "/").0, 200, "an unready pod still serves");
}

#[test]
fn logs_and_ports_are_reached_from_any_nodes_api_server() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut first = EngenhoNode::new(root.path(), "logs-a");
    first.start_ready(&RUNS_PODS);
    let mut second = EngenhoNode::new(root.path(), "logs-b");
    let mut args: Vec<String> = first.join_args();
    args.extend(RUNS_PODS.iter().map(|a| (*a).to_owned()));
    second.start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let kubectl = Kubectl::for_node(&first);
    let toolbox = push_toolbox(&first);
    kubectl.ok_with(
        &["apply", "-f", "-"],
        Some(&pod(
            "far",
            &second.name,
            &toolbox,
            &["tick", "100", "30"],
            serde_json::json!({"restartPolicy": "Never"}),
        )),
    );
    wait_pod(&kubectl, "far", "Running", |p| p["status"]["phase"] == "Running");
    // Followed through the first node's API server until the run ends.
    let followed = kubectl.ok(&["logs", "-f", "far"]);
    let lines: Vec<&str> = followed.lines().collect();
    assert_eq!(lines.first().copied(), Some("tick 1"), "{followed}");
    assert_eq!(lines.last().copied(), Some("tick 30"), "{followed}");
    assert_eq!(lines.len(), 30, "every line once: {followed}");
    assert_eq!(kubectl.ok(&["logs", "far", "--tail", "1"]), "tick 30\n");
    let refused = kubectl.fails(&["logs", "far", "-c", "nope"], None);
    assert!(refused.contains("container nope is not valid for pod far"), "{refused}");

    // A port of a pod on the second node, forwarded through the first
    // node's API server: over a tunnel on the peer channel.
    let hello = push(&first, "hello-http", engenho_plugin_artifacts::pod_component("hello-http").expect("built"));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("far-web", &second.name, &hello, &[], serde_json::json!({}))));
    wait_pod(&kubectl, "far-web", "Running", |p| p["status"]["phase"] == "Running");
    forwards_in_both_protocols(&kubectl, "pod/far-web", "8080", "hello from wasm (GET /forwarded)");
}

#[test]
fn the_pods_of_a_node_whose_agent_stops_are_replaced_elsewhere() {
    // Three nodes, so that two keep the store's quorum when one stops.
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes: Vec<EngenhoNode> =
        ["gone-a", "gone-b", "gone-c"].iter().map(|name| EngenhoNode::new(root.path(), name)).collect();
    nodes[0].start_ready(&RUNS_PODS);
    let mut args: Vec<String> = nodes[0].join_args();
    args.extend(RUNS_PODS.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for node in &mut nodes[1..] {
        node.start_ready(&args);
    }
    let kubectl = Kubectl::for_node(&nodes[0]);
    let toolbox = push_toolbox(&nodes[0]);
    let doomed = nodes[2].name.clone();
    wait_for("three Ready nodes", POD_DEADLINE, || {
        let listed = kubectl.json(&["get", "nodes", "-o", "json"]);
        let items = listed["items"].as_array().cloned().unwrap_or_default();
        items.len() == 3
            && items.iter().all(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
    });
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ticker"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ticker"}},
            "template": {"metadata": {"labels": {"app": "ticker"}}, "spec": {"runtimeClassName": "wasi",
                "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                    "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [doomed]}]}}]}},
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}],
                "containers": [{"name": "app", "image": toolbox, "args": ["tick", "1000", "1000000"]}]}}}});
    kubectl.ok_with(&["apply", "-f", "-"], Some(&deployment.to_string()));
    kubectl.rollout_status("ticker", "60s");
    let placed = kubectl.json(&["get", "pods", "-l", "app=ticker", "-o", "json"]);
    assert_eq!(placed["items"][0]["spec"]["nodeName"], doomed.as_str(), "the pod went where it preferred");

    crate::support::wait_voters(&nodes[0], 3);
    nodes[2].stop();
    wait_for("gossip to notice the stopped node", Duration::from_secs(60), || {
        nodes[0].log_text().contains(&format!("gossip: {doomed} is dead"))
    });
    wait_for("the stopped node NotReady", Duration::from_secs(120), || {
        let node = kubectl.json(&["get", "node", &doomed, "-o", "json"]);
        node["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] != "True"))
    });
    wait_for("a replacement running on a node that runs", Duration::from_secs(120), || {
        let pods = kubectl.json(&["get", "pods", "-l", "app=ticker", "-o", "json"]);
        pods["items"].as_array().is_some_and(|items| {
            items.iter().any(|p| p["spec"]["nodeName"] != doomed.as_str() && p["status"]["phase"] == "Running")
        })
    });
}
