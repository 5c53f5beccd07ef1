//! Cluster-wide machinery: leases, runtime classes, RBAC, custom resource
//! definitions, priority classes, API priority and fairness, API services,
//! admission configuration and certificate signing requests.

use serde_json::{Map, Value, json};

use super::super::{Column, human_duration};
use super::cells::{AGE, CREATED_AT, NAME, column, count, int, items, text, text_or, wide};
use super::descriptions as doc;

/// The columns of a cluster machinery kind.
pub(super) fn columns(group: &str, plural: &str) -> Option<Vec<Column>> {
    let columns = match (group, plural) {
        ("coordination.k8s.io", "leases") => {
            vec![NAME, column("Holder", "string", doc::LEASE_HOLDER, |o| json!(text(o, "/spec/holderIdentity"))), AGE]
        }
        ("node.k8s.io", "runtimeclasses") => {
            vec![NAME, column("Handler", "string", "", |o| json!(text(o, "/handler"))), AGE]
        }
        // kube-apiserver serves these with its default table.
        ("rbac.authorization.k8s.io", "roles" | "clusterroles")
        | ("apiextensions.k8s.io", "customresourcedefinitions") => vec![NAME, CREATED_AT],
        ("rbac.authorization.k8s.io", "rolebindings") => bindings(doc::ROLE_BINDING_ROLE_REF, "roleBinding"),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            bindings(doc::CLUSTER_ROLE_BINDING_ROLE_REF, "clusterRoleBinding")
        }
        ("scheduling.k8s.io", "priorityclasses") => vec![
            NAME,
            column("Value", "integer", doc::PRIORITY_CLASS_VALUE, |o| json!(int(o, "/value"))),
            column("Global-Default", "boolean", doc::PRIORITY_CLASS_GLOBAL_DEFAULT, |o| {
                json!(o.get("globalDefault").and_then(Value::as_bool).unwrap_or(false))
            }),
            AGE,
            column("PreemptionPolicy", "string", doc::PRIORITY_CLASS_PREEMPTION, |o| {
                json!(text(o, "/preemptionPolicy"))
            }),
        ],
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => flow_schemas(),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => priority_levels(),
        ("apiregistration.k8s.io", "apiservices") => vec![
            NAME,
            column("Service", "string", "The reference to the service that hosts this API endpoint.", |o| {
                json!(match o.pointer("/spec/service").filter(|s| s.is_object()) {
                    Some(s) => format!("{}/{}", text(s, "/namespace"), text(s, "/name")),
                    None => "Local".to_owned(),
                })
            }),
            column("Available", "string", "Whether this service is available.", api_service_available),
            AGE,
        ],
        ("admissionregistration.k8s.io", plural) => admission(plural)?,
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            NAME,
            AGE,
            column("SignerName", "string", doc::CSR_SIGNER, |o| json!(text_or(o, "/spec/signerName", "<none>"))),
            column("Requestor", "string", doc::CSR_REQUEST, |o| json!(text(o, "/spec/username"))),
            column("RequestedDuration", "string", doc::CSR_EXPIRATION, |o| {
                json!(match o.pointer("/spec/expirationSeconds").and_then(Value::as_i64) {
                    Some(seconds) => human_duration(seconds),
                    None => "<none>".to_owned(),
                })
            }),
            column("Condition", "string", doc::CSR_CONDITIONS, |o| json!(csr_condition(o))),
        ],
        _ => return None,
    };
    Some(columns)
}

/// A role binding's columns; `noun` names the kind in the descriptions.
fn bindings(role_description: &'static str, noun: &str) -> Vec<Column> {
    let (users, groups, service_accounts) = match noun {
        "roleBinding" => {
            ("Users in the roleBinding", "Groups in the roleBinding", "ServiceAccounts in the roleBinding")
        }
        _ => (
            "Users in the clusterRoleBinding",
            "Groups in the clusterRoleBinding",
            "ServiceAccounts in the clusterRoleBinding",
        ),
    };
    vec![
        NAME,
        column("Role", "string", role_description, |o| {
            json!(format!("{}/{}", text(o, "/roleRef/kind"), text(o, "/roleRef/name")))
        }),
        AGE,
        wide("Users", "string", users, |o| json!(subjects(o, "User"))),
        wide("Groups", "string", groups, |o| json!(subjects(o, "Group"))),
        wide("ServiceAccounts", "string", service_accounts, |o| json!(subjects(o, "ServiceAccount"))),
    ]
}

/// The binding's subjects of `kind`, joined by `, `; service accounts as
/// `namespace/name`.
fn subjects(binding: &Value, kind: &str) -> String {
    let names: Vec<String> = items(binding, "/subjects")
        .iter()
        .filter(|s| text(s, "/kind") == kind)
        .map(|s| match kind {
            "ServiceAccount" => format!("{}/{}", text(s, "/namespace"), text(s, "/name")),
            _ => text(s, "/name").to_owned(),
        })
        .collect();
    names.join(", ")
}

fn flow_schemas() -> Vec<Column> {
    vec![
        NAME,
        column("PriorityLevel", "string", doc::FLOW_SCHEMA_PRIORITY_LEVEL, |o| {
            json!(text(o, "/spec/priorityLevelConfiguration/name"))
        }),
        column("MatchingPrecedence", "string", doc::FLOW_SCHEMA_PRECEDENCE, |o| {
            json!(int(o, "/spec/matchingPrecedence"))
        }),
        column("DistinguisherMethod", "string", doc::FLOW_SCHEMA_DISTINGUISHER, |o| {
            json!(text_or(o, "/spec/distinguisherMethod/type", "<none>"))
        }),
        AGE,
        column("MissingPL", "string", "references a broken or non-existent PriorityLevelConfiguration", |o| {
            let dangling = items(o, "/status/conditions").iter().find(|c| text(c, "/type") == "Dangling");
            json!(dangling.map_or("?", |c| text(c, "/status")))
        }),
    ]
}

fn priority_levels() -> Vec<Column> {
    vec![
        NAME,
        column("Type", "string", doc::PRIORITY_LEVEL_TYPE, |o| json!(text(o, "/spec/type"))),
        column("NominalConcurrencyShares", "string", doc::PRIORITY_LEVEL_SHARES, |o| {
            limited(o, "/nominalConcurrencyShares")
        }),
        column("Queues", "string", doc::PRIORITY_LEVEL_QUEUES, |o| queuing(o, "/queues")),
        column("HandSize", "string", doc::PRIORITY_LEVEL_HAND_SIZE, |o| queuing(o, "/handSize")),
        column("QueueLengthLimit", "string", doc::PRIORITY_LEVEL_QUEUE_LENGTH, |o| queuing(o, "/queueLengthLimit")),
        AGE,
    ]
}

/// A number of a limited priority level's `spec.limited`, or `<none>`.
fn limited(level: &Value, pointer: &str) -> Value {
    match level.pointer("/spec/limited").filter(|l| l.is_object()) {
        Some(limited) => json!(int(limited, pointer)),
        None => json!("<none>"),
    }
}

/// A number of a queuing priority level's queuing settings, or `<none>`.
fn queuing(level: &Value, pointer: &str) -> Value {
    match level.pointer("/spec/limited/limitResponse/queuing").filter(|q| q.is_object()) {
        Some(queuing) => json!(int(queuing, pointer)),
        None => json!("<none>"),
    }
}

/// The `AVAILABLE` cell: `True`, `False (Reason)`, or `Unknown`.
fn api_service_available(service: &Value) -> Value {
    let available = items(service, "/status/conditions").iter().find(|c| text(c, "/type") == "Available");
    json!(match available {
        None => "Unknown".to_owned(),
        Some(c) => match (text(c, "/status"), text(c, "/reason")) {
            ("True", _) => "True".to_owned(),
            (status, "") => status.to_owned(),
            (status, reason) => format!("{status} ({reason})"),
        },
    })
}

/// The `CONDITION` cell: `Approved,Issued`, `Denied`, `Pending` …
fn csr_condition(request: &Value) -> String {
    let has = |kind: &str| items(request, "/status/conditions").iter().any(|c| text(c, "/type") == kind);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_owned();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !text(request, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    status
}

fn admission(plural: &str) -> Option<Vec<Column>> {
    const WEBHOOKS: &str = "Webhooks indicates the number of webhooks registered in this configuration";
    let columns = match plural {
        "validatingwebhookconfigurations" | "mutatingwebhookconfigurations" => {
            vec![NAME, column("Webhooks", "integer", WEBHOOKS, |o| json!(count(o, "/webhooks"))), AGE]
        }
        "validatingadmissionpolicies" => vec![
            NAME,
            column(
                "Validations",
                "integer",
                "Validations indicates the number of validation rules defined in this configuration",
                |o| json!(count(o, "/spec/validations")),
            ),
            column(
                "ParamKind",
                "string",
                "ParamKind specifies the kind of resources used to parameterize this policy",
                |o| {
                    json!(match o.pointer("/spec/paramKind").filter(|k| k.is_object()) {
                        Some(kind) => format!("{}/{}", text(kind, "/apiVersion"), text(kind, "/kind")),
                        None => "<unset>".to_owned(),
                    })
                },
            ),
            AGE,
        ],
        "validatingadmissionpolicybindings" => vec![
            NAME,
            column(
                "PolicyName",
                "string",
                "PolicyName indicates the policy definition which the policy binding binded to",
                |o| json!(text(o, "/spec/policyName")),
            ),
            column(
                "ParamRef",
                "string",
                "ParamRef indicates the param resource which sets the configration param",
                |o| json!(param_ref(o)),
            ),
            AGE,
        ],
        _ => return None,
    };
    Some(columns)
}

/// The `PARAMREF` cell: `namespace/name`, `*/name`, the selector, or
/// `<unset>`.
fn param_ref(binding: &Value) -> String {
    let Some(reference) = binding.pointer("/spec/paramRef").filter(|r| r.is_object()) else {
        return "<unset>".to_owned();
    };
    let name = text(reference, "/name");
    if !name.is_empty() {
        return format!("{}/{name}", text_or(reference, "/namespace", "*"));
    }
    match reference.get("selector").filter(|s| s.is_object()) {
        Some(selector) => selector_debug(selector),
        None => "<unset>".to_owned(),
    }
}

/// A label selector in the Go debug form kube-apiserver prints here:
/// `&LabelSelector{MatchLabels:map[string]string{a: b,},MatchExpressions:[]LabelSelectorRequirement{},}`.
fn selector_debug(selector: &Value) -> String {
    let empty = Map::new();
    let labels = selector.get("matchLabels").and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = labels.keys().collect();
    keys.sort_unstable();
    let labels: String = keys.iter().map(|k| format!("{k}: {},", labels[*k].as_str().unwrap_or_default())).collect();
    let expressions: String = items(selector, "/matchExpressions")
        .iter()
        .map(|e| {
            let values: Vec<&str> = items(e, "/values").iter().filter_map(Value::as_str).collect();
            format!("{{{} {} [{}]}},", text(e, "/key"), text(e, "/operator"), values.join(" "))
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}
