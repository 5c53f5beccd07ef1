//! HTTP handling: one generic path for every kind, parsed from the URL and
//! driven by the registry.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::discovery;
use super::objects::ObjectStore;
use super::resources::{Registry, ResourceType};
use super::status::{ApiError, Cause};
use super::table;

/// Largest request body accepted, as kube-apiserver.
pub const REQUEST_BODY_BYTES_MAX: usize = 3 * 1024 * 1024;

/// What every handler shares.
pub struct ApiState {
    /// The kinds served.
    pub registry: Registry,
    /// Where objects live.
    pub objects: ObjectStore,
    /// The admin bearer token.
    pub admin_token: String,
}

/// Where a request points: a collection, an object, or a subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// API group (empty: core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace in the path, if any.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub plural: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub subresource: Option<String>,
}

/// What a path under `/api` or `/apis` names.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `/api` or `/apis`.
    Root {
        /// Whether it is `/api` (the core group).
        core: bool,
    },
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion(String, String),
    /// A resource path.
    Resource(Target),
}

/// Parses the path of a request under `/api` or `/apis`; `None` if it names
/// nothing the server could serve.
pub fn parse_path(path: &str, registry: &Registry) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api"] => return Some(Route::Root { core: true }),
        ["apis"] => return Some(Route::Root { core: false }),
        ["apis", group] => return Some(Route::Group((*group).to_owned())),
        ["api", rest @ ..] => ("", rest),
        ["apis", group, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (version, rest) = rest.split_first()?;
    if rest.is_empty() {
        return Some(Route::GroupVersion(group.to_owned(), (*version).to_owned()));
    }
    let namespaced = |plural: &str| registry.find(group, version, plural).is_some_and(|t| t.namespaced);
    let (namespace, rest) = match rest {
        ["namespaces", namespace, plural, rest @ ..] if namespaced(plural) => (Some(*namespace), {
            let mut tail = vec![*plural];
            tail.extend_from_slice(rest);
            tail
        }),
        rest => (None, rest.to_vec()),
    };
    let target = match rest.as_slice() {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(*name), None),
        [plural, name, subresource] => (plural, Some(*name), Some(*subresource)),
        _ => return None,
    };
    let (plural, name, subresource) = target;
    Some(Route::Resource(Target {
        group: group.to_owned(),
        version: (*version).to_owned(),
        namespace: namespace.map(str::to_owned),
        plural: (*plural).to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    }))
}

/// `/version`.
pub async fn version() -> Response {
    axum::Json(discovery::version()).into_response()
}

/// Every request under `/api` and `/apis`.
pub async fn serve(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    match dispatch(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(state: &ApiState, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().to_owned();
    let route = parse_path(&path, &state.registry).ok_or_else(|| ApiError::no_route(&path))?;
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    match route {
        Route::Root { core } => {
            if discovery::wants_aggregated(&accept) {
                return Ok(aggregated(discovery::aggregated(&state.registry, core)));
            }
            Ok(json_response(
                StatusCode::OK,
                &if core { discovery::core_versions() } else { discovery::group_list(&state.registry) },
            ))
        }
        Route::Group(group) => discovery::group(&state.registry, &group)
            .map(|document| json_response(StatusCode::OK, &document))
            .ok_or_else(|| ApiError::no_route(&path)),
        Route::GroupVersion(group, version) => discovery::resource_list(&state.registry, &group, &version)
            .map(|document| json_response(StatusCode::OK, &document))
            .ok_or_else(|| ApiError::no_route(&path)),
        Route::Resource(target) => {
            let t = state
                .registry
                .find(&target.group, &target.version, &target.plural)
                .ok_or_else(|| ApiError::no_route(&path))?
                .clone();
            let query = parse_query(request.uri().query().unwrap_or(""));
            let method = request.method().clone();
            let headers = request.headers().clone();
            let body = read_body(request.into_body()).await?;
            resource(state, &t, &target, &method, &headers, &query, body).await
        }
    }
}

async fn resource(
    state: &ApiState,
    t: &ResourceType,
    target: &Target,
    method: &Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let namespace = if t.namespaced { target.namespace.as_deref() } else { None };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(subresource) = target.subresource.as_deref()
        && (subresource != "status" || !t.has_status)
    {
        return Err(ApiError::no_route(&format!("{}/{subresource}", t.plural)));
    }
    match (method, target.name.as_deref()) {
        (&Method::GET, None) => {
            if query.get("watch").is_some_and(|v| v == "true" || v == "1") {
                return Err(ApiError::method_not_allowed("watch", t.plural));
            }
            let listed = state.objects.list(t, namespace).await?;
            if table::wants_table(accept) {
                let include = table::Include::from_query(query.get("includeObject").map(String::as_str));
                return Ok(json_response(StatusCode::OK, &table::of(t, &listed.items, listed.revision, include)));
            }
            let list = json!({
                "kind": t.list_kind,
                "apiVersion": t.api_version,
                "metadata": {"resourceVersion": listed.revision.to_string()},
                "items": listed.items,
            });
            Ok(json_response(StatusCode::OK, &list))
        }
        (&Method::GET, Some(name)) => {
            let object = state.objects.get(t, namespace, name).await?;
            if table::wants_table(accept) {
                let include = table::Include::from_query(query.get("includeObject").map(String::as_str));
                let revision = object_revision(&object);
                return Ok(json_response(
                    StatusCode::OK,
                    &table::of(t, std::slice::from_ref(&object), revision, include),
                ));
            }
            Ok(json_response(StatusCode::OK, &object))
        }
        (&Method::POST, None) => {
            let object = decode_object(t, headers, &body, namespace, None)?;
            let created = state.objects.create(t, namespace, object, dry_run).await?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (&Method::PUT, Some(name)) => {
            let mut object = decode_object(t, headers, &body, namespace, Some(name))?;
            if target.subresource.as_deref() == Some("status") {
                let mut current = state.objects.get(t, namespace, name).await?;
                current["status"] = object.get("status").cloned().unwrap_or(Value::Null);
                if let Some(version) = object.pointer("/metadata/resourceVersion") {
                    current["metadata"]["resourceVersion"] = version.clone();
                }
                object = current;
            }
            let updated = state.objects.update(t, namespace, name, object, dry_run).await?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        (&Method::DELETE, Some(name)) => {
            let deleted = state.objects.delete(t, namespace, name, dry_run).await?;
            Ok(json_response(StatusCode::OK, &deleted))
        }
        (method, _) => Err(ApiError::method_not_allowed(method.as_str(), t.plural)),
    }
}

/// Decodes and checks a request body as an object of kind `t`.
fn decode_object(
    t: &ResourceType,
    headers: &HeaderMap,
    body: &[u8],
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Value, ApiError> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let media_type = media.split(';').next().unwrap_or("").trim();
    if media_type != "application/json" && media_type != "*/*" && !media_type.is_empty() {
        return Err(ApiError::unsupported_media_type(media));
    }
    let mut object: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}")))?;
    if !object.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    }
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    if (api_version, kind) != (t.api_version, t.kind) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) and kind ({kind}) do not match the endpoint's {} {}",
            t.api_version, t.kind
        )));
    }
    let metadata = super::objects::metadata_mut(&mut object);
    if let Some(namespace) = namespace {
        match metadata.get("namespace").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                metadata.insert("namespace".into(), json!(namespace));
            }
        }
    } else {
        metadata.remove("namespace");
    }
    if let Some(name) = name {
        match metadata.get("name").and_then(Value::as_str) {
            Some(given) if given != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({name})"
                )));
            }
            _ => {
                metadata.insert("name".into(), json!(name));
            }
        }
    }
    t.validate(&object).map_err(|message| {
        let shown = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let cause = Cause { reason: "FieldValueInvalid".into(), message: message.clone(), field: String::new() };
        let mut error = ApiError::invalid(t.group, t.kind, &shown, vec![cause]);
        error.message = format!("{} \"{shown}\" is invalid: {message}", t.kind);
        error
    })?;
    Ok(object)
}

fn object_revision(object: &Value) -> i64 {
    object.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, REQUEST_BODY_BYTES_MAX).await.map_err(|_| ApiError::too_large(REQUEST_BODY_BYTES_MAX))
}

/// The query string as a map (the last value of a repeated key wins).
pub fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) => hex(*high).zip(hex(*low)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (code, axum::Json(value)).into_response()
}

fn aggregated(value: Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(discovery::AGGREGATED_DISCOVERY));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(group: &str, namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>) -> Route {
        Route::Resource(Target {
            group: group.into(),
            version: "v1".into(),
            namespace: namespace.map(Into::into),
            plural: plural.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        })
    }

    #[test]
    fn paths_resolve_namespaces_against_the_registry() {
        let registry = Registry::built_in();
        let parse = |path| parse_path(path, &registry);
        assert_eq!(parse("/api"), Some(Route::Root { core: true }));
        assert_eq!(parse("/apis/apps"), Some(Route::Group("apps".into())));
        assert_eq!(parse("/apis/apps/v1"), Some(Route::GroupVersion("apps".into(), "v1".into())));
        assert_eq!(parse("/api/v1/namespaces"), Some(target("", None, "namespaces", None, None)));
        assert_eq!(parse("/api/v1/namespaces/default"), Some(target("", None, "namespaces", Some("default"), None)));
        assert_eq!(
            parse("/api/v1/namespaces/default/status"),
            Some(target("", None, "namespaces", Some("default"), Some("status")))
        );
        assert_eq!(parse("/api/v1/namespaces/default/pods"), Some(target("", Some("default"), "pods", None, None)));
        assert_eq!(
            parse("/api/v1/namespaces/a/pods/web/status"),
            Some(target("", Some("a"), "pods", Some("web"), Some("status")))
        );
        assert_eq!(
            parse("/apis/apps/v1/namespaces/a/deployments/d"),
            Some(target("apps", Some("a"), "deployments", Some("d"), None))
        );
        assert_eq!(parse("/api/v1/nodes/n1"), Some(target("", None, "nodes", Some("n1"), None)));
        assert_eq!(parse("/api/v1/a/b/c/d/e/f"), None);
        assert_eq!(parse("/other"), None);
    }

    #[test]
    fn queries_are_percent_decoded() {
        let query = parse_query("labelSelector=app%3Dweb%2Ctier+in+(a)&limit=500&watch");
        assert_eq!(query["labelSelector"], "app=web,tier in (a)");
        assert_eq!(query["limit"], "500");
        assert_eq!(query["watch"], "");
        assert_eq!(parse_query("x=%zz%4")["x"], "%zz%4");
    }
}
