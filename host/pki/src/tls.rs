//! TLS configurations under the cluster CA.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::ca::{CaHash, Identity};
use crate::error::Result;

/// ALPN name of HTTP/2, which gRPC rides on.
pub const HTTP2_ALPN: &[u8] = b"h2";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    Ok(Arc::new(roots))
}

fn protocols(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|name| name.to_vec()).collect()
}

/// A server presenting `identity` that requires every client to present a
/// certificate issued by `ca`: a client without one fails the handshake
/// ("certificate required").
///
/// # Errors
/// The identity or CA is unusable.
pub fn mutual_server_config(
    identity: &Identity,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    verifying_server_config(identity, ca, alpn, ClientCertificate::Required)
}

/// A server presenting `identity` to any client, that asks clients for a
/// certificate and verifies one issued by `ca` when it is presented: a
/// client with no certificate is served (it may bring a bearer token), a
/// client with a certificate `ca` did not issue fails the handshake.
///
/// # Errors
/// The identity or CA is unusable.
pub fn optional_client_server_config(
    identity: &Identity,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    verifying_server_config(identity, ca, alpn, ClientCertificate::Optional)
}

/// Whether a server requires its clients' certificates.
enum ClientCertificate {
    Required,
    Optional,
}

fn verifying_server_config(
    identity: &Identity,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
    client: ClientCertificate,
) -> Result<Arc<ServerConfig>> {
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
    if matches!(client, ClientCertificate::Optional) {
        verifier = verifier.allow_unauthenticated();
    }
    let verifier = verifier.build().map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain().to_vec(), identity.private_key())?;
    config.alpn_protocols = protocols(alpn);
    Ok(Arc::new(config))
}

/// A client presenting `identity` that trusts servers whose certificate
/// `ca` issued for the address or name it dials.
///
/// # Errors
/// The identity or CA is unusable.
pub fn mutual_client_config(
    identity: &Identity,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(identity.chain().to_vec(), identity.private_key())?;
    config.alpn_protocols = protocols(alpn);
    Ok(Arc::new(config))
}

/// A client without a certificate of its own that trusts a server only if
/// its chain carries a CA whose certificate hashes to `ca_hash` and that CA
/// issued the server's certificate for the address it dials: how a joining
/// node finds its cluster before it sends the secret.
///
/// # Errors
/// The TLS provider refused the configuration.
pub fn pinned_client_config(ca_hash: CaHash, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
    let verifier = Arc::new(PinnedCaVerifier { ca_hash, provider: provider() });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = protocols(alpn);
    Ok(Arc::new(config))
}

/// Verifies a server against the CA a join token pins.
#[derive(Debug)]
struct PinnedCaVerifier {
    ca_hash: CaHash,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates.iter().find(|certificate| CaHash::of(certificate) == self.ca_hash).ok_or_else(|| {
            rustls::Error::General(format!(
                "the server's certificate authority is not the one the join token names (SHA-256 {})",
                self.ca_hash
            ))
        })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, certificate, signature, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, certificate, signature, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
