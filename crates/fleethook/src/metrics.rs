//! Prometheus metrics of the delivery engine, rendered as OpenMetrics text for `GET /metrics`.
//!
//! Metrics are recorded by the dispatcher as it works; nothing here reads the store, so a scrape
//! costs no database round trip (the outbox depth gauge is refreshed by the dispatcher).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::model::Outcome;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type OutcomeLabel = [(&'static str, &'static str); 1];

/// The platform's metrics registry and the handles that record into it.
pub struct Metrics {
    registry: Registry,
    deliveries: Family<OutcomeLabel, Counter>,
    attempt_duration: Histogram,
    outbox_depth: Gauge,
    write_busy: Counter<f64, AtomicU64>,
    /// The store's write-busy total the counter has reached, in nanoseconds.
    write_busy_seen_ns: AtomicU64,
}

impl Metrics {
    /// A registry with every fleethook metric registered at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let deliveries = Family::<OutcomeLabel, Counter>::default();
        // The counter type appends `_total` to the name on encoding.
        registry.register(
            "fleethook_deliveries",
            "Delivery outcomes after each attempt: succeeded, retrying or failed",
            deliveries.clone(),
        );
        // 5 ms up to ~20 s: covers a fast local receiver up to the 15 s timeout.
        let attempt_duration = Histogram::new(exponential_buckets(0.005, 2.0, 13));
        registry.register_with_unit(
            "fleethook_delivery_attempt_duration",
            "Real time taken by one HTTP delivery attempt",
            Unit::Seconds,
            attempt_duration.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "fleethook_outbox_depth",
            "Pending deliveries in the outbox",
            outbox_depth.clone(),
        );
        let write_busy = Counter::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "fleethook_store_write_busy",
            "Time the store's one write connection was held (SQLite; every write waits for it): \
             a rate near 1 means the writes are the limit",
            Unit::Seconds,
            write_busy.clone(),
        );
        // Every outcome is visible from the first scrape, not only after it first happens.
        for outcome in ["succeeded", "retrying", "failed"] {
            let _ = deliveries.get_or_create(&[("outcome", outcome)]);
        }
        Metrics {
            registry,
            deliveries,
            attempt_duration,
            outbox_depth,
            write_busy,
            write_busy_seen_ns: AtomicU64::new(0),
        }
    }

    /// Counts one delivery outcome (`succeeded`, `retrying` or `failed`).
    pub fn record_outcome(&self, outcome: &Outcome) {
        let label = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RetryAt(_) => "retrying",
            Outcome::Failed => "failed",
        };
        self.deliveries.get_or_create(&[("outcome", label)]).inc();
    }

    /// Records how long one HTTP attempt took, in real seconds.
    pub fn observe_attempt_duration(&self, seconds: f64) {
        self.attempt_duration.observe(seconds);
    }

    /// Sets the outbox depth gauge.
    pub fn set_outbox_depth(&self, depth: i64) {
        self.outbox_depth.set(depth);
    }

    /// Moves the write-busy counter up to the store's total (`Store::write_busy`).
    pub fn set_write_busy(&self, total: Duration) {
        let total_ns = u64::try_from(total.as_nanos()).unwrap_or(u64::MAX);
        let seen = self
            .write_busy_seen_ns
            .fetch_max(total_ns, Ordering::Relaxed);
        if total_ns > seen {
            self.write_busy.inc_by((total_ns - seen) as f64 / 1e9);
        }
    }

    /// The current value of the outcome counter, for tests and the dashboard.
    pub fn outcome_count(&self, outcome: &str) -> u64 {
        match outcome_label(outcome) {
            Some(label) => self.deliveries.get_or_create(&[("outcome", label)]).get(),
            None => 0,
        }
    }

    /// Every metric as OpenMetrics text (which Prometheus scrapes natively).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in the encoder.
        if let Err(err) = encode(&mut out, &self.registry) {
            tracing::error!(%err, "cannot encode metrics");
        }
        out
    }
}

/// Maps an outcome name onto the static label set; unknown names have no series.
fn outcome_label(outcome: &str) -> Option<&'static str> {
    match outcome {
        "succeeded" => Some("succeeded"),
        "retrying" => Some("retrying"),
        "failed" => Some("failed"),
        _ => None,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_exposition_name() {
        let metrics = Metrics::new();
        metrics.record_outcome(&Outcome::Succeeded);
        metrics.record_outcome(&Outcome::RetryAt(5));
        metrics.record_outcome(&Outcome::RetryAt(6));
        metrics.observe_attempt_duration(0.02);
        metrics.set_outbox_depth(7);
        metrics.set_write_busy(Duration::from_millis(1_500));
        // A total read before a later one never moves the counter back.
        metrics.set_write_busy(Duration::from_millis(500));
        metrics.set_write_busy(Duration::from_millis(2_500));
        let text = metrics.render();
        assert!(
            text.contains("fleethook_deliveries_total{outcome=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fleethook_deliveries_total{outcome=\"retrying\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fleethook_deliveries_total{outcome=\"failed\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("fleethook_delivery_attempt_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("fleethook_outbox_depth 7"), "{text}");
        assert!(
            text.contains("fleethook_store_write_busy_seconds_total 2.5"),
            "{text}"
        );
        assert_eq!(metrics.outcome_count("retrying"), 2);
    }
}
