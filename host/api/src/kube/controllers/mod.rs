//! Controllers as components: every Plugin of the `controller-plugin`
//! world runs as a control loop on the shared controller runtime
//! (`engenho-control`), on the raft leader, writing as its own service
//! account (`system:serviceaccount:kube-system:<plugin name>`) through the
//! API server's write path.
//!
//! Every node loads the controllers (so a new leader starts at once); a
//! changed Plugin is loaded beside the running version and swapped in (the
//! reconciles in flight finish on the old one; the queue, and with it
//! every key, carries over). A version that fails to load is refused and
//! the running one kept; one that fails its first calls is rolled back.
//! Both show on the Plugin's status.

mod component;
pub(super) mod events;
pub mod roles;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use engenho_control::controller::{Settings, run};
use engenho_control::{Action, Whole, everywhere};
use engenho_wasm::ControllerPlugin;
use serde_json::Value;
use tokio::sync::watch;

use super::auth::UserInfo;
use super::client::ApiClient;
use super::handlers::ApiState;
use super::plugins::{self, CONTROLLER_WORLD, Condition, GROUP, PluginSpec, TrustRoot};
use component::ComponentLoop;
use events::EventRecorder;

/// The namespace of the controllers' service accounts.
pub const CONTROLLER_NAMESPACE: &str = "kube-system";

/// Keys a controller reconciles at once unless its Plugin says otherwise.
const DEFAULT_WORKERS: usize = 4;

/// How often the controller Plugins are looked at again without a change
/// (a version rolled back shows on its Plugin within this).
const ROLLBACK_REPORT_PERIOD: Duration = Duration::from_secs(5);

/// How often a controller queues every object it reconciles again.
const RESYNC_PERIOD: Duration = Duration::from_secs(300);

/// The identity controller `name` acts as.
pub fn identity(name: &str) -> UserInfo {
    UserInfo::service_account(CONTROLLER_NAMESPACE, name, "")
}

/// A controller running on this node (leading or waiting to).
struct Running {
    spec: PluginSpec,
    component: Arc<ComponentLoop>,
    stop: watch::Sender<bool>,
    /// The condition for its status, when not simply active.
    trouble: Option<Condition>,
}

/// Runs the controller Plugins of the cluster.
pub struct Controllers {
    state: Arc<ApiState>,
    router: Router,
    status: ApiClient,
    running: Mutex<HashMap<String, Running>>,
    /// Plugins refused with no version running, and why: not tried again
    /// until they change.
    refused: Mutex<HashMap<String, (PluginSpec, String)>>,
}

impl Controllers {
    /// Controllers writing through `router`, and their Plugins' status
    /// through `status`.
    pub fn new(state: Arc<ApiState>, router: Router, status: ApiClient) -> Self {
        Self { state, router, status, running: Mutex::default(), refused: Mutex::default() }
    }

    /// Follows the controller Plugins until `stop` turns true (a loop on the
    /// controller runtime, on every node, over the informers of the Plugins,
    /// the trusted signers and the stored components); then stops every
    /// controller's loop (letting the reconciles in flight finish).
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        if let Some(informers) = plugins::plugin_informers(&self.state) {
            let this = self.clone();
            let reconciler = Whole::new(informers, move || {
                let this = this.clone();
                async move {
                    this.reconcile().await;
                    Action::Done
                }
            });
            // Short, so that a rollback shows on its Plugin soon.
            let settings = ("controller-plugins", 1, ROLLBACK_REPORT_PERIOD);
            super::loops::run_loop(&self.state, Arc::new(reconciler), settings, everywhere(), stop).await;
        }
        let running: Vec<Running> = self.lock().drain().map(|(_, running)| running).collect();
        for running in running {
            running.stop.send_replace(true);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads what changed, swaps it in, stops the loops of Plugins that
    /// are gone, and (on the leader) reports each one's state.
    async fn reconcile(&self) {
        let registry = self.state.registry();
        let Some(plugins_type) = registry.find_plural(GROUP, "plugins").cloned() else { return };
        let Ok(listed) = self.state.objects.list_at(&plugins_type, None, 0) else { return };
        let trust = TrustRoot::read(&self.state.objects, &registry);
        let mut present = Vec::new();
        for object in &listed.items {
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let spec: PluginSpec =
                object.get("spec").cloned().and_then(|s| serde_json::from_value(s).ok()).unwrap_or_default();
            if spec.world != CONTROLLER_WORLD {
                continue;
            }
            present.push(name.clone());
            let condition = self.settle(&name, &spec, &trust).await;
            if self.state.objects.is_leader() {
                plugins::report(&self.status, &plugins_type, object, &spec, condition).await;
            }
        }
        let gone: Vec<Running> = {
            let mut running = self.lock();
            self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|n, _| present.contains(n));
            let names: Vec<String> = running.keys().filter(|n| !present.contains(n)).cloned().collect();
            names.iter().filter_map(|name| running.remove(name)).collect()
        };
        for running in gone {
            running.stop.send_replace(true);
        }
    }

    /// Brings controller `name` in line with `spec`; the condition for its
    /// status.
    async fn settle(&self, name: &str, spec: &PluginSpec, trust: &TrustRoot) -> Condition {
        let signers = match trust {
            TrustRoot::Known(signers) => signers,
            TrustRoot::Unknown(reason) => {
                return ("False", "SignersUnreadable", format!("the trusted plugin signers cannot be read: {reason}"));
            }
        };
        let (same, trouble) = {
            let mut running = self.lock();
            match running.get_mut(name) {
                Some(running) => {
                    if let Some(rolled) = running.component.take_rolled_back() {
                        let message = format!(
                            "version {} failed its first calls and was rolled back: {}",
                            rolled.digest, rolled.reason
                        );
                        running.trouble = Some(("False", "RolledBack", message));
                    }
                    (running.spec == *spec, running.trouble.clone())
                }
                None => (false, None),
            }
        };
        if same {
            if let Err(error) = plugins::verify_signature(name, spec, signers) {
                self.stop(name);
                return ("False", "Refused", error);
            }
            return trouble.unwrap_or_else(|| active(spec));
        }
        {
            let mut refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((refused_spec, error)) = refused.get(name)
                && refused_spec == spec
            {
                return ("False", "Refused", error.clone());
            }
            refused.remove(name);
        }
        match self.load(name, spec, signers).await {
            Ok(plugin) => self.start_or_swap(name, spec, plugin),
            Err(error) => {
                tracing::warn!(controller = name, %error, "a controller was refused");
                // Refused once: not tried again until the Plugin changes.
                match self.lock().get_mut(name) {
                    Some(running) => {
                        running.spec = spec.clone();
                        running.trouble = Some(("False", "Refused", error.clone()));
                    }
                    None => {
                        let mut refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        refused.insert(name.to_owned(), (spec.clone(), error.clone()));
                    }
                }
                ("False", "Refused", error)
            }
        }
    }

    fn stop(&self, name: &str) {
        if let Some(running) = self.lock().remove(name) {
            running.stop.send_replace(true);
        }
    }

    async fn load(&self, name: &str, spec: &PluginSpec, signers: &[Vec<u8>]) -> Result<ControllerPlugin, String> {
        plugins::verify_signature(name, spec, signers)?;
        let bytes = plugins::load_component(&self.state.objects, &spec.digest)
            .map_err(|e| e.message)?
            .ok_or_else(|| format!("no component with digest {} has been pushed", spec.digest))?;
        let workers = workers(spec);
        ControllerPlugin::load(
            &self.state.plugin_host,
            name,
            &spec.digest,
            &bytes,
            &spec.config_json(),
            spec.call_limits(),
            workers,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Swaps `plugin` into the running loop of `name` when it watches the
    /// same; starts a loop for it otherwise (stopping the old one).
    fn start_or_swap(&self, name: &str, spec: &PluginSpec, plugin: ControllerPlugin) -> Condition {
        let plugin = Arc::new(plugin);
        let mut running = self.lock();
        if let Some(current) = running.get_mut(name)
            && current.component.watches(plugin.interests())
            && workers(&current.spec) == workers(spec)
        {
            current.component.swap(plugin);
            current.spec = spec.clone();
            current.trouble = None;
            tracing::info!(controller = name, digest = spec.digest, "controller swapped");
            return active(spec);
        }
        if let Some(old) = running.remove(name) {
            old.stop.send_replace(true);
        }
        let client = ApiClient::new(self.router.clone(), identity(name), name);
        let events = EventRecorder::start(client.clone(), self.state.registry.clone(), name);
        let component = match ComponentLoop::new(name, self.state.clone(), plugin, client, events) {
            Ok(component) => Arc::new(component),
            Err(error) => return ("False", "Refused", format!("its interests cannot be served: {error}")),
        };
        let (stop, stopped) = watch::channel(false);
        let settings = Settings::new(name, workers(spec), RESYNC_PERIOD);
        let metrics = self.state.controller_metrics.controller(name);
        let leadership = self.state.objects.node().leadership();
        tokio::spawn(run(component.clone(), settings, metrics, leadership, stopped));
        running.insert(name.to_owned(), Running { spec: spec.clone(), component, stop, trouble: None });
        tracing::info!(controller = name, digest = spec.digest, "controller started");
        active(spec)
    }
}

fn workers(spec: &PluginSpec) -> usize {
    spec.controller.workers.unwrap_or(DEFAULT_WORKERS).clamp(1, 16)
}

fn active(spec: &PluginSpec) -> Condition {
    ("True", "Active", format!("component {} is active", spec.digest))
}
