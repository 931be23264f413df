//! What the scenarios that drive signal changes (change-latency, fairness) share: the in-process server on a fresh database, the keep-alive
//! receiver, the fleet, vehicleState webhooks verified through the API, the paced load
//! driver of signal changes, and the matching of deliveries to changes.
//!
//! Every change sets [`SIGNAL`] of one vehicle to a value that differs from that vehicle's
//! previous one ([`change_of`]), so `(vehicleId, value)` names a change uniquely and the
//! receiver can match each delivery to the change it carries.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use fleethook_wire::signal::SignalValue;
use fleethook_wire::signing::hash_challenge;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::clock::{Clock, ScaledClock};
use crate::delivery::dispatcher::DispatcherSettings;
use crate::model::{App, Vehicle};
use crate::server::{ensure_default_app, open_store, RunningServer, ServerOptions};
use crate::store::SharedStore;

pub use super::common::ms;
use super::{bench_vehicle, BenchDatabase};
use crate::clock::Millis;

/// The signal that changes and triggers the webhooks.
pub const SIGNAL: &str = "tractionbattery-stateofcharge";

/// Values are whole percents; a vehicle's k-th change gets `(SEED + k) % 100`, so it differs
/// from the previous one and is unique for that vehicle while k < 100.
pub const SEED: i64 = 50;

/// How long to keep listening for duplicates once every change has been delivered.
pub const GRACE: Duration = Duration::from_millis(300);

/// A change: the vehicle it is for and the value it sets.
pub type ChangeKey = (String, i64);

/// Change `index` of a run: the vehicle (round robin over `vehicles`) and the value it is set
/// to.
pub fn change_of(index: usize, vehicles: usize) -> (usize, i64) {
    let round = (index / vehicles) as i64 + 1;
    (index % vehicles, (SEED + round) % 100)
}

/// Fails when `changes` over `vehicles` would give a vehicle the same value twice.
pub fn check_values_unique(changes: usize, vehicles: usize) -> anyhow::Result<()> {
    if changes.div_ceil(vehicles.max(1)) >= 100 {
        bail!("{changes} changes over {vehicles} vehicles is 100 or more per vehicle: values would repeat");
    }
    Ok(())
}

/// Fails unless the load is a positive rate for a positive time, driving at least one change,
/// with at least one request in flight.
pub fn check_load(rate_per_s: f64, duration_s: f64, max_in_flight: usize) -> anyhow::Result<()> {
    if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
        bail!("the change rate must be a positive number");
    }
    if !(duration_s.is_finite() && duration_s > 0.0) || changes(rate_per_s, duration_s) == 0 {
        bail!("the run must drive at least one change");
    }
    if max_in_flight == 0 {
        bail!("max_in_flight must be at least 1");
    }
    Ok(())
}

/// The number of changes `rate_per_s` for `duration_s` drives.
pub fn changes(rate_per_s: f64, duration_s: f64) -> usize {
    (rate_per_s * duration_s).round() as usize
}

/// How a receiver endpoint answers deliveries (the challenge is always answered right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behavior {
    /// `200` at once.
    Healthy,
    /// `500` at once.
    Error500,
    /// Never answers: the request hangs until the sender gives up (or the receiver is
    /// released at the end of the run).
    Hang,
}

/// One `VEHICLE_STATE` payload as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the receiver's handler started on it.
    pub at: Instant,
    /// The endpoint (`/hook/{n}`); `None` for `/hook`.
    pub endpoint: Option<usize>,
    /// How the endpoint answered it.
    pub answered: Behavior,
    pub vehicle_id: String,
    /// The [`SIGNAL`] value it carries.
    pub value: Option<i64>,
    /// The type of its first trigger (`SIGNAL_UPDATED`, `FIRST_DELIVERY`).
    pub trigger: String,
}

/// The receiver's shared record.
#[derive(Clone)]
pub struct Receiver {
    amt: String,
    behaviors: Arc<Vec<Behavior>>,
    released: watch::Receiver<bool>,
    /// Every `VEHICLE_STATE` payload received, in arrival order.
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// A copy of everything received so far.
    pub fn snapshot(&self) -> anyhow::Result<Vec<Received>> {
        Ok(self
            .received
            .lock()
            .map_err(|_| anyhow!("the receiver's record is poisoned"))?
            .clone())
    }

    /// How endpoint `endpoint` answers (`/hook` and unknown endpoints: healthy).
    fn behavior(&self, endpoint: Option<usize>) -> Behavior {
        endpoint
            .and_then(|n| self.behaviors.get(n).copied())
            .unwrap_or(Behavior::Healthy)
    }
}

/// Everything a scenario runs against: the real server in-process on 127.0.0.1 (real-time
/// clock, background dispatcher, loopback callbacks allowed) on a fresh temporary SQLite file
/// or the given database, the default application, and a keep-alive axum receiver whose
/// endpoint `/hook/{n}` answers as `behaviors[n]` (and `/hook` as a healthy one).
pub struct Bench {
    pub server: RunningServer,
    pub app: App,
    pub receiver: Receiver,
    /// `http://127.0.0.1:PORT/hook`; endpoint `n` is this plus `/{n}`.
    pub receiver_url: String,
    /// A pooled client for the management and ingest APIs.
    pub http: reqwest::Client,
    release: watch::Sender<bool>,
    receiver_task: JoinHandle<()>,
    database: BenchDatabase,
}

impl Bench {
    /// Starts the receiver and the server.
    pub async fn start(
        database_url: Option<&str>,
        behaviors: Vec<Behavior>,
        dispatcher: DispatcherSettings,
    ) -> anyhow::Result<Bench> {
        let database = BenchDatabase::prepare(database_url).await?;
        let store = open_store(database.url()).await?;
        let clock = Arc::new(ScaledClock::new(1.0));
        let (app, _) = ensure_default_app(&store, None, clock.now_ms()).await?;

        let (release, released) = watch::channel(false);
        let receiver = Receiver {
            amt: app.management_token.clone(),
            behaviors: Arc::new(behaviors),
            released,
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the receiver")?;
        let receiver_url = format!("http://{}/hook", listener.local_addr()?);
        let router = Router::new()
            .route("/hook", post(receive_default))
            .route("/hook/{endpoint}", post(receive_endpoint))
            .with_state(receiver.clone());
        let receiver_task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let server = RunningServer::start(
            store,
            clock,
            ServerOptions {
                listen: "127.0.0.1:0".into(),
                allow_private: true,
                dispatcher,
                background_dispatcher: true,
            },
        )
        .await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Bench {
            server,
            app,
            receiver,
            receiver_url,
            http,
            release,
            receiver_task,
            database,
        })
    }

    /// The store the server runs on.
    pub fn store(&self) -> &SharedStore {
        &self.server.state.store
    }

    /// Ends hanging requests (they answer 503), stops the server (attempts in flight finish
    /// and are recorded) and the receiver, and removes the temporary database.
    pub async fn stop(self) {
        let _ = self.release.send(true);
        self.server.stop().await;
        self.receiver_task.abort();
        drop(self.database);
    }

    /// Creates `count` live vehicles directly through the store, each seeded with [`SIGNAL`]
    /// at [`SEED`] (fast setup, not measured); returns their ids in creation order. VINs and
    /// user ids carry a tag of this fleet, so runs on one `--database-url` do not collide.
    pub async fn create_fleet(&self, count: usize) -> anyhow::Result<Vec<String>> {
        let clock = self.server.state.clock.as_ref();
        let fleet = seeded_fleet(self.store(), &self.app, count, clock).await?;
        Ok(fleet.into_iter().map(|vehicle| vehicle.id).collect())
    }

    /// Creates a vehicleState webhook (trigger: [`SIGNAL`]) on `callback`, verifies it through
    /// the HTTP API *while it has no subscribers*, then subscribes `vehicles` through the
    /// store; returns its id. Verifying first means enabling sends no `FIRST_DELIVERY` (there
    /// is nobody to send it to), and subscribing through the store skips the first delivery an
    /// API subscribe would enqueue: only change deliveries are in flight while measuring.
    pub async fn create_webhook(
        &self,
        name: &str,
        callback: &str,
        vehicles: &[String],
    ) -> anyhow::Result<String> {
        let base = self.server.url();
        let created = self
            .api_call(
                reqwest::Method::POST,
                format!("{base}/api/v1/webhooks"),
                Some(json!({
                    "name": name,
                    "type": "vehicleState",
                    "callbackUri": callback,
                    "triggers": [SIGNAL],
                })),
            )
            .await?;
        let webhook_id = created["id"]
            .as_str()
            .context("the created webhook has no id")?
            .to_string();
        self.api_call(
            reqwest::Method::POST,
            format!("{base}/api/v1/webhooks/{webhook_id}/verify"),
            None,
        )
        .await?;
        let clock = &self.server.state.clock;
        for id in vehicles {
            self.store()
                .subscribe(&webhook_id, id, clock.now_ms())
                .await?;
        }
        Ok(webhook_id)
    }

    /// One management API call; fails unless it answers 2xx.
    pub async fn api_call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(&self.app.management_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{url} failed"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{url} answered {status}: {value}");
        }
        Ok(value)
    }

    /// Drives `total` changes at `rate_per_s` through `POST /api/v1/vehicles/{id}/signals`:
    /// a tokio interval every 5 ms releases the changes due by then, so the rate holds, with at
    /// most `max_in_flight` requests at once (when the server cannot keep up the driver falls
    /// behind, and the achieved rate shows it). Change *i* goes to `vehicles[change_of(i).0]`.
    /// Fails when a change is refused or not counted as changed.
    pub async fn drive(
        &self,
        vehicles: &[String],
        rate_per_s: f64,
        total: usize,
        max_in_flight: usize,
    ) -> anyhow::Result<Driven> {
        let base = self.server.url();
        let amt = self.app.management_token.clone();
        let vehicles = Arc::new(vehicles.to_vec());
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let mut tasks: JoinSet<anyhow::Result<(usize, Instant, Instant)>> = JoinSet::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(5));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        let mut issued = 0usize;
        while issued < total {
            ticker.tick().await;
            let due =
                ((started.elapsed().as_secs_f64() * rate_per_s).floor() as usize + 1).min(total);
            while issued < due {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .context("the in-flight limiter closed")?;
                let (vehicle, value) = change_of(issued, vehicles.len());
                let url = format!("{base}/api/v1/vehicles/{}/signals", vehicles[vehicle]);
                let request = self.http.post(url).bearer_auth(&amt).json(&json!({
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
        let mut accepted_at = HashMap::with_capacity(total);
        let mut round_trips = Vec::with_capacity(total);
        let mut last_accepted = started;
        while let Some(joined) = tasks.join_next().await {
            let (index, sent, accepted) = joined.context("an ingest task panicked")??;
            let (vehicle, value) = change_of(index, vehicles.len());
            accepted_at.insert((vehicles[vehicle].clone(), value), accepted);
            round_trips.push(ms(accepted.saturating_duration_since(sent)));
            last_accepted = last_accepted.max(accepted);
        }
        round_trips.sort_by(f64::total_cmp);
        Ok(Driven {
            accepted_at,
            round_trips,
            started,
            last_accepted,
        })
    }

    /// Waits until every change of `expected` has been received by a healthy endpoint, then
    /// [`GRACE`] for duplicates; returns when the last one arrived, or `None` when `timeout`
    /// passed first.
    pub async fn wait_for(
        &self,
        expected: &HashSet<ChangeKey>,
        timeout: Duration,
    ) -> anyhow::Result<Option<Instant>> {
        let deadline = Instant::now() + timeout;
        let mut delivered: HashSet<ChangeKey> = HashSet::with_capacity(expected.len());
        let mut seen = 0usize;
        let done = loop {
            {
                let received = self
                    .receiver
                    .received
                    .lock()
                    .map_err(|_| anyhow!("the receiver's record is poisoned"))?;
                for r in &received[seen..] {
                    if let (Behavior::Healthy, Some(value)) = (r.answered, r.value) {
                        let key = (r.vehicle_id.clone(), value);
                        if expected.contains(&key) {
                            delivered.insert(key);
                        }
                    }
                }
                seen = received.len();
            }
            if delivered.len() == expected.len() {
                break Some(Instant::now());
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        tokio::time::sleep(GRACE).await;
        Ok(done)
    }
}

/// Creates `count` vehicles of `app` through the store (fast setup, not measured), each with
/// [`SIGNAL`] at [`SEED`], so every later change of it is a change.
pub async fn seeded_fleet(
    store: &SharedStore,
    app: &App,
    count: usize,
    clock: &dyn Clock,
) -> anyhow::Result<Vec<Vehicle>> {
    let tag = crate::clock::real_now_ms().rem_euclid(100_000);
    let mut vehicles = Vec::with_capacity(count);
    for index in 0..count {
        let now = clock.now_ms();
        let vehicle = bench_vehicle(app, tag, index, now);
        store.create_vehicle(&vehicle).await?;
        store
            .apply_ingest(&vehicle.id, &[soc(SEED, now)], None, now)
            .await?;
        vehicles.push(vehicle);
    }
    Ok(vehicles)
}

/// A [`SIGNAL`] reading of `value` percent, retrieved at `now`.
pub fn soc(value: i64, now: Millis) -> SignalValue {
    SignalValue {
        code: SIGNAL.into(),
        body: json!({"unit": "percent", "value": value}),
        oem_updated_at: None,
        retrieved_at: now,
    }
}

/// What the load driver did.
pub struct Driven {
    /// When each change's `202` was in hand.
    pub accepted_at: HashMap<ChangeKey, Instant>,
    /// Ingest round trips (request sent → `202`), ascending, in ms.
    pub round_trips: Vec<f64>,
    /// When the driver started.
    pub started: Instant,
    /// When the last `202` arrived.
    pub last_accepted: Instant,
}

impl Driven {
    /// Seconds from the first send to the last `202`.
    pub fn drive_s(&self) -> f64 {
        self.last_accepted
            .saturating_duration_since(self.started)
            .as_secs_f64()
    }

    /// Changes per second the driver achieved.
    pub fn achieved_rate_per_s(&self) -> f64 {
        let drive_s = self.drive_s();
        if drive_s > 0.0 {
            self.accepted_at.len() as f64 / drive_s
        } else {
            0.0
        }
    }
}

/// The healthy answers received, matched to changes.
#[derive(Debug, Default)]
pub struct Tally {
    /// When each delivered change first arrived.
    pub first_seen: HashMap<ChangeKey, Instant>,
    /// `SIGNAL_UPDATED` payloads answered by a healthy endpoint (duplicates included).
    pub deliveries: usize,
    /// Deliveries beyond the first of a change.
    pub duplicates: usize,
    /// Deliveries that match no change of `accepted_at`.
    pub unmatched: usize,
    /// `FIRST_DELIVERY` payloads received.
    pub first_deliveries: usize,
}

impl Tally {
    /// Matches what healthy endpoints received to the changes of `accepted_at`.
    pub fn count(received: &[Received], accepted_at: &HashMap<ChangeKey, Instant>) -> Tally {
        let mut tally = Tally::default();
        for r in received {
            if r.answered != Behavior::Healthy {
                continue;
            }
            if r.trigger == "FIRST_DELIVERY" {
                tally.first_deliveries += 1;
                continue;
            }
            tally.deliveries += 1;
            let Some(value) = r.value else {
                tally.unmatched += 1;
                continue;
            };
            let key = (r.vehicle_id.clone(), value);
            if !accepted_at.contains_key(&key) {
                tally.unmatched += 1;
            } else if let Some(at) = tally.first_seen.get_mut(&key) {
                tally.duplicates += 1;
                *at = (*at).min(r.at);
            } else {
                tally.first_seen.insert(key, r.at);
            }
        }
        tally
    }

    /// The latencies (ms, ascending) from `202` to first arrival of the delivered changes
    /// `include` accepts; a delivery that beat its `202` counts 0.
    pub fn latencies(
        &self,
        accepted_at: &HashMap<ChangeKey, Instant>,
        include: impl Fn(&ChangeKey) -> bool,
    ) -> Vec<f64> {
        let mut latencies: Vec<f64> = self
            .first_seen
            .iter()
            .filter(|(key, _)| include(key))
            .filter_map(|(key, got)| {
                accepted_at
                    .get(key)
                    .map(|accepted| ms(got.saturating_duration_since(*accepted)))
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        latencies
    }
}

/// `/hook`: a healthy endpoint.
async fn receive_default(State(state): State<Receiver>, body: Bytes) -> Response {
    receive(state, None, body).await
}

/// `/hook/{n}`: endpoint `n`, answering as its behavior says.
async fn receive_endpoint(
    State(state): State<Receiver>,
    Path(endpoint): Path<usize>,
    body: Bytes,
) -> Response {
    receive(state, Some(endpoint), body).await
}

/// Answers the challenge; records every `VEHICLE_STATE` payload, then answers as the endpoint
/// behaves.
async fn receive(state: Receiver, endpoint: Option<usize>, body: Bytes) -> Response {
    let at = Instant::now();
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if let Some(challenge) = payload["data"]["challenge"]
        .as_str()
        .or_else(|| payload["payload"]["challenge"].as_str())
    {
        return Json(json!({ "challenge": hash_challenge(&state.amt, challenge) })).into_response();
    }
    let answered = state.behavior(endpoint);
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
            endpoint,
            answered,
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
    match answered {
        Behavior::Healthy => StatusCode::OK.into_response(),
        Behavior::Error500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Behavior::Hang => {
            // Until the sender gives up (its timeout drops the connection, and this future
            // with it) or the run ends.
            let mut released = state.released.clone();
            let _ = released.wait_for(|released| *released).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
