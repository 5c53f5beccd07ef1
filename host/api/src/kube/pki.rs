//! The API server's serving certificate, the admin token and the
//! kubeconfig that ties them to the cluster CA.
//!
//! The admin token is made on first start and kept in the data directory;
//! the serving certificate is issued by the cluster CA anew at every start
//! for the address the server listens on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use engenho_pki::{ClusterCa, HTTP2_ALPN, PkiError, Profile, read_optional, write_private};

/// Name of the cluster and of its kubeconfig context.
pub const CLUSTER_NAME: &str = "engenho";

/// Credentials of the API server.
pub struct Credentials {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// TLS configuration serving the issued certificate (HTTP/2 and
    /// HTTP/1.1), verifying the client certificates the cluster CA issued
    /// (node agents authenticate with their node certificate).
    pub tls: Arc<rustls::ServerConfig>,
}

impl Credentials {
    /// Loads the admin token from `dir` (making it on first use), issues a
    /// serving certificate for `addr` from `ca`, and writes `dir/kubeconfig`.
    ///
    /// # Errors
    /// Unreadable or unwritable files, or unusable key material.
    pub fn load_or_create(dir: &Path, ca: &ClusterCa, addr: SocketAddr) -> Result<Self, PkiError> {
        let token_path = dir.join("admin-token");
        let admin_token = match read_optional(&token_path)? {
            Some(token) if !token.trim().is_empty() => token.trim().to_owned(),
            _ => {
                let token = random_token();
                write_private(&token_path, &token)?;
                token
            }
        };
        let identity = ca.issue(&serving_profile(addr))?;
        let tls =
            engenho_pki::optional_client_server_config(&identity, ca.certificate_der(), &[HTTP2_ALPN, b"http/1.1"])?;
        let credentials = Self { ca_pem: ca.certificate_pem().to_owned(), admin_token, tls };
        write_private(&dir.join("kubeconfig"), &credentials.kubeconfig(addr))?;
        Ok(credentials)
    }

    /// A kubeconfig for the admin user of the server at `addr`.
    pub fn kubeconfig(&self, addr: SocketAddr) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let server = format!("https://{}", client_addr(addr));
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {CLUSTER_NAME}\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: \
             {CLUSTER_NAME}\n  context:\n    cluster: {CLUSTER_NAME}\n    user: admin\n    namespace: default\n\
             current-context: {CLUSTER_NAME}\n",
            token = self.admin_token
        )
    }
}

/// The address clients dial: a wildcard listen address is reached on loopback.
fn client_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port()),
        _ => addr,
    }
}

/// The API server's certificate: the in-cluster names of the `kubernetes`
/// Service, loopback, and the address it listens on.
fn serving_profile(addr: SocketAddr) -> Profile {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    let listening = client_addr(addr).ip();
    if !ips.contains(&listening) {
        ips.push(listening);
    }
    let dns_names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"];
    Profile::Server {
        common_name: "engenho-apiserver".into(),
        dns_names: dns_names.into_iter().map(str::to_owned).collect(),
        ips,
    }
}

/// 32 random bytes as hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_survive_a_restart_and_the_kubeconfig_names_them() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = ClusterCa::create(&dir.path().join("pki")).expect("CA");
        let addr: SocketAddr = "0.0.0.0:6443".parse().expect("address");
        let first = Credentials::load_or_create(dir.path(), &ca, addr).expect("first start");
        let second = Credentials::load_or_create(dir.path(), &ca, addr).expect("restart");
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.admin_token, second.admin_token);
        assert_eq!(first.admin_token.len(), 64);
        let kubeconfig = std::fs::read_to_string(dir.path().join("kubeconfig")).expect("kubeconfig");
        assert!(kubeconfig.contains("server: https://127.0.0.1:6443"), "{kubeconfig}");
        assert!(kubeconfig.contains(&format!("token: {}", first.admin_token)));
        use std::os::unix::fs::PermissionsExt;
        for file in ["admin-token", "kubeconfig"] {
            let mode = std::fs::metadata(dir.path().join(file)).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
}
