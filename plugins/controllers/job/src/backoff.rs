//! The delay before a failed Job's next pod: 10 s, doubling with each
//! failure since the last success, at most 6 minutes (Kubernetes' pod
//! failure backoff), reckoned from the pods that are still there.

use std::time::Duration;

use chrono::{DateTime, Utc};

use engenho_controller::pods::Pod;

use crate::model::JobPod;

/// The delay after the first failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(10);

/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(360);

/// How long to wait before making another pod, given the Job's `pods`.
pub fn remaining(pods: &[Pod], now: DateTime<Utc>) -> Duration {
    let mut finished: Vec<(DateTime<Utc>, bool)> =
        pods.iter().filter(|p| p.is_terminal()).filter_map(|p| p.finished_at().map(|at| (at, p.succeeded()))).collect();
    finished.sort();
    let failures = finished.iter().rev().take_while(|(_, succeeded)| !succeeded).count();
    let Some((last_failure, _)) = finished.last().filter(|_| failures > 0) else { return Duration::ZERO };
    let delay = delay_after(failures);
    let elapsed = (now - *last_failure).to_std().unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

/// The delay after `failures` consecutive failures.
pub fn delay_after(failures: usize) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_controller::meta::format_time;
    use serde_json::json;

    fn pod(phase: &str, finished: DateTime<Utc>) -> Pod {
        serde_json::from_value(json!({"status": {"phase": phase, "containerStatuses": [
            {"restartCount": 0, "state": {"terminated": {"finishedAt": format_time(finished)}}}
        ]}}))
        .expect("a pod")
    }

    #[test]
    fn the_delay_doubles_from_ten_seconds_up_to_six_minutes() {
        assert_eq!(delay_after(1), Duration::from_secs(10));
        assert_eq!(delay_after(2), Duration::from_secs(20));
        assert_eq!(delay_after(6), Duration::from_secs(320));
        assert_eq!(delay_after(7), MAX_DELAY);
        assert_eq!(delay_after(1000), MAX_DELAY);
    }

    #[test]
    fn the_delay_counts_failures_since_the_last_success() {
        let t0 = DateTime::from_timestamp(1_000_000, 0).expect("a time");
        let s = |n| chrono::Duration::seconds(n);
        let pods =
            vec![pod("Failed", t0), pod("Succeeded", t0 + s(1)), pod("Failed", t0 + s(2)), pod("Failed", t0 + s(3))];
        // Two failures after the success: 20 s from the last one.
        assert_eq!(remaining(&pods, t0 + s(8)), Duration::from_secs(15));
        assert_eq!(remaining(&pods, t0 + s(60)), Duration::ZERO);
        let recovered = vec![pod("Failed", t0), pod("Succeeded", t0 + s(1))];
        assert_eq!(remaining(&recovered, t0 + s(1)), Duration::ZERO);
        assert_eq!(remaining(&[], t0), Duration::ZERO);
    }
}
