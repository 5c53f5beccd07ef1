//! `/mesh/status`: the cluster's distribution layer as the node serving
//! the request sees it (raft members and progress, gossip liveness and
//! states), for `engenho mesh status`; `/mesh/chain`: the attested chain
//! as a chain file, for `engenho mesh chain export`. RBAC: `get` on the
//! non-resource paths.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::Value;

use super::handlers::ApiState;
use super::status::ApiError;

/// Describes the node's view of the distribution layer.
pub trait MeshView: Send + Sync {
    /// The view now, as JSON.
    fn status(&self) -> BoxFuture<'static, Value>;

    /// The attested chain as a chain file's text, or why it cannot be read.
    fn chain(&self) -> BoxFuture<'static, Result<String, String>>;
}

/// `GET /mesh/status`.
pub(super) async fn serve(State(state): State<Arc<ApiState>>) -> Response {
    match state.mesh_view.get() {
        Some(view) => axum::Json(view.status().await).into_response(),
        None => ApiError::unavailable("this node does not describe its mesh yet").into_response(),
    }
}

/// `GET /mesh/chain`.
pub(super) async fn serve_chain(State(state): State<Arc<ApiState>>) -> Response {
    let Some(view) = state.mesh_view.get() else {
        return ApiError::unavailable("this node does not describe its mesh yet").into_response();
    };
    match view.chain().await {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(reason) => ApiError::internal(format!("reading the attested chain: {reason}")).into_response(),
    }
}
