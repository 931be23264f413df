//! `fleethook bench schedule-burst`: a whole fleet due at one hourly boundary. How long from
//! the boundary until the last vehicle's data has reached the receiver, and how much memory
//! the server needs meanwhile.
//!
//! **What is measured.** The real time from the instant platform time reaches the boundary to
//! the instant the local receiver's handler starts on the body that carries the last vehicle
//! not yet delivered (`seconds`); from it, vehicles delivered per second (`deliveries_per_s`:
//! one delivery is one vehicle's data reaching the receiver) and HTTP bodies per second
//! (`bodies_per_s`; a body carries as many vehicles as `maxPayloadBytes` allows). Also the
//! peak resident memory (`peak_rss_bytes`) of this process over the burst: `VmHWM` of
//! `/proc/self/status`, reset to the current size just before the boundary by writing `5` to
//! `/proc/self/clear_refs` (`peak_rss_scope: "burst"`). Where the reset is not permitted the
//! peak covers the whole run, setup included (`peak_rss_scope: "run"`). The server runs in this
//! process beside the receiver and the setup's leftovers, so the figure is an upper bound on
//! what `fleethook serve` would need.
//!
//! **How.**
//! 1. The server ([`BenchServer`]) on a fresh temporary SQLite file (or `--database-url`), on a
//!    [`JumpClock`]: real time that starts one second after an hour boundary, so the next
//!    boundary is almost an hour of platform time away while the fleet is built;
//! 2. a keep-alive axum receiver that answers the challenge and, for every other body, parses
//!    only the vehicle ids and item codes and tallies each vehicle by its index (vehicle ids
//!    of a run are `RUN-0000-4000-8000-INDEX`, so the tally is one byte per vehicle, not a map
//!    of a million strings in the measured process);
//! 3. one scheduled webhook (hourly, `/battery` and `/location`, metric) created and verified
//!    through the HTTP API while it has no subscribers; then the fleet in batches, each
//!    batch three store calls of one transaction each: `create_vehicles`, an
//!    `apply_ingest_batch` seeding state of charge, range and location (so every item is a
//!    real value, not an error), and `subscribe_many` (setup is not measured but reported as
//!    `setup_s`);
//! 4. the peak memory is reset and the clock jumps to `lead_ms` before the boundary; the
//!    trigger loop wakes, sleeps the rest in real time and fires the boundary;
//! 5. the run waits until every vehicle has been delivered (or fails after a timeout), then a
//!    short grace period to catch duplicates, and reads the outbox depth and the peak memory.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use fleethook_wire::signal::SignalValue;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    answer_challenge, api_call, api_client, memory_of_self, reset_peak_memory,
    write_scenario_report, BenchServer, Receiver,
};
use super::{BenchArgs, MachineFacts};
use crate::clock::{real_now_ms, Clock, JumpClock, Millis};
use crate::ids::{new_id, new_token};
use crate::model::{App, Vehicle, VehicleMode};
use crate::server::RunningServer;
use crate::store::IngestItem;

/// The scenario's name on the command line and in `target/bench/schedule-burst.json`.
pub const NAME: &str = "schedule-burst";

const HOUR_MS: Millis = 3_600_000;

/// How long to keep listening for duplicates once every vehicle has been delivered.
const GRACE: Duration = Duration::from_millis(500);

/// How to run the scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleBurstConfig {
    /// Vehicles in the fleet, each subscribed to the one scheduled webhook.
    pub vehicles: usize,
    /// Vehicles created, seeded and subscribed per batch of setup (one transaction per step).
    pub setup_batch: usize,
    /// How far before the boundary the clock jumps, in milliseconds.
    pub lead_ms: i64,
    /// How long to wait, from the boundary, for every vehicle before failing, in seconds.
    pub delivery_timeout_s: f64,
    /// The database (`None`: a fresh temporary SQLite file, removed afterwards).
    pub database_url: Option<String>,
    /// Print progress lines to stderr.
    #[serde(skip)]
    pub progress: bool,
}

impl ScheduleBurstConfig {
    /// The full scenario: 1,000,000 vehicles due at one boundary.
    pub fn full() -> Self {
        ScheduleBurstConfig {
            vehicles: 1_000_000,
            setup_batch: 20_000,
            lead_ms: 1_000,
            delivery_timeout_s: 600.0,
            database_url: None,
            progress: true,
        }
    }

    /// `--quick`: 100,000 vehicles.
    pub fn quick() -> Self {
        ScheduleBurstConfig {
            vehicles: 100_000,
            ..Self::full()
        }
    }

    /// The test suite's smoke run: 200 vehicles, set up in several batches.
    pub fn smoke() -> Self {
        ScheduleBurstConfig {
            vehicles: 200,
            setup_batch: 64,
            lead_ms: 200,
            delivery_timeout_s: 60.0,
            database_url: None,
            progress: false,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.vehicles == 0 {
            bail!("the scenario needs at least one vehicle");
        }
        if self.vehicles > 999_999_999_999 {
            bail!("vehicle indexes have 12 digits");
        }
        if self.setup_batch == 0 {
            bail!("setup_batch must be at least 1");
        }
        if !(0..HOUR_MS / 2).contains(&self.lead_ms) {
            bail!("lead_ms must be from 0 to half an hour");
        }
        if !(self.delivery_timeout_s.is_finite() && self.delivery_timeout_s > 0.0) {
            bail!("the delivery timeout must be a positive number");
        }
        Ok(())
    }
}

/// What a run measured and counted.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleBurstReport {
    /// Vehicles subscribed (the fleet).
    pub vehicles: usize,
    /// Seconds from the boundary to the receiver getting the last vehicle.
    pub seconds: f64,
    /// Peak resident memory of this process (server, receiver, driver), in bytes; over the
    /// burst when `peak_rss_scope` is `burst`, over the whole run when it is `run`.
    pub peak_rss_bytes: Option<u64>,
    /// `burst` (the peak was reset just before the boundary) or `run` (it could not be).
    pub peak_rss_scope: String,
    /// Peak resident memory before the reset: what setup took.
    pub setup_peak_rss_bytes: Option<u64>,
    /// Resident memory at the boundary, where the burst's peak starts from.
    pub rss_at_boundary_bytes: Option<u64>,
    /// Distinct vehicles of the fleet the receiver got (a correct run: `vehicles`).
    pub vehicles_delivered: usize,
    /// Vehicle entries beyond the first of a vehicle (a correct run: 0).
    pub duplicates: usize,
    /// Vehicle entries naming no vehicle of the fleet (a correct run: 0).
    pub unknown_vehicles: usize,
    /// `data` items with a code other than 200 (a correct run: 0).
    pub error_items: usize,
    /// Bodies received, challenge excluded.
    pub bodies: usize,
    /// Vehicles per body, on average.
    pub vehicles_per_body: f64,
    /// The largest body, in bytes.
    pub max_body_bytes: usize,
    /// Vehicles delivered per second over `seconds`.
    pub deliveries_per_s: f64,
    /// Bodies received per second over `seconds`.
    pub bodies_per_s: f64,
    /// Seconds from the boundary to the first body.
    pub first_body_s: f64,
    /// Seconds from the boundary until the scheduler had enqueued the whole boundary (it had
    /// moved on to the next), as seen by polling every 50 ms; `None` if not seen.
    pub enqueued_s: Option<f64>,
    /// Deliveries still pending in the outbox at the end (a correct run: 0).
    pub outbox_pending_after: i64,
    /// Seconds spent creating, seeding and subscribing the fleet (not measured).
    pub setup_s: f64,
}

/// The receiver's tally. Vehicles are counted by index, one byte each.
#[derive(Debug, Default)]
struct Tally {
    /// Deliveries of each vehicle (saturating).
    counts: Vec<u8>,
    delivered: usize,
    duplicates: usize,
    unknown: usize,
    error_items: usize,
    bodies: usize,
    max_body_bytes: usize,
    first_at: Option<Instant>,
    /// When the body that completed the fleet arrived.
    complete_at: Option<Instant>,
}

#[derive(Clone)]
struct ReceiverState {
    amt: String,
    /// The run's vehicle id prefix.
    run: Arc<str>,
    tally: Arc<Mutex<Tally>>,
}

/// The parts of a v2.0 body the receiver reads; the rest is skipped while parsing.
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    payload: BodyPayload<'a>,
}

#[derive(Deserialize)]
struct BodyPayload<'a> {
    #[serde(borrow, default)]
    challenge: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    vehicles: Vec<BodyVehicle<'a>>,
}

#[derive(Deserialize)]
struct BodyVehicle<'a> {
    #[serde(borrow, rename = "vehicleId")]
    vehicle_id: Cow<'a, str>,
    data: Vec<BodyItem>,
}

#[derive(Deserialize)]
struct BodyItem {
    code: u16,
}

/// The id of vehicle `index` of the run `run` (8 hex digits): UUID-shaped, unique per run,
/// and ordered like the indexes.
fn vehicle_id(run: &str, index: usize) -> String {
    format!("{run}-0000-4000-8000-{index:012}")
}

/// The index of a vehicle id of the run, if it is one.
fn vehicle_index(run: &str, id: &str) -> Option<usize> {
    let digits = id.strip_prefix(run)?.strip_prefix("-0000-4000-8000-")?;
    (digits.len() == 12).then(|| digits.parse().ok()).flatten()
}

/// `fleethook bench schedule-burst [--quick] [--database-url URL]`.
pub async fn run_cli(args: &BenchArgs) -> anyhow::Result<()> {
    let mut config = if args.quick {
        ScheduleBurstConfig::quick()
    } else {
        ScheduleBurstConfig::full()
    };
    config.database_url = args.database_url.clone();
    let machine = MachineFacts::collect();
    eprintln!(
        "{NAME}: {} vehicles subscribed to one hourly scheduled webhook (/battery, /location)",
        config.vehicles
    );
    let report = run_scenario(config.clone()).await?;

    let mib = |b: Option<u64>| {
        b.map(|b| format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64))
            .unwrap_or_else(|| "unknown".into())
    };
    println!();
    println!(
        "fleethook bench {NAME}{}",
        if args.quick { " (quick)" } else { "" }
    );
    println!("  machine: {}", machine.summary());
    println!(
        "  fleet: {} vehicles due at one hourly boundary; setup {:.1} s",
        report.vehicles, report.setup_s
    );
    println!();
    println!("  boundary → receiver got the last vehicle");
    println!(
        "  {:<40} {:>12.2} s",
        "  all delivered after", report.seconds
    );
    println!(
        "  {:<40} {:>12.2} s",
        "  first body after", report.first_body_s
    );
    if let Some(enqueued) = report.enqueued_s {
        println!("  {:<40} {:>12.2} s", "  all enqueued after", enqueued);
    }
    println!(
        "  {:<40} {:>12.0} /s",
        "vehicles delivered per second", report.deliveries_per_s
    );
    println!(
        "  {:<40} {:>12.1} /s",
        "bodies per second", report.bodies_per_s
    );
    println!(
        "  {:<40} {:>12}",
        format!("peak RSS ({})", report.peak_rss_scope),
        mib(report.peak_rss_bytes)
    );
    println!(
        "  {:<40} {:>12}",
        "  RSS at the boundary",
        mib(report.rss_at_boundary_bytes)
    );
    println!(
        "  {:<40} {:>12}",
        "  peak RSS during setup",
        mib(report.setup_peak_rss_bytes)
    );
    println!(
        "  {:<40} {:>12}",
        "vehicles delivered", report.vehicles_delivered
    );
    println!("  {:<40} {:>12}", "bodies", report.bodies);
    println!(
        "  {:<40} {:>12.1}",
        "vehicles per body", report.vehicles_per_body
    );
    println!("  {:<40} {:>12}", "duplicates", report.duplicates);
    println!("  {:<40} {:>12}", "error items", report.error_items);
    println!(
        "  {:<40} {:>12}",
        "left in the outbox", report.outbox_pending_after
    );

    write_scenario_report(NAME, args.quick, &report, &config, &machine)
}

/// Runs the scenario once: starts the server and the receiver, builds the fleet, lets the
/// boundary come, waits for every vehicle and returns what it measured. Fails when setup fails
/// or not every vehicle is delivered within the timeout.
pub async fn run_scenario(config: ScheduleBurstConfig) -> anyhow::Result<ScheduleBurstReport> {
    config.validate()?;
    // One second past an hour boundary: the next one is almost an hour away.
    let real = real_now_ms();
    let clock = JumpClock::new(real - real.rem_euclid(HOUR_MS) + 1_000);
    let bench = BenchServer::start(
        config.database_url.as_deref(),
        clock.clone(),
        Default::default(),
    )
    .await?;
    let run: Arc<str> = new_id()[..8].into();
    let receiver = ReceiverState {
        amt: bench.app.management_token.clone(),
        run: run.clone(),
        tally: Arc::new(Mutex::new(Tally {
            counts: vec![0; config.vehicles],
            ..Tally::default()
        })),
    };
    let hook = Receiver::start(
        Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone()),
    )
    .await?;
    let result = measure(
        &config,
        &bench.server,
        &bench.app,
        &clock,
        &receiver,
        &hook.url,
    )
    .await;
    bench.stop().await;
    hook.stop();
    result
}

/// Setup, boundary, wait and count, against a running server.
async fn measure(
    config: &ScheduleBurstConfig,
    server: &RunningServer,
    app: &App,
    clock: &JumpClock,
    receiver: &ReceiverState,
    receiver_url: &str,
) -> anyhow::Result<ScheduleBurstReport> {
    let progress = |line: String| {
        if config.progress {
            eprintln!("  {line}");
        }
    };
    let store = server.state.store.clone();
    let base = server.url();
    let amt = app.management_token.as_str();
    let http = api_client()?;

    // --- setup (not measured) ---
    let setup_started = Instant::now();
    let created = api_call(
        &http,
        amt,
        reqwest::Method::POST,
        format!("{base}/api/v1/webhooks"),
        Some(json!({
            "name": "bench schedule-burst",
            "type": "scheduled",
            "callbackUri": receiver_url,
            "schedule": {"frequency": "hourly", "interval": 1},
            "endpoints": ["/battery", "/location"],
            "units": "metric",
        })),
    )
    .await?;
    let webhook_id = created["id"]
        .as_str()
        .context("the created webhook has no id")?
        .to_string();
    api_call(
        &http,
        amt,
        reqwest::Method::POST,
        format!("{base}/api/v1/webhooks/{webhook_id}/verify"),
        None,
    )
    .await?;

    let run = receiver.run.as_ref();
    let mut next_report = Instant::now();
    for first in (0..config.vehicles).step_by(config.setup_batch) {
        let indexes = first..(first + config.setup_batch).min(config.vehicles);
        let now = clock.now_ms();
        let vehicles: Vec<Vehicle> = indexes
            .clone()
            .map(|index| Vehicle {
                id: vehicle_id(run, index),
                app_id: app.id.clone(),
                user_id: format!("burst-user-{index:012}"),
                access_token: new_token("vat_"),
                make: "TESLA".into(),
                model: "Model 3".into(),
                year: 2020,
                // 17 characters, unique within the application across runs.
                vin: format!("{}{index:09}", run.to_ascii_uppercase()),
                mode: VehicleMode::Live,
                simulated: false,
                created_at: now,
            })
            .collect();
        store.create_vehicles(&vehicles).await?;
        let seeds: Vec<Vec<SignalValue>> = indexes.clone().map(|i| seed(i, now)).collect();
        let items: Vec<IngestItem<'_>> = vehicles
            .iter()
            .zip(&seeds)
            .map(|(vehicle, signals)| IngestItem {
                vehicle_id: &vehicle.id,
                signals,
                errors: None,
                now,
                render: None,
            })
            .collect();
        for result in store.apply_ingest_batch(&items).await {
            result.context("seeding a vehicle's state failed")?;
        }
        let ids: Vec<String> = vehicles.into_iter().map(|v| v.id).collect();
        store.subscribe_many(&webhook_id, &ids, now).await?;
        if Instant::now() >= next_report {
            progress(format!(
                "{} of {} vehicles created, seeded and subscribed ({:.1} s)",
                indexes.end,
                config.vehicles,
                setup_started.elapsed().as_secs_f64()
            ));
            next_report = Instant::now() + Duration::from_secs(5);
        }
    }
    let boundary = store
        .next_trigger_at()
        .await?
        .context("the scheduled webhook has no boundary")?;
    if boundary <= clock.now_ms() + config.lead_ms {
        bail!("setup ran past the boundary it was to wait for");
    }
    let setup_s = setup_started.elapsed().as_secs_f64();
    progress(format!(
        "webhook verified, {} vehicles subscribed; setup took {setup_s:.1} s",
        config.vehicles
    ));

    // --- the boundary ---
    let (setup_peak_rss_bytes, _) = memory_of_self();
    let reset = reset_peak_memory();
    let (_, rss_at_boundary_bytes) = memory_of_self();
    clock.jump_to(boundary - config.lead_ms);
    let at_boundary = Instant::now() + clock.real_wait_until(boundary).unwrap_or_default();
    progress(format!(
        "clock moved to {} ms before the boundary; waiting for {} vehicles",
        config.lead_ms, config.vehicles
    ));

    // --- wait for every vehicle ---
    let deadline = at_boundary + Duration::from_secs_f64(config.delivery_timeout_s);
    let mut enqueued_at = None;
    let mut next_poll = Instant::now();
    let mut next_report = Instant::now() + Duration::from_secs(5);
    let complete_at = loop {
        let (delivered, bodies, complete_at) = {
            let tally = receiver
                .tally
                .lock()
                .map_err(|_| anyhow!("the receiver's tally is poisoned"))?;
            (tally.delivered, tally.bodies, tally.complete_at)
        };
        if let Some(at) = complete_at {
            break at;
        }
        let now = Instant::now();
        if enqueued_at.is_none() && now >= next_poll {
            next_poll = now + Duration::from_millis(50);
            if store
                .next_trigger_at()
                .await?
                .is_some_and(|at| at > boundary)
            {
                enqueued_at = Some(now);
            }
        }
        if now >= next_report {
            next_report = now + Duration::from_secs(5);
            progress(format!(
                "{:.0} s: {delivered} vehicles in {bodies} bodies",
                now.saturating_duration_since(at_boundary).as_secs_f64()
            ));
        }
        if now >= deadline {
            bail!(
                "only {delivered} of {} vehicles were delivered within {} s of the boundary",
                config.vehicles,
                config.delivery_timeout_s
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // The grace period; the scheduler's last commit can come just after the last delivery.
    let grace_ends = Instant::now() + GRACE;
    while Instant::now() < grace_ends {
        if enqueued_at.is_none()
            && store
                .next_trigger_at()
                .await?
                .is_some_and(|at| at > boundary)
        {
            enqueued_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // --- count and measure ---
    let (peak_rss_bytes, _) = memory_of_self();
    let outbox_pending_after = store.outbox_depth().await?;
    let tally = receiver
        .tally
        .lock()
        .map_err(|_| anyhow!("the receiver's tally is poisoned"))?;
    let since_boundary = |at: Instant| at.saturating_duration_since(at_boundary).as_secs_f64();
    let seconds = since_boundary(complete_at);
    let per_s = |n: usize| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    Ok(ScheduleBurstReport {
        vehicles: config.vehicles,
        seconds,
        peak_rss_bytes,
        peak_rss_scope: if reset { "burst" } else { "run" }.into(),
        setup_peak_rss_bytes,
        rss_at_boundary_bytes,
        vehicles_delivered: tally.delivered,
        duplicates: tally.duplicates,
        unknown_vehicles: tally.unknown,
        error_items: tally.error_items,
        bodies: tally.bodies,
        vehicles_per_body: if tally.bodies > 0 {
            (tally.delivered + tally.duplicates) as f64 / tally.bodies as f64
        } else {
            0.0
        },
        max_body_bytes: tally.max_body_bytes,
        deliveries_per_s: per_s(tally.delivered),
        bodies_per_s: per_s(tally.bodies),
        first_body_s: tally.first_at.map(since_boundary).unwrap_or(0.0),
        enqueued_s: enqueued_at.map(since_boundary),
        outbox_pending_after,
        setup_s,
    })
}

/// The seeded state of vehicle `index`: state of charge, range and location, varied by index.
fn seed(index: usize, now: Millis) -> Vec<SignalValue> {
    let soc = 20 + (index % 80) as i64;
    let signal = |code: &str, body: Value| SignalValue {
        code: code.into(),
        body,
        oem_updated_at: Some(now - 60_000),
        retrieved_at: now,
    };
    vec![
        signal(
            "tractionbattery-stateofcharge",
            json!({"unit": "percent", "value": soc}),
        ),
        signal(
            "tractionbattery-range",
            json!({"unit": "kilometers", "value": soc as f64 * 4.5}),
        ),
        signal(
            "location-preciselocation",
            json!({
                "latitude": 37.0 + (index % 1000) as f64 / 1000.0,
                "longitude": -122.0 - (index / 1000 % 1000) as f64 / 1000.0,
            }),
        ),
    ]
}

/// The receiver: answers the challenge, tallies the vehicles of every other body, answers 200.
async fn receive(State(state): State<ReceiverState>, body: Bytes) -> Response {
    let at = Instant::now();
    let Ok(parsed) = serde_json::from_slice::<Body<'_>>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if let Some(challenge) = parsed.payload.challenge {
        return answer_challenge(&state.amt, &challenge);
    }
    let Ok(mut tally) = state.tally.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    tally.bodies += 1;
    tally.max_body_bytes = tally.max_body_bytes.max(body.len());
    tally.first_at.get_or_insert(at);
    for vehicle in &parsed.payload.vehicles {
        tally.error_items += vehicle.data.iter().filter(|i| i.code != 200).count();
        match vehicle_index(&state.run, &vehicle.vehicle_id) {
            Some(index) if index < tally.counts.len() => {
                let count = &mut tally.counts[index];
                *count = count.saturating_add(1);
                if *count == 1 {
                    tally.delivered += 1;
                } else {
                    tally.duplicates += 1;
                }
            }
            _ => tally.unknown += 1,
        }
    }
    if tally.complete_at.is_none() && tally.delivered == tally.counts.len() {
        tally.complete_at = Some(at);
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vehicle_ids_name_their_index_and_sort_like_it() {
        let run = "1a2b3c4d";
        let id = vehicle_id(run, 42);
        assert_eq!(id, "1a2b3c4d-0000-4000-8000-000000000042");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "UUID-shaped");
        assert_eq!(vehicle_index(run, &id), Some(42));
        assert_eq!(vehicle_index("ffffffff", &id), None, "another run's");
        assert_eq!(vehicle_index(run, "1a2b3c4d-0000-4000-8000-42"), None);
        assert!(vehicle_id(run, 9) < vehicle_id(run, 10));
    }

    #[test]
    fn the_receiver_reads_vehicle_ids_and_item_codes_only() {
        let body = r#"{"version":"2.0","webhookId":"w","eventName":"scheduled","mode":"live","payload":{"vehicles":[
            {"vehicleId":"v1","requestId":"r","data":[{"path":"/battery","code":200,"body":{"range":1},"headers":{}},
            {"path":"/location","code":501,"body":{"type":"COMPATIBILITY"},"headers":{}}]}]}}"#;
        let parsed: Body<'_> = serde_json::from_str(body).unwrap();
        assert!(parsed.payload.challenge.is_none());
        assert_eq!(parsed.payload.vehicles.len(), 1);
        assert_eq!(parsed.payload.vehicles[0].vehicle_id, "v1");
        let codes: Vec<u16> = parsed.payload.vehicles[0]
            .data
            .iter()
            .map(|i| i.code)
            .collect();
        assert_eq!(codes, [200, 501]);
        let verify =
            r#"{"version":"2.0","webhookId":"w","eventName":"verify","payload":{"challenge":"c"}}"#;
        let parsed: Body<'_> = serde_json::from_str(verify).unwrap();
        assert_eq!(parsed.payload.challenge.as_deref(), Some("c"));
    }
}
