//! `fleethook bench throughput`: how many deliveries per second fleethook sends to one local
//! keep-alive receiver, against what the same HTTP client reaches against that receiver alone.
//!
//! **Three measurements in one run**, all against the same receiver (an axum server on
//! 127.0.0.1 that answers `200` at once and counts every payload by its `webhook-id`):
//! 1. **raw loopback**: the delivery client ([`DeliveryClient`], the one fleethook sends with)
//!    posts N copies of a real vehicleState body with the same headers, from as many
//!    concurrent workers as the dispatcher has slots. No store, no signing: the ceiling of
//!    this client and receiver on this machine (`raw_per_s`).
//! 2. **drain**: N signal changes are ingested while the dispatcher is stopped, which puts N
//!    rendered vehicleState payloads in the outbox; then the dispatcher starts and the clock
//!    runs until the receiver has every one (`deliveries_per_s`; `ratio` is it over
//!    `raw_per_s`).
//! 3. **end to end**: with the dispatcher running, a concurrent client posts N more signal
//!    changes to the ingest API (`POST /api/v1/vehicles/{id}/signals`), each a trigger of a
//!    vehicleState webhook; the clock runs from the first request until the receiver has
//!    every resulting delivery (`end_to_end_per_s`).
//!
//! **The fleet.** V vehicles, each subscribed to one of E vehicleState webhooks (triggered by
//! `tractionbattery-stateofcharge`), whose callbacks are E paths of the receiver. Vehicles and
//! subscriptions are written through the store (fast setup, no first deliveries); the webhooks
//! are created and verified through the API. Change *i* of a phase goes to vehicle *i mod V*
//! with a value no earlier change of that vehicle had, so every change triggers exactly one
//! delivery.
//!
//! With `--nodes K` (Postgres only) K servers share the database: the fill goes through the
//! first, every node's dispatcher drains, and the end-to-end client spreads its ingests over
//! all of them.
//!
//! Everything, the load drivers and the receiver included, runs in this one process and
//! shares the machine's CPUs: the raw figure is what the client and receiver cost alone, and
//! the ratio is what fleethook's own work (store, signing, bookkeeping) leaves of it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use fleethook_wire::signing::hash_challenge;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::changes::{seeded_fleet, soc, SEED, SIGNAL};
use super::common::{api_call, write_scenario_report};
use super::{process_cpu_seconds, BenchArgs, BenchDatabase, MachineFacts};
use crate::clock::{ScaledClock, SharedClock};
use crate::delivery::dispatcher::MAX_RESPONSE_READ;
use crate::delivery::{DeliveryClient, DispatcherSettings};
use crate::model::{App, Page, Vehicle};
use crate::server::{ensure_default_app, open_store, RunningServer, ServerOptions};
use crate::store::{DeliveryFilter, SharedStore};

/// The scenario's name on the command line and in `target/bench/throughput.json`.
pub const NAME: &str = "throughput";

/// How long to keep listening for duplicates once a phase has everything.
const GRACE: Duration = Duration::from_millis(300);

/// How to run the scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputConfig {
    /// Deliveries in each of the three phases.
    pub deliveries: usize,
    /// Vehicles in the fleet.
    pub vehicles: usize,
    /// vehicleState webhooks (receiver paths); vehicle v is subscribed to webhook v mod E.
    pub endpoints: usize,
    /// Dispatcher slots (attempts in flight at once); the raw driver uses as many workers.
    pub concurrency: usize,
    /// Ingest requests in flight at once in the fill and end-to-end phases.
    pub ingest_in_flight: usize,
    /// Servers sharing the database (more than one needs Postgres).
    pub nodes: usize,
    /// How long a phase may take before the run fails, in seconds.
    pub phase_timeout_s: f64,
    /// The database (`None`: a fresh temporary SQLite file; a Postgres URL: a fresh database
    /// on that server).
    pub database_url: Option<String>,
    /// Print progress lines to stderr.
    #[serde(skip)]
    pub progress: bool,
}

impl ThroughputConfig {
    /// The full scenario: 200,000 deliveries per phase over 10,000 vehicles and 16 webhooks.
    pub fn full() -> Self {
        ThroughputConfig {
            deliveries: 200_000,
            vehicles: 10_000,
            endpoints: 16,
            concurrency: DispatcherSettings::default().concurrency,
            ingest_in_flight: 256,
            nodes: 1,
            phase_timeout_s: 600.0,
            database_url: None,
            progress: true,
        }
    }

    /// `--quick`: 20,000 deliveries per phase over 2,000 vehicles.
    pub fn quick() -> Self {
        ThroughputConfig {
            deliveries: 20_000,
            vehicles: 2_000,
            ..Self::full()
        }
    }

    /// The test suite's smoke run: 300 deliveries per phase over 30 vehicles and 3 webhooks.
    pub fn smoke() -> Self {
        ThroughputConfig {
            deliveries: 300,
            vehicles: 30,
            endpoints: 3,
            concurrency: 16,
            ingest_in_flight: 16,
            phase_timeout_s: 120.0,
            progress: false,
            ..Self::full()
        }
    }

    /// Change rounds per phase: how many changes each vehicle gets at most in one phase.
    fn rounds_per_phase(&self) -> usize {
        self.deliveries.div_ceil(self.vehicles)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.deliveries == 0 || self.vehicles == 0 || self.endpoints == 0 {
            bail!("the scenario needs at least one delivery, vehicle and webhook");
        }
        if self.endpoints > self.vehicles {
            bail!("more webhooks than vehicles would leave some with no subscriber");
        }
        if self.concurrency == 0 || self.ingest_in_flight == 0 || self.nodes == 0 {
            bail!("concurrency, ingest_in_flight and nodes must be at least 1");
        }
        if 2 * self.rounds_per_phase() >= 100 {
            bail!(
                "{} deliveries over {} vehicles is too many changes per vehicle: values would repeat",
                self.deliveries,
                self.vehicles
            );
        }
        Ok(())
    }
}

/// What a run measured and counted.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    /// Drain rate: deliveries received per second while a full outbox empties.
    pub deliveries_per_s: f64,
    /// The same client against the same receiver, without fleethook: requests per second.
    pub raw_per_s: f64,
    /// `deliveries_per_s / raw_per_s`.
    pub ratio: f64,
    /// Signal changes posted to the ingest API and delivered, per second.
    pub end_to_end_per_s: f64,
    /// Deliveries (and raw requests) in each phase.
    pub deliveries: usize,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Servers sharing the database.
    pub nodes: usize,
    /// Seconds of the raw phase, the drain and the end-to-end phase.
    pub raw_s: f64,
    pub drain_s: f64,
    pub end_to_end_s: f64,
    /// Seconds to ingest the drain's changes with the dispatcher stopped (not measured).
    pub fill_s: f64,
    /// Ingests per second of the fill (the ingest path alone, through the store).
    pub fill_per_s: f64,
    /// Seconds spent creating the fleet and the webhooks (not measured).
    pub setup_s: f64,
    /// Distinct payloads the receiver got in the drain and end-to-end phases.
    pub drained: usize,
    pub end_to_end_delivered: usize,
    /// Payloads received more than once (a correct run on one node: 0).
    pub duplicates: usize,
    /// CPU time of the whole process per delivery (per request in the raw phase), in
    /// microseconds: what each costs on this machine, however much CPU the run was given.
    pub raw_cpu_us: Option<f64>,
    pub drain_cpu_us: Option<f64>,
    pub end_to_end_cpu_us: Option<f64>,
    /// Process CPU per ingest of the fill, in µs: the ingest path's cost without HTTP.
    pub fill_cpu_us: Option<f64>,
    /// An end-to-end delivery is two HTTP exchanges (the ingest request and the delivery),
    /// each costing at least a raw exchange: `2 × raw_cpu_us`, the floor of
    /// `end_to_end_cpu_us` if fleethook's own work were free.
    pub end_to_end_http_cpu_us: Option<f64>,
    /// The end-to-end rate at which those two exchanges alone would keep every CPU of the
    /// machine busy: what the end-to-end target is held against on a given day.
    pub end_to_end_http_ceiling_per_s: Option<f64>,
    /// The share of each phase (0 to 1) in which SQLite's one write connection was held
    /// (`Store::write_busy`); near 1, the writes are the limit. `None` on Postgres.
    pub fill_write_busy: Option<f64>,
    pub drain_write_busy: Option<f64>,
    pub end_to_end_write_busy: Option<f64>,
    /// Raw requests that did not get a `200`.
    pub raw_failures: usize,
    /// Size of the vehicleState body sent, in bytes.
    pub body_bytes: usize,
    /// Deliveries still pending in the outbox at the end (a correct run: 0).
    pub outbox_pending_after: i64,
}

/// `fleethook bench throughput [--quick] [--database-url URL] [--nodes K]`.
pub async fn run_cli(args: &BenchArgs) -> anyhow::Result<()> {
    let mut config = if args.quick {
        ThroughputConfig::quick()
    } else {
        ThroughputConfig::full()
    };
    config.database_url = args.database_url.clone();
    config.nodes = args.nodes;
    let machine = MachineFacts::collect();
    eprintln!(
        "{NAME}: {} deliveries per phase, {} vehicles, {} webhooks, {} node(s)",
        config.deliveries, config.vehicles, config.endpoints, config.nodes
    );
    let report = run_scenario(config.clone()).await?;

    println!();
    println!(
        "fleethook bench {NAME}{}",
        if args.quick { " (quick)" } else { "" }
    );
    println!("  machine: {}", machine.summary());
    println!(
        "  {} deliveries per phase; {} on {} node(s); {} webhooks, {} vehicles; {} B bodies",
        report.deliveries,
        report.backend,
        report.nodes,
        config.endpoints,
        config.vehicles,
        report.body_bytes
    );
    println!();
    let row = |label: &str, per_s: f64, seconds: f64, cpu_us: Option<f64>| {
        let cpu = cpu_us.map_or(String::new(), |us| format!(", {us:.0} µs CPU each"));
        println!("  {label:<40} {per_s:>10.0} /s  ({seconds:.2} s{cpu})");
    };
    row(
        "raw loopback (client → receiver)",
        report.raw_per_s,
        report.raw_s,
        report.raw_cpu_us,
    );
    row(
        "drain (full outbox → receiver)",
        report.deliveries_per_s,
        report.drain_s,
        report.drain_cpu_us,
    );
    row(
        "end to end (ingest → receiver)",
        report.end_to_end_per_s,
        report.end_to_end_s,
        report.end_to_end_cpu_us,
    );
    row(
        "fill (ingest, dispatcher stopped)",
        report.fill_per_s,
        report.fill_s,
        report.fill_cpu_us,
    );
    println!("  {:<40} {:>10.2}", "drain ÷ raw", report.ratio);
    if let (Some(ceiling), Some(http_us), Some(e2e_us)) = (
        report.end_to_end_http_ceiling_per_s,
        report.end_to_end_http_cpu_us,
        report.end_to_end_cpu_us,
    ) {
        println!(
            "  {:<40} {ceiling:>10.0} /s  ({http_us:.0} µs CPU each; the rest {:.0} µs more)",
            "end to end, its 2 HTTP exchanges alone",
            e2e_us - http_us
        );
    }
    if let (Some(fill), Some(drain), Some(end_to_end)) = (
        report.fill_write_busy,
        report.drain_write_busy,
        report.end_to_end_write_busy,
    ) {
        println!(
            "  {:<40} {:>10}",
            "write connection held: fill, drain, e2e",
            format!(
                "{:.0} %, {:.0} %, {:.0} %",
                fill * 100.0,
                drain * 100.0,
                end_to_end * 100.0
            )
        );
    }
    println!("  {:<40} {:>10}", "duplicates", report.duplicates);
    println!(
        "  {:<40} {:>10}",
        "left in the outbox", report.outbox_pending_after
    );

    write_scenario_report(NAME, args.quick, &report, &config, &machine)
}

/// Runs the scenario once (see the module documentation) and returns what it measured. Fails
/// when a request is refused or a phase does not complete within its timeout.
pub async fn run_scenario(config: ThroughputConfig) -> anyhow::Result<ThroughputReport> {
    config.validate()?;
    let database = BenchDatabase::prepare(config.database_url.as_deref()).await?;
    if config.nodes > 1 && database.backend() != "postgres" {
        bail!("several nodes share a Postgres database only: pass --database-url postgres://…");
    }
    let clock: SharedClock = Arc::new(ScaledClock::new(1.0));

    let receiver = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the receiver")?;
    let receiver_base = format!("http://{}/hook", listener.local_addr()?);
    let receiver_app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let receiver_task = tokio::spawn(async move {
        let _ = axum::serve(listener, receiver_app).await;
    });

    let mut nodes = Vec::with_capacity(config.nodes);
    let mut app = None;
    for _ in 0..config.nodes {
        let store = open_store(database.url()).await?;
        if app.is_none() {
            app = Some(ensure_default_app(&store, None, clock.now_ms()).await?.0);
        }
        nodes.push(
            RunningServer::start(
                store,
                clock.clone(),
                ServerOptions {
                    listen: "127.0.0.1:0".into(),
                    allow_private: true,
                    dispatcher: DispatcherSettings {
                        concurrency: config.concurrency,
                        ..Default::default()
                    },
                    // Started by the drain phase, so the fill fills the outbox.
                    background_dispatcher: false,
                },
            )
            .await?,
        );
    }
    let app = app.context("at least one node")?;
    let result = measure(&config, &nodes, &app, &receiver, &receiver_base, &database).await;
    for node in nodes {
        node.stop().await;
    }
    receiver_task.abort();
    drop(database);
    result
}

/// Setup and the three phases, against running servers.
async fn measure(
    config: &ThroughputConfig,
    nodes: &[RunningServer],
    app: &App,
    receiver: &Arc<Receiver>,
    receiver_base: &str,
    database: &BenchDatabase,
) -> anyhow::Result<ThroughputReport> {
    let progress = |line: String| {
        if config.progress {
            eprintln!("  {line}");
        }
    };
    let first = &nodes[0];
    let store = first.state.store.clone();
    let timeout = Duration::from_secs_f64(config.phase_timeout_s);
    let api = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")?;

    // --- setup (not measured) ---
    let setup_started = Instant::now();
    let vehicles =
        Arc::new(seeded_fleet(&store, app, config.vehicles, first.state.clock.as_ref()).await?);
    let webhook_ids = create_webhooks(&api, first, app, receiver, receiver_base, config).await?;
    for (index, vehicle) in vehicles.iter().enumerate() {
        let webhook_id = &webhook_ids[index % webhook_ids.len()];
        store
            .subscribe(webhook_id, &vehicle.id, first.state.clock.now_ms())
            .await?;
    }
    let setup_s = setup_started.elapsed().as_secs_f64();
    progress(format!(
        "{} vehicles on {} webhooks ready in {setup_s:.1} s",
        vehicles.len(),
        webhook_ids.len()
    ));

    // --- fill: the drain's payloads, ingested while no dispatcher runs ---
    let cpu_per = |from: Option<f64>| -> Option<f64> {
        Some((process_cpu_seconds()? - from?) * 1e6 / config.deliveries as f64)
    };
    let busy_share = |from: Option<Duration>, seconds: f64| -> Option<f64> {
        let held = store.write_busy()?.saturating_sub(from?);
        (seconds > 0.0).then(|| held.as_secs_f64() / seconds)
    };
    let fill_cpu = process_cpu_seconds();
    let fill_busy = store.write_busy();
    let fill_started = Instant::now();
    fill_outbox(first, &vehicles, config).await?;
    let fill_s = fill_started.elapsed().as_secs_f64();
    let fill_cpu_us = cpu_per(fill_cpu);
    let fill_write_busy = busy_share(fill_busy, fill_s);
    let pending = store.outbox_depth().await?;
    if pending != config.deliveries as i64 {
        bail!(
            "the fill left {pending} payloads in the outbox, not {}",
            config.deliveries
        );
    }
    progress(format!(
        "{pending} payloads in the outbox after {fill_s:.1} s"
    ));
    let body = sample_body(&store, app).await?;

    // --- raw loopback ---
    let raw_cpu = process_cpu_seconds();
    let raw_started = Instant::now();
    let raw_failures = drive_raw(receiver_base, &body, config).await?;
    let raw_s = raw_started.elapsed().as_secs_f64();
    let raw_cpu_us = cpu_per(raw_cpu);
    progress(format!(
        "raw loopback: {} requests in {raw_s:.2} s",
        config.deliveries
    ));

    // --- drain ---
    let before = receiver.unique();
    let drain_cpu = process_cpu_seconds();
    let drain_busy = store.write_busy();
    let drain_started = Instant::now();
    for node in nodes {
        start_delivery(node);
    }
    if !receiver.wait_for(before + config.deliveries, timeout).await {
        bail!(
            "the drain delivered {} of {} within {} s",
            receiver.unique() - before,
            config.deliveries,
            config.phase_timeout_s
        );
    }
    let drain_s = drain_started.elapsed().as_secs_f64();
    let drain_cpu_us = cpu_per(drain_cpu);
    let drain_write_busy = busy_share(drain_busy, drain_s);
    let drained = receiver.unique() - before;
    progress(format!("drained {drained} in {drain_s:.2} s"));

    // --- end to end ---
    let before = receiver.unique();
    let e2e_cpu = process_cpu_seconds();
    let e2e_busy = store.write_busy();
    let e2e_started = Instant::now();
    let ingests = drive_ingests(nodes, app, &vehicles, config);
    let waited = receiver.wait_for(before + config.deliveries, timeout);
    let (ingested, delivered) = tokio::join!(ingests, waited);
    ingested?;
    if !delivered {
        bail!(
            "end to end delivered {} of {} within {} s",
            receiver.unique() - before,
            config.deliveries,
            config.phase_timeout_s
        );
    }
    let end_to_end_s = e2e_started.elapsed().as_secs_f64();
    let end_to_end_cpu_us = cpu_per(e2e_cpu);
    let end_to_end_write_busy = busy_share(e2e_busy, end_to_end_s);
    let end_to_end_delivered = receiver.unique() - before;
    progress(format!(
        "end to end: {end_to_end_delivered} in {end_to_end_s:.2} s"
    ));

    tokio::time::sleep(GRACE).await;
    let outbox_pending_after = store.outbox_depth().await?;
    let per_s = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let raw_per_s = per_s(config.deliveries, raw_s);
    let deliveries_per_s = per_s(config.deliveries, drain_s);
    let end_to_end_http_cpu_us = raw_cpu_us.map(|us| 2.0 * us);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(ThroughputReport {
        deliveries_per_s,
        raw_per_s,
        ratio: if raw_per_s > 0.0 {
            deliveries_per_s / raw_per_s
        } else {
            0.0
        },
        end_to_end_per_s: per_s(config.deliveries, end_to_end_s),
        deliveries: config.deliveries,
        backend: database.backend().to_string(),
        nodes: nodes.len(),
        raw_s,
        drain_s,
        end_to_end_s,
        fill_s,
        fill_per_s: per_s(config.deliveries, fill_s),
        setup_s,
        drained,
        end_to_end_delivered,
        duplicates: receiver.duplicates.load(Ordering::SeqCst),
        raw_cpu_us,
        drain_cpu_us,
        end_to_end_cpu_us,
        fill_cpu_us,
        end_to_end_http_cpu_us,
        end_to_end_http_ceiling_per_s: end_to_end_http_cpu_us
            .filter(|us| *us > 0.0)
            .map(|us| cpus as f64 * 1e6 / us),
        fill_write_busy,
        drain_write_busy,
        end_to_end_write_busy,
        raw_failures,
        body_bytes: body.len(),
        outbox_pending_after,
    })
}

/// Creates and verifies the vehicleState webhooks through the API, while nobody is subscribed
/// (so enabling sends no first delivery); the receiver answers their challenges meanwhile.
async fn create_webhooks(
    api: &reqwest::Client,
    server: &RunningServer,
    app: &App,
    receiver: &Receiver,
    receiver_base: &str,
    config: &ThroughputConfig,
) -> anyhow::Result<Vec<String>> {
    let base = server.url();
    let amt = app.management_token.as_str();
    if let Ok(mut known) = receiver.amt.lock() {
        *known = amt.to_string();
    }
    receiver.answer_challenges.store(true, Ordering::SeqCst);
    let mut ids = Vec::with_capacity(config.endpoints);
    for endpoint in 0..config.endpoints {
        let created = api_call(
            api,
            amt,
            reqwest::Method::POST,
            format!("{base}/api/v1/webhooks"),
            Some(json!({
                "name": format!("bench throughput {endpoint}"),
                "type": "vehicleState",
                "callbackUri": format!("{receiver_base}?endpoint={endpoint}"),
                "triggers": [SIGNAL],
            })),
        )
        .await?;
        let id = created["id"]
            .as_str()
            .context("the created webhook has no id")?
            .to_string();
        api_call(
            api,
            amt,
            reqwest::Method::POST,
            format!("{base}/api/v1/webhooks/{id}/verify"),
            None,
        )
        .await?;
        ids.push(id);
    }
    receiver.answer_challenges.store(false, Ordering::SeqCst);
    Ok(ids)
}

/// Change `index` of phase `phase` (0: fill, 1: end to end): the vehicle and its new value,
/// which no earlier change of that vehicle had.
fn change_of(config: &ThroughputConfig, phase: usize, index: usize) -> (usize, i64) {
    let round = phase * config.rounds_per_phase() + index / config.vehicles + 1;
    (index % config.vehicles, (SEED + round as i64) % 100)
}

/// Ingests the fill's changes through the ingest path (`ingest::apply`, as the API does,
/// without HTTP), `ingest_in_flight` at a time; the dispatcher is not running yet.
async fn fill_outbox(
    server: &RunningServer,
    vehicles: &Arc<Vec<Vehicle>>,
    config: &ThroughputConfig,
) -> anyhow::Result<()> {
    let (state, vehicles, change) = (server.state.clone(), vehicles.clone(), config.clone());
    for_each_index(config.ingest_in_flight, config.deliveries, move |index| {
        let (state, vehicles) = (state.clone(), vehicles.clone());
        let (vehicle, value) = change_of(&change, 0, index);
        async move {
            let now = state.clock.now_ms();
            let applied =
                crate::ingest::apply(&state, &vehicles[vehicle], &[soc(value, now)], None, now)
                    .await?;
            if applied.changes.len() != 1 {
                bail!("change {index} was not a change");
            }
            Ok(())
        }
    })
    .await
    .context("a fill worker failed")
}

/// Runs `job` for every index in `0..total` from `workers` concurrent tasks, each taking the
/// next index as soon as its last job ends; the first error ends the run.
async fn for_each_index<F, Fut>(workers: usize, total: usize, job: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let (next, job) = (next.clone(), job.clone());
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    return anyhow::Ok(());
                }
                job(index).await?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a worker panicked")??;
    }
    Ok(())
}

/// One vehicleState body from the outbox, for the raw phase to send.
async fn sample_body(store: &SharedStore, app: &App) -> anyhow::Result<String> {
    let webhooks = store.list_webhooks(&app.id).await?;
    let webhook = webhooks.first().context("no webhook")?;
    let (deliveries, _) = store
        .list_deliveries(
            &app.id,
            &webhook.id,
            &DeliveryFilter::default(),
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .await?;
    let delivery = deliveries.first().context("the outbox is empty")?;
    Ok(delivery.body.clone())
}

/// The raw phase: the delivery client posts the body `deliveries` times, from as many workers
/// as the dispatcher has slots, with the headers a delivery carries. Returns the non-`200`s.
async fn drive_raw(
    receiver_base: &str,
    body: &str,
    config: &ThroughputConfig,
) -> anyhow::Result<usize> {
    let client = DeliveryClient::new(true);
    let uri: hyper::Uri = format!("{receiver_base}?endpoint=raw")
        .parse()
        .context("the receiver's URI")?;
    let body = Bytes::from(body.to_string());
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = failures.clone();
    for_each_index(config.concurrency, config.deliveries, move |index| {
        let mut headers = HeaderMap::with_capacity(6);
        for (name, value) in [
            ("content-type", "application/json".to_string()),
            ("sc-signature", "0".repeat(64)),
            ("webhook-id", format!("raw-{index}")),
            ("webhook-timestamp", "0".to_string()),
            ("webhook-signature", "v1,AAAA".to_string()),
        ] {
            headers.insert(
                name,
                HeaderValue::try_from(value).expect("ASCII header values"),
            );
        }
        let (client, uri, body) = (client.clone(), uri.clone(), body.clone());
        let failures = counted.clone();
        async move {
            match client.post(uri, headers, body, MAX_RESPONSE_READ).await {
                Ok(answer) if answer.status == StatusCode::OK => {}
                _ => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        }
    })
    .await
    .context("a raw worker failed")?;
    Ok(failures.load(Ordering::SeqCst))
}

/// The end-to-end client: posts the second phase's changes to the ingest API, spread over the
/// nodes, `ingest_in_flight` at a time; each must answer `202` naming the signal as changed.
async fn drive_ingests(
    nodes: &[RunningServer],
    app: &App,
    vehicles: &Arc<Vec<Vehicle>>,
    config: &ThroughputConfig,
) -> anyhow::Result<()> {
    // What every request repeats is prepared once, as a client on another machine would:
    // the driver shares the CPUs with the server, and its own parsing and formatting (about
    // a tenth of the phase's CPU when each request built its URL and JSON afresh) is not
    // fleethook's work. For the same reason it posts with the delivery client, hyper's
    // client with nothing around it, rather than reqwest (about 20 µs more per request).
    let uris: Arc<Vec<Vec<hyper::Uri>>> = Arc::new(
        nodes
            .iter()
            .map(|node| {
                let base = node.url();
                vehicles
                    .iter()
                    .map(|vehicle| format!("{base}/api/v1/vehicles/{}/signals", vehicle.id).parse())
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?,
    );
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", app.management_token))?,
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let client = DeliveryClient::new(true);
    let change = config.clone();
    for_each_index(config.ingest_in_flight, config.deliveries, move |index| {
        let (client, uris, headers) = (client.clone(), uris.clone(), headers.clone());
        let (vehicle, value) = change_of(&change, 1, index);
        async move {
            let uri = uris[index % uris.len()][vehicle].clone();
            let body = format!(
                r#"{{"signals":[{{"code":"{SIGNAL}","body":{{"unit":"percent","value":{value}}}}}]}}"#
            );
            let answer = client
                .post(uri, headers, Bytes::from(body), MAX_RESPONSE_READ)
                .await
                .map_err(|err| anyhow::anyhow!("ingest request failed: {}", err.describe()))?;
            let body = &answer.body;
            if answer.status != StatusCode::ACCEPTED {
                bail!(
                    "ingest answered {}: {}",
                    answer.status,
                    String::from_utf8_lossy(body)
                );
            }
            let answer: IngestAnswer = serde_json::from_slice(body)
                .with_context(|| format!("ingest answer: {}", String::from_utf8_lossy(body)))?;
            if !answer.changed.iter().any(|c| c == SIGNAL) {
                bail!("ingest did not count {SIGNAL} as changed: {answer:?}");
            }
            Ok(())
        }
    })
    .await
}

/// What the end-to-end driver checks of an ingest's answer.
#[derive(Debug, serde::Deserialize)]
struct IngestAnswer {
    changed: Vec<String>,
}

/// Starts a node's trigger and dispatcher loops, as a server with a background dispatcher
/// does at start; they stop with the node.
fn start_delivery(node: &RunningServer) {
    let triggers = node.state.triggers.clone();
    let dispatcher = node.state.dispatcher.clone();
    let (a, b) = (node.shutdown_receiver(), node.shutdown_receiver());
    tokio::spawn(async move {
        tokio::join!(triggers.run(a), dispatcher.run(b));
    });
}

/// The receiver: counts payloads by `webhook-id`, and answers challenges while the webhooks
/// are being verified.
#[derive(Default)]
struct Receiver {
    answer_challenges: AtomicBool,
    amt: Mutex<String>,
    seen: Mutex<HashSet<Box<[u8]>>>,
    unique: AtomicUsize,
    duplicates: AtomicUsize,
    /// Woken on every new payload once `target` is reached.
    target: AtomicUsize,
    reached: Notify,
}

impl Receiver {
    fn unique(&self) -> usize {
        self.unique.load(Ordering::SeqCst)
    }

    /// Waits until `count` distinct payloads have arrived; false after `timeout`.
    async fn wait_for(&self, count: usize, timeout: Duration) -> bool {
        self.target.store(count, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.reached.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.unique() >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.unique() >= count;
            }
        }
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if receiver.answer_challenges.load(Ordering::SeqCst) {
        if let Ok(payload) = serde_json::from_slice::<Value>(&body) {
            if let Some(challenge) = payload["data"]["challenge"]
                .as_str()
                .or_else(|| payload["payload"]["challenge"].as_str())
            {
                let amt = receiver.amt.lock().map(|a| a.clone()).unwrap_or_default();
                return Json(json!({ "challenge": hash_challenge(&amt, challenge) }))
                    .into_response();
            }
        }
    }
    let Some(id) = headers.get("webhook-id") else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let fresh = receiver
        .seen
        .lock()
        .map(|mut seen| seen.insert(id.as_bytes().into()))
        .unwrap_or(false);
    if fresh {
        let count = receiver.unique.fetch_add(1, Ordering::SeqCst) + 1;
        if count >= receiver.target.load(Ordering::SeqCst) {
            receiver.reached.notify_waiters();
        }
    } else {
        receiver.duplicates.fetch_add(1, Ordering::SeqCst);
    }
    StatusCode::OK.into_response()
}
