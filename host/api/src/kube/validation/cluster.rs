//! Certificate signing requests, admission configuration, events.k8s.io
//! events, APIServices and flow control: kube-apiserver's rules.

use base64::Engine;
use serde_json::Value;

use super::super::status::Cause;
use super::{invalid, items, required, text, unsupported};

/// The key usages a certificate signing request may ask for.
const KEY_USAGES: [&str; 23] = [
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// Shortest life a certificate may be asked for.
const EXPIRATION_SECONDS_MIN: i64 = 600;

/// A CertificateSigningRequest: a PEM `CERTIFICATE REQUEST` that parses, a
/// signer, known usages, and a life of at least ten minutes.
pub fn certificate_signing_request(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let request = text(object, "/spec/request");
    match base64::engine::general_purpose::STANDARD.decode(request) {
        _ if request.is_empty() => causes.push(required("spec.request", "")),
        Err(_) => causes.push(invalid("spec.request", "\"\"", "the request is not base64")),
        Ok(bytes) => {
            if let Err(why) = parse_request(&bytes) {
                causes.push(invalid("spec.request", "[]byte{...}", why));
            }
        }
    }
    let signer = text(object, "/spec/signerName");
    if signer.is_empty() {
        causes.push(required("spec.signerName", ""));
    } else if !signer.contains('/') {
        causes.push(invalid(
            "spec.signerName",
            &format!("{signer:?}"),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    let usages = items(object, "/spec/usages");
    if usages.is_empty() {
        causes.push(required("spec.usages", "usages must be provided"));
    }
    for (index, usage) in usages.iter().enumerate() {
        let usage = usage.as_str().unwrap_or_default();
        if !KEY_USAGES.contains(&usage) {
            causes.push(unsupported(format!("spec.usages[{index}]"), usage, &KEY_USAGES));
        }
    }
    if let Some(seconds) = object.pointer("/spec/expirationSeconds").and_then(Value::as_i64)
        && seconds < EXPIRATION_SECONDS_MIN
    {
        causes.push(invalid(
            "spec.expirationSeconds",
            &seconds.to_string(),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    causes
}

/// Why `bytes` are not a PEM certificate request, if they are not.
fn parse_request(bytes: &[u8]) -> Result<(), &'static str> {
    let block = pem::parse(bytes).map_err(|_| "PEM block type must be CERTIFICATE REQUEST")?;
    if block.tag() != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST");
    }
    use x509_parser::prelude::FromDer;
    x509_parser::certification_request::X509CertificationRequest::from_der(block.contents())
        .map(drop)
        .map_err(|_| "the certificate request does not parse")
}

/// Validating or mutating webhook configurations: each webhook named by a
/// domain of three parts or more, once, with a client, side effects and
/// review versions.
pub fn webhook_configuration(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut names = Vec::new();
    for (index, webhook) in items(object, "/webhooks").iter().enumerate() {
        let at = format!("webhooks[{index}]");
        let name = text(webhook, "/name");
        if name.is_empty() {
            causes.push(required(format!("{at}.name"), ""));
        } else if name.split('.').filter(|part| !part.is_empty()).count() < 3 {
            causes.push(invalid(
                format!("{at}.name"),
                &format!("{name:?}"),
                "should be a domain with at least three segments separated by dots",
            ));
        } else if names.contains(&name) {
            causes.push(Cause {
                reason: "FieldValueDuplicate".into(),
                message: format!("Duplicate value: {name:?}"),
                field: format!("{at}.name"),
            });
        }
        names.push(name);
        let url = !text(webhook, "/clientConfig/url").is_empty();
        let service = webhook.pointer("/clientConfig/service").is_some_and(|s| !s.is_null());
        if url == service {
            causes.push(required(format!("{at}.clientConfig"), "exactly one of url or service is required"));
        }
        let effects = text(webhook, "/sideEffects");
        if effects.is_empty() {
            causes.push(unsupported(format!("{at}.sideEffects"), "", &["None", "NoneOnDryRun"]));
        } else if !["None", "NoneOnDryRun"].contains(&effects) {
            causes.push(unsupported(format!("{at}.sideEffects"), effects, &["None", "NoneOnDryRun"]));
        }
        let versions = items(webhook, "/admissionReviewVersions");
        if !versions.iter().any(|v| matches!(v.as_str(), Some("v1" | "v1beta1"))) {
            causes.push(required(format!("{at}.admissionReviewVersions"), "must specify one of v1, v1beta1"));
        }
    }
    causes
}

/// A ValidatingAdmissionPolicy: something to check, each expression given.
pub fn validating_admission_policy(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let validations = items(object, "/spec/validations");
    let audits = items(object, "/spec/auditAnnotations");
    if validations.is_empty() && audits.is_empty() {
        causes.push(required("spec.validations", "validations or auditAnnotations must contain at least one item"));
    }
    for (index, validation) in validations.iter().enumerate() {
        if text(validation, "/expression").trim().is_empty() {
            causes.push(required(format!("spec.validations[{index}].expression"), "expression is not specified"));
        }
    }
    causes
}

/// A ValidatingAdmissionPolicyBinding: the policy it binds and what to do.
pub fn validating_admission_policy_binding(object: &Value) -> Vec<Cause> {
    const ACTIONS: [&str; 3] = ["Audit", "Deny", "Warn"];
    let mut causes = Vec::new();
    if text(object, "/spec/policyName").is_empty() {
        causes.push(required("spec.policyName", ""));
    }
    let actions = items(object, "/spec/validationActions");
    if actions.is_empty() {
        causes.push(required("spec.validationActions", "at least one validation action is required"));
    }
    for (index, action) in actions.iter().enumerate() {
        let action = action.as_str().unwrap_or_default();
        if !ACTIONS.contains(&action) {
            causes.push(unsupported(format!("spec.validationActions[{index}]"), action, &ACTIONS));
        }
    }
    causes
}

/// An events.k8s.io/v1 Event: when, who reported it, what happened.
pub fn event(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if object.get("eventTime").is_none_or(Value::is_null) {
        causes.push(required("eventTime", ""));
    }
    for (field, pointer) in
        [("reportingController", "/reportingController"), ("reportingInstance", "/reportingInstance")]
    {
        if text(object, pointer).is_empty() {
            causes.push(required(field, ""));
        }
    }
    if text(object, "/action").is_empty() {
        causes.push(required("action", ""));
    }
    if text(object, "/reason").is_empty() {
        causes.push(required("reason", ""));
    }
    let kind = text(object, "/type");
    if !["Normal", "Warning"].contains(&kind) {
        causes.push(unsupported("type", kind, &["Normal", "Warning"]));
    }
    if text(object, "/note").len() > 1024 {
        causes.push(invalid("note", "\"\"", "can have at most 1024 characters"));
    }
    causes
}

/// An APIService: named `version.group`, with priorities in range.
pub fn api_service(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (version, group) = (text(object, "/spec/version"), text(object, "/spec/group"));
    let wanted = format!("{version}.{group}");
    let name = text(object, "/metadata/name");
    if name != wanted {
        causes.push(invalid(
            "metadata.name",
            &format!("{name:?}"),
            &format!("must be `spec.version+\".\"+spec.group`: {wanted:?}"),
        ));
    }
    if version.is_empty() {
        causes.push(required("spec.version", ""));
    }
    for field in ["groupPriorityMinimum", "versionPriority"] {
        let value = object.pointer(&format!("/spec/{field}")).and_then(Value::as_i64).unwrap_or(0);
        if !(1..=20000).contains(&value) {
            causes.push(invalid(format!("spec.{field}"), &value.to_string(), "must be positive and less than 20000"));
        }
    }
    causes
}

/// A FlowSchema: its priority level, its precedence, its distinguisher.
pub fn flow_schema(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if text(object, "/spec/priorityLevelConfiguration/name").is_empty() {
        causes.push(required("spec.priorityLevelConfiguration.name", "must reference a priority level"));
    }
    if let Some(precedence) = object.pointer("/spec/matchingPrecedence").and_then(Value::as_i64)
        && !(1..=10_000).contains(&precedence)
    {
        causes.push(invalid(
            "spec.matchingPrecedence",
            &precedence.to_string(),
            "must be between 1 and 10000, inclusive",
        ));
    }
    let method = text(object, "/spec/distinguisherMethod/type");
    if object.pointer("/spec/distinguisherMethod").is_some() && !["ByNamespace", "ByUser"].contains(&method) {
        causes.push(unsupported("spec.distinguisherMethod.type", method, &["ByNamespace", "ByUser"]));
    }
    causes
}

/// A PriorityLevelConfiguration: its type, and how a limited one refuses.
pub fn priority_level_configuration(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match text(object, "/spec/type") {
        "Exempt" => {}
        "Limited" => match object.pointer("/spec/limited").filter(|l| !l.is_null()) {
            None => causes.push(required("spec.limited", "must not be empty when type is Limited")),
            Some(limited) => {
                let response = text(limited, "/limitResponse/type");
                if !response.is_empty() && !["Queue", "Reject"].contains(&response) {
                    causes.push(unsupported("spec.limited.limitResponse.type", response, &["Queue", "Reject"]));
                }
            }
        },
        other => causes.push(unsupported("spec.type", other, &["Exempt", "Limited"])),
    }
    causes
}
