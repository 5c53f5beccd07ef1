use serde_json::{Value, json};

use super::*;
use crate::endpoint::EndpointPort;
use crate::legacy::{EndpointAddress, OVER_CAPACITY_ANNOTATION, TRIGGER_TIME_ANNOTATION};
use crate::slices::{HEADLESS_LABEL, plan};

fn service(extra: Value) -> Service {
    let mut value = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        ]},
    });
    if let (Some(spec), Some(extra)) = (value["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(value).expect("a service")
}

fn pod(name: &str, ip: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"nodeName": "n1", "containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .expect("a pod")
}

fn http() -> Vec<EndpointPort> {
    vec![EndpointPort { name: "http".into(), port: 8080, protocol: "TCP".into(), app_protocol: None }]
}

fn desired(service: &Service, pods: &[Pod]) -> Desired {
    let groups = members_by_ports(service, pods, "IPv4", true)
        .into_iter()
        .map(|(ports, members)| (ports, members.iter().map(|m| SliceEndpoint::from_member(m, None)).collect()))
        .collect();
    [("IPv4".to_owned(), groups)].into()
}

/// `change` as the slice the API server would store under `name`.
fn stored(change: &Change, name: &str) -> Slice {
    let (Change::Create(object) | Change::Update(object)) = change else { panic!("not a write: {change:?}") };
    let mut object = object.clone();
    object["metadata"]["name"] = json!(name);
    object["metadata"]["uid"] = json!(format!("uid-{name}"));
    serde_json::from_value(object).expect("a slice")
}

fn addresses(slice: &Slice) -> Vec<String> {
    slice.endpoints.iter().flatten().map(|e| e.addresses.join(",")).collect()
}

#[test]
fn a_service_gets_one_slice_with_its_pods_and_their_conditions() {
    let service = service(json!({}));
    let pods = [pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true), pod("c", "", false)];
    let changes = plan(&service, &desired(&service, &pods), &[], 100);
    assert_eq!(changes.len(), 1);
    let Change::Create(object) = &changes[0] else { panic!("a create") };
    assert_eq!(object["metadata"]["generateName"], "web-");
    assert_eq!(object["metadata"]["labels"]["kubernetes.io/service-name"], "web");
    assert_eq!(
        object["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(object["metadata"]["labels"]["team"], "a");
    assert_eq!(object["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(object["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(object["addressType"], "IPv4");
    assert_eq!(object["ports"], json!([{"name": "http", "port": 8080, "protocol": "TCP"}]));
    assert_eq!(object["endpoints"][0]["addresses"], json!(["10.0.0.1"]));
    assert_eq!(object["endpoints"][0]["conditions"], json!({"ready": true, "serving": true, "terminating": false}));
    assert_eq!(object["endpoints"][0]["nodeName"], "n1");
    assert_eq!(object["endpoints"][0]["targetRef"]["kind"], "Pod");
    assert_eq!(object["endpoints"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_current_slice_is_left_and_changed_pods_update_it_in_place() {
    let service = service(json!({}));
    let pods = vec![pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false)];
    let slice = stored(&plan(&service, &desired(&service, &pods), &[], 100)[0], "web-abcde");
    assert!(plan(&service, &desired(&service, &pods), std::slice::from_ref(&slice), 100).is_empty());
    let changed = vec![pod("b", "10.0.0.2", true), pod("c", "10.0.0.3", true)];
    let changes = plan(&service, &desired(&service, &changed), std::slice::from_ref(&slice), 100);
    assert_eq!(changes.len(), 1);
    let updated = stored(&changes[0], "web-abcde");
    assert!(matches!(changes[0], Change::Update(_)));
    assert_eq!(addresses(&updated), ["10.0.0.2", "10.0.0.3"]);
    assert!(updated.endpoints.iter().flatten().all(|e| e.conditions.ready == Some(true)));
}

#[test]
fn slices_hold_at_most_the_maximum_and_keep_their_endpoints() {
    let service = service(json!({}));
    let pods: Vec<Pod> = (1..=5).map(|i| pod(&format!("p{i}"), &format!("10.0.0.{i}"), true)).collect();
    let first = plan(&service, &desired(&service, &pods), &[], 2);
    assert_eq!(first.len(), 3);
    let slices: Vec<Slice> = first.iter().enumerate().map(|(i, c)| stored(c, &format!("web-{i}"))).collect();
    assert!(slices.iter().all(|s| s.endpoints.iter().flatten().count() <= 2));
    // One pod gone and two new: they fill the gaps; no slice is made.
    let mut next = pods.clone();
    next.remove(0);
    next.push(pod("p6", "10.0.0.6", true));
    next.push(pod("p7", "10.0.0.7", true));
    let changes = plan(&service, &desired(&service, &next), &slices, 2);
    let creates = changes.iter().filter(|c| matches!(c, Change::Create(_))).count();
    let deletes = changes.iter().filter(|c| matches!(c, Change::Delete(..))).count();
    assert_eq!((creates, deletes, changes.len()), (0, 0, 2), "{changes:?}");
    for change in &changes {
        let (Change::Create(object) | Change::Update(object)) = change else { continue };
        assert!(object["endpoints"].as_array().map_or(0, Vec::len) <= 2);
    }
}

#[test]
fn emptied_and_stale_slices_go_and_a_placeholder_stays() {
    let service = service(json!({}));
    let pods = vec![pod("a", "10.0.0.1", true)];
    let slice = stored(&plan(&service, &desired(&service, &pods), &[], 100)[0], "web-a");
    // No pods: the slice becomes the empty placeholder.
    let changes = plan(&service, &desired(&service, &[]), std::slice::from_ref(&slice), 100);
    assert_eq!(changes.len(), 1);
    let placeholder = stored(&changes[0], "web-a");
    assert!(addresses(&placeholder).is_empty() && placeholder.ports.iter().flatten().count() == 0);
    assert!(plan(&service, &desired(&service, &[]), std::slice::from_ref(&placeholder), 100).is_empty());
    // Pods again: the placeholder does not match their ports; it goes.
    let changes = plan(&service, &desired(&service, &pods), std::slice::from_ref(&placeholder), 100);
    assert!(changes.iter().any(|c| matches!(c, Change::Create(_))));
    assert!(changes.contains(&Change::Delete("web-a".into(), "uid-web-a".into())));
    // A slice of another address type is stale.
    let mut other = slice.clone();
    other.metadata.name = "web-v6".into();
    other.metadata.uid = "uid-web-v6".into();
    other.address_type = "IPv6".into();
    let changes = plan(&service, &desired(&service, &pods), &[slice, other], 100);
    assert_eq!(changes, vec![Change::Delete("web-v6".into(), "uid-web-v6".into())]);
}

#[test]
fn a_headless_service_labels_its_slices() {
    let service = service(json!({"clusterIP": "None"}));
    assert_eq!(slices::labels(&service).get(HEADLESS_LABEL).map(String::as_str), Some(""));
    assert_eq!(legacy::labels(&service).get(HEADLESS_LABEL).map(String::as_str), Some(""));
    let plain = self::service(json!({}));
    assert!(!slices::labels(&plain).contains_key(HEADLESS_LABEL));
}

#[test]
fn endpoints_list_ready_and_not_ready_addresses_by_ports() {
    let service = service(json!({}));
    let mut terminating = pod("d", "10.0.0.4", true);
    terminating.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
    let pods = [pod("b", "10.0.0.2", true), pod("a", "10.0.0.1", true), pod("c", "10.0.0.3", false), terminating];
    let (subsets, truncated) = legacy::subsets(&service, &pods);
    assert!(!truncated);
    assert_eq!(subsets.len(), 1);
    let ips = |addresses: &[EndpointAddress]| addresses.iter().map(|a| a.ip.clone()).collect::<Vec<_>>();
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.3"]);
    assert_eq!(subsets[0].ports, http());
    let published = self::service(json!({"publishNotReadyAddresses": true}));
    let (subsets, _) = legacy::subsets(&published, &pods);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
}

#[test]
fn endpoints_are_written_only_when_they_change() {
    let service = service(json!({}));
    let pods = [pod("a", "10.0.0.1", true)];
    let created = legacy::desired(&service, &pods, None, "2026-01-01T00:00:00Z").expect("a new Endpoints");
    assert_eq!(created["metadata"]["name"], "web");
    assert_eq!(created["metadata"]["labels"], json!({"team": "a"}));
    assert_eq!(created["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION], "2026-01-01T00:00:00Z");
    assert_eq!(created["subsets"][0]["addresses"][0]["ip"], "10.0.0.1");
    let current: Endpoints = serde_json::from_value(created).expect("endpoints");
    assert!(legacy::desired(&service, &pods, Some(&current), "later").is_none());
    let updated = legacy::desired(&service, &[] as &[Pod], Some(&current), "later").expect("an update");
    assert_eq!(updated["subsets"], json!([]));
}

#[test]
fn endpoints_over_capacity_are_truncated_ready_first() {
    let service = service(json!({}));
    let pods: Vec<Pod> =
        (0..1100).map(|i| pod(&format!("p{i}"), &format!("10.0.{}.{}", i / 250, i % 250), i % 2 == 0)).collect();
    let (subsets, truncated) = legacy::subsets(&service, &pods);
    assert!(truncated);
    assert_eq!(subsets[0].addresses.len(), 550);
    assert_eq!(subsets[0].not_ready_addresses.len(), 450);
    let object = legacy::desired(&service, &pods, None, "now").expect("an Endpoints");
    assert_eq!(object["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION], "truncated");
}

#[test]
fn configuration_bounds_the_slice_size() {
    let (controller, interests) = EndpointSlices::configure("").expect("configures");
    assert_eq!(controller.max_endpoints_per_slice, DEFAULT_MAX_ENDPOINTS_PER_SLICE);
    assert_eq!(interests.len(), 5);
    let (controller, _) = EndpointSlices::configure(r#"{"maxEndpointsPerSlice": 10}"#).expect("configures");
    assert_eq!(controller.max_endpoints_per_slice, 10);
    assert!(EndpointSlices::configure(r#"{"maxEndpointsPerSlice": 0}"#).is_err());
    assert!(EndpointSlices::configure(r#"{"maxEndpointsPerSlice": 1001}"#).is_err());
    assert!(EndpointSlices::configure(r#"{"other": 1}"#).is_err());
}

/// `slices` after `changes`, new slices named `new-<n>`.
fn applied(mut slices: Vec<Slice>, changes: &[Change], round: usize) -> Vec<Slice> {
    for (index, change) in changes.iter().enumerate() {
        match change {
            Change::Create(_) => slices.push(stored(change, &format!("new-{round}-{index}"))),
            Change::Update(object) => {
                let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let updated = stored(change, &name);
                for slice in slices.iter_mut().filter(|s| s.metadata.name == name) {
                    *slice = updated.clone();
                }
            }
            Change::Delete(name, _) => slices.retain(|s| &s.metadata.name != name),
        }
    }
    slices
}

proptest::proptest! {
    /// Whatever the pods before and after, the slices hold every endpoint
    /// once, none more than the maximum, an endpoint that stays stays in
    /// its slice, and planning again changes nothing.
    #[test]
    fn slices_hold_each_endpoint_once_and_keep_them_where_they_are(
        before in proptest::collection::btree_set(0u8..60, 0..40),
        after in proptest::collection::btree_set(0u8..60, 0..40),
        max in 1usize..8,
    ) {
        let service = service(json!({}));
        let pods = |ids: &std::collections::BTreeSet<u8>| -> Vec<Pod> {
            ids.iter().map(|i| pod(&format!("p{i}"), &format!("10.0.0.{i}"), i % 3 != 0)).collect()
        };
        let first = applied(Vec::new(), &plan(&service, &desired(&service, &pods(&before)), &[], max), 0);
        let second_changes = plan(&service, &desired(&service, &pods(&after)), &first, max);
        let second = applied(first.clone(), &second_changes, 1);
        let mut seen: Vec<String> = second.iter().flat_map(addresses).collect();
        seen.sort();
        let mut wanted: Vec<String> = after.iter().map(|i| format!("10.0.0.{i}")).collect();
        wanted.sort();
        proptest::prop_assert_eq!(seen, wanted);
        proptest::prop_assert!(second.iter().all(|s| s.endpoints.iter().flatten().count() <= max));
        proptest::prop_assert_eq!(second.len().max(1), second.len(), "a placeholder stands for no endpoints");
        for slice in &first {
            if let Some(now) = second.iter().find(|s| s.metadata.name == slice.metadata.name) {
                for address in addresses(slice) {
                    let stayed = after.iter().any(|i| format!("10.0.0.{i}") == address);
                    proptest::prop_assert!(!stayed || addresses(now).contains(&address), "{address} moved");
                }
            }
        }
        proptest::prop_assert!(plan(&service, &desired(&service, &pods(&after)), &second, max).is_empty());
    }
}
