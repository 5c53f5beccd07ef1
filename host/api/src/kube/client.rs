//! The client a node's control loops and agent write with: requests to
//! the node's own API server, sent through the same router as network
//! requests (so through RBAC, admission, defaults and validation) under
//! the loop's identity, without a socket or TLS in between; or, on a node
//! that holds no replica of the store (a worker), requests to a
//! control-plane node's API server as this node ([`super::remote`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;
use tower::ServiceExt;

use super::access::InProcess;
use super::auth::UserInfo;
use super::resources::ResourceType;
use super::status::ApiError;

/// Largest response body the client reads: an object at the store's limit,
/// with room for its envelope.
const RESPONSE_BYTES_MAX: usize = 4 << 20;

/// A request the API server refused, as its `Status` said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct Refused {
    /// HTTP status code.
    pub code: u16,
    /// The `Status`'s reason, e.g. `Conflict`.
    pub reason: String,
    /// The `Status`'s message.
    pub message: String,
}

impl Refused {
    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self { code: 500, reason: "InternalError".into(), message: message.into() }
    }
}

/// A failure of the node's own store, read as the refusal the API server
/// would have answered with.
impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self { code: error.code, reason: error.reason.to_owned(), message: error.message }
    }
}

/// How a patch is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386 JSON merge patch.
    Merge,
}

/// Requests to the cluster's API as one control loop or node agent.
#[derive(Clone)]
pub struct ApiClient {
    transport: Transport,
    manager: Arc<str>,
}

/// Where an [`ApiClient`]'s requests go.
#[derive(Clone)]
enum Transport {
    /// This node's own API server, as `user`.
    InProcess { router: Router, user: Arc<UserInfo> },
    /// A control-plane node's API server, as this node's certificate says.
    Remote(Arc<super::remote::RemoteApi>),
}

impl ApiClient {
    /// A client of `router` acting as `user`, recording its writes under
    /// field manager `manager`.
    pub fn new(router: Router, user: UserInfo, manager: &str) -> Self {
        Self { transport: Transport::InProcess { router, user: Arc::new(user) }, manager: Arc::from(manager) }
    }

    /// A client of the control plane's API servers through `remote`,
    /// recording its writes under field manager `manager`.
    pub fn remote(remote: Arc<super::remote::RemoteApi>, manager: &str) -> Self {
        Self { transport: Transport::Remote(remote), manager: Arc::from(manager) }
    }

    /// Sends one request; the response body of a success.
    ///
    /// # Errors
    /// The API server's refusal; a control plane that could not be reached
    /// (503).
    pub async fn send(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Result<Bytes, Refused> {
        let response = self.open(method, path, content_type, body).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), RESPONSE_BYTES_MAX)
            .await
            .map_err(|e| Refused::internal(format!("reading the answer from {path}: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(refusal(status, &body))
    }

    /// Sends one request and returns the response as it starts: its
    /// status and a body still to be read (a watch streams on).
    ///
    /// # Errors
    /// A request that could not be built or sent.
    pub async fn open(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<axum::response::Response, Refused> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, "application/json")
            .body(Body::from(body))
            .map_err(|e| Refused::internal(format!("building a request to {path}: {e}")))?;
        match &self.transport {
            Transport::InProcess { router, user } => {
                request.extensions_mut().insert(InProcess(UserInfo::clone(user)));
                let Ok(response) = router.clone().oneshot(request).await;
                Ok(response)
            }
            Transport::Remote(remote) => remote.send(request).await,
        }
    }

    /// Creates `object` (JSON) of kind `t`; the stored object.
    ///
    /// # Errors
    /// The API server's refusal.
    pub async fn create(&self, t: &ResourceType, namespace: Option<&str>, object: Vec<u8>) -> Result<Bytes, Refused> {
        let path = format!("{}?fieldManager={}", collection_path(t, namespace), self.manager);
        self.send(Method::POST, &path, "application/json", object).await
    }

    /// Replaces object `name` (or its `subresource`) with `object`; the
    /// stored object.
    ///
    /// # Errors
    /// The API server's refusal.
    pub async fn update(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        object: Vec<u8>,
    ) -> Result<Bytes, Refused> {
        let path = format!("{}?fieldManager={}", object_path(t, namespace, name, subresource), self.manager);
        self.send(Method::PUT, &path, "application/json", object).await
    }

    /// Sets the status of `object` (as read, with its resourceVersion) to
    /// `status`, unless it already is: a write conditional on the object
    /// being unchanged since it was read. An object that changed or went
    /// meanwhile is left as it is (the change queues another pass).
    ///
    /// # Errors
    /// The API server's refusal, other than a conflict or the object gone.
    pub async fn update_status_as_read(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        status: Value,
    ) -> Result<(), Refused> {
        if object.get("status") == Some(&status) {
            return Ok(());
        }
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        object["status"] = status;
        let body = serde_json::to_vec(&object).expect("JSON encodes");
        match self.update(t, namespace, &name, Some("status"), body).await {
            Err(refused) if refused.reason != "Conflict" && refused.code != 404 => Err(refused),
            _ => Ok(()),
        }
    }

    /// Patches object `name` (or its `subresource`); the stored object.
    ///
    /// # Errors
    /// The API server's refusal.
    pub async fn patch(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        (patch_type, patch): (PatchType, Vec<u8>),
    ) -> Result<Bytes, Refused> {
        let path = format!("{}?fieldManager={}", object_path(t, namespace, name, subresource), self.manager);
        let media = match patch_type {
            PatchType::Merge => "application/merge-patch+json",
        };
        self.send(Method::PATCH, &path, media, patch).await
    }

    /// Deletes object `name` with `options` (a `DeleteOptions`); the
    /// answer (the object as deleted or as marked for deletion).
    ///
    /// # Errors
    /// The API server's refusal.
    pub async fn delete(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
    ) -> Result<Bytes, Refused> {
        let path = object_path(t, namespace, name, None);
        self.send(Method::DELETE, &path, "application/json", options.to_string().into_bytes()).await
    }
}

/// The `Status` of a refusal, read as far as it can be.
fn refusal(status: StatusCode, body: &[u8]) -> Refused {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = |field: &str| parsed.as_ref().and_then(|s| s.get(field)).and_then(Value::as_str).map(str::to_owned);
    Refused {
        code: status.as_u16(),
        reason: text("reason").unwrap_or_else(|| status.canonical_reason().unwrap_or("Unknown").to_owned()),
        message: text("message").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

/// The path of kind `t`'s collection (in `namespace`).
pub fn collection_path(t: &ResourceType, namespace: Option<&str>) -> String {
    let root =
        if t.group.is_empty() { format!("/api/{}", t.version) } else { format!("/apis/{}/{}", t.group, t.version) };
    match namespace.filter(|_| t.namespaced) {
        Some(namespace) => format!("{root}/namespaces/{namespace}/{}", t.plural),
        None => format!("{root}/{}", t.plural),
    }
}

/// The path of object `name` of kind `t` (or of its `subresource`).
pub fn object_path(t: &ResourceType, namespace: Option<&str>, name: &str, subresource: Option<&str>) -> String {
    let path = format!("{}/{name}", collection_path(t, namespace));
    match subresource {
        Some(subresource) => format!("{path}/{subresource}"),
        None => path,
    }
}
