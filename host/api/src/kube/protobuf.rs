//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`):
//! the `k8s\0` envelope, a `runtime.Unknown` naming the kind, and the object
//! in Kubernetes' protobuf encoding, decoded into its JSON form through a
//! table of the messages kubectl sends (field numbers as in Kubernetes'
//! `generated.proto` files). A field the table does not know is refused
//! with a precise error rather than dropped.

use base64::Engine;
use prost::encoding::{WireType, decode_key, decode_varint};
use serde_json::{Map, Value, json};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The first bytes of every Kubernetes protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Deepest nesting of messages decoded (bounds recursion on hostile input).
const DEPTH_MAX: usize = 32;

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// Not a Kubernetes protobuf body, or a malformed one.
    #[error("the protobuf body is malformed: {0}")]
    Malformed(String),
    /// A kind this server cannot decode from protobuf.
    #[error("kind {0} cannot be sent as protobuf to this server; send it as JSON")]
    UnknownKind(String),
    /// A field the decoder does not know.
    #[error("field {tag} of {message} is not one this server decodes from protobuf; send the object as JSON")]
    UnknownField {
        /// The message.
        message: &'static str,
        /// The field number.
        tag: u32,
    },
}

/// How a field's value is encoded and shown in JSON.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    Message(&'static str),
    /// `bytes`, base64-encoded in JSON.
    Bytes,
    /// `map<string, string>`.
    StrMap,
    /// `map<string, bytes>`, values base64-encoded.
    BytesMap,
    /// `map<string, Quantity>`.
    QuantityMap,
    /// `meta.v1.Time`: an RFC 3339 string.
    Time,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `meta.v1.FieldsV1`: raw JSON.
    FieldsV1,
}

/// How often a field occurs, and whether its zero value means something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    /// A plain field: Go encodes it even when zero, and its JSON omits a
    /// zero value (`false`, `0`, `""`, an unset time).
    One,
    /// A pointer field: encoded only when set, so a zero is meant.
    Ptr,
    /// A repeated field.
    Many,
}

/// One field: number, JSON name, encoding, occurrence.
type Field = (u32, &'static str, Kind, Card);

const ONE: Card = Card::One;
const PTR: Card = Card::Ptr;
const MANY: Card = Card::Many;

use Kind::*;

/// The messages kubectl sends, by name.
fn fields(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "ObjectMeta" => &[
            (1, "name", Str, ONE),
            (2, "generateName", Str, ONE),
            (3, "namespace", Str, ONE),
            (4, "selfLink", Str, ONE),
            (5, "uid", Str, ONE),
            (6, "resourceVersion", Str, ONE),
            (7, "generation", Int, ONE),
            (8, "creationTimestamp", Time, ONE),
            (9, "deletionTimestamp", Time, PTR),
            (10, "deletionGracePeriodSeconds", Int, PTR),
            (11, "labels", StrMap, ONE),
            (12, "annotations", StrMap, ONE),
            (13, "ownerReferences", Message("OwnerReference"), MANY),
            (14, "finalizers", Str, MANY),
            (17, "managedFields", Message("ManagedFieldsEntry"), MANY),
        ],
        "OwnerReference" => &[
            (1, "kind", Str, ONE),
            (3, "name", Str, ONE),
            (4, "uid", Str, ONE),
            (5, "apiVersion", Str, ONE),
            (6, "controller", Bool, PTR),
            (7, "blockOwnerDeletion", Bool, PTR),
        ],
        "ManagedFieldsEntry" => &[
            (1, "manager", Str, ONE),
            (2, "operation", Str, ONE),
            (3, "apiVersion", Str, ONE),
            (4, "time", Time, PTR),
            (6, "fieldsType", Str, ONE),
            (7, "fieldsV1", FieldsV1, PTR),
            (8, "subresource", Str, ONE),
        ],
        "LabelSelector" => {
            &[(1, "matchLabels", StrMap, ONE), (2, "matchExpressions", Message("LabelSelectorRequirement"), MANY)]
        }
        "LabelSelectorRequirement" => &[(1, "key", Str, ONE), (2, "operator", Str, ONE), (3, "values", Str, MANY)],
        "Namespace" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("NamespaceSpec"), ONE),
            (3, "status", Message("NamespaceStatus"), ONE),
        ],
        "NamespaceSpec" => &[(1, "finalizers", Str, MANY)],
        "NamespaceStatus" => &[(1, "phase", Str, ONE)],
        "ConfigMap" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "data", StrMap, ONE),
            (3, "binaryData", BytesMap, ONE),
            (4, "immutable", Bool, PTR),
        ],
        "Secret" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "data", BytesMap, ONE),
            (3, "type", Str, ONE),
            (4, "stringData", StrMap, ONE),
            (5, "immutable", Bool, PTR),
        ],
        "ResourceQuota" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("ResourceQuotaSpec"), ONE),
            (3, "status", Message("ResourceQuotaStatus"), ONE),
        ],
        "ResourceQuotaSpec" => &[
            (1, "hard", QuantityMap, ONE),
            (2, "scopes", Str, MANY),
            (3, "scopeSelector", Message("ScopeSelector"), PTR),
        ],
        "ScopeSelector" => &[(1, "matchExpressions", Message("ScopedResourceSelectorRequirement"), MANY)],
        "ScopedResourceSelectorRequirement" => {
            &[(1, "scopeName", Str, ONE), (2, "operator", Str, ONE), (3, "values", Str, MANY)]
        }
        "ResourceQuotaStatus" => &[(1, "hard", QuantityMap, ONE), (2, "used", QuantityMap, ONE)],
        "ServiceAccount" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "secrets", Message("ObjectReference"), MANY),
            (3, "imagePullSecrets", Message("LocalObjectReference"), MANY),
            (4, "automountServiceAccountToken", Bool, PTR),
        ],
        "ObjectReference" => &[
            (1, "kind", Str, ONE),
            (2, "namespace", Str, ONE),
            (3, "name", Str, ONE),
            (4, "uid", Str, ONE),
            (5, "apiVersion", Str, ONE),
            (6, "resourceVersion", Str, ONE),
            (7, "fieldPath", Str, ONE),
        ],
        "LocalObjectReference" => &[(1, "name", Str, ONE)],
        "Deployment" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("DeploymentSpec"), ONE),
            (3, "status", Message("DeploymentStatus"), ONE),
        ],
        "DeploymentSpec" => &[
            (1, "replicas", Int, PTR),
            (2, "selector", Message("LabelSelector"), PTR),
            (3, "template", Message("PodTemplateSpec"), ONE),
            (4, "strategy", Message("DeploymentStrategy"), ONE),
            (5, "minReadySeconds", Int, ONE),
            (6, "revisionHistoryLimit", Int, PTR),
            (7, "paused", Bool, ONE),
            (9, "progressDeadlineSeconds", Int, PTR),
        ],
        "DeploymentStrategy" => &[(1, "type", Str, ONE), (2, "rollingUpdate", Message("RollingUpdateDeployment"), ONE)],
        "RollingUpdateDeployment" => &[(1, "maxUnavailable", IntOrString, ONE), (2, "maxSurge", IntOrString, ONE)],
        "DeploymentStatus" => &[
            (1, "observedGeneration", Int, ONE),
            (2, "replicas", Int, ONE),
            (3, "updatedReplicas", Int, ONE),
            (4, "availableReplicas", Int, ONE),
            (5, "unavailableReplicas", Int, ONE),
            (7, "readyReplicas", Int, ONE),
            (8, "collisionCount", Int, PTR),
            (9, "terminatingReplicas", Int, PTR),
        ],
        "PodTemplateSpec" => &[(1, "metadata", Message("ObjectMeta"), ONE), (2, "spec", Message("PodSpec"), ONE)],
        "PodSpec" => &[
            (2, "containers", Message("Container"), MANY),
            (3, "restartPolicy", Str, ONE),
            (4, "terminationGracePeriodSeconds", Int, PTR),
            (5, "activeDeadlineSeconds", Int, PTR),
            (6, "dnsPolicy", Str, ONE),
            (7, "nodeSelector", StrMap, ONE),
            (8, "serviceAccountName", Str, ONE),
            (9, "serviceAccount", Str, ONE),
            (10, "nodeName", Str, ONE),
            (11, "hostNetwork", Bool, ONE),
            (12, "hostPID", Bool, ONE),
            (13, "hostIPC", Bool, ONE),
            (15, "imagePullSecrets", Message("LocalObjectReference"), MANY),
            (16, "hostname", Str, ONE),
            (17, "subdomain", Str, ONE),
            (19, "schedulerName", Str, ONE),
            (20, "initContainers", Message("Container"), MANY),
            (21, "automountServiceAccountToken", Bool, PTR),
            (24, "priorityClassName", Str, ONE),
            (25, "priority", Int, PTR),
            (27, "shareProcessNamespace", Bool, PTR),
            (29, "runtimeClassName", Str, PTR),
            (30, "enableServiceLinks", Bool, PTR),
            (31, "preemptionPolicy", Str, PTR),
            (32, "overhead", QuantityMap, ONE),
            (35, "setHostnameAsFQDN", Bool, PTR),
            (37, "hostUsers", Bool, PTR),
        ],
        "Container" => &[
            (1, "name", Str, ONE),
            (2, "image", Str, ONE),
            (3, "command", Str, MANY),
            (4, "args", Str, MANY),
            (5, "workingDir", Str, ONE),
            (6, "ports", Message("ContainerPort"), MANY),
            (7, "env", Message("EnvVar"), MANY),
            (8, "resources", Message("ResourceRequirements"), ONE),
            (13, "terminationMessagePath", Str, ONE),
            (14, "imagePullPolicy", Str, ONE),
            (16, "stdin", Bool, ONE),
            (17, "stdinOnce", Bool, ONE),
            (18, "tty", Bool, ONE),
            (20, "terminationMessagePolicy", Str, ONE),
            (24, "restartPolicy", Str, PTR),
        ],
        "ContainerPort" => &[
            (1, "name", Str, ONE),
            (2, "hostPort", Int, ONE),
            (3, "containerPort", Int, ONE),
            (4, "protocol", Str, ONE),
            (5, "hostIP", Str, ONE),
        ],
        "EnvVar" => &[(1, "name", Str, ONE), (2, "value", Str, ONE)],
        "ResourceRequirements" => &[(1, "limits", QuantityMap, ONE), (2, "requests", QuantityMap, ONE)],
        "Service" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("ServiceSpec"), ONE),
            (3, "status", Message("ServiceStatus"), ONE),
        ],
        "ServiceSpec" => &[
            (1, "ports", Message("ServicePort"), MANY),
            (2, "selector", StrMap, ONE),
            (3, "clusterIP", Str, ONE),
            (4, "type", Str, ONE),
            (5, "externalIPs", Str, MANY),
            (7, "sessionAffinity", Str, ONE),
            (8, "loadBalancerIP", Str, ONE),
            (9, "loadBalancerSourceRanges", Str, MANY),
            (10, "externalName", Str, ONE),
            (11, "externalTrafficPolicy", Str, ONE),
            (12, "healthCheckNodePort", Int, ONE),
            (13, "publishNotReadyAddresses", Bool, ONE),
            (17, "ipFamilyPolicy", Str, PTR),
            (18, "clusterIPs", Str, MANY),
            (19, "ipFamilies", Str, MANY),
            (20, "allocateLoadBalancerNodePorts", Bool, PTR),
            (21, "loadBalancerClass", Str, PTR),
            (22, "internalTrafficPolicy", Str, PTR),
            (23, "trafficDistribution", Str, PTR),
        ],
        "ServicePort" => &[
            (1, "name", Str, ONE),
            (2, "protocol", Str, ONE),
            (3, "port", Int, ONE),
            (4, "targetPort", IntOrString, ONE),
            (5, "nodePort", Int, ONE),
            (6, "appProtocol", Str, PTR),
        ],
        "ServiceStatus" => &[(1, "loadBalancer", Message("LoadBalancerStatus"), ONE)],
        "LoadBalancerStatus" => &[],
        "PodDisruptionBudget" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("PodDisruptionBudgetSpec"), ONE),
            (3, "status", Message("PodDisruptionBudgetStatus"), ONE),
        ],
        "PodDisruptionBudgetSpec" => &[
            (1, "minAvailable", IntOrString, PTR),
            (2, "selector", Message("LabelSelector"), PTR),
            (3, "maxUnavailable", IntOrString, PTR),
            (4, "unhealthyPodEvictionPolicy", Str, PTR),
        ],
        "PodDisruptionBudgetStatus" => &[
            (1, "observedGeneration", Int, ONE),
            (3, "disruptionsAllowed", Int, ONE),
            (4, "currentHealthy", Int, ONE),
            (5, "desiredHealthy", Int, ONE),
            (6, "expectedPods", Int, ONE),
        ],
        "PriorityClass" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "value", Int, ONE),
            (3, "globalDefault", Bool, ONE),
            (4, "description", Str, ONE),
            (5, "preemptionPolicy", Str, PTR),
        ],
        "Job" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("JobSpec"), ONE),
            (3, "status", Message("JobStatus"), ONE),
        ],
        "JobSpec" => &[
            (1, "parallelism", Int, PTR),
            (2, "completions", Int, PTR),
            (3, "activeDeadlineSeconds", Int, PTR),
            (4, "selector", Message("LabelSelector"), PTR),
            (5, "manualSelector", Bool, PTR),
            (6, "template", Message("PodTemplateSpec"), ONE),
            (7, "backoffLimit", Int, PTR),
            (8, "ttlSecondsAfterFinished", Int, PTR),
            (9, "completionMode", Str, PTR),
            (10, "suspend", Bool, PTR),
            (12, "backoffLimitPerIndex", Int, PTR),
            (13, "maxFailedIndexes", Int, PTR),
            (14, "podReplacementPolicy", Str, PTR),
            (15, "managedBy", Str, PTR),
        ],
        "JobStatus" => &[
            (4, "active", Int, ONE),
            (5, "succeeded", Int, ONE),
            (6, "failed", Int, ONE),
            (7, "completedIndexes", Str, ONE),
            (9, "ready", Int, PTR),
            (10, "failedIndexes", Str, PTR),
            (11, "terminating", Int, PTR),
        ],
        "CronJob" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("CronJobSpec"), ONE),
            (3, "status", Message("CronJobStatus"), ONE),
        ],
        "CronJobSpec" => &[
            (1, "schedule", Str, ONE),
            (2, "startingDeadlineSeconds", Int, PTR),
            (3, "concurrencyPolicy", Str, ONE),
            (4, "suspend", Bool, PTR),
            (5, "jobTemplate", Message("JobTemplateSpec"), ONE),
            (6, "successfulJobsHistoryLimit", Int, PTR),
            (7, "failedJobsHistoryLimit", Int, PTR),
            (8, "timeZone", Str, PTR),
        ],
        "CronJobStatus" => &[],
        "JobTemplateSpec" => &[(1, "metadata", Message("ObjectMeta"), ONE), (2, "spec", Message("JobSpec"), ONE)],
        "CertificateSigningRequest" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("CertificateSigningRequestSpec"), ONE),
            (3, "status", Message("CertificateSigningRequestStatus"), ONE),
        ],
        "CertificateSigningRequestSpec" => &[
            (1, "request", Bytes, ONE),
            (2, "username", Str, ONE),
            (3, "uid", Str, ONE),
            (4, "groups", Str, MANY),
            (5, "usages", Str, MANY),
            (7, "signerName", Str, ONE),
            (8, "expirationSeconds", Int, PTR),
        ],
        "CertificateSigningRequestStatus" => {
            &[(1, "conditions", Message("CertificateSigningRequestCondition"), MANY), (2, "certificate", Bytes, ONE)]
        }
        "CertificateSigningRequestCondition" => &[
            (1, "type", Str, ONE),
            (2, "reason", Str, ONE),
            (3, "message", Str, ONE),
            (4, "lastUpdateTime", Time, ONE),
            (5, "lastTransitionTime", Time, ONE),
            (6, "status", Str, ONE),
        ],
        "SelfSubjectAccessReview" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("SelfSubjectAccessReviewSpec"), ONE),
            (3, "status", Message("SubjectAccessReviewStatus"), ONE),
        ],
        "SelfSubjectAccessReviewSpec" => &[
            (1, "resourceAttributes", Message("ResourceAttributes"), ONE),
            (2, "nonResourceAttributes", Message("NonResourceAttributes"), ONE),
        ],
        "ResourceAttributes" => &[
            (1, "namespace", Str, ONE),
            (2, "verb", Str, ONE),
            (3, "group", Str, ONE),
            (4, "version", Str, ONE),
            (5, "resource", Str, ONE),
            (6, "subresource", Str, ONE),
            (7, "name", Str, ONE),
        ],
        "NonResourceAttributes" => &[(1, "path", Str, ONE), (2, "verb", Str, ONE)],
        "Role" => &[(1, "metadata", Message("ObjectMeta"), ONE), (2, "rules", Message("PolicyRule"), MANY)],
        "ClusterRole" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "rules", Message("PolicyRule"), MANY),
            (3, "aggregationRule", Message("AggregationRule"), PTR),
        ],
        "AggregationRule" => &[(1, "clusterRoleSelectors", Message("LabelSelector"), MANY)],
        "PolicyRule" => &[
            (1, "verbs", Str, MANY),
            (2, "apiGroups", Str, MANY),
            (3, "resources", Str, MANY),
            (4, "resourceNames", Str, MANY),
            (5, "nonResourceURLs", Str, MANY),
        ],
        "RoleBinding" | "ClusterRoleBinding" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "subjects", Message("Subject"), MANY),
            (3, "roleRef", Message("RoleRef"), ONE),
        ],
        "Subject" => {
            &[(1, "kind", Str, ONE), (2, "apiGroup", Str, ONE), (3, "name", Str, ONE), (4, "namespace", Str, ONE)]
        }
        "RoleRef" => &[(1, "apiGroup", Str, ONE), (2, "kind", Str, ONE), (3, "name", Str, ONE)],
        "TokenRequest" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("TokenRequestSpec"), ONE),
            (3, "status", Message("TokenRequestStatus"), ONE),
        ],
        "TokenRequestSpec" => &[
            (1, "audiences", Str, MANY),
            (3, "boundObjectRef", Message("BoundObjectReference"), PTR),
            (4, "expirationSeconds", Int, PTR),
        ],
        "BoundObjectReference" => {
            &[(1, "kind", Str, ONE), (2, "apiVersion", Str, ONE), (3, "name", Str, ONE), (4, "uid", Str, ONE)]
        }
        "TokenRequestStatus" => &[(1, "token", Str, ONE), (2, "expirationTimestamp", Time, ONE)],
        "SelfSubjectReview" => {
            &[(1, "metadata", Message("ObjectMeta"), ONE), (2, "status", Message("SelfSubjectReviewStatus"), ONE)]
        }
        "SelfSubjectReviewStatus" => &[(1, "userInfo", Message("UserInfo"), ONE)],
        "UserInfo" => &[(1, "username", Str, ONE), (2, "uid", Str, ONE), (3, "groups", Str, MANY)],
        "SelfSubjectRulesReview" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("SelfSubjectRulesReviewSpec"), ONE),
            (3, "status", Message("SubjectRulesReviewStatus"), ONE),
        ],
        "SelfSubjectRulesReviewSpec" => &[(1, "namespace", Str, ONE)],
        "SubjectRulesReviewStatus" => &[
            (1, "resourceRules", Message("PolicyRule"), MANY),
            (2, "nonResourceRules", Message("NonResourceRule"), MANY),
            (3, "incomplete", Bool, ONE),
            (4, "evaluationError", Str, ONE),
        ],
        "NonResourceRule" => &[(1, "verbs", Str, MANY), (2, "nonResourceURLs", Str, MANY)],
        "SubjectAccessReview" => &[
            (1, "metadata", Message("ObjectMeta"), ONE),
            (2, "spec", Message("SubjectAccessReviewSpec"), ONE),
            (3, "status", Message("SubjectAccessReviewStatus"), ONE),
        ],
        "SubjectAccessReviewSpec" => &[
            (1, "resourceAttributes", Message("ResourceAttributes"), PTR),
            (2, "nonResourceAttributes", Message("NonResourceAttributes"), PTR),
            (3, "user", Str, ONE),
            (4, "groups", Str, MANY),
            (6, "uid", Str, ONE),
        ],
        "SubjectAccessReviewStatus" => &[
            (1, "allowed", Bool, ONE),
            (2, "reason", Str, ONE),
            (3, "evaluationError", Str, ONE),
            (4, "denied", Bool, ONE),
        ],
        _ => return None,
    })
}

/// Decodes a Kubernetes protobuf body into the object's JSON form.
///
/// # Errors
/// A malformed body, a kind or a field the decoder does not know.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let malformed = |what: &str| ProtobufError::Malformed(what.to_owned());
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| malformed("it does not start with the k8s envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for_each_field(envelope, |tag, value| {
        match (tag, value) {
            (1, Wire::Bytes(type_meta)) => for_each_field(type_meta, |tag, value| {
                match (tag, value) {
                    (1, Wire::Bytes(text)) => api_version = utf8(text)?,
                    (2, Wire::Bytes(text)) => kind = utf8(text)?,
                    _ => {}
                }
                Ok(())
            })?,
            (2, Wire::Bytes(bytes)) => raw = Some(bytes),
            (3, Wire::Bytes(encoding)) if !encoding.is_empty() => {
                return Err(ProtobufError::Malformed(format!(
                    "content encoding {:?} is not supported",
                    utf8(encoding)?
                )));
            }
            _ => {}
        }
        Ok(())
    })?;
    let message: &'static str = match kind.as_str() {
        "Namespace" => "Namespace",
        "CertificateSigningRequest" => "CertificateSigningRequest",
        "ConfigMap" => "ConfigMap",
        "Secret" => "Secret",
        "ResourceQuota" => "ResourceQuota",
        "ServiceAccount" => "ServiceAccount",
        "Deployment" => "Deployment",
        "Service" => "Service",
        "Job" => "Job",
        "PodDisruptionBudget" => "PodDisruptionBudget",
        "PriorityClass" => "PriorityClass",
        "CronJob" => "CronJob",
        "SelfSubjectAccessReview" => "SelfSubjectAccessReview",
        "Role" => "Role",
        "ClusterRole" => "ClusterRole",
        "RoleBinding" => "RoleBinding",
        "ClusterRoleBinding" => "ClusterRoleBinding",
        "TokenRequest" => "TokenRequest",
        "SelfSubjectReview" => "SelfSubjectReview",
        "SelfSubjectRulesReview" => "SelfSubjectRulesReview",
        "SubjectAccessReview" => "SubjectAccessReview",
        "" => return Err(malformed("the envelope names no kind")),
        _ => return Err(ProtobufError::UnknownKind(kind)),
    };
    let mut object = decode_message(message, raw.unwrap_or_default(), 0)?;
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

/// A field's raw value on the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Calls `visit` for every field of an encoded message, in order.
fn for_each_field<'a>(
    mut buffer: &'a [u8],
    mut visit: impl FnMut(u32, Wire<'a>) -> Result<(), ProtobufError>,
) -> Result<(), ProtobufError> {
    let malformed = |e: prost::DecodeError| ProtobufError::Malformed(e.to_string());
    while !buffer.is_empty() {
        let (tag, wire_type) = decode_key(&mut buffer).map_err(malformed)?;
        let value = match wire_type {
            WireType::Varint => Wire::Varint(decode_varint(&mut buffer).map_err(malformed)?),
            WireType::LengthDelimited => {
                let length = usize::try_from(decode_varint(&mut buffer).map_err(malformed)?).unwrap_or(usize::MAX);
                if length > buffer.len() {
                    return Err(ProtobufError::Malformed("a field runs past the end of its message".into()));
                }
                let (bytes, rest) = buffer.split_at(length);
                buffer = rest;
                Wire::Bytes(bytes)
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit | WireType::StartGroup | WireType::EndGroup => {
                return Err(ProtobufError::Malformed(format!("field {tag} has a wire type Kubernetes never uses")));
            }
        };
        visit(tag, value)?;
    }
    Ok(())
}

fn utf8(bytes: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::Malformed("a string is not UTF-8".into()))
}

fn decode_message(message: &'static str, bytes: &[u8], depth: usize) -> Result<Map<String, Value>, ProtobufError> {
    if depth > DEPTH_MAX {
        return Err(ProtobufError::Malformed(format!("messages nest deeper than {DEPTH_MAX}")));
    }
    let table = fields(message).ok_or(ProtobufError::UnknownField { message, tag: 0 })?;
    let mut object = Map::new();
    for_each_field(bytes, |tag, wire| {
        let &(_, name, kind, card) =
            table.iter().find(|field| field.0 == tag).ok_or(ProtobufError::UnknownField { message, tag })?;
        let value = decode_value(message, tag, kind, wire, depth)?;
        if card == Card::One && is_zero(&value) {
            return Ok(());
        }
        match kind {
            StrMap | BytesMap | QuantityMap => {
                let Value::Object(entry) = value else { unreachable!("maps decode to objects") };
                let map = object.entry(name).or_insert_with(|| json!({}));
                map.as_object_mut().expect("maps are objects").extend(entry);
            }
            _ if card == Card::Many => {
                object.entry(name).or_insert_with(|| json!([])).as_array_mut().expect("lists").push(value);
            }
            _ => {
                object.insert(name.into(), value);
            }
        }
        Ok(())
    })?;
    Ok(object)
}

fn decode_value(
    message: &'static str,
    tag: u32,
    kind: Kind,
    wire: Wire<'_>,
    depth: usize,
) -> Result<Value, ProtobufError> {
    let mismatch = || ProtobufError::Malformed(format!("field {tag} of {message} has the wrong wire type"));
    Ok(match (kind, wire) {
        (Bool, Wire::Varint(v)) => json!(v != 0),
        // Kubernetes' integers are int32/int64: two's complement varints.
        (Int, Wire::Varint(v)) => json!(v as i64),
        (Str, Wire::Bytes(bytes)) => json!(utf8(bytes)?),
        (Bytes, Wire::Bytes(bytes)) => json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        (Message(inner), Wire::Bytes(bytes)) => Value::Object(decode_message(inner, bytes, depth + 1)?),
        (StrMap | BytesMap | QuantityMap, Wire::Bytes(bytes)) => {
            let (mut key, mut value) = (String::new(), Value::Null);
            for_each_field(bytes, |tag, wire| {
                match (tag, wire) {
                    (1, Wire::Bytes(text)) => key = utf8(text)?,
                    (2, Wire::Bytes(bytes)) => {
                        value = match kind {
                            StrMap => json!(utf8(bytes)?),
                            BytesMap => json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                            _ => quantity(bytes)?,
                        };
                    }
                    _ => return Err(mismatch()),
                }
                Ok(())
            })?;
            if value.is_null() {
                value = match kind {
                    QuantityMap => json!("0"),
                    _ => json!(""),
                };
            }
            json!({ key: value })
        }
        (Time, Wire::Bytes(bytes)) => {
            let (mut seconds, mut nanos) = (0i64, 0i64);
            for_each_field(bytes, |tag, wire| {
                match (tag, wire) {
                    (1, Wire::Varint(v)) => seconds = v as i64,
                    (2, Wire::Varint(v)) => nanos = v as i64,
                    _ => return Err(mismatch()),
                }
                Ok(())
            })?;
            if (seconds, nanos) == (0, 0) {
                return Ok(Value::Null);
            }
            let time = k8s_openapi::chrono::DateTime::from_timestamp(seconds, u32::try_from(nanos).unwrap_or(0))
                .ok_or_else(|| ProtobufError::Malformed(format!("time {seconds}s is out of range")))?;
            json!(time.to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Secs, true))
        }
        (IntOrString, Wire::Bytes(bytes)) => {
            let (mut is_string, mut number, mut text) = (false, 0i64, String::new());
            for_each_field(bytes, |tag, wire| {
                match (tag, wire) {
                    (1, Wire::Varint(v)) => is_string = v == 1,
                    (2, Wire::Varint(v)) => number = i64::from(v as i32),
                    (3, Wire::Bytes(bytes)) => text = utf8(bytes)?,
                    _ => return Err(mismatch()),
                }
                Ok(())
            })?;
            if is_string { json!(text) } else { json!(number) }
        }
        (FieldsV1, Wire::Bytes(bytes)) => {
            let mut raw = json!({});
            for_each_field(bytes, |tag, wire| {
                if let (1, Wire::Bytes(bytes)) = (tag, wire) {
                    raw = serde_json::from_slice(bytes)
                        .map_err(|e| ProtobufError::Malformed(format!("fieldsV1 is not JSON: {e}")))?;
                }
                Ok(())
            })?;
            raw
        }
        _ => return Err(mismatch()),
    })
}

/// Whether a decoded scalar is its type's zero (what Go's `omitempty` leaves
/// out of JSON); an unset time decodes to `null`.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_i64() == Some(0),
        Value::String(text) => text.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn quantity(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let mut text = String::from("0");
    for_each_field(bytes, |tag, wire| {
        if let (1, Wire::Bytes(bytes)) = (tag, wire) {
            text = utf8(bytes)?;
        }
        Ok(())
    })?;
    Ok(json!(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A length-delimited field.
    fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_key(tag, WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(bytes.len() as u64, &mut out);
        out.extend_from_slice(bytes);
        out
    }

    fn varint(tag: u32, value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_key(tag, WireType::Varint, &mut out);
        prost::encoding::encode_varint(value, &mut out);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), field(1, &type_meta), field(2, raw), field(3, b""), field(4, b"")].concat()
    }

    #[test]
    fn a_deployment_as_kubectl_create_sends_it() {
        let labels = field(11, &[field(1, b"app"), field(2, b"web")].concat());
        let metadata = [field(1, b"web"), labels.clone(), varint(7, 0)].concat();
        let resources = field(8, &[]);
        let port = field(6, &varint(3, 80));
        let container = [field(1, b"nginx"), field(2, b"nginx:1.27"), port, resources].concat();
        let pod_spec = field(2, &container);
        let template = [field(1, &labels), field(2, &pod_spec)].concat();
        let surge = [varint(1, 1), field(3, b"25%")].concat();
        let strategy = field(2, &field(2, &surge));
        let selector = field(1, &[field(1, b"app"), field(2, b"web")].concat());
        let spec = [varint(1, 3), field(2, &selector), field(3, &template), field(4, &strategy)].concat();
        let raw = [field(1, &metadata), field(2, &spec), field(3, &[])].concat();
        let decoded = decode(&envelope("apps/v1", "Deployment", &raw)).expect("decodes");
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                        {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "resources": {}}]}},
                    "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
                },
                "status": {},
            })
        );
    }

    #[test]
    fn secrets_times_and_negative_numbers() {
        let created = field(8, &[varint(1, 1_700_000_000), varint(2, 0)].concat());
        let metadata = [field(1, b"s"), created, varint(10, -5i64 as u64)].concat();
        let data = field(2, &[field(1, b"k"), field(2, &[0, 255])].concat());
        let raw = [field(1, &metadata), data, field(3, b"Opaque")].concat();
        let decoded = decode(&envelope("v1", "Secret", &raw)).expect("decodes");
        assert_eq!(decoded["data"]["k"], "AP8=");
        assert_eq!(decoded["type"], "Opaque");
        assert_eq!(decoded["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(decoded["metadata"]["deletionGracePeriodSeconds"], -5);
    }

    #[test]
    fn a_resource_quota_as_kubectl_create_quota_sends_it() {
        let hard = field(1, &[field(1, b"pods"), field(2, &field(1, b"2"))].concat());
        let spec = [hard, field(2, b"NotTerminating")].concat();
        let raw = [field(1, &field(1, b"pods")), field(2, &spec), field(3, &[])].concat();
        let decoded = decode(&envelope("v1", "ResourceQuota", &raw)).expect("decodes");
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "pods"},
                "spec": {"hard": {"pods": "2"}, "scopes": ["NotTerminating"]},
                "status": {},
            })
        );
    }

    #[test]
    fn unknown_kinds_fields_and_broken_bodies_are_refused() {
        assert!(matches!(decode(&envelope("v1", "Pod", &[])), Err(ProtobufError::UnknownKind(kind)) if kind == "Pod"));
        let unknown = field(99, b"x");
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &unknown)),
            Err(ProtobufError::UnknownField { message: "ConfigMap", tag: 99 })
        );
        assert!(matches!(decode(b"{\"kind\": \"x\"}"), Err(ProtobufError::Malformed(_))));
        let mut truncated = envelope("v1", "ConfigMap", &field(1, &field(1, b"name")));
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(decode(&truncated), Err(ProtobufError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn no_body_panics_the_decoder(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&[MAGIC.to_vec(), body.clone()].concat());
            let _ = decode(&envelope("v1", "ConfigMap", &body));
            let _ = decode(&envelope("apps/v1", "Deployment", &body));
        }
    }
}
