//! Metrics of every controller of a node, named as client-go's work queue
//! and controller-runtime's reconciler report them, rendered in the
//! Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A count that only grows.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: usize) {
        self.0.store(value as u64, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the reconcile-time buckets.
pub const DURATION_BUCKETS: [f64; 12] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 10.0];

/// A histogram of durations over [`DURATION_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// What one work queue reports.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    /// Keys waiting to be handed out.
    pub depth: Gauge,
    /// Keys being worked on.
    pub working: Gauge,
    /// Adds, including those of keys already waiting.
    pub adds: Counter,
    /// Retries of failed keys.
    pub retries: Counter,
    /// Keys a full queue refused.
    pub dropped: Counter,
}

/// What one controller reports.
#[derive(Debug, Default)]
pub struct ControllerMetrics {
    /// Its queue.
    pub queue: Arc<QueueMetrics>,
    /// Reconciles finished.
    pub reconciles: Counter,
    /// Reconciles that failed.
    pub errors: Counter,
    /// Reconcile durations.
    pub reconcile_time: Histogram,
}

/// Every controller's metrics on this node, by name.
#[derive(Debug, Default)]
pub struct Registry {
    controllers: Mutex<Vec<(String, Arc<ControllerMetrics>)>>,
}

impl Registry {
    /// The metrics of controller `name`, made on first use.
    pub fn controller(&self, name: &str) -> Arc<ControllerMetrics> {
        let mut controllers = self.controllers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, metrics)) = controllers.iter().find(|(n, _)| n == name) {
            return metrics.clone();
        }
        let metrics = Arc::new(ControllerMetrics::default());
        controllers.push((name.to_owned(), metrics.clone()));
        metrics
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let controllers = self.controllers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut text = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&ControllerMetrics) -> u64| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (controller, metrics) in &controllers {
                let _ = writeln!(text, "{name}{{name=\"{controller}\"}} {}", value(metrics));
            }
        };
        family("workqueue_depth", "gauge", "Current depth of the work queue.", &|m| m.queue.depth.get());
        family("workqueue_unfinished_work", "gauge", "Keys being worked on.", &|m| m.queue.working.get());
        family("workqueue_adds_total", "counter", "Adds handled by the work queue.", &|m| m.queue.adds.get());
        family("workqueue_retries_total", "counter", "Retries handled by the work queue.", &|m| m.queue.retries.get());
        family("workqueue_dropped_total", "counter", "Keys a full work queue refused.", &|m| m.queue.dropped.get());
        family("controller_reconcile_total", "counter", "Reconciles per controller.", &|m| m.reconciles.get());
        family("controller_reconcile_errors_total", "counter", "Failed reconciles per controller.", &|m| {
            m.errors.get()
        });
        let name = "controller_reconcile_time_seconds";
        let _ = writeln!(text, "# HELP {name} Time per reconcile.\n# TYPE {name} histogram");
        for (controller, metrics) in &controllers {
            let histogram = &metrics.reconcile_time;
            for (bound, bucket) in DURATION_BUCKETS.iter().zip(&histogram.buckets) {
                let _ = writeln!(
                    text,
                    "{name}_bucket{{name=\"{controller}\",le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = histogram.count();
            let _ = writeln!(text, "{name}_bucket{{name=\"{controller}\",le=\"+Inf\"}} {count}");
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                text,
                "{name}_sum{{name=\"{controller}\"}} {sum}\n{name}_count{{name=\"{controller}\"}} {count}"
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_per_controller() {
        let registry = Registry::default();
        let metrics = registry.controller("replicaset");
        metrics.queue.adds.inc();
        metrics.reconciles.inc();
        metrics.reconcile_time.observe(Duration::from_millis(2));
        assert!(Arc::ptr_eq(&metrics, &registry.controller("replicaset")));
        let text = registry.render();
        assert!(text.contains("workqueue_adds_total{name=\"replicaset\"} 1"), "{text}");
        assert!(
            text.contains("controller_reconcile_time_seconds_bucket{name=\"replicaset\",le=\"0.0025\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("controller_reconcile_time_seconds_bucket{name=\"replicaset\",le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(text.contains("controller_reconcile_time_seconds_count{name=\"replicaset\"} 1"), "{text}");
    }
}
