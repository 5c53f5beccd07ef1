//! The cluster's certificate authority, the API server's certificate, the
//! admin token and the kubeconfig that ties them together.
//!
//! The CA key and the admin token are made on first start and kept in the
//! data directory; the serving certificate is issued anew at every start for
//! the address the server listens on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Name of the cluster and of its kubeconfig context.
pub const CLUSTER_NAME: &str = "engenho";

/// Why the credentials could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key or certificate could not be made or parsed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The TLS configuration was refused.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Credentials of the API server.
pub struct Credentials {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// TLS configuration serving the issued certificate (HTTP/2 and HTTP/1.1).
    pub tls: Arc<rustls::ServerConfig>,
}

impl Credentials {
    /// Loads the CA and admin token from `dir` (making them on first use),
    /// issues a serving certificate for `addr`, and writes `dir/kubeconfig`.
    ///
    /// # Errors
    /// Unreadable or unwritable files, or unusable key material.
    pub fn load_or_create(dir: &Path, addr: SocketAddr) -> Result<Self, PkiError> {
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki).map_err(|source| PkiError::Io { path: pki.clone(), source })?;
        let ca_key_path = pki.join("ca.key");
        let ca_key = match read_optional(&ca_key_path)? {
            Some(pem) => KeyPair::from_pem(&pem)?,
            None => {
                let key = KeyPair::generate()?;
                write_private(&ca_key_path, &key.serialize_pem())?;
                key
            }
        };
        // The CA certificate is derived from its key and fixed name: the same
        // key always yields a CA that verifies the certificates it issued.
        let ca_path = pki.join("ca.crt");
        let ca_cert = ca_params().self_signed(&ca_key)?;
        let ca_pem = match read_optional(&ca_path)? {
            Some(pem) => pem,
            None => {
                write_public(&ca_path, &ca_cert.pem())?;
                ca_cert.pem()
            }
        };
        let token_path = dir.join("admin-token");
        let admin_token = match read_optional(&token_path)? {
            Some(token) if !token.trim().is_empty() => token.trim().to_owned(),
            _ => {
                let token = random_token();
                write_private(&token_path, &token)?;
                token
            }
        };

        let server_key = KeyPair::generate()?;
        let server_cert = server_params(addr)?.signed_by(&server_key, &ca_cert, &ca_key)?;
        let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let credentials = Self { ca_pem, admin_token, tls: Arc::new(tls) };
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

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "engenho-ca");
    name.push(DnType::OrganizationName, CLUSTER_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    params
}

fn server_params(addr: SocketAddr) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "kubernetes.default.svc".to_owned()])?;
    params.distinguished_name.push(DnType::CommonName, "engenho-apiserver");
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    let listening = client_addr(addr).ip();
    if !ips.contains(&listening) {
        ips.push(listening);
    }
    params.subject_alt_names.extend(ips.into_iter().map(SanType::IpAddress));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    Ok(params)
}

/// 32 random bytes as hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io { path: path.to_owned(), source }),
    }
}

fn write_public(path: &Path, text: &str) -> Result<(), PkiError> {
    write_with_mode(path, text, 0o644)
}

fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    write_with_mode(path, text, 0o600)
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written key or kubeconfig.
fn write_with_mode(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source| PkiError::Io { path: path.to_owned(), source };
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_survive_a_restart_and_the_kubeconfig_names_them() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let addr: SocketAddr = "0.0.0.0:6443".parse().expect("address");
        let first = Credentials::load_or_create(dir.path(), addr).expect("first start");
        let second = Credentials::load_or_create(dir.path(), addr).expect("restart");
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.admin_token, second.admin_token);
        assert_eq!(first.admin_token.len(), 64);
        let kubeconfig = std::fs::read_to_string(dir.path().join("kubeconfig")).expect("kubeconfig");
        assert!(kubeconfig.contains("server: https://127.0.0.1:6443"), "{kubeconfig}");
        assert!(kubeconfig.contains(&format!("token: {}", first.admin_token)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("pki/ca.key")).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
