//! Every request's identity and permission: the bearer token names a user
//! (401 if it names none), impersonation headers may swap in another user
//! the caller is allowed to act as, and RBAC decides the request (403).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::auth::{AUTHENTICATED_GROUP, TokenSigner, UserInfo, split_service_account, unix_now};
use super::handlers::{ApiState, request_attributes};
use super::rbac::{self, Attributes, ResourceAttributes};
use super::status::ApiError;

/// Where the service-account signing key (PKCS #8, base64) lives in the
/// store.
const SIGNING_KEY: &str = "/engenho/serviceaccounts/signing-key";

/// Headers that ask to act as another user.
const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_GROUP: &str = "impersonate-group";
const IMPERSONATE_UID: &str = "impersonate-uid";

impl ApiState {
    /// The cluster's service-account token signer, made by the first node
    /// that needs it and shared through the store.
    ///
    /// # Errors
    /// The store could not be read or written, or holds an unusable key.
    pub async fn token_signer(&self) -> Result<&TokenSigner, ApiError> {
        self.token_signer
            .get_or_try_init(|| async {
                let internal = |error: &dyn std::fmt::Display| ApiError::internal(error.to_string());
                let candidate = TokenSigner::generate().map_err(|e| internal(&e))?;
                let stored =
                    self.objects.get_or_create_raw(SIGNING_KEY, || STANDARD.encode(candidate).into_bytes()).await?;
                let key = STANDARD.decode(&stored).map_err(|e| internal(&format!("the stored signing key: {e}")))?;
                TokenSigner::from_pkcs8(&key).map_err(|e| internal(&e))
            })
            .await
    }
}

/// Authenticates, impersonates and authorizes the request; the user it acts
/// as travels on in the request's extensions.
pub async fn guard(State(state): State<Arc<ApiState>>, mut request: Request, next: Next) -> Response {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let in_process = request.extensions().get::<InProcess>().map(|caller| caller.0.clone());
    let certificate = request.extensions().get::<ClientCertificate>().map(|node| node.0.clone());
    let user = match admit(&state, &method, &uri, request.headers(), in_process, certificate).await {
        Ok(user) => user,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(user);
    next.run(request).await
}

/// The identity of a request a node makes to its own API server (a
/// control loop's write): set only by the node itself on the request's
/// extensions, which no network request can carry. Such a request skips
/// the bearer token and impersonation; authorization, admission and
/// validation run as for any other.
#[derive(Debug, Clone)]
pub struct InProcess(pub UserInfo);

/// The node agent a request's connection proved itself to be in the TLS
/// handshake, with a node certificate the cluster CA issued
/// (`system:node:<name>` in `system:nodes`, as kube-apiserver reads a
/// kubelet's client certificate). Other certificates of the CA name no
/// user here.
#[derive(Debug, Clone)]
pub(crate) struct ClientCertificate(UserInfo);

impl ClientCertificate {
    /// The node identity of the certificate chain a verified client
    /// presented, if it is a node's.
    pub(crate) fn of(chain: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> Option<Self> {
        let name = engenho_pki::node_name_of(chain?.first()?)?;
        Some(Self(UserInfo::node(&name)))
    }
}

async fn admit(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    in_process: Option<UserInfo>,
    certificate: Option<UserInfo>,
) -> Result<UserInfo, ApiError> {
    let user = match in_process {
        Some(user) => user,
        None => {
            let token = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let caller = match (token, certificate) {
                (Some(token), _) => authenticate(state, token).await?,
                (None, Some(node)) => node,
                (None, None) => return Err(ApiError::unauthorized()),
            };
            impersonate(state, caller, headers)?
        }
    };
    let attributes = request_attributes(method, uri.path(), uri.query().unwrap_or(""), &state.registry());
    match state.authorizer.authorize(&user, &attributes)? {
        Some(_) => Ok(user),
        None => Err(rbac::forbidden(&user, &attributes)),
    }
}

/// The user `token` names: the admin, or a live service account whose
/// token the cluster signed.
pub(super) async fn authenticate(state: &ApiState, token: &str) -> Result<UserInfo, ApiError> {
    if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
        return Ok(UserInfo::admin());
    }
    let claims = state.token_signer().await?.verify(token, unix_now()).map_err(|error| {
        tracing::debug!(%error, "refused a bearer token");
        ApiError::unauthorized()
    })?;
    let registry = state.registry();
    let accounts = registry.find("", "v1", "serviceaccounts").expect("service accounts are built in");
    let account = state.objects.get_local(accounts, Some(&claims.namespace), &claims.name)?;
    let uid = account.as_ref().and_then(|a| a.pointer("/metadata/uid")).and_then(Value::as_str);
    if uid != Some(claims.uid.as_str()) {
        tracing::debug!(namespace = claims.namespace, name = claims.name, "a token outlived its service account");
        return Err(ApiError::unauthorized());
    }
    Ok(UserInfo::service_account(&claims.namespace, &claims.name, &claims.uid))
}

/// The user named by `Impersonate-*` headers, if the caller may act as it;
/// the caller itself when none are sent.
fn impersonate(state: &ApiState, caller: UserInfo, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    };
    let (users, groups, uids) = (values(IMPERSONATE_USER), values(IMPERSONATE_GROUP), values(IMPERSONATE_UID));
    let Some(name) = users.first().cloned() else {
        if groups.is_empty() && uids.is_empty() {
            return Ok(caller);
        }
        return Err(ApiError::bad_request("impersonating groups or a uid requires impersonating a user"));
    };
    let may = |resource: &str, group: &str, namespace: &str, object: &str| -> Result<(), ApiError> {
        let attributes = Attributes {
            verb: "impersonate".into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: String::new(),
                namespace: namespace.into(),
                name: object.into(),
            }),
            path: String::new(),
        };
        match state.authorizer.authorize(&caller, &attributes)? {
            Some(_) => Ok(()),
            None => Err(rbac::forbidden(&caller, &attributes)),
        }
    };
    let account = split_service_account(&name);
    match account {
        Some((namespace, account)) => may("serviceaccounts", "", namespace, account)?,
        None => may("users", "", "", &name)?,
    }
    for group in &groups {
        may("groups", "", "", group)?;
    }
    let uid = uids.first().cloned().unwrap_or_default();
    if !uid.is_empty() {
        may("uids", "authentication.k8s.io", "", &uid)?;
    }
    let mut user = match account {
        Some((namespace, account)) if groups.is_empty() => UserInfo::service_account(namespace, account, &uid),
        _ => UserInfo { name, uid, groups },
    };
    if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        user.groups.push(AUTHENTICATED_GROUP.into());
    }
    Ok(user)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
