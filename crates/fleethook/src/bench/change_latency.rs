//! `fleethook bench change-latency`: how long a vehicleState webhook takes to deliver a
//! signal change, under a steady stream of changes over a large fleet.
//!
//! **What is measured.** For every change: the time from *ingest accepted* (the instant the
//! load driver has the `202` of `POST /api/v1/vehicles/{id}/signals` in hand) to *receiver got
//! it* (the instant the local receiver's handler starts on the `VEHICLE_STATE` delivery that
//! carries the new value). Both instants are `std::time::Instant`s of this one process. A
//! delivery can reach the receiver before the driver has read the `202` (the payload is in the
//! outbox when the ingest's transaction commits, and the dispatcher is woken then); such
//! latencies are clamped to 0. Reported: p50, p99 and max (nearest rank), in milliseconds.
//!
//! **How.** Everything runs in this process on 127.0.0.1, the way `fleethook demo` does it
//! (the pieces are [`super::changes`]'s):
//! 1. the real server ([`crate::server::RunningServer`]) on a fresh temporary SQLite file (or
//!    `--database-url`), real-time clock, background dispatcher, loopback callbacks allowed;
//! 2. a keep-alive axum receiver that answers the challenge and records, for each
//!    `VEHICLE_STATE`, its arrival instant, `vehicleId`, the `tractionbattery-stateofcharge`
//!    value in `data.signals` and its trigger type;
//! 3. N vehicles created and seeded with an initial state of charge directly through the
//!    store (fast setup, not measured); one vehicleState webhook (trigger:
//!    `tractionbattery-stateofcharge`) created and verified through the HTTP API *while it has
//!    no subscribers*, then every vehicle subscribed through the store. Verifying first means
//!    enabling sends no `FIRST_DELIVERY` (there is nobody to send it to), and subscribing
//!    through the store skips the first delivery an API subscribe would enqueue: only change
//!    deliveries are in flight while measuring. The receiver still counts any
//!    `FIRST_DELIVERY` it sees, and a correct run reports 0;
//! 4. a load driver: one pooled `reqwest::Client`, a tokio interval every 5 ms releasing the
//!    changes due by then so the rate holds at R per second, at most `max_in_flight` requests
//!    at once (when the server cannot keep up the driver falls behind, and the achieved rate
//!    shows it). Change *i* goes to vehicle *i mod N* with a value that differs from that
//!    vehicle's previous one, so each is a change and `(vehicleId, value)` names it uniquely;
//! 5. the run waits until every change has been delivered (or fails after a timeout), then a
//!    short grace period to catch duplicates, and matches deliveries to changes by
//!    `(vehicleId, value)`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::changes::{changes, check_load, check_values_unique, Bench, Tally};
use super::common::write_scenario_report;
use super::{percentile, BenchArgs, MachineFacts};

/// The scenario's name on the command line and in `target/bench/change-latency.json`.
pub const NAME: &str = "change-latency";

/// How to run the scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeLatencyConfig {
    /// Vehicles in the fleet, each subscribed to the webhook.
    pub vehicles: usize,
    /// Signal changes driven per second.
    pub rate_per_s: f64,
    /// How long the changes are driven, in seconds.
    pub duration_s: f64,
    /// Ingest requests in flight at once, at most.
    pub max_in_flight: usize,
    /// How long to wait, after the last change is accepted, for every delivery before failing.
    pub delivery_timeout_s: f64,
    /// The database (`None`: a fresh temporary SQLite file, removed afterwards).
    pub database_url: Option<String>,
    /// Print progress lines to stderr.
    #[serde(skip)]
    pub progress: bool,
}

impl ChangeLatencyConfig {
    /// The full scenario: 1,000 changes per second for 20 s over 10,000 vehicles.
    pub fn full() -> Self {
        ChangeLatencyConfig {
            vehicles: 10_000,
            rate_per_s: 1_000.0,
            duration_s: 20.0,
            max_in_flight: 256,
            delivery_timeout_s: 120.0,
            database_url: None,
            progress: true,
        }
    }

    /// `--quick`: 1,000 changes per second for 5 s over 1,000 vehicles.
    pub fn quick() -> Self {
        ChangeLatencyConfig {
            vehicles: 1_000,
            duration_s: 5.0,
            ..Self::full()
        }
    }

    /// The test suite's smoke run: 100 changes per second for 1 s over 50 vehicles.
    pub fn smoke() -> Self {
        ChangeLatencyConfig {
            vehicles: 50,
            rate_per_s: 100.0,
            duration_s: 1.0,
            max_in_flight: 32,
            delivery_timeout_s: 60.0,
            database_url: None,
            progress: false,
        }
    }

    /// The number of changes the run drives.
    pub fn changes(&self) -> usize {
        changes(self.rate_per_s, self.duration_s)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.vehicles == 0 {
            bail!("the scenario needs at least one vehicle");
        }
        check_load(self.rate_per_s, self.duration_s, self.max_in_flight)?;
        check_values_unique(self.changes(), self.vehicles)
    }
}

/// What a run measured and counted.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeLatencyReport {
    /// Median latency from ingest accepted to receiver got it, in ms.
    pub p50_ms: f64,
    /// 99th percentile of that latency, in ms.
    pub p99_ms: f64,
    /// Largest latency, in ms.
    pub max_ms: f64,
    /// Changes driven and accepted (`202` naming the signal as changed).
    pub changes: usize,
    /// `VEHICLE_STATE` `SIGNAL_UPDATED` deliveries received (duplicates included).
    pub deliveries: usize,
    /// Changes that were delivered at least once.
    pub delivered_changes: usize,
    /// Deliveries beyond the first of a change (a correct run: 0).
    pub duplicates: usize,
    /// Deliveries that match no change (a correct run: 0).
    pub unmatched: usize,
    /// `FIRST_DELIVERY` payloads received (this setup sends none: a correct run has 0).
    pub first_deliveries: usize,
    /// Changes per second the driver achieved (changes ÷ time from first send to last `202`).
    pub achieved_rate_per_s: f64,
    /// Seconds from the first send to the last `202`.
    pub drive_s: f64,
    /// Seconds from the last `202` until every change had been delivered.
    pub drain_s: f64,
    /// Ingest round trip (request sent → `202`), median, in ms.
    pub ingest_p50_ms: f64,
    /// Ingest round trip, 99th percentile, in ms.
    pub ingest_p99_ms: f64,
    /// Deliveries still pending in the outbox at the end (a correct run: 0).
    pub outbox_pending_after: i64,
    /// Seconds spent creating, seeding and subscribing the fleet (not measured).
    pub setup_s: f64,
}

/// `fleethook bench change-latency [--quick] [--database-url URL]`.
pub async fn run_cli(args: &BenchArgs) -> anyhow::Result<()> {
    let mut config = if args.quick {
        ChangeLatencyConfig::quick()
    } else {
        ChangeLatencyConfig::full()
    };
    config.database_url = args.database_url.clone();
    let machine = MachineFacts::collect();
    eprintln!(
        "{NAME}: {} vehicles, {} changes/s for {} s ({} changes)",
        config.vehicles,
        config.rate_per_s,
        config.duration_s,
        config.changes()
    );
    let report = run_scenario(config.clone()).await?;

    println!();
    println!(
        "fleethook bench {NAME}{}",
        if args.quick { " (quick)" } else { "" }
    );
    println!("  machine: {}", machine.summary());
    println!(
        "  fleet: {} vehicles; target {} changes/s for {} s",
        config.vehicles, config.rate_per_s, config.duration_s
    );
    println!();
    println!("  ingest accepted → receiver got it");
    println!("  {:<40} {:>9.2} ms", "  p50", report.p50_ms);
    println!("  {:<40} {:>9.2} ms", "  p99", report.p99_ms);
    println!("  {:<40} {:>9.2} ms", "  max", report.max_ms);
    println!(
        "  {:<40} {:>9.2} ms",
        "ingest round trip p50", report.ingest_p50_ms
    );
    println!(
        "  {:<40} {:>9.2} ms",
        "ingest round trip p99", report.ingest_p99_ms
    );
    println!(
        "  {:<40} {:>9.1} /s",
        "achieved change rate", report.achieved_rate_per_s
    );
    println!("  {:<40} {:>9}", "changes", report.changes);
    println!("  {:<40} {:>9}", "deliveries", report.deliveries);
    println!("  {:<40} {:>9}", "duplicates", report.duplicates);
    println!("  {:<40} {:>9}", "unmatched deliveries", report.unmatched);
    println!(
        "  {:<40} {:>9.2} s",
        "drain after last change", report.drain_s
    );

    write_scenario_report(NAME, args.quick, &report, &config, &machine)?;
    Ok(())
}

/// Runs the scenario once: starts the server and the receiver, builds the fleet, drives the
/// changes, waits for every delivery and returns what it measured. Fails when a change is
/// refused or not every change is delivered within the timeout.
pub async fn run_scenario(config: ChangeLatencyConfig) -> anyhow::Result<ChangeLatencyReport> {
    config.validate()?;
    let bench = Bench::start(
        config.database_url.as_deref(),
        Vec::new(),
        Default::default(),
    )
    .await?;
    let result = measure(&config, &bench).await;
    bench.stop().await;
    result
}

/// Setup, drive, wait and count, against a running server.
async fn measure(
    config: &ChangeLatencyConfig,
    bench: &Bench,
) -> anyhow::Result<ChangeLatencyReport> {
    let progress = |line: String| {
        if config.progress {
            eprintln!("  {line}");
        }
    };

    // --- setup (not measured) ---
    let setup_started = Instant::now();
    let vehicle_ids = bench.create_fleet(config.vehicles).await?;
    progress(format!(
        "created and seeded {} vehicles in {:.1} s",
        config.vehicles,
        setup_started.elapsed().as_secs_f64()
    ));
    bench
        .create_webhook("bench change-latency", &bench.receiver_url, &vehicle_ids)
        .await?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    progress(format!(
        "webhook verified, {} vehicles subscribed; setup took {setup_s:.1} s",
        vehicle_ids.len()
    ));

    // --- drive ---
    let total = config.changes();
    progress(format!(
        "driving {total} changes at {}/s",
        config.rate_per_s
    ));
    let (rate, in_flight) = (config.rate_per_s, config.max_in_flight);
    let driven = bench.drive(&vehicle_ids, rate, total, in_flight).await?;
    let drive_s = driven.drive_s();
    progress(format!(
        "{total} changes accepted in {drive_s:.2} s; waiting for deliveries"
    ));

    // --- wait for every delivery ---
    let expected: HashSet<_> = driven.accepted_at.keys().cloned().collect();
    let timeout = Duration::from_secs_f64(config.delivery_timeout_s);
    let Some(all_delivered_at) = bench.wait_for(&expected, timeout).await? else {
        let tally = Tally::count(&bench.receiver.snapshot()?, &driven.accepted_at);
        bail!(
            "only {} of {total} changes were delivered within {} s of the last ingest",
            tally.first_seen.len(),
            config.delivery_timeout_s
        );
    };

    // --- count and measure ---
    let tally = Tally::count(&bench.receiver.snapshot()?, &driven.accepted_at);
    let latencies = tally.latencies(&driven.accepted_at, |_| true);
    let outbox_pending_after = bench.store().outbox_depth().await?;
    Ok(ChangeLatencyReport {
        p50_ms: percentile(&latencies, 0.50).unwrap_or(0.0),
        p99_ms: percentile(&latencies, 0.99).unwrap_or(0.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        changes: total,
        deliveries: tally.deliveries,
        delivered_changes: tally.first_seen.len(),
        duplicates: tally.duplicates,
        unmatched: tally.unmatched,
        first_deliveries: tally.first_deliveries,
        achieved_rate_per_s: driven.achieved_rate_per_s(),
        drive_s,
        drain_s: all_delivered_at
            .saturating_duration_since(driven.last_accepted)
            .as_secs_f64(),
        ingest_p50_ms: percentile(&driven.round_trips, 0.50).unwrap_or(0.0),
        ingest_p99_ms: percentile(&driven.round_trips, 0.99).unwrap_or(0.0),
        outbox_pending_after,
        setup_s,
    })
}
