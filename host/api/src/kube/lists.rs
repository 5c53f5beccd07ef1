//! Lists: read from the store a bounded chunk at a time. A list with a
//! `limit` answers one page (fewer items when they reach
//! [`LIST_PAGE_BYTES_MAX`], with a `continue` token as Kubernetes allows); a
//! list without one streams its items chunk by chunk, all read at one
//! revision, so no request makes the server hold a whole collection.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::objects::{Chunk, ObjectStore};
use super::resources::ResourceType;
use super::selectors::Selector;
use super::status::ApiError;
use super::table;

/// Encoded bytes of the items of one page past which it ends early, with a
/// `continue` token for the rest.
pub const LIST_PAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// One page of a list.
pub struct Page {
    /// The selected objects.
    pub items: Vec<Value>,
    /// The revision every page of this list is read at.
    pub revision: i64,
    /// The token for the next page, if there may be one.
    pub next: Option<String>,
}

/// How a list request is answered.
pub enum Listing {
    /// One page (the request named a `limit` or a `continue` token).
    Page(Page),
    /// Every selected object, streamed; the first chunk is already read.
    Stream(Chunk),
}

/// What a list request asks for.
pub struct ListRequest<'a> {
    /// The kind listed.
    pub t: &'a ResourceType,
    /// The namespace, if the list is namespaced.
    pub namespace: Option<&'a str>,
    /// Which objects.
    pub selector: &'a Selector,
    /// The request's query parameters.
    pub query: &'a HashMap<String, String>,
}

/// Reads what a list request answers with: a page, or the first chunk of a
/// stream.
///
/// # Errors
/// A malformed `limit` or `continue`; 410 when `continue` names a compacted
/// revision; store failures.
pub async fn list(objects: &ObjectStore, request: &ListRequest<'_>) -> Result<Listing, ApiError> {
    let limit = match request.query.get("limit").map(|v| v.parse::<usize>()) {
        Some(Ok(0)) | None => None,
        Some(Ok(limit)) => Some(limit),
        Some(Err(_)) => return Err(ApiError::bad_request("limit must be a non-negative integer")),
    };
    let token = request.query.get("continue").filter(|c| !c.is_empty());
    let (revision, after) = match token {
        Some(token) => {
            let (revision, after) = decode_continue(token)?;
            if !after.starts_with(&request.t.key_prefix(request.namespace)) {
                return Err(ApiError::bad_request("continue key is not valid"));
            }
            (revision, Some(after))
        }
        None => {
            objects.read_barrier().await?;
            (0, None)
        }
    };
    let first = objects.list_chunk(request.t, request.namespace, revision, after.as_deref()).map_err(|error| {
        if error.code == 410 && token.is_some() {
            ApiError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a \
                 new list without the continue parameter.",
            )
        } else {
            error
        }
    })?;
    match (limit, token) {
        (None, None) => Ok(Listing::Stream(first)),
        (limit, _) => page(objects, request, first, limit.unwrap_or(usize::MAX)).map(Listing::Page),
    }
}

/// Collects up to `limit` selected objects (or [`LIST_PAGE_BYTES_MAX`] of
/// them), reading chunk after chunk from `chunk` on.
fn page(objects: &ObjectStore, request: &ListRequest<'_>, mut chunk: Chunk, limit: usize) -> Result<Page, ApiError> {
    let revision = chunk.revision;
    let (mut items, mut bytes, mut last_key) = (Vec::new(), 0, None::<String>);
    loop {
        for (key, object, size) in chunk.items {
            if !request.selector.matches(&object) {
                continue;
            }
            if items.len() >= limit || bytes >= LIST_PAGE_BYTES_MAX {
                let next = last_key.map(|last| encode_continue(revision, &last));
                return Ok(Page { items, revision, next });
            }
            items.push(object);
            bytes += size;
            last_key = Some(key);
        }
        let Some(after) = chunk.last_key.filter(|_| chunk.more) else {
            return Ok(Page { items, revision, next: None });
        };
        chunk = objects.list_chunk(request.t, request.namespace, revision, Some(&after))?;
    }
}

/// How each chunk of a streamed list is written.
#[derive(Clone, Copy)]
pub enum StreamFormat {
    /// A `<Kind>List` with `items`.
    List,
    /// A `Table` with `rows`.
    Table(table::Include),
}

/// Streams every selected object of the list, from `first` on: the head of
/// the list, then each chunk's items as they are read, then the end.
pub fn stream(objects: ObjectStore, request: &ListRequest<'_>, first: Chunk, format: StreamFormat) -> Response {
    let (t, namespace, selector) = (request.t.clone(), request.namespace.map(str::to_owned), request.selector.clone());
    let revision = first.revision;
    let (head, field) = match format {
        StreamFormat::List => (
            json!({"kind": t.list_kind, "apiVersion": t.api_version, "metadata": {"resourceVersion": revision.to_string()}}),
            "items",
        ),
        StreamFormat::Table(include) => {
            let mut head = table::of(&t, &[], revision, include);
            if let Some(fields) = head.as_object_mut() {
                fields.remove("rows");
            }
            (head, "rows")
        }
    };
    let opening = open_array(&head, field);
    let state = StreamState { objects, t, namespace, selector, format, next: Some(first), written: 0 };
    let chunks = futures::stream::unfold(state, |mut state| async move {
        let chunk = state.next.take()?;
        let (revision, after) = (chunk.revision, chunk.last_key.clone().filter(|_| chunk.more));
        let mut bytes = state.encode(chunk);
        match after {
            None => bytes.extend_from_slice(b"]}"),
            Some(after) => {
                let namespace = state.namespace.as_deref();
                match state.objects.list_chunk(&state.t, namespace, revision, Some(&after)) {
                    Ok(next) => state.next = Some(next),
                    Err(error) => return Some((Err(std::io::Error::other(error.message)), state)),
                }
            }
        }
        Some((Ok(Bytes::from(bytes)), state))
    });
    let body = futures::StreamExt::chain(futures::stream::once(async move { Ok(Bytes::from(opening)) }), chunks);
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response()
}

/// `head` encoded with its closing brace replaced by `,"<field>":[`.
fn open_array(head: &Value, field: &str) -> Vec<u8> {
    let mut encoded = serde_json::to_vec(head).expect("JSON values encode into memory");
    debug_assert_eq!(encoded.last(), Some(&b'}'));
    encoded.pop();
    let separator: &[u8] = if encoded.len() > 1 { b"," } else { b"" };
    encoded.extend_from_slice(separator);
    encoded.extend_from_slice(format!("\"{field}\":[").as_bytes());
    encoded
}

/// Where a streamed list is.
struct StreamState {
    objects: ObjectStore,
    t: ResourceType,
    namespace: Option<String>,
    selector: Selector,
    format: StreamFormat,
    next: Option<Chunk>,
    written: usize,
}

impl StreamState {
    /// The selected objects of `chunk` as array elements, each after a
    /// comma but the very first.
    fn encode(&mut self, chunk: Chunk) -> Vec<u8> {
        let selected: Vec<Value> =
            chunk.items.into_iter().map(|(_, object, _)| object).filter(|o| self.selector.matches(o)).collect();
        let elements = match self.format {
            StreamFormat::List => selected,
            StreamFormat::Table(include) => match table::of(&self.t, &selected, chunk.revision, include) {
                Value::Object(mut table) => match table.remove("rows") {
                    Some(Value::Array(rows)) => rows,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            },
        };
        let mut encoded = Vec::new();
        for element in &elements {
            if self.written > 0 {
                encoded.push(b',');
            }
            serde_json::to_writer(&mut encoded, element).expect("JSON values encode into memory");
            self.written += 1;
        }
        encoded
    }
}

fn encode_continue(revision: i64, after: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{revision}\n{after}"))
}

fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    use base64::Engine;
    let invalid = || ApiError::bad_request("continue key is not valid");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (revision, after) = text.split_once('\n').ok_or_else(invalid)?;
    Ok((revision.parse().map_err(|_| invalid())?, after.to_owned()))
}
