//! HTTP handling: one generic path for every kind, parsed from the URL and
//! driven by the registry.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use std::time::Duration;

use super::apply;
use super::auth::UserInfo;
use super::components;
use super::discovery;
use super::lists::{self, ListRequest, Listing, StreamFormat};
use super::objects::{DeleteOptions, ObjectStore, WriteOptions};
use super::openapi::OpenApi;
use super::patch::{self, PatchKind};
use super::protobuf::{self, ProtobufError};
use super::rbac::{Attributes, ResourceAttributes};
use super::resources::{Registry, ResourceType, SharedRegistry};
use super::reviews;
use super::scale;
use super::scheduler::trial;
use super::selectors::Selector;
use super::status::{ApiError, Cause};
use super::table;
use super::watch::{self, SharedEvents, WATCH_TIMEOUT_MAX, WatchRequest};
use engenho_wasm::Operation;

/// Largest request body accepted, as kube-apiserver.
pub const REQUEST_BODY_BYTES_MAX: usize = 3 * 1024 * 1024;

/// Namespaces the cluster cannot do without.
const UNDELETABLE_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// What every handler shares.
pub struct ApiState {
    /// The kinds served, built in and custom.
    pub registry: SharedRegistry,
    /// Where objects live.
    pub objects: ObjectStore,
    /// The admin bearer token.
    pub admin_token: String,
    /// Decides what users may do.
    pub authorizer: super::rbac::Authorizer,
    /// Runs plugin components.
    pub plugin_host: Arc<engenho_wasm::PluginHost>,
    /// The admission policies now active.
    pub plugins: Arc<super::plugins::ActivePolicies>,
    /// Signs service-account tokens; loaded from the store on first use.
    pub token_signer: tokio::sync::OnceCell<super::auth::TokenSigner>,
    /// Decoded store events shared by the watches.
    pub watch_events: Arc<SharedEvents>,
    /// Watches open per user.
    pub watch_quota: Arc<super::quota::WatchQuota>,
    /// The OpenAPI documents of a registry generation, generated on first
    /// use.
    pub openapi: std::sync::Mutex<Option<(u64, Arc<OpenApi>)>>,
    /// The node's informer caches, shared by its control loops.
    pub informers: engenho_control::Informers,
    /// The control loops' metrics.
    pub controller_metrics: Arc<engenho_control::metrics::Registry>,
    /// The scheduler profile trials running on this node.
    pub scheduler_trials: super::scheduler::trial::Trials,
    /// Reads the logs of the pods this node runs, once its agent serves them.
    pub pod_logs: std::sync::OnceLock<Arc<dyn super::logs::PodLogs>>,
    /// Reaches the ports of the pods this node runs, once its agent serves
    /// them.
    pub pod_ports: std::sync::OnceLock<Arc<dyn super::portforward::PodPorts>>,
    /// Describes the distribution layer, once the node serves it.
    pub mesh_view: std::sync::OnceLock<Arc<dyn super::mesh_status::MeshView>>,
    /// Port-forward sessions open, up to [`super::portforward::SESSIONS_MAX`].
    pub port_forwards: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    /// The kinds served now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.current()
    }

    /// 403 when `write` would give away RBAC permissions its author does
    /// not hold.
    fn guard_escalation(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        object: &Value,
        write: &WriteOptions,
    ) -> Result<(), ApiError> {
        match &write.author {
            Some(author) if t.group == "rbac.authorization.k8s.io" => {
                self.authorizer.check_escalation(author, t.plural, namespace.unwrap_or(""), object)
            }
            _ => Ok(()),
        }
    }

    fn openapi(&self) -> Arc<OpenApi> {
        let registry = self.registry();
        let mut cached = self.openapi.lock().expect("openapi lock");
        match &*cached {
            Some((generation, openapi)) if *generation == registry.generation() => openapi.clone(),
            _ => {
                let openapi = Arc::new(OpenApi::build(&registry));
                *cached = Some((registry.generation(), openapi.clone()));
                openapi
            }
        }
    }
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

/// What a request does, as RBAC sees it: a verb on a resource for paths
/// that name one, a verb on the path otherwise.
pub fn request_attributes(method: &Method, path: &str, query: &str, registry: &Registry) -> Attributes {
    let non_resource = || Attributes { verb: method.as_str().to_lowercase(), resource: None, path: path.to_owned() };
    let Some(Route::Resource(target)) = parse_path(path, registry) else { return non_resource() };
    let watch = || parse_query(query).get("watch").is_some_and(|v| v == "true" || v == "1");
    let named = target.name.is_some();
    let verb = match *method {
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD if watch() => "watch",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => return non_resource(),
    };
    let name = target.name.clone().unwrap_or_default();
    let namespace = match (target.group.as_str(), target.plural.as_str()) {
        ("", "namespaces") => name.clone(),
        _ => target.namespace.clone().unwrap_or_default(),
    };
    Attributes {
        verb: verb.to_owned(),
        resource: Some(ResourceAttributes {
            group: target.group,
            resource: target.plural,
            subresource: target.subresource.unwrap_or_default(),
            namespace,
            name,
        }),
        path: path.to_owned(),
    }
}

/// `/version`.
pub async fn version() -> Response {
    axum::Json(discovery::version()).into_response()
}

/// `/metrics`: the control loops' work queues and reconciles, and the
/// informer caches' sizes, in the Prometheus text format.
pub async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    use std::fmt::Write as _;
    let mut text = state.controller_metrics.render();
    let mut informers = state.informers.all();
    informers.sort_by(|a, b| a.name().cmp(b.name()));
    let _ = writeln!(text, "# HELP informer_objects Objects an informer caches.\n# TYPE informer_objects gauge");
    for informer in &informers {
        let _ = writeln!(text, "informer_objects{{name=\"{}\"}} {}", informer.name(), informer.size().0);
    }
    let _ =
        writeln!(text, "# HELP informer_bytes Bytes an informer's cache holds, roughly.\n# TYPE informer_bytes gauge");
    for informer in &informers {
        let _ = writeln!(text, "informer_bytes{{name=\"{}\"}} {}", informer.name(), informer.size().1);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `/openapi/v3`.
pub async fn openapi_index(State(state): State<Arc<ApiState>>) -> Response {
    axum::Json(state.openapi().index()).into_response()
}

/// `/openapi/v2`: a document that defines no kinds (see
/// [`super::openapi::legacy_document`]), as protobuf when asked.
pub async fn openapi_legacy(request: Request) -> Response {
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let protobuf = accept.contains(super::openapi::V2_PROTOBUF_ACCEPTED);
    let media = if protobuf { super::openapi::V2_PROTOBUF } else { "application/json" };
    ([(header::CONTENT_TYPE, media)], super::openapi::legacy_document(protobuf)).into_response()
}

/// `/openapi/v3/<group version path>`.
pub async fn openapi_document(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let path = request.uri().path().trim_start_matches("/openapi/v3/");
    match state.openapi().document(path) {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes.to_vec()).into_response(),
        None => ApiError::no_route(request.uri().path()).into_response(),
    }
}

/// Every request under `/api` and `/apis`.
pub async fn serve(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    match dispatch(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(state: &Arc<ApiState>, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().to_owned();
    let registry = state.registry();
    let route = parse_path(&path, &registry).ok_or_else(|| ApiError::no_route(&path))?;
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    match route {
        Route::Root { core } => {
            if discovery::wants_aggregated(&accept) {
                return Ok(aggregated(discovery::aggregated(&registry, core)));
            }
            Ok(json_response(
                StatusCode::OK,
                &if core { discovery::core_versions() } else { discovery::group_list(&registry) },
            ))
        }
        Route::Group(group) => discovery::group(&registry, &group)
            .map(|document| json_response(StatusCode::OK, &document))
            .ok_or_else(|| ApiError::no_route(&path)),
        Route::GroupVersion(group, version) => discovery::resource_list(&registry, &group, &version)
            .map(|document| json_response(StatusCode::OK, &document))
            .ok_or_else(|| ApiError::no_route(&path)),
        Route::Resource(target)
            if target.version == "v1"
                && reviews::REVIEWS
                    .iter()
                    .any(|(group, plural, _)| (*group, *plural) == (&*target.group, &*target.plural)) =>
        {
            if request.method() != Method::POST || target.name.is_some() {
                return Err(ApiError::method_not_allowed(request.method().as_str(), &target.plural));
            }
            let user = request.extensions().get::<UserInfo>().cloned().ok_or_else(ApiError::unauthorized)?;
            let headers = request.headers().clone();
            let body = read_body(request.into_body()).await?;
            let route = (target.group.as_str(), target.plural.as_str(), target.namespace.as_deref());
            let review = reviews::review(state, route, &user, &headers, &body).await?;
            Ok(json_response(StatusCode::CREATED, &review))
        }
        Route::Resource(Target {
            group, plural, namespace, name: Some(name), subresource: Some(subresource), ..
        }) if (group.as_str(), plural.as_str(), subresource.as_str()) == ("", "pods", "portforward") => {
            let user = request.extensions().get::<UserInfo>().cloned().ok_or_else(ApiError::unauthorized)?;
            super::portforward::serve(state, &user, namespace.as_deref(), &name, request).await
        }
        Route::Resource(target) if (target.group.as_str(), target.plural.as_str()) == ("", "bindings") => {
            // A Binding of the pod it names: as `pods/<name>/binding`.
            if request.method() != Method::POST || target.name.is_some() {
                return Err(ApiError::method_not_allowed(request.method().as_str(), "bindings"));
            }
            let pods = registry.find("", "v1", "pods").ok_or_else(|| ApiError::no_route(&path))?.clone();
            let user = request.extensions().get::<UserInfo>().cloned().ok_or_else(ApiError::unauthorized)?;
            let body = read_body(request.into_body()).await?;
            let binding: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the body could not be decoded: {e}")))?;
            let name = binding.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
            if name.is_empty() {
                let cause = Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                };
                return Err(ApiError::invalid("", "Binding", "", vec![cause]));
            }
            let write = WriteOptions { dry_run: false, manager: None, author: Some(user) };
            let namespace = target.namespace.as_deref();
            pod_subresource(state, &pods, namespace, &name, "binding", &Method::POST, &body, &write).await
        }
        Route::Resource(target) if (target.group.as_str(), target.plural.as_str()) == ("", "componentstatuses") => {
            if request.method() != Method::GET || target.subresource.is_some() {
                return Err(ApiError::method_not_allowed(request.method().as_str(), "componentstatuses"));
            }
            let t = registry.find("", "v1", "componentstatuses").ok_or_else(|| ApiError::no_route(&path))?;
            let objects = match &target.name {
                Some(name) => vec![components::status(&state.objects, name)?],
                None => components::statuses(&state.objects),
            };
            if table::wants_table(&accept) {
                let include = table::Include::from_query(
                    parse_query(request.uri().query().unwrap_or("")).get("includeObject").map(String::as_str),
                );
                return Ok(json_response(StatusCode::OK, &table::of(t, &objects, 0, include)));
            }
            let document = match target.name {
                Some(_) => objects.into_iter().next().unwrap_or_default(),
                None => json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": objects}),
            };
            Ok(json_response(StatusCode::OK, &document))
        }
        Route::Resource(target)
            if (target.group.as_str(), target.plural.as_str()) == (super::plugins::GROUP, "components") =>
        {
            let Some(digest) = target.name.clone() else {
                if request.method() != Method::GET {
                    return Err(ApiError::method_not_allowed(request.method().as_str(), "components"));
                }
                let items: Vec<Value> = super::plugins::list_components(&state.objects)?
                    .into_iter()
                    .map(|(digest, bytes)| json!({"digest": digest, "bytes": bytes}))
                    .collect();
                let list = json!({"apiVersion": "engenho.io/v1alpha1", "kind": "ComponentList", "items": items});
                return Ok(json_response(StatusCode::OK, &list));
            };
            match request.method().clone() {
                Method::PUT => {
                    let body = axum::body::to_bytes(request.into_body(), super::plugins::COMPONENT_BYTES_MAX)
                        .await
                        .map_err(|_| ApiError::too_large(super::plugins::COMPONENT_BYTES_MAX))?;
                    let actual = engenho_wasm::digest_of(&body);
                    if actual != digest {
                        return Err(ApiError::bad_request(format!(
                            "the component hashes to {actual}, not to the digest {digest} it was sent as"
                        )));
                    }
                    super::plugins::store_component(&state.objects, &body).await?;
                    Ok(json_response(StatusCode::CREATED, &json!({"digest": digest, "bytes": body.len()})))
                }
                Method::GET => {
                    let bytes = super::plugins::load_component(&state.objects, &digest)?
                        .ok_or_else(|| ApiError::not_found(super::plugins::GROUP, "components", &digest))?;
                    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes).into_response())
                }
                other => Err(ApiError::method_not_allowed(other.as_str(), "components")),
            }
        }
        Route::Resource(target) => {
            let t = registry
                .find(&target.group, &target.version, &target.plural)
                .ok_or_else(|| ApiError::no_route(&path))?
                .clone();
            let query = parse_query(request.uri().query().unwrap_or(""));
            let method = request.method().clone();
            let headers = request.headers().clone();
            let user = request.extensions().get::<UserInfo>().cloned().ok_or_else(ApiError::unauthorized)?;
            let body = read_body(request.into_body()).await?;
            resource(state, &user, &t, &target, &method, &headers, &query, body).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    state: &ApiState,
    user: &UserInfo,
    t: &ResourceType,
    target: &Target,
    method: &Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let namespace = if t.namespaced { target.namespace.as_deref() } else { None };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let write = WriteOptions { dry_run, manager: field_manager(query, headers), author: Some(user.clone()) };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    match target.subresource.as_deref() {
        None => {}
        Some("status") if t.has_status => {}
        Some("scale") if t.has_scale => {
            let name = target.name.as_deref().ok_or_else(|| ApiError::no_route(t.plural))?;
            return scale_subresource(state, t, namespace, name, method, headers, &body, &write).await;
        }
        Some(subresource @ ("exec" | "attach")) if (t.group, t.plural) == ("", "pods") => {
            let name = target.name.as_deref().ok_or_else(|| ApiError::no_route(t.plural))?;
            state.objects.get(t, namespace, name).await?;
            let verb = if subresource == "exec" { "exec into" } else { "attach to" };
            return Err(ApiError::bad_request(format!(
                "pod {name} runs WebAssembly components, which have no shell or processes to {verb}: \
                 pods/{subresource} is not offered on engenho nodes (read the containers' output with kubectl logs)"
            )));
        }
        Some(subresource @ ("binding" | "eviction" | "log")) if (t.group, t.plural) == ("", "pods") => {
            let name = target.name.as_deref().ok_or_else(|| ApiError::no_route(t.plural))?;
            if subresource == "log" {
                return pod_log(state, t, namespace, name, method, query).await;
            }
            return pod_subresource(state, t, namespace, name, subresource, method, &body, &write).await;
        }
        Some("approval") if (t.group, t.plural) == ("certificates.k8s.io", "certificatesigningrequests") => {
            let name = target.name.as_deref().ok_or_else(|| ApiError::no_route(t.plural))?;
            return certificate_approval(state, t, name, (method, headers, &body), user, &write).await;
        }
        Some("token") if (t.group, t.plural) == ("", "serviceaccounts") => {
            let name = target.name.as_deref().ok_or_else(|| ApiError::no_route(t.plural))?;
            if *method != Method::POST {
                return Err(ApiError::method_not_allowed(method.as_str(), "serviceaccounts/token"));
            }
            let namespace = namespace.unwrap_or("default");
            let token = reviews::token_request(state, namespace, name, headers, &body).await?;
            return Ok(json_response(StatusCode::CREATED, &token));
        }
        Some(subresource) => return Err(ApiError::no_route(&format!("{}/{subresource}", t.plural))),
    }
    match (method, target.name.as_deref()) {
        (&Method::GET, None) => {
            let selector = Selector::parse(
                t,
                query.get("labelSelector").map(String::as_str),
                query.get("fieldSelector").map(String::as_str),
            )?;
            if query.get("watch").is_some_and(|v| v == "true" || v == "1") {
                let slot = match state.watch_quota.take(user) {
                    Ok(slot) => slot,
                    Err(refused) => return Ok(refused.into_response()),
                };
                let request = WatchRequest {
                    slot,
                    t: t.clone(),
                    namespace: namespace.map(str::to_owned),
                    selector,
                    resource_version: parse_resource_version(query.get("resourceVersion"))?,
                    bookmarks: query.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
                    timeout: query
                        .get("timeoutSeconds")
                        .and_then(|v| v.parse().ok())
                        .map_or(WATCH_TIMEOUT_MAX, |s| Duration::from_secs(s).min(WATCH_TIMEOUT_MAX)),
                    as_table: table::wants_table(accept),
                };
                return watch::start(&state.objects, &state.watch_events, request).await;
            }
            let request = ListRequest { t, namespace, selector: &selector, query };
            let include = table::Include::from_query(query.get("includeObject").map(String::as_str));
            let page = match lists::list(&state.objects, &request).await? {
                Listing::Page(page) => page,
                Listing::Stream(first) => {
                    let format =
                        if table::wants_table(accept) { StreamFormat::Table(include) } else { StreamFormat::List };
                    return Ok(lists::stream(state.objects.clone(), &request, first, format));
                }
            };
            if table::wants_table(accept) {
                let mut table = table::of(t, &page.items, page.revision, include);
                if let Some(token) = &page.next {
                    table["metadata"]["continue"] = json!(token);
                }
                return Ok(json_response(StatusCode::OK, &table));
            }
            let mut metadata = json!({"resourceVersion": page.revision.to_string()});
            if let Some(token) = &page.next {
                metadata["continue"] = json!(token);
            }
            let list = json!({
                "kind": t.list_kind,
                "apiVersion": t.api_version,
                "metadata": metadata,
                "items": page.items,
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
            let mut object = decode_object(t, headers, &body, namespace, None)?;
            let mut warnings = field_validation(t, &object, query)?;
            state.guard_escalation(t, namespace, &object, &write)?;
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let request = admission_request(t, namespace, &name, "", Operation::Create, &write);
            warnings.extend(state.admit(&request, &mut object, None).await?);
            let created = state.objects.create(t, namespace, object, &write).await?;
            let created = trial::answer(state, t, target.subresource.as_deref(), &write, created).await?;
            Ok(with_warnings(json_response(StatusCode::CREATED, &created), &warnings))
        }
        (&Method::PUT, Some(name)) => {
            let mut object = decode_object(t, headers, &body, namespace, Some(name))?;
            let warnings = field_validation(t, &object, query)?;
            if target.subresource.as_deref() == Some("status") {
                let mut current = state.objects.get(t, namespace, name).await?;
                current["status"] = object.get("status").cloned().unwrap_or(Value::Null);
                if let Some(version) = object.pointer("/metadata/resourceVersion") {
                    current["metadata"]["resourceVersion"] = version.clone();
                }
                object = current;
            }
            state.guard_escalation(t, namespace, &object, &write)?;
            let subresource = target.subresource.as_deref().unwrap_or_default();
            let request = admission_request(t, namespace, name, subresource, Operation::Update, &write);
            let mut warnings = warnings;
            warnings.extend(state.admit(&request, &mut object, None).await?);
            let updated = state.objects.update(t, namespace, name, object, &write).await?;
            let updated = trial::answer(state, t, target.subresource.as_deref(), &write, updated).await?;
            Ok(with_warnings(json_response(StatusCode::OK, &updated), &warnings))
        }
        (&Method::PATCH, Some(name)) => {
            let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if media.split(';').next().is_some_and(|m| m.trim() == "application/apply-patch+yaml") {
                let force = query.get("force").is_some_and(|v| v == "true");
                return server_side_apply(state, t, namespace, name, &body, &write, force, query).await;
            }
            let kind = PatchKind::from_media_type(media).ok_or_else(|| ApiError::unsupported_media_type(media))?;
            let patch: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the patch could not be decoded as JSON: {e}")))?;
            let status_only = target.subresource.as_deref() == Some("status");
            let validation = query.get("fieldValidation").map(String::as_str);
            let (patched, warnings) =
                patch_object(state, t, namespace, name, (kind, &patch), status_only, &write, validation).await?;
            let patched = trial::answer(state, t, target.subresource.as_deref(), &write, patched).await?;
            Ok(with_warnings(json_response(StatusCode::OK, &patched), &warnings))
        }
        (&Method::DELETE, Some(name)) => {
            if (t.group, t.plural) == ("", "namespaces") && UNDELETABLE_NAMESPACES.contains(&name) {
                return Err(ApiError::forbidden_on(
                    format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
                    "",
                    "namespaces",
                    name,
                ));
            }
            let options = DeleteOptions::parse(&body, query)?;
            if state.admission_matches(t, Operation::Delete) {
                let mut current = state.objects.get(t, namespace, name).await?;
                let request = admission_request(t, namespace, name, "", Operation::Delete, &write);
                state.admit(&request, &mut current, None).await?;
            }
            let deleted = state.objects.delete(t, namespace, name, &options, dry_run).await?;
            Ok(json_response(StatusCode::OK, &deleted))
        }
        (method, _) => Err(ApiError::method_not_allowed(method.as_str(), t.plural)),
    }
}

/// `pods/binding` (assign a node), `pods/eviction` (delete, as an
/// eviction).
#[allow(clippy::too_many_arguments)]
async fn pod_subresource(
    state: &ApiState,
    t: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    subresource: &str,
    method: &Method,
    body: &[u8],
    write: &WriteOptions,
) -> Result<Response, ApiError> {
    if *method != Method::POST {
        return Err(ApiError::method_not_allowed(method.as_str(), &format!("pods/{subresource}")));
    }
    let decode = || -> Result<Value, ApiError> {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body could not be decoded: {e}")))
    };
    match subresource {
        "binding" => {
            let binding = decode()?;
            let node = binding.pointer("/target/name").and_then(Value::as_str).filter(|n| !n.is_empty());
            let Some(node) = node else {
                let cause = Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: a binding names the node".into(),
                    field: "target.name".into(),
                };
                return Err(ApiError::invalid("", "Binding", name, vec![cause]));
            };
            for attempt in 1..=PATCH_ATTEMPTS {
                let pod = state.objects.get(t, namespace, name).await?;
                if let Some(bound) = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                    let mut error = ApiError::conflict(t.group, t.plural, name);
                    error.message = format!("pod {name} is already assigned to node \"{bound}\"");
                    return Err(error);
                }
                if pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
                    let mut error = ApiError::conflict(t.group, t.plural, name);
                    error.message = format!("pod {name} is being deleted, cannot be assigned to a host");
                    return Err(error);
                }
                let asked_uid = binding.pointer("/metadata/uid").and_then(Value::as_str).filter(|u| !u.is_empty());
                let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
                if let Some(asked_uid) = asked_uid.filter(|asked| *asked != uid) {
                    let mut error = ApiError::conflict(t.group, t.plural, name);
                    error.message = format!(
                        "Operation cannot be fulfilled on pods \"{name}\": Precondition failed: UID in precondition: \
                         {asked_uid}, UID in object meta: {uid}"
                    );
                    return Err(error);
                }
                let mut bound = pod.clone();
                bound["spec"]["nodeName"] = json!(node);
                bound["status"] = super::scheduler::with_condition(pod.get("status"), "PodScheduled", "True", "", "");
                let bound = admitted_update(state, (t, namespace, name, "binding"), &pod, bound, write).await?;
                match state.objects.update(t, namespace, name, bound, write).await {
                    Ok(_) => return Ok(json_response(StatusCode::CREATED, &success_status())),
                    Err(error) if error.reason == "Conflict" && attempt < PATCH_ATTEMPTS => continue,
                    Err(error) => return Err(error),
                }
            }
            unreachable!("the last attempt returns")
        }
        "eviction" => {
            let eviction = decode()?;
            let options =
                eviction.get("deleteOptions").map(|o| serde_json::to_vec(o).unwrap_or_default()).unwrap_or_default();
            let mut options = DeleteOptions::parse(&options, &HashMap::new())?;
            let pod = state.objects.get(t, namespace, name).await?;
            let registry = state.registry();
            let namespace_name = namespace.unwrap_or("default");
            let clearance =
                super::disruption::take_disruption(&state.objects, &registry, namespace_name, &pod, write.dry_run)
                    .await?;
            if clearance == super::disruption::Clearance::IfUnchanged && options.precondition_resource_version.is_none()
            {
                let version = pod.pointer("/metadata/resourceVersion").and_then(Value::as_str);
                options.precondition_resource_version = version.map(str::to_owned);
            }
            if state.admission_matches(t, Operation::Delete) {
                let mut current = state.objects.get(t, namespace, name).await?;
                let request = admission_request(t, namespace, name, "eviction", Operation::Delete, write);
                state.admit(&request, &mut current, None).await?;
            }
            state.objects.delete(t, namespace, name, &options, write.dry_run).await?;
            Ok(json_response(StatusCode::CREATED, &success_status()))
        }
        other => Err(ApiError::no_route(&format!("pods/{other}"))),
    }
}

/// `pods/log`: the log of one of the pod's containers, read by the node
/// that runs it.
async fn pod_log(
    state: &ApiState,
    t: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    method: &Method,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    if *method != Method::GET {
        return Err(ApiError::method_not_allowed(method.as_str(), "pods/log"));
    }
    let query = super::logs::LogQuery::parse(query, k8s_openapi::chrono::Utc::now())?;
    let pod = state.objects.get(t, namespace, name).await?;
    let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!("pod {name} is not scheduled to a node yet, so it has no logs")));
    };
    let stream = super::logs::open(state, &pod, node, &query).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], axum::body::Body::from_stream(stream)).into_response())
}

fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// What the admission chain is asked about one write.
fn admission_request<'a>(
    t: &'a ResourceType,
    namespace: Option<&'a str>,
    name: &'a str,
    subresource: &'a str,
    operation: Operation,
    write: &'a WriteOptions,
) -> super::admission::Request<'a> {
    super::admission::Request {
        t,
        namespace,
        name,
        subresource,
        operation,
        user: write.author.as_ref(),
        dry_run: write.dry_run,
    }
}

/// The field manager of a write: `fieldManager`, or the client's name from
/// its User-Agent (`kubectl/v1.32.4 (...)` → `kubectl`).
fn field_manager(query: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    if let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return Some(manager.chars().take(128).collect());
    }
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok())?;
    let name = agent.split('/').next().unwrap_or(agent).trim();
    (!name.is_empty()).then(|| name.chars().take(128).collect())
}

/// Server-side apply (`application/apply-patch+yaml`): creates the object,
/// or merges the applied configuration into it, as field manager
/// `fieldManager`; fields other managers own are conflicts unless `force`.
#[allow(clippy::too_many_arguments)]
async fn server_side_apply(
    state: &ApiState,
    t: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    body: &[u8],
    write: &WriteOptions,
    force: bool,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let manager = write
        .manager
        .clone()
        .ok_or_else(|| ApiError::bad_request("PATCH with apply-patch+yaml requires a fieldManager"))?;
    let config: Value =
        serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    let mut config = decode_checked(t, config, namespace, Some(name))?;
    let warnings = field_validation(t, &config, query)?;
    super::objects::metadata_mut(&mut config).remove("managedFields");
    let mut defaulted = config.clone();
    super::defaults::apply(t, &mut defaulted);
    for attempt in 1..=PATCH_ATTEMPTS {
        let current = match state.objects.get(t, namespace, name).await {
            Ok(current) => Some(current),
            Err(error) if error.code == 404 => None,
            Err(error) => return Err(error),
        };
        let merged = apply::apply(
            current.as_ref(),
            (&config, &defaulted),
            &manager,
            t.api_version,
            force,
            &super::objects::now(),
        )
        .map_err(|conflicts| conflict_status(t, name, &conflicts))?;
        check_shape(t, &merged)?;
        patch::check_object_size(&merged).map_err(|e| e.status(t.group, t.kind, name))?;
        state.guard_escalation(t, namespace, &merged, write)?;
        let mut merged = merged;
        let operation = if current.is_some() { Operation::Update } else { Operation::Create };
        let request = admission_request(t, namespace, name, "", operation, write);
        let admitted = state.admit(&request, &mut merged, current.as_ref()).await?;
        let unmanaged = WriteOptions { dry_run: write.dry_run, manager: None, author: write.author.clone() };
        let result = match current {
            None => state.objects.create(t, namespace, merged, &unmanaged).await.map(|o| (StatusCode::CREATED, o)),
            Some(_) => state.objects.update(t, namespace, name, merged, &unmanaged).await.map(|o| (StatusCode::OK, o)),
        };
        match result {
            Ok((code, object)) => {
                let object = trial::answer(state, t, None, write, object).await?;
                let warnings: Vec<String> = warnings.iter().chain(&admitted).cloned().collect();
                return Ok(with_warnings(json_response(code, &object), &warnings));
            }
            Err(error) if matches!(error.reason, "Conflict" | "AlreadyExists") && attempt < PATCH_ATTEMPTS => continue,
            Err(error) => return Err(error),
        }
    }
    unreachable!("the last attempt returns")
}

/// 409 with one `FieldManagerConflict` cause per field.
fn conflict_status(t: &ResourceType, name: &str, conflicts: &[apply::Conflict]) -> ApiError {
    let mut error = ApiError::conflict(t.group, t.plural, name);
    let describe = |c: &apply::Conflict| format!("conflict with \"{}\" using {}", c.manager, c.api_version);
    error.message = match conflicts {
        [one] => format!("Apply failed with 1 conflict: {}: {}", describe(one), one.field),
        many => format!(
            "Apply failed with {} conflicts: {}",
            many.len(),
            many.iter().map(|c| format!("{}: {}", describe(c), c.field)).collect::<Vec<_>>().join("\n")
        ),
    };
    error.causes = conflicts
        .iter()
        .map(|c| Cause { reason: "FieldManagerConflict".into(), message: describe(c), field: c.field.clone() })
        .collect();
    error
}

/// GET, PUT and PATCH of `<object>/scale`.
#[allow(clippy::too_many_arguments)]
async fn scale_subresource(
    state: &ApiState,
    t: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    write: &WriteOptions,
) -> Result<Response, ApiError> {
    let invalid = |message: String| {
        let cause =
            Cause { reason: "FieldValueInvalid".into(), message: message.clone(), field: "spec.replicas".into() };
        let mut error = ApiError::invalid("autoscaling", "Scale", name, vec![cause]);
        error.message = format!("Scale.autoscaling \"{name}\" is invalid: {message}");
        error
    };
    for attempt in 1..=PATCH_ATTEMPTS {
        let object = state.objects.get(t, namespace, name).await?;
        let current = scale::of(&object);
        let wanted = match *method {
            Method::GET => return Ok(json_response(StatusCode::OK, &current)),
            Method::PUT => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded: {e}")))?,
            Method::PATCH => {
                let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                let kind = PatchKind::from_media_type(media).ok_or_else(|| ApiError::unsupported_media_type(media))?;
                let patch: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("the patch could not be decoded as JSON: {e}")))?;
                patch::apply(kind, current.clone(), &patch).map_err(|e| match e {
                    patch::PatchError::NotApplicable(message) => invalid(message),
                    other => other.status("autoscaling", "Scale", name),
                })?
            }
            ref other => return Err(ApiError::method_not_allowed(other.as_str(), "scale")),
        };
        let pinned = wanted.pointer("/metadata/resourceVersion").is_some_and(|v| v.as_str() != Some(""))
            && wanted.pointer("/metadata/resourceVersion") != current.pointer("/metadata/resourceVersion");
        let mut scaled = object.clone();
        scale::apply_to(&mut scaled, &wanted).map_err(invalid)?;
        let object = admitted_update(state, (t, namespace, name, "scale"), &object, scaled, write).await?;
        match state.objects.update(t, namespace, name, object, write).await {
            Ok(updated) => return Ok(json_response(StatusCode::OK, &scale::of(&updated))),
            Err(error) if error.reason == "Conflict" && !pinned && attempt < PATCH_ATTEMPTS => continue,
            Err(error) => return Err(error),
        }
    }
    unreachable!("the last attempt returns")
}

/// GET and PUT of `certificatesigningrequests/<name>/approval`: the
/// request's `Approved` or `Denied` condition, set by a user who may also
/// `approve` for its signer (`certificates.k8s.io/signers`, named by the
/// signer), as kube-apiserver requires.
async fn certificate_approval(
    state: &ApiState,
    t: &ResourceType,
    name: &str,
    (method, headers, body): (&Method, &HeaderMap, &[u8]),
    user: &UserInfo,
    write: &WriteOptions,
) -> Result<Response, ApiError> {
    let current = state.objects.get(t, None, name).await?;
    if *method == Method::GET {
        return Ok(json_response(StatusCode::OK, &current));
    }
    if *method != Method::PUT {
        return Err(ApiError::method_not_allowed(method.as_str(), "certificatesigningrequests/approval"));
    }
    let wanted = decode_object(t, headers, body, None, Some(name))?;
    let signer = current.pointer("/spec/signerName").and_then(Value::as_str).unwrap_or_default();
    let attributes = Attributes {
        verb: "approve".into(),
        resource: Some(ResourceAttributes {
            group: "certificates.k8s.io".into(),
            resource: "signers".into(),
            subresource: String::new(),
            namespace: String::new(),
            name: signer.to_owned(),
        }),
        path: String::new(),
    };
    if state.authorizer.authorize(user, &attributes)?.is_none() {
        return Err(ApiError::forbidden_on(
            format!(
                "certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: user not permitted to approve requests with signerName \"{signer}\""
            ),
            "certificates.k8s.io",
            "certificatesigningrequests",
            name,
        ));
    }
    let conditions = wanted.pointer("/status/conditions").cloned().unwrap_or_else(|| json!([]));
    let types: Vec<&str> =
        conditions.as_array().into_iter().flatten().filter_map(|c| c.get("type")?.as_str()).collect();
    let approved_and_denied = types.contains(&"Approved") && types.contains(&"Denied");
    let cause = |message: &str| Cause {
        reason: "FieldValueInvalid".into(),
        message: message.to_owned(),
        field: "status.conditions".into(),
    };
    if approved_and_denied {
        let causes = vec![cause("Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive")];
        return Err(ApiError::invalid("certificates.k8s.io", "CertificateSigningRequest", name, causes));
    }
    let was_approved = current
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c.get("type").and_then(Value::as_str) == Some("Approved"));
    if was_approved && !types.contains(&"Approved") {
        let causes = vec![cause("Forbidden: updates may not remove a condition of type \"Approved\"")];
        return Err(ApiError::invalid("certificates.k8s.io", "CertificateSigningRequest", name, causes));
    }
    let mut changed = current.clone();
    changed["status"]["conditions"] = conditions;
    if let Some(version) = wanted.pointer("/metadata/resourceVersion").filter(|v| v.as_str() != Some("")) {
        changed["metadata"]["resourceVersion"] = version.clone();
    }
    let object = admitted_update(state, (t, None, name, "approval"), &current, changed, write).await?;
    let updated = state.objects.update(t, None, name, object, write).await?;
    Ok(json_response(StatusCode::OK, &updated))
}

/// `changed`, the new state of `current`, once a write of its
/// `subresource` has passed admission as an update of the whole object.
async fn admitted_update(
    state: &ApiState,
    (t, namespace, name, subresource): (&ResourceType, Option<&str>, &str, &str),
    current: &Value,
    mut changed: Value,
    write: &WriteOptions,
) -> Result<Value, ApiError> {
    if state.admission_matches(t, Operation::Update) {
        let request = admission_request(t, namespace, name, subresource, Operation::Update, write);
        state.admit(&request, &mut changed, Some(current)).await?;
    }
    Ok(changed)
}

/// Times a patch is retried when the object changes under it (a patch
/// names no `resourceVersion` of its own).
const PATCH_ATTEMPTS: usize = 5;

/// Reads, patches and writes back object `name`, retrying if it changed
/// meanwhile; a `resourceVersion` in the patch makes it conditional.
#[allow(clippy::too_many_arguments)]
async fn patch_object(
    state: &ApiState,
    t: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    (kind, patch): (PatchKind, &Value),
    status_only: bool,
    write: &WriteOptions,
    validation: Option<&str>,
) -> Result<(Value, Vec<String>), ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = state.objects.get(t, namespace, name).await?;
        let mut patched = patch::apply(kind, current.clone(), patch).map_err(|e| e.status(t.group, t.kind, name))?;
        if status_only {
            let mut updated = current.clone();
            updated["status"] = patched.get("status").cloned().unwrap_or(Value::Null);
            patched = updated;
        }
        let pinned = patched.pointer("/metadata/resourceVersion") != current.pointer("/metadata/resourceVersion");
        for field in ["apiVersion", "kind"] {
            if patched.get(field) != current.get(field) {
                return Err(ApiError::bad_request(format!("a patch cannot change {field}")));
            }
        }
        for field in ["name", "namespace"] {
            if patched.pointer(&format!("/metadata/{field}")) != current.pointer(&format!("/metadata/{field}")) {
                return Err(ApiError::bad_request(format!("a patch cannot change metadata.{field}")));
            }
        }
        let mut warnings = unknown_field_policy(t, &patched, validation)?;
        state.guard_escalation(t, namespace, &patched, write)?;
        let subresource = if status_only { "status" } else { "" };
        let request = admission_request(t, namespace, name, subresource, Operation::Update, write);
        warnings.extend(state.admit(&request, &mut patched, Some(&current)).await?);
        match state.objects.update(t, namespace, name, patched, write).await {
            Err(error) if error.reason == "Conflict" && !pinned && attempt < PATCH_ATTEMPTS => continue,
            other => return other.map(|patched| (patched, warnings)),
        }
    }
}

/// `resourceVersion` of a watch: absent, empty or "0" start with the current
/// objects.
fn parse_resource_version(value: Option<&String>) -> Result<Option<i64>, ApiError> {
    match value.map(String::as_str) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}"))),
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
    let object: Value = match media_type {
        "application/json" | "*/*" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}")))?,
        "application/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as YAML: {e}")))?,
        protobuf::MEDIA_TYPE => protobuf::decode(body).map_err(|error| match error {
            ProtobufError::Malformed(_) => ApiError::bad_request(error.to_string()),
            ProtobufError::UnknownKind(_) | ProtobufError::UnknownField { .. } => {
                let mut refused = ApiError::unsupported_media_type(media);
                refused.message = error.to_string();
                refused
            }
        })?,
        _ => return Err(ApiError::unsupported_media_type(media)),
    };
    decode_checked(t, object, namespace, name)
}

/// Checks a decoded body's kind, apiVersion, namespace and name against the
/// request, filling in namespace and name where the body left them out (its
/// shape is checked with `fieldValidation`).
fn decode_checked(
    t: &ResourceType,
    mut object: Value,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Value, ApiError> {
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
    Ok(object)
}

/// Checks `object` against its kind (422 when it has not the kind's shape)
/// and applies `fieldValidation` to the fields the kind does not declare:
/// `Strict` refuses the request (400), `Warn` (the default) answers with
/// warnings, `Ignore` says nothing. One typed reading serves both checks.
fn field_validation(
    t: &ResourceType,
    object: &Value,
    query: &HashMap<String, String>,
) -> Result<Vec<String>, ApiError> {
    unknown_field_policy(t, object, query.get("fieldValidation").map(String::as_str))
}

fn unknown_field_policy(t: &ResourceType, object: &Value, validation: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mode = validation.unwrap_or("Warn");
    if !matches!(mode, "Strict" | "Warn" | "Ignore") {
        return Err(ApiError::bad_request(format!(
            "fieldValidation: Unsupported value: \"{mode}\": supported values: \"Ignore\", \"Warn\", \"Strict\""
        )));
    }
    if mode == "Ignore" {
        check_shape(t, object)?;
        return Ok(Vec::new());
    }
    let unknown = t.unknown_fields(object).map_err(|shape| shape_error(t, object, shape))?;
    let described: Vec<String> = unknown.iter().map(|field| format!("unknown field \"{field}\"")).collect();
    if mode == "Strict" && !described.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            described.join(", "),
            kind = t.kind,
            version = t.version,
        )));
    }
    Ok(described)
}

/// Adds one `Warning` header per warning, as kube-apiserver does.
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// 422 unless `object` has the shape of kind `t`.
pub(super) fn check_shape(t: &ResourceType, object: &Value) -> Result<(), ApiError> {
    t.validate(object).map_err(|shape| shape_error(t, object, shape))
}

/// The 422 for `object` departing from its kind's shape.
fn shape_error(t: &ResourceType, object: &Value, shape: super::resources::ShapeError) -> ApiError {
    let shown = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let message = format!("Invalid value: {}", shape.message);
    let cause = Cause { reason: "FieldValueInvalid".into(), message, field: shape.field };
    ApiError::invalid(t.group, t.kind, &shown, vec![cause])
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
    fn requests_become_rbac_attributes() {
        let registry = Registry::built_in();
        let of = |method: Method, path: &str, query: &str| request_attributes(&method, path, query, &registry);
        let watch = of(Method::GET, "/api/v1/namespaces/a/pods", "watch=true&resourceVersion=4");
        let resource = watch.resource.expect("a resource");
        assert_eq!(
            (watch.verb.as_str(), resource.namespace.as_str(), resource.resource.as_str()),
            ("watch", "a", "pods")
        );
        assert_eq!(of(Method::GET, "/api/v1/pods", "").verb, "list");
        let scale = of(Method::PATCH, "/apis/apps/v1/namespaces/a/deployments/d/scale", "").resource.expect("scale");
        assert_eq!((scale.group.as_str(), scale.subresource.as_str(), scale.name.as_str()), ("apps", "scale", "d"));
        assert_eq!(of(Method::DELETE, "/api/v1/namespaces/a/configmaps", "").verb, "deletecollection");
        let namespace = of(Method::GET, "/api/v1/namespaces/a", "").resource.expect("namespace");
        assert_eq!(namespace.namespace, "a", "a namespace is in itself");
        let discovery = of(Method::GET, "/apis/apps/v1", "");
        assert_eq!(
            (discovery.verb.as_str(), discovery.resource, discovery.path.as_str()),
            ("get", None, "/apis/apps/v1")
        );
    }

    fn headers(media: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(media).expect("a media type"));
        headers
    }

    /// Runs a decoded body through every check a write makes.
    fn check_everything(t: &ResourceType, object: &Value) {
        let _ = check_shape(t, object);
        let _ = t.unknown_fields(object);
        let _ = field_validation(t, object, &parse_query("fieldValidation=Strict"));
        let _ = Selector::parse(t, Some("a=b"), Some("metadata.name=x")).map(|s| s.matches(object));
        let _ = table::of(t, std::slice::from_ref(object), 1, table::Include::Object);
    }

    proptest::proptest! {
        #[test]
        fn no_body_panics_the_decoders(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            media in proptest::sample::select(vec!["application/json", "application/yaml", protobuf::MEDIA_TYPE, "text/plain", ""]),
        ) {
            let registry = Registry::built_in();
            for (group, plural) in [("", "pods"), ("apps", "deployments"), ("", "namespaces")] {
                let t = registry.find_plural(group, plural).expect("built in");
                if let Ok(object) = decode_object(t, &headers(media), &body, Some("default"), None) {
                    check_everything(t, &object);
                }
            }
            let _ = DeleteOptions::parse(&body, &HashMap::new());
        }

        #[test]
        fn no_object_panics_the_checks(
            metadata in crate::kube::strategies::json_value(),
            spec in crate::kube::strategies::json_value(),
            status in crate::kube::strategies::json_value(),
        ) {
            let registry = Registry::built_in();
            for (group, plural) in [("", "pods"), ("apps", "deployments"), ("", "services"), ("", "nodes")] {
                let t = registry.find_plural(group, plural).expect("built in");
                let object = json!({"apiVersion": t.api_version, "kind": t.kind, "metadata": metadata.clone(),
                    "spec": spec.clone(), "status": status.clone()});
                let body = serde_json::to_vec(&object).expect("json");
                if let Ok(decoded) = decode_object(t, &headers("application/json"), &body, Some("default"), None) {
                    check_everything(t, &decoded);
                }
                check_everything(t, &object);
            }
        }

        #[test]
        fn no_path_query_or_selector_panics(path in "[/a-z0-9.%=&,!()-]{0,60}", text in ".{0,60}") {
            let registry = Registry::built_in();
            let _ = parse_path(&path, &registry);
            let query = parse_query(&text);
            let _ = request_attributes(&Method::GET, &path, &text, &registry);
            let pods = registry.find_plural("", "pods").expect("pods");
            let _ = Selector::parse(pods, Some(&text), None);
            let _ = Selector::parse(pods, None, Some(&text));
            let _ = DeleteOptions::parse(b"", &query);
        }
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
