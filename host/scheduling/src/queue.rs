//! The scheduling queue, as kube-scheduler's: pods waiting for a node, the
//! highest priority first (then the longest waiting); pods that found no
//! node wait aside until the cluster changes in a way that could help them
//! (then after a back-off that doubles with each attempt), or for at most
//! [`UNSCHEDULABLE_WAIT_MAX`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// The back-off after a pod's first failed attempt.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);

/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The longest an unschedulable pod waits for a change before it is tried
/// again anyway.
pub const UNSCHEDULABLE_WAIT_MAX: Duration = Duration::from_secs(300);

/// How often taking a pod looks for pods that have waited aside the
/// longest: a look reads every queued pod, so not at every take.
const UNSCHEDULABLE_LOOK_INTERVAL: Duration = Duration::from_secs(1);

/// Where a queued pod waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Ready to be tried.
    Active,
    /// Tried and failed; ready again at this instant.
    Backoff(Instant),
    /// Found no node; waits for a change since this instant.
    Unschedulable(Instant),
    /// Being tried now.
    InFlight,
}

#[derive(Debug)]
struct Queued {
    priority: i32,
    /// When it first entered the queue: the older first among equals.
    since: u64,
    attempts: u32,
    place: Place,
    /// Bumped at each move, so that stale heap entries are skipped.
    generation: u64,
    /// A change came while it was in flight: if it fails, try it again
    /// at once rather than setting it aside.
    changed_in_flight: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Ready {
    priority: i32,
    since: u64,
    uid: String,
    generation: u64,
}

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| other.since.cmp(&self.since))
    }
}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The queue of pods waiting for a node, by uid.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    pods: HashMap<String, Queued>,
    active: BinaryHeap<Ready>,
    backoff: BinaryHeap<Reverse<(Instant, String, u64)>>,
    arrivals: u64,
    /// When pods waiting aside were last looked at.
    unschedulable_looked_at: Option<Instant>,
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pods queued, in any place.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is queued.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Pods ready to be tried now (some may be stale until popped).
    pub fn active_len(&self) -> usize {
        self.pods.values().filter(|q| q.place == Place::Active).count()
    }

    /// Queues pod `uid` of `priority`, new or changed: a new pod is ready at
    /// once; a changed one that was set aside is tried again (after its
    /// back-off); one in flight is tried again if its attempt fails.
    pub fn add_or_update(&mut self, uid: &str, priority: i32, now: Instant) {
        match self.pods.get_mut(uid) {
            None => {
                self.arrivals += 1;
                let queued = Queued {
                    priority,
                    since: self.arrivals,
                    attempts: 0,
                    place: Place::Active,
                    generation: 0,
                    changed_in_flight: false,
                };
                self.pods.insert(uid.to_owned(), queued);
                self.push_active(uid);
            }
            Some(queued) => {
                queued.priority = priority;
                match queued.place {
                    Place::InFlight => queued.changed_in_flight = true,
                    Place::Unschedulable(_) => self.wake(uid, now),
                    Place::Active | Place::Backoff(_) => {}
                }
            }
        }
    }

    /// Forgets pod `uid` (bound, deleted, or no longer this scheduler's).
    pub fn remove(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// The next pod to try, if one is ready at `now`; it is in flight until
    /// [`SchedulingQueue::done`] or [`SchedulingQueue::failed`].
    pub fn pop(&mut self, now: Instant) -> Option<String> {
        while let Some(Reverse((at, _, _))) = self.backoff.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, uid, generation))) = self.backoff.pop() else { break };
            if let Some(queued) = self.pods.get_mut(&uid)
                && queued.generation == generation
                && matches!(queued.place, Place::Backoff(_))
            {
                queued.place = Place::Active;
                self.push_active(&uid);
            }
        }
        self.flush_unschedulable(now);
        while let Some(ready) = self.active.pop() {
            if let Some(queued) = self.pods.get_mut(&ready.uid)
                && queued.generation == ready.generation
                && queued.place == Place::Active
            {
                queued.place = Place::InFlight;
                queued.generation += 1;
                queued.changed_in_flight = false;
                return Some(ready.uid);
            }
        }
        None
    }

    /// When the next pod in back-off is ready, if any waits.
    pub fn next_ready_at(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pod `uid` was placed: it leaves the queue.
    pub fn done(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// Pod `uid` found no node, or its binding failed: it waits aside for a
    /// change (`unschedulable`) or backs off.
    pub fn failed(&mut self, uid: &str, unschedulable: bool, now: Instant) {
        let Some(queued) = self.pods.get_mut(uid) else { return };
        queued.attempts = queued.attempts.saturating_add(1);
        queued.generation += 1;
        if unschedulable && !queued.changed_in_flight {
            queued.place = Place::Unschedulable(now);
        } else {
            let at = now + backoff(queued.attempts);
            queued.place = Place::Backoff(at);
            self.backoff.push(Reverse((at, uid.to_owned(), queued.generation)));
        }
    }

    /// Pod `uid`'s attempt failed through no fault of its own (the profile
    /// it ran went back to an earlier version): it is tried again at once,
    /// the attempt not counted.
    pub fn retry(&mut self, uid: &str) {
        let Some(queued) = self.pods.get_mut(uid) else { return };
        if queued.place != Place::InFlight {
            return;
        }
        queued.generation += 1;
        queued.place = Place::Active;
        self.push_active(uid);
    }

    /// The cluster changed in a way that could help pods that found no
    /// node: every one of them is tried again, after its back-off.
    pub fn cluster_changed(&mut self, now: Instant) {
        let waiting: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| matches!(q.place, Place::Unschedulable(_)))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in waiting {
            self.wake(&uid, now);
        }
        for queued in self.pods.values_mut() {
            if queued.place == Place::InFlight {
                queued.changed_in_flight = true;
            }
        }
    }

    fn flush_unschedulable(&mut self, now: Instant) {
        if self
            .unschedulable_looked_at
            .is_some_and(|at| now.saturating_duration_since(at) < UNSCHEDULABLE_LOOK_INTERVAL)
        {
            return;
        }
        self.unschedulable_looked_at = Some(now);
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| {
                matches!(q.place, Place::Unschedulable(since) if now.duration_since(since) >= UNSCHEDULABLE_WAIT_MAX)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            self.wake(&uid, now);
        }
    }

    /// Moves a pod that waits aside to back-off (what remains of it) or to
    /// the ready pods.
    fn wake(&mut self, uid: &str, now: Instant) {
        let Some(queued) = self.pods.get_mut(uid) else { return };
        queued.generation += 1;
        let Place::Unschedulable(since) = queued.place else { return };
        let at = since + backoff(queued.attempts);
        if at > now {
            queued.place = Place::Backoff(at);
            self.backoff.push(Reverse((at, uid.to_owned(), queued.generation)));
        } else {
            queued.place = Place::Active;
            self.push_active(uid);
        }
    }

    fn push_active(&mut self, uid: &str) {
        if let Some(queued) = self.pods.get(uid) {
            self.active.push(Ready {
                priority: queued.priority,
                since: queued.since,
                uid: uid.to_owned(),
                generation: queued.generation,
            });
        }
    }
}

/// The back-off after `attempts` failed attempts: 1 s, doubling, at most
/// 10 s.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    BACKOFF_INITIAL.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn higher_priority_first_then_the_oldest() {
        let mut queue = SchedulingQueue::new();
        let now = Instant::now();
        queue.add_or_update("low", 0, now);
        queue.add_or_update("high", 100, now);
        queue.add_or_update("low2", 0, now);
        assert_eq!(queue.pop(now).as_deref(), Some("high"));
        assert_eq!(queue.pop(now).as_deref(), Some("low"));
        assert_eq!(queue.pop(now).as_deref(), Some("low2"));
        assert_eq!(queue.pop(now), None);
    }

    #[test]
    fn an_unschedulable_pod_waits_for_a_change_then_its_back_off() {
        let mut queue = SchedulingQueue::new();
        let now = Instant::now();
        queue.add_or_update("p", 0, now);
        assert_eq!(queue.pop(now).as_deref(), Some("p"));
        queue.failed("p", true, now);
        assert_eq!(queue.pop(now + Duration::from_secs(60)), None, "no change, no retry");
        queue.cluster_changed(now + Duration::from_millis(100));
        assert_eq!(queue.pop(now + Duration::from_millis(200)), None, "still backing off");
        assert_eq!(queue.next_ready_at(), Some(now + BACKOFF_INITIAL));
        assert_eq!(queue.pop(now + BACKOFF_INITIAL).as_deref(), Some("p"));
    }

    #[test]
    fn a_retried_pod_is_ready_at_once_and_its_attempt_not_counted() {
        let mut queue = SchedulingQueue::new();
        let now = Instant::now();
        queue.add_or_update("p", 0, now);
        queue.retry("p");
        assert_eq!(queue.pop(now).as_deref(), Some("p"), "only a pod in flight is retried");
        assert_eq!(queue.pop(now), None);
        queue.retry("p");
        assert_eq!(queue.pop(now).as_deref(), Some("p"));
        queue.failed("p", false, now);
        assert_eq!(queue.next_ready_at(), Some(now + BACKOFF_INITIAL), "the first counted attempt");
    }

    #[test]
    fn a_change_while_in_flight_retries_after_back_off_instead_of_waiting() {
        let mut queue = SchedulingQueue::new();
        let now = Instant::now();
        queue.add_or_update("p", 0, now);
        queue.pop(now);
        queue.cluster_changed(now);
        queue.failed("p", true, now);
        assert_eq!(queue.pop(now + BACKOFF_INITIAL).as_deref(), Some("p"));
    }

    /// A queue whose one pod, `p`, found no node at `now`.
    fn one_pod_set_aside(now: Instant) -> SchedulingQueue {
        let mut queue = SchedulingQueue::new();
        queue.add_or_update("p", 0, now);
        queue.pop(now);
        queue.failed("p", true, now);
        queue
    }

    #[test]
    fn unschedulable_pods_are_tried_again_after_the_longest_wait() {
        let now = Instant::now();
        let mut queue = one_pod_set_aside(now);
        assert_eq!(queue.pop(now + UNSCHEDULABLE_WAIT_MAX).as_deref(), Some("p"));
    }

    #[test]
    fn pods_waiting_aside_are_looked_at_once_a_second_at_most() {
        // Goal: taking pods does not read every queued pod each time; a
        // pod whose longest wait ended is taken within the interval.
        let now = Instant::now();
        let mut queue = one_pod_set_aside(now);
        let due = now + UNSCHEDULABLE_WAIT_MAX;
        assert_eq!(queue.pop(due - Duration::from_millis(1)), None);
        assert_eq!(queue.pop(due), None, "looked at a millisecond ago");
        assert_eq!(queue.pop(due + UNSCHEDULABLE_LOOK_INTERVAL).as_deref(), Some("p"));
    }

    #[test]
    fn back_off_doubles_up_to_its_bound() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    proptest! {
        /// Whatever happens, a pod is popped at most once until it fails,
        /// and every queued pod comes out in time.
        #[test]
        fn every_pod_comes_out_once_per_attempt(ops in proptest::collection::vec((0u8..4, 0usize..6, -5i32..5), 1..80)) {
            let mut queue = SchedulingQueue::new();
            let start = Instant::now();
            let mut in_flight: Vec<String> = Vec::new();
            for (step, (op, pod, priority)) in ops.into_iter().enumerate() {
                let now = start + Duration::from_millis(step as u64 * 100);
                let uid = format!("p{pod}");
                match op {
                    0 => queue.add_or_update(&uid, priority, now),
                    1 => if let Some(popped) = queue.pop(now) {
                        prop_assert!(!in_flight.contains(&popped), "{popped} popped twice");
                        in_flight.push(popped);
                    },
                    2 => if let Some(uid) = in_flight.pop() { queue.failed(&uid, priority > 0, now) },
                    _ => { queue.cluster_changed(now); }
                }
            }
            for uid in in_flight.drain(..) {
                queue.done(&uid);
            }
            let later = start + Duration::from_secs(100_000);
            queue.cluster_changed(later);
            let mut seen = 0;
            while queue.pop(later + BACKOFF_MAX).is_some() {
                seen += 1;
            }
            prop_assert_eq!(seen, queue.len());
        }
    }
}
