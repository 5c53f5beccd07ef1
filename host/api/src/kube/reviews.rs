//! Questions about access, answered and not stored: access reviews (`kubectl
//! auth can-i`), rules reviews (`can-i --list`), self reviews (`auth
//! whoami`), and service-account token requests (`create token`).

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::auth::{ServiceAccountClaims, TOKEN_ISSUER, UserInfo, unix_now};
use super::handlers::ApiState;
use super::objects::strings_at;
use super::protobuf;
use super::rbac::{Attributes, PolicyRule, ResourceAttributes};
use super::status::{ApiError, Cause};

/// Default life of a requested token, as kube-apiserver.
const TOKEN_SECONDS_DEFAULT: i64 = 3600;

/// Shortest life a token may be asked for.
const TOKEN_SECONDS_MIN: i64 = 600;

/// Longest life a token may be asked for: one year.
const TOKEN_SECONDS_MAX: i64 = 365 * 24 * 3600;

/// The review kinds served, as (group, plural, kind).
pub const REVIEWS: [(&str, &str, &str); 6] = [
    ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
    ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
    ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview"),
    ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"),
    ("authentication.k8s.io", "tokenreviews", "TokenReview"),
];

/// Decodes a review or token request sent as JSON or protobuf.
fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if media.starts_with(protobuf::MEDIA_TYPE) {
        return protobuf::decode(body).map_err(|e| ApiError::bad_request(e.to_string()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body could not be decoded as JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body is not an object"));
    }
    Ok(value)
}

/// Answers review `plural` of `group` for `user` (in `namespace`, for a
/// local access review).
///
/// # Errors
/// A malformed review (400, 422) or a store failure.
pub async fn review(
    state: &ApiState,
    (group, plural, namespace): (&str, &str, Option<&str>),
    user: &UserInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let Some(&(_, _, kind)) = REVIEWS.iter().find(|(g, p, _)| (*g, *p) == (group, plural)) else {
        return Err(ApiError::no_route(plural));
    };
    let mut review = decode(headers, body)?;
    review["apiVersion"] = json!(format!("{group}/v1"));
    review["kind"] = json!(kind);
    let mut spec = review.get("spec").cloned().unwrap_or(Value::Null);
    review["status"] = match plural {
        "selfsubjectaccessreviews" => access_status(state, user, &spec, kind)?,
        "tokenreviews" => {
            let token = spec.get("token").and_then(Value::as_str).unwrap_or_default();
            if token.is_empty() {
                return Err(required(kind, "spec.token", "a token to review"));
            }
            match super::access::authenticate(state, token).await {
                Ok(reviewed) => json!({"authenticated": true, "user": reviewed.to_json()}),
                Err(_) => json!({"authenticated": false, "user": {}, "error": "the token is not valid"}),
            }
        }
        "localsubjectaccessreviews" => {
            let namespace = namespace.unwrap_or_default();
            let attributes = spec.pointer_mut("/resourceAttributes").filter(|a| a.is_object());
            let Some(attributes) = attributes else {
                return Err(required(kind, "spec.resourceAttributes", "resourceAttributes in the review's namespace"));
            };
            match attributes.get("namespace").and_then(Value::as_str) {
                None | Some("") => attributes["namespace"] = json!(namespace),
                Some(other) if other != namespace => {
                    let cause = Cause {
                        reason: "FieldValueInvalid".into(),
                        message: format!("Invalid value: \"{other}\": must match metadata.namespace (\"{namespace}\")"),
                        field: "spec.resourceAttributes.namespace".into(),
                    };
                    return Err(ApiError::invalid("authorization.k8s.io", kind, "", vec![cause]));
                }
                Some(_) => {}
            }
            subject_access_status(state, &spec, kind)?
        }
        "subjectaccessreviews" => subject_access_status(state, &spec, kind)?,
        "selfsubjectrulesreviews" => {
            let namespace = spec.get("namespace").and_then(Value::as_str).unwrap_or_default();
            rules_status(state, user, namespace)?
        }
        _ => json!({"userInfo": user.to_json()}),
    };
    Ok(review)
}

/// The status of an access review of `spec` for the subject it names.
fn subject_access_status(state: &ApiState, spec: &Value, kind: &str) -> Result<Value, ApiError> {
    let name = spec.get("user").and_then(Value::as_str).unwrap_or_default();
    let subject = UserInfo {
        name: name.to_owned(),
        uid: spec.get("uid").and_then(Value::as_str).unwrap_or_default().to_owned(),
        groups: strings_at(spec, "/groups"),
    };
    if subject.name.is_empty() && subject.groups.is_empty() {
        return Err(required(kind, "spec.user", "a user or groups to ask about"));
    }
    access_status(state, &subject, spec, kind)
}

fn required(kind: &str, field: &str, what: &str) -> ApiError {
    let cause =
        Cause { reason: "FieldValueRequired".into(), message: format!("Required value: {what}"), field: field.into() };
    let group = if matches!(kind, "SelfSubjectReview" | "TokenReview") {
        "authentication.k8s.io"
    } else {
        "authorization.k8s.io"
    };
    ApiError::invalid(group, kind, "", vec![cause])
}

/// The status of an access review of `spec` for `user`.
fn access_status(state: &ApiState, user: &UserInfo, spec: &Value, kind: &str) -> Result<Value, ApiError> {
    let text = |value: &Value, field: &str| value.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    let attributes = match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(r), _) if r.is_object() => Attributes {
            verb: text(r, "verb"),
            resource: Some(ResourceAttributes {
                group: text(r, "group"),
                resource: text(r, "resource"),
                subresource: text(r, "subresource"),
                namespace: text(r, "namespace"),
                name: text(r, "name"),
            }),
            path: String::new(),
        },
        (_, Some(n)) if n.is_object() => Attributes { verb: text(n, "verb"), resource: None, path: text(n, "path") },
        _ => return Err(required(kind, "spec", "resourceAttributes or nonResourceAttributes")),
    };
    if attributes.verb.is_empty() {
        return Err(required(kind, "spec.resourceAttributes.verb", "a verb"));
    }
    Ok(match state.authorizer.authorize(user, &attributes)? {
        Some(reason) => json!({"allowed": true, "reason": reason}),
        None => json!({"allowed": false}),
    })
}

/// The status of a rules review: every rule `user` holds in `namespace`.
fn rules_status(state: &ApiState, user: &UserInfo, namespace: &str) -> Result<Value, ApiError> {
    let granted = state.authorizer.rules_for(user, namespace)?;
    let (mut resource_rules, mut non_resource_rules) = (Vec::new(), Vec::new());
    for PolicyRule { verbs, api_groups, resources, resource_names, non_resource_urls } in
        granted.into_iter().map(|g| g.rule)
    {
        if !resources.is_empty() {
            let mut rule = json!({"verbs": verbs, "apiGroups": api_groups, "resources": resources});
            if !resource_names.is_empty() {
                rule["resourceNames"] = json!(resource_names);
            }
            resource_rules.push(rule);
        }
        if !non_resource_urls.is_empty() {
            non_resource_rules.push(json!({"verbs": verbs, "nonResourceURLs": non_resource_urls}));
        }
    }
    Ok(json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false}))
}

/// A `TokenRequest` for service account `name` in `namespace`: a token
/// signed by the cluster, valid until it expires or the account is deleted.
///
/// # Errors
/// 404 when the account does not exist; 422 for a lifetime out of bounds.
pub async fn token_request(
    state: &ApiState,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut request = decode(headers, body)?;
    let registry = state.registry();
    let accounts = registry.find("", "v1", "serviceaccounts").expect("service accounts are built in");
    let account = state.objects.get(accounts, Some(namespace), name).await?;
    let spec = request.get("spec").cloned().unwrap_or(Value::Null);
    let seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => TOKEN_SECONDS_DEFAULT,
        Some(value) => value.as_i64().unwrap_or(-1),
    };
    if !(TOKEN_SECONDS_MIN..=TOKEN_SECONDS_MAX).contains(&seconds) {
        let cause = Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: {seconds}: may not specify a duration less than 10 minutes or more than a year"
            ),
            field: "spec.expirationSeconds".into(),
        };
        return Err(ApiError::invalid("authentication.k8s.io", "TokenRequest", name, vec![cause]));
    }
    let mut audiences = strings_at(&spec, "/audiences");
    if audiences.is_empty() {
        audiences.push(TOKEN_ISSUER.to_owned());
    }
    let issued_at = unix_now();
    let claims = ServiceAccountClaims {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: account.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_owned(),
        audiences: audiences.clone(),
        issued_at,
        expires_at: issued_at + seconds,
    };
    let token = state.token_signer().await?.issue(&claims);
    let expires = k8s_openapi::chrono::DateTime::from_timestamp(claims.expires_at, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Secs, true);
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"] = json!({"name": name, "namespace": namespace, "creationTimestamp": super::objects::now()});
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(request)
}
