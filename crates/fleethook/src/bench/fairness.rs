//! `fleethook bench fairness`: whether broken endpoints take delivery capacity from healthy
//! ones (SPEC 8: "one failing endpoint never slows delivery to the others").
//!
//! **Load.** E endpoints, each its own vehicleState webhook (trigger:
//! `tractionbattery-stateofcharge`) on its own callback URL (`/hook/{n}` of one local
//! keep-alive receiver), with one vehicle subscribed to each. A steady stream of signal
//! changes at R per second goes round robin over the vehicles through the ingest API, so every
//! endpoint is offered the same R/E deliveries per second, at a rate the all-healthy system
//! keeps up with. The scenario runs twice on fresh databases with the same load:
//! - **baseline**: every endpoint answers `200` at once;
//! - **faulty**: 10 % of the endpoints, spread evenly, are unhealthy: half never answer (the
//!   request hangs until the dispatcher's HTTP timeout, 15 s by SPEC 8 and not configurable,
//!   drops it) and half answer `500` at once. The rest answer `200` at once.
//!
//! Unhealthy endpoints follow the real retry road of vehicleState webhooks (retries after
//! 25 s, 50 s and 100 s, then the event is dropped). SPEC 8 never disables a vehicleState
//! webhook for failing (only a `410` does), so all of them stay enabled and keep being offered
//! load for the whole run; the report counts disabled webhooks to show it.
//!
//! **What is measured**, over the endpoints that are healthy in the faulty run (the same ones
//! in both runs):
//! - *healthy throughput*: changes delivered to them ÷ seconds from the first ingest sent to
//!   the last of those changes received. A system that keeps up delivers at the offered rate;
//!   one whose healthy deliveries queue behind broken ones finishes later, and its throughput
//!   drops. `healthy_ratio` = faulty ÷ baseline;
//! - *latency*: from ingest accepted (the `202` in hand) to the receiver's handler starting on
//!   the delivery, p50, p99 and max (nearest rank), as in `change-latency`.
//!
//! The run waits for every change to a healthy endpoint (at most `delivery_timeout_s` after
//! the last ingest; the faulty run reports what arrived instead of failing, the baseline
//! fails), then a short grace period for duplicates.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use super::changes::{
    changes, check_load, check_values_unique, ms, Behavior, Bench, ChangeKey, Tally,
};
use super::common::write_scenario_report;
use super::{percentile, BenchArgs, MachineFacts};
use crate::delivery::dispatcher::DispatcherSettings;
use crate::delivery::http::ATTEMPT_TIMEOUT;
use crate::delivery::retry;
use crate::delivery::slow_lane::{self, SlowLane};
use crate::model::WebhookStatus;

/// The scenario's name on the command line and in `target/bench/fairness.json`.
pub const NAME: &str = "fairness";

/// The width of the windows of `healthy_p99_ms_by_window`, in seconds.
pub const WINDOW_S: f64 = 10.0;

/// How to run the scenario.
#[derive(Debug, Clone, Serialize)]
pub struct FairnessConfig {
    /// Endpoints (webhooks), one vehicle each.
    pub endpoints: usize,
    /// Unhealthy endpoints (faulty run) that never answer.
    pub hanging: usize,
    /// Unhealthy endpoints (faulty run) that answer `500`.
    pub erroring: usize,
    /// Signal changes driven per second, over all endpoints.
    pub rate_per_s: f64,
    /// How long the changes are driven, in seconds, per run.
    pub duration_s: f64,
    /// Ingest requests in flight at once, at most.
    pub max_in_flight: usize,
    /// How long to wait, after the last change is accepted, for every change to a healthy
    /// endpoint.
    pub delivery_timeout_s: f64,
    /// The database (`None`: a fresh temporary SQLite file per run, removed afterwards).
    pub database_url: Option<String>,
    /// Print progress lines to stderr.
    #[serde(skip)]
    pub progress: bool,
}

impl FairnessConfig {
    /// The full scenario: 1,000 endpoints (50 hanging, 50 answering 500), 1,000 changes per
    /// second for 60 s, twice.
    pub fn full() -> Self {
        FairnessConfig {
            endpoints: 1_000,
            hanging: 50,
            erroring: 50,
            rate_per_s: 1_000.0,
            duration_s: 60.0,
            max_in_flight: 256,
            delivery_timeout_s: 60.0,
            database_url: None,
            progress: true,
        }
    }

    /// `--quick`: the same fleet and rate for 20 s.
    pub fn quick() -> Self {
        FairnessConfig {
            duration_s: 20.0,
            delivery_timeout_s: 30.0,
            ..Self::full()
        }
    }

    /// The test suite's smoke run: 20 endpoints (one hanging, one answering 500), 40 changes
    /// per second for 1 s.
    pub fn smoke() -> Self {
        FairnessConfig {
            endpoints: 20,
            hanging: 1,
            erroring: 1,
            rate_per_s: 40.0,
            duration_s: 1.0,
            max_in_flight: 32,
            delivery_timeout_s: 60.0,
            database_url: None,
            progress: false,
        }
    }

    /// The number of changes each run drives.
    pub fn changes(&self) -> usize {
        changes(self.rate_per_s, self.duration_s)
    }

    /// How each endpoint answers in the faulty run: the unhealthy ones spread evenly over the
    /// endpoints, hanging and erroring ones alternating.
    pub fn faulty_behaviors(&self) -> Vec<Behavior> {
        let mut behaviors = vec![Behavior::Healthy; self.endpoints];
        let unhealthy = self.hanging + self.erroring;
        let (mut hanging, mut erroring) = (self.hanging, self.erroring);
        for k in 0..unhealthy {
            let index = (2 * k + 1) * self.endpoints / (2 * unhealthy);
            behaviors[index] = if hanging > 0 && (k % 2 == 0 || erroring == 0) {
                hanging -= 1;
                Behavior::Hang
            } else {
                erroring -= 1;
                Behavior::Error500
            };
        }
        behaviors
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.endpoints == 0 {
            bail!("the scenario needs at least one endpoint");
        }
        if self.hanging + self.erroring >= self.endpoints {
            bail!("at least one endpoint must stay healthy");
        }
        check_load(self.rate_per_s, self.duration_s, self.max_in_flight)?;
        check_values_unique(self.changes(), self.endpoints)
    }
}

/// What the two runs measured, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct FairnessReport {
    /// Healthy throughput of the faulty run ÷ that of the baseline run.
    pub healthy_ratio: f64,
    /// p99 latency to the healthy endpoints in the faulty run, in ms.
    pub healthy_p99_ms: f64,
    /// p99 latency to the same endpoints in the baseline run, in ms.
    pub baseline_p99_ms: f64,
    /// Endpoints in all.
    pub endpoints: usize,
    /// Endpoints healthy in both runs (the ones measured).
    pub healthy_endpoints: usize,
    /// Endpoints that never answer in the faulty run.
    pub hanging_endpoints: usize,
    /// Endpoints that answer `500` in the faulty run.
    pub erroring_endpoints: usize,
    /// The all-healthy run.
    pub baseline: RunReport,
    /// The run with unhealthy endpoints.
    pub faulty: RunReport,
}

/// What one run measured and counted.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Changes to the measured endpoints delivered per second (delivered ÷ `healthy_span_s`).
    pub healthy_throughput_per_s: f64,
    /// Seconds from the first ingest sent to the last change to a measured endpoint received.
    pub healthy_span_s: f64,
    /// Median latency (ingest accepted → received) to the measured endpoints, in ms.
    pub healthy_p50_ms: f64,
    /// 99th percentile of that latency, in ms.
    pub healthy_p99_ms: f64,
    /// Largest latency, in ms.
    pub healthy_max_ms: f64,
    /// The p99 latency of the changes accepted in each successive window of
    /// [`WINDOW_S`] seconds, in ms.
    pub healthy_p99_ms_by_window: Vec<f64>,
    /// Changes driven and accepted.
    pub changes: usize,
    /// Changes to the measured endpoints.
    pub healthy_changes: usize,
    /// Of those, delivered at least once.
    pub healthy_delivered: usize,
    /// `SIGNAL_UPDATED` deliveries the measured endpoints answered `200` (duplicates included).
    pub healthy_deliveries: usize,
    /// Deliveries beyond the first of a change (a correct run: 0).
    pub duplicates: usize,
    /// Deliveries that match no change (a correct run: 0).
    pub unmatched: usize,
    /// `FIRST_DELIVERY` payloads received (this setup sends none: a correct run has 0).
    pub first_deliveries: usize,
    /// Changes to endpoints that are unhealthy in this run.
    pub unhealthy_changes: usize,
    /// Of those, changes that reached their endpoint at least once.
    pub unhealthy_changes_attempted: usize,
    /// Requests the hanging endpoints received (first attempts and retries).
    pub hanging_attempts: usize,
    /// Requests the erroring endpoints received (first attempts and retries).
    pub erroring_attempts: usize,
    /// Changes per second the driver achieved.
    pub achieved_rate_per_s: f64,
    /// Seconds from the first send to the last `202`.
    pub drive_s: f64,
    /// Seconds from the last `202` until every change to a measured endpoint had arrived.
    pub drain_s: f64,
    /// Ingest round trip (request sent → `202`), 99th percentile, in ms.
    pub ingest_p99_ms: f64,
    /// Deliveries still pending in the outbox at the end (retries of unhealthy endpoints).
    pub outbox_pending_after: i64,
    /// Webhooks disabled at the end (vehicleState webhooks are never disabled for failing).
    pub disabled_webhooks: usize,
    /// Seconds spent creating the fleet and the webhooks (not measured).
    pub setup_s: f64,
}

/// `fleethook bench fairness [--quick] [--database-url URL]`.
pub async fn run_cli(args: &BenchArgs) -> anyhow::Result<()> {
    let mut config = if args.quick {
        FairnessConfig::quick()
    } else {
        FairnessConfig::full()
    };
    config.database_url = args.database_url.clone();
    let machine = MachineFacts::collect();
    eprintln!(
        "{NAME}: {} endpoints ({} hanging, {} answering 500 in the faulty run), {} changes/s \
         for {} s, twice",
        config.endpoints, config.hanging, config.erroring, config.rate_per_s, config.duration_s
    );
    let report = run_scenario(config.clone()).await?;
    let (base, faulty) = (&report.baseline, &report.faulty);

    println!();
    println!(
        "fleethook bench {NAME}{}",
        if args.quick { " (quick)" } else { "" }
    );
    println!("  machine: {}", machine.summary());
    println!(
        "  {} endpoints, one vehicle each; {} changes/s for {} s; faulty run: {} hanging \
         (timeout {} s), {} answering 500",
        config.endpoints,
        config.rate_per_s,
        config.duration_s,
        config.hanging,
        ATTEMPT_TIMEOUT.as_secs(),
        config.erroring
    );
    println!();
    println!(
        "  {} healthy endpoints          {:>12} {:>12}",
        report.healthy_endpoints, "baseline", "faulty"
    );
    let row = |name: &str, unit: &str, b: f64, f: f64| {
        println!("  {name:<34} {b:>9.2} {unit:<2} {f:>9.2} {unit}");
    };
    row(
        "throughput",
        "/s",
        base.healthy_throughput_per_s,
        faulty.healthy_throughput_per_s,
    );
    row(
        "latency p50",
        "ms",
        base.healthy_p50_ms,
        faulty.healthy_p50_ms,
    );
    row(
        "latency p99",
        "ms",
        base.healthy_p99_ms,
        faulty.healthy_p99_ms,
    );
    row(
        "latency max",
        "ms",
        base.healthy_max_ms,
        faulty.healthy_max_ms,
    );
    let by_window = |run: &RunReport| {
        run.healthy_p99_ms_by_window
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "  p99 of each {WINDOW_S} s, ms: baseline {}",
        by_window(base)
    );
    println!("  {:<22} faulty   {}", "", by_window(faulty));
    row("drain after last change", "s", base.drain_s, faulty.drain_s);
    row(
        "achieved change rate",
        "/s",
        base.achieved_rate_per_s,
        faulty.achieved_rate_per_s,
    );
    let count = |name: &str, b: usize, f: usize| println!("  {name:<34} {b:>12} {f:>12}");
    count(
        "changes offered",
        base.healthy_changes,
        faulty.healthy_changes,
    );
    count(
        "changes delivered",
        base.healthy_delivered,
        faulty.healthy_delivered,
    );
    count("duplicates", base.duplicates, faulty.duplicates);
    count(
        "requests to hanging endpoints",
        base.hanging_attempts,
        faulty.hanging_attempts,
    );
    count(
        "requests to 500 endpoints",
        base.erroring_attempts,
        faulty.erroring_attempts,
    );
    count(
        "disabled webhooks",
        base.disabled_webhooks,
        faulty.disabled_webhooks,
    );
    println!();
    println!(
        "  healthy_ratio (faulty ÷ baseline throughput) {:>8.3}",
        report.healthy_ratio
    );

    // The knobs of the server that decide fairness, beside the scenario's own.
    let dispatcher = DispatcherSettings::default();
    let mut settings = serde_json::to_value(&config).context("cannot serialise the config")?;
    if let Value::Object(map) = &mut settings {
        map.insert("attempt_timeout_s".into(), json!(ATTEMPT_TIMEOUT.as_secs()));
        map.insert(
            "retry_waits_s".into(),
            json!(retry::VEHICLE_STATE_WAITS.map(|w| w.as_secs())),
        );
        map.insert(
            "dispatcher_concurrency".into(),
            json!(dispatcher.concurrency),
        );
        map.insert(
            "dispatcher_per_webhook_in_flight".into(),
            json!(dispatcher.per_webhook_in_flight),
        );
        map.insert(
            "dispatcher_slow_lane_slots".into(),
            json!(SlowLane::new(dispatcher.concurrency).budget()),
        );
        map.insert(
            "dispatcher_slow_after_ms".into(),
            json!(slow_lane::SLOW_AFTER.as_millis()),
        );
    }
    write_scenario_report(NAME, args.quick, &report, &settings, &machine)?;
    Ok(())
}

/// Runs the baseline, then the faulty run, and compares them. Fails when a change is refused
/// or the baseline does not deliver every change within the timeout.
pub async fn run_scenario(config: FairnessConfig) -> anyhow::Result<FairnessReport> {
    config.validate()?;
    let faulty_behaviors = config.faulty_behaviors();
    let measured: Vec<bool> = faulty_behaviors
        .iter()
        .map(|b| *b == Behavior::Healthy)
        .collect();
    if config.progress {
        eprintln!("  baseline run: every endpoint healthy");
    }
    let baseline = run_once(
        &config,
        vec![Behavior::Healthy; config.endpoints],
        &measured,
    )
    .await?;
    if config.progress {
        eprintln!("  faulty run");
    }
    let faulty = run_once(&config, faulty_behaviors.clone(), &measured).await?;
    let healthy_ratio = if baseline.healthy_throughput_per_s > 0.0 {
        faulty.healthy_throughput_per_s / baseline.healthy_throughput_per_s
    } else {
        0.0
    };
    let of = |kind: Behavior| faulty_behaviors.iter().filter(|b| **b == kind).count();
    Ok(FairnessReport {
        healthy_ratio,
        healthy_p99_ms: faulty.healthy_p99_ms,
        baseline_p99_ms: baseline.healthy_p99_ms,
        endpoints: config.endpoints,
        healthy_endpoints: of(Behavior::Healthy),
        hanging_endpoints: of(Behavior::Hang),
        erroring_endpoints: of(Behavior::Error500),
        baseline,
        faulty,
    })
}

/// One run on a fresh server: endpoint `n` answers as `behaviors[n]`; the endpoints with
/// `measured[n]` are the ones measured.
async fn run_once(
    config: &FairnessConfig,
    behaviors: Vec<Behavior>,
    measured: &[bool],
) -> anyhow::Result<RunReport> {
    let bench = Bench::start(
        config.database_url.as_deref(),
        behaviors.clone(),
        DispatcherSettings::default(),
    )
    .await?;
    let result = measure(config, &bench, &behaviors, measured).await;
    bench.stop().await;
    result
}

/// Setup, drive, wait and count, against a running server.
async fn measure(
    config: &FairnessConfig,
    bench: &Bench,
    behaviors: &[Behavior],
    measured: &[bool],
) -> anyhow::Result<RunReport> {
    let progress = |line: String| {
        if config.progress {
            eprintln!("    {line}");
        }
    };

    // --- setup (not measured) ---
    let setup_started = Instant::now();
    let vehicle_ids = bench.create_fleet(config.endpoints).await?;
    let mut webhook_ids = Vec::with_capacity(config.endpoints);
    for (n, vehicle) in vehicle_ids.iter().enumerate() {
        let callback = format!("{}/{n}", bench.receiver_url);
        let id = bench
            .create_webhook(
                &format!("bench fairness {n}"),
                &callback,
                std::slice::from_ref(vehicle),
            )
            .await?;
        webhook_ids.push(id);
    }
    let setup_s = setup_started.elapsed().as_secs_f64();
    progress(format!(
        "{} vehicles and webhooks ready in {setup_s:.1} s",
        config.endpoints
    ));
    let endpoint_of: HashMap<String, usize> = vehicle_ids
        .iter()
        .enumerate()
        .map(|(n, id)| (id.clone(), n))
        .collect();

    // --- drive ---
    let total = config.changes();
    let (rate, in_flight) = (config.rate_per_s, config.max_in_flight);
    let driven = bench.drive(&vehicle_ids, rate, total, in_flight).await?;
    let drive_s = driven.drive_s();
    progress(format!(
        "{total} changes accepted in {drive_s:.2} s ({:.1}/s); waiting for deliveries",
        driven.achieved_rate_per_s()
    ));

    // --- wait for every change to a measured endpoint ---
    let is_measured = |key: &ChangeKey| endpoint_of.get(&key.0).is_some_and(|n| measured[*n]);
    let expected: HashSet<ChangeKey> = driven
        .accepted_at
        .keys()
        .filter(|key| is_measured(key))
        .cloned()
        .collect();
    let all_delivered_at = bench
        .wait_for(
            &expected,
            Duration::from_secs_f64(config.delivery_timeout_s),
        )
        .await?;

    // --- count and measure ---
    let received = bench.receiver.snapshot()?;
    let tally = Tally::count(&received, &driven.accepted_at);
    let latencies = tally.latencies(&driven.accepted_at, is_measured);
    let healthy_delivered = latencies.len();
    // The p99 of each window of WINDOW_S seconds, by when the change was accepted: whether
    // latency stays flat or grows as the unhealthy endpoints' backlog does.
    let mut windows: Vec<Vec<f64>> = Vec::new();
    for (key, got) in &tally.first_seen {
        let Some(accepted) = driven.accepted_at.get(key).filter(|_| is_measured(key)) else {
            continue;
        };
        let offset = accepted
            .saturating_duration_since(driven.started)
            .as_secs_f64();
        let window = (offset / WINDOW_S) as usize;
        if windows.len() <= window {
            windows.resize_with(window + 1, Vec::new);
        }
        windows[window].push(ms(got.saturating_duration_since(*accepted)));
    }
    let healthy_p99_ms_by_window = windows
        .iter_mut()
        .map(|w| {
            w.sort_by(f64::total_cmp);
            percentile(w, 0.99).unwrap_or(0.0)
        })
        .collect();
    let all_healthy = behaviors.iter().all(|b| *b == Behavior::Healthy);
    if all_delivered_at.is_none() && all_healthy {
        bail!(
            "only {healthy_delivered} of {} changes were delivered within {} s of the last \
             ingest, with every endpoint healthy",
            expected.len(),
            config.delivery_timeout_s
        );
    }
    let last_healthy = tally
        .first_seen
        .iter()
        .filter(|(key, _)| is_measured(key))
        .map(|(_, at)| *at)
        .max()
        .unwrap_or(driven.started);
    let healthy_span_s = last_healthy
        .saturating_duration_since(driven.started)
        .as_secs_f64();

    let unhealthy_keys: HashSet<&ChangeKey> = driven
        .accepted_at
        .keys()
        .filter(|key| {
            endpoint_of
                .get(&key.0)
                .is_some_and(|n| behaviors[*n] != Behavior::Healthy)
        })
        .collect();
    let mut attempted: HashSet<ChangeKey> = HashSet::new();
    let (mut hanging_attempts, mut erroring_attempts) = (0, 0);
    for r in &received {
        match r.answered {
            Behavior::Healthy => continue,
            Behavior::Hang => hanging_attempts += 1,
            Behavior::Error500 => erroring_attempts += 1,
        }
        if let Some(value) = r.value {
            let key = (r.vehicle_id.clone(), value);
            if unhealthy_keys.contains(&key) {
                attempted.insert(key);
            }
        }
    }

    let store = bench.store();
    let outbox_pending_after = store.outbox_depth().await?;
    let webhooks = store.list_webhooks(&bench.app.id).await?;
    let ours: HashSet<&String> = webhook_ids.iter().collect();
    let disabled_webhooks = webhooks
        .iter()
        .filter(|w| ours.contains(&w.id) && w.status == WebhookStatus::Disabled)
        .count();
    if config.database_url.is_some() {
        // A database that outlives the run: its pending retries must not reach the next run.
        for id in &webhook_ids {
            store.delete_webhook(&bench.app.id, id).await?;
        }
    }

    Ok(RunReport {
        healthy_throughput_per_s: if healthy_span_s > 0.0 {
            healthy_delivered as f64 / healthy_span_s
        } else {
            0.0
        },
        healthy_span_s,
        healthy_p50_ms: percentile(&latencies, 0.50).unwrap_or(0.0),
        healthy_p99_ms: percentile(&latencies, 0.99).unwrap_or(0.0),
        healthy_max_ms: latencies.last().copied().unwrap_or(0.0),
        healthy_p99_ms_by_window,
        changes: total,
        healthy_changes: expected.len(),
        healthy_delivered,
        healthy_deliveries: received
            .iter()
            .filter(|r| {
                r.answered == Behavior::Healthy
                    && r.trigger != "FIRST_DELIVERY"
                    && r.endpoint.is_some_and(|n| measured.get(n) == Some(&true))
            })
            .count(),
        duplicates: tally.duplicates,
        unmatched: tally.unmatched,
        first_deliveries: tally.first_deliveries,
        unhealthy_changes: unhealthy_keys.len(),
        unhealthy_changes_attempted: attempted.len(),
        hanging_attempts,
        erroring_attempts,
        achieved_rate_per_s: driven.achieved_rate_per_s(),
        drive_s,
        drain_s: all_delivered_at
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(driven.last_accepted)
            .as_secs_f64(),
        ingest_p99_ms: percentile(&driven.round_trips, 0.99).unwrap_or(0.0),
        outbox_pending_after,
        disabled_webhooks,
        setup_s,
    })
}
