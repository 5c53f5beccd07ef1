//! `engenho up`: run a node.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engenho_api::etcd::{Facade, FacadeConfig};
use engenho_api::kube::plugins::SigningKey;
use engenho_api::kube::services::{Requested, SERVICE_NETWORK_KEY, ServiceNetwork};
use engenho_api::kube::{ApiError, Credentials, KubeApi};
use engenho_mesh::{
    ClusterSettings, JoinCheck, JoinRequest, Joined, Node, NodeConfig, PeerCredentials, PeerService, fetch_credentials,
    split_peer_connections,
};
use engenho_pki::{ClusterCa, HTTP2_ALPN, HandshakeLimits, Identity, JoinToken, Profile, accept_tls};
use tokio::net::TcpListener;

mod worker;

/// Times a restarted node tries to record its join token's hash.
const JOIN_TOKEN_ATTEMPTS: u32 = 5;

/// How long a stopping node waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Longest a raised worker waits for its sockets to close before it binds
/// them again as a replica.
const SOCKETS_RELEASED_WITHIN: Duration = Duration::from_secs(10);

/// Most concurrent HTTP/2 streams per client connection.
const STREAMS_PER_CONNECTION_MAX: u32 = 1024;

/// Environment variable that may hold the join token (or, when
/// bootstrapping, the secret to use).
const JOIN_TOKEN_ENV: &str = "ENGENHO_JOIN_TOKEN";

/// How long a starting node keeps trying its first writes (the defaults,
/// the built-in plugins) while the cluster cannot commit them in time: an
/// election under way, a leader too busy to confirm itself.
const STARTUP_WRITES_DEADLINE: Duration = Duration::from_secs(120);

/// Bounds on the etcd endpoint's TLS handshakes: a client that connects and
/// stays silent is closed after a few seconds.
const ETCD_HANDSHAKE_LIMITS: HandshakeLimits = HandshakeLimits { timeout: Duration::from_secs(5), in_flight_max: 1024 };

/// Arguments of `engenho up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Data directory; a new one bootstraps a new cluster (or joins one with --join).
    #[arg(long)]
    data_dir: PathBuf,
    /// Node name (defaults to the host name).
    #[arg(long)]
    name: Option<String>,
    /// Address of the Kubernetes API server (HTTPS).
    #[arg(long, default_value = "127.0.0.1:6443")]
    api_addr: SocketAddr,
    /// Address of the etcd v3 gRPC endpoint.
    #[arg(long, default_value = "127.0.0.1:2379")]
    etcd_addr: SocketAddr,
    /// Address of the peer endpoint (raft traffic between nodes).
    #[arg(long, default_value = "127.0.0.1:2380")]
    peer_addr: SocketAddr,
    /// Peer address of a node of the cluster to join (first start only);
    /// needs the cluster's join token (DIR/join-token of a member) from
    /// --token-file or ENGENHO_JOIN_TOKEN.
    #[arg(long)]
    join: Option<String>,
    /// File holding the join token to present with --join, or the secret to
    /// use when bootstrapping (default: random). ENGENHO_JOIN_TOKEN may hold
    /// it instead; never on the command line, where `ps` would show it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Build a raft snapshot after this many log entries (etcd's default
    /// snapshot count).
    #[arg(long, default_value_t = 100_000)]
    snapshot_logs: u64,
    /// Revisions of history kept for past reads and watch replay (0: keep all).
    #[arg(long, default_value_t = 100_000)]
    history_revisions: i64,
    /// Seconds between checks whether history needs compacting.
    #[arg(long, default_value_t = 60)]
    compaction_interval: u64,
    /// Worker threads of the datastore's runtime (raft, its log and state
    /// machine, the peer and etcd endpoints); the API server, controllers
    /// and plugins run on the node's other runtime.
    #[arg(long, env = "ENGENHO_STORE_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    store_threads: u16,
    /// Seconds between progress notifications to watchers that ask for them.
    #[arg(long, default_value_t = 600)]
    watch_progress_interval: u64,
    /// IPv4 range Services' cluster IPs come from, for the whole cluster
    /// (default 10.43.0.0/16). Taken from the first node; a later node may
    /// leave it out, and refuses to start (a joining node: before it joins)
    /// if it names another range.
    #[arg(long)]
    service_cidr: Option<String>,
    /// Ports NodePort and LoadBalancer Services' node ports come from, for
    /// the whole cluster (default 30000-32767); as --service-cidr.
    #[arg(long)]
    service_node_port_range: Option<String>,
    /// The most pods this node runs.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Resources set aside for the system, taken off the node's
    /// allocatable: e.g. `cpu=100m,memory=256Mi,ephemeral-storage=1Gi`.
    #[arg(long, default_value = "")]
    system_reserved: engenho_node::Reserved,
    /// Taints the node's Node is created with, as the kubelet's flag:
    /// `key=value:NoSchedule,key:NoExecute`.
    #[arg(long, default_value = "")]
    register_with_taints: engenho_node::RegisterTaints,
    /// Hard eviction thresholds, as the kubelet's flag: below one the node
    /// reports that pressure (memory's and the disk's are also taken off
    /// allocatable). Default `memory.available<100Mi,nodefs.available<10%,
    /// pid.available<10%`; signals not given keep theirs.
    #[arg(long, default_value = "")]
    eviction_hard: engenho_node::EvictionHard,
    /// The addresses this node gives its pods, a range within
    /// 127.0.0.0/8 (`127.244.0.0/16`). Default: the rest of the node's /24
    /// when the node is on a loopback address, else 127.244.0.0/16.
    #[arg(long, value_parser = engenho_node::pods::addresses::PodAddresses::parse_range)]
    pod_range: Option<(std::net::Ipv4Addr, u8)>,
    /// Voters (control-plane nodes) the cluster keeps: `auto` (1 for 1–2
    /// nodes, 3 for 3–6, 5 for 7 or more) or a number. The autopilot of
    /// whichever node leads applies its own node's settings: give every
    /// node the same.
    #[arg(long, default_value = "auto")]
    voters: engenho_autopilot::VoterTarget,
    /// A member that raft and gossip both report dead this long has failed:
    /// a failed voter is replaced by a learner, then demoted.
    #[arg(long, default_value = "1s", value_parser = crate::autopilot::parse_duration)]
    dead_grace: Duration,
    /// A member failed this long is removed from the cluster.
    #[arg(long, default_value = "10m", value_parser = crate::autopilot::parse_duration)]
    remove_after: Duration,
    /// The least time between two role shifts of one node.
    #[arg(long, default_value = "60s", value_parser = crate::autopilot::parse_duration)]
    shift_interval: Duration,
    /// Standby replicas (learners) the cluster keeps beyond its voters:
    /// the autopilot lowers surplus ones to workers, and a node that joins
    /// through this one without --worker is a replica while the cluster
    /// has fewer members than the most voters it wants (5 with `--voters
    /// auto`) plus these, else a worker.
    #[arg(long, default_value_t = 2)]
    standbys: usize,
    /// Join as a worker (first start): no replica of the store and no API
    /// or etcd port; the node gossips, runs its pods and reaches the
    /// cluster's API through the control plane. Needs --join and the join
    /// token. Later starts run as what the data directory holds.
    #[arg(long)]
    worker: bool,
    /// Run the built-in scheduler plugins compiled into this binary in
    /// place of their components (the profiles are checked and loaded as
    /// always; other plugins still run as components): how `engenho bench
    /// scheduler` measures what the component boundary costs end to end.
    #[arg(long)]
    native_scheduler_plugins: bool,
}

/// Runs a node until Ctrl-C or SIGTERM: as a replica or a worker, as its
/// data directory (on a first start, `--worker` or the cluster joined)
/// says, going on as the other in the same process when the autopilot
/// raises or lowers it.
pub async fn run(mut args: UpArgs) -> anyhow::Result<()> {
    let mut start = start_as(&args).await?;
    loop {
        start = match start {
            Start::Worker => match worker::run(&args).await? {
                worker::Ended::Stopped => return Ok(()),
                worker::Ended::Raised { seed } => {
                    tracing::info!(%seed, "raised to standby: joining as a replica");
                    args.join = Some(seed);
                    until_free(args.peer_addr).await?;
                    Start::Replica(None)
                }
            },
            Start::Replica(joined) => match replica(&args, joined).await? {
                ReplicaEnded::Stopped => return Ok(()),
                ReplicaEnded::Lowered { control_plane } => {
                    give_up_replica(&args.data_dir, &control_plane)?;
                    tracing::info!("lowered: the replica is given up; going on as a worker");
                    until_free(args.peer_addr).await?;
                    Start::Worker
                }
            },
        };
    }
}

/// How a replica's run ended.
enum ReplicaEnded {
    /// Ctrl-C or SIGTERM.
    Stopped,
    /// The autopilot lowered it to a worker; its worker certificate is
    /// written. `control_plane` holds the other members' peer addresses.
    Lowered {
        /// The other members' peer addresses, as it last knew them.
        control_plane: Vec<String>,
    },
}

/// Times a lowered replica tries to remove its store directory.
const REMOVAL_TRIES: u32 = 20;

/// How often a replica looks for a record lowering it.
const LOWER_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Resolves once this replica has applied the autopilot's record lowering
/// it to a worker.
async fn lowered(node: &Node) {
    loop {
        tokio::time::sleep(LOWER_POLL_INTERVAL).await;
        let records = crate::autopilot::read_records(node).unwrap_or_default();
        if records.iter().any(|r| r.id == node.id() && r.action == engenho_autopilot::Action::Lower) {
            return;
        }
    }
}

/// Removes what only a replica keeps from `data_dir` (the store, the CA
/// key, the etcd client certificate, the admin token and kubeconfig, the
/// join token, the plugin cache) and records the control plane's peer
/// addresses for the worker's gossip; the worker's certificate, the pods
/// and their components stay.
fn give_up_replica(data_dir: &Path, control_plane: &[String]) -> anyhow::Result<()> {
    for file in [
        "pki/ca.key",
        "pki/etcd-client.crt",
        "pki/etcd-client.key",
        "admin-token",
        "kubeconfig",
        "join-token",
        "node-id",
    ] {
        match std::fs::remove_file(data_dir.join(file)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("removing {file}"));
            }
            _ => {}
        }
    }
    for dir in ["db", "plugins"] {
        // The store's background threads end as its last handle drops; a
        // file one of them writes meanwhile makes a removal fail, and the
        // next try takes it.
        let mut tries = 0;
        loop {
            match std::fs::remove_dir_all(data_dir.join(dir)) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) if tries < REMOVAL_TRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => return Err(error).with_context(|| format!("removing {dir}/")),
                Ok(()) => break,
            }
        }
    }
    worker::record_control_plane(data_dir, control_plane)
}

/// Runs a replica until Ctrl-C or SIGTERM, or until the autopilot lowers
/// it to a worker.
async fn replica(args: &UpArgs, joined: Option<PeerCredentials>) -> anyhow::Result<ReplicaEnded> {
    let name = args.name.clone().unwrap_or_else(host_name);
    let peer_listener = bind(args.peer_addr, "peer")?;
    let etcd_listener = bind(args.etcd_addr, "etcd")?;
    let api_listener =
        listen_for_clients(args.api_addr).with_context(|| format!("binding API address {}", args.api_addr))?;
    engenho_store::secure_data_dir(&args.data_dir)
        .with_context(|| format!("securing the data directory {}", args.data_dir.display()))?;
    let supplied_token = supplied_token(args)?;
    let pki = args.data_dir.join("pki");
    let peer_credentials = peer_credentials(args, &name, &pki, joined)?;
    let ca = peer_credentials.ca.clone();
    let node_identity = peer_credentials.identity.clone();
    let credentials = Credentials::load_or_create(&args.data_dir, &ca, args.api_addr)
        .context("making the API server's credentials")?;
    let etcd_tls = etcd_tls(&ca, &pki, args.etcd_addr).context("making the etcd endpoint's credentials")?;
    let config = NodeConfig {
        data_dir: args.data_dir.clone(),
        name,
        peer_addr: args.peer_addr.to_string(),
        client_addr: args.etcd_addr.to_string(),
        snapshot_logs: args.snapshot_logs,
        history_revisions: args.history_revisions,
        compaction_interval: Duration::from_secs(args.compaction_interval.max(1)),
        credentials: peer_credentials,
        replicas_max: args.voters.most() + args.standbys,
    };
    let store_runtime = StoreRuntime::new(args.store_threads)?;
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let watch_progress_interval = Duration::from_secs(args.watch_progress_interval);
    let (node, peer_server, etcd_server) = store_runtime
        .handle()
        .spawn({
            let stop = stop.clone();
            async move {
                let node = Node::start(config).await.context("starting the raft node")?;
                let peer_listener = TcpListener::from_std(peer_listener)?;
                let etcd_listener = TcpListener::from_std(etcd_listener)?;
                let peer_server = tokio::spawn(serve(
                    tonic::service::Routes::new(PeerService::server(&node)),
                    split_peer_connections(peer_listener, &node),
                    stop.clone(),
                ));
                let facade = Facade::new(node.clone(), FacadeConfig { watch_progress_interval });
                let etcd_connections =
                    accept_tls(etcd_listener, Arc::new(move |_| Some(etcd_tls.clone())), ETCD_HANDSHAKE_LIMITS);
                let etcd_server = tokio::spawn(serve(facade.routes(), etcd_connections, stop));
                anyhow::Ok((node, peer_server, etcd_server))
            }
        })
        .await
        .context("the store runtime")??;

    join_or_bootstrap(&node, args, &ca, supplied_token.as_deref()).await?;
    let plugin_host = engenho_wasm::PluginHost::new(Some(args.data_dir.join("plugins")))
        .context("setting up the plugin engine")?
        .with_reserved(engenho_wasm::Reserved {
            data_dir: Some(args.data_dir.clone()),
            addresses: vec![("API", args.api_addr), ("etcd", args.etcd_addr), ("peer", args.peer_addr)],
        });
    let mut api = KubeApi::new(node.clone(), credentials.admin_token.clone(), plugin_host);
    if args.native_scheduler_plugins {
        api = api.with_native_scheduler_plugins(crate::native::plugins());
    }
    until_committed("the defaults", || api.ensure_defaults())
        .await
        .context("creating the default namespaces and RBAC policy")?;
    let requested = Requested { cidr: args.service_cidr.clone(), node_ports: args.service_node_port_range.clone() };
    let network = api.settle_service_network(&requested).await?;
    tracing::info!(cidr = network.cidr(), node_ports = network.port_range(), "service network");
    let signer = SigningKey::load_or_create(&args.data_dir.join("pki").join("plugin-signer.key"))
        .map_err(|e| anyhow::anyhow!("the plugin signing key: {e}"))?;
    until_committed("the built-in plugins", || api.install_built_in_plugins(&signer, &credentials.ca_pem))
        .await
        .context("installing the built-in admission policies and controllers")?;
    api.load_plugins().await;
    let advertised = advertised_api_addr(args);
    // Registered before the node answers when the cluster can take the
    // write; otherwise the loop below keeps trying.
    let registration = api
        .register_api_server(advertised)
        .await
        .inspect_err(|error| tracing::warn!(%error, "this API server will register once the cluster takes writes"))
        .ok();
    let api_server = tokio::spawn({
        let (api, tls, stop) = (api.clone(), credentials.tls.clone(), stop.clone());
        async move { api.serve(api_listener, tls, stop).await }
    });
    let controllers = tokio::spawn({
        let (api, stop) = (api.clone(), stop.clone());
        async move {
            tokio::join!(api.run_controllers(stop.clone()), api.run_service_network(advertised, registration, stop))
        }
    });
    let addresses =
        crate::gossip::Addresses { peer: args.peer_addr, api: advertised, joined_through: args.join.clone() };
    let gossip = crate::gossip::start(&node, &node_identity, &ca, &addresses).await;
    let chain = crate::chain::Chain::new(node.clone(), &node_identity, &credentials.ca_pem)
        .inspect_err(|reason| tracing::warn!(%reason, "this node signs no chain entries"))
        .ok();
    if let Some(chain) = &chain {
        node.serve_witness(Arc::new(chain.clone()));
        until_committed("this node's certificate in the chain's files", || async {
            chain.file_certificate().await.map_err(ApiError::unavailable)
        })
        .await?;
    }
    let autopilot_rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
    api.serve_mesh_status(Arc::new(crate::gossip::MeshStatus {
        node: node.clone(),
        gossip: gossip.clone(),
        autopilot_rounds: autopilot_rounds.clone(),
        chain: chain.clone(),
    }));
    let tracker = crate::autopilot::SharedTracker::default();
    let workers = crate::autopilot::SharedWorkers::default();
    let gossip = tokio::spawn({
        let (node, seen, stop) = (node.clone(), (tracker.clone(), workers.clone()), stop.clone());
        async move {
            if let Some(gossip) = gossip {
                crate::gossip::run(node, gossip, addresses, seen, stop).await;
            }
        }
    });
    let policy = engenho_autopilot::Policy {
        voters: args.voters,
        dead_grace: args.dead_grace,
        remove_after: args.remove_after,
        shift_interval: args.shift_interval,
        standbys: args.standbys,
        ..engenho_autopilot::Policy::default()
    };
    let autopilot = crate::autopilot::Autopilot::new(
        node.clone(),
        (tracker, workers),
        policy,
        api.loop_events(crate::autopilot::NAME),
        autopilot_rounds,
        chain,
        api.loop_client(crate::autopilot::NAME),
    );
    let autopilot = tokio::spawn(autopilot.run(stop.clone()));
    let name = node.info().name;
    let agent = node_agent(args, &name, api.node_client(&name), replica_role(&node));
    let agent = tokio::spawn(agent.run(stop.clone()));
    let client = api.node_client(&name);
    let (pods, access) = pod_loop(args, &name, client, api.pod_informer(), api.loop_metrics(POD_LOOP), stop.clone())?;
    api.serve_pod_logs(access.logs);
    api.serve_pod_ports(access.ports);
    let pods = tokio::spawn(pods);
    tracing::info!(
        id = node.id(),
        api = %args.api_addr,
        etcd = %args.etcd_addr,
        peer = %args.peer_addr,
        kubeconfig = %args.data_dir.join("kubeconfig").display(),
        "engenho node ready"
    );

    let lowering = tokio::select! {
        () = shutdown_signal() => false,
        () = lowered(&node) => true,
    };
    tracing::info!(lowering, "stopping the replica");
    stop_sender.send_replace(true);
    let control_plane: Vec<String> =
        node.members().into_iter().filter(|m| m.id != node.id()).map(|m| m.info.peer_addr).collect();
    node.shutdown().await.context("stopping raft")?;
    let _ = api_server.await;
    let _ = controllers.await;
    let _ = agent.await;
    let _ = gossip.await;
    let _ = autopilot.await;
    let _ = pods.await;
    for server in [peer_server, etcd_server] {
        // Open watch and keep-alive streams never finish by themselves: give
        // in-flight requests a grace period, then leave.
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(finished) => finished.context("server task")?.context("server")?,
            Err(_) => tracing::warn!("streams still open after {SHUTDOWN_GRACE:?}; closing them"),
        }
    }
    if !lowering {
        return Ok(ReplicaEnded::Stopped);
    }
    ca.issue(&Profile::Worker { name, ip: args.peer_addr.ip() })
        .context("issuing this node's worker certificate")?
        .write(&pki.join("node.crt"), &pki.join("node.key"))?;
    Ok(ReplicaEnded::Lowered { control_plane })
}

/// The node's agent: registers its Node, renews its Lease, reports its
/// status, through `client` (as `system:node:<name>`); `role` says which
/// role the node has now.
fn node_agent(
    args: &UpArgs,
    name: &str,
    client: engenho_api::kube::ApiClient,
    role: engenho_node::RoleCheck,
) -> engenho_node::NodeAgent {
    let settings = engenho_node::NodeSettings {
        name: name.to_owned(),
        internal_ip: Some(args.peer_addr.ip()),
        max_pods: args.max_pods,
        reserved: args.system_reserved,
        register_taints: args.register_with_taints.clone(),
        eviction: args.eviction_hard,
        runtime_version: format!("wasmtime://{}", engenho_wasm::WASMTIME_VERSION),
        agent_version: engenho_api::kube::git_version(),
        pod_cidr: {
            let (base, prefix) =
                engenho_node::pods::addresses::PodAddresses::range_for(Some(args.peer_addr.ip()), args.pod_range);
            format!("{base}/{prefix}")
        },
        agent_port: args.peer_addr.port(),
    };
    engenho_node::NodeAgent::new(client, settings, args.data_dir.clone(), role)
}

/// Which role a replica has now: a voter, or a learner (standby).
fn replica_role(node: &Node) -> engenho_node::RoleCheck {
    let raft = node.clone();
    Arc::new(move || match raft.members().iter().find(|member| member.id == raft.id()) {
        Some(member) if member.is_learner => engenho_node::NodeRole::Standby,
        Some(_) => engenho_node::NodeRole::ControlPlane,
        None => engenho_node::NodeRole::Worker,
    })
}

/// The name of the node agent's loop over its pods.
const POD_LOOP: &str = "node-agent-pods";

/// The node agent's loop over the pods bound to node `name` (which
/// `pods` caches), running them in the node's pod runtime and writing
/// their status through `client`; with the node's pod logs and ports, to
/// serve.
fn pod_loop(
    args: &UpArgs,
    name: &str,
    client: engenho_api::kube::ApiClient,
    pods: Arc<engenho_control::Informer>,
    metrics: Arc<engenho_control::metrics::ControllerMetrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(impl std::future::Future<Output = ()> + use<>, PodAccess)> {
    let host_ip = Some(args.peer_addr.ip()).filter(|ip| !ip.is_unspecified()).map(|ip| ip.to_string());
    let runtime =
        engenho_runtime::PodRuntime::new(Some(args.data_dir.join("components"))).context("starting the pod runtime")?;
    let machine = engenho_node::Machine::probe(&args.data_dir).context("reading the machine")?;
    let writing = engenho_node::pods::logs::Writing::default();
    let pods_dir = args.data_dir.join("pods");
    let addresses =
        Arc::new(engenho_node::pods::addresses::PodAddresses::for_node(Some(args.peer_addr.ip()), args.pod_range));
    let access = PodAccess {
        logs: Arc::new(engenho_node::pods::logs::NodeLogs::new(name.to_owned(), pods_dir.clone(), writing.clone())),
        ports: Arc::new(engenho_node::pods::ports::NodePorts::new(name.to_owned(), addresses.clone())),
    };
    let shared = engenho_node::pods::Shared {
        client,
        runtime,
        node: name.to_owned(),
        host_ip,
        pods_dir,
        downward: engenho_node::pods::spec::Downward {
            cpu_millis: u64::from(machine.cpus) * 1000,
            memory_bytes: machine.memory_total,
        },
        tlisp_runner: engenho_plugin_artifacts::pod_component("tlisp-runner").map(engenho_node::pods::Bundled::new),
        writing,
        addresses,
    };
    let pods = engenho_node::PodLoop::new(shared, pods);
    let settings = engenho_control::Settings::new(POD_LOOP, 2, Duration::from_secs(60));
    let run = engenho_control::controller::run(Arc::new(pods), settings, metrics, engenho_control::everywhere(), stop);
    Ok((run, access))
}

/// The logs and ports of a node's pods, which its API server (or, on a
/// worker, its peer port) serves to the cluster.
struct PodAccess {
    logs: Arc<engenho_node::pods::logs::NodeLogs>,
    ports: Arc<engenho_node::pods::ports::NodePorts>,
}

/// The address other nodes and the `kubernetes` Service reach this API
/// server at: `--api-addr`, or, when that is a wildcard, the peer
/// address's IP with the API port.
fn advertised_api_addr(args: &UpArgs) -> SocketAddr {
    match args.api_addr.ip().is_unspecified() {
        true => SocketAddr::new(args.peer_addr.ip(), args.api_addr.port()),
        false => args.api_addr,
    }
}

/// Connections the kernel holds for the API server before it accepts them
/// (the kernel caps this at `net.core.somaxconn`, as it does Go servers'
/// backlog): a burst of clients, or of connections that never speak,
/// queues there rather than having its SYNs dropped and retried a second
/// later.
const API_LISTEN_BACKLOG: u32 = 4096;

/// Binds the API server's listening socket on the current runtime.
fn listen_for_clients(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(API_LISTEN_BACKLOG)
}

/// Binds a listening socket for a runtime other than the current one.
fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {what} address {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The datastore's own runtime. Dropped from async code, it shuts down
/// without waiting for its threads.
struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    fn new(threads: u16) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.into())
            .thread_name("engenho-store")
            .enable_all()
            .build()
            .context("starting the store runtime")?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("the runtime lives until drop").handle()
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve<IO>(
    routes: tonic::service::Routes,
    incoming: impl tokio_stream::Stream<Item = std::io::Result<IO>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + tonic::transport::server::Connected + Unpin + Send + 'static,
{
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(STREAMS_PER_CONNECTION_MAX))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await
        .context("serving gRPC")
}

/// Waits until the worker's sockets on `peer` (TCP and UDP), closed by
/// tasks that are ending, can be bound again: at most a few seconds.
async fn until_free(peer: SocketAddr) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SOCKETS_RELEASED_WITHIN;
    loop {
        let free = std::net::TcpListener::bind(peer).and_then(|_| std::net::UdpSocket::bind(peer));
        match free {
            Ok(_) => return Ok(()),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(error).with_context(|| format!("the worker's sockets on {peer} were not released"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Whether `data_dir` holds a replica (the cluster CA's key).
fn holds_replica(data_dir: &Path) -> bool {
    data_dir.join("pki").join("ca.key").exists()
}

/// The join token or secret given to this start, if any: from
/// `--token-file`, else from [`JOIN_TOKEN_ENV`].
fn supplied_token(args: &UpArgs) -> anyhow::Result<Option<String>> {
    let text = match &args.token_file {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => std::env::var(JOIN_TOKEN_ENV).ok(),
    };
    Ok(text.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty()))
}

/// What a start runs as.
enum Start {
    /// A replica, with the credentials a first join was granted.
    Replica(Option<PeerCredentials>),
    /// A worker.
    Worker,
}

/// What this start runs as: what the data directory holds; on a first
/// start, a worker with `--worker`, a new cluster's first replica without
/// `--join`, else what the cluster joined decides (a replica while it
/// keeps fewer replicas than it wants, else a worker).
async fn start_as(args: &UpArgs) -> anyhow::Result<Start> {
    let pki = args.data_dir.join("pki");
    if holds_replica(&args.data_dir) {
        if args.worker {
            tracing::info!("this node was raised to the control plane: it runs as the replica it is");
        }
        return Ok(Start::Replica(None));
    }
    if args.worker || holds_worker(&pki)? {
        return Ok(Start::Worker);
    }
    let Some(seed) = &args.join else { return Ok(Start::Replica(None)) };
    engenho_store::secure_data_dir(&args.data_dir)
        .with_context(|| format!("securing the data directory {}", args.data_dir.display()))?;
    let name = args.name.clone().unwrap_or_else(host_name);
    let token = supplied_token(args)?;
    let joined =
        join_cluster(args, &name, seed, token.as_deref(), async |request| fetch_credentials(request, &pki).await)
            .await?;
    match joined {
        Joined::Replica(credentials) => Ok(Start::Replica(Some(credentials))),
        Joined::Worker(credentials) => {
            tracing::info!("the cluster keeps all the replicas it wants: this node joins as a worker");
            credentials.identity.write(&pki.join("node.crt"), &pki.join("node.key"))?;
            Ok(Start::Worker)
        }
    }
}

/// Whether `pki` holds a worker's certificate (and no CA key).
fn holds_worker(pki: &Path) -> anyhow::Result<bool> {
    let own = Identity::load(&pki.join("node.crt"), &pki.join("node.key"))?;
    Ok(own.is_some_and(|own| engenho_pki::is_worker_certificate(&own.chain()[0])))
}

/// The node's certificate and the cluster CA: those a first join was
/// granted; else, from the CA this node holds, its node certificate
/// issued anew for the peer address of this start; else (a new cluster) a
/// new CA.
fn peer_credentials(
    args: &UpArgs,
    name: &str,
    pki: &Path,
    joined: Option<PeerCredentials>,
) -> anyhow::Result<PeerCredentials> {
    let issue_own = |ca: ClusterCa| -> anyhow::Result<PeerCredentials> {
        let identity = ca
            .issue(&Profile::Node { name: name.to_owned(), ip: args.peer_addr.ip() })
            .context("issuing this node's certificate")?;
        Ok(PeerCredentials { ca: Arc::new(ca), identity })
    };
    let credentials = match (joined, ClusterCa::load(pki).context("loading the cluster CA")?) {
        (Some(joined), _) => joined,
        (None, Some(ca)) => issue_own(ca)?,
        (None, None) => issue_own(ClusterCa::create(pki).context("making the cluster CA")?)?,
    };
    credentials.identity.write(&pki.join("node.crt"), &pki.join("node.key"))?;
    Ok(credentials)
}

/// Joins the cluster through the member at `seed` with `fetch` (a
/// replica's credentials or a worker's), presenting the join token and
/// checking the cluster's service network against this node's flags first.
async fn join_cluster<T>(
    args: &UpArgs,
    name: &str,
    seed: &str,
    supplied_token: Option<&str>,
    fetch: impl AsyncFnOnce(&JoinRequest<'_>) -> engenho_mesh::Result<T>,
) -> anyhow::Result<T> {
    let token = supplied_token
        .with_context(|| format!("--join needs the cluster's join token: --token-file FILE or {JOIN_TOKEN_ENV}"))?;
    let token = JoinToken::parse(token)?;
    let peer_addr = args.peer_addr.to_string();
    let joined = with_join_check(args, async |check| {
        fetch(&JoinRequest { seed, token: &token, name, peer_addr: &peer_addr, check }).await
    })
    .await;
    joined.with_context(|| format!("joining the cluster at {seed}"))
}

/// Runs `join` with the check a joining node makes of the cluster: that
/// the cluster's service network agrees with this node's flags.
async fn with_join_check<T>(args: &UpArgs, join: impl AsyncFnOnce(&JoinCheck<'_>) -> T) -> T {
    let requested = Requested { cidr: args.service_cidr.clone(), node_ports: args.service_node_port_range.clone() };
    let accept = |settings: &ClusterSettings| service_network_agrees(&requested, settings);
    join(&JoinCheck { keys: &[SERVICE_NETWORK_KEY], accept: &accept }).await
}

/// Whether the service network this node was started with agrees with
/// the cluster's, as a member reported it (a cluster that has not settled
/// one yet agrees with any).
fn service_network_agrees(requested: &Requested, settings: &ClusterSettings) -> Result<(), String> {
    requested.network().map_err(|e| e.to_string())?;
    let Some(stored) = settings.get(SERVICE_NETWORK_KEY) else { return Ok(()) };
    let cluster: ServiceNetwork =
        serde_json::from_slice(stored).map_err(|e| format!("the cluster's service network setting: {e}"))?;
    requested.check(&cluster).map_err(|e| e.to_string())
}

/// The etcd endpoint's TLS configuration: a serving certificate for `addr`
/// and loopback, and client certificates from the cluster CA required. The
/// admin client certificate `pki/etcd-client.crt` is made on first start.
fn etcd_tls(ca: &ClusterCa, pki: &Path, addr: SocketAddr) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (certificate, key) = (pki.join("etcd-client.crt"), pki.join("etcd-client.key"));
    if Identity::load(&certificate, &key)?.is_none() {
        ca.issue(&Profile::Client { common_name: "engenho-etcd-admin".into() })?.write(&certificate, &key)?;
    }
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    if !addr.ip().is_unspecified() && !ips.contains(&addr.ip()) {
        ips.push(addr.ip());
    }
    let profile = Profile::Server { common_name: "engenho-etcd".into(), dns_names: vec!["localhost".into()], ips };
    Ok(engenho_pki::mutual_server_config(&ca.issue(&profile)?, ca.certificate_der(), &[HTTP2_ALPN])?)
}

/// Brings a node into a cluster on first start: joins one, or bootstraps a
/// new one. Restarts skip both.
async fn join_or_bootstrap(
    node: &Node,
    args: &UpArgs,
    ca: &ClusterCa,
    supplied_token: Option<&str>,
) -> anyhow::Result<()> {
    let token_path = args.data_dir.join("join-token");
    if node.is_initialized().await? {
        if args.join.is_some() {
            tracing::warn!("--join ignored: this data directory already belongs to a cluster");
        }
        ensure_secret_recorded(node, &token_path);
        return Ok(());
    }
    match &args.join {
        Some(peer) => {
            node.join(peer).await.with_context(|| format!("joining the cluster at {peer}"))?;
            // A raised worker joins with the credentials it was granted,
            // without the token: any replica's token file serves to invite.
            if let Some(token) = supplied_token {
                write_secret(&token_path, &JoinToken::parse(token)?.to_string())?;
            }
        }
        None => {
            let secret = bootstrap_secret(supplied_token, ca)?;
            write_secret(&token_path, &JoinToken::new(ca.hash(), &secret)?.to_string())?;
            node.bootstrap(&secret).await.context("bootstrapping a new cluster")?;
            tracing::info!(path = %token_path.display(), "new cluster; its join token is in this file");
        }
    }
    Ok(())
}

/// The join secret of a new cluster: the one supplied (a bare secret, or a
/// whole token naming this cluster's CA), or a random one.
fn bootstrap_secret(supplied_token: Option<&str>, ca: &ClusterCa) -> anyhow::Result<String> {
    let Some(supplied) = supplied_token else { return Ok(engenho_pki::random_secret()) };
    match JoinToken::parse(supplied) {
        Ok(token) if token.ca_hash() == ca.hash() => Ok(token.secret().to_owned()),
        Ok(_) => anyhow::bail!("the join token names another cluster's CA; a new cluster takes a bare secret"),
        Err(_) => Ok(JoinToken::new(ca.hash(), supplied)?.secret().to_owned()),
    }
}

/// Completes a bootstrap that a crash interrupted before the join secret
/// was recorded (a no-op otherwise), without holding up the start.
fn ensure_secret_recorded(node: &Node, token_path: &Path) {
    let Ok(text) = std::fs::read_to_string(token_path) else { return };
    let token = match JoinToken::parse(&text) {
        Ok(token) => token,
        Err(error) => return tracing::warn!(%error, path = %token_path.display(), "unreadable join token"),
    };
    let node = node.clone();
    tokio::spawn(async move {
        // A restarted node may step down as leader at once, which ends a
        // write with "leader changed": try again a few times.
        for attempt in 1..=JOIN_TOKEN_ATTEMPTS {
            match node.record_join_secret(token.secret()).await {
                Ok(()) => return,
                Err(error) if attempt == JOIN_TOKEN_ATTEMPTS => {
                    tracing::warn!(%error, "could not check the recorded join secret");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "engenho".into())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Runs `write` until it succeeds, fails for another reason than the
/// cluster not committing in time (503, 504), or
/// [`STARTUP_WRITES_DEADLINE`] has passed; backs off between tries.
async fn until_committed<T, Write>(what: &str, mut write: impl FnMut() -> Write) -> Result<T, ApiError>
where
    Write: Future<Output = Result<T, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + STARTUP_WRITES_DEADLINE;
    let mut pause = Duration::from_millis(200);
    loop {
        match write().await {
            Err(error) if matches!(error.code, 503 | 504) && tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(%error, "{what}: the cluster did not commit in time; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            answer => return answer,
        }
    }
}
