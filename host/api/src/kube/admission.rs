//! The admission chain: every create, update and delete of a matching
//! resource goes through the active admission policies, mutating ones
//! first (their JSON patches applied in order), then validating ones. A
//! denial is a 403 naming the policy; a failed call follows the policy's
//! failure policy.
//!
//! Built-in steps surround the policies in kube-apiserver's order:
//! LimitRanger's defaults (and a LimitRange's own) come before every
//! policy, as Kubernetes runs built-in mutating admission before webhooks,
//! so a policy such as `resource-defaults` fills only what no LimitRange
//! did; after the policies come the kind's validation, LimitRanger's
//! bounds and, last, the ResourceQuota charge (of creates, and of updates
//! of Services and claims, which may use more), so that only an object
//! about to be stored is charged.

use std::collections::BTreeMap;

use engenho_wasm::{Operation, Review, UserInfo as PluginUser};
use serde_json::Value;

use super::auth::UserInfo;
use super::handlers::ApiState;
use super::patch::{self, PatchKind};
use super::resources::ResourceType;
use super::status::ApiError;

/// What is being admitted.
pub struct Request<'a> {
    /// The kind.
    pub t: &'a ResourceType,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<&'a str>,
    /// The object's name.
    pub name: &'a str,
    /// The subresource written, or empty.
    pub subresource: &'a str,
    /// What the request does.
    pub operation: Operation,
    /// Who asks.
    pub user: Option<&'a UserInfo>,
    /// Whether it is a dry run.
    pub dry_run: bool,
}

impl ApiState {
    /// Runs `request` through the built-in admission steps and the
    /// admission policies that match it. `object` is the object to store
    /// (mutating steps may change it; for deletes, the object being
    /// deleted) and `old` the stored one for updates (read here when
    /// `None`). The warnings for the client.
    ///
    /// # Errors
    /// 403 when a policy, a LimitRange or a quota denies; 422 when the
    /// object breaks its kind's rules; 500 when a policy that fails closed
    /// fails.
    pub async fn admit(
        &self,
        request: &Request<'_>,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<Vec<String>, ApiError> {
        self.restrict_nodes(request, object, old)?;
        self.admit_before_policies(request, object).await?;
        let warnings = self.admit_by_policies(request, object, old).await?;
        self.admit_after_policies(request, object, old).await?;
        Ok(warnings)
    }

    /// NodeRestriction: a node's agent writes only what is its own. For a
    /// pod, the stored one is read when `old` is not given, so that a
    /// write cannot claim a pod by naming the node itself.
    fn restrict_nodes(&self, request: &Request<'_>, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        if request.user.and_then(UserInfo::node_name).is_none() {
            return Ok(());
        }
        let fetched;
        let old = match (old, (request.t.group, request.t.plural), request.operation) {
            (None, ("", "pods"), Operation::Update) => {
                fetched = self.objects.get_local(request.t, request.namespace, request.name)?;
                fetched.as_ref()
            }
            _ => old,
        };
        super::node_restriction::check(request, object, old)
    }

    /// The built-in mutating steps: the kind's Kubernetes defaults, a
    /// LimitRange's defaults, and a new pod's defaults from its namespace's
    /// LimitRanges, its priority from its PriorityClass and its scheduling
    /// and overhead from its RuntimeClass.
    async fn admit_before_policies(&self, request: &Request<'_>, object: &mut Value) -> Result<(), ApiError> {
        let t = request.t;
        if request.operation != Operation::Delete {
            super::defaults::apply(t, object);
        }
        match ((t.group, t.plural), request.operation, request.namespace) {
            (("", "limitranges"), Operation::Create | Operation::Update, _) => {
                super::limit_ranger::default_limit_range(object);
            }
            (("", "pods"), Operation::Create, Some(namespace)) if request.subresource.is_empty() => {
                let registry = self.registry();
                super::limit_ranger::default_pod(&self.objects, &registry, namespace, object)?;
                super::priority::resolve_pod(&self.objects, &registry, object)?;
                super::runtime_classes::admit_pod(&self.objects, &registry, object)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The built-in validating steps: the kind's validation, one default
    /// PriorityClass at most, a new pod's and a claim's LimitRange bounds,
    /// and the ResourceQuota charge of a create, or of an update of a
    /// Service or a claim (what it uses beyond `old`, the stored object,
    /// read here when `None`).
    async fn admit_after_policies(
        &self,
        request: &Request<'_>,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let t = request.t;
        if request.operation == Operation::Delete {
            return Ok(());
        }
        super::validation::validate(t, object)?;
        if (t.group, t.plural) == ("scheduling.k8s.io", "priorityclasses") {
            super::priority::check_default(&self.objects, &self.registry(), object)?;
        }
        let Some(namespace) = request.namespace else { return Ok(()) };
        let registry = self.registry();
        let whole = request.subresource.is_empty();
        match ((t.group, t.plural), request.operation) {
            (("", "pods"), Operation::Create) => {
                super::limit_ranger::check_pod(&self.objects, &registry, namespace, object)?;
            }
            (("", "persistentvolumeclaims"), Operation::Create | Operation::Update) if whole => {
                super::limit_ranger::check_claim(&self.objects, &registry, namespace, object)?;
            }
            _ => {}
        }
        let fetched;
        let old = match ((t.group, t.plural), request.operation) {
            (_, Operation::Create) => None,
            (("", "services" | "persistentvolumeclaims"), Operation::Update) if whole => match old {
                Some(old) => Some(old),
                None => {
                    fetched = self.objects.get_local(t, request.namespace, request.name)?;
                    fetched.as_ref()
                }
            },
            _ => return Ok(()),
        };
        let charged = (object, old);
        super::resource_quota::charge(&self.objects, &registry, t, namespace, charged, request.dry_run).await
    }

    /// Runs `request` through the admission policies that match it.
    async fn admit_by_policies(
        &self,
        request: &Request<'_>,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<Vec<String>, ApiError> {
        let operation = match request.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        };
        let t = request.t;
        let policies = self.plugins.current();
        let matching: Vec<_> = policies.iter().filter(|p| p.matches(t.group, t.plural, operation)).collect();
        if matching.is_empty() {
            return Ok(Vec::new());
        }
        let head = match request.namespace {
            Some(namespace) if matching.iter().any(|p| p.has_namespace_selector()) => {
                self.objects.namespace_head(namespace)?
            }
            _ => None,
        };
        let unlabelled = BTreeMap::new();
        let labels = head.as_ref().map_or(&unlabelled, |head| &head.labels);
        let user = request.user.map_or_else(
            || PluginUser { username: String::new(), uid: String::new(), groups: Vec::new() },
            |u| PluginUser { username: u.name.clone(), uid: u.uid.clone(), groups: u.groups.clone() },
        );
        let fetched;
        let old = match old {
            None if request.operation == Operation::Update => {
                fetched = self.objects.get_local(t, request.namespace, request.name)?;
                fetched.as_ref()
            }
            old => old,
        };
        let object_json = json_text(object);
        let (object_json, old_json) = match request.operation {
            Operation::Delete => (String::new(), object_json),
            _ => (object_json, old.map(json_text).unwrap_or_default()),
        };
        // One review serves every policy; its object is made again only
        // after a policy changed it.
        let mut review = Review {
            uid: super::objects::now(),
            operation: request.operation,
            group: t.group.to_owned(),
            version: t.version.to_owned(),
            kind: t.kind.to_owned(),
            plural: t.plural.to_owned(),
            subresource: request.subresource.to_owned(),
            namespace: request.namespace.unwrap_or_default().to_owned(),
            name: request.name.to_owned(),
            user,
            dry_run: request.dry_run,
            object: object_json,
            old_object: old_json,
        };
        let mut warnings = Vec::new();
        let mut mutated = false;
        for active in matching.into_iter().filter(|p| p.selects(labels)) {
            let decision = match active.admit(&self.plugin_host, &review).await {
                Ok(decision) => decision,
                Err(error) if active.fails_closed() => {
                    return Err(ApiError::internal(format!("admission plugin \"{}\" failed: {error}", active.name)));
                }
                Err(error) => {
                    tracing::warn!(plugin = active.name, %error, "a failing admission plugin was ignored");
                    continue;
                }
            };
            warnings.extend(decision.warnings.iter().map(|w| format!("{}: {w}", active.name)));
            if !decision.allowed {
                let what = if t.group.is_empty() { t.plural.to_owned() } else { format!("{}.{}", t.plural, t.group) };
                return Err(ApiError::forbidden_on(
                    format!("{what} \"{}\" is forbidden: denied by {}: {}", request.name, active.name, decision.reason),
                    t.group,
                    t.plural,
                    request.name,
                ));
            }
            if decision.patch.is_empty() || request.operation == Operation::Delete {
                continue;
            }
            if !active.mutating() {
                tracing::warn!(plugin = active.name, "a validating admission plugin returned a patch; it is ignored");
                continue;
            }
            let operations: Value = serde_json::from_str(&decision.patch).map_err(|e| {
                ApiError::internal(format!(
                    "admission plugin \"{}\" returned a patch that is not JSON: {e}",
                    active.name
                ))
            })?;
            *object = patch::apply(PatchKind::Json, std::mem::take(object), &operations).map_err(|e| {
                ApiError::internal(format!(
                    "admission plugin \"{}\" returned a patch that does not apply: {e}",
                    active.name
                ))
            })?;
            mutated = true;
            review.object = json_text(object);
        }
        // What mutating policies made must still have the kind's shape.
        if mutated {
            super::handlers::check_shape(t, object)?;
        }
        Ok(warnings)
    }

    /// Whether any active policy sees `operation` on kind `t`.
    pub fn admission_matches(&self, t: &ResourceType, operation: Operation) -> bool {
        let operation = match operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        };
        self.plugins.current().iter().any(|p| p.matches(t.group, t.plural, operation))
    }
}

/// `value` as JSON text (written straight into a string, not through
/// `Display`'s formatter).
fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
