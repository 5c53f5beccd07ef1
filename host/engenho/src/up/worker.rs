//! `engenho up --worker`: a node that holds no replica of the store. It
//! joins with the cluster's token for a worker's certificate (never the CA
//! key), gossips, runs its agent and its pods, and reaches the cluster's
//! API through a control-plane node's API server as itself
//! (`system:node:<name>`), so every write it makes passes the API's
//! authentication, RBAC, NodeRestriction, admission and validation. The
//! control-plane nodes gossip their API addresses; the worker prefers a
//! voter's and moves to another when one stops answering. Its peer port
//! serves the control plane's API servers only, and only its pods' logs
//! and ports. When the autopilot raises it to standby (the annotation
//! `engenho.io/raise: standby` on its Node), it obtains a replica's
//! credentials from a control-plane node with its worker certificate,
//! stops, and the node goes on as a replica joining there.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use engenho_api::kube::ApiClient;
use engenho_api::kube::remote::{ApiSource, RemoteApi};
use engenho_gossip::{Gossip, NodeState};
use engenho_mesh::{RaiseRequest, WorkerCredentials, fetch_raised_credentials, fetch_worker_credentials};
use engenho_pki::{CA_CERTIFICATE_FILE, Identity};

use super::{UpArgs, host_name, join_cluster, node_agent, pod_loop, shutdown_signal, supplied_token, with_join_check};
use crate::autopilot::RAISE_ANNOTATION;

/// How often the worker reads from gossip which control-plane API servers
/// are live.
const SERVERS_REFRESH_INTERVAL: Duration = Duration::from_millis(500);

/// File of the control plane's peer addresses a worker last knew: its
/// gossip seeds when it starts again.
const CONTROL_PLANE_FILE: &str = "control-plane-peers";

/// Field manager of the worker agent's writes.
const MANAGER: &str = "engenho-node";

/// How often the worker looks at its Node for a raise.
const RAISE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How a worker's run ended.
pub(super) enum Ended {
    /// Ctrl-C or SIGTERM.
    Stopped,
    /// The autopilot raised it to standby, and the control-plane node at
    /// `seed` (a peer address) granted it a replica's credentials: it is
    /// to join there as a replica.
    Raised {
        /// The peer address of the node that granted the credentials.
        seed: String,
    },
}

/// The control plane as gossip shows it: the live control-plane nodes' API
/// and peer addresses, voters first.
#[derive(Default)]
struct ControlPlane {
    servers: Vec<SocketAddr>,
    peers: Vec<String>,
}

/// Runs a worker until Ctrl-C or SIGTERM, or until it is raised to
/// standby.
pub(super) async fn run(args: &UpArgs) -> anyhow::Result<Ended> {
    let name = args.name.clone().unwrap_or_else(host_name);
    engenho_store::secure_data_dir(&args.data_dir)
        .with_context(|| format!("securing the data directory {}", args.data_dir.display()))?;
    let peer_listener = tokio::net::TcpListener::bind(args.peer_addr)
        .await
        .with_context(|| format!("binding peer address {}", args.peer_addr))?;
    let credentials = credentials(args, &name).await?;
    let control_plane: Arc<RwLock<ControlPlane>> = Arc::default();
    let known = control_plane.clone();
    let remote = RemoteApi::new(
        &credentials.identity,
        &credentials.ca,
        Arc::new(move || known.read().expect("control plane lock").servers.clone()),
    )
    .context("the worker's TLS credentials")?;
    let client = ApiClient::remote(Arc::new(remote), MANAGER);

    let seeds_path = args.data_dir.join(CONTROL_PLANE_FILE);
    let mut seeds = read_seeds(&seeds_path);
    seeds.extend(args.join.iter().filter_map(|seed| seed.parse::<SocketAddr>().ok()));
    let state = NodeState {
        peer: args.peer_addr.to_string(),
        api: String::new(),
        role: "worker".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        raft_applied: 0,
    };
    let gossip = crate::gossip::start_as(&name, seeds, &credentials.identity, &credentials.ca, args.peer_addr, &state)
        .await
        .context("a worker reaches the control plane through gossip, which did not start")?;

    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let follow = tokio::spawn(follow_control_plane(gossip.clone(), control_plane.clone(), seeds_path, stop.clone()));
    let agent = node_agent(args, &name, client.clone(), Arc::new(|| engenho_node::NodeRole::Worker));
    let agent = tokio::spawn(agent.run(stop.clone()));
    let source = ApiSource::new(client.clone(), "", "pods", &format!("spec.nodeName={name}"))
        .context("pods are a built-in kind")?;
    let pods = engenho_control::Informer::of("pods", engenho_control::Source::Remote(Arc::new(source)), true);
    let informer = tokio::spawn(pods.clone().run(stop.clone()));
    let metrics = Arc::new(engenho_control::metrics::ControllerMetrics::default());
    let (pod_loop, access) = pod_loop(args, &name, client.clone(), pods, metrics, stop.clone())?;
    let pod_loop = tokio::spawn(pod_loop);
    let port = engenho_api::kube::remote::agent_port(client.clone(), access.logs, access.ports);
    let connections = engenho_mesh::agent_port_connections(peer_listener, &credentials.identity, &credentials.ca)?;
    let peer_server = tokio::spawn(super::serve(tonic::service::Routes::new(port.server()), connections, stop.clone()));
    tracing::info!(%name, peer = %args.peer_addr, "engenho worker ready");

    let raise = Raise { args, name: &name, client: &client, credentials: &credentials, control_plane: &control_plane };
    let ended = tokio::select! {
        () = shutdown_signal() => Ended::Stopped,
        seed = raise.granted() => Ended::Raised { seed },
    };
    tracing::info!("stopping the worker");
    stop_sender.send_replace(true);
    for task in [agent, informer, pod_loop, follow] {
        let _ = task.await;
    }
    gossip.stop();
    match tokio::time::timeout(super::SHUTDOWN_GRACE, peer_server).await {
        Ok(finished) => finished.context("peer server task")?.context("peer server")?,
        Err(_) => tracing::warn!("streams still open after {:?}; closing them", super::SHUTDOWN_GRACE),
    }
    Ok(ended)
}

/// What a worker needs to become a replica when the autopilot raises it.
struct Raise<'a> {
    args: &'a UpArgs,
    name: &'a str,
    client: &'a ApiClient,
    credentials: &'a WorkerCredentials,
    control_plane: &'a RwLock<ControlPlane>,
}

impl Raise<'_> {
    /// Waits until the autopilot raises this worker (the annotation on its
    /// Node), then obtains a replica's credentials from a control-plane
    /// node, proving who it is with its certificate; that node's peer
    /// address.
    async fn granted(&self) -> String {
        let path = format!("/api/v1/nodes/{}", self.name);
        loop {
            tokio::time::sleep(RAISE_POLL_INTERVAL).await;
            let Ok(body) = self.client.send(http::Method::GET, &path, "application/json", Vec::new()).await else {
                continue;
            };
            let node: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let annotation = node.pointer("/metadata/annotations").and_then(|a| a.get(RAISE_ANNOTATION));
            if annotation.and_then(serde_json::Value::as_str) != Some("standby") {
                continue;
            }
            let peers = self.control_plane.read().expect("control plane lock").peers.clone();
            for seed in peers {
                match self.fetch(&seed).await {
                    Ok(()) => return seed,
                    Err(error) => tracing::warn!(%seed, error = format!("{error:#}"), "raised, but not granted yet"),
                }
            }
        }
    }

    /// Obtains a replica's credentials from the control-plane node at
    /// `seed` and installs them.
    async fn fetch(&self, seed: &str) -> anyhow::Result<()> {
        let pki = self.args.data_dir.join("pki");
        let peer_addr = self.args.peer_addr.to_string();
        let granted = with_join_check(self.args, async |check| {
            let request = RaiseRequest {
                seed,
                name: self.name,
                peer_addr: &peer_addr,
                check,
                worker: &self.credentials.identity,
                ca: &self.credentials.ca,
            };
            fetch_raised_credentials(&request, &pki).await
        })
        .await?;
        granted.identity.write(&pki.join("node.crt"), &pki.join("node.key"))?;
        Ok(())
    }
}

/// The worker's certificate and the cluster CA's: from the data directory,
/// or, on first start, from the cluster it joins.
async fn credentials(args: &UpArgs, name: &str) -> anyhow::Result<WorkerCredentials> {
    let pki = args.data_dir.join("pki");
    if let Some(identity) = Identity::load(&pki.join("node.crt"), &pki.join("node.key"))? {
        let ca = engenho_pki::load_certificate(&pki.join(CA_CERTIFICATE_FILE)).context("the CA certificate")?;
        if args.join.is_some() {
            tracing::warn!("--join ignored: this data directory already belongs to a cluster");
        }
        return Ok(WorkerCredentials { ca, identity });
    }
    let seed = args.join.as_deref().context("a worker's first start needs --join ADDR and the join token")?;
    let token = supplied_token(args)?;
    let credentials =
        join_cluster(args, name, seed, token.as_deref(), async |request| fetch_worker_credentials(request, &pki).await)
            .await?;
    credentials.identity.write(&pki.join("node.crt"), &pki.join("node.key"))?;
    Ok(credentials)
}

/// Keeps `servers` to the API addresses of the live control-plane nodes
/// gossip knows (voters first, then standbys), and their peer addresses in
/// `seeds_path` for the next start, until `stop` turns true.
async fn follow_control_plane(
    gossip: Arc<Gossip>,
    control_plane: Arc<RwLock<ControlPlane>>,
    seeds_path: std::path::PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut written = Vec::new();
    loop {
        let members = gossip.members().await;
        let mut live: Vec<(bool, SocketAddr, String)> = members
            .values()
            .filter(|member| member.live)
            .filter_map(|member| member.state.as_ref())
            .filter(|state| state.role == "voter" || state.role == "learner")
            .filter_map(|state| Some((state.role != "voter", state.api.parse().ok()?, state.peer.clone())))
            .collect();
        live.sort();
        let servers: Vec<SocketAddr> = live.iter().map(|(_, api, _)| *api).collect();
        let peers: Vec<String> = live.into_iter().map(|(_, _, peer)| peer).collect();
        {
            let mut known = control_plane.write().expect("control plane lock");
            if known.servers != servers {
                tracing::info!(?servers, "control-plane API servers");
            }
            *known = ControlPlane { servers, peers: peers.clone() };
        }
        let mut peers = peers;
        peers.sort();
        if !peers.is_empty() && peers != written {
            if let Err(error) = engenho_pki::write_private(&seeds_path, &peers.join("\n")) {
                tracing::warn!(%error, "could not record the control plane's peer addresses");
            }
            written = peers;
        }
        tokio::select! {
            () = tokio::time::sleep(SERVERS_REFRESH_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Records `peers`, the control plane's peer addresses, in `data_dir`:
/// a worker's gossip seeds when it starts.
pub(super) fn record_control_plane(data_dir: &Path, peers: &[String]) -> anyhow::Result<()> {
    engenho_pki::write_private(&data_dir.join(CONTROL_PLANE_FILE), &peers.join("\n"))
        .context("recording the control plane's peer addresses")
}

/// The peer addresses recorded at `path`, if any.
fn read_seeds(path: &Path) -> Vec<SocketAddr> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
        .unwrap_or_default()
}
