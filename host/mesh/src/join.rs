//! Joining a cluster. A node that has no certificate yet dials a member
//! with the join ALPN, trusting it only if its certificate chain carries
//! the CA the join token pins; then it sends the token's secret and a
//! certificate signing request for a key that never leaves it. A member
//! that finds the secret's hash in the store decides the node's role (a
//! replica while the cluster has fewer members than it keeps replicas,
//! else a worker; a worker when the node asks to be one) and answers with
//! the cluster CA (certificate and key to a replica; the certificate
//! alone to a worker) and the node certificate it signed (a worker's
//! marked as such), with the cluster settings the node asked for, which
//! the node checks before it installs anything: a node whose own settings
//! disagree with the cluster's stops there, never a member. A replica's
//! membership change itself then travels as a forwarded request over
//! mutual TLS, under that certificate. A worker the autopilot raised asks
//! for a replica's credentials with its worker certificate instead of the
//! secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use engenho_pki::{CaHash, ClusterCa, Identity, JoinToken, Profile, TlsConnection};
use engenho_store::{KeyRange, RangeRequest};
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio_rustls::TlsConnector;

use crate::error::{MeshError, Result};
use crate::node::{Inner, JOIN_TOKEN_HASH_KEY};
use crate::raft_wire::{read_frame, write_frame};
use crate::tls::{JOIN_ALPN, PEER_CONNECT_TIMEOUT, PeerCredentials};

/// Largest join message, in either direction.
const JOIN_MESSAGE_BYTES_MAX: usize = 64 * 1024;

/// Time a join connection has to send its request, and a joining node to
/// receive the answer.
const JOIN_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a joining node keeps dialing a member it cannot reach.
const JOIN_REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between dials of a member that could not be reached.
const JOIN_DIAL_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// Longest node name.
const NODE_NAME_BYTES_MAX: usize = 253;

/// Most cluster settings a joining node may ask for.
const JOIN_SETTINGS_MAX: usize = 8;

/// The prefix of the store keys a joining node may read: engenho's own
/// settings, never Kubernetes objects.
const JOIN_SETTINGS_PREFIX: &str = "/engenho/";

/// Cluster settings a joining node reads before it becomes a member:
/// store keys and the values the cluster holds (keys it does not hold are
/// left out).
pub type ClusterSettings = BTreeMap<String, Vec<u8>>;

/// What a joining node checks of the cluster before it joins.
pub struct JoinCheck<'a> {
    /// Store keys of the settings to read, each under `/engenho/`.
    pub keys: &'a [&'a str],
    /// Accepts the settings read, or says why this node may not join.
    pub accept: &'a (dyn Fn(&ClusterSettings) -> std::result::Result<(), String> + Sync),
}

/// What a joining node sends.
#[derive(Serialize, Deserialize)]
struct CertificateRequest {
    /// The node's name, for its certificate.
    name: String,
    /// The node's peer address, for its certificate.
    peer_addr: String,
    /// The join secret.
    secret: String,
    /// A certificate signing request for the node's key, PEM.
    request_pem: String,
    /// Store keys of the cluster settings the node checks before joining.
    settings: Vec<String>,
    /// What the node asks to be.
    #[serde(default)]
    asks: Kind,
}

/// Prefix of the store keys of raises: a worker the autopilot raised to
/// standby may obtain a replica's credentials (presenting its worker
/// certificate, without the join secret) while its raise's key exists.
pub const RAISES_PREFIX: &str = "/engenho/mesh/raises/";

/// The store key of the raise of worker `name`.
pub fn raise_key(name: &str) -> String {
    format!("{RAISES_PREFIX}{name}")
}

/// What a join asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// A replica's credentials while the cluster keeps fewer replicas than
    /// it wants, else a worker's; with the secret.
    #[default]
    Either,
    /// A worker's, with the secret.
    Worker,
    /// A replica's, for a raised worker (its certificate, no secret).
    Raise,
}

/// What a node that joined holds.
pub enum Joined {
    /// A replica's credentials (the CA with its key), installed.
    Replica(PeerCredentials),
    /// A worker's (the CA's certificate only), the CA certificate written.
    Worker(WorkerCredentials),
}

/// What a member answers a joining node that knew the secret.
#[derive(Serialize, Deserialize)]
struct CertificateGrant {
    /// The cluster CA certificate, PEM.
    ca_certificate_pem: String,
    /// The cluster CA key, PEM; none for a worker.
    ca_key_pem: Option<String>,
    /// The node's certificate, PEM.
    certificate_pem: String,
    /// The cluster settings asked for that the cluster holds.
    settings: ClusterSettings,
}

/// What a joining node asks for and checks.
pub struct JoinRequest<'a> {
    /// The member to ask.
    pub seed: &'a str,
    /// The join token.
    pub token: &'a JoinToken,
    /// The node's name.
    pub name: &'a str,
    /// The node's peer address.
    pub peer_addr: &'a str,
    /// The cluster settings to check before joining.
    pub check: &'a JoinCheck<'a>,
}

/// A worker's credentials: its node certificate (a worker's) and the
/// cluster CA's certificate, never its key.
pub struct WorkerCredentials {
    /// The cluster CA certificate.
    pub ca: rustls::pki_types::CertificateDer<'static>,
    /// The worker's certificate and key.
    pub identity: Identity,
}

/// Asks the member at `request.seed` for this node's certificate,
/// presenting the token, and for the settings the check names; when the
/// check accepts them, installs the cluster CA the member answers with in
/// `pki` and returns the node's credentials.
///
/// # Errors
/// The member is not of the cluster the token pins, refused the secret, or
/// could not be reached in time; the check refused the cluster's settings
/// (nothing is installed then).
pub async fn fetch_credentials(request: &JoinRequest<'_>, pki: &Path) -> Result<Joined> {
    let (grant, identity) = exchange(&Exchange::with_token(request, Kind::Either)?).await?;
    match grant.ca_key_pem.is_some() {
        true => install_member(request.seed, grant, identity, pki).map(Joined::Replica),
        false => install_worker(grant, identity, pki).map(Joined::Worker),
    }
}

/// What a worker the autopilot raised to standby asks for.
pub struct RaiseRequest<'a> {
    /// The member to ask.
    pub seed: &'a str,
    /// The worker's name.
    pub name: &'a str,
    /// The worker's peer address.
    pub peer_addr: &'a str,
    /// The cluster settings to check before joining.
    pub check: &'a JoinCheck<'a>,
    /// The worker's certificate and key.
    pub worker: &'a Identity,
    /// The cluster CA's certificate.
    pub ca: &'a rustls::pki_types::CertificateDer<'static>,
}

/// Asks the member at `request.seed` for a replica's credentials for a
/// worker the autopilot raised to standby: the worker proves who it is
/// with its certificate instead of the join secret. Installs the cluster
/// CA in `pki` as [`fetch_credentials`] does.
///
/// # Errors
/// The member refused (no raise for this worker, another's certificate)
/// or could not be reached in time; the check refused the cluster's
/// settings.
pub async fn fetch_raised_credentials(request: &RaiseRequest<'_>, pki: &Path) -> Result<PeerCredentials> {
    let config = engenho_pki::mutual_client_config(request.worker, request.ca, &[JOIN_ALPN])
        .map_err(|e| MeshError::Tls(e.to_string()))?;
    let exchange_ = Exchange {
        seed: request.seed,
        name: request.name,
        peer_addr: request.peer_addr,
        check: request.check,
        secret: "",
        ca_hash: CaHash::of(request.ca),
        connector: TlsConnector::from(config),
        kind: Kind::Raise,
    };
    let (grant, identity) = exchange(&exchange_).await?;
    install_member(request.seed, grant, identity, pki)
}

/// Installs the CA a member granted (with its key) in `pki`.
fn install_member(seed: &str, grant: CertificateGrant, identity: Identity, pki: &Path) -> Result<PeerCredentials> {
    let ca_key_pem =
        grant.ca_key_pem.ok_or_else(|| MeshError::JoinRefused(format!("{seed} sent no CA key to a replica")))?;
    let ca =
        ClusterCa::install(pki, &grant.ca_certificate_pem, &ca_key_pem).map_err(|e| MeshError::Tls(e.to_string()))?;
    Ok(PeerCredentials { ca: Arc::new(ca), identity })
}

/// Asks the member at `request.seed` for a worker's certificate, as
/// [`fetch_credentials`] does; writes the CA certificate to `pki/ca.crt`.
///
/// # Errors
/// As [`fetch_credentials`].
pub async fn fetch_worker_credentials(request: &JoinRequest<'_>, pki: &Path) -> Result<WorkerCredentials> {
    let (grant, identity) = exchange(&Exchange::with_token(request, Kind::Worker)?).await?;
    install_worker(grant, identity, pki)
}

/// Writes the CA certificate a member granted a worker to `pki`.
fn install_worker(grant: CertificateGrant, identity: Identity, pki: &Path) -> Result<WorkerCredentials> {
    engenho_pki::write_private(&pki.join(engenho_pki::CA_CERTIFICATE_FILE), &grant.ca_certificate_pem)
        .map_err(|e| MeshError::Tls(e.to_string()))?;
    let ca = identity.chain().last().cloned().ok_or_else(|| MeshError::Tls("an empty certificate chain".into()))?;
    Ok(WorkerCredentials { ca, identity })
}

/// One join exchange to make.
struct Exchange<'a> {
    seed: &'a str,
    name: &'a str,
    peer_addr: &'a str,
    check: &'a JoinCheck<'a>,
    secret: &'a str,
    ca_hash: CaHash,
    connector: TlsConnector,
    kind: Kind,
}

impl<'a> Exchange<'a> {
    /// An exchange presenting the join token's secret, trusting the CA it
    /// pins.
    fn with_token(request: &JoinRequest<'a>, kind: Kind) -> Result<Self> {
        let config = engenho_pki::pinned_client_config(request.token.ca_hash(), &[JOIN_ALPN])
            .map_err(|e| MeshError::Tls(e.to_string()))?;
        Ok(Self {
            seed: request.seed,
            name: request.name,
            peer_addr: request.peer_addr,
            check: request.check,
            secret: request.token.secret(),
            ca_hash: request.token.ca_hash(),
            connector: TlsConnector::from(config),
            kind,
        })
    }
}

/// The join exchange: a key, its certificate signing request sent with the
/// secret, the member's grant checked against the CA and the check; the
/// grant and the node's identity under the CA it names.
async fn exchange(asked: &Exchange<'_>) -> Result<(CertificateGrant, Identity)> {
    let seed = asked.seed;
    let refused = |what: String| MeshError::JoinRefused(what);
    let pki_failed = |e: engenho_pki::PkiError| MeshError::Tls(e.to_string());
    let stream = dial_member(&asked.connector, seed).await?;
    let exchange = async {
        let (key, request_pem) = Identity::request().map_err(pki_failed)?;
        let request = CertificateRequest {
            name: asked.name.to_owned(),
            peer_addr: asked.peer_addr.to_owned(),
            secret: asked.secret.to_owned(),
            request_pem,
            settings: asked.check.keys.iter().map(|key| (*key).to_owned()).collect(),
            asks: asked.kind,
        };
        let mut stream = BufReader::new(stream);
        write_frame(stream.get_mut(), &request).await.map_err(|e| refused(e.to_string()))?;
        let answer: Result<CertificateGrant> =
            read_frame(&mut stream, JOIN_MESSAGE_BYTES_MAX).await.map_err(|e| refused(e.to_string()))?;
        Ok::<_, MeshError>((key, answer?))
    };
    let (key, grant) = tokio::time::timeout(JOIN_EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| refused(format!("{seed} did not answer within {JOIN_EXCHANGE_TIMEOUT:?}")))??;
    if CaHash::of_pem(&grant.ca_certificate_pem) != Some(asked.ca_hash) {
        return Err(refused(format!("{seed} answered with a CA other than the one the join token names")));
    }
    (asked.check.accept)(&grant.settings).map_err(refused)?;
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(grant.ca_certificate_pem.as_bytes())
        .map_err(|e| refused(format!("the CA certificate {seed} sent: {e}")))?;
    let identity = Identity::from_issued(&key, &grant.certificate_pem, &ca).map_err(pki_failed)?;
    Ok((grant, identity))
}

/// A TLS connection to the member at `seed` that proves to hold the CA the
/// connector pins. A member not listening yet, or too busy to finish a
/// handshake within [`PEER_CONNECT_TIMEOUT`], is dialed again for up to
/// [`JOIN_REACH_TIMEOUT`]; a malformed address, or a member whose
/// certificate the pin refuses, is refused at once.
async fn dial_member(
    connector: &TlsConnector,
    seed: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let deadline = tokio::time::Instant::now() + JOIN_REACH_TIMEOUT;
    loop {
        match engenho_pki::dial_tls(connector, seed, PEER_CONNECT_TIMEOUT).await {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(MeshError::JoinRefused(e.to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(MeshError::JoinRefused(format!(
                    "{seed} is not a member of the cluster the join token names: {e}"
                )));
            }
            Err(e) if tokio::time::Instant::now() + JOIN_DIAL_RETRY_INTERVAL >= deadline => {
                return Err(MeshError::JoinRefused(format!(
                    "{seed} could not be reached within {JOIN_REACH_TIMEOUT:?}: {e}"
                )));
            }
            Err(_) => tokio::time::sleep(JOIN_DIAL_RETRY_INTERVAL).await,
        }
    }
}

/// Serves one join connection: reads the request, answers it, closes.
pub(crate) async fn serve_join(connection: TlsConnection, node: Weak<Inner>) {
    let remote = connection.remote_addr();
    let caller = connection.peer_certificate().and_then(|certificate| {
        engenho_pki::is_worker_certificate(certificate).then(|| engenho_pki::node_name_of(certificate)).flatten()
    });
    let mut stream = BufReader::new(connection);
    let request = tokio::time::timeout(JOIN_EXCHANGE_TIMEOUT, read_frame(&mut stream, JOIN_MESSAGE_BYTES_MAX)).await;
    let request: CertificateRequest = match request {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => return tracing::warn!(?remote, %error, "malformed join request"),
        Err(_) => return tracing::warn!(?remote, "no join request within {JOIN_EXCHANGE_TIMEOUT:?}"),
    };
    let Some(node) = node.upgrade() else { return };
    let answer = node.grant_certificate(&request, caller.as_deref());
    match &answer {
        Ok(_) => tracing::info!(?remote, name = %request.name, peer = %request.peer_addr, "issued a node certificate"),
        Err(error) => tracing::warn!(?remote, %error, "join refused"),
    }
    if write_frame(stream.get_mut(), &answer).await.is_ok() {
        let _ = stream.get_mut().shutdown().await;
    }
}

impl Inner {
    /// Signs a joining node's certificate if it knows the join secret, or,
    /// for a raise, if it is the worker `worker` (its certificate, verified
    /// in the handshake, says so) and the autopilot raised it.
    fn grant_certificate(&self, request: &CertificateRequest, worker: Option<&str>) -> Result<CertificateGrant> {
        match request.asks {
            Kind::Raise => self.check_raise(&request.name, worker)?,
            Kind::Either | Kind::Worker => self.check_join_secret(&request.secret)?,
        }
        let name = &request.name;
        if name.is_empty() || name.len() > NODE_NAME_BYTES_MAX || name.chars().any(char::is_control) {
            return Err(MeshError::JoinRefused(format!(
                "a node name has 1 to {NODE_NAME_BYTES_MAX} bytes and no control characters"
            )));
        }
        let peer: SocketAddr = request.peer_addr.parse().map_err(|_| {
            MeshError::JoinRefused(format!("the peer address {:?} is not an IP address and port", request.peer_addr))
        })?;
        let settings = self.join_settings(&request.settings)?;
        let ca = self.tls.ca();
        let (name, ip) = (name.clone(), peer.ip());
        let worker = match request.asks {
            Kind::Worker => true,
            Kind::Raise => false,
            Kind::Either => {
                let members = self.raft.metrics().borrow().membership_config.membership().nodes().count();
                members >= self.config.replicas_max
            }
        };
        let profile = if worker { Profile::Worker { name, ip } } else { Profile::Node { name, ip } };
        let certificate_pem = ca
            .sign_request(&request.request_pem, &profile)
            .map_err(|e| MeshError::JoinRefused(format!("the certificate signing request: {e}")))?;
        Ok(CertificateGrant {
            ca_certificate_pem: ca.certificate_pem().to_owned(),
            ca_key_pem: (!worker).then(|| ca.key_pem()),
            certificate_pem,
            settings,
        })
    }

    /// The values of the settings `keys` a joining node asked for.
    fn join_settings(&self, keys: &[String]) -> Result<ClusterSettings> {
        if keys.len() > JOIN_SETTINGS_MAX {
            return Err(MeshError::JoinRefused(format!("a node may ask for at most {JOIN_SETTINGS_MAX} settings")));
        }
        let mut settings = ClusterSettings::new();
        for key in keys {
            if !key.starts_with(JOIN_SETTINGS_PREFIX) {
                return Err(MeshError::JoinRefused(format!("{key:?} is not a setting under {JOIN_SETTINGS_PREFIX}")));
            }
            let request = RangeRequest { range: KeyRange::single(key.as_str()), ..RangeRequest::default() };
            let (_, stored) = self.store.range(&request)?;
            if let Some(kv) = stored.kvs.first() {
                settings.insert(key.clone(), kv.value.clone());
            }
        }
        Ok(settings)
    }

    /// Checks that worker `name`, the caller being worker `worker`, was
    /// raised to standby.
    fn check_raise(&self, name: &str, worker: Option<&str>) -> Result<()> {
        if worker != Some(name) {
            return Err(MeshError::JoinRefused(format!(
                "a raise is asked for with the worker's own certificate, not {}",
                worker.map_or("none".to_owned(), |w| format!("worker {w}'s"))
            )));
        }
        let request = RangeRequest { range: KeyRange::single(raise_key(name)), ..RangeRequest::default() };
        let (_, stored) = self.store.range(&request)?;
        if stored.kvs.is_empty() {
            return Err(MeshError::JoinRefused(format!("worker {name} was not raised to standby")));
        }
        Ok(())
    }

    /// Checks a join secret against the hash the cluster recorded.
    fn check_join_secret(&self, secret: &str) -> Result<()> {
        let request = RangeRequest { range: KeyRange::single(JOIN_TOKEN_HASH_KEY), ..RangeRequest::default() };
        let (_, stored) = self.store.range(&request)?;
        let expected = stored.kvs.first().and_then(|kv| std::str::from_utf8(&kv.value).ok().map(str::to_owned));
        let expected = expected.and_then(|hex| blake3::Hash::from_hex(hex).ok());
        // blake3::Hash compares in constant time.
        if expected != Some(blake3::hash(secret.as_bytes())) {
            return Err(MeshError::JoinRefused("the join secret does not match this cluster's".into()));
        }
        Ok(())
    }
}
