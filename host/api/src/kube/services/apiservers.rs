//! The `kubernetes` Service in `default` and where it leads: every API
//! server of the cluster.
//!
//! As kube-apiserver's lease endpoint reconciler does, each API server
//! keeps a key of its own, [`APISERVERS_PREFIX`]`<node id>`, holding its
//! address and port and attached to a store lease it renews
//! ([`ApiServerRegistration`]). A stopped node stops renewing, and the
//! leader revokes its lease, which deletes its key, within
//! [`REGISTRATION_TTL_SECONDS`]. The raft leader keeps the `kubernetes`
//! Service, its EndpointSlice and its Endpoints in line with the keys
//! ([`KubernetesService`]), writing through the same object store as API
//! requests.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use engenho_control::{Action, Whole};
use engenho_store::{Command, KeyRange, Outcome, PutRequest, RangeRequest};
use serde_json::{Value, json};

use crate::kube::client::{ApiClient, PatchType, Refused};
use crate::kube::objects::ObjectStore;
use crate::kube::resources::SharedRegistry;
use crate::kube::status::ApiError;

/// Prefix of the API servers' registration keys.
pub const APISERVERS_PREFIX: &str = "/engenho/apiservers/";

/// Seconds a registration outlives its API server's last renewal
/// (kube-apiserver's master lease lasts 15 s).
pub const REGISTRATION_TTL_SECONDS: i64 = 15;

/// How often an API server renews its registration.
const RENEW_INTERVAL: Duration = Duration::from_secs(5);

/// How often the leader brings the `kubernetes` Service in line without a
/// change (registrations also expire with their lease, which a store
/// watch of them reports).
const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);

/// Most API servers the `kubernetes` endpoints list.
const APISERVERS_MAX: usize = 64;

/// The field manager of the API server's own writes.
pub const MANAGER: &str = "kube-apiserver";

/// One API server's registration: renews its key until stopped.
pub struct ApiServerRegistration {
    objects: ObjectStore,
    advertised: SocketAddr,
}

impl ApiServerRegistration {
    /// Registers the API server reachable at `advertised`.
    pub fn new(objects: ObjectStore, advertised: SocketAddr) -> Self {
        Self { objects, advertised }
    }

    /// Keeps the registration under `lease_opt` (a first one made when
    /// `None`) alive until `stop` turns true; failures are logged and tried
    /// again at the next renewal.
    pub async fn run(self, mut lease_opt: Option<i64>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(RENEW_INTERVAL);
        if lease_opt.is_some() {
            ticks.tick().await;
        }
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            match self.renew(lease_opt).await {
                Ok(lease) => lease_opt = Some(lease),
                Err(error) => {
                    tracing::warn!(%error, "could not renew this API server's registration");
                    lease_opt = None;
                }
            }
        }
    }

    /// Renews `lease_opt`, or registers afresh under a new lease when there
    /// is none or it has gone; the lease in use.
    ///
    /// # Errors
    /// Store failures and refused writes.
    pub async fn renew(&self, lease_opt: Option<i64>) -> Result<i64, ApiError> {
        let node = self.objects.node();
        if let Some(lease) = lease_opt
            && node.lease_keep_alive(lease).await?.is_some()
        {
            return Ok(lease);
        }
        let id = rand::random_range(1..i64::MAX);
        let granted = node.write(Command::LeaseGrant { id, ttl: REGISTRATION_TTL_SECONDS }).await?;
        if !matches!(granted.outcome, Ok(Outcome::LeaseGranted { .. })) {
            return Err(ApiError::internal(format!("lease grant answered {:?}", granted.outcome)));
        }
        let value = json!({"address": self.advertised.ip().to_string(), "port": self.advertised.port()});
        let put = PutRequest {
            key: format!("{APISERVERS_PREFIX}{}", node.id()).into_bytes(),
            value: serde_json::to_vec(&value).expect("JSON encodes"),
            lease: id,
            ..PutRequest::default()
        };
        let applied = node.write(Command::Put(put)).await?;
        if let Err(refused) = applied.outcome {
            return Err(ApiError::internal(format!("registering this API server: {refused}")));
        }
        tracing::info!(address = %self.advertised, "registered this API server");
        Ok(id)
    }
}

/// The leader's loop over the `kubernetes` Service, its EndpointSlice and
/// its Endpoints.
pub struct KubernetesService {
    objects: ObjectStore,
    registry: SharedRegistry,
    client: ApiClient,
}

impl KubernetesService {
    /// The loop over the objects kept in `objects`, writing them through
    /// `client`.
    pub fn new(objects: ObjectStore, registry: SharedRegistry, client: ApiClient) -> Self {
        Self { objects, registry, client }
    }

    /// Runs until `stop` turns true: a loop on the controller runtime, on
    /// the raft leader, over the registrations (and the Service, its
    /// EndpointSlice and Endpoints: a change by anyone brings them back).
    pub async fn run(self, state: &super::super::handlers::ApiState, stop: tokio::sync::watch::Receiver<bool>) {
        let registry = self.registry.current();
        let mut informers = vec![super::super::loops::keys_informer(&state.informers, "apiservers", APISERVERS_PREFIX)];
        for (group, plural) in [("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices")] {
            if let Some(t) = registry.find_plural(group, plural) {
                informers.push(super::super::loops::informer_of(&state.informers, t));
            }
        }
        let this = Arc::new(self);
        let reconciler = Whole::new(informers, move || {
            let this = this.clone();
            async move { this.reconcile().await.map_or_else(|error| Action::Retry(error.to_string()), |()| Action::Done) }
        });
        let leadership = state.objects.node().leadership();
        let settings = ("kubernetes-service", 1, RECONCILE_INTERVAL);
        super::super::loops::run_loop(state, Arc::new(reconciler), settings, leadership, stop).await;
    }

    /// One pass: the Service, then the endpoints of the registered API
    /// servers.
    ///
    /// # Errors
    /// Store failures and refused writes.
    pub async fn reconcile(&self) -> Result<(), Refused> {
        self.objects.read_barrier().await?;
        let servers = registered(&self.objects)?;
        let Some(&(_, port)) = servers.iter().next() else { return Ok(()) };
        let network = self.objects.service_network()?;
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": network.kubernetes_address().to_string(),
                "sessionAffinity": "None",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            },
        });
        self.ensure("", "v1", "services", service, &["/spec/ports"]).await?;
        let endpoints: Vec<Value> = servers
            .iter()
            .map(|(ip, _)| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        self.ensure("discovery.k8s.io", "v1", "endpointslices", slice, &["/endpoints", "/ports"]).await?;
        let addresses: Vec<Value> = servers.iter().map(|(ip, _)| json!({"ip": ip.to_string()})).collect();
        let legacy = json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        });
        self.ensure("", "v1", "endpoints", legacy, &["/subsets"]).await
    }

    /// Creates `desired`, or patches the fields at `owned` of the existing
    /// object to the desired ones where they differ.
    async fn ensure(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        desired: Value,
        owned: &[&str],
    ) -> Result<(), Refused> {
        let registry = self.registry.current();
        let t = registry.find(group, version, plural).expect("built-in kinds are registered");
        let name = "kubernetes";
        let current = match self.objects.get(t, Some("default"), name).await {
            Ok(current) => current,
            Err(error) if error.code == 404 => {
                return match self.client.create(t, Some("default"), desired.to_string().into_bytes()).await {
                    Ok(_) => Ok(()),
                    Err(refused) if refused.reason == "AlreadyExists" => Ok(()),
                    Err(refused) => Err(refused),
                };
            }
            Err(error) => return Err(error.into()),
        };
        if owned.iter().all(|pointer| current.pointer(pointer) == desired.pointer(pointer)) {
            return Ok(());
        }
        let patch = owned_fields(&desired, owned);
        let body = (PatchType::Merge, patch.to_string().into_bytes());
        self.client.patch(t, Some("default"), name, None, body).await.map(|_| ())
    }
}

/// A merge patch setting the fields of `desired` at each of `pointers`
/// (arrays, which a merge patch replaces whole).
fn owned_fields(desired: &Value, pointers: &[&str]) -> Value {
    let mut patch = json!({});
    for pointer in pointers {
        let mut at = &mut patch;
        let mut steps = pointer.trim_start_matches('/').split('/').peekable();
        while let Some(step) = steps.next() {
            if steps.peek().is_none() {
                at[step] = desired.pointer(pointer).cloned().unwrap_or(Value::Null);
            } else {
                at = &mut at[step];
            }
        }
    }
    patch
}

/// The registered API servers with IPv4 addresses, by address, at most
/// [`APISERVERS_MAX`]; each address once.
fn registered(objects: &ObjectStore) -> Result<BTreeSet<(Ipv4Addr, u16)>, ApiError> {
    let request = RangeRequest { range: KeyRange::prefix(APISERVERS_PREFIX), ..RangeRequest::default() };
    let (_, found) = objects.node().store().range(&request)?;
    let mut servers = BTreeSet::new();
    for kv in &found.kvs {
        let Ok(value) = serde_json::from_slice::<Value>(&kv.value) else { continue };
        let address = value["address"].as_str().and_then(|a| a.parse::<Ipv4Addr>().ok());
        let port = value["port"].as_u64().and_then(|p| u16::try_from(p).ok());
        if let (Some(address), Some(port)) = (address, port)
            && servers.len() < APISERVERS_MAX
            && !servers.iter().any(|(known, _)| *known == address)
        {
            servers.insert((address, port));
        }
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_fields_patch_only_the_pointers_given() {
        let desired = json!({"metadata": {"name": "kubernetes"}, "spec": {"ports": [{"port": 443}], "type": "ClusterIP"},
            "endpoints": [{"addresses": ["10.0.0.1"]}]});
        let patch = owned_fields(&desired, &["/spec/ports", "/endpoints"]);
        assert_eq!(patch, json!({"spec": {"ports": [{"port": 443}]}, "endpoints": [{"addresses": ["10.0.0.1"]}]}));
        assert_eq!(owned_fields(&desired, &["/subsets"]), json!({"subsets": null}));
    }
}
