//! The plugins' trust root: `PluginSigner` objects (engenho.io/v1alpha1,
//! cluster-scoped), each holding one trusted Ed25519 public key.
//!
//! Being cluster-scoped, a signer can be added or removed only by a holder
//! of the `pluginsigners.engenho.io` permission at the cluster scope, which
//! among the default roles only `cluster-admin` has: a RoleBinding grants
//! nothing at the cluster scope, and the `admin`, `edit` and `view` roles
//! name no engenho.io resource.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

use super::super::objects::ObjectStore;
use super::super::resources::Registry;
use super::super::status::ApiError;
use super::GROUP;

/// The plural of the kind whose objects are the trusted signers.
pub const SIGNERS_PLURAL: &str = "pluginsigners";

/// The PluginSigner that holds the bootstrapping node's own key.
pub const BOOTSTRAP_SIGNER: &str = "bootstrap";

/// The store key written once, by the node that made the cluster's first
/// signer: later starts (of any node) never add a signer again, so a
/// removed bootstrap signer stays removed.
const TRUST_BOOTSTRAPPED_KEY: &str = "/engenho/plugins/trust-bootstrapped";

/// Bytes of an Ed25519 public key.
const PUBLIC_KEY_BYTES: usize = 32;

/// A plugin signing key (Ed25519), kept as base64 PKCS #8 text.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new key, as the text of its file.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn generate() -> Result<String, String> {
        let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).map_err(|e| e.to_string())?;
        Ok(format!("{}\n", STANDARD.encode(document.as_ref())))
    }

    /// The key in a key file's `text`.
    ///
    /// # Errors
    /// Text that is not a base64 Ed25519 PKCS #8 key.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let der = STANDARD.decode(text.trim()).map_err(|_| "the key file is not base64".to_owned())?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| format!("not an Ed25519 key: {e}"))?;
        Ok(Self { pair })
    }

    /// The key at `path`, made there (readable by its owner only) if absent.
    ///
    /// # Errors
    /// Unreadable or unwritable files; a file that holds no key.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, String> {
        let shown = path.display();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_text(&text).map_err(|e| format!("{shown}: {e}")),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let text = Self::generate()?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(|e| format!("{shown}: {e}"))?;
                std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| format!("{shown}: {e}"))?;
                Self::from_text(&text)
            }
            Err(error) => Err(format!("{shown}: {error}")),
        }
    }

    /// The public key, base64: what a PluginSigner's `spec.publicKey` holds.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// The base64 signature of `message`.
    pub(super) fn sign_message(&self, message: &[u8]) -> String {
        STANDARD.encode(self.pair.sign(message))
    }

    /// A PluginSigner object trusting this key under `name`.
    pub fn signer_object(&self, name: &str) -> Value {
        json!({"apiVersion": "engenho.io/v1alpha1", "kind": "PluginSigner", "metadata": {"name": name},
            "spec": {"publicKey": self.public_base64()}})
    }
}

/// The trusted signers' public keys, or why they cannot be known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::kube) enum TrustRoot {
    /// The keys of every PluginSigner.
    Known(Vec<Vec<u8>>),
    /// The signers are missing or unreadable: nothing can be verified.
    Unknown(String),
}

impl TrustRoot {
    /// The trust root as this node's store holds it. Missing (no
    /// PluginSigner, or the kind not served) and unreadable (a store
    /// failure, a key that is not an Ed25519 public key) are both unknown:
    /// the caller fails closed rather than guessing.
    pub(in crate::kube) fn read(objects: &ObjectStore, registry: &Registry) -> Self {
        let Some(signers) = registry.find_plural(GROUP, SIGNERS_PLURAL) else {
            return Self::Unknown("the PluginSigner kind is not served".into());
        };
        let listed = match objects.list_at(signers, None, 0) {
            Ok(listed) => listed,
            Err(error) => return Self::Unknown(format!("listing the PluginSigners failed: {}", error.message)),
        };
        if listed.items.is_empty() {
            return Self::Unknown("no PluginSigner exists".into());
        }
        let mut keys = Vec::with_capacity(listed.items.len());
        for signer in &listed.items {
            let name = signer.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let text = signer.pointer("/spec/publicKey").and_then(Value::as_str).unwrap_or_default();
            match STANDARD.decode(text.trim()) {
                Ok(key) if key.len() == PUBLIC_KEY_BYTES => keys.push(key),
                _ => {
                    return Self::Unknown(format!(
                        "PluginSigner {name}: spec.publicKey is not a base64 Ed25519 public key of {PUBLIC_KEY_BYTES} \
                         bytes"
                    ));
                }
            }
        }
        Self::Known(keys)
    }
}

/// Checks `signature` (base64) over `message` against `signers`;
/// `what` names what was signed, for the refusal.
pub(super) fn verify(signature: &str, message: &[u8], signers: &[Vec<u8>], what: &str) -> Result<(), String> {
    if signature.is_empty() {
        return Err("the plugin is not signed".into());
    }
    let signature = STANDARD.decode(signature.trim()).map_err(|_| "the signature is not base64".to_owned())?;
    let trusted = signers.iter().any(|key| UnparsedPublicKey::new(&ED25519, key).verify(message, &signature).is_ok());
    if trusted { Ok(()) } else { Err(format!("the signature over {what} does not verify against any trusted signer")) }
}

/// Makes `signer` the cluster's first trusted signer, once per cluster:
/// the node that wins the write of the bootstrap marker creates the
/// PluginSigner `bootstrap`; every later start leaves the signers alone.
///
/// # Errors
/// The store refused the writes.
pub(super) async fn bootstrap(objects: &ObjectStore, registry: &Registry, signer: &SigningKey) -> Result<(), ApiError> {
    let claim = format!("{} {}", signer.public_base64(), super::super::objects::now());
    let winner = objects.get_or_create_raw(TRUST_BOOTSTRAPPED_KEY, || claim.clone().into_bytes()).await?;
    if winner != claim.as_bytes() {
        return Ok(());
    }
    let signers = registry
        .find_plural(GROUP, SIGNERS_PLURAL)
        .ok_or_else(|| ApiError::internal("the PluginSigner kind is not installed"))?;
    let object = signer.signer_object(BOOTSTRAP_SIGNER);
    match objects.create(signers, None, object, &super::super::objects::WriteOptions::default()).await {
        Ok(_) | Err(ApiError { reason: "AlreadyExists", .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// The CustomResourceDefinition of `PluginSigner`.
pub fn definition() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "pluginsigners.engenho.io"},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {"plural": SIGNERS_PLURAL, "singular": "pluginsigner", "kind": "PluginSigner",
                "shortNames": ["plgs"]},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "additionalPrinterColumns": [
                    {"name": "Public Key", "type": "string", "jsonPath": ".spec.publicKey"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A trusted plugin signer: plugins signed by its key may run. Cluster-scoped, so \
                        only holders of the pluginsigners permission at the cluster scope change the trust root.",
                    "required": ["spec"],
                    "properties": {
                        "spec": {"type": "object", "required": ["publicKey"], "properties": {
                            "publicKey": {"type": "string",
                                "description": "The signer's Ed25519 public key, base64 (32 bytes)."},
                        }},
                    },
                }},
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_key_verifies() {
        let key = SigningKey::from_text(&SigningKey::generate().expect("key")).expect("key");
        let other = SigningKey::from_text(&SigningKey::generate().expect("key")).expect("key");
        let public = STANDARD.decode(key.public_base64()).expect("base64");
        let signature = key.sign_message(b"terms");
        assert!(verify(&signature, b"terms", std::slice::from_ref(&public), "terms").is_ok());
        assert!(verify(&signature, b"other terms", std::slice::from_ref(&public), "x").is_err());
        let stranger = other.sign_message(b"terms");
        let refused = verify(&stranger, b"terms", &[public], "(p)").expect_err("a stranger's signature");
        assert_eq!(refused, "the signature over (p) does not verify against any trusted signer");
        assert_eq!(verify("", b"terms", &[], "x").expect_err("unsigned"), "the plugin is not signed");
    }
}
