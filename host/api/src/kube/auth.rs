//! Who is asking: the admin token's user, service accounts presenting
//! tokens the cluster signed (JWTs, EdDSA), and users an authorized caller
//! impersonates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

/// The group whose members may do everything, without consulting RBAC.
pub const MASTERS_GROUP: &str = "system:masters";

/// The group of every authenticated user.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// The group of every service account.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// The group of every node's agent.
pub const NODES_GROUP: &str = "system:nodes";

/// The user name of a node's agent starts with this; the node's name follows.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The issuer of service-account tokens, and their default audience.
pub const TOKEN_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The user name of a service account starts with this.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Longest accepted token, in bytes.
const TOKEN_BYTES_MAX: usize = 8 * 1024;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name, e.g. `admin` or `system:serviceaccount:default:build`.
    pub name: String,
    /// The user's uid, if it has one.
    pub uid: String,
    /// The groups the user belongs to.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The holder of the admin token.
    pub fn admin() -> Self {
        Self {
            name: "admin".into(),
            uid: String::new(),
            groups: vec![MASTERS_GROUP.into(), AUTHENTICATED_GROUP.into()],
        }
    }

    /// The API server itself, as its own loops write (the `kubernetes`
    /// Service, APIServices): `system:apiserver`, privileged as
    /// kube-apiserver's loopback client is.
    pub fn api_server() -> Self {
        Self {
            name: "system:apiserver".into(),
            uid: String::new(),
            groups: vec![MASTERS_GROUP.into(), AUTHENTICATED_GROUP.into()],
        }
    }

    /// The agent of node `name`: `system:node:<name>` in `system:nodes`,
    /// as kubelets are.
    pub fn node(name: &str) -> Self {
        Self {
            name: format!("{NODE_USER_PREFIX}{name}"),
            uid: String::new(),
            groups: vec![NODES_GROUP.into(), AUTHENTICATED_GROUP.into()],
        }
    }

    /// The node whose agent this user is, if it is one.
    pub fn node_name(&self) -> Option<&str> {
        let name = self.name.strip_prefix(NODE_USER_PREFIX)?;
        (self.groups.iter().any(|g| g == NODES_GROUP) && !name.is_empty()).then_some(name)
    }

    /// Service account `name` in `namespace`, with its groups.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        Self {
            name: format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"),
            uid: uid.to_owned(),
            groups: vec![
                SERVICE_ACCOUNTS_GROUP.into(),
                format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
                AUTHENTICATED_GROUP.into(),
            ],
        }
    }

    /// Whether the user may do everything.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS_GROUP)
    }

    /// The namespace and name of the service account the user is, if any.
    pub fn as_service_account(&self) -> Option<(&str, &str)> {
        split_service_account(&self.name)
    }

    /// The user as Kubernetes' `UserInfo` JSON.
    pub fn to_json(&self) -> Value {
        let mut info = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            info["uid"] = json!(self.uid);
        }
        info
    }
}

/// The namespace and name in `system:serviceaccount:<ns>:<name>`.
pub fn split_service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// What a service-account token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account's name.
    pub name: String,
    /// The service account's uid: the token dies with the account.
    pub uid: String,
    /// Who the token is for.
    pub audiences: Vec<String>,
    /// When it was issued, in seconds since the Unix epoch.
    pub issued_at: i64,
    /// When it expires, in seconds since the Unix epoch.
    pub expires_at: i64,
}

/// Seconds a token's `iat` and `nbf` may be ahead of this node's clock,
/// for clocks of nodes that differ a little (as Kubernetes' token leeway).
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT of the expected form.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// The signature does not verify against the cluster's key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Issued by someone else.
    #[error("the token was issued by {0:?}, not by this cluster")]
    WrongIssuer(String),
    /// Not meant for the API server.
    #[error("the token is not meant for the API server (audiences {0:?})")]
    WrongAudience(Vec<String>),
    /// Past its expiry.
    #[error("the token expired")]
    Expired,
    /// Its `nbf` is still ahead (beyond the allowed clock skew).
    #[error("the token is not valid yet (nbf {not_before}, now {now})")]
    NotYetValid {
        /// The token's `nbf`.
        not_before: i64,
        /// The time it was presented.
        now: i64,
    },
    /// Its `iat` is ahead (beyond the allowed clock skew).
    #[error("the token was issued in the future (iat {issued_at}, now {now})")]
    IssuedInTheFuture {
        /// The token's `iat`.
        issued_at: i64,
        /// The time it was presented.
        now: i64,
    },
    /// The signing key is unusable.
    #[error("the service-account signing key is unusable: {0}")]
    BadKey(String),
}

/// Signs and verifies service-account tokens with the cluster's Ed25519 key.
pub struct TokenSigner {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A new signing key, as PKCS #8 bytes.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn generate() -> Result<Vec<u8>, TokenError> {
        let random = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&random)
            .map(|document| document.as_ref().to_vec())
            .map_err(|e| TokenError::BadKey(e.to_string()))
    }

    /// The signer holding `pkcs8`.
    ///
    /// # Errors
    /// The bytes are not an Ed25519 PKCS #8 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TokenError> {
        Ed25519KeyPair::from_pkcs8(pkcs8).map(|key| Self { key }).map_err(|e| TokenError::BadKey(e.to_string()))
    }

    /// A signed token carrying `claims`.
    pub fn issue(&self, claims: &ServiceAccountClaims) -> String {
        let header = json!({"alg": "EdDSA", "typ": "JWT"});
        let body = json!({
            "iss": TOKEN_ISSUER,
            "sub": format!("{SERVICE_ACCOUNT_PREFIX}{}:{}", claims.namespace, claims.name),
            "aud": claims.audiences,
            "iat": claims.issued_at,
            "nbf": claims.issued_at,
            "exp": claims.expires_at,
            "kubernetes.io": {
                "namespace": claims.namespace,
                "serviceaccount": {"name": claims.name, "uid": claims.uid},
            },
        });
        let signed = format!("{}.{}", encode_part(&header), encode_part(&body));
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// The claims of `token` if this signer issued it, it is meant for the
    /// API server, and it has not expired at `now` (Unix seconds).
    ///
    /// # Errors
    /// Why the token is not accepted.
    pub fn verify(&self, token: &str, now: i64) -> Result<ServiceAccountClaims, TokenError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::Malformed("longer than any token this cluster issues"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let header = decode_part(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
            return Err(TokenError::Malformed("not signed with EdDSA"));
        }
        let signature =
            URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("signature not base64url"))?;
        let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
        UnparsedPublicKey::new(&ED25519, self.key.public_key().as_ref())
            .verify(&token.as_bytes()[..signed_len], &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let body = decode_part(body)?;
        let issuer = body.get("iss").and_then(Value::as_str).unwrap_or_default();
        if issuer != TOKEN_ISSUER {
            return Err(TokenError::WrongIssuer(issuer.to_owned()));
        }
        let audiences: Vec<String> = match body.get("aud") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|a| a == TOKEN_ISSUER) {
            return Err(TokenError::WrongAudience(audiences));
        }
        let number = |field: &str| body.get(field).and_then(Value::as_i64);
        let expires_at = number("exp").ok_or(TokenError::Malformed("no expiry"))?;
        if now >= expires_at {
            return Err(TokenError::Expired);
        }
        let issued_at = number("iat").ok_or(TokenError::Malformed("no issue time"))?;
        if issued_at > now.saturating_add(CLOCK_SKEW_SECONDS) {
            return Err(TokenError::IssuedInTheFuture { issued_at, now });
        }
        if let Some(not_before) = number("nbf").filter(|nbf| *nbf > now.saturating_add(CLOCK_SKEW_SECONDS)) {
            return Err(TokenError::NotYetValid { not_before, now });
        }
        let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
        let claims = ServiceAccountClaims {
            namespace: text("/kubernetes.io/namespace"),
            name: text("/kubernetes.io/serviceaccount/name"),
            uid: text("/kubernetes.io/serviceaccount/uid"),
            audiences,
            issued_at,
            expires_at,
        };
        if claims.namespace.is_empty() || claims.name.is_empty() {
            return Err(TokenError::Malformed("no service account"));
        }
        Ok(claims)
    }
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

fn decode_part(part: &str) -> Result<Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed("a part is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("a part is not JSON"))
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims() -> ServiceAccountClaims {
        ServiceAccountClaims {
            namespace: "default".into(),
            name: "build".into(),
            uid: "u-1".into(),
            audiences: vec![TOKEN_ISSUER.into()],
            issued_at: 1_000,
            expires_at: 4_600,
        }
    }

    fn signer() -> TokenSigner {
        TokenSigner::from_pkcs8(&TokenSigner::generate().expect("key")).expect("signer")
    }

    #[test]
    fn tokens_verify_until_they_expire() {
        let signer = signer();
        let token = signer.issue(&claims());
        assert_eq!(signer.verify(&token, 2_000), Ok(claims()));
        assert_eq!(signer.verify(&token, 4_600), Err(TokenError::Expired));
    }

    #[test]
    fn other_keys_tampering_and_other_audiences_are_refused() {
        let (ours, theirs) = (signer(), signer());
        let token = theirs.issue(&claims());
        assert_eq!(ours.verify(&token, 2_000), Err(TokenError::BadSignature));

        let token = ours.issue(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut body = decode_part(parts[1]).expect("body");
        body["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
        let forged = format!("{}.{}.{}", parts[0], encode_part(&body), parts[2]);
        assert_eq!(ours.verify(&forged, 2_000), Err(TokenError::BadSignature));

        let elsewhere = ServiceAccountClaims { audiences: vec!["vault".into()], ..claims() };
        assert!(matches!(ours.verify(&ours.issue(&elsewhere), 2_000), Err(TokenError::WrongAudience(_))));
        assert!(matches!(ours.verify("a.b", 2_000), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
        let signer = signer();
        let token = signer.issue(&claims());
        assert_eq!(signer.verify(&token, 1_000 - CLOCK_SKEW_SECONDS), Ok(claims()));
        let early = 1_000 - CLOCK_SKEW_SECONDS - 1;
        assert_eq!(signer.verify(&token, early), Err(TokenError::IssuedInTheFuture { issued_at: 1_000, now: early }));
    }

    #[test]
    fn service_account_names_split() {
        assert_eq!(split_service_account("system:serviceaccount:ns:sa"), Some(("ns", "sa")));
        assert_eq!(split_service_account("system:serviceaccount:ns"), None);
        assert_eq!(split_service_account("jane"), None);
        let user = UserInfo::service_account("ns", "sa", "u");
        assert_eq!(user.groups, ["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"]);
        assert!(!user.is_master() && UserInfo::admin().is_master());
    }

    proptest! {
        #[test]
        fn no_token_panics_the_verifier(token in ".{0,300}") {
            let signer = signer();
            let _ = signer.verify(&token, 0);
        }
    }
}
