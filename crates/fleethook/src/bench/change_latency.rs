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
//! **How.** Everything runs in this process on 127.0.0.1, the way `fleethook demo` does it:
//! 1. the real server ([`RunningServer`]) on a fresh temporary SQLite file (or
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

use std::collections::{HashMap, HashSet};
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
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::common::{
    answer_challenge, api_call, api_client, ms, write_scenario_report, BenchServer, Receiver,
};
use super::{percentile, BenchArgs, MachineFacts};
use crate::clock::ScaledClock;
use crate::ids::{new_id, new_token};
use crate::model::{App, Vehicle, VehicleMode};
use crate::server::RunningServer;

/// The scenario's name on the command line and in `target/bench/change-latency.json`.
pub const NAME: &str = "change-latency";

/// The signal that changes and triggers the webhook.
const SIGNAL: &str = "tractionbattery-stateofcharge";

/// Values are whole percents; a vehicle's k-th change gets `(SEED + k) % 100`, so it differs
/// from the previous one and is unique for that vehicle while k < 100.
const SEED: i64 = 50;

/// How long to keep listening for duplicates once every change has been delivered.
const GRACE: Duration = Duration::from_millis(300);

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
        (self.rate_per_s * self.duration_s).round() as usize
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.vehicles == 0 {
            bail!("the scenario needs at least one vehicle");
        }
        if !(self.rate_per_s.is_finite() && self.rate_per_s > 0.0) {
            bail!("the change rate must be a positive number");
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0) || self.changes() == 0 {
            bail!("the run must drive at least one change");
        }
        if self.max_in_flight == 0 {
            bail!("max_in_flight must be at least 1");
        }
        if self.changes().div_ceil(self.vehicles) >= 100 {
            bail!(
                "{} changes over {} vehicles is 100 or more per vehicle: values would repeat",
                self.changes(),
                self.vehicles
            );
        }
        Ok(())
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

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    vehicle_id: String,
    value: Option<i64>,
    trigger: String,
}

#[derive(Clone)]
struct ReceiverState {
    amt: String,
    received: Arc<Mutex<Vec<Received>>>,
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

    write_scenario_report(NAME, args.quick, &report, &config, &machine)
}

/// Runs the scenario once: starts the server and the receiver, builds the fleet, drives the
/// changes, waits for every delivery and returns what it measured. Fails when a change is
/// refused or not every change is delivered within the timeout.
pub async fn run_scenario(config: ChangeLatencyConfig) -> anyhow::Result<ChangeLatencyReport> {
    config.validate()?;
    let clock = Arc::new(ScaledClock::new(1.0));
    let bench =
        BenchServer::start(config.database_url.as_deref(), clock, Default::default()).await?;
    let receiver = ReceiverState {
        amt: bench.app.management_token.clone(),
        received: Arc::new(Mutex::new(Vec::new())),
    };
    let hook = Receiver::start(
        Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone()),
    )
    .await?;
    let result = measure(&config, &bench.server, &bench.app, &receiver, &hook.url).await;
    bench.stop().await;
    hook.stop();
    result
}

/// Setup, drive, wait and count, against a running server.
async fn measure(
    config: &ChangeLatencyConfig,
    server: &RunningServer,
    app: &App,
    receiver: &ReceiverState,
    receiver_url: &str,
) -> anyhow::Result<ChangeLatencyReport> {
    let progress = |line: String| {
        if config.progress {
            eprintln!("  {line}");
        }
    };
    let store = server.state.store.clone();
    let clock = server.state.clock.clone();
    let base = server.url();
    let amt = app.management_token.as_str();
    let http = api_client()?;

    // --- setup (not measured) ---
    let setup_started = Instant::now();
    let mut vehicle_ids = Vec::with_capacity(config.vehicles);
    for index in 0..config.vehicles {
        let now = clock.now_ms();
        let vehicle = Vehicle {
            id: new_id(),
            app_id: app.id.clone(),
            user_id: format!("bench-user-{index:06}"),
            access_token: new_token("vat_"),
            make: "TESLA".into(),
            model: "Model 3".into(),
            year: 2020,
            vin: format!("BENCH{index:012}"),
            mode: VehicleMode::Live,
            simulated: false,
            created_at: now,
        };
        store.create_vehicle(&vehicle).await?;
        let seed = SignalValue {
            code: SIGNAL.into(),
            body: json!({"unit": "percent", "value": SEED}),
            oem_updated_at: None,
            retrieved_at: now,
        };
        store.apply_ingest(&vehicle.id, &[seed], None, now).await?;
        vehicle_ids.push(vehicle.id);
    }
    progress(format!(
        "created and seeded {} vehicles in {:.1} s",
        config.vehicles,
        setup_started.elapsed().as_secs_f64()
    ));

    let created = api_call(
        &http,
        amt,
        reqwest::Method::POST,
        format!("{base}/api/v1/webhooks"),
        Some(json!({
            "name": "bench change-latency",
            "type": "vehicleState",
            "callbackUri": receiver_url,
            "triggers": [SIGNAL],
        })),
    )
    .await?;
    let webhook_id = created["id"]
        .as_str()
        .context("the created webhook has no id")?
        .to_string();
    // Verified while nobody is subscribed: enabling then sends no first deliveries.
    api_call(
        &http,
        amt,
        reqwest::Method::POST,
        format!("{base}/api/v1/webhooks/{webhook_id}/verify"),
        None,
    )
    .await?;
    // Through the store: no FIRST_DELIVERY is enqueued for these subscriptions.
    for id in &vehicle_ids {
        store.subscribe(&webhook_id, id, clock.now_ms()).await?;
    }
    let setup_s = setup_started.elapsed().as_secs_f64();
    progress(format!(
        "webhook verified, {} vehicles subscribed; setup took {setup_s:.1} s",
        vehicle_ids.len()
    ));

    // --- drive ---
    let total = config.changes();
    let vehicle_ids = Arc::new(vehicle_ids);
    let permits = Arc::new(Semaphore::new(config.max_in_flight));
    let mut tasks: JoinSet<anyhow::Result<(usize, Instant, Instant)>> = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    progress(format!(
        "driving {total} changes at {}/s",
        config.rate_per_s
    ));
    let drive_started = Instant::now();
    let mut issued = 0usize;
    while issued < total {
        ticker.tick().await;
        let due = ((drive_started.elapsed().as_secs_f64() * config.rate_per_s).floor() as usize
            + 1)
        .min(total);
        while issued < due {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .context("the in-flight limiter closed")?;
            let (vehicle, value) = change_of(issued, vehicle_ids.len());
            let url = format!("{base}/api/v1/vehicles/{}/signals", vehicle_ids[vehicle]);
            let request = http.post(url).bearer_auth(amt).json(&json!({
                "signals": [{"code": SIGNAL, "body": {"unit": "percent", "value": value}}]
            }));
            let index = issued;
            tasks.spawn(async move {
                let sent = Instant::now();
                let response = request.send().await.context("ingest request failed")?;
                let accepted = Instant::now();
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                drop(permit);
                if status != reqwest::StatusCode::ACCEPTED {
                    bail!("ingest answered {status}: {body}");
                }
                let changed = body["changed"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == SIGNAL));
                if !changed {
                    bail!("ingest did not count {SIGNAL} as changed: {body}");
                }
                Ok((index, sent, accepted))
            });
            issued += 1;
        }
    }
    let mut accepted_at: HashMap<(String, i64), Instant> = HashMap::with_capacity(total);
    let mut round_trips = Vec::with_capacity(total);
    let mut last_accepted = drive_started;
    while let Some(joined) = tasks.join_next().await {
        let (index, sent, accepted) = joined.context("an ingest task panicked")??;
        let (vehicle, value) = change_of(index, vehicle_ids.len());
        accepted_at.insert((vehicle_ids[vehicle].clone(), value), accepted);
        round_trips.push(ms(accepted.saturating_duration_since(sent)));
        last_accepted = last_accepted.max(accepted);
    }
    let drive_s = last_accepted
        .saturating_duration_since(drive_started)
        .as_secs_f64();
    progress(format!(
        "{total} changes accepted in {drive_s:.2} s; waiting for deliveries"
    ));

    // --- wait for every delivery ---
    let deadline = Instant::now() + Duration::from_secs_f64(config.delivery_timeout_s);
    let mut delivered: HashSet<(String, i64)> = HashSet::with_capacity(total);
    let mut seen = 0usize;
    let all_delivered_at = loop {
        {
            let received = receiver
                .received
                .lock()
                .map_err(|_| anyhow!("the receiver's record is poisoned"))?;
            for r in &received[seen..] {
                if let Some(value) = r.value {
                    let key = (r.vehicle_id.clone(), value);
                    if accepted_at.contains_key(&key) {
                        delivered.insert(key);
                    }
                }
            }
            seen = received.len();
        }
        if delivered.len() == total {
            break Instant::now();
        }
        if Instant::now() >= deadline {
            bail!(
                "only {} of {total} changes were delivered within {} s of the last ingest",
                delivered.len(),
                config.delivery_timeout_s
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(GRACE).await;

    // --- count and measure ---
    let received: Vec<Received> = receiver
        .received
        .lock()
        .map_err(|_| anyhow!("the receiver's record is poisoned"))?
        .clone();
    let mut first_seen: HashMap<(String, i64), Instant> = HashMap::with_capacity(total);
    let (mut deliveries, mut duplicates, mut unmatched, mut first_deliveries) = (0, 0, 0, 0);
    for r in received {
        if r.trigger == "FIRST_DELIVERY" {
            first_deliveries += 1;
            continue;
        }
        deliveries += 1;
        let Some(value) = r.value else {
            unmatched += 1;
            continue;
        };
        let key = (r.vehicle_id, value);
        if !accepted_at.contains_key(&key) {
            unmatched += 1;
        } else if let Some(at) = first_seen.get_mut(&key) {
            duplicates += 1;
            *at = (*at).min(r.at);
        } else {
            first_seen.insert(key, r.at);
        }
    }
    let mut latencies: Vec<f64> = first_seen
        .iter()
        .filter_map(|(key, got)| {
            accepted_at
                .get(key)
                .map(|accepted| ms(got.saturating_duration_since(*accepted)))
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    round_trips.sort_by(f64::total_cmp);
    let outbox_pending_after = store.outbox_depth().await?;
    Ok(ChangeLatencyReport {
        p50_ms: percentile(&latencies, 0.50).unwrap_or(0.0),
        p99_ms: percentile(&latencies, 0.99).unwrap_or(0.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        changes: total,
        deliveries,
        delivered_changes: first_seen.len(),
        duplicates,
        unmatched,
        first_deliveries,
        achieved_rate_per_s: if drive_s > 0.0 {
            total as f64 / drive_s
        } else {
            0.0
        },
        drive_s,
        drain_s: all_delivered_at
            .saturating_duration_since(last_accepted)
            .as_secs_f64(),
        ingest_p50_ms: percentile(&round_trips, 0.50).unwrap_or(0.0),
        ingest_p99_ms: percentile(&round_trips, 0.99).unwrap_or(0.0),
        outbox_pending_after,
        setup_s,
    })
}

/// Change `index` of the run: the vehicle (round robin) and the value it is set to.
fn change_of(index: usize, vehicles: usize) -> (usize, i64) {
    let round = (index / vehicles) as i64 + 1;
    (index % vehicles, (SEED + round) % 100)
}

/// The receiver: answers the challenge, records every other payload, answers 200.
async fn receive(State(state): State<ReceiverState>, body: Bytes) -> Response {
    let at = Instant::now();
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if let Some(challenge) = payload["data"]["challenge"]
        .as_str()
        .or_else(|| payload["payload"]["challenge"].as_str())
    {
        return answer_challenge(&state.amt, challenge);
    }
    if payload["eventType"] == "VEHICLE_STATE" {
        let value = payload["data"]["signals"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["code"] == SIGNAL)
            .and_then(|s| s["body"]["value"].as_f64())
            .map(|v| v.round() as i64);
        let record = Received {
            at,
            vehicle_id: payload["vehicleId"].as_str().unwrap_or("").to_string(),
            value,
            trigger: payload["triggers"][0]["type"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        };
        if let Ok(mut received) = state.received.lock() {
            received.push(record);
        }
    }
    StatusCode::OK.into_response()
}
