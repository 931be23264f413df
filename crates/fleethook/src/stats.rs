//! Delivery statistics for the dashboard's charts: attempts per minute by outcome and attempt
//! latency percentiles, computed from the store's attempt log rather than from in-process
//! Prometheus counters, so every node sharing a database shows the same picture.
//!
//! The store counts attempts by webhook, minute, outcome and latency bucket
//! ([`crate::store::Store::attempt_stats`]); the counts are bounded by the window and the
//! bucket list, not by traffic. This module turns them into series and percentiles. The SQL
//! fragments below are plain SQL that SQLite and Postgres read alike, so both stores classify
//! attempts the same way.

use std::collections::BTreeMap;

use crate::clock::Millis;

/// One minute, the width of a chart bar.
pub const MINUTE_MS: Millis = 60_000;

/// Upper bounds (inclusive, in milliseconds) of the latency buckets; the last bucket is open.
/// Fine at the low end, where a healthy receiver answers, coarse up to the 15 s timeout.
pub const LATENCY_BOUNDS_MS: &[i64] = &[
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000,
    3_000, 5_000, 7_500, 10_000, 15_000,
];

/// What came of one attempt, seen from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttemptOutcome {
    /// The receiver took it.
    Succeeded,
    /// It failed and was not the delivery's last word: another attempt followed or is due.
    Retried,
    /// It failed and was the last attempt of a delivery that failed.
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeeded" => Some(AttemptOutcome::Succeeded),
            "retried" => Some(AttemptOutcome::Retried),
            "failed" => Some(AttemptOutcome::Failed),
            _ => None,
        }
    }
}

/// How many attempts of one webhook, started in one minute, had one outcome and a latency in
/// one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCount {
    pub webhook_id: String,
    /// Start of the minute (platform time, a multiple of [`MINUTE_MS`]).
    pub minute: Millis,
    pub outcome: AttemptOutcome,
    /// Index into [`LATENCY_BOUNDS_MS`]; `LATENCY_BOUNDS_MS.len()` is the open last bucket.
    pub latency_bucket: usize,
    pub count: i64,
}

/// SQL for the outcome of an attempt `a` of delivery `d`, as [`AttemptOutcome::parse`] reads
/// it. An attempt without an error succeeded; a failed one is final only when it is the last
/// attempt of a failed delivery.
pub fn outcome_sql(attempt: &str, delivery: &str) -> String {
    format!(
        "CASE WHEN {attempt}.error IS NULL THEN 'succeeded' \
         WHEN {delivery}.status = 'failed' AND {attempt}.number = {delivery}.attempt_count THEN 'failed' \
         ELSE 'retried' END"
    )
}

/// SQL for the latency bucket index of a duration column in milliseconds.
pub fn latency_bucket_sql(duration: &str) -> String {
    let mut sql = String::from("CASE");
    for (i, bound) in LATENCY_BOUNDS_MS.iter().enumerate() {
        sql.push_str(&format!(" WHEN {duration} <= {bound} THEN {i}"));
    }
    sql.push_str(&format!(" ELSE {} END", LATENCY_BOUNDS_MS.len()));
    sql
}

/// SQL for the start of the minute of a time column in epoch milliseconds (integer division
/// in both SQLite and Postgres for integer columns).
pub fn minute_sql(time: &str) -> String {
    format!("({time} / {MINUTE_MS}) * {MINUTE_MS}")
}

/// The query of `Store::attempt_stats`, in SQL that SQLite and Postgres both read, so both
/// stores count alike. Parameters: `$1` from, `$2` to (platform ms), `$3` the application id,
/// `$4` the webhook id or NULL. Columns: webhook_id, minute, outcome, bucket, n, as
/// [`AttemptCount::from_columns`] takes them.
pub fn attempt_stats_sql() -> String {
    format!(
        "SELECT d.webhook_id, {minute} AS minute, {outcome} AS outcome, \
         CAST({bucket} AS BIGINT) AS bucket, COUNT(*) AS n \
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE a.started_at >= $1 AND a.started_at < $2 AND d.app_id = $3 \
         AND (CAST($4 AS TEXT) IS NULL OR d.webhook_id = $4) \
         GROUP BY 1, 2, 3, 4",
        minute = minute_sql("a.started_at"),
        outcome = outcome_sql("a", "d"),
        bucket = latency_bucket_sql("a.duration_ms"),
    )
}

impl AttemptCount {
    /// A row of [`attempt_stats_sql`]; `Err` names what is out of range.
    pub fn from_columns(
        webhook_id: String,
        minute: Millis,
        outcome: &str,
        bucket: i64,
        count: i64,
    ) -> Result<AttemptCount, String> {
        Ok(AttemptCount {
            webhook_id,
            minute,
            outcome: AttemptOutcome::parse(outcome)
                .ok_or_else(|| format!("attempt outcome {outcome:?}"))?,
            latency_bucket: usize::try_from(bucket)
                .map_err(|_| format!("latency bucket {bucket}"))?,
            count,
        })
    }
}

/// Attempts of one minute by outcome, with that minute's latency percentiles.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MinuteStats {
    pub minute: Millis,
    pub outcomes: Outcomes,
    pub latency: Percentiles,
}

/// Attempts by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcomes {
    pub succeeded: i64,
    pub retried: i64,
    pub failed: i64,
}

impl Outcomes {
    fn add(&mut self, outcome: AttemptOutcome, n: i64) {
        match outcome {
            AttemptOutcome::Succeeded => self.succeeded += n,
            AttemptOutcome::Retried => self.retried += n,
            AttemptOutcome::Failed => self.failed += n,
        }
    }

    pub fn attempts(&self) -> i64 {
        self.succeeded + self.retried + self.failed
    }

    /// Share of attempts that succeeded, `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        let all = self.attempts();
        (all > 0).then(|| self.succeeded as f64 / all as f64)
    }
}

/// Latency percentiles in milliseconds, estimated from the bucket counts; `None` without
/// attempts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// A latency histogram over [`LATENCY_BOUNDS_MS`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Histogram(Vec<i64>);

impl Histogram {
    fn new() -> Self {
        Histogram(vec![0; LATENCY_BOUNDS_MS.len() + 1])
    }

    fn add(&mut self, bucket: usize, n: i64) {
        let last = self.0.len() - 1;
        self.0[bucket.min(last)] += n;
    }

    /// The `q` quantile, interpolated linearly inside its bucket (as Prometheus'
    /// `histogram_quantile` does); the open last bucket reports its lower bound.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total: i64 = self.0.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut seen = 0i64;
        for (i, &n) in self.0.iter().enumerate() {
            if n > 0 && (seen + n) as f64 >= rank {
                let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_MS[i - 1] } as f64;
                let Some(&upper) = LATENCY_BOUNDS_MS.get(i) else {
                    return Some(lower);
                };
                let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper as f64 - lower) * within);
            }
            seen += n;
        }
        LATENCY_BOUNDS_MS.last().map(|b| *b as f64)
    }

    fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
        }
    }
}

/// Totals and percentiles of one webhook over the whole window.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSummary {
    pub webhook_id: String,
    pub outcomes: Outcomes,
    pub latency: Percentiles,
}

/// Everything the charts show for a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Every minute of the window, oldest first, empty minutes included.
    pub minutes: Vec<MinuteStats>,
    pub outcomes: Outcomes,
    pub latency: Percentiles,
    /// Per webhook, in webhook id order; only webhooks with attempts in the window.
    pub webhooks: Vec<WebhookSummary>,
}

/// The window of `minutes` whole minutes that ends with the minute holding `now`:
/// `[from, to)`.
pub fn window(now: Millis, minutes: i64) -> (Millis, Millis) {
    let to = now.div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
    (to - minutes * MINUTE_MS, to)
}

/// Folds the store's counts for `[from, to)` into the charts' series.
pub fn summarize(counts: &[AttemptCount], from: Millis, to: Millis) -> Summary {
    let mut per_minute: BTreeMap<Millis, (Outcomes, Histogram)> = BTreeMap::new();
    let mut per_webhook: BTreeMap<&str, (Outcomes, Histogram)> = BTreeMap::new();
    let mut outcomes = Outcomes::default();
    let mut overall = Histogram::new();
    for c in counts.iter().filter(|c| c.minute >= from && c.minute < to) {
        let minute = per_minute
            .entry(c.minute)
            .or_insert_with(|| (Outcomes::default(), Histogram::new()));
        minute.0.add(c.outcome, c.count);
        minute.1.add(c.latency_bucket, c.count);
        let webhook = per_webhook
            .entry(&c.webhook_id)
            .or_insert_with(|| (Outcomes::default(), Histogram::new()));
        webhook.0.add(c.outcome, c.count);
        webhook.1.add(c.latency_bucket, c.count);
        outcomes.add(c.outcome, c.count);
        overall.add(c.latency_bucket, c.count);
    }
    let minutes = (from..to)
        .step_by(MINUTE_MS as usize)
        .map(|minute| match per_minute.get(&minute) {
            Some((o, h)) => MinuteStats {
                minute,
                outcomes: *o,
                latency: h.percentiles(),
            },
            None => MinuteStats {
                minute,
                ..MinuteStats::default()
            },
        })
        .collect();
    let webhooks = per_webhook
        .into_iter()
        .map(|(id, (o, h))| WebhookSummary {
            webhook_id: id.to_string(),
            outcomes: o,
            latency: h.percentiles(),
        })
        .collect();
    Summary {
        minutes,
        outcomes,
        latency: overall.percentiles(),
        webhooks,
    }
}

/// The bucket a duration falls in, as [`latency_bucket_sql`] computes it (for tests and
/// stores that bucket in code).
pub fn latency_bucket(duration_ms: i64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| duration_ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(
        webhook: &str,
        minute: Millis,
        outcome: AttemptOutcome,
        ms: i64,
        n: i64,
    ) -> AttemptCount {
        AttemptCount {
            webhook_id: webhook.into(),
            minute,
            outcome,
            latency_bucket: latency_bucket(ms),
            count: n,
        }
    }

    #[test]
    fn the_window_ends_with_the_current_minute() {
        assert_eq!(window(125_000, 3), (0, 180_000));
        assert_eq!(window(120_000, 1), (120_000, 180_000));
    }

    #[test]
    fn every_minute_of_the_window_has_a_bar_and_counts_land_in_theirs() {
        let counts = [
            count("a", 60_000, AttemptOutcome::Succeeded, 4, 3),
            count("a", 60_000, AttemptOutcome::Retried, 40, 1),
            count("b", 120_000, AttemptOutcome::Failed, 15_000, 2),
            // Outside the window: ignored.
            count("b", 180_000, AttemptOutcome::Failed, 1, 9),
        ];
        let s = summarize(&counts, 0, 180_000);
        assert_eq!(s.minutes.len(), 3);
        assert_eq!(s.minutes[0].outcomes.attempts(), 0);
        assert_eq!(s.minutes[0].latency.p50, None);
        assert_eq!(
            s.minutes[1].outcomes,
            Outcomes {
                succeeded: 3,
                retried: 1,
                failed: 0
            }
        );
        assert_eq!(s.minutes[2].outcomes.failed, 2);
        assert_eq!(s.outcomes.attempts(), 6);
        assert_eq!(s.webhooks.len(), 2);
        assert_eq!(s.webhooks[0].webhook_id, "a");
        assert_eq!(s.webhooks[0].outcomes.success_rate(), Some(0.75));
        assert_eq!(s.webhooks[1].outcomes.success_rate(), Some(0.0));
    }

    #[test]
    fn percentiles_interpolate_within_their_bucket() {
        // 100 attempts: 90 between 3 and 5 ms, 10 between 750 and 1000 ms.
        let counts = [
            count("a", 0, AttemptOutcome::Succeeded, 4, 90),
            count("a", 0, AttemptOutcome::Succeeded, 900, 10),
        ];
        let p = summarize(&counts, 0, 60_000).latency;
        let p50 = p.p50.unwrap();
        assert!((3.0..=5.0).contains(&p50), "{p50}");
        assert_eq!(p.p90, Some(5.0));
        let p99 = p.p99.unwrap();
        assert!((750.0..=1000.0).contains(&p99), "{p99}");
    }

    #[test]
    fn the_open_bucket_reports_its_lower_bound() {
        let counts = [count("a", 0, AttemptOutcome::Failed, 20_000, 1)];
        assert_eq!(summarize(&counts, 0, 60_000).latency.p99, Some(15_000.0));
    }

    #[test]
    fn the_sql_buckets_match_the_code_buckets() {
        let sql = latency_bucket_sql("d");
        assert!(sql.starts_with("CASE WHEN d <= 1 THEN 0"));
        assert!(sql.ends_with(&format!("ELSE {} END", LATENCY_BOUNDS_MS.len())));
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 0);
        assert_eq!(latency_bucket(2), 1);
        assert_eq!(latency_bucket(15_001), LATENCY_BOUNDS_MS.len());
    }
}
