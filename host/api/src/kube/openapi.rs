//! OpenAPI v3: one document per group version, generated from the
//! k8s-openapi schemas (with their field descriptions), carrying what
//! kubectl looks for: `x-kubernetes-group-version-kind` on the kinds and
//! their operations, patch media types and the `fieldValidation` parameter.

use std::collections::BTreeMap;

use k8s_openapi::schemars::r#gen::SchemaSettings;
use serde_json::{Map, Value, json};

use super::discovery::KUBERNETES_MINOR;
use super::resources::{Registry, ResourceType};

/// The OpenAPI documents of every group version, ready to serve.
pub struct OpenApi {
    /// By path (`api/v1`, `apis/apps/v1`): the document and its hash.
    documents: BTreeMap<String, (String, Vec<u8>)>,
}

impl OpenApi {
    /// Generates every document of `registry`.
    pub fn build(registry: &Registry) -> Self {
        let mut documents = BTreeMap::new();
        for (group, versions) in registry.groups() {
            for version in versions {
                let path = if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") };
                let document = group_version_document(registry, group, version);
                let bytes = serde_json::to_vec(&document).expect("a JSON value always serializes");
                let hash = blake3::hash(&bytes).to_hex().to_ascii_uppercase();
                documents.insert(path, (hash, bytes));
            }
        }
        Self { documents }
    }

    /// `/openapi/v3`: where each group version's document is.
    pub fn index(&self) -> Value {
        let paths: Map<String, Value> = self
            .documents
            .iter()
            .map(|(path, (hash, _))| {
                (path.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}") }))
            })
            .collect();
        json!({ "paths": paths })
    }

    /// The document at `path` (`api/v1`, `apis/apps/v1`).
    pub fn document(&self, path: &str) -> Option<&[u8]> {
        self.documents.get(path.trim_matches('/')).map(|(_, bytes)| bytes.as_slice())
    }
}

fn group_version_document(registry: &Registry, group: &str, version: &str) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    let mut kinds = Vec::new();
    for t in registry.in_group_version(group, version) {
        t.register_schema(&mut generator);
        kinds.push((t.schema_name(), t));
        add_paths(&mut paths, t);
    }
    let mut schemas: Map<String, Value> = generator
        .take_definitions()
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or(Value::Null)))
        .collect();
    for (name, t) in kinds {
        if let Some(custom) = t.custom_schema() {
            schemas.insert(name.clone(), custom);
        }
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk(t)]));
        }
    }
    schemas.insert(
        PATCH_SCHEMA.into(),
        json!({
            "type": "object",
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
        }),
    );
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0") },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

const PATCH_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

fn gvk(t: &ResourceType) -> Value {
    json!({ "group": t.group, "version": t.version, "kind": t.kind })
}

fn add_paths(paths: &mut Map<String, Value>, t: &ResourceType) {
    let base =
        if t.group.is_empty() { format!("/api/{}", t.version) } else { format!("/apis/{}/{}", t.group, t.version) };
    let collection = if t.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", t.plural)
    } else {
        format!("{base}/{}", t.plural)
    };
    let item = format!("{collection}/{{name}}");
    let schema = json!({ "$ref": format!("#/components/schemas/{}", t.schema_name()) });
    let mut path_parameters = vec![];
    if t.namespaced {
        path_parameters.push(path_parameter("namespace", "object name and auth scope, such as for teams and projects"));
    }
    let write_parameters = |extra: &[Value]| {
        let mut parameters = path_parameters.clone();
        parameters.extend([
            query_parameter("dryRun", "When present, indicates that modifications should not be persisted."),
            query_parameter("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
            query_parameter("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict."),
        ]);
        parameters.extend_from_slice(extra);
        parameters
    };
    let operation = |action: &str, verb: &str, parameters: Vec<Value>, body: Option<Value>| {
        let mut op = json!({
            "operationId": format!("{verb}{}", t.kind),
            "parameters": parameters,
            "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": schema } } } },
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk(t),
        });
        if let Some(body) = body {
            op["requestBody"] = body;
        }
        op
    };
    let json_body = json!({ "content": { "application/json": { "schema": schema } }, "required": true });
    let patch_schema = json!({ "$ref": format!("#/components/schemas/{PATCH_SCHEMA}") });
    // Strategic merge patch is left out on purpose: kubectl then computes
    // strategic patches of the built-in kinds from its own merge keys.
    let patch_body = json!({
        "content": {
            "application/apply-patch+yaml": { "schema": patch_schema },
            "application/json-patch+json": { "schema": patch_schema },
            "application/merge-patch+json": { "schema": patch_schema },
        },
        "required": true,
    });
    let mut item_parameters = path_parameters.clone();
    item_parameters.insert(0, path_parameter("name", &format!("name of the {}", t.kind)));
    let item_write = |extra: &[Value]| {
        let mut parameters = write_parameters(extra);
        parameters.insert(0, path_parameter("name", &format!("name of the {}", t.kind)));
        parameters
    };
    let force = query_parameter("force", "Force is going to \"force\" Apply requests.");
    paths.insert(
        collection.clone(),
        json!({
            "get": operation("list", "list", path_parameters.clone(), None),
            "post": operation("post", "create", write_parameters(&[]), Some(json_body.clone())),
        }),
    );
    paths.insert(
        item,
        json!({
            "get": operation("get", "read", item_parameters.clone(), None),
            "put": operation("put", "replace", item_write(&[]), Some(json_body)),
            "patch": operation("patch", "patch", item_write(&[force]), Some(patch_body)),
            "delete": operation("delete", "delete", item_write(&[]), None),
        }),
    );
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": { "type": "string", "uniqueItems": true },
    })
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": "string", "uniqueItems": true },
    })
}

/// What a request accepting a protobuf OpenAPI v2 document names (kubectl
/// asks for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`).
pub const V2_PROTOBUF_ACCEPTED: &str = "application/com.github.proto-openapi.spec.v2";

/// The media type a protobuf OpenAPI v2 document is sent as (the form
/// without `@`, which Go's media type parser refuses).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: a Swagger 2.0 document that defines no kinds, as
/// protobuf (gnostic's `openapi_v2.Document`) or JSON. kubectl reads it
/// only to check on the client what the server cannot check for it (the
/// items of a `List`); finding no schema for a kind, it leaves each item to
/// the server's field validation, which the v3 documents announce.
pub fn legacy_document(protobuf: bool) -> Vec<u8> {
    let version = format!("v1.{KUBERNETES_MINOR}.0");
    if !protobuf {
        let document = json!({"swagger": "2.0", "info": {"title": "engenho", "version": version}, "paths": {}});
        return serde_json::to_vec(&document).expect("a JSON value always serializes");
    }
    let mut info = Vec::new();
    length_delimited(&mut info, 1, b"engenho");
    length_delimited(&mut info, 2, version.as_bytes());
    let mut document = Vec::new();
    length_delimited(&mut document, 1, b"2.0");
    length_delimited(&mut document, 2, &info);
    length_delimited(&mut document, 8, &[]);
    document
}

/// Appends field `tag` of a protobuf message: `bytes`, length-delimited.
fn length_delimited(message: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, message);
    prost::encoding::encode_varint(bytes.len() as u64, message);
    message.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_document_is_swagger_two_defining_no_kinds() {
        let version = format!("v1.{KUBERNETES_MINOR}.0");
        let mut info = vec![0x0a, 7];
        info.extend_from_slice(b"engenho");
        info.extend_from_slice(&[0x12, u8::try_from(version.len()).expect("short")]);
        info.extend_from_slice(version.as_bytes());
        let mut expected = vec![0x0a, 3, b'2', b'.', b'0', 0x12, u8::try_from(info.len()).expect("short")];
        expected.extend_from_slice(&info);
        expected.extend_from_slice(&[0x42, 0]);
        assert_eq!(legacy_document(true), expected);
        let json: Value = serde_json::from_slice(&legacy_document(false)).expect("JSON");
        assert_eq!(json["swagger"], "2.0");
        assert!(json.get("definitions").is_none());
    }

    #[test]
    fn documents_carry_what_kubectl_needs() {
        let openapi = OpenApi::build(&Registry::built_in());
        let index = openapi.index();
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().expect("apps/v1");
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let document: Value = serde_json::from_slice(openapi.document("api/v1").expect("core")).expect("json");
        let patch = &document["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "ConfigMap"})
        );
        assert!(patch["parameters"].as_array().expect("parameters").iter().any(|p| p["name"] == "fieldValidation"));
        assert!(patch["requestBody"]["content"]["application/merge-patch+json"].is_object());
        let pod = &document["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert!(pod["description"].as_str().is_some_and(|d| !d.is_empty()));
        let containers = &document["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert!(containers["description"].as_str().is_some_and(|d| d.contains("containers")));
        assert!(document["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
        assert!(document["paths"]["/api/v1/nodes/{name}"]["get"].is_object());
    }
}
