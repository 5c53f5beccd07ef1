//! The cluster's certificate authority and the certificates it issues.
//!
//! The CA is made when a cluster is bootstrapped and handed, with its key,
//! to every control-plane node that joins (as kubeadm's control-plane join
//! and k3s servers share theirs): each such node issues its own serving
//! certificates and signs the node certificates of later joiners.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{PkiError, Result};
use crate::files::{read_optional, write_private};

/// Organization of every node certificate: the peer port serves only
/// callers whose certificate names it.
pub const NODE_ORGANIZATION: &str = "system:nodes";

/// Prefix of a node certificate's common name, before the node's name.
const NODE_COMMON_NAME_PREFIX: &str = "system:node:";

/// Organizational unit of a worker's node certificate: a node that holds
/// no replica of the store, which the peer ports of the control plane
/// refuse for raft and store requests.
const WORKER_UNIT: &str = "engenho:worker";

use crate::dial::CA_CERTIFICATE_FILE as CERTIFICATE_FILE;

/// File of the CA key in a node's `pki/` directory.
const KEY_FILE: &str = "ca.key";

/// The SHA-256 digest of the CA certificate (DER): what a join token pins.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CaHash([u8; 32]);

impl CaHash {
    /// The digest of a certificate.
    pub fn of(certificate: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
        Self(digest.as_ref().try_into().expect("SHA-256 digests are 32 bytes"))
    }

    /// The digest of a PEM certificate, or `None` if it is not one.
    pub fn of_pem(certificate_pem: &str) -> Option<Self> {
        CertificateDer::from_pem_slice(certificate_pem.as_bytes()).ok().map(|der| Self::of(&der))
    }
}

impl fmt::Display for CaHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for CaHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaHash({self})")
    }
}

impl FromStr for CaHash {
    type Err = PkiError;

    fn from_str(text: &str) -> Result<Self> {
        let malformed = || PkiError::MalformedToken(format!("{text:?} is not a SHA-256 digest in hex"));
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        let mut digest = [0; 32];
        for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| malformed())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| malformed())?;
        }
        Ok(Self(digest))
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// A node's identity on the peer port, as server and as client: common
    /// name `system:node:<name>`, organization [`NODE_ORGANIZATION`], the
    /// peer address as its subject alternative name.
    Node {
        /// The node's name.
        name: String,
        /// The node's peer address.
        ip: IpAddr,
    },
    /// A worker's identity: as [`Profile::Node`] (its agent is
    /// `system:node:<name>` to the API server), marked as a worker's, which
    /// may not speak raft or send store requests to the control plane.
    Worker {
        /// The node's name.
        name: String,
        /// The node's peer address.
        ip: IpAddr,
    },
    /// A TLS server reached by these names and addresses.
    Server {
        /// Common name.
        common_name: String,
        /// DNS names it answers to.
        dns_names: Vec<String>,
        /// Addresses it answers on.
        ips: Vec<IpAddr>,
    },
    /// A member of a replicated service that serves its peers and dials
    /// them with the same certificate, as an etcd member does: server and
    /// client use, for every address it is reached on or dials from.
    Member {
        /// Common name.
        common_name: String,
        /// Addresses it answers on and dials from.
        ips: Vec<IpAddr>,
    },
    /// A TLS client.
    Client {
        /// Common name.
        common_name: String,
    },
}

impl Profile {
    fn params(&self) -> Result<CertificateParams> {
        let (common_name, organization, dns_names, ips, usages) = match self {
            Self::Node { name, ip } | Self::Worker { name, ip } => (
                format!("{NODE_COMMON_NAME_PREFIX}{name}"),
                Some(NODE_ORGANIZATION),
                Vec::new(),
                vec![*ip],
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            ),
            Self::Server { common_name, dns_names, ips } => {
                (common_name.clone(), None, dns_names.clone(), ips.clone(), vec![ExtendedKeyUsagePurpose::ServerAuth])
            }
            Self::Member { common_name, ips } => (
                common_name.clone(),
                None,
                Vec::new(),
                ips.clone(),
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            ),
            Self::Client { common_name } => {
                (common_name.clone(), None, Vec::new(), Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth])
            }
        };
        let mut params = CertificateParams::new(dns_names)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        if let Some(organization) = organization {
            params.distinguished_name.push(DnType::OrganizationName, organization);
        }
        if matches!(self, Self::Worker { .. }) {
            params.distinguished_name.push(DnType::OrganizationalUnitName, WORKER_UNIT);
        }
        params.subject_alt_names.extend(ips.into_iter().map(SanType::IpAddress));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = usages;
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2125, 1, 1);
        Ok(params)
    }
}

/// The cluster's certificate authority, with its key.
pub struct ClusterCa {
    certificate_pem: String,
    certificate_der: CertificateDer<'static>,
    key: KeyPair,
    /// The CA as rcgen signs with it: same name and key as the certificate
    /// on disk.
    issuer: rcgen::Certificate,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa").field("hash", &self.hash()).finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Makes a new CA and writes it to `pki/ca.crt` and `pki/ca.key`.
    ///
    /// # Errors
    /// The key could not be made or the files written.
    pub fn create(pki: &Path) -> Result<Self> {
        let key = KeyPair::generate()?;
        let certificate = ca_params().self_signed(&key)?;
        Self::install(pki, &certificate.pem(), &key.serialize_pem())
    }

    /// Loads the CA from `pki/`, or `None` if this node holds none.
    ///
    /// # Errors
    /// The files exist but are unreadable, malformed, or do not match.
    pub fn load(pki: &Path) -> Result<Option<Self>> {
        let key_path = pki.join(KEY_FILE);
        let Some(key_pem) = read_optional(&key_path)? else { return Ok(None) };
        let certificate_path = pki.join(CERTIFICATE_FILE);
        let Some(certificate_pem) = read_optional(&certificate_path)? else {
            let reason = format!("{} is missing beside it", certificate_path.display());
            return Err(PkiError::Invalid { path: key_path, reason });
        };
        Self::parse(&certificate_pem, &key_pem, &certificate_path).map(Some)
    }

    /// Checks a CA received from the cluster and writes it to `pki/`.
    ///
    /// # Errors
    /// The certificate and key are malformed or do not belong together, or
    /// the files cannot be written.
    pub fn install(pki: &Path, certificate_pem: &str, key_pem: &str) -> Result<Self> {
        let certificate_path = pki.join(CERTIFICATE_FILE);
        let ca = Self::parse(certificate_pem, key_pem, &certificate_path)?;
        write_private(&pki.join(KEY_FILE), key_pem)?;
        write_private(&certificate_path, certificate_pem)?;
        Ok(ca)
    }

    fn parse(certificate_pem: &str, key_pem: &str, path: &Path) -> Result<Self> {
        let invalid = |reason: String| PkiError::Invalid { path: path.to_owned(), reason };
        let key = KeyPair::from_pem(key_pem)?;
        let certificate_der = CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(invalid("the CA key does not belong to this certificate".into()));
        }
        let issuer = CertificateParams::from_ca_cert_der(&certificate_der)?.self_signed(&key)?;
        Ok(Self { certificate_pem: certificate_pem.to_owned(), certificate_der, key, issuer })
    }

    /// The digest a join token pins.
    pub fn hash(&self) -> CaHash {
        CaHash::of(&self.certificate_der)
    }

    /// The CA certificate as every node and client trusts it, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate_der
    }

    /// The CA key, PEM: handed only to control-plane nodes that join.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a certificate for a new key.
    ///
    /// # Errors
    /// The key or certificate could not be made.
    pub fn issue(&self, profile: &Profile) -> Result<Identity> {
        let key = match profile {
            Profile::Node { .. } | Profile::Worker { .. } => node_key()?,
            _ => KeyPair::generate()?,
        };
        let certificate = profile.params()?.signed_by(&key, &self.issuer, &self.key)?;
        Ok(Identity::new(certificate.der().clone(), self.certificate_der.clone(), &key))
    }

    /// Signs the key of a certificate signing request for `profile`; the
    /// request's own names and extensions are ignored. Answers the
    /// certificate, PEM.
    ///
    /// # Errors
    /// The request is malformed or its signature does not verify.
    pub fn sign_request(&self, request_pem: &str, profile: &Profile) -> Result<String> {
        let mut request = CertificateSigningRequestParams::from_pem(request_pem)?;
        request.params = profile.params()?;
        Ok(request.signed_by(&self.issuer, &self.key)?.pem())
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "engenho-ca");
    name.push(DnType::OrganizationName, "engenho");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    params
}

/// A certificate issued by the cluster CA and its private key.
pub struct Identity {
    /// The certificate, then the CA's.
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("certificates", &self.chain.len()).finish_non_exhaustive()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    fn new(certificate: CertificateDer<'static>, ca: CertificateDer<'static>, key: &KeyPair) -> Self {
        Self { chain: vec![certificate, ca], key: PrivatePkcs8KeyDer::from(portable_pkcs8(key.serialize_der())) }
    }

    /// A new node key (Ed25519) and a certificate signing request for it,
    /// to be sent to the cluster; [`Identity::from_issued`] completes it.
    ///
    /// # Errors
    /// The key or request could not be made.
    pub fn request() -> Result<(KeyPair, String)> {
        let key = node_key()?;
        let request = CertificateParams::default().serialize_request(&key)?;
        Ok((key, request.pem()?))
    }

    /// The identity made of `key` and the certificate the cluster issued
    /// for it.
    ///
    /// # Errors
    /// The certificate is malformed or is not for `key`.
    pub fn from_issued(key: &KeyPair, certificate_pem: &str, ca: &CertificateDer<'static>) -> Result<Self> {
        let path = PathBuf::from("the issued node certificate");
        let invalid = |reason: String| PkiError::Invalid { path: path.clone(), reason };
        let certificate = CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate)
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(invalid("it was issued for another key".into()));
        }
        Ok(Self::new(certificate, ca.clone(), key))
    }

    /// Loads an identity written by [`Identity::write`], or `None` if the
    /// files do not exist.
    ///
    /// # Errors
    /// The files exist but are unreadable or malformed.
    pub fn load(certificate_path: &Path, key_path: &Path) -> Result<Option<Self>> {
        let (Some(chain_pem), Some(key_pem)) = (read_optional(certificate_path)?, read_optional(key_path)?) else {
            return Ok(None);
        };
        let invalid = |path: &Path, reason: String| PkiError::Invalid { path: path.to_owned(), reason };
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(certificate_path, format!("not PEM certificates: {e}")))?;
        if chain.is_empty() {
            return Err(invalid(certificate_path, "holds no certificate".into()));
        }
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| invalid(key_path, format!("not a PKCS#8 PEM key: {e}")))?;
        Ok(Some(Self { chain, key }))
    }

    /// Writes the certificate chain and the key (both 0600).
    ///
    /// # Errors
    /// The files cannot be written.
    pub fn write(&self, certificate_path: &Path, key_path: &Path) -> Result<()> {
        let chain: String = self.chain.iter().map(|der| pem("CERTIFICATE", der)).collect();
        write_private(key_path, &pem("PRIVATE KEY", self.key.secret_pkcs8_der()))?;
        write_private(certificate_path, &chain)
    }

    /// The certificate, then the CA's.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// The node name in a node certificate, or `None` if `certificate` is not
/// a node certificate (a client or serving certificate of the same CA).
pub fn node_name_of(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let subject = parsed.subject();
    let organization = subject.iter_organization().next()?.as_str().ok()?;
    let common_name = subject.iter_common_name().next()?.as_str().ok()?;
    (organization == NODE_ORGANIZATION).then_some(())?;
    common_name.strip_prefix(NODE_COMMON_NAME_PREFIX).map(str::to_owned)
}

/// Whether `certificate` is a worker's node certificate
/// ([`Profile::Worker`]).
pub fn is_worker_certificate(certificate: &CertificateDer<'_>) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate) else { return false };
    parsed.subject().iter_organizational_unit().any(|unit| unit.as_str() == Ok(WORKER_UNIT))
}

/// A new key for a node identity: Ed25519, the key that also signs the
/// node's entries of revoada's attested chain.
fn node_key() -> Result<KeyPair> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ED25519)?)
}

/// An Ed25519 key in PKCS#8 v2 (RFC 8410 `OneAsymmetricKey`, with the
/// public key), as ring writes it, after its outer SEQUENCE header and up
/// to the 32-byte seed: version 1, the Ed25519 algorithm, the seed's
/// OCTET STRING headers.
const ED25519_PKCS8_V2_BODY: [u8; 14] =
    [0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// An Ed25519 key in PKCS#8 v1 (no public key), up to its seed.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// `der` in the PKCS#8 form every tool reads: an Ed25519 key in v2 is
/// written as v1 (the seed alone; OpenSSL 3.0 refuses ring's v2), any
/// other key as it is.
fn portable_pkcs8(der: Vec<u8>) -> Vec<u8> {
    let seed = der
        .get(2..)
        .filter(|_| der.first() == Some(&0x30))
        .and_then(|body| body.strip_prefix(&ED25519_PKCS8_V2_BODY[..]))
        .and_then(|rest| rest.get(..32));
    match seed {
        Some(seed) => [&ED25519_PKCS8_V1_PREFIX[..], seed].concat(),
        None => der,
    }
}

/// PEM text of one DER object.
fn pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(label, der), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_identities_hold_ed25519_keys_every_tool_reads() {
        // Goal: a node's key (issued, or requested by a joining node) is
        // Ed25519 in PKCS#8 v1, which ring and OpenSSL read, and is the key
        // of its certificate; other identities keep their keys.
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = ClusterCa::create(dir.path()).expect("CA");
        let node = ca.issue(&Profile::Node { name: "n1".into(), ip: "127.0.0.1".parse().expect("ip") }).expect("node");
        let (key, request) = Identity::request().expect("request");
        let issued = ca
            .sign_request(&request, &Profile::Node { name: "n2".into(), ip: "127.0.0.2".parse().expect("ip") })
            .expect("issued");
        let joined = Identity::from_issued(&key, &issued, ca.certificate_der()).expect("identity");
        for identity in [&node, &joined] {
            let der = identity.key.secret_pkcs8_der();
            assert!(der.starts_with(&ED25519_PKCS8_V1_PREFIX) && der.len() == 48, "{der:02x?}");
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).expect("ring reads it");
            let (_, certificate) = x509_parser::parse_x509_certificate(&identity.chain()[0]).expect("certificate");
            use ring::signature::KeyPair as _;
            assert_eq!(certificate.public_key().subject_public_key.data.as_ref(), pair.public_key().as_ref());
        }
        let client = ca.issue(&Profile::Client { common_name: "c".into() }).expect("client");
        assert!(!client.key.secret_pkcs8_der().starts_with(&ED25519_PKCS8_V1_PREFIX));
    }

    #[test]
    fn a_ca_survives_a_reload_and_its_hash_is_stable() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let created = ClusterCa::create(dir.path()).expect("create");
        let loaded = ClusterCa::load(dir.path()).expect("load").expect("present");
        assert_eq!(created.hash(), loaded.hash());
        assert_eq!(created.hash().to_string().parse::<CaHash>().expect("parses"), created.hash());
        use std::os::unix::fs::PermissionsExt;
        for file in [KEY_FILE, CERTIFICATE_FILE] {
            let mode = std::fs::metadata(dir.path().join(file)).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        assert!(ClusterCa::load(&dir.path().join("absent")).expect("no CA").is_none());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = ClusterCa::create(dir.path()).expect("create");
        let other = KeyPair::generate().expect("key").serialize_pem();
        let error = ClusterCa::install(dir.path(), ca.certificate_pem(), &other).expect_err("mismatch");
        assert!(error.to_string().contains("does not belong"), "{error}");
    }

    #[test]
    fn node_certificates_name_their_node_and_others_do_not() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = ClusterCa::create(dir.path()).expect("create");
        let node = ca.issue(&Profile::Node { name: "n1".into(), ip: "127.0.0.1".parse().expect("ip") }).expect("node");
        assert_eq!(node_name_of(&node.chain()[0]).as_deref(), Some("n1"));
        let client = ca.issue(&Profile::Client { common_name: "system:node:n1".into() }).expect("client");
        assert_eq!(node_name_of(&client.chain()[0]), None, "a client certificate is not a node's");

        let (key, request) = Identity::request().expect("request");
        let issued = ca
            .sign_request(&request, &Profile::Node { name: "n2".into(), ip: "127.0.0.2".parse().expect("ip") })
            .expect("signed");
        let identity = Identity::from_issued(&key, &issued, ca.certificate_der()).expect("identity");
        assert_eq!(node_name_of(&identity.chain()[0]).as_deref(), Some("n2"));
        let stranger = KeyPair::generate().expect("key");
        assert!(Identity::from_issued(&stranger, &issued, ca.certificate_der()).is_err());

        assert!(!is_worker_certificate(&identity.chain()[0]), "a member's certificate is not a worker's");
        let worker = ca.issue(&Profile::Worker { name: "w1".into(), ip: "127.0.0.3".parse().expect("ip") }).expect("w");
        assert_eq!(node_name_of(&worker.chain()[0]).as_deref(), Some("w1"), "a worker is a node");
        assert!(is_worker_certificate(&worker.chain()[0]));

        identity.write(&dir.path().join("n.crt"), &dir.path().join("n.key")).expect("write");
        let loaded = Identity::load(&dir.path().join("n.crt"), &dir.path().join("n.key")).expect("load").expect("some");
        assert_eq!(loaded.chain(), identity.chain());
    }
}
