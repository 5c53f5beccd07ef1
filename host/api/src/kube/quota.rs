//! Bounds on what one user may hold open: watches, each a long-running
//! request with a store watcher behind it. Past the bound the user gets 429
//! with `Retry-After`, as kube-apiserver's request limits answer; users in
//! `system:masters` are exempt, as from kube-apiserver's priority and
//! fairness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{MASTERS_GROUP, UserInfo};
use super::status::ApiError;

/// Watches one user may have open on this node at once.
pub const WATCHES_PER_USER_MAX: usize = 100;

/// Seconds a client refused for too many watches is asked to wait.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Open watches by user.
#[derive(Default)]
pub struct WatchQuota {
    open: Mutex<HashMap<String, usize>>,
}

/// One open watch, counted against its user until dropped.
pub struct WatchSlot {
    quota: Arc<WatchQuota>,
    user: Option<String>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let Some(user) = self.user.take() else { return };
        let mut open = self.quota.open.lock().expect("the watch quota is never poisoned");
        if let Some(count) = open.get_mut(&user) {
            debug_assert!(*count > 0);
            *count -= 1;
            if *count == 0 {
                open.remove(&user);
            }
        }
    }
}

impl WatchQuota {
    /// A slot for one more watch of `user`.
    ///
    /// # Errors
    /// [`TooManyWatches`] when `user` holds [`WATCHES_PER_USER_MAX`] already.
    pub fn take(self: &Arc<Self>, user: &UserInfo) -> Result<WatchSlot, TooManyWatches> {
        if user.groups.iter().any(|group| group == MASTERS_GROUP) {
            return Ok(WatchSlot { quota: self.clone(), user: None });
        }
        let mut open = self.open.lock().expect("the watch quota is never poisoned");
        let count = open.entry(user.name.clone()).or_default();
        if *count >= WATCHES_PER_USER_MAX {
            return Err(TooManyWatches { user: user.name.clone() });
        }
        *count += 1;
        Ok(WatchSlot { quota: self.clone(), user: Some(user.name.clone()) })
    }
}

/// A watch refused: its user holds [`WATCHES_PER_USER_MAX`] already.
#[derive(Debug)]
pub struct TooManyWatches {
    user: String,
}

impl IntoResponse for TooManyWatches {
    /// 429 `TooManyRequests` with `Retry-After`, as a Kubernetes Status.
    fn into_response(self) -> Response {
        let user = self.user;
        let error = ApiError::too_many_requests(format!(
            "Too many requests: user \"{user}\" has {WATCHES_PER_USER_MAX} watches open on this server, the most one user \
         may hold; please try again later"
        ));
        let mut status = error.to_status();
        status["details"] = serde_json::json!({"retryAfterSeconds": RETRY_AFTER_SECONDS});
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(status)).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_holds_at_most_the_bound_and_dropped_watches_give_their_place_back() {
        let quota = Arc::new(WatchQuota::default());
        let jane = UserInfo { name: "jane".into(), uid: String::new(), groups: vec!["system:authenticated".into()] };
        let joe = UserInfo { name: "joe".into(), ..jane.clone() };
        let mut held: Vec<WatchSlot> = (0..WATCHES_PER_USER_MAX).map(|_| quota.take(&jane).expect("a place")).collect();
        let Err(refused) = quota.take(&jane) else { panic!("a place past the bound") };
        let response = refused.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
        assert!(quota.take(&joe).is_ok(), "another user has places of its own");
        held.pop();
        assert!(quota.take(&jane).is_ok(), "a dropped watch gives its place back");
        let admin = UserInfo::admin();
        let exempt: Vec<WatchSlot> = (0..=WATCHES_PER_USER_MAX).map(|_| quota.take(&admin).expect("exempt")).collect();
        assert_eq!(exempt.len(), WATCHES_PER_USER_MAX + 1);
        drop(held);
        assert!(!quota.open.lock().expect("lock").contains_key("jane"), "no count is left for a user with none");
    }
}
