//! The Kubernetes API server: HTTPS (HTTP/2 and HTTP/1.1) with bearer
//! tokens, discovery, and one generic, registry-driven path for every kind,
//! kept in the replicated store.

mod access;
mod admission;
mod apiservices;
mod apply;
mod auth;
mod client;
mod components;
mod connections;
mod controllers;
mod conversion;
mod custom;
mod defaults;
mod discovery;
mod disruption;
mod disruption_scale;
mod gc;
mod handlers;
mod limit_ranger;
mod lists;
pub mod logs;
mod loops;
pub mod mesh_status;
pub mod node_restriction;
mod objects;
mod openapi;
mod patch;
pub mod pki;
pub mod plugins;
mod policy_status;
pub mod portforward;
mod priority;
mod protobuf;
mod quota;
mod quota_scope;
mod rbac;
pub mod remote;
mod resource_quota;
mod resources;
mod reviews;
pub mod runtime_classes;
mod scale;
pub mod scheduler;
mod selectors;
pub mod services;
mod status;
#[cfg(test)]
mod strategies;
mod table;
mod validation;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use engenho_mesh::Node;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use client::{ApiClient, Refused};
pub use controllers::events::{Event, EventRecorder, Regarding};
pub use discovery::{KUBERNETES_MINOR, git_version};
pub use handlers::REQUEST_BODY_BYTES_MAX;
pub use pki::Credentials;
pub use status::{ApiError, Cause};

use handlers::ApiState;
use objects::{ObjectStore, WriteOptions};
use resources::{ResourceType, SharedRegistry};

/// Times the creation of a default object is tried while the cluster
/// cannot take writes.
const DEFAULT_OBJECT_ATTEMPTS: u32 = 5;

/// Namespaces every cluster has from its first start.
pub const DEFAULT_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The PriorityClasses every cluster has, as Kubernetes creates them:
/// (name, value, description).
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// The API server of one node.
#[derive(Clone)]
pub struct KubeApi {
    state: Arc<ApiState>,
    native_scheduler_plugins: Option<engenho_scheduling::NativePlugins>,
}

impl KubeApi {
    /// An API server over `node`, accepting `admin_token`, running its
    /// plugins in `plugin_host`.
    pub fn new(node: Node, admin_token: String, plugin_host: engenho_wasm::PluginHost) -> Self {
        let registry = SharedRegistry::default();
        let state = ApiState {
            plugin_host: Arc::new(plugin_host),
            plugins: Arc::default(),
            authorizer: rbac::Authorizer::new(node.store().clone(), &registry.current()),
            registry,
            objects: ObjectStore::new(node.clone()),
            admin_token,
            token_signer: tokio::sync::OnceCell::new(),
            watch_events: Arc::default(),
            watch_quota: Arc::default(),
            openapi: std::sync::Mutex::new(None),
            informers: engenho_control::Informers::new(node.store().clone()),
            controller_metrics: Arc::default(),
            scheduler_trials: scheduler::trial::Trials::default(),
            pod_logs: std::sync::OnceLock::new(),
            pod_ports: std::sync::OnceLock::new(),
            mesh_view: std::sync::OnceLock::new(),
            port_forwards: Arc::new(tokio::sync::Semaphore::new(portforward::SESSIONS_MAX)),
        };
        Self { state: Arc::new(state), native_scheduler_plugins: None }
    }

    /// The API server, its scheduler running the plugins `natives` holds
    /// compiled into the host in place of their components (to measure
    /// what the component boundary costs end to end).
    #[must_use]
    pub fn with_native_scheduler_plugins(mut self, natives: engenho_scheduling::NativePlugins) -> Self {
        self.native_scheduler_plugins = Some(natives);
        self
    }

    /// Creates what every cluster has from its first start and does not
    /// exist yet: the default namespaces and the bootstrap RBAC policy.
    ///
    /// # Errors
    /// The store refused or could not take the writes.
    pub async fn ensure_defaults(&self) -> Result<(), ApiError> {
        // A node that just joined reads its own replica below (a namespaced
        // default needs its namespace): it must hold what is committed.
        self.state.objects.read_barrier().await?;
        let registry = self.state.registry();
        let namespaces = registry.find("", "v1", "namespaces").expect("namespaces are built in");
        let mut defaults: Vec<(&ResourceType, Value)> = DEFAULT_NAMESPACES
            .iter()
            .map(|name| {
                let namespace = json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                });
                (namespaces, namespace)
            })
            .collect();
        for (plural, object) in rbac::bootstrap_policy() {
            let t = registry.find("rbac.authorization.k8s.io", "v1", plural).expect("RBAC kinds are built in");
            defaults.push((t, object));
        }
        let labels = json!({rbac::BOOTSTRAP_LABEL.0: rbac::BOOTSTRAP_LABEL.1});
        for (plural, object) in controllers::roles::bootstrap_objects(&labels) {
            let t = registry
                .find_plural(if plural == "serviceaccounts" { "" } else { "rbac.authorization.k8s.io" }, plural);
            defaults.push((t.expect("built in"), object));
        }
        let priority_classes = registry.find_plural("scheduling.k8s.io", "priorityclasses").expect("built in");
        defaults.extend(SYSTEM_PRIORITY_CLASSES.iter().map(|&(name, value, description)| {
            let class = json!({
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
                "description": description,
                "preemptionPolicy": "PreemptLowerPriority",
            });
            (priority_classes, class)
        }));
        let runtime_classes = registry.find_plural("node.k8s.io", "runtimeclasses").expect("built in");
        defaults.extend(runtime_classes::default_runtime_classes().into_iter().map(|class| (runtime_classes, class)));
        let definitions = registry.find_plural("apiextensions.k8s.io", "customresourcedefinitions").expect("built in");
        defaults.push((definitions, plugins::definition()));
        defaults.push((definitions, plugins::signer_definition()));
        defaults.push((definitions, scheduler::definition()));
        for (t, object) in defaults {
            let mut attempt = 1;
            loop {
                let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
                match self.state.objects.create(t, namespace, object.clone(), &WriteOptions::default()).await {
                    Ok(_) => tracing::info!(kind = t.kind, name = %object["metadata"]["name"], "created a default"),
                    Err(error) if error.reason == "AlreadyExists" => {}
                    // A leadership change (as when a restarted node steps
                    // down) leaves the outcome unknown: try again.
                    Err(error) if matches!(error.code, 503 | 504) && attempt < DEFAULT_OBJECT_ATTEMPTS => {
                        tracing::info!(kind = t.kind, %error, "retrying a default");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Err(error) => return Err(error),
                }
                break;
            }
        }
        self.state.token_signer().await?;
        self.definitions().load()?;
        // The APIServices of the groups served at start exist before the
        // node answers; the definitions' loop keeps them current after.
        apiservices::reconcile(&self.state.objects, &self.state.registry(), &self.api_server_client())
            .await
            .map_err(|refused| ApiError::internal(format!("registering the served APIServices: {refused}")))
    }

    /// The client node `name`'s agent writes with, as
    /// `system:node:<name>`: through RBAC (ClusterRole `system:node`),
    /// NodeRestriction and the rest of admission.
    pub fn node_client(&self, name: &str) -> ApiClient {
        ApiClient::new(self.router(), auth::UserInfo::node(name), "engenho-node")
    }

    /// Serves `pods/log` for the pods of `logs`'s node, to this node's
    /// clients and to the other nodes' API servers over the peer channel
    /// (once; later calls are ignored).
    pub fn serve_pod_logs(&self, logs: Arc<dyn logs::PodLogs>) {
        let _ = self.state.pod_logs.set(logs.clone());
        let streams = logs::LogStreams { pods: Arc::new(logs::StoredPods(Arc::downgrade(&self.state))), logs };
        self.state.objects.node().serve_streams(Arc::new(streams));
    }

    /// Serves `pods/portforward` for the pods of `ports`'s node, to this
    /// node's clients and, through tunnels over the peer channel, to the
    /// other nodes' API servers (once; later calls are ignored).
    pub fn serve_pod_ports(&self, ports: Arc<dyn portforward::PodPorts>) {
        let _ = self.state.pod_ports.set(ports.clone());
        let pods = Arc::new(logs::StoredPods(Arc::downgrade(&self.state)));
        self.state.objects.node().serve_tunnels(Arc::new(portforward::PortTunnels { pods, ports }));
    }

    /// Serves `/mesh/status` from `view` (once; later calls are ignored).
    pub fn serve_mesh_status(&self, view: Arc<dyn mesh_status::MeshView>) {
        let _ = self.state.mesh_view.set(view);
    }

    /// This node's informer of pods (started on first use), shared with
    /// every loop of the node.
    pub fn pod_informer(&self) -> Arc<engenho_control::Informer> {
        let registry = self.state.registry();
        let pods = registry.find_plural("", "pods").expect("pods are built in");
        loops::informer_of(&self.state.informers, pods)
    }

    /// A recorder of Events written as loop `name`
    /// (`system:serviceaccount:kube-system:<name>`, authorized by its
    /// ClusterRole `system:controller:<name>`), for the loops that run
    /// outside the API server.
    pub fn loop_events(&self, name: &str) -> EventRecorder {
        EventRecorder::start(self.loop_client(name), self.state.registry.clone(), name)
    }

    /// The client loop `name` reads and writes with, as
    /// `system:serviceaccount:kube-system:<name>`, for the loops that run
    /// outside the API server.
    pub fn loop_client(&self, name: &str) -> ApiClient {
        client::ApiClient::new(self.router(), controllers::identity(name), name)
    }

    /// The metrics of loop `name`, published on `/metrics` with every
    /// other loop's.
    pub fn loop_metrics(&self, name: &str) -> Arc<engenho_control::metrics::ControllerMetrics> {
        self.state.controller_metrics.controller(name)
    }

    /// The client the API server's own loops write with, as
    /// `system:apiserver`.
    fn api_server_client(&self) -> client::ApiClient {
        client::ApiClient::new(self.router(), auth::UserInfo::api_server(), services::MANAGER)
    }

    /// Installs the built-in admission policies and controllers that are
    /// not installed yet, signed by `signer`, whose public key becomes the
    /// first trusted signer when the cluster is new; `ca_pem` is the
    /// cluster's CA bundle, which every namespace gets.
    ///
    /// # Errors
    /// The store refused the writes.
    pub async fn install_built_in_plugins(&self, signer: &plugins::SigningKey, ca_pem: &str) -> Result<(), ApiError> {
        plugins::install_built_ins(&self.state.objects, &self.state.registry(), signer, ca_pem).await
    }

    /// Loads the admission policies of the Plugin objects now, so that no
    /// request is admitted before they are active.
    pub async fn load_plugins(&self) {
        self.plugin_controller().reconcile().await;
    }

    fn plugin_controller(&self) -> plugins::PluginController {
        plugins::PluginController::new(
            self.state.objects.clone(),
            self.state.registry.clone(),
            self.state.plugin_host.clone(),
            self.state.plugins.clone(),
            self.plugin_status_client(),
        )
    }

    /// The client the plugin loops write Plugins' status with.
    fn plugin_status_client(&self) -> client::ApiClient {
        let writer = plugins::STATUS_WRITER;
        client::ApiClient::new(self.router(), controllers::identity(writer), writer)
    }

    /// Runs what keeps the served state whole until `stop` turns true: the
    /// custom kinds of CustomResourceDefinitions, and garbage collection
    /// (dependents of deleted owners, contents of deleted namespaces), and
    /// the status of ResourceQuotas and PodDisruptionBudgets.
    pub async fn run_controllers(&self, stop: tokio::sync::watch::Receiver<bool>) {
        let router = self.router();
        let state = &self.state;
        let gc_client = client::ApiClient::new(router.clone(), controllers::identity(gc::NAME), gc::NAME);
        let collector = gc::Collector::new(gc::informer(&state.informers), state.registry.clone(), gc_client);
        let gc_loop = (gc::NAME, 4, gc::RESYNC_PERIOD);
        let leadership = state.objects.node().leadership();
        let everything = gc::informer(&state.informers);
        let policy_status = policy_status::PolicyStatus::new(
            state.objects.clone(),
            state.registry.clone(),
            everything,
            &state.informers,
            &router,
        );
        let policy_loop = ("resourcequota-and-disruption", 2, policy_status::RESYNC_INTERVAL);
        let components =
            Arc::new(controllers::Controllers::new(state.clone(), router.clone(), self.plugin_status_client()));
        let scheduler = scheduler::SchedulerLoop::new(state.clone(), router, self.native_scheduler_plugins.clone());
        tokio::join!(
            Arc::new(self.definitions()).run(state, stop.clone()),
            loops::run_loop(state, Arc::new(collector), gc_loop, leadership.clone(), stop.clone()),
            self.plugin_controller().run(state, stop.clone()),
            loops::run_loop(state, Arc::new(policy_status), policy_loop, leadership.clone(), stop.clone()),
            components.run(stop.clone()),
            scheduler.run(stop)
        );
    }

    /// Settles the cluster's service network: the one stored for the
    /// cluster, or, when none is yet (a new cluster), `requested` with
    /// defaults for what it leaves out, stored for every later node.
    ///
    /// # Errors
    /// A malformed setting; a setting `requested` that differs from the
    /// cluster's; the store could not be read or written.
    pub async fn settle_service_network(
        &self,
        requested: &services::Requested,
    ) -> Result<services::ServiceNetwork, services::NetworkError> {
        let wanted = requested.network()?;
        let not_settled = |reason: String| services::NetworkError::NotSettled { reason };
        let stored = self
            .state
            .objects
            .get_or_create_raw(services::SERVICE_NETWORK_KEY, || serde_json::to_vec(&wanted).expect("JSON encodes"))
            .await
            .map_err(|e| not_settled(e.message))?;
        let cluster: services::ServiceNetwork =
            serde_json::from_slice(&stored).map_err(|e| not_settled(format!("the stored setting: {e}")))?;
        requested.check(&cluster)?;
        self.state.objects.set_service_network(cluster);
        Ok(cluster)
    }

    /// Runs until `stop` turns true: this API server's registration as
    /// reachable at `advertised` (renewing `lease_opt`, or registering
    /// anew without one), and (on the raft
    /// leader) the loop that keeps the `kubernetes` Service pointing at
    /// every registered API server.
    pub async fn run_service_network(
        &self,
        advertised: std::net::SocketAddr,
        lease_opt: Option<i64>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let registration = services::ApiServerRegistration::new(self.state.objects.clone(), advertised);
        let service = services::KubernetesService::new(
            self.state.objects.clone(),
            self.state.registry.clone(),
            self.api_server_client(),
        );
        tokio::join!(registration.run(lease_opt, stop.clone()), service.run(&self.state, stop));
    }

    /// Registers this API server at `advertised` and, on the leader, brings
    /// the `kubernetes` Service in line, before the node answers; the
    /// registration's lease, for [`KubeApi::run_service_network`] to renew.
    ///
    /// # Errors
    /// Store failures and refused writes.
    pub async fn register_api_server(&self, advertised: std::net::SocketAddr) -> Result<i64, ApiError> {
        let registration = services::ApiServerRegistration::new(self.state.objects.clone(), advertised);
        let lease = registration.renew(None).await?;
        if self.state.objects.is_leader() {
            services::KubernetesService::new(
                self.state.objects.clone(),
                self.state.registry.clone(),
                self.api_server_client(),
            )
            .reconcile()
            .await
            .map_err(|refused| ApiError::internal(format!("the kubernetes Service: {refused}")))?;
        }
        Ok(lease)
    }

    fn definitions(&self) -> custom::Definitions {
        let writer = custom::STATUS_WRITER;
        let client = client::ApiClient::new(self.router(), controllers::identity(writer), writer);
        custom::Definitions::new(
            self.state.objects.clone(),
            self.state.registry.clone(),
            client,
            self.api_server_client(),
        )
    }

    /// The HTTP routes, behind authentication and authorization.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/version", axum::routing::get(handlers::version))
            .route("/metrics", axum::routing::get(handlers::metrics))
            .route("/mesh/status", axum::routing::get(mesh_status::serve))
            .route("/mesh/chain", axum::routing::get(mesh_status::serve_chain))
            .route("/openapi/v2", axum::routing::get(handlers::openapi_legacy))
            .route("/openapi/v3", axum::routing::get(handlers::openapi_index))
            .route("/openapi/v3/{*path}", axum::routing::get(handlers::openapi_document))
            .route("/api", axum::routing::any(handlers::serve))
            .route("/api/{*rest}", axum::routing::any(handlers::serve))
            .route("/apis", axum::routing::any(handlers::serve))
            .route("/apis/{*rest}", axum::routing::any(handlers::serve))
            .fallback(|request: Request| async move { ApiError::no_route(request.uri().path()).into_response() })
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), access::guard))
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/livez", axum::routing::get(|| async { "ok" }))
            .route("/readyz", axum::routing::get(|| async { "ok" }))
            .with_state(self.state.clone())
    }

    /// Serves HTTPS on `listener` until `stop` turns true.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        connections::serve(listener, TlsAcceptor::from(tls), self.router(), stop).await;
    }
}
