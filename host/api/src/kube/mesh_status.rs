//! `/mesh/status`: the cluster's distribution layer as the node serving
//! the request sees it (raft members and progress, gossip liveness and
//! states), for `engenho mesh status`. RBAC: `get` on the non-resource
//! path `/mesh/status`.

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
}

/// `GET /mesh/status`.
pub(super) async fn serve(State(state): State<Arc<ApiState>>) -> Response {
    match state.mesh_view.get() {
        Some(view) => axum::Json(view.status().await).into_response(),
        None => ApiError::unavailable("this node does not describe its mesh yet").into_response(),
    }
}
