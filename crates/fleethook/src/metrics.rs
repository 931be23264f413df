//! Prometheus metrics of the delivery engine, rendered as OpenMetrics text for `GET /metrics`.
//!
//! Metrics are recorded by the dispatcher as it works; nothing here reads the store, so a scrape
//! costs no database round trip (the outbox depth gauge is refreshed by the dispatcher).

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
        // Every outcome is visible from the first scrape, not only after it first happens.
        for outcome in ["succeeded", "retrying", "failed"] {
            let _ = deliveries.get_or_create(&[("outcome", outcome)]);
        }
        Metrics {
            registry,
            deliveries,
            attempt_duration,
            outbox_depth,
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
        assert_eq!(metrics.outcome_count("retrying"), 2);
    }
}
