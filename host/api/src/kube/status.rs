//! Kubernetes `Status` errors: every failed request answers with one.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One field-level cause of a failure (422 Invalid and conflicts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueRequired`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
}

/// A failed API request, answered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes reason, e.g. `NotFound`.
    pub reason: &'static str,
    /// Message printed by kubectl after `Error from server (<reason>):`.
    pub message: String,
    /// `details`: the object's name, group and kind (resource), if known.
    pub details: Option<Box<(String, String, String)>>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
    /// Seconds after which the client may try again (`Retry-After`,
    /// `details.retryAfterSeconds`), if it may.
    pub retry_after_seconds: Option<u32>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None, causes: Vec::new(), retry_after_seconds: None }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403: the caller may not do what it asked.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 403 for an object (or collection, with an empty `name`) of
    /// `resource` in `group`.
    pub fn forbidden_on(message: impl Into<String>, group: &str, resource: &str, name: &str) -> Self {
        Self::forbidden(message).with_details(name, group, resource)
    }

    /// 404 for an object of `resource` in `group`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let what = if group.is_empty() { resource.to_owned() } else { format!("{resource}.{group}") };
        Self::new(404, "NotFound", format!("{what} \"{name}\" not found")).with_details(name, group, resource)
    }

    /// 404 for a path that names nothing served.
    pub fn no_route(path: &str) -> Self {
        Self::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
    }

    /// 405: the resource does not support the verb.
    pub fn method_not_allowed(verb: &str, resource: &str) -> Self {
        Self::new(405, "MethodNotAllowed", format!("{verb} is not supported on resources of kind \"{resource}\""))
    }

    /// 409: the object exists already.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let what = if group.is_empty() { resource.to_owned() } else { format!("{resource}.{group}") };
        Self::new(409, "AlreadyExists", format!("{what} \"{name}\" already exists")).with_details(name, group, resource)
    }

    /// 409: the object changed since the version the client sent.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        let what = if group.is_empty() { resource.to_owned() } else { format!("{resource}.{group}") };
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .with_details(name, group, resource)
    }

    /// 410: the requested resource version is older than the history kept.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::entity_too_large(format_args!("limit is {limit}"))
    }

    /// 413 with Kubernetes' wording, for a request whose content (not its
    /// byte count) is over a limit.
    pub fn entity_too_large(message: impl std::fmt::Display) -> Self {
        Self::new(413, "RequestEntityTooLarge", format!("Request entity too large: {message}"))
    }

    /// 422 whose message says all there is (no field applies).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 422: `kind` object `name` would encode to more than
    /// [`super::objects::OBJECT_BYTES_MAX`] bytes.
    pub fn object_too_large(group: &str, kind: &str, name: &str) -> Self {
        let message = format!("Too long: may not be more than {} bytes", super::objects::OBJECT_BYTES_MAX);
        // Kubernetes names the whole object's path `[]`.
        let cause = Cause { reason: "FieldValueTooLong".into(), message, field: "[]".into() };
        Self::invalid(group, kind, name, vec![cause])
    }

    /// 429: the client holds or sends more than it may; it should retry later.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    /// This error, telling the client to try again after `seconds`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// 504: the server gave up on the request at its deadline.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// 415: the body's media type is not one the endpoint takes.
    pub fn unsupported_media_type(media: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format: {media}"))
    }

    /// 422 for `kind` `name`, with per-field causes.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>().join(", ");
        let kind_name = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
        let mut error = Self::new(422, "Invalid", format!("{kind_name} \"{name}\" is invalid: {list}"))
            .with_details(name, group, kind);
        error.causes = causes;
        error
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// 503/504: the store could not serve the request now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        self.details = Some(Box::new((name.to_owned(), group.to_owned(), kind.to_owned())));
        self
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some((name, group, kind)) = self.details.as_deref() {
            let mut details = json!({ "name": name, "kind": kind });
            if !group.is_empty() {
                details["group"] = json!(group);
            }
            if !self.causes.is_empty() {
                details["causes"] = self
                    .causes
                    .iter()
                    .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
                    .collect();
            }
            status["details"] = details;
        }
        if let Some(seconds) = self.retry_after_seconds {
            status["details"]["retryAfterSeconds"] = json!(seconds);
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, axum::Json(self.to_status())).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<engenho_mesh::MeshError> for ApiError {
    fn from(error: engenho_mesh::MeshError) -> Self {
        use engenho_mesh::MeshError;
        match error {
            MeshError::Store(store) => Self::from(store),
            MeshError::TimedOut => Self::timeout("the write did not complete in time"),
            other => Self::unavailable(other.to_string()),
        }
    }
}

impl From<engenho_store::StoreError> for ApiError {
    fn from(error: engenho_store::StoreError) -> Self {
        use engenho_store::StoreError;
        match error {
            StoreError::Compacted { .. } => Self::gone(format!("too old resource version: {error}")),
            StoreError::Storage(message) => Self::internal(message),
            other => Self::internal(other.to_string()),
        }
    }
}
