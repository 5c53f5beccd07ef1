//! Lease expiry, kept by the leader.
//!
//! Lease deadlines are not replicated, as in etcd: the leader keeps them in
//! memory, renews them on keep-alive, and proposes a revoke when one passes.
//! A new leader starts every lease's clock afresh at its full time to live.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the leader looks for expired leases.
pub(crate) const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Most revokes proposed per check, so that a mass expiry is spread out.
pub(crate) const LEASE_REVOKES_PER_CHECK_MAX: usize = 64;

/// Deadlines of leases, valid only while this node leads.
#[derive(Debug, Default)]
pub(crate) struct LeaseClock {
    deadlines: Mutex<BTreeMap<i64, Instant>>,
}

impl LeaseClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Instant>> {
        self.deadlines.lock().expect("lease clock lock poisoned by a panic")
    }

    /// Forgets every deadline (leadership was lost).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Restarts the clock of lease `id` at `ttl` seconds.
    pub(crate) fn renew(&self, id: i64, ttl: i64) {
        let ttl = Duration::from_secs(u64::try_from(ttl.max(1)).unwrap_or(1));
        self.lock().insert(id, Instant::now() + ttl);
    }

    /// Seconds left on lease `id`, if its clock runs.
    pub(crate) fn remaining(&self, id: i64) -> Option<i64> {
        let deadline = *self.lock().get(&id)?;
        let left = deadline.saturating_duration_since(Instant::now());
        Some(i64::try_from(left.as_secs()).unwrap_or(i64::MAX))
    }

    /// Brings the clock in line with the stored leases: starts clocks for
    /// leases it does not know, drops clocks of leases that are gone, and
    /// returns the expired ones (at most [`LEASE_REVOKES_PER_CHECK_MAX`]).
    pub(crate) fn expired(&self, stored: &[(i64, i64)]) -> Vec<i64> {
        let now = Instant::now();
        let mut deadlines = self.lock();
        deadlines.retain(|id, _| stored.iter().any(|(stored_id, _)| stored_id == id));
        let mut expired = Vec::new();
        for &(id, ttl) in stored {
            let ttl = Duration::from_secs(u64::try_from(ttl.max(1)).unwrap_or(1));
            let deadline = *deadlines.entry(id).or_insert(now + ttl);
            if deadline <= now && expired.len() < LEASE_REVOKES_PER_CHECK_MAX {
                expired.push(id);
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_leases_start_at_full_ttl_and_expire_after_it() {
        let clock = LeaseClock::default();
        assert!(clock.expired(&[(7, 60)]).is_empty(), "a fresh lease is not expired");
        assert!(clock.remaining(7).is_some_and(|left| left >= 59));
        clock.lock().insert(7, Instant::now() - Duration::from_secs(1));
        assert_eq!(clock.expired(&[(7, 60)]), vec![7]);
        assert!(clock.expired(&[]).is_empty());
        assert_eq!(clock.remaining(7), None, "clocks of vanished leases are dropped");
    }
}
