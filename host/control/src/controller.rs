//! Control loops: while this node leads the cluster, a loop subscribes to
//! its informers, queues the keys their changes touch (and every key at
//! each resync), and reconciles them with a fixed number of workers. When
//! leadership moves away the loop stops taking keys, lets the reconciles in
//! flight finish, and drops its queue: the next leader starts from its own
//! caches.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::informer::Subscription;
use crate::metrics::ControllerMetrics;
use crate::queue::WorkQueue;

/// What became of one reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Done until something queues the key again.
    Done,
    /// Reconcile the key again after this long.
    RequeueAfter(Duration),
    /// Failed; retried with backoff.
    Retry(String),
}

/// A control loop's decisions.
pub trait Reconciler: Send + Sync + 'static {
    /// What the loop reconciles.
    type Key: Clone + Eq + Hash + Send + Sync + Debug + 'static;

    /// Subscribes to the informers whose changes queue keys on `queue`;
    /// called as each term of leadership starts, the subscriptions held
    /// while it lasts.
    fn watch(self: &Arc<Self>, queue: &Arc<WorkQueue<Self::Key>>) -> Vec<Subscription>;

    /// Every key a resync queues.
    fn resync(&self) -> Vec<Self::Key>;

    /// Brings `key` toward its desired state.
    fn reconcile(&self, key: &Self::Key) -> impl Future<Output = Action> + Send;
}

/// A loop that brings everything it keeps in line at once: any change of
/// the informers it follows queues its one key, as does each resync.
pub struct Whole<F> {
    informers: Vec<Arc<crate::Informer>>,
    work: F,
}

impl<F> Whole<F> {
    /// A loop calling `work` after changes of `informers`.
    pub fn new(informers: Vec<Arc<crate::Informer>>, work: F) -> Self {
        Self { informers, work }
    }
}

impl<F, Fut> Reconciler for Whole<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Action> + Send,
{
    type Key = ();

    fn watch(self: &Arc<Self>, queue: &Arc<WorkQueue<()>>) -> Vec<Subscription> {
        self.informers
            .iter()
            .map(|informer| {
                let queue = queue.clone();
                informer.subscribe(move |_| {
                    queue.add(());
                })
            })
            .collect()
    }

    fn resync(&self) -> Vec<()> {
        vec![()]
    }

    fn reconcile(&self, (): &()) -> impl Future<Output = Action> + Send {
        (self.work)()
    }
}

/// How a loop runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Its name, for logs and metrics.
    pub name: String,
    /// Reconciles at once (of different keys).
    pub workers: usize,
    /// How often every key is queued again.
    pub resync: Duration,
    /// Distinct keys its queue holds at most.
    pub queue_capacity: usize,
}

impl Settings {
    /// A loop named `name` with `workers` workers, a resync every
    /// `resync`, and a queue of 100,000 keys.
    pub fn new(name: &str, workers: usize, resync: Duration) -> Self {
        Self { name: name.to_owned(), workers: workers.max(1), resync, queue_capacity: 100_000 }
    }
}

/// Runs `reconciler` during every term of leadership `leadership` reports,
/// until `stop` turns true.
pub async fn run<R: Reconciler>(
    reconciler: Arc<R>,
    settings: Settings,
    metrics: Arc<ControllerMetrics>,
    leadership: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    lead(leadership, stop, |term_over| {
        let reconciler = reconciler.clone();
        let settings = settings.clone();
        let metrics = metrics.clone();
        async move { run_term(reconciler, &settings, metrics, term_over).await }
    })
    .await;
}

/// A leadership that always holds: for loops every node runs (those that
/// keep what the node itself serves current).
pub fn everywhere() -> watch::Receiver<bool> {
    watch::channel(true).1
}

/// Calls `term` each time this node starts leading, with a receiver that
/// turns true when it stops leading (or `stop` turns true), and waits for
/// it to return; returns once `stop` turns true.
pub async fn lead<F, Fut>(mut leadership: watch::Receiver<bool>, mut stop: watch::Receiver<bool>, mut term: F)
where
    F: FnMut(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            led = leadership.wait_for(|leading| *leading) => if led.is_err() { return },
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let (end, term_over) = watch::channel(false);
        let running = term(term_over);
        tokio::pin!(running);
        // A leadership whose sender is gone never changes again.
        let lost = async {
            if leadership.wait_for(|leading| !*leading).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let stopping = tokio::select! {
            () = &mut running => false,
            () = lost => false,
            _ = stop.wait_for(|stopped| *stopped) => true,
        };
        end.send_replace(true);
        running.await;
        if stopping || *stop.borrow() {
            return;
        }
    }
}

async fn run_term<R: Reconciler>(
    reconciler: Arc<R>,
    settings: &Settings,
    metrics: Arc<ControllerMetrics>,
    mut term_over: watch::Receiver<bool>,
) {
    tracing::info!(controller = %settings.name, "leading: the loop starts");
    let queue = Arc::new(WorkQueue::new(settings.queue_capacity, metrics.queue.clone()));
    let subscriptions = reconciler.watch(&queue);
    let workers: Vec<_> =
        (0..settings.workers).map(|_| tokio::spawn(work(reconciler.clone(), queue.clone(), metrics.clone()))).collect();
    let mut resync = tokio::time::interval(settings.resync);
    resync.tick().await;
    loop {
        tokio::select! {
            _ = resync.tick() => {
                for key in reconciler.resync() {
                    queue.add(key);
                }
            }
            _ = term_over.wait_for(|over| *over) => break,
        }
    }
    drop(subscriptions);
    queue.shut_down();
    for worker in workers {
        let _ = worker.await;
    }
    tracing::info!(controller = %settings.name, "no longer leading: the loop stopped");
}

async fn work<R: Reconciler>(reconciler: Arc<R>, queue: Arc<WorkQueue<R::Key>>, metrics: Arc<ControllerMetrics>) {
    while let Some(key) = queue.next().await {
        let started = Instant::now();
        let action = reconciler.reconcile(&key).await;
        metrics.reconcile_time.observe(started.elapsed());
        metrics.reconciles.inc();
        match action {
            Action::Done => queue.forget(&key),
            Action::RequeueAfter(after) => {
                queue.forget(&key);
                queue.add_after(key.clone(), after);
            }
            Action::Retry(reason) => {
                metrics.errors.inc();
                tracing::debug!(?key, %reason, "a reconcile failed; retrying with backoff");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts reconciles; fails a key its first `failures` times.
    struct Counting {
        seen: Mutex<Vec<u32>>,
        running: AtomicUsize,
        overlapped: AtomicUsize,
        failures: u32,
    }

    impl Reconciler for Counting {
        type Key = u32;

        fn watch(self: &Arc<Self>, queue: &Arc<WorkQueue<u32>>) -> Vec<Subscription> {
            for key in 0..4 {
                queue.add(key);
            }
            Vec::new()
        }

        fn resync(&self) -> Vec<u32> {
            Vec::new()
        }

        async fn reconcile(&self, key: &u32) -> Action {
            if self.running.fetch_add(1, Ordering::SeqCst) > 0 {
                self.overlapped.fetch_add(1, Ordering::SeqCst);
            }
            tokio::task::yield_now().await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            let mut seen = self.seen.lock().expect("lock");
            seen.push(*key);
            let tries = u32::try_from(seen.iter().filter(|k| *k == key).count()).expect("few");
            if tries <= self.failures { Action::Retry("not yet".into()) } else { Action::Done }
        }
    }

    #[tokio::test]
    async fn a_loop_runs_while_leading_and_retries_failures() {
        let (leader, leadership) = watch::channel(false);
        let (stopper, stop) = watch::channel(false);
        let reconciler = Arc::new(Counting {
            seen: Mutex::default(),
            running: AtomicUsize::new(0),
            overlapped: AtomicUsize::new(0),
            failures: 2,
        });
        let metrics = Arc::new(ControllerMetrics::default());
        let settings = Settings::new("counting", 1, Duration::from_secs(3600));
        let running = tokio::spawn(run(reconciler.clone(), settings, metrics.clone(), leadership, stop));
        tokio::task::yield_now().await;
        assert!(reconciler.seen.lock().expect("lock").is_empty(), "nothing runs before leading");
        leader.send_replace(true);
        let deadline = Instant::now() + Duration::from_secs(5);
        while reconciler.seen.lock().expect("lock").len() < 12 {
            assert!(Instant::now() < deadline, "every key reconciled three times");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(reconciler.overlapped.load(Ordering::SeqCst), 0, "one worker: no overlap");
        assert_eq!(metrics.errors.get(), 8);
        leader.send_replace(false);
        stopper.send_replace(true);
        running.await.expect("the loop ends");
    }
}
