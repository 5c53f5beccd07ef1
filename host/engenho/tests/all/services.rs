//! Goal: Services get cluster IPs and node ports as kube-apiserver gives
//! them: defaults filled in, no address or port ever handed out twice (200
//! concurrent creates included), requests for a particular one honoured or
//! refused with Kubernetes' 422, released on delete, the cluster IP
//! immutable; and the `kubernetes` Service lists every API server of the
//! cluster, dropping a stopped one. Method: real `engenho up` processes,
//! driven with the real kubectl and, for the concurrent creates, kube-rs.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::Value;

use crate::support::{EngenhoNode, Kubectl, kube_client, wait_for};

/// Concurrent creates in the allocation race.
const CONCURRENT_SERVICES: usize = 200;

fn json(kubectl: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl.ok(args)).expect("kubectl prints JSON")
}

fn in_default_range(ip: &str) -> bool {
    let address: Ipv4Addr = ip.parse().expect("an IPv4 cluster IP");
    address.octets()[..2] == [10, 43] && !matches!(address.octets()[2..], [0, 0] | [255, 255])
}

/// Creates `count` Services named `{prefix}-{i}` at once through `node`
/// with kube-rs; their cluster IPs.
fn create_concurrently(node: &EngenhoNode, prefix: &str, count: usize) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = kube_client(node).await;
        let services: Api<Service> = Api::default_namespaced(client);
        let creates = (0..count).map(|i| {
            let services = services.clone();
            let service: Service = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{prefix}-{i}")},
                "spec": {"ports": [{"port": 80}]},
            }))
            .expect("a Service");
            async move { services.create(&PostParams::default(), &service).await }
        });
        futures::future::join_all(creates)
            .await
            .into_iter()
            .map(|created| {
                let created = created.expect("every concurrent create succeeds");
                created.spec.and_then(|s| s.cluster_ip).expect("a cluster IP")
            })
            .collect()
    })
}

#[test]
fn services_get_cluster_ips_and_node_ports_as_kubernetes_gives_them() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "services");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    kubectl.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let web = json(&kubectl, &["get", "svc", "web", "-o", "json"]);
    let spec = &web["spec"];
    let ip = spec["clusterIP"].as_str().expect("a cluster IP").to_owned();
    assert!(in_default_range(&ip), "{ip} is inside 10.43.0.0/16");
    assert_eq!(spec["clusterIPs"], serde_json::json!([ip]));
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["ipFamilies"], serde_json::json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["ports"][0]["targetPort"], 8080);
    assert!(spec.get("externalTrafficPolicy").is_none(), "only NodePort and LoadBalancer have one");
    assert_eq!(kubectl.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]), ip);

    let ips = create_concurrently(&node, "race", CONCURRENT_SERVICES);
    let distinct: BTreeSet<&String> = ips.iter().chain([&ip]).collect();
    assert_eq!(distinct.len(), CONCURRENT_SERVICES + 1, "no cluster IP handed out twice");
    assert!(ips.iter().all(|ip| in_default_range(ip)), "every cluster IP inside the range");
    assert!(!ips.contains(&"10.43.0.1".to_owned()), "the kubernetes Service's address is not handed out");

    let outside =
        kubectl.fails(&["create", "service", "clusterip", "outside", "--tcp=80", "--clusterip=10.0.0.5"], None);
    assert!(
        outside.contains(
            "Service \"outside\" is invalid: spec.clusterIPs[0]: Invalid value: \"10.0.0.5\": failed to allocate \
             IP 10.0.0.5: provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16"
        ),
        "{outside}"
    );
    let taken =
        kubectl.fails(&["create", "service", "clusterip", "taken", "--tcp=80", &format!("--clusterip={ip}")], None);
    assert!(
        taken.contains(&format!(
            "spec.clusterIPs[0]: Invalid value: \"{ip}\": failed to allocate IP {ip}: provided IP is already allocated"
        )),
        "{taken}"
    );
    kubectl.fails(&["get", "svc", "outside"], None);
    kubectl.fails(&["get", "svc", "taken"], None);

    kubectl.ok(&["create", "service", "clusterip", "headless", "--clusterip=None"]);
    let headless = json(&kubectl, &["get", "svc", "headless", "-o", "json"]);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["clusterIPs"], serde_json::json!(["None"]));

    kubectl.ok(&["create", "service", "nodeport", "np", "--tcp=80", "--node-port=30080"]);
    let np = json(&kubectl, &["get", "svc", "np", "-o", "json"]);
    assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    kubectl.ok(&["create", "service", "nodeport", "np-auto", "--tcp=81"]);
    let auto = json(&kubectl, &["get", "svc", "np-auto", "-o", "json"]);
    let auto_port = auto["spec"]["ports"][0]["nodePort"].as_u64().expect("a node port");
    assert!((30000..=32767).contains(&auto_port) && auto_port != 30080, "{auto_port}");
    let duplicate =
        kubectl.fails(&["create", "service", "nodeport", "np-again", "--tcp=80", "--node-port=30080"], None);
    assert!(
        duplicate.contains("spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"),
        "{duplicate}"
    );
    let out_of_range = kubectl.fails(&["create", "service", "nodeport", "np-low", "--tcp=80", "--node-port=80"], None);
    assert!(
        out_of_range.contains(
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid \
             ports is 30000-32767"
        ),
        "{out_of_range}"
    );

    let changed = kubectl.fails(
        &["patch", "svc", "web", "-p", r#"{"spec":{"clusterIP":"10.43.7.7","clusterIPs":["10.43.7.7"]}}"#],
        None,
    );
    assert!(
        changed.contains(r#"spec.clusterIPs[0]: Invalid value: []string{"10.43.7.7"}: may not change once set"#),
        "{changed}"
    );
    kubectl.ok(&["label", "svc", "web", "tier=front"]);
    assert_eq!(kubectl.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]), ip, "kept across updates");

    kubectl.ok(&["patch", "svc", "np", "-p", r#"{"spec":{"type":"ClusterIP"}}"#]);
    let back = json(&kubectl, &["get", "svc", "np", "-o", "json"]);
    assert!(back["spec"]["ports"][0].get("nodePort").is_none(), "{back}");
    kubectl.ok(&["create", "service", "nodeport", "np-again", "--tcp=80", "--node-port=30080"]);

    kubectl.ok(&["delete", "svc", "web"]);
    kubectl.ok(&["create", "service", "clusterip", "web2", "--tcp=80", &format!("--clusterip={ip}")]);
    assert_eq!(kubectl.ok(&["get", "svc", "web2", "-o", "jsonpath={.spec.clusterIP}"]), ip, "released and taken again");

    wait_for("the kubernetes Service", Duration::from_secs(20), || {
        kubectl.run(&["get", "svc", "kubernetes"], None).status.success()
    });
    let kubernetes = json(&kubectl, &["get", "svc", "kubernetes", "-o", "json"]);
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(kubernetes["spec"]["ports"][0]["name"], "https");
    assert_eq!(kubernetes["spec"]["ports"][0]["port"], 443);
    assert_eq!(kubernetes["spec"]["ports"][0]["targetPort"], 6443);
    let api_ip = node.api.split(':').next().expect("an address").to_owned();
    wait_for("the kubernetes EndpointSlice", Duration::from_secs(20), || {
        endpoint_addresses(&kubectl) == Some(BTreeSet::from([api_ip.clone()]))
    });
    assert!(kubectl.ok(&["get", "endpointslices", "-n", "default"]).contains("kubernetes"));
    let slice = json(&kubectl, &["get", "endpointslice", "kubernetes", "-o", "json"]);
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
    assert_eq!(slice["ports"][0]["port"], 6443);
    assert_eq!(slice["endpoints"].as_array().map(Vec::len), Some(1));
    let endpoints = kubectl.ok(&[
        "get",
        "endpoints",
        "kubernetes",
        "-o",
        "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
    ]);
    assert_eq!(endpoints, format!("{api_ip}:6443"));

    node.stop();
    node.start(&["--service-cidr", "10.45.0.0/16"]);
    assert!(!node.wait_exit().success(), "a node naming another service range does not start");
    assert!(node.log_text().contains("the cluster's service CIDR is 10.43.0.0/16"), "{}", node.log_text());
}

fn endpoint_addresses(kubectl: &Kubectl) -> Option<BTreeSet<String>> {
    let output = kubectl.run(&["get", "endpointslice", "kubernetes", "-o", "json"], None);
    if !output.status.success() {
        return None;
    }
    let slice: Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(slice["endpoints"].as_array()?.iter().filter_map(|e| e["addresses"][0].as_str().map(str::to_owned)).collect())
}

#[test]
fn the_kubernetes_service_follows_the_api_servers_of_a_cluster() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut first = EngenhoNode::new(root.path(), "s1");
    first.start_ready(&["--service-cidr", "10.44.0.0/24"]);
    let mut nodes = vec![first];
    for name in ["s2", "s3"] {
        let mut node = EngenhoNode::new(root.path(), name);
        let args = nodes[0].join_args();
        node.start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
        nodes.push(node);
    }
    let kubectl = Kubectl::for_node(&nodes[1]);
    let addresses = |nodes: &[EngenhoNode]| -> BTreeSet<String> {
        nodes.iter().map(|n| n.api.split(':').next().expect("an address").to_owned()).collect()
    };
    let all = addresses(&nodes);
    wait_for("all three API servers in the kubernetes EndpointSlice", Duration::from_secs(30), || {
        endpoint_addresses(&kubectl).as_ref() == Some(&all)
    });
    assert_eq!(kubectl.ok(&["get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"]), "10.44.0.1");

    let per_node: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| scope.spawn(move || create_concurrently(node, &format!("n{i}"), 20)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("creates")).collect()
    });
    let ips: Vec<&String> = per_node.iter().flatten().collect();
    let distinct: BTreeSet<&&String> = ips.iter().collect();
    assert_eq!(distinct.len(), 60, "creates on all three nodes never share a cluster IP");
    assert!(ips.iter().all(|ip| ip.starts_with("10.44.0.")), "{ips:?}");

    crate::support::wait_voters(&nodes[0], 3);
    let mut stopped = nodes.pop().expect("a third node");
    stopped.stop();
    let remaining = addresses(&nodes);
    wait_for("the stopped API server gone from the kubernetes EndpointSlice", Duration::from_secs(45), || {
        endpoint_addresses(&kubectl).as_ref() == Some(&remaining)
    });
    let endpoints = kubectl.ok(&["get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[0].addresses[*].ip}"]);
    let listed: BTreeSet<String> = endpoints.split_whitespace().map(str::to_owned).collect();
    assert_eq!(listed, remaining);
}

/// Goal: a LoadBalancer Service with `externalTrafficPolicy: Local` gets a
/// `healthCheckNodePort` from the node port range, apart from its node
/// ports, as kube-apiserver gives one; another Service asking for that
/// port is refused with Kubernetes' 500 and message, one asking outside
/// the range likewise, a ClusterIP Service naming one gets Kubernetes'
/// 422; the port is released when its Service is deleted (and when it
/// turns `externalTrafficPolicy: Cluster`), so a request for it then
/// succeeds.
/// Method: one real node with a small node port range, driven with the
/// real kubectl.
#[test]
fn local_load_balancers_get_a_health_check_node_port() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "health-check");
    node.start_ready(&["--service-node-port-range", "31000-31049"]);
    let kubectl = Kubectl::for_node(&node);
    let service = |name: &str, extra: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "{name}"}},
            "spec": {{"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{{"port": 80}}]{extra}}}}}"#
        )
    };
    let create = |manifest: &str| -> Value {
        serde_json::from_str(&kubectl.ok_with(&["create", "-f", "-", "-o", "json"], Some(manifest))).expect("JSON")
    };
    let health_check = |name: &str| kubectl.ok(&["get", "svc", name, "-o", "jsonpath={.spec.healthCheckNodePort}"]);

    let local = create(&service("local", ""));
    let port = local["spec"]["healthCheckNodePort"].as_u64().expect("a health check node port");
    assert!((31000..=31049).contains(&port), "{port} in the node port range");
    assert_ne!(local["spec"]["ports"][0]["nodePort"].as_u64(), Some(port), "apart from the Service's node port");
    assert_eq!(health_check("local"), port.to_string());

    let taken =
        kubectl.fails(&["create", "-f", "-"], Some(&service("taken", &format!(r#", "healthCheckNodePort": {port}"#))));
    let message = format!(
        "Internal error occurred: failed to allocate requested HealthCheck NodePort {port}: provided port is already allocated"
    );
    assert!(taken.contains("InternalError") && taken.contains(&message), "{taken}");
    let outside = kubectl.fails(&["create", "-f", "-"], Some(&service("outside", r#", "healthCheckNodePort": 30000"#)));
    assert!(
        outside.contains("failed to allocate requested HealthCheck NodePort 30000: provided port is not in the valid range. The range of valid ports is 31000-31049"),
        "{outside}"
    );
    let cluster_ip = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain"},
        "spec": {"healthCheckNodePort": 31001, "ports": [{"port": 80}]}}"#;
    let invalid = kubectl.fails(&["create", "-f", "-"], Some(cluster_ip));
    assert!(
        invalid.contains("spec.healthCheckNodePort: Invalid value: 31001: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"),
        "{invalid}"
    );
    for name in ["taken", "outside", "plain"] {
        assert!(!kubectl.run(&["get", "svc", name], None).status.success(), "{name} was not stored");
    }

    kubectl.ok(&["delete", "svc", "local"]);
    let reuse = create(&service("reuse", &format!(r#", "healthCheckNodePort": {port}"#)));
    assert_eq!(reuse["spec"]["healthCheckNodePort"].as_u64(), Some(port), "a deleted Service's port is free again");
    kubectl.ok(&["patch", "svc", "reuse", "--type=merge", "-p", r#"{"spec": {"externalTrafficPolicy": "Cluster"}}"#]);
    assert_eq!(health_check("reuse"), "", "a Cluster policy holds no health check port");
    let again = create(&service("again", &format!(r#", "healthCheckNodePort": {port}"#)));
    assert_eq!(again["spec"]["healthCheckNodePort"].as_u64(), Some(port), "the port went with the Local policy");
}

/// Goal: a node joining with a `--service-cidr` other than the cluster's
/// is refused before it becomes a member: it exits with the message
/// naming both ranges, installs no cluster CA, and the cluster's raft
/// membership never shows it; a node agreeing with the cluster joins.
/// Method: a real one-node cluster; a second real `engenho up --join`
/// with another range; `etcdctl member list` on the first node.
#[test]
fn a_node_with_another_service_cidr_never_joins() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut first = EngenhoNode::new(root.path(), "cidr-1");
    first.start_ready(&["--service-cidr", "10.44.0.0/24"]);
    let mut other = EngenhoNode::new(root.path(), "cidr-2");
    let mut args = first.join_args();
    args.extend(["--service-cidr".to_owned(), "10.50.0.0/16".to_owned()]);
    other.start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!other.wait_exit().success(), "a node naming another service range does not start");
    let log = other.log_text();
    assert!(
        log.contains(
            "join refused: the cluster's service CIDR is 10.44.0.0/24; this node was started with 10.50.0.0/16"
        ),
        "{log}"
    );
    assert!(!other.pki().join("ca.key").exists(), "a refused node installs nothing");
    let members = first.etcdctl_ok(&["member", "list"]);
    assert_eq!(members.lines().count(), 1, "{members}");
    assert!(!members.contains("cidr-2"), "{members}");

    let mut agreeing = EngenhoNode::new(root.path(), "cidr-3");
    let mut args = first.join_args();
    args.extend(["--service-cidr".to_owned(), "10.44.0.0/24".to_owned()]);
    agreeing.start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let members = first.etcdctl_ok(&["member", "list"]);
    assert!(members.contains("cidr-3") && !members.contains("cidr-2"), "{members}");
}
